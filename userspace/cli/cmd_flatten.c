// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain flatten: a whole chain as one new root layer or raw image (lib/flatten.c). */
#include <stdio.h>
#include <unistd.h>
#include "cli.h"
#include "merge.h"

enum { O_RAW, O_FORCE, O_JSON };

static const struct cli_option options[] = {
	[O_RAW]   = { "raw", NULL, "write a raw image (sparse where the disk reads zeros) instead of a root layer" },
	[O_FORCE] = { "force", NULL, "overwrite OUT if it exists (never a layer of the chain)" },
	[O_JSON]  = { "json", NULL, "print the result as JSON" },
	{ NULL, NULL, NULL },
};

static void on_progress(void *ctx, const struct cowchain_progress *p)
{
	(void)ctx;
	fprintf(stderr, "\rflatten %3d%% ", p->total ? (int)(p->done * 100 / p->total) : 100);
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_flatten_opts o = { 0 };
	struct cowchain_error err = { 0 };
	u64 bytes;
	int r;

	(void)cmd;
	o.raw = a->set[O_RAW];
	o.force = a->set[O_FORCE];
	if (isatty(STDERR_FILENO) && !a->set[O_JSON])
		o.progress = on_progress;
	r = cowchain_flatten(a->pos[0], a->pos[1], &o, &bytes, &err);
	if (o.progress)
		fputc('\n', stderr);
	if (r)
		return cli_lib_error(&err);
	if (a->set[O_JSON])
		printf("{\"output\":\"%s\",\"format\":\"%s\",\"data_bytes\":%llu}\n", a->pos[1],
		       o.raw ? "raw" : "cowchain", (unsigned long long)bytes);
	else
		printf("wrote '%s' (%s, %llu bytes of data)\n", a->pos[1], o.raw ? "raw" : "root layer",
		       (unsigned long long)bytes);
	return EXIT_OK;
}

const struct cli_command cmd_flatten = {
	.name = "flatten",
	.handler = run,
	.synopsis = "[--raw] [--force] [--json] TOP OUT",
	.summary = "write the whole disk of the chain topped by TOP as one new root layer (or raw image)",
	.options = options,
	.min_pos = 2,
	.max_pos = 2,
};
