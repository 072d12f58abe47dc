/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Journal logic shared by the kernel target and the userspace library:
 * replay (recovery) and the placement and building of transactions.  The
 * rules are docs/FORMAT.md section 7.  No I/O of its own: the caller
 * supplies block reads and receives replayed images through callbacks, so
 * the file builds unchanged in userspace and is unit-tested there.
 *
 * May block only inside the caller's callbacks.  No locking: the caller
 * serialises all use of one layer's journal.
 */
#ifndef COWCHAIN_JOURNAL_H
#define COWCHAIN_JOURNAL_H

#include "format.h"

struct cowchain_journal_io {
	void *ctx;
	/* Read the 4 KiB block at absolute block number blocknr: 0 or -errno. */
	int (*read_block)(void *ctx, u64 blocknr, void *buf);
	/*
	 * A committed image for block home (already checked: checksum for
	 * home, csum matching the descriptor).  The caller still validates
	 * its contents as a root, map or leaf block when it uses it.
	 * Return 0 or -errno to stop the replay with that error.
	 */
	int (*apply)(void *ctx, u64 home, const void *image);
};

struct cowchain_journal_pos {
	u64 pos;	/* block index inside the journal */
	u64 seq;	/* sequence of the transaction at pos */
};

/*
 * Replay every complete transaction from sb->journal_head/journal_seq, in
 * order, through io->apply.  scratch: two 4 KiB buffers (8 KiB), owned by
 * the caller.  On return *end is where the next transaction goes and
 * *replayed how many transactions were applied.  A torn or absent
 * transaction ends the log and is not an error.  Returns 0, or the -errno
 * of a failed read or apply (err says which block).
 */
int cowchain_journal_replay(const struct cowchain_sb *sb,
			    const struct cowchain_journal_io *io, void *scratch,
			    struct cowchain_journal_pos *end, u64 *replayed,
			    struct cowchain_err *err);

/*
 * Where a transaction of n images goes.  head is the oldest transaction
 * not yet checkpointed, tail the position after the newest (0 ..
 * journal_blocks inclusive: a tail at the very end is the same as 0 when
 * the journal is empty, and means "wrap" otherwise); empty says
 * whether any transaction lies between them.  Returns the position, or
 * -ENOSPC when it would overwrite a transaction not yet checkpointed (the
 * caller checkpoints and retries), or -EINVAL if n can never fit.
 */
s64 cowchain_journal_place(const struct cowchain_sb *sb, u64 head, u64 tail,
			   bool empty, u32 n);

/*
 * Fill the descriptor for a transaction of n images (1..252) at position
 * pos with sequence seq.  images[i] must already be sealed for homes[i].
 */
void cowchain_jdesc_build(struct cowchain_jdesc_disk *d,
			  const struct cowchain_sb *sb, u64 pos, u64 seq,
			  const u64 *homes, void *const *images, u32 n);

#endif /* COWCHAIN_JOURNAL_H */
