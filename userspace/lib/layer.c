// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Opening and closing one layer (FORMAT.md 9), and what callers may learn
 * about it.
 *
 * Open, in order:
 *  1. open the file (O_RDONLY unless writing; a writer takes an exclusive
 *     flock so two writers can never interleave commits);
 *  2. read both superblock slots, keep the valid one with the higher seq;
 *  3. refuse writable use of SEALED / NEEDS_CHECK / MERGING layers;
 *  4. replay the journal (a writer checkpoints what it replayed);
 *  5. load and validate the whole index, deriving the used clusters.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include "internal.h"
#include "merge.h"

static void layer_free(struct cowchain_layer *l)
{
	u64 r;

	if (!l)
		return;
	if (l->root) {
		for (r = 0; r < l->sb.root_blocks; r++)
			cc_block_free(l->root[r]);
		free(l->root);
	}
	cc_btab_free(&l->blocks);
	cc_ctab_free(&l->used);
	free(l->pending_free);
	free(l->ckpt);
	free(l->overlay);
	if (l->fd >= 0)
		close(l->fd);
	free(l->path);
	free(l);
}

static int device_size(struct cowchain_layer *l, u64 *size, struct cowchain_error *err)
{
	struct stat st;

	if (fstat(l->fd, &st))
		return cc_fail(err, -errno, "cannot stat '%s': %s", l->path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		*size = (u64)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(l->fd, BLKGETSIZE64, size))
			return cc_fail(err, -errno, "cannot get the size of '%s': %s",
				       l->path, strerror(errno));
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return cc_fail(err, -EISDIR, "cannot open '%s': %s", l->path, strerror(EISDIR));
	return cc_fail(err, -EINVAL, "cannot open '%s': not a regular file or block device",
		       l->path);
}

static int read_superblock(struct cowchain_layer *l, struct cowchain_error *err)
{
	struct cowchain_sb_disk *d = malloc(sizeof(*d));
	struct cowchain_sb *s = malloc(2 * sizeof(*s));
	struct cowchain_err ferr[2];
	int ok[2], slot, r = 0;
	u64 seq[2] = { 0, 0 };

	if (!d || !s) {
		r = cc_failf(err, -ENOMEM, l->path, "out of memory");
		goto out;
	}
	for (slot = 0; slot < 2; slot++) {
		int rr = cc_pread(l->fd, d, sizeof(*d), (u64)slot << COWCHAIN_BLOCK_SHIFT);

		if (rr) {
			snprintf(ferr[slot].msg, sizeof(ferr[slot].msg), "%s",
				 rr == -ENODATA ? "truncated" : strerror(-rr));
			ok[slot] = rr;
			continue;
		}
		seq[slot] = le64_to_cpu(d->hdr.key);
		ok[slot] = cowchain_sb_unpack(d, (u64)slot, l->dev_blocks, &s[slot], &ferr[slot]);
	}
	if (ok[0] && ok[1]) {
		/* Report the more telling error: a version/feature refusal wins. */
		if (ok[0] == -EOPNOTSUPP || ok[1] == -EOPNOTSUPP) {
			slot = ok[0] == -EOPNOTSUPP ? 0 : 1;
			r = cc_failf(err, -EOPNOTSUPP, l->path, "%s", ferr[slot].msg);
		} else {
			r = cc_failf(err, -EUCLEAN, l->path,
				     "no valid superblock (slot 0: %s; slot 1: %s)",
				     ferr[0].msg, ferr[1].msg);
		}
		goto out;
	}
	if (ok[0])
		slot = 1;
	else if (ok[1])
		slot = 0;
	else
		slot = s[1].seq > s[0].seq ? 1 : 0;
	/*
	 * A newer slot that passed its checksum but needs a feature or
	 * version this build lacks must not be silently replaced by the
	 * older one: that would roll back what a newer writer did.
	 */
	if (ok[!slot] == -EOPNOTSUPP && seq[!slot] > s[slot].seq) {
		r = cc_failf(err, -EOPNOTSUPP, l->path, "%s", ferr[!slot].msg);
		goto out;
	}
	l->sb = s[slot];
out:
	free(d);
	free(s);
	return r;
}

static int check_writable(struct cowchain_layer *l, struct cowchain_error *err)
{
	if (cowchain_sb_ro_only(&l->sb))
		return cc_failf(err, -EROFS, l->path,
				"unknown read-only-compatible features 0x%x: read-only use only",
				l->sb.ro_compat);
	if ((l->sb.flags & COWCHAIN_SB_SEALED) && !l->nobump)
		return cc_failf(err, -EROFS, l->path,
				"layer is sealed (it has children) and is never written");
	if (l->sb.flags & COWCHAIN_SB_NEEDS_CHECK)
		return cc_failf(err, -EROFS, l->path,
				"layer needs 'cowchain check' before it can be written");
	if ((l->sb.flags & COWCHAIN_SB_MERGING) && !l->merging)
		return cc_failf(err, -EBUSY, l->path, "a merge is in progress on this layer");
	return 0;
}

int cowchain_layer_open(const char *path, unsigned flags,
			struct cowchain_layer **out, struct cowchain_error *err)
{
	struct cowchain_layer *l = calloc(1, sizeof(*l));
	u64 size;
	int r;

	*out = NULL;
	if (!l)
		return cc_fail(err, -ENOMEM, "out of memory");
	l->fd = -1;
	l->path = strdup(path);
	if (!l->path) {
		free(l);
		return cc_fail(err, -ENOMEM, "out of memory");
	}
	l->writable = flags & (COWCHAIN_OPEN_WRITE | COWCHAIN_OPEN_NOBUMP | COWCHAIN_OPEN_MERGE);
	l->nobump = flags & (COWCHAIN_OPEN_NOBUMP | COWCHAIN_OPEN_MERGE);
	l->merging = flags & COWCHAIN_OPEN_MERGE;
	l->fd = open(path, (l->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (l->fd < 0) {
		r = cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
		goto fail;
	}
	r = device_size(l, &size, err);
	if (r)
		goto fail;
	if (size < 2 * COWCHAIN_BLOCK_SIZE) {
		r = cc_fail(err, -EUCLEAN, "cannot open '%s': too small to be a cowchain layer (%llu bytes)",
			    path, (unsigned long long)size);
		goto fail;
	}
	if (l->writable && flock(l->fd, LOCK_EX | LOCK_NB)) {
		r = errno == EWOULDBLOCK
			? cc_failf(err, -EBUSY, path, "in use by another writer")
			: cc_fail(err, -errno, "cannot lock '%s': %s", path, strerror(errno));
		goto fail;
	}
	if (l->writable && (flags & COWCHAIN_OPEN_UNATTACHED)) {
		r = cowchain_check_unattached(path, err);
		if (r)
			goto fail;
	}
	l->dev_blocks = size >> COWCHAIN_BLOCK_SHIFT;
	r = read_superblock(l, err);
	if (r)
		goto fail;
	if (l->writable) {
		r = check_writable(l, err);
		if (r)
			goto fail;
	}
	l->vclusters = cowchain_vclusters(&l->sb);
	l->bpc = cowchain_cluster_blocks(&l->sb);
	l->subblocks = cowchain_subblocks(&l->sb);
	l->alloc_cursor = l->sb.data_start;
	r = cc_journal_replay(l, err);
	if (r)
		goto fail;
	r = cc_index_load(l, err);
	if (r)
		goto fail;
	free(l->overlay);
	l->overlay = NULL;
	l->noverlay = l->cap_overlay = 0;
	*out = l;
	return 0;
fail:
	if (err)
		err->code = r;
	layer_free(l);
	return r;
}

int cowchain_layer_close(struct cowchain_layer *l, struct cowchain_error *err)
{
	int r = 0;

	if (!l)
		return 0;
	if (l->writable && !l->failed) {
		r = cowchain_layer_commit(l, err);
		if (!r)
			r = cowchain_layer_checkpoint(l, err);
	}
	layer_free(l);
	return r;
}

int cowchain_layer_set_flags(struct cowchain_layer *l, u32 set, u32 clear,
			     struct cowchain_error *err)
{
	if (!l->writable)
		return cc_failf(err, -EROFS, l->path, "layer is open read-only");
	l->sb.flags = (l->sb.flags | set) & ~clear;
	return cc_sb_write(l, err);
}

const struct cowchain_sb *cowchain_layer_sb(const struct cowchain_layer *l)
{
	return &l->sb;
}

const char *cowchain_layer_path(const struct cowchain_layer *l)
{
	return l->path;
}

bool cowchain_layer_writable(const struct cowchain_layer *l)
{
	return l->writable;
}

int cowchain_layer_lookup(const struct cowchain_layer *l, u64 c, struct cowchain_entry *e)
{
	struct cc_block *b = cc_leaf_of(l, c);

	if (!b)
		return -ENOENT;
	cowchain_entry_unpack(&b->img->leaf.entry[c & (COWCHAIN_LEAF_ENTRIES - 1)], e);
	return cowchain_entry_empty(e) ? -ENOENT : 0;
}

int cowchain_layer_foreach_entry(const struct cowchain_layer *l,
				 cowchain_entry_fn fn, void *ctx)
{
	struct cc_block **v;
	size_t n, k;
	u32 i;
	int r = 0;

	v = cc_blocks_sorted(l, COWCHAIN_BLK_LEAF, &n);
	if (!v)
		return -ENOMEM;
	for (k = 0; k < n && !r; k++)
		for (i = 0; i < COWCHAIN_LEAF_ENTRIES && !r; i++) {
			struct cowchain_entry e;

			cowchain_entry_unpack(&v[k]->img->leaf.entry[i], &e);
			if (!cowchain_entry_empty(&e))
				r = fn(ctx, v[k]->key + i, &e);
		}
	free(v);
	return r;
}

int cowchain_layer_foreach_block(const struct cowchain_layer *l,
				 cowchain_block_fn fn, void *ctx)
{
	int kind, r = 0;
	size_t n, k;
	u64 i;

	for (i = 0; i < l->sb.root_blocks && !r; i++)
		r = fn(ctx, COWCHAIN_BLK_ROOT, l->root[i]->blocknr, l->root[i]->key,
		       l->root[i]->img);
	for (kind = COWCHAIN_BLK_MAP; kind <= COWCHAIN_BLK_LEAF && !r; kind++) {
		struct cc_block **v = cc_blocks_sorted(l, kind, &n);

		if (!v)
			return -ENOMEM;
		for (k = 0; k < n && !r; k++)
			r = fn(ctx, kind, v[k]->blocknr, v[k]->key, v[k]->img);
		free(v);
	}
	return r;
}

static int stats_entry(void *ctx, u64 c, const struct cowchain_entry *e)
{
	struct cowchain_layer_stats *st = ctx;

	(void)c;
	st->entries++;
	if (e->phys)
		st->data_clusters++;
	st->present_subblocks += (u64)__builtin_popcountll(e->present);
	st->zero_subblocks += (u64)__builtin_popcountll(e->zero);
	return 0;
}

static int stats_block(void *ctx, enum cowchain_block_kind kind, u64 nr, u64 key,
		       const void *img)
{
	struct cowchain_layer_stats *st = ctx;

	(void)nr, (void)key, (void)img;
	if (kind == COWCHAIN_BLK_MAP)
		st->map_blocks++;
	else if (kind == COWCHAIN_BLK_LEAF)
		st->leaf_blocks++;
	return 0;
}

int cowchain_layer_stats(const struct cowchain_layer *l,
			 struct cowchain_layer_stats *st, struct cowchain_error *err)
{
	struct stat sst;
	size_t i;
	int r;

	memset(st, 0, sizeof(*st));
	r = cowchain_layer_foreach_entry(l, stats_entry, st);
	if (!r)
		r = cowchain_layer_foreach_block(l, stats_block, st);
	if (r)
		return cc_failf(err, r, l->path, "cannot gather statistics: %s", strerror(-r));
	for (i = 0; i < l->used.nslots; i++)
		if (l->used.slots[i].used && l->used.slots[i].is_meta)
			st->meta_clusters++;
	st->free_clusters = l->sb.capacity - l->sb.data_start - l->used.count;
	st->replayed = l->replayed;
	if (fstat(l->fd, &sst))
		return cc_fail(err, -errno, "cannot stat '%s': %s", l->path, strerror(errno));
	st->file_size = (u64)sst.st_size;
	st->disk_usage = (u64)sst.st_blocks * 512;
	return 0;
}
