// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain detach: remove the dm device; its autoclear loop devices follow. */
#include <stdio.h>
#include "cli.h"
#include "lifecycle.h"

static const struct cli_option options[] = {
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };

	(void)cmd;
	if (cowchain_detach(a->pos[0], &err))
		return cli_lib_error(&err);
	return EXIT_OK;
}

const struct cli_command cmd_detach = {
	.name = "detach",
	.handler = run,
	.synopsis = "NAME",
	.summary = "remove device NAME (metadata committed first) and the loop devices only it used",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
