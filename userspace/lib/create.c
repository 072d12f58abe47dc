// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Creating layers: a root, a child of a cowchain parent, a root over a raw
 * base.  FORMAT.md 2 (layout), 4 (superblock), 8 (sealing).
 *
 * Order for a child:
 *  1. check every input (parent opens and validates, target is not the
 *     parent, target does not exist unless --force);
 *  2. create the target file (O_EXCL unless forced);
 *  3. seal the parent (superblock write with SEALED);
 *  4. write the child's root table, then its superblock (slot 0, seq 0),
 *     then fdatasync the file and its directory.
 * A crash between 3 and 4 leaves a sealed parent without a child: safe,
 * never a child whose parent can still change.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include "internal.h"

/* Directory part of path ("." when it has none); caller frees. */
char *cc_dirname(const char *path)
{
	char *copy = strdup(path), *d;

	if (!copy)
		return NULL;
	d = strdup(dirname(copy));
	free(copy);
	return d;
}

/*
 * Path of target relative to directory dir (both must exist): a locator.
 * Falls back to the absolute path.  Returns malloc'd string or NULL.
 */
static char *relative_path(const char *target, const char *dir)
{
	char *t = realpath(target, NULL), *d = realpath(dir, NULL), *out = NULL;
	const char *tp, *dp;
	size_t ups = 0, i;

	if (!t || !d)
		goto out;
	/* Skip the common leading components. */
	tp = t + 1;
	dp = d + 1;
	for (;;) {
		size_t tl = strcspn(tp, "/"), dl = strcspn(dp, "/");

		if (!dl || tl != dl || strncmp(tp, dp, tl) || !tp[tl])
			break;
		tp += tl + (tp[tl] == '/');
		dp += dl + (dp[dl] == '/');
	}
	for (i = 0; dp[i]; i++)
		if (i == 0 || dp[i - 1] == '/')
			ups++;
	out = malloc(ups * 3 + strlen(tp) + 1);
	if (!out)
		goto out;
	out[0] = 0;
	for (i = 0; i < ups; i++)
		strcat(out, "../");
	strcat(out, tp);
out:
	free(t);
	free(d);
	return out;
}

int cc_set_locator(struct cowchain_sb *sb, const char *target, const char *child,
		   struct cowchain_error *err)
{
	char *dir = cc_dirname(child), *rel;
	size_t n;

	if (!dir)
		return cc_fail(err, -ENOMEM, "out of memory");
	rel = relative_path(target, dir);
	free(dir);
	if (!rel)
		return cc_fail(err, -errno ? -errno : -ENOMEM,
			       "cannot compute a locator for '%s': %s", target, strerror(errno));
	n = strlen(rel);
	if (n > COWCHAIN_LOCATOR_MAX) {
		free(rel);
		return cc_fail(err, -ENAMETOOLONG, "path of '%s' is longer than %u bytes",
			       target, COWCHAIN_LOCATOR_MAX);
	}
	memset(sb->locator, 0, sizeof(sb->locator));
	memcpy(sb->locator, rel, n);
	sb->locator_len = (u32)n;
	free(rel);
	return 0;
}

static int raw_size(const char *path, u64 *size, struct cowchain_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st))
		r = cc_fail(err, -errno, "cannot stat '%s': %s", path, strerror(errno));
	else if (S_ISREG(st.st_mode))
		*size = (u64)st.st_size;
	else if (!S_ISBLK(st.st_mode))
		r = cc_failf(err, -EINVAL, path, "not a regular file or block device");
	else if (ioctl(fd, BLKGETSIZE64, size))
		r = cc_fail(err, -errno, "cannot get the size of '%s': %s", path, strerror(errno));
	close(fd);
	return r;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int write_layer(int fd, const char *path, struct cowchain_sb *sb,
		       struct cowchain_error *err)
{
	u8 *blk = calloc(1, COWCHAIN_BLOCK_SIZE);
	u64 r;
	int ret = 0;

	if (!blk)
		return cc_fail(err, -ENOMEM, "out of memory");
	for (r = 0; r < sb->root_blocks && !ret; r++) {
		u64 nr = sb->root_start + r;

		memset(blk, 0, COWCHAIN_BLOCK_SIZE);
		cowchain_header_init(blk, COWCHAIN_ROOT_MAGIC, nr, sb->uuid,
				     r << COWCHAIN_ROOT_SPAN_SHIFT, 0);
		cowchain_block_seal(blk, nr);
		ret = cc_pwrite(fd, blk, COWCHAIN_BLOCK_SIZE, nr << COWCHAIN_BLOCK_SHIFT);
	}
	if (!ret && fdatasync(fd))
		ret = -errno;
	if (!ret) {
		sb->seq = 0;
		cowchain_sb_pack(sb, (struct cowchain_sb_disk *)blk);
		ret = cc_pwrite(fd, blk, COWCHAIN_BLOCK_SIZE, 0);
	}
	if (!ret && fsync(fd))
		ret = -errno;
	free(blk);
	if (ret)
		return cc_fail(err, ret, "cannot write '%s': %s", path, strerror(-ret));
	return 0;
}

/* Zero the header regions of a block device (a file is made sparse instead). */
static int zero_header(int fd, const struct cowchain_sb *sb)
{
	u64 end = sb->data_start << (sb->cluster_shift - COWCHAIN_BLOCK_SHIFT), b;
	u8 *z = calloc(1, 64 * COWCHAIN_BLOCK_SIZE);
	int r = 0;

	if (!z)
		return -ENOMEM;
	for (b = 0; b < end && !r; b += 64) {
		u64 n = end - b < 64 ? end - b : 64;

		r = cc_pwrite(fd, z, n * COWCHAIN_BLOCK_SIZE, b << COWCHAIN_BLOCK_SHIFT);
	}
	free(z);
	return r;
}

int cowchain_create(const char *path, const struct cowchain_create_opts *o,
		    struct cowchain_error *err)
{
	struct cowchain_layer *parent = NULL;
	struct cowchain_sb sb;
	struct cowchain_err ferr;
	struct stat st;
	int fd = -1, r;
	bool blkdev = false, existed = false, made = false, sealed = false;
	char *dir;

	memset(&sb, 0, sizeof(sb));
	if (o->parent && o->base)
		return cc_fail(err, -EINVAL, "a layer has either a cowchain parent or a raw base, not both");
	sb.version = COWCHAIN_VERSION;
	sb.generation = 1;
	sb.journal_seq = 1;
	sb.create_time = (u64)time(NULL);
	sb.cluster_shift = o->cluster_shift ? o->cluster_shift : COWCHAIN_DEFAULT_CLUSTER_SHIFT;
	sb.subblock_shift = o->subblock_shift ? o->subblock_shift : COWCHAIN_DEFAULT_SUBBLOCK_SHIFT;
	sb.virtual_size = o->size;
	r = cc_random(sb.uuid, sizeof(sb.uuid));
	if (r)
		return cc_fail(err, r, "cannot get random bytes: %s", strerror(-r));
	sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x40;	/* RFC 4122 version 4 */
	sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;

	if (!stat(path, &st)) {
		existed = true;
		if (!o->force)
			return cc_failf(err, -EEXIST, path, "already exists (use --force to overwrite)");
		blkdev = S_ISBLK(st.st_mode);
		if ((o->parent && same_file(path, o->parent)) || (o->base && same_file(path, o->base)))
			return cc_failf(err, -EINVAL, path, "refusing to overwrite the parent (or base) with its own child");
	}

	if (o->parent) {
		const struct cowchain_sb *ps;

		r = cowchain_layer_open(o->parent, COWCHAIN_OPEN_NOBUMP, &parent, err);
		if (r)
			return r;
		ps = cowchain_layer_sb(parent);
		if ((o->cluster_shift && o->cluster_shift != ps->cluster_shift) ||
		    (o->subblock_shift && o->subblock_shift != ps->subblock_shift)) {
			r = cc_failf(err, -EINVAL, path, "a child inherits its parent's cluster and sub-block size");
			goto out;
		}
		if (o->size && o->size < ps->virtual_size) {
			r = cc_failf(err, -EINVAL, path, "size %llu is smaller than the parent's %llu",
				     (unsigned long long)o->size,
				     (unsigned long long)ps->virtual_size);
			goto out;
		}
		sb.cluster_shift = ps->cluster_shift;
		sb.subblock_shift = ps->subblock_shift;
		sb.virtual_size = o->size ? o->size : ps->virtual_size;
		sb.parent_kind = COWCHAIN_PARENT_LAYER;
		memcpy(sb.parent_uuid, ps->uuid, COWCHAIN_UUID_SIZE);
		sb.parent_generation = ps->generation;
		r = cc_set_locator(&sb, o->parent, path, err);
		if (r)
			goto out;
	} else if (o->base) {
		u64 bsize;

		r = raw_size(o->base, &bsize, err);
		if (r)
			return r;
		if (!o->size) {
			if (!bsize)
				return cc_failf(err, -EINVAL, o->base, "raw base is empty; give --size");
			sb.virtual_size = (bsize + 511) & ~511ull;
		}
		sb.parent_kind = COWCHAIN_PARENT_RAW;
		r = cc_set_locator(&sb, o->base, path, err);
		if (r)
			return r;
	} else if (!o->size) {
		return cc_fail(err, -EINVAL, "a root layer needs a size");
	}

	r = cowchain_layout(&sb, o->journal_blocks ? o->journal_blocks
				: COWCHAIN_DEFAULT_JOURNAL_BLOCKS, &ferr);
	if (!r)
		r = cowchain_sb_validate(&sb, 0, &ferr);
	if (r) {
		r = cc_failf(err, -EINVAL, path, "%s", ferr.msg);
		goto out;
	}

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (o->force ? 0 : O_EXCL), 0644);
	if (fd < 0) {
		r = cc_fail(err, -errno, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	/* from here on a failure removes the file if we created it */
	made = !existed;
	if (blkdev) {
		u64 dsize, cap;

		if (ioctl(fd, BLKGETSIZE64, &dsize)) {
			r = cc_fail(err, -errno, "cannot get the size of '%s': %s", path, strerror(errno));
			goto out;
		}
		cap = dsize >> sb.cluster_shift;
		if (cap < sb.capacity)
			sb.capacity = cap;
		if (sb.capacity <= sb.data_start) {
			r = cc_failf(err, -ENOSPC, path, "device too small for the layer's metadata");
			goto out;
		}
		r = zero_header(fd, &sb);
		if (r) {
			r = cc_fail(err, r, "cannot write '%s': %s", path, strerror(-r));
			goto out;
		}
	} else if (ftruncate(fd, 0) || ftruncate(fd, (off_t)cowchain_layout_bytes(&sb))) {
		r = cc_fail(err, -errno, "cannot size '%s': %s", path, strerror(errno));
		goto out;
	}

	if (parent && !(cowchain_layer_sb(parent)->flags & COWCHAIN_SB_SEALED)) {
		r = cowchain_layer_set_flags(parent, COWCHAIN_SB_SEALED, 0, err);
		if (r)
			goto out;
		sealed = true;
	}
	r = write_layer(fd, path, &sb, err);
	if (r)
		goto out;
	dir = cc_dirname(path);
	if (dir) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
out:
	if (fd >= 0)
		close(fd);
	if (r && made)
		unlink(path);
	if (r && sealed) {
		/* it had no child before (else it was sealed): undo the seal */
		struct cowchain_error e2;

		cowchain_layer_set_flags(parent, 0, COWCHAIN_SB_SEALED, &e2);
	}
	if (parent) {
		struct cowchain_error e2;
		int r2 = cowchain_layer_close(parent, &e2);

		if (!r && r2) {
			*err = e2;
			r = r2;
		}
	}
	if (err && r)
		err->code = r;
	return r;
}
