/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * libcowchain: offline merge (delete a snapshot), flatten and compact.
 *
 * Conventions as in cowchain.h: 0 or a negative errno with a message in
 * *err naming the file and the problem; nothing prints or exits.
 *
 * Merging removes one link of a chain: a child C and its parent P become
 * one layer, and every leaf below reads exactly what it read before.
 *  - into the parent (qemu-img commit): C's sub-blocks and zero markers go
 *    into P; C's children are relinked to P; C is deleted.  Refused while P
 *    has other children.
 *  - into the children (qemu-img rebase/stream): what each child of P still
 *    reads from P is copied into it; the children are relinked to P's
 *    parent (or become roots, or roots over P's raw base); P is deleted.
 * Both are resumable after a crash at any instant: the state lives in the
 * superblocks (MERGING, merge_state, merge_cursor, merge_peer_uuid), and
 * running the same merge again continues it.  See the essay in merge.c.
 */
#ifndef COWCHAIN_MERGE_H
#define COWCHAIN_MERGE_H

#include "cowchain.h"

enum cowchain_merge_dir {
	COWCHAIN_DIR_AUTO,	/* the cheapest safe direction */
	COWCHAIN_DIR_PARENT,	/* the layer into its parent */
	COWCHAIN_DIR_CHILDREN,	/* the layer's parent into all its children */
};

struct cowchain_progress {
	const char *phase;	/* "copy", "relink", "delete" */
	u64 done, total;	/* bytes of data copied / to copy */
};
typedef void (*cowchain_progress_fn)(void *ctx, const struct cowchain_progress *p);

struct cowchain_merge_opts {
	/*
	 * DIR_PARENT / DIR_AUTO: `layer` is the child C (the pair is C and
	 * its parent).  DIR_CHILDREN: `layer` is the parent P to stream
	 * down (the form of "merge --into-children P"); `layer_is_child`
	 * says it is instead a child whose parent is to be streamed down.
	 */
	enum cowchain_merge_dir direction;
	bool layer_is_child;
	const char *const *search;	/* more directories to look for children in */
	size_t nsearch;
	u64 batch_bytes;		/* data per crash-safe step; 0 = 64 MiB */
	cowchain_progress_fn progress;
	void *progress_ctx;
};

/* One file the merge touches. */
struct cowchain_merge_file {
	char *path;
	const char *role;	/* "parent", "child", "grandchild", "source", "target" */
	const char *action;	/* "receives data", "deleted", "relinked", ... */
	u64 copy_bytes;		/* data written into it */
	s64 growth;		/* net change of its allocated space at the end */
	u64 peak_extra;		/* the most it grows beyond its start at any instant */
};

struct cowchain_merge_plan {
	enum cowchain_merge_dir direction;	/* chosen (never AUTO) */
	bool resume;			/* continues an interrupted merge */
	char *parent_path, *child_path;	/* the pair (child_path: the named child, or NULL) */
	u64 copy_bytes;			/* data copied in total */
	u64 zero_subblocks;		/* zero markers written */
	u64 cost_parent, cost_children;	/* bytes each direction would copy */
	char why[1024];			/* why this direction */
	char refused_parent[1024];	/* why not into the parent ("" if possible) */
	char **searched;		/* directories searched for children */
	size_t nsearched;
	struct cowchain_merge_file *files;
	size_t nfiles;
	/* after a run */
	double seconds;
	u64 bytes_done;
};

/* What the merge would do, without changing anything. */
int cowchain_merge_plan(const char *layer, const struct cowchain_merge_opts *o,
			struct cowchain_merge_plan *plan, struct cowchain_error *err);
/* Plan (as above), then do it.  plan may be NULL. */
int cowchain_merge(const char *layer, const struct cowchain_merge_opts *o,
		   struct cowchain_merge_plan *plan, struct cowchain_error *err);
void cowchain_merge_plan_free(struct cowchain_merge_plan *plan);

/* ---- flatten ------------------------------------------------------------- */

struct cowchain_flatten_opts {
	bool raw;		/* a raw image instead of a root layer */
	bool force;		/* overwrite out */
	cowchain_progress_fn progress;
	void *progress_ctx;
};

/*
 * The whole virtual disk of the chain topped by `top` as one new file:
 * a root layer of the same geometry holding only the non-zero data, or a
 * raw image (sparse where the disk reads zeros).  *bytes: data copied.
 */
int cowchain_flatten(const char *top, const char *out, const struct cowchain_flatten_opts *o,
		     u64 *bytes, struct cowchain_error *err);

/* ---- compact ------------------------------------------------------------- */

struct cowchain_compact_result {
	u64 clusters_punched;	/* unreferenced clusters that still held space */
	u64 subblocks_punched;	/* unreferenced sub-blocks of used data clusters */
	u64 before, after;	/* allocated bytes of the file */
};

/*
 * Give back file space the layer no longer references: free clusters that
 * still hold blocks (SEEK_DATA), and sub-blocks of data clusters whose
 * present bit is clear.  Needs the file writable and unattached.
 */
int cowchain_compact(const char *path, struct cowchain_compact_result *res,
		     struct cowchain_error *err);

/* ---- shared helpers (merge_find.c) --------------------------------------- */

/* 0 if path is not attached; -EBUSY with a message naming the loop device. */
int cowchain_check_unattached(const char *path, struct cowchain_error *err);

#endif /* COWCHAIN_MERGE_H */
