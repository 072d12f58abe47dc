// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Flatten: the whole virtual disk of a chain as one new file, like
 * qemu-img convert.  Either a root layer of the same cluster and sub-block
 * size (holding only sub-blocks that are not all zeros: zero ranges are
 * simply not stored, a root reads them as zeros), or a raw image of
 * virtual_size bytes that is sparse wherever the disk reads zeros.
 *
 * The chain is walked by extents (cowchain_resolve): ranges that no layer
 * holds, or that a zero marker covers, cost nothing; data is read in large
 * pieces.  The output is created new (never an existing file without
 * force, never a layer of the chain) and, for a layer, committed at the
 * end; a failure removes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "merge_internal.h"

#define CHUNK	(8u << 20)

static bool all_zero(const u8 *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool same_file(const char *a, struct stat *st)
{
	struct stat s;

	return !stat(a, &s) && s.st_dev == st->st_dev && s.st_ino == st->st_ino;
}

int cowchain_flatten(const char *top, const char *out, const struct cowchain_flatten_opts *o,
		     u64 *bytes, struct cowchain_error *err)
{
	struct cowchain_chain *c = NULL, *oc = NULL;
	struct cowchain_create_opts co = { 0 };
	struct cowchain_extent ext;
	struct stat st;
	u64 size, off = 0, sbsize;
	u8 *buf = NULL;
	int fd = -1, r;
	u32 i;

	*bytes = 0;
	r = cowchain_chain_open(top, 0, &c, err);
	if (r)
		return r;
	size = cowchain_chain_size(c);
	sbsize = 1ull << cowchain_layer_sb(cowchain_chain_layer(c, 0))->subblock_shift;
	if (!stat(out, &st)) {
		for (i = 0; i < cowchain_chain_depth(c); i++)
			if (same_file(cowchain_layer_path(cowchain_chain_layer(c, i)), &st)) {
				r = cc_failf(err, -EINVAL, out, "is a layer of the chain being flattened");
				goto out;
			}
		if (!o->force) {
			r = cc_failf(err, -EEXIST, out, "already exists (use --force to overwrite)");
			goto out;
		}
		unlink(out);
	}
	buf = malloc(CHUNK);
	if (!buf) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (o->raw) {
		fd = open(out, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)size)) {
			r = cc_fail(err, -errno, "cannot create '%s': %s", out, strerror(errno));
			goto fail;
		}
	} else {
		const struct cowchain_sb *sb = cowchain_layer_sb(cowchain_chain_layer(c, 0));

		co.size = size;
		co.cluster_shift = sb->cluster_shift;
		co.subblock_shift = sb->subblock_shift;
		r = cowchain_create(out, &co, err);
		if (!r)
			r = cowchain_chain_open(out, COWCHAIN_OPEN_WRITE, &oc, err);
		if (r)
			goto fail;
	}
	while (off < size) {
		u64 n, k;

		r = cowchain_resolve(c, off, size - off, &ext, err);
		if (r)
			goto fail;
		if (ext.kind == COWCHAIN_EXT_ZERO || ext.kind == COWCHAIN_EXT_NONE) {
			off += ext.length;
			continue;
		}
		for (k = 0; k < ext.length; k += n) {
			u64 p, q;

			n = ext.length - k < CHUNK ? ext.length - k : CHUNK;
			r = cowchain_read(c, buf, off + k, n, err);
			if (r)
				goto fail;
			/* Store only the non-zero sub-blocks (aligned pieces). */
			for (p = 0; p < n; p = q) {
				u64 at = off + k + p, lim = ((at / sbsize) + 1) * sbsize - at;

				q = p + (lim < n - p ? lim : n - p);
				if (all_zero(buf + p, (size_t)(q - p)))
					continue;
				if (o->raw) {
					r = cc_pwrite(fd, buf + p, (size_t)(q - p), at);
					if (r)
						r = cc_failf(err, r, out, "cannot write: %s", strerror(-r));
				} else {
					r = cowchain_write(oc, buf + p, at, q - p, err);
				}
				if (r)
					goto fail;
				*bytes += q - p;
			}
			if (o->progress) {
				struct cowchain_progress pr = { "copy", off + k + n, size };

				o->progress(o->progress_ctx, &pr);
			}
		}
		off += ext.length;
	}
	if (o->raw) {
		if (fdatasync(fd)) {
			r = cc_fail(err, -errno, "cannot flush '%s': %s", out, strerror(errno));
			goto fail;
		}
	} else {
		r = cowchain_chain_close(oc, err);
		oc = NULL;
		if (r)
			goto fail;
	}
	goto out;
fail:
	if (oc)
		cowchain_chain_close(oc, NULL);
	oc = NULL;
	unlink(out);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	cowchain_chain_close(c, NULL);
	return r;
}
