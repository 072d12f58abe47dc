// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Cross-check of the kernel's resolved index (kernel/index.c, built
 * unchanged here) against the library, the reference model: random chains
 * are written through the library, every layer's entries are fed to
 * cowchain_index_build(), and every sub-block of every cluster any layer
 * holds must resolve the same way as a top-down walk of the entries
 * (FORMAT.md 6 step 1), with run lengths that never overstate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"
#include "index.h"

struct feed {
	struct cowchain_ientry *v;
	u64 n, cap;
	u32 layer;
};

static int feed_entry(void *ctx, u64 vc, const struct cowchain_entry *e)
{
	struct feed *f = ctx;

	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 256;
		f->v = realloc(f->v, f->cap * sizeof(*f->v));
		assert_non_null(f->v);
	}
	f->v[f->n++] = (struct cowchain_ientry){ .vc = vc, .phys = e->phys,
		.present = e->present, .zero = e->zero, .layer = f->layer };
	return 0;
}

/* What the library's entries say for (vc, sb), walking top-down. */
static void reference(struct cowchain_chain *c, u64 vc, u32 sb, struct cowchain_ires *r)
{
	u32 d;

	for (d = 0; d < cowchain_chain_depth(c); d++) {
		struct cowchain_entry e;

		if (cowchain_layer_lookup(cowchain_chain_layer(c, d), vc, &e))
			continue;
		if (e.present & (1ull << sb)) {
			r->kind = COWCHAIN_I_DATA;
			r->layer = d;
			r->phys = e.phys;
			return;
		}
		if (e.zero & (1ull << sb)) {
			r->kind = COWCHAIN_I_ZERO;
			r->layer = d;
			r->phys = 0;
			return;
		}
	}
	r->kind = COWCHAIN_I_BELOW;
	r->layer = 0;
	r->phys = 0;
}

static void same(const struct cowchain_ires *a, const struct cowchain_ires *b, u64 vc, u32 sb)
{
	/* The index does not say which layer's zero marker applies: reads
	 * need only "zero".  Data must match layer and cluster. */
	bool eq = a->kind == b->kind &&
		  (a->kind != COWCHAIN_I_DATA || (a->layer == b->layer && a->phys == b->phys));

	if (!eq) {
		print_error("vcluster %llu sub-block %u: index kind %d layer %u phys %llu, "
			    "library kind %d layer %u phys %llu\n",
			    (unsigned long long)vc, sb, a->kind, a->layer,
			    (unsigned long long)a->phys, b->kind, b->layer,
			    (unsigned long long)b->phys);
		fail();
	}
}

static void check_chain(struct cowchain_chain *c)
{
	const struct cowchain_sb *sb = cowchain_layer_sb(cowchain_chain_layer(c, 0));
	u32 n = cowchain_subblocks(sb), d, i;
	struct cowchain_index ix;
	struct feed f = { 0 };
	u64 k, vc, *vcs;

	for (d = 0; d < cowchain_chain_depth(c); d++) {
		f.layer = d;
		assert_int_equal(cowchain_layer_foreach_entry(cowchain_chain_layer(c, d),
							      feed_entry, &f), 0);
	}
	vcs = malloc((f.n + 1) * sizeof(*vcs));
	for (k = 0; k < f.n; k++)
		vcs[k] = f.v[k].vc;
	memset(&ix, 0, sizeof(ix));
	assert_int_equal(cowchain_index_build(&ix, n, f.v, f.n), 0);
	for (k = 0; k < f.n; k++) {
		vc = vcs[k];
		for (i = 0; i < n; i++) {
			struct cowchain_ires got, want, w2;
			u32 run = cowchain_index_lookup(&ix, vc, i, &got), j;

			assert_true(run >= 1 && run <= n - i);
			reference(c, vc, i, &want);
			same(&got, &want, vc, i);
			/* Every sub-block of the run resolves alike, data contiguously. */
			for (j = 1; j < run; j++) {
				reference(c, vc, i + j, &w2);
				same(&got, &w2, vc, i + j);
			}
		}
	}
	/* A cluster no layer holds is below. */
	{
		struct cowchain_ires got;

		cowchain_index_lookup(&ix, cowchain_vclusters(sb) + 5, 0, &got);
		assert_int_equal(got.kind, COWCHAIN_I_BELOW);
	}
	cowchain_index_free(&ix);
	free(vcs);
	free(f.v);
}

static void run_seed(u64 seed)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	char *dir = tu_mkdtemp(), top[32] = "l0.cow", child[32];
	u64 rng = seed * 7919 + 3, size;
	u32 cs = (u32)tu_rand_range(&rng, 12, 15);
	int depth, layer, i;
	u8 *buf = malloc(1 << 18);

	o.cluster_shift = cs;
	o.subblock_shift = (u32)tu_rand_range(&rng, cs - 6 < 9 ? 9 : cs - 6, cs);
	o.size = size = tu_rand_range(&rng, 40, 300) << cs;
	assert_int_equal(cowchain_create(tu_path(dir, top), &o, &err), 0);
	depth = (int)tu_rand_range(&rng, 1, 7);
	for (layer = 0; layer < depth; layer++) {
		assert_int_equal(cowchain_chain_open(tu_path(dir, top), COWCHAIN_OPEN_WRITE, &c, &err), 0);
		for (i = 0; i < 40; i++) {
			u64 off = tu_rand(&rng) % size, len = 1 + tu_rand(&rng) % (3ull << cs);
			u64 kind = tu_rand(&rng) % 4;

			if (len > size - off)
				len = size - off;
			if (len > (1 << 18))
				len = 1 << 18;
			memset(buf, (int)(layer + 1), len);
			if (kind == 0)
				assert_int_equal(cowchain_discard(c, off, len, &err), 0);
			else if (kind == 1)
				assert_int_equal(cowchain_write_zeroes(c, off, len, &err), 0);
			else
				assert_int_equal(cowchain_write(c, buf, off, len, &err), 0);
		}
		check_chain(c);
		assert_int_equal(cowchain_chain_close(c, &err), 0);
		if (layer + 1 < depth) {
			snprintf(child, sizeof(child), "l%d.cow", layer + 1);
			memset(&o, 0, sizeof(o));
			o.parent = tu_path(dir, top);
			assert_int_equal(cowchain_create(tu_path(dir, child), &o, &err), 0);
			strcpy(top, child);
		}
	}
	free(buf);
	tu_rmdir(dir);
}

static void test_index_vs_library(void **state)
{
	(void)state;
	for (u64 s = 1; s <= 6; s++)
		run_seed(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_vs_library),
	};

	return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
