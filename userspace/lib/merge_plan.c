// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Planning a merge: which two layers, which direction, what it costs, and
 * every reason to refuse, decided before anything is written.
 *
 * The cost model is the data each direction copies (what VirtualBox
 * compares, by size):
 *   into the parent:   every sub-block C stores;
 *   into the children: for each child K, every sub-block of P's data that
 *                      K does not mask (K reads it through P).
 * Zero markers cost no data.  Without --direction the cheaper safe one is
 * taken (a tie goes to the parent: it keeps P's name and copies once); the
 * parent direction is unsafe when P has other children (they would see P
 * change) or C is larger than P (P cannot grow).
 *
 * Space: the extra space at any instant is bounded by one batch per file
 * written (data lives in both files only until the source's commit), plus
 * the final growth when several children each get a copy of P's data.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include "merge_internal.h"

static int add_file(struct merge *m, const char *path, const char *role, const char *action,
		    u64 copy, s64 growth, u64 peak)
{
	struct cowchain_merge_plan *p = m->plan;
	struct cowchain_merge_file *v = realloc(p->files, (p->nfiles + 1) * sizeof(*v));

	if (!v)
		return cc_fail(m->err, -ENOMEM, "out of memory");
	p->files = v;
	v += p->nfiles;
	v->path = strdup(path);
	if (!v->path)
		return cc_fail(m->err, -ENOMEM, "out of memory");
	v->role = role;
	v->action = action;
	v->copy_bytes = copy;
	v->growth = growth;
	v->peak_extra = peak;
	p->nfiles++;
	return 0;
}

static u64 min64_(u64 a, u64 b)
{
	return a < b ? a : b;
}

static bool same_uuid(const u8 *a, const u8 *b)
{
	return !memcmp(a, b, COWCHAIN_UUID_SIZE);
}

static int open_ro(struct merge *m, const char *path, struct cowchain_layer **l)
{
	int r = cowchain_layer_open(path, 0, l, m->err);

	if (r)
		return r;
	if ((*l)->sb.flags & COWCHAIN_SB_NEEDS_CHECK)
		return cc_failf(m->err, -EUCLEAN, path,
				"needs 'cowchain check' before it can take part in a merge");
	return cowchain_check_unattached(path, m->err);
}

/* A layer in another merge than this one refuses. */
static int not_busy(struct merge *m, const char *path, const struct cowchain_sb *sb,
		    u32 ok_state, const u8 *ok_peer)
{
	if (!(sb->flags & COWCHAIN_SB_MERGING))
		return 0;
	if (sb->merge_state == ok_state && (!ok_peer || same_uuid(sb->merge_peer_uuid, ok_peer)))
		return 0;
	return cc_failf(m->err, -EBUSY, path, "is part of another merge (state %u); finish that one first",
			sb->merge_state);
}

static void dirs_str(const struct merge *m, char *buf, size_t n)
{
	size_t i, k = 0;

	buf[0] = 0;
	for (i = 0; i < m->ndirs && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s'%s'", i ? ", " : "", m->dirs[i]);
}

/* Bytes of P's data K reads through P, and zero markers it would get. */
static int reads_cost(struct merge *m, struct cowchain_layer *P, struct cowchain_layer *K,
		      const struct vcl *s, u64 *bytes, u64 *zeros)
{
	bool zmark = P->sb.parent_kind != COWCHAIN_PARENT_NONE;
	size_t i;

	(void)m;
	*bytes = *zeros = 0;
	for (i = 0; i < s->n; i++) {
		struct cowchain_entry pe, ke = { 0, 0, 0 };
		u64 bits;

		if (cowchain_layer_lookup(P, s->v[i], &pe))
			continue;
		cowchain_layer_lookup(K, s->v[i], &ke);
		bits = (pe.present | pe.zero) & ~(ke.present | ke.zero);
		*bytes += (u64)__builtin_popcountll(bits & pe.present) << P->sb.subblock_shift;
		if (zmark)
			*zeros += (u64)__builtin_popcountll(bits & pe.zero);
	}
	return 0;
}

static int find_kids(struct merge *m, const u8 *uuid, struct cc_found **f, size_t *n)
{
	return cc_find_children(uuid, m->dirs, m->ndirs, f, n, m->err);
}

static int take_kid(struct merge *m, const struct cc_found *f)
{
	struct kid *v = realloc(m->kids, (m->nkids + 1) * sizeof(*v));

	if (!v)
		return cc_fail(m->err, -ENOMEM, "out of memory");
	m->kids = v;
	memset(&v[m->nkids], 0, sizeof(*v));
	v[m->nkids].path = strdup(f->path);
	v[m->nkids].sb = f->sb;
	if (!v[m->nkids].path)
		return cc_fail(m->err, -ENOMEM, "out of memory");
	m->nkids++;
	return 0;
}

/*
 * Resuming a merge into the children: the child P names as its peer is
 * relinked last, so if it no longer names P every child is done.  If it
 * is in none of the directories searched, children may live elsewhere
 * (the merge started with another --search): finishing would delete the
 * parent they still read through, so refuse.
 */
static int peer_child_seen(struct merge *m, const struct cowchain_layer *P,
			   const struct cowchain_layer *named)
{
	const u8 *peer = P->sb.merge_peer_uuid;
	char *where = NULL, us[37], dirs[1024];
	bool found;
	size_t i;
	int r;

	if (!(P->sb.flags & COWCHAIN_SB_MERGING) ||
	    P->sb.merge_state != COWCHAIN_MERGE_INTO_CHILDREN || same_uuid(peer, P->sb.uuid))
		return 0;	/* not marked yet, or it had no child */
	if (same_uuid(peer, named->sb.uuid))
		return 0;	/* named by the peer itself */
	for (i = 0; i < m->nkids; i++)
		if (same_uuid(m->kids[i].sb.uuid, peer))
			return 0;
	r = cc_find_layer(peer, m->dirs, m->ndirs, &where, m->err);
	found = where;
	free(where);
	if (r || found)
		return r;
	cowchain_uuid_str(peer, us);
	dirs_str(m, dirs, sizeof(dirs));
	return cc_failf(m->err, -ENOENT, m->ppath,
			"is being merged into its children, but its child %s is not in %s: children may live elsewhere; add --search DIR",
			us, dirs);
}

int cc_merge_plan(struct merge *m, const char *layer)
{
	struct cowchain_merge_plan *plan = m->plan;
	const struct cowchain_merge_opts *o = m->o;
	struct cowchain_layer *X = NULL, *P = NULL, *C = NULL, **K = NULL;
	struct cc_found *pk = NULL, *gk = NULL;
	size_t npk = 0, ngk = 0, i, nsib = 0, nk = 0;
	struct cowchain_layer_stats st;
	struct vcl s = { 0 };
	char dirs[1024], sib[512] = "";
	const char **extra = NULL;
	u64 sbsize, cost_c = 0, child_zero = 0, p_new = 0, p_dropped = 0, batch;
	int r;

	batch = o->batch_bytes ? o->batch_bytes : 64ull << 20;
	r = cowchain_layer_open(layer, 0, &X, m->err);
	if (r)
		return r;
	m->resume = X->sb.flags & COWCHAIN_SB_MERGING;
	plan->resume = m->resume;
	if (m->resume && X->sb.parent_kind != COWCHAIN_PARENT_LAYER &&
	    (X->sb.merge_state == COWCHAIN_MERGE_INTO_PARENT ||
	     X->sb.merge_state == COWCHAIN_MERGE_FROM_PARENT)) {
		/* Only a child is marked so (its relink clears the mark). */
		r = cc_failf(m->err, -EINVAL, layer,
			     "records a merge with its parent (state %u) but has no parent layer",
			     X->sb.merge_state);
		goto out;
	}
	if (m->resume) {
		switch (X->sb.merge_state) {
		case COWCHAIN_MERGE_INTO_PARENT:
			m->dir = COWCHAIN_DIR_PARENT;
			m->cpath = strdup(layer);
			m->ppath = cc_locator_target(layer, &X->sb);
			break;
		case COWCHAIN_MERGE_FROM_CHILD:
			m->dir = COWCHAIN_DIR_PARENT;
			m->ppath = strdup(layer);
			break;
		case COWCHAIN_MERGE_INTO_CHILDREN:
			m->dir = COWCHAIN_DIR_CHILDREN;
			m->ppath = strdup(layer);
			break;
		default:
			m->dir = COWCHAIN_DIR_CHILDREN;
			m->ppath = cc_locator_target(layer, &X->sb);
			m->cpath = strdup(layer);
			break;
		}
		if (o->direction != COWCHAIN_DIR_AUTO && o->direction != m->dir) {
			r = cc_failf(m->err, -EBUSY, layer,
				     "a merge into the %s is in progress; run 'cowchain merge' on it again without --direction",
				     m->dir == COWCHAIN_DIR_PARENT ? "parent" : "children");
			goto out;
		}
	} else if (o->direction == COWCHAIN_DIR_CHILDREN && !o->layer_is_child) {
		m->dir = COWCHAIN_DIR_CHILDREN;
		m->ppath = strdup(layer);
	} else {
		/*
		 * A merge named by a child may be the tail of an interrupted
		 * merge into the children: this child already relinked (or
		 * made a root), the old parent (MERGING, peer = this child) not
		 * yet deleted.  Finish that one instead of starting another.
		 */
		char **dv = NULL, *left = NULL;
		size_t nd = 0;

		r = cc_search_dirs(layer, o->search, o->nsearch, &dv, &nd, m->err);
		if (!r)
			r = cc_find_leftover(X->sb.uuid, dv, nd, &left, m->err);
		cc_strv_free(dv, nd);
		if (r)
			goto out;
		if (left) {
			m->ppath = left;
			m->resume = plan->resume = true;
			m->dir = COWCHAIN_DIR_CHILDREN;
			goto located;
		}
		if (X->sb.parent_kind != COWCHAIN_PARENT_LAYER) {
			r = cc_failf(m->err, -EINVAL, layer,
				     "is not a child (it is a root%s): there is no parent to merge with%s",
				     X->sb.parent_kind == COWCHAIN_PARENT_RAW ? " over a raw image" : "",
				     o->direction == COWCHAIN_DIR_AUTO ? "; to merge it into its children use --into-children" : "");
			goto out;
		}
		m->cpath = strdup(layer);
		m->ppath = cc_locator_target(layer, &X->sb);
		m->dir = o->direction;
	}
located:
	if (!m->ppath || (m->resume && X->sb.merge_state == COWCHAIN_MERGE_INTO_PARENT && !m->cpath)) {
		r = cc_fail(m->err, -ENOMEM, "out of memory");
		goto out;
	}
	/* Directories: P's, C's (its children), the user's. */
	extra = calloc(o->nsearch + 2, sizeof(*extra));
	if (!extra) {
		r = cc_fail(m->err, -ENOMEM, "out of memory");
		goto out;
	}
	nk = 0;
	if (m->cpath)
		extra[nk++] = m->cpath;	/* its directory, see below */
	for (i = 0; i < o->nsearch; i++)
		extra[nk++] = o->search[i];
	{
		char *cdir = m->cpath ? cc_dirname(m->cpath) : NULL;

		if (cdir)
			extra[0] = cdir;
		r = cc_search_dirs(m->ppath, extra, nk, &m->dirs, &m->ndirs, m->err);
		free(cdir);
	}
	if (r)
		goto out;
	dirs_str(m, dirs, sizeof(dirs));
	for (i = 0; i < m->ndirs; i++) {
		char **v = realloc(plan->searched, (i + 1) * sizeof(*v));

		if (!v || !(v[i] = strdup(m->dirs[i]))) {
			if (v)
				plan->searched = v;
			r = cc_fail(m->err, -ENOMEM, "out of memory");
			goto out;
		}
		plan->searched = v;
		plan->nsearched = i + 1;
	}

	r = open_ro(m, m->ppath, &P);
	if (r)
		goto out;
	m->psb = P->sb;
	sbsize = 1ull << P->sb.subblock_shift;
	if (m->resume && X->sb.merge_state == COWCHAIN_MERGE_FROM_CHILD) {
		/* Named by the target: find the source among P's children. */
		r = find_kids(m, P->sb.merge_peer_uuid, &pk, &npk);
		if (r)
			goto out;
		cc_found_free(pk, npk);
		pk = NULL;
		r = find_kids(m, P->sb.uuid, &pk, &npk);
		for (i = 0; !r && i < npk; i++)
			if ((pk[i].sb.flags & COWCHAIN_SB_MERGING) &&
			    pk[i].sb.merge_state == COWCHAIN_MERGE_INTO_PARENT) {
				struct cowchain_layer *t;

				if (!cowchain_layer_open(pk[i].path, 0, &t, m->err)) {
					if (same_uuid(t->sb.uuid, P->sb.merge_peer_uuid))
						m->cpath = strdup(pk[i].path);
					cowchain_layer_close(t, NULL);
				}
			}
		if (!r && !m->cpath)
			r = cc_failf(m->err, -ENOENT, m->ppath,
				     "receives an unfinished merge from a child that is not in %s; name the child or add --search DIR",
				     dirs);
		cc_found_free(pk, npk);
		pk = NULL;
		if (r)
			goto out;
	}
	r = find_kids(m, P->sb.uuid, &pk, &npk);
	if (r)
		goto out;

	if (m->cpath) {
		r = open_ro(m, m->cpath, &C);
		if (r)
			goto out;
		m->csb = C->sb;
		plan->child_path = strdup(m->cpath);
		if (!same_uuid(C->sb.parent_uuid, P->sb.uuid)) {
			r = cc_failf(m->err, -ESTALE, m->cpath, "'%s' is not its parent (uuid differs)",
				     m->ppath);
			goto out;
		}
		if ((C->sb.flags & COWCHAIN_SB_MERGING) &&
		    C->sb.merge_state == COWCHAIN_MERGE_INTO_PARENT) {
			/* Resuming C into P: how far did it get? */
			if (!(P->sb.flags & COWCHAIN_SB_MERGING) &&
			    P->sb.generation > C->sb.parent_generation &&
			    C->sb.merge_cursor == C->vclusters)
				m->finished = true;
			else if (P->sb.generation != C->sb.parent_generation) {
				r = cc_failf(m->err, -ESTALE, m->cpath,
					     "parent '%s' has generation %llu, the interrupted merge expects %llu",
					     m->ppath, (unsigned long long)P->sb.generation,
					     (unsigned long long)C->sb.parent_generation);
				goto out;
			}
			if (!m->finished)
				r = not_busy(m, m->ppath, &P->sb, COWCHAIN_MERGE_FROM_CHILD, C->sb.uuid);
		} else if (!m->resume) {
			if (P->sb.generation != C->sb.parent_generation) {
				r = cc_failf(m->err, -ESTALE, m->cpath,
					     "parent '%s' has generation %llu, child expects %llu",
					     m->ppath, (unsigned long long)P->sb.generation,
					     (unsigned long long)C->sb.parent_generation);
				goto out;
			}
			r = not_busy(m, m->ppath, &P->sb, 0, NULL);
		}
		if (r)
			goto out;
		if (C->sb.cluster_shift != P->sb.cluster_shift ||
		    C->sb.subblock_shift != P->sb.subblock_shift) {
			r = cc_failf(m->err, -EINVAL, m->cpath, "geometry differs from its parent '%s'",
				     m->ppath);
			goto out;
		}
		/* Siblings: children of P other than C, bound to P's generation. */
		for (i = 0; i < npk; i++) {
			if (same_uuid(pk[i].sb.uuid, C->sb.uuid) ||
			    pk[i].sb.parent_generation != P->sb.generation)
				continue;
			if (nsib++ < 4)
				snprintf(sib + strlen(sib), sizeof(sib) - strlen(sib), "%s'%s'",
					 nsib > 1 ? ", " : "", pk[i].path);
		}
		if (nsib && !m->resume)
			snprintf(plan->refused_parent, sizeof(plan->refused_parent),
				 "'%s' has other children (%s%s): merging into it would change what they read",
				 m->ppath, sib, nsib > 4 ? ", ..." : "");
		else if (C->sb.virtual_size != P->sb.virtual_size)
			snprintf(plan->refused_parent, sizeof(plan->refused_parent),
				 "'%s' is larger than its parent '%s' (%llu > %llu bytes): the parent cannot grow",
				 m->cpath, m->ppath, (unsigned long long)C->sb.virtual_size,
				 (unsigned long long)P->sb.virtual_size);
		/* The parent direction's cost. */
		r = cc_list_entries(C, 0, &s, m->err);
		for (i = 0; !r && i < s.n; i++) {
			struct cowchain_entry ce, pe = { 0, 0, 0 };

			if (cowchain_layer_lookup(C, s.v[i], &ce))
				continue;
			cowchain_layer_lookup(P, s.v[i], &pe);
			cost_c += (u64)__builtin_popcountll(ce.present) * sbsize;
			p_new += (u64)__builtin_popcountll(ce.present & ~pe.present) * sbsize;
			p_dropped += (u64)__builtin_popcountll(ce.zero & pe.present) * sbsize;
			child_zero += (u64)__builtin_popcountll(ce.zero);
		}
		free(s.v);
		s.v = NULL;
		if (r)
			goto out;
		plan->cost_parent = cost_c;
	}

	/* The children direction's cost: every current child of P. */
	K = calloc(npk + 1, sizeof(*K));
	if (!K) {
		r = cc_fail(m->err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!m->resume || m->dir == COWCHAIN_DIR_CHILDREN) {
		r = cc_list_entries(P, m->resume ? P->sb.merge_cursor : 0, &s, m->err);
		for (i = 0; !r && i < npk; i++) {
			u64 b, z;

			if (pk[i].sb.parent_generation != P->sb.generation)
				continue;
			r = open_ro(m, pk[i].path, &K[i]);
			if (!r)
				r = reads_cost(m, P, K[i], &s, &b, &z);
			if (!r) {
				plan->cost_children += b;
				(void)z;
			}
		}
		if (r)
			goto out;
	}

	/* The direction. */
	if (m->dir == COWCHAIN_DIR_AUTO) {
		if (plan->refused_parent[0]) {
			m->dir = COWCHAIN_DIR_CHILDREN;
			snprintf(plan->why, sizeof(plan->why), "%s", plan->refused_parent);
		} else if (plan->cost_children < plan->cost_parent) {
			m->dir = COWCHAIN_DIR_CHILDREN;
			snprintf(plan->why, sizeof(plan->why),
				 "streaming the parent into its children copies %llu bytes, merging the child into the parent %llu",
				 (unsigned long long)plan->cost_children, (unsigned long long)plan->cost_parent);
		} else {
			m->dir = COWCHAIN_DIR_PARENT;
			snprintf(plan->why, sizeof(plan->why),
				 "merging the child into the parent copies %llu bytes, streaming the parent into its children %llu",
				 (unsigned long long)plan->cost_parent, (unsigned long long)plan->cost_children);
		}
	} else if (m->resume) {
		snprintf(plan->why, sizeof(plan->why), "an interrupted merge into the %s is resumed",
			 m->dir == COWCHAIN_DIR_PARENT ? "parent" : "children");
	} else if (m->dir == COWCHAIN_DIR_PARENT && plan->refused_parent[0]) {
		r = cc_failf(m->err, -EBUSY, m->cpath, "cannot merge into the parent: %s",
			     plan->refused_parent);
		goto out;
	} else {
		snprintf(plan->why, sizeof(plan->why), "the direction was given");
	}
	plan->direction = m->dir;
	plan->parent_path = strdup(m->ppath);

	if (m->dir == COWCHAIN_DIR_PARENT) {
		plan->copy_bytes = m->finished ? 0 : cost_c;
		plan->zero_subblocks = m->finished ? 0 : child_zero;
		r = add_file(m, m->ppath, "parent", "receives the child's data and zero markers; its generation is bumped",
			     plan->copy_bytes, (s64)p_new - (s64)p_dropped, min64_(p_new, batch));
		if (!r && !cowchain_layer_stats(C, &st, m->err))
			r = add_file(m, m->cpath, "child", "emptied batch by batch, then deleted",
				     0, -(s64)st.disk_usage, 0);
		/* C's children move to P. */
		if (!r)
			r = find_kids(m, C->sb.uuid, &gk, &ngk);
		for (i = 0; !r && i < ngk; i++) {
			r = not_busy(m, gk[i].path, &gk[i].sb, 0xffffffffu, NULL);
			if (!r && (gk[i].sb.flags & COWCHAIN_SB_NEEDS_CHECK))
				r = cc_failf(m->err, -EUCLEAN, gk[i].path,
					     "needs 'cowchain check' before it can be relinked");
			if (!r)
				r = cowchain_check_unattached(gk[i].path, m->err);
			if (!r)
				r = take_kid(m, &gk[i]);
			if (!r)
				r = add_file(m, gk[i].path, "grandchild", "relinked to the parent", 0, 0, 0);
		}
		/* Resumed after some were relinked: they name P with the new generation. */
		for (i = 0; !r && m->resume && i < npk; i++)
			if (pk[i].sb.parent_generation == C->sb.parent_generation + 1 &&
			    !same_uuid(pk[i].sb.uuid, C->sb.uuid))
				r = take_kid(m, &pk[i]);
	} else {
		u64 total = 0, grow = 0;

		if (P->sb.parent_kind != COWCHAIN_PARENT_NONE) {
			m->gp_target = cc_locator_target(m->ppath, &P->sb);
			if (!m->gp_target) {
				r = cc_fail(m->err, -ENOMEM, "out of memory");
				goto out;
			}
		}
		if (P->sb.parent_kind == COWCHAIN_PARENT_LAYER) {
			struct cowchain_sb g;

			if (cc_peek_sb(m->gp_target, &g) || !same_uuid(g.uuid, P->sb.parent_uuid) ||
			    g.generation != P->sb.parent_generation) {
				r = cc_failf(m->err, -ESTALE, m->ppath,
					     "its parent '%s' is missing or does not match (uuid and generation)",
					     m->gp_target);
				goto out;
			}
		}
		r = not_busy(m, m->ppath, &P->sb, COWCHAIN_MERGE_INTO_CHILDREN, NULL);
		for (i = 0; !r && i < npk; i++) {
			u64 b = 0, z = 0;

			if (!K[i])
				continue;	/* bound to an older generation: not a live child */
			r = not_busy(m, pk[i].path, &pk[i].sb, COWCHAIN_MERGE_FROM_PARENT, P->sb.uuid);
			if (!r)
				r = reads_cost(m, P, K[i], &s, &b, &z);
			if (!r)
				r = take_kid(m, &pk[i]);
			if (!r)
				r = add_file(m, pk[i].path, "child",
					     P->sb.parent_kind == COWCHAIN_PARENT_LAYER
						? "receives what it reads from the parent, then relinked to the grandparent"
						: P->sb.parent_kind == COWCHAIN_PARENT_RAW
						? "receives what it reads from the parent, then a root over the raw base"
						: "receives what it reads from the parent, then a root",
					     b, (s64)b, min64_(b, batch));
			total += b;
			plan->zero_subblocks += z;
			grow += min64_(b, batch);
		}
		if (!r && !m->nkids && !m->resume)
			r = cc_failf(m->err, -ENOENT, m->ppath, "has no children in %s: nothing to merge into",
				     dirs);
		if (!r && m->resume)
			r = peer_child_seen(m, P, X);
		if (!r && !cowchain_layer_stats(P, &st, m->err))
			r = add_file(m, m->ppath, "parent", "emptied batch by batch, then deleted",
				     0, -(s64)st.disk_usage, 0);
		plan->copy_bytes = total;
	}
	if (r)
		goto out;
	/* Enough room for the worst instant? */
	{
		struct statvfs vfs;
		u64 need = 0;

		for (i = 0; i < plan->nfiles; i++)
			need += plan->files[i].peak_extra;
		if (!statvfs(m->dirs[0], &vfs) && need > (u64)vfs.f_bavail * vfs.f_frsize)
			r = cc_failf(m->err, -ENOSPC, m->ppath,
				     "the merge needs up to %llu more bytes, the file system has %llu free",
				     (unsigned long long)need,
				     (unsigned long long)((u64)vfs.f_bavail * vfs.f_frsize));
	}
out:
	free(s.v);
	free(extra);
	cc_found_free(pk, npk);
	cc_found_free(gk, ngk);
	for (i = 0; K && i < npk; i++)
		if (K[i])
			cowchain_layer_close(K[i], NULL);
	free(K);
	cowchain_layer_close(C, NULL);
	cowchain_layer_close(P, NULL);
	cowchain_layer_close(X, NULL);
	return r;
}
