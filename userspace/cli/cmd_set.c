// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain set: change a layer's flags (AUTORESET). */
#include <stdio.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_AUTORESET, O_NO_AUTORESET };

static const struct cli_option options[] = {
	[O_AUTORESET]    = { "autoreset", NULL, "empty the layer at every attach (an immutable disk's child)" },
	[O_NO_AUTORESET] = { "no-autoreset", NULL, "keep the layer's contents across attaches" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_users u;
	const char *file = a->pos[0];

	if (a->set[O_AUTORESET] == a->set[O_NO_AUTORESET])
		return cli_usage(cmd, "give one of --autoreset and --no-autoreset");
	/* a live table keeps its own copy of the superblock: never write under it */
	if (!cowchain_layer_users(file, &u) && (u.ndms || u.nloops))
		return cli_error("cannot change '%s': it is attached (%s%s); detach it first", file,
				 u.ndms ? "device " : "", u.ndms ? u.dms : u.loops);
	if (cowchain_layer_set_autoreset(file, a->set[O_AUTORESET], &err))
		return cli_error("cannot change '%s': %s", file, err.msg);
	return EXIT_OK;
}

const struct cli_command cmd_set = {
	.name = "set",
	.handler = run,
	.synopsis = "TOP --autoreset|--no-autoreset",
	.summary = "set or clear a layer's AUTORESET flag (emptied at every attach)",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
