// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain metadata: open and validate a chain, keep the top layer's
 * index in core, commit it through the journal.
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
 * Committing (cowchain_md_commit), from the worker only:
 *  1. Collect the dirty leaves (entries marked dirty by end_io or the
 *     worker) and clear their marks; a bit that changes afterwards marks
 *     its entry again and goes into the next commit.
 *  2. Give new leaves (and their maps) homes in a metadata cluster.
 *  3. On the first commit of an activation, bump the generation
 *     (superblock write) before anything else changes on disk.
 *  4. Write the leaf, map and root images as one journal transaction per
 *     252 images with REQ_PREFLUSH | REQ_FUA: the flush makes every data
 *     write that completed before the images were packed durable first
 *     (a present bit is only set once its write completed), and FUA makes
 *     the transaction durable when the write completes.  An entry whose
 *     data is still in flight is written without its cluster (phys 0).
 *  5. Keep a copy of each image for the next checkpoint; clusters freed
 *     before this commit become reusable.
 * When the journal has no room, checkpoint first: write the kept images
 * home, flush, then write the superblock with the new journal head.
 */
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>
#include "metadata.h"

#define DM_MSG_PREFIX "cowchain"

#define BLOCK_SECTORS	(COWCHAIN_BLOCK_SIZE >> SECTOR_SHIFT)

enum { META_MAP = 0, META_ROOT = 1 };

/* The top's entries: 40 bytes each, not kmalloc's 64. */
static struct kmem_cache *tent_cache;

int __init cowchain_md_init(void)
{
	tent_cache = KMEM_CACHE(cowchain_tent, 0);
	return tent_cache ? 0 : -ENOMEM;
}

void cowchain_md_exit(void)
{
	kmem_cache_destroy(tent_cache);
}

/*----------------------------------------------------------------
 * Block I/O
 *--------------------------------------------------------------*/

static int md_io(struct cowchain_md *md, struct dm_dev *dev, u64 block,
		 u64 nblocks, void *buf, blk_opf_t opf)
{
	struct dm_io_region where = {
		.bdev = dev->bdev,
		.sector = block * BLOCK_SECTORS,
		.count = nblocks * BLOCK_SECTORS,
	};
	struct dm_io_request req = {
		.bi_opf = opf,
		.notify.fn = NULL,
		.client = md->io,
	};
	unsigned long error_bits = 0;

	if (is_vmalloc_addr(buf)) {
		req.mem.type = DM_IO_VMA;
		req.mem.ptr.vma = buf;
	} else {
		req.mem.type = DM_IO_KMEM;
		req.mem.ptr.addr = buf;
	}
	return dm_io(&req, 1, &where, &error_bits, IOPRIO_DEFAULT);
}

/*----------------------------------------------------------------
 * Growable u64 arrays (only in sleeping context)
 *--------------------------------------------------------------*/

struct u64vec {
	u64 *v;
	u64 n, cap;
};

static int vec_push(struct u64vec *a, u64 x)
{
	if (a->n == a->cap) {
		u64 cap = a->cap ? a->cap * 2 : 256;
		u64 *v = kvmalloc_array(cap, sizeof(u64), GFP_KERNEL);

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

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

struct ientvec {
	struct cowchain_ientry *v;
	u64 n, cap;
};

static int ient_push(struct ientvec *a, const struct cowchain_ientry *e)
{
	if (a->n == a->cap) {
		u64 cap = a->cap ? a->cap * 2 : 256;
		struct cowchain_ientry *v = kvmalloc_array(cap, sizeof(*v), GFP_KERNEL);

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

	s[0] = kmalloc(sizeof(*s[0]), GFP_KERNEL);
	s[1] = kmalloc(sizeof(*s[1]), GFP_KERNEL);
	if (!s[0] || !s[1]) {
		kfree(s[0]);
		kfree(s[1]);
		*error = "cannot allocate superblock";
		return -ENOMEM;
	}
	for (i = 0; i < 2; i++) {
		r[i] = md_io(md, l->dev, i, 1, md->blockbuf, REQ_OP_READ);
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
	return md_io(c->md, c->l->dev, blocknr, 1, buf, REQ_OP_READ);
}

static int store_image(struct xarray *xa, u64 home, const void *image, gfp_t gfp)
{
	void *copy = kmemdup(image, COWCHAIN_BLOCK_SIZE, gfp), *old;

	if (!copy)
		return -ENOMEM;
	old = xa_store(xa, home, copy, gfp);
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
	return store_image(&c->l->images, home, image, GFP_KERNEL);
}

static void free_images(struct xarray *xa)
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
	void *scratch = kmalloc(2 * COWCHAIN_BLOCK_SIZE, GFP_KERNEL);
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
	const u8 **u = kvmalloc_array(md->nlayers, sizeof(*u), GFP_KERNEL);
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
	uintptr_t *d = kvmalloc_array(n, sizeof(*d), GFP_KERNEL);
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

/*----------------------------------------------------------------
 * Index walk
 *--------------------------------------------------------------*/

struct walk {
	struct cowchain_md *md;
	struct cowchain_layer *l;
	unsigned int li;
	struct u64vec metas, datas;
	struct ientvec *ients;		/* ancestors */
	const char *devname;
	char **error;
};

static int read_index_block(struct walk *w, u64 blocknr, void *buf)
{
	void *img = xa_load(&w->l->images, blocknr);

	if (img) {
		memcpy(buf, img, COWCHAIN_BLOCK_SIZE);
		return 0;
	}
	if (blocknr >= w->l->dev_blocks)
		return -EINVAL;
	return md_io(w->md, w->l->dev, blocknr, 1, buf, REQ_OP_READ);
}

static int bad_block(struct walk *w, struct cowchain_err *err, int r)
{
	DMERR("%s: %s: %s", w->devname, w->l->dev->name, err->msg);
	*w->error = r == -EIO ? "cannot read an index block" :
		    "an index block of a layer is invalid";
	return r;
}

static int add_entry(struct walk *w, u64 vc, const struct cowchain_entry *e)
{
	struct cowchain_md *md = w->md;
	int r;

	if (e->phys) {
		r = vec_push(&w->datas, e->phys);
		if (r)
			return r;
	}
	if (w->li) {
		struct cowchain_ientry ie = {
			.vc = vc, .phys = e->phys, .present = e->present,
			.zero = e->zero, .layer = w->li - 1,
		};

		return ient_push(w->ients, &ie);
	} else {
		struct cowchain_tent *t = kmem_cache_zalloc(tent_cache, GFP_KERNEL);

		if (!t)
			return -ENOMEM;
		t->phys = e->present ? e->phys : 0;
		t->present = e->present;
		t->zero = e->zero;
		atomic_set(&t->inflight, 0);
		r = xa_insert_irq(&md->entries, vc, t, GFP_KERNEL);
		if (r) {
			kmem_cache_free(tent_cache, t);
			return r;
		}
		if (e->phys)
			md->allocated++;
		return 0;
	}
}

static int walk_leaf(struct walk *w, u64 blocknr, u64 key, void *buf)
{
	struct cowchain_leaf_disk *leaf = buf;
	struct cowchain_err err;
	struct cowchain_entry e;
	unsigned int i;
	int r;

	r = read_index_block(w, blocknr, buf);
	if (r) {
		snprintf(err.msg, sizeof(err.msg), "cannot read leaf block %llu", blocknr);
		return bad_block(w, &err, -EIO);
	}
	r = cowchain_leaf_check(leaf, blocknr, key, &w->l->sb, &err);
	if (r)
		return bad_block(w, &err, r);
	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		cowchain_entry_unpack(&leaf->entry[i], &e);
		if (cowchain_entry_empty(&e))
			continue;
		r = add_entry(w, key + i, &e);
		if (r) {
			*w->error = "cannot allocate memory for the index";
			return r;
		}
	}
	return 0;
}

static int walk_map(struct walk *w, u64 blocknr, u64 key, u64 mapidx, void *buf, void *buf2)
{
	struct cowchain_ptr_disk *map = buf;
	struct cowchain_mblk *mb = NULL;
	struct cowchain_err err;
	unsigned int i;
	int r;

	r = read_index_block(w, blocknr, buf);
	if (r) {
		snprintf(err.msg, sizeof(err.msg), "cannot read map block %llu", blocknr);
		return bad_block(w, &err, -EIO);
	}
	r = cowchain_ptr_check(map, COWCHAIN_MAP_MAGIC, blocknr, key, &w->l->sb, &err);
	if (r)
		return bad_block(w, &err, r);
	if (!w->li) {
		mb = kzalloc(sizeof(*mb), GFP_KERNEL);
		if (!mb || xa_insert(&w->md->maps, mapidx, mb, GFP_KERNEL)) {
			kfree(mb);
			*w->error = "cannot allocate memory for the index";
			return -ENOMEM;
		}
		mb->home = blocknr;
		for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++)
			mb->ptr[i] = le64_to_cpu(map->ptr[i]);
	}
	for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++) {
		u64 p = le64_to_cpu(map->ptr[i]);

		if (!p)
			continue;
		r = vec_push(&w->metas, p);
		if (!r)
			r = walk_leaf(w, p, key + ((u64)i << COWCHAIN_LEAF_SHIFT), buf2);
		if (r) {
			if (r == -ENOMEM)
				*w->error = "cannot allocate memory for the index";
			return r;
		}
	}
	return 0;
}

/*
 * The top's metadata clusters may have free 4 KiB blocks (FORMAT.md 2):
 * new map and leaf blocks go there first, so that activations that each
 * add a block or two do not each open a new metadata cluster (the layer's
 * capacity allows for only one partly used one).  metas: sorted, unique
 * block numbers of every map and leaf block.  At most blocks-per-cluster
 * - 1 entries per metadata cluster.
 */
static int collect_meta_free(struct walk *w)
{
	struct cowchain_md *md = w->md;
	u32 shift = w->l->sb.cluster_shift - COWCHAIN_BLOCK_SHIFT;
	u64 i = 0, n = 0, cap = 0, b, c, k;

	/* count first: one exact allocation */
	for (k = 0; k < 2; k++) {
		for (i = 0; i < w->metas.n; ) {
			c = w->metas.v[i] >> shift;
			for (b = c << shift; b < (c + 1) << shift; b++) {
				if (i < w->metas.n && w->metas.v[i] == b) {
					i++;
					continue;
				}
				if (k)
					md->meta_free[n] = b;
				n++;
			}
			if (!k)
				md->meta_clusters++;
		}
		if (k || !n)
			break;
		cap = n;
		n = 0;
		md->meta_free = kvmalloc_array(cap, sizeof(u64), GFP_KERNEL);
		if (!md->meta_free)
			return -ENOMEM;
	}
	md->n_meta_free = n;
	return 0;
}

/*
 * Cross-checks after the walk: no index block reached twice, no data
 * cluster twice, no data cluster inside a metadata cluster.  Leaves
 * metas converted to sorted unique metadata clusters.
 */
static int check_overlaps(struct walk *w)
{
	u32 shift = w->l->sb.cluster_shift - COWCHAIN_BLOCK_SHIFT;
	u64 i, j, n;

	sort(w->metas.v, w->metas.n, sizeof(u64), cmp_u64, NULL);
	for (i = 1; i < w->metas.n; i++)
		if (w->metas.v[i] == w->metas.v[i - 1]) {
			DMERR("%s: %s: index block %llu is reached twice", w->devname,
			      w->l->dev->name, w->metas.v[i]);
			*w->error = "an index block of a layer is reached twice";
			return -EINVAL;
		}
	if (!w->li && collect_meta_free(w)) {
		*w->error = "cannot allocate memory for the free-space map";
		return -ENOMEM;
	}
	sort(w->datas.v, w->datas.n, sizeof(u64), cmp_u64, NULL);
	for (i = 1; i < w->datas.n; i++)
		if (w->datas.v[i] == w->datas.v[i - 1]) {
			DMERR("%s: %s: cluster %llu is referenced twice", w->devname,
			      w->l->dev->name, w->datas.v[i]);
			*w->error = "a data cluster of a layer is referenced twice";
			return -EINVAL;
		}
	for (i = 0, n = 0; i < w->metas.n; i++) {
		u64 c = w->metas.v[i] >> shift;

		if (!n || w->metas.v[n - 1] != c)
			w->metas.v[n++] = c;
	}
	w->metas.n = n;
	for (i = 0, j = 0; i < w->metas.n && j < w->datas.n;) {
		if (w->metas.v[i] == w->datas.v[j]) {
			DMERR("%s: %s: data cluster %llu is also a metadata cluster",
			      w->devname, w->l->dev->name, w->datas.v[j]);
			*w->error = "a data cluster of a layer overlaps its metadata";
			return -EINVAL;
		}
		if (w->metas.v[i] < w->datas.v[j])
			i++;
		else
			j++;
	}
	return 0;
}

/* Free space of the top: every cluster of [data_start, capacity) not used. */
static int build_free(struct cowchain_md *md, struct walk *w)
{
	struct cowchain_sb *sb = &md->layers[0].sb;
	u64 i = 0, j = 0, cur = sb->data_start, nused = w->metas.n + w->datas.n;
	u64 cap = nused + 1;

	md->ext = kvmalloc_array(cap, sizeof(*md->ext), GFP_KERNEL);
	if (!md->ext)
		return -ENOMEM;
	md->cap_ext = cap;
	while (i < w->metas.n || j < w->datas.n) {
		u64 u;

		if (j >= w->datas.n || (i < w->metas.n && w->metas.v[i] < w->datas.v[j]))
			u = w->metas.v[i++];
		else
			u = w->datas.v[j++];
		if (u > cur) {
			md->ext[md->n_ext].start = cur;
			md->ext[md->n_ext].len = u - cur;
			md->free_clusters += u - cur;
			md->n_ext++;
		}
		if (u + 1 > cur)
			cur = u + 1;
	}
	if (sb->capacity > cur) {
		md->ext[md->n_ext].start = cur;
		md->ext[md->n_ext].len = sb->capacity - cur;
		md->free_clusters += sb->capacity - cur;
		md->n_ext++;
	}
	return 0;
}

static int walk_layer(struct cowchain_md *md, unsigned int li, struct ientvec *ients,
		      const char *devname, char **error)
{
	struct cowchain_layer *l = &md->layers[li];
	struct walk w = {
		.md = md, .l = l, .li = li, .ients = ients,
		.devname = devname, .error = error,
	};
	struct cowchain_err err;
	void *buf = kmalloc(3 * COWCHAIN_BLOCK_SIZE, GFP_KERNEL);
	struct cowchain_ptr_disk *root = buf;
	u64 r;
	unsigned int s;
	int ret = 0;

	if (!buf) {
		*error = "cannot allocate memory for the index";
		return -ENOMEM;
	}
	for (r = 0; r < l->sb.root_blocks && !ret; r++) {
		u64 home = l->sb.root_start + r, key = r << COWCHAIN_ROOT_SPAN_SHIFT;

		if (read_index_block(&w, home, root)) {
			snprintf(err.msg, sizeof(err.msg), "cannot read root block %llu", home);
			ret = bad_block(&w, &err, -EIO);
			break;
		}
		ret = cowchain_ptr_check(root, COWCHAIN_ROOT_MAGIC, home, key, &l->sb, &err);
		if (ret) {
			bad_block(&w, &err, ret);
			break;
		}
		if (!li)
			for (s = 0; s < COWCHAIN_PTR_ENTRIES; s++)
				md->roots[r * COWCHAIN_PTR_ENTRIES + s] = le64_to_cpu(root->ptr[s]);
		for (s = 0; s < COWCHAIN_PTR_ENTRIES && !ret; s++) {
			u64 p = le64_to_cpu(root->ptr[s]);

			if (!p)
				continue;
			ret = vec_push(&w.metas, p);
			if (!ret)
				ret = walk_map(&w, p, key + ((u64)s << COWCHAIN_MAP_SPAN_SHIFT),
					       (r << COWCHAIN_PTR_SHIFT) + s,
					       buf + COWCHAIN_BLOCK_SIZE,
					       buf + 2 * COWCHAIN_BLOCK_SIZE);
			if (ret == -ENOMEM)
				*error = "cannot allocate memory for the index";
		}
	}
	if (!ret)
		ret = check_overlaps(&w);
	if (!ret && !li) {
		ret = build_free(md, &w);
		if (ret)
			*error = "cannot allocate memory for the free-space map";
	}
	kfree(buf);
	kvfree(w.metas.v);
	kvfree(w.datas.v);
	return ret;
}

/* Free everything the top's walk built; the layer list stays. */
static void free_top_state(struct cowchain_md *md)
{
	unsigned long i;
	void *p;

	xa_for_each(&md->entries, i, p)
		kmem_cache_free(tent_cache, p);
	xa_destroy(&md->entries);
	xa_for_each(&md->maps, i, p)
		kfree(p);
	xa_destroy(&md->maps);
	xa_destroy(&md->dirty_meta);
	free_images(&md->layers[0].images);
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
	md->n_meta_free = md->next_meta_free = md->meta_clusters = 0;
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
	md->writable = a->writable;
	md->base = a->base;
	md->table_len = a->table_len;
	if (a->base)
		md->base_sectors = bdev_nr_sectors(a->base->bdev);

	md->blockbuf = kmalloc(COWCHAIN_BLOCK_SIZE, GFP_KERNEL);
	md->layers = kvcalloc(a->ndevs, sizeof(*md->layers), GFP_KERNEL);
	if (!md->blockbuf || !md->layers) {
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
	md->io = dm_io_client_create();
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
	md->roots = kvcalloc(top->root_blocks * COWCHAIN_PTR_ENTRIES, sizeof(u64), GFP_KERNEL);
	if (!md->roots) {
		*error = "cannot allocate the root table";
		return -ENOMEM;
	}
	for (i = 0; i < md->nlayers; i++) {
		r = walk_layer(md, i, &ients, devname, error);
		if (r)
			goto out;
		if (i) /* an ancestor's replayed images are no longer needed */
			free_images(&md->layers[i].images);
	}
	r = cowchain_index_build(&md->ix, md->subblocks, ients.v, ients.n);
	if (r) {
		*error = r == -ENOMEM ? "cannot allocate the resolved index" :
			 "an ancestor's cluster number is too large for the index";
		goto out;
	}

	init_journal_state(md);
	md->reserve = 4;
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
		r = walk_layer(md, 0, NULL, devname, error);
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
			free_images(&md->layers[k].images);
	}
	cowchain_index_free(&md->ix);
	kvfree(md->roots);
	kvfree(md->layers);
	kfree(md->blockbuf);
	if (md->io)
		dm_io_client_destroy(md->io);
	memset(md, 0, sizeof(*md));
}

/*----------------------------------------------------------------
 * Allocation
 *--------------------------------------------------------------*/

static bool take_cluster(struct cowchain_md *md, u64 *out)
{
	lockdep_assert_held(&md->alloc_lock);
	if (md->n_recycled) {
		*out = md->recycled[--md->n_recycled];
		md->free_clusters--;
		return true;
	}
	while (md->next_ext < md->n_ext) {
		struct cowchain_extent *e = &md->ext[md->next_ext];

		if (e->len) {
			*out = e->start++;
			e->len--;
			md->free_clusters--;
			return true;
		}
		md->next_ext++;
	}
	return false;
}

struct cowchain_tent *__cowchain_md_get_entry(struct cowchain_md *md, u64 vc, gfp_t gfp)
{
	struct cowchain_tent *t = xa_load(&md->entries, vc);
	int r;

	if (t)
		return t;
	t = kmem_cache_zalloc(tent_cache, gfp | __GFP_NOWARN);
	if (!t)
		return ERR_PTR(-ENOMEM);
	atomic_set(&t->inflight, 0);
	r = xa_insert_irq(&md->entries, vc, t, gfp | __GFP_NOWARN);
	if (r) {
		kmem_cache_free(tent_cache, t);
		if (r != -EBUSY)
			return ERR_PTR(-ENOMEM);
		t = xa_load(&md->entries, vc);
	}
	return t;
}

struct cowchain_tent *__cowchain_md_get_cluster(struct cowchain_md *md, u64 vc, gfp_t gfp)
{
	struct cowchain_tent *t = __cowchain_md_get_entry(md, vc, gfp);
	u64 c;

	if (IS_ERR(t))
		return t;
	spin_lock(&md->alloc_lock);
	if (!t->phys) {
		if (md->free_clusters <= md->reserve || !take_cluster(md, &c)) {
			spin_unlock(&md->alloc_lock);
			return ERR_PTR(-ENOSPC);
		}
		t->phys = c;
		md->allocated++;
	}
	spin_unlock(&md->alloc_lock);
	return t;
}

/*
 * Make room for extra more freed clusters in the pending and recycled
 * lists.  Worker only (it alone adds to them); may sleep.
 */
int cowchain_md_reserve_free(struct cowchain_md *md, u64 extra)
{
	u64 need_p = md->n_pending + extra, need_r = md->n_recycled + need_p;
	u64 *np = NULL, *nr = NULL, *op = NULL, *or = NULL;

	if (need_p > md->cap_pending) {
		need_p = max(need_p, 2 * md->cap_pending);
		np = kvmalloc_array(need_p, sizeof(u64), GFP_NOIO);
		if (!np)
			return -ENOMEM;
	}
	if (need_r > md->cap_recycled) {
		need_r = max(need_r, 2 * md->cap_recycled);
		nr = kvmalloc_array(need_r, sizeof(u64), GFP_NOIO);
		if (!nr) {
			kvfree(np);
			return -ENOMEM;
		}
	}
	spin_lock(&md->alloc_lock);
	if (np) {
		memcpy(np, md->pending_free, md->n_pending * sizeof(u64));
		op = md->pending_free;
		md->pending_free = np;
		md->cap_pending = need_p;
	}
	if (nr) {
		memcpy(nr, md->recycled, md->n_recycled * sizeof(u64));
		or = md->recycled;
		md->recycled = nr;
		md->cap_recycled = need_r;
	}
	spin_unlock(&md->alloc_lock);
	kvfree(op);
	kvfree(or);
	return 0;
}

/* Called with alloc_lock and bits_lock held by the worker. */
int __cowchain_md_free_cluster(struct cowchain_md *md, struct cowchain_tent *t)
{
	lockdep_assert_held(&md->alloc_lock);
	if (!t->phys)
		return 0;
	if (md->n_pending == md->cap_pending)
		return -ENOMEM;	/* caller grows the array first */
	md->pending_free[md->n_pending++] = t->phys;
	t->phys = 0;
	md->allocated--;
	return 0;
}

/*
 * A 4 KiB block for a new map or leaf block: a free block of a metadata
 * cluster found at open, else the rest of the cluster opened last, else a
 * new cluster.  0 when there is no space.
 */
static u64 alloc_meta_block(struct cowchain_md *md)
{
	u64 c, b = 0;

	spin_lock(&md->alloc_lock);
	if (md->next_meta_free < md->n_meta_free) {
		b = md->meta_free[md->next_meta_free++];
		goto out;
	}
	if (md->meta_next == md->meta_end) {
		if (!take_cluster(md, &c))
			goto out;
		md->meta_clusters++;
		md->meta_next = c << (md->cluster_shift - COWCHAIN_BLOCK_SHIFT);
		md->meta_end = md->meta_next +
			(1ull << (md->cluster_shift - COWCHAIN_BLOCK_SHIFT));
	}
	b = md->meta_next++;
out:
	spin_unlock(&md->alloc_lock);
	return b;
}

/*----------------------------------------------------------------
 * Commit and checkpoint
 *--------------------------------------------------------------*/

static int write_sb(struct cowchain_md *md)
{
	struct cowchain_layer *l = &md->layers[0];

	l->sb.seq++;
	cowchain_sb_pack(&l->sb, md->blockbuf);
	return md_io(md, l->dev, l->sb.seq & 1, 1, md->blockbuf,
		     REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA | REQ_SYNC);
}

void cowchain_md_set_needs_check(struct cowchain_md *md)
{
	mutex_lock(&md->commit_lock);
	if (md->writable) {
		md->layers[0].sb.flags |= COWCHAIN_SB_NEEDS_CHECK;
		write_sb(md);
	}
	mutex_unlock(&md->commit_lock);
}

static void read_bits(struct cowchain_md *md, struct cowchain_tent *t,
		      struct cowchain_entry *e)
{
	unsigned int seq;

	do {
		seq = read_seqbegin(&md->bits_lock);
		e->phys = t->phys;
		e->present = t->present;
		e->zero = t->zero;
	} while (read_seqretry(&md->bits_lock, seq));
	if (!e->present)
		e->phys = 0;	/* data still in flight: not referenced yet */
}

static void pack_leaf(struct cowchain_md *md, u64 l, u64 home, void *buf)
{
	struct cowchain_leaf_disk *leaf = buf;
	struct cowchain_entry e;
	u32 i, used = 0;

	memset(buf, 0, COWCHAIN_BLOCK_SIZE);
	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		struct cowchain_tent *t = xa_load(&md->entries,
						  (l << COWCHAIN_LEAF_SHIFT) + i);

		if (!t)
			continue;
		read_bits(md, t, &e);
		if (cowchain_entry_empty(&e))
			continue;
		cowchain_entry_pack(&e, &leaf->entry[i]);
		used++;
	}
	cowchain_header_init(buf, COWCHAIN_LEAF_MAGIC, home, md->layers[0].sb.uuid,
			     l << COWCHAIN_LEAF_SHIFT, used);
	cowchain_block_seal(buf, home);
}

static void pack_ptrs(struct cowchain_md *md, u32 magic, u64 key, u64 home,
		      const u64 *ptr, void *buf)
{
	struct cowchain_ptr_disk *blk = buf;
	u32 i, used = 0;

	memset(buf, 0, COWCHAIN_BLOCK_SIZE);
	for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++) {
		blk->ptr[i] = cpu_to_le64(ptr[i]);
		used += !!ptr[i];
	}
	cowchain_header_init(buf, magic, home, md->layers[0].sb.uuid, key, used);
	cowchain_block_seal(buf, home);
}

static bool leaf_has_home(struct cowchain_md *md, u64 l)
{
	struct cowchain_mblk *mb = xa_load(&md->maps, l >> COWCHAIN_PTR_SHIFT);

	return mb && mb->ptr[l & (COWCHAIN_PTR_ENTRIES - 1)];
}

/* No entry of leaf l holds or zeroes anything (in memory). */
static bool leaf_empty(struct cowchain_md *md, u64 l)
{
	struct cowchain_entry e;
	u32 i;

	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		struct cowchain_tent *t = xa_load(&md->entries,
						  (l << COWCHAIN_LEAF_SHIFT) + i);

		if (!t)
			continue;
		read_bits(md, t, &e);
		if (t->phys || !cowchain_entry_empty(&e))
			return false;
	}
	return true;
}

/* Give leaf l a home, creating its map block if needed. */
static int ensure_leaf_home(struct cowchain_md *md, u64 l, u64 *home)
{
	u64 m = l >> COWCHAIN_PTR_SHIFT;
	struct cowchain_mblk *mb = xa_load(&md->maps, m);
	int r;

	if (!mb) {
		u64 r_idx = m >> COWCHAIN_PTR_SHIFT;

		mb = kzalloc(sizeof(*mb), GFP_NOIO);
		if (!mb)
			return -ENOMEM;
		mb->home = alloc_meta_block(md);
		if (!mb->home) {
			kfree(mb);
			return -ENOSPC;
		}
		r = xa_insert(&md->maps, m, mb, GFP_NOIO);
		if (r) {
			kfree(mb);
			return r;
		}
		md->roots[m] = mb->home;
		r = xa_err(xa_store(&md->dirty_meta, md->layers[0].sb.root_start + r_idx,
				    xa_mk_value(r_idx << 1 | META_ROOT), GFP_NOIO));
		if (r)
			return r;
	}
	if (!mb->ptr[l & (COWCHAIN_PTR_ENTRIES - 1)]) {
		u64 b = alloc_meta_block(md);

		if (!b)
			return -ENOSPC;
		mb->ptr[l & (COWCHAIN_PTR_ENTRIES - 1)] = b;
		r = xa_err(xa_store(&md->dirty_meta, mb->home,
				    xa_mk_value(m << 1 | META_MAP), GFP_NOIO));
		if (r)
			return r;
	}
	*home = mb->ptr[l & (COWCHAIN_PTR_ENTRIES - 1)];
	return 0;
}

/* Write every kept image home, flush, then advance the journal head. */
static int __checkpoint(struct cowchain_md *md)
{
	struct cowchain_layer *top = &md->layers[0];
	unsigned long home;
	void *img;
	int r;

	lockdep_assert_held(&md->commit_lock);
	/* 1. images home (they are journalled: a torn write is replayed) */
	xa_for_each(&top->images, home, img) {
		r = md_io(md, top->dev, home, 1, img, REQ_OP_WRITE);
		if (r)
			return r;
	}
	/* 2. flush, 3. superblock with the new head (written last) */
	r = blkdev_issue_flush(top->dev->bdev);
	if (r)
		return r;
	if (md->j_tail >= top->sb.journal_blocks)
		md->j_tail = 0;
	top->sb.journal_head = md->j_tail;
	top->sb.journal_seq = md->j_seq;
	r = write_sb(md);
	if (r)
		return r;
	free_images(&top->images);
	xa_init(&top->images);
	md->j_head = md->j_tail;
	md->j_empty = true;
	return 0;
}

/* Write one transaction of n images (already packed after the descriptor). */
static int write_txn(struct cowchain_md *md, void *buf, u64 *homes, void **images, u32 n)
{
	struct cowchain_layer *top = &md->layers[0];
	s64 pos;
	u32 i;
	int r;

	pos = cowchain_journal_place(&top->sb, md->j_head, md->j_tail, md->j_empty, n);
	if (pos == -ENOSPC) {
		r = __checkpoint(md);
		if (r)
			return r;
		pos = cowchain_journal_place(&top->sb, md->j_head, md->j_tail,
					     md->j_empty, n);
	}
	if (pos < 0)
		return (int)pos;
	cowchain_jdesc_build(buf, &top->sb, pos, md->j_seq, homes, images, n);
	/* data before metadata: the flush covers every completed data write */
	r = md_io(md, top->dev, top->sb.journal_start + pos, 1 + n, buf,
		  REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA | REQ_SYNC);
	if (r)
		return r;
	for (i = 0; i < n; i++) {
		r = store_image(&top->images, homes[i], images[i], GFP_NOIO);
		if (r)
			return r;
	}
	md->j_tail = pos + 1 + n;
	md->j_seq++;
	md->j_empty = false;
	return 0;
}

/*
 * Pass the discard of clusters whose free was just committed down to the
 * top device, so that a layer file gets its space back.  Only now: before
 * the commit, a crash would bring back metadata that still references the
 * clusters, and their data would be gone.  And before they can be
 * allocated again (they are not on the recycled list yet), so no new data
 * is ever discarded.  Advisory: errors are only logged.  Worker (or
 * postsuspend) only: nothing else touches pending_free meanwhile.
 */
static void discard_freed(struct cowchain_md *md)
{
	struct block_device *bdev = md->layers[0].dev->bdev;
	u32 shift = md->cluster_shift - SECTOR_SHIFT;
	u64 i, j, n = md->n_pending;
	int r;

	lockdep_assert_held(&md->commit_lock);
	if (!n || !bdev_max_discard_sectors(bdev))
		return;
	sort(md->pending_free, n, sizeof(u64), cmp_u64, NULL);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && md->pending_free[j] == md->pending_free[j - 1] + 1; j++)
			;
		r = blkdev_issue_discard(bdev, md->pending_free[i] << shift,
					 (j - i) << shift, GFP_NOIO);
		if (r && r != -EOPNOTSUPP)
			DMWARN_LIMIT("%s: discard of freed clusters failed: error %d",
				     md->layers[0].dev->name, r);
	}
}

static int __commit(struct cowchain_md *md)
{
	struct cowchain_layer *top = &md->layers[0];
	u32 maxn = min_t(u64, COWCHAIN_JDESC_MAX_ENTRIES, top->sb.journal_blocks - 1);
	struct u64vec leaves = { }, homes = { }, kinds = { };
	void *buf = NULL, **images = NULL;
	struct cowchain_tent *t;
	unsigned long vc, h;
	void *v;
	u64 i, done;
	int r = 0;

	lockdep_assert_held(&md->commit_lock);
	if (!md->writable)
		return 0;
	/* 1. dirty leaves */
	xa_for_each_marked(&md->entries, vc, t, COWCHAIN_DIRTY) {
		u64 l = vc >> COWCHAIN_LEAF_SHIFT;

		xa_lock_irq(&md->entries);
		__xa_clear_mark(&md->entries, vc, COWCHAIN_DIRTY);
		xa_unlock_irq(&md->entries);
		if (leaves.n && leaves.v[leaves.n - 1] == l)
			continue;
		r = vec_push(&leaves, l);
		if (r)
			goto out;
	}
	/* 2. homes */
	for (i = 0; i < leaves.n; i++) {
		u64 home;

		/* a root's discard leaves empty entries: no block for them */
		if (!leaf_has_home(md, leaves.v[i]) && leaf_empty(md, leaves.v[i]))
			continue;
		r = ensure_leaf_home(md, leaves.v[i], &home);
		if (!r)
			r = vec_push(&homes, home);
		if (!r)
			r = vec_push(&kinds, leaves.v[i] << 2 | 2);
		if (r)
			goto out;
	}
	xa_for_each(&md->dirty_meta, h, v) {
		r = vec_push(&homes, h);
		if (!r)
			r = vec_push(&kinds, (xa_to_value(v) >> 1) << 2 | (xa_to_value(v) & 1));
		if (r)
			goto out;
	}
	xa_destroy(&md->dirty_meta);
	if (!homes.n)
		goto freed;

	/* 3. the generation, once per activation, before the first change */
	if (!md->gen_bumped) {
		top->sb.generation++;
		r = write_sb(md);
		if (r)
			goto out;
		md->gen_bumped = true;
	}

	/* 4. transactions */
	buf = vmalloc((1 + maxn) * COWCHAIN_BLOCK_SIZE);
	images = kmalloc_array(maxn, sizeof(*images), GFP_NOIO);
	if (!buf || !images) {
		r = -ENOMEM;
		goto out;
	}
	for (done = 0; done < homes.n; ) {
		u32 n = min_t(u64, maxn, homes.n - done), k;

		for (k = 0; k < n; k++) {
			u64 kind = kinds.v[done + k], idx = kind >> 2, home = homes.v[done + k];
			void *img = buf + (1 + k) * COWCHAIN_BLOCK_SIZE;

			images[k] = img;
			if ((kind & 3) == 2)
				pack_leaf(md, idx, home, img);
			else if ((kind & 3) == META_ROOT)
				pack_ptrs(md, COWCHAIN_ROOT_MAGIC, idx << COWCHAIN_ROOT_SPAN_SHIFT,
					  home, &md->roots[idx * COWCHAIN_PTR_ENTRIES], img);
			else
				pack_ptrs(md, COWCHAIN_MAP_MAGIC, idx << COWCHAIN_MAP_SPAN_SHIFT,
					  home, ((struct cowchain_mblk *)
						 xa_load(&md->maps, idx))->ptr, img);
		}
		r = write_txn(md, buf, &homes.v[done], images, n);
		if (r)
			goto out;
		done += n;
	}
	md->commits++;
freed:
	/* 5. clusters freed before this commit are free on disk now */
	discard_freed(md);
	spin_lock(&md->alloc_lock);
	while (md->n_pending && md->n_recycled < md->cap_recycled) {
		md->recycled[md->n_recycled++] = md->pending_free[--md->n_pending];
		md->free_clusters++;
	}
	spin_unlock(&md->alloc_lock);
out:
	vfree(buf);
	kfree(images);
	kvfree(leaves.v);
	kvfree(homes.v);
	kvfree(kinds.v);
	return r;
}

int cowchain_md_commit(struct cowchain_md *md)
{
	int r;

	mutex_lock(&md->commit_lock);
	r = __commit(md);
	mutex_unlock(&md->commit_lock);
	return r;
}

int cowchain_md_checkpoint(struct cowchain_md *md)
{
	int r;

	mutex_lock(&md->commit_lock);
	r = __commit(md);
	if (!r && md->writable && !md->j_empty)
		r = __checkpoint(md);
	mutex_unlock(&md->commit_lock);
	return r;
}

/* Synchronous I/O in 512-byte sectors, for copy-up; may sleep. */
int cowchain_md_io(struct cowchain_md *md, struct dm_dev *dev, sector_t sector,
		   sector_t count, void *buf, blk_opf_t opf)
{
	struct dm_io_region where = {
		.bdev = dev->bdev, .sector = sector, .count = count,
	};
	struct dm_io_request req = {
		.bi_opf = opf, .notify.fn = NULL, .client = md->io,
	};
	unsigned long error_bits = 0;

	if (is_vmalloc_addr(buf)) {
		req.mem.type = DM_IO_VMA;
		req.mem.ptr.vma = buf;
	} else {
		req.mem.type = DM_IO_KMEM;
		req.mem.ptr.addr = buf;
	}
	return dm_io(&req, 1, &where, &error_bits, IOPRIO_DEFAULT);
}
