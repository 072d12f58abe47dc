// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Layer-level lifecycle operations: reset (restore / AUTORESET), the
 * AUTORESET flag, growing the virtual size, and saving / putting back the
 * raw superblock slots around a live snapshot.
 *
 * Reset, in order (FORMAT.md 8, "AUTORESET"):
 *  1. open for writing (refuses sealed layers and other writers);
 *  2. bump the generation (superblock write) before anything changes, so
 *     no child made from the old contents can ever bind to the new ones;
 *  3. set every root pointer to 0 and commit (one journal transaction per
 *     252 root blocks), then checkpoint (roots home, superblock last);
 *  4. punch the cluster area out of a file (every cluster is free now).
 * A crash before 3's transaction is durable leaves the old contents; after
 * it, the empty layer.  The cost is the root table, not the disk size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "internal.h"
#include "lifecycle.h"

int cowchain_layer_reset(const char *path, struct cowchain_error *err)
{
	struct cowchain_layer *l;
	struct stat st;
	u64 r;
	int ret;

	ret = cowchain_layer_open(path, COWCHAIN_OPEN_WRITE, &l, err);
	if (ret)
		return ret;
	ret = cc_prepare_write(l, err);
	for (r = 0; !ret && r < l->sb.root_blocks; r++) {
		memset(l->root[r]->img->ptr.ptr, 0, sizeof(l->root[r]->img->ptr.ptr));
		l->root[r]->dirty = true;
	}
	if (!ret)
		ret = cowchain_layer_commit(l, err);
	if (!ret)
		ret = cowchain_layer_checkpoint(l, err);
	if (!ret && !fstat(l->fd, &st) && S_ISREG(st.st_mode)) {
		u64 start = l->sb.data_start << l->sb.cluster_shift;
		u64 end = l->sb.capacity << l->sb.cluster_shift;

		/* best effort: space only, the index no longer references it */
		if (!fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       (off_t)start, (off_t)(end - start)))
			fdatasync(l->fd);
	}
	if (ret) {
		l->failed = true;	/* nothing more to write on close */
		cowchain_layer_close(l, NULL);
		return ret;
	}
	/* the in-memory index still names the old blocks: drop it unwritten */
	l->failed = true;
	return cowchain_layer_close(l, err);
}

int cowchain_layer_set_autoreset(const char *path, bool on, struct cowchain_error *err)
{
	struct cowchain_layer *l;
	int r, r2;

	r = cowchain_layer_open(path, COWCHAIN_OPEN_WRITE, &l, err);
	if (r)
		return r;
	if (!!(l->sb.flags & COWCHAIN_SB_AUTORESET) != on)
		r = cowchain_layer_set_flags(l, on ? COWCHAIN_SB_AUTORESET : 0,
					     on ? 0 : COWCHAIN_SB_AUTORESET, err);
	r2 = cowchain_layer_close(l, r ? NULL : err);
	return r ? r : r2;
}

int cowchain_layer_grow(const char *path, u64 size, struct cowchain_error *err)
{
	struct cowchain_layer *l;
	struct cowchain_sb t;
	struct cowchain_err ferr;
	struct stat st;
	u64 cap, dsize;
	int r, r2;

	r = cowchain_layer_open(path, COWCHAIN_OPEN_WRITE, &l, err);
	if (r)
		return r;
	if (size < l->sb.virtual_size) {
		r = cc_failf(err, -EINVAL, path,
			     "cannot shrink from %llu to %llu bytes (only growing is supported)",
			     (unsigned long long)l->sb.virtual_size, (unsigned long long)size);
		goto out;
	}
	if (size == l->sb.virtual_size)
		goto out;
	t = l->sb;
	t.virtual_size = size;
	if (cowchain_layout(&t, l->sb.journal_blocks, &ferr)) {
		r = cc_failf(err, -EINVAL, path, "%s", ferr.msg);
		goto out;
	}
	if (t.root_blocks > l->sb.root_blocks) {
		r = cc_failf(err, -EFBIG, path,
			     "the root table covers %llu bytes (%llu root blocks); %llu bytes need %llu: "
			     "make a child with 'cowchain create --parent' and a larger --size instead",
			     (unsigned long long)(l->sb.root_blocks << (23 + l->sb.cluster_shift)),
			     (unsigned long long)l->sb.root_blocks, (unsigned long long)size,
			     (unsigned long long)t.root_blocks);
		goto out;
	}
	cap = l->sb.data_start + (t.capacity - t.data_start);
	if (fstat(l->fd, &st)) {
		r = cc_fail(err, -errno, "cannot stat '%s': %s", path, strerror(errno));
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		if ((u64)st.st_size < cap << l->sb.cluster_shift &&
		    ftruncate(l->fd, (off_t)(cap << l->sb.cluster_shift))) {
			r = cc_fail(err, -errno, "cannot grow '%s': %s", path, strerror(errno));
			goto out;
		}
		dsize = cap << l->sb.cluster_shift;
	} else {
		dsize = l->dev_blocks << COWCHAIN_BLOCK_SHIFT;
		if (cap > dsize >> l->sb.cluster_shift)
			cap = dsize >> l->sb.cluster_shift;
	}
	if (cap < l->sb.capacity)
		cap = l->sb.capacity;
	t = l->sb;
	t.virtual_size = size;
	t.capacity = cap;
	if (cowchain_sb_validate(&t, dsize >> COWCHAIN_BLOCK_SHIFT, &ferr)) {
		r = cc_failf(err, -EINVAL, path, "%s", ferr.msg);
		goto out;
	}
	l->sb.virtual_size = size;
	l->sb.capacity = cap;
	r = cc_sb_write(l, err);
	if (r)
		l->failed = true;
out:
	r2 = cowchain_layer_close(l, r ? NULL : err);
	return r ? r : r2;
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
