// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain: VirtualBox-style differencing images as a device-mapper
 * target.
 *
 * A chain is a writable top layer, its ancestors (sealed, read-only) down
 * to a root, and optionally a raw base image under the root.  The on-disk
 * format is docs/FORMAT.md; the table line, status and messages are
 * docs/dm-cowchain.rst.
 *
 * Design
 * ------
 * Everything that decides where a sector lives is in memory from the
 * moment the table is loaded (metadata.c): the ancestors as one resolved
 * index (index.c), the top as one entry per vcluster it holds.  So map()
 * serves reads and most writes by itself, without a worker hop and without
 * a lock on the read side:
 *
 *  - read: look the sub-block up in the top (a seqlock read section over
 *    its bitmaps), else in the resolved index (one binary search, whatever
 *    the depth), and remap to the top, an ancestor or the base, or
 *    zero-fill.  A bio is cut with dm_accept_partial_bio() where the
 *    answer changes, so every piece is one remap.
 *  - write over sub-blocks the top holds: remap in place.
 *  - first write of whole sub-blocks: give the vcluster a data cluster
 *    (in memory, under a short spinlock: two writers never allocate
 *    twice), remap, and set the present bits in end_io once the data is on
 *    the device.  Until then a racing read still goes to the old place, so
 *    it sees the old or the new data, nothing else.
 *  - REQ_PREFLUSH with no dirty metadata: straight to the top device.
 *
 * The worker handles the rest: writes that cover part of a sub-block not
 * yet held (copy-up of that one sub-block: read through the chain, merge,
 * write), discard and write-zeroes (zero markers), allocation retries when
 * GFP_NOWAIT failed, and flushes that need a commit, which it batches: all
 * flushes waiting when it runs are served by one commit.  A REQ_FUA write
 * that allocated is completed only after the commit that covers it.
 *
 * Modes, ordered by degradation: WRITE < OUT_OF_SPACE < READ_ONLY < FAIL.
 * set_mode() never leaves FAIL and raises a table event.
 */
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>
#include "metadata.h"

#define DM_MSG_PREFIX "cowchain"

#ifdef BLK_OPEN_WRITE
#define COWCHAIN_MODE_WRITE	BLK_OPEN_WRITE
#else
#define COWCHAIN_MODE_WRITE	FMODE_WRITE
#endif

enum cowchain_mode {
	CM_WRITE,
	CM_OUT_OF_SPACE,
	CM_READ_ONLY,
	CM_FAIL,
};

static const char *const mode_name[] = {
	[CM_WRITE] = "rw",
	[CM_OUT_OF_SPACE] = "out_of_space",
	[CM_READ_ONLY] = "ro",
	[CM_FAIL] = "fail",
};

struct cowchain_c {
	struct dm_target *ti;
	struct cowchain_md md;
	struct dm_dev **devs;		/* top, then ancestors */
	unsigned int ndevs;
	struct dm_dev *base;
	bool read_only;			/* the read_only feature */
	bool root;			/* the top has no parent and no base */
	enum cowchain_mode mode;

	spinlock_t lock;		/* the lists below */
	struct bio_list deferred;	/* copy-up, discard, allocation retry */
	struct bio_list flushes;	/* waiting for a commit */
	struct bio_list committed;	/* FUA writes done, waiting for a commit */
	bool commit_requested;
	bool checkpoint_requested;
	int checkpoint_result;
	bool suspended;			/* no timer re-arming */

	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work waker;	/* retries and the commit timer */
	struct work_struct event_work;
	unsigned long last_commit;
	void *cow_buf;			/* one sub-block, worker only */
	const char *name;
	struct mutex msg_lock;		/* one worker-run message at a time */
	struct list_head claim;		/* on live_tops while claimed */
};

/*
 * Tops of live (resumed) tables.  A layer may be written through one table
 * only: a second live table on the same top would keep its own in-core
 * index and allocate the same free clusters.  dm opens every table device
 * with one holder, so an exclusive open cannot tell two tables apart; the
 * claim is taken in preresume and given back in postsuspend and dtr (a
 * reload of the same device suspends the old table before it resumes the
 * new one).
 */
static LIST_HEAD(live_tops);
static DEFINE_MUTEX(live_tops_lock);

/* Per-bio state. */
struct per_bio {
	struct cowchain_tent *t;	/* first write: entry whose bits to set */
	u64 mask;
	u64 vc;
	bool commit_before_end;		/* REQ_FUA first write */
};

#define COMMIT_PERIOD	HZ

/*----------------------------------------------------------------
 * Modes
 *--------------------------------------------------------------*/

static void event_fn(struct work_struct *ws)
{
	struct cowchain_c *cc = container_of(ws, struct cowchain_c, event_work);

	dm_table_event(cc->ti->table);
}

static void set_mode(struct cowchain_c *cc, enum cowchain_mode m)
{
	enum cowchain_mode old = READ_ONCE(cc->mode);

	if (old == CM_FAIL || old == m)
		return;
	WRITE_ONCE(cc->mode, m);
	DMWARN_LIMIT("%s: switching to %s mode", cc->name, mode_name[m]);
	schedule_work(&cc->event_work);
}

static void metadata_operation_failed(struct cowchain_c *cc, const char *op, int r)
{
	DMERR_LIMIT("%s: metadata operation '%s' failed: error %d", cc->name, op, r);
	cowchain_md_set_needs_check(&cc->md);
	set_mode(cc, CM_READ_ONLY);
}

/*----------------------------------------------------------------
 * Lookup
 *--------------------------------------------------------------*/

enum src_kind { SRC_TOP, SRC_LAYER, SRC_ZERO, SRC_BELOW };

struct src {
	enum src_kind kind;
	unsigned int layer;	/* index into md.layers for SRC_LAYER */
	u64 phys;
};

static void read_entry(struct cowchain_md *md, u64 vc, u64 *phys, u64 *present, u64 *zero)
{
	struct cowchain_tent *t = xa_load(&md->entries, vc);
	unsigned int seq;

	*phys = *present = *zero = 0;
	if (!t)
		return;
	do {
		seq = read_seqbegin(&md->bits_lock);
		*phys = t->phys;
		*present = t->present;
		*zero = t->zero;
	} while (read_seqretry(&md->bits_lock, seq));
}

/*
 * Where sub-block sb of vc is read from; returns the number of sub-blocks
 * from sb on that read the same way, contiguously.  Any context.
 */
static u32 resolve(struct cowchain_md *md, u64 vc, u32 sb, struct src *s)
{
	u64 phys, present, zero, bit = 1ull << sb;
	struct cowchain_ires ir;
	u32 n = md->subblocks, run, run2;

	read_entry(md, vc, &phys, &present, &zero);
	if (present & bit) {
		s->kind = SRC_TOP;
		s->phys = phys;
		return cowchain_run_of(present, sb, n);
	}
	if (zero & bit) {
		s->kind = SRC_ZERO;
		return cowchain_run_of(zero, sb, n);
	}
	run = cowchain_run_of(~(present | zero), sb, n);
	run2 = cowchain_index_lookup(&md->ix, vc, sb, &ir);
	switch (ir.kind) {
	case COWCHAIN_I_DATA:
		s->kind = SRC_LAYER;
		s->layer = ir.layer + 1;
		s->phys = ir.phys;
		break;
	case COWCHAIN_I_ZERO:
		s->kind = SRC_ZERO;
		break;
	default:
		s->kind = SRC_BELOW;
		break;
	}
	return min(run, run2);
}

/*----------------------------------------------------------------
 * Bio helpers
 *--------------------------------------------------------------*/

static struct per_bio *pb_of(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct per_bio));
}

static void defer_bio(struct cowchain_c *cc, struct bio *bio, struct bio_list *l)
{
	unsigned long flags;

	spin_lock_irqsave(&cc->lock, flags);
	bio_list_add(l, bio);
	spin_unlock_irqrestore(&cc->lock, flags);
	queue_work(cc->wq, &cc->worker);
}

static void remap_to(struct bio *bio, struct dm_dev *dev, sector_t sector)
{
	bio_set_dev(bio, dev->bdev);
	bio->bi_iter.bi_sector = sector;
}

static sector_t phys_sector(struct cowchain_md *md, u64 phys, u64 in_cluster)
{
	return ((phys << md->cluster_shift) + in_cluster) >> SECTOR_SHIFT;
}

static void end_with(struct bio *bio, blk_status_t st)
{
	bio->bi_status = st;
	bio_endio(bio);
}

/*----------------------------------------------------------------
 * Read path (map)
 *--------------------------------------------------------------*/

static int map_read(struct cowchain_c *cc, struct bio *bio)
{
	struct cowchain_md *md = &cc->md;
	sector_t sector = dm_target_offset(cc->ti, bio->bi_iter.bi_sector);
	u64 off = (u64)sector << SECTOR_SHIFT;
	u64 vc = off >> md->cluster_shift;
	u64 in = off & ((1ull << md->cluster_shift) - 1);
	u32 sb = in >> md->subblock_shift, run;
	sector_t max;
	struct src s;

	run = resolve(md, vc, sb, &s);
	max = ((((u64)sb + run) << md->subblock_shift) - in) >> SECTOR_SHIFT;
	if (s.kind == SRC_BELOW && cc->base && sector < md->base_sectors)
		max = min_t(sector_t, max, md->base_sectors - sector);
	if (bio_sectors(bio) > max)
		dm_accept_partial_bio(bio, max);

	switch (s.kind) {
	case SRC_TOP:
		remap_to(bio, md->layers[0].dev, phys_sector(md, s.phys, in));
		return DM_MAPIO_REMAPPED;
	case SRC_LAYER:
		remap_to(bio, md->layers[s.layer].dev, phys_sector(md, s.phys, in));
		return DM_MAPIO_REMAPPED;
	case SRC_BELOW:
		if (cc->base && sector < md->base_sectors) {
			remap_to(bio, cc->base, sector);
			return DM_MAPIO_REMAPPED;
		}
		fallthrough;
	case SRC_ZERO:
		zero_fill_bio(bio);
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	return DM_MAPIO_KILL;
}

/*----------------------------------------------------------------
 * Write path (map, and the worker's retries)
 *--------------------------------------------------------------*/

enum { W_REMAPPED, W_DEFER, W_DONE };

/*
 * Map a write.  In map() (worker == false) the bio is first cut to a piece
 * that one decision covers; the worker only gets pieces cut that way.
 */
static int map_write(struct cowchain_c *cc, struct bio *bio, bool worker)
{
	struct cowchain_md *md = &cc->md;
	struct per_bio *pb = pb_of(bio);
	sector_t sector = dm_target_offset(cc->ti, bio->bi_iter.bi_sector);
	u64 off = (u64)sector << SECTOR_SHIFT;
	u64 vc = off >> md->cluster_shift;
	u64 in = off & ((1ull << md->cluster_shift) - 1);
	u64 sbsize = 1ull << md->subblock_shift;
	u32 sb = in >> md->subblock_shift, run, nfull;
	u64 end = in + bio->bi_iter.bi_size, phys, present, zero;
	struct cowchain_tent *t;

	if (READ_ONCE(cc->mode) >= CM_READ_ONLY) {
		end_with(bio, BLK_STS_IOERR);
		return W_DONE;
	}
	read_entry(md, vc, &phys, &present, &zero);
	if (present & (1ull << sb)) {
		run = cowchain_run_of(present, sb, md->subblocks);
		if (!worker && end > ((u64)sb + run) << md->subblock_shift)
			dm_accept_partial_bio(bio, ((((u64)sb + run) << md->subblock_shift) - in)
					      >> SECTOR_SHIFT);
		remap_to(bio, md->layers[0].dev, phys_sector(md, phys, in));
		return W_REMAPPED;
	}
	/* part of a sub-block the top does not hold: copy-up in the worker */
	nfull = (in & (sbsize - 1)) ? 0 : (u32)((end - in) >> md->subblock_shift);
	if (!nfull) {
		if (!worker && end > ((u64)sb + 1) * sbsize)
			dm_accept_partial_bio(bio, ((((u64)sb + 1) * sbsize) - in) >> SECTOR_SHIFT);
		return W_DEFER;
	}
	run = min(cowchain_run_of(~present, sb, md->subblocks), nfull);
	if (!worker && end > ((u64)sb + run) * sbsize)
		dm_accept_partial_bio(bio, ((((u64)sb + run) * sbsize) - in) >> SECTOR_SHIFT);

	/* first write of whole sub-blocks */
	t = __cowchain_md_get_cluster(md, vc, worker ? GFP_NOIO : GFP_NOWAIT);
	if (IS_ERR(t)) {
		if (PTR_ERR(t) == -ENOSPC) {
			set_mode(cc, CM_OUT_OF_SPACE);
			end_with(bio, BLK_STS_NOSPC);
			return W_DONE;
		}
		return W_DEFER;
	}
	spin_lock(&md->alloc_lock);
	if (t->busy) {
		spin_unlock(&md->alloc_lock);
		return W_DEFER;
	}
	atomic_inc(&t->inflight);
	phys = t->phys;
	spin_unlock(&md->alloc_lock);

	pb->t = t;
	pb->vc = vc;
	pb->mask = (run >= 64 ? ~0ull : ((1ull << run) - 1)) << sb;
	pb->commit_before_end = !!(bio->bi_opf & REQ_FUA);
	remap_to(bio, md->layers[0].dev, phys_sector(md, phys, in));
	return W_REMAPPED;
}

/*----------------------------------------------------------------
 * Target: map and end_io
 *--------------------------------------------------------------*/

static int cowchain_map(struct dm_target *ti, struct bio *bio)
{
	struct cowchain_c *cc = ti->private;
	struct per_bio *pb = pb_of(bio);

	pb->t = NULL;
	pb->commit_before_end = false;
	if (READ_ONCE(cc->mode) == CM_FAIL)
		return DM_MAPIO_KILL;

	if (bio->bi_opf & REQ_PREFLUSH) {
		/* a flush with nothing to commit goes straight to the top */
		if (cc->read_only || !cowchain_md_dirty(&cc->md)) {
			bio_set_dev(bio, cc->md.layers[0].dev->bdev);
			return DM_MAPIO_REMAPPED;
		}
		defer_bio(cc, bio, &cc->flushes);
		return DM_MAPIO_SUBMITTED;
	}

	switch (bio_op(bio)) {
	case REQ_OP_READ:
		return map_read(cc, bio);
	case REQ_OP_WRITE:
		if (cc->read_only)
			return DM_MAPIO_KILL;
		switch (map_write(cc, bio, false)) {
		case W_REMAPPED:
			return DM_MAPIO_REMAPPED;
		case W_DEFER:
			defer_bio(cc, bio, &cc->deferred);
			return DM_MAPIO_SUBMITTED;
		default:
			return DM_MAPIO_SUBMITTED;
		}
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		if (cc->read_only)
			return DM_MAPIO_KILL;
		defer_bio(cc, bio, &cc->deferred);
		return DM_MAPIO_SUBMITTED;
	default:
		return DM_MAPIO_KILL;
	}
}

static void set_bits(struct cowchain_md *md, struct cowchain_tent *t, u64 vc, u64 mask)
{
	unsigned long flags;

	write_seqlock_irqsave(&md->bits_lock, flags);
	t->present |= mask;
	t->zero &= ~mask;
	write_sequnlock_irqrestore(&md->bits_lock, flags);
	cowchain_md_mark_dirty(md, vc);
}

static int cowchain_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct cowchain_c *cc = ti->private;
	struct per_bio *pb = pb_of(bio);
	struct cowchain_tent *t = pb->t;

	if (!t)
		return DM_ENDIO_DONE;
	pb->t = NULL;
	/* the data is on the device: only now may the bits point at it */
	if (!*error)
		set_bits(&cc->md, t, pb->vc, pb->mask);
	atomic_dec(&t->inflight);
	if (pb->commit_before_end && !*error) {
		pb->commit_before_end = false;
		defer_bio(cc, bio, &cc->committed);
		return DM_ENDIO_INCOMPLETE;
	}
	return DM_ENDIO_DONE;
}

/*----------------------------------------------------------------
 * Worker: copy-up, discard, commits
 *--------------------------------------------------------------*/

/* Read sub-block sb of vc through the chain into buf. */
static int read_subblock(struct cowchain_c *cc, u64 vc, u32 sb, void *buf)
{
	struct cowchain_md *md = &cc->md;
	u64 sbsize = 1ull << md->subblock_shift;
	sector_t ns = sbsize >> SECTOR_SHIFT;
	sector_t vsec = ((vc << md->cluster_shift) + ((u64)sb << md->subblock_shift)) >> SECTOR_SHIFT;
	struct src s;

	resolve(md, vc, sb, &s);
	switch (s.kind) {
	case SRC_TOP:
		return cowchain_md_io(md, md->layers[0].dev,
				      phys_sector(md, s.phys, (u64)sb << md->subblock_shift),
				      ns, buf, REQ_OP_READ);
	case SRC_LAYER:
		return cowchain_md_io(md, md->layers[s.layer].dev,
				      phys_sector(md, s.phys, (u64)sb << md->subblock_shift),
				      ns, buf, REQ_OP_READ);
	case SRC_BELOW:
		memset(buf, 0, sbsize);
		if (cc->base && vsec < md->base_sectors)
			return cowchain_md_io(md, cc->base, vsec,
					      min_t(sector_t, ns, md->base_sectors - vsec),
					      buf, REQ_OP_READ);
		return 0;
	case SRC_ZERO:
		memset(buf, 0, sbsize);
		return 0;
	}
	return -EINVAL;
}

/*
 * Write [start, start+len) of sub-block sb of vc, taking the bytes from
 * bio (or zeros), over the sub-block's current content: copy-up.
 * Returns 0, -EAGAIN (the cluster is busy: retry later) or -errno.
 */
static int copy_up(struct cowchain_c *cc, u64 vc, u32 sb, u32 start, u32 len,
		   struct bio *bio)
{
	struct cowchain_md *md = &cc->md;
	u64 bit = 1ull << sb, phys, present, zero;
	struct cowchain_tent *t;
	int r;

	t = __cowchain_md_get_cluster(md, vc, GFP_NOIO);
	if (IS_ERR(t))
		return PTR_ERR(t);
	spin_lock(&md->alloc_lock);
	if (t->busy || atomic_read(&t->inflight)) {
		spin_unlock(&md->alloc_lock);
		return -EAGAIN;
	}
	t->busy = 1;
	spin_unlock(&md->alloc_lock);

	read_entry(md, vc, &phys, &present, &zero);
	if (present & bit)
		r = cowchain_md_io(md, md->layers[0].dev,
				   phys_sector(md, phys, (u64)sb << md->subblock_shift),
				   (1ull << md->subblock_shift) >> SECTOR_SHIFT,
				   cc->cow_buf, REQ_OP_READ);
	else
		r = read_subblock(cc, vc, sb, cc->cow_buf);
	if (r)
		goto out;
	if (bio) {
		struct bvec_iter iter;
		struct bio_vec bv;
		char *p = cc->cow_buf + start;

		bio_for_each_segment(bv, bio, iter) {
			memcpy_from_bvec(p, &bv);
			p += bv.bv_len;
		}
	} else {
		memset(cc->cow_buf + start, 0, len);
	}
	r = cowchain_md_io(md, md->layers[0].dev,
			   phys_sector(md, phys, (u64)sb << md->subblock_shift),
			   (1ull << md->subblock_shift) >> SECTOR_SHIFT,
			   cc->cow_buf, REQ_OP_WRITE);
	if (!r)
		set_bits(md, t, vc, bit);
out:
	spin_lock(&md->alloc_lock);
	t->busy = 0;
	spin_unlock(&md->alloc_lock);
	return r;
}

/*
 * Discard / write-zeroes over [off, off+len) of vcluster vc: every fully
 * covered sub-block gets its zero bit and loses its present bit; a cluster
 * left with no present bit loses its data cluster (free after the next
 * commit).  Write-zeroes zeroes partly covered sub-blocks by copy-up.
 */
static int zero_range(struct cowchain_c *cc, u64 vc, u64 in, u64 len, bool wz)
{
	struct cowchain_md *md = &cc->md;
	u64 sbsize = 1ull << md->subblock_shift, end = in + len, mask = 0;
	u32 first = DIV_ROUND_UP(in, sbsize), last = end / sbsize, i;
	struct cowchain_tent *t;
	int r;

	if (wz) {
		/* partial head and tail */
		if (in & (sbsize - 1)) {
			u32 sb = in / sbsize;
			u64 e = min(end, ((u64)sb + 1) * sbsize);

			r = copy_up(cc, vc, sb, in & (sbsize - 1), e - in, NULL);
			if (r)
				return r;
		}
		if ((end & (sbsize - 1)) && end / sbsize >= first) {
			u32 sb = end / sbsize;

			r = copy_up(cc, vc, sb, 0, end & (sbsize - 1), NULL);
			if (r)
				return r;
		}
	}
	for (i = first; i < last; i++)
		mask |= 1ull << i;
	if (!mask)
		return 0;
	r = cowchain_md_reserve_free(md, 1);
	if (r)
		return r;
	/*
	 * A root (no parent, no base) reads zeros wherever it holds nothing:
	 * it records no zero markers (FORMAT.md 6), so a cluster it does not
	 * hold needs no entry and no leaf block at all.
	 */
	if (cc->root) {
		t = xa_load(&md->entries, vc);
		if (!t)
			return 0;
	} else {
		t = __cowchain_md_get_entry(md, vc, GFP_NOIO);
		if (IS_ERR(t))
			return PTR_ERR(t);
	}
	spin_lock(&md->alloc_lock);
	if (t->busy || atomic_read(&t->inflight)) {
		spin_unlock(&md->alloc_lock);
		return -EAGAIN;
	}
	write_seqlock_irq(&md->bits_lock);
	if (!cc->root)
		t->zero |= mask;
	t->present &= ~mask;
	if (!t->present)
		__cowchain_md_free_cluster(md, t);
	write_sequnlock_irq(&md->bits_lock);
	spin_unlock(&md->alloc_lock);
	cowchain_md_mark_dirty(md, vc);
	return 0;
}

static int process_zeroes(struct cowchain_c *cc, struct bio *bio)
{
	struct cowchain_md *md = &cc->md;
	u64 off = (u64)dm_target_offset(cc->ti, bio->bi_iter.bi_sector) << SECTOR_SHIFT;
	u64 end = off + bio->bi_iter.bi_size, csize = 1ull << md->cluster_shift;
	bool wz = bio_op(bio) == REQ_OP_WRITE_ZEROES;
	int r;

	while (off < end) {
		u64 vc = off >> md->cluster_shift, in = off & (csize - 1);
		u64 len = min(end - off, csize - in);

		r = zero_range(cc, vc, in, len, wz);
		if (r)
			return r;
		off += len;
	}
	return 0;
}

/* Returns true if the bio must be retried later. */
static bool process_deferred(struct cowchain_c *cc, struct bio *bio,
			     struct bio_list *after_commit)
{
	struct cowchain_md *md = &cc->md;
	int r;

	if (READ_ONCE(cc->mode) >= CM_READ_ONLY) {
		end_with(bio, BLK_STS_IOERR);
		return false;
	}
	if (bio_op(bio) == REQ_OP_DISCARD || bio_op(bio) == REQ_OP_WRITE_ZEROES) {
		r = process_zeroes(cc, bio);
	} else {
		switch (map_write(cc, bio, true)) {
		case W_REMAPPED:
			dm_submit_bio_remap(bio, NULL);
			return false;
		case W_DONE:
			return false;
		default:
			break;
		}
		{
			u64 off = (u64)dm_target_offset(cc->ti, bio->bi_iter.bi_sector)
				  << SECTOR_SHIFT;
			u64 in = off & ((1ull << md->cluster_shift) - 1);
			u32 sb = in >> md->subblock_shift;
			u32 start = in & ((1ull << md->subblock_shift) - 1);

			r = copy_up(cc, off >> md->cluster_shift, sb, start,
				    bio->bi_iter.bi_size, bio);
		}
	}
	if (r == -EAGAIN || r == -ENOMEM)
		return true;
	if (r == -ENOSPC) {
		set_mode(cc, CM_OUT_OF_SPACE);
		end_with(bio, BLK_STS_NOSPC);
	} else if (r) {
		DMERR_LIMIT("%s: copy-up or zeroing failed: error %d", cc->name, r);
		end_with(bio, BLK_STS_IOERR);
	} else if (bio->bi_opf & REQ_FUA) {
		bio_list_add(after_commit, bio);
	} else {
		bio_endio(bio);
	}
	return false;
}

static void do_worker(struct work_struct *ws)
{
	struct cowchain_c *cc = container_of(ws, struct cowchain_c, worker);
	struct cowchain_md *md = &cc->md;
	struct bio_list deferred, flushes, committed, retry, after = BIO_EMPTY_LIST;
	bool want_commit, want_checkpoint;
	struct bio *bio;
	int r = 0;

	bio_list_init(&retry);
	spin_lock_irq(&cc->lock);
	deferred = cc->deferred;
	flushes = cc->flushes;
	committed = cc->committed;
	bio_list_init(&cc->deferred);
	bio_list_init(&cc->flushes);
	bio_list_init(&cc->committed);
	want_commit = cc->commit_requested;
	want_checkpoint = cc->checkpoint_requested;
	cc->commit_requested = false;
	cc->checkpoint_requested = false;
	spin_unlock_irq(&cc->lock);

	while ((bio = bio_list_pop(&deferred)))
		if (process_deferred(cc, bio, &after))
			bio_list_add(&retry, bio);

	/*
	 * One commit serves every flush and FUA write waiting now: their data
	 * completed before this point, and the commit's REQ_PREFLUSH covers it.
	 */
	if (!bio_list_empty(&flushes) || !bio_list_empty(&committed) ||
	    !bio_list_empty(&after) || want_commit ||
	    (cowchain_md_dirty(md) && time_after_eq(jiffies, cc->last_commit + COMMIT_PERIOD))) {
		if (!cc->read_only && READ_ONCE(cc->mode) < CM_READ_ONLY) {
			r = cowchain_md_commit(md);
			if (r)
				metadata_operation_failed(cc, "commit", r);
		}
		cc->last_commit = jiffies;
		if (READ_ONCE(cc->mode) == CM_OUT_OF_SPACE && md->free_clusters > md->reserve)
			set_mode(cc, CM_WRITE);
	}
	if (want_checkpoint) {
		int c = -EROFS;

		if (!cc->read_only && READ_ONCE(cc->mode) < CM_READ_ONLY) {
			c = cowchain_md_checkpoint(md);
			if (c)
				metadata_operation_failed(cc, "checkpoint", c);
		}
		cc->checkpoint_result = c;
	}
	while ((bio = bio_list_pop(&flushes))) {
		if (r) {
			end_with(bio, BLK_STS_IOERR);
			continue;
		}
		bio_set_dev(bio, md->layers[0].dev->bdev);
		dm_submit_bio_remap(bio, NULL);
	}
	while ((bio = bio_list_pop(&committed)))
		end_with(bio, r ? BLK_STS_IOERR : BLK_STS_OK);
	while ((bio = bio_list_pop(&after)))
		end_with(bio, r ? BLK_STS_IOERR : BLK_STS_OK);

	if (!bio_list_empty(&retry)) {
		spin_lock_irq(&cc->lock);
		bio_list_merge(&retry, &cc->deferred);
		cc->deferred = retry;
		spin_unlock_irq(&cc->lock);
		queue_delayed_work(cc->wq, &cc->waker, 1);
	} else if (cowchain_md_dirty(md) && !READ_ONCE(cc->suspended)) {
		queue_delayed_work(cc->wq, &cc->waker, COMMIT_PERIOD);
	}
}

static void do_waker(struct work_struct *ws)
{
	struct cowchain_c *cc = container_of(to_delayed_work(ws), struct cowchain_c, waker);

	queue_work(cc->wq, &cc->worker);
}

/* Run a commit in the worker and wait for it. */
static void commit_in_worker(struct cowchain_c *cc)
{
	spin_lock_irq(&cc->lock);
	cc->commit_requested = true;
	spin_unlock_irq(&cc->lock);
	queue_work(cc->wq, &cc->worker);
	flush_work(&cc->worker);
}

/*----------------------------------------------------------------
 * Constructor and destructor
 *--------------------------------------------------------------*/

/*----------------------------------------------------------------
 * Claims on the top device
 *--------------------------------------------------------------*/

/* Claim the top for this table; -EBUSY if another live table writes it. */
static int claim_top(struct cowchain_c *cc)
{
	struct cowchain_c *o;
	int r = 0;

	mutex_lock(&live_tops_lock);
	if (list_empty(&cc->claim)) {
		list_for_each_entry(o, &live_tops, claim)
			if (o->devs[0]->bdev == cc->devs[0]->bdev &&
			    (!o->read_only || !cc->read_only)) {
				DMERR("%s: top %s is in use by the live device %s",
				      cc->name, cc->devs[0]->name, o->name);
				r = -EBUSY;
				break;
			}
		if (!r)
			list_add(&cc->claim, &live_tops);
	}
	mutex_unlock(&live_tops_lock);
	return r;
}

/* Idempotent. */
static void release_top(struct cowchain_c *cc)
{
	mutex_lock(&live_tops_lock);
	list_del_init(&cc->claim);
	mutex_unlock(&live_tops_lock);
}

/* One function for dtr and for unwinding a half-built ctr. */
static void destroy(struct cowchain_c *cc)
{
	unsigned int i;

	WRITE_ONCE(cc->suspended, true);
	if (cc->wq) {
		cancel_delayed_work_sync(&cc->waker);
		flush_workqueue(cc->wq);
		cancel_delayed_work_sync(&cc->waker);
		destroy_workqueue(cc->wq);
	}
	cancel_work_sync(&cc->event_work);
	release_top(cc);
	cowchain_md_close(&cc->md);
	if (cc->devs)
		for (i = 0; i < cc->ndevs; i++)
			if (cc->devs[i])
				dm_put_device(cc->ti, cc->devs[i]);
	if (cc->base)
		dm_put_device(cc->ti, cc->base);
	kvfree(cc->devs);
	kvfree(cc->cow_buf);
	kfree(cc);
}

static int parse_ancestor_count(struct cowchain_c *cc, const char *arg, char **error)
{
	static const struct dm_arg _arg = {
		0, COWCHAIN_MAX_DEPTH - 1, "invalid number of ancestors"
	};
	struct dm_arg_set as = { .argc = 1, .argv = (char **)&arg };
	unsigned int n;
	int r = dm_read_arg(&_arg, &as, &n, error);

	if (!r)
		cc->ndevs = n + 1;
	return r;
}

static int parse_features(struct cowchain_c *cc, struct dm_arg_set *as, char **error)
{
	static const struct dm_arg _args[] = {
		{0, 1, "invalid number of feature arguments"},
	};
	unsigned int argc;
	const char *name;
	int r;

	if (!as->argc)
		return 0;
	r = dm_read_arg_group(_args, as, &argc, error);
	if (r)
		return r;
	while (argc--) {
		name = dm_shift_arg(as);
		if (!strcasecmp(name, "read_only")) {
			cc->read_only = true;
		} else {
			*error = "unknown feature argument";
			return -EINVAL;
		}
	}
	if (as->argc) {
		*error = "too many arguments after the feature arguments";
		return -EINVAL;
	}
	return 0;
}

static int parse_top(struct cowchain_c *cc, const char *path, char **error)
{
	typeof(dm_table_get_mode(cc->ti->table)) mode = dm_table_get_mode(cc->ti->table);
	int r;

	if (cc->read_only)
		mode &= ~COWCHAIN_MODE_WRITE;
	r = dm_get_device(cc->ti, path, mode, &cc->devs[0]);
	if (r)
		*error = "cannot open the top layer device";
	return r;
}

static int parse_ancestors(struct cowchain_c *cc, char **paths, char **error)
{
	typeof(dm_table_get_mode(cc->ti->table)) mode =
		dm_table_get_mode(cc->ti->table) & ~COWCHAIN_MODE_WRITE;
	unsigned int i;
	int r;

	for (i = 1; i < cc->ndevs; i++) {
		r = dm_get_device(cc->ti, paths[i - 1], mode, &cc->devs[i]);
		if (r) {
			*error = "cannot open an ancestor layer device";
			return r;
		}
	}
	return 0;
}

static int parse_base(struct cowchain_c *cc, const char *path, char **error)
{
	typeof(dm_table_get_mode(cc->ti->table)) mode =
		dm_table_get_mode(cc->ti->table) & ~COWCHAIN_MODE_WRITE;
	int r;

	if (!strcmp(path, "-"))
		return 0;
	r = dm_get_device(cc->ti, path, mode, &cc->base);
	if (r)
		*error = "cannot open the base device";
	return r;
}

/*
 * <top_dev> <#ancestors> <ancestor_dev>... <base_dev|->
 * [<#feature_args> <feature>...]
 */
static int cowchain_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct cowchain_open_args oa = { };
	struct dm_arg_set as;
	struct cowchain_c *cc;
	int r;

	if (argc < 3) {
		ti->error = "not enough arguments: <top> <#ancestors> [<ancestor>...] <base|->";
		return -EINVAL;
	}
	cc = kzalloc(sizeof(*cc), GFP_KERNEL);
	if (!cc) {
		ti->error = "cannot allocate the cowchain context";
		return -ENOMEM;
	}
	cc->ti = ti;
	cc->name = dm_table_device_name(ti->table);
	spin_lock_init(&cc->lock);
	mutex_init(&cc->msg_lock);
	INIT_LIST_HEAD(&cc->claim);
	bio_list_init(&cc->deferred);
	bio_list_init(&cc->flushes);
	bio_list_init(&cc->committed);
	INIT_WORK(&cc->worker, do_worker);
	INIT_DELAYED_WORK(&cc->waker, do_waker);
	INIT_WORK(&cc->event_work, event_fn);

	r = parse_ancestor_count(cc, argv[1], &ti->error);
	if (r)
		goto bad;
	if (argc < cc->ndevs + 2) {
		ti->error = "fewer ancestor devices than the ancestor count";
		r = -EINVAL;
		goto bad;
	}
	as.argc = argc - (cc->ndevs + 2);
	as.argv = argv + cc->ndevs + 2;
	r = parse_features(cc, &as, &ti->error);
	if (r)
		goto bad;
	cc->devs = kvcalloc(cc->ndevs, sizeof(*cc->devs), GFP_KERNEL);
	if (!cc->devs) {
		ti->error = "cannot allocate the device list";
		r = -ENOMEM;
		goto bad;
	}
	r = parse_top(cc, argv[0], &ti->error);
	if (r)
		goto bad;
	r = parse_ancestors(cc, argv + 2, &ti->error);
	if (r)
		goto bad;
	r = parse_base(cc, argv[cc->ndevs + 1], &ti->error);
	if (r)
		goto bad;

	oa.devs = cc->devs;
	oa.ndevs = cc->ndevs;
	oa.base = cc->base;
	oa.writable = !cc->read_only;
	oa.table_len = ti->len;
	r = cowchain_md_open(&cc->md, &oa, cc->name, &ti->error);
	if (r)
		goto bad;

	cc->root = cc->md.layers[0].sb.parent_kind == COWCHAIN_PARENT_NONE;
	cc->cow_buf = kvmalloc(1ul << cc->md.subblock_shift, GFP_KERNEL);
	cc->wq = alloc_workqueue("dm-cowchain", WQ_MEM_RECLAIM, 0);
	if (!cc->cow_buf || !cc->wq) {
		ti->error = "cannot allocate the worker";
		r = -ENOMEM;
		goto bad;
	}
	r = dm_set_target_max_io_len(ti, 1u << (cc->md.cluster_shift - SECTOR_SHIFT));
	if (r) {
		ti->error = "cannot set the maximum I/O length";
		goto bad;
	}
	cc->mode = cc->read_only ? CM_READ_ONLY : CM_WRITE;
	cc->last_commit = jiffies;
	ti->per_io_data_size = sizeof(struct per_bio);
	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	if (!cc->read_only) {
		ti->num_discard_bios = 1;
		ti->discards_supported = true;
		ti->num_write_zeroes_bios = 1;
	}
	ti->private = cc;
	return 0;
bad:
	destroy(cc);
	return r;
}

static void cowchain_dtr(struct dm_target *ti)
{
	struct cowchain_c *cc = ti->private;

	destroy(cc);
}

/*----------------------------------------------------------------
 * Suspend and resume
 *--------------------------------------------------------------*/

/*
 * Every bio has completed: stop the timer, commit and checkpoint, give the
 * top back.  Idempotent: a second call finds nothing to commit.
 */
static void cowchain_postsuspend(struct dm_target *ti)
{
	struct cowchain_c *cc = ti->private;
	int r;

	WRITE_ONCE(cc->suspended, true);
	cancel_delayed_work_sync(&cc->waker);
	flush_workqueue(cc->wq);
	cancel_delayed_work_sync(&cc->waker);
	if (!cc->read_only && READ_ONCE(cc->mode) < CM_READ_ONLY) {
		r = cowchain_md_checkpoint(&cc->md);
		if (r)
			metadata_operation_failed(cc, "checkpoint", r);
	}
	release_top(cc);
}

/*
 * The table may have been loaded while another table (the one it
 * replaces, or another device) still wrote the same top: claim the top,
 * then read its index again if its superblock moved since the
 * constructor read it.  Nothing runs through this table yet.
 */
static int cowchain_preresume(struct dm_target *ti)
{
	struct cowchain_c *cc = ti->private;
	char *error = NULL;
	int r;

	r = claim_top(cc);
	if (r)
		return r;
	r = cowchain_md_refresh(&cc->md, cc->name, &error);
	if (r) {
		DMERR("%s: cannot resume: %s (error %d)", cc->name,
		      error ? error : "reading the top layer failed", r);
		release_top(cc);
		set_mode(cc, CM_FAIL);
	}
	return r;
}

/* Idempotent. */
static void cowchain_resume(struct dm_target *ti)
{
	struct cowchain_c *cc = ti->private;

	cc->last_commit = jiffies;
	WRITE_ONCE(cc->suspended, false);
}

/*----------------------------------------------------------------
 * Status
 *--------------------------------------------------------------*/

/*
 * INFO, fixed order:
 *   <mode> <depth> <cluster_sectors> <subblock_sectors>
 *   <allocated_clusters>/<capacity_clusters> <free_clusters>
 *   <metadata_commits> <generation> <needs_check|->
 * mode: rw, out_of_space, ro or fail; depth counts the top and ancestors
 * (not the base); allocated: data clusters the top holds; capacity: its
 * cluster area (capacity - data_start); free: clusters it can still use.
 *
 * TABLE: the constructor's arguments, as given (devices as major:minor).
 */
static void cowchain_status(struct dm_target *ti, status_type_t type,
			    unsigned int status_flags, char *result, unsigned int maxlen)
{
	struct cowchain_c *cc = ti->private;
	struct cowchain_md *md = &cc->md;
	struct cowchain_sb *sb = &md->layers[0].sb;
	unsigned int sz = 0, i;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("%s %u %u %u %llu/%llu %llu %llu %llu %s",
		       mode_name[READ_ONCE(cc->mode)], md->nlayers,
		       1u << (md->cluster_shift - SECTOR_SHIFT),
		       1u << (md->subblock_shift - SECTOR_SHIFT),
		       md->allocated, sb->capacity - sb->data_start,
		       md->free_clusters, md->commits, sb->generation,
		       (sb->flags & COWCHAIN_SB_NEEDS_CHECK) ? "needs_check" : "-");
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %u", cc->devs[0]->name, cc->ndevs - 1);
		for (i = 1; i < cc->ndevs; i++)
			DMEMIT(" %s", cc->devs[i]->name);
		DMEMIT(" %s", cc->base ? cc->base->name : "-");
		if (cc->read_only)
			DMEMIT(" 1 read_only");
		break;
	case STATUSTYPE_IMA:
		DMEMIT("depth=%u,read_only=%c,mode=%s;", md->nlayers,
		       cc->read_only ? 'y' : 'n', mode_name[READ_ONCE(cc->mode)]);
		break;
	}
}

/*----------------------------------------------------------------
 * Messages
 *
 *   commit        commit dirty metadata now
 *   checkpoint    commit, then write the journal home
 *   map <sector>  which layer serves a sector: "top <sector>",
 *                 "layer <n> <sector>", "base <sector>" or "zero"
 *--------------------------------------------------------------*/

static int process_commit_mesg(struct cowchain_c *cc, unsigned int argc, char **argv,
			       char *result, unsigned int maxlen)
{
	if (argc != 1)
		return -EINVAL;
	if (cc->read_only || READ_ONCE(cc->mode) >= CM_READ_ONLY)
		return -EROFS;
	commit_in_worker(cc);
	return 0;
}

static int process_checkpoint_mesg(struct cowchain_c *cc, unsigned int argc, char **argv,
				   char *result, unsigned int maxlen)
{
	int r;

	if (argc != 1)
		return -EINVAL;
	if (cc->read_only || READ_ONCE(cc->mode) >= CM_READ_ONLY)
		return -EROFS;
	/* in the worker, so that no discard frees a cluster meanwhile */
	mutex_lock(&cc->msg_lock);
	spin_lock_irq(&cc->lock);
	cc->checkpoint_requested = true;
	spin_unlock_irq(&cc->lock);
	queue_work(cc->wq, &cc->worker);
	flush_work(&cc->worker);
	r = cc->checkpoint_result;
	mutex_unlock(&cc->msg_lock);
	return r;
}

static int process_map_mesg(struct cowchain_c *cc, unsigned int argc, char **argv,
			    char *result, unsigned int maxlen)
{
	struct cowchain_md *md = &cc->md;
	unsigned long long sector;
	unsigned int sz = 0;
	u64 off, in;
	struct src s;
	char dummy;

	if (argc != 2 || sscanf(argv[1], "%llu%c", &sector, &dummy) != 1)
		return -EINVAL;
	if (sector >= cc->ti->len)
		return -ERANGE;
	off = sector << SECTOR_SHIFT;
	in = off & ((1ull << md->cluster_shift) - 1);
	resolve(md, off >> md->cluster_shift, in >> md->subblock_shift, &s);
	switch (s.kind) {
	case SRC_TOP:
		DMEMIT("top %llu", (unsigned long long)phys_sector(md, s.phys, in));
		break;
	case SRC_LAYER:
		DMEMIT("layer %u %llu", s.layer, (unsigned long long)phys_sector(md, s.phys, in));
		break;
	case SRC_BELOW:
		if (cc->base && sector < md->base_sectors) {
			DMEMIT("base %llu", sector);
			break;
		}
		fallthrough;
	case SRC_ZERO:
		DMEMIT("zero");
		break;
	}
	return 1;
}

static int cowchain_message(struct dm_target *ti, unsigned int argc, char **argv,
			    char *result, unsigned int maxlen)
{
	struct cowchain_c *cc = ti->private;

	if (!argc)
		return -EINVAL;
	if (!strcasecmp(argv[0], "commit"))
		return process_commit_mesg(cc, argc, argv, result, maxlen);
	if (!strcasecmp(argv[0], "checkpoint"))
		return process_checkpoint_mesg(cc, argc, argv, result, maxlen);
	if (!strcasecmp(argv[0], "map"))
		return process_map_mesg(cc, argc, argv, result, maxlen);
	DMWARN("%s: unsupported message '%s'", cc->name, argv[0]);
	return -EINVAL;
}

static int cowchain_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn,
				    void *data)
{
	struct cowchain_c *cc = ti->private;

	/* the top receives writes and flushes; limits come from it */
	return fn(ti, cc->devs[0], 0, ti->len, data);
}

static struct target_type cowchain_target = {
	.name    = "cowchain",
	.version = {1, 1, 0},
	.module  = THIS_MODULE,
	.ctr     = cowchain_ctr,
	.dtr     = cowchain_dtr,
	.map     = cowchain_map,
	.end_io  = cowchain_end_io,
	.postsuspend = cowchain_postsuspend,
	.preresume = cowchain_preresume,
	.resume  = cowchain_resume,
	.status  = cowchain_status,
	.message = cowchain_message,
	.iterate_devices = cowchain_iterate_devices,
};

static int __init dm_cowchain_init(void)
{
	int r = cowchain_md_init();

	if (r)
		return r;
	r = dm_register_target(&cowchain_target);
	if (r)
		cowchain_md_exit();
	return r;
}

static void __exit dm_cowchain_exit(void)
{
	dm_unregister_target(&cowchain_target);
	cowchain_md_exit();
}

module_init(dm_cowchain_init);
module_exit(dm_cowchain_exit);

MODULE_DESCRIPTION(DM_NAME " copy-on-write differencing image chains");
MODULE_LICENSE("GPL");
