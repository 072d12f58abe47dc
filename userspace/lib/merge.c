// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Offline merge: remove one link of a chain without changing what any leaf
 * reads, in either direction, resumable after a crash at any instant.
 *
 * Terms: C is a child, P its parent, G a child of C ("grandchild"), GP the
 * parent of P (a layer, a raw base, or nothing).  A leaf is any layer
 * without children: the only layers whose contents anyone sees.
 *
 * ---- Into the parent (C into P; C is deleted) ---------------------------
 * Allowed only when C is P's only child (P's other children would see P
 * change) and C is as large as P (P cannot grow).
 *  0. Mark C (MERGING, INTO_PARENT, peer P, cursor 0), then P (MERGING,
 *     FROM_CHILD, peer C, cursor 0).  Neither generation changes: P is
 *     opened writable without a bump (and despite SEALED, only because it
 *     is MERGING), so C and everything below it keep validating.
 *  1. For a batch of C's clusters from the cursor: copy C's present
 *     sub-blocks into P (in place where P holds them, else into a cluster
 *     allocated for the vcluster), turn C's zero markers into zero markers
 *     in P (on a root P: drop P's data, FORMAT.md 6), commit P, punch the
 *     P sub-blocks and clusters this dropped, write P's cursor.
 *  2. Empty the same entries of C, commit C, punch C's freed clusters
 *     (the data now lives once, in P), write C's cursor.
 *  3. When the cursor reaches the end: relink every G to P (parent_uuid P,
 *     parent_generation g+1 where g is the generation C bound to, locator),
 *     then write P with generation g+1, MERGING cleared and SEALED cleared
 *     if no G exists, then delete C and sync the directory.
 * Why every leaf's view is unchanged at every instant: in step 1 only
 * sub-blocks C holds (present or zero) change in P, and C masks exactly
 * those; C is P's only child, so nothing else reads them.  In step 2 an
 * entry of C is emptied only after P holds the same bytes (P's commit is
 * durable before C's); a crash between them leaves both holding the same
 * data, which is the same view.  Punching comes after the commit that
 * stops referencing the range.  In step 3 C is empty, so G read through C
 * exactly what they will read from P.
 * Crash at any instant, then "cowchain merge C" again:
 *  - C marked, P not yet (P.generation == C.parent_generation): mark P, go on.
 *  - both marked: redo from C's cursor.  A batch is idempotent: copying a
 *    sub-block into P again writes the same bytes in place; re-applying a
 *    zero marker changes nothing; C's entries below the cursor are empty.
 *  - some G relinked, P not yet written (G bound to g+1, P still g: those
 *    G do not open until the merge is resumed): relinking is idempotent,
 *    G are found by parent_uuid C, or already carry P's uuid and g+1.
 *  - P written (g+1, not MERGING), C still there: only delete C.
 *  Space: P grows by the data it did not hold; C shrinks batch by batch, so
 *  the extra space at any instant is one batch (default 64 MiB).
 *
 * ---- Into the children (P into every child K; P is deleted) -------------
 *  0. Mark P (MERGING, INTO_CHILDREN, peer = its first child), then each K
 *     (MERGING, FROM_PARENT, peer P); no generation changes.
 *  1. For a batch of P's clusters from P's cursor, for each K: every
 *     sub-block K reads from P (transparent in K, present or zero in P)
 *     is copied into K as data, or as a zero marker if P has a parent (on
 *     a root P, transparent already reads zeros); commit K, write K's
 *     cursor.  Then, once every K holds the batch: empty P's entries,
 *     commit P, punch, write P's cursor.  Space stays bounded: P gives its
 *     batch back as soon as the children hold it.
 *  2. Relink each K to GP (uuid + the generation P bound to, locator) or
 *     make it a root (over P's raw base, if any), clearing its MERGING in
 *     the same superblock write; on a new root, drop K's now-redundant zero
 *     markers.  Then delete P and sync the directory.
 * Every instant: K changes only where it was transparent, and then gets
 * exactly what it read through P; P's entries are emptied only when every
 * K masks them (after their commits); GP is never written (sealed).
 * Resume ("cowchain merge --into-children P", or merge on any K): children
 * are found again by parent_uuid P; a batch is idempotent (a sub-block K
 * already holds is skipped); a K already relinked no longer names P.
 *
 * Both: every changed file is locked (flock, exclusive) and must not be
 * attached; NEEDS_CHECK anywhere refuses.  The plan, built before anything
 * changes, states the direction, bytes, space per file and why.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/statvfs.h>
#include "merge_internal.h"

#define DEFAULT_BATCH	(64ull << 20)

struct ranges {			/* byte ranges to punch, coalesced */
	u64 *v;
	size_t n, cap;
};

static int ranges_add(struct ranges *r, u64 off, u64 len)
{
	if (r->n && r->v[2 * r->n - 2] + r->v[2 * r->n - 1] == off) {
		r->v[2 * r->n - 1] += len;
		return 0;
	}
	if (r->n == r->cap) {
		size_t nc = r->cap ? 2 * r->cap : 64;
		u64 *nv = realloc(r->v, 2 * nc * sizeof(u64));

		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->cap = nc;
	}
	r->v[2 * r->n] = off;
	r->v[2 * r->n + 1] = len;
	r->n++;
	return 0;
}

static int ranges_punch(struct ranges *r, struct cowchain_layer *l, struct cowchain_error *err)
{
	size_t i;
	int e;

	for (i = 0; i < r->n; i++) {
		e = cc_punch(l->fd, r->v[2 * i], r->v[2 * i + 1]);
		if (e)
			return cc_failf(err, e, l->path, "cannot punch a hole: %s", strerror(-e));
	}
	r->n = 0;
	return 0;
}

static void progress(struct merge *m, const char *phase)
{
	struct cowchain_progress pr = { phase, m->done, m->total };

	if (m->o->progress)
		m->o->progress(m->o->progress_ctx, &pr);
}

/* Write the merge fields of an open layer's superblock. */
static int set_merge(struct cowchain_layer *l, u32 state, const u8 *peer, u64 cursor,
		     struct cowchain_error *err)
{
	if (state) {
		l->sb.flags |= COWCHAIN_SB_MERGING;
		memcpy(l->sb.merge_peer_uuid, peer, COWCHAIN_UUID_SIZE);
	} else {
		l->sb.flags &= ~COWCHAIN_SB_MERGING;
		memset(l->sb.merge_peer_uuid, 0, COWCHAIN_UUID_SIZE);
		cursor = 0;
	}
	l->sb.merge_state = state;
	l->sb.merge_cursor = cursor;
	return cc_sb_write(l, err);
}

/*
 * The lock first, then the check that nothing has the file attached: an
 * attach holds a shared lock on every layer until its device holds them, so
 * either it is refused by our lock or we see its loop device.
 */
static int open_merge(const char *path, struct cowchain_layer **l, struct cowchain_error *err)
{
	return cowchain_layer_open(path, COWCHAIN_OPEN_MERGE | COWCHAIN_OPEN_UNATTACHED, l, err);
}


static int collect_vc(void *ctx, u64 vc, const struct cowchain_entry *e)
{
	struct vcl *s = ctx;

	(void)e;
	if (vc < s->from)
		return 0;
	if (s->n == s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 1024;
		u64 *nv = realloc(s->v, nc * sizeof(u64));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	s->v[s->n++] = vc;
	return 0;
}

int cc_list_entries(struct cowchain_layer *l, u64 from, struct vcl *s,
			struct cowchain_error *err)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->from = from;
	r = cowchain_layer_foreach_entry(l, collect_vc, s);
	if (r) {
		free(s->v);
		return cc_failf(err, r, l->path, "out of memory");
	}
	return 0;
}

/* The end (exclusive) of the batch starting at index i, by data bytes. */
static size_t batch_end(struct merge *m, struct cowchain_layer *l, const struct vcl *s, size_t i)
{
	u64 limit = m->o->batch_bytes ? m->o->batch_bytes : DEFAULT_BATCH, bytes = 0;
	u64 sbsize = 1ull << l->sb.subblock_shift;

	for (; i < s->n && bytes < limit && i - 0 < s->n; i++) {
		struct cowchain_entry e;

		if (!cowchain_layer_lookup(l, s->v[i], &e))
			bytes += (u64)__builtin_popcountll(e.present) * sbsize;
		bytes += sbsize / 8 + 1;	/* metadata-only entries count a little */
	}
	return i;
}

static int store(struct cc_block *leaf, u64 vc, const struct cowchain_entry *e)
{
	cowchain_entry_pack(e, &leaf->img->leaf.entry[vc & (COWCHAIN_LEAF_ENTRIES - 1)]);
	leaf->dirty = true;
	return 0;
}

/* Queue the copy of the sub-blocks in bits from cluster sp of s to dp of d. */
static int copy_bits(struct cc_copier *cp, const struct cowchain_layer *l, u64 bits,
		     u64 sp, u64 dp, struct cowchain_error *err)
{
	u32 cs = l->sb.cluster_shift, ss = l->sb.subblock_shift;
	int r = 0;

	while (bits && !r) {
		u32 i = (u32)__builtin_ctzll(bits), n = 0;

		while (i + n < 64 && (bits & (1ull << (i + n))))
			n++;
		bits &= n == 64 ? 0 : ~(((1ull << n) - 1) << i);
		r = cc_copy_add(cp, (sp << cs) + ((u64)i << ss), (dp << cs) + ((u64)i << ss),
				(u64)n << ss, err);
	}
	return r;
}

/* Empty the entries of l at vs[a..b), freeing and punching their clusters. */
static int drop_entries(struct cowchain_layer *l, const u64 *vs, size_t a, size_t b,
			struct cowchain_error *err)
{
	struct ranges pr = { 0 };
	struct cowchain_entry e, none = { 0, 0, 0 };
	size_t i;
	int r = 0;

	for (i = a; i < b && !r; i++) {
		struct cc_block *leaf = cc_leaf_of(l, vs[i]);

		if (!leaf || cowchain_layer_lookup(l, vs[i], &e))
			continue;
		if (e.phys) {
			r = cc_free_data(l, e.phys, err);
			if (!r && ranges_add(&pr, e.phys << l->sb.cluster_shift,
					     1ull << l->sb.cluster_shift))
				r = cc_failf(err, -ENOMEM, l->path, "out of memory");
		}
		if (!r)
			store(leaf, vs[i], &none);
	}
	if (!r)
		r = cowchain_layer_commit(l, err);
	if (!r)	/* only now does no committed metadata reference them */
		r = ranges_punch(&pr, l, err);
	free(pr.v);
	return r;
}

/* ---- into the parent ---------------------------------------------------- */

static int parent_batch(struct merge *m, const struct vcl *s, size_t a, size_t b)
{
	struct cowchain_layer *P = m->p, *C = m->c;
	u32 cs = P->sb.cluster_shift, ss = P->sb.subblock_shift;
	bool zmark = P->sb.parent_kind != COWCHAIN_PARENT_NONE;
	struct cc_copier cp = { .sfd = C->fd, .dfd = P->fd, .spath = C->path, .dpath = P->path };
	struct ranges pr = { 0 };
	u64 end = b < s->n ? s->v[b] : C->vclusters;
	size_t i;
	int r = 0;

	for (i = a; i < b && !r; i++) {
		u64 vc = s->v[i];
		struct cowchain_entry ce, pe;
		struct cc_block *leaf;

		if (cowchain_layer_lookup(C, vc, &ce))
			continue;
		r = cc_leaf_get(P, vc, &leaf, m->err);
		if (r)
			break;
		cowchain_entry_unpack(&leaf->img->leaf.entry[vc & (COWCHAIN_LEAF_ENTRIES - 1)], &pe);
		if (ce.present) {
			if (!pe.phys) {
				struct cc_cent *cent;

				r = cc_alloc_data(P, &pe.phys, m->err);
				if (r)
					break;
				cent = cc_ctab_find(&P->used, pe.phys);
				if (cent)
					cent->owner = vc;
			}
			r = copy_bits(&cp, C, ce.present, ce.phys, pe.phys, m->err);
			pe.present |= ce.present;
			pe.zero &= ~ce.present;
		}
		if (!r && ce.zero) {
			u64 dropped = pe.present & ce.zero;

			pe.present &= ~ce.zero;
			if (zmark)
				pe.zero |= ce.zero;
			else
				pe.zero &= ~ce.zero;
			if (dropped && !pe.present) {
				r = cc_free_data(P, pe.phys, m->err);
				if (!r && ranges_add(&pr, pe.phys << cs, 1ull << cs))
					r = -ENOMEM;
				pe.phys = 0;
			} else {
				while (dropped && !r) {
					u32 k = (u32)__builtin_ctzll(dropped);

					dropped &= dropped - 1;
					if (ranges_add(&pr, (pe.phys << cs) + ((u64)k << ss), 1ull << ss))
						r = -ENOMEM;
				}
			}
			if (r == -ENOMEM)
				r = cc_failf(m->err, r, P->path, "out of memory");
		}
		if (!r)
			store(leaf, vc, &pe);
	}
	if (!r)
		r = cc_copy_flush(&cp, m->err);
	m->done += cp.done;
	cc_copy_done(&cp);
	/* (1) P holds the batch durably before C lets go of it. */
	if (!r)
		r = cowchain_layer_commit(P, m->err);
	if (!r)
		r = ranges_punch(&pr, P, m->err);
	free(pr.v);
	if (!r)
		r = set_merge(P, COWCHAIN_MERGE_FROM_CHILD, C->sb.uuid, end, m->err);
	/* (2) C lets go. */
	if (!r)
		r = drop_entries(C, s->v, a, b, m->err);
	/* (3) C's cursor. */
	if (!r)
		r = set_merge(C, COWCHAIN_MERGE_INTO_PARENT, P->sb.uuid, end, m->err);
	progress(m, "copy");
	return r;
}

static int relink(struct merge *m, const char *path, u32 kind, const u8 *uuid, u64 gen,
		  const char *target)
{
	struct cowchain_layer *l;
	int r = open_merge(path, &l, m->err);

	if (r)
		return r;
	l->sb.parent_kind = kind;
	memset(l->sb.parent_uuid, 0, COWCHAIN_UUID_SIZE);
	if (uuid)
		memcpy(l->sb.parent_uuid, uuid, COWCHAIN_UUID_SIZE);
	l->sb.parent_generation = kind == COWCHAIN_PARENT_LAYER ? gen : 0;
	memset(l->sb.locator, 0, sizeof(l->sb.locator));
	l->sb.locator_len = 0;
	if (target)
		r = cc_set_locator(&l->sb, target, path, m->err);
	/* One superblock write: the new link and the end of this layer's merge. */
	l->sb.flags &= ~COWCHAIN_SB_MERGING;
	l->sb.merge_state = 0;
	l->sb.merge_cursor = 0;
	memset(l->sb.merge_peer_uuid, 0, COWCHAIN_UUID_SIZE);
	if (!r)
		r = cc_sb_write(l, m->err);
	if (!r && kind == COWCHAIN_PARENT_NONE) {
		/* A root records no zero markers (FORMAT.md 6): drop them. */
		struct vcl s;
		size_t i;

		r = cc_list_entries(l, 0, &s, m->err);
		for (i = 0; !r && i < s.n; i++) {
			struct cowchain_entry e;
			struct cc_block *leaf = cc_leaf_of(l, s.v[i]);

			if (leaf && !cowchain_layer_lookup(l, s.v[i], &e) && e.zero) {
				e.zero = 0;
				store(leaf, s.v[i], &e);
			}
		}
		if (!r)
			free(s.v);
	}
	if (r) {
		l->failed = true;
		cowchain_layer_close(l, NULL);
		return r;
	}
	return cowchain_layer_close(l, m->err);
}

static int delete_layer(struct merge *m, const char *path)
{
	cc_io_step();
	if (unlink(path) && errno != ENOENT)
		return cc_fail(m->err, -errno, "cannot delete '%s': %s", path, strerror(errno));
	cc_sync_dir(path);
	return 0;
}

static int into_parent(struct merge *m)
{
	u64 newgen = m->csb.parent_generation + 1;
	struct vcl s = { 0 };
	size_t i, j;
	int r;

	r = open_merge(m->cpath, &m->c, m->err);
	if (!r)
		r = open_merge(m->ppath, &m->p, m->err);
	if (r)
		return r;
	if (!m->finished) {
		if (!(m->c->sb.flags & COWCHAIN_SB_MERGING))
			r = set_merge(m->c, COWCHAIN_MERGE_INTO_PARENT, m->p->sb.uuid, 0, m->err);
		if (!r && !(m->p->sb.flags & COWCHAIN_SB_MERGING))
			r = set_merge(m->p, COWCHAIN_MERGE_FROM_CHILD, m->c->sb.uuid,
				      m->c->sb.merge_cursor, m->err);
		if (!r)
			r = cc_list_entries(m->c, m->c->sb.merge_cursor, &s, m->err);
		for (i = 0; !r && i < s.n; i = j) {
			j = batch_end(m, m->c, &s, i);
			r = parent_batch(m, &s, i, j);
		}
		free(s.v);
		if (!r && m->c->sb.merge_cursor != m->c->vclusters)
			r = set_merge(m->p, COWCHAIN_MERGE_FROM_CHILD, m->c->sb.uuid,
				      m->c->vclusters, m->err);
		if (!r && m->c->sb.merge_cursor != m->c->vclusters)
			r = set_merge(m->c, COWCHAIN_MERGE_INTO_PARENT, m->p->sb.uuid,
				      m->c->vclusters, m->err);
		if (r)
			return r;
	}
	progress(m, "relink");
	for (i = 0; i < m->nkids; i++) {
		r = relink(m, m->kids[i].path, COWCHAIN_PARENT_LAYER, m->p->sb.uuid, newgen, m->ppath);
		if (r)
			return r;
	}
	if (m->p->sb.flags & COWCHAIN_SB_MERGING) {
		m->p->sb.generation = newgen;
		if (!m->nkids)
			m->p->sb.flags &= ~COWCHAIN_SB_SEALED;
		r = cowchain_layer_commit(m->p, m->err);
		if (!r)
			r = set_merge(m->p, 0, NULL, 0, m->err);
		if (r)
			return r;
	}
	progress(m, "delete");
	r = cowchain_layer_close(m->c, m->err);
	m->c = NULL;
	if (!r)
		r = delete_layer(m, m->cpath);
	return r;
}

/* ---- into the children -------------------------------------------------- */

/* What K reads from P in vcluster vc: data bits and zero bits to add. */
static void reads_from(const struct cowchain_entry *pe, const struct cowchain_entry *ke,
		       u64 *d, u64 *z)
{
	u64 bits = (pe->present | pe->zero) & ~(ke->present | ke->zero);

	*d = bits & pe->present;
	*z = bits & pe->zero;
}

static int child_batch(struct merge *m, struct kid *k, const struct vcl *s, size_t a, size_t b)
{
	struct cowchain_layer *P = m->p, *K = k->l;
	u32 cs = P->sb.cluster_shift, ss = P->sb.subblock_shift;
	bool zmark = P->sb.parent_kind != COWCHAIN_PARENT_NONE;
	struct cc_copier cp = { .sfd = P->fd, .dfd = K->fd, .spath = P->path, .dpath = K->path };
	u64 end = b < s->n ? s->v[b] : P->vclusters, tail_at = 0, tail_len = 0;
	u64 sbsize = 1ull << ss, psize = P->sb.virtual_size;
	size_t i;
	int r = 0;

	for (i = a; i < b && !r; i++) {
		u64 vc = s->v[i], d, z;
		struct cowchain_entry pe, ke = { 0, 0, 0 };
		struct cc_block *leaf;

		if (cowchain_layer_lookup(P, vc, &pe))
			continue;
		cowchain_layer_lookup(K, vc, &ke);
		reads_from(&pe, &ke, &d, &z);
		if (!zmark)
			z = 0;
		if (!d && !z)
			continue;
		r = cc_leaf_get(K, vc, &leaf, m->err);
		if (r)
			break;
		if (d && !ke.phys) {
			struct cc_cent *cent;

			r = cc_alloc_data(K, &ke.phys, m->err);
			if (r)
				break;
			cent = cc_ctab_find(&K->used, ke.phys);
			if (cent)
				cent->owner = vc;
		}
		if (d)
			r = copy_bits(&cp, P, d, pe.phys, ke.phys, m->err);
		/*
		 * A larger K reads the bytes of P's last, partial sub-block
		 * past P's end as zeros: make sure its copy holds zeros there.
		 */
		if (d && (psize & (sbsize - 1)) && K->sb.virtual_size > psize &&
		    vc == (psize - 1) >> cs) {
			u32 bit = (u32)(((psize - 1) & ((1ull << cs) - 1)) >> ss);

			if (d & (1ull << bit)) {
				tail_at = (ke.phys << cs) + (psize & ((1ull << cs) - 1));
				tail_len = sbsize - (psize & (sbsize - 1));
			}
		}
		ke.present |= d;
		ke.zero |= z;
		store(leaf, vc, &ke);
		k->copy_bytes += (u64)__builtin_popcountll(d) << ss;
	}
	if (!r)
		r = cc_copy_flush(&cp, m->err);
	m->done += cp.done;
	cc_copy_done(&cp);
	if (!r && tail_len) {
		static const u8 zeros[COWCHAIN_BLOCK_SIZE * 16];

		r = cc_pwrite(K->fd, zeros, (size_t)tail_len, tail_at);
		if (r)
			r = cc_failf(m->err, r, K->path, "cannot write data: %s", strerror(-r));
	}
	if (!r)
		r = cowchain_layer_commit(K, m->err);
	if (!r)
		r = set_merge(K, COWCHAIN_MERGE_FROM_PARENT, P->sb.uuid, end, m->err);
	return r;
}

/*
 * A child larger than a parent over a raw base reads zeros past the
 * parent's end; as a root over that base it would read the base there
 * (FORMAT.md 6: the base is clipped by the root's size).  Before the
 * relink, mask [P's end, min(K's end, base's end)) where K is transparent:
 * zero markers on whole sub-blocks, and the one sub-block straddling P's
 * end stored as data (what K reads now: P's view, then zeros).  K's view
 * does not change: it read zeros there, and the straddling sub-block's
 * bytes are the ones it read.
 */
static int mask_past_parent(struct merge *m, struct kid *k, struct cowchain_chain *pc,
			    u64 base_size)
{
	struct cowchain_layer *K = k->l;
	u32 cs = K->sb.cluster_shift, ss = K->sb.subblock_shift;
	u64 sbsize = 1ull << ss, psize = m->p->sb.virtual_size;
	u64 limit = base_size < K->sb.virtual_size ? base_size : K->sb.virtual_size, off;
	int r = 0;

	if (limit <= psize)
		return 0;
	for (off = psize & ~(sbsize - 1); off < limit && !r; ) {
		u64 vc = off >> cs, cend = (vc + 1) << cs;
		struct cowchain_entry e = { 0, 0, 0 };
		struct cc_block *leaf;
		u32 bit = (u32)((off & ((1ull << cs) - 1)) >> ss);

		cowchain_layer_lookup(K, vc, &e);
		if ((e.present | e.zero) & (1ull << bit)) {
			off += sbsize;
			continue;
		}
		r = cc_leaf_get(K, vc, &leaf, m->err);
		if (r)
			break;
		if (off < psize) {	/* the straddling sub-block: as data */
			u8 *buf = calloc(1, sbsize);

			if (!buf)
				return cc_fail(m->err, -ENOMEM, "out of memory");
			r = cowchain_read(pc, buf, off, psize - off, m->err);
			if (!r && !e.phys)
				r = cc_alloc_data(K, &e.phys, m->err);
			if (!r) {
				r = cc_pwrite(K->fd, buf, (size_t)sbsize, (e.phys << cs) + ((u64)bit << ss));
				if (r)
					r = cc_failf(m->err, r, K->path, "cannot write data: %s", strerror(-r));
			}
			free(buf);
			e.present |= 1ull << bit;
			off += sbsize;
		} else {
			for (; off < limit && off < cend; off += sbsize) {
				bit = (u32)((off & ((1ull << cs) - 1)) >> ss);
				if (!(e.present & (1ull << bit)))
					e.zero |= 1ull << bit;
			}
		}
		if (!r)
			store(leaf, vc, &e);
	}
	return r ? r : cowchain_layer_commit(K, m->err);
}

static int into_children(struct merge *m)
{
	const struct cowchain_sb *ps;
	struct vcl s = { 0 };
	size_t i, j, k;
	int r;

	r = open_merge(m->ppath, &m->p, m->err);
	for (k = 0; !r && k < m->nkids; k++)
		r = open_merge(m->kids[k].path, &m->kids[k].l, m->err);
	if (r)
		return r;
	ps = &m->p->sb;
	/*
	 * The peer is the child the user named (else the first): it is
	 * relinked last, so until the parent is deleted a merge named by it
	 * finds this one again (cc_find_leftover) rather than starting anew.
	 */
	if (!(ps->flags & COWCHAIN_SB_MERGING))
		r = set_merge(m->p, COWCHAIN_MERGE_INTO_CHILDREN,
			      m->cpath ? m->csb.uuid : m->nkids ? m->kids[0].sb.uuid : ps->uuid,
			      0, m->err);
	for (k = 0; !r && k < m->nkids; k++)
		if (!(m->kids[k].l->sb.flags & COWCHAIN_SB_MERGING))
			r = set_merge(m->kids[k].l, COWCHAIN_MERGE_FROM_PARENT, ps->uuid,
				      ps->merge_cursor, m->err);
	if (!r)
		r = cc_list_entries(m->p, ps->merge_cursor, &s, m->err);
	for (i = 0; !r && i < s.n; i = j) {
		u64 end;

		j = batch_end(m, m->p, &s, i);
		end = j < s.n ? s.v[j] : m->p->vclusters;
		for (k = 0; !r && k < m->nkids; k++)
			if (m->kids[k].l->sb.merge_cursor < end)
				r = child_batch(m, &m->kids[k], &s, i, j);
		/* Every K holds the batch: P lets go of it. */
		if (!r)
			r = drop_entries(m->p, s.v, i, j, m->err);
		if (!r)
			r = set_merge(m->p, COWCHAIN_MERGE_INTO_CHILDREN, ps->merge_peer_uuid,
				      end, m->err);
		progress(m, "copy");
	}
	free(s.v);
	if (!r && ps->merge_cursor != m->p->vclusters)
		r = set_merge(m->p, COWCHAIN_MERGE_INTO_CHILDREN, ps->merge_peer_uuid,
			      m->p->vclusters, m->err);
	if (!r && ps->parent_kind == COWCHAIN_PARENT_RAW) {
		struct cowchain_chain *pc = NULL;
		u64 bsize = 0;

		r = cowchain_chain_open(m->ppath, 0, &pc, m->err);
		if (!r)
			cowchain_chain_base(pc, &bsize);
		for (k = 0; !r && k < m->nkids; k++)
			if (m->kids[k].l->sb.virtual_size > ps->virtual_size)
				r = mask_past_parent(m, &m->kids[k], pc, bsize);
		cowchain_chain_close(pc, NULL);
	}
	for (k = 0; k < m->nkids; k++) {
		int r2 = cowchain_layer_close(m->kids[k].l, r ? NULL : m->err);

		m->kids[k].l = NULL;
		if (!r)
			r = r2;
	}
	if (r)
		return r;
	progress(m, "relink");
	for (k = 0; !r && k < m->nkids; k++)	/* the peer last */
		if (memcmp(m->kids[k].sb.uuid, ps->merge_peer_uuid, COWCHAIN_UUID_SIZE))
			r = relink(m, m->kids[k].path, ps->parent_kind, ps->parent_uuid,
				   ps->parent_generation, m->gp_target);
	for (k = 0; !r && k < m->nkids; k++)
		if (!memcmp(m->kids[k].sb.uuid, ps->merge_peer_uuid, COWCHAIN_UUID_SIZE))
			r = relink(m, m->kids[k].path, ps->parent_kind, ps->parent_uuid,
				   ps->parent_generation, m->gp_target);
	if (r)
		return r;
	progress(m, "delete");
	r = cowchain_layer_close(m->p, m->err);
	m->p = NULL;
	if (!r)
		r = delete_layer(m, m->ppath);
	return r;
}

/* ---- planning ------------------------------------------------------------ */


static void merge_free(struct merge *m)
{
	size_t k;

	if (m->c)
		cowchain_layer_close(m->c, NULL);
	if (m->p)
		cowchain_layer_close(m->p, NULL);
	for (k = 0; k < m->nkids; k++) {
		if (m->kids[k].l)
			cowchain_layer_close(m->kids[k].l, NULL);
		free(m->kids[k].path);
	}
	free(m->kids);
	free(m->ppath);
	free(m->cpath);
	free(m->gp_target);
	cc_strv_free(m->dirs, m->ndirs);
}

int cowchain_merge_plan(const char *layer, const struct cowchain_merge_opts *o,
			struct cowchain_merge_plan *plan, struct cowchain_error *err)
{
	struct merge m = { .o = o, .plan = plan, .err = err };
	int r;

	memset(plan, 0, sizeof(*plan));
	r = cc_merge_plan(&m, layer);
	merge_free(&m);
	return r;
}

int cowchain_merge(const char *layer, const struct cowchain_merge_opts *o,
		   struct cowchain_merge_plan *plan, struct cowchain_error *err)
{
	struct cowchain_merge_plan local;
	struct merge m = { .o = o, .err = err };
	struct timespec t1;
	int r;

	m.plan = plan ? plan : &local;
	memset(m.plan, 0, sizeof(*m.plan));
	r = cc_merge_plan(&m, layer);
	if (!r) {
		clock_gettime(CLOCK_MONOTONIC, &m.t0);
		m.total = m.plan->copy_bytes;
		r = m.dir == COWCHAIN_DIR_PARENT ? into_parent(&m) : into_children(&m);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		m.plan->seconds = (double)(t1.tv_sec - m.t0.tv_sec) +
				  (double)(t1.tv_nsec - m.t0.tv_nsec) / 1e9;
		m.plan->bytes_done = m.done;
	}
	merge_free(&m);
	if (!plan)
		cowchain_merge_plan_free(&local);
	return r;
}

void cowchain_merge_plan_free(struct cowchain_merge_plan *plan)
{
	size_t i;

	if (!plan)
		return;
	free(plan->parent_path);
	free(plan->child_path);
	cc_strv_free(plan->searched, plan->nsearched);
	for (i = 0; i < plan->nfiles; i++)
		free(plan->files[i].path);
	free(plan->files);
	memset(plan, 0, sizeof(*plan));
}
