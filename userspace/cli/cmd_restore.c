// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain restore: throw away the top's contents, so its parent's state
 * (the snapshot) is current again.  Offline: the layer is reset in place
 * (same file, same uuid, generation bumped).  Live: a fresh empty top
 * replaces it (see lib/attach.c).
 */
#include <stdio.h>
#include "cli.h"
#include "lifecycle.h"

static const struct cli_option options[] = {
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	const char *arg = a->pos[0];
	char name[128];
	int live, r;

	(void)cmd;
	live = cowchain_resolve_arg(arg, name, &err);
	if (live < 0)
		return cli_error("cannot restore '%s': %s", arg, err.msg);
	r = live ? cowchain_live_restore(name, &err) : cowchain_layer_reset(arg, &err);
	if (r)
		return cli_error("cannot restore '%s': %s", arg, err.msg);
	return EXIT_OK;
}

const struct cli_command cmd_restore = {
	.name = "restore",
	.handler = run,
	.synopsis = "TOP|NAME",
	.summary = "throw away the top layer's contents (back to its parent's state), live or offline",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
