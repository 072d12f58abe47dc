/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Pure logic over the on-disk format: checksums, pack/unpack, validation
 * and layout arithmetic.  No I/O, no allocation, no locking: every function
 * here may be called from any context, and the file builds unchanged in
 * userspace (userspace/lib/kshim.h supplies the few kernel helpers it
 * uses), where it is unit-tested.
 *
 * Validation functions return 0 or -EINVAL (-EOPNOTSUPP for unknown
 * incompatible features) and, on failure, write a precise reason into
 * err->msg, naming the structure and the field.
 */
#ifndef COWCHAIN_FORMAT_LOGIC_H
#define COWCHAIN_FORMAT_LOGIC_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#else
#include "kshim.h"
#endif
#include "cowchain_format.h"

struct cowchain_err {
	char msg[256];
};

/* The superblock in CPU order; field meanings as in cowchain_sb_disk. */
struct cowchain_sb {
	u64 blocknr;		/* the slot it was read from (0 or 1) */
	u64 seq;		/* hdr.key: higher is newer */
	u8  uuid[COWCHAIN_UUID_SIZE];
	u32 version;
	u32 compat, ro_compat, incompat;
	u32 flags;
	u32 parent_kind;
	u32 cluster_shift;
	u32 subblock_shift;
	u8  parent_uuid[COWCHAIN_UUID_SIZE];
	u64 generation;
	u64 parent_generation;
	u64 virtual_size;
	u64 root_start, root_blocks;
	u64 journal_start, journal_blocks;
	u64 journal_head, journal_seq;
	u64 data_start;
	u64 capacity;
	u64 create_time;
	u64 merge_cursor;
	u32 merge_state;
	u32 locator_len;
	u8  merge_peer_uuid[COWCHAIN_UUID_SIZE];
	u8  locator[COWCHAIN_LOCATOR_MAX];
};

/* A cluster entry in CPU order. */
struct cowchain_entry {
	u64 phys;
	u64 present;
	u64 zero;
};

/* Geometry derived from a validated superblock. */
static inline u64 cowchain_vclusters(const struct cowchain_sb *sb)
{
	return (sb->virtual_size + (1ull << sb->cluster_shift) - 1) >> sb->cluster_shift;
}

/*
 * Map and leaf blocks a virtual disk of vclusters can need when every
 * cluster is allocated: one leaf per 128 clusters, one map per 32768
 * (FORMAT.md 1).  The layout's capacity holds them; the kernel's allocator
 * keeps back room for those not yet given a home.
 */
static inline u64 cowchain_index_blocks_worst(u64 vclusters)
{
	return ((vclusters + COWCHAIN_LEAF_ENTRIES - 1) >> COWCHAIN_LEAF_SHIFT) +
	       ((vclusters + (1ull << COWCHAIN_MAP_SPAN_SHIFT) - 1) >> COWCHAIN_MAP_SPAN_SHIFT);
}

static inline u32 cowchain_subblocks(const struct cowchain_sb *sb)
{
	return 1u << (sb->cluster_shift - sb->subblock_shift);
}

/* Bitmap with one bit per sub-block of a cluster. */
static inline u64 cowchain_full_mask(u32 subblocks)
{
	return subblocks >= 64 ? ~0ull : (1ull << subblocks) - 1;
}

/* Metadata blocks per cluster. */
static inline u64 cowchain_cluster_blocks(const struct cowchain_sb *sb)
{
	return 1ull << (sb->cluster_shift - COWCHAIN_BLOCK_SHIFT);
}

/* Checksum of a 4 KiB metadata block that claims to live at blocknr. */
u32 cowchain_block_csum(const void *block, u64 blocknr);

/* Fill in csum (and nothing else) of a packed block destined for blocknr. */
void cowchain_block_seal(void *block, u64 blocknr);

/*
 * Check a block's header: magic, checksum, location, owner and key.
 * what names the structure in the message ("leaf block", ...).
 */
int cowchain_header_check(const void *block, u32 magic, u64 blocknr,
			  const u8 *uuid, u64 key, const char *what,
			  struct cowchain_err *err);

/* Fill a block header (csum is left zero; seal the block afterwards). */
void cowchain_header_init(void *block, u32 magic, u64 blocknr,
			  const u8 *uuid, u64 key, u32 count);

/*
 * Superblock.  unpack validates the checksum and every field before
 * returning; slot is where it was read from (0 or 1).  dev_blocks, if not
 * zero, is the size of the device or file in 4 KiB blocks and bounds the
 * layout.  -EOPNOTSUPP: unknown incompat feature or version.
 */
int cowchain_sb_unpack(const struct cowchain_sb_disk *disk, u64 slot,
		       u64 dev_blocks, struct cowchain_sb *sb,
		       struct cowchain_err *err);
int cowchain_sb_validate(const struct cowchain_sb *sb, u64 dev_blocks,
			 struct cowchain_err *err);
/* Pack into the slot sb->seq & 1 and seal it; disk must be 4 KiB. */
void cowchain_sb_pack(const struct cowchain_sb *sb, struct cowchain_sb_disk *disk);

/* True if an unknown ro_compat bit allows read-only use only. */
static inline bool cowchain_sb_ro_only(const struct cowchain_sb *sb)
{
	return (sb->ro_compat & ~COWCHAIN_FEATURE_RO_COMPAT_SUPP) != 0;
}

/*
 * Compute a fresh layout for a layer of virtual_size bytes: root table,
 * journal, first data cluster and the capacity that can hold every cluster
 * of the virtual disk plus all the metadata it can ever need.  Fills the
 * layout fields of sb from its cluster_shift and virtual_size.
 */
int cowchain_layout(struct cowchain_sb *sb, u64 journal_blocks,
		    struct cowchain_err *err);

/* Bytes the file must span for this layout (capacity clusters). */
static inline u64 cowchain_layout_bytes(const struct cowchain_sb *sb)
{
	return sb->capacity << sb->cluster_shift;
}

/*
 * Index blocks.  The check functions validate header and contents against
 * sb; key is the first vcluster the block covers.
 */
int cowchain_ptr_check(const struct cowchain_ptr_disk *blk, u32 magic,
		       u64 blocknr, u64 key, const struct cowchain_sb *sb,
		       struct cowchain_err *err);
int cowchain_leaf_check(const struct cowchain_leaf_disk *blk, u64 blocknr,
			u64 key, const struct cowchain_sb *sb,
			struct cowchain_err *err);
int cowchain_entry_check(const struct cowchain_entry *e,
			 const struct cowchain_sb *sb, struct cowchain_err *err);

static inline void cowchain_entry_unpack(const struct cowchain_entry_disk *d,
					 struct cowchain_entry *e)
{
	e->phys = le64_to_cpu(d->phys);
	e->present = le64_to_cpu(d->present);
	e->zero = le64_to_cpu(d->zero);
}

static inline void cowchain_entry_pack(const struct cowchain_entry *e,
				       struct cowchain_entry_disk *d)
{
	d->phys = cpu_to_le64(e->phys);
	d->present = cpu_to_le64(e->present);
	d->zero = cpu_to_le64(e->zero);
}

static inline bool cowchain_entry_empty(const struct cowchain_entry *e)
{
	return !e->phys && !e->present && !e->zero;
}

/* True if a block number lies in the cluster area of the layer. */
static inline bool cowchain_block_in_clusters(const struct cowchain_sb *sb, u64 b)
{
	u64 shift = sb->cluster_shift - COWCHAIN_BLOCK_SHIFT;

	return b >= (sb->data_start << shift) && b < (sb->capacity << shift);
}

/*
 * Journal descriptor check: header (key = expected seq), count within
 * 1..COWCHAIN_JDESC_MAX_ENTRIES and fitting in the journal from
 * position pos, every home block a root block or in the cluster area.
 */
int cowchain_jdesc_check(const struct cowchain_jdesc_disk *d, u64 pos,
			 u64 seq, const struct cowchain_sb *sb,
			 struct cowchain_err *err);

#endif /* COWCHAIN_FORMAT_LOGIC_H */
