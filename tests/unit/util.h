/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/* Helpers shared by the unit tests: scratch directories and file surgery. */
#ifndef COWCHAIN_TEST_UTIL_H
#define COWCHAIN_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "cowchain.h"

/* A fresh directory under $TMPDIR (or /tmp), removed by tu_rmdir. */
char *tu_mkdtemp(void);
void tu_rmdir(char *dir);
/* dir + "/" + name, in a static ring of buffers. */
const char *tu_path(const char *dir, const char *name);

/* Read/write raw bytes of a file. */
void tu_read(const char *path, u64 off, void *buf, size_t len);
void tu_write(const char *path, u64 off, const void *buf, size_t len);
void tu_flip_bit(const char *path, u64 byte_off, unsigned bit);
void tu_copy(const char *from, const char *to);
void tu_truncate(const char *path, u64 size);

/* Rewrite the newest valid superblock through fn, as a new seq. */
typedef void (*tu_sb_fn)(struct cowchain_sb *sb, void *ctx);
void tu_rewrite_sb(const char *path, tu_sb_fn fn, void *ctx);
/* The newest valid superblock of a layer. */
void tu_read_sb(const char *path, struct cowchain_sb *sb);

/* Assert that err->msg contains needle. */
#define tu_assert_msg(err, needle) \
	tu_assert_msg_(err, needle, __FILE__, __LINE__)
void tu_assert_msg_(const struct cowchain_error *err, const char *needle,
		    const char *file, int line);

/* xorshift PRNG for deterministic tests. */
static inline u64 tu_rand(u64 *s)
{
	u64 x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline u64 tu_rand_range(u64 *s, u64 lo, u64 hi)	/* [lo, hi] */
{
	return lo + tu_rand(s) % (hi - lo + 1);
}

#endif
