// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain create: a root layer, a child of a parent, or a root over a raw base. */
#include <stdio.h>
#include <unistd.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_SIZE, O_CLUSTER, O_SUBBLOCK, O_JOURNAL, O_PARENT, O_BASE, O_FORCE, O_AUTORESET };

static const struct cli_option options[] = {
	[O_SIZE]     = { "size", "SIZE", "virtual size (suffixes K, M, G, T: powers of 1024)" },
	[O_CLUSTER]  = { "cluster-size", "N", "cluster size, a power of two 4K..2M (default 64K)" },
	[O_SUBBLOCK] = { "subblock-size", "N", "sub-block size, a power of two 512..cluster, at most 64 per cluster (default 4K)" },
	[O_JOURNAL]  = { "journal-size", "N", "journal size in bytes (default 1M, at least 64K)" },
	[O_PARENT]   = { "parent", "PARENT", "make a differencing child of PARENT (seals PARENT)" },
	[O_BASE]     = { "base", "RAWFILE", "make a root over the raw image RAWFILE" },
	[O_FORCE]    = { "force", NULL, "overwrite FILE if it exists" },
	[O_AUTORESET] = { "autoreset", NULL, "empty FILE at every attach (an immutable disk's child)" },
	{ NULL, NULL, NULL },
};

static int shift_of(const struct cli_command *cmd, const struct cli_args *a, int idx,
		    u32 *shift)
{
	u64 v;
	int r = cli_opt_size(cmd, a, idx, &v);

	if (r)
		return r;
	if (!v || (v & (v - 1)))
		return cli_usage(cmd, "--%s %s is not a power of two", options[idx].name, a->val[idx]);
	*shift = (u32)__builtin_ctzll(v);
	return 0;
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_create_opts o = { 0 };
	struct cowchain_error err = { 0 };
	const char *file = a->pos[0];
	int r;

	if (a->set[O_PARENT] && a->set[O_BASE])
		return cli_usage(cmd, "--parent and --base exclude each other");
	if (!a->set[O_SIZE] && !a->set[O_PARENT] && !a->set[O_BASE])
		return cli_usage(cmd, "a root layer needs --size");
	if (a->set[O_PARENT] && (a->set[O_CLUSTER] || a->set[O_SUBBLOCK]))
		return cli_usage(cmd, "a child inherits its parent's cluster and sub-block size");
	if (a->set[O_SIZE] && (r = cli_opt_size(cmd, a, O_SIZE, &o.size)))
		return r;
	if (a->set[O_SIZE] && (!o.size || o.size % 512))
		return cli_usage(cmd, "--size must be a non-zero multiple of 512");
	if (a->set[O_CLUSTER] && (r = shift_of(cmd, a, O_CLUSTER, &o.cluster_shift)))
		return r;
	if (a->set[O_SUBBLOCK] && (r = shift_of(cmd, a, O_SUBBLOCK, &o.subblock_shift)))
		return r;
	if (a->set[O_JOURNAL]) {
		u64 j;

		if ((r = cli_opt_size(cmd, a, O_JOURNAL, &j)))
			return r;
		if (j % COWCHAIN_BLOCK_SIZE)
			return cli_usage(cmd, "--journal-size must be a multiple of 4K");
		o.journal_blocks = j / COWCHAIN_BLOCK_SIZE;
		if (!o.journal_blocks)
			return cli_usage(cmd, "--journal-size must not be zero");
	}
	o.parent = a->val[O_PARENT];
	o.base = a->val[O_BASE];
	o.force = a->set[O_FORCE];
	r = cowchain_create(file, &o, &err);
	if (r)
		return cli_lib_error(&err);
	if (a->set[O_AUTORESET] && cowchain_layer_set_autoreset(file, true, &err)) {
		unlink(file);
		return cli_lib_error(&err);
	}
	return EXIT_OK;
}

const struct cli_command cmd_create = {
	.name = "create",
	.handler = run,
	.synopsis = "FILE (--size SIZE [--cluster-size N] [--subblock-size N] | --parent PARENT | --base RAWFILE [--size SIZE]) [--journal-size N] [--autoreset] [--force]",
	.summary = "create a layer: a root, a child of PARENT (sealing it), or a root over a raw image",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
