// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * kernel/format.c, built unchanged in userspace: checksums, superblock
 * pack/unpack, and each validation rule, which must refuse with a message
 * naming the field.
 */
#include <stdlib.h>
#include <string.h>
#include "util.h"

static void test_crc_check_value(void **state)
{
	(void)state;
	assert_int_equal(crc32c(~0u, "123456789", 9) ^ ~0u, 0xE3069283u);
	/* Split updates give the same value (the kernel convention). */
	assert_int_equal(crc32c(crc32c(~0u, "1234", 4), "56789", 5) ^ ~0u, 0xE3069283u);
}

static void good_sb(struct cowchain_sb *sb)
{
	struct cowchain_err e;

	memset(sb, 0, sizeof(*sb));
	sb->version = COWCHAIN_VERSION;
	for (int i = 0; i < COWCHAIN_UUID_SIZE; i++)
		sb->uuid[i] = (u8)(i + 1);
	sb->cluster_shift = 16;
	sb->subblock_shift = 12;
	sb->virtual_size = 1ull << 30;
	sb->generation = 1;
	sb->journal_seq = 1;
	assert_int_equal(cowchain_layout(sb, 256, &e), 0);
}

static void test_sb_roundtrip(void **state)
{
	struct cowchain_sb a, b;
	struct cowchain_sb_disk d;
	struct cowchain_err e;

	(void)state;
	good_sb(&a);
	a.seq = 7;
	a.blocknr = 1;
	a.parent_kind = COWCHAIN_PARENT_LAYER;
	memset(a.parent_uuid, 0x5a, sizeof(a.parent_uuid));
	a.parent_generation = 42;
	a.locator_len = 5;
	memcpy(a.locator, "a.cow", 5);
	a.flags = COWCHAIN_SB_SEALED;
	a.create_time = 123456;
	cowchain_sb_pack(&a, &d);
	assert_int_equal(cowchain_sb_unpack(&d, 1, 0, &b, &e), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* The same block read from the other slot fails: location is hashed. */
	assert_int_not_equal(cowchain_sb_unpack(&d, 0, 0, &b, &e), 0);
	assert_non_null(strstr(e.msg, "checksum"));
}

struct sb_rule {
	const char *name;
	void (*mutate)(struct cowchain_sb *sb);
	const char *needle;
	int code;
};

#define RULE(n, body, needle, code) \
	static void mut_##n(struct cowchain_sb *sb) { body; }
#include "format_rules.h"
#undef RULE
#define RULE(n, body, needle, code) { #n, mut_##n, needle, code },
static const struct sb_rule sb_rules[] = {
#include "format_rules.h"
};
#undef RULE

static void test_sb_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(sb_rules) / sizeof(sb_rules[0]); i++) {
		struct cowchain_sb sb, out;
		struct cowchain_sb_disk d;
		struct cowchain_err e = { { 0 } };
		int r;

		good_sb(&sb);
		sb_rules[i].mutate(&sb);
		cowchain_sb_pack(&sb, &d);
		r = cowchain_sb_unpack(&d, sb.seq & 1, 1u << 20, &out, &e);
		if (r != sb_rules[i].code || !strstr(e.msg, sb_rules[i].needle)) {
			print_error("rule %s: got %d '%s', want %d '%s'\n", sb_rules[i].name,
				       r, e.msg, sb_rules[i].code, sb_rules[i].needle);
			fail();
		}
	}
}

static void test_sb_header_rules(void **state)
{
	struct cowchain_sb sb, out;
	struct cowchain_sb_disk d;
	struct cowchain_err e;

	(void)state;
	good_sb(&sb);
	cowchain_sb_pack(&sb, &d);
	d.hdr.magic ^= 1;
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "bad magic"));

	cowchain_sb_pack(&sb, &d);
	d.virtual_size ^= 1;	/* any bit: checksum */
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "checksum mismatch"));

	cowchain_sb_pack(&sb, &d);
	d.tail[7] = 1;
	cowchain_block_seal(&d, 0);
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "reserved bytes"));

	cowchain_sb_pack(&sb, &d);
	d.hdr.count = cpu_to_le32(1);
	cowchain_block_seal(&d, 0);
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "count"));

	cowchain_sb_pack(&sb, &d);
	d.hdr.reserved0 = cpu_to_le32(1);
	cowchain_block_seal(&d, 0);
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "reserved header"));

	cowchain_sb_pack(&sb, &d);
	d.hdr.blocknr = cpu_to_le64(1);
	cowchain_block_seal(&d, 0);
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "records location"));

	sb.seq = 1;	/* odd seq written to slot 0 */
	cowchain_sb_pack(&sb, &d);
	d.hdr.blocknr = 0;
	cowchain_block_seal(&d, 0);
	assert_int_equal(cowchain_sb_unpack(&d, 0, 0, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "other slot"));
}

/* ---- index blocks ---------------------------------------------------- */

static struct cowchain_sb geo;

static void leaf_init(struct cowchain_leaf_disk *l, u64 nr, u64 key)
{
	memset(l, 0, sizeof(*l));
	cowchain_header_init(l, COWCHAIN_LEAF_MAGIC, nr, geo.uuid, key, 0);
}

static int leaf_with(u64 key, u32 slot, u64 phys, u64 present, u64 zero, u32 count,
		     char *msg)
{
	struct cowchain_leaf_disk l;
	struct cowchain_err e = { { 0 } };
	u64 nr = geo.data_start * 16 + 3;
	int r;

	leaf_init(&l, nr, key);
	l.entry[slot].phys = cpu_to_le64(phys);
	l.entry[slot].present = cpu_to_le64(present);
	l.entry[slot].zero = cpu_to_le64(zero);
	l.hdr.count = cpu_to_le32(count);
	cowchain_block_seal(&l, nr);
	r = cowchain_leaf_check(&l, nr, key, &geo, &e);
	strcpy(msg, e.msg);
	return r;
}

static void test_leaf_rules(void **state)
{
	char m[256];
	u64 ds;

	(void)state;
	good_sb(&geo);
	ds = geo.data_start;
	assert_int_equal(leaf_with(0, 3, ds, 1, 2, 1, m), 0);
	assert_int_equal(leaf_with(0, 3, 0, 0, 0xffff, 1, m), 0);
	assert_int_equal(leaf_with(0, 3, ds, 1, 1, 1, m), -EINVAL);
	assert_non_null(strstr(m, "both present and zero"));
	assert_int_equal(leaf_with(0, 3, ds, 0, 0, 1, m), -EINVAL);
	assert_non_null(strstr(m, "presence bitmap"));
	assert_int_equal(leaf_with(0, 3, 0, 1, 0, 1, m), -EINVAL);
	assert_non_null(strstr(m, "presence bitmap"));
	assert_int_equal(leaf_with(0, 3, geo.capacity, 1, 0, 1, m), -EINVAL);
	assert_non_null(strstr(m, "outside"));
	assert_int_equal(leaf_with(0, 3, ds - 1, 1, 0, 1, m), -EINVAL);
	assert_non_null(strstr(m, "outside"));
	assert_int_equal(leaf_with(0, 3, ds, 1ull << 16, 0, 1, m), -EINVAL);
	assert_non_null(strstr(m, "past the 16 sub-blocks"));
	assert_int_equal(leaf_with(0, 3, ds, 1, 0, 2, m), -EINVAL);
	assert_non_null(strstr(m, "count 2 but 1"));
	/* 1 GiB at 64 KiB = 16384 clusters: the last leaf is 16256..16383. */
	assert_int_equal(leaf_with(16384, 0, ds, 1, 0, 1, m), -EINVAL);
	assert_non_null(strstr(m, "past the virtual size"));
}

static void test_leaf_header_rules(void **state)
{
	struct cowchain_leaf_disk l;
	struct cowchain_err e;
	u64 nr = geo.data_start * 16;

	(void)state;
	good_sb(&geo);
	leaf_init(&l, nr, 128);
	cowchain_block_seal(&l, nr);
	assert_int_equal(cowchain_leaf_check(&l, nr, 128, &geo, &e), 0);
	assert_int_equal(cowchain_leaf_check(&l, nr, 256, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "key 128, expected 256"));
	assert_int_equal(cowchain_leaf_check(&l, nr + 1, 128, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "checksum"));
	l.hdr.uuid[0] ^= 1;
	cowchain_block_seal(&l, nr);
	assert_int_equal(cowchain_leaf_check(&l, nr, 128, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "another layer"));
	leaf_init(&l, nr, 128);
	l.tail[0] = 1;
	cowchain_block_seal(&l, nr);
	assert_int_equal(cowchain_leaf_check(&l, nr, 128, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "after the entries"));
}

static void test_ptr_rules(void **state)
{
	struct cowchain_ptr_disk p;
	struct cowchain_err e;
	u64 nr = 2, inside;

	(void)state;
	good_sb(&geo);
	inside = geo.data_start * 16 + 5;
	memset(&p, 0, sizeof(p));
	cowchain_header_init(&p, COWCHAIN_ROOT_MAGIC, nr, geo.uuid, 0, 1);
	p.ptr[0] = cpu_to_le64(inside);
	cowchain_block_seal(&p, nr);
	assert_int_equal(cowchain_ptr_check(&p, COWCHAIN_ROOT_MAGIC, nr, 0, &geo, &e), 0);
	/* A root block is not a map block. */
	assert_int_equal(cowchain_ptr_check(&p, COWCHAIN_MAP_MAGIC, nr, 0, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "bad magic"));

	p.ptr[0] = cpu_to_le64(3);	/* the journal, not the cluster area */
	cowchain_block_seal(&p, nr);
	assert_int_equal(cowchain_ptr_check(&p, COWCHAIN_ROOT_MAGIC, nr, 0, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "outside the cluster area"));

	p.ptr[0] = cpu_to_le64(inside);
	p.hdr.count = cpu_to_le32(2);
	cowchain_block_seal(&p, nr);
	assert_int_equal(cowchain_ptr_check(&p, COWCHAIN_ROOT_MAGIC, nr, 0, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "count 2 but 1"));

	/* 16384 clusters need root slot 0 only (32768 per map). */
	p.hdr.count = cpu_to_le32(2);
	p.ptr[1] = cpu_to_le64(inside + 1);
	cowchain_block_seal(&p, nr);
	assert_int_equal(cowchain_ptr_check(&p, COWCHAIN_ROOT_MAGIC, nr, 0, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "slot 1 points past the virtual size"));
}

static void test_jdesc_rules(void **state)
{
	struct cowchain_jdesc_disk d;
	struct cowchain_err e;
	u64 pos = 4, nr;

	(void)state;
	good_sb(&geo);
	nr = geo.journal_start + pos;
	memset(&d, 0, sizeof(d));
	cowchain_header_init(&d, COWCHAIN_JDESC_MAGIC, nr, geo.uuid, 9, 2);
	d.jentry[0].home = cpu_to_le64(geo.root_start);
	d.jentry[1].home = cpu_to_le64(geo.data_start * 16);
	cowchain_block_seal(&d, nr);
	assert_int_equal(cowchain_jdesc_check(&d, pos, 9, &geo, &e), 0);
	assert_int_equal(cowchain_jdesc_check(&d, pos, 10, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "key 9, expected 10"));

	d.jentry[1].home = cpu_to_le64(geo.root_start);
	cowchain_block_seal(&d, nr);
	assert_int_equal(cowchain_jdesc_check(&d, pos, 9, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "journaled twice"));

	d.jentry[1].home = cpu_to_le64(geo.journal_start);
	cowchain_block_seal(&d, nr);
	assert_int_equal(cowchain_jdesc_check(&d, pos, 9, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not metadata space"));

	d.jentry[1].home = cpu_to_le64(geo.data_start * 16);
	d.hdr.count = cpu_to_le32(253);
	cowchain_block_seal(&d, nr);
	assert_int_equal(cowchain_jdesc_check(&d, pos, 9, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "do not fit"));

	d.hdr.count = cpu_to_le32(2);
	d.jentry[5].image_csum = 1;
	cowchain_block_seal(&d, nr);
	assert_int_equal(cowchain_jdesc_check(&d, pos, 9, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unused entry 5"));

	/* 2 images from position 254 of 256 do not fit: the writer wraps. */
	d.jentry[5].image_csum = 0;
	nr = geo.journal_start + 254;
	d.hdr.blocknr = cpu_to_le64(nr);
	cowchain_block_seal(&d, nr);
	assert_int_equal(cowchain_jdesc_check(&d, 254, 9, &geo, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "do not fit"));
}

static void test_layout(void **state)
{
	struct cowchain_sb sb;
	struct cowchain_err e;

	(void)state;
	good_sb(&sb);
	assert_int_equal(sb.root_start, 2);
	assert_int_equal(sb.root_blocks, 1);
	assert_int_equal(sb.journal_start, 3);
	assert_int_equal(sb.data_start, (3 + 256 + 15) / 16);
	assert_int_equal(cowchain_sb_validate(&sb, 0, &e), 0);
	sb.virtual_size = 1ull << 40;	/* 2^24 clusters: 2 root blocks */
	assert_int_equal(cowchain_layout(&sb, 16, &e), 0);
	assert_int_equal(sb.root_blocks, 2);
	assert_int_equal(cowchain_layout(&sb, 15, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "journal"));
	sb.cluster_shift = 22;
	assert_int_equal(cowchain_layout(&sb, 16, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "cluster size"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_check_value),
		cmocka_unit_test(test_sb_roundtrip),
		cmocka_unit_test(test_sb_rules),
		cmocka_unit_test(test_sb_header_rules),
		cmocka_unit_test(test_leaf_rules),
		cmocka_unit_test(test_leaf_header_rules),
		cmocka_unit_test(test_ptr_rules),
		cmocka_unit_test(test_jdesc_rules),
		cmocka_unit_test(test_layout),
	};

	return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
