// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain compact: punch out file space the layer no longer references (lib/compact.c). */
#include <stdio.h>
#include "cli.h"
#include "merge.h"

enum { O_JSON };

static const struct cli_option options[] = {
	[O_JSON] = { "json", NULL, "print the result as JSON" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_compact_result res;
	struct cowchain_error err = { 0 };
	char h1[32], h2[32];

	(void)cmd;
	if (cowchain_compact(a->pos[0], &res, &err))
		return cli_lib_error(&err);
	if (a->set[O_JSON])
		printf("{\"file\":\"%s\",\"clusters_punched\":%llu,\"subblocks_punched\":%llu,\"bytes_before\":%llu,\"bytes_after\":%llu}\n",
		       a->pos[0], (unsigned long long)res.clusters_punched,
		       (unsigned long long)res.subblocks_punched, (unsigned long long)res.before,
		       (unsigned long long)res.after);
	else
		printf("'%s': %llu free clusters and %llu unused sub-blocks punched; allocated %s -> %s\n",
		       a->pos[0], (unsigned long long)res.clusters_punched,
		       (unsigned long long)res.subblocks_punched, cli_human(res.before, h1),
		       cli_human(res.after, h2));
	return EXIT_OK;
}

const struct cli_command cmd_compact = {
	.name = "compact",
	.handler = run,
	.synopsis = "[--json] FILE",
	.summary = "give back file space held by clusters and sub-blocks the layer no longer uses",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
