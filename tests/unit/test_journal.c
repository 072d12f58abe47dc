// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Journal: kernel/journal.c replay and placement over an in-memory device
 * (complete, torn, wrapped and stale transactions), then the library's
 * commit/checkpoint through crash images: a copy of the file taken right
 * after each flush must reopen to exactly the data of that flush.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"
#include "internal.h"
#include "journal.h"

#define JBLOCKS 16
#define NBLOCKS 64

struct memdev {
	u8 blk[NBLOCKS][COWCHAIN_BLOCK_SIZE];
	u64 applied[64];
	u8 applied_fill[64];
	int napplied;
};

static struct cowchain_sb jsb;

static void jsb_init(u64 head, u64 seq)
{
	struct cowchain_err e;

	memset(&jsb, 0, sizeof(jsb));
	jsb.version = 1;
	memset(jsb.uuid, 0x33, sizeof(jsb.uuid));
	jsb.cluster_shift = 12;
	jsb.subblock_shift = 12;
	jsb.virtual_size = 1 << 20;
	assert_int_equal(cowchain_layout(&jsb, JBLOCKS, &e), 0);
	jsb.journal_head = head;
	jsb.journal_seq = seq;
}

static int md_read(void *ctx, u64 nr, void *buf)
{
	struct memdev *d = ctx;

	if (nr >= NBLOCKS)
		return -EIO;
	memcpy(buf, d->blk[nr], COWCHAIN_BLOCK_SIZE);
	return 0;
}

static int md_apply(void *ctx, u64 home, const void *image)
{
	struct memdev *d = ctx;
	const struct cowchain_leaf_disk *l = image;

	d->applied[d->napplied] = home;
	d->applied_fill[d->napplied++] = (u8)le64_to_cpu(l->entry[0].zero);
	return 0;
}

/* A leaf image for home whose entry 0 carries fill as its zero bitmap. */
static void make_image(void *img, u64 home, u8 fill)
{
	struct cowchain_leaf_disk *l = img;

	memset(l, 0, sizeof(*l));
	cowchain_header_init(l, COWCHAIN_LEAF_MAGIC, home, jsb.uuid, 0, 1);
	l->entry[0].zero = cpu_to_le64(fill);
	cowchain_block_seal(l, home);
}

/* Write a transaction of n images (homes data_start..+n) at pos with seq. */
static void put_tx(struct memdev *d, u64 pos, u64 seq, u32 n, u8 fill)
{
	u64 homes[8];
	void *imgs[8];
	u32 i;

	for (i = 0; i < n; i++) {
		homes[i] = jsb.data_start + i;
		imgs[i] = d->blk[jsb.journal_start + pos + 1 + i];
		make_image(imgs[i], homes[i], (u8)(fill + i));
	}
	cowchain_jdesc_build((struct cowchain_jdesc_disk *)d->blk[jsb.journal_start + pos],
			     &jsb, pos, seq, homes, imgs, n);
}

static int replay(struct memdev *d, struct cowchain_journal_pos *end, u64 *n)
{
	struct cowchain_journal_io io = { d, md_read, md_apply };
	struct cowchain_err e = { { 0 } };
	static u8 scratch[2 * COWCHAIN_BLOCK_SIZE];

	d->napplied = 0;
	return cowchain_journal_replay(&jsb, &io, scratch, end, n, &e);
}

static void test_replay_complete(void **state)
{
	struct memdev *d = calloc(1, sizeof(*d));
	struct cowchain_journal_pos end;
	u64 n;

	(void)state;
	jsb_init(0, 1);
	put_tx(d, 0, 1, 2, 10);
	put_tx(d, 3, 2, 1, 20);
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(end.pos, 5);
	assert_int_equal(end.seq, 3);
	assert_int_equal(d->napplied, 3);
	assert_int_equal(d->applied_fill[0], 10);
	assert_int_equal(d->applied_fill[1], 11);
	assert_int_equal(d->applied_fill[2], 20);
	free(d);
}

static void test_replay_torn_image(void **state)
{
	struct memdev *d = calloc(1, sizeof(*d));
	struct cowchain_journal_pos end;
	u64 n;

	(void)state;
	jsb_init(0, 1);
	put_tx(d, 0, 1, 2, 10);
	put_tx(d, 3, 2, 3, 20);
	d->blk[jsb.journal_start + 5][100] ^= 1;	/* second image of tx 2 */
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(end.pos, 3);
	assert_int_equal(end.seq, 2);
	assert_int_equal(d->napplied, 2);	/* nothing of tx 2 applied */
	free(d);
}

static void test_replay_torn_descriptor(void **state)
{
	struct memdev *d = calloc(1, sizeof(*d));
	struct cowchain_journal_pos end;
	u64 n;

	(void)state;
	jsb_init(0, 1);
	put_tx(d, 0, 1, 1, 10);
	put_tx(d, 2, 2, 1, 20);
	d->blk[jsb.journal_start + 2][70] ^= 4;
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(end.pos, 2);
	free(d);
}

static void test_replay_wrapped(void **state)
{
	struct memdev *d = calloc(1, sizeof(*d));
	struct cowchain_journal_pos end;
	u64 n;

	(void)state;
	jsb_init(12, 5);
	put_tx(d, 12, 5, 2, 10);	/* 12..14 */
	put_tx(d, 0, 6, 3, 20);		/* needs 4: does not fit at 15, wrapped */
	put_tx(d, 4, 7, 1, 30);
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(end.pos, 6);
	assert_int_equal(end.seq, 8);
	assert_int_equal(d->applied_fill[2], 20);
	assert_int_equal(d->applied_fill[5], 30);
	free(d);
}

static void test_replay_stale(void **state)
{
	struct memdev *d = calloc(1, sizeof(*d));
	struct cowchain_journal_pos end;
	u64 n;

	(void)state;
	/* An older lap's descriptor at the head: not the expected sequence. */
	jsb_init(0, 10);
	put_tx(d, 0, 9, 1, 10);
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(end.pos, 0);
	assert_int_equal(end.seq, 10);

	/* Right descriptor, but an image left from an older lap. */
	put_tx(d, 0, 10, 2, 10);
	make_image(d->blk[jsb.journal_start + 2], jsb.data_start + 1, 99);
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(d->napplied, 0);

	/* A descriptor of another layer (uuid) is not ours. */
	put_tx(d, 0, 10, 1, 10);
	jsb.uuid[0] ^= 1;
	assert_int_equal(replay(d, &end, &n), 0);
	assert_int_equal(n, 0);
	free(d);
}

static void test_place(void **state)
{
	(void)state;
	jsb_init(0, 1);
	assert_int_equal(cowchain_journal_place(&jsb, 0, 0, true, 3), 0);
	assert_int_equal(cowchain_journal_place(&jsb, 0, 4, false, 3), 4);
	assert_int_equal(cowchain_journal_place(&jsb, 4, 14, false, 3), 0);	/* wraps */
	assert_int_equal(cowchain_journal_place(&jsb, 2, 14, false, 3), -ENOSPC);
	assert_int_equal(cowchain_journal_place(&jsb, 8, 2, false, 3), 2);
	assert_int_equal(cowchain_journal_place(&jsb, 5, 2, false, 3), -ENOSPC);
	assert_int_equal(cowchain_journal_place(&jsb, 5, 5, false, 1), -ENOSPC);
	assert_int_equal(cowchain_journal_place(&jsb, 0, 0, true, 16), -EINVAL);
}

/* ---- the library: crash images after each flush ---------------------- */

static void test_crash_images(void **state)
{
	struct cowchain_create_opts o = { .size = 4 << 20, .cluster_shift = 14,
					  .subblock_shift = 12, .journal_blocks = 16 };
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	char *dir = tu_mkdtemp();
	const u32 steps = 24;
	u8 *model[24], *buf = malloc(o.size);
	u64 rng = 77;
	char name[32];
	u32 i, k;

	(void)state;
	assert_int_equal(cowchain_create(tu_path(dir, "j.cow"), &o, &err), 0);
	assert_int_equal(cowchain_chain_open(tu_path(dir, "j.cow"), COWCHAIN_OPEN_WRITE, &c, &err), 0);
	for (i = 0; i < steps; i++) {
		model[i] = malloc(o.size);
		if (i)
			memcpy(model[i], model[i - 1], o.size);
		else
			memset(model[i], 0, o.size);
		for (k = 0; k < 1 + i % 5; k++) {
			/* Spread over many leaves so transactions are large. */
			u64 off = (tu_rand(&rng) % (o.size / 4096)) * 4096;
			u64 len = 512 * (1 + tu_rand(&rng) % 16);
			u8 v = (u8)(i * 7 + k + 1);

			if (len > o.size - off)
				len = o.size - off;
			memset(buf, v, len);
			if (k == 3) {
				assert_int_equal(cowchain_discard(c, off, len, &err), 0);
				for (u64 s = off & ~4095ull; s < off + len; s += 4096)
					if (s >= off && s + 4096 <= off + len)
						memset(model[i] + s, 0, 4096);
			} else {
				assert_int_equal(cowchain_write(c, buf, off, len, &err), 0);
				memcpy(model[i] + off, buf, len);
			}
		}
		assert_int_equal(cowchain_flush(c, &err), 0);
		snprintf(name, sizeof(name), "crash%u.cow", i);
		tu_copy(tu_path(dir, "j.cow"), tu_path(dir, name));
	}
	assert_int_equal(cowchain_chain_close(c, &err), 0);

	for (i = 0; i < steps; i++) {
		snprintf(name, sizeof(name), "crash%u.cow", i);
		assert_int_equal(cowchain_chain_open(tu_path(dir, name), 0, &c, &err), 0);
		assert_int_equal(cowchain_read(c, buf, 0, o.size, &err), 0);
		assert_memory_equal(buf, model[i], o.size);
		assert_int_equal(cowchain_chain_close(c, &err), 0);
		/* A writer replays and checkpoints; the result is the same. */
		assert_int_equal(cowchain_chain_open(tu_path(dir, name), COWCHAIN_OPEN_WRITE, &c, &err), 0);
		assert_int_equal(cowchain_chain_close(c, &err), 0);
		assert_int_equal(cowchain_chain_open(tu_path(dir, name), 0, &c, &err), 0);
		{
			struct cowchain_layer_stats st;

			assert_int_equal(cowchain_layer_stats(cowchain_chain_layer(c, 0), &st, &err), 0);
			assert_int_equal(st.replayed, 0);
		}
		assert_int_equal(cowchain_read(c, buf, 0, o.size, &err), 0);
		assert_memory_equal(buf, model[i], o.size);
		assert_int_equal(cowchain_chain_close(c, &err), 0);
		free(model[i]);
	}
	free(buf);
	tu_rmdir(dir);
}

/* One commit of far more images than a 16-block journal holds. */
static void test_big_commit_small_journal(void **state)
{
	struct cowchain_create_opts o = { .size = 64 << 20, .cluster_shift = 12,
					  .subblock_shift = 12, .journal_blocks = 16 };
	struct cowchain_error err = { 0 };
	struct cowchain_layer_stats st;
	struct cowchain_chain *c;
	char *dir = tu_mkdtemp();
	const char *base = tu_path(dir, "base.cow");
	const char *p = tu_path(dir, "big.cow");
	u8 *buf = malloc(1 << 20), *zero = calloc(1, 1 << 20);

	(void)state;
	/* A child: only a layer with a parent records zero markers. */
	assert_int_equal(cowchain_create(base, &o, &err), 0);
	o.parent = base;
	o.size = 0;
	assert_int_equal(cowchain_create(p, &o, &err), 0);
	o.size = 64 << 20;
	assert_int_equal(cowchain_chain_open(p, COWCHAIN_OPEN_WRITE, &c, &err), 0);
	memset(buf, 0x5c, 1 << 20);
	assert_int_equal(cowchain_write(c, buf, 5 << 20, 1 << 20, &err), 0);
	/* 16384 clusters: 128 leaves and a map, all dirty in one commit. */
	assert_int_equal(cowchain_write_zeroes(c, 0, o.size, &err), 0);
	if (cowchain_flush(c, &err))
		print_error("%s\n", err.msg);
	assert_int_equal(cowchain_flush(c, &err), 0);
	assert_int_equal(cowchain_write(c, buf, 7 << 20, 1 << 20, &err), 0);
	assert_int_equal(cowchain_chain_close(c, &err), 0);
	assert_int_equal(cowchain_chain_open(p, 0, &c, &err), 0);
	assert_int_equal(cowchain_layer_stats(cowchain_chain_layer(c, 0), &st, &err), 0);
	assert_int_equal(st.leaf_blocks, 128);
	assert_int_equal(st.zero_subblocks, 16384 - 256);
	assert_int_equal(st.data_clusters, 256);
	assert_int_equal(cowchain_read(c, buf, 5 << 20, 1 << 20, &err), 0);
	assert_memory_equal(buf, zero, 1 << 20);
	assert_int_equal(cowchain_read(c, buf, 7 << 20, 1 << 20, &err), 0);
	assert_int_equal(buf[0], 0x5c);
	assert_int_equal(buf[(1 << 20) - 1], 0x5c);
	assert_int_equal(cowchain_chain_close(c, &err), 0);
	free(buf);
	free(zero);
	tu_rmdir(dir);
}

/*
 * A superblock write that fails must not count (FORMAT.md 4): the next one
 * goes into the same slot again, never over the last good superblock.  The
 * failure: the layer's descriptor swapped for a read-only one of the file.
 */
static void test_sb_write_failure(void **state)
{
	struct cowchain_create_opts o = { .size = 4u << 20 };
	struct cowchain_error err = { 0 };
	struct cowchain_layer *l;
	struct cowchain_sb sb;
	char *dir = tu_mkdtemp();
	const char *p = tu_path(dir, "a.cow");
	u8 good[COWCHAIN_BLOCK_SIZE], now[COWCHAIN_BLOCK_SIZE];
	u64 seq, slot;
	int fd;

	(void)state;
	assert_int_equal(cowchain_create(p, &o, &err), 0);
	assert_int_equal(cowchain_layer_open(p, COWCHAIN_OPEN_WRITE, &l, &err), 0);
	assert_int_equal(cc_sb_write(l, &err), 0);	/* both slots hold one */
	seq = l->sb.seq;
	slot = seq & 1;
	tu_read(p, slot * COWCHAIN_BLOCK_SIZE, good, sizeof(good));

	fd = l->fd;
	l->fd = open(p, O_RDONLY);
	assert_true(l->fd >= 0);
	assert_true(cc_sb_write(l, &err) < 0);
	assert_int_equal(l->sb.seq, seq);
	close(l->fd);
	l->fd = fd;

	assert_int_equal(cc_sb_write(l, &err), 0);
	assert_int_equal(l->sb.seq, seq + 1);
	tu_read(p, slot * COWCHAIN_BLOCK_SIZE, now, sizeof(now));
	assert_memory_equal(good, now, sizeof(good));
	tu_read_sb(p, &sb);
	assert_int_equal(sb.seq, seq + 1);
	assert_int_equal(cowchain_layer_close(l, &err), 0);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_complete),
		cmocka_unit_test(test_replay_torn_image),
		cmocka_unit_test(test_replay_torn_descriptor),
		cmocka_unit_test(test_replay_wrapped),
		cmocka_unit_test(test_replay_stale),
		cmocka_unit_test(test_place),
		cmocka_unit_test(test_crash_images),
		cmocka_unit_test(test_big_commit_small_journal),
		cmocka_unit_test(test_sb_write_failure),
	};

	return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
