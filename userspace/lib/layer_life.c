// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Whole-layer changes on an open layer handle, for the lifecycle
 * operations (lifecycle.c works through these and never touches the
 * layer's internals): empty the layer, grow its virtual size, and drop a
 * handle without writing.
 *
 * Empty, in order (FORMAT.md 8, "AUTORESET"):
 *  1. bump the generation (superblock write) before anything changes, so
 *     no child made from the old contents can ever bind to the new ones;
 *  2. set every root pointer to 0 and commit (one journal transaction per
 *     252 root blocks), then checkpoint (roots home, superblock last);
 *  3. punch the cluster area out of a file (every cluster is free now).
 * A crash before 2's transaction is durable leaves the old contents; after
 * it, the empty layer.  The cost is the root table, not the disk size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "internal.h"

int cowchain_layer_empty(struct cowchain_layer *l, struct cowchain_error *err)
{
	struct stat st;
	u64 r;
	int ret;

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
	/*
	 * Either way the in-memory index is no longer the disk's (it still
	 * names the old blocks, or a write failed): only close is allowed now,
	 * and it writes nothing.
	 */
	l->failed = true;
	return ret;
}

int cowchain_layer_set_size(struct cowchain_layer *l, u64 size, struct cowchain_error *err)
{
	struct cowchain_sb t;
	struct cowchain_err ferr;
	struct stat st;
	u64 cap, dsize;
	int r;

	if (!l->writable)
		return cc_failf(err, -EROFS, l->path, "layer is open read-only");
	if (size < l->sb.virtual_size)
		return cc_failf(err, -EINVAL, l->path,
				"cannot shrink from %llu to %llu bytes (only growing is supported)",
				(unsigned long long)l->sb.virtual_size, (unsigned long long)size);
	if (size == l->sb.virtual_size)
		return 0;
	t = l->sb;
	t.virtual_size = size;
	if (cowchain_layout(&t, l->sb.journal_blocks, &ferr))
		return cc_failf(err, -EINVAL, l->path, "%s", ferr.msg);
	if (t.root_blocks > l->sb.root_blocks)
		return cc_failf(err, -EFBIG, l->path,
				"the root table covers %llu bytes (%llu root blocks); %llu bytes need %llu: "
				"make a child with 'cowchain create --parent' and a larger --size instead",
				(unsigned long long)(l->sb.root_blocks << (23 + l->sb.cluster_shift)),
				(unsigned long long)l->sb.root_blocks, (unsigned long long)size,
				(unsigned long long)t.root_blocks);
	cap = l->sb.data_start + (t.capacity - t.data_start);
	if (fstat(l->fd, &st))
		return cc_fail(err, -errno, "cannot stat '%s': %s", l->path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		if ((u64)st.st_size < cap << l->sb.cluster_shift &&
		    ftruncate(l->fd, (off_t)(cap << l->sb.cluster_shift)))
			return cc_fail(err, -errno, "cannot grow '%s': %s", l->path, strerror(errno));
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
	if (cowchain_sb_validate(&t, dsize >> COWCHAIN_BLOCK_SHIFT, &ferr))
		return cc_failf(err, -EINVAL, l->path, "%s", ferr.msg);
	l->sb.virtual_size = size;
	l->sb.capacity = cap;
	r = cc_sb_write(l, err);
	if (r)
		l->failed = true;
	return r;
}

void cowchain_layer_abandon(struct cowchain_layer *l)
{
	if (!l)
		return;
	l->failed = true;
	cowchain_layer_close(l, NULL);
}
