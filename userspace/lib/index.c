// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The in-memory index of one layer.
 *
 * The root table is an array; map and leaf blocks live in a hash table
 * keyed by (kind, first vcluster) and a second one keyed by block number
 * (to refuse a block reached twice and to place new blocks).  A cluster
 * entry is read straight from its leaf image, so lookup is two hash probes
 * and memory follows the blocks the layer holds, never the virtual size.
 * Used physical clusters sit in an open-addressing table, which is also
 * how free space is derived (FORMAT.md 9): anything in
 * [data_start, capacity) absent from it is free.
 *
 * Loading walks root -> map -> leaf with every block validated by
 * format.c, then walks all entries, so a data cluster that collides with
 * a metadata cluster is found whatever the order on disk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static size_t hash64(u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (size_t)x;
}

/* ---- block table ---------------------------------------------------- */

static size_t key_hash(enum cowchain_block_kind k, u64 key)
{
	return hash64(key * 4 + (u64)k);
}

struct cc_block *cc_btab_find(const struct cc_btab *t, enum cowchain_block_kind k, u64 key)
{
	struct cc_block *b;

	if (!t->nbuckets)
		return NULL;
	for (b = t->by_key[key_hash(k, key) & (t->nbuckets - 1)]; b; b = b->next)
		if (b->kind == k && b->key == key)
			return b;
	return NULL;
}

struct cc_block *cc_btab_find_nr(const struct cc_btab *t, u64 blocknr)
{
	struct cc_block *b;

	if (!t->nbuckets)
		return NULL;
	for (b = t->by_nr[hash64(blocknr) & (t->nbuckets - 1)]; b; b = b->bnext)
		if (b->blocknr == blocknr)
			return b;
	return NULL;
}

static void btab_link(struct cc_btab *t, struct cc_block *b)
{
	size_t m = t->nbuckets - 1;
	size_t hk = key_hash(b->kind, b->key) & m, hn = hash64(b->blocknr) & m;

	b->next = t->by_key[hk];
	t->by_key[hk] = b;
	b->bnext = t->by_nr[hn];
	t->by_nr[hn] = b;
}

int cc_btab_insert(struct cc_btab *t, struct cc_block *b)
{
	if (t->count + 1 > t->nbuckets) {
		size_t n = t->nbuckets ? t->nbuckets * 2 : 64, i;
		struct cc_block **ok = t->by_key, **on = t->by_nr;
		size_t oldn = t->nbuckets;

		t->by_key = calloc(n, sizeof(*t->by_key));
		t->by_nr = calloc(n, sizeof(*t->by_nr));
		if (!t->by_key || !t->by_nr) {
			free(t->by_key);
			free(t->by_nr);
			t->by_key = ok;
			t->by_nr = on;
			return -ENOMEM;
		}
		t->nbuckets = n;
		for (i = 0; i < oldn; i++) {
			struct cc_block *x = ok[i], *nx;

			for (; x; x = nx) {
				nx = x->next;
				btab_link(t, x);
			}
		}
		free(ok);
		free(on);
	}
	btab_link(t, b);
	t->count++;
	return 0;
}

void cc_btab_free(struct cc_btab *t)
{
	size_t i;

	for (i = 0; i < t->nbuckets; i++) {
		struct cc_block *b = t->by_key[i], *nb;

		for (; b; b = nb) {
			nb = b->next;
			cc_block_free(b);
		}
	}
	free(t->by_key);
	free(t->by_nr);
	memset(t, 0, sizeof(*t));
}

struct cc_block *cc_block_new(enum cowchain_block_kind kind, u64 key, u64 blocknr)
{
	struct cc_block *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->img = calloc(1, COWCHAIN_BLOCK_SIZE);
	if (!b->img) {
		free(b);
		return NULL;
	}
	b->kind = kind;
	b->key = key;
	b->blocknr = blocknr;
	return b;
}

void cc_block_free(struct cc_block *b)
{
	if (b) {
		free(b->img);
		free(b);
	}
}

static int cmp_block(const void *a, const void *b)
{
	const struct cc_block *x = *(struct cc_block *const *)a;
	const struct cc_block *y = *(struct cc_block *const *)b;

	return x->key < y->key ? -1 : x->key > y->key;
}

struct cc_block **cc_blocks_sorted(const struct cowchain_layer *l,
				   enum cowchain_block_kind kind, size_t *n)
{
	const struct cc_btab *t = &l->blocks;
	struct cc_block **v = malloc((t->count + 1) * sizeof(*v));
	size_t i, k = 0;

	if (!v)
		return NULL;
	for (i = 0; i < t->nbuckets; i++) {
		struct cc_block *b;

		for (b = t->by_key[i]; b; b = b->next)
			if (b->kind == kind)
				v[k++] = b;
	}
	qsort(v, k, sizeof(*v), cmp_block);
	*n = k;
	return v;
}

/* ---- used-cluster table --------------------------------------------- */

struct cc_cent *cc_ctab_find(const struct cc_ctab *t, u64 phys)
{
	size_t m, i;

	if (!t->nslots)
		return NULL;
	m = t->nslots - 1;
	for (i = hash64(phys) & m;; i = (i + 1) & m) {
		if (!t->slots[i].used)
			return NULL;
		if (t->slots[i].phys == phys)
			return &t->slots[i];
	}
}

static struct cc_cent *ctab_put(struct cc_ctab *t, u64 phys)
{
	size_t m = t->nslots - 1, i;

	for (i = hash64(phys) & m;; i = (i + 1) & m) {
		if (!t->slots[i].used) {
			memset(&t->slots[i], 0, sizeof(t->slots[i]));
			t->slots[i].used = true;
			t->slots[i].phys = phys;
			t->count++;
			return &t->slots[i];
		}
		if (t->slots[i].phys == phys)
			return &t->slots[i];
	}
}

struct cc_cent *cc_ctab_add(struct cc_ctab *t, u64 phys)
{
	struct cc_cent *e = cc_ctab_find(t, phys);

	if (e)
		return e;
	if ((t->count + 1) * 2 > t->nslots) {
		size_t n = t->nslots ? t->nslots * 2 : 256, i;
		struct cc_cent *old = t->slots;
		size_t oldn = t->nslots;

		t->slots = calloc(n, sizeof(*t->slots));
		if (!t->slots) {
			t->slots = old;
			return NULL;
		}
		t->nslots = n;
		t->count = 0;
		for (i = 0; i < oldn; i++)
			if (old[i].used)
				*ctab_put(t, old[i].phys) = old[i];
		free(old);
	}
	return ctab_put(t, phys);
}

/* Backward-shift deletion keeps probe chains intact. */
void cc_ctab_del(struct cc_ctab *t, u64 phys)
{
	size_t m, i, j;

	if (!t->nslots)
		return;
	m = t->nslots - 1;
	for (i = hash64(phys) & m;; i = (i + 1) & m) {
		if (!t->slots[i].used)
			return;
		if (t->slots[i].phys == phys)
			break;
	}
	t->slots[i].used = false;
	t->count--;
	for (j = (i + 1) & m; t->slots[j].used; j = (j + 1) & m) {
		size_t h = hash64(t->slots[j].phys) & m;

		/* Move j back to i unless its home lies cyclically in (i, j]. */
		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			t->slots[i] = t->slots[j];
			t->slots[j].used = false;
			i = j;
		}
	}
}

void cc_ctab_free(struct cc_ctab *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* ---- loading -------------------------------------------------------- */

static int load_child(struct cowchain_layer *l, enum cowchain_block_kind kind,
		      u64 p, u64 key, const char *parent_what, u64 parent_nr,
		      u32 slot, struct cowchain_error *err)
{
	struct cowchain_err ferr;
	struct cc_block *b;
	struct cc_cent *ce;
	int r;

	if (cc_btab_find_nr(&l->blocks, p))
		return cc_failf(err, -EUCLEAN, l->path,
				"%s %llu slot %u: block %llu is reached twice",
				parent_what, (unsigned long long)parent_nr, slot,
				(unsigned long long)p);
	b = cc_block_new(kind, key, p);
	if (!b)
		return cc_failf(err, -ENOMEM, l->path, "out of memory loading the index");
	r = cc_read_block(l, p, b->img, err);
	if (r) {
		cc_block_free(b);
		return r;
	}
	if (kind == COWCHAIN_BLK_MAP)
		r = cowchain_ptr_check(&b->img->ptr, COWCHAIN_MAP_MAGIC, p, key, &l->sb, &ferr);
	else
		r = cowchain_leaf_check(&b->img->leaf, p, key, &l->sb, &ferr);
	if (r) {
		cc_block_free(b);
		return cc_fail_fmt(err, -EUCLEAN, l->path, &ferr);
	}
	if (cc_btab_insert(&l->blocks, b)) {
		cc_block_free(b);
		return cc_failf(err, -ENOMEM, l->path, "out of memory loading the index");
	}
	ce = cc_ctab_add(&l->used, p / l->bpc);
	if (!ce)
		return cc_failf(err, -ENOMEM, l->path, "out of memory loading the index");
	ce->is_meta = true;
	ce->meta++;
	return 0;
}

static int load_entries(struct cowchain_layer *l, struct cc_block *leaf,
			struct cowchain_error *err)
{
	u32 i;

	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		struct cowchain_entry e;
		struct cc_cent *ce;

		cowchain_entry_unpack(&leaf->img->leaf.entry[i], &e);
		if (!e.phys)
			continue;
		ce = cc_ctab_find(&l->used, e.phys);
		if (ce && ce->is_meta)
			return cc_failf(err, -EUCLEAN, l->path,
					"leaf block %llu, cluster %llu: data cluster %llu is also a metadata cluster",
					(unsigned long long)leaf->blocknr,
					(unsigned long long)(leaf->key + i),
					(unsigned long long)e.phys);
		if (ce)
			return cc_failf(err, -EUCLEAN, l->path,
					"leaf block %llu, cluster %llu: data cluster %llu is already used by cluster %llu",
					(unsigned long long)leaf->blocknr,
					(unsigned long long)(leaf->key + i),
					(unsigned long long)e.phys,
					(unsigned long long)ce->owner);
		ce = cc_ctab_add(&l->used, e.phys);
		if (!ce)
			return cc_failf(err, -ENOMEM, l->path, "out of memory loading the index");
		ce->owner = leaf->key + i;
	}
	return 0;
}

int cc_index_load(struct cowchain_layer *l, struct cowchain_error *err)
{
	struct cowchain_err ferr;
	struct cc_block **v;
	size_t n, k;
	u64 r;
	u32 s;
	int ret;

	l->root = calloc(l->sb.root_blocks, sizeof(*l->root));
	if (!l->root)
		return cc_failf(err, -ENOMEM, l->path, "out of memory for the root table");
	for (r = 0; r < l->sb.root_blocks; r++) {
		u64 nr = l->sb.root_start + r;
		struct cc_block *b = cc_block_new(COWCHAIN_BLK_ROOT,
						  r << COWCHAIN_ROOT_SPAN_SHIFT, nr);

		if (!b)
			return cc_failf(err, -ENOMEM, l->path, "out of memory for the root table");
		l->root[r] = b;
		ret = cc_read_block(l, nr, b->img, err);
		if (ret)
			return ret;
		if (cowchain_ptr_check(&b->img->ptr, COWCHAIN_ROOT_MAGIC, nr, b->key,
				       &l->sb, &ferr))
			return cc_fail_fmt(err, -EUCLEAN, l->path, &ferr);
		for (s = 0; s < COWCHAIN_PTR_ENTRIES; s++) {
			u64 p = le64_to_cpu(b->img->ptr.ptr[s]);

			if (!p)
				continue;
			ret = load_child(l, COWCHAIN_BLK_MAP, p,
					 b->key + ((u64)s << COWCHAIN_MAP_SPAN_SHIFT),
					 "root block", nr, s, err);
			if (ret)
				return ret;
		}
	}

	v = cc_blocks_sorted(l, COWCHAIN_BLK_MAP, &n);
	if (!v)
		return cc_failf(err, -ENOMEM, l->path, "out of memory loading the index");
	for (k = 0, ret = 0; k < n && !ret; k++)
		for (s = 0; s < COWCHAIN_PTR_ENTRIES && !ret; s++) {
			u64 p = le64_to_cpu(v[k]->img->ptr.ptr[s]);

			if (p)
				ret = load_child(l, COWCHAIN_BLK_LEAF, p,
						 v[k]->key + ((u64)s << COWCHAIN_LEAF_SHIFT),
						 "map block", v[k]->blocknr, s, err);
		}
	free(v);
	if (ret)
		return ret;

	v = cc_blocks_sorted(l, COWCHAIN_BLK_LEAF, &n);
	if (!v)
		return cc_failf(err, -ENOMEM, l->path, "out of memory loading the index");
	for (k = 0, ret = 0; k < n && !ret; k++)
		ret = load_entries(l, v[k], err);
	free(v);
	return ret;
}

/* ---- lookup and growth ---------------------------------------------- */

struct cc_block *cc_leaf_of(const struct cowchain_layer *l, u64 c)
{
	return cc_btab_find(&l->blocks, COWCHAIN_BLK_LEAF,
			    c & ~(u64)(COWCHAIN_LEAF_ENTRIES - 1));
}

/* Child of parent at slot, created as kind with key when absent. */
static int child_get(struct cowchain_layer *l, struct cc_block *parent, u32 slot,
		     enum cowchain_block_kind kind, u64 key, struct cc_block **out,
		     struct cowchain_error *err)
{
	u32 magic = kind == COWCHAIN_BLK_MAP ? COWCHAIN_MAP_MAGIC : COWCHAIN_LEAF_MAGIC;
	struct cc_block *b;
	u64 nr;
	int r;

	if (parent->img->ptr.ptr[slot]) {
		*out = cc_btab_find(&l->blocks, kind, key);
		if (!*out)
			return cc_failf(err, -EIO, l->path, "index block for cluster %llu missing in memory",
					(unsigned long long)key);
		return 0;
	}
	r = cc_alloc_meta(l, &nr, err);
	if (r)
		return r;
	b = cc_block_new(kind, key, nr);
	if (!b || cc_btab_insert(&l->blocks, b)) {
		cc_block_free(b);
		return cc_failf(err, -ENOMEM, l->path, "out of memory growing the index");
	}
	cowchain_header_init(b->img, magic, nr, l->sb.uuid, key, 0);
	b->dirty = true;
	parent->img->ptr.ptr[slot] = cpu_to_le64(nr);
	parent->dirty = true;
	*out = b;
	return 0;
}

int cc_leaf_get(struct cowchain_layer *l, u64 c, struct cc_block **out,
		struct cowchain_error *err)
{
	struct cc_block *root, *map;
	u64 mkey = c & ~((1ull << COWCHAIN_MAP_SPAN_SHIFT) - 1);
	u64 lkey = c & ~(u64)(COWCHAIN_LEAF_ENTRIES - 1);
	int r;

	*out = cc_leaf_of(l, c);
	if (*out)
		return 0;
	root = l->root[c >> COWCHAIN_ROOT_SPAN_SHIFT];
	r = child_get(l, root, (c >> COWCHAIN_MAP_SPAN_SHIFT) & (COWCHAIN_PTR_ENTRIES - 1),
		      COWCHAIN_BLK_MAP, mkey, &map, err);
	if (r)
		return r;
	return child_get(l, map, (c >> COWCHAIN_LEAF_SHIFT) & (COWCHAIN_PTR_ENTRIES - 1),
			 COWCHAIN_BLK_LEAF, lkey, out, err);
}
