// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain map: for each extent of the virtual disk, what serves it: data
 * in a layer (file, depth, byte offset), a zero marker in a layer, the raw
 * base, or nothing (reads zeros).  Adjacent runs with the same source are
 * merged, like qemu-img map.
 */
#include <inttypes.h>
#include <stdio.h>
#include <json.h>
#include "cli.h"

enum { O_JSON };

static const struct cli_option options[] = {
	[O_JSON] = { "json", NULL, "machine-readable output" },
	{ NULL, NULL, NULL },
};

static const char *kind_name(enum cowchain_extent_kind k)
{
	switch (k) {
	case COWCHAIN_EXT_DATA: return "data";
	case COWCHAIN_EXT_ZERO: return "zero";
	case COWCHAIN_EXT_BASE: return "base";
	default: return "unallocated";
	}
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c;
	struct cowchain_extent e;
	json_object *arr = NULL;
	u64 off = 0, size;
	int ret = EXIT_OK;

	(void)cmd;
	if (cowchain_chain_open(a->pos[0], 0, &c, &err))
		return cli_lib_error(&err);
	size = cowchain_chain_size(c);
	if (a->set[O_JSON])
		arr = json_object_new_array();
	else
		printf("%-18s %-18s %-12s %-5s %-18s %s\n", "start", "length", "kind", "depth",
		       "offset", "file");
	while (off < size) {
		const char *file = "-";

		if (cowchain_resolve(c, off, size - off, &e, &err)) {
			ret = cli_lib_error(&err);
			break;
		}
		if (e.kind == COWCHAIN_EXT_DATA || e.kind == COWCHAIN_EXT_ZERO)
			file = cowchain_layer_path(cowchain_chain_layer(c, e.layer));
		else if (e.kind == COWCHAIN_EXT_BASE)
			file = cowchain_chain_base(c, NULL);
		if (arr) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "start", json_object_new_uint64(e.start));
			json_object_object_add(o, "length", json_object_new_uint64(e.length));
			json_object_object_add(o, "kind", json_object_new_string(kind_name(e.kind)));
			if (e.kind == COWCHAIN_EXT_DATA || e.kind == COWCHAIN_EXT_ZERO)
				json_object_object_add(o, "depth", json_object_new_int((int)e.layer));
			if (e.kind == COWCHAIN_EXT_DATA || e.kind == COWCHAIN_EXT_BASE) {
				json_object_object_add(o, "offset", json_object_new_uint64(e.offset));
				json_object_object_add(o, "file", json_object_new_string(file));
			} else if (e.kind == COWCHAIN_EXT_ZERO) {
				json_object_object_add(o, "file", json_object_new_string(file));
			}
			json_object_array_add(arr, o);
		} else {
			char depth[16] = "-", offs[24] = "-";

			if (e.kind == COWCHAIN_EXT_DATA || e.kind == COWCHAIN_EXT_ZERO)
				snprintf(depth, sizeof(depth), "%u", e.layer);
			if (e.kind == COWCHAIN_EXT_DATA || e.kind == COWCHAIN_EXT_BASE)
				snprintf(offs, sizeof(offs), "0x%" PRIx64, e.offset);
			printf("0x%-16" PRIx64 " 0x%-16" PRIx64 " %-12s %-5s %-18s %s\n",
			       e.start, e.length, kind_name(e.kind), depth, offs, file);
		}
		off += e.length;
	}
	if (arr) {
		if (ret == EXIT_OK)
			printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	cowchain_chain_close(c, NULL);
	return ret;
}

const struct cli_command cmd_map = {
	.name = "map",
	.handler = run,
	.synopsis = "FILE [--json]",
	.summary = "show which layer (or zero marker, raw base, nothing) serves each extent",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
