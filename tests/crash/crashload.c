// SPDX-License-Identifier: GPL-2.0-only
/*
 * crashload: a block workload whose every durable state is known, and the
 * checker that compares a recovered device with those states.
 *
 *   crashload run --dev DEV --snap DIR [--seed S] [--rounds R] [--ops N]
 *                 [--threads T] [--mark-cmd CMD] [--slot BYTES] [--no-live-check]
 *                 [--errors-ok]
 *
 * keeps an in-memory model of DEV (read at start) and runs R rounds.  A
 * round runs N operations on T threads at once: aligned writes (first
 * writes and overwrites), 512-byte-aligned partial writes (copy-up),
 * O_DSYNC writes (REQ_FUA), write-zeroes (BLKZEROOUT) and discards
 * (BLKDISCARD, sub-block aligned so they read back as zeros), a write
 * across two slots now and then, and fdatasync() calls in the middle of the
 * round.  Within one round no sector is touched twice (each operation owns
 * its slots), so after a power cut every sector holds its content from
 * the round's start or from its end.  A round ends with fsync(), a check
 * that DEV equals the model (not with --no-live-check: a device that
 * drops writes on purpose), "CMD rK" (the driver puts a dm-log-writes mark
 * there) and DIR/rK: one 64-bit hash per 512-byte sector of the model.
 * DIR/r0 is the state before the first round.
 *
 * --errors-ok (for fault injection that fails I/O, t-rel-nomem): a failed
 * write, discard, write-zeroes or sync is counted instead of ending the
 * run.  The sectors of a failed operation may then hold their content
 * from the round's start or the new one, per sector: the live check at
 * the round's end accepts either and takes what the device holds into
 * the model (so DIR/rK is what the device held); any other difference
 * still fails.  The summary line counts the errors.
 *
 *   crashload verify --dev DEV --snap DIR --mark NAME [--upto M]
 *
 * NAME is the last mark a replay reached ("rK"; empty: none yet, taken as
 * r0; "dm-log-writes-end": the last round).  Every sector of DEV must equal
 * DIR/rK (everything a completed flush covered) or DIR/r(K+1) (the writes
 * in flight after it), or with --upto M any of DIR/r(K+2)..rM.  Prints the
 * counts; exit 1 on any other content.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#define SECT 512

enum op_kind { OP_WRITE, OP_PARTIAL, OP_FUA, OP_ZERO, OP_DISCARD, OP_SPAN, OP_KINDS };
static const char *const op_name[] = { "write", "partial", "fua", "zeroes", "discard", "span" };

struct op {
	enum op_kind kind;
	uint64_t off, len;
	uint64_t seed;
	int sync_after;
};

static int fd = -1, fd_sync = -1, live_check = 1, errors_ok;
static uint64_t dev_size;
static unsigned char *model;
static unsigned char *unsure;	/* per sector: a failed operation wrote it */
static unsigned long io_errors, round_errors;
static struct op *ops;
static int nops, nthreads = 4;
static unsigned long done[OP_KINDS], unsupported[OP_KINDS], midsyncs;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what)
{
	fprintf(stderr, "crashload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void fill(unsigned char *p, uint64_t len, uint64_t seed)
{
	uint64_t x = seed | 1, i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static uint64_t hash_sector(const unsigned char *p)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	int i;

	for (i = 0; i < SECT; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void *xalloc(size_t n)
{
	void *p;

	if (posix_memalign(&p, 4096, n))
		die("memory");
	return p;
}

static void read_dev(unsigned char *dst)
{
	uint64_t off;
	ssize_t r;

	for (off = 0; off < dev_size; off += r) {
		uint64_t n = dev_size - off < (1 << 20) ? dev_size - off : (1 << 20);

		r = pread(fd, dst + off, n, off);
		if (r <= 0) {
			fprintf(stderr, "crashload: read at %" PRIu64 " failed: %s\n", off,
				r ? strerror(errno) : "short");
			exit(1);
		}
	}
}

/* --errors-ok: count a failed operation on [off, off + len); false without it */
static int allow_error(uint64_t off, uint64_t len)
{
	if (!errors_ok)
		return 0;
	pthread_mutex_lock(&count_lock);
	io_errors++;
	round_errors++;
	if (len)
		memset(unsure + off / SECT, 1, (len + SECT - 1) / SECT);
	pthread_mutex_unlock(&count_lock);
	return 1;
}

static void pwrite_full(int f, const void *p, uint64_t len, uint64_t off)
{
	ssize_t r = pwrite(f, p, len, off);

	if (r != (ssize_t)len && allow_error(off, len))
		return;
	if (r != (ssize_t)len) {
		fprintf(stderr, "crashload: write of %" PRIu64 " at %" PRIu64 " failed: %s\n",
			len, off, r < 0 ? strerror(errno) : "short");
		exit(1);
	}
}

static void do_op(struct op *o)
{
	uint64_t range[2] = { o->off, o->len };
	unsigned char *b;

	switch (o->kind) {
	case OP_WRITE:
	case OP_PARTIAL:
	case OP_SPAN:
	case OP_FUA:
		b = xalloc(o->len);
		fill(b, o->len, o->seed);
		pwrite_full(o->kind == OP_FUA ? fd_sync : fd, b, o->len, o->off);
		memcpy(model + o->off, b, o->len);
		free(b);
		break;
	case OP_ZERO:
	case OP_DISCARD:
		if (ioctl(fd, o->kind == OP_ZERO ? BLKZEROOUT : BLKDISCARD, range)) {
			if (errno == EOPNOTSUPP) {
				pthread_mutex_lock(&count_lock);
				unsupported[o->kind]++;
				pthread_mutex_unlock(&count_lock);
				return;
			}
			if (allow_error(o->off, o->len))
				goto zeroed;
			fprintf(stderr, "crashload: %s [%" PRIu64 ", +%" PRIu64 ") failed: %s\n",
				op_name[o->kind], o->off, o->len, strerror(errno));
			exit(1);
		}
zeroed:
		memset(model + o->off, 0, o->len);
		break;
	default:
		break;
	}
	pthread_mutex_lock(&count_lock);
	done[o->kind]++;
	pthread_mutex_unlock(&count_lock);
	if (o->sync_after) {
		if (fdatasync(fd) && !allow_error(0, 0))
			die("fdatasync");
		pthread_mutex_lock(&count_lock);
		midsyncs++;
		pthread_mutex_unlock(&count_lock);
	}
}

static void *worker(void *arg)
{
	long t = (long)arg;
	int i;

	for (i = t; i < nops; i += nthreads)
		do_op(&ops[i]);
	return NULL;
}

/* N operations for one round, each in slots of its own. */
static void plan_round(int n, uint64_t slot)
{
	uint64_t nslots = dev_size / slot, s, k, sub;
	unsigned char *used = calloc(nslots, 1);
	int i, tries;

	for (i = 0; i < n; i++) {
		struct op *o = &ops[i];

		for (tries = 0; tries < 64; tries++) {
			o->kind = rnd() % 16;
			o->kind = o->kind < 6 ? OP_WRITE : o->kind < 8 ? OP_PARTIAL :
				  o->kind < 10 ? OP_FUA : o->kind < 12 ? OP_ZERO :
				  o->kind < 14 ? OP_DISCARD : OP_SPAN;
			k = o->kind == OP_SPAN ? 2 : 1;
			s = rnd() % (nslots - k + 1);
			if (used[s] || (k == 2 && used[s + 1]))
				continue;
			break;
		}
		if (tries == 64)
			break;
		used[s] = 1;
		if (k == 2)
			used[s + 1] = 1;
		sub = slot / 4096;	/* 4 KiB units in a slot */
		switch (o->kind) {
		case OP_PARTIAL:
			/* 512-aligned, 512..3584 bytes, inside one 4 KiB block or across two */
			o->off = s * slot + (rnd() % (slot / SECT - 8)) * SECT;
			o->len = (1 + rnd() % 7) * SECT;
			break;
		case OP_ZERO:
			o->off = s * slot + (rnd() % (slot / SECT)) * SECT;
			o->len = (1 + rnd() % (((s + 1) * slot - o->off) / SECT)) * SECT;
			break;
		case OP_SPAN:
			/* the end of slot s and the start of slot s + 1 */
			o->off = (s + 1) * slot - (1 + rnd() % sub) * 4096;
			o->len = (s + 1) * slot - o->off + (1 + rnd() % sub) * 4096;
			break;
		default: /* whole 4 KiB blocks */
			k = rnd() % sub;
			o->off = s * slot + k * 4096;
			o->len = (1 + rnd() % (sub - k)) * 4096;
			break;
		}
		o->seed = rnd();
		o->sync_after = rnd() % 16 == 0;
	}
	nops = i;
	free(used);
}

static void write_snap(const char *dir, int round)
{
	uint64_t n = dev_size / SECT, i, *h = malloc(n * 8);
	char path[4096];
	FILE *f;

	for (i = 0; i < n; i++)
		h[i] = hash_sector(model + i * SECT);
	snprintf(path, sizeof(path), "%s/r%d", dir, round);
	f = fopen(path, "w");
	if (!f || fwrite(h, 8, n, f) != n || fclose(f))
		die(path);
	free(h);
}

static uint64_t *load_snap(const char *dir, int k, uint64_t n)
{
	uint64_t *h = malloc(n * 8);
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/r%d", dir, k);
	f = fopen(path, "r");
	if (!f) {
		free(h);
		return NULL;
	}
	if (fread(h, 8, n, f) != n) {
		fprintf(stderr, "crashload: %s: wrong size (device size changed?)\n", path);
		exit(2);
	}
	fclose(f);
	return h;
}

static int cmd_run(const char *dir, uint64_t seed, int rounds, int nper, uint64_t slot,
		   const char *mark_cmd)
{
	pthread_t th[64];
	unsigned char *back, *prev = NULL;
	uint64_t sec, kept = 0;
	char cmd[4096];
	long t;
	int r, i;

	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	model = xalloc(dev_size);
	back = xalloc(dev_size);
	read_dev(model);
	if (errors_ok) {
		prev = xalloc(dev_size);
		unsure = calloc(dev_size / SECT, 1);
		if (!unsure)
			die("memory");
	}
	write_snap(dir, 0);
	if (mark_cmd) {
		snprintf(cmd, sizeof(cmd), "%s r0", mark_cmd);
		if (system(cmd))
			fprintf(stderr, "crashload: '%s' failed\n", cmd), exit(2);
	}
	ops = calloc(nper, sizeof(*ops));
	for (r = 1; r <= rounds; r++) {
		plan_round(nper, slot);
		if (errors_ok) {
			memcpy(prev, model, dev_size);
			memset(unsure, 0, dev_size / SECT);
			round_errors = 0;
		}
		for (t = 0; t < nthreads; t++)
			pthread_create(&th[t], NULL, worker, (void *)t);
		for (t = 0; t < nthreads; t++)
			pthread_join(th[t], NULL);
		if (fsync(fd) && !allow_error(0, 0))
			die("fsync");
		if (live_check)
			read_dev(back);
		/* a failed operation's sectors: the old content is fine too */
		for (sec = 0; live_check && round_errors && sec < dev_size / SECT; sec++) {
			uint64_t o = sec * SECT;

			if (unsure[sec] && memcmp(back + o, model + o, SECT) &&
			    !memcmp(back + o, prev + o, SECT)) {
				memcpy(model + o, back + o, SECT);
				kept++;
			}
		}
		if (live_check && memcmp(back, model, dev_size)) {
			for (i = 0; (uint64_t)i < dev_size && back[i] == model[i]; i++)
				;
			fprintf(stderr, "crashload: round %d: the live device differs from the model"
				" first at byte %d\n", r, i);
			return 1;
		}
		if (mark_cmd) {
			snprintf(cmd, sizeof(cmd), "%s r%d", mark_cmd, r);
			if (system(cmd))
				fprintf(stderr, "crashload: '%s' failed\n", cmd), exit(2);
		}
		write_snap(dir, r);
	}
	printf("crashload: %d rounds of %d ops on %d threads:", rounds, nper, nthreads);
	for (i = 0; i < OP_KINDS; i++)
		printf(" %s %lu%s", op_name[i], done[i],
		       unsupported[i] ? " (some unsupported)" : "");
	printf(", %lu mid-round syncs; live device equal to the model after every round\n",
	       midsyncs);
	if (errors_ok)
		printf("crashload: %lu operations failed (allowed); %" PRIu64
		       " sectors of them kept their old content\n", io_errors, kept);
	return 0;
}

static int cmd_verify(const char *dir, const char *mark, int upto)
{
	uint64_t n = dev_size / SECT, i, exact = 0, newer = 0, bad = 0, *a, *b, *more[64];
	unsigned char *dev = xalloc(dev_size);
	int k = 0, j, nmore = 0;

	if (mark && *mark) {
		if (!strcmp(mark, "dm-log-writes-end")) {
			for (k = 0; load_snap(dir, k + 1, n); k++)
				;
		} else if (sscanf(mark, "r%d", &k) != 1) {
			fprintf(stderr, "crashload: unknown mark '%s'\n", mark);
			return 2;
		}
	}
	a = load_snap(dir, k, n);
	if (!a) {
		fprintf(stderr, "crashload: no snapshot r%d in %s\n", k, dir);
		return 2;
	}
	b = load_snap(dir, k + 1, n);
	/* --upto M: any state up to rM is allowed too (lost-cache tests) */
	for (j = k + 2; j <= upto && nmore < 64; j++)
		if ((more[nmore] = load_snap(dir, j, n)))
			nmore++;
	read_dev(dev);
	for (i = 0; i < n; i++) {
		uint64_t h = hash_sector(dev + i * SECT);

		if (h == a[i]) {
			exact++;
		} else if (b && h == b[i]) {
			newer++;
		} else {
			for (j = 0; j < nmore && h != more[j][i]; j++)
				;
			if (j < nmore) {
				newer++;
				continue;
			}
			if (bad < 10)
				fprintf(stderr, "crashload: sector %" PRIu64 " holds neither r%d's"
					" nor r%d's content\n", i, k, k + 1);
			bad++;
		}
	}
	printf("verify after mark r%d: %" PRIu64 " sectors as at r%d, %" PRIu64
	       " as at r%d..r%d, %" PRIu64 " wrong\n", k, exact, k, newer, k + 1,
	       upto > k + 1 ? upto : k + 1, bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dev", 1, 0, 'D' }, { "snap", 1, 0, 's' }, { "seed", 1, 0, 'S' },
		{ "rounds", 1, 0, 'r' }, { "ops", 1, 0, 'o' }, { "threads", 1, 0, 't' },
		{ "mark-cmd", 1, 0, 'm' }, { "mark", 1, 0, 'M' }, { "slot", 1, 0, 'l' },
		{ "upto", 1, 0, 'u' }, { "no-live-check", 0, 0, 'n' },
		{ "errors-ok", 0, 0, 'e' },
		{ 0, 0, 0, 0 },
	};
	const char *devp = NULL, *dir = NULL, *mark_cmd = NULL, *mark = NULL;
	uint64_t seed = 1, slot = 65536;
	int rounds = 8, nper = 64, c, upto = 0;

	if (argc < 2)
		goto usage;
	while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		switch (c) {
		case 'D': devp = optarg; break;
		case 's': dir = optarg; break;
		case 'S': seed = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = atoi(optarg); break;
		case 'o': nper = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'm': mark_cmd = optarg; break;
		case 'M': mark = optarg; break;
		case 'l': slot = strtoull(optarg, NULL, 0); break;
		case 'u': upto = atoi(optarg); break;
		case 'n': live_check = 0; break;
		case 'e': errors_ok = 1; break;
		default: goto usage;
		}
	}
	if (!devp || !dir || nthreads < 1 || nthreads > 64 || slot < 8192 || slot % 4096)
		goto usage;
	fd = open(devp, (strcmp(argv[1], "run") ? O_RDONLY : O_RDWR) | O_DIRECT);
	if (fd < 0)
		die(devp);
	if (ioctl(fd, BLKGETSIZE64, &dev_size))
		die("BLKGETSIZE64");
	dev_size -= dev_size % slot;
	if (!strcmp(argv[1], "run")) {
		fd_sync = open(devp, O_RDWR | O_DIRECT | O_DSYNC);
		if (fd_sync < 0)
			die(devp);
		if (dev_size / slot < 4)
			goto usage;
		return cmd_run(dir, seed, rounds, nper, slot, mark_cmd);
	}
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(dir, mark, upto);
usage:
	fprintf(stderr, "usage: crashload run --dev DEV --snap DIR [--seed S] [--rounds R]"
		" [--ops N] [--threads T] [--mark-cmd CMD] [--slot BYTES] [--no-live-check]"
		" [--errors-ok]\n"
		"       crashload verify --dev DEV --snap DIR --mark NAME [--upto M]\n");
	return 3;
}
