// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain table: the dmsetup table line for a chain whose devices exist. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_DEV, O_RO, O_JSON };

static const struct cli_option options[] = {
	[O_DEV]  = { "dev", "LAYER=DEV[,...]", "use block device DEV for layer file LAYER instead of looking for its loop device" },
	[O_RO]   = { "read-only", NULL, "a read-only table (the read_only feature)" },
	[O_JSON] = { "json", NULL, "machine-readable output" },
	{ NULL, NULL, NULL },
};

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_table_opts o = { 0 };
	struct cowchain_error err = { 0 };
	struct cowchain_devset s;
	const char *devs[64];
	char *list = NULL, *save = NULL, *t;
	u32 i;
	int r;

	o.read_only = a->set[O_RO];
	if (a->set[O_DEV]) {
		list = strdup(a->val[O_DEV]);
		for (t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (!strchr(t, '=') || t[0] == '=' || strchr(t, '=')[1] == 0 || o.ndev == 64) {
				free(list);
				return cli_usage(cmd, "--dev wants LAYER=DEV, not '%s'", t);
			}
			devs[o.ndev++] = t;
		}
		o.dev = devs;
	}
	r = cowchain_table_find(a->pos[0], &o, &s, &err);
	if (r) {
		free(list);
		return cli_error("cannot make a table for '%s': %s", a->pos[0], err.msg);
	}
	if (a->set[O_JSON]) {
		json_object *j = json_object_new_object(), *arr = json_object_new_array();
		char line[8192];

		snprintf(line, sizeof(line), "0 %llu cowchain %s", (unsigned long long)s.sectors,
			 s.params);
		json_object_object_add(j, "table", json_object_new_string(line));
		json_object_object_add(j, "sectors", json_object_new_uint64(s.sectors));
		for (i = 0; i < s.n; i++) {
			json_object *d = json_object_new_object();

			json_object_object_add(d, "file", json_object_new_string(s.files[i]));
			json_object_object_add(d, "device", json_object_new_string(s.loops[i].dev));
			json_object_object_add(d, "role", json_object_new_string(
				i == 0 ? "top" : i < s.nlayers ? "ancestor" : "base"));
			json_object_array_add(arr, d);
		}
		json_object_object_add(j, "devices", arr);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("0 %llu cowchain %s\n", (unsigned long long)s.sectors, s.params);
	}
	cowchain_devset_free(&s);
	free(list);
	return EXIT_OK;
}

const struct cli_command cmd_table = {
	.name = "table",
	.handler = run,
	.synopsis = "TOP [--dev LAYER=DEV[,...]] [--read-only] [--json]",
	.summary = "print the dmsetup table line for TOP's chain (its files already on loop devices)",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
