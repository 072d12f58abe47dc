// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Journal I/O for one layer: replay at open, commit, checkpoint, and the
 * superblock write.  The rules live in kernel/journal.c (replay, placement,
 * descriptors); this file only moves blocks.  FORMAT.md 7.
 *
 * Durability, in the order the code relies on it:
 *  1. commit: fdatasync the file (every data write the new metadata points
 *     at is durable), write descriptor + images in one pwrite, fdatasync
 *     (the transaction is durable).  A crash before the second fdatasync
 *     completes leaves a torn or absent transaction that replay ignores.
 *  2. checkpoint: write the committed images home (copies taken at commit
 *     time, never the live, possibly newer, in-memory blocks), fdatasync,
 *     then the superblock with the new journal head.  Until that superblock
 *     is durable, replay rewrites every home from the journal.
 *  3. superblock: fdatasync before (so everything it depends on is on
 *     disk), write slot seq & 1, fdatasync after.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

static int pending_put(struct cc_pending **v, size_t *n, size_t *cap, u64 home,
		       const void *img)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if ((*v)[i].home == home)
			break;
	if (i == *n) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			struct cc_pending *nv = realloc(*v, nc * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			*v = nv;
			*cap = nc;
		}
		(*n)++;
	}
	(*v)[i].home = home;
	memcpy((*v)[i].img, img, COWCHAIN_BLOCK_SIZE);
	return 0;
}

int cc_read_block(struct cowchain_layer *l, u64 blocknr, void *buf,
		  struct cowchain_error *err)
{
	size_t i;
	int r;

	for (i = 0; i < l->noverlay; i++)
		if (l->overlay[i].home == blocknr) {
			memcpy(buf, l->overlay[i].img, COWCHAIN_BLOCK_SIZE);
			return 0;
		}
	if (blocknr >= l->dev_blocks)
		return cc_failf(err, -EUCLEAN, l->path,
				"block %llu lies past the end of the file (%llu blocks)",
				(unsigned long long)blocknr,
				(unsigned long long)l->dev_blocks);
	r = cc_pread(l->fd, buf, COWCHAIN_BLOCK_SIZE, blocknr << COWCHAIN_BLOCK_SHIFT);
	if (r == -ENODATA)
		return cc_failf(err, -EUCLEAN, l->path, "block %llu is truncated",
				(unsigned long long)blocknr);
	if (r)
		return cc_failf(err, r, l->path, "cannot read block %llu: %s",
				(unsigned long long)blocknr, strerror(-r));
	return 0;
}

static int fsync_fd(struct cowchain_layer *l, struct cowchain_error *err)
{
	if (fdatasync(l->fd))
		return cc_failf(err, -errno, l->path, "cannot flush: %s", strerror(errno));
	return 0;
}

int cc_sb_write(struct cowchain_layer *l, struct cowchain_error *err)
{
	struct cowchain_sb_disk d;
	int r;

	r = fsync_fd(l, err);
	if (r)
		return r;
	/*
	 * Into the slot the current superblock is not in; a write that fails
	 * (or whose flush does) leaves seq as it was, so that the next one
	 * goes into the same slot, never over the last good superblock (as the
	 * target's write_sb).
	 */
	l->sb.seq++;
	cowchain_sb_pack(&l->sb, &d);
	r = cc_pwrite(l->fd, &d, sizeof(d), (l->sb.seq & 1) << COWCHAIN_BLOCK_SHIFT);
	if (r) {
		l->sb.seq--;
		return cc_failf(err, r, l->path, "cannot write the superblock: %s", strerror(-r));
	}
	r = fsync_fd(l, err);
	if (r)
		l->sb.seq--;
	return r;
}

/* ---- replay ---------------------------------------------------------- */

struct replay_ctx {
	struct cowchain_layer *l;
	struct cowchain_error *err;
};

static int replay_read(void *ctx, u64 blocknr, void *buf)
{
	struct replay_ctx *rc = ctx;
	int r;

	if (blocknr >= rc->l->dev_blocks)
		return -EUCLEAN;
	r = cc_pread(rc->l->fd, buf, COWCHAIN_BLOCK_SIZE, blocknr << COWCHAIN_BLOCK_SHIFT);
	return r == -ENODATA ? -EUCLEAN : r;
}

static int replay_apply(void *ctx, u64 home, const void *image)
{
	struct replay_ctx *rc = ctx;
	struct cowchain_layer *l = rc->l;

	return pending_put(&l->overlay, &l->noverlay, &l->cap_overlay, home, image);
}

static int write_home(struct cowchain_layer *l, const struct cc_pending *v, size_t n,
		      struct cowchain_error *err)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		r = cc_pwrite(l->fd, v[i].img, COWCHAIN_BLOCK_SIZE,
			      v[i].home << COWCHAIN_BLOCK_SHIFT);
		if (r)
			return cc_failf(err, r, l->path, "cannot write block %llu: %s",
					(unsigned long long)v[i].home, strerror(-r));
	}
	return 0;
}

int cc_journal_replay(struct cowchain_layer *l, struct cowchain_error *err)
{
	struct replay_ctx rc = { l, err };
	struct cowchain_journal_io io = { &rc, replay_read, replay_apply };
	struct cowchain_journal_pos end;
	struct cowchain_err ferr = { { 0 } };
	void *scratch = malloc(2 * COWCHAIN_BLOCK_SIZE);
	u64 replayed = 0;
	int r;

	if (!scratch)
		return cc_failf(err, -ENOMEM, l->path, "out of memory replaying the journal");
	r = cowchain_journal_replay(&l->sb, &io, scratch, &end, &replayed, &ferr);
	free(scratch);
	if (r)
		return cc_failf(err, r, l->path, "journal replay: %s",
				ferr.msg[0] ? ferr.msg : strerror(-r));
	l->replayed = replayed;
	l->jhead = l->jtail = end.pos;
	l->jseq_head = l->jseq = end.seq;
	l->jempty = true;
	if (!l->writable || !replayed)
		return 0;
	/* A writer checkpoints what it replayed before changing anything. */
	r = write_home(l, l->overlay, l->noverlay, err);
	if (r)
		return r;
	l->sb.journal_head = end.pos;
	l->sb.journal_seq = end.seq;
	return cc_sb_write(l, err);
}

/* ---- commit and checkpoint ------------------------------------------ */

int cowchain_layer_checkpoint(struct cowchain_layer *l, struct cowchain_error *err)
{
	int r;

	if (!l->writable || (l->jempty && l->sb.journal_head == l->jtail &&
			     l->sb.journal_seq == l->jseq))
		return 0;
	r = write_home(l, l->ckpt, l->nckpt, err);
	if (r)
		return r;
	l->sb.journal_head = l->jtail;
	l->sb.journal_seq = l->jseq;
	r = cc_sb_write(l, err);	/* flushes the home writes first */
	if (r)
		return r;
	l->nckpt = 0;
	l->jhead = l->jtail;
	l->jseq_head = l->jseq;
	l->jempty = true;
	return 0;
}

static void seal_block(struct cowchain_layer *l, struct cc_block *b)
{
	u32 i, used = 0;

	if (b->kind == COWCHAIN_BLK_LEAF) {
		for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
			const struct cowchain_entry_disk *d = &b->img->leaf.entry[i];

			if (d->phys || d->present || d->zero)
				used++;
		}
	} else {
		for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++)
			if (b->img->ptr.ptr[i])
				used++;
	}
	b->img->leaf.hdr.count = cpu_to_le32(used);
	(void)l;
	cowchain_block_seal(b->img, b->blocknr);
}

static int write_transaction(struct cowchain_layer *l, struct cc_block **v, u32 n,
			     struct cowchain_error *err)
{
	u64 homes[COWCHAIN_JDESC_MAX_ENTRIES];
	void *images[COWCHAIN_JDESC_MAX_ENTRIES];
	u8 *buf;
	s64 pos;
	u32 i;
	int r;

	for (i = 0; i < n; i++) {
		seal_block(l, v[i]);
		homes[i] = v[i]->blocknr;
		images[i] = v[i]->img;
	}
	pos = cowchain_journal_place(&l->sb, l->jhead, l->jtail, l->jempty, n);
	if (pos == -ENOSPC) {
		r = cowchain_layer_checkpoint(l, err);
		if (r)
			return r;
		pos = cowchain_journal_place(&l->sb, l->jhead, l->jtail, l->jempty, n);
	}
	if (pos < 0)
		return cc_failf(err, (int)pos, l->path,
				"no room in the journal for %u images", n);
	buf = malloc((size_t)(n + 1) * COWCHAIN_BLOCK_SIZE);
	if (!buf)
		return cc_failf(err, -ENOMEM, l->path, "out of memory committing");
	cowchain_jdesc_build((struct cowchain_jdesc_disk *)buf, &l->sb, (u64)pos,
			     l->jseq, homes, images, n);
	for (i = 0; i < n; i++)
		memcpy(buf + (size_t)(i + 1) * COWCHAIN_BLOCK_SIZE, v[i]->img,
		       COWCHAIN_BLOCK_SIZE);
	r = cc_pwrite(l->fd, buf, (size_t)(n + 1) * COWCHAIN_BLOCK_SIZE,
		      (l->sb.journal_start + (u64)pos) << COWCHAIN_BLOCK_SHIFT);
	free(buf);
	if (r)
		return cc_failf(err, r, l->path, "cannot write the journal: %s", strerror(-r));
	r = fsync_fd(l, err);
	if (r)
		return r;
	for (i = 0; i < n; i++) {
		if (pending_put(&l->ckpt, &l->nckpt, &l->cap_ckpt, v[i]->blocknr, v[i]->img))
			return cc_failf(err, -ENOMEM, l->path, "out of memory committing");
		v[i]->dirty = false;
	}
	l->jtail = (u64)pos + 1 + n;
	if (l->jtail >= l->sb.journal_blocks)
		l->jtail = 0;
	l->jseq++;
	l->jempty = false;
	return 0;
}

int cowchain_layer_commit(struct cowchain_layer *l, struct cowchain_error *err)
{
	struct cc_block **v, **dirty;
	size_t n, k, nd = 0, per;
	u64 r;
	int kind, ret = 0;

	if (!l->writable)
		return 0;
	dirty = malloc((l->blocks.count + l->sb.root_blocks + 1) * sizeof(*dirty));
	if (!dirty)
		return cc_failf(err, -ENOMEM, l->path, "out of memory committing");
	/* Children before parents: a partly applied multi-transaction commit
	 * never points at a block that was not written. */
	for (kind = COWCHAIN_BLK_LEAF; kind >= COWCHAIN_BLK_MAP; kind--) {
		v = cc_blocks_sorted(l, kind, &n);
		if (!v) {
			free(dirty);
			return cc_failf(err, -ENOMEM, l->path, "out of memory committing");
		}
		for (k = 0; k < n; k++)
			if (v[k]->dirty)
				dirty[nd++] = v[k];
		free(v);
	}
	for (r = 0; r < l->sb.root_blocks; r++)
		if (l->root[r]->dirty)
			dirty[nd++] = l->root[r];
	if (!nd) {
		free(dirty);
		return 0;
	}
	/* A transaction holds at most 252 images and must fit in the journal. */
	per = COWCHAIN_JDESC_MAX_ENTRIES;
	if (per > l->sb.journal_blocks - 1)
		per = (size_t)l->sb.journal_blocks - 1;
	ret = fsync_fd(l, err);		/* data before the metadata naming it */
	for (k = 0; !ret && k < nd; k += per) {
		size_t m = nd - k < per ? nd - k : per;

		ret = write_transaction(l, dirty + k, (u32)m, err);
	}
	free(dirty);
	if (ret) {
		l->failed = true;
		return ret;
	}
	cc_release_pending(l);
	return 0;
}

/* ---- first change ---------------------------------------------------- */

int cc_prepare_write(struct cowchain_layer *l, struct cowchain_error *err)
{
	if (!l->writable)
		return cc_failf(err, -EROFS, l->path, "layer is open read-only");
	if (l->failed)
		return cc_failf(err, -EIO, l->path, "an earlier write failed; reopen the layer");
	if (l->bumped || l->nobump)
		return 0;
	l->sb.generation++;
	l->bumped = true;
	return cc_sb_write(l, err);
}
