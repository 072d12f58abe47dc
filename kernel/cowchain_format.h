/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * cowchain on-disk format, version 1.
 *
 * This header is the one definition of the layer format.  It is built
 * unchanged by the kernel target (kernel/) and by the userspace library
 * (userspace/lib/): on-disk structures and constants only, no code.
 * docs/FORMAT.md describes the same thing byte by byte, with the rules a
 * reader must apply; keep the two in step.
 *
 * Shape of a layer (all numbers little-endian, all metadata blocks 4 KiB):
 *
 *   block 0, block 1     two superblock slots, written alternately
 *   root table           root_blocks blocks at root_start
 *   journal              journal_blocks blocks at journal_start
 *   clusters             from cluster data_start up to cluster capacity:
 *                        data clusters and metadata (map, leaf) blocks,
 *                        allocated on demand
 *
 * The index is a three-level radix tree over virtual clusters:
 *
 *   vcluster  = virtual byte offset >> cluster_shift
 *   root block  vcluster >> 23             (root table block, in place)
 *   root slot   (vcluster >> 15) & 255     -> map block
 *   map slot    (vcluster >> 7) & 255      -> leaf block
 *   leaf slot   vcluster & 127             -> cluster entry
 *
 * Map and leaf blocks exist only where the layer holds something, so
 * opening a layer reads metadata in proportion to what it holds.
 *
 * A cluster entry holds the physical cluster and two bitmaps at sub-block
 * granularity: "present" (this layer stores the sub-block's data at
 * phys + i * subblock) and "zero" (the sub-block reads as zeros and masks
 * every layer below).  A sub-block with neither bit is transparent: it is
 * served by the parent.
 *
 * Metadata changes reach disk through a physical block journal: a commit
 * writes whole new images of the changed root/map/leaf blocks after one
 * descriptor block, as one write with REQ_PREFLUSH | REQ_FUA; a checkpoint
 * later copies them home and advances the journal head in the superblock.
 */
#ifndef COWCHAIN_FORMAT_H
#define COWCHAIN_FORMAT_H

#include <linux/types.h>
#ifdef __KERNEL__
#include <linux/build_bug.h>
#else
#include <assert.h>
#endif

/* ---- sizes and limits ------------------------------------------------ */

#define COWCHAIN_VERSION		1u

#define COWCHAIN_BLOCK_SHIFT		12
#define COWCHAIN_BLOCK_SIZE		(1u << COWCHAIN_BLOCK_SHIFT)
#define COWCHAIN_SECTOR_SHIFT		9

/* Cluster: any power of two from 4 KiB to 2 MiB; default 64 KiB. */
#define COWCHAIN_MIN_CLUSTER_SHIFT	12
#define COWCHAIN_MAX_CLUSTER_SHIFT	21
#define COWCHAIN_DEFAULT_CLUSTER_SHIFT	16

/*
 * Sub-block: a power of two from 512 bytes up to the cluster size, with at
 * most 64 sub-blocks per cluster (the bitmaps are 64 bits); default 4 KiB.
 */
#define COWCHAIN_MIN_SUBBLOCK_SHIFT	9
#define COWCHAIN_DEFAULT_SUBBLOCK_SHIFT	12
#define COWCHAIN_MAX_SUBBLOCKS_SHIFT	6
#define COWCHAIN_MAX_SUBBLOCKS		(1u << COWCHAIN_MAX_SUBBLOCKS_SHIFT)

/* Radix geometry. */
#define COWCHAIN_LEAF_SHIFT		7	/* clusters per leaf block */
#define COWCHAIN_LEAF_ENTRIES		(1u << COWCHAIN_LEAF_SHIFT)
#define COWCHAIN_PTR_SHIFT		8	/* pointers per map/root block */
#define COWCHAIN_PTR_ENTRIES		(1u << COWCHAIN_PTR_SHIFT)
#define COWCHAIN_MAP_SPAN_SHIFT		(COWCHAIN_LEAF_SHIFT + COWCHAIN_PTR_SHIFT)
#define COWCHAIN_ROOT_SPAN_SHIFT	(COWCHAIN_MAP_SPAN_SHIFT + COWCHAIN_PTR_SHIFT)

/*
 * Virtual size: at most 2^40 clusters and 2^62 bytes; the root table has
 * one block per 2^23 clusters (512 TiB at 64 KiB clusters).
 */
#define COWCHAIN_MAX_VCLUSTERS_SHIFT	40
#define COWCHAIN_MAX_VIRTUAL_SIZE	(1ull << 62)
#define COWCHAIN_MAX_ROOT_BLOCKS	(1ull << (COWCHAIN_MAX_VCLUSTERS_SHIFT - \
						  COWCHAIN_ROOT_SPAN_SHIFT))

/* Journal: at least 16 blocks; default 1 MiB. */
#define COWCHAIN_MIN_JOURNAL_BLOCKS	16u
#define COWCHAIN_DEFAULT_JOURNAL_BLOCKS	256u
#define COWCHAIN_MAX_JOURNAL_BLOCKS	(1u << 20)

/* Parent locator: a path hint, relative to the child's directory. */
#define COWCHAIN_LOCATOR_MAX		2048u

/* A chain may be at least this deep; tools and the target enforce it. */
#define COWCHAIN_MAX_DEPTH		4096u

#define COWCHAIN_UUID_SIZE		16

/* ---- block magics ---------------------------------------------------- */

#define COWCHAIN_SB_MAGIC		0x42534343u	/* "CCSB" */
#define COWCHAIN_ROOT_MAGIC		0x54524343u	/* "CCRT" */
#define COWCHAIN_MAP_MAGIC		0x504d4343u	/* "CCMP" */
#define COWCHAIN_LEAF_MAGIC		0x464c4343u	/* "CCLF" */
#define COWCHAIN_JDESC_MAGIC		0x444a4343u	/* "CCJD" */

/* ---- feature bits ---------------------------------------------------- */

/*
 * An unknown incompat bit refuses the layer; an unknown ro_compat bit
 * allows read-only use only; unknown compat bits are ignored.  Version 1
 * defines none.
 */
#define COWCHAIN_FEATURE_COMPAT_SUPP	0u
#define COWCHAIN_FEATURE_RO_COMPAT_SUPP	0u
#define COWCHAIN_FEATURE_INCOMPAT_SUPP	0u

/* ---- superblock state flags ------------------------------------------ */

/* The layer has children: it must never be written again. */
#define COWCHAIN_SB_SEALED		(1u << 0)
/* The layer is an immutable disk's child: emptied at every attach. */
#define COWCHAIN_SB_AUTORESET		(1u << 1)
/* A fault was seen: refuse writable use until "cowchain check" passes. */
#define COWCHAIN_SB_NEEDS_CHECK		(1u << 2)
/* An offline merge owns this layer; merge_* fields say where it stands. */
#define COWCHAIN_SB_MERGING		(1u << 3)
#define COWCHAIN_SB_FLAGS_KNOWN		(COWCHAIN_SB_SEALED | COWCHAIN_SB_AUTORESET | \
					 COWCHAIN_SB_NEEDS_CHECK | COWCHAIN_SB_MERGING)

/* What the layer's parent is. */
#define COWCHAIN_PARENT_NONE		0u	/* a root: unheld sectors read zeros */
#define COWCHAIN_PARENT_LAYER		1u	/* a cowchain layer: uuid + generation */
#define COWCHAIN_PARENT_RAW		2u	/* a raw image: the chain's base */
#define COWCHAIN_PARENT_KIND_MAX	COWCHAIN_PARENT_RAW

/* Merge states (merge_state); meaningful only with COWCHAIN_SB_MERGING. */
#define COWCHAIN_MERGE_NONE		0u
#define COWCHAIN_MERGE_INTO_PARENT	1u	/* this layer is the merge source */
#define COWCHAIN_MERGE_FROM_CHILD	2u	/* this layer is the merge target */
#define COWCHAIN_MERGE_INTO_CHILDREN	3u	/* this parent is streamed down */
#define COWCHAIN_MERGE_FROM_PARENT	4u	/* this child receives its parent */
#define COWCHAIN_MERGE_STATE_MAX	COWCHAIN_MERGE_FROM_PARENT

/* ---- on-disk structures ---------------------------------------------- */

/*
 * Every metadata block starts with this header.  csum is crc32c (Castagnoli)
 * over the little-endian block number followed by the whole block with the
 * csum field read as zero, started at ~0 and inverted at the end, so a block
 * written to the wrong place fails its check.  blocknr is the block's own
 * location in 4 KiB units; uuid is the owning layer's, so a block copied from
 * another layer fails too.  key and count depend on the block type.
 */
struct cowchain_header_disk {
	__le32 magic;
	__le32 csum;
	__le64 blocknr;
	__u8   uuid[COWCHAIN_UUID_SIZE];
	__le64 key;		/* sb: write sequence; root/map/leaf: first vcluster;
				 * journal descriptor: transaction sequence */
	__le32 count;		/* root/map: pointers set; leaf: entries in use;
				 * journal descriptor: image blocks; sb: 0 */
	__le32 reserved0;
	__le64 reserved1[2];
};

struct cowchain_sb_disk {
	struct cowchain_header_disk hdr;	/*   0 */
	__le32 version;				/*  64 */
	__le32 compat;				/*  68 */
	__le32 ro_compat;			/*  72 */
	__le32 incompat;			/*  76 */
	__le32 flags;				/*  80 COWCHAIN_SB_* */
	__le32 parent_kind;			/*  84 COWCHAIN_PARENT_* */
	__le32 cluster_shift;			/*  88 */
	__le32 subblock_shift;			/*  92 */
	__u8   parent_uuid[COWCHAIN_UUID_SIZE];	/*  96 */
	__le64 generation;			/* 112 */
	__le64 parent_generation;		/* 120 */
	__le64 virtual_size;			/* 128 bytes, multiple of 512 */
	__le64 root_start;			/* 136 block */
	__le64 root_blocks;			/* 144 */
	__le64 journal_start;			/* 152 block */
	__le64 journal_blocks;			/* 160 */
	__le64 journal_head;			/* 168 block index inside the journal */
	__le64 journal_seq;			/* 176 sequence expected at journal_head */
	__le64 data_start;			/* 184 first allocatable cluster */
	__le64 capacity;			/* 192 clusters the layer may use */
	__le64 create_time;			/* 200 seconds since the epoch */
	__le64 merge_cursor;			/* 208 vcluster the merge has reached */
	__le32 merge_state;			/* 216 COWCHAIN_MERGE_* */
	__le32 locator_len;			/* 220 bytes used in locator */
	__u8   merge_peer_uuid[COWCHAIN_UUID_SIZE];	/* 224 */
	__u8   reserved[272];			/* 240 zero */
	__u8   locator[COWCHAIN_LOCATOR_MAX];	/* 512 parent path hint, not NUL-terminated */
	__u8   tail[1536];			/* 2560 zero */
};

/* A cluster entry.  phys == 0 means no data cluster (then present == 0). */
struct cowchain_entry_disk {
	__le64 phys;		/* physical cluster number */
	__le64 present;		/* bit i: sub-block i stored at phys */
	__le64 zero;		/* bit i: sub-block i reads zeros */
};

struct cowchain_leaf_disk {
	struct cowchain_header_disk hdr;
	struct cowchain_entry_disk entry[COWCHAIN_LEAF_ENTRIES];
	__u8   tail[COWCHAIN_BLOCK_SIZE - 64 - 24 * COWCHAIN_LEAF_ENTRIES];
};

/* Root and map blocks: block numbers of the next level, 0 = none. */
struct cowchain_ptr_disk {
	struct cowchain_header_disk hdr;
	__le64 ptr[COWCHAIN_PTR_ENTRIES];
	__u8   tail[COWCHAIN_BLOCK_SIZE - 64 - 8 * COWCHAIN_PTR_ENTRIES];
};

/*
 * Journal descriptor: one per transaction, followed in the journal by
 * count image blocks, in the order of jentry[].  image_csum repeats the
 * image's own header csum so an older image left at the same journal
 * position is told apart from this transaction's.
 */
struct cowchain_jentry_disk {
	__le64 home;		/* where the image belongs, block number */
	__le32 image_csum;
	__le32 reserved;
};

#define COWCHAIN_JDESC_MAX_ENTRIES	252u

struct cowchain_jdesc_disk {
	struct cowchain_header_disk hdr;
	struct cowchain_jentry_disk jentry[COWCHAIN_JDESC_MAX_ENTRIES];
};

/* ---- layout asserts -------------------------------------------------- */

static_assert(sizeof(struct cowchain_header_disk) == 64, "header size");
static_assert(sizeof(struct cowchain_sb_disk) == COWCHAIN_BLOCK_SIZE, "sb size");
static_assert(sizeof(struct cowchain_entry_disk) == 24, "entry size");
static_assert(sizeof(struct cowchain_leaf_disk) == COWCHAIN_BLOCK_SIZE, "leaf size");
static_assert(sizeof(struct cowchain_ptr_disk) == COWCHAIN_BLOCK_SIZE, "ptr size");
static_assert(sizeof(struct cowchain_jentry_disk) == 16, "jentry size");
static_assert(sizeof(struct cowchain_jdesc_disk) == COWCHAIN_BLOCK_SIZE, "jdesc size");
static_assert(__builtin_offsetof(struct cowchain_header_disk, csum) == 4, "csum offset");
static_assert(__builtin_offsetof(struct cowchain_header_disk, key) == 32, "key offset");
static_assert(__builtin_offsetof(struct cowchain_sb_disk, version) == 64, "version offset");
static_assert(__builtin_offsetof(struct cowchain_sb_disk, parent_uuid) == 96, "parent_uuid offset");
static_assert(__builtin_offsetof(struct cowchain_sb_disk, virtual_size) == 128, "vsize offset");
static_assert(__builtin_offsetof(struct cowchain_sb_disk, capacity) == 192, "capacity offset");
static_assert(__builtin_offsetof(struct cowchain_sb_disk, merge_peer_uuid) == 224, "peer offset");
static_assert(__builtin_offsetof(struct cowchain_sb_disk, locator) == 512, "locator offset");
static_assert(__builtin_offsetof(struct cowchain_leaf_disk, entry) == 64, "leaf entry offset");
static_assert(__builtin_offsetof(struct cowchain_ptr_disk, ptr) == 64, "ptr offset");
static_assert(__builtin_offsetof(struct cowchain_jdesc_disk, jentry) == 64, "jentry offset");

#endif /* COWCHAIN_FORMAT_H */
