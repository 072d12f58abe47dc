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
 *    answer changes, so every piece is one remap; where it does not (the
 *    next cluster is served by the same device, at the next data
 *    cluster), one remap spans several clusters.
 *  - write over sub-blocks the top holds: remap in place, across clusters
 *    as a read is.
 *  - first write of whole sub-blocks: give the vcluster a data cluster
 *    (in memory, under a short spinlock: two writers never allocate
 *    twice), remap, and set the present bits in end_io once the data is on
 *    the device.  Until then a racing read still goes to the old place, so
 *    it sees the old or the new data, nothing else.
 *  - REQ_PREFLUSH with no dirty metadata and no commit under way: straight
 *    to the top device.
 *
 * The worker handles the rest: writes that cover part of a sub-block not
 * yet held (copy-up of that one sub-block: read through the chain, merge,
 * write), discard and write-zeroes (zero markers), allocation retries when
 * GFP_NOWAIT failed, and flushes that need a commit, which it batches: all
 * flushes waiting when it runs are served by one commit.  A REQ_FUA write
 * whose mapping is not yet on disk (it allocated, copied up, or overwrites
 * sub-blocks of an entry changed since the last commit) is completed only
 * after the commit that covers it, and goes down without FUA.
 *
 * Modes, ordered by degradation: WRITE < OUT_OF_SPACE < READ_ONLY < FAIL.
 * set_mode() never leaves FAIL and raises a table event.
 */
#include <linux/blkdev.h>
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "fault.h"
#include "target.h"

static const char *const mode_name[] = {
	[CM_WRITE] = "rw",
	[CM_OUT_OF_SPACE] = "out_of_space",
	[CM_READ_ONLY] = "ro",
	[CM_FAIL] = "fail",
};

/*
 * Tops of live (resumed) tables.  A layer may be written through one table
 * only: a second live table on the same top would keep its own in-core
 * index and allocate the same free clusters.  dm opens every table device
 * with one holder, so an exclusive open cannot tell two tables apart; the
 * claim is taken in preresume and given back in postsuspend and dtr (a
 * reload of the same device suspends the old table before it resumes the
 * new one).  A top is the same when its block device is, or when its
 * layer uuid is: the same file behind two loop devices is two block
 * devices but one layer.
 */
static LIST_HEAD(live_tops);
static DEFINE_MUTEX(live_tops_lock);

/*----------------------------------------------------------------
 * Allocation failure switch (fault.h), for tests
 *--------------------------------------------------------------*/

static unsigned int fail_alloc_every;
static atomic_t fail_alloc_calls = ATOMIC_INIT(0);
static atomic_t fail_alloc_failed = ATOMIC_INIT(0);

/* Setting the switch restarts the count: N fails the Nth call from now. */
static int set_fail_alloc_every(const char *val, const struct kernel_param *kp)
{
	int r = param_set_uint(val, kp);

	if (!r)
		atomic_set(&fail_alloc_calls, 0);
	return r;
}

static const struct kernel_param_ops fail_alloc_every_ops = {
	.set = set_fail_alloc_every,
	.get = param_get_uint,
};
module_param_cb(fail_alloc_every, &fail_alloc_every_ops, &fail_alloc_every, 0644);
MODULE_PARM_DESC(fail_alloc_every,
		 "testing: every Nth allocation at the instrumented sites fails (0: off)");

static int get_fail_alloc_failed(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&fail_alloc_failed));
}

static const struct kernel_param_ops fail_alloc_failed_ops = {
	.get = get_fail_alloc_failed,
};
/* how many allocations the switch has failed since the module was loaded */
module_param_cb(fail_alloc_failed, &fail_alloc_failed_ops, NULL, 0444);
MODULE_PARM_DESC(fail_alloc_failed, "testing: allocations failed by fail_alloc_every");

/*
 * Testing: a commit sleeps this long after it has taken the dirty entries
 * and before it writes the journal, to hold open the window in which they
 * are in no dirty mark and not yet on disk (t-rel-fua).
 */
static unsigned int commit_delay_ms;
module_param(commit_delay_ms, uint, 0644);
MODULE_PARM_DESC(commit_delay_ms,
		 "testing: a commit sleeps this long before its journal write (0: off)");

void cowchain_commit_delay(void)
{
	unsigned int ms = READ_ONCE(commit_delay_ms);

	if (ms)
		msleep(ms);
}

bool cowchain_fail_alloc(void)
{
	unsigned int n = READ_ONCE(fail_alloc_every);

	if (!n || (unsigned int)atomic_inc_return(&fail_alloc_calls) % n)
		return false;
	atomic_inc(&fail_alloc_failed);
	return true;
}

/*----------------------------------------------------------------
 * Modes
 *--------------------------------------------------------------*/

static void event_fn(struct work_struct *ws)
{
	struct cowchain_c *cc = container_of(ws, struct cowchain_c, event_work);

	dm_table_event(cc->ti->table);
}

void cowchain_set_mode(struct cowchain_c *cc, enum cowchain_mode m)
{
	enum cowchain_mode old = READ_ONCE(cc->mode);

	if (old == CM_FAIL || old == m)
		return;
	WRITE_ONCE(cc->mode, m);
	DMWARN_LIMIT("%s: switching to %s mode", cc->name, mode_name[m]);
	schedule_work(&cc->event_work);
}

void cowchain_metadata_failed(struct cowchain_c *cc, const char *op, int r)
{
	DMERR_LIMIT("%s: metadata operation '%s' failed: error %d", cc->name, op, r);
	cowchain_md_set_needs_check(&cc->md);
	cowchain_set_mode(cc, CM_READ_ONLY);
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
		list_for_each_entry(o, &live_tops, claim) {
			if (o->read_only && cc->read_only)
				continue;
			if (o->devs[0]->bdev == cc->devs[0]->bdev) {
				DMERR("%s: top %s is in use by the live device %s",
				      cc->name, cc->devs[0]->name, o->name);
				r = -EBUSY;
				break;
			}
			/* the same layer file through a second loop device */
			if (!memcmp(o->md.layers[0].sb.uuid, cc->md.layers[0].sb.uuid,
				    COWCHAIN_UUID_SIZE)) {
				DMERR("%s: top %s is the layer the live device %s writes (same uuid)",
				      cc->name, cc->devs[0]->name, o->name);
				r = -EBUSY;
				break;
			}
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

/*
 * dm_read_arg() parses with sscanf("%u"), which wraps numbers past 2^32
 * (4294967297 reads as 1): check a count's text with kstrtouint(), which
 * refuses overflow, signs and junk, before dm_read_arg() sees it.
 */
static int check_count(const char *arg, const struct dm_arg *a, char **error)
{
	unsigned int v;

	if (!arg || kstrtouint(arg, 10, &v) || v < a->min || v > a->max) {
		*error = a->error;
		return -EINVAL;
	}
	return 0;
}

static int parse_ancestor_count(struct cowchain_c *cc, const char *arg, char **error)
{
	static const struct dm_arg _arg = {
		0, COWCHAIN_MAX_DEPTH - 1, "invalid number of ancestors"
	};
	struct dm_arg_set as = { .argc = 1, .argv = (char **)&arg };
	unsigned int n;
	int r = check_count(arg, &_arg, error);

	if (!r)
		r = dm_read_arg(&_arg, &as, &n, error);

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
	r = check_count(as->argv[0], &_args[0], error);
	if (r)
		return r;
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
 * Every device is read in pieces as small as one sub-block (a cluster
 * split between layers, a copy-up), and the top is written so: none may
 * have a logical block larger than a sub-block.  The device's logical
 * block is the largest of theirs (io_hints), so that no bio it takes has
 * to be split below a block of some device.
 */
static int check_block_sizes(struct cowchain_c *cc, char **error)
{
	unsigned int i, lbs, sbsize = 1u << cc->md.subblock_shift;

	cc->lbs = SECTOR_SIZE;
	for (i = 0; i <= cc->ndevs; i++) {
		struct dm_dev *d = i < cc->ndevs ? cc->devs[i] : cc->base;

		if (!d)
			continue;
		lbs = bdev_logical_block_size(d->bdev);
		if (lbs > sbsize) {
			*error = "a device's logical block size is larger than the sub-block size";
			return -EINVAL;
		}
		cc->lbs = max(cc->lbs, lbs);
	}
	return 0;
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
	cc = COWCHAIN_ALLOC(kzalloc(sizeof(*cc), GFP_KERNEL));
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
	INIT_WORK(&cc->worker, cowchain_worker);
	INIT_DELAYED_WORK(&cc->waker, cowchain_waker);
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
	cc->devs = COWCHAIN_ALLOC(kvcalloc(cc->ndevs, sizeof(*cc->devs), GFP_KERNEL));
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

	r = check_block_sizes(cc, &ti->error);
	if (r)
		goto bad;
	cc->root = cc->md.layers[0].sb.parent_kind == COWCHAIN_PARENT_NONE;
	/* the copy-up buffer: one sub-block, preallocated for the worker */
	cc->cow_buf = COWCHAIN_ALLOC(kvmalloc(1ul << cc->md.subblock_shift, GFP_KERNEL));
	cc->wq = COWCHAIN_ALLOC(alloc_workqueue("dm-cowchain", WQ_MEM_RECLAIM, 0));
	if (!cc->cow_buf || !cc->wq) {
		ti->error = "cannot allocate the worker";
		r = -ENOMEM;
		goto bad;
	}
	/*
	 * No max_io_len: map() cuts a bio itself where its placement changes
	 * (io.c), so a bio over contiguous clusters is remapped whole, as
	 * dm-linear does.  The devices below split what exceeds their limits.
	 */
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

#define SUSPEND_NOMEM_TRIES	20
#define SUSPEND_NOMEM_WAIT_MS	10

/*
 * Every bio has completed: stop the timer, commit and checkpoint, give the
 * top back.  Idempotent: a second call finds nothing to commit.
 */
static void cowchain_postsuspend(struct dm_target *ti)
{
	struct cowchain_c *cc = ti->private;
	unsigned int tries = 0;
	int r;

	WRITE_ONCE(cc->suspended, true);
	cancel_delayed_work_sync(&cc->waker);
	flush_workqueue(cc->wq);
	cancel_delayed_work_sync(&cc->waker);
	if (!cc->read_only && READ_ONCE(cc->mode) < CM_READ_ONLY) {
		/*
		 * A commit that found no memory changed nothing it cannot redo
		 * (commit.c): try again for a while before failing the device.
		 */
		while ((r = cowchain_md_checkpoint(&cc->md)) == -ENOMEM &&
		       ++tries < SUSPEND_NOMEM_TRIES)
			msleep(SUSPEND_NOMEM_WAIT_MS);
		if (r)
			cowchain_metadata_failed(cc, "checkpoint", r);
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
		cowchain_set_mode(cc, CM_FAIL);
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
	cowchain_commit_in_worker(cc);
	return 0;
}

static int process_checkpoint_mesg(struct cowchain_c *cc, unsigned int argc, char **argv,
				   char *result, unsigned int maxlen)
{
	if (argc != 1)
		return -EINVAL;
	if (cc->read_only || READ_ONCE(cc->mode) >= CM_READ_ONLY)
		return -EROFS;
	return cowchain_checkpoint_in_worker(cc);
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
	cowchain_resolve(md, off >> md->cluster_shift, in >> md->subblock_shift, &s);
	switch (s.kind) {
	case SRC_TOP:
		DMEMIT("top %llu", (unsigned long long)cowchain_phys_sector(md, s.phys, in));
		break;
	case SRC_LAYER:
		DMEMIT("layer %u %llu", s.layer, (unsigned long long)cowchain_phys_sector(md, s.phys, in));
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

	/*
	 * The top receives writes and flushes; limits come from it.  Its
	 * sectors are not the virtual disk's: a top on a block device may be
	 * smaller than the disk (over-commit, FORMAT.md section 2) and runs
	 * out of space instead, so report no more of it than it has, or dm
	 * core refuses the table as "too small for target".
	 */
	return fn(ti, cc->devs[0], 0,
		  min_t(sector_t, ti->len, bdev_nr_sectors(cc->devs[0]->bdev)), data);
}

/*
 * A discard ends as zero markers and freed clusters in the top (io.c), not
 * as a discard of the top's device (passed down only for freed clusters,
 * after the commit, when that device takes it), so it is offered whatever
 * the top's device offers: dm core would otherwise stack the device's
 * "none".  Granularity: one sub-block, what a zero marker covers.  At most
 * 1024 clusters per bio: the worker handles a discard in one go.
 */
static void cowchain_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct cowchain_c *cc = ti->private;
	u64 max = 1024ull << (cc->md.cluster_shift - SECTOR_SHIFT);

	/* only the top's limits are stacked (iterate_devices) */
	limits->logical_block_size = max(limits->logical_block_size, cc->lbs);
	limits->physical_block_size = max(limits->physical_block_size, cc->lbs);
	limits->io_min = max(limits->io_min, cc->lbs);
	if (cc->read_only)
		return;
	limits->discard_granularity = 1u << cc->md.subblock_shift;
	limits->discard_alignment = 0;
	limits->max_hw_discard_sectors = min_t(u64, max, UINT_MAX >> SECTOR_SHIFT);
	limits->max_discard_sectors = limits->max_hw_discard_sectors;
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
	.io_hints = cowchain_io_hints,
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
