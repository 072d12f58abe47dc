/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * libcowchain: open, create, read and write cowchain layers and chains.
 *
 * The library is the reference model of docs/FORMAT.md: the kernel target
 * is tested against what it reads and writes.  Every function returns 0 (or
 * a non-negative count) on success and a negative errno on failure, with a
 * message in *err that names the file and the problem ("'b.cow': parent
 * 'a.cow' has generation 3, child expects 2").  Nothing here prints or
 * exits.  A layer or chain handle may be used by one thread at a time.
 *
 * Memory: per layer, the root table plus one 4 KiB image per map and leaf
 * block the layer holds (a leaf covers 128 clusters), a hash entry per used
 * physical cluster, and the images committed since the last checkpoint
 * (bounded by the journal size).  Nothing is kept per unallocated cluster.
 */
#ifndef COWCHAIN_H
#define COWCHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "format.h"

struct cowchain_error {
	int code;		/* the negative errno returned */
	char msg[1024];		/* "'file': what went wrong" */
};

struct cowchain_layer;
struct cowchain_chain;

/* ---- create ------------------------------------------------------------ */

struct cowchain_create_opts {
	u64 size;		/* virtual size; 0 = the parent's / raw base's */
	u32 cluster_shift;	/* 0 = default (64 KiB); inherited from a parent */
	u32 subblock_shift;	/* 0 = default (4 KiB); inherited from a parent */
	u64 journal_blocks;	/* 0 = default (256) */
	const char *parent;	/* cowchain parent: seal it, make a child */
	const char *base;	/* raw base image (a root over it) */
	bool force;		/* overwrite an existing file */
};

/*
 * Create a layer at path.  With opts->parent the parent is sealed first
 * (superblock write), then the child is written; the child inherits the
 * geometry and binds to the parent's uuid and generation.  Never
 * overwrites an existing file unless opts->force, and never the parent.
 * On failure a file it created is removed and a parent it sealed is
 * unsealed again.
 */
int cowchain_create(const char *path, const struct cowchain_create_opts *opts,
		    struct cowchain_error *err);

/* ---- one layer ----------------------------------------------------------- */

#define COWCHAIN_OPEN_WRITE	(1u << 0)	/* exclusive flock, replay + checkpoint */
#define COWCHAIN_OPEN_NOBUMP	(1u << 1)	/* writable, never bumps generation */
/* Writable, never bumps generation, allowed on SEALED and MERGING layers:
 * for the merge code only (lib/merge.c), which keeps every view unchanged. */
#define COWCHAIN_OPEN_MERGE	(1u << 2)
/* With a writable mode, for offline work: once the lock is held (and before
 * the journal is replayed) refuse a file attached to a loop device or held
 * by a device (-EBUSY).  Checking after the lock closes the race with an
 * attach, which holds a shared lock on every layer until its device holds
 * them (lib/attach.c). */
#define COWCHAIN_OPEN_UNATTACHED	(1u << 3)

/*
 * Open a layer: pick the superblock (FORMAT.md 4), replay the journal (7;
 * a writer then checkpoints), load and validate the whole index (5) and
 * derive free space (9).  A writable open refuses SEALED, NEEDS_CHECK and
 * MERGING layers and unknown ro_compat features; its generation is bumped
 * (superblock write) before its first change.
 */
int cowchain_layer_open(const char *path, unsigned flags,
			struct cowchain_layer **out, struct cowchain_error *err);

/* Commit pending changes and checkpoint (writers); always frees l. */
int cowchain_layer_close(struct cowchain_layer *l, struct cowchain_error *err);

/*
 * Make every change so far durable: data fdatasync, journal transaction(s)
 * of the dirty root/map/leaf images, fdatasync.  Clusters freed since the
 * last commit become reusable.  No-op when nothing changed.
 */
int cowchain_layer_commit(struct cowchain_layer *l, struct cowchain_error *err);

/* Copy images home, flush, write the superblock with the new journal head. */
int cowchain_layer_checkpoint(struct cowchain_layer *l, struct cowchain_error *err);

/* Set/clear superblock flags (e.g. SEALED) with a superblock write. */
int cowchain_layer_set_flags(struct cowchain_layer *l, u32 set, u32 clear,
			     struct cowchain_error *err);

/*
 * Throw away every mapping of a layer open for writing (FORMAT.md 8,
 * AUTORESET): generation bumped first, root table emptied, committed and
 * checkpointed, a file's cluster area punched out.  O(root table).  The
 * handle may only be closed afterwards (whatever the result); close then
 * writes nothing.
 */
int cowchain_layer_empty(struct cowchain_layer *l, struct cowchain_error *err);

/*
 * Grow the virtual size of a layer open for writing to size bytes (a
 * superblock write; a file grows, sparse, to the new capacity).  The root
 * table must already cover size.  -EINVAL when shrinking, -EFBIG when the
 * root table is too small.
 */
int cowchain_layer_set_size(struct cowchain_layer *l, u64 size, struct cowchain_error *err);

/* Close without writing anything (after a failed change). */
void cowchain_layer_abandon(struct cowchain_layer *l);

const struct cowchain_sb *cowchain_layer_sb(const struct cowchain_layer *l);
const char *cowchain_layer_path(const struct cowchain_layer *l);
bool cowchain_layer_writable(const struct cowchain_layer *l);

/* Entry for vcluster c: 0 and *e filled, or -ENOENT when the layer holds nothing. */
int cowchain_layer_lookup(const struct cowchain_layer *l, u64 c,
			  struct cowchain_entry *e);

/* Call fn for every non-empty entry, in vcluster order; a non-zero return stops. */
typedef int (*cowchain_entry_fn)(void *ctx, u64 vcluster, const struct cowchain_entry *e);
int cowchain_layer_foreach_entry(const struct cowchain_layer *l,
				 cowchain_entry_fn fn, void *ctx);

enum cowchain_block_kind { COWCHAIN_BLK_ROOT, COWCHAIN_BLK_MAP, COWCHAIN_BLK_LEAF };

/* Call fn for every index block (root, map, leaf), in key order per kind. */
typedef int (*cowchain_block_fn)(void *ctx, enum cowchain_block_kind kind,
				 u64 blocknr, u64 key, const void *image);
int cowchain_layer_foreach_block(const struct cowchain_layer *l,
				 cowchain_block_fn fn, void *ctx);

struct cowchain_layer_stats {
	u64 entries;		/* non-empty cluster entries */
	u64 data_clusters;	/* clusters holding data */
	u64 present_subblocks;	/* sub-blocks stored */
	u64 zero_subblocks;	/* sub-blocks marked zero */
	u64 map_blocks, leaf_blocks;
	u64 meta_clusters;	/* clusters holding map/leaf blocks */
	u64 free_clusters;	/* in [data_start, capacity) */
	u64 file_size;		/* st_size */
	u64 disk_usage;		/* st_blocks * 512 */
	u64 replayed;		/* journal transactions replayed at open */
};
int cowchain_layer_stats(const struct cowchain_layer *l,
			 struct cowchain_layer_stats *st, struct cowchain_error *err);

/* ---- chains -------------------------------------------------------------- */

/*
 * Open top and its parents through their locators (relative to each
 * child's directory), checking uuid + exact generation, geometry, cycles
 * and depth (COWCHAIN_MAX_DEPTH).  Only the top may be writable.
 */
int cowchain_chain_open(const char *top, unsigned flags,
			struct cowchain_chain **out, struct cowchain_error *err);
int cowchain_chain_close(struct cowchain_chain *c, struct cowchain_error *err);

u32 cowchain_chain_depth(const struct cowchain_chain *c);	/* layers, top = 0 */
struct cowchain_layer *cowchain_chain_layer(const struct cowchain_chain *c, u32 i);
const char *cowchain_chain_base(const struct cowchain_chain *c, u64 *size); /* NULL if none */
u64 cowchain_chain_size(const struct cowchain_chain *c);	/* top's virtual size */

/* I/O through the chain with the semantics of FORMAT.md 6. Ranges must lie
 * inside the virtual disk (-EINVAL otherwise); no alignment is required. */
int cowchain_read(struct cowchain_chain *c, void *buf, u64 off, u64 len,
		  struct cowchain_error *err);
int cowchain_write(struct cowchain_chain *c, const void *buf, u64 off, u64 len,
		   struct cowchain_error *err);
int cowchain_write_zeroes(struct cowchain_chain *c, u64 off, u64 len,
			  struct cowchain_error *err);
int cowchain_discard(struct cowchain_chain *c, u64 off, u64 len,
		     struct cowchain_error *err);
int cowchain_flush(struct cowchain_chain *c, struct cowchain_error *err);

/* Who serves a range of the virtual disk. */
enum cowchain_extent_kind {
	COWCHAIN_EXT_DATA,	/* stored in layer `layer` at file offset `offset` */
	COWCHAIN_EXT_ZERO,	/* zero marker in layer `layer` */
	COWCHAIN_EXT_BASE,	/* raw base image at file offset `offset` */
	COWCHAIN_EXT_NONE,	/* nothing holds it: reads zeros */
};

struct cowchain_extent {
	u64 start, length;
	enum cowchain_extent_kind kind;
	u32 layer;		/* DATA/ZERO: depth, 0 = top */
	u64 offset;		/* DATA/BASE: byte offset in the file */
};

/*
 * The extent starting at off: as long as possible (up to max_len) with the
 * same kind, layer and contiguous offset.  Cost follows what the chain
 * holds, not the length of empty ranges.
 */
int cowchain_resolve(const struct cowchain_chain *c, u64 off, u64 max_len,
		     struct cowchain_extent *ext, struct cowchain_error *err);

/* ---- helpers ------------------------------------------------------------- */

/* Format a uuid as 36 characters plus NUL. */
void cowchain_uuid_str(const u8 *uuid, char out[37]);

#endif /* COWCHAIN_H */
