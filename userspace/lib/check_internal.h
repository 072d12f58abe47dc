/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * What the check's sources share (not installed, not a stable API).
 *
 * "cowchain check" is one tolerant walk per layer plus a repair pass over
 * the file checked, cut into files by what each part is about:
 *
 *   check.c          the driver: one pass over the chain, the links between
 *                    layers, and the second pass after a finished merge
 *   check_walk.c     one layer: open, superblock pair, journal overlay,
 *                    then the index (cowchain_walk, shared with dump)
 *   check_index.c    the index walk proper, and the leaks and overlaps
 *                    found from what it reached
 *   check_repair.c   what --repair writes: checkpoint, punch, superblock,
 *                    and finishing an interrupted merge
 *   check_report.c   the report: findings added, looked up, marked fixed,
 *                    turned into the exit status
 *
 * They meet in struct walker (one layer's walk state) and in the report.
 * Functions that can fail return a negative errno; cc_read_meta and
 * cc_find_leaks leave the message to their caller, the others fill err
 * (or w->cx->err) through cc_fail, as check.h describes.
 */
#ifndef COWCHAIN_CHECK_INTERNAL_H
#define COWCHAIN_CHECK_INTERNAL_H

#include <stdarg.h>
#include "internal.h"
#include "check.h"

/* Open-addressing u64 -> u64 map; keys stored + 1 so 0 marks empty. */
struct u64map {
	u64 *k, *v;
	size_t n, cap;
};

/* ---- one layer's walk state ---------------------------------------------- */

struct overlay_ent {
	u64 home;
	u64 order;
	u8 *img;
};

struct walker {
	const char *path;
	unsigned layer;
	int fd;
	u64 file_size;
	bool is_reg;			/* a regular file (leaks are looked for) */
	struct cowchain_sb sb;
	u64 vclusters, cb_shift;
	struct check_ctx *cx;
	const struct cowchain_walk_ops *ops;

	struct overlay_ent *ov;		/* replayed images, sorted by home */
	size_t nov, capov;
	u64 replayed;
	struct cowchain_journal_pos jend;

	struct u64map blocks;		/* metadata blocks reached */
	struct u64map meta;		/* metadata clusters */
	struct u64map data;		/* data cluster -> vcluster + 1 */
	u64 *data_order;		/* data clusters in the order found */
	size_t ndata, capdata;
	unsigned index_damage;		/* corruption findings in the index */
	int stop;			/* a callback's non-zero return */
	int ioerr;
	u8 buf[COWCHAIN_BLOCK_SIZE] __attribute__((aligned(8)));
};

struct check_ctx {
	struct cowchain_check_report *rep;
	struct cowchain_error *err;
};

/* Leaked clusters, as runs. */
struct leak_run {
	u64 start, len;
};

struct leaks {
	struct leak_run *r;
	size_t n, cap;
	u64 total;
};

/* ---- check_walk.c: one layer --------------------------------------------- */

/* Open read-only (or read-write for repair) and check the kind and size. */
int cc_open_input(const char *path, bool rw, u64 *size, bool *is_reg,
		  struct cowchain_error *err);
/* Walk the layer at path: superblock, journal, index; findings into w->cx->rep. */
int cc_walk_one(struct walker *w, const char *path, bool rw, bool *have_sb);
void cc_walker_free(struct walker *w);
/* The replayed image of block home, or NULL. */
const u8 *cc_overlay_find(const struct walker *w, u64 home);
/* A block as the index sees it: the replayed image if any, else home. */
int cc_read_meta(struct walker *w, u64 blocknr, void *buf);
bool cc_all_zero(const void *p, size_t len);

/* ---- check_index.c: the index, overlaps, leaks --------------------------- */

int cc_check_index(struct walker *w);
int cc_find_leaks(struct walker *w, struct leaks *lk);
void cc_u64map_free(struct u64map *m);

/* ---- check_repair.c ------------------------------------------------------ */

int cc_repair(struct walker *w, const struct leaks *lk);
int cc_finish_merge(const char *path, const struct cowchain_check_opts *opts,
		    struct cowchain_finding *f, bool *gone, struct cowchain_error *err);

/* ---- check_report.c ------------------------------------------------------ */

/* A finding for w's layer (a corruption of the index counts in w->index_damage). */
void cc_report(struct walker *w, enum cowchain_problem code,
	       unsigned long long count, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Add path to rep->layers: its index, or -ENOMEM. */
int cc_report_layer(struct cowchain_check_report *rep, const char *path);
/* The layer-0 finding of code, or NULL. */
struct cowchain_finding *cc_report_finding(struct cowchain_check_report *rep,
					   enum cowchain_problem code);
bool cc_report_has(const struct cowchain_check_report *rep, unsigned layer,
		   enum cowchain_problem code);
void cc_mark_fixed(struct cowchain_check_report *rep, unsigned layer,
		   enum cowchain_problem code);
/* Is anything but except (and MERGING, and INFO) left unfixed? */
bool cc_uncorrected_besides(const struct cowchain_check_report *rep,
			    enum cowchain_problem except);
/* Append to a finding's detail (truncated to fit, like the rest of it). */
void cc_add_detail(struct cowchain_finding *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* COWCHAIN_CHECK_INTERNAL_H */
