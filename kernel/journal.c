// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Journal logic shared by the kernel target and the userspace library
 * (see journal.h; the rules are docs/FORMAT.md section 7).
 *
 * Why replay is safe at any crash point:
 *  - A transaction is one contiguous write of a descriptor and its images.
 *    If the write was torn, either the descriptor fails its checksum or an
 *    image fails its checksum or its descriptor's image_csum, so the whole
 *    transaction is ignored.  Its data writes may have reached the disk,
 *    but nothing references them: the flush that would have covered them
 *    never completed, so nothing acknowledged is lost.
 *  - Sequence numbers only grow, so a descriptor left from an earlier lap
 *    of the journal never carries the sequence replay expects, and an
 *    image left from an earlier lap never matches the new descriptor's
 *    image_csum (which is a checksum over the image and its home).
 *  - A checkpoint advances journal_head in the superblock only after the
 *    images are home and flushed, so a torn home write is always repaired
 *    by replaying the journal again.
 */
#ifdef __KERNEL__
#include <linux/kernel.h>
#include <linux/string.h>
#endif
#include "journal.h"

static bool image_ok(const void *image, u64 home, __le32 want)
{
	const struct cowchain_header_disk *h = image;

	return h->csum == want &&
	       le32_to_cpu(want) == cowchain_block_csum(image, home) &&
	       le64_to_cpu(h->blocknr) == home;
}

/*
 * Read the descriptor for seq at pos; on failure try position 0 (the
 * writer wraps to 0 when a transaction does not fit before the end).
 * Returns 1 with *at set if found, 0 if the log ends, or -errno.
 */
static int find_desc(const struct cowchain_sb *sb,
		     const struct cowchain_journal_io *io,
		     struct cowchain_jdesc_disk *d, u64 pos, u64 seq, u64 *at,
		     struct cowchain_err *err)
{
	struct cowchain_err ignored;
	int r, tries;

	for (tries = 0; tries < 2; tries++) {
		if (tries == 1) {
			if (pos == 0)
				break;
			pos = 0;
		}
		r = io->read_block(io->ctx, sb->journal_start + pos, d);
		if (r) {
			snprintf(err->msg, sizeof(err->msg),
				 "journal: cannot read block %llu (position %llu)",
				 (unsigned long long)(sb->journal_start + pos),
				 (unsigned long long)pos);
			return r;
		}
		if (!cowchain_jdesc_check(d, pos, seq, sb, &ignored)) {
			*at = pos;
			return 1;
		}
	}
	return 0;
}

/* Read image i of the transaction whose descriptor is at position at. */
static int read_image(const struct cowchain_sb *sb,
		      const struct cowchain_journal_io *io, u64 at, u32 i,
		      u64 seq, void *image, struct cowchain_err *err)
{
	int r = io->read_block(io->ctx, sb->journal_start + at + 1 + i, image);

	if (r)
		snprintf(err->msg, sizeof(err->msg),
			 "journal: cannot read image %u of transaction %llu",
			 i, (unsigned long long)seq);
	return r;
}

int cowchain_journal_replay(const struct cowchain_sb *sb,
			    const struct cowchain_journal_io *io, void *scratch,
			    struct cowchain_journal_pos *end, u64 *replayed,
			    struct cowchain_err *err)
{
	struct cowchain_jdesc_disk *d = scratch;
	u8 *image = (u8 *)scratch + COWCHAIN_BLOCK_SIZE;
	u64 pos = sb->journal_head, seq = sb->journal_seq, at, n_done = 0;
	u32 i, n;
	int r;

	/*
	 * Each transaction occupies at least two positions, so a journal
	 * can hold at most journal_blocks / 2 of them: a bound on the loop
	 * even if the disk lies.
	 */
	while (n_done <= sb->journal_blocks / 2) {
		r = find_desc(sb, io, d, pos, seq, &at, err);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		n = le32_to_cpu(d->hdr.count);

		/* Check every image before applying any: all or nothing. */
		for (i = 0; i < n; i++) {
			u64 home = le64_to_cpu(d->jentry[i].home);

			r = read_image(sb, io, at, i, seq, image, err);
			if (r)
				return r;
			if (!image_ok(image, home, d->jentry[i].image_csum))
				goto torn;
		}
		for (i = 0; i < n; i++) {
			u64 home = le64_to_cpu(d->jentry[i].home);

			r = read_image(sb, io, at, i, seq, image, err);
			if (r)
				return r;
			/* Re-check: the block may have changed under a bad device. */
			if (!image_ok(image, home, d->jentry[i].image_csum)) {
				snprintf(err->msg, sizeof(err->msg),
					 "journal: image %u of transaction %llu changed while replaying",
					 i, (unsigned long long)seq);
				return -EIO;
			}
			r = io->apply(io->ctx, home, image);
			if (r) {
				snprintf(err->msg, sizeof(err->msg),
					 "journal: applying block %llu of transaction %llu failed",
					 (unsigned long long)home, (unsigned long long)seq);
				return r;
			}
		}
		pos = at + 1 + n;
		if (pos >= sb->journal_blocks)
			pos = 0;
		seq++;
		n_done++;
	}
torn:
	end->pos = pos;
	end->seq = seq;
	*replayed = n_done;
	return 0;
}

s64 cowchain_journal_place(const struct cowchain_sb *sb, u64 head, u64 tail,
			   bool empty, u32 n)
{
	u64 need = 1 + (u64)n, size = sb->journal_blocks;

	if (!n || n > COWCHAIN_JDESC_MAX_ENTRIES || need > size)
		return -EINVAL;
	if (empty) {
		/* Nothing live: anywhere; keep going forward from tail. */
		if (tail + need <= size)
			return tail;
		return 0;
	}
	if (tail > head) {
		/* Live region [head, tail): free [tail, size) and [0, head). */
		if (tail + need <= size)
			return tail;
		if (need <= head)
			return 0;
		return -ENOSPC;
	}
	if (tail < head) {
		/* Live region wraps: free [tail, head). */
		if (tail + need <= head)
			return tail;
		return -ENOSPC;
	}
	/* tail == head and not empty: the journal is full. */
	return -ENOSPC;
}

void cowchain_jdesc_build(struct cowchain_jdesc_disk *d,
			  const struct cowchain_sb *sb, u64 pos, u64 seq,
			  const u64 *homes, void *const *images, u32 n)
{
	u64 blocknr = sb->journal_start + pos;
	u32 i;

	memset(d, 0, sizeof(*d));
	cowchain_header_init(d, COWCHAIN_JDESC_MAGIC, blocknr, sb->uuid, seq, n);
	for (i = 0; i < n; i++) {
		const struct cowchain_header_disk *h = images[i];

		d->jentry[i].home = cpu_to_le64(homes[i]);
		d->jentry[i].image_csum = h->csum;
	}
	cowchain_block_seal(d, blocknr);
}
