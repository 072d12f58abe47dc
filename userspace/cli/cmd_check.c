// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check FILE [--chain] [--repair] [--search DIR[,DIR...]] [--json]
 *
 * Prints the findings of lib/check.c, worded from the problem table, and
 * exits with the fsck bitmask: 0 clean, 1 corrected, 4 left uncorrected,
 * 8 operational error, 16 usage (docs/check.md).  --repair also finishes
 * an interrupted offline merge (the library runs the merge code); --search
 * is where that merge looks for the other layers, as in "cowchain merge".
 */
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>
#include "cli.h"
#include "check.h"

enum { O_CHAIN, O_REPAIR, O_SEARCH, O_JSON };

static const struct cli_option options[] = {
	[O_CHAIN] = { "chain", NULL, "also check the parents and the links to them" },
	[O_REPAIR] = { "repair", NULL, "fix what needs no guessing in FILE; finish an interrupted merge FILE is part of (this changes the merge's other layers too)" },
	[O_SEARCH] = { "search", "DIR[,DIR...]", "with --repair: also look for the layers of an interrupted merge in these directories (FILE's own is always searched)" },
	[O_JSON] = { "json", NULL, "machine-readable output" },
	{ NULL, NULL, NULL },
};

#define CHECK_EXIT_OPERATIONAL	8
#define CHECK_EXIT_USAGE	16

static void print_text(const struct cowchain_check_report *rep, bool repair, int status)
{
	unsigned sev[3] = { 0 }, fixed = 0;
	size_t i;

	for (i = 0; i < rep->n; i++) {
		const struct cowchain_finding *f = &rep->f[i];
		const struct cowchain_problem_def *p = &cowchain_problems[f->code];

		printf("%s: %s: %s [%s]\n", rep->layers[f->layer],
		       cowchain_severity_name(p->severity), p->message, p->code);
		printf("  %s\n", f->detail);
		if (f->fixed)
			printf("  fixed: %s\n", p->fix);
		else if (p->repairable && !repair && f->layer == 0)
			printf("  --repair would: %s\n", p->fix);
		else if (p->severity != COWCHAIN_SEV_INFO)
			printf("  left: %s\n", p->fix);
		sev[p->severity]++;
		fixed += f->fixed;
	}
	if (!rep->n) {
		printf("%s: clean\n", rep->layers[0]);
		return;
	}
	printf("%s: %u corruption, %u harmless, %u info; %u fixed; %s (exit %d)\n",
	       rep->layers[0], sev[COWCHAIN_SEV_CORRUPT], sev[COWCHAIN_SEV_HARMLESS],
	       sev[COWCHAIN_SEV_INFO], fixed,
	       status & 4 ? "problems left uncorrected" : status & 1 ? "corrected" : "clean",
	       status);
}

static int print_json(const char *file, const struct cowchain_check_report *rep,
		      int status, const char *error)
{
	json_object *top = json_object_new_object(), *layers = json_object_new_array(),
		    *probs = json_object_new_array(), *sum = json_object_new_object();
	unsigned sev[3] = { 0 }, fixed = 0;
	size_t i;

	for (i = 0; i < rep->nlayers; i++)
		json_object_array_add(layers, json_object_new_string(rep->layers[i]));
	for (i = 0; i < rep->n; i++) {
		const struct cowchain_finding *f = &rep->f[i];
		const struct cowchain_problem_def *p = &cowchain_problems[f->code];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "layer", json_object_new_string(rep->layers[f->layer]));
		json_object_object_add(o, "code", json_object_new_string(p->code));
		json_object_object_add(o, "severity",
				       json_object_new_string(cowchain_severity_name(p->severity)));
		json_object_object_add(o, "message", json_object_new_string(p->message));
		json_object_object_add(o, "detail", json_object_new_string(f->detail));
		json_object_object_add(o, "count", json_object_new_uint64(f->count));
		json_object_object_add(o, "repairable", json_object_new_boolean(p->repairable));
		json_object_object_add(o, "fixed", json_object_new_boolean(f->fixed));
		json_object_object_add(o, "fix", json_object_new_string(p->fix));
		json_object_array_add(probs, o);
		sev[p->severity]++;
		fixed += f->fixed;
	}
	json_object_object_add(sum, "corruption", json_object_new_int(sev[COWCHAIN_SEV_CORRUPT]));
	json_object_object_add(sum, "harmless", json_object_new_int(sev[COWCHAIN_SEV_HARMLESS]));
	json_object_object_add(sum, "info", json_object_new_int(sev[COWCHAIN_SEV_INFO]));
	json_object_object_add(sum, "fixed", json_object_new_int(fixed));
	json_object_object_add(top, "file", json_object_new_string(file));
	json_object_object_add(top, "layers", layers);
	json_object_object_add(top, "problems", probs);
	json_object_object_add(top, "summary", sum);
	json_object_object_add(top, "status", json_object_new_int(status));
	if (error)
		json_object_object_add(top, "error", json_object_new_string(error));
	printf("%s\n", json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(top);
	return status;
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_check_opts o = {
		.chain = a->set[O_CHAIN], .repair = a->set[O_REPAIR],
		.finish_merge = a->set[O_REPAIR],
	};
	struct cowchain_check_report rep;
	struct cowchain_error err = { 0 };
	struct cli_list search;
	int r, status;

	if (a->set[O_SEARCH] && !a->set[O_REPAIR])
		return cli_usage(cmd, "--search needs --repair");
	if (cli_opt_list(a, O_SEARCH, &search))
		return CHECK_EXIT_OPERATIONAL;
	o.search = search.v;
	o.nsearch = search.n;
	r = cowchain_check(a->pos[0], &o, &rep, &err);
	if (r) {
		/* Whatever was found before the failure still counts. */
		status = cowchain_check_status(&rep) | CHECK_EXIT_OPERATIONAL;
		if (a->set[O_JSON])
			print_json(a->pos[0], &rep, status, err.msg);
		else if (rep.n)
			print_text(&rep, o.repair, status);
		cli_lib_error(&err);
	} else {
		status = cowchain_check_status(&rep);
		if (a->set[O_JSON])
			print_json(a->pos[0], &rep, status, NULL);
		else
			print_text(&rep, o.repair, status);
	}
	cowchain_check_report_free(&rep);
	cli_list_free(&search);
	return status;
}

const struct cli_command cmd_check = {
	.name = "check",
	.handler = run,
	.synopsis = "FILE [--chain] [--repair [--search DIR[,DIR...]]] [--json]",
	.summary = "verify a layer's metadata; exit 0 clean, 1 corrected, 4 left uncorrected, "
		   "8 operational error, 16 usage (docs/check.md)",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
	.usage_status = CHECK_EXIT_USAGE,
};
