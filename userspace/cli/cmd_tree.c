// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain tree: every layer in some directories as a tree (VirtualBox's media manager). */
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

static const char *problem_name[] = {
	[COWCHAIN_TREE_OK] = "ok",
	[COWCHAIN_TREE_UNREADABLE] = "unreadable",
	[COWCHAIN_TREE_MISSING_PARENT] = "missing-parent",
	[COWCHAIN_TREE_WRONG_GENERATION] = "wrong-generation",
	[COWCHAIN_TREE_MISSING_BASE] = "missing-base",
};

static void print_node(const struct cowchain_tree *t, size_t i, const char *prefix, bool last,
		       bool root)
{
	const struct cowchain_tree_node *n = &t->v[i];
	char h1[32], h2[32], h3[32], pre[1024];
	size_t k, nkids = 0, seen = 0;

	for (k = 0; k < t->n; k++)
		if (t->v[k].parent == (int)i)
			nkids++;
	printf("%s%s%s", prefix, root ? "" : last ? "`-- " : "|-- ", n->path);
	if (n->problem != COWCHAIN_TREE_UNREADABLE)
		printf("  [%s, disk %s, allocated %s%s%s%s]", cli_human(n->virtual_size, h1),
		       cli_human(n->disk_usage, h2), cli_human(n->allocated, h3),
		       n->flags & COWCHAIN_SB_SEALED ? ", sealed" : "",
		       n->flags & COWCHAIN_SB_AUTORESET ? ", autoreset" : "",
		       n->flags & COWCHAIN_SB_NEEDS_CHECK ? ", needs-check" : "");
	if (n->users.ndms) {
		const char *p = n->users.dms;
		int d;

		printf("  attached:");
		for (d = 0; d < n->users.ndms; d++, p += strlen(p) + 1)
			printf(" %s", p);
	} else if (n->users.nloops) {
		printf("  loop: %s", n->users.loops);
	}
	if (n->parent_kind == COWCHAIN_PARENT_RAW && n->problem == COWCHAIN_TREE_OK)
		printf("  base: %s", n->base);
	if (n->problem)
		printf("  !! %s: %s", problem_name[n->problem], n->msg);
	putchar('\n');
	snprintf(pre, sizeof(pre), "%s%s", prefix, root ? "" : last ? "    " : "|   ");
	for (k = 0; k < t->n; k++)
		if (t->v[k].parent == (int)i)
			print_node(t, k, pre, ++seen == nkids, false);
}

static json_object *node_json(const struct cowchain_tree *t, size_t i)
{
	const struct cowchain_tree_node *n = &t->v[i];
	json_object *o = json_object_new_object(), *kids = json_object_new_array(),
		    *fl = json_object_new_array(), *dms = json_object_new_array(),
		    *loops = json_object_new_array();
	const char *p;
	char u[37];
	size_t k;
	int d;

	json_object_object_add(o, "file", json_object_new_string(n->path));
	if (n->problem != COWCHAIN_TREE_UNREADABLE) {
		cowchain_uuid_str(n->uuid, u);
		json_object_object_add(o, "uuid", json_object_new_string(u));
		json_object_object_add(o, "generation", json_object_new_uint64(n->generation));
		json_object_object_add(o, "virtual_size", json_object_new_uint64(n->virtual_size));
		json_object_object_add(o, "parent_kind", json_object_new_string(
			n->parent_kind == COWCHAIN_PARENT_LAYER ? "layer" :
			n->parent_kind == COWCHAIN_PARENT_RAW ? "raw" : "none"));
		if (n->parent_kind == COWCHAIN_PARENT_LAYER) {
			cowchain_uuid_str(n->parent_uuid, u);
			json_object_object_add(o, "parent_uuid", json_object_new_string(u));
			json_object_object_add(o, "parent_generation",
					       json_object_new_uint64(n->parent_generation));
		}
		if (n->base)
			json_object_object_add(o, "locator", json_object_new_string(n->base));
	}
	json_object_object_add(o, "disk_usage", json_object_new_uint64(n->disk_usage));
	json_object_object_add(o, "file_size", json_object_new_uint64(n->file_size));
	json_object_object_add(o, "allocated", json_object_new_uint64(n->allocated));
	if (n->flags & COWCHAIN_SB_SEALED)
		json_object_array_add(fl, json_object_new_string("sealed"));
	if (n->flags & COWCHAIN_SB_AUTORESET)
		json_object_array_add(fl, json_object_new_string("autoreset"));
	if (n->flags & COWCHAIN_SB_NEEDS_CHECK)
		json_object_array_add(fl, json_object_new_string("needs-check"));
	if (n->flags & COWCHAIN_SB_MERGING)
		json_object_array_add(fl, json_object_new_string("merging"));
	json_object_object_add(o, "flags", fl);
	for (p = n->users.dms, d = 0; d < n->users.ndms; d++, p += strlen(p) + 1)
		json_object_array_add(dms, json_object_new_string(p));
	for (p = n->users.loops, d = 0; d < n->users.nloops; d++, p += strlen(p) + 1)
		json_object_array_add(loops, json_object_new_string(p));
	json_object_object_add(o, "attached_as", dms);
	json_object_object_add(o, "loop_devices", loops);
	json_object_object_add(o, "problem", json_object_new_string(problem_name[n->problem]));
	if (n->problem)
		json_object_object_add(o, "message", json_object_new_string(n->msg));
	for (k = 0; k < t->n; k++)
		if (t->v[k].parent == (int)i)
			json_object_array_add(kids, node_json(t, k));
	json_object_object_add(o, "children", kids);
	return o;
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_tree t;
	size_t i, bad = 0;

	(void)cmd;
	if (cowchain_tree_scan((const char *const *)a->pos, a->npos, &t, &err))
		return cli_lib_error(&err);
	for (i = 0; i < t.n; i++)
		bad += t.v[i].problem != COWCHAIN_TREE_OK;
	if (a->set[O_JSON]) {
		json_object *j = json_object_new_object(), *roots = json_object_new_array();

		for (i = 0; i < t.n; i++)
			if (t.v[i].parent < 0)
				json_object_array_add(roots, node_json(&t, i));
		json_object_object_add(j, "layers", json_object_new_uint64(t.n));
		json_object_object_add(j, "problems", json_object_new_uint64(bad));
		json_object_object_add(j, "roots", roots);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		for (i = 0; i < t.n; i++)
			if (t.v[i].parent < 0)
				print_node(&t, i, "", true, true);
		if (bad)
			printf("%zu problem%s (marked !!)\n", bad, bad == 1 ? "" : "s");
	}
	cowchain_tree_free(&t);
	return EXIT_OK;
}

const struct cli_command cmd_tree = {
	.name = "tree",
	.handler = run,
	.synopsis = "DIR... [--json]",
	.summary = "show every layer in DIRs as a tree: sizes, flags, devices, broken links",
	.options = options,
	.min_pos = 1,
	.max_pos = 64,
};
