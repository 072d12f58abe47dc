// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check: one layer, read the way the kernel would (see check.h).
 *
 * Why a walker of its own and not the library's open (lib/layer.c,
 * lib/index.c): the open refuses a layer at its first bad field; the
 * walker records a finding and goes on with whatever is still
 * trustworthy, so that one run reports everything, and dump can show a
 * damaged layer for repair by hand.  It reads blocks itself (past the end
 * of the file reads as zeros) and applies the rules of docs/FORMAT.md
 * through the shared pure logic (kernel/format.c, kernel/journal.c).
 *
 * Order of work for one layer (cc_walk_one):
 *  1. both superblock slots: the valid one with the higher seq is used;
 *     a newer slot this build cannot read stops the check rather than
 *     fall back to (and "repair" over) an older state;
 *  2. journal replay into an in-memory overlay (kernel/journal.c), only
 *     the last image of each home kept, and a look past the end of the
 *     log for a torn transaction.  The file is not touched: the repair
 *     pass (check_repair.c) writes the overlay home if asked to;
 *  3. the index, through the overlay (check_index.c).
 *
 * The file is opened read-only unless the repair pass will write it; then
 * the writers' flock is taken first, so a repair never races a writer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include "check_internal.h"

/* ---- reading blocks ------------------------------------------------------ */

/* Read a block from the file; past the end reads as zeros (tolerant). */
static int raw_read(int fd, u64 file_size, u64 blocknr, void *buf)
{
	u64 off = blocknr << COWCHAIN_BLOCK_SHIFT;
	size_t got = 0;

	memset(buf, 0, COWCHAIN_BLOCK_SIZE);
	if (blocknr >> (63 - COWCHAIN_BLOCK_SHIFT) || off >= file_size)
		return 0;
	while (got < COWCHAIN_BLOCK_SIZE) {
		ssize_t r = pread(fd, (u8 *)buf + got, COWCHAIN_BLOCK_SIZE - got,
				  (off_t)(off + got));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!r)
			break;
		got += r;
	}
	return 0;
}

static int ov_cmp(const void *a, const void *b)
{
	const struct overlay_ent *x = a, *y = b;

	if (x->home != y->home)
		return x->home < y->home ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

const u8 *cc_overlay_find(const struct walker *w, u64 home)
{
	size_t lo = 0, hi = w->nov;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (w->ov[mid].home < home)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->nov && w->ov[lo].home == home ? w->ov[lo].img : NULL;
}

/* A block as the index sees it: the replayed image if any, else home. */
int cc_read_meta(struct walker *w, u64 blocknr, void *buf)
{
	const u8 *img = cc_overlay_find(w, blocknr);
	int r;

	if (img) {
		memcpy(buf, img, COWCHAIN_BLOCK_SIZE);
		return 0;
	}
	r = raw_read(w->fd, w->file_size, blocknr, buf);
	if (r && !w->ioerr)
		w->ioerr = r;
	return r;
}

bool cc_all_zero(const void *p, size_t len)
{
	const u8 *b = p;

	while (len--)
		if (*b++)
			return false;
	return true;
}

/* ---- 1. superblock ------------------------------------------------------- */

static int check_superblock(struct walker *w, bool *have_sb)
{
	struct cowchain_sb_disk d[2];
	struct cowchain_sb s[2];
	struct cowchain_err e[2];
	u64 blocks = w->file_size >> COWCHAIN_BLOCK_SHIFT;
	int r[2], i, cur, oth;
	bool sized = true;

	/*
	 * The slot is chosen as every reader chooses it (lib/layer.c, the
	 * target): a slot whose capacity does not fit the file fails like
	 * any other check, and the other slot is used.  Only when neither
	 * fits are the slots taken without the file's size, so that a
	 * truncated file is reported as FILE_TRUNCATED below and not as
	 * two damaged slots.
	 */
	for (i = 0; i < 2; i++) {
		int rr = raw_read(w->fd, w->file_size, i, &d[i]);

		if (rr)
			return cc_fail(w->cx->err, rr, "cannot read '%s': %s", w->path,
				       strerror(-rr));
		r[i] = cowchain_sb_unpack(&d[i], i, blocks, &s[i], &e[i]);
	}
	if (r[0] && r[1] && r[0] != -EOPNOTSUPP && r[1] != -EOPNOTSUPP) {
		struct cowchain_sb t[2];
		struct cowchain_err te[2];
		int tr[2];

		for (i = 0; i < 2; i++)
			tr[i] = cowchain_sb_unpack(&d[i], i, 0, &t[i], &te[i]);
		if (!tr[0] || !tr[1]) {
			memcpy(r, tr, sizeof(r));
			memcpy(s, t, sizeof(s));
			memcpy(e, te, sizeof(e));
			sized = false;
		}
	}
	if (r[0] && r[1]) {
		for (i = 0; i < 2; i++)
			if (r[i] == -EOPNOTSUPP)
				return cc_fail(w->cx->err, -EOPNOTSUPP, "cannot check '%s': %s",
					       w->path, e[i].msg);
		if (cc_all_zero(&d[0], sizeof(d[0])) && cc_all_zero(&d[1], sizeof(d[1])))
			cc_report(w, CK_SB_NONE_VALID, 1,
				  "both superblock slots are empty (not a cowchain layer?)");
		else
			cc_report(w, CK_SB_NONE_VALID, 1, "slot 0: %s; slot 1: %s",
				  e[0].msg, e[1].msg);
		*have_sb = false;
		return 0;
	}
	cur = r[0] ? 1 : r[1] ? 0 : (s[1].seq > s[0].seq ? 1 : 0);
	oth = !cur;
	/*
	 * A newer slot this build cannot read (version or incompat feature)
	 * is not damage: falling back to the older slot would roll back a
	 * newer writer's state, and "repairing" it would destroy that state.
	 */
	if (r[oth] == -EOPNOTSUPP &&
	    le64_to_cpu(d[oth].hdr.key) > s[cur].seq)
		return cc_fail(w->cx->err, -EOPNOTSUPP, "cannot check '%s': %s",
			       w->path, e[oth].msg);
	w->sb = s[cur];
	*have_sb = true;

	if (r[oth]) {
		/* A never-written other slot is normal right after creation. */
		if (!(w->sb.seq == 0 && cc_all_zero(&d[oth], sizeof(d[oth]))))
			cc_report(w, CK_SB_SLOT_INVALID, 1, "slot %d (current is slot %d, seq %llu): %s",
				  oth, cur, (unsigned long long)w->sb.seq, e[oth].msg);
	} else if (memcmp(s[oth].uuid, w->sb.uuid, COWCHAIN_UUID_SIZE)) {
		cc_report(w, CK_SB_SLOT_INVALID, 1, "slot %d belongs to another layer (uuid mismatch with slot %d)",
			  oth, cur);
	} else if (s[oth].seq + 1 != w->sb.seq) {
		cc_report(w, CK_SB_SLOT_STALE, 1, "slot %d has seq %llu, slot %d has seq %llu",
			  oth, (unsigned long long)s[oth].seq, cur,
			  (unsigned long long)w->sb.seq);
	}

	w->vclusters = cowchain_vclusters(&w->sb);
	w->cb_shift = w->sb.cluster_shift - COWCHAIN_BLOCK_SHIFT;
	if (cowchain_sb_ro_only(&w->sb))
		cc_report(w, CK_SB_RO_COMPAT, 1, "ro_compat features 0x%x",
			  w->sb.ro_compat & ~COWCHAIN_FEATURE_RO_COMPAT_SUPP);
	if (w->sb.flags & COWCHAIN_SB_NEEDS_CHECK)
		cc_report(w, CK_SB_NEEDS_CHECK, 1, "flags 0x%x", w->sb.flags);
	if (w->sb.flags & COWCHAIN_SB_MERGING) {
		static const char *const role[] = {
			[COWCHAIN_MERGE_INTO_PARENT] = "into its parent",
			[COWCHAIN_MERGE_FROM_CHILD] = "receiving a child",
			[COWCHAIN_MERGE_INTO_CHILDREN] = "into its children",
			[COWCHAIN_MERGE_FROM_PARENT] = "receiving its parent",
		};
		u32 st = w->sb.merge_state;
		char peer[37];

		cowchain_uuid_str(w->sb.merge_peer_uuid, peer);
		cc_report(w, CK_SB_MERGING, 1, "merge state %u (%s) at cluster %llu with layer %s",
			  st, st < sizeof(role) / sizeof(role[0]) && role[st] ? role[st] : "unknown",
			  (unsigned long long)w->sb.merge_cursor, peer);
	}
	if (!sized)
		cc_report(w, CK_FILE_TRUNCATED, 1, "%llu bytes, capacity needs %llu",
			  (unsigned long long)w->file_size,
			  (unsigned long long)(w->sb.capacity << w->sb.cluster_shift));
	return 0;
}

/* ---- 2. journal ---------------------------------------------------------- */

static int jread(void *ctx, u64 blocknr, void *buf)
{
	struct walker *w = ctx;

	return raw_read(w->fd, w->file_size, blocknr, buf);
}

static int japply(void *ctx, u64 home, const void *image)
{
	struct walker *w = ctx;
	struct overlay_ent *o;

	if (w->nov == w->capov) {
		size_t cap = w->capov ? w->capov * 2 : 16;
		void *p = realloc(w->ov, cap * sizeof(*w->ov));

		if (!p)
			return -ENOMEM;
		w->ov = p;
		w->capov = cap;
	}
	o = &w->ov[w->nov];
	o->img = malloc(COWCHAIN_BLOCK_SIZE);
	if (!o->img)
		return -ENOMEM;
	memcpy(o->img, image, COWCHAIN_BLOCK_SIZE);
	o->home = home;
	o->order = w->nov++;
	return 0;
}

/* Is there a transaction at the end of the log that replay had to ignore? */
static void look_for_torn(struct walker *w)
{
	struct cowchain_jdesc_disk *d = (void *)w->buf;
	const struct cowchain_header_disk *h = &d->hdr;
	u64 tries[2] = { w->jend.pos, 0 };
	struct cowchain_err e;
	int i;

	for (i = 0; i < (w->jend.pos ? 2 : 1); i++) {
		u64 blk = w->sb.journal_start + tries[i];

		if (raw_read(w->fd, w->file_size, blk, d))
			return;
		if (le32_to_cpu(h->magic) != COWCHAIN_JDESC_MAGIC ||
		    le64_to_cpu(h->key) != w->jend.seq ||
		    memcmp(h->uuid, w->sb.uuid, COWCHAIN_UUID_SIZE))
			continue;
		if (cowchain_jdesc_check(d, tries[i], w->jend.seq, &w->sb, &e))
			cc_report(w, CK_JOURNAL_TORN, 1, "transaction %llu at position %llu: %s",
				  (unsigned long long)w->jend.seq,
				  (unsigned long long)tries[i], e.msg);
		else
			cc_report(w, CK_JOURNAL_TORN, 1,
				  "transaction %llu at position %llu: an image does not match its descriptor",
				  (unsigned long long)w->jend.seq,
				  (unsigned long long)tries[i]);
		return;
	}
}

static int check_journal(struct walker *w)
{
	struct cowchain_journal_io io = { .ctx = w, .read_block = jread, .apply = japply };
	static __thread u8 scratch[2 * COWCHAIN_BLOCK_SIZE] __attribute__((aligned(8)));
	struct cowchain_err e;
	size_t i, j;
	int r;

	w->jend.pos = w->sb.journal_head;
	w->jend.seq = w->sb.journal_seq;
	r = cowchain_journal_replay(&w->sb, &io, scratch, &w->jend, &w->replayed, &e);
	if (r == -ENOMEM)
		return cc_fail(w->cx->err, r, "cannot check '%s': out of memory", w->path);
	if (r) {
		cc_report(w, CK_JOURNAL_UNREADABLE, 1, "%s: %s", e.msg, strerror(-r));
		for (i = 0; i < w->nov; i++)
			free(w->ov[i].img);
		w->nov = 0;
		w->replayed = 0;
		w->jend.pos = w->sb.journal_head;
		w->jend.seq = w->sb.journal_seq;
		return 0;
	}
	/* Keep the last image of each home. */
	if (w->nov)
		qsort(w->ov, w->nov, sizeof(*w->ov), ov_cmp);
	for (i = 0, j = 0; i < w->nov; i++) {
		if (i + 1 < w->nov && w->ov[i + 1].home == w->ov[i].home) {
			free(w->ov[i].img);
			continue;
		}
		w->ov[j++] = w->ov[i];
	}
	w->nov = j;
	if (w->replayed)
		cc_report(w, CK_JOURNAL_PENDING, w->replayed,
			  "%llu transaction(s) from position %llu (seq %llu), %zu block(s)",
			  (unsigned long long)w->replayed,
			  (unsigned long long)w->sb.journal_head,
			  (unsigned long long)w->sb.journal_seq, w->nov);
	look_for_torn(w);
	return 0;
}

/* ---- one layer ----------------------------------------------------------- */

void cc_walker_free(struct walker *w)
{
	size_t i;

	for (i = 0; i < w->nov; i++)
		free(w->ov[i].img);
	free(w->ov);
	cc_u64map_free(&w->blocks);
	cc_u64map_free(&w->meta);
	cc_u64map_free(&w->data);
	free(w->data_order);
	if (w->fd >= 0)
		close(w->fd);
}

/* Open read-only (or read-write for repair) and check the kind and size. */
int cc_open_input(const char *path, bool rw, u64 *size, bool *is_reg,
		  struct cowchain_error *err)
{
	int fd, r;

	fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	r = cc_fd_size(fd, size, is_reg);
	if (r) {
		close(fd);
		return cc_fail(err, r, "cannot open '%s': %s", path,
			       r == -EINVAL ? "not a regular file or block device" : strerror(-r));
	}
	if (*size < 2 * COWCHAIN_BLOCK_SIZE) {
		close(fd);
		return cc_fail(err, -EINVAL,
			       "cannot open '%s': too small to be a cowchain layer (%llu bytes)",
			       path, (unsigned long long)*size);
	}
	return fd;
}

int cc_walk_one(struct walker *w, const char *path, bool rw, bool *have_sb)
{
	struct cowchain_check_report *rep = w->cx->rep;
	int r;

	w->path = path;
	w->fd = -1;
	r = cc_open_input(path, rw, &w->file_size, &w->is_reg, w->cx->err);
	if (r < 0)
		return r;
	w->fd = r;
	/* A repair must not race a writer: take the lock the library's writers take. */
	if (rw && flock(w->fd, LOCK_EX | LOCK_NB))
		return cc_fail(w->cx->err, errno == EWOULDBLOCK ? -EBUSY : -errno,
			       "cannot repair '%s': %s", path,
			       errno == EWOULDBLOCK ? "a writer has it open" : strerror(errno));
	r = cc_report_layer(rep, path);
	if (r < 0)
		return cc_fail(w->cx->err, r, "cannot check '%s': out of memory", path);
	w->layer = r;
	r = check_superblock(w, have_sb);
	if (r || !*have_sb)
		return r;
	r = check_journal(w);
	if (r)
		return r;
	r = cc_check_index(w);
	if (r)
		return r;
	if (w->ioerr)
		return cc_fail(w->cx->err, w->ioerr, "cannot read '%s': %s", path,
			       strerror(-w->ioerr));
	if (w->stop)
		return w->stop;
	return 0;
}

int cowchain_walk(const char *path, const struct cowchain_walk_ops *ops,
		  struct cowchain_sb *sb, bool *have_sb,
		  struct cowchain_check_report *rep, struct cowchain_error *err)
{
	struct check_ctx cx = { .rep = rep, .err = err };
	struct walker *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return cc_fail(err, -ENOMEM, "out of memory");
	w->cx = &cx;
	w->ops = ops;
	*have_sb = false;
	r = cc_walk_one(w, path, false, have_sb);
	if (*have_sb) {
		*sb = w->sb;
		sb->journal_head = w->jend.pos;
		sb->journal_seq = w->jend.seq;
	}
	cc_walker_free(w);
	free(w);
	return r;
}
