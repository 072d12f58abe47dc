/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cowchain's allocation failure switch, for tests (the Debian kernels
 * have no CONFIG_FAULT_INJECTION).  The module parameter fail_alloc_every
 * (docs/dm-cowchain.rst): 0 (the default) is off; N > 0 makes every Nth
 * call of cowchain_fail_alloc() return true, and the allocation site that
 * called it behaves as if the allocator had returned NULL (-ENOMEM).  The
 * count is shared by every site and every device.  Any context.
 */
#ifndef DM_COWCHAIN_FAULT_H
#define DM_COWCHAIN_FAULT_H

#include <linux/types.h>

bool cowchain_fail_alloc(void);
/* Testing: the module parameter commit_delay_ms; sleeps.  Commit only. */
void cowchain_commit_delay(void);

/* p = COWCHAIN_ALLOC(kmalloc(...)): NULL when the switch says fail. */
#define COWCHAIN_ALLOC(expr)	(cowchain_fail_alloc() ? NULL : (expr))

#endif /* DM_COWCHAIN_FAULT_H */
