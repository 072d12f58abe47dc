/*
 * memhog: keep the system short of memory (issue 7, real memory pressure;
 * tests/guest/t-rel-pressure.sh).
 *
 *   memhog --leave MIB --seconds S
 *
 * Holds anonymous memory so that MemAvailable stays near MIB.  Every 10 ms
 * it reads /proc/meminfo: while MemAvailable is above MIB it maps and
 * touches another 4 MiB; while it is below MIB / 2 it gives one back.
 * Every second it writes to every page it holds again: anonymous memory
 * cannot be reclaimed without swap, so the kernel must find its memory in
 * the page cache and the free pages.  Should the OOM killer come, it is its
 * first choice (oom_score_adj 1000).
 *
 * At the end (S seconds, SIGTERM, SIGINT) it prints one line:
 *   memhog: held_max_mib N avail_min_kb N free_min_kb N
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (4ul << 20)
#define MAXCHUNKS 16384		/* 64 GiB */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long meminfo_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void touch(char *p, unsigned char v)
{
	size_t i;

	for (i = 0; i < CHUNK; i += 4096)
		p[i] = (char)v;
}

static void usage(void)
{
	fprintf(stderr, "usage: memhog --leave MIB --seconds S\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static char *chunks[MAXCHUNKS];
	long leave_kb = -1, avail, fre, avail_min = -1, free_min = -1;
	size_t n = 0, held_max = 0, i;
	double secs = -1, end, last_touch = 0;
	unsigned char gen = 1;
	int a;
	FILE *f;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--leave") && a + 1 < argc)
			leave_kb = strtol(argv[++a], NULL, 10) * 1024;
		else if (!strcmp(argv[a], "--seconds") && a + 1 < argc)
			secs = strtod(argv[++a], NULL);
		else
			usage();
	}
	if (secs <= 0 || leave_kb < 0)
		usage();
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	f = fopen("/proc/self/oom_score_adj", "we");
	if (f) {
		fputs("1000\n", f);
		fclose(f);
	}
	end = now() + secs;
	while (!stop && now() < end) {
		avail = meminfo_kb("MemAvailable");
		fre = meminfo_kb("MemFree");
		if (avail < 0 || fre < 0) {
			fprintf(stderr, "memhog: cannot read /proc/meminfo\n");
			return 1;
		}
		if (avail_min < 0 || avail < avail_min)
			avail_min = avail;
		if (free_min < 0 || fre < free_min)
			free_min = fre;
		if (avail > leave_kb && n < MAXCHUNKS) {
			char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p != MAP_FAILED) {
				touch(p, gen);
				chunks[n++] = p;
				if (n > held_max)
					held_max = n;
			}
			if (avail - leave_kb > (long)(CHUNK >> 10))
				continue;	/* far from the goal: no pause */
		} else if (avail < leave_kb / 2 && n) {
			munmap(chunks[--n], CHUNK);
		}
		if (now() - last_touch > 1.0) {
			gen++;
			for (i = 0; i < n; i++)
				touch(chunks[i], gen);
			last_touch = now();
		}
		usleep(10000);
	}
	printf("memhog: held_max_mib %zu avail_min_kb %ld free_min_kb %ld\n",
	       held_max * (CHUNK >> 20), avail_min, free_min);
	return 0;
}
