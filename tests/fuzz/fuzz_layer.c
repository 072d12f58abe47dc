// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * libFuzzer target over everything that reads an untrusted layer: the
 * library's strict open (superblock, journal replay, index walk, free
 * space) and lookups, cowchain check (the tolerant walker, with and
 * without --repair) and cowchain dump.
 *
 * The input is a layer image, usually a short one: the harness puts it in
 * a memfd and, if its first superblock slot names a capacity of at most
 * 16 MiB, extends the file (sparse) to that size, so a seed needs only the
 * metadata at the start of an image, not its holes.
 *
 * Properties checked besides "no crash, no sanitizer report":
 *  - check without --repair never reports anything as fixed;
 *  - after check --repair, a second check --repair has nothing left to fix
 *    (status bit 1 clear): the repairs converge in one pass.
 *
 * Built and run by tests/fuzz/run.sh.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "cowchain.h"
#include "check.h"
#include "dump.h"

#define MAX_EXTEND	(16u << 20)

static int count_entry(void *ctx, u64 vc, const struct cowchain_entry *e)
{
	(void)vc;
	(void)e;
	++*(u64 *)ctx;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cowchain_check_opts ro = { .chain = false, .repair = false };
	struct cowchain_check_opts rw = { .chain = false, .repair = true };
	struct cowchain_check_report rep;
	struct cowchain_error err;
	struct cowchain_layer *l;
	char path[64];
	u64 entries = 0;
	FILE *null;
	size_t i;
	int fd, st;

	fd = memfd_create("layer", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size)
		goto out;
	if (size >= sizeof(struct cowchain_sb_disk)) {
		const struct cowchain_sb_disk *d = (const void *)data;
		u64 cap = le64_to_cpu(d->capacity);
		u32 cs = le32_to_cpu(d->cluster_shift);

		if (cs >= 12 && cs <= 21 && cap && cap <= (MAX_EXTEND >> cs) &&
		    (cap << cs) > size && ftruncate(fd, (off_t)(cap << cs)))
			goto out;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	/* The library's strict path. */
	memset(&err, 0, sizeof(err));
	if (!cowchain_layer_open(path, 0, &l, &err)) {
		cowchain_layer_foreach_entry(l, count_entry, &entries);
		for (u64 c = 0; c < 300; c++) {
			struct cowchain_entry e;

			cowchain_layer_lookup(l, c, &e);
		}
		cowchain_layer_close(l, &err);
	}

	/* check, read-only: nothing may come out fixed. */
	memset(&err, 0, sizeof(err));
	cowchain_check(path, &ro, &rep, &err);
	for (i = 0; i < rep.n; i++)
		if (rep.f[i].fixed)
			abort();
	cowchain_check_status(&rep);
	cowchain_check_report_free(&rep);

	/* dump */
	null = fopen("/dev/null", "w");
	if (null) {
		memset(&err, 0, sizeof(err));
		cowchain_dump(path, null, &rep, &err);
		cowchain_check_report_free(&rep);
		fclose(null);
	}

	/* check --repair twice: the second run must have nothing to fix. */
	memset(&err, 0, sizeof(err));
	if (!cowchain_check(path, &rw, &rep, &err)) {
		cowchain_check_report_free(&rep);
		memset(&err, 0, sizeof(err));
		if (!cowchain_check(path, &rw, &rep, &err)) {
			st = cowchain_check_status(&rep);
			if (st & 1) {
				for (i = 0; i < rep.n; i++)
					if (rep.f[i].fixed)
						fprintf(stderr, "fixed twice: %s: %s\n",
							cowchain_problems[rep.f[i].code].code,
							rep.f[i].detail);
				abort();
			}
		}
	}
	cowchain_check_report_free(&rep);
out:
	close(fd);
	return 0;
}
