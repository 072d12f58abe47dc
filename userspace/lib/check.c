// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check: the driver (see check.h for the contract, and
 * check_internal.h for how the check is cut into files).
 *
 * Why a driver apart from the walk: a check is more than one layer's
 * walk.  With --chain it follows the locators from the file checked to
 * the base, walking each layer (check_walk.c) and checking the links
 * between them: uuid, generation, geometry, size, sealed, cycles, depth,
 * a missing parent or raw base.  Only the file checked is ever repaired.
 *
 * One pass (check_pass), for each layer in turn:
 *  1.-3. the walk: superblock pair, journal overlay, index (check_walk.c,
 *        check_index.c);
 *  4.    data/metadata overlap, then leaked clusters (check_index.c);
 *  a.-c. with --repair, on the file checked only, after its whole walk:
 *        journal checkpoint, punching leaks, one superblock write
 *        (check_repair.c);
 * then the links to the parent, and on to the parent.
 *
 *  d. with finish_merge, an offline merge in progress (MERGING) is
 *     finished by the merge code, with the file closed, when nothing else
 *     is left uncorrected (cc_finish_merge); then the file, if the merge
 *     left it, is checked again by a second pass, and the two reports are
 *     combined: what the first pass fixed, then what the second found.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "check_internal.h"

/* ---- chains --------------------------------------------------------------- */

static char *parent_path(const char *child, const struct cowchain_sb *sb)
{
	const char *slash = strrchr(child, '/');
	size_t dlen = slash ? (size_t)(slash - child) + 1 : 0;
	char *p;

	if (sb->locator_len && sb->locator[0] == '/')
		dlen = 0;
	p = malloc(dlen + sb->locator_len + 1);
	if (!p)
		return NULL;
	memcpy(p, child, dlen);
	memcpy(p + dlen, sb->locator, sb->locator_len);
	p[dlen + sb->locator_len] = 0;
	return p;
}

/*
 * One pass of the check (the walk of path and, with opts->chain, of its
 * parents; the repairs of path).  merge_todo non-NULL: with --repair, a
 * MERGING layer whose other problems are all corrected stops the pass
 * after its walk, with *merge_todo set, for finish_merge.
 */
static int check_pass(const char *path, const struct cowchain_check_opts *opts,
		      bool *merge_todo, struct cowchain_check_report *rep,
		      struct cowchain_error *err)
{
	struct check_ctx cx = { .rep = rep, .err = err };
	u8 (*seen)[COWCHAIN_UUID_SIZE] = NULL;
	char *cur = strdup(path), *next = NULL;
	struct cowchain_sb child;
	unsigned depth = 0;
	int r = 0;

	memset(rep, 0, sizeof(*rep));
	if (!cur)
		return cc_fail(err, -ENOMEM, "out of memory");
	for (;;) {
		struct walker *w = calloc(1, sizeof(*w));
		struct leaks lk = { 0 };
		bool have_sb = false;
		void *p;

		if (!w) {
			r = cc_fail(err, -ENOMEM, "out of memory");
			break;
		}
		w->cx = &cx;
		r = cc_walk_one(w, cur, depth == 0 && opts->repair, &have_sb);
		if (r == 0 && have_sb) {
			r = cc_find_leaks(w, &lk);
			if (r)
				r = cc_fail(err, r, "cannot check '%s': %s", cur, strerror(-r));
			else if (lk.total)
				cc_report(w, CK_LEAKED, lk.total, "%llu cluster(s) in %zu run(s), first %llu..%llu",
					  (unsigned long long)lk.total, lk.n,
					  (unsigned long long)lk.r[0].start,
					  (unsigned long long)(lk.r[0].start + lk.r[0].len - 1));
		}
		if (r == 0 && have_sb && depth == 0 && opts->repair)
			r = cc_repair(w, &lk);
		free(lk.r);
		if (r == 0 && have_sb && depth == 0 && merge_todo && opts->repair &&
		    opts->finish_merge && (w->sb.flags & COWCHAIN_SB_MERGING)) {
			struct cowchain_finding *f = cc_report_finding(rep, CK_SB_MERGING);

			if (!f) {
				r = cc_fail(err, -ENOMEM, "cannot check '%s': out of memory", cur);
			} else if (cowchain_sb_ro_only(&w->sb)) {
				cc_add_detail(f, "; not finished: the layer has unknown read-only-compatible features");
			} else if (cc_uncorrected_besides(rep, CK_SB_MERGING)) {
				cc_add_detail(f, "; not finished: other problems of this layer are left uncorrected");
			} else {
				/* The merge takes the writers' flock: close first. */
				*merge_todo = true;
				cc_walker_free(w);
				free(w);
				break;
			}
		}
		if (r || !have_sb || !opts->chain) {
			cc_walker_free(w);
			free(w);
			break;
		}

		/* Links to the parent. */
		p = realloc(seen, (depth + 1) * sizeof(*seen));
		if (!p) {
			cc_walker_free(w);
			free(w);
			r = cc_fail(err, -ENOMEM, "out of memory");
			break;
		}
		seen = p;
		memcpy(seen[depth], w->sb.uuid, COWCHAIN_UUID_SIZE);
		if (depth) {
			unsigned i;

			/* The locator led to a layer already walked (wrong uuid too). */
			for (i = 0; i < depth; i++)
				if (!memcmp(seen[i], w->sb.uuid, COWCHAIN_UUID_SIZE))
					break;
			if (i < depth) {
				cc_report(w, CK_CHAIN_CYCLE, 1, "this layer is already in the chain (as '%s')",
					  rep->layers[i]);
				cc_walker_free(w);
				free(w);
				break;
			}
		}
		if (depth) {
			char want[37], got[37];

			cowchain_uuid_str(child.parent_uuid, want);
			cowchain_uuid_str(w->sb.uuid, got);
			if (memcmp(child.parent_uuid, w->sb.uuid, COWCHAIN_UUID_SIZE))
				cc_report(w, CK_PARENT_UUID, 1, "the child expects %s, this layer is %s",
					  want, got);
			else if (child.parent_generation != w->sb.generation)
				cc_report(w, CK_PARENT_GENERATION, 1, "generation %llu, the child expects %llu",
					  (unsigned long long)w->sb.generation,
					  (unsigned long long)child.parent_generation);
			if (child.cluster_shift != w->sb.cluster_shift ||
			    child.subblock_shift != w->sb.subblock_shift)
				cc_report(w, CK_PARENT_GEOMETRY, 1, "cluster/sub-block shift %u/%u, the child has %u/%u",
					  w->sb.cluster_shift, w->sb.subblock_shift,
					  child.cluster_shift, child.subblock_shift);
			if (w->sb.virtual_size > child.virtual_size)
				cc_report(w, CK_PARENT_SIZE, 1, "%llu bytes, the child has %llu",
					  (unsigned long long)w->sb.virtual_size,
					  (unsigned long long)child.virtual_size);
			if (!(w->sb.flags & COWCHAIN_SB_SEALED))
				cc_report(w, CK_PARENT_NOT_SEALED, 1, "flags 0x%x", w->sb.flags);
		}
		child = w->sb;
		cc_walker_free(w);
		free(w);
		if (child.parent_kind == COWCHAIN_PARENT_NONE)
			break;
		next = parent_path(cur, &child);
		if (!next) {
			r = cc_fail(err, -ENOMEM, "out of memory");
			break;
		}
		if (child.parent_kind == COWCHAIN_PARENT_RAW) {
			struct cowchain_check_report *rp = rep;
			struct stat st;

			if (stat(next, &st)) {
				struct walker tmp = { .cx = &cx, .layer = rp->nlayers - 1 };

				cc_report(&tmp, CK_BASE_MISSING, 1, "'%s': %s", next, strerror(errno));
			}
			break;
		}
		{
			struct walker tmp = { .cx = &cx, .layer = rep->nlayers - 1 };
			struct cowchain_error perr;
			unsigned i;
			u64 sz;
			int fd;

			if (depth + 1 >= COWCHAIN_MAX_DEPTH) {
				cc_report(&tmp, CK_CHAIN_TOO_DEEP, 1, "more than %u layers",
					  COWCHAIN_MAX_DEPTH);
				break;
			}
			for (i = 0; i <= depth; i++)
				if (!memcmp(seen[i], child.parent_uuid, COWCHAIN_UUID_SIZE))
					break;
			if (i <= depth) {
				cc_report(&tmp, CK_CHAIN_CYCLE, 1, "its parent '%s' is already in the chain (as '%s')",
					  next, rep->layers[i]);
				break;
			}
			fd = cc_open_input(next, false, &sz, NULL, &perr);
			if (fd < 0) {
				cc_report(&tmp, CK_PARENT_MISSING, 1, "%s", perr.msg);
				break;
			}
			close(fd);
		}
		free(cur);
		cur = next;
		next = NULL;
		depth++;
	}
	free(next);
	free(cur);
	free(seen);
	return r;
}

/*
 * After finish_merge, when path is still there: the second pass's report
 * replaces the first, keeping the first's fixed findings and its merge
 * finding (which carries what was done or why not).
 */
static int combine(struct cowchain_check_report *rep, struct cowchain_check_report *again,
		   const struct cowchain_finding *mf)
{
	size_t n = 0, i;
	struct cowchain_finding *v = malloc((rep->n + again->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (i = 0; i < rep->n; i++)
		if (rep->f[i].fixed || &rep->f[i] == mf)
			v[n++] = rep->f[i];
	for (i = 0; i < again->n; i++)
		if (!mf->fixed && again->f[i].layer == 0 && again->f[i].code == CK_SB_MERGING)
			continue;	/* the first pass's says why it is left */
		else
			v[n++] = again->f[i];
	free(rep->f);
	rep->f = v;
	rep->n = rep->cap = n;
	for (i = 0; i < rep->nlayers; i++)
		free(rep->layers[i]);
	free(rep->layers);
	rep->layers = again->layers;
	rep->nlayers = again->nlayers;
	again->layers = NULL;
	again->nlayers = 0;
	return 0;
}

int cowchain_check(const char *path, const struct cowchain_check_opts *opts,
		   struct cowchain_check_report *rep, struct cowchain_error *err)
{
	struct cowchain_check_report again;
	struct cowchain_finding *mf;
	bool todo = false, gone;
	int r;

	r = check_pass(path, opts, &todo, rep, err);
	if (r || !todo)
		return r;
	mf = cc_report_finding(rep, CK_SB_MERGING);
	r = cc_finish_merge(path, opts, mf, &gone, err);
	if (r || gone)
		return r;
	r = check_pass(path, opts, NULL, &again, err);
	if (combine(rep, &again, mf) && !r)
		r = cc_fail(err, -ENOMEM, "cannot check '%s': out of memory", path);
	cowchain_check_report_free(&again);
	return r;
}
