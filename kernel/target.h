/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cowchain: the target's private state, shared by target.c (table,
 * status, messages, suspend/resume) and io.c (map, end_io, worker).
 */
#ifndef DM_COWCHAIN_TARGET_H
#define DM_COWCHAIN_TARGET_H

#include <linux/device-mapper.h>
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

struct cowchain_c {
	struct dm_target *ti;
	struct cowchain_md md;
	struct dm_dev **devs;		/* top, then ancestors */
	unsigned int ndevs;
	struct dm_dev *base;
	bool read_only;			/* the read_only feature */
	unsigned int lbs;		/* largest logical block of any device */
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
	bool commit_nomem;		/* commits failed for want of memory... */
	unsigned long commit_nomem_since;	/* ...since then (jiffies) */
	void *cow_buf;			/* one sub-block, worker only */
	const char *name;
	struct mutex msg_lock;		/* one worker-run message at a time */
	struct list_head claim;		/* on live_tops while claimed */
};

/* Per-bio state. */
struct per_bio {
	struct cowchain_tent *t;	/* first write: entry whose bits to set */
	u64 mask;
	u64 vc;
	s8 ioc;				/* I/O epoch counted in, or -1 */
	bool commit_before_end;		/* REQ_FUA first write */
	bool nomem;			/* the worker found no memory for it... */
	unsigned long nomem_since;	/* ...since then (jiffies) */
};

#define COMMIT_PERIOD	HZ
/*
 * A write, discard or commit that finds no memory is retried from the
 * worker for this long; then the bio (or the flushes waiting for the
 * commit) fails with -EIO.  The device stays writable.
 */
#define NOMEM_TIMEOUT	(5 * HZ)

enum src_kind { SRC_TOP, SRC_LAYER, SRC_ZERO, SRC_BELOW };

struct src {
	enum src_kind kind;
	unsigned int layer;	/* index into md.layers for SRC_LAYER */
	u64 phys;
};

static inline sector_t cowchain_phys_sector(struct cowchain_md *md, u64 phys, u64 in_cluster)
{
	return ((phys << md->cluster_shift) + in_cluster) >> SECTOR_SHIFT;
}

/* target.c: mode changes (any context) */
void cowchain_set_mode(struct cowchain_c *cc, enum cowchain_mode m);
void cowchain_metadata_failed(struct cowchain_c *cc, const char *op, int r);

/* io.c */
int cowchain_map(struct dm_target *ti, struct bio *bio);
int cowchain_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error);
void cowchain_worker(struct work_struct *ws);
void cowchain_waker(struct work_struct *ws);
/*
 * Where sub-block sb of vc is read from; returns the number of sub-blocks
 * from sb on that read the same way, contiguously.  Any context.
 */
u32 cowchain_resolve(struct cowchain_md *md, u64 vc, u32 sb, struct src *s);
/* Run a commit (checkpoint) in the worker and wait; may sleep. */
void cowchain_commit_in_worker(struct cowchain_c *cc);
int cowchain_checkpoint_in_worker(struct cowchain_c *cc);

#endif /* DM_COWCHAIN_TARGET_H */
