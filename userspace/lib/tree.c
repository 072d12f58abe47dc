// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The tree of layers in some directories, like VirtualBox's Virtual Media
 * Manager: every layer found, linked to its parent by uuid (the locator is
 * only a hint, FORMAT.md 8), with its size on disk, what it holds, its
 * flags, the devices using it and any broken link.
 *
 * A file is taken for a layer when one of its superblock slots starts with
 * the superblock magic; such a file that then fails to open is listed as
 * unreadable rather than skipped.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "internal.h"
#include "lifecycle.h"

static bool looks_like_layer(const char *path)
{
	u8 m[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC), slot;
	bool yes = false;

	if (fd < 0)
		return false;
	for (slot = 0; slot < 2 && !yes; slot++)
		yes = !cc_pread(fd, m, 4, (u64)slot << COWCHAIN_BLOCK_SHIFT) &&
		      m[0] == 'C' && m[1] == 'C' && m[2] == 'S' && m[3] == 'B';
	close(fd);
	return yes;
}

static int find_inode(const struct cowchain_tree *t, const char *path)
{
	struct stat a, b;
	size_t i;

	if (stat(path, &a))
		return -1;
	for (i = 0; i < t->n; i++)
		if (!stat(t->v[i].path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return (int)i;
	return -1;
}

/* Add path (a layer); returns its index, or -1 when not a layer / no memory. */
static int add_layer(struct cowchain_tree *t, const char *path)
{
	struct cowchain_tree_node *n;
	struct cowchain_layer *l;
	struct cowchain_error e = { 0 };
	int k = find_inode(t, path);

	if (k >= 0)
		return k;
	if (!looks_like_layer(path))
		return -1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct cowchain_tree_node *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -1;
		t->v = v;
		t->cap = cap;
	}
	n = &t->v[t->n];
	memset(n, 0, sizeof(*n));
	n->parent = -1;
	n->path = strdup(path);
	if (!n->path)
		return -1;
	cowchain_layer_users(path, &n->users);
	if (cowchain_layer_open(path, 0, &l, &e)) {
		struct stat st;

		n->problem = COWCHAIN_TREE_UNREADABLE;
		snprintf(n->msg, sizeof(n->msg), "%s", e.msg);
		if (!stat(path, &st)) {
			n->disk_usage = (u64)st.st_blocks * 512;
			n->file_size = (u64)st.st_size;
		}
	} else {
		const struct cowchain_sb *sb = cowchain_layer_sb(l);
		struct cowchain_layer_stats ls;

		memcpy(n->uuid, sb->uuid, 16);
		memcpy(n->parent_uuid, sb->parent_uuid, 16);
		n->flags = sb->flags;
		n->parent_kind = sb->parent_kind;
		n->generation = sb->generation;
		n->parent_generation = sb->parent_generation;
		n->virtual_size = sb->virtual_size;
		if (!cowchain_layer_stats(l, &ls, &e)) {
			n->disk_usage = ls.disk_usage;
			n->file_size = ls.file_size;
			n->allocated = ls.data_clusters << sb->cluster_shift;
		}
		if (sb->parent_kind && sb->locator_len) {
			char *dir = cc_dirname(path);

			if (dir) {
				if (sb->locator[0] == '/')
					n->base = strndup((const char *)sb->locator, sb->locator_len);
				else if (asprintf(&n->base, "%s/%.*s", dir, (int)sb->locator_len,
						  (const char *)sb->locator) < 0)
					n->base = NULL;
				free(dir);
			}
		}
		cowchain_layer_close(l, NULL);
	}
	return (int)t->n++;
}

static int by_uuid(const struct cowchain_tree *t, const u8 *uuid)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].problem != COWCHAIN_TREE_UNREADABLE && !memcmp(t->v[i].uuid, uuid, 16))
			return (int)i;
	return -1;
}

int cowchain_tree_scan(const char *const *dirs, int ndirs, struct cowchain_tree *t,
		       struct cowchain_error *err)
{
	size_t i;
	int d;

	memset(t, 0, sizeof(*t));
	for (d = 0; d < ndirs; d++) {
		struct dirent **names;
		int k, cnt = scandir(dirs[d], &names, NULL, alphasort);

		if (cnt < 0) {
			int e = errno;

			cowchain_tree_free(t);
			return cc_fail(err, -e, "cannot read directory '%s': %s", dirs[d], strerror(e));
		}
		for (k = 0; k < cnt; k++) {
			char *p;
			struct stat st;

			if (names[k]->d_name[0] != '.' &&
			    asprintf(&p, "%s/%s", dirs[d], names[k]->d_name) >= 0) {
				if (!stat(p, &st) && S_ISREG(st.st_mode))
					add_layer(t, p);
				free(p);
			}
			free(names[k]);
		}
		free(names);
	}
	/* link; follow locators out of the scanned directories (t->n grows) */
	for (i = 0; i < t->n; i++) {
		struct cowchain_tree_node *n = &t->v[i];
		int p;

		if (n->problem == COWCHAIN_TREE_UNREADABLE)
			continue;
		if (n->parent_kind == COWCHAIN_PARENT_RAW) {
			if (!n->base || access(n->base, R_OK)) {
				n->problem = COWCHAIN_TREE_MISSING_BASE;
				snprintf(n->msg, sizeof(n->msg), "raw base '%s' not found",
					 n->base ? n->base : "?");
			}
			continue;
		}
		if (n->parent_kind != COWCHAIN_PARENT_LAYER)
			continue;
		p = by_uuid(t, n->parent_uuid);
		if (p < 0 && n->base) {
			char *loc = strdup(n->base);

			if (loc) {
				add_layer(t, loc);	/* may move t->v */
				free(loc);
			}
			n = &t->v[i];
			p = by_uuid(t, n->parent_uuid);
		}
		if (p < 0) {
			char u[37];

			cowchain_uuid_str(n->parent_uuid, u);
			n->problem = COWCHAIN_TREE_MISSING_PARENT;
			snprintf(n->msg, sizeof(n->msg), "parent %s not found (locator '%s')", u,
				 n->base ? n->base : "");
			continue;
		}
		n->parent = p;
		if (t->v[p].generation != n->parent_generation) {
			n->problem = COWCHAIN_TREE_WRONG_GENERATION;
			snprintf(n->msg, sizeof(n->msg),
				 "parent '%s' has generation %llu, this child expects %llu",
				 t->v[p].path, (unsigned long long)t->v[p].generation,
				 (unsigned long long)n->parent_generation);
		}
	}
	return 0;
}

void cowchain_tree_free(struct cowchain_tree *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].base);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}
