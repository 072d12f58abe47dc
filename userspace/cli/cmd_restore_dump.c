// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain restore-dump DUMP FILE [--force]: write the metadata a dump
 * describes into FILE (lib/dump.c).  Data clusters are never written.
 * An existing FILE is refused unless --force.
 */
#include "cli.h"
#include "dump.h"

enum { O_FORCE };

static const struct cli_option options[] = {
	[O_FORCE] = { "force", NULL, "overwrite the metadata of an existing FILE" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_restore_opts o = { .force = a->set[O_FORCE] };
	struct cowchain_error err = { 0 };

	(void)cmd;
	if (cowchain_restore_dump(a->pos[0], a->pos[1], &o, &err))
		return cli_lib_error(&err);
	return EXIT_OK;
}

const struct cli_command cmd_restore_dump = {
	.name = "restore-dump",
	.handler = run,
	.synopsis = "DUMP FILE [--force]",
	.summary = "write a layer's metadata from a JSON dump ('-' reads stdin)",
	.options = options,
	.min_pos = 2,
	.max_pos = 2,
};
