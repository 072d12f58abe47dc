// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain dump: the text format, in both directions (see dump.h).
 *
 *   dump:     cowchain_walk() --walk ops--> json_emitter --> text
 *   restore:  text --> cc_dump_parse() --emitter calls--> disk emitter
 *             (dump_restore.c) --> file
 *
 * Why the emitter and the parser share this file: they both work from
 * sb_fields[], blk_fields[] and ent_fields[] below, and nothing else
 * knows the text.  A field added to a table appears in the dump and is
 * read back by restore, in the same place, with the same encoding.  The
 * parser is strict (unknown keys, wrong types, out-of-order slots are
 * errors) so a hand edit that does not mean what it says is refused
 * instead of guessed at, and the text is canonical: what the parser
 * accepts, the emitter prints back identically.
 *
 * What is not here: checking the metadata the text describes and writing
 * it, which is the disk emitter's work (dump_restore.c); the parser only
 * checks that the text is a well-formed dump.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "internal.h"
#include "check.h"
#include "dump_internal.h"

#define DUMP_FORMAT	"cowchain-dump"
#define DUMP_VERSION	1

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
		return cc_fail(err, -EINVAL, "'%s': %s: missing \"%s\"", src, where, f->name);
	switch (f->type) {
	case F_U32:
	case F_U64: {
		u64 x;

		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" is not a non-negative integer",
				       src, where, f->name);
		x = json_object_get_uint64(v);
		if (f->type == F_U32) {
			if (x > 0xffffffffull)
				return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" does not fit 32 bits",
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
			return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" is not a \"0x\" and 16 hex digits string",
				       src, where, f->name);
		errno = 0;
		*(u64 *)p = strtoull(s + 2, &end, 16);
		if (errno || *end)
			return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" is not hexadecimal",
				       src, where, f->name);
		return 0;
	}
	case F_UUID:
		s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		if (!s || uuid_parse(s, p))
			return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" is not a uuid (36 lowercase characters)",
				       src, where, f->name);
		return 0;
	case F_LOCATOR: {
		struct cowchain_sb *sb = base;
		int len;

		if (!json_object_is_type(v, json_type_string))
			return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" is not a string", src, where, f->name);
		len = json_object_get_string_len(v);
		if (len < 0 || (u32)len > COWCHAIN_LOCATOR_MAX)
			return cc_fail(err, -EINVAL, "'%s': %s: \"%s\" is longer than %u bytes",
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
		return cc_fail(err, -EINVAL, "'%s': %s is not an object", src, where);
	json_object_object_foreach(obj, key, val) {
		(void)val;
		for (i = 0; i < n; i++)
			if (!strcmp(key, t[i].name))
				break;
		if (i == n && !(extra && !strcmp(key, extra)))
			return cc_fail(err, -EINVAL, "'%s': %s: unknown key \"%s\"", src, where, key);
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
		return cc_fail(je->err, -ENOMEM, "out of memory");
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
		return cc_fail(je->err, -ENOMEM, "out of memory");
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
		return cc_fail(je->err, -ENOMEM, "out of memory");
	json_object_array_add(je->arr[3], o);
	return 0;
}

static int je_end(void *ctx)
{
	struct json_emitter *je = ctx;
	const char *s = json_object_to_json_string_ext(je->top,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);

	if (fputs(s, je->out) == EOF || fputc('\n', je->out) == EOF)
		return cc_fail(je->err, -EIO, "cannot write the dump: %s", strerror(errno));
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
		return cc_fail(err, -ENOMEM, "out of memory");
	}
	json_object_object_add(je.top, "format", json_object_new_string(DUMP_FORMAT));
	json_object_object_add(je.top, "version", json_object_new_int(DUMP_VERSION));
	json_object_object_add(je.top, "roots", je.arr[0]);

	r = cowchain_walk(path, &ops, &sb, &have_sb, rep, err);
	if (!r && !have_sb)
		r = cc_fail(err, -EINVAL, "cannot dump '%s': %s", path,
			    rep->n ? rep->f[0].detail : "no valid superblock");
	if (!r)
		r = em.superblock(em.ctx, &sb);
	if (!r)
		r = em.end(em.ctx);
	json_object_put(je.top);
	return r;
}

/* ---- the parser --------------------------------------------------------------- */

static int parse_level(json_object *arr, int kind, const struct cowchain_emitter *em,
		       char *where, size_t wsize, const char *src, struct cowchain_error *err)
{
	size_t i, n, wl = strlen(where);
	int r;

	if (!json_object_is_type(arr, json_type_array))
		return cc_fail(err, -EINVAL, "'%s': %s is not an array", src, where);
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *kids;

		snprintf(where + wl, wsize - wl, "%s%s[%zu]",
			 wl ? "." : "", kind == 3 ? "entries" : kind ? child_name[kind - 1] : "roots", i);
		if (kind == 3) {
			struct ent en;

			r = fields_parse(ent_fields, NF(ent_fields), NULL, o, &en, src, where, err);
			if (!r)
				r = em->entry(em->ctx, en.vcluster, &en.e);
		} else {
			struct blk b;

			r = fields_parse(blk_fields, NF(blk_fields), child_name[kind], o, &b,
					 src, where, err);
			if (!r && b.slot > 0xffffffffull)
				r = cc_fail(err, -EINVAL, "'%s': %s: slot out of range", src, where);
			if (!r && !json_object_object_get_ex(o, child_name[kind], &kids))
				r = cc_fail(err, -EINVAL, "'%s': %s: missing \"%s\"", src, where,
					    child_name[kind]);
			if (!r)
				r = em->begin_block(em->ctx, kind, (unsigned)b.slot, b.block, b.key);
			if (!r)
				r = parse_level(kids, kind + 1, em, where, wsize, src, err);
			if (!r)
				r = em->end_block(em->ctx, kind);
		}
		if (r)
			return r;
		where[wl] = 0;
	}
	return 0;
}

int cc_dump_parse(json_object *top, const struct cowchain_emitter *em,
		  char *where, size_t wsize, const char *src, struct cowchain_error *err)
{
	static const struct field top_fields[] = { { "version", F_U32, 0 } };
	json_object *v, *roots;
	struct cowchain_sb sb;
	u32 version;
	int r;

	if (!json_object_is_type(top, json_type_object))
		return cc_fail(err, -EINVAL, "'%s': not a cowchain dump (not a JSON object)", src);
	if (!json_object_object_get_ex(top, "format", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), DUMP_FORMAT))
		return cc_fail(err, -EINVAL, "'%s': not a cowchain dump (\"format\" is not \"%s\")",
			       src, DUMP_FORMAT);
	json_object_object_foreach(top, key, val) {
		(void)val;
		if (strcmp(key, "format") && strcmp(key, "version") &&
		    strcmp(key, "superblock") && strcmp(key, "roots"))
			return cc_fail(err, -EINVAL, "'%s': unknown key \"%s\"", src, key);
	}
	r = field_parse(&top_fields[0], top, &version, src, "top level", err);
	if (r)
		return r;
	if (version != DUMP_VERSION)
		return cc_fail(err, -EOPNOTSUPP, "'%s': dump version %u is not supported (this build reads %u)",
			       src, version, DUMP_VERSION);
	if (!json_object_object_get_ex(top, "superblock", &v) ||
	    !json_object_object_get_ex(top, "roots", &roots))
		return cc_fail(err, -EINVAL, "'%s': missing \"superblock\" or \"roots\"", src);
	memset(&sb, 0, sizeof(sb));
	r = fields_parse(sb_fields, NF(sb_fields), NULL, v, &sb, src, "superblock", err);
	if (!r)
		r = em->superblock(em->ctx, &sb);
	if (!r)
		r = parse_level(roots, 0, em, where, wsize, src, err);
	if (!r)
		r = em->end(em->ctx);
	return r;
}
