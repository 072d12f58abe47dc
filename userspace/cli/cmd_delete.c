// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain delete: remove a leaf layer.  Refused while it is attached or
 * has children (looked for in its own directory and --search DIRs).  The
 * parent stays sealed: other children may exist where we did not look,
 * and unsealing would let the parent change under them.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "lifecycle.h"

enum { O_SEARCH, O_FORCE };

static const struct cli_option options[] = {
	[O_SEARCH] = { "search", "DIR[,DIR...]", "also look for children in DIRs" },
	[O_FORCE]  = { "force", NULL, "delete a sealed layer whose children were not found" },
	{ NULL, NULL, NULL },
};

static char *cc_dirname_cli(const char *path)
{
	char *c = strdup(path), *d;

	if (!c)
		return NULL;
	d = strdup(dirname(c));
	free(c);
	return d;
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_users u;
	struct cowchain_layer *l;
	struct cowchain_tree t;
	const char *file = a->pos[0], *dirs[65];
	char *dir, *list = NULL, *save = NULL, *s, kids[1024] = "";
	u8 uuid[16];
	u32 flags;
	int nd = 0, nkids = 0, r = EXIT_OK;
	size_t i;

	(void)cmd;
	if (cowchain_layer_open(file, 0, &l, &err))
		return cli_error("cannot delete '%s': %s", file, err.msg);
	memcpy(uuid, cowchain_layer_sb(l)->uuid, 16);
	flags = cowchain_layer_sb(l)->flags;
	cowchain_layer_close(l, NULL);
	dir = cc_dirname_cli(file);
	dirs[nd++] = dir;
	if (a->set[O_SEARCH]) {
		list = strdup(a->val[O_SEARCH]);
		for (s = strtok_r(list, ",", &save); s && nd < 65; s = strtok_r(NULL, ",", &save))
			dirs[nd++] = s;
	}
	if (cowchain_tree_scan(dirs, nd, &t, &err)) {
		r = cli_error("cannot delete '%s': %s", file, err.msg);
		goto out;
	}
	for (i = 0; i < t.n; i++)
		if (t.v[i].problem != COWCHAIN_TREE_UNREADABLE &&
		    t.v[i].parent_kind == COWCHAIN_PARENT_LAYER && !memcmp(t.v[i].parent_uuid, uuid, 16)) {
			size_t n = strlen(kids);

			snprintf(kids + n, sizeof(kids) - n, "%s'%s'", nkids ? ", " : "", t.v[i].path);
			nkids++;
		}
	cowchain_tree_free(&t);
	if (nkids) {
		r = cli_error("cannot delete '%s': it has %d child%s (%s); delete or merge %s first",
			      file, nkids, nkids == 1 ? "" : "ren", kids, nkids == 1 ? "it" : "them");
		goto out;
	}
	if (!cowchain_layer_users(file, &u) && (u.ndms || u.nloops)) {
		r = cli_error("cannot delete '%s': it is attached (%s%s)", file,
			      u.ndms ? "device " : "", u.ndms ? u.dms : u.loops);
		goto out;
	}
	if ((flags & COWCHAIN_SB_SEALED) && !a->set[O_FORCE]) {
		r = cli_error("cannot delete '%s': it is sealed (it has or had children) and none was "
			      "found here; give --search DIR where they live, or --force", file);
		goto out;
	}
	if (unlink(file))
		r = cli_error("cannot delete '%s': %s", file, strerror(errno));
out:
	free(list);
	free(dir);
	return r;
}

const struct cli_command cmd_delete = {
	.name = "delete",
	.handler = run,
	.synopsis = "FILE [--search DIR[,DIR...]] [--force]",
	.summary = "delete a leaf layer (refused while attached or when it has children)",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
