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
 * Records (16 bytes each):
 *
 *   FULL  every sub-block of the cluster is served by one layer's data
 *         cluster: key = vcluster << 2 | FULL, val = layer << 48 | phys.
 *         This is the common case and costs 16 bytes per cluster.
 *   PART  anything else (some sub-blocks zero, transparent down to the
 *         base, or served by several layers): val indexes a part record
 *         (24 bytes: data mask, zero mask, first source, source count) and
 *         its sources (16 bytes each: sub-block mask, layer << 48 | phys),
 *         one per layer that serves at least one sub-block.
 *
 * So a cluster costs 16 bytes if one layer holds all of it, and
 * 16 + 24 + 16 * (layers serving it) otherwise; nothing is stored for a
 * cluster no ancestor holds.  A sub-block no ancestor holds nor zeroes is
 * "below": it reads from the raw base, or zeros.
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

struct cowchain_irec {
	u64 key;
	u64 val;
};

struct cowchain_ipart {
	u64 data;
	u64 zero;
	u32 src;
	u32 nsrc;
};

struct cowchain_isrc {
	u64 mask;
	u64 lphys;
};

struct cowchain_index {
	u32 subblocks;			/* per cluster, 1..64 */
	u64 nrec, npart, nsrc;
	struct cowchain_irec *rec;	/* sorted by vcluster */
	struct cowchain_ipart *part;
	struct cowchain_isrc *src;
};

#define COWCHAIN_IPHYS_BITS	48
#define COWCHAIN_IPHYS_MASK	((1ull << COWCHAIN_IPHYS_BITS) - 1)

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
 * (present & zero == 0, bits below subblocks); phys must be below 2^48.
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
