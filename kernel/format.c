// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Pure logic over the cowchain on-disk format (see format.h).
 *
 * Everything read from disk is untrusted: each check below names the
 * structure and the field it refuses, and arithmetic on disk values is
 * bounded before it can overflow.  Built unchanged into the kernel module
 * and into the userspace library.
 */
#ifdef __KERNEL__
#include <linux/crc32c.h>
#include <linux/string.h>
#include <linux/kernel.h>
#endif
#include "format.h"

#define fail(err, ...) ({ snprintf((err)->msg, sizeof((err)->msg), __VA_ARGS__); -EINVAL; })

static bool all_zero(const void *p, size_t len)
{
	const u8 *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- checksums ------------------------------------------------------- */

u32 cowchain_block_csum(const void *block, u64 blocknr)
{
	static const u8 zero4[4];
	__le64 loc = cpu_to_le64(blocknr);
	const u8 *b = block;
	u32 c;

	c = crc32c(~0u, &loc, sizeof(loc));
	c = crc32c(c, b, 4);
	c = crc32c(c, zero4, 4);
	c = crc32c(c, b + 8, COWCHAIN_BLOCK_SIZE - 8);
	return ~c;
}

void cowchain_block_seal(void *block, u64 blocknr)
{
	struct cowchain_header_disk *h = block;

	h->csum = cpu_to_le32(cowchain_block_csum(block, blocknr));
}

void cowchain_header_init(void *block, u32 magic, u64 blocknr,
			  const u8 *uuid, u64 key, u32 count)
{
	struct cowchain_header_disk *h = block;

	memset(h, 0, sizeof(*h));
	h->magic = cpu_to_le32(magic);
	h->blocknr = cpu_to_le64(blocknr);
	memcpy(h->uuid, uuid, COWCHAIN_UUID_SIZE);
	h->key = cpu_to_le64(key);
	h->count = cpu_to_le32(count);
}

int cowchain_header_check(const void *block, u32 magic, u64 blocknr,
			  const u8 *uuid, u64 key, const char *what,
			  struct cowchain_err *err)
{
	const struct cowchain_header_disk *h = block;
	u32 want;

	if (le32_to_cpu(h->magic) != magic)
		return fail(err, "%s at block %llu: bad magic 0x%08x (expected 0x%08x)",
			    what, (unsigned long long)blocknr,
			    le32_to_cpu(h->magic), magic);
	want = cowchain_block_csum(block, blocknr);
	if (le32_to_cpu(h->csum) != want)
		return fail(err, "%s at block %llu: checksum mismatch (stored 0x%08x, computed 0x%08x)",
			    what, (unsigned long long)blocknr,
			    le32_to_cpu(h->csum), want);
	if (le64_to_cpu(h->blocknr) != blocknr)
		return fail(err, "%s at block %llu: records location %llu",
			    what, (unsigned long long)blocknr,
			    (unsigned long long)le64_to_cpu(h->blocknr));
	if (uuid && memcmp(h->uuid, uuid, COWCHAIN_UUID_SIZE))
		return fail(err, "%s at block %llu: belongs to another layer (uuid mismatch)",
			    what, (unsigned long long)blocknr);
	if (le64_to_cpu(h->key) != key)
		return fail(err, "%s at block %llu: key %llu, expected %llu",
			    what, (unsigned long long)blocknr,
			    (unsigned long long)le64_to_cpu(h->key),
			    (unsigned long long)key);
	if (h->reserved0 || h->reserved1[0] || h->reserved1[1])
		return fail(err, "%s at block %llu: reserved header fields are not zero",
			    what, (unsigned long long)blocknr);
	return 0;
}

/* ---- superblock ------------------------------------------------------ */

int cowchain_sb_unpack(const struct cowchain_sb_disk *d, u64 slot,
		       u64 dev_blocks, struct cowchain_sb *sb,
		       struct cowchain_err *err)
{
	u64 seq = le64_to_cpu(d->hdr.key);
	int r;

	r = cowchain_header_check(d, COWCHAIN_SB_MAGIC, slot, NULL, seq,
				  "superblock", err);
	if (r)
		return r;
	if ((seq & 1) != slot)
		return fail(err, "superblock at block %llu: sequence %llu belongs in the other slot",
			    (unsigned long long)slot, (unsigned long long)seq);
	if (d->hdr.count)
		return fail(err, "superblock: header count is not zero");
	if (!all_zero(d->reserved, sizeof(d->reserved)) ||
	    !all_zero(d->tail, sizeof(d->tail)))
		return fail(err, "superblock: reserved bytes are not zero");

	memset(sb, 0, sizeof(*sb));
	sb->blocknr = slot;
	sb->seq = seq;
	memcpy(sb->uuid, d->hdr.uuid, COWCHAIN_UUID_SIZE);
	sb->version = le32_to_cpu(d->version);
	sb->compat = le32_to_cpu(d->compat);
	sb->ro_compat = le32_to_cpu(d->ro_compat);
	sb->incompat = le32_to_cpu(d->incompat);
	sb->flags = le32_to_cpu(d->flags);
	sb->parent_kind = le32_to_cpu(d->parent_kind);
	sb->cluster_shift = le32_to_cpu(d->cluster_shift);
	sb->subblock_shift = le32_to_cpu(d->subblock_shift);
	memcpy(sb->parent_uuid, d->parent_uuid, COWCHAIN_UUID_SIZE);
	sb->generation = le64_to_cpu(d->generation);
	sb->parent_generation = le64_to_cpu(d->parent_generation);
	sb->virtual_size = le64_to_cpu(d->virtual_size);
	sb->root_start = le64_to_cpu(d->root_start);
	sb->root_blocks = le64_to_cpu(d->root_blocks);
	sb->journal_start = le64_to_cpu(d->journal_start);
	sb->journal_blocks = le64_to_cpu(d->journal_blocks);
	sb->journal_head = le64_to_cpu(d->journal_head);
	sb->journal_seq = le64_to_cpu(d->journal_seq);
	sb->data_start = le64_to_cpu(d->data_start);
	sb->capacity = le64_to_cpu(d->capacity);
	sb->create_time = le64_to_cpu(d->create_time);
	sb->merge_cursor = le64_to_cpu(d->merge_cursor);
	sb->merge_state = le32_to_cpu(d->merge_state);
	sb->locator_len = le32_to_cpu(d->locator_len);
	memcpy(sb->merge_peer_uuid, d->merge_peer_uuid, COWCHAIN_UUID_SIZE);
	memcpy(sb->locator, d->locator, COWCHAIN_LOCATOR_MAX);
	return cowchain_sb_validate(sb, dev_blocks, err);
}

static bool ranges_overlap(u64 a, u64 alen, u64 b, u64 blen)
{
	return a < b + blen && b < a + alen;
}

int cowchain_sb_validate(const struct cowchain_sb *sb, u64 dev_blocks,
			 struct cowchain_err *err)
{
	u64 vclusters, need_root, header_end, cb_shift;

	if (sb->version != COWCHAIN_VERSION) {
		snprintf(err->msg, sizeof(err->msg),
			 "superblock: format version %u is not supported (this build reads %u)",
			 sb->version, COWCHAIN_VERSION);
		return -EOPNOTSUPP;
	}
	if (sb->incompat & ~COWCHAIN_FEATURE_INCOMPAT_SUPP) {
		snprintf(err->msg, sizeof(err->msg),
			 "superblock: unknown incompatible features 0x%x",
			 sb->incompat & ~COWCHAIN_FEATURE_INCOMPAT_SUPP);
		return -EOPNOTSUPP;
	}
	if (all_zero(sb->uuid, COWCHAIN_UUID_SIZE))
		return fail(err, "superblock: layer uuid is zero");
	if (sb->flags & ~COWCHAIN_SB_FLAGS_KNOWN)
		return fail(err, "superblock: unknown state flags 0x%x",
			    sb->flags & ~COWCHAIN_SB_FLAGS_KNOWN);

	if (sb->parent_kind > COWCHAIN_PARENT_KIND_MAX)
		return fail(err, "superblock: parent_kind %u is not valid", sb->parent_kind);
	if (sb->parent_kind == COWCHAIN_PARENT_LAYER) {
		if (all_zero(sb->parent_uuid, COWCHAIN_UUID_SIZE))
			return fail(err, "superblock: parent uuid is zero in a child layer");
		if (!memcmp(sb->parent_uuid, sb->uuid, COWCHAIN_UUID_SIZE))
			return fail(err, "superblock: layer is its own parent");
	} else {
		if (!all_zero(sb->parent_uuid, COWCHAIN_UUID_SIZE) || sb->parent_generation)
			return fail(err, "superblock: parent uuid/generation set on a layer without a cowchain parent");
	}
	if (sb->parent_kind == COWCHAIN_PARENT_RAW && !sb->locator_len)
		return fail(err, "superblock: raw base named without a locator");
	if (sb->locator_len > COWCHAIN_LOCATOR_MAX)
		return fail(err, "superblock: locator_len %u exceeds %u",
			    sb->locator_len, COWCHAIN_LOCATOR_MAX);
	if (!all_zero(sb->locator + sb->locator_len,
		      COWCHAIN_LOCATOR_MAX - sb->locator_len))
		return fail(err, "superblock: bytes after the locator are not zero");
	if (memchr(sb->locator, 0, sb->locator_len))
		return fail(err, "superblock: locator contains a NUL byte");
	if (sb->parent_kind == COWCHAIN_PARENT_NONE && sb->locator_len)
		return fail(err, "superblock: locator set on a root layer");

	if (sb->cluster_shift < COWCHAIN_MIN_CLUSTER_SHIFT ||
	    sb->cluster_shift > COWCHAIN_MAX_CLUSTER_SHIFT)
		return fail(err, "superblock: cluster_shift %u outside %u..%u",
			    sb->cluster_shift, COWCHAIN_MIN_CLUSTER_SHIFT,
			    COWCHAIN_MAX_CLUSTER_SHIFT);
	if (sb->subblock_shift < COWCHAIN_MIN_SUBBLOCK_SHIFT ||
	    sb->subblock_shift > sb->cluster_shift ||
	    sb->cluster_shift - sb->subblock_shift > COWCHAIN_MAX_SUBBLOCKS_SHIFT)
		return fail(err, "superblock: subblock_shift %u invalid for cluster_shift %u",
			    sb->subblock_shift, sb->cluster_shift);

	if (!sb->virtual_size || sb->virtual_size > COWCHAIN_MAX_VIRTUAL_SIZE ||
	    sb->virtual_size & ((1u << COWCHAIN_SECTOR_SHIFT) - 1))
		return fail(err, "superblock: virtual_size %llu is zero, too large or not a multiple of 512",
			    (unsigned long long)sb->virtual_size);
	vclusters = cowchain_vclusters(sb);
	if (vclusters > (1ull << COWCHAIN_MAX_VCLUSTERS_SHIFT))
		return fail(err, "superblock: %llu clusters exceed the limit of 2^%u",
			    (unsigned long long)vclusters, COWCHAIN_MAX_VCLUSTERS_SHIFT);

	need_root = (vclusters + (1ull << COWCHAIN_ROOT_SPAN_SHIFT) - 1) >>
		    COWCHAIN_ROOT_SPAN_SHIFT;
	if (sb->root_blocks < need_root || sb->root_blocks > COWCHAIN_MAX_ROOT_BLOCKS)
		return fail(err, "superblock: root_blocks %llu cannot index %llu clusters",
			    (unsigned long long)sb->root_blocks,
			    (unsigned long long)vclusters);
	if (sb->journal_blocks < COWCHAIN_MIN_JOURNAL_BLOCKS ||
	    sb->journal_blocks > COWCHAIN_MAX_JOURNAL_BLOCKS)
		return fail(err, "superblock: journal_blocks %llu outside %u..%u",
			    (unsigned long long)sb->journal_blocks,
			    COWCHAIN_MIN_JOURNAL_BLOCKS, COWCHAIN_MAX_JOURNAL_BLOCKS);
	if (sb->journal_head >= sb->journal_blocks)
		return fail(err, "superblock: journal_head %llu past the journal (%llu blocks)",
			    (unsigned long long)sb->journal_head,
			    (unsigned long long)sb->journal_blocks);
	/* Region starts are bounded so the sums below cannot overflow. */
	if (sb->root_start < 2 || sb->root_start > (1ull << 40) ||
	    sb->journal_start < 2 || sb->journal_start > (1ull << 40))
		return fail(err, "superblock: root_start %llu or journal_start %llu out of range",
			    (unsigned long long)sb->root_start,
			    (unsigned long long)sb->journal_start);
	if (ranges_overlap(sb->root_start, sb->root_blocks,
			   sb->journal_start, sb->journal_blocks))
		return fail(err, "superblock: root table and journal overlap");

	cb_shift = sb->cluster_shift - COWCHAIN_BLOCK_SHIFT;
	header_end = sb->root_start + sb->root_blocks;
	if (sb->journal_start + sb->journal_blocks > header_end)
		header_end = sb->journal_start + sb->journal_blocks;
	if (!sb->data_start || sb->data_start > (1ull << 40) ||
	    (sb->data_start << cb_shift) < header_end)
		return fail(err, "superblock: data_start cluster %llu overlaps the header regions",
			    (unsigned long long)sb->data_start);
	if (sb->capacity <= sb->data_start ||
	    sb->capacity >= (1ull << (63 - sb->cluster_shift)))
		return fail(err, "superblock: capacity %llu clusters out of range",
			    (unsigned long long)sb->capacity);
	if (dev_blocks && (sb->capacity << cb_shift) > dev_blocks)
		return fail(err, "superblock: capacity %llu clusters exceeds the device (%llu blocks)",
			    (unsigned long long)sb->capacity,
			    (unsigned long long)dev_blocks);

	if (sb->merge_state > COWCHAIN_MERGE_STATE_MAX)
		return fail(err, "superblock: merge_state %u is not valid", sb->merge_state);
	if (!!(sb->flags & COWCHAIN_SB_MERGING) != !!sb->merge_state)
		return fail(err, "superblock: merging flag and merge_state %u disagree",
			    sb->merge_state);
	if (!sb->merge_state &&
	    (sb->merge_cursor || !all_zero(sb->merge_peer_uuid, COWCHAIN_UUID_SIZE)))
		return fail(err, "superblock: merge cursor or peer set without a merge");
	if (sb->merge_state && sb->merge_cursor > vclusters)
		return fail(err, "superblock: merge_cursor %llu past the last cluster",
			    (unsigned long long)sb->merge_cursor);
	return 0;
}

void cowchain_sb_pack(const struct cowchain_sb *sb, struct cowchain_sb_disk *d)
{
	u64 slot = sb->seq & 1;

	memset(d, 0, sizeof(*d));
	cowchain_header_init(d, COWCHAIN_SB_MAGIC, slot, sb->uuid, sb->seq, 0);
	d->version = cpu_to_le32(sb->version);
	d->compat = cpu_to_le32(sb->compat);
	d->ro_compat = cpu_to_le32(sb->ro_compat);
	d->incompat = cpu_to_le32(sb->incompat);
	d->flags = cpu_to_le32(sb->flags);
	d->parent_kind = cpu_to_le32(sb->parent_kind);
	d->cluster_shift = cpu_to_le32(sb->cluster_shift);
	d->subblock_shift = cpu_to_le32(sb->subblock_shift);
	memcpy(d->parent_uuid, sb->parent_uuid, COWCHAIN_UUID_SIZE);
	d->generation = cpu_to_le64(sb->generation);
	d->parent_generation = cpu_to_le64(sb->parent_generation);
	d->virtual_size = cpu_to_le64(sb->virtual_size);
	d->root_start = cpu_to_le64(sb->root_start);
	d->root_blocks = cpu_to_le64(sb->root_blocks);
	d->journal_start = cpu_to_le64(sb->journal_start);
	d->journal_blocks = cpu_to_le64(sb->journal_blocks);
	d->journal_head = cpu_to_le64(sb->journal_head);
	d->journal_seq = cpu_to_le64(sb->journal_seq);
	d->data_start = cpu_to_le64(sb->data_start);
	d->capacity = cpu_to_le64(sb->capacity);
	d->create_time = cpu_to_le64(sb->create_time);
	d->merge_cursor = cpu_to_le64(sb->merge_cursor);
	d->merge_state = cpu_to_le32(sb->merge_state);
	d->locator_len = cpu_to_le32(sb->locator_len);
	memcpy(d->merge_peer_uuid, sb->merge_peer_uuid, COWCHAIN_UUID_SIZE);
	memcpy(d->locator, sb->locator, COWCHAIN_LOCATOR_MAX);
	cowchain_block_seal(d, slot);
}

/* ---- layout ---------------------------------------------------------- */

int cowchain_layout(struct cowchain_sb *sb, u64 journal_blocks,
		    struct cowchain_err *err)
{
	u64 vclusters, meta_clusters, cb_shift, header_end;

	if (sb->cluster_shift < COWCHAIN_MIN_CLUSTER_SHIFT ||
	    sb->cluster_shift > COWCHAIN_MAX_CLUSTER_SHIFT)
		return fail(err, "cluster size 2^%u is outside 4 KiB..2 MiB", sb->cluster_shift);
	if (!sb->virtual_size || sb->virtual_size > COWCHAIN_MAX_VIRTUAL_SIZE ||
	    sb->virtual_size & ((1u << COWCHAIN_SECTOR_SHIFT) - 1))
		return fail(err, "virtual size %llu is zero, too large or not a multiple of 512",
			    (unsigned long long)sb->virtual_size);
	if (journal_blocks < COWCHAIN_MIN_JOURNAL_BLOCKS ||
	    journal_blocks > COWCHAIN_MAX_JOURNAL_BLOCKS)
		return fail(err, "journal of %llu blocks is outside %u..%u",
			    (unsigned long long)journal_blocks,
			    COWCHAIN_MIN_JOURNAL_BLOCKS, COWCHAIN_MAX_JOURNAL_BLOCKS);
	vclusters = cowchain_vclusters(sb);
	if (vclusters > (1ull << COWCHAIN_MAX_VCLUSTERS_SHIFT))
		return fail(err, "virtual size needs %llu clusters, more than 2^%u",
			    (unsigned long long)vclusters, COWCHAIN_MAX_VCLUSTERS_SHIFT);

	cb_shift = sb->cluster_shift - COWCHAIN_BLOCK_SHIFT;
	sb->root_start = 2;
	sb->root_blocks = (vclusters + (1ull << COWCHAIN_ROOT_SPAN_SHIFT) - 1) >>
			  COWCHAIN_ROOT_SPAN_SHIFT;
	sb->journal_start = sb->root_start + sb->root_blocks;
	sb->journal_blocks = journal_blocks;
	sb->journal_head = 0;
	header_end = sb->journal_start + sb->journal_blocks;
	sb->data_start = (header_end + (1ull << cb_shift) - 1) >> cb_shift;

	/*
	 * Worst case metadata: one leaf per 128 clusters and one map per
	 * 32768, all of them allocated.  Metadata blocks fill a metadata
	 * cluster before another is opened, so add one partial cluster.
	 */
	meta_clusters = ((cowchain_index_blocks_worst(vclusters) + (1ull << cb_shift) - 1) >>
			 cb_shift) + 1;
	sb->capacity = sb->data_start + vclusters + meta_clusters;
	return 0;
}

/* ---- index blocks ---------------------------------------------------- */

int cowchain_entry_check(const struct cowchain_entry *e,
			 const struct cowchain_sb *sb, struct cowchain_err *err)
{
	u64 mask = cowchain_full_mask(cowchain_subblocks(sb));

	if ((e->present | e->zero) & ~mask)
		return fail(err, "bits set past the %u sub-blocks of a cluster",
			    cowchain_subblocks(sb));
	if (e->present & e->zero)
		return fail(err, "sub-blocks 0x%llx marked both present and zero",
			    (unsigned long long)(e->present & e->zero));
	if (!e->phys != !e->present)
		return fail(err, "physical cluster %llu with presence bitmap 0x%llx",
			    (unsigned long long)e->phys,
			    (unsigned long long)e->present);
	if (e->phys && (e->phys < sb->data_start || e->phys >= sb->capacity))
		return fail(err, "physical cluster %llu outside %llu..%llu",
			    (unsigned long long)e->phys,
			    (unsigned long long)sb->data_start,
			    (unsigned long long)sb->capacity - 1);
	return 0;
}

int cowchain_leaf_check(const struct cowchain_leaf_disk *blk, u64 blocknr,
			u64 key, const struct cowchain_sb *sb,
			struct cowchain_err *err)
{
	u64 vclusters = cowchain_vclusters(sb);
	struct cowchain_entry e;
	u32 i, used = 0;
	int r;

	r = cowchain_header_check(blk, COWCHAIN_LEAF_MAGIC, blocknr, sb->uuid,
				  key, "leaf block", err);
	if (r)
		return r;
	for (i = 0; i < COWCHAIN_LEAF_ENTRIES; i++) {
		cowchain_entry_unpack(&blk->entry[i], &e);
		if (cowchain_entry_empty(&e))
			continue;
		used++;
		if (key + i >= vclusters)
			return fail(err, "leaf block %llu: entry for cluster %llu past the virtual size",
				    (unsigned long long)blocknr,
				    (unsigned long long)(key + i));
		r = cowchain_entry_check(&e, sb, err);
		if (r) {
			char why[128];

			memcpy(why, err->msg, sizeof(why) - 1);
			why[sizeof(why) - 1] = 0;
			return fail(err, "leaf block %llu, cluster %llu: %s",
				    (unsigned long long)blocknr,
				    (unsigned long long)(key + i), why);
		}
	}
	if (le32_to_cpu(blk->hdr.count) != used)
		return fail(err, "leaf block %llu: count %u but %u entries in use",
			    (unsigned long long)blocknr,
			    le32_to_cpu(blk->hdr.count), used);
	if (!all_zero(blk->tail, sizeof(blk->tail)))
		return fail(err, "leaf block %llu: bytes after the entries are not zero",
			    (unsigned long long)blocknr);
	return 0;
}

int cowchain_ptr_check(const struct cowchain_ptr_disk *blk, u32 magic,
		       u64 blocknr, u64 key, const struct cowchain_sb *sb,
		       struct cowchain_err *err)
{
	const char *what = magic == COWCHAIN_ROOT_MAGIC ? "root block" : "map block";
	u32 span = magic == COWCHAIN_ROOT_MAGIC ? COWCHAIN_MAP_SPAN_SHIFT
						: COWCHAIN_LEAF_SHIFT;
	u64 vclusters = cowchain_vclusters(sb);
	u32 i, used = 0;
	int r;

	r = cowchain_header_check(blk, magic, blocknr, sb->uuid, key, what, err);
	if (r)
		return r;
	for (i = 0; i < COWCHAIN_PTR_ENTRIES; i++) {
		u64 p = le64_to_cpu(blk->ptr[i]);

		if (!p)
			continue;
		used++;
		if (key + ((u64)i << span) >= vclusters)
			return fail(err, "%s %llu: slot %u points past the virtual size",
				    what, (unsigned long long)blocknr, i);
		if (!cowchain_block_in_clusters(sb, p))
			return fail(err, "%s %llu: slot %u points to block %llu outside the cluster area",
				    what, (unsigned long long)blocknr, i,
				    (unsigned long long)p);
	}
	if (le32_to_cpu(blk->hdr.count) != used)
		return fail(err, "%s %llu: count %u but %u pointers set",
			    what, (unsigned long long)blocknr,
			    le32_to_cpu(blk->hdr.count), used);
	if (!all_zero(blk->tail, sizeof(blk->tail)))
		return fail(err, "%s %llu: bytes after the pointers are not zero",
			    what, (unsigned long long)blocknr);
	return 0;
}

/* ---- journal --------------------------------------------------------- */

int cowchain_jdesc_check(const struct cowchain_jdesc_disk *d, u64 pos,
			 u64 seq, const struct cowchain_sb *sb,
			 struct cowchain_err *err)
{
	u64 blocknr = sb->journal_start + pos;
	u32 i, j, n;
	int r;

	r = cowchain_header_check(d, COWCHAIN_JDESC_MAGIC, blocknr, sb->uuid,
				  seq, "journal descriptor", err);
	if (r)
		return r;
	n = le32_to_cpu(d->hdr.count);
	if (!n || n > COWCHAIN_JDESC_MAX_ENTRIES || pos + 1 + n > sb->journal_blocks)
		return fail(err, "journal descriptor at %llu: %u images do not fit",
			    (unsigned long long)pos, n);
	for (i = 0; i < COWCHAIN_JDESC_MAX_ENTRIES; i++) {
		u64 home = le64_to_cpu(d->jentry[i].home);

		if (i >= n) {
			if (home || d->jentry[i].image_csum || d->jentry[i].reserved)
				return fail(err, "journal descriptor at %llu: unused entry %u not zero",
					    (unsigned long long)pos, i);
			continue;
		}
		if (d->jentry[i].reserved)
			return fail(err, "journal descriptor at %llu: entry %u reserved not zero",
				    (unsigned long long)pos, i);
		if (!(home >= sb->root_start && home < sb->root_start + sb->root_blocks) &&
		    !cowchain_block_in_clusters(sb, home))
			return fail(err, "journal descriptor at %llu: entry %u home block %llu is not metadata space",
				    (unsigned long long)pos, i, (unsigned long long)home);
		for (j = 0; j < i; j++)
			if (le64_to_cpu(d->jentry[j].home) == home)
				return fail(err, "journal descriptor at %llu: block %llu journaled twice",
					    (unsigned long long)pos, (unsigned long long)home);
	}
	return 0;
}
