// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain restore-dump: the disk emitter, which turns the emitter calls
 * of a parsed dump (dump.c) into a layer's metadata (see dump.h).
 *
 * Why it is careful in the order it is: restore-dump overwrites the
 * metadata of a layer, so nothing is written until the whole dump has
 * been read and checked.
 *
 *  1. Each block is built in memory as its calls arrive, and checked with
 *     kernel/format.c (cowchain_leaf_check, cowchain_ptr_check) when it
 *     ends: the rules are the kernel's, not a second copy of them.  Root
 *     slots the dump leaves out become empty root blocks.
 *  2. At the end, the checks that need the whole index: no block twice,
 *     no data cluster referenced twice, no metadata block inside a data
 *     cluster.
 *  3. Only then the writes, in the order a crash can survive: an empty
 *     journal and the index blocks, flush; the previous superblock slot,
 *     flush; the current slot last, flush.
 *
 * The superblock is checked (cowchain_sb_validate) as soon as it arrives.
 * Only metadata is written, never a data cluster.  The target is created
 * if absent (and removed again if the restore fails), and an existing one
 * is overwritten only with --force.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <json-c/json.h>
#include "internal.h"
#include "dump_internal.h"

/* ---- the disk emitter (restore) --------------------------------------------- */

struct wblock {
	u64 blocknr;
	u8 *img;
};

struct disk_emitter {
	const char *src, *path;
	struct cowchain_error *err;
	struct cowchain_sb sb;
	bool have_sb;
	u8 *root_seen;
	struct {
		int kind;
		u64 blocknr, key, last_slot;
		bool any;
		u8 *img;
	} st[3];
	int depth;			/* blocks open */
	struct wblock *w;		/* blocks to write */
	size_t nw, capw;
	u64 *phys;			/* data clusters referenced */
	size_t nphys, capphys;
	char where[160];
};

static int push_u64(u64 **a, size_t *n, size_t *cap, u64 v)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		void *p = realloc(*a, c * sizeof(u64));

		if (!p)
			return -ENOMEM;
		*a = p;
		*cap = c;
	}
	(*a)[(*n)++] = v;
	return 0;
}

static int de_keep(struct disk_emitter *de, u64 blocknr, u8 *img)
{
	if (de->nw == de->capw) {
		size_t c = de->capw ? de->capw * 2 : 64;
		void *p = realloc(de->w, c * sizeof(*de->w));

		if (!p)
			return -ENOMEM;
		de->w = p;
		de->capw = c;
	}
	de->w[de->nw].blocknr = blocknr;
	de->w[de->nw++].img = img;
	return 0;
}

static int de_superblock(void *ctx, const struct cowchain_sb *sb)
{
	struct disk_emitter *de = ctx;
	struct cowchain_err e;

	de->sb = *sb;
	de->sb.blocknr = sb->seq & 1;
	if (cowchain_sb_validate(&de->sb, 0, &e))
		return cc_fail(de->err, -EINVAL, "'%s': superblock: %s", de->src, e.msg);
	if (cowchain_sb_ro_only(&de->sb))
		return cc_fail(de->err, -EOPNOTSUPP, "'%s': superblock: unknown ro_compat features 0x%x",
			       de->src, de->sb.ro_compat);
	de->root_seen = calloc(de->sb.root_blocks, 1);
	if (!de->root_seen)
		return cc_fail(de->err, -ENOMEM, "out of memory");
	de->have_sb = true;
	return 0;
}

static int de_begin_block(void *ctx, int kind, unsigned slot, u64 blocknr, u64 key)
{
	static const u32 magic[] = { COWCHAIN_ROOT_MAGIC, COWCHAIN_MAP_MAGIC, COWCHAIN_LEAF_MAGIC };
	struct disk_emitter *de = ctx;
	u64 want_key;
	u8 *img;

	if (kind == 0) {
		if (slot >= de->sb.root_blocks || de->root_seen[slot])
			return cc_fail(de->err, -EINVAL, "'%s': %s: root slot %u out of range or repeated",
				       de->src, de->where, slot);
		if (blocknr != de->sb.root_start + slot)
			return cc_fail(de->err, -EINVAL, "'%s': %s: root %u must be block %llu",
				       de->src, de->where, slot,
				       (unsigned long long)(de->sb.root_start + slot));
		want_key = (u64)slot << COWCHAIN_ROOT_SPAN_SHIFT;
		de->root_seen[slot] = 1;
	} else {
		struct cowchain_ptr_disk *parent = (void *)de->st[kind - 1].img;
		u32 span = kind == 1 ? COWCHAIN_MAP_SPAN_SHIFT : COWCHAIN_LEAF_SHIFT;

		if (slot >= COWCHAIN_PTR_ENTRIES ||
		    (de->st[kind - 1].any && slot <= de->st[kind - 1].last_slot))
			return cc_fail(de->err, -EINVAL, "'%s': %s: slot %u out of range or out of order",
				       de->src, de->where, slot);
		if (!cowchain_block_in_clusters(&de->sb, blocknr))
			return cc_fail(de->err, -EINVAL, "'%s': %s: block %llu is outside the cluster area",
				       de->src, de->where, (unsigned long long)blocknr);
		want_key = de->st[kind - 1].key + ((u64)slot << span);
		parent->ptr[slot] = cpu_to_le64(blocknr);
		de->st[kind - 1].any = true;
		de->st[kind - 1].last_slot = slot;
	}
	if (key != want_key)
		return cc_fail(de->err, -EINVAL, "'%s': %s: key %llu, expected %llu",
			       de->src, de->where, (unsigned long long)key,
			       (unsigned long long)want_key);
	img = calloc(1, COWCHAIN_BLOCK_SIZE);
	if (!img)
		return cc_fail(de->err, -ENOMEM, "out of memory");
	cowchain_header_init(img, magic[kind], blocknr, de->sb.uuid, key, 0);
	de->st[kind].kind = kind;
	de->st[kind].blocknr = blocknr;
	de->st[kind].key = key;
	de->st[kind].any = false;
	de->st[kind].img = img;
	return 0;
}

static int de_entry(void *ctx, u64 vcluster, const struct cowchain_entry *e)
{
	struct disk_emitter *de = ctx;
	struct cowchain_leaf_disk *leaf = (void *)de->st[2].img;
	u64 key = de->st[2].key;
	u64 idx = vcluster - key;

	if (vcluster < key || idx >= COWCHAIN_LEAF_ENTRIES ||
	    (de->st[2].any && idx <= de->st[2].last_slot))
		return cc_fail(de->err, -EINVAL, "'%s': %s: cluster %llu is not in this leaf or out of order",
			       de->src, de->where, (unsigned long long)vcluster);
	if (cowchain_entry_empty(e))
		return cc_fail(de->err, -EINVAL, "'%s': %s: empty entry (leave it out)", de->src, de->where);
	cowchain_entry_pack(e, &leaf->entry[idx]);
	de->st[2].any = true;
	de->st[2].last_slot = idx;
	if (e->phys && push_u64(&de->phys, &de->nphys, &de->capphys, e->phys))
		return cc_fail(de->err, -ENOMEM, "out of memory");
	return 0;
}

static int de_end_block(void *ctx, int kind)
{
	struct disk_emitter *de = ctx;
	struct cowchain_header_disk *h = (void *)de->st[kind].img;
	u64 blocknr = de->st[kind].blocknr, key = de->st[kind].key;
	struct cowchain_err e;
	u32 i, used = 0;
	int r;

	if (kind == 2) {
		struct cowchain_leaf_disk *l = (void *)h;

		for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++)
			used += l->entry[i].phys || l->entry[i].present || l->entry[i].zero;
	} else {
		struct cowchain_ptr_disk *p = (void *)h;

		for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++)
			used += !!p->ptr[i];
	}
	h->count = cpu_to_le32(used);
	cowchain_block_seal(h, blocknr);
	if (kind == 2)
		r = cowchain_leaf_check((void *)h, blocknr, key, &de->sb, &e);
	else
		r = cowchain_ptr_check((void *)h, kind ? COWCHAIN_MAP_MAGIC : COWCHAIN_ROOT_MAGIC,
				       blocknr, key, &de->sb, &e);
	if (r) {
		free(h);
		return cc_fail(de->err, -EINVAL, "'%s': %s: %s", de->src, de->where, e.msg);
	}
	if (de_keep(de, blocknr, (u8 *)h)) {
		free(h);
		return cc_fail(de->err, -ENOMEM, "out of memory");
	}
	de->st[kind].img = NULL;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static int wr(int fd, const void *buf, size_t len, u64 off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, (const u8 *)buf + done, len - done, (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += r;
	}
	return 0;
}

/* Global checks, then the writes: journal, index, flush, superblocks, flush. */
static int de_end(void *ctx)
{
	struct disk_emitter *de = ctx;
	u64 cb = de->sb.cluster_shift - COWCHAIN_BLOCK_SHIFT, i, j, *nrs = NULL;
	size_t n = 0, cap = 0;
	static const u8 zero[COWCHAIN_BLOCK_SIZE];
	struct cowchain_sb_disk d;
	bool is_reg;
	int fd, r = 0;
	u64 sz;

	for (i = 0; i < de->sb.root_blocks; i++) {
		if (de->root_seen[i])
			continue;
		r = de_begin_block(de, 0, i, de->sb.root_start + i, i << COWCHAIN_ROOT_SPAN_SHIFT);
		if (!r)
			r = de_end_block(de, 0);
		if (r)
			return r;
	}
	/* No block twice, no cluster twice, no data cluster holding metadata. */
	for (i = 0; i < de->nw; i++)
		if (push_u64(&nrs, &n, &cap, de->w[i].blocknr))
			return cc_fail(de->err, -ENOMEM, "out of memory");
	qsort(nrs, n, sizeof(u64), cmp_u64);
	for (i = 1; i < n; i++)
		if (nrs[i] == nrs[i - 1]) {
			r = cc_fail(de->err, -EINVAL, "'%s': block %llu is used twice",
				    de->src, (unsigned long long)nrs[i]);
			goto out;
		}
	qsort(de->phys, de->nphys, sizeof(u64), cmp_u64);
	for (i = 1; i < de->nphys; i++)
		if (de->phys[i] == de->phys[i - 1]) {
			r = cc_fail(de->err, -EINVAL, "'%s': physical cluster %llu is referenced twice",
				    de->src, (unsigned long long)de->phys[i]);
			goto out;
		}
	for (i = 0, j = 0; i < n && j < de->nphys;) {
		u64 c = nrs[i] >> cb;

		if (nrs[i] < de->sb.root_start + de->sb.root_blocks) {
			i++;
		} else if (c == de->phys[j]) {
			r = cc_fail(de->err, -EINVAL, "'%s': metadata block %llu lies in data cluster %llu",
				    de->src, (unsigned long long)nrs[i], (unsigned long long)c);
			goto out;
		} else if (c < de->phys[j]) {
			i++;
		} else {
			j++;
		}
	}

	fd = open(de->path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = cc_fail(de->err, -errno, "cannot open '%s': %s", de->path, strerror(errno));
		goto out;
	}
	r = cc_fd_size(fd, &sz, &is_reg);
	if (!r && is_reg) {
		if (sz < cowchain_layout_bytes(&de->sb) &&
		    ftruncate(fd, (off_t)cowchain_layout_bytes(&de->sb)))
			r = -errno;
	} else if (!r && sz < cowchain_layout_bytes(&de->sb)) {
		r = -ENOSPC;
	}
	/* A clean journal: nothing at any position can match journal_seq. */
	for (i = 0; !r && i < de->sb.journal_blocks; i++)
		r = wr(fd, zero, sizeof(zero), (de->sb.journal_start + i) << COWCHAIN_BLOCK_SHIFT);
	for (i = 0; !r && i < de->nw; i++)
		r = wr(fd, de->w[i].img, COWCHAIN_BLOCK_SIZE,
		       de->w[i].blocknr << COWCHAIN_BLOCK_SHIFT);
	if (!r && fdatasync(fd))
		r = -errno;
	/* Superblocks last: the previous slot (seq - 1) first, then the current. */
	if (!r) {
		struct cowchain_sb prev = de->sb;

		if (prev.seq) {
			prev.seq--;
			cowchain_sb_pack(&prev, &d);
			r = wr(fd, &d, sizeof(d), (prev.seq & 1) << COWCHAIN_BLOCK_SHIFT);
		} else {
			r = wr(fd, zero, sizeof(zero), COWCHAIN_BLOCK_SIZE);
		}
	}
	if (!r && fdatasync(fd))
		r = -errno;
	if (!r) {
		cowchain_sb_pack(&de->sb, &d);
		r = wr(fd, &d, sizeof(d), (de->sb.seq & 1) << COWCHAIN_BLOCK_SHIFT);
	}
	if (!r && fdatasync(fd))
		r = -errno;
	close(fd);
	if (r)
		r = cc_fail(de->err, r, "cannot write '%s': %s", de->path,
			    r == -ENOSPC ? "the device is smaller than the layer's capacity" :
			    r == -EINVAL ? "not a regular file or block device" : strerror(-r));
out:
	free(nrs);
	return r;
}

static char *slurp(const char *path, size_t *len, struct cowchain_error *err)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	size_t cap = 1 << 16, n = 0;
	struct stat st;
	char *buf;

	if (!f) {
		cc_fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (!fstat(fileno(f), &st) && S_ISDIR(st.st_mode)) {
		cc_fail(err, -EISDIR, "cannot open '%s': %s", path, strerror(EISDIR));
		if (f != stdin)
			fclose(f);
		return NULL;
	}
	buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (n < cap)
			break;
		cap *= 2;
		char *p = realloc(buf, cap);

		if (!p) {
			free(buf);
			buf = NULL;
		}
		buf = p;
	}
	if (!buf)
		cc_fail(err, -ENOMEM, "out of memory");
	else if (ferror(f)) {
		cc_fail(err, -EIO, "cannot read '%s': %s", path, strerror(errno));
		free(buf);
		buf = NULL;
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
}

int cowchain_restore_dump(const char *dump_path, const char *path,
			  const struct cowchain_restore_opts *opts,
			  struct cowchain_error *err)
{
	struct disk_emitter de = { .src = dump_path, .path = path, .err = err };
	struct cowchain_emitter em = {
		.ctx = &de, .superblock = de_superblock, .begin_block = de_begin_block,
		.end_block = de_end_block, .entry = de_entry, .end = de_end,
	};
	struct json_tokener *tok;
	json_object *top;
	struct stat st;
	size_t len, i;
	char *text;
	int r, fd;

	text = slurp(dump_path, &len, err);
	if (!text)
		return err->code ? err->code : -EIO;
	tok = json_tokener_new();
	if (!tok) {
		free(text);
		return cc_fail(err, -ENOMEM, "out of memory");
	}
	top = json_tokener_parse_ex(tok, text, (int)len);
	if (!top || json_tokener_get_parse_end(tok) < len) {
		enum json_tokener_error je = json_tokener_get_error(tok);
		size_t at = json_tokener_get_parse_end(tok);

		/* Only whitespace may follow the document. */
		while (top && at < len && strchr(" \t\r\n", text[at]))
			at++;
		if (!top || at < len) {
			r = cc_fail(err, -EINVAL, "cannot parse '%s': %s at byte %zu", dump_path,
				    top ? "trailing data" : json_tokener_error_desc(je),
				    json_tokener_get_parse_end(tok));
			json_object_put(top);
			json_tokener_free(tok);
			free(text);
			return r;
		}
	}
	json_tokener_free(tok);
	free(text);

	/* Refuse to overwrite before doing anything; create if absent. */
	if (!stat(path, &st)) {
		if (!opts->force) {
			json_object_put(top);
			return cc_fail(err, -EEXIST, "'%s' exists; use --force to overwrite its metadata",
				       path);
		}
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
			json_object_put(top);
			return cc_fail(err, -EINVAL, "cannot open '%s': %s", path,
				       S_ISDIR(st.st_mode) ? "Is a directory"
							: "not a regular file or block device");
		}
	}
	r = 0;
	fd = -1;
	/* Parse and check everything in memory first; de_end creates and writes. */
	if (stat(path, &st)) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			r = cc_fail(err, -errno, "cannot create '%s': %s", path, strerror(errno));
		else
			close(fd);
	}
	if (!r)
		r = cc_dump_parse(top, &em, de.where, sizeof(de.where), dump_path, err);
	if (r && fd >= 0)
		unlink(path);	/* we created it and wrote nothing valid */
	json_object_put(top);
	for (i = 0; i < 3; i++)
		free(de.st[i].img);
	for (i = 0; i < de.nw; i++)
		free(de.w[i].img);
	free(de.w);
	free(de.phys);
	free(de.root_seen);
	return r;
}
