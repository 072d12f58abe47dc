/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cowchain metadata: opening and validating a chain, the in-core state
 * of the writable top layer, and committing it through the journal.
 *
 * The target (target.c) reaches the on-disk format only through this
 * header.  Lifetime: cowchain_md_open() in the constructor (may sleep, does
 * metadata I/O), cowchain_md_close() in the destructor.
 *
 * Locking, in the order they nest:
 *   commit_lock  mutex; every function that does metadata I/O takes it
 *                (commit, checkpoint, superblock writes, copy-up allocation
 *                of index blocks).  Only the worker and ctr/dtr/postsuspend
 *                call them.
 *   alloc_lock   spinlock, held briefly: creates top entries and hands out
 *                clusters; taken in map().
 *   bits_lock    seqlock over every top entry's present/zero bitmaps:
 *                readers (map) never block and retry; writers are end_io
 *                and the worker (irq-safe).
 *   entries' own xa_lock (irq-safe): the dirty mark.
 * And no lock: ioc, per-CPU counts of the bios map() sent to the top's
 * data clusters, which a commit drains before it recycles freed clusters.
 */
#ifndef DM_COWCHAIN_METADATA_H
#define DM_COWCHAIN_METADATA_H

#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/seqlock.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/xarray.h>
#include "format.h"
#include "index.h"
#include "journal.h"

#define COWCHAIN_DIRTY	XA_MARK_0

struct cowchain_layer {
	struct dm_dev *dev;
	struct cowchain_sb sb;
	u64 dev_blocks;
	/* journal images replayed at open: home -> 4 KiB copy */
	struct xarray images;
	struct cowchain_journal_pos jend;
	u64 replayed;
};

/*
 * The top layer's entry for one vcluster.  phys is set once under
 * alloc_lock (and cleared by the worker when the cluster empties);
 * present/zero change under bits_lock.  32 bytes.
 *
 * A cluster with a data cluster, no zero markers, nothing in flight and
 * not busy, is kept packed instead when cowchain_packable() says so: its
 * slot in md->entries holds a value (cowchain_pack), 8 bytes, and no
 * tent.  The commit packs such entries (commit.c pack_entry), activation
 * loads them packed, and __cowchain_md_get_entry() unpacks one when a
 * writer needs the tent (a first write into a partly written cluster, a
 * discard or write-zeroes).  Tents come from a
 * SLAB_TYPESAFE_BY_RCU cache: a reader (read_entry(), under rcu_read_lock
 * and bits_lock) may still touch a tent that was just packed and freed;
 * the swap is made under bits_lock, so that reader retries.
 */
struct cowchain_tent {
	u64 phys;
	u64 present;
	u64 zero;
	atomic_t inflight;	/* first writes in flight into this cluster */
	u32 busy;		/* worker owns the cluster (copy-up, discard) */
};

/*
 * A packed entry: the data cluster number in the low 47 bits and, above
 * them, the sub-blocks that are not present, so that a full cluster's
 * value is its data cluster number.  Any full cluster packs; a partly
 * written one only when clusters have at most 16 sub-blocks (the holes
 * must fit the value's 63 bits).
 */
#define COWCHAIN_PACK_PHYS_BITS	47
#define COWCHAIN_PACK_HOLE_BITS	16

static inline bool cowchain_packable(u32 subblocks, u64 phys, u64 present, u64 zero)
{
	return phys && present && !zero && phys < (1ull << COWCHAIN_PACK_PHYS_BITS) &&
	       (present == cowchain_full_mask(subblocks) ||
		subblocks <= COWCHAIN_PACK_HOLE_BITS);
}

static inline void *cowchain_pack(u32 subblocks, u64 phys, u64 present)
{
	return xa_mk_value((cowchain_full_mask(subblocks) & ~present)
			   << COWCHAIN_PACK_PHYS_BITS | phys);
}

static inline void cowchain_unpack(u32 subblocks, const void *v, u64 *phys, u64 *present)
{
	u64 x = xa_to_value(v);

	*phys = x & ((1ull << COWCHAIN_PACK_PHYS_BITS) - 1);
	*present = cowchain_full_mask(subblocks) & ~(x >> COWCHAIN_PACK_PHYS_BITS);
}

/* A map block of the top, in core. */
struct cowchain_mblk {
	u64 home;
	u64 ptr[COWCHAIN_PTR_ENTRIES];
};

struct cowchain_extent {
	u64 start, len;
};

/* Per CPU: bios counted into each of the two I/O epochs, and ended. */
struct cowchain_iocount {
	unsigned long begun[2], ended[2];
};

struct cowchain_md {
	struct dm_io_client *io;
	unsigned int nlayers;		/* top + ancestors */
	struct cowchain_layer *layers;	/* [0] is the top */
	struct dm_dev *base;
	sector_t base_sectors;
	bool writable;
	sector_t table_len;

	/* geometry, the same in every layer */
	u32 cluster_shift, subblock_shift, subblocks;
	u64 vclusters;

	struct cowchain_index ix;	/* every ancestor, resolved */

	/* ---- the top layer */
	struct mutex commit_lock;
	spinlock_t alloc_lock;
	seqlock_t bits_lock;
	struct xarray entries;		/* vcluster -> tent, or packed phys */
	u64 *roots;			/* root table, root_blocks * 256 */
	struct xarray maps;		/* map index -> cowchain_mblk */
	struct xarray dirty_meta;	/* home -> kind|index (maps, roots) */
	/* free clusters: sorted extents, consumed from ext_cur */
	struct cowchain_extent *ext;
	u64 next_ext, n_ext, cap_ext;
	u64 *recycled;			/* freed and committed, reusable */
	u64 n_recycled, cap_recycled;
	u64 *pending_free;		/* freed, reusable after next commit */
	u64 n_pending, cap_pending;
	/*
	 * Bios sent to the top's data clusters by map (reads, overwrites),
	 * counted per CPU in two epochs: a freed cluster is recycled only
	 * after every bio that may have looked it up before the free has
	 * ended (cowchain_md_io_begin, commit.c drain_io).
	 */
	struct cowchain_iocount __percpu *ioc;
	unsigned long ioc_epoch;	/* commit_lock */
	bool ioc_waiting;
	wait_queue_head_t ioc_wait;
	u64 free_clusters;		/* ext + recycled */
	u64 allocated;			/* data clusters held by the top */
	u64 meta_next, meta_end;	/* metadata blocks left in current cluster */
	/* free 4 KiB blocks in the metadata clusters found at open (FORMAT.md 2) */
	u64 *meta_free;
	u64 n_meta_free, next_meta_free;
	u64 meta_clusters;		/* metadata clusters the top uses */
	u64 meta_homed;			/* map and leaf blocks with a home */
	u64 meta_worst;			/* map and leaf blocks the disk can need */
	/* journal */
	u64 j_head, j_tail, j_seq;
	bool j_empty;
	bool gen_bumped;
	/*
	 * A commit is under way: the entries it took (their dirty marks
	 * cleared, some packed) are not on disk until it ends.  Read in map
	 * (a flush, a FUA overwrite) after the marks and the entry.
	 */
	bool committing;
	u64 commits;
	void *blockbuf;			/* one 4 KiB scratch block (commit_lock) */
};

struct cowchain_open_args {
	struct dm_dev **devs;		/* top, then ancestors parent-first */
	unsigned int ndevs;
	struct dm_dev *base;
	bool writable;
	sector_t table_len;
};

/* Module load and unload: the entry cache. */
int cowchain_md_init(void);
void cowchain_md_exit(void);

/*
 * Open and validate the chain.  May sleep.  On failure returns -errno and
 * points *error at a static reason (for ti->error); details go to the log.
 * The caller then calls cowchain_md_close() (which takes half-built
 * state).  dm_devs stay owned by the caller.
 */
int cowchain_md_open(struct cowchain_md *md, const struct cowchain_open_args *a,
		     const char *devname, char **error);
void cowchain_md_close(struct cowchain_md *md);

/*
 * Commit every dirty change of the top through one journal transaction
 * (or several when it is large), checkpointing first when the journal is
 * full.  Sleeps; takes commit_lock.  0 or -errno (the caller fails the
 * device).
 */
int cowchain_md_commit(struct cowchain_md *md);
/* Commit, then write every journalled image home and advance the head. */
int cowchain_md_checkpoint(struct cowchain_md *md);
/*
 * Preresume: if the top's superblock changed on disk since it was read
 * (another table wrote the layer after this one was loaded), read the
 * top's index again.  Call only while no I/O runs through this table
 * (suspended, worker idle).  Sleeps.  0, or -errno with *error set.
 */
int cowchain_md_refresh(struct cowchain_md *md, const char *devname, char **error);
/* Set NEEDS_CHECK in the top's superblock; best effort. */
void cowchain_md_set_needs_check(struct cowchain_md *md);

static inline bool cowchain_md_dirty(struct cowchain_md *md)
{
	return xa_marked(&md->entries, COWCHAIN_DIRTY) ||
	       !xa_empty(&md->dirty_meta) || md->n_pending;
}

/*
 * Whether what a flush must make durable is on disk already: nothing
 * dirty, and no commit under way that took the last changes.  Any context.
 */
static inline bool cowchain_md_synced(struct cowchain_md *md)
{
	if (cowchain_md_dirty(md))
		return false;
	smp_rmb();	/* the marks before committing: pairs with commit_marked() */
	return !READ_ONCE(md->committing);
}

/* Mark a vcluster's entry dirty; any context. */
static inline void cowchain_md_mark_dirty(struct cowchain_md *md, u64 vc)
{
	unsigned long flags;

	xa_lock_irqsave(&md->entries, flags);
	__xa_set_mark(&md->entries, vc, COWCHAIN_DIRTY);
	xa_unlock_irqrestore(&md->entries, flags);
}

/*
 * Find or create the top entry for vc (a tent: a packed entry is
 * unpacked) and give it a data cluster.  Call without alloc_lock; returns
 * the entry WITH alloc_lock held (so it cannot be packed meanwhile), or,
 * without it, ERR_PTR(-ENOMEM) (try again from the worker) or
 * ERR_PTR(-ENOSPC).  gfp: GFP_NOWAIT from map, GFP_NOIO from the worker.
 */
struct cowchain_tent *__cowchain_md_get_cluster(struct cowchain_md *md, u64 vc,
						gfp_t gfp);
/* The same without giving the entry a data cluster (no -ENOSPC). */
struct cowchain_tent *__cowchain_md_get_entry(struct cowchain_md *md, u64 vc,
					      gfp_t gfp);
/* Synchronous data I/O in sectors (copy-up); may sleep. */
int cowchain_md_io(struct cowchain_md *md, struct dm_dev *dev, sector_t sector,
		   sector_t count, void *buf, blk_opf_t opf);
/*
 * A bio is about to be looked up and maybe sent to a data cluster of the
 * top, which a discard may free meanwhile: count it first, and give the
 * epoch returned to cowchain_md_io_end() once it has ended.  The barrier
 * orders the count before the lookup and pairs with the one in drain_io()
 * between the frees and reading the counts: either the drain sees this bio
 * counted and waits for it, or the lookup sees the cluster freed.
 */
static inline u8 cowchain_md_io_begin(struct cowchain_md *md)
{
	u8 e = READ_ONCE(md->ioc_epoch) & 1;

	this_cpu_inc(md->ioc->begun[e]);
	smp_mb();
	return e;
}

/* Any context, any CPU (the counts are summed over every CPU). */
static inline void cowchain_md_io_end(struct cowchain_md *md, u8 e)
{
	smp_mb();	/* the bio is done with the cluster before it counts */
	this_cpu_inc(md->ioc->ended[e]);
	smp_mb();	/* the count before ioc_waiting: pairs with drain_io() */
	if (unlikely(READ_ONCE(md->ioc_waiting)))
		wake_up(&md->ioc_wait);
}

/*
 * Free clusters a data allocation must leave: enough for every map and
 * leaf block the virtual disk can still need (meta_worst less those with a
 * home) beyond the free blocks of the metadata clusters already open.  The
 * layout's capacity holds every data cluster and all of that, so a top
 * can take its whole virtual disk; on a smaller device (a block-device
 * layer) the data runs out first and the index can still be written.
 * alloc_lock.
 */
static inline u64 cowchain_md_reserve(const struct cowchain_md *md)
{
	u64 need = md->meta_worst > md->meta_homed ? md->meta_worst - md->meta_homed : 0;
	u64 have = (md->n_meta_free - md->next_meta_free) + (md->meta_end - md->meta_next);
	u32 shift = md->cluster_shift - COWCHAIN_BLOCK_SHIFT;

	return need > have ? (need - have + (1ull << shift) - 1) >> shift : 0;
}

/* Room for extra freed clusters (worker, before freeing; may sleep). */
int cowchain_md_reserve_free(struct cowchain_md *md, u64 extra);
/* The entry's data cluster is no longer used: free it after the next commit. */
int __cowchain_md_free_cluster(struct cowchain_md *md, struct cowchain_tent *t);

#endif /* DM_COWCHAIN_METADATA_H */
