// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Compact: give back file space the layer no longer references.  Nothing
 * records free space (FORMAT.md 2): a cluster is free when the index does
 * not use it.  Discards, write-zeroes and merges free clusters in the index
 * without always returning their blocks to the file system; this punches
 * (FALLOC_FL_PUNCH_HOLE, keeping the size):
 *  - every free cluster of the cluster area that still holds blocks
 *    (found with SEEK_DATA / SEEK_HOLE, so the cost follows the allocated
 *    space, not the capacity);
 *  - inside used data clusters, every sub-block whose present bit is clear.
 * Metadata clusters are left alone.  Only ranges no committed metadata
 * references are punched, after the open's journal replay, so a crash at
 * any point leaves the layer as it was (less some unreferenced blocks).
 * The layer is opened writable without a generation bump (its contents do
 * not change, its children stay valid), so sealed layers can be compacted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "merge_internal.h"

struct pres {
	u64 phys, present;
};

struct pres_v {
	struct pres *v;
	size_t n, cap;
};

static int collect(void *ctx, u64 vc, const struct cowchain_entry *e)
{
	struct pres_v *s = ctx;

	(void)vc;
	if (!e->phys)
		return 0;
	if (s->n == s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 1024;
		struct pres *nv = realloc(s->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	s->v[s->n].phys = e->phys;
	s->v[s->n++].present = e->present;
	return 0;
}

static int cmp_phys(const void *a, const void *b)
{
	u64 x = ((const struct pres *)a)->phys, y = ((const struct pres *)b)->phys;

	return x < y ? -1 : x > y;
}

static u64 usage(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (u64)st.st_blocks * 512;
}

int cowchain_compact(const char *path, struct cowchain_compact_result *res,
		     struct cowchain_error *err)
{
	struct cowchain_layer *l;
	struct pres_v s = { 0 };
	u64 cs, ss, p, end;
	off_t pos;
	int r;

	memset(res, 0, sizeof(*res));
	r = cowchain_layer_open(path, COWCHAIN_OPEN_NOBUMP | COWCHAIN_OPEN_UNATTACHED, &l, err);
	if (r)
		return r;
	cs = l->sb.cluster_shift;
	ss = l->sb.subblock_shift;
	res->before = usage(l->fd);
	r = cowchain_layer_foreach_entry(l, collect, &s);
	if (r) {
		r = cc_failf(err, r, path, "out of memory");
		goto out;
	}
	if (s.n)
		qsort(s.v, s.n, sizeof(*s.v), cmp_phys);
	end = l->sb.capacity << cs;
	pos = (off_t)(l->sb.data_start << cs);
	while ((pos = lseek(l->fd, pos, SEEK_DATA)) >= 0 && (u64)pos < end) {
		off_t hole = lseek(l->fd, pos, SEEK_HOLE);

		if (hole < 0)
			break;
		for (p = (u64)pos >> cs; p << cs < (u64)hole && p < l->sb.capacity; p++) {
			struct pres key = { p, 0 };
			struct pres *f = s.n ? bsearch(&key, s.v, s.n, sizeof(*s.v), cmp_phys) : NULL;
			struct cc_cent *ce = cc_ctab_find(&l->used, p);

			if (f) {
				u64 missing = ~f->present, bits = l->subblocks == 64 ? ~0ull
							: (1ull << l->subblocks) - 1;

				missing &= bits;
				while (missing && !r) {
					u32 i = (u32)__builtin_ctzll(missing), n = 0;

					while (i + n < l->subblocks && (missing & (1ull << (i + n))))
						n++;
					missing &= n == 64 ? 0 : ~(((1ull << n) - 1) << i);
					r = cc_punch(l->fd, (p << cs) + ((u64)i << ss), (u64)n << ss);
					res->subblocks_punched += n;
				}
			} else if (!ce) {
				r = cc_punch(l->fd, p << cs, 1ull << cs);
				res->clusters_punched++;
			}
			if (r) {
				r = cc_failf(err, r, path, "cannot punch a hole: %s", strerror(-r));
				goto out;
			}
		}
		pos = hole;
	}
	if (fdatasync(l->fd))
		r = cc_failf(err, -errno, path, "cannot flush: %s", strerror(errno));
	res->after = usage(l->fd);
out:
	free(s.v);
	if (r) {
		cowchain_layer_close(l, NULL);
		return r;
	}
	return cowchain_layer_close(l, err);
}
