// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain merge: delete a snapshot by merging two adjacent layers, in
 * either direction, offline and resumable (lib/merge.c).  This file only
 * parses options, prints the plan and the progress, and maps the result to
 * an exit code.
 *
 * Test hook (tests only, not a user interface): with
 * COWCHAIN_TEST_MERGE_PAUSE=PATH in the environment, the merge stops after
 * its first copy step (every file it changes is then marked MERGING and
 * locked), creates PATH holding "PID DONE TOTAL" (bytes copied so far and
 * in all), and waits until PATH is removed (at most 600 s) before going on.
 * COWCHAIN_TEST_MERGE_PAUSE_AT=relink stops it instead once every byte is
 * copied, before the first child is relinked (a merge into the children
 * has then let go of its children's locks; their MERGING marks remain),
 * and =delete once every child is relinked, before the merged file is
 * deleted.  tests/cli/merge-race.sh and tests/guest/t-life-merge-race.sh
 * use it to start other commands while a merge runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "cli.h"
#include "merge.h"

enum { O_INTO_CHILDREN, O_DIRECTION, O_PLAN, O_SEARCH, O_JSON, O_BATCH };

static const struct cli_option options[] = {
	[O_INTO_CHILDREN] = { "into-children", NULL, "FILE is a parent: copy what each child reads from it into the child, relink the children to its parent, delete FILE" },
	[O_DIRECTION] = { "direction", "parent|children", "force the direction (default: the cheaper safe one)" },
	[O_PLAN]      = { "plan", NULL, "print what would be done (direction, bytes, space per file, why) and change nothing" },
	[O_SEARCH]    = { "search", "DIR[,DIR...]", "also look for children in these directories (the parent's own is always searched)" },
	[O_JSON]      = { "json", NULL, "machine-readable plan, progress lines and result on standard output" },
	[O_BATCH]     = { "batch", "SIZE", "data moved per crash-safe step (default 64M)" },
	{ NULL, NULL, NULL },
};

struct prog {
	bool tty, json;
	const char *pause;	/* COWCHAIN_TEST_MERGE_PAUSE, cleared once used */
	const char *pause_at;	/* the phase to pause at: copy, relink or delete */
	struct timespec t0;
	int last_pct;
	const char *last_phase;
};

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The test hook (see the top of the file): announce, then wait. */
static void test_pause(struct prog *g, const struct cowchain_progress *p)
{
	char line[80];

	snprintf(line, sizeof(line), "%ld %llu %llu\n", (long)getpid(),
		 (unsigned long long)p->done, (unsigned long long)p->total);
	cli_test_pause(g->pause, line);
	g->pause = NULL;
}

static void on_progress(void *ctx, const struct cowchain_progress *p)
{
	struct prog *g = ctx;
	int pct = p->total ? (int)(p->done * 100 / p->total) : 100;
	double s = since(&g->t0);

	if (g->pause && !strcmp(p->phase, g->pause_at))
		test_pause(g, p);
	if (g->json) {
		printf("{\"event\":\"progress\",\"phase\":\"%s\",\"done\":%llu,\"total\":%llu,\"seconds\":%.3f}\n",
		       p->phase, (unsigned long long)p->done, (unsigned long long)p->total, s);
		fflush(stdout);
		return;
	}
	if (!g->tty || (pct == g->last_pct && p->phase == g->last_phase))
		return;
	g->last_pct = pct;
	g->last_phase = p->phase;
	fprintf(stderr, "\r%-7s [%-40.*s] %3d%% %llu/%llu MiB %.0f MiB/s ", p->phase, pct * 40 / 100,
		"========================================", pct,
		(unsigned long long)(p->done >> 20), (unsigned long long)(p->total >> 20),
		s > 0 ? (double)p->done / 1048576.0 / s : 0.0);
}

static const char *dir_name(enum cowchain_merge_dir d)
{
	return d == COWCHAIN_DIR_PARENT ? "parent" : "children";
}

static void print_plan(const struct cowchain_merge_plan *p)
{
	char h[32];
	size_t i;

	if (p->direction == COWCHAIN_DIR_PARENT)
		printf("merge '%s' into its parent '%s'%s\n", p->child_path, p->parent_path,
		       p->resume ? " (resuming an interrupted merge)" : "");
	else
		printf("merge '%s' into its children, then delete it%s\n", p->parent_path,
		       p->resume ? " (resuming an interrupted merge)" : "");
	printf("why: %s\n", p->why);
	if (p->refused_parent[0] && p->direction != COWCHAIN_DIR_PARENT)
		printf("into the parent: refused: %s\n", p->refused_parent);
	printf("data to copy: %s", cli_human(p->copy_bytes, h));
	printf(" (into the parent: %llu bytes, into the children: %llu bytes)\n",
	       (unsigned long long)p->cost_parent, (unsigned long long)p->cost_children);
	printf("zero markers to write: %llu\n", (unsigned long long)p->zero_subblocks);
	printf("searched for children in:");
	for (i = 0; i < p->nsearched; i++)
		printf(" '%s'", p->searched[i]);
	printf("\nfiles:\n");
	for (i = 0; i < p->nfiles; i++) {
		const struct cowchain_merge_file *f = &p->files[i];

		printf("  %-10s '%s': %s; receives %llu bytes, ends %s%lld bytes, needs up to %llu more bytes at any instant\n",
		       f->role, f->path, f->action, (unsigned long long)f->copy_bytes,
		       f->growth >= 0 ? "+" : "", (long long)f->growth,
		       (unsigned long long)f->peak_extra);
	}
}

static void print_plan_json(const struct cowchain_merge_plan *p, const char *event)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array(), *s;
	size_t i;

	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "direction", json_object_new_string(dir_name(p->direction)));
	json_object_object_add(o, "resume", json_object_new_boolean(p->resume));
	json_object_object_add(o, "parent", json_object_new_string(p->parent_path));
	if (p->child_path)
		json_object_object_add(o, "child", json_object_new_string(p->child_path));
	json_object_object_add(o, "why", json_object_new_string(p->why));
	json_object_object_add(o, "refused_parent", json_object_new_string(p->refused_parent));
	json_object_object_add(o, "copy_bytes", json_object_new_int64((int64_t)p->copy_bytes));
	json_object_object_add(o, "cost_parent", json_object_new_int64((int64_t)p->cost_parent));
	json_object_object_add(o, "cost_children", json_object_new_int64((int64_t)p->cost_children));
	json_object_object_add(o, "zero_subblocks", json_object_new_int64((int64_t)p->zero_subblocks));
	s = json_object_new_array();
	for (i = 0; i < p->nsearched; i++)
		json_object_array_add(s, json_object_new_string(p->searched[i]));
	json_object_object_add(o, "searched", s);
	for (i = 0; i < p->nfiles; i++) {
		json_object *f = json_object_new_object();

		json_object_object_add(f, "path", json_object_new_string(p->files[i].path));
		json_object_object_add(f, "role", json_object_new_string(p->files[i].role));
		json_object_object_add(f, "action", json_object_new_string(p->files[i].action));
		json_object_object_add(f, "copy_bytes", json_object_new_int64((int64_t)p->files[i].copy_bytes));
		json_object_object_add(f, "growth", json_object_new_int64(p->files[i].growth));
		json_object_object_add(f, "peak_extra", json_object_new_int64((int64_t)p->files[i].peak_extra));
		json_object_array_add(a, f);
	}
	json_object_object_add(o, "files", a);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_merge_opts o = { 0 };
	struct cowchain_merge_plan plan;
	struct cowchain_error err = { 0 };
	struct prog g = { .last_pct = -1 };
	struct cli_list search;
	int r, ret;

	if (a->set[O_INTO_CHILDREN] && a->set[O_DIRECTION])
		return cli_usage(cmd, "--into-children and --direction exclude each other");
	if (a->set[O_INTO_CHILDREN]) {
		o.direction = COWCHAIN_DIR_CHILDREN;
	} else if (a->set[O_DIRECTION]) {
		if (!strcmp(a->val[O_DIRECTION], "parent"))
			o.direction = COWCHAIN_DIR_PARENT;
		else if (!strcmp(a->val[O_DIRECTION], "children"))
			o.direction = COWCHAIN_DIR_CHILDREN, o.layer_is_child = true;
		else
			return cli_usage(cmd, "--direction takes 'parent' or 'children', not '%s'",
					 a->val[O_DIRECTION]);
	}
	if (a->set[O_BATCH] && (r = cli_opt_size(cmd, a, O_BATCH, &o.batch_bytes)))
		return r;
	if (a->set[O_BATCH] && o.batch_bytes < 4096)
		return cli_usage(cmd, "--batch must be at least 4K");
	if (cli_opt_list(a, O_SEARCH, &search))
		return EXIT_FAIL;
	o.search = search.v;
	o.nsearch = search.n;
	g.json = a->set[O_JSON];
	g.tty = isatty(STDERR_FILENO);
	g.pause = a->set[O_PLAN] ? NULL : getenv("COWCHAIN_TEST_MERGE_PAUSE");
	if (g.pause && !*g.pause)
		g.pause = NULL;
	g.pause_at = getenv("COWCHAIN_TEST_MERGE_PAUSE_AT");
	if (!g.pause_at || !*g.pause_at)
		g.pause_at = "copy";
	o.progress = on_progress;
	o.progress_ctx = &g;
	clock_gettime(CLOCK_MONOTONIC, &g.t0);

	if (a->set[O_PLAN])
		r = cowchain_merge_plan(a->pos[0], &o, &plan, &err);
	else
		r = cowchain_merge(a->pos[0], &o, &plan, &err);
	if (g.tty && !g.json && g.last_pct >= 0)
		fputc('\n', stderr);
	if (r) {
		ret = cli_lib_error(&err);
		if (r == -EBUSY && strstr(err.msg, "other children"))
			fprintf(stderr, "hint: 'cowchain merge --direction children %s' streams the parent into all its children instead\n",
				a->pos[0]);
		cowchain_merge_plan_free(&plan);
		goto out;
	}
	ret = EXIT_OK;
	if (a->set[O_PLAN]) {
		if (g.json)
			print_plan_json(&plan, "plan");
		else
			print_plan(&plan);
	} else if (g.json) {
		print_plan_json(&plan, "plan");
		printf("{\"event\":\"done\",\"bytes\":%llu,\"seconds\":%.3f,\"bytes_per_second\":%.0f}\n",
		       (unsigned long long)plan.bytes_done, plan.seconds,
		       plan.seconds > 0 ? (double)plan.bytes_done / plan.seconds : 0.0);
	} else {
		char h[32];

		if (plan.direction == COWCHAIN_DIR_PARENT)
			printf("merged '%s' into '%s'\n", plan.child_path, plan.parent_path);
		else
			printf("merged '%s' into its children and deleted it\n", plan.parent_path);
		printf("copied %s in %.2f s (%.1f MiB/s)\n", cli_human(plan.bytes_done, h), plan.seconds,
		       plan.seconds > 0 ? (double)plan.bytes_done / 1048576.0 / plan.seconds : 0.0);
	}
	cowchain_merge_plan_free(&plan);
out:
	cli_list_free(&search);
	return ret;
}

const struct cli_command cmd_merge = {
	.name = "merge",
	.handler = run,
	.synopsis = "[--plan] [--direction parent|children | --into-children] [--search DIR[,DIR...]] [--json] [--batch SIZE] FILE",
	.summary = "delete a snapshot: merge a layer into its parent, or a parent into its children",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
