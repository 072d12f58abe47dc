// SPDX-License-Identifier: GPL-2.0-only
/*
 * torn: every metadata write of the library, torn at every 512-byte
 * boundary, followed by a power cut.
 *
 *   torn DIR COWCHAIN_TOOL [--rounds R] [--stride N]
 *
 * Built against userspace/libcowchain.a with -Wl,--wrap=pwrite, so every
 * pwrite() the library issues passes through __wrap_pwrite below.  A write
 * is a *metadata write* when it is 4 KiB aligned and its first block starts
 * with a cowchain magic: superblock writes, journal transactions (one
 * pwrite of descriptor + images) and checkpoint home writes.
 *
 * The workload (a child of a root holding data, a 64 KiB journal so that
 * checkpoints and superblock writes happen often): R rounds of writes
 * (first writes, overwrites, partial sub-blocks), write-zeroes and a
 * discard, each round ending with cowchain_flush(); then close.  A reference
 * run records the disk after every flush (the library reading its own
 * chain) and counts the metadata writes.
 *
 * Then for metadata write n (every n, or every Nth with --stride) and every
 * 512-byte boundary t inside it, in a child process on a fresh copy:
 * write only bytes [0, t) (a prefix tear) or only [t, len) (a suffix tear)
 * of that write and _exit() there: the power cut.  The parent then checks:
 *  - the chain opens read-only;
 *  - every 512-byte sector reads as after the last flush the child saw
 *    complete, or as after the next one (nothing acknowledged is lost);
 *  - "cowchain check" finds no corruption, except a damaged superblock slot
 *    when the torn write was a superblock write (FORMAT.md 4: the other
 *    slot holds the previous one), which is counted;
 *  - a writable open (journal replay, checkpoint) succeeds, and check then
 *    finds no corruption but that one.
 * Prints the counts; exit 1 on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cowchain.h"

#define VSIZE	(4u << 20)
#define SECT	512

ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);

static long meta_writes;		/* metadata writes seen */
static long tear_at = -1;		/* tear this one (1-based) */
static size_t tear_off;			/* at this byte */
static int tear_suffix;
static size_t sizes[100000];		/* reference run: length of each write */
static int is_sb[100000];

static int is_meta(const void *buf, size_t n, off_t off)
{
	static const char *const m[] = { "CCSB", "CCRT", "CCMP", "CCLF", "CCJD" };
	int i;

	if (n < 4096 || n % 4096 || off % 4096)
		return 0;
	for (i = 0; i < 5; i++)
		if (!memcmp(buf, m[i], 4))
			return 1;
	return 0;
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (!is_meta(buf, n, off))
		return __real_pwrite(fd, buf, n, off);
	meta_writes++;
	if (meta_writes < (long)(sizeof(sizes) / sizeof(sizes[0]))) {
		sizes[meta_writes] = n;
		is_sb[meta_writes] = !memcmp(buf, "CCSB", 4);
	}
	if (meta_writes == tear_at) {
		if (tear_suffix)
			__real_pwrite(fd, (const char *)buf + tear_off, n - tear_off, off + tear_off);
		else if (tear_off)
			__real_pwrite(fd, buf, tear_off, off);
		fsync(fd);
		_exit(0);	/* the power cut */
	}
	return __real_pwrite(fd, buf, n, off);
}

static int rounds = 6;
static unsigned char *state[64];	/* disk after flush k; [0] before */

static void die(const char *what, const struct cowchain_error *e)
{
	fprintf(stderr, "torn: %s: %s\n", what, e ? e->msg : strerror(errno));
	exit(2);
}

static void copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t r;

	if (a < 0 || b < 0)
		die(from, NULL);
	while ((r = read(a, buf, sizeof(buf))) > 0)
		if (write(b, buf, r) != r)
			die(to, NULL);
	close(a);
	close(b);
}

/* The workload; ack(k) after flush k completed.  ref: record states. */
static void workload(const char *top, int ackfd, int ref)
{
	struct cowchain_chain *c;
	struct cowchain_error e;
	unsigned char buf[200000];
	int r, i;

	if (cowchain_chain_open(top, COWCHAIN_OPEN_WRITE, &c, &e))
		die("open for the workload", &e);
	for (r = 1; r <= rounds; r++) {
		for (i = 0; i < 6; i++) {
			uint64_t off = ((uint64_t)(r * 7 + i * 13) % 60) * 65536 + (i % 3) * 4096;
			uint64_t len = i == 2 ? 1536 : i == 4 ? 70000 : 8192 * (1 + i % 3);

			if (i == 2)
				off += 512 * (r % 7);	/* part of a sub-block: copy-up */
			memset(buf, r * 16 + i, len);
			if (cowchain_write(c, buf, off, len, &e))
				die("write", &e);
		}
		/*
		 * No sector twice in a round (an unflushed overwrite of data the
		 * top already holds is in place, so a sector written twice may
		 * show the middle value after a cut): the writes use clusters
		 * 0..60, zeroes 61..62, the discard 63.
		 */
		if (cowchain_write_zeroes(c, (61 + r % 2) * 65536ull + 4096, 20480, &e))
			die("write-zeroes", &e);
		if (cowchain_discard(c, 63 * 65536ull, 65536, &e))
			die("discard", &e);
		if (cowchain_flush(c, &e))
			die("flush", &e);
		if (ackfd >= 0 && write(ackfd, &r, sizeof(r)) != sizeof(r))
			die("ack", NULL);
		if (ref) {
			state[r] = malloc(VSIZE);
			if (cowchain_read(c, state[r], 0, VSIZE, &e))
				die("read", &e);
		}
	}
	if (cowchain_chain_close(c, &e))
		die("close", &e);
}

/* corruption findings other than SB_SLOT_INVALID; *sbslot gets those */
static int check_cli(const char *tool, const char *top, int *sbslot)
{
	char cmd[8192], line[4096];
	FILE *p;
	int n = 0;

	*sbslot = 0;
	snprintf(cmd, sizeof(cmd), "'%s' check --json '%s' 2>&1", tool, top);
	p = popen(cmd, "r");
	while (p && fgets(line, sizeof(line), p))
		if (strstr(line, "\"code\":")) {
			if (strstr(line, "SB_SLOT_INVALID"))
				(*sbslot)++;
			else if (!strstr(line, "LEAKED") && !strstr(line, "JOURNAL_PENDING") &&
				 !strstr(line, "JOURNAL_TORN") && !strstr(line, "SB_SLOT_STALE"))
				n++, fprintf(stderr, "torn:   check: %s", line);
		}
	if (!p || pclose(p) == -1)
		return -1;
	return n;
}

int main(int argc, char **argv)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error e;
	struct cowchain_chain *c;
	char base[4096], top[4096], ptop[4096], wtop[4096], wbase[4096];
	long total, n, stride = 1, trials = 0, failed = 0, sbtorn = 0, newer = 0;
	unsigned char *disk = malloc(VSIZE), buf[65536];
	const char *dir, *tool;
	int i;

	if (argc < 3)
		goto usage;
	dir = argv[1];
	tool = argv[2];
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--stride") && i + 1 < argc)
			stride = atol(argv[++i]);
		else
			goto usage;
	}
	if (rounds < 1 || rounds > 60 || stride < 1)
		goto usage;
	snprintf(base, sizeof(base), "%s/p/base.cow", dir);
	snprintf(ptop, sizeof(ptop), "%s/p/top.cow", dir);
	snprintf(wbase, sizeof(wbase), "%s/w/base.cow", dir);
	snprintf(wtop, sizeof(wtop), "%s/w/top.cow", dir);
	snprintf(top, sizeof(top), "%s/r/top.cow", dir);
	for (i = 0; i < 3; i++) {
		snprintf((char *)buf, sizeof(buf), "%s/%s", dir, i == 0 ? "p" : i == 1 ? "w" : "r");
		mkdir((char *)buf, 0755);
	}
	/* the chain: a root with data, an empty child with a small journal */
	o.size = VSIZE;
	o.force = true;
	if (cowchain_create(base, &o, &e))
		die("create base", &e);
	if (cowchain_chain_open(base, COWCHAIN_OPEN_WRITE, &c, &e))
		die("open base", &e);
	memset(buf, 0x5a, sizeof(buf));
	for (i = 0; i < 64; i += 3)
		if (cowchain_write(c, buf, (uint64_t)i * 65536, 65536, &e))
			die("write base", &e);
	if (cowchain_chain_close(c, &e))
		die("close base", &e);
	memset(&o, 0, sizeof(o));
	o.parent = base;
	o.journal_blocks = 16;
	o.force = true;
	if (cowchain_create(ptop, &o, &e))
		die("create top", &e);
	copy_file(base, wbase);
	snprintf((char *)buf, sizeof(buf), "%s/r/base.cow", dir);
	copy_file(base, (char *)buf);

	/* reference run */
	state[0] = malloc(VSIZE);
	copy_file(ptop, top);
	if (cowchain_chain_open(top, 0, &c, &e) || cowchain_read(c, state[0], 0, VSIZE, &e) ||
	    cowchain_chain_close(c, &e))
		die("read the initial disk", &e);
	meta_writes = 0;
	workload(top, -1, 1);
	state[rounds + 1] = state[rounds];
	total = meta_writes;
	printf("torn: reference run: %d rounds, %ld metadata writes (blocks:", rounds, total);
	for (n = 1; n <= total; n++)
		printf(" %s%zu", is_sb[n] ? "sb" : "", sizes[n] / 4096);
	printf(")\n");

	for (n = 1; n <= total; n += stride) {
		int ns = sizes[n] / SECT, t, suffix;

		for (t = 0; t < ns; t++) {
			for (suffix = 0; suffix < 2; suffix++) {
				int pfd[2], ack = 0, k, sbslot, bad = 0, st;
				uint64_t s;
				pid_t pid;

				if (suffix && t == 0)
					continue;	/* same as a whole write then the cut */
				copy_file(ptop, wtop);
				if (pipe(pfd))
					die("pipe", NULL);
				pid = fork();
				if (pid == 0) {
					close(pfd[0]);
					meta_writes = 0;
					tear_at = n;
					tear_off = (size_t)t * SECT;
					tear_suffix = suffix;
					workload(wtop, pfd[1], 0);
					_exit(3);	/* never torn: n too large */
				}
				close(pfd[1]);
				while (read(pfd[0], &k, sizeof(k)) == sizeof(k))
					ack = k;
				close(pfd[0]);
				waitpid(pid, &st, 0);
				trials++;
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
					fprintf(stderr, "torn: write %ld: the workload child exited %d\n",
						n, st);
					failed++;
					continue;
				}
				/* read-only open and the data */
				if (cowchain_chain_open(wtop, 0, &c, &e)) {
					fprintf(stderr, "torn: write %ld %s tear at %d: open: %s\n", n,
						suffix ? "suffix" : "prefix", t * SECT, e.msg);
					failed++;
					continue;
				}
				if (cowchain_read(c, disk, 0, VSIZE, &e))
					bad = 1, fprintf(stderr, "torn: read: %s\n", e.msg);
				cowchain_chain_close(c, &e);
				for (s = 0; !bad && s < VSIZE / SECT; s++) {
					if (!memcmp(disk + s * SECT, state[ack] + s * SECT, SECT))
						continue;
					if (!memcmp(disk + s * SECT, state[ack + 1] + s * SECT, SECT)) {
						newer++;
						continue;
					}
					fprintf(stderr, "torn: write %ld %s tear at %d (flush %d acked):"
						" sector %" PRIu64 " holds neither state\n", n,
						suffix ? "suffix" : "prefix", t * SECT, ack, s);
					bad = 1;
				}
				k = check_cli(tool, wtop, &sbslot);
				if (k) {
					fprintf(stderr, "torn: write %ld (%s) %s tear at %d: check finds"
						" corruption\n", n, is_sb[n] ? "superblock" : "journal/home",
						suffix ? "suffix" : "prefix", t * SECT);
					bad = 1;
				}
				if (sbslot && !is_sb[n]) {
					fprintf(stderr, "torn: write %ld: a superblock slot is damaged"
						" though no superblock write was torn\n", n);
					bad = 1;
				}
				sbtorn += sbslot > 0;
				/* writable open: replay + checkpoint */
				if (cowchain_chain_open(wtop, COWCHAIN_OPEN_WRITE, &c, &e) ||
				    cowchain_chain_close(c, &e)) {
					fprintf(stderr, "torn: write %ld %s tear at %d: writable open: %s\n",
						n, suffix ? "suffix" : "prefix", t * SECT, e.msg);
					bad = 1;
				} else if (check_cli(tool, wtop, &sbslot)) {
					fprintf(stderr, "torn: write %ld: check after recovery finds"
						" corruption\n", n);
					bad = 1;
				}
				failed += bad;
			}
		}
	}
	printf("torn: %ld torn writes (metadata writes 1..%ld, stride %ld, every 512-byte"
	       " boundary, prefix and suffix): %ld failed; %ld with a damaged superblock"
	       " slot (torn superblock writes, the other slot used); %ld sectors read"
	       " the newer state\n", trials, total, stride, failed, sbtorn, newer);
	free(disk);
	for (i = 0; i <= rounds; i++)
		free(state[i]);
	return failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: torn DIR COWCHAIN_TOOL [--rounds R] [--stride N]\n");
	return 3;
}
