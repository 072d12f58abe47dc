// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain metadata: open and validate a chain, keep the top layer's
 * index in core (commit.c commits it through the journal).
 *
 * Opening (cowchain_md_open), in order, before the device goes live:
 *  1. Read both superblock slots of every layer and keep the valid one
 *     with the higher sequence (FORMAT.md 4).
 *  2. Check the chain: flags and features for the role of each layer,
 *     parent UUID and generation of every link, equal geometry, sizes,
 *     no UUID or device twice (8).
 *  3. Replay every layer's journal into memory (7).  Nothing is written
 *     to any layer here: an ancestor is never written at all, and the top
 *     keeps its replayed images as the first images to checkpoint.
 *  4. Walk every layer's index through the replayed images, validating
 *     each block (5) and refusing blocks reached twice, clusters
 *     referenced twice and data clusters that overlap metadata clusters.
 *  5. Ancestors: feed all entries to the resolved index (index.h).
 *     The top: one in-core entry per vcluster it holds, its map blocks
 *     and root table, and the free clusters derived from what is used.
 * Activation cost is the number of index blocks the layers hold, plus the
 * root tables; nothing is done per unallocated cluster.
 *
 * Committing, allocation and checkpoints are in commit.c; the index walk
 * of steps 4 and 5 in walk.c.
 */
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>
#include "fault.h"
#include "metadata-internal.h"

/* The top's entries: 40 bytes each, not kmalloc's 64. */
struct kmem_cache *cowchain_tent_cache;

int __init cowchain_md_init(void)
{
	cowchain_tent_cache = KMEM_CACHE(cowchain_tent, SLAB_TYPESAFE_BY_RCU);
	return cowchain_tent_cache ? 0 : -ENOMEM;
}

void cowchain_md_exit(void)
{
	kmem_cache_destroy(cowchain_tent_cache);
}

/*----------------------------------------------------------------
 * Block I/O
 *--------------------------------------------------------------*/

int cowchain_md_block_io(struct cowchain_md *md, struct dm_dev *dev, u64 block,
		 u64 nblocks, void *buf, blk_opf_t opf)
{
	/* One synchronous dm_io wrapper: cowchain_md_io() (commit.c). */
	return cowchain_md_io(md, dev, block * BLOCK_SECTORS, nblocks * BLOCK_SECTORS,
			      buf, opf);
}

/*----------------------------------------------------------------
 * Growable u64 arrays (only in sleeping context)
 *--------------------------------------------------------------*/

int cowchain_vec_push(struct u64vec *a, u64 x)
{
	if (a->n == a->cap) {
		u64 cap = a->cap ? a->cap * 2 : 256;
		u64 *v = COWCHAIN_ALLOC(kvmalloc_array(cap, sizeof(u64), GFP_KERNEL));

		if (!v)
			return -ENOMEM;
		if (a->n)
			memcpy(v, a->v, a->n * sizeof(u64));
		kvfree(a->v);
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

int cowchain_cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

int cowchain_ient_push(struct ientvec *a, const struct cowchain_ientry *e)
{
	if (a->n == a->cap) {
		u64 cap = a->cap ? a->cap * 2 : 256;
		struct cowchain_ientry *v =
			COWCHAIN_ALLOC(kvmalloc_array(cap, sizeof(*v), GFP_KERNEL));

		if (!v)
			return -ENOMEM;
		if (a->n)
			memcpy(v, a->v, a->n * sizeof(*v));
		kvfree(a->v);
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = *e;
	return 0;
}

/*----------------------------------------------------------------
 * Superblocks and journal replay
 *--------------------------------------------------------------*/

static int read_sb(struct cowchain_md *md, struct cowchain_layer *l,
		   const char *devname, char **error)
{
	struct cowchain_sb *s[2];
	struct cowchain_err err[2];
	int r[2], i;

	s[0] = COWCHAIN_ALLOC(kmalloc(sizeof(*s[0]), GFP_KERNEL));
	s[1] = COWCHAIN_ALLOC(kmalloc(sizeof(*s[1]), GFP_KERNEL));
	if (!s[0] || !s[1]) {
		kfree(s[0]);
		kfree(s[1]);
		*error = "cannot allocate superblock";
		return -ENOMEM;
	}
	for (i = 0; i < 2; i++) {
		r[i] = cowchain_md_block_io(md, l->dev, i, 1, md->blockbuf, REQ_OP_READ);
		if (r[i]) {
			snprintf(err[i].msg, sizeof(err[i].msg), "read error %d", r[i]);
			continue;
		}
		r[i] = cowchain_sb_unpack(md->blockbuf, i, l->dev_blocks, s[i], &err[i]);
	}
	i = -1;
	if (!r[0] && (r[1] || s[0]->seq > s[1]->seq))
		i = 0;
	else if (!r[1])
		i = 1;
	/*
	 * FORMAT.md 4, as lib/layer.c: a newer slot that is sound but needs
	 * a version or feature this build lacks refuses the layer; falling
	 * back to the older slot would roll back a newer writer's changes.
	 * (cowchain_sb_unpack sets seq before it validates.)
	 */
	if (i >= 0 && r[!i] == -EOPNOTSUPP && s[!i]->seq > s[i]->seq) {
		DMERR("%s: %s: superblock slot %d (seq %llu, newer than slot %d's %llu): %s",
		      devname, l->dev->name, !i, s[!i]->seq, i, s[i]->seq, err[!i].msg);
		kfree(s[0]);
		kfree(s[1]);
		*error = "layer uses an unsupported format version or feature";
		return -EOPNOTSUPP;
	}
	if (i >= 0)
		l->sb = *s[i];
	kfree(s[0]);
	kfree(s[1]);
	if (i < 0) {
		DMERR("%s: %s: no valid superblock: slot 0: %s; slot 1: %s",
		      devname, l->dev->name, err[0].msg, err[1].msg);
		*error = (r[0] == -EOPNOTSUPP || r[1] == -EOPNOTSUPP) ?
			"layer uses an unsupported format version or feature" :
			"layer has no valid superblock";
		return r[0] == -EOPNOTSUPP || r[1] == -EOPNOTSUPP ? -EOPNOTSUPP : -EINVAL;
	}
	return 0;
}

struct replay_ctx {
	struct cowchain_md *md;
	struct cowchain_layer *l;
};

static int replay_read(void *ctx, u64 blocknr, void *buf)
{
	struct replay_ctx *c = ctx;

	if (blocknr >= c->l->dev_blocks)
		return -EINVAL;
	return cowchain_md_block_io(c->md, c->l->dev, blocknr, 1, buf, REQ_OP_READ);
}

int cowchain_store_image(struct xarray *xa, u64 home, const void *image, gfp_t gfp)
{
	void *copy = COWCHAIN_ALLOC(kmemdup(image, COWCHAIN_BLOCK_SIZE, gfp)), *old;

	if (!copy)
		return -ENOMEM;
	old = cowchain_fail_alloc() ? XA_ERROR(-ENOMEM) : xa_store(xa, home, copy, gfp);
	if (xa_is_err(old)) {
		kfree(copy);
		return xa_err(old);
	}
	kfree(old);
	return 0;
}

static int replay_apply(void *ctx, u64 home, const void *image)
{
	struct replay_ctx *c = ctx;

	if (home >= c->l->dev_blocks)
		return -EINVAL;
	return cowchain_store_image(&c->l->images, home, image, GFP_KERNEL);
}

void cowchain_free_images(struct xarray *xa)
{
	unsigned long i;
	void *p;

	xa_for_each(xa, i, p)
		kfree(p);
	xa_destroy(xa);
}

static int replay_layer(struct cowchain_md *md, struct cowchain_layer *l,
			const char *devname, char **error)
{
	struct replay_ctx c = { .md = md, .l = l };
	struct cowchain_journal_io io = {
		.ctx = &c, .read_block = replay_read, .apply = replay_apply,
	};
	struct cowchain_err err = { .msg = "" };
	void *scratch = COWCHAIN_ALLOC(kmalloc(2 * COWCHAIN_BLOCK_SIZE, GFP_KERNEL));
	int r;

	if (!scratch) {
		*error = "cannot allocate journal buffer";
		return -ENOMEM;
	}
	r = cowchain_journal_replay(&l->sb, &io, scratch, &l->jend, &l->replayed, &err);
	kfree(scratch);
	if (r) {
		DMERR("%s: %s: journal replay failed: %s (%d)", devname,
		      l->dev->name, err.msg, r);
		*error = "journal replay failed";
	}
	return r;
}

/*----------------------------------------------------------------
 * Chain checks
 *--------------------------------------------------------------*/

static int cmp_uuid_ptr(const void *a, const void *b)
{
	return memcmp(*(const u8 * const *)a, *(const u8 * const *)b, COWCHAIN_UUID_SIZE);
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * No layer (UUID) twice in the chain.  Sorting keeps this O(n log n) at
 * depth 4096, where comparing every pair would be 8 million compares.
 */
static int check_unique_uuids(struct cowchain_md *md, char **error)
{
	const u8 **u = COWCHAIN_ALLOC(kvmalloc_array(md->nlayers, sizeof(*u), GFP_KERNEL));
	unsigned int i;
	int r = 0;

	if (!u) {
		*error = "cannot allocate memory for the chain check";
		return -ENOMEM;
	}
	for (i = 0; i < md->nlayers; i++)
		u[i] = md->layers[i].sb.uuid;
	sort(u, md->nlayers, sizeof(*u), cmp_uuid_ptr, NULL);
	for (i = 1; i < md->nlayers; i++)
		if (!memcmp(u[i], u[i - 1], COWCHAIN_UUID_SIZE)) {
			*error = "the same layer (UUID) appears twice in the chain";
			r = -ELOOP;
			break;
		}
	kvfree(u);
	return r;
}

/* No block device twice among the layers and the base. */
static int check_unique_devs(const struct cowchain_open_args *a, char **error)
{
	unsigned int n = a->ndevs + !!a->base, i;
	uintptr_t *d = COWCHAIN_ALLOC(kvmalloc_array(n, sizeof(*d), GFP_KERNEL));
	int r = 0;

	if (!d) {
		*error = "cannot allocate memory for the chain check";
		return -ENOMEM;
	}
	for (i = 0; i < a->ndevs; i++)
		d[i] = (uintptr_t)a->devs[i]->bdev;
	if (a->base)
		d[a->ndevs] = (uintptr_t)a->base->bdev;
	sort(d, n, sizeof(*d), cmp_ptr, NULL);
	for (i = 1; i < n; i++)
		if (d[i] == d[i - 1]) {
			*error = "the same device appears twice in the table";
			r = -EINVAL;
			break;
		}
	kvfree(d);
	return r;
}

static int check_chain(struct cowchain_md *md, const struct cowchain_open_args *a,
		       const char *devname, char **error)
{
	struct cowchain_sb *top = &md->layers[0].sb;
	unsigned int i;
	int r;

	if (md->writable && (top->flags & COWCHAIN_SB_SEALED)) {
		*error = "top layer is sealed (it has children): use read_only";
		return -EPERM;
	}
	if (md->writable && cowchain_sb_ro_only(top)) {
		*error = "top layer has unknown read-only-compatible features: use read_only";
		return -EPERM;
	}
	if (md->writable && (top->flags & COWCHAIN_SB_NEEDS_CHECK)) {
		*error = "top layer needs a check (cowchain check) before writable use";
		return -EUCLEAN;
	}
	for (i = 0; i < md->nlayers; i++) {
		struct cowchain_sb *s = &md->layers[i].sb;

		if (s->flags & COWCHAIN_SB_MERGING) {
			*error = "a layer of the chain is being merged";
			return -EBUSY;
		}
		if (i && !(s->flags & COWCHAIN_SB_SEALED)) {
			DMERR("%s: ancestor %u (%s) is not sealed", devname, i,
			      md->layers[i].dev->name);
			*error = "ancestor layer is not sealed";
			return -EINVAL;
		}
		if (s->cluster_shift != top->cluster_shift ||
		    s->subblock_shift != top->subblock_shift) {
			*error = "layers differ in cluster or sub-block size";
			return -EINVAL;
		}
		if (i + 1 < md->nlayers) {
			struct cowchain_sb *p = &md->layers[i + 1].sb;

			if (s->parent_kind != COWCHAIN_PARENT_LAYER) {
				*error = "a layer with no parent layer has ancestors in the table";
				return -EINVAL;
			}
			if (memcmp(s->parent_uuid, p->uuid, COWCHAIN_UUID_SIZE)) {
				DMERR("%s: layer %u (%s): parent UUID does not match %s",
				      devname, i, md->layers[i].dev->name,
				      md->layers[i + 1].dev->name);
				*error = "parent UUID does not match the next device";
				return -EINVAL;
			}
			if (s->parent_generation != p->generation) {
				DMERR("%s: layer %u (%s): parent generation %llu, %s has %llu",
				      devname, i, md->layers[i].dev->name,
				      s->parent_generation, md->layers[i + 1].dev->name,
				      p->generation);
				*error = "parent generation does not match the next device";
				return -ESTALE;
			}
			if (s->virtual_size < p->virtual_size) {
				*error = "a layer is smaller than its parent";
				return -EINVAL;
			}
		} else if (s->parent_kind == COWCHAIN_PARENT_LAYER) {
			*error = "the last layer has a parent layer: ancestors missing from the table";
			return -EINVAL;
		} else if (s->parent_kind == COWCHAIN_PARENT_RAW && !a->base) {
			*error = "the root layer has a raw base: base device missing from the table";
			return -EINVAL;
		} else if (s->parent_kind == COWCHAIN_PARENT_NONE && a->base) {
			*error = "a base device was given but the root layer has none";
			return -EINVAL;
		}
	}
	if (a->table_len > top->virtual_size >> SECTOR_SHIFT) {
		*error = "table length is larger than the virtual disk";
		return -EINVAL;
	}
	r = check_unique_uuids(md, error);
	return r;
}

/* Free everything the top's walk built; the layer list stays. */
static void free_top_state(struct cowchain_md *md)
{
	unsigned long i;
	void *p;

	xa_for_each(&md->entries, i, p)
		if (!xa_is_value(p))
			kmem_cache_free(cowchain_tent_cache, p);
	xa_destroy(&md->entries);
	xa_for_each(&md->maps, i, p)
		kfree(p);
	xa_destroy(&md->maps);
	xa_destroy(&md->dirty_meta);
	cowchain_free_images(&md->layers[0].images);
	kvfree(md->ext);
	kvfree(md->recycled);
	kvfree(md->pending_free);
	kvfree(md->meta_free);
	md->ext = NULL;
	md->recycled = NULL;
	md->pending_free = NULL;
	md->meta_free = NULL;
	md->next_ext = md->n_ext = md->cap_ext = 0;
	md->n_recycled = md->cap_recycled = md->n_pending = md->cap_pending = 0;
	md->n_meta_free = md->next_meta_free = md->meta_clusters = md->meta_homed = 0;
	md->free_clusters = md->allocated = 0;
	md->meta_next = md->meta_end = 0;
	md->gen_bumped = false;
}

static void init_journal_state(struct cowchain_md *md)
{
	struct cowchain_layer *l = &md->layers[0];

	md->j_head = l->sb.journal_head;
	md->j_tail = l->jend.pos;
	md->j_seq = l->jend.seq;
	md->j_empty = l->replayed == 0;
}

/*----------------------------------------------------------------
 * Open and close
 *--------------------------------------------------------------*/

int cowchain_md_open(struct cowchain_md *md, const struct cowchain_open_args *a,
		     const char *devname, char **error)
{
	struct ientvec ients = { };
	struct cowchain_sb *top;
	unsigned int i;
	int r;

	mutex_init(&md->commit_lock);
	spin_lock_init(&md->alloc_lock);
	seqlock_init(&md->bits_lock);
	xa_init_flags(&md->entries, XA_FLAGS_LOCK_IRQ);
	xa_init(&md->maps);
	xa_init(&md->dirty_meta);
	init_waitqueue_head(&md->ioc_wait);
	md->writable = a->writable;
	md->base = a->base;
	md->table_len = a->table_len;
	if (a->base)
		md->base_sectors = bdev_nr_sectors(a->base->bdev);

	md->blockbuf = COWCHAIN_ALLOC(kmalloc(COWCHAIN_BLOCK_SIZE, GFP_KERNEL));
	md->layers = COWCHAIN_ALLOC(kvcalloc(a->ndevs, sizeof(*md->layers), GFP_KERNEL));
	md->ioc = COWCHAIN_ALLOC(alloc_percpu(struct cowchain_iocount));
	if (!md->blockbuf || !md->layers || !md->ioc) {
		*error = "cannot allocate layers";
		return -ENOMEM;
	}
	md->nlayers = a->ndevs;
	for (i = 0; i < a->ndevs; i++) {
		md->layers[i].dev = a->devs[i];
		xa_init(&md->layers[i].images);
	}
	r = check_unique_devs(a, error);
	if (r)
		return r;
	md->io = cowchain_fail_alloc() ? ERR_PTR(-ENOMEM) : dm_io_client_create();
	if (IS_ERR(md->io)) {
		r = PTR_ERR(md->io);
		md->io = NULL;
		*error = "cannot create dm-io client";
		return r;
	}

	/* 1. superblocks */
	for (i = 0; i < md->nlayers; i++) {
		struct cowchain_layer *l = &md->layers[i];

		l->dev_blocks = bdev_nr_sectors(l->dev->bdev) / BLOCK_SECTORS;
		r = read_sb(md, l, devname, error);
		if (r)
			return r;
	}
	top = &md->layers[0].sb;
	md->cluster_shift = top->cluster_shift;
	md->subblock_shift = top->subblock_shift;
	md->subblocks = cowchain_subblocks(top);
	md->vclusters = cowchain_vclusters(top);

	/* 2. the chain */
	r = check_chain(md, a, devname, error);
	if (r)
		return r;

	/* 3. journals, in memory */
	for (i = 0; i < md->nlayers; i++) {
		r = replay_layer(md, &md->layers[i], devname, error);
		if (r)
			return r;
	}

	/* 4, 5. index walks */
	md->roots = COWCHAIN_ALLOC(kvcalloc(top->root_blocks * COWCHAIN_PTR_ENTRIES,
					    sizeof(u64), GFP_KERNEL));
	if (!md->roots) {
		*error = "cannot allocate the root table";
		return -ENOMEM;
	}
	for (i = 0; i < md->nlayers; i++) {
		r = cowchain_walk_layer(md, i, &ients, devname, error);
		if (r)
			goto out;
		if (i) /* an ancestor's replayed images are no longer needed */
			cowchain_free_images(&md->layers[i].images);
	}
	r = cowchain_index_build(&md->ix, md->subblocks, ients.v, ients.n);
	if (r) {
		*error = r == -ENOMEM ? "cannot allocate the resolved index" :
			 "an ancestor's cluster number is too large for the index";
		goto out;
	}

	init_journal_state(md);
	md->meta_worst = cowchain_index_blocks_worst(cowchain_vclusters(&md->layers[0].sb));
	r = 0;
out:
	kvfree(ients.v);
	return r;
}

int cowchain_md_refresh(struct cowchain_md *md, const char *devname, char **error)
{
	struct cowchain_layer *l = &md->layers[0];
	struct cowchain_open_args a = {
		.ndevs = md->nlayers, .base = md->base, .table_len = md->table_len,
	};
	u64 seq = l->sb.seq, vsize = l->sb.virtual_size, rb = l->sb.root_blocks;
	u32 cs = l->sb.cluster_shift, ss = l->sb.subblock_shift;
	int r;

	mutex_lock(&md->commit_lock);
	r = read_sb(md, l, devname, error);
	if (r || l->sb.seq == seq)
		goto out;
	DMINFO("%s: %s changed since the table was loaded: reading its index again",
	       devname, l->dev->name);
	if (l->sb.virtual_size != vsize || l->sb.root_blocks != rb ||
	    l->sb.cluster_shift != cs || l->sb.subblock_shift != ss) {
		*error = "the top layer's geometry changed since the table was loaded";
		r = -ESTALE;
		goto out;
	}
	free_top_state(md);
	memset(md->roots, 0, rb * COWCHAIN_PTR_ENTRIES * sizeof(u64));
	xa_init(&l->images);
	r = check_chain(md, &a, devname, error);
	if (!r)
		r = replay_layer(md, l, devname, error);
	if (!r)
		r = cowchain_walk_layer(md, 0, NULL, devname, error);
	if (!r)
		init_journal_state(md);
out:
	mutex_unlock(&md->commit_lock);
	return r;
}

void cowchain_md_close(struct cowchain_md *md)
{
	unsigned int k;

	if (md->layers) {
		free_top_state(md);
		for (k = 1; k < md->nlayers; k++)
			cowchain_free_images(&md->layers[k].images);
	}
	cowchain_index_free(&md->ix);
	kvfree(md->roots);
	kvfree(md->layers);
	kfree(md->blockbuf);
	free_percpu(md->ioc);
	if (md->io)
		dm_io_client_destroy(md->io);
	memset(md, 0, sizeof(*md));
}

