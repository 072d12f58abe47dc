// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check: the index of one layer, and what follows from it.
 *
 * Why the walk is tolerant the way it is: a block that fails its header
 * check (magic, checksum, location, owner, key) is not trusted at all and
 * its subtree is skipped; a block whose header passes is walked slot by
 * slot, each bad pointer or entry its own finding.  Every rule is the one
 * in kernel/format.c: the per-slot checks call the same helpers
 * (cowchain_header_check, cowchain_entry_check, cowchain_block_in_clusters).
 *
 * The walk goes root table to leaves, in layout order (the order the walk
 * callbacks of check.h promise dump), through the journal overlay, and
 * records in the walker every metadata block reached, every metadata
 * cluster and every data cluster referenced (three u64 maps, below).
 * Two checks need the whole index and so come after it:
 *
 *  - data/metadata overlap: a data cluster that also holds index blocks;
 *  - leaked clusters: space allocated in the file (SEEK_DATA/SEEK_HOLE)
 *    in the data area that nothing references.  A lost leaf's clusters
 *    look leaked too, which is why the repair pass punches them only over
 *    an index without corruption (w->index_damage).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check_internal.h"

/* ---- the walker's record: u64 -> u64 maps -------------------------------- */

static u64 mix(u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static u64 *map_find(const struct u64map *m, u64 key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = mix(key) & (m->cap - 1); m->k[i]; i = (i + 1) & (m->cap - 1))
		if (m->k[i] == key + 1)
			return &m->v[i];
	return NULL;
}

static int map_put(struct u64map *m, u64 key, u64 val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct u64map b = { 0 };
		size_t j;

		b.cap = m->cap ? m->cap * 2 : 64;
		b.k = calloc(b.cap, sizeof(u64));
		b.v = calloc(b.cap, sizeof(u64));
		if (!b.k || !b.v) {
			free(b.k);
			free(b.v);
			return -ENOMEM;
		}
		for (j = 0; j < m->cap; j++)
			if (m->k[j])
				map_put(&b, m->k[j] - 1, m->v[j]);
		free(m->k);
		free(m->v);
		*m = b;
	}
	for (i = mix(key) & (m->cap - 1); m->k[i]; i = (i + 1) & (m->cap - 1))
		if (m->k[i] == key + 1)
			break;
	if (!m->k[i])
		m->n++;
	m->k[i] = key + 1;
	m->v[i] = val;
	return 0;
}

void cc_u64map_free(struct u64map *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- the index walk ------------------------------------------------------ */

static const char *const kind_name[] = { "root block", "map block", "leaf block" };
static const enum cowchain_problem kind_bad[] = { CK_ROOT_BAD, CK_MAP_BAD, CK_LEAF_BAD };
static const u32 kind_magic[] = { COWCHAIN_ROOT_MAGIC, COWCHAIN_MAP_MAGIC, COWCHAIN_LEAF_MAGIC };

static int walk_block(struct walker *w, int kind, unsigned slot, u64 blocknr, u64 key);

static int walk_leaf(struct walker *w, u64 blocknr, u64 key, const struct cowchain_leaf_disk *blk)
{
	struct cowchain_err e;
	u32 i, used = 0;

	for (i = 0; i < COWCHAIN_LEAF_ENTRIES && !w->stop; i++) {
		struct cowchain_entry en;
		u64 vc = key + i, *owner;

		cowchain_entry_unpack(&blk->entry[i], &en);
		if (cowchain_entry_empty(&en))
			continue;
		used++;
		if (vc >= w->vclusters) {
			cc_report(w, CK_ENTRY_PAST_VSIZE, 1, "leaf block %llu, cluster %llu (virtual disk has %llu)",
				  (unsigned long long)blocknr, (unsigned long long)vc,
				  (unsigned long long)w->vclusters);
			continue;
		}
		if (en.phys && (en.phys < w->sb.data_start || en.phys >= w->sb.capacity)) {
			cc_report(w, CK_ENTRY_PHYS_RANGE, 1, "leaf block %llu, cluster %llu: physical cluster %llu outside %llu..%llu",
				  (unsigned long long)blocknr, (unsigned long long)vc,
				  (unsigned long long)en.phys,
				  (unsigned long long)w->sb.data_start,
				  (unsigned long long)w->sb.capacity - 1);
			continue;
		}
		if (cowchain_entry_check(&en, &w->sb, &e)) {
			cc_report(w, CK_ENTRY_INVALID, 1, "leaf block %llu, cluster %llu: %s",
				  (unsigned long long)blocknr, (unsigned long long)vc, e.msg);
			continue;
		}
		/*
		 * Entries that are valid on their own but conflict with the
		 * rest of the layer (a shared cluster, data past the end of
		 * the file) still reach the walk callback: a dump must show
		 * them so they can be fixed by hand.
		 */
		if (en.phys) {
			owner = map_find(&w->data, en.phys);
			if (owner) {
				cc_report(w, CK_CLUSTER_SHARED, 1, "physical cluster %llu: clusters %llu and %llu",
					  (unsigned long long)en.phys,
					  (unsigned long long)*owner,
					  (unsigned long long)vc);
			} else {
				if (map_put(&w->data, en.phys, vc))
					return -ENOMEM;
				if (w->ndata == w->capdata) {
					size_t cap = w->capdata ? w->capdata * 2 : 64;
					void *p = realloc(w->data_order, cap * sizeof(u64));

					if (!p)
						return -ENOMEM;
					w->data_order = p;
					w->capdata = cap;
				}
				w->data_order[w->ndata++] = en.phys;
			}
			/* Referenced all the same: a partial cluster is not a leak. */
			if ((en.phys + 1) << w->sb.cluster_shift > w->file_size)
				cc_report(w, CK_ENTRY_PAST_EOF, 1, "leaf block %llu, cluster %llu: physical cluster %llu",
					  (unsigned long long)blocknr, (unsigned long long)vc,
					  (unsigned long long)en.phys);
		}
		if (w->ops && w->ops->entry)
			w->stop = w->ops->entry(w->ops->ctx, vc, &en);
	}
	if (le32_to_cpu(blk->hdr.count) != used)
		cc_report(w, CK_BLOCK_COUNT, 1, "leaf block %llu: count %u but %u entries in use",
			  (unsigned long long)blocknr, le32_to_cpu(blk->hdr.count), used);
	if (!cc_all_zero(blk->tail, sizeof(blk->tail)))
		cc_report(w, CK_BLOCK_TAIL, 1, "leaf block %llu", (unsigned long long)blocknr);
	return 0;
}

static int walk_ptrs(struct walker *w, int kind, u64 blocknr, u64 key,
		     const struct cowchain_ptr_disk *blk)
{
	u32 span = kind == 0 ? COWCHAIN_MAP_SPAN_SHIFT : COWCHAIN_LEAF_SHIFT;
	struct cowchain_ptr_disk *copy;
	u32 i, used = 0;
	int r = 0;

	/* The buffer is reused by the levels below: work on a copy. */
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, blk, sizeof(*copy));
	for (i = 0; i < COWCHAIN_PTR_ENTRIES && !w->stop; i++) {
		u64 p = le64_to_cpu(copy->ptr[i]);
		u64 ck = key + ((u64)i << span);

		if (!p)
			continue;
		used++;
		if (ck >= w->vclusters) {
			cc_report(w, CK_PTR_PAST_VSIZE, 1, "%s %llu, slot %u (first cluster %llu, virtual disk has %llu)",
				  kind_name[kind], (unsigned long long)blocknr, i,
				  (unsigned long long)ck, (unsigned long long)w->vclusters);
			continue;
		}
		if (!cowchain_block_in_clusters(&w->sb, p)) {
			cc_report(w, CK_PTR_OUT_OF_AREA, 1, "%s %llu, slot %u: block %llu",
				  kind_name[kind], (unsigned long long)blocknr, i,
				  (unsigned long long)p);
			continue;
		}
		if ((p + 1) << COWCHAIN_BLOCK_SHIFT > w->file_size && !cc_overlay_find(w, p)) {
			cc_report(w, CK_PTR_PAST_EOF, 1, "%s %llu, slot %u: block %llu",
				  kind_name[kind], (unsigned long long)blocknr, i,
				  (unsigned long long)p);
			continue;
		}
		r = walk_block(w, kind + 1, i, p, ck);
		if (r)
			break;
	}
	if (!r && !w->stop) {
		if (le32_to_cpu(copy->hdr.count) != used)
			cc_report(w, CK_BLOCK_COUNT, 1, "%s %llu: count %u but %u pointers set",
				  kind_name[kind], (unsigned long long)blocknr,
				  le32_to_cpu(copy->hdr.count), used);
		if (!cc_all_zero(copy->tail, sizeof(copy->tail)))
			cc_report(w, CK_BLOCK_TAIL, 1, "%s %llu",
				  kind_name[kind], (unsigned long long)blocknr);
	}
	free(copy);
	return r;
}

static int walk_block(struct walker *w, int kind, unsigned slot, u64 blocknr, u64 key)
{
	struct cowchain_err e;
	int r;

	if (map_find(&w->blocks, blocknr)) {
		cc_report(w, CK_BLOCK_TWICE, 1, "block %llu (again as a %s for cluster %llu)",
			  (unsigned long long)blocknr, kind_name[kind],
			  (unsigned long long)key);
		return 0;
	}
	if (map_put(&w->blocks, blocknr, kind))
		return -ENOMEM;
	if (kind && map_put(&w->meta, blocknr >> w->cb_shift, 1))
		return -ENOMEM;
	if (cc_read_meta(w, blocknr, w->buf)) {
		cc_report(w, kind_bad[kind], 1, "%s at block %llu: read error",
			  kind_name[kind], (unsigned long long)blocknr);
		return 0;
	}
	if (cowchain_header_check(w->buf, kind_magic[kind], blocknr, w->sb.uuid,
				  key, kind_name[kind], &e)) {
		cc_report(w, kind_bad[kind], 1, "%s", e.msg);
		return 0;
	}
	if (w->ops && w->ops->block) {
		w->stop = w->ops->block(w->ops->ctx, kind, slot, blocknr, key);
		if (w->stop)
			return 0;
	}
	if (kind == 2)
		r = walk_leaf(w, blocknr, key, (void *)w->buf);
	else
		r = walk_ptrs(w, kind, blocknr, key, (void *)w->buf);
	if (!r && !w->stop && w->ops && w->ops->block_end)
		w->stop = w->ops->block_end(w->ops->ctx, kind);
	return r;
}

int cc_check_index(struct walker *w)
{
	u64 i;
	int r;

	for (i = 0; i < w->sb.root_blocks && !w->stop; i++) {
		r = walk_block(w, 0, i, w->sb.root_start + i, i << COWCHAIN_ROOT_SPAN_SHIFT);
		if (r)
			return cc_fail(w->cx->err, r, "cannot check '%s': %s", w->path, strerror(-r));
	}
	for (i = 0; i < w->ndata; i++)
		if (map_find(&w->meta, w->data_order[i]))
			cc_report(w, CK_DATA_META_OVERLAP, 1, "physical cluster %llu (cluster %llu) holds metadata blocks",
				  (unsigned long long)w->data_order[i],
				  (unsigned long long)(*map_find(&w->data, w->data_order[i])));
	return 0;
}

/* ---- leaked space -------------------------------------------------------- */

static int leak_add(struct leaks *lk, u64 c)
{
	if (lk->n && lk->r[lk->n - 1].start + lk->r[lk->n - 1].len == c) {
		lk->r[lk->n - 1].len++;
	} else {
		if (lk->n == lk->cap) {
			size_t cap = lk->cap ? lk->cap * 2 : 16;
			void *p = realloc(lk->r, cap * sizeof(*lk->r));

			if (!p)
				return -ENOMEM;
			lk->r = p;
			lk->cap = cap;
		}
		lk->r[lk->n].start = c;
		lk->r[lk->n++].len = 1;
	}
	lk->total++;
	return 0;
}

/*
 * Clusters of [data_start, capacity) with space allocated in the file that
 * nothing references.  Walks the file's data extents (SEEK_DATA/SEEK_HOLE),
 * so the cost follows what is allocated.  A file system without SEEK_DATA
 * reports everything as data; then every unreferenced cluster looks leaked,
 * which is still true of the file's disk usage.
 */
int cc_find_leaks(struct walker *w, struct leaks *lk)
{
	u64 cs = w->sb.cluster_shift;
	u64 lo = w->sb.data_start << cs;
	u64 hi = w->sb.capacity << cs;
	off_t off;

	/* A block device has no holes to tell: all of it reads as data. */
	if (!w->is_reg)
		return 0;
	if (hi > w->file_size)
		hi = w->file_size;
	off = (off_t)lo;
	while ((u64)off < hi) {
		off_t d = lseek(w->fd, off, SEEK_DATA), h;
		u64 c, c_end;

		if (d < 0) {
			if (errno == ENXIO)
				break;
			return -errno;
		}
		if ((u64)d >= hi)
			break;
		h = lseek(w->fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		if ((u64)h > hi)
			h = (off_t)hi;
		c_end = ((u64)h + (1ull << cs) - 1) >> cs;
		for (c = (u64)d >> cs; c < c_end; c++)
			if (!map_find(&w->data, c) && !map_find(&w->meta, c))
				if (leak_add(lk, c))
					return -ENOMEM;
		off = h;
	}
	return 0;
}
