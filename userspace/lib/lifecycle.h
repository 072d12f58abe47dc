/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * libcowchain: the disk lifecycle on a live system — loop devices (loop.c),
 * device-mapper devices through libdevmapper (dm.c), layer resets, resizes
 * and snapshots of superblocks (lifecycle.c), the tree of layers found in
 * directories (tree.c) and attach/detach/snapshot/restore of whole devices
 * (attach.c).
 *
 * Same rules as cowchain.h: 0 or a negative errno, a message in *err that
 * names the subject; nothing prints or exits.  Functions that change the
 * system undo what they did when they fail, unless they say otherwise.
 */
#ifndef COWCHAIN_LIFECYCLE_H
#define COWCHAIN_LIFECYCLE_H

#include <stdbool.h>
#include <sys/types.h>
#include "cowchain.h"

#define CC_DEV_LEN	64

/* ---- loop devices (loop.c) ---------------------------------------------- */

struct cowchain_loop {
	char dev[CC_DEV_LEN];	/* /dev/loopN, or the block device itself */
	int fd;			/* held open (pins an autoclear loop); -1 none */
	bool created;		/* we configured it (autoclear) */
	bool read_only;
	bool direct_io;		/* the loop device uses direct I/O */
	bool blockdev;		/* the layer is a block device: no loop */
};

/*
 * The loop device backed by the file at path (same st_dev/st_ino), read-only
 * ones only when ro_only; 0 and dev filled, -ENOENT when there is none.
 */
int cowchain_loop_find(const char *path, bool ro_only, char dev[CC_DEV_LEN], bool *ro);

/*
 * Make path available as a block device: a block device is used as it is;
 * a file gets a new loop device (LOOP_CONFIGURE, autoclear, direct I/O where
 * the file system allows, read-only if ro), or with reuse_ro an existing
 * read-only loop device of the same file.  The device stays pinned (lp->fd)
 * until cowchain_loop_release(); an autoclear loop nobody else holds then
 * goes away by itself.
 */
int cowchain_loop_get(const char *path, bool ro, bool reuse_ro, struct cowchain_loop *lp,
		      struct cowchain_error *err);
void cowchain_loop_release(struct cowchain_loop *lp);

/* Backing file of a block device given as "MAJ:MIN" or a path; -ENOENT if not a loop. */
int cowchain_loop_backing(const char *dev, char *path, size_t len);
/* "MAJ:MIN" of a block device path. */
int cowchain_blk_majmin(const char *dev, char out[CC_DEV_LEN]);
/* /dev/loopN for "7:N" (any block device: /dev/block/MAJ:MIN's target). */
int cowchain_majmin_path(const char *majmin, char out[CC_DEV_LEN]);
/* Grow a loop device to its file's size (LOOP_SET_CAPACITY). */
int cowchain_loop_set_capacity(const char *dev, struct cowchain_error *err);

/*
 * Who uses the layer at path: the loop devices backed by it and the
 * device-mapper devices holding them (or holding the block device).
 * names: NUL-separated dm names; loops: NUL-separated /dev/loopN.
 */
struct cowchain_users {
	char loops[512];
	char dms[512];
	int nloops, ndms;
};
int cowchain_layer_users(const char *path, struct cowchain_users *u);

/* ---- device mapper (dm.c) ----------------------------------------------- */

struct cowchain_dm_info {
	bool exists, suspended, live_table, inactive_table, read_only;
	int open_count;
	unsigned major, minor;
};

int cowchain_dm_info(const char *name, struct cowchain_dm_info *info,
		     struct cowchain_error *err);
/* The one target of name's live table: type, start, length and params (caller frees). */
int cowchain_dm_table(const char *name, char **type, u64 *len, char **params,
		      struct cowchain_error *err);
/* Create and activate name with one cowchain target. */
int cowchain_dm_create(const char *name, u64 sectors, const char *params, bool ro,
		       struct cowchain_error *err);
/* Load an inactive table (one cowchain target). */
int cowchain_dm_reload(const char *name, u64 sectors, const char *params, bool ro,
		       struct cowchain_error *err);
int cowchain_dm_clear(const char *name, struct cowchain_error *err);
int cowchain_dm_suspend(const char *name, struct cowchain_error *err);
int cowchain_dm_resume(const char *name, struct cowchain_error *err);
int cowchain_dm_remove(const char *name, struct cowchain_error *err);
/* The device mapper name of block device MAJ:MIN, or -ENOENT. */
int cowchain_dm_name_of(unsigned major, unsigned minor, char *name, size_t len);

/* ---- layers (lifecycle.c) ---------------------------------------------- */

/*
 * Throw away a layer's contents: bump its generation, rewrite its root
 * table empty (one journal transaction, then checkpoint) and give the
 * cluster area back to the file system.  O(root table).  Refuses sealed
 * layers (they have children) and layers in use by a writer.
 */
int cowchain_layer_reset(const char *path, struct cowchain_error *err);

/* Set or clear AUTORESET (superblock write; the generation is not bumped). */
int cowchain_layer_set_autoreset(const char *path, bool on, struct cowchain_error *err);

/*
 * Grow a layer's virtual size to size bytes: the root table must already
 * cover it; a file grows to the new capacity (sparse).  Refuses shrinking
 * and sealed layers.
 */
int cowchain_layer_grow(const char *path, u64 size, struct cowchain_error *err);

/* Both superblock slots, raw (to put back exactly what was there). */
struct cowchain_sb_save {
	u8 raw[2 * 4096];
};
int cowchain_sb_save(const char *path, struct cowchain_sb_save *s, struct cowchain_error *err);
int cowchain_sb_put_back(const char *path, const struct cowchain_sb_save *s,
			 struct cowchain_error *err);

/* A free name for a snapshot of top: "dir/stem-snapN.cow" (caller frees). */
char *cowchain_snapshot_name(const char *top);


/* ---- whole devices (attach.c) ------------------------------------------- */

/* The devices of a chain and its table line. */
struct cowchain_devset {
	u32 n;			/* devices: the layers top first, then the raw base */
	u32 nlayers;
	bool has_base, read_only;
	u64 sectors;
	char **files;		/* n paths */
	struct cowchain_loop *loops;	/* n devices */
	char *params;		/* "<top> <#anc> <anc>... <base|-> [1 read_only]" */
	u32 top_flags;		/* the top's superblock flags (before any reset) */
	bool top_reset;		/* attach emptied an AUTORESET top */
};
void cowchain_devset_free(struct cowchain_devset *s);	/* releases the loops */

struct cowchain_table_opts {
	bool read_only;
	/* "LAYER=DEV" overrides, LAYER a path naming the same file as a chain member */
	const char *const *dev;
	int ndev;
};

/* The table for top with the devices that already exist (no loop set up). */
int cowchain_table_find(const char *top, const struct cowchain_table_opts *o,
			struct cowchain_devset *s, struct cowchain_error *err);

/*
 * Attach the chain of top as /dev/mapper/name: empties an AUTORESET top,
 * sets up loop devices (ancestors read-only, reusing read-only loop devices
 * of the same file), creates the dm device.  On failure everything set up
 * is undone (the reset of an AUTORESET top is not: it is what attaching
 * means for such a layer).
 */
int cowchain_attach(const char *name, const char *top, bool read_only,
		    struct cowchain_devset *s, struct cowchain_error *err);
/*
 * Testing only (NULL, the default, in every real use): cowchain_attach
 * calls it with every layer of the chain locked, at step "locked" (before
 * any loop device is set up) and "loops" (the loop devices set up, before
 * the dm device), so that a test can start other commands there.  The
 * tool sets it from COWCHAIN_TEST_ATTACH_PAUSE (cli/cmd_attach.c).
 */
extern void (*cowchain_attach_step_hook)(const char *step);

/* A live cowchain device: its table, taken apart. */
struct cowchain_live {
	char name[128];
	u64 len;		/* sectors */
	char **tok;		/* table params, split on spaces */
	int ntok;
	u32 nanc;
	bool read_only;
	char top_file[4096];	/* the top layer's file (or block device) */
	char top_dev[CC_DEV_LEN];	/* "MAJ:MIN" */
};
int cowchain_live_get(const char *name, struct cowchain_live *lv, struct cowchain_error *err);
void cowchain_live_free(struct cowchain_live *lv);

/*
 * Which device an argument means: a dm name, or a file attached as the top
 * of a cowchain device.  1 and name filled: live; 0: offline file;
 * negative: error (a file attached through a loop device but not as the
 * top of a device, or neither a file nor a device).
 */
int cowchain_resolve_arg(const char *arg, char name[128], struct cowchain_error *err);

/* Remove a cowchain device (refused while open); its autoclear loops go with it. */
int cowchain_detach(const char *name, struct cowchain_error *err);

/* Live snapshot: suspend, seal the top, new child newfile on top, reload, resume. */
int cowchain_live_snapshot(const char *name, const char *newfile, struct cowchain_error *err);
/* Live restore: a new empty top (same parent, size, flags) replaces the top file. */
int cowchain_live_restore(const char *name, struct cowchain_error *err);
/* Live grow: suspend, grow the top, reload the longer table, resume. */
int cowchain_live_grow(const char *name, u64 size, struct cowchain_error *err);


/* ---- the tree of layers (tree.c) ---------------------------------------- */

enum cowchain_tree_problem {
	COWCHAIN_TREE_OK,
	COWCHAIN_TREE_UNREADABLE,	/* looks like a layer, does not open */
	COWCHAIN_TREE_MISSING_PARENT,	/* no layer with the parent uuid found */
	COWCHAIN_TREE_WRONG_GENERATION,	/* parent found, generation differs */
	COWCHAIN_TREE_MISSING_BASE,	/* raw base not found at its locator */
};

struct cowchain_tree_node {
	char *path;
	u8 uuid[16], parent_uuid[16];
	u32 flags, parent_kind;
	u64 generation, parent_generation, virtual_size;
	u64 disk_usage, allocated, file_size;
	char *base;			/* raw base path (parent_kind 2) */
	int parent;			/* node index, -1 none */
	enum cowchain_tree_problem problem;
	char msg[1100];			/* what the problem is */
	struct cowchain_users users;
};

struct cowchain_tree {
	struct cowchain_tree_node *v;
	size_t n, cap;
};

/*
 * Every layer in dirs (not recursive), plus the parents their locators
 * lead to outside them; links children to parents by uuid and flags broken
 * links.  Files that are not layers are skipped.
 */
int cowchain_tree_scan(const char *const *dirs, int ndirs, struct cowchain_tree *t,
		       struct cowchain_error *err);
void cowchain_tree_free(struct cowchain_tree *t);

#endif /* COWCHAIN_LIFECYCLE_H */
