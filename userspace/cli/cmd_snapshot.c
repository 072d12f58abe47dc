// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain snapshot: seal the top and stack a new empty child on it.
 * Offline on a file; on a live device (by name, or by its top file) by
 * suspend, seal, create, reload, resume (lib/attach.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_JSON };

static const struct cli_option options[] = {
	[O_JSON] = { "json", NULL, "machine-readable output" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_create_opts co = { 0 };
	const char *arg = a->pos[0];
	char name[128], top[4096], *newfile = NULL;
	int live, r;

	(void)cmd;
	live = cowchain_resolve_arg(arg, name, &err);
	if (live < 0)
		return cli_error("cannot snapshot '%s': %s", arg, err.msg);
	if (live) {
		struct cowchain_live lv;

		if (cowchain_live_get(name, &lv, &err))
			return cli_error("cannot snapshot '%s': %s", arg, err.msg);
		snprintf(top, sizeof(top), "%s", lv.top_file);
		cowchain_live_free(&lv);
	} else {
		snprintf(top, sizeof(top), "%s", arg);
	}
	newfile = a->npos > 1 ? strdup(a->pos[1]) : cowchain_snapshot_name(top);
	if (!newfile)
		return cli_error("cannot snapshot '%s': out of memory", arg);
	if (live) {
		r = cowchain_live_snapshot(name, newfile, &err);
	} else {
		co.parent = top;
		r = cowchain_create(newfile, &co, &err);
	}
	if (r) {
		free(newfile);
		return cli_error("cannot snapshot '%s': %s", arg, err.msg);
	}
	if (a->set[O_JSON]) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "sealed", json_object_new_string(top));
		json_object_object_add(j, "top", json_object_new_string(newfile));
		if (live)
			json_object_object_add(j, "device", json_object_new_string(name));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("%s\n", newfile);
	}
	free(newfile);
	return EXIT_OK;
}

const struct cli_command cmd_snapshot = {
	.name = "snapshot",
	.handler = run,
	.synopsis = "NAME|TOP [NEWFILE] [--json]",
	.summary = "freeze the top (seal it) and stack a new empty child on it, live or offline",
	.options = options,
	.min_pos = 1,
	.max_pos = 2,
};
