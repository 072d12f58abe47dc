// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain resize: grow the virtual size of a top, offline or live. */
#include <stdio.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_SIZE };

static const struct cli_option options[] = {
	[O_SIZE] = { "size", "SIZE", "the new virtual size (suffixes K, M, G, T); only growing" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	const char *arg = a->pos[0];
	char name[128];
	u64 size;
	int live, r;

	if (!a->set[O_SIZE])
		return cli_usage(cmd, "--size is required");
	if ((r = cli_opt_size(cmd, a, O_SIZE, &size)))
		return r;
	if (!size || size % 512)
		return cli_usage(cmd, "--size must be a non-zero multiple of 512");
	live = cowchain_resolve_arg(arg, name, &err);
	if (live < 0)
		return cli_error("cannot resize '%s': %s", arg, err.msg);
	r = live ? cowchain_live_grow(name, size, &err) : cowchain_layer_grow(arg, size, &err);
	if (r)
		return cli_error("cannot resize '%s': %s", arg, err.msg);
	return EXIT_OK;
}

const struct cli_command cmd_resize = {
	.name = "resize",
	.handler = run,
	.synopsis = "TOP|NAME --size SIZE",
	.summary = "grow the virtual size of a top layer, offline or on a live device",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
