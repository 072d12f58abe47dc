// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The resolved index (see index.h for the record layout and its cost).
 *
 * Build, in order:
 *  1. Sort all ancestor entries by (vcluster, layer): for each cluster the
 *     entries then come nearest-to-top first, which is the order in which
 *     FORMAT.md section 6 resolves a sub-block.
 *  2. For each cluster, walk its entries top-down keeping "covered", the
 *     sub-blocks already resolved; each layer serves (present & ~covered)
 *     and zeroes (zero & ~covered).  A cluster one layer serves entirely
 *     becomes a FULL record, anything else a PART record with sources.
 *  3. Records come out sorted by vcluster because the entries were.
 * Arrays are sized by a first counting pass so nothing is reallocated.
 */
#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>
#include "fault.h"
#define ix_alloc(n, size)	COWCHAIN_ALLOC(kvmalloc_array(n, size, GFP_KERNEL | __GFP_ZERO))
#define ix_free(p)		kvfree(p)
#define ix_sort(base, n, size, cmp)	sort(base, n, size, cmp, NULL)
#else
#include <stdlib.h>
#define ix_alloc(n, size)	calloc(n, size)
#define ix_free(p)		free(p)
#define ix_sort(base, n, size, cmp)	qsort(base, n, size, cmp)
#endif
#include "index.h"

enum { REC_FULL = 0, REC_PART = 1 };

/*
 * PART payload: aux index << 8 | has a zero mask << 7 | number of sources.
 * In aux: the sources, then the zero mask if any.
 */
#define PART_NSRC_BITS		7
#define PART_HASZ		(1ull << PART_NSRC_BITS)
#define PART_AUX_SHIFT		(PART_NSRC_BITS + 1)
#define NARROW_MASK_BITS	16	/* a one-word source's sub-block mask */
#define MIN_SHIFT		8
#define MIN_BUCKETS		1024

static int cmp_ientry(const void *a, const void *b)
{
	const struct cowchain_ientry *x = a, *y = b;

	if (x->vc != y->vc)
		return x->vc < y->vc ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return 0;
}

static u64 mask_of(u32 bits)
{
	return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

/* Bits needed to hold v (at least 1). */
static u32 bits_for(u64 v)
{
	return v ? 64 - (u32)__builtin_clzll(v) : 1;
}

static u64 make_rec(const struct cowchain_index *ix, u64 vc, u32 kind, u64 payload)
{
	return payload << (2 + ix->shift) | (vc & mask_of(ix->shift)) << 2 | kind;
}

static void put_src(const struct cowchain_index *ix, u64 *w, u64 mask, u32 layer, u64 phys)
{
	if (ix->src_words == 1) {
		*w = ((u64)layer << ix->src_phys_bits | phys) << NARROW_MASK_BITS | mask;
	} else {
		w[0] = mask;
		w[1] = (u64)layer << COWCHAIN_IPHYS_BITS | phys;
	}
}

static void get_src(const struct cowchain_index *ix, const u64 *w, u64 *mask,
		    u32 *layer, u64 *phys)
{
	if (ix->src_words == 1) {
		u64 lp = *w >> NARROW_MASK_BITS;

		*mask = *w & mask_of(NARROW_MASK_BITS);
		*layer = (u32)(lp >> ix->src_phys_bits);
		*phys = lp & mask_of(ix->src_phys_bits);
	} else {
		*mask = w[0];
		*layer = (u32)(w[1] >> COWCHAIN_IPHYS_BITS);
		*phys = w[1] & COWCHAIN_IPHYS_MASK;
	}
}

/*
 * Resolve the entries [i, j) of one cluster.  Without fill, count the
 * record and aux words it needs into *nrec and *naux; with fill, also
 * write them, and the bucket table up to the record's bucket.
 */
static void resolve_one(struct cowchain_index *ix, const struct cowchain_ientry *e,
			u64 i, u64 j, u64 *nrec, u64 *naux, u64 *nbucket, bool fill)
{
	u64 full = mask_of(ix->subblocks), covered = 0, zero = 0, vc = e[i].vc;
	u64 k, w = *naux, b;
	u32 n = 0;

	for (k = i; k < j && covered != full; k++) {
		u64 p = e[k].present & ~covered, z = e[k].zero & ~covered;

		if (p == full) {	/* only when nothing nearer covers any */
			if (fill)
				ix->rec[*nrec] = make_rec(ix, vc, REC_FULL,
					(u64)e[k].layer << ix->phys_bits | e[k].phys);
			goto record;
		}
		if (p) {
			if (fill)
				put_src(ix, &ix->aux[w], p, e[k].layer, e[k].phys);
			w += ix->src_words;
			n++;
		}
		zero |= z;
		covered |= p | z;
	}
	if (!covered)
		return;		/* empty entries only: nothing to record */
	if (fill) {
		ix->rec[*nrec] = make_rec(ix, vc, REC_PART, *naux << PART_AUX_SHIFT |
					  (zero ? PART_HASZ : 0) | n);
		if (zero)
			ix->aux[w] = zero;
	}
	*naux = w + !!zero;
record:
	if (fill)
		for (b = vc >> ix->shift; *nbucket <= b; (*nbucket)++)
			ix->bucket[*nbucket] = (u32)*nrec;
	(*nrec)++;
}

/*
 * Layer and source widths, from the largest layer and phys: known before
 * counting, since a source's size depends on them.
 */
static void set_src_width(struct cowchain_index *ix, u32 max_layer, u64 max_phys)
{
	ix->layer_bits = bits_for(max_layer);
	ix->src_phys_bits = 64 - NARROW_MASK_BITS - ix->layer_bits;
	ix->src_words = ix->subblocks <= NARROW_MASK_BITS &&
			bits_for(max_phys) <= ix->src_phys_bits ? 1 : 2;
}

/*
 * Bucket width from the counts (a table of at most one slot per record,
 * or MIN_BUCKETS), then what the record leaves for phys and for the aux
 * index.  -EINVAL if they do not fit.
 */
static int set_rec_width(struct cowchain_index *ix, u64 nrec, u64 naux, u64 max_vc,
			 u64 max_phys)
{
	u64 target = nrec > MIN_BUCKETS ? nrec : MIN_BUCKETS;
	u32 payload;

	ix->shift = MIN_SHIFT;
	while ((max_vc >> ix->shift) + 1 > target)
		ix->shift++;
	ix->nbuckets = (max_vc >> ix->shift) + 1;
	payload = 62 - ix->shift;
	if (ix->layer_bits + bits_for(max_phys) > payload ||
	    PART_AUX_SHIFT + bits_for(naux) > payload || nrec >= 0xffffffffull)
		return -EINVAL;
	ix->phys_bits = payload - ix->layer_bits;
	return 0;
}

int cowchain_index_build(struct cowchain_index *ix, u32 subblocks,
			 struct cowchain_ientry *ents, u64 n)
{
	u64 i, j, nrec, naux, nbucket, max_vc = 0, max_phys = 0;
	u32 max_layer = 0;
	int pass, r;

	memset(ix, 0, sizeof(*ix));
	if (!subblocks || subblocks > 64)
		return -EINVAL;
	ix->subblocks = subblocks;
	for (i = 0; i < n; i++) {
		if (ents[i].phys > COWCHAIN_IPHYS_MASK || ents[i].layer > COWCHAIN_ILAYER_MAX ||
		    (ents[i].present & ents[i].zero) ||
		    ((ents[i].present | ents[i].zero) & ~mask_of(subblocks)))
			return -EINVAL;
		if (ents[i].vc > max_vc)
			max_vc = ents[i].vc;
		if (ents[i].layer > max_layer)
			max_layer = ents[i].layer;
		if (ents[i].phys > max_phys)
			max_phys = ents[i].phys;
	}
	if (n)
		ix_sort(ents, n, sizeof(*ents), cmp_ientry);
	set_src_width(ix, max_layer, max_phys);

	/* Pass 0 counts, pass 1 fills. */
	for (pass = 0; pass < 2; pass++) {
		nrec = naux = nbucket = 0;
		for (i = 0; i < n; i = j) {
			for (j = i + 1; j < n && ents[j].vc == ents[i].vc; j++)
				;
			resolve_one(ix, ents, i, j, &nrec, &naux, &nbucket, pass);
		}
		if (pass)
			break;
		r = set_rec_width(ix, nrec, naux, max_vc, max_phys);
		if (r)
			return r;
		ix->rec = ix_alloc(nrec ? nrec : 1, sizeof(*ix->rec));
		ix->aux = ix_alloc(naux ? naux : 1, sizeof(*ix->aux));
		ix->bucket = ix_alloc(ix->nbuckets + 1, sizeof(*ix->bucket));
		if (!ix->rec || !ix->aux || !ix->bucket) {
			cowchain_index_free(ix);
			return -ENOMEM;
		}
	}
	while (nbucket <= ix->nbuckets)
		ix->bucket[nbucket++] = (u32)nrec;
	ix->nrec = nrec;
	ix->naux = naux;
	return 0;
}

void cowchain_index_free(struct cowchain_index *ix)
{
	ix_free(ix->rec);
	ix_free(ix->aux);
	ix_free(ix->bucket);
	ix->rec = NULL;
	ix->aux = NULL;
	ix->bucket = NULL;
	ix->nrec = ix->naux = ix->nbuckets = 0;
}

/* The record of vc, or NULL: its bucket, then a binary search of it. */
static const u64 *find_rec(const struct cowchain_index *ix, u64 vc)
{
	u64 b = vc >> ix->shift, off = vc & mask_of(ix->shift), lo, hi;

	if (b >= ix->nbuckets)
		return NULL;
	lo = ix->bucket[b];
	hi = ix->bucket[b + 1];
	while (lo < hi) {
		u64 mid = lo + (hi - lo) / 2;
		u64 k = (ix->rec[mid] >> 2) & mask_of(ix->shift);

		if (k == off)
			return &ix->rec[mid];
		if (k < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

u32 cowchain_index_lookup(const struct cowchain_index *ix, u64 vc, u32 sb,
			  struct cowchain_ires *res)
{
	const u64 *r = find_rec(ix, vc);
	u32 n = ix->subblocks, nsrc, k, layer;
	u64 bit = 1ull << sb, payload, data = 0, zero = 0, mask, phys;
	const u64 *w;

	res->layer = 0;
	res->phys = 0;
	if (!r) {
		res->kind = COWCHAIN_I_BELOW;
		return n - sb;
	}
	payload = *r >> (2 + ix->shift);
	if ((*r & 3) == REC_FULL) {
		res->kind = COWCHAIN_I_DATA;
		res->layer = (u32)(payload >> ix->phys_bits);
		res->phys = payload & mask_of(ix->phys_bits);
		return n - sb;
	}
	w = &ix->aux[payload >> PART_AUX_SHIFT];
	nsrc = (u32)(payload & mask_of(PART_NSRC_BITS));
	if (payload & PART_HASZ)
		zero = w[nsrc * ix->src_words];
	if (zero & bit) {
		res->kind = COWCHAIN_I_ZERO;
		return cowchain_run_of(zero, sb, n);
	}
	for (k = 0; k < nsrc; k++, w += ix->src_words) {
		get_src(ix, w, &mask, &layer, &phys);
		if (mask & bit) {
			res->kind = COWCHAIN_I_DATA;
			res->layer = layer;
			res->phys = phys;
			return cowchain_run_of(mask, sb, n);
		}
		data |= mask;
	}
	/* not zero, no source: below, until the next sub-block something holds */
	res->kind = COWCHAIN_I_BELOW;
	for (; k < nsrc; k++, w += ix->src_words) {
		get_src(ix, w, &mask, &layer, &phys);
		data |= mask;
	}
	return cowchain_run_of(~(data | zero), sb, n);
}

u64 cowchain_index_bytes(const struct cowchain_index *ix)
{
	return (ix->nrec + ix->naux) * sizeof(u64) + (ix->nbuckets + 1) * sizeof(u32);
}
