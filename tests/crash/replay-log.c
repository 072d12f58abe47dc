// SPDX-License-Identifier: GPL-2.0-only
/*
 * replay-log: read a dm-log-writes log and replay it onto a device or file.
 *
 * Written from Documentation/admin-guide/device-mapper/log-writes.rst and
 * the on-disk layout dm-log-writes uses:
 *
 *   byte 0 of the log          struct log_write_super (sector 0)
 *   then, from byte sectorsize, one record per entry:
 *     one sectorsize block:    struct log_write_entry, then (MARK only)
 *                              data_len bytes of the mark's name
 *     nr_sectors blocks:       the written data (not for DISCARD, not for
 *                              an empty FLUSH)
 *
 * All fields little-endian; sector and nr_sectors count sectorsize units of
 * the logged device.  Writes are logged in completion order, and a write
 * appears in the log only once a later flush (or its own FUA) covered it,
 * so replaying entries 0..N-1 gives a state the device could have been in
 * after a power cut.
 *
 *   replay-log --log LOG --list
 *       one line per entry: index, flags, sector, nr_sectors, mark name
 *   replay-log --log LOG --target DEV [--points FILE] [--exec CMD]
 *              [--discard zero|skip] [--limit N]
 *       replay every entry (or the first N) onto DEV in one pass.  FILE
 *       holds entry counts, one a line, ascending: at each count P (P
 *       entries replayed, P = 0 before the first), the target is fsynced
 *       and CMD is run by /bin/sh with CC_POINT=P, CC_MARK=<name of the
 *       last mark replayed, empty if none>, CC_FLAGS=<flags of entry P-1>.
 *       CMD's failures are counted and reported; replay continues.
 *
 * Exit: 0 ok (and every CMD succeeded), 1 a CMD failed, 2 bad log or I/O
 * error, 3 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#define WRITE_LOG_MAGIC		0x6a736677736872ULL
#define WRITE_LOG_VERSION	1ULL
#define LOG_FLUSH_FLAG		(1ULL << 0)
#define LOG_FUA_FLAG		(1ULL << 1)
#define LOG_DISCARD_FLAG	(1ULL << 2)
#define LOG_MARK_FLAG		(1ULL << 3)
#define LOG_METADATA_FLAG	(1ULL << 4)
#define LOG_KNOWN_FLAGS		0x1fULL

struct log_write_super {	/* on disk, little-endian */
	uint64_t magic;
	uint64_t version;
	uint64_t nr_entries;
	uint32_t sectorsize;
} __attribute__((packed));

struct log_write_entry {	/* on disk, little-endian */
	uint64_t sector;
	uint64_t nr_sectors;
	uint64_t flags;
	uint64_t data_len;
} __attribute__((packed));

static int logfd = -1, tgtfd = -1;
static uint32_t ssize;
static uint64_t nr_entries, log_bytes, tgt_bytes;
static char *buf;
static size_t bufsz;

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "replay-log: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static uint64_t dev_bytes(int fd)
{
	struct stat st;
	uint64_t n;

	if (fstat(fd, &st))
		return 0;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, &n) ? 0 : n;
	return st.st_size;
}

static void pread_all(void *p, size_t len, uint64_t off)
{
	ssize_t r;

	if (off + len > log_bytes)
		die("log entry runs past the end of the log (%s)", "truncated log?");
	while (len) {
		r = pread(logfd, p, len, off);
		if (r <= 0)
			die("reading the log: %s", r ? strerror(errno) : "short read");
		p = (char *)p + r;
		len -= r;
		off += r;
	}
}

static void pwrite_all(const void *p, size_t len, uint64_t off)
{
	ssize_t r;

	while (len) {
		r = pwrite(tgtfd, p, len, off);
		if (r <= 0)
			die("writing the target: %s", r ? strerror(errno) : "short write");
		p = (const char *)p + r;
		len -= r;
		off += r;
	}
}

static void read_super(void)
{
	struct log_write_super s;

	log_bytes = dev_bytes(logfd);
	pread_all(&s, sizeof(s), 0);
	if (le64toh(s.magic) != WRITE_LOG_MAGIC)
		die("%s", "not a dm-log-writes log (bad magic)");
	if (le64toh(s.version) != WRITE_LOG_VERSION)
		die("%s", "unsupported log version");
	ssize = le32toh(s.sectorsize);
	if (ssize < 512 || ssize > 65536 || (ssize & (ssize - 1)))
		die("%s", "bad sectorsize in the log super block");
	nr_entries = le64toh(s.nr_entries);
}

static char *flag_str(uint64_t f)
{
	static char s[64];

	s[0] = 0;
	if (f & LOG_FLUSH_FLAG) strcat(s, "FLUSH|");
	if (f & LOG_FUA_FLAG) strcat(s, "FUA|");
	if (f & LOG_DISCARD_FLAG) strcat(s, "DISCARD|");
	if (f & LOG_MARK_FLAG) strcat(s, "MARK|");
	if (f & LOG_METADATA_FLAG) strcat(s, "METADATA|");
	if (!s[0])
		strcpy(s, "WRITE|");
	s[strlen(s) - 1] = 0;
	return s;
}

/* Read entry at log offset *off; advance *off past it.  name gets a mark. */
static void read_entry(uint64_t idx, uint64_t *off, struct log_write_entry *e,
		       char *name, size_t namesz)
{
	char hdr[65536];
	uint64_t dl;

	pread_all(hdr, ssize, *off);
	memcpy(e, hdr, sizeof(*e));
	e->sector = le64toh(e->sector);
	e->nr_sectors = le64toh(e->nr_sectors);
	e->flags = le64toh(e->flags);
	e->data_len = le64toh(e->data_len);
	name[0] = 0;
	if (e->flags & ~LOG_KNOWN_FLAGS) {
		fprintf(stderr, "replay-log: entry %" PRIu64 ": unknown flags %#" PRIx64 "\n",
			idx, e->flags);
		exit(2);
	}
	if (e->flags & LOG_MARK_FLAG) {
		dl = e->data_len;
		if (dl > ssize - sizeof(*e) || dl >= namesz)
			die("%s", "mark name longer than its block");
		memcpy(name, hdr + sizeof(*e), dl);
		name[dl] = 0;
	}
	*off += ssize;
	if (!(e->flags & LOG_DISCARD_FLAG))
		*off += e->nr_sectors * ssize;
}

static void replay_entry(const struct log_write_entry *e, uint64_t data_off, int zero_discards)
{
	uint64_t len = e->nr_sectors * ssize, dst = e->sector * ssize, done = 0, n;

	if (!e->nr_sectors)
		return;
	if (tgt_bytes && dst + len > tgt_bytes) {
		fprintf(stderr, "replay-log: entry writes [%" PRIu64 ", +%" PRIu64
			") past the target's end %" PRIu64 "\n", dst, len, tgt_bytes);
		exit(2);
	}
	if (e->flags & LOG_DISCARD_FLAG) {
		if (!zero_discards)
			return;
		memset(buf, 0, bufsz);
		for (; done < len; done += n) {
			n = len - done < bufsz ? len - done : bufsz;
			pwrite_all(buf, n, dst + done);
		}
		return;
	}
	for (; done < len; done += n) {
		n = len - done < bufsz ? len - done : bufsz;
		pread_all(buf, n, data_off + done);
		pwrite_all(buf, n, dst + done);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: replay-log --log LOG --list\n"
		"       replay-log --log LOG --target DEV [--points FILE] [--exec CMD]"
		" [--discard zero|skip] [--limit N]\n");
	exit(3);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", 1, 0, 'l' }, { "list", 0, 0, 'L' }, { "target", 1, 0, 't' },
		{ "points", 1, 0, 'p' }, { "exec", 1, 0, 'e' }, { "discard", 1, 0, 'd' },
		{ "limit", 1, 0, 'n' }, { 0, 0, 0, 0 },
	};
	const char *logp = NULL, *tgt = NULL, *pointsp = NULL, *cmd = NULL;
	int list = 0, zero_discards = 1, c;
	uint64_t limit = UINT64_MAX, off, i, npoints = 0, pi = 0, *points = NULL;
	uint64_t nflush = 0, nfua = 0, ndisc = 0, nmark = 0, nwrite = 0, bytes = 0;
	uint64_t ran = 0, failed = 0;
	struct log_write_entry e;
	char name[4096], last_mark[4096] = "";
	FILE *pf;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': logp = optarg; break;
		case 'L': list = 1; break;
		case 't': tgt = optarg; break;
		case 'p': pointsp = optarg; break;
		case 'e': cmd = optarg; break;
		case 'd':
			if (!strcmp(optarg, "zero")) zero_discards = 1;
			else if (!strcmp(optarg, "skip")) zero_discards = 0;
			else usage();
			break;
		case 'n': limit = strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (!logp || optind != argc || list == !!tgt)
		usage();
	logfd = open(logp, O_RDONLY);
	if (logfd < 0)
		die("cannot open the log: %s", strerror(errno));
	read_super();
	bufsz = 1 << 20;
	buf = malloc(bufsz);
	if (!buf)
		die("%s", "out of memory");
	if (tgt) {
		tgtfd = open(tgt, O_RDWR);
		if (tgtfd < 0)
			die("cannot open the target: %s", strerror(errno));
		tgt_bytes = dev_bytes(tgtfd);
	}
	if (pointsp) {
		pf = fopen(pointsp, "r");
		if (!pf)
			die("cannot open the points file: %s", strerror(errno));
		points = calloc(nr_entries + 2, sizeof(*points));
		while (npoints < nr_entries + 1 && fscanf(pf, "%" SCNu64, &points[npoints]) == 1) {
			if (points[npoints] > nr_entries ||
			    (npoints && points[npoints] <= points[npoints - 1]))
				die("%s", "points must ascend and lie in 0..nr_entries");
			npoints++;
		}
		fclose(pf);
	}
	if (limit > nr_entries)
		limit = nr_entries;
	if (list)
		printf("# sectorsize %u entries %" PRIu64 "\n", ssize, nr_entries);

	off = ssize;
	for (i = 0; i <= limit; i++) {
		while (tgt && pi < npoints && points[pi] == i) {
			char env[64];

			if (fsync(tgtfd))
				die("fsync of the target: %s", strerror(errno));
			snprintf(env, sizeof(env), "%" PRIu64, i);
			setenv("CC_POINT", env, 1);
			setenv("CC_MARK", last_mark, 1);
			snprintf(env, sizeof(env), "%s", i ? flag_str(e.flags) : "");
			setenv("CC_FLAGS", env, 1);
			ran++;
			if (cmd && system(cmd) != 0) {
				failed++;
				fprintf(stderr, "replay-log: check failed at point %" PRIu64
					" (last mark '%s')\n", i, last_mark);
			}
			pi++;
		}
		if (i == limit)
			break;
		uint64_t start = off;

		read_entry(i, &off, &e, name, sizeof(name));
		if (e.flags & LOG_FLUSH_FLAG) nflush++;
		if (e.flags & LOG_FUA_FLAG) nfua++;
		if (e.flags & LOG_DISCARD_FLAG) ndisc++;
		if (e.flags & LOG_MARK_FLAG) nmark++;
		if (!(e.flags & (LOG_DISCARD_FLAG | LOG_MARK_FLAG)) && e.nr_sectors) {
			nwrite++;
			bytes += e.nr_sectors * ssize;
		}
		if (list)
			printf("%" PRIu64 " %s %" PRIu64 " %" PRIu64 "%s%s\n", i, flag_str(e.flags),
			       e.sector, e.nr_sectors, name[0] ? " " : "", name);
		if (e.flags & LOG_MARK_FLAG)
			snprintf(last_mark, sizeof(last_mark), "%s", name);
		else if (tgt)
			replay_entry(&e, start + ssize, zero_discards);
	}
	fprintf(stderr, "replay-log: %" PRIu64 " entries (%" PRIu64 " writes, %" PRIu64
		" bytes; %" PRIu64 " flush, %" PRIu64 " fua, %" PRIu64 " discard, %" PRIu64
		" mark)%s", limit, nwrite, bytes, nflush, nfua, ndisc, nmark, tgt ? "" : "\n");
	if (tgt)
		fprintf(stderr, "; %" PRIu64 " points checked, %" PRIu64 " failed\n", ran, failed);
	if (tgt && fsync(tgtfd))
		die("fsync of the target: %s", strerror(errno));
	return failed ? 1 : 0;
}
