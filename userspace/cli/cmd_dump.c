// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain dump FILE [--output F]: the layer's metadata as JSON
 * (lib/dump.c; the format is docs/check.md, "dump format").
 *
 * Damaged blocks and entries are left out of the dump and named on
 * stderr; the exit status is then 1 so a script cannot mistake a partial
 * dump for a whole one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "check.h"
#include "dump.h"

enum { O_OUTPUT };

static const struct cli_option options[] = {
	[O_OUTPUT] = { "output", "F", "write the dump to F instead of standard output" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_check_report rep;
	struct cowchain_error err = { 0 };
	const char *out_path = a->val[O_OUTPUT];
	FILE *out = stdout;
	size_t i;
	int r, status = EXIT_OK;

	(void)cmd;
	if (out_path) {
		out = fopen(out_path, "we");
		if (!out)
			return cli_error("cannot open '%s': %s", out_path, strerror(errno));
	}
	r = cowchain_dump(a->pos[0], out, &rep, &err);
	for (i = 0; i < rep.n; i++) {
		const struct cowchain_problem_def *p = &cowchain_problems[rep.f[i].code];

		if (p->severity != COWCHAIN_SEV_CORRUPT)
			continue;
		fprintf(stderr, "cowchain: warning: '%s': %s: %s (left out of the dump)\n",
			rep.layers[rep.f[i].layer], p->message, rep.f[i].detail);
		status = EXIT_FAIL;
	}
	cowchain_check_report_free(&rep);
	if (out != stdout && fclose(out)) {
		r = r ? r : -errno;
		if (!err.msg[0])
			snprintf(err.msg, sizeof(err.msg), "cannot write '%s': %s", out_path,
				 strerror(errno));
	}
	if (r)
		return cli_lib_error(&err);
	return status;
}

const struct cli_command cmd_dump = {
	.name = "dump",
	.handler = run,
	.synopsis = "FILE [--output F]",
	.summary = "print a layer's metadata as JSON (for restore-dump)",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
