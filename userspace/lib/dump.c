// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain dump / restore-dump (see dump.h).
 *
 *   dump:     cowchain_walk() --walk ops--> json_emitter --> text
 *   restore:  text --> parse_dump() --emitter calls--> disk_emitter --> file
 *
 * The JSON emitter and the parser both work from sb_fields[],
 * blk_fields[] and ent_fields[] below; a field added to a table appears in
 * the dump and is read back by restore, in the same place, with the same
 * encoding.  The parser is strict (unknown keys, wrong types, out-of-order
 * slots are errors) so a hand edit that does not mean what it says is
 * refused instead of guessed at, and the text is canonical: what the
 * parser accepts, the emitter prints back identically.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <json-c/json.h>
#include "cowchain.h"
#include "check.h"
#include "dump.h"

#define DUMP_FORMAT	"cowchain-dump"
#define DUMP_VERSION	1

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

/* ---- the field tables ------------------------------------------------------ */

enum ftype { F_U32, F_U64, F_HEX64, F_UUID, F_LOCATOR };

struct field {
	const char *name;
	enum ftype type;
	size_t off;
};

#define SBF(n, t) { #n, t, offsetof(struct cowchain_sb, n) }
static const struct field sb_fields[] = {
	SBF(seq, F_U64),
	SBF(uuid, F_UUID),
	SBF(version, F_U32),
	SBF(compat, F_U32),
	SBF(ro_compat, F_U32),
	SBF(incompat, F_U32),
	SBF(flags, F_U32),
	SBF(parent_kind, F_U32),
	SBF(parent_uuid, F_UUID),
	SBF(parent_generation, F_U64),
	SBF(generation, F_U64),
	SBF(cluster_shift, F_U32),
	SBF(subblock_shift, F_U32),
	SBF(virtual_size, F_U64),
	SBF(root_start, F_U64),
	SBF(root_blocks, F_U64),
	SBF(journal_start, F_U64),
	SBF(journal_blocks, F_U64),
	SBF(journal_head, F_U64),
	SBF(journal_seq, F_U64),
	SBF(data_start, F_U64),
	SBF(capacity, F_U64),
	SBF(create_time, F_U64),
	SBF(merge_state, F_U32),
	SBF(merge_cursor, F_U64),
	SBF(merge_peer_uuid, F_UUID),
	SBF(locator, F_LOCATOR),	/* locator_len follows from the string */
};

/* Index blocks: what is in the dump object besides the child array. */
struct blk {
	u64 slot, block, key;
};
#define BLF(n) { #n, F_U64, offsetof(struct blk, n) }
static const struct field blk_fields[] = { BLF(slot), BLF(block), BLF(key) };
static const char *const child_name[] = { "maps", "leaves", "entries" };

/* Entries: vcluster plus the entry fields. */
struct ent {
	u64 vcluster;
	struct cowchain_entry e;
};
static const struct field ent_fields[] = {
	{ "vcluster", F_U64, offsetof(struct ent, vcluster) },
	{ "phys", F_U64, offsetof(struct ent, e.phys) },
	{ "present", F_HEX64, offsetof(struct ent, e.present) },
	{ "zero", F_HEX64, offsetof(struct ent, e.zero) },
};

#define NF(t) (sizeof(t) / sizeof((t)[0]))

/* ---- encoding one field ------------------------------------------------------ */

static int uuid_parse(const char *s, u8 *out)
{
	int i, n = 0;

	if (strlen(s) != 36)
		return -1;
	for (i = 0; i < 36; i++) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		if (!s[i + 1])
			return -1;
		hi = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
		lo = s[i + 1] >= '0' && s[i + 1] <= '9' ? s[i + 1] - '0' : s[i + 1] >= 'a' && s[i + 1] <= 'f' ? s[i + 1] - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = hi << 4 | lo;
		i++;
	}
	return n == 16 ? 0 : -1;
}

static json_object *field_emit(const struct field *f, const void *base)
{
	const u8 *p = (const u8 *)base + f->off;
	char buf[40];

	switch (f->type) {
	case F_U32:
		return json_object_new_int64(*(const u32 *)p);
	case F_U64:
		return json_object_new_uint64(*(const u64 *)p);
	case F_HEX64:
		snprintf(buf, sizeof(buf), "0x%016llx", (unsigned long long)*(const u64 *)p);
		return json_object_new_string(buf);
	case F_UUID:
		cowchain_uuid_str(p, buf);
		return json_object_new_string(buf);
	case F_LOCATOR: {
		const struct cowchain_sb *sb = base;
		u32 len = sb->locator_len > COWCHAIN_LOCATOR_MAX ? COWCHAIN_LOCATOR_MAX
								: sb->locator_len;

		return json_object_new_string_len((const char *)sb->locator, (int)len);
	}
	}
	return NULL;
}

/* Parse one field of obj into base; where names the object for messages. */
static int field_parse(const struct field *f, json_object *obj, void *base,
		       const char *src, const char *where, struct cowchain_error *err)
{
	u8 *p = (u8 *)base + f->off;
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(obj, f->name, &v))
		return fail(err, -EINVAL, "'%s': %s: missing \"%s\"", src, where, f->name);
	switch (f->type) {
	case F_U32:
	case F_U64: {
		u64 x;

		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return fail(err, -EINVAL, "'%s': %s: \"%s\" is not a non-negative integer",
				    src, where, f->name);
		x = json_object_get_uint64(v);
		if (f->type == F_U32) {
			if (x > 0xffffffffull)
				return fail(err, -EINVAL, "'%s': %s: \"%s\" does not fit 32 bits",
					    src, where, f->name);
			*(u32 *)p = (u32)x;
		} else {
			*(u64 *)p = x;
		}
		return 0;
	}
	case F_HEX64: {
		char *end;

		s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		if (!s || strncmp(s, "0x", 2) || strlen(s) != 18)
			return fail(err, -EINVAL, "'%s': %s: \"%s\" is not a \"0x\" and 16 hex digits string",
				    src, where, f->name);
		errno = 0;
		*(u64 *)p = strtoull(s + 2, &end, 16);
		if (errno || *end)
			return fail(err, -EINVAL, "'%s': %s: \"%s\" is not hexadecimal",
				    src, where, f->name);
		return 0;
	}
	case F_UUID:
		s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		if (!s || uuid_parse(s, p))
			return fail(err, -EINVAL, "'%s': %s: \"%s\" is not a uuid (36 lowercase characters)",
				    src, where, f->name);
		return 0;
	case F_LOCATOR: {
		struct cowchain_sb *sb = base;
		int len;

		if (!json_object_is_type(v, json_type_string))
			return fail(err, -EINVAL, "'%s': %s: \"%s\" is not a string", src, where, f->name);
		len = json_object_get_string_len(v);
		if (len < 0 || (u32)len > COWCHAIN_LOCATOR_MAX)
			return fail(err, -EINVAL, "'%s': %s: \"%s\" is longer than %u bytes",
				    src, where, f->name, COWCHAIN_LOCATOR_MAX);
		memset(sb->locator, 0, sizeof(sb->locator));
		memcpy(sb->locator, json_object_get_string(v), len);
		sb->locator_len = len;
		return 0;
	}
	}
	return -EINVAL;
}

static json_object *fields_emit(const struct field *t, size_t n, const void *base)
{
	json_object *o = json_object_new_object();
	size_t i;

	for (i = 0; o && i < n; i++)
		json_object_object_add(o, t[i].name, field_emit(&t[i], base));
	return o;
}

/* Every key of obj must be a field of t (or extra, if not NULL). */
static int fields_parse(const struct field *t, size_t n, const char *extra,
			json_object *obj, void *base, const char *src,
			const char *where, struct cowchain_error *err)
{
	size_t i;
	int r;

	if (!json_object_is_type(obj, json_type_object))
		return fail(err, -EINVAL, "'%s': %s is not an object", src, where);
	json_object_object_foreach(obj, key, val) {
		(void)val;
		for (i = 0; i < n; i++)
			if (!strcmp(key, t[i].name))
				break;
		if (i == n && !(extra && !strcmp(key, extra)))
			return fail(err, -EINVAL, "'%s': %s: unknown key \"%s\"", src, where, key);
	}
	for (i = 0; i < n; i++) {
		r = field_parse(&t[i], obj, base, src, where, err);
		if (r)
			return r;
	}
	return 0;
}

/* ---- the JSON emitter ------------------------------------------------------- */

struct json_emitter {
	json_object *top, *sb_slot;
	json_object *arr[4];		/* arr[k]: where blocks of kind k (3: entries) go */
	FILE *out;
	struct cowchain_error *err;
};

static int je_superblock(void *ctx, const struct cowchain_sb *sb)
{
	struct json_emitter *je = ctx;
	json_object *o = fields_emit(sb_fields, NF(sb_fields), sb);

	if (!o)
		return fail(je->err, -ENOMEM, "out of memory");
	json_object_object_add(je->top, "superblock", o);
	/* Keep "superblock" before "roots": re-add roots after it. */
	json_object_get(je->arr[0]);
	json_object_object_del(je->top, "roots");
	json_object_object_add(je->top, "roots", je->arr[0]);
	return 0;
}

static int je_begin_block(void *ctx, int kind, unsigned slot, u64 blocknr, u64 key)
{
	struct json_emitter *je = ctx;
	struct blk b = { slot, blocknr, key };
	json_object *o = fields_emit(blk_fields, NF(blk_fields), &b), *a;

	a = json_object_new_array();
	if (!o || !a)
		return fail(je->err, -ENOMEM, "out of memory");
	json_object_object_add(o, child_name[kind], a);
	json_object_array_add(je->arr[kind], o);
	je->arr[kind + 1] = a;
	return 0;
}

static int je_end_block(void *ctx, int kind)
{
	(void)ctx;
	(void)kind;
	return 0;
}

static int je_entry(void *ctx, u64 vcluster, const struct cowchain_entry *e)
{
	struct json_emitter *je = ctx;
	struct ent en = { vcluster, *e };
	json_object *o = fields_emit(ent_fields, NF(ent_fields), &en);

	if (!o)
		return fail(je->err, -ENOMEM, "out of memory");
	json_object_array_add(je->arr[3], o);
	return 0;
}

static int je_end(void *ctx)
{
	struct json_emitter *je = ctx;
	const char *s = json_object_to_json_string_ext(je->top,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);

	if (fputs(s, je->out) == EOF || fputc('\n', je->out) == EOF)
		return fail(je->err, -EIO, "cannot write the dump: %s", strerror(errno));
	return 0;
}

/* ---- dump -------------------------------------------------------------------- */

struct walk_fwd {
	const struct cowchain_emitter *em;
};

static int fwd_block(void *ctx, int kind, unsigned slot, u64 blocknr, u64 key)
{
	const struct cowchain_emitter *em = ((struct walk_fwd *)ctx)->em;

	return em->begin_block(em->ctx, kind, slot, blocknr, key);
}

static int fwd_block_end(void *ctx, int kind)
{
	const struct cowchain_emitter *em = ((struct walk_fwd *)ctx)->em;

	return em->end_block(em->ctx, kind);
}

static int fwd_entry(void *ctx, u64 vcluster, const struct cowchain_entry *e)
{
	const struct cowchain_emitter *em = ((struct walk_fwd *)ctx)->em;

	return em->entry(em->ctx, vcluster, e);
}

int cowchain_dump(const char *path, FILE *out, struct cowchain_check_report *rep,
		  struct cowchain_error *err)
{
	struct json_emitter je = { .out = out, .err = err };
	struct cowchain_emitter em = {
		.ctx = &je, .superblock = je_superblock, .begin_block = je_begin_block,
		.end_block = je_end_block, .entry = je_entry, .end = je_end,
	};
	struct walk_fwd fw = { &em };
	struct cowchain_walk_ops ops = {
		.ctx = &fw, .block = fwd_block, .block_end = fwd_block_end, .entry = fwd_entry,
	};
	struct cowchain_sb sb;
	bool have_sb;
	int r;

	memset(rep, 0, sizeof(*rep));
	je.top = json_object_new_object();
	je.arr[0] = json_object_new_array();
	if (!je.top || !je.arr[0]) {
		json_object_put(je.top);
		json_object_put(je.arr[0]);
		return fail(err, -ENOMEM, "out of memory");
	}
	json_object_object_add(je.top, "format", json_object_new_string(DUMP_FORMAT));
	json_object_object_add(je.top, "version", json_object_new_int(DUMP_VERSION));
	json_object_object_add(je.top, "roots", je.arr[0]);

	r = cowchain_walk(path, &ops, &sb, &have_sb, rep, err);
	if (!r && !have_sb)
		r = fail(err, -EINVAL, "cannot dump '%s': %s", path,
			 rep->n ? rep->f[0].detail : "no valid superblock");
	if (!r)
		r = em.superblock(em.ctx, &sb);
	if (!r)
		r = em.end(em.ctx);
	json_object_put(je.top);
	return r;
}

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
		return fail(de->err, -EINVAL, "'%s': superblock: %s", de->src, e.msg);
	if (cowchain_sb_ro_only(&de->sb))
		return fail(de->err, -EOPNOTSUPP, "'%s': superblock: unknown ro_compat features 0x%x",
			    de->src, de->sb.ro_compat);
	de->root_seen = calloc(de->sb.root_blocks, 1);
	if (!de->root_seen)
		return fail(de->err, -ENOMEM, "out of memory");
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
			return fail(de->err, -EINVAL, "'%s': %s: root slot %u out of range or repeated",
				    de->src, de->where, slot);
		if (blocknr != de->sb.root_start + slot)
			return fail(de->err, -EINVAL, "'%s': %s: root %u must be block %llu",
				    de->src, de->where, slot,
				    (unsigned long long)(de->sb.root_start + slot));
		want_key = (u64)slot << COWCHAIN_ROOT_SPAN_SHIFT;
		de->root_seen[slot] = 1;
	} else {
		struct cowchain_ptr_disk *parent = (void *)de->st[kind - 1].img;
		u32 span = kind == 1 ? COWCHAIN_MAP_SPAN_SHIFT : COWCHAIN_LEAF_SHIFT;

		if (slot >= COWCHAIN_PTR_ENTRIES ||
		    (de->st[kind - 1].any && slot <= de->st[kind - 1].last_slot))
			return fail(de->err, -EINVAL, "'%s': %s: slot %u out of range or out of order",
				    de->src, de->where, slot);
		if (!cowchain_block_in_clusters(&de->sb, blocknr))
			return fail(de->err, -EINVAL, "'%s': %s: block %llu is outside the cluster area",
				    de->src, de->where, (unsigned long long)blocknr);
		want_key = de->st[kind - 1].key + ((u64)slot << span);
		parent->ptr[slot] = cpu_to_le64(blocknr);
		de->st[kind - 1].any = true;
		de->st[kind - 1].last_slot = slot;
	}
	if (key != want_key)
		return fail(de->err, -EINVAL, "'%s': %s: key %llu, expected %llu",
			    de->src, de->where, (unsigned long long)key,
			    (unsigned long long)want_key);
	img = calloc(1, COWCHAIN_BLOCK_SIZE);
	if (!img)
		return fail(de->err, -ENOMEM, "out of memory");
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
		return fail(de->err, -EINVAL, "'%s': %s: cluster %llu is not in this leaf or out of order",
			    de->src, de->where, (unsigned long long)vcluster);
	if (cowchain_entry_empty(e))
		return fail(de->err, -EINVAL, "'%s': %s: empty entry (leave it out)", de->src, de->where);
	cowchain_entry_pack(e, &leaf->entry[idx]);
	de->st[2].any = true;
	de->st[2].last_slot = idx;
	if (e->phys && push_u64(&de->phys, &de->nphys, &de->capphys, e->phys))
		return fail(de->err, -ENOMEM, "out of memory");
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
		return fail(de->err, -EINVAL, "'%s': %s: %s", de->src, de->where, e.msg);
	}
	if (de_keep(de, blocknr, (u8 *)h)) {
		free(h);
		return fail(de->err, -ENOMEM, "out of memory");
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
	struct stat st;
	int fd, r = 0;

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
			return fail(de->err, -ENOMEM, "out of memory");
	qsort(nrs, n, sizeof(u64), cmp_u64);
	for (i = 1; i < n; i++)
		if (nrs[i] == nrs[i - 1]) {
			r = fail(de->err, -EINVAL, "'%s': block %llu is used twice",
				 de->src, (unsigned long long)nrs[i]);
			goto out;
		}
	qsort(de->phys, de->nphys, sizeof(u64), cmp_u64);
	for (i = 1; i < de->nphys; i++)
		if (de->phys[i] == de->phys[i - 1]) {
			r = fail(de->err, -EINVAL, "'%s': physical cluster %llu is referenced twice",
				 de->src, (unsigned long long)de->phys[i]);
			goto out;
		}
	for (i = 0, j = 0; i < n && j < de->nphys;) {
		u64 c = nrs[i] >> cb;

		if (nrs[i] < de->sb.root_start + de->sb.root_blocks) {
			i++;
		} else if (c == de->phys[j]) {
			r = fail(de->err, -EINVAL, "'%s': metadata block %llu lies in data cluster %llu",
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
		r = fail(de->err, -errno, "cannot open '%s': %s", de->path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st)) {
		r = -errno;
	} else if (S_ISREG(st.st_mode)) {
		if ((u64)st.st_size < cowchain_layout_bytes(&de->sb) &&
		    ftruncate(fd, (off_t)cowchain_layout_bytes(&de->sb)))
			r = -errno;
	} else if (S_ISBLK(st.st_mode)) {
		u64 sz = 0;

		if (ioctl(fd, BLKGETSIZE64, &sz))
			r = -errno;
		else if (sz < cowchain_layout_bytes(&de->sb))
			r = -ENOSPC;
	} else {
		r = -EINVAL;
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
		r = fail(de->err, r, "cannot write '%s': %s", de->path,
			 r == -ENOSPC ? "the device is smaller than the layer's capacity" :
			 r == -EINVAL ? "not a regular file or block device" : strerror(-r));
out:
	free(nrs);
	return r;
}

/* ---- the parser --------------------------------------------------------------- */

static int parse_level(json_object *arr, int kind, const struct cowchain_emitter *em,
		       struct disk_emitter *de, const char *src, struct cowchain_error *err)
{
	size_t i, n, wl = strlen(de->where);
	int r;

	if (!json_object_is_type(arr, json_type_array))
		return fail(err, -EINVAL, "'%s': %s is not an array", src, de->where);
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *kids;

		snprintf(de->where + wl, sizeof(de->where) - wl, "%s%s[%zu]",
			 wl ? "." : "", kind == 3 ? "entries" : kind ? child_name[kind - 1] : "roots", i);
		if (kind == 3) {
			struct ent en;

			r = fields_parse(ent_fields, NF(ent_fields), NULL, o, &en, src, de->where, err);
			if (!r)
				r = em->entry(em->ctx, en.vcluster, &en.e);
		} else {
			struct blk b;

			r = fields_parse(blk_fields, NF(blk_fields), child_name[kind], o, &b,
					 src, de->where, err);
			if (!r && b.slot > 0xffffffffull)
				r = fail(err, -EINVAL, "'%s': %s: slot out of range", src, de->where);
			if (!r && !json_object_object_get_ex(o, child_name[kind], &kids))
				r = fail(err, -EINVAL, "'%s': %s: missing \"%s\"", src, de->where,
					 child_name[kind]);
			if (!r)
				r = em->begin_block(em->ctx, kind, (unsigned)b.slot, b.block, b.key);
			if (!r)
				r = parse_level(kids, kind + 1, em, de, src, err);
			if (!r)
				r = em->end_block(em->ctx, kind);
		}
		if (r)
			return r;
		de->where[wl] = 0;
	}
	return 0;
}

static int parse_dump(json_object *top, const struct cowchain_emitter *em,
		      struct disk_emitter *de, const char *src, struct cowchain_error *err)
{
	static const struct field top_fields[] = { { "version", F_U32, 0 } };
	json_object *v, *roots;
	struct cowchain_sb sb;
	u32 version;
	int r;

	if (!json_object_is_type(top, json_type_object))
		return fail(err, -EINVAL, "'%s': not a cowchain dump (not a JSON object)", src);
	if (!json_object_object_get_ex(top, "format", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), DUMP_FORMAT))
		return fail(err, -EINVAL, "'%s': not a cowchain dump (\"format\" is not \"%s\")",
			    src, DUMP_FORMAT);
	json_object_object_foreach(top, key, val) {
		(void)val;
		if (strcmp(key, "format") && strcmp(key, "version") &&
		    strcmp(key, "superblock") && strcmp(key, "roots"))
			return fail(err, -EINVAL, "'%s': unknown key \"%s\"", src, key);
	}
	r = field_parse(&top_fields[0], top, &version, src, "top level", err);
	if (r)
		return r;
	if (version != DUMP_VERSION)
		return fail(err, -EOPNOTSUPP, "'%s': dump version %u is not supported (this build reads %u)",
			    src, version, DUMP_VERSION);
	if (!json_object_object_get_ex(top, "superblock", &v) ||
	    !json_object_object_get_ex(top, "roots", &roots))
		return fail(err, -EINVAL, "'%s': missing \"superblock\" or \"roots\"", src);
	memset(&sb, 0, sizeof(sb));
	r = fields_parse(sb_fields, NF(sb_fields), NULL, v, &sb, src, "superblock", err);
	if (!r)
		r = em->superblock(em->ctx, &sb);
	if (!r)
		r = parse_level(roots, 0, em, de, src, err);
	if (!r)
		r = em->end(em->ctx);
	return r;
}

static char *slurp(const char *path, size_t *len, struct cowchain_error *err)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	size_t cap = 1 << 16, n = 0;
	struct stat st;
	char *buf;

	if (!f) {
		fail(err, -errno, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (!fstat(fileno(f), &st) && S_ISDIR(st.st_mode)) {
		fail(err, -EISDIR, "cannot open '%s': %s", path, strerror(EISDIR));
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
		fail(err, -ENOMEM, "out of memory");
	else if (ferror(f)) {
		fail(err, -EIO, "cannot read '%s': %s", path, strerror(errno));
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
		return fail(err, -ENOMEM, "out of memory");
	}
	top = json_tokener_parse_ex(tok, text, (int)len);
	if (!top || json_tokener_get_parse_end(tok) < len) {
		enum json_tokener_error je = json_tokener_get_error(tok);
		size_t at = json_tokener_get_parse_end(tok);

		/* Only whitespace may follow the document. */
		while (top && at < len && strchr(" \t\r\n", text[at]))
			at++;
		if (!top || at < len) {
			r = fail(err, -EINVAL, "cannot parse '%s': %s at byte %zu", dump_path,
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
			return fail(err, -EEXIST, "'%s' exists; use --force to overwrite its metadata",
				    path);
		}
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
			json_object_put(top);
			return fail(err, -EINVAL, "cannot open '%s': %s", path,
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
			r = fail(err, -errno, "cannot create '%s': %s", path, strerror(errno));
		else
			close(fd);
	}
	if (!r)
		r = parse_dump(top, &em, &de, dump_path, err);
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
