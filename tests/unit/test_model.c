// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The model test: random reads, writes, write-zeroes and discards
 * (aligned and not) through a chain that grows by snapshots, checked byte
 * for byte against a plain in-memory disk.  Between steps the chain is
 * flushed, closed and reopened, so every path through commit, checkpoint,
 * journal wrap and index load is exercised.  Deterministic per seed.
 *
 * The model of FORMAT.md 6 in a few lines:
 *   write          bytes change
 *   write-zeroes   bytes become zero
 *   discard        bytes of every fully covered sub-block become zero
 *                  (a sub-block ends at the virtual size at the latest)
 *   snapshot       nothing changes; a larger child reads zeros past the
 *                  parent's end
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

struct model {
	char *dir;
	u64 rng;
	u8 *disk;
	u64 size;
	u32 cs, ss;
	int depth;
	char top[64];
	struct cowchain_chain *c;
	unsigned ops, snapshots, reopens;
};

static void open_chain(struct model *m)
{
	struct cowchain_error err = { 0 };
	int r = cowchain_chain_open(tu_path(m->dir, m->top), COWCHAIN_OPEN_WRITE, &m->c, &err);

	if (r)
		print_error("open: %s\n", err.msg);
	assert_int_equal(r, 0);
	assert_int_equal(cowchain_chain_depth(m->c), m->depth);
	assert_int_equal(cowchain_chain_size(m->c), m->size);
}

static void close_chain(struct model *m)
{
	struct cowchain_error err = { 0 };
	int r = cowchain_chain_close(m->c, &err);

	if (r)
		print_error("close: %s\n", err.msg);
	assert_int_equal(r, 0);
	m->c = NULL;
}

static void compare(struct model *m, u64 off, u64 len)
{
	struct cowchain_error err = { 0 };
	u8 *buf = malloc(len + 1);
	int r;

	assert_non_null(buf);
	r = cowchain_read(m->c, buf, off, len, &err);
	if (r)
		print_error("read: %s\n", err.msg);
	assert_int_equal(r, 0);
	if (memcmp(buf, m->disk + off, len)) {
		u64 i;

		for (i = 0; i < len && buf[i] == m->disk[off + i]; i++)
			;
		print_error("mismatch at byte %llu (op %u): read 0x%02x, model 0x%02x\n",
			    (unsigned long long)(off + i), m->ops, buf[i], m->disk[off + i]);
		fail();
	}
	free(buf);
}

/* A random range: half the time aligned to sub-blocks. */
static void pick_range(struct model *m, u64 *off, u64 *len)
{
	u64 cl = 1ull << m->cs, sb = 1ull << m->ss;
	u64 max = 3 * cl;

	*off = tu_rand(&m->rng) % m->size;
	*len = 1 + tu_rand(&m->rng) % max;
	if (tu_rand(&m->rng) & 1) {
		*off &= ~(sb - 1);
		*len = (*len + sb - 1) & ~(sb - 1);
	}
	if (*len > m->size - *off)
		*len = m->size - *off;
}

static void op_write(struct model *m)
{
	struct cowchain_error err = { 0 };
	u64 off, len, i;
	u8 *buf;
	int r;

	pick_range(m, &off, &len);
	buf = malloc(len);
	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = (u8)(tu_rand(&m->rng) | 1);	/* never zero: zero bugs show */
	r = cowchain_write(m->c, buf, off, len, &err);
	if (r)
		print_error("write: %s\n", err.msg);
	assert_int_equal(r, 0);
	memcpy(m->disk + off, buf, len);
	free(buf);
}

static void op_zero(struct model *m, bool discard)
{
	struct cowchain_error err = { 0 };
	u64 off, len, sb = 1ull << m->ss, s;
	int r;

	pick_range(m, &off, &len);
	r = discard ? cowchain_discard(m->c, off, len, &err)
		    : cowchain_write_zeroes(m->c, off, len, &err);
	if (r)
		print_error("%s: %s\n", discard ? "discard" : "write-zeroes", err.msg);
	assert_int_equal(r, 0);
	if (!discard) {
		memset(m->disk + off, 0, len);
		return;
	}
	for (s = off & ~(sb - 1); s < off + len; s += sb) {
		u64 end = s + sb < m->size ? s + sb : m->size;

		if (s >= off && end <= off + len)
			memset(m->disk + s, 0, end - s);
	}
}

static void op_snapshot(struct model *m)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error err = { 0 };
	char child[64];
	int r;

	close_chain(m);
	snprintf(child, sizeof(child), "l%d.cow", m->depth);
	o.parent = tu_path(m->dir, m->top);
	if (tu_rand(&m->rng) % 4 == 0) {
		u64 grow = (tu_rand(&m->rng) % 3) << m->cs;

		grow += (tu_rand(&m->rng) % 9) * 512;
		o.size = m->size + grow;
		m->disk = realloc(m->disk, o.size);
		assert_non_null(m->disk);
		memset(m->disk + m->size, 0, grow);
		m->size = o.size;
	}
	r = cowchain_create(tu_path(m->dir, child), &o, &err);
	if (r)
		print_error("snapshot: %s\n", err.msg);
	assert_int_equal(r, 0);
	strcpy(m->top, child);
	m->depth++;
	m->snapshots++;
	open_chain(m);
}

static void run_seed(u64 seed, unsigned nops, int max_depth)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error err = { 0 };
	struct model m = { 0 };
	u64 i, raw_size = 0;
	int r;

	m.rng = seed * 0x9e3779b97f4a7c15ull + 1;
	m.dir = tu_mkdtemp();
	m.cs = (u32)tu_rand_range(&m.rng, 12, 16);
	m.ss = (u32)tu_rand_range(&m.rng, m.cs - 6 < 9 ? 9 : m.cs - 6, m.cs);
	m.size = (tu_rand_range(&m.rng, 1, 40) << m.cs) + (tu_rand(&m.rng) % 8) * 512;
	m.disk = calloc(1, m.size);
	assert_non_null(m.disk);
	o.size = m.size;
	o.cluster_shift = m.cs;
	o.subblock_shift = m.ss;
	o.journal_blocks = tu_rand_range(&m.rng, 16, 64);	/* small: wraps and checkpoints */
	if (tu_rand(&m.rng) % 3 == 0) {
		u8 *raw;

		raw_size = tu_rand_range(&m.rng, m.size / 2, m.size + 3000);
		raw = malloc(raw_size + 1);
		for (i = 0; i < raw_size; i++)
			raw[i] = (u8)tu_rand(&m.rng);
		int fd = open(tu_path(m.dir, "base.raw"), O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, raw, raw_size), (ssize_t)raw_size);
		close(fd);
		memcpy(m.disk, raw, raw_size < m.size ? raw_size : m.size);
		free(raw);
		o.base = tu_path(m.dir, "base.raw");
	}
	strcpy(m.top, "l0.cow");
	r = cowchain_create(tu_path(m.dir, m.top), &o, &err);
	if (r)
		print_error("create: %s\n", err.msg);
	assert_int_equal(r, 0);
	m.depth = 1;
	open_chain(&m);
	compare(&m, 0, m.size);

	for (m.ops = 0; m.ops < nops; m.ops++) {
		u64 k = tu_rand(&m.rng) % 100, off, len;

		if (k < 35)
			op_write(&m);
		else if (k < 45)
			op_zero(&m, false);
		else if (k < 55)
			op_zero(&m, true);
		else if (k < 78) {
			pick_range(&m, &off, &len);
			compare(&m, off, len);
		} else if (k < 84) {
			r = cowchain_flush(m.c, &err);
			if (r)
				print_error("flush: %s\n", err.msg);
			assert_int_equal(r, 0);
		} else if (k < 91) {
			close_chain(&m);
			open_chain(&m);
			m.reopens++;
			compare(&m, 0, m.size);
		} else if (k < 96) {
			if (m.depth < max_depth)
				op_snapshot(&m);
		} else {
			compare(&m, 0, m.size);
		}
	}
	compare(&m, 0, m.size);
	close_chain(&m);
	/* Read-only, from scratch: everything committed and checkpointed. */
	r = cowchain_chain_open(tu_path(m.dir, m.top), 0, &m.c, &err);
	assert_int_equal(r, 0);
	compare(&m, 0, m.size);
	for (i = 0; i < (u64)m.depth; i++) {
		struct cowchain_layer_stats st;

		assert_int_equal(cowchain_layer_stats(cowchain_chain_layer(m.c, (u32)i), &st, &err), 0);
		assert_int_equal(st.replayed, 0);
	}
	close_chain(&m);
	free(m.disk);
	tu_rmdir(m.dir);
}

#define SEED_TEST(n, ops, depth) \
	static void test_model_seed_##n(void **state) { (void)state; run_seed(n, ops, depth); }
SEED_TEST(1, 300, 4)
SEED_TEST(2, 300, 6)
SEED_TEST(3, 300, 8)
SEED_TEST(4, 400, 3)
SEED_TEST(5, 400, 10)
SEED_TEST(6, 300, 5)
SEED_TEST(7, 500, 12)
SEED_TEST(8, 300, 2)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_seed_1),
		cmocka_unit_test(test_model_seed_2),
		cmocka_unit_test(test_model_seed_3),
		cmocka_unit_test(test_model_seed_4),
		cmocka_unit_test(test_model_seed_5),
		cmocka_unit_test(test_model_seed_6),
		cmocka_unit_test(test_model_seed_7),
		cmocka_unit_test(test_model_seed_8),
	};

	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
