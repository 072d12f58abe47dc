/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cowchain metadata, private to metadata.c (open, close, refresh),
 * walk.c (reading and checking a layer's index) and commit.c (allocation,
 * commit, checkpoint).  The target uses metadata.h only.
 */
#ifndef DM_COWCHAIN_METADATA_INTERNAL_H
#define DM_COWCHAIN_METADATA_INTERNAL_H

#include "metadata.h"

#define DM_MSG_PREFIX "cowchain"

#define BLOCK_SECTORS	(COWCHAIN_BLOCK_SIZE >> SECTOR_SHIFT)

struct u64vec {
	u64 *v;
	u64 n, cap;
};

struct ientvec {
	struct cowchain_ientry *v;
	u64 n, cap;
};

/* The top's entries (struct cowchain_tent). */
extern struct kmem_cache *cowchain_tent_cache;

/* Synchronous I/O of whole 4 KiB blocks; may sleep. */
int cowchain_md_block_io(struct cowchain_md *md, struct dm_dev *dev, u64 block,
			 u64 nblocks, void *buf, blk_opf_t opf);
/* Growable arrays, sleeping context only: 0 or -ENOMEM. */
int cowchain_vec_push(struct u64vec *a, u64 x);
int cowchain_ient_push(struct ientvec *a, const struct cowchain_ientry *e);
int cowchain_cmp_u64(const void *a, const void *b);
/* Journal images kept in memory, by home block. */
int cowchain_store_image(struct xarray *xa, u64 home, const void *image, gfp_t gfp);
void cowchain_free_images(struct xarray *xa);
/*
 * Walk layer li's index (0: the top, into md's in-core state; else an
 * ancestor, into ients), validating every block.  Sleeps.
 */
int cowchain_walk_layer(struct cowchain_md *md, unsigned int li, struct ientvec *ients,
			const char *devname, char **error);

#endif /* DM_COWCHAIN_METADATA_INTERNAL_H */
