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

static int cmp_ientry(const void *a, const void *b)
{
	const struct cowchain_ientry *x = a, *y = b;

	if (x->vc != y->vc)
		return x->vc < y->vc ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return 0;
}

static u64 full_mask(u32 n)
{
	return n >= 64 ? ~0ull : (1ull << n) - 1;
}

/*
 * Resolve the entries [i, j) of one cluster.  With out == NULL only count
 * the part and source records it needs.
 */
static void resolve_one(struct cowchain_index *ix, const struct cowchain_ientry *e,
			u64 i, u64 j, u64 *npart, u64 *nsrc, bool fill)
{
	u64 full = full_mask(ix->subblocks), covered = 0, data = 0, zero = 0;
	u32 srcs = 0;
	u64 k;

	for (k = i; k < j && covered != full; k++) {
		u64 p = e[k].present & ~covered, z = e[k].zero & ~covered;

		if (p) {
			if (p == full && !covered) {
				if (fill) {
					struct cowchain_irec *r = &ix->rec[ix->nrec++];

					r->key = e[k].vc << 2 | REC_FULL;
					r->val = (u64)e[k].layer << COWCHAIN_IPHYS_BITS | e[k].phys;
				}
				return;
			}
			if (fill) {
				struct cowchain_isrc *s = &ix->src[*nsrc + srcs];

				s->mask = p;
				s->lphys = (u64)e[k].layer << COWCHAIN_IPHYS_BITS | e[k].phys;
			}
			srcs++;
		}
		data |= p;
		zero |= z;
		covered |= p | z;
	}
	if (!covered)
		return;		/* empty entries only: nothing to record */
	if (fill) {
		struct cowchain_irec *r = &ix->rec[ix->nrec++];
		struct cowchain_ipart *pt = &ix->part[*npart];

		r->key = e[i].vc << 2 | REC_PART;
		r->val = *npart;
		pt->data = data;
		pt->zero = zero;
		pt->src = (u32)*nsrc;
		pt->nsrc = srcs;
	}
	(*npart)++;
	*nsrc += srcs;
}

int cowchain_index_build(struct cowchain_index *ix, u32 subblocks,
			 struct cowchain_ientry *ents, u64 n)
{
	u64 i, j, nrec = 0, npart = 0, nsrc = 0;
	int pass;

	memset(ix, 0, sizeof(*ix));
	if (!subblocks || subblocks > 64)
		return -EINVAL;
	ix->subblocks = subblocks;
	for (i = 0; i < n; i++)
		if (ents[i].phys > COWCHAIN_IPHYS_MASK || ents[i].layer >= 0xffff ||
		    (ents[i].present & ents[i].zero) ||
		    ((ents[i].present | ents[i].zero) & ~full_mask(subblocks)))
			return -EINVAL;
	if (n)
		ix_sort(ents, n, sizeof(*ents), cmp_ientry);

	/* Pass 0 counts, pass 1 fills. */
	for (pass = 0; pass < 2; pass++) {
		npart = nsrc = 0;
		ix->nrec = 0;
		for (i = 0; i < n; i = j) {
			for (j = i + 1; j < n && ents[j].vc == ents[i].vc; j++)
				;
			if (!pass) {
				u64 before = npart;

				resolve_one(ix, ents, i, j, &npart, &nsrc, false);
				/* FULL records do not bump npart: count them apart */
				if (npart == before) {
					u64 k, any = 0;

					for (k = i; k < j; k++)
						any |= ents[k].present | ents[k].zero;
					if (any)
						nrec++;
				} else {
					nrec++;
				}
			} else {
				resolve_one(ix, ents, i, j, &npart, &nsrc, true);
			}
		}
		if (!pass) {
			ix->rec = ix_alloc(nrec ? nrec : 1, sizeof(*ix->rec));
			ix->part = ix_alloc(npart ? npart : 1, sizeof(*ix->part));
			ix->src = ix_alloc(nsrc ? nsrc : 1, sizeof(*ix->src));
			if (!ix->rec || !ix->part || !ix->src) {
				cowchain_index_free(ix);
				return -ENOMEM;
			}
		}
	}
	ix->npart = npart;
	ix->nsrc = nsrc;
	return 0;
}

void cowchain_index_free(struct cowchain_index *ix)
{
	ix_free(ix->rec);
	ix_free(ix->part);
	ix_free(ix->src);
	ix->rec = NULL;
	ix->part = NULL;
	ix->src = NULL;
	ix->nrec = ix->npart = ix->nsrc = 0;
}

static const struct cowchain_irec *find_rec(const struct cowchain_index *ix, u64 vc)
{
	u64 lo = 0, hi = ix->nrec;

	while (lo < hi) {
		u64 mid = lo + (hi - lo) / 2;
		u64 k = ix->rec[mid].key >> 2;

		if (k == vc)
			return &ix->rec[mid];
		if (k < vc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

u32 cowchain_index_lookup(const struct cowchain_index *ix, u64 vc, u32 sb,
			  struct cowchain_ires *res)
{
	const struct cowchain_irec *r = find_rec(ix, vc);
	const struct cowchain_ipart *pt;
	u32 n = ix->subblocks, k;
	u64 bit = 1ull << sb;

	res->layer = 0;
	res->phys = 0;
	if (!r) {
		res->kind = COWCHAIN_I_BELOW;
		return n - sb;
	}
	if ((r->key & 3) == REC_FULL) {
		res->kind = COWCHAIN_I_DATA;
		res->layer = (u32)(r->val >> COWCHAIN_IPHYS_BITS);
		res->phys = r->val & COWCHAIN_IPHYS_MASK;
		return n - sb;
	}
	pt = &ix->part[r->val];
	if (pt->zero & bit) {
		res->kind = COWCHAIN_I_ZERO;
		return cowchain_run_of(pt->zero, sb, n);
	}
	if (!(pt->data & bit)) {
		res->kind = COWCHAIN_I_BELOW;
		return cowchain_run_of(~(pt->data | pt->zero), sb, n);
	}
	for (k = 0; k < pt->nsrc; k++) {
		const struct cowchain_isrc *s = &ix->src[pt->src + k];

		if (s->mask & bit) {
			res->kind = COWCHAIN_I_DATA;
			res->layer = (u32)(s->lphys >> COWCHAIN_IPHYS_BITS);
			res->phys = s->lphys & COWCHAIN_IPHYS_MASK;
			return cowchain_run_of(s->mask, sb, n);
		}
	}
	/* unreachable for a well-built index: data bits all have a source */
	res->kind = COWCHAIN_I_BELOW;
	return 1;
}

u64 cowchain_index_bytes(const struct cowchain_index *ix)
{
	return ix->nrec * sizeof(*ix->rec) + ix->npart * sizeof(*ix->part) +
	       ix->nsrc * sizeof(*ix->src);
}
