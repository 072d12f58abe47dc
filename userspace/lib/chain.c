// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Opening a chain: the top layer, then each parent through its locator
 * (a hint relative to the child's directory; the uuid and the generation
 * are the authority), FORMAT.md 8.  Every link is checked before the next
 * file is opened further: uuid, exact generation, geometry, size, cycles,
 * depth.  Only the top is ever opened writable; a raw base is opened
 * read-only and never written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include "chain_internal.h"

/* Where a child's locator points: absolute, or relative to the child's dir. */
static int locator_path(const struct cowchain_layer *child, char **out,
			struct cowchain_error *err)
{
	const struct cowchain_sb *sb = cowchain_layer_sb(child);
	char *dir, *p;
	size_t n = sb->locator_len;

	if (!n)
		return cc_failf(err, -EUCLEAN, child->path, "has a parent but no locator");
	if (memchr(sb->locator, 0, n))
		return cc_failf(err, -EUCLEAN, child->path, "locator contains a NUL byte");
	if (sb->locator[0] == '/') {
		p = strndup((const char *)sb->locator, n);
	} else {
		dir = cc_dirname(child->path);
		if (!dir)
			return cc_fail(err, -ENOMEM, "out of memory");
		p = malloc(strlen(dir) + n + 2);
		if (p && !strcmp(dir, "."))
			sprintf(p, "%.*s", (int)n, (const char *)sb->locator);
		else if (p)
			sprintf(p, "%s/%.*s", dir, (int)n, (const char *)sb->locator);
		free(dir);
	}
	if (!p)
		return cc_fail(err, -ENOMEM, "out of memory");
	*out = p;
	return 0;
}

static int push_layer(struct cowchain_chain *c, struct cowchain_layer *l,
		      struct cowchain_error *err)
{
	if (c->depth == c->cap) {
		u32 n = c->cap ? c->cap * 2 : 8;
		struct cowchain_layer **v = realloc(c->layers, n * sizeof(*v));

		if (!v)
			return cc_fail(err, -ENOMEM, "out of memory");
		c->layers = v;
		c->cap = n;
	}
	c->layers[c->depth++] = l;
	return 0;
}

static int check_link(const struct cowchain_chain *c, const struct cowchain_layer *child,
		      const struct cowchain_layer *parent, struct cowchain_error *err)
{
	const struct cowchain_sb *cs = cowchain_layer_sb(child);
	const struct cowchain_sb *ps = cowchain_layer_sb(parent);
	char want[37], got[37];
	u32 i;

	if (memcmp(ps->uuid, cs->parent_uuid, COWCHAIN_UUID_SIZE)) {
		cowchain_uuid_str(cs->parent_uuid, want);
		cowchain_uuid_str(ps->uuid, got);
		return cc_failf(err, -ESTALE, child->path,
				"parent '%s' has uuid %s, child expects %s",
				parent->path, got, want);
	}
	if (ps->generation != cs->parent_generation)
		return cc_failf(err, -ESTALE, child->path,
				"parent '%s' has generation %llu, child expects %llu",
				parent->path, (unsigned long long)ps->generation,
				(unsigned long long)cs->parent_generation);
	for (i = 0; i < c->depth; i++)
		if (!memcmp(cowchain_layer_sb(c->layers[i])->uuid, ps->uuid, COWCHAIN_UUID_SIZE))
			return cc_failf(err, -ELOOP, child->path,
					"parent '%s' is already in the chain as '%s' (a cycle)",
					parent->path, c->layers[i]->path);
	if (ps->cluster_shift != cs->cluster_shift || ps->subblock_shift != cs->subblock_shift)
		return cc_failf(err, -EUCLEAN, child->path,
				"parent '%s' has cluster/sub-block size %u/%u, child has %u/%u",
				parent->path, 1u << ps->cluster_shift, 1u << ps->subblock_shift,
				1u << cs->cluster_shift, 1u << cs->subblock_shift);
	if (ps->virtual_size > cs->virtual_size)
		return cc_failf(err, -EUCLEAN, child->path,
				"parent '%s' is larger (%llu bytes) than the child (%llu bytes)",
				parent->path, (unsigned long long)ps->virtual_size,
				(unsigned long long)cs->virtual_size);
	return 0;
}

static int open_base(struct cowchain_chain *c, struct cowchain_layer *root,
		     struct cowchain_error *err)
{
	struct stat st;
	int r;

	r = locator_path(root, &c->base_path, err);
	if (r)
		return r;
	c->base_fd = open(c->base_path, O_RDONLY | O_CLOEXEC);
	if (c->base_fd < 0)
		return cc_failf(err, -errno, root->path, "cannot open raw base '%s': %s",
				c->base_path, strerror(errno));
	if (fstat(c->base_fd, &st))
		return cc_fail(err, -errno, "cannot stat '%s': %s", c->base_path, strerror(errno));
	if (S_ISREG(st.st_mode))
		c->base_size = (u64)st.st_size;
	else if (!S_ISBLK(st.st_mode))
		return cc_failf(err, -EINVAL, c->base_path, "raw base is not a regular file or block device");
	else if (ioctl(c->base_fd, BLKGETSIZE64, &c->base_size))
		return cc_fail(err, -errno, "cannot get the size of '%s': %s",
			       c->base_path, strerror(errno));
	return 0;
}

int cowchain_chain_open(const char *top, unsigned flags,
			struct cowchain_chain **out, struct cowchain_error *err)
{
	struct cowchain_chain *c = calloc(1, sizeof(*c));
	struct cowchain_layer *l;
	int r;

	*out = NULL;
	if (!c)
		return cc_fail(err, -ENOMEM, "out of memory");
	c->base_fd = -1;
	r = cowchain_layer_open(top, flags, &l, err);
	if (r)
		goto fail;
	r = push_layer(c, l, err);
	if (r) {
		cowchain_layer_close(l, NULL);
		goto fail;
	}
	for (;;) {
		struct cowchain_layer *child = c->layers[c->depth - 1], *parent;
		const struct cowchain_sb *cs = cowchain_layer_sb(child);
		struct cowchain_error perr;
		char *ppath;

		if (cs->parent_kind == COWCHAIN_PARENT_NONE)
			break;
		if (cs->parent_kind == COWCHAIN_PARENT_RAW) {
			r = open_base(c, child, err);
			if (r)
				goto fail;
			break;
		}
		if (c->depth >= COWCHAIN_MAX_DEPTH) {
			r = cc_failf(err, -ELOOP, top, "chain is deeper than %u layers",
				     COWCHAIN_MAX_DEPTH);
			goto fail;
		}
		r = locator_path(child, &ppath, err);
		if (r)
			goto fail;
		r = cowchain_layer_open(ppath, 0, &parent, &perr);
		if (r) {
			cc_failf(err, r, child->path, "parent: %s", perr.msg);
			free(ppath);
			goto fail;
		}
		free(ppath);
		r = check_link(c, child, parent, err);
		if (!r)
			r = push_layer(c, parent, err);
		if (r) {
			cowchain_layer_close(parent, NULL);
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	if (err)
		err->code = r;
	cowchain_chain_close(c, NULL);
	return r;
}

int cowchain_chain_close(struct cowchain_chain *c, struct cowchain_error *err)
{
	int r = 0, r2;
	u32 i;

	if (!c)
		return 0;
	for (i = 0; i < c->depth; i++) {
		r2 = cowchain_layer_close(c->layers[i], r ? NULL : err);
		if (!r)
			r = r2;
	}
	if (c->base_fd >= 0)
		close(c->base_fd);
	free(c->base_path);
	free(c->layers);
	free(c->held);
	free(c);
	return r;
}

u32 cowchain_chain_depth(const struct cowchain_chain *c)
{
	return c->depth;
}

struct cowchain_layer *cowchain_chain_layer(const struct cowchain_chain *c, u32 i)
{
	return i < c->depth ? c->layers[i] : NULL;
}

const char *cowchain_chain_base(const struct cowchain_chain *c, u64 *size)
{
	if (size)
		*size = c->base_size;
	return c->base_path;
}

u64 cowchain_chain_size(const struct cowchain_chain *c)
{
	return cowchain_layer_sb(c->layers[0])->virtual_size;
}

int cowchain_flush(struct cowchain_chain *c, struct cowchain_error *err)
{
	return cowchain_layer_commit(c->layers[0], err);
}
