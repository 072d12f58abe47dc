/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
#ifndef COWCHAIN_CHAIN_INTERNAL_H
#define COWCHAIN_CHAIN_INTERNAL_H

#include "internal.h"

struct cowchain_chain {
	struct cowchain_layer **layers;	/* 0 = top */
	u32 depth, cap;
	int base_fd;			/* -1: no raw base */
	char *base_path;
	u64 base_size;
	/* Sorted leaf keys held by any layer (for cowchain_resolve), rebuilt
	 * after writes. */
	u64 *held;
	size_t nheld;
	bool held_valid;
};

#endif /* COWCHAIN_CHAIN_INTERNAL_H */
