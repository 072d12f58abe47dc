/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/* Shared by merge.c, merge_find.c, flatten.c and compact.c.  Not installed. */
#ifndef COWCHAIN_MERGE_INTERNAL_H
#define COWCHAIN_MERGE_INTERNAL_H

#include "internal.h"
#include <time.h>
#include "merge.h"

/* A layer found on disk by its superblock alone. */
struct cc_found {
	char *path;
	struct cowchain_sb sb;
};

/* The newest valid superblock of path (regular file or block device). */
int cc_peek_sb(const char *path, struct cowchain_sb *sb);

/*
 * Every layer in dirs whose parent_uuid is uuid (any generation), by
 * (device, inode) once.  *out is an array the caller frees with
 * cc_found_free.
 */
int cc_find_children(const u8 *uuid, char *const *dirs, size_t ndirs,
		     struct cc_found **out, size_t *n, struct cowchain_error *err);
void cc_found_free(struct cc_found *v, size_t n);
/* A layer in dirs merging into its children with merge_peer_uuid peer, or NULL. */
int cc_find_leftover(const u8 *peer, char *const *dirs, size_t ndirs, char **out,
		     struct cowchain_error *err);
/* The layer in dirs whose uuid is uuid, or NULL. */
int cc_find_layer(const u8 *uuid, char *const *dirs, size_t ndirs, char **out,
		  struct cowchain_error *err);

/* dirname(path) followed by extra, deduplicated by realpath. */
int cc_search_dirs(const char *path, const char *const *extra, size_t nextra,
		   char ***out, size_t *n, struct cowchain_error *err);
void cc_strv_free(char **v, size_t n);

/* Punch [off, off+len) of fd (keep size); -errno. */
int cc_punch(int fd, u64 off, u64 len);
/* fsync the directory holding path. */
int cc_sync_dir(const char *path);

/*
 * Copy extents from one file to another with large I/O: runs contiguous in
 * both files are coalesced; copy_file_range, else pread/pwrite.
 */
struct cc_copier {
	int sfd, dfd;
	u64 src, dst, len;	/* the pending run */
	u64 done;		/* bytes copied */
	u64 synced, sync_at;	/* write-back started up to done; where the chunk began */
	u8 *buf;
	bool no_cfr;		/* copy_file_range unsupported here */
	const char *spath, *dpath;
};
int cc_copy_add(struct cc_copier *cp, u64 src, u64 dst, u64 len, struct cowchain_error *err);
int cc_copy_flush(struct cc_copier *cp, struct cowchain_error *err);
void cc_copy_done(struct cc_copier *cp);

/* ---- the merge in progress (merge.c, merge_plan.c) ---------------------- */

struct kid {
	char *path;
	struct cowchain_sb sb;
	struct cowchain_layer *l;
	u64 copy_bytes, zero_subblocks;
};

struct merge {
	const struct cowchain_merge_opts *o;
	struct cowchain_merge_plan *plan;
	struct cowchain_error *err;
	enum cowchain_merge_dir dir;
	bool resume, finished;		/* finished: only cleanup is left */
	char *ppath, *cpath;		/* P; C (into-parent) */
	struct cowchain_sb psb, csb;
	char *gp_target;		/* into-children: GP layer or raw base path */
	struct kid *kids;		/* into-parent: G; into-children: K */
	size_t nkids;
	char **dirs;
	size_t ndirs;
	struct cowchain_layer *p, *c;
	u64 total, done;
	struct timespec t0;
};

/* Fill m (paths, direction, children, checks) and m->plan; change nothing. */
int cc_merge_plan(struct merge *m, const char *layer);
/* Where a layer's locator points (relative to its directory); malloc'd. */
char *cc_locator_target(const char *path, const struct cowchain_sb *sb);
/* Sorted vclusters >= from where l holds an entry. */
struct vcl {
	u64 *v;
	size_t n, cap;
	u64 from;
};
int cc_list_entries(struct cowchain_layer *l, u64 from, struct vcl *s,
		    struct cowchain_error *err);

#endif
