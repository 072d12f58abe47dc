// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain attach: loop devices for the chain, then the dm device.
 *
 * Test hook (tests only, not a user interface): with
 * COWCHAIN_TEST_ATTACH_PAUSE=PATH in the environment, attach stops with
 * every layer locked before it sets up any loop device, creates PATH
 * holding its PID, and waits until PATH is removed (at most 600 s);
 * COWCHAIN_TEST_ATTACH_PAUSE_AT=loops stops it instead once the loop
 * devices are set up, before the dm device.  tests/cli/merge-race.sh and
 * tests/guest/t-life-merge-race.sh use it to start a merge while an attach
 * sets up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_RO, O_JSON };

static const struct cli_option options[] = {
	[O_RO]   = { "read-only", NULL, "attach read-only (needed for a sealed layer)" },
	[O_JSON] = { "json", NULL, "machine-readable output" },
	{ NULL, NULL, NULL },
};

static const char *pause_path, *pause_at;

static void test_pause(const char *step)
{
	char line[32];

	if (!pause_path || strcmp(step, pause_at))
		return;
	snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	cli_test_pause(pause_path, line);
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_devset s;
	const char *name = a->pos[0], *top = a->pos[1];
	u32 i;
	int r;

	if (!name[0] || strchr(name, '/') || strlen(name) >= 128)
		return cli_usage(cmd, "invalid device name '%s'", name);
	pause_path = getenv("COWCHAIN_TEST_ATTACH_PAUSE");
	if (pause_path && *pause_path) {
		pause_at = getenv("COWCHAIN_TEST_ATTACH_PAUSE_AT");
		if (!pause_at || !*pause_at)
			pause_at = "locked";
		cowchain_attach_step_hook = test_pause;
	}
	r = cowchain_attach(name, top, a->set[O_RO], &s, &err);
	if (r) {
		if (!strncmp(err.msg, "cannot ", 7))
			return cli_lib_error(&err);
		return cli_error("cannot attach '%s': %s", top, err.msg);
	}
	if (a->set[O_JSON]) {
		json_object *j = json_object_new_object(), *arr = json_object_new_array();
		char path[160];

		snprintf(path, sizeof(path), "/dev/mapper/%s", name);
		json_object_object_add(j, "device", json_object_new_string(path));
		json_object_object_add(j, "name", json_object_new_string(name));
		json_object_object_add(j, "sectors", json_object_new_uint64(s.sectors));
		json_object_object_add(j, "read_only", json_object_new_boolean(s.read_only));
		json_object_object_add(j, "reset", json_object_new_boolean(s.top_reset));
		for (i = 0; i < s.n; i++) {
			json_object *d = json_object_new_object();

			json_object_object_add(d, "file", json_object_new_string(s.files[i]));
			json_object_object_add(d, "device", json_object_new_string(s.loops[i].dev));
			json_object_object_add(d, "role", json_object_new_string(
				i == 0 ? "top" : i < s.nlayers ? "ancestor" : "base"));
			json_object_object_add(d, "new_loop", json_object_new_boolean(s.loops[i].created));
			json_object_object_add(d, "direct_io", json_object_new_boolean(s.loops[i].direct_io));
			json_object_array_add(arr, d);
		}
		json_object_object_add(j, "layers", arr);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		if (s.top_reset)
			fprintf(stderr, "cowchain: note: '%s' is autoreset: emptied before attaching\n", top);
		for (i = 0; i < s.n; i++)
			if (s.loops[i].created && !s.loops[i].direct_io)
				fprintf(stderr, "cowchain: note: %s uses buffered I/O for '%s' "
					"(its file system refused direct I/O)\n", s.loops[i].dev, s.files[i]);
		printf("/dev/mapper/%s\n", name);
	}
	cowchain_devset_free(&s);
	return EXIT_OK;
}

const struct cli_command cmd_attach = {
	.name = "attach",
	.handler = run,
	.synopsis = "NAME TOP [--read-only] [--json]",
	.summary = "attach TOP's chain as /dev/mapper/NAME (loop devices, then the dm device)",
	.options = options,
	.min_pos = 2,
	.max_pos = 2,
};
