// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Reading and writing the virtual disk through a chain: FORMAT.md 6,
 * exactly.  This is the reference model the kernel target is tested
 * against, so it favours being obviously right over being fast: every
 * operation is cut at sub-block boundaries and each piece is resolved
 * from the top layer down.
 *
 * Two points FORMAT.md leaves implicit, decided here:
 *  - a byte at or past a layer's virtual_size reads as zero from that
 *    layer and every layer below it (a larger child over a smaller parent);
 *  - the last sub-block of a disk whose size is not a multiple of the
 *    sub-block is "fully covered" by a range reaching the end of the disk;
 *    the stored bytes past the end are zeros.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "chain_internal.h"

struct piece {
	enum cowchain_extent_kind kind;
	u32 layer;
	u64 offset;	/* DATA/BASE: byte in the file */
	u64 avail;	/* bytes from off sharing this resolution */
};

static u64 min64(u64 a, u64 b)
{
	return a < b ? a : b;
}

/* Resolve the byte at off (below the top's size), up to the end of its sub-block. */
static void resolve_byte(const struct cowchain_chain *c, u64 off, struct piece *p)
{
	const struct cowchain_sb *top = cowchain_layer_sb(c->layers[0]);
	u32 cs = top->cluster_shift, ss = top->subblock_shift;
	u64 vc = off >> cs, end = ((off >> ss) + 1) << ss;
	u32 bit = (u32)((off & ((1ull << cs) - 1)) >> ss);
	u32 d;

	for (d = 0; d < c->depth; d++) {
		const struct cowchain_layer *l = c->layers[d];
		struct cowchain_entry e;

		if (off >= l->sb.virtual_size)
			goto none;
		if (cowchain_layer_lookup(l, vc, &e))
			continue;
		if (e.present & (1ull << bit)) {
			p->kind = COWCHAIN_EXT_DATA;
			p->layer = d;
			p->offset = (e.phys << cs) + (off & ((1ull << cs) - 1));
			p->avail = min64(end, l->sb.virtual_size) - off;
			return;
		}
		if (e.zero & (1ull << bit)) {
			p->kind = COWCHAIN_EXT_ZERO;
			p->layer = d;
			p->offset = 0;
			p->avail = end - off;
			return;
		}
	}
	if (c->base_fd >= 0 && off < c->base_size &&
	    off < c->layers[c->depth - 1]->sb.virtual_size) {
		p->kind = COWCHAIN_EXT_BASE;
		p->layer = c->depth;
		p->offset = off;
		p->avail = min64(min64(end, c->base_size),
				 c->layers[c->depth - 1]->sb.virtual_size) - off;
		return;
	}
none:
	p->kind = COWCHAIN_EXT_NONE;
	p->layer = c->depth;
	p->offset = 0;
	p->avail = end - off;
}

static int check_range(const struct cowchain_chain *c, u64 off, u64 len,
		       struct cowchain_error *err)
{
	u64 size = cowchain_chain_size(c);

	if (off > size || len > size - off)
		return cc_failf(err, -EINVAL, c->layers[0]->path,
				"range %llu+%llu lies outside the virtual disk (%llu bytes)",
				(unsigned long long)off, (unsigned long long)len,
				(unsigned long long)size);
	return 0;
}

int cowchain_read(struct cowchain_chain *c, void *buf, u64 off, u64 len,
		  struct cowchain_error *err)
{
	u8 *b = buf;
	int r = check_range(c, off, len, err);

	while (!r && len) {
		struct piece p;
		u64 n;

		resolve_byte(c, off, &p);
		n = min64(p.avail, len);
		if (p.kind == COWCHAIN_EXT_DATA) {
			struct cowchain_layer *l = c->layers[p.layer];

			r = cc_pread(l->fd, b, n, p.offset);
			if (r == -ENODATA)
				r = cc_failf(err, -EIO, l->path, "data at byte %llu lies past the end of the file",
					     (unsigned long long)p.offset);
			else if (r)
				r = cc_failf(err, r, l->path, "cannot read: %s", strerror(-r));
		} else if (p.kind == COWCHAIN_EXT_BASE) {
			r = cc_pread(c->base_fd, b, n, p.offset);
			if (r == -ENODATA)	/* the base shrank: zeros */
				r = 0;
			else if (r)
				r = cc_failf(err, r, c->base_path, "cannot read: %s", strerror(-r));
		} else {
			memset(b, 0, n);
		}
		b += n;
		off += n;
		len -= n;
	}
	return r;
}

/* ---- writes to the top layer ---------------------------------------- */

enum wop { OP_WRITE, OP_ZEROES, OP_DISCARD };

static int store_entry(struct cc_block *leaf, u64 vc, const struct cowchain_entry *e)
{
	cowchain_entry_pack(e, &leaf->img->leaf.entry[vc & (COWCHAIN_LEAF_ENTRIES - 1)]);
	leaf->dirty = true;
	return 0;
}

/*
 * Write one piece [off, off+n) inside one sub-block.  data NULL = zeros.
 * sub: scratch of one sub-block.
 */
static int write_piece(struct cowchain_chain *c, u64 off, u64 n, const u8 *data,
		       u8 *sub, struct cowchain_error *err)
{
	struct cowchain_layer *l = c->layers[0];
	u32 cs = l->sb.cluster_shift, ss = l->sb.subblock_shift;
	u64 sbsize = 1ull << ss, vc = off >> cs, cmask = (1ull << cs) - 1;
	u64 sb_start = off & ~(sbsize - 1);
	u64 sb_end = min64(sb_start + sbsize, l->sb.virtual_size);
	u32 bit = (u32)((off & cmask) >> ss);
	struct cowchain_entry e;
	struct cc_block *leaf;
	struct cc_cent *ce;
	int r;

	r = cc_leaf_get(l, vc, &leaf, err);
	if (r)
		return r;
	cowchain_entry_unpack(&leaf->img->leaf.entry[vc & (COWCHAIN_LEAF_ENTRIES - 1)], &e);
	if (e.present & (1ull << bit)) {
		/* Present: overwrite in place, nothing else changes. */
		if (data)
			r = cc_pwrite(l->fd, data, n, (e.phys << cs) + (off & cmask));
		else {
			memset(sub, 0, n);
			r = cc_pwrite(l->fd, sub, n, (e.phys << cs) + (off & cmask));
		}
		if (r)
			return cc_failf(err, r, l->path, "cannot write data: %s", strerror(-r));
		return 0;
	}
	memset(sub, 0, sbsize);
	if (off != sb_start || off + n != sb_end) {
		/* Copy-up of one sub-block: its current content through the chain. */
		r = cowchain_read(c, sub, sb_start, sb_end - sb_start, err);
		if (r)
			return r;
	}
	if (data)
		memcpy(sub + (off - sb_start), data, n);
	else
		memset(sub + (off - sb_start), 0, n);
	if (!e.phys) {
		r = cc_alloc_data(l, &e.phys, err);
		if (r)
			return r;
		ce = cc_ctab_find(&l->used, e.phys);
		if (ce)
			ce->owner = vc;
	}
	r = cc_pwrite(l->fd, sub, sbsize, (e.phys << cs) + ((u64)bit << ss));
	if (r)
		return cc_failf(err, r, l->path, "cannot write data: %s", strerror(-r));
	e.present |= 1ull << bit;
	e.zero &= ~(1ull << bit);
	return store_entry(leaf, vc, &e);
}

/* Mark one whole sub-block zero; free the data cluster when it empties. */
static int zero_subblock(struct cowchain_layer *l, u64 off, struct cowchain_error *err)
{
	u32 cs = l->sb.cluster_shift, ss = l->sb.subblock_shift;
	u64 vc = off >> cs;
	u32 bit = (u32)((off & ((1ull << cs) - 1)) >> ss);
	struct cowchain_entry e;
	struct cc_block *leaf;
	bool root = l->sb.parent_kind == COWCHAIN_PARENT_NONE;
	int r;

	/*
	 * A root's transparent sub-blocks already read zeros (FORMAT.md
	 * section 6): only drop stored data there, so discarding an empty
	 * root creates no metadata.
	 */
	if (root) {
		r = cowchain_layer_lookup(l, vc, &e);
		if (r == -ENOENT || (!r && !(e.present & (1ull << bit))))
			return 0;
		if (r)
			return r;
	}
	r = cc_leaf_get(l, vc, &leaf, err);
	if (r)
		return r;
	cowchain_entry_unpack(&leaf->img->leaf.entry[vc & (COWCHAIN_LEAF_ENTRIES - 1)], &e);
	if (!root)
		e.zero |= 1ull << bit;
	e.present &= ~(1ull << bit);
	if (!e.present && e.phys) {
		r = cc_free_data(l, e.phys, err);
		if (r)
			return r;
		e.phys = 0;
	}
	return store_entry(leaf, vc, &e);
}

static int modify(struct cowchain_chain *c, enum wop op, const u8 *data, u64 off,
		  u64 len, struct cowchain_error *err)
{
	struct cowchain_layer *l = c->layers[0];
	u64 sbsize = 1ull << l->sb.subblock_shift;
	u8 *sub;
	int r;

	r = check_range(c, off, len, err);
	if (!r)
		r = cc_prepare_write(l, err);
	if (r || !len)
		return r;
	sub = malloc(sbsize);
	if (!sub)
		return cc_failf(err, -ENOMEM, l->path, "out of memory");
	c->held_valid = false;
	while (len) {
		u64 sb_start = off & ~(sbsize - 1);
		u64 sb_end = min64(sb_start + sbsize, l->sb.virtual_size);
		u64 n = min64(sb_end - off, len);
		bool full = off == sb_start && off + n == sb_end;

		if (op != OP_WRITE && full)
			r = zero_subblock(l, off, err);
		else if (op == OP_DISCARD)
			r = 0;		/* partial discard: unchanged */
		else
			r = write_piece(c, off, n, data, sub, err);
		if (r)
			break;
		if (data)
			data += n;
		off += n;
		len -= n;
	}
	free(sub);
	return r;
}

int cowchain_write(struct cowchain_chain *c, const void *buf, u64 off, u64 len,
		   struct cowchain_error *err)
{
	return modify(c, OP_WRITE, buf, off, len, err);
}

int cowchain_write_zeroes(struct cowchain_chain *c, u64 off, u64 len,
			  struct cowchain_error *err)
{
	return modify(c, OP_ZEROES, NULL, off, len, err);
}

int cowchain_discard(struct cowchain_chain *c, u64 off, u64 len,
		     struct cowchain_error *err)
{
	return modify(c, OP_DISCARD, NULL, off, len, err);
}

/* ---- extents (map) --------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static int build_held(struct cowchain_chain *c)
{
	size_t total = 0, k, n, i, j;
	u32 d;

	for (d = 0; d < c->depth; d++)
		total += c->layers[d]->blocks.count;
	free(c->held);
	c->held = malloc((total + 1) * sizeof(u64));
	if (!c->held)
		return -ENOMEM;
	n = 0;
	for (d = 0; d < c->depth; d++) {
		struct cc_block **v = cc_blocks_sorted(c->layers[d], COWCHAIN_BLK_LEAF, &k);

		if (!v)
			return -ENOMEM;
		for (i = 0; i < k; i++)
			c->held[n++] = v[i]->key;
		free(v);
	}
	qsort(c->held, n, sizeof(u64), cmp_u64);
	for (i = 0, j = 0; i < n; i++)
		if (!j || c->held[j - 1] != c->held[i])
			c->held[j++] = c->held[i];
	c->nheld = j;
	c->held_valid = true;
	return 0;
}

/* First held leaf key > lkey, or UINT64_MAX. */
static u64 next_held(const struct cowchain_chain *c, u64 lkey, bool *is_held)
{
	size_t lo = 0, hi = c->nheld;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (c->held[mid] < lkey)
			lo = mid + 1;
		else
			hi = mid;
	}
	*is_held = lo < c->nheld && c->held[lo] == lkey;
	if (*is_held)
		lo++;
	return lo < c->nheld ? c->held[lo] : UINT64_MAX;
}

/* Resolution at off; for ranges no layer holds, as far as the next leaf. */
static void resolve_run(const struct cowchain_chain *c, u64 off, struct piece *p)
{
	const struct cowchain_sb *top = cowchain_layer_sb(c->layers[0]);
	u64 lspan_shift = top->cluster_shift + COWCHAIN_LEAF_SHIFT;
	u64 lkey = (off >> top->cluster_shift) & ~(u64)(COWCHAIN_LEAF_ENTRIES - 1);
	u64 next, limit, base_limit;
	bool held;

	next = next_held(c, lkey, &held);
	if (held) {
		resolve_byte(c, off, p);
		return;
	}
	limit = next == UINT64_MAX ? UINT64_MAX : (next >> COWCHAIN_LEAF_SHIFT) << lspan_shift;
	limit = min64(limit, top->virtual_size);
	base_limit = 0;
	if (c->base_fd >= 0)
		base_limit = min64(c->base_size, c->layers[c->depth - 1]->sb.virtual_size);
	p->layer = c->depth;
	if (off < base_limit) {
		p->kind = COWCHAIN_EXT_BASE;
		p->offset = off;
		p->avail = min64(limit, base_limit) - off;
	} else {
		p->kind = COWCHAIN_EXT_NONE;
		p->offset = 0;
		p->avail = limit - off;
	}
}

int cowchain_resolve(const struct cowchain_chain *cc, u64 off, u64 max_len,
		     struct cowchain_extent *ext, struct cowchain_error *err)
{
	struct cowchain_chain *c = (struct cowchain_chain *)cc;
	u64 size = cowchain_chain_size(c), len = 0;
	struct piece p;
	int r;

	if (off >= size)
		return cc_failf(err, -EINVAL, c->layers[0]->path, "offset %llu past the end",
				(unsigned long long)off);
	if (!c->held_valid) {
		r = build_held(c);
		if (r)
			return cc_failf(err, r, c->layers[0]->path, "out of memory");
	}
	max_len = min64(max_len, size - off);
	resolve_run(c, off, &p);
	ext->start = off;
	ext->kind = p.kind;
	ext->layer = p.layer;
	ext->offset = p.offset;
	for (;;) {
		u64 n = min64(p.avail, max_len - len);

		len += n;
		if (len >= max_len)
			break;
		resolve_run(c, off + len, &p);
		if (p.kind != ext->kind || p.layer != ext->layer)
			break;
		if ((p.kind == COWCHAIN_EXT_DATA || p.kind == COWCHAIN_EXT_BASE) &&
		    p.offset != ext->offset + len)
			break;
	}
	ext->length = len;
	return 0;
}
