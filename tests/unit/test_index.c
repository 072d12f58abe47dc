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

/*
 * Synthetic entries, straight into the builder: the field widths and the
 * bucket table change with the vcluster range, the depth and the largest
 * data cluster, which library-made chains of a few hundred clusters never
 * stretch.  The reference resolves each sub-block from the entries.
 */
struct synth {
	u64 nvc;		/* vclusters drawn from [0, nvc) */
	u32 layers, subblocks;
	u64 max_phys;
	u64 per_layer;
	u32 want_words, want_layer_bits;	/* the widths the case is for */
	u32 min_shift;
};

/* Entries sorted by (vc, layer) for the reference (the builder reorders its own copy). */
static int cmp_vl(const void *a, const void *b)
{
	const struct cowchain_ientry *x = a, *y = b;

	if (x->vc != y->vc)
		return x->vc < y->vc ? -1 : 1;
	return x->layer < y->layer ? -1 : x->layer > y->layer;
}

static void ref_synth(const struct cowchain_ientry *e, u64 n, u64 vc, u32 sb,
		      struct cowchain_ires *r)
{
	u64 lo = 0, hi = n;

	while (lo < hi) {		/* first entry of vc */
		u64 mid = lo + (hi - lo) / 2;

		if (e[mid].vc < vc)
			lo = mid + 1;
		else
			hi = mid;
	}
	r->layer = 0;
	r->phys = 0;
	for (; lo < n && e[lo].vc == vc; lo++) {
		if (e[lo].present & (1ull << sb)) {
			r->kind = COWCHAIN_I_DATA;
			r->layer = e[lo].layer;
			r->phys = e[lo].phys;
			return;
		}
		if (e[lo].zero & (1ull << sb)) {
			r->kind = COWCHAIN_I_ZERO;
			return;
		}
	}
	r->kind = COWCHAIN_I_BELOW;
}

static void run_synth(const struct synth *sy, u64 seed)
{
	u64 rng = seed * 104729 + 11, full = sy->subblocks >= 64 ? ~0ull :
		  (1ull << sy->subblocks) - 1, n = 0, k;
	struct cowchain_ientry *e = calloc(sy->layers * sy->per_layer + 1, sizeof(*e));
	struct cowchain_ientry *sorted;
	struct cowchain_index ix;
	u32 l, i;

	assert_non_null(e);
	for (l = 0; l < sy->layers; l++) {
		for (k = 0; k < sy->per_layer; k++) {
			u64 kind = tu_rand(&rng) % 4, p, z;

			p = kind == 0 ? full : tu_rand(&rng) & full;
			z = kind == 3 ? tu_rand(&rng) & full & ~p : 0;
			e[n] = (struct cowchain_ientry){
				.vc = tu_rand(&rng) % sy->nvc, .present = p, .zero = z,
				.phys = tu_rand(&rng) % (sy->max_phys + 1), .layer = l,
			};
			n++;
		}
	}
	/* one entry per (vc, layer), as a layer's index has */
	qsort(e, n, sizeof(*e), cmp_vl);
	for (k = 1, i = 1; k < n; k++)
		if (e[k].vc != e[i - 1].vc || e[k].layer != e[i - 1].layer)
			e[i++] = e[k];
	n = n ? i : 0;
	sorted = malloc((n + 1) * sizeof(*e));
	memcpy(sorted, e, n * sizeof(*e));
	assert_int_equal(cowchain_index_build(&ix, sy->subblocks, e, n), 0);
	assert_int_equal(ix.src_words, sy->want_words);
	assert_int_equal(ix.layer_bits, sy->want_layer_bits);
	assert_true(ix.shift >= sy->min_shift);
	for (k = 0; k < n + 200; k++) {
		/* every held cluster, then some random ones (mostly not held) */
		u64 vc = k < n ? sorted[k].vc : tu_rand(&rng) % (sy->nvc + 5000);

		for (i = 0; i < sy->subblocks; i++) {
			struct cowchain_ires got, want;
			u32 run = cowchain_index_lookup(&ix, vc, i, &got), j;

			assert_true(run >= 1 && run <= sy->subblocks - i);
			ref_synth(sorted, n, vc, i, &want);
			same(&got, &want, vc, i);
			for (j = 1; j < run; j++) {
				ref_synth(sorted, n, vc, i + j, &want);
				same(&got, &want, vc, i + j);
			}
		}
	}
	cowchain_index_free(&ix);
	free(sorted);
	free(e);
}

static void test_index_synthetic(void **state)
{
	static const struct synth cases[] = {
		/* sparse: wide buckets */
		{ 1ull << 40, 5, 16, 1ull << 30, 2000, 1, 3, 27 },
		/* dense, deep, 2-word sources */
		{ 5000, 64, 64, 100000, 300, 2, 6, 8 },
		/* 12-bit layers */
		{ 3000, 4000, 8, 1000, 2, 1, 12, 8 },
		/* phys too big for a 1-word source */
		{ 20000, 3, 16, 1ull << 47, 3000, 2, 2, 8 },
		/* one cluster, one sub-block */
		{ 1, 3, 1, 10, 1, 1, 2, 8 },
		{ 1ull << 20, 2, 32, 1ull << 20, 5000, 2, 1, 8 },
	};
	u64 c;

	(void)state;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		run_synth(&cases[c], c + 1);
}

/* Fields that cannot fit the record are refused, not truncated. */
static void test_index_too_wide(void **state)
{
	struct cowchain_ientry e[2] = {
		{ .vc = 1ull << 46, .phys = (1ull << 48) - 1, .present = 1, .layer = 0 },
		{ .vc = 3, .phys = 5, .present = 1, .layer = 1 },
	};
	struct cowchain_ientry bad_layer = { .vc = 0, .phys = 1, .present = 1,
					     .layer = COWCHAIN_ILAYER_MAX + 1 };
	struct cowchain_index ix;

	(void)state;
	assert_int_equal(cowchain_index_build(&ix, 4, e, 2), -EINVAL);
	cowchain_index_free(&ix);
	assert_int_equal(cowchain_index_build(&ix, 4, &bad_layer, 1), -EINVAL);
	cowchain_index_free(&ix);
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
		cmocka_unit_test(test_index_synthetic),
		cmocka_unit_test(test_index_too_wide),
	};

	return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
