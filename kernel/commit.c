// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain metadata: allocation in the top, commit and checkpoint.
 *
 * Committing (cowchain_md_commit), from the worker only:
 *  1. Collect the dirty leaves (entries marked dirty by end_io or the
 *     worker) and clear their marks; a bit that changes afterwards marks
 *     its entry again and goes into the next commit.
 *  2. Give new leaves (and their maps) homes in a metadata cluster: a free
 *     block of an existing one first (FORMAT.md 2).  A leaf with no home
 *     whose entries are all empty (a root's discard) gets none.
 *  3. On the first commit of an activation, bump the generation
 *     (superblock write) before anything else changes on disk.
 *  4. Write the leaf, map and root images as one journal transaction per
 *     252 images with REQ_PREFLUSH | REQ_FUA: the flush makes every data
 *     write that completed before the images were packed durable first
 *     (a present bit is only set once its write completed), and FUA makes
 *     the transaction durable when the write completes.  An entry whose
 *     data is still in flight is written without its cluster (phys 0).
 *  5. Keep a copy of each image for the next checkpoint; clusters freed
 *     before this commit are discarded on the device, then reusable.
 * When the journal has no room, checkpoint first: write the kept images
 * home, flush, then write the superblock with the new journal head.
 *
 * A commit that fails for want of memory (-ENOMEM) can be run again: it
 * marks its leaves dirty again and keeps the dirty maps and roots, and
 * every step it took is one a second run repeats or skips (a leaf's home,
 * the generation, a transaction already written: the journal then holds
 * the same images twice, which replay applies in order).  The caller
 * retries it; any other error is a metadata failure.  Commits allocate
 * under memalloc_noio_save(): reclaim must not wait on I/O to this
 * device, which waits on the worker.
 */
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>
#include "fault.h"
#include "metadata-internal.h"

enum { META_MAP = 0, META_ROOT = 1 };

/*----------------------------------------------------------------
 * Allocation
 *--------------------------------------------------------------*/

static bool take_cluster(struct cowchain_md *md, u64 *out)
{
	lockdep_assert_held(&md->alloc_lock);
	if (md->n_recycled) {
		*out = md->recycled[--md->n_recycled];
		md->free_clusters--;
		return true;
	}
	while (md->next_ext < md->n_ext) {
		struct cowchain_extent *e = &md->ext[md->next_ext];

		if (e->len) {
			*out = e->start++;
			e->len--;
			md->free_clusters--;
			return true;
		}
		md->next_ext++;
	}
	return false;
}

/*
 * Turn a packed entry (a value: see metadata.h) back into a
 * cowchain_tent, in t.  alloc_lock held; the slot holds the value.  The
 * swap changes nothing a reader sees (the same bits either way), so it
 * needs no bits_lock.
 */
static struct cowchain_tent *unpack_entry(struct cowchain_md *md, u64 vc, void *v,
					  struct cowchain_tent *t)
{
	void *old;

	lockdep_assert_held(&md->alloc_lock);
	cowchain_unpack(md->subblocks, v, &t->phys, &t->present);
	t->zero = 0;
	atomic_set(&t->inflight, 0);
	t->busy = 0;
	/* the slot exists: no allocation */
	old = xa_cmpxchg_irq(&md->entries, vc, v, t, GFP_ATOMIC);
	WARN_ON_ONCE(old != v);
	return t;
}

struct cowchain_tent *__cowchain_md_get_entry(struct cowchain_md *md, u64 vc, gfp_t gfp)
{
	struct cowchain_tent *t = NULL;
	void *e;
	int r;

	for (;;) {
		/* under alloc_lock the slot cannot be packed or unpacked */
		spin_lock(&md->alloc_lock);
		e = xa_load(&md->entries, vc);
		if (e && !xa_is_value(e))
			break;
		if (e && t) {
			e = unpack_entry(md, vc, e, t);
			t = NULL;
			break;
		}
		spin_unlock(&md->alloc_lock);
		/* a new entry, or a tent to unpack a packed full cluster into */
		if (!t) {
			t = COWCHAIN_ALLOC(kmem_cache_zalloc(cowchain_tent_cache,
							     gfp | __GFP_NOWARN));
			if (!t)
				return ERR_PTR(-ENOMEM);
		}
		if (e)
			continue;
		atomic_set(&t->inflight, 0);
		r = cowchain_fail_alloc() ? -ENOMEM :
			xa_insert_irq(&md->entries, vc, t, gfp | __GFP_NOWARN);
		if (!r) {
			/*
			 * Entries are never erased, and one without a data
			 * cluster is never packed: the slot still holds it.
			 */
			spin_lock(&md->alloc_lock);
			e = t;
			t = NULL;
			break;
		}
		if (r != -EBUSY) {
			kmem_cache_free(cowchain_tent_cache, t);
			return ERR_PTR(-ENOMEM);
		}
		/* inserted meanwhile: look again (t is kept for an unpack) */
	}
	if (t)
		kmem_cache_free(cowchain_tent_cache, t);
	return e;
}

struct cowchain_tent *__cowchain_md_get_cluster(struct cowchain_md *md, u64 vc, gfp_t gfp)
{
	struct cowchain_tent *t = __cowchain_md_get_entry(md, vc, gfp);
	u64 c;

	if (IS_ERR(t))
		return t;
	if (!t->phys) {
		if (md->free_clusters <= cowchain_md_reserve(md) || !take_cluster(md, &c)) {
			spin_unlock(&md->alloc_lock);
			return ERR_PTR(-ENOSPC);
		}
		t->phys = c;
		md->allocated++;
	}
	return t;
}

/*
 * Pack the entry of vc if it is idle and cowchain_packable(): the tent is
 * replaced by a value holding its data cluster and present bits, and
 * freed.  Worker, with
 * commit_lock (nothing else frees or packs).  The swap is made under
 * bits_lock, so a reader that loaded the tent before it retries, and the
 * cache is SLAB_TYPESAFE_BY_RCU, so that reader (under rcu_read_lock) may
 * still read the freed tent's memory before it does.
 */
static void pack_entry(struct cowchain_md *md, u64 vc, struct cowchain_tent *t)
{
	void *old = NULL;

	/*
	 * Under alloc_lock no first write or copy-up can start; one that has
	 * ended set its bits before it dropped inflight (end_io), and under
	 * bits_lock no bits change.
	 */
	spin_lock(&md->alloc_lock);
	if (t->busy || atomic_read(&t->inflight)) {
		spin_unlock(&md->alloc_lock);
		return;
	}
	smp_rmb();	/* inflight before the bits: pairs with end_io */
	write_seqlock_irq(&md->bits_lock);
	if (cowchain_packable(md->subblocks, t->phys, t->present, t->zero))
		old = xa_cmpxchg(&md->entries, vc, t,
				 cowchain_pack(md->subblocks, t->phys, t->present), GFP_ATOMIC);
	write_sequnlock_irq(&md->bits_lock);
	spin_unlock(&md->alloc_lock);
	if (old == t)
		kmem_cache_free(cowchain_tent_cache, t);
}

/*
 * Make room for extra more freed clusters in the pending and recycled
 * lists.  Worker only (it alone adds to them); may sleep.
 */
int cowchain_md_reserve_free(struct cowchain_md *md, u64 extra)
{
	u64 need_p = md->n_pending + extra, need_r = md->n_recycled + need_p;
	u64 *np = NULL, *nr = NULL, *op = NULL, *or = NULL;

	if (need_p > md->cap_pending) {
		need_p = max(need_p, 2 * md->cap_pending);
		np = COWCHAIN_ALLOC(kvmalloc_array(need_p, sizeof(u64), GFP_NOIO));
		if (!np)
			return -ENOMEM;
	}
	if (need_r > md->cap_recycled) {
		need_r = max(need_r, 2 * md->cap_recycled);
		nr = COWCHAIN_ALLOC(kvmalloc_array(need_r, sizeof(u64), GFP_NOIO));
		if (!nr) {
			kvfree(np);
			return -ENOMEM;
		}
	}
	spin_lock(&md->alloc_lock);
	if (np) {
		memcpy(np, md->pending_free, md->n_pending * sizeof(u64));
		op = md->pending_free;
		md->pending_free = np;
		md->cap_pending = need_p;
	}
	if (nr) {
		memcpy(nr, md->recycled, md->n_recycled * sizeof(u64));
		or = md->recycled;
		md->recycled = nr;
		md->cap_recycled = need_r;
	}
	spin_unlock(&md->alloc_lock);
	kvfree(op);
	kvfree(or);
	return 0;
}

/* Called with alloc_lock and bits_lock held by the worker. */
int __cowchain_md_free_cluster(struct cowchain_md *md, struct cowchain_tent *t)
{
	lockdep_assert_held(&md->alloc_lock);
	if (!t->phys)
		return 0;
	if (md->n_pending == md->cap_pending)
		return -ENOMEM;	/* caller grows the array first */
	md->pending_free[md->n_pending++] = t->phys;
	t->phys = 0;
	md->allocated--;
	return 0;
}

/*
 * A 4 KiB block for a new map or leaf block: a free block of a metadata
 * cluster found at open, else the rest of the cluster opened last, else a
 * new cluster.  0 when there is no space.
 */
static u64 alloc_meta_block(struct cowchain_md *md)
{
	u64 c, b = 0;

	spin_lock(&md->alloc_lock);
	if (md->next_meta_free < md->n_meta_free) {
		b = md->meta_free[md->next_meta_free++];
		goto out;
	}
	if (md->meta_next == md->meta_end) {
		if (!take_cluster(md, &c))
			goto out;
		md->meta_clusters++;
		md->meta_next = c << (md->cluster_shift - COWCHAIN_BLOCK_SHIFT);
		md->meta_end = md->meta_next +
			(1ull << (md->cluster_shift - COWCHAIN_BLOCK_SHIFT));
	}
	b = md->meta_next++;
out:
	if (b)
		md->meta_homed++;	/* every call gives a map or a leaf its home */
	spin_unlock(&md->alloc_lock);
	return b;
}

/*----------------------------------------------------------------
 * Commit and checkpoint
 *--------------------------------------------------------------*/

/*
 * The superblock goes into the slot the current one is not in (seq + 1).
 * A write that fails leaves seq as it was: the next one goes into the same
 * slot again, never over the last good superblock (after a failed write
 * the other slot may hold anything, and a power cut during a write into
 * the good slot would leave neither).
 */
static int write_sb(struct cowchain_md *md)
{
	struct cowchain_layer *l = &md->layers[0];
	int r;

	l->sb.seq++;
	cowchain_sb_pack(&l->sb, md->blockbuf);
	r = cowchain_md_block_io(md, l->dev, l->sb.seq & 1, 1, md->blockbuf,
				 REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA | REQ_SYNC);
	if (r)
		l->sb.seq--;
	return r;
}

void cowchain_md_set_needs_check(struct cowchain_md *md)
{
	mutex_lock(&md->commit_lock);
	if (md->writable) {
		md->layers[0].sb.flags |= COWCHAIN_SB_NEEDS_CHECK;
		write_sb(md);
	}
	mutex_unlock(&md->commit_lock);
}

/* The entry e of the entries xarray (a tent or a packed full cluster). */
static void read_bits(struct cowchain_md *md, void *e, struct cowchain_entry *out)
{
	struct cowchain_tent *t = e;
	unsigned int seq;

	if (xa_is_value(e)) {
		cowchain_unpack(md->subblocks, e, &out->phys, &out->present);
		out->zero = 0;
		return;
	}
	do {
		seq = read_seqbegin(&md->bits_lock);
		out->phys = t->phys;
		out->present = t->present;
		out->zero = t->zero;
	} while (read_seqretry(&md->bits_lock, seq));
	if (!out->present)
		out->phys = 0;	/* data still in flight: not referenced yet */
}

/* Pack leaf l into buf; idle, packable entries get packed in core. */
static void pack_leaf(struct cowchain_md *md, u64 l, u64 home, void *buf)
{
	struct cowchain_leaf_disk *leaf = buf;
	struct cowchain_entry e;
	u32 i, used = 0;

	memset(buf, 0, COWCHAIN_BLOCK_SIZE);
	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		u64 vc = (l << COWCHAIN_LEAF_SHIFT) + i;
		void *p = xa_load(&md->entries, vc);

		if (!p)
			continue;
		read_bits(md, p, &e);
		if (!xa_is_value(p))
			pack_entry(md, vc, p);
		if (cowchain_entry_empty(&e))
			continue;
		cowchain_entry_pack(&e, &leaf->entry[i]);
		used++;
	}
	cowchain_header_init(buf, COWCHAIN_LEAF_MAGIC, home, md->layers[0].sb.uuid,
			     l << COWCHAIN_LEAF_SHIFT, used);
	cowchain_block_seal(buf, home);
}

static void pack_ptrs(struct cowchain_md *md, u32 magic, u64 key, u64 home,
		      const u64 *ptr, void *buf)
{
	struct cowchain_ptr_disk *blk = buf;
	u32 i, used = 0;

	memset(buf, 0, COWCHAIN_BLOCK_SIZE);
	for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++) {
		blk->ptr[i] = cpu_to_le64(ptr[i]);
		used += !!ptr[i];
	}
	cowchain_header_init(buf, magic, home, md->layers[0].sb.uuid, key, used);
	cowchain_block_seal(buf, home);
}

static bool leaf_has_home(struct cowchain_md *md, u64 l)
{
	struct cowchain_mblk *mb = xa_load(&md->maps, l >> COWCHAIN_PTR_SHIFT);

	return mb && mb->ptr[l & (COWCHAIN_PTR_ENTRIES - 1)];
}

/* No entry of leaf l holds or zeroes anything (in memory). */
static bool leaf_empty(struct cowchain_md *md, u64 l)
{
	struct cowchain_entry e;
	u32 i;

	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		void *p = xa_load(&md->entries, (l << COWCHAIN_LEAF_SHIFT) + i);

		if (!p)
			continue;
		if (xa_is_value(p) || ((struct cowchain_tent *)p)->phys)
			return false;
		read_bits(md, p, &e);
		if (!cowchain_entry_empty(&e))
			return false;
	}
	return true;
}

static int mark_meta_dirty(struct cowchain_md *md, u64 home, u64 val)
{
	if (cowchain_fail_alloc())
		return -ENOMEM;
	return xa_err(xa_store(&md->dirty_meta, home, xa_mk_value(val), GFP_NOIO));
}

/*
 * Give leaf l a home, creating its map block if needed.  Each block is
 * marked dirty in its parent before it gets its home, so that a failure
 * at any point leaves either nothing or a dirty parent (written again,
 * harmless), never a home that no dirty parent will write: a second call
 * finishes the job.
 */
static int ensure_leaf_home(struct cowchain_md *md, u64 l, u64 *home)
{
	u64 m = l >> COWCHAIN_PTR_SHIFT, r_idx = m >> COWCHAIN_PTR_SHIFT;
	u32 slot = l & (COWCHAIN_PTR_ENTRIES - 1);
	struct cowchain_mblk *mb = xa_load(&md->maps, m);
	int r;

	if (!mb) {
		mb = COWCHAIN_ALLOC(kzalloc(sizeof(*mb), GFP_NOIO));
		if (!mb)
			return -ENOMEM;
		r = cowchain_fail_alloc() ? -ENOMEM : xa_insert(&md->maps, m, mb, GFP_NOIO);
		if (r) {
			kfree(mb);
			return r;
		}
	}
	if (!mb->home) {	/* new, or an earlier call failed here */
		r = mark_meta_dirty(md, md->layers[0].sb.root_start + r_idx,
				    r_idx << 1 | META_ROOT);
		if (r)
			return r;
		mb->home = alloc_meta_block(md);
		if (!mb->home)
			return -ENOSPC;
		md->roots[m] = mb->home;
	}
	if (!mb->ptr[slot]) {
		u64 b;

		r = mark_meta_dirty(md, mb->home, m << 1 | META_MAP);
		if (r)
			return r;
		b = alloc_meta_block(md);
		if (!b)
			return -ENOSPC;
		mb->ptr[slot] = b;
	}
	*home = mb->ptr[slot];
	return 0;
}

/* Write every kept image home, flush, then advance the journal head. */
static int __checkpoint(struct cowchain_md *md)
{
	struct cowchain_layer *top = &md->layers[0];
	unsigned long home;
	void *img;
	int r;

	lockdep_assert_held(&md->commit_lock);
	/* 1. images home (they are journalled: a torn write is replayed) */
	xa_for_each(&top->images, home, img) {
		r = cowchain_md_block_io(md, top->dev, home, 1, img, REQ_OP_WRITE);
		if (r)
			return r;
	}
	/* 2. flush, 3. superblock with the new head (written last) */
	r = blkdev_issue_flush(top->dev->bdev);
	if (r)
		return r;
	if (md->j_tail >= top->sb.journal_blocks)
		md->j_tail = 0;
	top->sb.journal_head = md->j_tail;
	top->sb.journal_seq = md->j_seq;
	r = write_sb(md);
	if (r)
		return r;
	cowchain_free_images(&top->images);
	xa_init(&top->images);
	md->j_head = md->j_tail;
	md->j_empty = true;
	return 0;
}

/*
 * Write one transaction of n images (already packed after the descriptor).
 * The copies kept for the checkpoint, and their slots in top->images, are
 * allocated before the write: once the transaction is on disk, keeping
 * its images cannot fail.  copies: room for n pointers.
 */
static int write_txn(struct cowchain_md *md, void *buf, u64 *homes, void **images,
		     void **copies, u32 n)
{
	struct cowchain_layer *top = &md->layers[0];
	s64 pos;
	u32 i, k;
	int r;

	pos = cowchain_journal_place(&top->sb, md->j_head, md->j_tail, md->j_empty, n);
	if (pos == -ENOSPC) {
		r = __checkpoint(md);
		if (r)
			return r;
		pos = cowchain_journal_place(&top->sb, md->j_head, md->j_tail,
					     md->j_empty, n);
	}
	if (pos < 0)
		return (int)pos;
	for (k = 0; k < n; k++) {
		copies[k] = COWCHAIN_ALLOC(kmalloc(COWCHAIN_BLOCK_SIZE, GFP_NOIO));
		r = !copies[k] || cowchain_fail_alloc() ? -ENOMEM :
			xa_reserve(&top->images, homes[k], GFP_NOIO);
		if (r) {
			kfree(copies[k]);
			goto unwind;
		}
	}
	cowchain_jdesc_build(buf, &top->sb, pos, md->j_seq, homes, images, n);
	/* data before metadata: the flush covers every completed data write */
	r = cowchain_md_block_io(md, top->dev, top->sb.journal_start + pos, 1 + n, buf,
		  REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA | REQ_SYNC);
	if (r)
		goto unwind;
	for (i = 0; i < n; i++) {
		/* the slot exists (reserved or holding an older image): no allocation */
		void *old;

		memcpy(copies[i], images[i], COWCHAIN_BLOCK_SIZE);
		old = xa_store(&top->images, homes[i], copies[i], GFP_NOWAIT);
		if (xa_is_err(old)) {	/* not expected; the transaction stays unkept */
			for (; i < n; i++)
				kfree(copies[i]);
			return -EIO;
		}
		kfree(old);
	}
	md->j_tail = pos + 1 + n;
	md->j_seq++;
	md->j_empty = false;
	return 0;
unwind:
	for (i = 0; i < k; i++) {
		xa_release(&top->images, homes[i]);
		kfree(copies[i]);
	}
	return r;
}

/* Has every bio counted into epoch e (cowchain_md_io_begin) ended? */
static bool io_epoch_idle(struct cowchain_md *md, unsigned int e)
{
	unsigned long begun = 0, ended = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		ended += READ_ONCE(per_cpu_ptr(md->ioc, cpu)->ended[e]);
	/* a bio counted as ended above is counted as begun below */
	smp_mb();
	for_each_possible_cpu(cpu)
		begun += READ_ONCE(per_cpu_ptr(md->ioc, cpu)->begun[e]);
	return begun == ended;
}

/*
 * Wait until every read or overwrite that may have looked up a cluster of
 * the top before the worker freed it has ended, so that recycling the
 * cluster cannot let such a bio read another vcluster's new data, or
 * write its own over it.  It may wait for the top device's I/O, as the
 * commit's own writes do.
 *
 * Each epoch in turn: switch new bios to the other one, then wait for
 * this one's count to drain.  Both are waited for because a bio may read
 * the epoch just before a switch and count itself just after it.  A bio
 * missed by a sum was counted after the barrier that follows the frees,
 * so its lookup saw the cluster freed (cowchain_md_io_begin).
 */
static void drain_io(struct cowchain_md *md)
{
	unsigned int k, e;

	for (k = 0; k < 2; k++) {
		e = md->ioc_epoch & 1;
		smp_mb();	/* the frees before the switch */
		WRITE_ONCE(md->ioc_epoch, md->ioc_epoch + 1);
		WRITE_ONCE(md->ioc_waiting, true);
		smp_mb();	/* ioc_waiting before the sums: pairs with io_end */
		wait_event(md->ioc_wait, io_epoch_idle(md, e));
		WRITE_ONCE(md->ioc_waiting, false);
	}
}

/*
 * Pass the discard of clusters whose free was just committed down to the
 * top device, so that a layer file gets its space back.  Only now: before
 * the commit, a crash would bring back metadata that still references the
 * clusters, and their data would be gone.  And before they can be
 * allocated again (they are not on the recycled list yet), so no new data
 * is ever discarded.  Advisory: errors are only logged.  Worker (or
 * postsuspend) only: nothing else touches pending_free meanwhile.
 */
static void discard_freed(struct cowchain_md *md)
{
	struct block_device *bdev = md->layers[0].dev->bdev;
	u32 shift = md->cluster_shift - SECTOR_SHIFT;
	u64 i, j, n = md->n_pending;
	int r;

	lockdep_assert_held(&md->commit_lock);
	if (!n || !bdev_max_discard_sectors(bdev))
		return;
	sort(md->pending_free, n, sizeof(u64), cowchain_cmp_u64, NULL);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && md->pending_free[j] == md->pending_free[j - 1] + 1; j++)
			;
		r = blkdev_issue_discard(bdev, md->pending_free[i] << shift,
					 (j - i) << shift, GFP_NOIO);
		if (r && r != -EOPNOTSUPP)
			DMWARN_LIMIT("%s: discard of freed clusters failed: error %d",
				     md->layers[0].dev->name, r);
	}
}

/* A commit that failed: every entry of its leaves is dirty again. */
static void remark_leaves(struct cowchain_md *md, const struct u64vec *leaves)
{
	struct cowchain_tent *t;
	unsigned long vc;
	u64 i;

	for (i = 0; i < leaves->n; i++) {
		u64 first = leaves->v[i] << COWCHAIN_LEAF_SHIFT;

		xa_for_each_range(&md->entries, vc, t, first, first + COWCHAIN_LEAF_ENTRIES - 1)
			cowchain_md_mark_dirty(md, vc);
	}
}

static int __commit(struct cowchain_md *md)
{
	struct cowchain_layer *top = &md->layers[0];
	u32 maxn = min_t(u64, COWCHAIN_JDESC_MAX_ENTRIES, top->sb.journal_blocks - 1);
	struct u64vec leaves = { }, homes = { }, kinds = { };
	void *buf = NULL, **images = NULL, **copies = NULL;
	struct cowchain_tent *t;
	unsigned long vc, h;
	void *v;
	u64 i, done;
	int r = 0;

	lockdep_assert_held(&md->commit_lock);
	if (!md->writable)
		return 0;
	/* 1. dirty leaves (a leaf is listed before its entries lose the mark) */
	xa_for_each_marked(&md->entries, vc, t, COWCHAIN_DIRTY) {
		u64 l = vc >> COWCHAIN_LEAF_SHIFT;

		if (!leaves.n || leaves.v[leaves.n - 1] != l) {
			r = cowchain_vec_push(&leaves, l);
			if (r)
				goto out;
		}
		xa_lock_irq(&md->entries);
		__xa_clear_mark(&md->entries, vc, COWCHAIN_DIRTY);
		xa_unlock_irq(&md->entries);
	}
	cowchain_commit_delay();
	/* 2. homes */
	for (i = 0; i < leaves.n; i++) {
		u64 home;

		/* a root's discard leaves empty entries: no block for them */
		if (!leaf_has_home(md, leaves.v[i]) && leaf_empty(md, leaves.v[i]))
			continue;
		r = ensure_leaf_home(md, leaves.v[i], &home);
		if (!r)
			r = cowchain_vec_push(&homes, home);
		if (!r)
			r = cowchain_vec_push(&kinds, leaves.v[i] << 2 | 2);
		if (r)
			goto out;
	}
	xa_for_each(&md->dirty_meta, h, v) {
		r = cowchain_vec_push(&homes, h);
		if (!r)
			r = cowchain_vec_push(&kinds, (xa_to_value(v) >> 1) << 2 | (xa_to_value(v) & 1));
		if (r)
			goto out;
	}
	if (!homes.n)
		goto freed;

	/*
	 * Sized for the largest transaction this commit writes, not for the
	 * largest one possible: a commit after one first write needs 8 KiB,
	 * a kmalloc, where a buffer for 252 images would cost a 1 MiB vmalloc
	 * (and its vfree) on every fsync.  Under memalloc_noio (the caller),
	 * GFP_KERNEL does no I/O.
	 */
	maxn = min_t(u64, maxn, homes.n);
	buf = COWCHAIN_ALLOC(kvmalloc_array(1 + maxn, COWCHAIN_BLOCK_SIZE, GFP_KERNEL));
	images = COWCHAIN_ALLOC(kmalloc_array(maxn, sizeof(*images), GFP_NOIO));
	copies = COWCHAIN_ALLOC(kmalloc_array(maxn, sizeof(*copies), GFP_NOIO));
	if (!buf || !images || !copies) {
		r = -ENOMEM;
		goto out;
	}

	/* 3. the generation, once per activation, before the first change */
	if (!md->gen_bumped) {
		top->sb.generation++;
		r = write_sb(md);
		if (r)
			goto out;
		md->gen_bumped = true;
	}

	/* 4. transactions */
	for (done = 0; done < homes.n; ) {
		u32 n = min_t(u64, maxn, homes.n - done), k;

		for (k = 0; k < n; k++) {
			u64 kind = kinds.v[done + k], idx = kind >> 2, home = homes.v[done + k];
			void *img = buf + (1 + k) * COWCHAIN_BLOCK_SIZE;

			images[k] = img;
			if ((kind & 3) == 2)
				pack_leaf(md, idx, home, img);
			else if ((kind & 3) == META_ROOT)
				pack_ptrs(md, COWCHAIN_ROOT_MAGIC, idx << COWCHAIN_ROOT_SPAN_SHIFT,
					  home, &md->roots[idx * COWCHAIN_PTR_ENTRIES], img);
			else
				pack_ptrs(md, COWCHAIN_MAP_MAGIC, idx << COWCHAIN_MAP_SPAN_SHIFT,
					  home, ((struct cowchain_mblk *)
						 xa_load(&md->maps, idx))->ptr, img);
		}
		r = write_txn(md, buf, &homes.v[done], images, copies, n);
		if (r)
			goto out;
		done += n;
	}
	md->commits++;
	xa_destroy(&md->dirty_meta);
freed:
	/*
	 * 5. clusters freed before this commit are free on disk now; once
	 * no bio uses them, discard them and hand them out again
	 */
	if (md->n_pending)
		drain_io(md);
	discard_freed(md);
	spin_lock(&md->alloc_lock);
	while (md->n_pending && md->n_recycled < md->cap_recycled) {
		md->recycled[md->n_recycled++] = md->pending_free[--md->n_pending];
		md->free_clusters++;
	}
	spin_unlock(&md->alloc_lock);
out:
	if (r)
		remark_leaves(md, &leaves);
	kvfree(buf);
	kfree(images);
	kfree(copies);
	kvfree(leaves.v);
	kvfree(homes.v);
	kvfree(kinds.v);
	return r;
}

/* __commit, with md->committing set around it (cowchain_md_synced). */
static int commit_marked(struct cowchain_md *md)
{
	int r;

	WRITE_ONCE(md->committing, true);
	smp_mb();	/* committing before any mark is cleared or entry packed */
	r = __commit(md);
	smp_mb();	/* the journal write before committing is cleared */
	WRITE_ONCE(md->committing, false);
	return r;
}

int cowchain_md_commit(struct cowchain_md *md)
{
	unsigned int noio;
	int r;

	mutex_lock(&md->commit_lock);
	noio = memalloc_noio_save();
	r = commit_marked(md);
	memalloc_noio_restore(noio);
	mutex_unlock(&md->commit_lock);
	return r;
}

int cowchain_md_checkpoint(struct cowchain_md *md)
{
	unsigned int noio;
	int r;

	mutex_lock(&md->commit_lock);
	noio = memalloc_noio_save();
	r = commit_marked(md);
	if (!r && md->writable && !md->j_empty)
		r = __checkpoint(md);
	memalloc_noio_restore(noio);
	mutex_unlock(&md->commit_lock);
	return r;
}

/* Synchronous I/O in 512-byte sectors (copy-up, metadata blocks); may sleep. */
int cowchain_md_io(struct cowchain_md *md, struct dm_dev *dev, sector_t sector,
		   sector_t count, void *buf, blk_opf_t opf)
{
	struct dm_io_region where = {
		.bdev = dev->bdev, .sector = sector, .count = count,
	};
	struct dm_io_request req = {
		.bi_opf = opf, .notify.fn = NULL, .client = md->io,
	};
	unsigned long error_bits = 0;

	if (is_vmalloc_addr(buf)) {
		req.mem.type = DM_IO_VMA;
		req.mem.ptr.vma = buf;
	} else {
		req.mem.type = DM_IO_KMEM;
		req.mem.ptr.addr = buf;
	}
	return dm_io(&req, 1, &where, &error_bits, IOPRIO_DEFAULT);
}
