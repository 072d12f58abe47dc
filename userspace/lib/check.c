// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check: the tolerant walker and the repairs (see check.h).
 *
 * How it differs from the library's open (lib/index.c): the open refuses
 * a layer at its first bad field; the walker records a finding and goes
 * on with whatever is still trustworthy.  A block that fails its header
 * check (magic, checksum, location, owner, key) is not trusted at all and
 * its subtree is skipped; a block whose header passes is walked slot by
 * slot, each bad pointer or entry its own finding.  Every rule is the one
 * in kernel/format.c; the per-slot checks below call the same helpers
 * (cowchain_header_check, cowchain_entry_check, cowchain_block_in_clusters).
 *
 * Order of work for one layer:
 *  1. both superblock slots (pick the valid one with the higher seq);
 *  2. journal replay into an in-memory overlay (kernel/journal.c), and a
 *     look past its end for a torn transaction;
 *  3. the index, root table to leaves, through the overlay, recording
 *     every block reached and every physical cluster referenced;
 *  4. data/metadata overlap, then leaked clusters from SEEK_DATA/SEEK_HOLE.
 * With --chain, the same for each parent, plus the links between them.
 *
 * Repairs (the checked file only, after the whole check, in this order):
 *  a. journal checkpoint: replayed images written home, fdatasync;
 *  b. punch leaked clusters, only if no corruption was found in the index
 *     (a lost leaf's clusters look leaked, and they may be recoverable);
 *  c. one superblock write (seq + 1, into the other slot) if the journal
 *     was checkpointed, the other slot is damaged, or NEEDS_CHECK can be
 *     cleared (only when nothing else is left uncorrected);
 *  d. with finish_merge, an offline merge in progress (MERGING) is
 *     finished by the merge code, with the file closed, when nothing else
 *     is left uncorrected;
 *     then the file, if the merge left it, is checked again (finish_merge).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include "cowchain.h"
#include "journal.h"
#include "check.h"
#include "merge.h"

/* ---- small containers ---------------------------------------------------- */

/* Open-addressing u64 -> u64 map; keys stored + 1 so 0 marks empty. */
struct u64map {
	u64 *k, *v;
	size_t n, cap;
};

static u64 mix(u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static u64 *map_find(const struct u64map *m, u64 key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = mix(key) & (m->cap - 1); m->k[i]; i = (i + 1) & (m->cap - 1))
		if (m->k[i] == key + 1)
			return &m->v[i];
	return NULL;
}

static int map_put(struct u64map *m, u64 key, u64 val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct u64map b = { 0 };
		size_t j;

		b.cap = m->cap ? m->cap * 2 : 64;
		b.k = calloc(b.cap, sizeof(u64));
		b.v = calloc(b.cap, sizeof(u64));
		if (!b.k || !b.v) {
			free(b.k);
			free(b.v);
			return -ENOMEM;
		}
		for (j = 0; j < m->cap; j++)
			if (m->k[j])
				map_put(&b, m->k[j] - 1, m->v[j]);
		free(m->k);
		free(m->v);
		*m = b;
	}
	for (i = mix(key) & (m->cap - 1); m->k[i]; i = (i + 1) & (m->cap - 1))
		if (m->k[i] == key + 1)
			break;
	if (!m->k[i])
		m->n++;
	m->k[i] = key + 1;
	m->v[i] = val;
	return 0;
}

static void map_free(struct u64map *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

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

static void report(struct walker *w, enum cowchain_problem code,
		   unsigned long long count, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int rep_add(struct cowchain_check_report *rep, unsigned layer,
		   enum cowchain_problem code, unsigned long long count,
		   const char *fmt, va_list ap)
{
	struct cowchain_finding *f;

	if (rep->n == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 16;
		void *p = realloc(rep->f, cap * sizeof(*rep->f));

		if (!p)
			return -ENOMEM;
		rep->f = p;
		rep->cap = cap;
	}
	f = &rep->f[rep->n++];
	memset(f, 0, sizeof(*f));
	f->code = code;
	f->layer = layer;
	f->count = count ? count : 1;
	vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
	return 0;
}

static void report(struct walker *w, enum cowchain_problem code,
		   unsigned long long count, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rep_add(w->cx->rep, w->layer, code, count, fmt, ap);
	va_end(ap);
	if (code >= CK_ROOT_BAD && code <= CK_DATA_META_OVERLAP)
		w->index_damage++;
}

static int rep_layer(struct cowchain_check_report *rep, const char *path)
{
	char **p = realloc(rep->layers, (rep->nlayers + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	rep->layers = p;
	p[rep->nlayers] = strdup(path);
	if (!p[rep->nlayers])
		return -ENOMEM;
	return rep->nlayers++;
}

static int fail(struct cowchain_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct cowchain_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

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

static const u8 *ov_find(const struct walker *w, u64 home)
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
static int read_meta(struct walker *w, u64 blocknr, void *buf)
{
	const u8 *img = ov_find(w, blocknr);
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

static bool all_zero(const void *p, size_t len)
{
	const u8 *b = p;

	while (len--)
		if (*b++)
			return false;
	return true;
}

static void uuid_str(const u8 *u, char out[37])
{
	cowchain_uuid_str(u, out);
}

/* ---- 1. superblock ------------------------------------------------------- */

static int check_superblock(struct walker *w, bool *have_sb)
{
	struct cowchain_sb_disk d[2];
	struct cowchain_sb s[2];
	struct cowchain_err e[2];
	int r[2], i, cur, oth;

	for (i = 0; i < 2; i++) {
		int rr = raw_read(w->fd, w->file_size, i, &d[i]);

		if (rr)
			return fail(w->cx->err, rr, "cannot read '%s': %s", w->path,
				    strerror(-rr));
		r[i] = cowchain_sb_unpack(&d[i], i, 0, &s[i], &e[i]);
	}
	if (r[0] && r[1]) {
		for (i = 0; i < 2; i++)
			if (r[i] == -EOPNOTSUPP)
				return fail(w->cx->err, -EOPNOTSUPP, "cannot check '%s': %s",
					    w->path, e[i].msg);
		if (all_zero(&d[0], sizeof(d[0])) && all_zero(&d[1], sizeof(d[1])))
			report(w, CK_SB_NONE_VALID, 1,
			       "both superblock slots are empty (not a cowchain layer?)");
		else
			report(w, CK_SB_NONE_VALID, 1, "slot 0: %s; slot 1: %s",
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
		return fail(w->cx->err, -EOPNOTSUPP, "cannot check '%s': %s",
			    w->path, e[oth].msg);
	w->sb = s[cur];
	*have_sb = true;

	if (r[oth]) {
		/* A never-written other slot is normal right after creation. */
		if (!(w->sb.seq == 0 && all_zero(&d[oth], sizeof(d[oth]))))
			report(w, CK_SB_SLOT_INVALID, 1, "slot %d (current is slot %d, seq %llu): %s",
			       oth, cur, (unsigned long long)w->sb.seq, e[oth].msg);
	} else if (memcmp(s[oth].uuid, w->sb.uuid, COWCHAIN_UUID_SIZE)) {
		report(w, CK_SB_SLOT_INVALID, 1, "slot %d belongs to another layer (uuid mismatch with slot %d)",
		       oth, cur);
	} else if (s[oth].seq + 1 != w->sb.seq) {
		report(w, CK_SB_SLOT_STALE, 1, "slot %d has seq %llu, slot %d has seq %llu",
		       oth, (unsigned long long)s[oth].seq, cur,
		       (unsigned long long)w->sb.seq);
	}

	w->vclusters = cowchain_vclusters(&w->sb);
	w->cb_shift = w->sb.cluster_shift - COWCHAIN_BLOCK_SHIFT;
	if (cowchain_sb_ro_only(&w->sb))
		report(w, CK_SB_RO_COMPAT, 1, "ro_compat features 0x%x",
		       w->sb.ro_compat & ~COWCHAIN_FEATURE_RO_COMPAT_SUPP);
	if (w->sb.flags & COWCHAIN_SB_NEEDS_CHECK)
		report(w, CK_SB_NEEDS_CHECK, 1, "flags 0x%x", w->sb.flags);
	if (w->sb.flags & COWCHAIN_SB_MERGING) {
		static const char *const role[] = {
			[COWCHAIN_MERGE_INTO_PARENT] = "into its parent",
			[COWCHAIN_MERGE_FROM_CHILD] = "receiving a child",
			[COWCHAIN_MERGE_INTO_CHILDREN] = "into its children",
			[COWCHAIN_MERGE_FROM_PARENT] = "receiving its parent",
		};
		u32 st = w->sb.merge_state;
		char peer[37];

		uuid_str(w->sb.merge_peer_uuid, peer);
		report(w, CK_SB_MERGING, 1, "merge state %u (%s) at cluster %llu with layer %s",
		       st, st < sizeof(role) / sizeof(role[0]) && role[st] ? role[st] : "unknown",
		       (unsigned long long)w->sb.merge_cursor, peer);
	}
	if ((w->sb.capacity << w->sb.cluster_shift) > w->file_size)
		report(w, CK_FILE_TRUNCATED, 1, "%llu bytes, capacity needs %llu",
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
			report(w, CK_JOURNAL_TORN, 1, "transaction %llu at position %llu: %s",
			       (unsigned long long)w->jend.seq,
			       (unsigned long long)tries[i], e.msg);
		else
			report(w, CK_JOURNAL_TORN, 1,
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
		return fail(w->cx->err, r, "cannot check '%s': out of memory", w->path);
	if (r) {
		report(w, CK_JOURNAL_UNREADABLE, 1, "%s: %s", e.msg, strerror(-r));
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
		report(w, CK_JOURNAL_PENDING, w->replayed,
		       "%llu transaction(s) from position %llu (seq %llu), %zu block(s)",
		       (unsigned long long)w->replayed,
		       (unsigned long long)w->sb.journal_head,
		       (unsigned long long)w->sb.journal_seq, w->nov);
	look_for_torn(w);
	return 0;
}

/* ---- 3. index ------------------------------------------------------------ */

static const char *const kind_name[] = { "root block", "map block", "leaf block" };
static const enum cowchain_problem kind_bad[] = { CK_ROOT_BAD, CK_MAP_BAD, CK_LEAF_BAD };
static const u32 kind_magic[] = { COWCHAIN_ROOT_MAGIC, COWCHAIN_MAP_MAGIC, COWCHAIN_LEAF_MAGIC };

static int walk_block(struct walker *w, int kind, unsigned slot, u64 blocknr, u64 key);

static int walk_leaf(struct walker *w, u64 blocknr, u64 key, const struct cowchain_leaf_disk *blk)
{
	struct cowchain_err e;
	u32 i, used = 0;

	for (i = 0; i < COWCHAIN_LEAF_ENTRIES && !w->stop; i++) {
		struct cowchain_entry en;
		u64 vc = key + i, *owner;

		cowchain_entry_unpack(&blk->entry[i], &en);
		if (cowchain_entry_empty(&en))
			continue;
		used++;
		if (vc >= w->vclusters) {
			report(w, CK_ENTRY_PAST_VSIZE, 1, "leaf block %llu, cluster %llu (virtual disk has %llu)",
			       (unsigned long long)blocknr, (unsigned long long)vc,
			       (unsigned long long)w->vclusters);
			continue;
		}
		if (en.phys && (en.phys < w->sb.data_start || en.phys >= w->sb.capacity)) {
			report(w, CK_ENTRY_PHYS_RANGE, 1, "leaf block %llu, cluster %llu: physical cluster %llu outside %llu..%llu",
			       (unsigned long long)blocknr, (unsigned long long)vc,
			       (unsigned long long)en.phys,
			       (unsigned long long)w->sb.data_start,
			       (unsigned long long)w->sb.capacity - 1);
			continue;
		}
		if (cowchain_entry_check(&en, &w->sb, &e)) {
			report(w, CK_ENTRY_INVALID, 1, "leaf block %llu, cluster %llu: %s",
			       (unsigned long long)blocknr, (unsigned long long)vc, e.msg);
			continue;
		}
		/*
		 * Entries that are valid on their own but conflict with the
		 * rest of the layer (a shared cluster, data past the end of
		 * the file) still reach the walk callback: a dump must show
		 * them so they can be fixed by hand.
		 */
		if (en.phys) {
			owner = map_find(&w->data, en.phys);
			if (owner) {
				report(w, CK_CLUSTER_SHARED, 1, "physical cluster %llu: clusters %llu and %llu",
				       (unsigned long long)en.phys,
				       (unsigned long long)*owner,
				       (unsigned long long)vc);
			} else {
				if (map_put(&w->data, en.phys, vc))
					return -ENOMEM;
				if (w->ndata == w->capdata) {
					size_t cap = w->capdata ? w->capdata * 2 : 64;
					void *p = realloc(w->data_order, cap * sizeof(u64));

					if (!p)
						return -ENOMEM;
					w->data_order = p;
					w->capdata = cap;
				}
				w->data_order[w->ndata++] = en.phys;
			}
			/* Referenced all the same: a partial cluster is not a leak. */
			if ((en.phys + 1) << w->sb.cluster_shift > w->file_size)
				report(w, CK_ENTRY_PAST_EOF, 1, "leaf block %llu, cluster %llu: physical cluster %llu",
				       (unsigned long long)blocknr, (unsigned long long)vc,
				       (unsigned long long)en.phys);
		}
		if (w->ops && w->ops->entry)
			w->stop = w->ops->entry(w->ops->ctx, vc, &en);
	}
	if (le32_to_cpu(blk->hdr.count) != used)
		report(w, CK_BLOCK_COUNT, 1, "leaf block %llu: count %u but %u entries in use",
		       (unsigned long long)blocknr, le32_to_cpu(blk->hdr.count), used);
	if (!all_zero(blk->tail, sizeof(blk->tail)))
		report(w, CK_BLOCK_TAIL, 1, "leaf block %llu", (unsigned long long)blocknr);
	return 0;
}

static int walk_ptrs(struct walker *w, int kind, u64 blocknr, u64 key,
		     const struct cowchain_ptr_disk *blk)
{
	u32 span = kind == 0 ? COWCHAIN_MAP_SPAN_SHIFT : COWCHAIN_LEAF_SHIFT;
	struct cowchain_ptr_disk *copy;
	u32 i, used = 0;
	int r = 0;

	/* The buffer is reused by the levels below: work on a copy. */
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, blk, sizeof(*copy));
	for (i = 0; i < COWCHAIN_PTR_ENTRIES && !w->stop; i++) {
		u64 p = le64_to_cpu(copy->ptr[i]);
		u64 ck = key + ((u64)i << span);

		if (!p)
			continue;
		used++;
		if (ck >= w->vclusters) {
			report(w, CK_PTR_PAST_VSIZE, 1, "%s %llu, slot %u (first cluster %llu, virtual disk has %llu)",
			       kind_name[kind], (unsigned long long)blocknr, i,
			       (unsigned long long)ck, (unsigned long long)w->vclusters);
			continue;
		}
		if (!cowchain_block_in_clusters(&w->sb, p)) {
			report(w, CK_PTR_OUT_OF_AREA, 1, "%s %llu, slot %u: block %llu",
			       kind_name[kind], (unsigned long long)blocknr, i,
			       (unsigned long long)p);
			continue;
		}
		if ((p + 1) << COWCHAIN_BLOCK_SHIFT > w->file_size && !ov_find(w, p)) {
			report(w, CK_PTR_PAST_EOF, 1, "%s %llu, slot %u: block %llu",
			       kind_name[kind], (unsigned long long)blocknr, i,
			       (unsigned long long)p);
			continue;
		}
		r = walk_block(w, kind + 1, i, p, ck);
		if (r)
			break;
	}
	if (!r && !w->stop) {
		if (le32_to_cpu(copy->hdr.count) != used)
			report(w, CK_BLOCK_COUNT, 1, "%s %llu: count %u but %u pointers set",
			       kind_name[kind], (unsigned long long)blocknr,
			       le32_to_cpu(copy->hdr.count), used);
		if (!all_zero(copy->tail, sizeof(copy->tail)))
			report(w, CK_BLOCK_TAIL, 1, "%s %llu",
			       kind_name[kind], (unsigned long long)blocknr);
	}
	free(copy);
	return r;
}

static int walk_block(struct walker *w, int kind, unsigned slot, u64 blocknr, u64 key)
{
	struct cowchain_err e;
	int r;

	if (map_find(&w->blocks, blocknr)) {
		report(w, CK_BLOCK_TWICE, 1, "block %llu (again as a %s for cluster %llu)",
		       (unsigned long long)blocknr, kind_name[kind],
		       (unsigned long long)key);
		return 0;
	}
	if (map_put(&w->blocks, blocknr, kind))
		return -ENOMEM;
	if (kind && map_put(&w->meta, blocknr >> w->cb_shift, 1))
		return -ENOMEM;
	if (read_meta(w, blocknr, w->buf)) {
		report(w, kind_bad[kind], 1, "%s at block %llu: read error",
		       kind_name[kind], (unsigned long long)blocknr);
		return 0;
	}
	if (cowchain_header_check(w->buf, kind_magic[kind], blocknr, w->sb.uuid,
				  key, kind_name[kind], &e)) {
		report(w, kind_bad[kind], 1, "%s", e.msg);
		return 0;
	}
	if (w->ops && w->ops->block) {
		w->stop = w->ops->block(w->ops->ctx, kind, slot, blocknr, key);
		if (w->stop)
			return 0;
	}
	if (kind == 2)
		r = walk_leaf(w, blocknr, key, (void *)w->buf);
	else
		r = walk_ptrs(w, kind, blocknr, key, (void *)w->buf);
	if (!r && !w->stop && w->ops && w->ops->block_end)
		w->stop = w->ops->block_end(w->ops->ctx, kind);
	return r;
}

static int check_index(struct walker *w)
{
	u64 i;
	int r;

	for (i = 0; i < w->sb.root_blocks && !w->stop; i++) {
		r = walk_block(w, 0, i, w->sb.root_start + i, i << COWCHAIN_ROOT_SPAN_SHIFT);
		if (r)
			return fail(w->cx->err, r, "cannot check '%s': %s", w->path, strerror(-r));
	}
	for (i = 0; i < w->ndata; i++)
		if (map_find(&w->meta, w->data_order[i]))
			report(w, CK_DATA_META_OVERLAP, 1, "physical cluster %llu (cluster %llu) holds metadata blocks",
			       (unsigned long long)w->data_order[i],
			       (unsigned long long)(*map_find(&w->data, w->data_order[i])));
	return 0;
}

/* ---- 4. leaked space ----------------------------------------------------- */

struct leak_run {
	u64 start, len;
};

struct leaks {
	struct leak_run *r;
	size_t n, cap;
	u64 total;
};

static int leak_add(struct leaks *lk, u64 c)
{
	if (lk->n && lk->r[lk->n - 1].start + lk->r[lk->n - 1].len == c) {
		lk->r[lk->n - 1].len++;
	} else {
		if (lk->n == lk->cap) {
			size_t cap = lk->cap ? lk->cap * 2 : 16;
			void *p = realloc(lk->r, cap * sizeof(*lk->r));

			if (!p)
				return -ENOMEM;
			lk->r = p;
			lk->cap = cap;
		}
		lk->r[lk->n].start = c;
		lk->r[lk->n++].len = 1;
	}
	lk->total++;
	return 0;
}

/*
 * Clusters of [data_start, capacity) with space allocated in the file that
 * nothing references.  Walks the file's data extents (SEEK_DATA/SEEK_HOLE),
 * so the cost follows what is allocated.  A file system without SEEK_DATA
 * reports everything as data; then every unreferenced cluster looks leaked,
 * which is still true of the file's disk usage.
 */
static int find_leaks(struct walker *w, struct leaks *lk)
{
	u64 cs = w->sb.cluster_shift;
	u64 lo = w->sb.data_start << cs;
	u64 hi = w->sb.capacity << cs;
	off_t off;

	/* A block device has no holes to tell: all of it reads as data. */
	if (!w->is_reg)
		return 0;
	if (hi > w->file_size)
		hi = w->file_size;
	off = (off_t)lo;
	while ((u64)off < hi) {
		off_t d = lseek(w->fd, off, SEEK_DATA), h;
		u64 c, c_end;

		if (d < 0) {
			if (errno == ENXIO)
				break;
			return -errno;
		}
		if ((u64)d >= hi)
			break;
		h = lseek(w->fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		if ((u64)h > hi)
			h = (off_t)hi;
		c_end = ((u64)h + (1ull << cs) - 1) >> cs;
		for (c = (u64)d >> cs; c < c_end; c++)
			if (!map_find(&w->data, c) && !map_find(&w->meta, c))
				if (leak_add(lk, c))
					return -ENOMEM;
		off = h;
	}
	return 0;
}

/* ---- one layer ----------------------------------------------------------- */

static void walker_free(struct walker *w)
{
	size_t i;

	for (i = 0; i < w->nov; i++)
		free(w->ov[i].img);
	free(w->ov);
	map_free(&w->blocks);
	map_free(&w->meta);
	map_free(&w->data);
	free(w->data_order);
	if (w->fd >= 0)
		close(w->fd);
}

/* Open read-only (or read-write for repair) and check the kind and size. */
static int open_input(const char *path, bool rw, u64 *size, struct cowchain_error *err)
{
	struct stat st;
	int fd;

	fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st)) {
		int e = -errno;

		close(fd);
		return fail(err, e, "cannot open '%s': %s", path, strerror(-e));
	}
	if (S_ISBLK(st.st_mode)) {
		u64 b = 0;

		if (ioctl(fd, BLKGETSIZE64, &b)) {
			int e = -errno;

			close(fd);
			return fail(err, e, "cannot open '%s': %s", path, strerror(-e));
		}
		*size = b;
	} else if (S_ISREG(st.st_mode)) {
		*size = st.st_size;
	} else {
		close(fd);
		return fail(err, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
			    "cannot open '%s': %s", path,
			    S_ISDIR(st.st_mode) ? "Is a directory"
						: "not a regular file or block device");
	}
	if (*size < 2 * COWCHAIN_BLOCK_SIZE) {
		close(fd);
		return fail(err, -EINVAL,
			    "cannot open '%s': too small to be a cowchain layer (%llu bytes)",
			    path, (unsigned long long)*size);
	}
	return fd;
}

static int walk_one(struct walker *w, const char *path, bool rw, bool *have_sb)
{
	struct cowchain_check_report *rep = w->cx->rep;
	int r;

	w->path = path;
	w->fd = -1;
	r = open_input(path, rw, &w->file_size, w->cx->err);
	if (r < 0)
		return r;
	w->fd = r;
	{
		struct stat st;

		w->is_reg = !fstat(w->fd, &st) && S_ISREG(st.st_mode);
	}
	/* A repair must not race a writer: take the lock the library's writers take. */
	if (rw && flock(w->fd, LOCK_EX | LOCK_NB))
		return fail(w->cx->err, errno == EWOULDBLOCK ? -EBUSY : -errno,
			    "cannot repair '%s': %s", path,
			    errno == EWOULDBLOCK ? "a writer has it open" : strerror(errno));
	r = rep_layer(rep, path);
	if (r < 0)
		return fail(w->cx->err, r, "cannot check '%s': out of memory", path);
	w->layer = r;
	r = check_superblock(w, have_sb);
	if (r || !*have_sb)
		return r;
	r = check_journal(w);
	if (r)
		return r;
	r = check_index(w);
	if (r)
		return r;
	if (w->ioerr)
		return fail(w->cx->err, w->ioerr, "cannot read '%s': %s", path,
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
		return fail(err, -ENOMEM, "out of memory");
	w->cx = &cx;
	w->ops = ops;
	*have_sb = false;
	r = walk_one(w, path, false, have_sb);
	if (*have_sb) {
		*sb = w->sb;
		sb->journal_head = w->jend.pos;
		sb->journal_seq = w->jend.seq;
	}
	walker_free(w);
	free(w);
	return r;
}

/* ---- repair --------------------------------------------------------------- */

static bool uncorrected_besides(const struct cowchain_check_report *rep,
				enum cowchain_problem except)
{
	size_t i;

	/* An interrupted merge is finished after these repairs (finish_merge). */
	for (i = 0; i < rep->n; i++)
		if (!rep->f[i].fixed && rep->f[i].code != except &&
		    rep->f[i].code != CK_SB_MERGING &&
		    cowchain_problems[rep->f[i].code].severity != COWCHAIN_SEV_INFO)
			return true;
	return false;
}

static void mark_fixed(struct cowchain_check_report *rep, unsigned layer,
		       enum cowchain_problem code)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		if (rep->f[i].layer == layer && rep->f[i].code == code)
			rep->f[i].fixed = true;
}

static bool has(const struct cowchain_check_report *rep, unsigned layer,
		enum cowchain_problem code)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		if (rep->f[i].layer == layer && rep->f[i].code == code)
			return true;
	return false;
}

static int wr(struct walker *w, const void *buf, size_t len, u64 off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(w->fd, (const u8 *)buf + done, len - done,
				   (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return fail(w->cx->err, -errno, "cannot write '%s': %s",
				    w->path, strerror(errno));
		}
		done += r;
	}
	return 0;
}

static int sync_fd(struct walker *w)
{
	if (fdatasync(w->fd))
		return fail(w->cx->err, -errno, "cannot write '%s': %s", w->path,
			    strerror(errno));
	return 0;
}

static int repair(struct walker *w, const struct leaks *lk)
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
				return fail(w->cx->err, -errno, "cannot punch clusters %llu..%llu of '%s': %s",
					    (unsigned long long)lk->r[i].start,
					    (unsigned long long)(lk->r[i].start + lk->r[i].len - 1),
					    w->path, strerror(errno));
		}
		mark_fixed(rep, w->layer, CK_LEAKED);
	}
	/* c. the superblock. */
	if (has(rep, w->layer, CK_SB_SLOT_INVALID))
		sb_write = true;
	if ((w->sb.flags & COWCHAIN_SB_NEEDS_CHECK) &&
	    !uncorrected_besides(rep, CK_SB_NEEDS_CHECK)) {
		bool others_fixed_by_sb = true;

		/* Findings the superblock write below fixes count as fixed. */
		for (i = 0; i < rep->n; i++)
			if (!rep->f[i].fixed && rep->f[i].code != CK_SB_NEEDS_CHECK &&
			    rep->f[i].code != CK_SB_SLOT_INVALID &&
			    rep->f[i].code != CK_JOURNAL_PENDING &&
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
		mark_fixed(rep, w->layer, CK_SB_SLOT_INVALID);
		if (w->replayed)
			mark_fixed(rep, w->layer, CK_JOURNAL_PENDING);
		if (!(nsb.flags & COWCHAIN_SB_NEEDS_CHECK))
			mark_fixed(rep, w->layer, CK_SB_NEEDS_CHECK);
	}
	return 0;
}

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

/* The layer-0 finding of code, or NULL. */
static struct cowchain_finding *finding(struct cowchain_check_report *rep,
					enum cowchain_problem code)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		if (rep->f[i].layer == 0 && rep->f[i].code == code)
			return &rep->f[i];
	return NULL;
}

/* Append to a finding's detail (truncated to fit, like the rest of it). */
static void add_detail(struct cowchain_finding *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_detail(struct cowchain_finding *f, const char *fmt, ...)
{
	size_t len = strlen(f->detail);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->detail + len, sizeof(f->detail) - len, fmt, ap);
	va_end(ap);
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
		return fail(err, -ENOMEM, "out of memory");
	for (;;) {
		struct walker *w = calloc(1, sizeof(*w));
		struct leaks lk = { 0 };
		bool have_sb = false;
		void *p;

		if (!w) {
			r = fail(err, -ENOMEM, "out of memory");
			break;
		}
		w->cx = &cx;
		r = walk_one(w, cur, depth == 0 && opts->repair, &have_sb);
		if (r == 0 && have_sb) {
			r = find_leaks(w, &lk);
			if (r)
				r = fail(err, r, "cannot check '%s': %s", cur, strerror(-r));
			else if (lk.total)
				report(w, CK_LEAKED, lk.total, "%llu cluster(s) in %zu run(s), first %llu..%llu",
				       (unsigned long long)lk.total, lk.n,
				       (unsigned long long)lk.r[0].start,
				       (unsigned long long)(lk.r[0].start + lk.r[0].len - 1));
		}
		if (r == 0 && have_sb && depth == 0 && opts->repair)
			r = repair(w, &lk);
		free(lk.r);
		if (r == 0 && have_sb && depth == 0 && merge_todo && opts->repair &&
		    opts->finish_merge && (w->sb.flags & COWCHAIN_SB_MERGING)) {
			struct cowchain_finding *f = finding(rep, CK_SB_MERGING);

			if (!f) {
				r = fail(err, -ENOMEM, "cannot check '%s': out of memory", cur);
			} else if (cowchain_sb_ro_only(&w->sb)) {
				add_detail(f, "; not finished: the layer has unknown read-only-compatible features");
			} else if (uncorrected_besides(rep, CK_SB_MERGING)) {
				add_detail(f, "; not finished: other problems of this layer are left uncorrected");
			} else {
				/* The merge takes the writers' flock: close first. */
				*merge_todo = true;
				walker_free(w);
				free(w);
				break;
			}
		}
		if (r || !have_sb || !opts->chain) {
			walker_free(w);
			free(w);
			break;
		}

		/* Links to the parent. */
		p = realloc(seen, (depth + 1) * sizeof(*seen));
		if (!p) {
			walker_free(w);
			free(w);
			r = fail(err, -ENOMEM, "out of memory");
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
				report(w, CK_CHAIN_CYCLE, 1, "this layer is already in the chain (as '%s')",
				       rep->layers[i]);
				walker_free(w);
				free(w);
				break;
			}
		}
		if (depth) {
			char want[37], got[37];

			uuid_str(child.parent_uuid, want);
			uuid_str(w->sb.uuid, got);
			if (memcmp(child.parent_uuid, w->sb.uuid, COWCHAIN_UUID_SIZE))
				report(w, CK_PARENT_UUID, 1, "the child expects %s, this layer is %s",
				       want, got);
			else if (child.parent_generation != w->sb.generation)
				report(w, CK_PARENT_GENERATION, 1, "generation %llu, the child expects %llu",
				       (unsigned long long)w->sb.generation,
				       (unsigned long long)child.parent_generation);
			if (child.cluster_shift != w->sb.cluster_shift ||
			    child.subblock_shift != w->sb.subblock_shift)
				report(w, CK_PARENT_GEOMETRY, 1, "cluster/sub-block shift %u/%u, the child has %u/%u",
				       w->sb.cluster_shift, w->sb.subblock_shift,
				       child.cluster_shift, child.subblock_shift);
			if (w->sb.virtual_size > child.virtual_size)
				report(w, CK_PARENT_SIZE, 1, "%llu bytes, the child has %llu",
				       (unsigned long long)w->sb.virtual_size,
				       (unsigned long long)child.virtual_size);
			if (!(w->sb.flags & COWCHAIN_SB_SEALED))
				report(w, CK_PARENT_NOT_SEALED, 1, "flags 0x%x", w->sb.flags);
		}
		child = w->sb;
		walker_free(w);
		free(w);
		if (child.parent_kind == COWCHAIN_PARENT_NONE)
			break;
		next = parent_path(cur, &child);
		if (!next) {
			r = fail(err, -ENOMEM, "out of memory");
			break;
		}
		if (child.parent_kind == COWCHAIN_PARENT_RAW) {
			struct cowchain_check_report *rp = rep;
			struct stat st;

			if (stat(next, &st)) {
				struct walker tmp = { .cx = &cx, .layer = rp->nlayers - 1 };

				report(&tmp, CK_BASE_MISSING, 1, "'%s': %s", next, strerror(errno));
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
				report(&tmp, CK_CHAIN_TOO_DEEP, 1, "more than %u layers",
				       COWCHAIN_MAX_DEPTH);
				break;
			}
			for (i = 0; i <= depth; i++)
				if (!memcmp(seen[i], child.parent_uuid, COWCHAIN_UUID_SIZE))
					break;
			if (i <= depth) {
				report(&tmp, CK_CHAIN_CYCLE, 1, "its parent '%s' is already in the chain (as '%s')",
				       next, rep->layers[i]);
				break;
			}
			fd = open_input(next, false, &sz, &perr);
			if (fd < 0) {
				report(&tmp, CK_PARENT_MISSING, 1, "%s", perr.msg);
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
static int finish_merge(const char *path, const struct cowchain_check_opts *opts,
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
		return fail(err, r, "cannot repair '%s': %s", path, merr.msg);
	}
	if (r) {
		add_detail(f, "; not finished: %s", merr.msg);
		cowchain_merge_plan_free(&plan);
		return 0;
	}
	f->fixed = true;
	*gone = access(path, F_OK) && errno == ENOENT;
	for (i = 0; i < plan.nfiles; i++)
		kids += !strcmp(plan.files[i].role, "child");
	if (plan.direction == COWCHAIN_DIR_PARENT)
		add_detail(f, "; finished: merged '%s' into its parent '%s' (%llu bytes copied), deleted '%s'",
			   plan.child_path, plan.parent_path,
			   (unsigned long long)plan.bytes_done, plan.child_path);
	else
		add_detail(f, "; finished: merged '%s' into its %zu child(ren) (%llu bytes copied), deleted '%s'",
			   plan.parent_path, kids, (unsigned long long)plan.bytes_done,
			   plan.parent_path);
	cowchain_merge_plan_free(&plan);
	return 0;
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
	mf = finding(rep, CK_SB_MERGING);
	r = finish_merge(path, opts, mf, &gone, err);
	if (r || gone)
		return r;
	r = check_pass(path, opts, NULL, &again, err);
	if (combine(rep, &again, mf) && !r)
		r = fail(err, -ENOMEM, "cannot check '%s': out of memory", path);
	cowchain_check_report_free(&again);
	return r;
}

void cowchain_check_report_free(struct cowchain_check_report *rep)
{
	unsigned i;

	for (i = 0; i < rep->nlayers; i++)
		free(rep->layers[i]);
	free(rep->layers);
	free(rep->f);
	memset(rep, 0, sizeof(*rep));
}

int cowchain_check_status(const struct cowchain_check_report *rep)
{
	int st = 0;
	size_t i;

	for (i = 0; i < rep->n; i++) {
		if (cowchain_problems[rep->f[i].code].severity == COWCHAIN_SEV_INFO)
			continue;
		st |= rep->f[i].fixed ? 1 : 4;
	}
	return st;
}
