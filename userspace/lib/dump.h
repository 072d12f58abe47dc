/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * cowchain dump / restore-dump: a layer's metadata as JSON and back.
 *
 * Both directions go through one emitter interface (thin_dump/thin_restore
 * are the model):
 *
 *   dump:          layer file --(tolerant walker, check_walk.c)--> JSON emitter
 *   restore-dump:  JSON text  --(parser)----------------------> disk emitter
 *
 * and the JSON emitter and the parser use one field table for the
 * superblock and one for cluster entries, so the text format cannot drift
 * between them: dump -> restore-dump -> dump is byte-identical.  The
 * format is docs/check.md ("dump format").
 *
 * restore-dump writes metadata only: both superblock slots, the root
 * table, the map and leaf blocks named in the dump, and an empty journal.
 * It never writes a data cluster, and it refuses a dump whose metadata
 * would be invalid (each block is checked with kernel/format.c before any
 * write) or whose metadata blocks would land in a data cluster.
 */
#ifndef COWCHAIN_DUMP_H
#define COWCHAIN_DUMP_H

#include <stdbool.h>
#include <stdio.h>
#include "format.h"

struct cowchain_error;
struct cowchain_check_report;

/*
 * Called in layout order: superblock, then for each root block its map
 * blocks in slot order, for each map its leaves in slot order, for each
 * leaf its non-empty entries in order.  kind: 0 root, 1 map, 2 leaf.
 * Each returns 0 or a negative errno (with err filled) to stop.
 */
struct cowchain_emitter {
	void *ctx;
	int (*superblock)(void *ctx, const struct cowchain_sb *sb);
	int (*begin_block)(void *ctx, int kind, unsigned slot, u64 blocknr, u64 key);
	int (*end_block)(void *ctx, int kind);
	int (*entry)(void *ctx, u64 vcluster, const struct cowchain_entry *e);
	int (*end)(void *ctx);
};

/*
 * Dump the layer at path as JSON to out.  Damaged blocks and entries are
 * left out and listed in rep (as cowchain check would report them); the
 * caller decides what to say.  Returns 0, or a negative errno if the
 * layer has no valid superblock or cannot be read (err says why).
 */
int cowchain_dump(const char *path, FILE *out, struct cowchain_check_report *rep,
		  struct cowchain_error *err);

struct cowchain_restore_opts {
	bool force;		/* the target exists: overwrite its metadata */
};

/*
 * Write the metadata described by the JSON dump at dump_path ("-" for
 * stdin) into the layer file at path, creating it (sparse, capacity
 * clusters) if it does not exist.  Returns 0 or a negative errno.
 */
int cowchain_restore_dump(const char *dump_path, const char *path,
			  const struct cowchain_restore_opts *opts,
			  struct cowchain_error *err);

#endif /* COWCHAIN_DUMP_H */
