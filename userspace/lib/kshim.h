/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The few kernel definitions that the pure-logic kernel files (format.c,
 * and later the index and journal logic) use, for building those files
 * unchanged in userspace.  Nothing here may change their semantics.
 */
#ifndef COWCHAIN_KSHIM_H
#define COWCHAIN_KSHIM_H

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#define cpu_to_le16(x) ((__le16)htole16(x))
#define cpu_to_le32(x) ((__le32)htole32(x))
#define cpu_to_le64(x) ((__le64)htole64(x))
#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)

/*
 * crc32c (Castagnoli, reflected polynomial 0x82f63b78) with the kernel's
 * semantics: no inversion on entry or exit; callers pass the seed.
 */
u32 crc32c(u32 crc, const void *data, unsigned int len);

#endif /* COWCHAIN_KSHIM_H */
