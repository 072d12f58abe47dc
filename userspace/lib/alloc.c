// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Cluster allocation inside [data_start, capacity).
 *
 * Free space is whatever the used-cluster table does not hold.  Data
 * clusters are taken by a rotating cursor; metadata blocks fill one open
 * metadata cluster before another is taken (the capacity formula of
 * FORMAT.md 2 assumes this).  Index blocks are never freed.
 *
 * A data cluster freed by discard/write-zeroes stays in the used table
 * until the commit that records the free has completed: before that, the
 * committed metadata still points at it, so a crash must find its old
 * data intact (FORMAT.md 6).  When nothing else is free, allocation
 * commits to release them.
 */
#include <errno.h>
#include <stdlib.h>
#include "internal.h"

static int take_cluster(struct cowchain_layer *l, bool meta, u64 *phys,
			struct cowchain_error *err)
{
	u64 span = l->sb.capacity - l->sb.data_start, i, p;
	struct cc_cent *ce;

	if (l->alloc_cursor < l->sb.data_start || l->alloc_cursor >= l->sb.capacity)
		l->alloc_cursor = l->sb.data_start;
	for (i = 0, p = l->alloc_cursor; i < span; i++) {
		if (!cc_ctab_find(&l->used, p))
			break;
		if (++p == l->sb.capacity)
			p = l->sb.data_start;
	}
	if (i == span) {
		/*
		 * Clusters freed since the last commit are still referenced
		 * by the committed index.  The capacity of FORMAT.md 2 has no
		 * room for them, so commit (which releases them) and retry.
		 */
		if (l->npending_free) {
			int r = cowchain_layer_commit(l, err);

			if (r)
				return r;
			return take_cluster(l, meta, phys, err);
		}
		return cc_failf(err, -ENOSPC, l->path, "no free cluster left (capacity %llu clusters)",
				(unsigned long long)l->sb.capacity);
	}
	ce = cc_ctab_add(&l->used, p);
	if (!ce)
		return cc_failf(err, -ENOMEM, l->path, "out of memory allocating a cluster");
	ce->is_meta = meta;
	l->alloc_cursor = p + 1;
	*phys = p;
	return 0;
}

int cc_alloc_data(struct cowchain_layer *l, u64 *phys, struct cowchain_error *err)
{
	return take_cluster(l, false, phys, err);
}

static bool meta_slot_free(struct cowchain_layer *l, u64 cluster, u64 *blocknr)
{
	u64 i, b;

	for (i = 0; i < l->bpc; i++) {
		b = cluster * l->bpc + i;
		if (!cc_btab_find_nr(&l->blocks, b)) {
			*blocknr = b;
			return true;
		}
	}
	return false;
}

int cc_alloc_meta(struct cowchain_layer *l, u64 *blocknr, struct cowchain_error *err)
{
	struct cc_cent *ce;
	size_t i;
	int r;

	if (l->meta_open) {
		ce = cc_ctab_find(&l->used, l->meta_open);
		if (ce && ce->is_meta && ce->meta < l->bpc &&
		    meta_slot_free(l, l->meta_open, blocknr)) {
			ce->meta++;
			return 0;
		}
		l->meta_open = 0;
	}
	/* A partly filled metadata cluster from an earlier session. */
	for (i = 0; i < l->used.nslots; i++) {
		ce = &l->used.slots[i];
		if (ce->used && ce->is_meta && ce->meta < l->bpc &&
		    meta_slot_free(l, ce->phys, blocknr)) {
			ce->meta++;
			l->meta_open = ce->phys;
			return 0;
		}
	}
	r = take_cluster(l, true, &l->meta_open, err);
	if (r)
		return r;
	ce = cc_ctab_find(&l->used, l->meta_open);
	ce->meta = 1;
	*blocknr = l->meta_open * l->bpc;
	return 0;
}

int cc_free_data(struct cowchain_layer *l, u64 phys, struct cowchain_error *err)
{
	if (l->npending_free == l->cap_pending_free) {
		size_t n = l->cap_pending_free ? l->cap_pending_free * 2 : 64;
		u64 *v = realloc(l->pending_free, n * sizeof(*v));

		if (!v)
			return cc_failf(err, -ENOMEM, l->path, "out of memory freeing a cluster");
		l->pending_free = v;
		l->cap_pending_free = n;
	}
	l->pending_free[l->npending_free++] = phys;
	return 0;
}

void cc_release_pending(struct cowchain_layer *l)
{
	size_t i;

	for (i = 0; i < l->npending_free; i++)
		cc_ctab_del(&l->used, l->pending_free[i]);
	l->npending_free = 0;
}
