// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Merge tests: random trees of layers (random geometry, sometimes over a
 * raw base, sometimes growing children, writes, zeroes and discards in
 * every leaf), then a merge in either direction at a random layer.  The
 * virtual disk of every leaf, read before, must read the same after, and
 * every layer left must pass 'cowchain check' with its chain.
 *
 * Crash tests: the same merge in a forked process that dies (_exit, no
 * cleanup: the page cache keeps what was written, as after a kill) at its
 * Nth write (cc_io_hook: every pwrite, data copy, hole punch, unlink).  At
 * that instant every leaf that opens must read as before; then the merge
 * is run again, and everything must read as before and check clean (a
 * leaked cluster, harmless, allowed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#include <unistd.h>
#include "util.h"
#include "merge.h"
#include "check.h"
#include "merge_internal.h"

#define MAXL 24

struct tree {
	char *dir;
	u64 rng;
	int n;			/* layers made */
	int parent[MAXL];	/* -1: root */
	bool alive[MAXL];
	u64 size[MAXL];
	u8 *view[MAXL];		/* expected contents of each leaf */
	u32 cs, ss;
};

static const char *lname(const struct tree *t, int i, char *buf)
{
	(void)t;
	sprintf(buf, "l%d.cow", i);
	return buf;
}

static const char *lpath(const struct tree *t, int i)
{
	char b[32];

	return tu_path(t->dir, lname(t, i, b));
}

static bool has_kids(const struct tree *t, int i)
{
	for (int k = 0; k < t->n; k++)
		if (t->alive[k] && t->parent[k] == i)
			return true;
	return false;
}

static int nkids(const struct tree *t, int i)
{
	int c = 0;

	for (int k = 0; k < t->n; k++)
		c += t->alive[k] && t->parent[k] == i;
	return c;
}

static void scribble(struct tree *t, int i)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	int ops = (int)tu_rand_range(&t->rng, 1, 12), r;

	r = cowchain_chain_open(lpath(t, i), COWCHAIN_OPEN_WRITE, &c, &err);
	if (r)
		print_error("open %s: %s\n", lpath(t, i), err.msg);
	assert_int_equal(r, 0);
	while (ops--) {
		u64 size = t->size[i], cl = 1ull << t->cs;
		u64 off = tu_rand(&t->rng) % size, len = 1 + tu_rand(&t->rng) % (4 * cl);
		u64 k = tu_rand(&t->rng) % 10;

		if (tu_rand(&t->rng) & 1) {
			off &= ~((1ull << t->ss) - 1);
			len = (len + (1ull << t->ss) - 1) & ~((1ull << t->ss) - 1);
		}
		if (len > size - off)
			len = size - off;
		if (k < 6) {
			u8 *b = malloc(len);

			for (u64 j = 0; j < len; j++)
				b[j] = (u8)(tu_rand(&t->rng) | 1);
			r = cowchain_write(c, b, off, len, &err);
			free(b);
		} else if (k < 8) {
			r = cowchain_write_zeroes(c, off, len, &err);
		} else {
			r = cowchain_discard(c, off, len, &err);
		}
		assert_int_equal(r, 0);
	}
	assert_int_equal(cowchain_chain_close(c, &err), 0);
}

static void snapshot(struct tree *t, int p)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error err = { 0 };
	int i = t->n++, r;

	assert_true(i < MAXL);
	o.parent = lpath(t, p);
	t->size[i] = t->size[p];
	if (tu_rand(&t->rng) % 6 == 0)
		t->size[i] += ((tu_rand(&t->rng) % 3) << t->cs) + (tu_rand(&t->rng) % 9) * 512;
	o.size = t->size[i];
	r = cowchain_create(lpath(t, i), &o, &err);
	if (r)
		print_error("snapshot: %s\n", err.msg);
	assert_int_equal(r, 0);
	t->parent[i] = p;
	t->alive[i] = true;
}

static void make_tree(struct tree *t, u64 seed, int layers)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error err = { 0 };

	memset(t, 0, sizeof(*t));
	t->rng = seed * 0x9e3779b97f4a7c15ull + 7;
	t->dir = tu_mkdtemp();
	t->cs = (u32)tu_rand_range(&t->rng, 12, 16);
	t->ss = (u32)tu_rand_range(&t->rng, t->cs - 6 < 9 ? 9 : t->cs - 6, t->cs);
	o.size = (tu_rand_range(&t->rng, 1, 24) << t->cs) + (tu_rand(&t->rng) % 8) * 512;
	o.cluster_shift = t->cs;
	o.subblock_shift = t->ss;
	o.journal_blocks = tu_rand_range(&t->rng, 16, 64);
	if (tu_rand(&t->rng) % 3 == 0) {
		u64 rs = tu_rand_range(&t->rng, o.size / 2, o.size + 3000);
		u8 *raw = malloc(rs);

		for (u64 j = 0; j < rs; j++)
			raw[j] = (u8)tu_rand(&t->rng);
		{
			int fd = open(tu_path(t->dir, "base.raw"), O_CREAT | O_WRONLY, 0644);

			assert_true(fd >= 0);
			assert_int_equal(write(fd, raw, rs), (ssize_t)rs);
			close(fd);
		}
		free(raw);
		o.base = tu_path(t->dir, "base.raw");
	}
	assert_int_equal(cowchain_create(lpath(t, 0), &o, &err), 0);
	t->n = 1;
	t->parent[0] = -1;
	t->alive[0] = true;
	t->size[0] = o.size;
	scribble(t, 0);
	while (t->n < layers) {
		int p = (int)(tu_rand(&t->rng) % (u64)t->n);

		snapshot(t, p);
		/* Write into a few leaves. */
		for (int k = 0; k < t->n; k++)
			if (!has_kids(t, k) && tu_rand(&t->rng) % 2)
				scribble(t, k);
	}
}

static u8 *read_view(struct tree *t, int i, bool must_open)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	u8 *b;
	int r = cowchain_chain_open(lpath(t, i), 0, &c, &err);

	if (r && !must_open)
		return NULL;
	if (r)
		print_error("open leaf %s: %s\n", lpath(t, i), err.msg);
	assert_int_equal(r, 0);
	assert_int_equal(cowchain_chain_size(c), t->size[i]);
	b = malloc(t->size[i]);
	assert_int_equal(cowchain_read(c, b, 0, t->size[i], &err), 0);
	cowchain_chain_close(c, NULL);
	return b;
}

static void snap_views(struct tree *t)
{
	for (int i = 0; i < t->n; i++) {
		free(t->view[i]);
		t->view[i] = NULL;
		if (t->alive[i] && !has_kids(t, i))
			t->view[i] = read_view(t, i, true);
	}
}

/* Every leaf reads its expected view (those that open, unless must_open). */
static void compare_views(struct tree *t, bool must_open, const char *when)
{
	for (int i = 0; i < t->n; i++) {
		u8 *b;

		if (!t->alive[i] || has_kids(t, i))
			continue;
		assert_non_null(t->view[i]);
		b = read_view(t, i, must_open);
		if (!b)
			continue;
		if (memcmp(b, t->view[i], t->size[i])) {
			u64 k = 0;

			while (b[k] == t->view[i][k])
				k++;
			print_error("%s: leaf l%d differs at byte %llu\n", when, i, (unsigned long long)k);
			fail();
		}
		free(b);
	}
}

static void check_all(struct tree *t, bool allow_leaks)
{
	for (int i = 0; i < t->n; i++) {
		struct cowchain_check_opts o = { .chain = true };
		struct cowchain_check_report rep = { 0 };
		struct cowchain_error err = { 0 };

		if (!t->alive[i])
			continue;
		assert_int_equal(cowchain_check(lpath(t, i), &o, &rep, &err), 0);
		for (size_t k = 0; k < rep.n; k++) {
			if (allow_leaks && (rep.f[k].code == CK_LEAKED ||
					    rep.f[k].code == CK_JOURNAL_PENDING))
				continue;
			print_error("check l%d: %s: %s\n", i, cowchain_problems[rep.f[k].code].code,
				    rep.f[k].detail);
			fail();
		}
		cowchain_check_report_free(&rep);
	}
}

/* The model's view of what a merge does to the tree. */
static void apply(struct tree *t, enum cowchain_merge_dir dir, int c, int p)
{
	if (dir == COWCHAIN_DIR_PARENT) {
		for (int k = 0; k < t->n; k++)
			if (t->alive[k] && t->parent[k] == c)
				t->parent[k] = p;
		t->alive[c] = false;
		if (!has_kids(t, p)) {
			t->view[p] = t->view[c];
			t->view[c] = NULL;
		}
	} else {
		for (int k = 0; k < t->n; k++)
			if (t->alive[k] && t->parent[k] == p)
				t->parent[k] = t->parent[p];
		t->alive[p] = false;
	}
}

static void free_tree(struct tree *t)
{
	for (int i = 0; i < MAXL; i++)
		free(t->view[i]);
	tu_rmdir(t->dir);
}

/* A random merge request: the layer, options; the pair it concerns. */
struct req {
	int layer, c, p;
	struct cowchain_merge_opts o;
};

static bool pick(struct tree *t, struct req *q)
{
	int cand[MAXL], n = 0;

	memset(q, 0, sizeof(*q));
	q->o.batch_bytes = tu_rand_range(&t->rng, 1, 4) << t->cs;	/* many batches */
	for (int i = 0; i < t->n; i++)
		if (t->alive[i] && t->parent[i] >= 0)
			cand[n++] = i;
	if (!n)
		return false;
	q->c = cand[tu_rand(&t->rng) % (u64)n];
	q->p = t->parent[q->c];
	q->layer = q->c;
	switch (tu_rand(&t->rng) % 4) {
	case 0:
		q->o.direction = COWCHAIN_DIR_CHILDREN;
		q->layer = q->p;
		break;
	case 1:
		q->o.direction = COWCHAIN_DIR_CHILDREN;
		q->o.layer_is_child = true;
		break;
	case 2:
		if (nkids(t, q->p) == 1 && t->size[q->c] == t->size[q->p])
			q->o.direction = COWCHAIN_DIR_PARENT;
		break;
	default:
		break;
	}
	return true;
}

static enum cowchain_merge_dir run_merge(struct tree *t, const struct req *q)
{
	struct cowchain_merge_plan plan;
	struct cowchain_error err = { 0 };
	int r = cowchain_merge(lpath(t, q->layer), &q->o, &plan, &err);
	enum cowchain_merge_dir d = plan.direction;

	if (r)
		print_error("merge l%d: %s\n", q->layer, err.msg);
	assert_int_equal(r, 0);
	cowchain_merge_plan_free(&plan);
	return d;
}

static void merge_seed(u64 seed)
{
	struct tree t;
	struct req q;
	int rounds = 3;

	make_tree(&t, seed, (int)(3 + seed % 8));
	while (rounds-- && pick(&t, &q)) {
		enum cowchain_merge_dir d;

		snap_views(&t);
		d = run_merge(&t, &q);
		if (getenv("MERGE_DEBUG"))
			print_message("seed %llu: merge l%d (c l%d, p l%d, dir %d, child %d) -> %d; p kind %d\n",
				      (unsigned long long)seed, q.layer, q.c, q.p, q.o.direction,
				      q.o.layer_is_child, d, t.parent[q.p]);
		if (getenv("MERGE_DEBUG")) {
			for (int i = 0; i < t.n; i++)
				print_message("  l%d parent %d alive %d size %llu\n", i, t.parent[i], t.alive[i],
					      (unsigned long long)t.size[i]);
			print_message("  cs %u ss %u base %d\n", t.cs, t.ss, !access(tu_path(t.dir, "base.raw"), F_OK));
		}
		apply(&t, d, q.c, q.p);
		compare_views(&t, true, "after merge");
		check_all(&t, true);	/* discards leave leaks (harmless) */
	}
	free_tree(&t);
}

static void test_merge_random(void **state)
{
	(void)state;
	for (u64 s = 1; s <= 40; s++)
		merge_seed(s);
}

/* ---- crash and resume ---------------------------------------------------- */

static long io_left, io_count;

static sigjmp_buf crash_jb;
static bool in_fork;

/*
 * The crash: in a forked process, _exit; in this process, a jump out of
 * the library that abandons its memory and descriptors (closed by the
 * caller, releasing the flocks, as the kernel does for a killed process).
 */
static void die_at_n(void)
{
	if (--io_left == 0) {
		if (in_fork)
			_exit(99);
		siglongjmp(crash_jb, 1);
	}
}

/* Run the merge with a crash at write io_left: 99 crashed, 0 finished. */
static int merge_until_crash(struct tree *t, const struct req *q, bool use_fork)
{
	struct cowchain_error err = { 0 };
	static bool open_before[256];
	int status, r, fd;
	pid_t pid;

	if (use_fork) {
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (!pid) {
			in_fork = true;
			cc_io_hook = die_at_n;
			r = cowchain_merge(lpath(t, q->layer), &q->o, NULL, &err);
			_exit(r ? 1 : 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		return WEXITSTATUS(status);
	}
	for (fd = 3; fd < 256; fd++)
		open_before[fd] = fcntl(fd, F_GETFD) >= 0;
#ifdef __SANITIZE_ADDRESS__
	__lsan_disable();	/* what the "killed" merge leaves behind */
#endif
	if (!sigsetjmp(crash_jb, 0)) {
		cc_io_hook = die_at_n;
		r = cowchain_merge(lpath(t, q->layer), &q->o, NULL, &err);
		status = r ? 1 : 0;
	} else {
		status = 99;
	}
	cc_io_hook = NULL;
#ifdef __SANITIZE_ADDRESS__
	__lsan_enable();
#endif
	for (fd = 3; fd < 256; fd++)
		if (!open_before[fd] && fcntl(fd, F_GETFD) >= 0)
			close(fd);
	return status;
}

static void count_io(void)
{
	io_count++;
}

/* Make dst hold exactly the files of src (flat directories, sparse copies). */
static void copy_dir(const char *src, const char *dst)
{
	DIR *d;
	struct dirent *de;

	d = opendir(dst);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			unlink(tu_path(dst, de->d_name));
	closedir(d);
	d = opendir(src);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char from[4096], to[4096];
		int in, out;
		off_t pos = 0, end;

		if (de->d_name[0] == '.')
			continue;
		snprintf(from, sizeof(from), "%s/%s", src, de->d_name);
		snprintf(to, sizeof(to), "%s/%s", dst, de->d_name);
		in = open(from, O_RDONLY);
		out = open(to, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		assert_true(in >= 0 && out >= 0);
		end = lseek(in, 0, SEEK_END);
		assert_int_equal(ftruncate(out, end), 0);
		/* Only the data: holes stay holes. */
		while ((pos = lseek(in, pos, SEEK_DATA)) >= 0 && pos < end) {
			off_t hole = lseek(in, pos, SEEK_HOLE);
			loff_t a = pos, b = pos;

			while (a < hole) {
				ssize_t n = copy_file_range(in, &a, out, &b, (size_t)(hole - a), 0);

				assert_true(n > 0);
			}
			pos = hole;
		}
		close(in);
		close(out);
	}
	closedir(d);
}

static void crash_seed(u64 seed, int points)
{
	struct tree t;
	struct req q;
	char *pristine;
	long total;

	make_tree(&t, seed + 1000, (int)(3 + seed % 6));
	if (!pick(&t, &q)) {
		free_tree(&t);
		return;
	}
	snap_views(&t);
	pristine = tu_mkdtemp();
	copy_dir(t.dir, pristine);
	/* How many writes does the whole merge take? */
	io_count = 0;
	cc_io_hook = count_io;
	{
		enum cowchain_merge_dir d = run_merge(&t, &q);

		cc_io_hook = NULL;
		total = io_count;
		(void)d;
	}
	for (int k = 0; k < points; k++) {
		struct tree u = t;
		enum cowchain_merge_dir d = COWCHAIN_DIR_AUTO;
		struct cowchain_merge_plan plan;
		struct cowchain_error err = { 0 };
		int status, r;

		copy_dir(pristine, t.dir);
		memcpy(u.view, t.view, sizeof(u.view));
		io_left = 1 + (long)(tu_rand(&t.rng) % (u64)total);
		status = merge_until_crash(&t, &q, k % 6 == 0);
		if (status == 1)
			print_error("merge failed (crash at write %ld of %ld)\n", io_left, total);
		assert_true(status == 99 || status == 0);
		/* At the instant of the crash: every leaf that opens reads as before. */
		compare_views(&t, false, "at the crash");
		/* Resume: the same command, unless it had already finished. */
		if (status == 99 && !access(lpath(&t, q.layer), F_OK)) {
			r = cowchain_merge(lpath(&t, q.layer), &q.o, &plan, &err);
			if (r)
				print_error("resume after write %ld of %ld: %s\n", io_left, total, err.msg);
			assert_int_equal(r, 0);
			d = plan.direction;
			cowchain_merge_plan_free(&plan);
		}
		/* The direction taken: whichever file is gone. */
		if (d == COWCHAIN_DIR_AUTO)
			d = access(lpath(&t, q.c), F_OK) ? COWCHAIN_DIR_PARENT : COWCHAIN_DIR_CHILDREN;
		{
			u8 *saved[MAXL];
			bool alive[MAXL];
			int parent[MAXL];

			memcpy(saved, t.view, sizeof(saved));
			memcpy(alive, t.alive, sizeof(alive));
			memcpy(parent, t.parent, sizeof(parent));
			apply(&t, d, q.c, q.p);
			assert_true(access(lpath(&t, d == COWCHAIN_DIR_PARENT ? q.c : q.p), F_OK) != 0);
			compare_views(&t, true, "after resume");
			check_all(&t, true);
			memcpy(t.view, saved, sizeof(saved));
			memcpy(t.alive, alive, sizeof(alive));
			memcpy(t.parent, parent, sizeof(parent));
		}
		(void)u;
	}
	tu_rmdir(pristine);
	free_tree(&t);
}

static void test_merge_crash(void **state)
{
	(void)state;
	for (u64 s = 1; s <= 24; s++)
		crash_seed(s, 12);
}

/* ---- crash, then "cowchain check --repair" ------------------------------- */

/*
 * Every layer checks clean, but for the killed merge's harmless leftovers
 * in the layers it kept: committed journal transactions not yet
 * checkpointed (killed between a commit and its checkpoint, in a file the
 * finishing run did not open for writing), and clusters a killed batch
 * wrote but never committed (leaked).  Those must be all, and "check
 * --repair" on that layer must fix them.
 */
static void check_after_kill(struct tree *t)
{
	for (int i = 0; i < t->n; i++) {
		struct cowchain_check_opts o = { .chain = true };
		struct cowchain_check_report rep;
		struct cowchain_error err = { 0 };
		bool left = false;

		if (!t->alive[i])
			continue;
		assert_int_equal(cowchain_check(lpath(t, i), &o, &rep, &err), 0);
		for (size_t k = 0; k < rep.n; k++) {
			if (rep.f[k].layer == 0 && (rep.f[k].code == CK_JOURNAL_PENDING ||
						    rep.f[k].code == CK_LEAKED)) {
				left = true;
				continue;
			}
			print_error("check l%d: %s: %s\n", i, cowchain_problems[rep.f[k].code].code,
				    rep.f[k].detail);
			fail();
		}
		cowchain_check_report_free(&rep);
		if (!left)
			continue;
		if (getenv("MERGE_DEBUG"))
			print_message("  leftover in l%d\n", i);
		o.repair = true;
		assert_int_equal(cowchain_check(lpath(t, i), &o, &rep, &err), 0);
		assert_int_equal(cowchain_check_status(&rep), 1);
		cowchain_check_report_free(&rep);
	}
	check_all(t, false);
}

/* The layers left with MERGING set (paths into t's directory). */
static int merging_layers(struct tree *t, int *out)
{
	int n = 0;

	for (int i = 0; i < t->n; i++) {
		struct cowchain_sb sb;

		if (!access(lpath(t, i), F_OK) && !cc_peek_sb(lpath(t, i), &sb) &&
		    (sb.flags & COWCHAIN_SB_MERGING))
			out[n++] = i;
	}
	return n;
}

/* The whole file, for "not a byte changed". */
static u8 *file_bytes(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	off_t end;
	u8 *b;

	assert_true(fd >= 0);
	end = lseek(fd, 0, SEEK_END);
	assert_true(end > 0);
	b = malloc((size_t)end);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, (size_t)end, 0), end);
	close(fd);
	*len = (size_t)end;
	return b;
}

static const struct cowchain_finding *find_code(const struct cowchain_check_report *rep,
						enum cowchain_problem code)
{
	for (size_t k = 0; k < rep->n; k++)
		if (rep->f[k].layer == 0 && rep->f[k].code == code)
			return &rep->f[k];
	return NULL;
}

/*
 * A merge in a given direction killed at `points` writes spread over the
 * whole run; then, instead of re-running the merge, check on a layer left
 * MERGING (the source and the target in turn; a kill after the last mark
 * was cleared leaves none, only the debris below): without --repair it reports
 * SB_MERGING and exits 4 and changes nothing; with --repair it finishes the
 * merge (exit 1).  Then no layer is MERGING, every leaf reads as before,
 * and every layer left checks clean with its chain (the tree's leaks are
 * punched before the merge, so "clean" means no finding at all).
 */
static void check_repair_seed(u64 seed, enum cowchain_merge_dir dir, int points)
{
	struct tree t;
	struct req q = { 0 };
	char *pristine;
	long total;
	int c = -1;

	make_tree(&t, seed + 2000, (int)(3 + seed % 6));
	for (int i = 0; i < t.n && c < 0; i++) {
		int p = t.parent[i];

		if (!t.alive[i] || p < 0)
			continue;
		if (dir == COWCHAIN_DIR_PARENT && (nkids(&t, p) != 1 || t.size[i] != t.size[p]))
			continue;
		c = i;
	}
	if (c < 0) {
		free_tree(&t);
		return;
	}
	q.c = c;
	q.p = t.parent[c];
	q.layer = dir == COWCHAIN_DIR_PARENT ? q.c : q.p;
	q.o.direction = dir;
	q.o.batch_bytes = tu_rand_range(&t.rng, 1, 4) << t.cs;
	for (int i = 0; i < t.n; i++) {		/* punch the leaks the discards left */
		struct cowchain_check_opts o = { .repair = true };
		struct cowchain_check_report rep;
		struct cowchain_error err = { 0 };

		assert_int_equal(cowchain_check(lpath(&t, i), &o, &rep, &err), 0);
		cowchain_check_report_free(&rep);
	}
	check_all(&t, false);
	snap_views(&t);
	pristine = tu_mkdtemp();
	copy_dir(t.dir, pristine);
	io_count = 0;
	cc_io_hook = count_io;
	assert_int_equal(run_merge(&t, &q), dir);
	cc_io_hook = NULL;
	total = io_count;
	for (int k = 0; k < points; k++) {
		struct cowchain_check_opts o = { .chain = true };
		struct cowchain_check_report rep;
		struct cowchain_error err = { 0 };
		const struct cowchain_finding *f;
		int m[MAXL], nm, x, status;
		long at;
		size_t blen, alen;
		u8 *before, *after;

		copy_dir(pristine, t.dir);
		at = io_left = 1 + (long)((u64)total * (u64)(k + 1) / (u64)(points + 1));
		status = merge_until_crash(&t, &q, k % 4 == 0);
		assert_int_equal(status, 99);
		nm = merging_layers(&t, m);
		if (getenv("MERGE_DEBUG"))
			print_message("seed %llu dir %d: c l%d p l%d, crash at write %ld of %ld; %d merging, repair l%d\n",
				      (unsigned long long)seed, dir, q.c, q.p, at, total, nm, nm ? m[k % nm] : -1);
		if (nm) {
			x = m[k % nm];
			/* Without --repair: reported, exit 4, nothing written. */
			before = file_bytes(lpath(&t, x), &blen);
			o.repair = false;
			assert_int_equal(cowchain_check(lpath(&t, x), &o, &rep, &err), 0);
			f = find_code(&rep, CK_SB_MERGING);
			assert_non_null(f);
			assert_false(f->fixed);
			assert_int_equal(cowchain_check_status(&rep) & 4, 4);
			cowchain_check_report_free(&rep);
			after = file_bytes(lpath(&t, x), &alen);
			assert_true(alen == blen && !memcmp(before, after, blen));
			free(before);
			free(after);
			/* With --repair (the CLI's: finish_merge too): finished. */
			o.repair = true;
			o.finish_merge = true;
			if (cowchain_check(lpath(&t, x), &o, &rep, &err))
				print_error("check --repair l%d: %s\n", x, err.msg);
			f = find_code(&rep, CK_SB_MERGING);
			if (!f || !f->fixed || cowchain_check_status(&rep) != 1) {
				for (size_t j = 0; j < rep.n; j++)
					print_error("check --repair l%d (crash at write %ld of %ld): %s %s: %s\n",
						    x, at, total, cowchain_problems[rep.f[j].code].code,
						    rep.f[j].fixed ? "fixed" : "left", rep.f[j].detail);
				fail();
			}
			assert_non_null(strstr(f->detail, "finished: merged"));
			cowchain_check_report_free(&rep);
			assert_int_equal(merging_layers(&t, m), 0);
		}
		{
			u8 *saved[MAXL];
			bool alive[MAXL];
			int parent[MAXL];

			memcpy(saved, t.view, sizeof(saved));
			memcpy(alive, t.alive, sizeof(alive));
			memcpy(parent, t.parent, sizeof(parent));
			apply(&t, dir, q.c, q.p);
			assert_true(access(lpath(&t, dir == COWCHAIN_DIR_PARENT ? q.c : q.p), F_OK) != 0);
			compare_views(&t, true, "after check --repair");
			check_after_kill(&t);
			memcpy(t.view, saved, sizeof(saved));
			memcpy(t.alive, alive, sizeof(alive));
			memcpy(t.parent, parent, sizeof(parent));
		}
	}
	tu_rmdir(pristine);
	free_tree(&t);
}

static void test_merge_crash_check_repair(void **state)
{
	(void)state;
	for (u64 s = 1; s <= 10; s++) {
		check_repair_seed(s, COWCHAIN_DIR_PARENT, 6);
		check_repair_seed(s, COWCHAIN_DIR_CHILDREN, 6);
	}
}

/* ---- flatten and compact ------------------------------------------------ */

static void test_flatten_compact(void **state)
{
	(void)state;
	for (u64 seed = 1; seed <= 8; seed++) {
		struct tree t;

		make_tree(&t, seed + 500, (int)(2 + seed % 5));
		snap_views(&t);
		for (int i = 0; i < t.n; i++) {
			struct cowchain_flatten_opts fo = { 0 };
			struct cowchain_error err = { 0 };
			struct cowchain_chain *c;
			u64 bytes;
			u8 *b;

			if (!t.view[i])
				continue;
			/* As a root layer: reads the same, holds no more than the disk. */
			assert_int_equal(cowchain_flatten(lpath(&t, i), tu_path(t.dir, "flat.cow"), &fo,
							  &bytes, &err), 0);
			assert_true(bytes <= t.size[i]);
			assert_int_equal(cowchain_chain_open(tu_path(t.dir, "flat.cow"), 0, &c, &err), 0);
			assert_int_equal(cowchain_chain_depth(c), 1);
			b = malloc(t.size[i]);
			assert_int_equal(cowchain_read(c, b, 0, t.size[i], &err), 0);
			assert_memory_equal(b, t.view[i], t.size[i]);
			cowchain_chain_close(c, NULL);
			/* As a raw image. */
			fo.raw = true;
			assert_int_equal(cowchain_flatten(lpath(&t, i), tu_path(t.dir, "flat.cow"), &fo,
							  &bytes, &err), -EEXIST);
			fo.force = true;
			assert_int_equal(cowchain_flatten(lpath(&t, i), tu_path(t.dir, "flat.cow"), &fo,
							  &bytes, &err), 0);
			memset(b, 0xaa, t.size[i]);
			tu_read(tu_path(t.dir, "flat.cow"), 0, b, t.size[i]);
			assert_memory_equal(b, t.view[i], t.size[i]);
			free(b);
			/* Never over a layer of the chain. */
			assert_int_equal(cowchain_flatten(lpath(&t, i), lpath(&t, 0), &fo, &bytes, &err),
					 -EINVAL);
			unlink(tu_path(t.dir, "flat.cow"));
		}
		/* Compact every layer: nothing anyone reads changes. */
		for (int i = 0; i < t.n; i++) {
			struct cowchain_compact_result res;
			struct cowchain_error err = { 0 };

			assert_int_equal(cowchain_compact(lpath(&t, i), &res, &err), 0);
			assert_true(res.after <= res.before);
		}
		compare_views(&t, true, "after compact");
		check_all(&t, false);	/* nothing leaked any more */
		free_tree(&t);
	}
}

/* ---- refusals ------------------------------------------------------------ */

static void mark_into_children(struct cowchain_sb *sb, void *peer)
{
	sb->flags |= COWCHAIN_SB_MERGING;
	sb->merge_state = COWCHAIN_MERGE_INTO_CHILDREN;
	sb->merge_cursor = 0;
	memcpy(sb->merge_peer_uuid, peer, COWCHAIN_UUID_SIZE);
}

/*
 * An interrupted merge into the children whose children live in another
 * directory than the one searched now: resuming would delete the parent
 * they read through, so it is refused (merge, and check --repair, which
 * runs the same code) until --search names it; then it finishes.
 */
static void test_merge_resume_children_elsewhere(void **state)
{
	struct cowchain_create_opts co = { .size = 1 << 20 };
	struct cowchain_check_opts ko = { .repair = true, .finish_merge = true };
	struct cowchain_merge_opts o = { 0 };
	struct cowchain_check_report rep;
	struct cowchain_error err = { 0 };
	struct cowchain_sb ksb;
	char *d = tu_mkdtemp(), p[4096], k[4096], kd[4096];
	const char *search[1] = { kd };
	u8 buf[4096], back[4096];

	(void)state;
	snprintf(kd, sizeof(kd), "%s/kids", d);
	snprintf(p, sizeof(p), "%s/p.cow", d);
	snprintf(k, sizeof(k), "%s/kids/k.cow", d);
	assert_int_equal(mkdir(kd, 0755), 0);
	assert_int_equal(cowchain_create(p, &co, &err), 0);
	memset(buf, 0x5a, sizeof(buf));
	{
		struct cowchain_chain *c;

		assert_int_equal(cowchain_chain_open(p, COWCHAIN_OPEN_WRITE, &c, &err), 0);
		assert_int_equal(cowchain_write(c, buf, 8192, sizeof(buf), &err), 0);
		assert_int_equal(cowchain_chain_close(c, &err), 0);
	}
	co = (struct cowchain_create_opts){ .parent = p };
	assert_int_equal(cowchain_create(k, &co, &err), 0);
	tu_read_sb(k, &ksb);
	tu_rewrite_sb(p, mark_into_children, ksb.uuid);

	assert_int_equal(cowchain_merge(p, &o, NULL, &err), -ENOENT);
	tu_assert_msg(&err, "children may live elsewhere; add --search DIR");
	assert_int_equal(cowchain_check(p, &ko, &rep, &err), 0);
	assert_int_equal(cowchain_check_status(&rep), 4);
	assert_non_null(strstr(find_code(&rep, CK_SB_MERGING)->detail, "not finished"));
	cowchain_check_report_free(&rep);
	assert_int_equal(access(p, F_OK), 0);

	ko.search = search;
	ko.nsearch = 1;
	assert_int_equal(cowchain_check(p, &ko, &rep, &err), 0);
	assert_int_equal(cowchain_check_status(&rep), 1);
	cowchain_check_report_free(&rep);
	assert_true(access(p, F_OK) != 0);
	{
		struct cowchain_chain *c;

		assert_int_equal(cowchain_chain_open(k, 0, &c, &err), 0);
		assert_int_equal(cowchain_chain_depth(c), 1);
		assert_int_equal(cowchain_read(c, back, 8192, sizeof(back), &err), 0);
		cowchain_chain_close(c, NULL);
	}
	assert_memory_equal(back, buf, sizeof(buf));
	tu_rmdir(d);
}

static void test_merge_refusals(void **state)
{
	struct cowchain_merge_opts o = { 0 };
	struct cowchain_merge_plan plan;
	struct cowchain_error err = { 0 };
	struct cowchain_create_opts co = { .size = 1 << 20 };
	char *d = tu_mkdtemp();
	int r;

	(void)state;
	assert_int_equal(cowchain_create(tu_path(d, "a.cow"), &co, &err), 0);
	r = cowchain_merge_plan(tu_path(d, "a.cow"), &o, &plan, &err);
	assert_int_equal(r, -EINVAL);
	tu_assert_msg(&err, "is not a child");
	cowchain_merge_plan_free(&plan);
	o.direction = COWCHAIN_DIR_CHILDREN;
	r = cowchain_merge_plan(tu_path(d, "a.cow"), &o, &plan, &err);
	assert_int_equal(r, -ENOENT);
	tu_assert_msg(&err, "has no children");
	cowchain_merge_plan_free(&plan);

	co = (struct cowchain_create_opts){ .parent = tu_path(d, "a.cow") };
	assert_int_equal(cowchain_create(tu_path(d, "b.cow"), &co, &err), 0);
	assert_int_equal(cowchain_create(tu_path(d, "c.cow"), &co, &err), 0);
	o.direction = COWCHAIN_DIR_PARENT;
	r = cowchain_merge_plan(tu_path(d, "b.cow"), &o, &plan, &err);
	assert_int_equal(r, -EBUSY);
	tu_assert_msg(&err, "has other children");
	tu_assert_msg(&err, "c.cow");
	cowchain_merge_plan_free(&plan);
	/* Auto picks the children, and says why. */
	o.direction = COWCHAIN_DIR_AUTO;
	assert_int_equal(cowchain_merge_plan(tu_path(d, "b.cow"), &o, &plan, &err), 0);
	assert_int_equal(plan.direction, COWCHAIN_DIR_CHILDREN);
	assert_non_null(strstr(plan.why, "other children"));
	assert_int_equal(plan.nsearched, 1);
	cowchain_merge_plan_free(&plan);

	/* A layer in use by a writer (flock) is refused at the run. */
	{
		struct cowchain_layer *l;

		assert_int_equal(cowchain_layer_open(tu_path(d, "c.cow"), COWCHAIN_OPEN_WRITE, &l, &err), 0);
		o.direction = COWCHAIN_DIR_CHILDREN;
		o.layer_is_child = true;
		r = cowchain_merge(tu_path(d, "b.cow"), &o, NULL, &err);
		assert_int_equal(r, -EBUSY);
		tu_assert_msg(&err, "in use by another writer");
		cowchain_layer_close(l, NULL);
	}
	tu_rmdir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_refusals),
		cmocka_unit_test(test_merge_resume_children_elsewhere),
		cmocka_unit_test(test_merge_random),
		cmocka_unit_test(test_merge_crash),
		cmocka_unit_test(test_merge_crash_check_repair),
		cmocka_unit_test(test_flatten_compact),
	};

	/*
	 * Thousands of fdatasync calls: on tmpfs they cost nothing, and the
	 * crash model here is a killed process (the page cache survives).
	 */
	if (!getenv("TMPDIR") && !access("/dev/shm", W_OK))
		setenv("TMPDIR", "/dev/shm", 1);
	return cmocka_run_group_tests_name("merge", tests, NULL, NULL);
}
