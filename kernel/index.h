/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The resolved index: one lookup structure for every ancestor of a chain.
 *
 * Ancestors never change while a device is live, so at activation the
 * entries of all of them are merged into one sorted array of resolved
 * records, one per virtual cluster that any ancestor holds.  A lookup is
 * one binary search in that array, whatever the depth of the chain and
 * whichever layer serves the data: a read served 64 layers down costs the
 * same as one served by the nearest ancestor.  The writable top layer is
 * not in here: it changes under I/O and is looked up first, separately
 * (see metadata.h).
 *
 * Records (8 bytes each, one u64), in buckets of 2^shift vclusters: a
 * bucket table gives each bucket's first record, so a lookup indexes the
 * bucket and binary-searches its records by the vcluster's low bits.  The
 * record holds those bits and a payload:
 *
 *   FULL  every sub-block of the cluster is served by one layer's data
 *         cluster: payload = layer, phys.  This is the common case and
 *         costs 8 bytes per cluster.
 *   PART  anything else (some sub-blocks zero, transparent down to the
 *         base, or served by several layers): payload = where its words
 *         start in aux, whether a zero mask comes first, and the number
 *         of sources that follow: one per layer that serves at least one
 *         sub-block, in chain order, each one word (sub-block mask in the
 *         low 16 bits, then layer and phys) when clusters have at most 16
 *         sub-blocks and every phys fits, else two (mask; layer, phys).
 *
 * The field widths follow the chain: layer_bits for its depth, shift so
 * that the bucket table has at most one 4-byte slot per record (or 1024),
 * and phys takes what is left of the record (a build with a data cluster
 * number too large for it fails with -EINVAL).  So a cluster costs
 * 8 bytes if one layer holds all of it, and 8 + 8 per layer serving it
 * otherwise (16 for a partly written cluster of one layer), plus 8 with
 * zero markers (a source takes 16 bytes when clusters have more than 16
 * sub-blocks).
 * Nothing is stored for a cluster no ancestor holds.  A sub-block no
 * ancestor holds nor zeroes is "below": it reads from the raw base, or
 * zeros.
 *
 * Building sorts every (vcluster, layer) entry once and resolves each
 * cluster in one pass: O(E log E) for E entries in all ancestors, with
 * 40 bytes of transient memory per entry.
 *
 * Pure logic: no locking (the index is immutable once built), allocation
 * only in cowchain_index_build(), which may sleep in the kernel.  Builds
 * unchanged in userspace (kshim.h).
 */
#ifndef COWCHAIN_INDEX_H
#define COWCHAIN_INDEX_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include "kshim.h"
#endif

/* One layer's entry, as fed to the builder; layer 0 is nearest the top. */
struct cowchain_ientry {
	u64 vc;
	u64 phys;
	u64 present;
	u64 zero;
	u32 layer;
	u32 pad;
};

struct cowchain_index {
	u32 subblocks;			/* per cluster, 1..64 */
	u32 shift;			/* log2 of vclusters per bucket */
	u32 layer_bits, phys_bits;	/* FULL payload: layer, then phys */
	u32 src_words;			/* words per PART source: 1 or 2 */
	u32 src_phys_bits;		/* phys bits in a one-word source */
	u64 nbuckets, nrec, naux;
	u32 *bucket;			/* nbuckets + 1 first-record indexes */
	u64 *rec;			/* sorted by vcluster */
	u64 *aux;			/* PART zero masks and sources */
};

/* Largest data cluster number and layer an index can hold at all. */
#define COWCHAIN_IPHYS_BITS	48
#define COWCHAIN_IPHYS_MASK	((1ull << COWCHAIN_IPHYS_BITS) - 1)
#define COWCHAIN_ILAYER_MAX	0xfffeu

enum cowchain_ikind {
	COWCHAIN_I_BELOW = 0,	/* no ancestor: raw base or zeros */
	COWCHAIN_I_ZERO,	/* zero marker in an ancestor */
	COWCHAIN_I_DATA,	/* data in ancestor `layer` at cluster `phys` */
};

struct cowchain_ires {
	enum cowchain_ikind kind;
	u32 layer;
	u64 phys;
};

/*
 * Build the index from n entries (reordered in place; the caller frees
 * them afterwards).  Entries must be valid per FORMAT.md section 5
 * (present & zero == 0, bits below subblocks); phys must be below 2^48
 * and fit the record (see above), layer at most COWCHAIN_ILAYER_MAX.
 * Returns 0 or -ENOMEM / -EINVAL.  May sleep.
 */
int cowchain_index_build(struct cowchain_index *ix, u32 subblocks,
			 struct cowchain_ientry *ents, u64 n);

/* Free what build allocated; safe on a zeroed or half-built index. */
void cowchain_index_free(struct cowchain_index *ix);

/*
 * Resolve sub-block sb of vcluster vc.  Returns how many sub-blocks from
 * sb on (at least 1, at most subblocks - sb) resolve the same way and,
 * for data, lie contiguously in the same data cluster.  Any context.
 */
u32 cowchain_index_lookup(const struct cowchain_index *ix, u64 vc, u32 sb,
			  struct cowchain_ires *res);

/* Bytes the index holds. */
u64 cowchain_index_bytes(const struct cowchain_index *ix);

/* Consecutive set bits of mask starting at bit sb, capped at n - sb. */
static inline u32 cowchain_run_of(u64 mask, u32 sb, u32 n)
{
	u64 m = ~(mask >> sb);
	u32 run = m ? (u32)__builtin_ctzll(m) : 64;

	return run < n - sb ? run : n - sb;
}

#endif /* COWCHAIN_INDEX_H */
