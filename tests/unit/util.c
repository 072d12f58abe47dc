// SPDX-License-Identifier: GPL-2.0-only OR MIT
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

char *tu_mkdtemp(void)
{
	const char *t = getenv("TMPDIR");
	char *p;

	if (!t || !*t)
		t = "/tmp";
	p = malloc(strlen(t) + 32);
	assert_non_null(p);
	sprintf(p, "%s/cowchain-test-XXXXXX", t);
	assert_non_null(mkdtemp(p));
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(path);
}

void tu_rmdir(char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

const char *tu_path(const char *dir, const char *name)
{
	static char ring[8][4096];
	static int i;
	char *p = ring[i++ & 7];

	snprintf(p, 4096, "%s/%s", dir, name);
	return p;
}

void tu_read(const char *path, u64 off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

void tu_write(const char *path, u64 off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

void tu_flip_bit(const char *path, u64 off, unsigned bit)
{
	u8 b;

	tu_read(path, off, &b, 1);
	b ^= (u8)(1u << bit);
	tu_write(path, off, &b, 1);
}

void tu_copy(const char *from, const char *to)
{
	char cmd[8300];

	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

void tu_truncate(const char *path, u64 size)
{
	assert_int_equal(truncate(path, (off_t)size), 0);
}

void tu_read_sb(const char *path, struct cowchain_sb *sb)
{
	struct cowchain_sb_disk d;
	struct cowchain_sb s[2];
	struct cowchain_err e;
	int ok[2];

	for (int i = 0; i < 2; i++) {
		tu_read(path, (u64)i * COWCHAIN_BLOCK_SIZE, &d, sizeof(d));
		ok[i] = cowchain_sb_unpack(&d, (u64)i, 0, &s[i], &e) == 0;
	}
	assert_true(ok[0] || ok[1]);
	*sb = (ok[0] && (!ok[1] || s[0].seq > s[1].seq)) ? s[0] : s[1];
}

void tu_rewrite_sb(const char *path, tu_sb_fn fn, void *ctx)
{
	struct cowchain_sb sb;
	struct cowchain_sb_disk d;

	tu_read_sb(path, &sb);
	fn(&sb, ctx);
	sb.seq++;
	cowchain_sb_pack(&sb, &d);
	tu_write(path, (sb.seq & 1) * COWCHAIN_BLOCK_SIZE, &d, sizeof(d));
}

void tu_assert_msg_(const struct cowchain_error *err, const char *needle,
		    const char *file, int line)
{
	if (!strstr(err->msg, needle)) {
		print_error("%s:%d: message '%s' does not contain '%s'\n",
			       file, line, err->msg, needle);
		_fail(file, line);
	}
}
