// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain: the I/O path -- map, end_io and the worker.
 *
 * map() serves reads, overwrites and first writes of whole sub-blocks by
 * itself: it looks up in memory (the top's entries under a seqlock, the
 * ancestors' resolved index), remaps, and never sleeps.  Everything else
 * goes to the worker through a spinlock-protected list: copy-up of a
 * partly written sub-block, discard and write-zeroes, allocation retries,
 * flushes that need a commit (batched: one commit serves every flush
 * waiting when the worker runs), and commits and checkpoints asked for by
 * messages.  See target.c for the design as a whole.
 */
#include <linux/blkdev.h>
#include <linux/bio.h>
#include "target.h"

/*----------------------------------------------------------------
 * Lookup
 *--------------------------------------------------------------*/

/*
 * The top's entry for vc.  The slot is loaded inside the bits_lock read
 * section: a tent packed meanwhile (metadata.h) was swapped under
 * bits_lock, so a read of its freed memory is retried.
 */
static void read_entry(struct cowchain_md *md, u64 vc, u64 *phys, u64 *present, u64 *zero)
{
	struct cowchain_tent *t;
	unsigned int seq;
	void *e;

	rcu_read_lock();
	do {
		seq = read_seqbegin(&md->bits_lock);
		e = xa_load(&md->entries, vc);
		if (!e) {
			*phys = *present = *zero = 0;
		} else if (xa_is_value(e)) {
			cowchain_unpack(md->subblocks, e, phys, present);
			*zero = 0;
		} else {
			t = e;
			*phys = t->phys;
			*present = t->present;
			*zero = t->zero;
		}
	} while (read_seqretry(&md->bits_lock, seq));
	rcu_read_unlock();
}

/*
 * Where sub-block sb of vc is read from; returns the number of sub-blocks
 * from sb on that read the same way, contiguously.  Any context.
 */
u32 cowchain_resolve(struct cowchain_md *md, u64 vc, u32 sb, struct src *s)
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

/*
 * The top has no free cluster.  Clusters freed since the last commit (a
 * discard) become free only when it commits: if there are any, ask the
 * worker for a commit and return true (retry the write after it);
 * otherwise the device is out of space.  Any context.
 */
static bool space_after_commit(struct cowchain_c *cc)
{
	unsigned long flags;

	if (!READ_ONCE(cc->md.n_pending))
		return false;
	spin_lock_irqsave(&cc->lock, flags);
	cc->commit_requested = true;
	spin_unlock_irqrestore(&cc->lock, flags);
	return true;
}

static void remap_to(struct bio *bio, struct dm_dev *dev, sector_t sector)
{
	bio_set_dev(bio, dev->bdev);
	bio->bi_iter.bi_sector = sector;
}

static void end_with(struct bio *bio, blk_status_t st)
{
	bio->bi_status = st;
	bio_endio(bio);
}

/*----------------------------------------------------------------
 * Read path (map)
 *--------------------------------------------------------------*/

/*
 * Does sub-block 0 of vcluster vc + k, resolved as n, go on from s (which
 * serves vc to its end) on the same device, with no gap?  The top and an
 * ancestor: the same layer and the k-th data cluster after s's; zeros and
 * the base: always (the base is read at the virtual sector).
 */
static bool continues(const struct src *s, const struct src *n, u64 k)
{
	if (n->kind != s->kind)
		return false;
	switch (s->kind) {
	case SRC_TOP:
		return n->phys == s->phys + k;
	case SRC_LAYER:
		return n->layer == s->layer && n->phys == s->phys + k;
	default:
		return true;
	}
}

/*
 * Bytes from the start of vc + 1 on that s, which serves vc up to its end,
 * goes on serving as one remap: whole vclusters that continue it, then the
 * run at the start of the first one that does only partly.  The lookahead
 * stops once len bytes are found (the caller's bio ends there), so it
 * costs one lookup per cluster of the bio, as one bio per cluster did.
 * Each cluster is looked up by itself (read_entry's seqlock section): a
 * racing first write makes a cluster read either all old or all new, as
 * for a bio of one cluster.  Any context.
 */
static u64 span_after(struct cowchain_md *md, u64 vc, const struct src *s, u64 len)
{
	u64 span = 0, k;
	struct src n;
	u32 run;

	for (k = 1; span < len; k++) {
		run = cowchain_resolve(md, vc + k, 0, &n);
		if (!continues(s, &n, k))
			break;
		span += (u64)run << md->subblock_shift;
		if (run < md->subblocks)
			break;
	}
	return span;
}

/*
 * A read goes to one place: where its first sub-block resolves, for as far
 * as the same source goes on contiguously, across cluster boundaries too
 * (span_after).  The rest is cut off with dm_accept_partial_bio() and
 * comes back to map() as the next bio.
 */
static int map_read(struct cowchain_c *cc, struct bio *bio)
{
	struct cowchain_md *md = &cc->md;
	sector_t sector = dm_target_offset(cc->ti, bio->bi_iter.bi_sector);
	u64 off = (u64)sector << SECTOR_SHIFT;
	u64 vc = off >> md->cluster_shift;
	u64 in = off & ((1ull << md->cluster_shift) - 1);
	u64 len = bio->bi_iter.bi_size, span;
	u32 sb = in >> md->subblock_shift, run;
	sector_t max;
	struct src s;
	u8 e;

	e = cowchain_md_io_begin(md);
	run = cowchain_resolve(md, vc, sb, &s);
	if (s.kind == SRC_TOP)
		pb_of(bio)->ioc = e;
	else
		cowchain_md_io_end(md, e);	/* ancestors are never freed */
	span = (((u64)sb + run) << md->subblock_shift) - in;
	if (span < len && sb + run == md->subblocks)
		span += span_after(md, vc, &s, len - span);
	max = min(span, len) >> SECTOR_SHIFT;
	if (s.kind == SRC_BELOW && cc->base && sector < md->base_sectors)
		max = min_t(sector_t, max, md->base_sectors - sector);
	if (bio_sectors(bio) > max)
		dm_accept_partial_bio(bio, max);

	switch (s.kind) {
	case SRC_TOP:
		remap_to(bio, md->layers[0].dev, cowchain_phys_sector(md, s.phys, in));
		return DM_MAPIO_REMAPPED;
	case SRC_LAYER:
		remap_to(bio, md->layers[s.layer].dev, cowchain_phys_sector(md, s.phys, in));
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

/*
 * W_COPY_UP: the bio covers part of one sub-block the top does not hold.
 * W_NOMEM: no memory for the cluster's entry; W_BUSY: the worker owns the
 * cluster, or no cluster is free until the next commit (space_after_commit).
 * Both: try again from the worker.
 */
enum { W_REMAPPED, W_COPY_UP, W_NOMEM, W_BUSY, W_DONE };

/*
 * Whether the top's entry for vc is on disk as it is in memory: packed (a
 * commit packs an idle entry as it writes it; any change unpacks it first)
 * by a commit that has ended.  Any context; reads no entry memory.
 */
static bool entry_durable(struct cowchain_md *md, u64 vc)
{
	bool packed = xa_is_value(xa_load(&md->entries, vc));

	smp_rmb();	/* the entry before committing: pairs with commit_marked() */
	return packed && !READ_ONCE(md->committing);
}

/*
 * A FUA write whose mapping is not on disk (a first write, or an overwrite
 * of sub-blocks whose entry changed since the last commit) ends only after
 * a commit: its REQ_PREFLUSH covers the data, so the data goes down without
 * FUA.  Sent with FUA, it could reach stable media before an earlier write
 * of the same sectors still in the device's cache (a copy-up of the
 * sub-block), which dm-log-writes replays after it.
 */
static void commit_before_end(struct per_bio *pb, struct bio *bio)
{
	pb->commit_before_end = true;
	bio->bi_opf &= ~REQ_FUA;
}

/*
 * Map a write.  In map() (worker == false) the bio is first cut to a piece
 * that one decision covers: an overwrite of the sub-blocks the top holds,
 * as far as they go on contiguously on the top device, across clusters
 * too (span_after); else part of one sub-block, or whole sub-blocks of one
 * cluster (a first write, tracked in per_bio for that cluster only).  DM
 * core no longer cuts bios at cluster boundaries (target.c), so this cut
 * is the only one.  The worker only gets pieces cut that way: part of one
 * sub-block, or whole sub-blocks of one cluster.  It cannot cut them again,
 * and what it sees may have changed since map() (a racing write made some
 * of the sub-blocks present): a bio of whole sub-blocks that the present
 * run does not cover is then written as a first write of all of them, so
 * every sub-block it writes gets its present bit.
 */
static int __map_write(struct cowchain_c *cc, struct bio *bio, bool worker)
{
	struct cowchain_md *md = &cc->md;
	struct per_bio *pb = pb_of(bio);
	sector_t sector = dm_target_offset(cc->ti, bio->bi_iter.bi_sector);
	u64 off = (u64)sector << SECTOR_SHIFT;
	u64 vc = off >> md->cluster_shift;
	u64 in = off & ((1ull << md->cluster_shift) - 1);
	u64 sbsize = 1ull << md->subblock_shift;
	u32 sb = in >> md->subblock_shift, run, nfull;
	u64 len = bio->bi_iter.bi_size, end = in + len, phys, present, zero, span;
	struct cowchain_tent *t;

	if (READ_ONCE(cc->mode) >= CM_READ_ONLY) {
		end_with(bio, BLK_STS_IOERR);
		return W_DONE;
	}
	read_entry(md, vc, &phys, &present, &zero);
	nfull = (in & (sbsize - 1)) ? 0 : (u32)(len >> md->subblock_shift);
	if (present & (1ull << sb)) {
		run = cowchain_run_of(present, sb, md->subblocks);
		span = (((u64)sb + run) << md->subblock_shift) - in;
		/* an overwrite goes on into the next clusters as a read would */
		if (!worker && span < len && sb + run == md->subblocks) {
			struct src s = { .kind = SRC_TOP, .phys = phys };

			span += span_after(md, vc, &s, len - span);
		}
		if (len <= span || !worker) {
			if (len > span)
				dm_accept_partial_bio(bio, span >> SECTOR_SHIFT);
			if ((bio->bi_opf & REQ_FUA) && !entry_durable(md, vc))
				commit_before_end(pb, bio);
			remap_to(bio, md->layers[0].dev, cowchain_phys_sector(md, phys, in));
			return W_REMAPPED;
		}
		/* worker, whole sub-blocks, not all present: a first write */
	} else if (!nfull) {
		/* part of a sub-block the top does not hold: copy-up in the worker */
		if (!worker && end > ((u64)sb + 1) * sbsize)
			dm_accept_partial_bio(bio, ((((u64)sb + 1) * sbsize) - in) >> SECTOR_SHIFT);
		return W_COPY_UP;
	}
	if (worker) {
		run = nfull;
	} else {
		run = min(cowchain_run_of(~present, sb, md->subblocks), nfull);
		if (end > ((u64)sb + run) * sbsize)
			dm_accept_partial_bio(bio, ((((u64)sb + run) * sbsize) - in) >> SECTOR_SHIFT);
	}

	/* first write of whole sub-blocks */
	t = __cowchain_md_get_cluster(md, vc, worker ? GFP_NOIO : GFP_NOWAIT);
	if (IS_ERR(t)) {
		if (PTR_ERR(t) == -ENOSPC) {
			if (space_after_commit(cc))
				return W_BUSY;
			cowchain_set_mode(cc, CM_OUT_OF_SPACE);
			end_with(bio, BLK_STS_NOSPC);
			return W_DONE;
		}
		return W_NOMEM;
	}
	/* alloc_lock is held */
	if (t->busy) {
		spin_unlock(&md->alloc_lock);
		return W_BUSY;
	}
	atomic_inc(&t->inflight);
	phys = t->phys;
	spin_unlock(&md->alloc_lock);

	pb->t = t;
	pb->vc = vc;
	pb->mask = (run >= 64 ? ~0ull : ((1ull << run) - 1)) << sb;
	if (bio->bi_opf & REQ_FUA)
		commit_before_end(pb, bio);
	remap_to(bio, md->layers[0].dev, cowchain_phys_sector(md, phys, in));
	return W_REMAPPED;
}

/*
 * A remapped write stays counted in its I/O epoch until end_io: an
 * overwrite holds no tent, so only the count keeps a discard's freed
 * cluster from being handed out under it (cowchain_md_io_begin).  Any
 * other outcome ends the count at once: a deferred bio may wait for a
 * commit, which waits for the counted bios.
 */
static int map_write(struct cowchain_c *cc, struct bio *bio, bool worker)
{
	struct cowchain_md *md = &cc->md;
	u8 e = cowchain_md_io_begin(md);
	int r = __map_write(cc, bio, worker);

	if (r == W_REMAPPED)
		pb_of(bio)->ioc = e;
	else
		cowchain_md_io_end(md, e);
	return r;
}

/*----------------------------------------------------------------
 * Target: map and end_io
 *--------------------------------------------------------------*/

int cowchain_map(struct dm_target *ti, struct bio *bio)
{
	struct cowchain_c *cc = ti->private;
	struct per_bio *pb = pb_of(bio);

	pb->t = NULL;
	pb->ioc = -1;
	pb->commit_before_end = false;
	pb->nomem = false;
	if (READ_ONCE(cc->mode) == CM_FAIL)
		return DM_MAPIO_KILL;

	if (bio->bi_opf & REQ_PREFLUSH) {
		/*
		 * After a metadata failure nothing can be made durable: a
		 * write acknowledged since the last commit may not be on disk.
		 */
		if (!cc->read_only && READ_ONCE(cc->mode) >= CM_READ_ONLY)
			return DM_MAPIO_KILL;
		/* a flush with nothing to commit goes straight to the top */
		if (cc->read_only || cowchain_md_synced(&cc->md)) {
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
		case W_COPY_UP:
		case W_NOMEM:
		case W_BUSY:
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

int cowchain_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct cowchain_c *cc = ti->private;
	struct per_bio *pb = pb_of(bio);
	struct cowchain_tent *t = pb->t;

	if (pb->ioc >= 0) {
		cowchain_md_io_end(&cc->md, pb->ioc);
		pb->ioc = -1;
	}
	if (t) {
		pb->t = NULL;
		/* the data is on the device: only now may the bits point at it */
		if (!*error)
			set_bits(&cc->md, t, pb->vc, pb->mask);
		smp_mb__before_atomic();	/* the bits before inflight: pack_entry() */
		atomic_dec(&t->inflight);
	}
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

	cowchain_resolve(md, vc, sb, &s);
	switch (s.kind) {
	case SRC_TOP:
		return cowchain_md_io(md, md->layers[0].dev,
				      cowchain_phys_sector(md, s.phys, (u64)sb << md->subblock_shift),
				      ns, buf, REQ_OP_READ);
	case SRC_LAYER:
		return cowchain_md_io(md, md->layers[s.layer].dev,
				      cowchain_phys_sector(md, s.phys, (u64)sb << md->subblock_shift),
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
	/* alloc_lock is held */
	if (t->busy || atomic_read(&t->inflight)) {
		spin_unlock(&md->alloc_lock);
		return -EAGAIN;
	}
	t->busy = 1;
	spin_unlock(&md->alloc_lock);

	read_entry(md, vc, &phys, &present, &zero);
	if (present & bit)
		r = cowchain_md_io(md, md->layers[0].dev,
				   cowchain_phys_sector(md, phys, (u64)sb << md->subblock_shift),
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
			   cowchain_phys_sector(md, phys, (u64)sb << md->subblock_shift),
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
	if (cc->root && !xa_load(&md->entries, vc))
		return 0;	/* entries are never erased while live */
	t = __cowchain_md_get_entry(md, vc, GFP_NOIO);
	if (IS_ERR(t))
		return PTR_ERR(t);
	/* alloc_lock is held */
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

/*
 * A discard or write-zeroes bio may span many clusters: DM core never cut
 * these at the target's max_io_len (6.1 and 6.12 alike: only at the
 * device's discard and write-zeroes limits), so it is zeroed cluster by
 * cluster here.  A retry (-EAGAIN) starts the bio over and zeroes again
 * the clusters it zeroed already (a write racing it on the same sectors
 * is unordered with it anyway).
 */
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
		cond_resched();	/* up to 1024 clusters (io_hints) */
	}
	return 0;
}

/*
 * The worker found no memory for bio: true to retry it later, or, after
 * NOMEM_TIMEOUT, fail it and return false.
 */
static bool retry_nomem(struct cowchain_c *cc, struct bio *bio)
{
	struct per_bio *pb = pb_of(bio);

	if (!pb->nomem) {
		pb->nomem = true;
		pb->nomem_since = jiffies;
		return true;
	}
	if (time_before(jiffies, pb->nomem_since + NOMEM_TIMEOUT))
		return true;
	DMERR_LIMIT("%s: out of memory for %u s: failing a write", cc->name,
		    NOMEM_TIMEOUT / HZ);
	end_with(bio, BLK_STS_IOERR);
	return false;
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
		case W_BUSY:
			return true;
		case W_NOMEM:
			return retry_nomem(cc, bio);
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
	if (r == -EAGAIN)
		return true;
	if (r == -ENOMEM)
		return retry_nomem(cc, bio);
	if (r == -ENOSPC && space_after_commit(cc))
		return true;
	if (r == -ENOSPC) {
		cowchain_set_mode(cc, CM_OUT_OF_SPACE);
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

/*
 * A commit found no memory.  The first time, note when; true once that
 * was NOMEM_TIMEOUT ago (and start over).
 */
static bool commit_nomem_expired(struct cowchain_c *cc)
{
	if (!cc->commit_nomem) {
		cc->commit_nomem = true;
		cc->commit_nomem_since = jiffies;
		return false;
	}
	if (time_before(jiffies, cc->commit_nomem_since + NOMEM_TIMEOUT))
		return false;
	cc->commit_nomem = false;
	return true;
}

void cowchain_worker(struct work_struct *ws)
{
	struct cowchain_c *cc = container_of(ws, struct cowchain_c, worker);
	struct cowchain_md *md = &cc->md;
	struct bio_list deferred, flushes, committed, retry, after = BIO_EMPTY_LIST;
	bool want_commit, want_checkpoint, again = false;
	struct bio *bio;
	u64 commits = md->commits;
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
	/* writes that wait for the clusters a commit frees asked for one */
	spin_lock_irq(&cc->lock);
	want_commit |= cc->commit_requested;
	cc->commit_requested = false;
	spin_unlock_irq(&cc->lock);

	/*
	 * One commit serves every flush and FUA write waiting now: their data
	 * completed before this point, and the commit's REQ_PREFLUSH covers it.
	 */
	if (!bio_list_empty(&flushes) || !bio_list_empty(&committed) ||
	    !bio_list_empty(&after) || want_commit ||
	    (cowchain_md_dirty(md) && time_after_eq(jiffies, cc->last_commit + COMMIT_PERIOD))) {
		if (cc->read_only) {
			r = 0;
		} else if (READ_ONCE(cc->mode) >= CM_READ_ONLY) {
			r = -EIO;	/* the metadata failed: nothing is durable */
		} else {
			r = cowchain_md_commit(md);
			if (r == -ENOMEM && !commit_nomem_expired(cc)) {
				/* nothing lost (commit.c): they wait for the next try */
				spin_lock_irq(&cc->lock);
				bio_list_merge(&flushes, &cc->flushes);
				cc->flushes = flushes;
				bio_list_merge(&committed, &after);
				bio_list_merge(&committed, &cc->committed);
				cc->committed = committed;
				cc->commit_requested |= want_commit;
				spin_unlock_irq(&cc->lock);
				bio_list_init(&flushes);
				bio_list_init(&committed);
				bio_list_init(&after);
				again = true;
				r = 0;
			} else if (r == -ENOMEM) {
				/* they fail; the metadata stays dirty for the next commit */
				DMERR_LIMIT("%s: commit: out of memory for %u s: failing flushes",
					    cc->name, NOMEM_TIMEOUT / HZ);
				again = true;
			} else if (r) {
				cowchain_metadata_failed(cc, "commit", r);
			} else {
				cc->commit_nomem = false;
			}
		}
		cc->last_commit = jiffies;
		if (READ_ONCE(cc->mode) == CM_OUT_OF_SPACE && md->free_clusters > cowchain_md_reserve(md))
			cowchain_set_mode(cc, CM_WRITE);
	}
	if (want_checkpoint) {
		int c = -EROFS;

		if (!cc->read_only && READ_ONCE(cc->mode) < CM_READ_ONLY) {
			c = cowchain_md_checkpoint(md);
			/* out of memory: the message fails, the device goes on */
			if (c && c != -ENOMEM)
				cowchain_metadata_failed(cc, "checkpoint", c);
		}
		cc->checkpoint_result = c;
	}
	/*
	 * The flushes are empty (DM core sends the data of a flush with data
	 * apart).  A commit that wrote a journal transaction issued it with
	 * REQ_PREFLUSH after they arrived, which already made every write
	 * they cover durable on the top: they end here, without a second
	 * cache flush.  Otherwise (nothing was written) they go down.
	 */
	while ((bio = bio_list_pop(&flushes))) {
		if (r || md->commits != commits) {
			end_with(bio, r ? BLK_STS_IOERR : BLK_STS_OK);
			continue;
		}
		bio_set_dev(bio, md->layers[0].dev->bdev);
		dm_submit_bio_remap(bio, NULL);
	}
	/*
	 * The FUA writes waiting for a commit went down without FUA.  When
	 * the commit above found nothing to write (an earlier commit already
	 * holds their entries, e.g. one under way when they were mapped, whose
	 * preflush came before their data), no REQ_PREFLUSH covers them yet:
	 * flush before they end.
	 */
	if (!r && md->commits == commits &&
	    (!bio_list_empty(&committed) || !bio_list_empty(&after)))
		r = blkdev_issue_flush(md->layers[0].dev->bdev);
	while ((bio = bio_list_pop(&committed)))
		end_with(bio, r ? BLK_STS_IOERR : BLK_STS_OK);
	while ((bio = bio_list_pop(&after)))
		end_with(bio, r ? BLK_STS_IOERR : BLK_STS_OK);

	if (!bio_list_empty(&retry) || (again && !READ_ONCE(cc->suspended))) {
		spin_lock_irq(&cc->lock);
		bio_list_merge(&retry, &cc->deferred);
		cc->deferred = retry;
		spin_unlock_irq(&cc->lock);
		mod_delayed_work(cc->wq, &cc->waker, 1);
	} else if (cowchain_md_dirty(md) && !READ_ONCE(cc->suspended)) {
		queue_delayed_work(cc->wq, &cc->waker, COMMIT_PERIOD);
	}
}

void cowchain_waker(struct work_struct *ws)
{
	struct cowchain_c *cc = container_of(to_delayed_work(ws), struct cowchain_c, waker);

	queue_work(cc->wq, &cc->worker);
}

/* Run a commit in the worker and wait for it. */
void cowchain_commit_in_worker(struct cowchain_c *cc)
{
	spin_lock_irq(&cc->lock);
	cc->commit_requested = true;
	spin_unlock_irq(&cc->lock);
	queue_work(cc->wq, &cc->worker);
	flush_work(&cc->worker);
}

/*
 * Run a checkpoint in the worker, so that no discard frees a cluster
 * while it runs, and wait for it.  Returns its result.
 */
int cowchain_checkpoint_in_worker(struct cowchain_c *cc)
{
	int r;

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
