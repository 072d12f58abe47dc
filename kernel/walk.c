// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cowchain metadata: reading and checking one layer's index at
 * activation (steps 4 and 5 of opening, see metadata.c).
 *
 * The walk goes root table -> map blocks -> leaf blocks, through the
 * layer's replayed journal images where they exist, validating every
 * block (FORMAT.md 5), then cross-checks what it found: no index block
 * reached twice, no data cluster referenced twice, no data cluster inside
 * a metadata cluster.  For an ancestor every entry goes to the resolved
 * index builder; for the top, entries, map blocks, the root table, the
 * free clusters and the free blocks of its metadata clusters go into the
 * in-core state.  Cost: the index blocks the layer holds.
 */
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>
#include "fault.h"
#include "metadata-internal.h"

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
	return cowchain_md_block_io(w->md, w->l->dev, blocknr, 1, buf, REQ_OP_READ);
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
	struct cowchain_tent *t;
	int r;

	if (e->phys) {
		r = cowchain_vec_push(&w->datas, e->phys);
		if (r)
			return r;
	}
	if (w->li) {
		struct cowchain_ientry ie = {
			.vc = vc, .phys = e->phys, .present = e->present,
			.zero = e->zero, .layer = w->li - 1,
		};

		return cowchain_ient_push(w->ients, &ie);
	}
	if (cowchain_packable(md->subblocks, e->phys, e->present, e->zero)) {
		/* packed (metadata.h), no tent */
		r = cowchain_fail_alloc() ? -ENOMEM :
			xa_insert_irq(&md->entries, vc,
				      cowchain_pack(md->subblocks, e->phys, e->present),
				      GFP_KERNEL);
		if (r)
			return r;
		md->allocated++;
		return 0;
	}
	t = COWCHAIN_ALLOC(kmem_cache_zalloc(cowchain_tent_cache, GFP_KERNEL));
	if (!t)
		return -ENOMEM;
	t->phys = e->present ? e->phys : 0;
	t->present = e->present;
	t->zero = e->zero;
	atomic_set(&t->inflight, 0);
	r = cowchain_fail_alloc() ? -ENOMEM : xa_insert_irq(&md->entries, vc, t, GFP_KERNEL);
	if (r) {
		kmem_cache_free(cowchain_tent_cache, t);
		return r;
	}
	if (e->phys)
		md->allocated++;
	return 0;
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
		mb = COWCHAIN_ALLOC(kzalloc(sizeof(*mb), GFP_KERNEL));
		if (!mb || cowchain_fail_alloc() ||
		    xa_insert(&w->md->maps, mapidx, mb, GFP_KERNEL)) {
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
		r = cowchain_vec_push(&w->metas, p);
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

	md->meta_homed = w->metas.n;	/* map and leaf blocks with a home */
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
		md->meta_free = COWCHAIN_ALLOC(kvmalloc_array(cap, sizeof(u64), GFP_KERNEL));
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

	sort(w->metas.v, w->metas.n, sizeof(u64), cowchain_cmp_u64, NULL);
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
	sort(w->datas.v, w->datas.n, sizeof(u64), cowchain_cmp_u64, NULL);
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

	md->ext = COWCHAIN_ALLOC(kvmalloc_array(cap, sizeof(*md->ext), GFP_KERNEL));
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

int cowchain_walk_layer(struct cowchain_md *md, unsigned int li, struct ientvec *ients,
		      const char *devname, char **error)
{
	struct cowchain_layer *l = &md->layers[li];
	struct walk w = {
		.md = md, .l = l, .li = li, .ients = ients,
		.devname = devname, .error = error,
	};
	struct cowchain_err err;
	void *buf = COWCHAIN_ALLOC(kmalloc(3 * COWCHAIN_BLOCK_SIZE, GFP_KERNEL));
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
			ret = cowchain_vec_push(&w.metas, p);
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

