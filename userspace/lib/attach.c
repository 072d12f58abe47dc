// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Whole devices: the table of a chain, attach, detach, and the live
 * operations that swap a device's table (snapshot, restore, grow).
 *
 * The live operations share one shape, because the target caches the top's
 * index and superblock in memory from the moment its table is loaded:
 *
 *  1. suspend: the target commits and checkpoints (postsuspend), so the
 *     files on disk are complete and nothing is in flight;
 *  2. change files only in ways the suspended table never sees again, or
 *     that can be put back exactly: a new file (snapshot child, restore's
 *     fresh top), or a superblock write to the old top whose two raw slots
 *     were saved first (the seal of a snapshot, the size of a grow);
 *  3. load the new table (its constructor reads the files afresh) and
 *     resume: the old table is destroyed without writing anything (its
 *     destructor only frees memory);
 *  4. on any failure before the resume succeeded: drop the inactive table,
 *     put the saved superblock slots back (the suspended table's in-memory
 *     superblock and sequence number then match the disk again), remove
 *     the new files, resume the old table.  The device carries on as if
 *     nothing happened.
 *
 * Restore does not reset the top in place: the live table would keep
 * serving its cached index of the old contents.  It creates a fresh child
 * of the same parent (same size, same AUTORESET), swaps it in as the top,
 * and renames it over the old top's file once the device runs on it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include "internal.h"
#include "lifecycle.h"

void cowchain_devset_free(struct cowchain_devset *s)
{
	u32 i;

	if (s->files)
		for (i = 0; i < s->n; i++)
			free(s->files[i]);
	if (s->loops)
		for (i = 0; i < s->n; i++)
			cowchain_loop_release(&s->loops[i]);
	free(s->files);
	free(s->loops);
	free(s->params);
	memset(s, 0, sizeof(*s));
}

/*
 * The chain's files, top first, then the base.  With refuse_merging, a
 * layer marked MERGING is refused: a merge is running on it (between two of
 * its steps it may hold no lock on that file) or was interrupted, and its
 * files do not show one consistent disk until it ends.
 */
static int resolve_chain(const char *top, struct cowchain_devset *s, bool refuse_merging,
			 struct cowchain_error *err)
{
	struct cowchain_chain *c;
	const char *base;
	u64 bsize;
	u32 i;
	int r;

	memset(s, 0, sizeof(*s));	/* every field, params too: devset_free frees them */
	r = cowchain_chain_open(top, 0, &c, err);
	if (r)
		return r;
	s->nlayers = cowchain_chain_depth(c);
	base = cowchain_chain_base(c, &bsize);
	s->has_base = base != NULL;
	s->n = s->nlayers + s->has_base;
	s->sectors = cowchain_chain_size(c) >> 9;
	s->top_flags = cowchain_layer_sb(cowchain_chain_layer(c, 0))->flags;
	s->files = calloc(s->n, sizeof(*s->files));
	s->loops = calloc(s->n, sizeof(*s->loops));
	if (!s->files || !s->loops) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < s->n; i++)
		s->loops[i].fd = -1;
	for (i = 0; i < s->nlayers; i++)
		if (!(s->files[i] = strdup(cowchain_layer_path(cowchain_chain_layer(c, i)))))
			r = cc_fail(err, -ENOMEM, "out of memory");
	for (i = 0; !r && refuse_merging && i < s->nlayers; i++)
		if (cowchain_layer_sb(cowchain_chain_layer(c, i))->flags & COWCHAIN_SB_MERGING)
			r = cc_fail(err, -EBUSY,
				    "cannot attach '%s': '%s' is being merged (a merge is running on it, "
				    "or was interrupted: 'cowchain merge %s' finishes it)",
				    top, s->files[i], s->files[i]);
	if (base && !(s->files[s->nlayers] = strdup(base)))
		r = cc_fail(err, -ENOMEM, "out of memory");
out:
	cowchain_chain_close(c, NULL);
	return r;
}

static int build_params(struct cowchain_devset *s, struct cowchain_error *err)
{
	size_t len = 64;
	u32 i;
	char *p;

	for (i = 0; i < s->n; i++)
		len += strlen(s->loops[i].dev) + 1;
	p = s->params = malloc(len);
	if (!p)
		return cc_fail(err, -ENOMEM, "out of memory");
	p += sprintf(p, "%s %u", s->loops[0].dev, s->nlayers - 1);
	for (i = 1; i < s->nlayers; i++)
		p += sprintf(p, " %s", s->loops[i].dev);
	p += sprintf(p, " %s", s->has_base ? s->loops[s->nlayers].dev : "-");
	if (s->read_only)
		sprintf(p, " 1 read_only");
	return 0;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return !strcmp(a, b);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cowchain_table_find(const char *top, const struct cowchain_table_opts *o,
			struct cowchain_devset *s, struct cowchain_error *err)
{
	struct stat st;
	u32 i;
	int k, r;

	memset(s, 0, sizeof(*s));
	r = resolve_chain(top, s, false, err);
	if (r)
		goto fail;
	s->read_only = o->read_only;
	for (i = 0; i < s->n; i++) {
		const char *f = s->files[i];
		bool found = false;

		for (k = 0; k < o->ndev && !found; k++) {
			const char *eq = strrchr(o->dev[k], '=');
			char *layer = eq ? strndup(o->dev[k], (size_t)(eq - o->dev[k])) : NULL;

			if (layer && same_file(layer, f)) {
				snprintf(s->loops[i].dev, sizeof(s->loops[i].dev), "%s", eq + 1);
				found = true;
			}
			free(layer);
		}
		if (found)
			continue;
		if (!stat(f, &st) && S_ISBLK(st.st_mode)) {
			snprintf(s->loops[i].dev, sizeof(s->loops[i].dev), "%s", f);
			continue;
		}
		/* the top wants a writable loop device unless read-only */
		if (!((i == 0 && !o->read_only)
		      ? (cowchain_loop_find(f, false, s->loops[i].dev, &s->loops[i].read_only) ||
			 s->loops[i].read_only)
		      : cowchain_loop_find(f, false, s->loops[i].dev, NULL)))
			continue;
		r = cc_fail(err, -ENODEV,
			    "'%s' is not attached to a %sloop device (losetup%s it, or give --dev %s=DEV)",
			    f, i == 0 && !o->read_only ? "writable " : "",
			    i == 0 && !o->read_only ? "" : " --read-only", f);
		goto fail;
	}
	r = build_params(s, err);
	if (r)
		goto fail;
	return 0;
fail:
	cowchain_devset_free(s);
	return r;
}

/*
 * Attach against offline work on the same files (a merge, compact, a check
 * that repairs, `cowchain write`): each of those holds an exclusive flock on
 * every file it changes, and a merge or compact refuses, once it holds it, a
 * file that is attached (COWCHAIN_OPEN_UNATTACHED).  Attach takes a shared
 * flock on every layer before it sets up any loop or dm device, refuses a
 * layer marked MERGING once it holds them, and keeps them until the device
 * holds the layers.  So either the attach is refused, leaving nothing behind,
 * or the offline work sees the attached files and refuses.  The top of a
 * read-write attach is locked exclusively: a second attach of it that starts
 * while the first sets up (before either has a loop device the other could
 * see) is refused here, not by the target's claim on the top at the end.
 * fds[i] is -1 or the locked descriptor of s->files[i].
 */
static int lock_layer(const char *top, const char *f, bool excl, int *fd,
		      struct cowchain_error *err)
{
	*fd = open(f, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return cc_fail(err, -errno, "cannot attach '%s': cannot open '%s': %s", top, f,
			       strerror(errno));
	if (!flock(*fd, (excl ? LOCK_EX : LOCK_SH) | LOCK_NB))
		return 0;
	if (errno == EWOULDBLOCK)
		return cc_fail(err, -EBUSY,
			       "cannot attach '%s': '%s' is locked by another cowchain process "
			       "(a merge, a repair, a write or an attach is running on it)", top, f);
	return cc_fail(err, -errno, "cannot attach '%s': cannot lock '%s': %s", top, f,
		       strerror(errno));
}

static void unlock_chain(int *fds, u32 n)
{
	u32 i;

	for (i = 0; fds && i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

/*
 * Resolve the chain, lock its layers (the top exclusively unless read_only),
 * resolve it again under the locks (refusing MERGING layers) and check it is
 * still made of the same files: a merge that ended between the two changed it.
 */
static int lock_chain(const char *top, bool read_only, struct cowchain_devset *s, int **fdsp,
		      struct cowchain_error *err)
{
	struct cowchain_devset first = { 0 };
	int *fds;
	u32 i;
	int r;

	*fdsp = NULL;
	r = resolve_chain(top, &first, false, err);
	if (r)
		return r;
	fds = malloc(first.nlayers * sizeof(*fds));
	if (!fds) {
		cowchain_devset_free(&first);
		return cc_fail(err, -ENOMEM, "out of memory");
	}
	for (i = 0; i < first.nlayers; i++)
		fds[i] = -1;
	for (i = 0; !r && i < first.nlayers; i++)
		r = lock_layer(top, first.files[i], i == 0 && !read_only, &fds[i], err);
	if (!r)
		r = resolve_chain(top, s, true, err);
	for (i = 0; !r && i < first.nlayers; i++)
		if (s->nlayers != first.nlayers || !same_file(s->files[i], first.files[i]))
			r = cc_fail(err, -EAGAIN,
				    "cannot attach '%s': its chain changed while attaching "
				    "(a merge ended?); try again", top);
	if (r) {
		unlock_chain(fds, first.nlayers);
		cowchain_devset_free(s);
	} else {
		*fdsp = fds;
	}
	cowchain_devset_free(&first);
	return r;
}

void (*cowchain_attach_step_hook)(const char *step);

int cowchain_attach(const char *name, const char *top, bool read_only,
		    struct cowchain_devset *s, struct cowchain_error *err)
{
	int *fds = NULL;
	struct cowchain_dm_info di;
	struct cowchain_users u;
	struct cowchain_layer *l;
	struct cowchain_error e2;
	u32 flags, i;
	int r;

	memset(s, 0, sizeof(*s));
	if (!cowchain_dm_info(name, &di, &e2) && di.exists)
		return cc_fail(err, -EEXIST, "cannot attach '%s': device '%s' already exists", top, name);
	r = cowchain_layer_open(top, 0, &l, err);
	if (r)
		return r;
	flags = cowchain_layer_sb(l)->flags;
	cowchain_layer_close(l, NULL);
	if ((flags & COWCHAIN_SB_SEALED) && !read_only)
		return cc_fail(err, -EROFS,
			       "cannot attach '%s': it is sealed (it has children); attach it with "
			       "--read-only, or attach a child", top);
	if (!cowchain_layer_users(top, &u)) {
		bool rw_loop = false;
		const char *p = u.loops;

		for (i = 0; i < (u32)u.nloops; i++, p += strlen(p) + 1) {
			char ro[8] = "0", sp[128];
			FILE *f;

			snprintf(sp, sizeof(sp), "/sys/block/%s/ro", p + 5);
			f = fopen(sp, "re");
			if (f) {
				if (!fgets(ro, sizeof(ro), f))
					ro[0] = '0';
				fclose(f);
			}
			if (ro[0] != '1')
				rw_loop = true;
		}
		if (u.ndms && !read_only)
			return cc_fail(err, -EBUSY, "cannot attach '%s': already attached (device '%s')",
				       top, u.dms);
		if ((u.nloops && !read_only) || rw_loop)
			return cc_fail(err, -EBUSY, "cannot attach '%s': already attached to %s%s%s",
				       top, u.loops, u.ndms ? " used by device " : "",
				       u.ndms ? u.dms : "");
	}
	r = lock_chain(top, read_only, s, &fds, err);
	if (r)
		return r;
	if ((flags & COWCHAIN_SB_AUTORESET) && !(flags & COWCHAIN_SB_SEALED)) {
		/* the reset takes the top's exclusive lock: let ours go meanwhile */
		close(fds[0]);
		fds[0] = -1;
		r = cowchain_layer_reset(top, err);
		if (!r)
			r = lock_layer(top, s->files[0], !read_only, &fds[0], err);
		if (r)
			goto fail;
	}
	s->top_flags = flags;
	s->top_reset = (flags & COWCHAIN_SB_AUTORESET) && !(flags & COWCHAIN_SB_SEALED);
	s->read_only = read_only;
	if (cowchain_attach_step_hook)
		cowchain_attach_step_hook("locked");
	for (i = 0; i < s->n; i++) {
		bool ro = i > 0 || read_only;

		r = cowchain_loop_get(s->files[i], ro, ro, &s->loops[i], err);
		if (r)
			goto fail;
	}
	if (cowchain_attach_step_hook)
		cowchain_attach_step_hook("loops");
	r = build_params(s, err);
	if (!r)
		r = cowchain_dm_create(name, s->sectors, s->params, read_only, err);
	if (r)
		goto fail;
	/* the device holds the loop devices now, and so the layers */
	for (i = 0; i < s->n; i++)
		cowchain_loop_release(&s->loops[i]);
	unlock_chain(fds, s->nlayers);
	return 0;
fail:
	unlock_chain(fds, s->nlayers);
	cowchain_devset_free(s);
	return r;
}

/* ---- live devices ------------------------------------------------------ */

void cowchain_live_free(struct cowchain_live *lv)
{
	int i;

	for (i = 0; i < lv->ntok; i++)
		free(lv->tok[i]);
	free(lv->tok);
	lv->tok = NULL;
	lv->ntok = 0;
}

int cowchain_live_get(const char *name, struct cowchain_live *lv, struct cowchain_error *err)
{
	char *type = NULL, *params = NULL, *save = NULL, *t;
	unsigned long n;
	int r;

	memset(lv, 0, sizeof(*lv));
	snprintf(lv->name, sizeof(lv->name), "%s", name);
	r = cowchain_dm_table(name, &type, &lv->len, &params, err);
	if (r)
		return r;
	if (strcmp(type, "cowchain")) {
		r = cc_fail(err, -EINVAL, "device '%s' is a '%s' device, not a cowchain one", name, type);
		goto out;
	}
	lv->tok = calloc(strlen(params) / 2 + 2, sizeof(char *));
	if (!lv->tok) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (t = strtok_r(params, " ", &save); t; t = strtok_r(NULL, " ", &save))
		lv->tok[lv->ntok++] = strdup(t);
	n = lv->ntok >= 2 ? strtoul(lv->tok[1], NULL, 10) : 0;
	if (lv->ntok < 3 || (unsigned long)lv->ntok < n + 3) {
		r = cc_fail(err, -EINVAL, "device '%s': cannot parse its table '%s'", name, params);
		goto out;
	}
	lv->nanc = (u32)n;
	lv->read_only = (unsigned long)lv->ntok > n + 3 && !!strstr(lv->tok[lv->ntok - 1], "read_only");
	snprintf(lv->top_dev, sizeof(lv->top_dev), "%s", lv->tok[0]);
	if (cowchain_loop_backing(lv->top_dev, lv->top_file, sizeof(lv->top_file))) {
		char p[CC_DEV_LEN];

		if (cowchain_majmin_path(lv->top_dev, p)) {
			r = cc_fail(err, -ENODEV, "device '%s': cannot find its top layer %s", name,
				    lv->top_dev);
			goto out;
		}
		snprintf(lv->top_file, sizeof(lv->top_file), "%s", p);
	}
out:
	free(type);
	free(params);
	if (r)
		cowchain_live_free(lv);
	return r;
}

int cowchain_resolve_arg(const char *arg, char name[128], struct cowchain_error *err)
{
	struct cowchain_dm_info di;
	struct cowchain_users u;
	struct cowchain_error e2;
	struct stat st;

	if (!strchr(arg, '/') && !cowchain_dm_info(arg, &di, &e2) && di.exists &&
	    stat(arg, &st)) {
		snprintf(name, 128, "%s", arg);
		return 1;
	}
	if (stat(arg, &st))
		return cc_fail(err, -errno, "cannot open '%s': %s", arg, strerror(errno));
	if (cowchain_layer_users(arg, &u) || (!u.ndms && !u.nloops))
		return 0;
	if (u.ndms == 1) {
		struct cowchain_live lv;
		bool is_top;

		if (cowchain_live_get(u.dms, &lv, &e2))
			return cc_fail(err, -EBUSY, "'%s' is in use by device '%s'", arg, u.dms);
		is_top = same_file(lv.top_file, arg);
		cowchain_live_free(&lv);
		if (is_top) {
			snprintf(name, 128, "%.127s", u.dms);
			return 1;
		}
		return cc_fail(err, -EBUSY, "'%s' is in use by device '%s' (not as its top layer)",
			       arg, u.dms);
	}
	if (u.ndms)
		return cc_fail(err, -EBUSY, "'%s' is in use by several devices", arg);
	return cc_fail(err, -EBUSY, "'%s' is attached to %s but not used by a device", arg, u.loops);
}

int cowchain_detach(const char *name, struct cowchain_error *err)
{
	struct cowchain_dm_info di;
	struct cowchain_live lv;
	int r;

	r = cowchain_dm_info(name, &di, err);
	if (r)
		return r;
	if (!di.exists)
		return cc_fail(err, -ENODEV, "cannot detach '%s': no such device", name);
	r = cowchain_live_get(name, &lv, err);
	if (r)
		return r;
	cowchain_live_free(&lv);
	if (di.open_count)
		return cc_fail(err, -EBUSY, "cannot detach '%s': device is in use (open %d time%s)",
			       name, di.open_count, di.open_count == 1 ? "" : "s");
	if (di.suspended) {
		/* removing flushes nothing while suspended: resume first */
		r = cowchain_dm_resume(name, err);
		if (r)
			return r;
	}
	/* remove suspends first (the target commits and checkpoints) */
	return cowchain_dm_remove(name, err);
}

/* The live table with token 0 replaced by top and new ancestors in front. */
static char *live_params(const struct cowchain_live *lv, const char *top, const char *extra_anc)
{
	size_t len = strlen(top) + (extra_anc ? strlen(extra_anc) : 0) + 32;
	char *p, *q;
	int i;

	for (i = 0; i < lv->ntok; i++)
		len += strlen(lv->tok[i]) + 1;
	p = q = malloc(len);
	if (!p)
		return NULL;
	q += sprintf(q, "%s %u", top, lv->nanc + (extra_anc ? 1 : 0));
	if (extra_anc)
		q += sprintf(q, " %s", extra_anc);
	for (i = 2; i < lv->ntok; i++)
		q += sprintf(q, " %s", lv->tok[i]);
	return p;
}

/* Undo after a failed swap: inactive table away, superblocks back, resume. */
static int back_out(const char *name, const char *top_file, const struct cowchain_sb_save *saved,
		    struct cowchain_error *err)
{
	struct cowchain_dm_info di;
	struct cowchain_error e2;
	int r = 0;

	if (!cowchain_dm_info(name, &di, &e2) && di.inactive_table)
		cowchain_dm_clear(name, &e2);
	if (saved && cowchain_sb_put_back(top_file, saved, &e2))
		r = -EIO;
	if (cowchain_dm_resume(name, &e2))
		r = -EIO;
	if (r) {
		size_t n = strlen(err->msg);

		snprintf(err->msg + n, sizeof(err->msg) - n, "; and undoing failed too: %s", e2.msg);
	}
	return r;
}

int cowchain_live_snapshot(const char *name, const char *newfile, struct cowchain_error *err)
{
	struct cowchain_create_opts co = { 0 };
	struct cowchain_sb_save saved;
	struct cowchain_live lv;
	struct cowchain_loop lp = { .fd = -1 }, anc = { .fd = -1 };
	struct stat st;
	char *params = NULL;
	bool created = false;
	int r;

	r = cowchain_live_get(name, &lv, err);
	if (r)
		return r;
	if (lv.read_only) {
		r = cc_fail(err, -EROFS, "cannot snapshot device '%s': it is read-only", name);
		goto out;
	}
	if (!stat(newfile, &st)) {
		r = cc_fail(err, -EEXIST, "cannot snapshot device '%s': '%s' already exists", name, newfile);
		goto out;
	}
	r = cowchain_dm_suspend(name, err);
	if (r)
		goto out;
	r = cowchain_sb_save(lv.top_file, &saved, err);
	if (r)
		goto undo;
	co.parent = lv.top_file;
	r = cowchain_create(newfile, &co, err);
	created = r != -EEXIST;
	if (r)
		goto undo;
	r = cowchain_loop_get(newfile, false, false, &lp, err);
	if (r)
		goto undo;
	/*
	 * The old top becomes an ancestor: read-only, like every ancestor, so
	 * it goes into the new table through a read-only loop device (a file
	 * layer; a block device layer is used as it is).  Its read-write loop
	 * device goes away with the old table (autoclear).
	 */
	r = cowchain_loop_get(lv.top_file, true, true, &anc, err);
	if (r)
		goto undo;
	params = live_params(&lv, lp.dev, anc.dev);
	if (!params) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto undo;
	}
	r = cowchain_dm_reload(name, lv.len, params, false, err);
	if (r)
		goto undo;
	r = cowchain_dm_resume(name, err);
	if (r)
		goto undo;
	goto out;
undo:
	cowchain_loop_release(&lp);
	cowchain_loop_release(&anc);
	if (created)
		unlink(newfile);
	back_out(name, lv.top_file, &saved, err);
out:
	cowchain_loop_release(&lp);
	cowchain_loop_release(&anc);
	free(params);
	cowchain_live_free(&lv);
	return r;
}

int cowchain_live_restore(const char *name, struct cowchain_error *err)
{
	struct cowchain_create_opts co = { 0 };
	struct cowchain_live lv;
	struct cowchain_loop lp = { .fd = -1 };
	struct cowchain_layer *l = NULL;
	char parent[4096], *tmp = NULL, *params = NULL, *dir = NULL;
	const char *base;
	u32 flags;
	int r;

	r = cowchain_live_get(name, &lv, err);
	if (r)
		return r;
	if (lv.read_only) {
		r = cc_fail(err, -EROFS, "cannot restore device '%s': it is read-only", name);
		goto out;
	}
	r = cowchain_layer_open(lv.top_file, 0, &l, err);
	if (r)
		goto out;
	{
		const struct cowchain_sb *sb = cowchain_layer_sb(l);

		co.size = sb->virtual_size;
		co.cluster_shift = sb->cluster_shift;
		co.subblock_shift = sb->subblock_shift;
		co.journal_blocks = sb->journal_blocks;
		flags = sb->flags;
	}
	cowchain_layer_close(l, NULL);
	/* the parent (or raw base) is the next device of the live table */
	if (lv.nanc || strcmp(lv.tok[2], "-")) {
		const char *dev = lv.tok[2];

		if (cowchain_loop_backing(dev, parent, sizeof(parent)) &&
		    cowchain_majmin_path(dev, parent)) {
			r = cc_fail(err, -ENODEV, "device '%s': cannot find the file of %s", name, dev);
			goto out;
		}
		if (lv.nanc) {
			co.parent = parent;
			co.cluster_shift = co.subblock_shift = 0;
		} else {
			co.base = parent;
		}
	}
	base = strrchr(lv.top_file, '/');
	dir = cc_dirname(lv.top_file);
	tmp = malloc(strlen(lv.top_file) + 64);
	if (!dir || !tmp) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	sprintf(tmp, "%s/.%s.restore-%d", dir, base ? base + 1 : lv.top_file, (int)getpid());
	r = cowchain_dm_suspend(name, err);
	if (r)
		goto out;
	r = cowchain_create(tmp, &co, err);
	if (r)
		goto undo_nofile;
	if ((flags & COWCHAIN_SB_AUTORESET) && (r = cowchain_layer_set_autoreset(tmp, true, err)))
		goto undo;
	r = cowchain_loop_get(tmp, false, false, &lp, err);
	if (r)
		goto undo;
	params = live_params(&lv, lp.dev, NULL);
	if (!params) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto undo;
	}
	r = cowchain_dm_reload(name, lv.len, params, false, err);
	if (r)
		goto undo;
	r = cowchain_dm_resume(name, err);
	if (r)
		goto undo;
	if (rename(tmp, lv.top_file))
		r = cc_fail(err, -errno,
			    "device '%s' runs on the restored top '%s' but it cannot be renamed to '%s': %s",
			    name, tmp, lv.top_file, strerror(errno));
	goto out;
undo:
	cowchain_loop_release(&lp);
	unlink(tmp);
undo_nofile:
	back_out(name, lv.top_file, NULL, err);
out:
	cowchain_loop_release(&lp);
	free(params);
	free(tmp);
	free(dir);
	cowchain_live_free(&lv);
	return r;
}

int cowchain_live_grow(const char *name, u64 size, struct cowchain_error *err)
{
	struct cowchain_sb_save saved;
	struct cowchain_live lv;
	char *params = NULL, loopdev[CC_DEV_LEN];
	bool is_loop;
	int r;

	r = cowchain_live_get(name, &lv, err);
	if (r)
		return r;
	if (lv.read_only) {
		r = cc_fail(err, -EROFS, "cannot resize device '%s': it is read-only", name);
		goto out;
	}
	is_loop = !strncmp(lv.top_dev, "7:", 2);
	params = live_params(&lv, lv.top_dev, NULL);
	if (!params) {
		r = cc_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = cowchain_dm_suspend(name, err);
	if (r)
		goto out;
	r = cowchain_sb_save(lv.top_file, &saved, err);
	if (r)
		goto undo_nosb;
	r = cowchain_layer_grow(lv.top_file, size, err);
	if (r)
		goto undo;
	if (is_loop) {
		r = cowchain_majmin_path(lv.top_dev, loopdev);
		if (r)
			r = cc_fail(err, r, "device '%s': cannot find the loop device %s", name,
				    lv.top_dev);
		else
			r = cowchain_loop_set_capacity(loopdev, err);
		if (r)
			goto undo;
	}
	r = cowchain_dm_reload(name, size >> 9, params, false, err);
	if (r)
		goto undo;
	r = cowchain_dm_resume(name, err);
	if (r)
		goto undo;
	goto out;
undo:
	back_out(name, lv.top_file, &saved, err);
	goto out;
undo_nosb:
	back_out(name, lv.top_file, NULL, err);
out:
	free(params);
	cowchain_live_free(&lv);
	return r;
}
