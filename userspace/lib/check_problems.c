// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The problem table: every problem "cowchain check" can report.  The CLI
 * prints, counts, emits JSON and computes the exit status from this table
 * only; docs/check.md documents each row.  Keep the codes stable: scripts
 * match them.
 *
 * A problem is repairable only if the repair needs no guessing and loses
 * nothing: replaying a committed journal, rewriting a superblock slot from
 * the valid one, punching unreferenced clusters, clearing NEEDS_CHECK,
 * finishing an interrupted merge with the merge code itself.
 * Anything that would drop metadata or data is reported and left alone.
 */
#include "check.h"

#define P(c, sev, rep, msg, fix) \
	[CK_##c] = { #c, COWCHAIN_SEV_##sev, rep, msg, fix }

const struct cowchain_problem_def cowchain_problems[CK__COUNT] = {
	P(SB_SLOT_INVALID, CORRUPT, true,
	  "superblock slot is damaged",
	  "write the current superblock into it (a superblock write, seq + 1)"),
	P(SB_SLOT_STALE, INFO, false,
	  "the other superblock slot is older than the previous version",
	  "none needed; the next superblock write replaces it"),
	P(SB_NONE_VALID, CORRUPT, false,
	  "no valid superblock: the layer cannot be used",
	  "rebuild the metadata by hand from a dump (cowchain restore-dump)"),
	P(SB_RO_COMPAT, INFO, false,
	  "unknown read-only-compatible features: the layer is read-only here",
	  "use a newer cowchain to repair it"),
	P(SB_NEEDS_CHECK, HARMLESS, true,
	  "the needs-check flag is set",
	  "clear the flag when nothing else is left uncorrected"),
	P(SB_MERGING, HARMLESS, true,
	  "an offline merge is in progress or was interrupted",
	  "finish the merge as re-running 'cowchain merge FILE' does (peers looked for in FILE's directory and --search)"),
	P(FILE_TRUNCATED, CORRUPT, false,
	  "the file is shorter than the layer's capacity",
	  "restore the missing end of the file from a backup"),
	P(JOURNAL_PENDING, HARMLESS, true,
	  "the journal holds committed transactions not yet checkpointed",
	  "replay them home and checkpoint the journal"),
	P(JOURNAL_TORN, INFO, false,
	  "a torn transaction ends the journal (never completed, ignored)",
	  "none needed; the next commit overwrites it"),
	P(JOURNAL_UNREADABLE, CORRUPT, false,
	  "the journal cannot be read",
	  "none automatic; the index is checked without it"),
	P(ROOT_BAD, CORRUPT, false,
	  "root block is damaged; the clusters under it are lost",
	  "none automatic (it would drop data); inspect with cowchain dump"),
	P(MAP_BAD, CORRUPT, false,
	  "map block is damaged; the clusters under it are lost",
	  "none automatic (it would drop data); inspect with cowchain dump"),
	P(LEAF_BAD, CORRUPT, false,
	  "leaf block is damaged; its clusters are lost",
	  "none automatic (it would drop data); inspect with cowchain dump"),
	P(PTR_OUT_OF_AREA, CORRUPT, false,
	  "index pointer outside the cluster area",
	  "none automatic; fix the pointer by hand (dump, edit, restore-dump)"),
	P(PTR_PAST_VSIZE, CORRUPT, false,
	  "index pointer covers only clusters past the virtual size",
	  "none automatic; fix the pointer by hand (dump, edit, restore-dump)"),
	P(PTR_PAST_EOF, CORRUPT, false,
	  "index pointer past the end of the file",
	  "none automatic; restore the file's end or fix the pointer by hand"),
	P(BLOCK_COUNT, CORRUPT, false,
	  "block header count does not match its contents",
	  "none automatic; rewrite the block by hand (dump, restore-dump)"),
	P(BLOCK_TAIL, CORRUPT, false,
	  "bytes after a block's entries are not zero",
	  "none automatic; rewrite the block by hand (dump, restore-dump)"),
	P(BLOCK_TWICE, CORRUPT, false,
	  "metadata block reached twice in the index",
	  "none automatic; fix the pointers by hand (dump, edit, restore-dump)"),
	P(ENTRY_INVALID, CORRUPT, false,
	  "cluster entry is malformed",
	  "none automatic; fix the entry by hand (dump, edit, restore-dump)"),
	P(ENTRY_PAST_VSIZE, CORRUPT, false,
	  "cluster entry for a cluster past the virtual size",
	  "none automatic; fix the entry by hand (dump, edit, restore-dump)"),
	P(ENTRY_PHYS_RANGE, CORRUPT, false,
	  "cluster entry's physical cluster is outside the cluster area",
	  "none automatic; fix the entry by hand (dump, edit, restore-dump)"),
	P(ENTRY_PAST_EOF, CORRUPT, false,
	  "cluster entry's physical cluster lies past the end of the file",
	  "none automatic; restore the file's end from a backup"),
	P(CLUSTER_SHARED, CORRUPT, false,
	  "physical cluster referenced twice",
	  "none automatic: which owner is right cannot be known"),
	P(DATA_META_OVERLAP, CORRUPT, false,
	  "data cluster is also a metadata cluster",
	  "none automatic: which owner is right cannot be known"),
	P(LEAKED, HARMLESS, true,
	  "clusters allocated in the file but not referenced",
	  "punch holes over them (only when the index has no damage)"),
	P(PARENT_MISSING, CORRUPT, false,
	  "parent layer cannot be opened",
	  "put the parent where the locator points, or fix the locator"),
	P(PARENT_UUID, CORRUPT, false,
	  "parent found by the locator has the wrong uuid",
	  "put the right parent where the locator points"),
	P(PARENT_GENERATION, CORRUPT, false,
	  "parent's generation differs from the one the child was made on",
	  "none automatic: the parent changed under its child"),
	P(PARENT_GEOMETRY, CORRUPT, false,
	  "parent's cluster or sub-block size differs from the child's",
	  "none automatic"),
	P(PARENT_SIZE, CORRUPT, false,
	  "parent is larger than its child",
	  "none automatic"),
	P(PARENT_NOT_SEALED, HARMLESS, false,
	  "parent has a child but is not sealed",
	  "seal the parent before any writable use of it"),
	P(CHAIN_CYCLE, CORRUPT, false,
	  "the chain loops back to a layer already in it",
	  "none automatic; fix a parent link by hand"),
	P(CHAIN_TOO_DEEP, CORRUPT, false,
	  "the chain is deeper than the supported maximum",
	  "merge layers to shorten the chain"),
	P(BASE_MISSING, CORRUPT, false,
	  "raw base image cannot be opened",
	  "put the base image where the locator points"),
};

const char *cowchain_severity_name(enum cowchain_severity s)
{
	switch (s) {
	case COWCHAIN_SEV_INFO:
		return "info";
	case COWCHAIN_SEV_HARMLESS:
		return "harmless";
	case COWCHAIN_SEV_CORRUPT:
		return "corruption";
	}
	return "?";
}
