// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Corrupt images: every structure damaged in turn (superblock slots, root,
 * map, leaf, journal), truncated files, forged cycles and wrong parent
 * bindings.  Each must fail with a precise message naming the file and the
 * structure, never crash (ASan/UBSan watch).
 *
 * Fixture: a.cow (root, 4 GiB virtual so it has two map blocks) with data
 * at 0 and at 3 GiB, sealed by its child b.cow, which holds data at 64 KiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

struct fx {
	char *dir;
	const char *a, *b;
};

static void write_at(const char *top, u64 off, u8 v, u64 len)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	u8 *buf = malloc(len);

	memset(buf, v, len);
	assert_int_equal(cowchain_chain_open(top, COWCHAIN_OPEN_WRITE, &c, &err), 0);
	assert_int_equal(cowchain_write(c, buf, off, len, &err), 0);
	assert_int_equal(cowchain_chain_close(c, &err), 0);
	free(buf);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct cowchain_create_opts o = { .size = 4ull << 30 };
	struct cowchain_error err = { 0 };

	f->dir = tu_mkdtemp();
	f->a = strdup(tu_path(f->dir, "a.cow"));
	f->b = strdup(tu_path(f->dir, "b.cow"));
	assert_int_equal(cowchain_create(f->a, &o, &err), 0);
	write_at(f->a, 0, 0xaa, 8192);
	write_at(f->a, 3ull << 30, 0xab, 4096);
	memset(&o, 0, sizeof(o));
	o.parent = f->a;
	assert_int_equal(cowchain_create(f->b, &o, &err), 0);
	write_at(f->b, 65536, 0xbb, 4096);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tu_rmdir(f->dir);
	free((void *)f->a);
	free((void *)f->b);
	free(f);
	return 0;
}

/* Open the chain at top; it must fail with code and a message containing needle. */
static void expect_fail(const char *top, unsigned flags, int code, const char *needle)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c = NULL;
	int r = cowchain_chain_open(top, flags, &c, &err);

	if (r != code || !strstr(err.msg, needle)) {
		print_error("got %d '%s', want %d '%s'\n", r, err.msg, code, needle);
		cowchain_chain_close(c, NULL);
		fail();
	}
	assert_null(c);
}

struct blocks {
	u64 root, map[4], leaf[4];
	int nmap, nleaf;
};

static int collect(void *ctx, enum cowchain_block_kind k, u64 nr, u64 key, const void *img)
{
	struct blocks *b = ctx;

	(void)key, (void)img;
	if (k == COWCHAIN_BLK_ROOT)
		b->root = nr;
	else if (k == COWCHAIN_BLK_MAP && b->nmap < 4)
		b->map[b->nmap++] = nr;
	else if (k == COWCHAIN_BLK_LEAF && b->nleaf < 4)
		b->leaf[b->nleaf++] = nr;
	return 0;
}

static void blocks_of(const char *path, struct blocks *b)
{
	struct cowchain_error err = { 0 };
	struct cowchain_layer *l;

	memset(b, 0, sizeof(*b));
	assert_int_equal(cowchain_layer_open(path, 0, &l, &err), 0);
	assert_int_equal(cowchain_layer_foreach_block(l, collect, b), 0);
	cowchain_layer_close(l, NULL);
}

/* ---- each structure -------------------------------------------------- */

static void test_sb_both_slots(void **state)
{
	struct fx *f = *state;

	tu_flip_bit(f->b, 200, 3);
	tu_flip_bit(f->b, 4096 + 200, 3);
	expect_fail(f->b, 0, -EUCLEAN, "no valid superblock (slot 0: superblock at block 0: checksum mismatch");
}

static void test_sb_newest_slot(void **state)
{
	struct fx *f = *state;
	struct cowchain_error err = { 0 };
	struct cowchain_layer *l;
	struct cowchain_sb sb;

	/* The other slot holds the previous version: the layer still opens. */
	tu_read_sb(f->b, &sb);
	tu_flip_bit(f->b, (sb.seq & 1) * 4096 + 130, 0);
	assert_int_equal(cowchain_layer_open(f->b, 0, &l, &err), 0);
	assert_int_equal(cowchain_layer_sb(l)->seq, sb.seq - 1);
	cowchain_layer_close(l, NULL);
}

static void test_root_block(void **state)
{
	struct fx *f = *state;
	struct blocks b;

	blocks_of(f->a, &b);
	tu_flip_bit(f->a, b.root * 4096 + 64, 1);
	expect_fail(f->b, 0, -EUCLEAN, "root block at block 2: checksum mismatch");
	/* The child names its parent and the parent names the structure. */
	expect_fail(f->b, 0, -EUCLEAN, "b.cow': parent: '");
	expect_fail(f->b, 0, -EUCLEAN, "a.cow': root block");
}

static void test_map_block(void **state)
{
	struct fx *f = *state;
	struct blocks b;
	char want[64];

	blocks_of(f->a, &b);
	assert_int_equal(b.nmap, 2);
	tu_flip_bit(f->a, b.map[1] * 4096 + 1000, 7);
	snprintf(want, sizeof(want), "map block at block %llu: checksum", (unsigned long long)b.map[1]);
	expect_fail(f->b, 0, -EUCLEAN, want);
}

static void test_leaf_block(void **state)
{
	struct fx *f = *state;
	struct blocks b;
	char want[64];

	blocks_of(f->b, &b);
	assert_int_equal(b.nleaf, 1);
	tu_flip_bit(f->b, b.leaf[0] * 4096 + 8, 0);	/* blocknr field */
	snprintf(want, sizeof(want), "leaf block at block %llu: checksum", (unsigned long long)b.leaf[0]);
	expect_fail(f->b, 0, -EUCLEAN, want);
}

/* Rewrite a leaf with fn and re-seal it: valid checksum, bad contents. */
static void forge_leaf(const char *path, u64 nr, void (*fn)(struct cowchain_leaf_disk *, u64 nr))
{
	struct cowchain_leaf_disk l;

	tu_read(path, nr * 4096, &l, sizeof(l));
	fn(&l, nr);
	cowchain_block_seal(&l, nr);
	tu_write(path, nr * 4096, &l, sizeof(l));
}

static void dup_phys(struct cowchain_leaf_disk *l, u64 nr)
{
	(void)nr;
	l->entry[1] = l->entry[0];
	l->hdr.count = cpu_to_le32(le32_to_cpu(l->hdr.count) + 1);
}

static void meta_phys(struct cowchain_leaf_disk *l, u64 nr)
{
	l->entry[0].phys = cpu_to_le64(nr / 16);	/* 64 KiB clusters: 16 blocks */
}

static void both_bits(struct cowchain_leaf_disk *l, u64 nr)
{
	(void)nr;
	l->entry[0].zero = l->entry[0].present;
}

static void test_leaf_contents(void **state)
{
	struct fx *f = *state;
	struct blocks b;

	blocks_of(f->a, &b);
	tu_copy(f->a, tu_path(f->dir, "saved"));
	forge_leaf(f->a, b.leaf[0], dup_phys);
	expect_fail(f->b, 0, -EUCLEAN, "cluster 1: data cluster");
	expect_fail(f->b, 0, -EUCLEAN, "is already used by cluster 0");

	tu_copy(tu_path(f->dir, "saved"), f->a);
	forge_leaf(f->a, b.leaf[0], meta_phys);
	expect_fail(f->b, 0, -EUCLEAN, "is also a metadata cluster");

	tu_copy(tu_path(f->dir, "saved"), f->a);
	forge_leaf(f->a, b.leaf[0], both_bits);
	expect_fail(f->b, 0, -EUCLEAN, "marked both present and zero");
}

static void test_journal(void **state)
{
	struct fx *f = *state;
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	const char *crash = tu_path(f->dir, "crash.cow");
	struct cowchain_sb sb;
	u8 buf[4096], want[4096];
	int pass;

	/* A commit that was never checkpointed: the journal holds it. */
	memset(want, 0xcc, sizeof(want));
	assert_int_equal(cowchain_chain_open(f->b, COWCHAIN_OPEN_WRITE, &c, &err), 0);
	assert_int_equal(cowchain_write(c, want, 1 << 20, 4096, &err), 0);
	assert_int_equal(cowchain_flush(c, &err), 0);
	tu_copy(f->b, crash);
	assert_int_equal(cowchain_chain_close(c, &err), 0);
	tu_copy(crash, tu_path(f->dir, "crash.saved"));

	for (pass = 0; pass < 3; pass++) {
		tu_copy(tu_path(f->dir, "crash.saved"), crash);
		tu_read_sb(crash, &sb);
		if (pass == 1)		/* torn image */
			tu_flip_bit(crash, (sb.journal_start + sb.journal_head + 1) * 4096 + 300, 2);
		if (pass == 2)		/* torn descriptor */
			tu_flip_bit(crash, (sb.journal_start + sb.journal_head) * 4096 + 70, 5);
		assert_int_equal(cowchain_chain_open(crash, 0, &c, &err), 0);
		assert_int_equal(cowchain_read(c, buf, 1 << 20, 4096, &err), 0);
		if (pass == 0)
			assert_memory_equal(buf, want, 4096);
		else {
			memset(want, 0, sizeof(want));
			assert_memory_equal(buf, want, 4096);	/* the transaction is ignored */
			memset(want, 0xcc, sizeof(want));
		}
		assert_int_equal(cowchain_read(c, buf, 65536, 4096, &err), 0);
		assert_int_equal(buf[0], 0xbb);		/* older, checkpointed data intact */
		assert_int_equal(cowchain_chain_close(c, &err), 0);
	}
}

static void test_truncated(void **state)
{
	struct fx *f = *state;

	tu_truncate(f->a, 1 << 20);
	expect_fail(f->b, 0, -EUCLEAN, "exceeds the device");
	tu_truncate(f->a, 4096);
	expect_fail(f->b, 0, -EUCLEAN, "a.cow': too small to be a cowchain layer (4096 bytes)");
	tu_truncate(f->a, 0);
	expect_fail(f->b, 0, -EUCLEAN, "too small");
}

/* ---- chain links ----------------------------------------------------- */

struct link_ctx {
	struct cowchain_sb other;
};

static void make_child_of_other(struct cowchain_sb *sb, void *ctx)
{
	struct link_ctx *k = ctx;

	sb->parent_kind = COWCHAIN_PARENT_LAYER;
	memcpy(sb->parent_uuid, k->other.uuid, COWCHAIN_UUID_SIZE);
	sb->parent_generation = k->other.generation;
	sb->locator_len = 5;
	memcpy(sb->locator, "c.cow", 5);
}

static void test_cycle(void **state)
{
	struct fx *f = *state;
	struct cowchain_create_opts o = { .parent = f->b };
	struct cowchain_error err = { 0 };
	const char *c = tu_path(f->dir, "c.cow");
	struct link_ctx k;

	assert_int_equal(cowchain_create(c, &o, &err), 0);
	tu_read_sb(c, &k.other);
	/* a becomes the child of c, its own grandchild. */
	tu_rewrite_sb(f->a, make_child_of_other, &k);
	expect_fail(c, 0, -ELOOP, "a cycle");
}

static void bad_parent_uuid(struct cowchain_sb *sb, void *ctx)
{
	(void)ctx;
	sb->parent_uuid[5] ^= 0x40;
}

static void bump_parent_gen(struct cowchain_sb *sb, void *ctx)
{
	(void)ctx;
	sb->parent_generation++;
}

static void test_wrong_parent(void **state)
{
	struct fx *f = *state;
	struct cowchain_sb a;
	char want[128];

	tu_read_sb(f->a, &a);
	tu_copy(f->b, tu_path(f->dir, "saved"));
	tu_rewrite_sb(f->b, bad_parent_uuid, NULL);
	expect_fail(f->b, 0, -ESTALE, "child expects");
	expect_fail(f->b, 0, -ESTALE, "has uuid");

	tu_copy(tu_path(f->dir, "saved"), f->b);
	tu_rewrite_sb(f->b, bump_parent_gen, NULL);
	snprintf(want, sizeof(want), "a.cow' has generation %llu, child expects %llu",
		 (unsigned long long)a.generation, (unsigned long long)a.generation + 1);
	expect_fail(f->b, 0, -ESTALE, want);

	tu_copy(tu_path(f->dir, "saved"), f->b);
	assert_int_equal(rename(f->a, tu_path(f->dir, "moved.cow")), 0);
	expect_fail(f->b, 0, -ENOENT, "b.cow': parent: cannot open");
}

static void grow(struct cowchain_sb *sb, void *ctx)
{
	(void)ctx;
	sb->virtual_size += 512;
}

static void needs_check(struct cowchain_sb *sb, void *ctx)
{
	(void)ctx;
	sb->flags |= COWCHAIN_SB_NEEDS_CHECK;
}

static void incompat(struct cowchain_sb *sb, void *ctx)
{
	(void)ctx;
	sb->incompat |= 1u << 7;
}

static void test_flags_and_sizes(void **state)
{
	struct fx *f = *state;

	/* Sealed parents are never written. */
	expect_fail(f->a, COWCHAIN_OPEN_WRITE, -EROFS, "sealed");
	tu_copy(f->a, tu_path(f->dir, "saved"));
	tu_rewrite_sb(f->a, grow, NULL);
	expect_fail(f->b, 0, -EUCLEAN, "is larger");
	tu_copy(tu_path(f->dir, "saved"), f->a);
	tu_rewrite_sb(f->b, needs_check, NULL);
	expect_fail(f->b, COWCHAIN_OPEN_WRITE, -EROFS, "needs 'cowchain check'");
	tu_rewrite_sb(f->b, incompat, NULL);
	expect_fail(f->b, 0, -EOPNOTSUPP, "unknown incompatible features 0x80");
}

static void test_garbage(void **state)
{
	struct fx *f = *state;
	const char *g = tu_path(f->dir, "garbage");
	u8 junk[3 * 4096];
	u64 rng = 5;

	(void)state;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (u8)tu_rand(&rng);
	tu_copy(f->a, g);
	tu_write(g, 0, junk, sizeof(junk));
	expect_fail(g, 0, -EUCLEAN, "no valid superblock (slot 0: superblock at block 0: bad magic");
	expect_fail(tu_path(f->dir, "missing"), 0, -ENOENT, "cannot open");
	expect_fail(f->dir, 0, -EISDIR, "cannot open");
}

/*
 * Random damage to metadata: whatever it hits, open either fails with a
 * message or yields a chain whose reads and map work (ASan/UBSan watch).
 */
static void test_random_flips(void **state)
{
	struct fx *f = *state;
	const char *sa = tu_path(f->dir, "a.saved"), *sb = tu_path(f->dir, "b.saved");
	struct blocks ba, bb;
	struct cowchain_sb s;
	u64 rng = 1234, meta_end;
	u8 buf[8192];
	int i, opened = 0;

	blocks_of(f->a, &ba);
	blocks_of(f->b, &bb);
	tu_read_sb(f->a, &s);
	meta_end = s.journal_start + s.journal_blocks;
	tu_copy(f->a, sa);
	tu_copy(f->b, sb);
	for (i = 0; i < 200; i++) {
		struct cowchain_error err = { 0 };
		struct cowchain_chain *c;
		const char *victim = i & 1 ? f->a : f->b;
		struct blocks *b = i & 1 ? &ba : &bb;
		u64 blk, k = tu_rand(&rng) % 4;
		int flips = 1 + (int)(tu_rand(&rng) % 3);

		tu_copy(sa, f->a);
		tu_copy(sb, f->b);
		blk = k == 0 ? tu_rand(&rng) % meta_end :
		      k == 1 ? b->root : k == 2 && b->nmap ? b->map[0] : b->leaf[0];
		while (flips--)
			tu_flip_bit(victim, blk * 4096 + tu_rand(&rng) % 4096, (unsigned)(tu_rand(&rng) % 8));
		if (cowchain_chain_open(f->b, 0, &c, &err)) {
			assert_true(err.msg[0] != 0);
			continue;
		}
		opened++;
		assert_int_equal(cowchain_read(c, buf, 0, sizeof(buf), &err), 0);
		assert_int_equal(cowchain_read(c, buf, 65536, sizeof(buf), &err), 0);
		{
			struct cowchain_extent e;
			u64 off = 0;

			while (off < cowchain_chain_size(c)) {
				assert_int_equal(cowchain_resolve(c, off, ~0ull, &e, &err), 0);
				off += e.length;
			}
		}
		cowchain_chain_close(c, NULL);
	}
	assert_true(opened > 0);	/* e.g. the unused superblock slot or journal */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_sb_both_slots), T(test_sb_newest_slot), T(test_root_block),
		T(test_map_block), T(test_leaf_block), T(test_leaf_contents),
		T(test_journal), T(test_truncated), T(test_cycle), T(test_wrong_parent),
		T(test_flags_and_sizes), T(test_garbage), T(test_random_flips),
	};

	return cmocka_run_group_tests_name("corrupt", tests, NULL, NULL);
}
