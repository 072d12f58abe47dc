// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain dump FILE [--output F]: the layer's metadata as JSON
 * (lib/dump.c; the format is docs/check.md, "dump format").
 *
 * Every corruption found on the way is named on stderr and makes the exit
 * status 1, so a script cannot mistake a partial dump for a whole one.
 * Untrusted blocks and entries are left out of the dump; entries that are
 * valid on their own but conflict (a shared cluster) are kept, so they
 * can be fixed by hand (dump, edit, restore-dump).
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

/*
 * What the walker could not trust is not in the dump; what is valid on its
 * own but conflicts with the rest (a shared cluster, a wrong count) is, so
 * it can be fixed by hand and restored.
 */
static bool left_out(enum cowchain_problem code)
{
	switch (code) {
	case CK_ROOT_BAD: case CK_MAP_BAD: case CK_LEAF_BAD:
	case CK_PTR_OUT_OF_AREA: case CK_PTR_PAST_VSIZE: case CK_PTR_PAST_EOF:
	case CK_BLOCK_TWICE: case CK_ENTRY_INVALID: case CK_ENTRY_PAST_VSIZE:
	case CK_ENTRY_PHYS_RANGE:
		return true;
	default:
		return false;
	}
}

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
		fprintf(stderr, "cowchain: warning: '%s': %s: %s%s\n",
			rep.layers[rep.f[i].layer], p->message, rep.f[i].detail,
			left_out(rep.f[i].code) ? " (left out of the dump)" : "");
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
