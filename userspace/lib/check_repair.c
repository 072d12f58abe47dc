// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check --repair: the only part of the check that writes.
 *
 * Why these repairs and no others: each one needs no guessing and loses
 * nothing (the problem table, check_problems.c, marks them repairable).
 * They run after the whole walk of the file checked, so every decision is
 * made knowing every finding, in this order:
 *
 *  a. journal checkpoint: the replayed images written home, fdatasync --
 *     the same order the library's checkpoint keeps (FORMAT.md 7);
 *  b. punch leaked clusters, only if no corruption was found in the index
 *     (a lost leaf's clusters look leaked, and they may be recoverable);
 *  c. one superblock write (seq + 1, into the other slot) if the journal
 *     was checkpointed, the other slot is damaged, or NEEDS_CHECK can be
 *     cleared (only when nothing else is left uncorrected); written last
 *     and synced, so a crash before it leaves the old superblock and a
 *     journal that replays again;
 *  d. finishing an interrupted offline merge is not done here but by the
 *     merge code (cowchain_merge), with the file closed: the driver
 *     (check.c) calls cc_finish_merge after the pass.
 *
 * A layer with unknown read-only-compatible features is never written.
 * A failed write is an operational error: the check stops with the
 * errno, and err names the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check_internal.h"
#include "merge.h"

static int wr(struct walker *w, const void *buf, size_t len, u64 off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(w->fd, (const u8 *)buf + done, len - done,
				   (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return cc_fail(w->cx->err, -errno, "cannot write '%s': %s",
				       w->path, strerror(errno));
		}
		done += r;
	}
	return 0;
}

static int sync_fd(struct walker *w)
{
	if (fdatasync(w->fd))
		return cc_fail(w->cx->err, -errno, "cannot write '%s': %s", w->path,
			       strerror(errno));
	return 0;
}

int cc_repair(struct walker *w, const struct leaks *lk)
{
	struct cowchain_check_report *rep = w->cx->rep;
	bool sb_write = false;
	struct cowchain_sb nsb = w->sb;
	size_t i;
	int r;

	if (cowchain_sb_ro_only(&w->sb))
		return 0;	/* unknown ro_compat features: never write */

	/* a. checkpoint the journal (FORMAT.md 7: home, flush, superblock). */
	if (w->replayed) {
		for (i = 0; i < w->nov; i++) {
			r = wr(w, w->ov[i].img, COWCHAIN_BLOCK_SIZE,
			       w->ov[i].home << COWCHAIN_BLOCK_SHIFT);
			if (r)
				return r;
		}
		r = sync_fd(w);
		if (r)
			return r;
		nsb.journal_head = w->jend.pos;
		nsb.journal_seq = w->jend.seq;
		sb_write = true;
	}
	/* b. leaked clusters, only over an undamaged index. */
	if (lk->total && !w->index_damage) {
		for (i = 0; i < lk->n; i++) {
			u64 off = lk->r[i].start << w->sb.cluster_shift;
			u64 len = lk->r[i].len << w->sb.cluster_shift;

			if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)off, (off_t)len))
				return cc_fail(w->cx->err, -errno, "cannot punch clusters %llu..%llu of '%s': %s",
					       (unsigned long long)lk->r[i].start,
					       (unsigned long long)(lk->r[i].start + lk->r[i].len - 1),
					       w->path, strerror(errno));
		}
		cc_mark_fixed(rep, w->layer, CK_LEAKED);
	}
	/* c. the superblock. */
	if (cc_report_has(rep, w->layer, CK_SB_SLOT_INVALID))
		sb_write = true;
	if (w->sb.flags & COWCHAIN_SB_NEEDS_CHECK) {
		bool others_fixed_by_sb = true;

		/*
		 * Nothing else may be left uncorrected, but the findings the
		 * superblock write below fixes (a journal checkpointed in a.,
		 * the other slot) count as fixed, and an interrupted merge is
		 * finished after these repairs (cc_finish_merge).  A device that
		 * failed a commit has both NEEDS_CHECK and a pending journal: one
		 * repair must clear both.
		 */
		for (i = 0; i < rep->n; i++)
			if (!rep->f[i].fixed && rep->f[i].code != CK_SB_NEEDS_CHECK &&
			    rep->f[i].code != CK_SB_SLOT_INVALID &&
			    !(rep->f[i].code == CK_JOURNAL_PENDING && w->replayed &&
			      rep->f[i].layer == w->layer) &&
			    rep->f[i].code != CK_SB_MERGING &&
			    cowchain_problems[rep->f[i].code].severity != COWCHAIN_SEV_INFO)
				others_fixed_by_sb = false;
		if (others_fixed_by_sb) {
			nsb.flags &= ~COWCHAIN_SB_NEEDS_CHECK;
			sb_write = true;
		}
	}
	if (sb_write) {
		struct cowchain_sb_disk d;

		nsb.seq = w->sb.seq + 1;
		cowchain_sb_pack(&nsb, &d);
		r = wr(w, &d, sizeof(d), nsb.seq & 1 ? COWCHAIN_BLOCK_SIZE : 0);
		if (!r)
			r = sync_fd(w);
		if (r)
			return r;
		cc_mark_fixed(rep, w->layer, CK_SB_SLOT_INVALID);
		if (w->replayed)
			cc_mark_fixed(rep, w->layer, CK_JOURNAL_PENDING);
		if (!(nsb.flags & COWCHAIN_SB_NEEDS_CHECK))
			cc_mark_fixed(rep, w->layer, CK_SB_NEEDS_CHECK);
	}
	return 0;
}

/*
 * d. Finish the offline merge path is part of, by running the merge code
 * itself: cowchain_merge() on path, exactly what a re-run of "cowchain
 * merge FILE" does.  The recorded state (merge_state, merge_cursor,
 * merge_peer_uuid in the superblocks of the pair) says the direction and
 * how far it got; every state the merge writes resumes forward (the crash
 * analysis in lib/merge.c), so the merge is finished, never rolled back.
 * The peers are looked for where the merge command looks: path's (and the
 * pair's) directories, then opts->search.  A merge that cannot go on (a
 * peer missing or busy, no space) leaves the finding unfixed with the
 * reason; only running out of memory is an operational error.
 */
int cc_finish_merge(const char *path, const struct cowchain_check_opts *opts,
		    struct cowchain_finding *f, bool *gone, struct cowchain_error *err)
{
	struct cowchain_merge_opts mo = { .search = opts->search, .nsearch = opts->nsearch };
	struct cowchain_merge_plan plan;
	struct cowchain_error merr = { 0 };
	size_t i, kids = 0;
	int r;

	*gone = false;
	r = cowchain_merge(path, &mo, &plan, &merr);
	if (r == -ENOMEM) {
		cowchain_merge_plan_free(&plan);
		return cc_fail(err, r, "cannot repair '%s': %s", path, merr.msg);
	}
	if (r) {
		cc_add_detail(f, "; not finished: %s", merr.msg);
		cowchain_merge_plan_free(&plan);
		return 0;
	}
	f->fixed = true;
	*gone = access(path, F_OK) && errno == ENOENT;
	for (i = 0; i < plan.nfiles; i++)
		kids += !strcmp(plan.files[i].role, "child");
	if (plan.direction == COWCHAIN_DIR_PARENT)
		cc_add_detail(f, "; finished: merged '%s' into its parent '%s' (%llu bytes copied), deleted '%s'",
			      plan.child_path, plan.parent_path,
			      (unsigned long long)plan.bytes_done, plan.child_path);
	else
		cc_add_detail(f, "; finished: merged '%s' into its %zu child(ren) (%llu bytes copied), deleted '%s'",
			      plan.parent_path, kids, (unsigned long long)plan.bytes_done,
			      plan.parent_path);
	cowchain_merge_plan_free(&plan);
	return 0;
}
