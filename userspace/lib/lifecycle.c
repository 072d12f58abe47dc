// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Layer-level lifecycle operations: reset (restore / AUTORESET), the
 * AUTORESET flag, growing the virtual size, and saving / putting back the
 * raw superblock slots around a live snapshot.
 *
 * Reset and grow open the layer and call cowchain_layer_empty() /
 * cowchain_layer_set_size() (layer_life.c, where their order and crash
 * analysis are written down); this file uses the public layer API only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "internal.h"	/* error and I/O helpers only, no layer fields */
#include "lifecycle.h"

int cowchain_layer_reset(const char *path, struct cowchain_error *err)
{
	struct cowchain_layer *l;
	int ret;

	ret = cowchain_layer_open(path, COWCHAIN_OPEN_WRITE, &l, err);
	if (ret)
		return ret;
	ret = cowchain_layer_empty(l, err);
	/* the handle's index names the old blocks: nothing more to write */
	cowchain_layer_abandon(l);
	return ret;
}

int cowchain_layer_set_autoreset(const char *path, bool on, struct cowchain_error *err)
{
	struct cowchain_layer *l;
	int r, r2;

	r = cowchain_layer_open(path, COWCHAIN_OPEN_WRITE, &l, err);
	if (r)
		return r;
	if (!!(cowchain_layer_sb(l)->flags & COWCHAIN_SB_AUTORESET) != on)
		r = cowchain_layer_set_flags(l, on ? COWCHAIN_SB_AUTORESET : 0,
					     on ? 0 : COWCHAIN_SB_AUTORESET, err);
	r2 = cowchain_layer_close(l, r ? NULL : err);
	return r ? r : r2;
}

int cowchain_layer_grow(const char *path, u64 size, struct cowchain_error *err)
{
	struct cowchain_layer *l;
	int r;

	r = cowchain_layer_open(path, COWCHAIN_OPEN_WRITE, &l, err);
	if (r)
		return r;
	r = cowchain_layer_set_size(l, size, err);
	if (r) {
		cowchain_layer_abandon(l);
		return r;
	}
	return cowchain_layer_close(l, err);
}

int cowchain_sb_save(const char *path, struct cowchain_sb_save *s, struct cowchain_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	r = cc_pread(fd, s->raw, sizeof(s->raw), 0);
	close(fd);
	if (r)
		return cc_failf(err, r, path, "cannot read the superblocks: %s", strerror(-r));
	return 0;
}

int cowchain_sb_put_back(const char *path, const struct cowchain_sb_save *s,
			 struct cowchain_error *err)
{
	int fd = open(path, O_RDWR | O_CLOEXEC), r;

	if (fd < 0)
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	r = cc_pwrite(fd, s->raw, sizeof(s->raw), 0);
	if (!r && fdatasync(fd))
		r = -errno;
	close(fd);
	if (r)
		return cc_failf(err, r, path, "cannot put the superblocks back: %s", strerror(-r));
	return 0;
}

char *cowchain_snapshot_name(const char *top)
{
	const char *slash = strrchr(top, '/'), *base = slash ? slash + 1 : top;
	size_t dirlen = (size_t)(base - top), stemlen = strlen(base);
	const char *ext = "";
	char *out;
	unsigned long n = 1;
	const char *dot = strrchr(base, '.');

	if (dot && dot != base) {
		ext = dot;
		stemlen = (size_t)(dot - base);
	}
	/* "x-snap3" -> stem "x", start at 4 */
	{
		const char *p = base + stemlen;
		size_t k = 0;

		while (p - k > base && (p[-1 - (long)k] >= '0' && p[-1 - (long)k] <= '9'))
			k++;
		if (k && (size_t)(p - k - base) >= 5 && !strncmp(p - k - 5, "-snap", 5)) {
			n = strtoul(p - k, NULL, 10) + 1;
			stemlen -= k + 5;
		}
	}
	out = malloc(dirlen + stemlen + strlen(ext) + 32);
	if (!out)
		return NULL;
	for (;; n++) {
		struct stat st;

		sprintf(out, "%.*s%.*s-snap%lu%s", (int)dirlen, top, (int)stemlen, base, n, ext);
		if (stat(out, &st) && errno == ENOENT)
			return out;
	}
}
