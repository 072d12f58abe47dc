/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * cowchain check: a tolerant walker over the raw file of a layer (and,
 * with opts->chain, of its parents) that reports every problem it can find
 * instead of stopping at the first, the way e2fsck and thin_check do.
 *
 * It does not use the library's strict open path: it reads blocks itself
 * and applies the rules of docs/FORMAT.md through the shared pure logic
 * (kernel/format.c, kernel/journal.c), so a layer that the library refuses
 * can still be inspected and, where no guessing is involved, repaired.
 *
 * Every problem it can report is one row of cowchain_problems[] (the
 * problem table, check_problems.c): a stable code, a severity, the message
 * and what --repair does about it.  Wording, counts, JSON and the exit
 * status are all derived from that table; docs/check.md lists it.
 *
 * Nothing here prints or exits.  Functions return 0 or a negative errno
 * (an operational error: the check itself could not run) with a message
 * in *err naming the file.
 */
#ifndef COWCHAIN_CHECK_H
#define COWCHAIN_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include "format.h"

struct cowchain_error;

enum cowchain_severity {
	COWCHAIN_SEV_INFO,	/* worth knowing; not a problem (exit 0) */
	COWCHAIN_SEV_HARMLESS,	/* loses nothing: leaked space, stale state */
	COWCHAIN_SEV_CORRUPT,	/* the layer is damaged: data may be lost */
};

enum cowchain_problem {
	CK_SB_SLOT_INVALID,
	CK_SB_SLOT_STALE,
	CK_SB_NONE_VALID,
	CK_SB_RO_COMPAT,
	CK_SB_NEEDS_CHECK,
	CK_SB_MERGING,
	CK_FILE_TRUNCATED,
	CK_JOURNAL_PENDING,
	CK_JOURNAL_TORN,
	CK_JOURNAL_UNREADABLE,
	CK_ROOT_BAD,
	CK_MAP_BAD,
	CK_LEAF_BAD,
	CK_PTR_OUT_OF_AREA,
	CK_PTR_PAST_VSIZE,
	CK_PTR_PAST_EOF,
	CK_BLOCK_COUNT,
	CK_BLOCK_TAIL,
	CK_BLOCK_TWICE,
	CK_ENTRY_INVALID,
	CK_ENTRY_PAST_VSIZE,
	CK_ENTRY_PHYS_RANGE,
	CK_ENTRY_PAST_EOF,
	CK_CLUSTER_SHARED,
	CK_DATA_META_OVERLAP,
	CK_LEAKED,
	CK_PARENT_MISSING,
	CK_PARENT_UUID,
	CK_PARENT_GENERATION,
	CK_PARENT_GEOMETRY,
	CK_PARENT_SIZE,
	CK_PARENT_NOT_SEALED,
	CK_CHAIN_CYCLE,
	CK_CHAIN_TOO_DEEP,
	CK_BASE_MISSING,
	CK__COUNT
};

struct cowchain_problem_def {
	const char *code;		/* stable name, e.g. "LEAF_BAD" */
	enum cowchain_severity severity;
	bool repairable;		/* --repair fixes it without guessing */
	const char *message;		/* what is wrong, one line */
	const char *fix;		/* what --repair does, or what the user can do */
};

extern const struct cowchain_problem_def cowchain_problems[CK__COUNT];

const char *cowchain_severity_name(enum cowchain_severity s);

struct cowchain_finding {
	enum cowchain_problem code;
	unsigned layer;			/* index into report->layers: 0 = the file checked */
	bool fixed;			/* --repair corrected it */
	unsigned long long count;	/* things it covers (e.g. leaked clusters), >= 1 */
	char detail[400];		/* where and what exactly */
};

struct cowchain_check_opts {
	bool chain;		/* also check the parents and the links to them */
	bool repair;		/* fix what needs no guessing (the file checked only) */
	/*
	 * With repair: finish an offline merge the layer is part of, through
	 * the merge code (cowchain_merge, as a re-run of "cowchain merge FILE"
	 * does).  That changes other layers of the pair and deletes one of
	 * them, so a caller asks for it (the CLI's --repair does); the peers
	 * are looked for in the pair's directories and in search.
	 */
	bool finish_merge;
	const char *const *search;
	size_t nsearch;
};

struct cowchain_check_report {
	char **layers;			/* paths, as opened; [0] = the file checked */
	unsigned nlayers;
	struct cowchain_finding *f;
	size_t n, cap;
};

/*
 * Check the layer at path.  With opts->repair and opts->finish_merge, an
 * offline merge the layer is part of (CK_SB_MERGING) is finished after the
 * other repairs, when
 * nothing else in the layer is left uncorrected: the finding is marked
 * fixed and its detail says what was done (or, unfixed, why not).  If the
 * merge deleted path, the report ends there; otherwise path is checked
 * again from the start and the report holds what the repair fixed, then
 * what that second pass found.
 *
 * Returns 0 when the check ran (whatever it
 * found: see the report), or a negative errno when it could not run at
 * all (the file cannot be opened, is not a regular file or block device,
 * is too small to hold a superblock, or uses a format version or
 * incompatible feature this build does not know; -EIO on a failed write
 * during --repair).  The report is valid, and must be freed, in both cases.
 */
int cowchain_check(const char *path, const struct cowchain_check_opts *opts,
		   struct cowchain_check_report *rep, struct cowchain_error *err);

void cowchain_check_report_free(struct cowchain_check_report *rep);

/* fsck bitmask from a report: 0 clean, |1 something corrected, |4 left uncorrected. */
int cowchain_check_status(const struct cowchain_check_report *rep);

/* ---- the tolerant walker, shared with dump ------------------------------ */

/*
 * Called in layout order (root block r, its map slots in order, each map's
 * leaf slots in order, each leaf's entries in order) for every block that
 * passed its header check and every entry that passed its checks.  kind is
 * 0 root, 1 map, 2 leaf; slot is the block's slot in its parent (root: r).
 * A non-zero return stops the walk and is returned.
 */
struct cowchain_walk_ops {
	void *ctx;
	int (*block)(void *ctx, int kind, unsigned slot, u64 blocknr, u64 key);
	int (*block_end)(void *ctx, int kind);
	int (*entry)(void *ctx, u64 vcluster, const struct cowchain_entry *e);
};

/*
 * Walk one layer: pick the superblock, replay the journal in memory, walk
 * the index calling ops, and record findings for that layer in rep.  *sb
 * receives the superblock in use with journal_head/journal_seq advanced
 * past the replayed transactions (what a checkpoint would write).  Same
 * return convention as cowchain_check(); a layer without a valid
 * superblock returns 0 with a CK_SB_NONE_VALID finding and *have_sb false.
 */
int cowchain_walk(const char *path, const struct cowchain_walk_ops *ops,
		  struct cowchain_sb *sb, bool *have_sb,
		  struct cowchain_check_report *rep, struct cowchain_error *err);

#endif /* COWCHAIN_CHECK_H */
