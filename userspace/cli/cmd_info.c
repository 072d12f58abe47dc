// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain info: superblock fields, allocation, and optionally the chain. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <json.h>
#include "cli.h"

enum { O_CHAIN, O_JSON };

static const struct cli_option options[] = {
	[O_CHAIN] = { "chain", NULL, "describe every layer down to the root (and the raw base)" },
	[O_JSON]  = { "json", NULL, "machine-readable output" },
	{ NULL, NULL, NULL },
};

static const char *parent_kind_name(u32 k)
{
	return k == COWCHAIN_PARENT_LAYER ? "layer" : k == COWCHAIN_PARENT_RAW ? "raw" : "none";
}

static void flags_str(u32 f, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s%s", f & COWCHAIN_SB_SEALED ? "sealed " : "",
		 f & COWCHAIN_SB_AUTORESET ? "autoreset " : "",
		 f & COWCHAIN_SB_NEEDS_CHECK ? "needs-check " : "",
		 f & COWCHAIN_SB_MERGING ? "merging " : "");
	if (!buf[0])
		snprintf(buf, n, "active");
	else
		buf[strlen(buf) - 1] = 0;
}

static json_object *layer_json(const struct cowchain_layer *l, const struct cowchain_layer_stats *st,
			       int depth)
{
	const struct cowchain_sb *sb = cowchain_layer_sb(l);
	json_object *o = json_object_new_object(), *fl = json_object_new_array();
	char uuid[37];

	json_object_object_add(o, "file", json_object_new_string(cowchain_layer_path(l)));
	if (depth >= 0)
		json_object_object_add(o, "depth", json_object_new_int(depth));
	cowchain_uuid_str(sb->uuid, uuid);
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "version", json_object_new_int64(sb->version));
	json_object_object_add(o, "virtual_size", json_object_new_uint64(sb->virtual_size));
	json_object_object_add(o, "cluster_size", json_object_new_uint64(1ull << sb->cluster_shift));
	json_object_object_add(o, "subblock_size", json_object_new_uint64(1ull << sb->subblock_shift));
	json_object_object_add(o, "generation", json_object_new_uint64(sb->generation));
	json_object_object_add(o, "seq", json_object_new_uint64(sb->seq));
	if (sb->flags & COWCHAIN_SB_SEALED)
		json_object_array_add(fl, json_object_new_string("sealed"));
	if (sb->flags & COWCHAIN_SB_AUTORESET)
		json_object_array_add(fl, json_object_new_string("autoreset"));
	if (sb->flags & COWCHAIN_SB_NEEDS_CHECK)
		json_object_array_add(fl, json_object_new_string("needs-check"));
	if (sb->flags & COWCHAIN_SB_MERGING)
		json_object_array_add(fl, json_object_new_string("merging"));
	json_object_object_add(o, "flags", fl);
	json_object_object_add(o, "parent_kind", json_object_new_string(parent_kind_name(sb->parent_kind)));
	if (sb->parent_kind == COWCHAIN_PARENT_LAYER) {
		cowchain_uuid_str(sb->parent_uuid, uuid);
		json_object_object_add(o, "parent_uuid", json_object_new_string(uuid));
		json_object_object_add(o, "parent_generation", json_object_new_uint64(sb->parent_generation));
	}
	if (sb->locator_len)
		json_object_object_add(o, "locator",
				       json_object_new_string_len((const char *)sb->locator, (int)sb->locator_len));
	json_object_object_add(o, "compat", json_object_new_int64(sb->compat));
	json_object_object_add(o, "ro_compat", json_object_new_int64(sb->ro_compat));
	json_object_object_add(o, "incompat", json_object_new_int64(sb->incompat));
	json_object_object_add(o, "root_start", json_object_new_uint64(sb->root_start));
	json_object_object_add(o, "root_blocks", json_object_new_uint64(sb->root_blocks));
	json_object_object_add(o, "journal_start", json_object_new_uint64(sb->journal_start));
	json_object_object_add(o, "journal_blocks", json_object_new_uint64(sb->journal_blocks));
	json_object_object_add(o, "journal_head", json_object_new_uint64(sb->journal_head));
	json_object_object_add(o, "journal_seq", json_object_new_uint64(sb->journal_seq));
	json_object_object_add(o, "data_start", json_object_new_uint64(sb->data_start));
	json_object_object_add(o, "capacity", json_object_new_uint64(sb->capacity));
	json_object_object_add(o, "create_time", json_object_new_uint64(sb->create_time));
	if (sb->flags & COWCHAIN_SB_MERGING) {
		json_object_object_add(o, "merge_state", json_object_new_int64(sb->merge_state));
		json_object_object_add(o, "merge_cursor", json_object_new_uint64(sb->merge_cursor));
	}
	json_object_object_add(o, "allocated_clusters", json_object_new_uint64(st->data_clusters));
	json_object_object_add(o, "entries", json_object_new_uint64(st->entries));
	json_object_object_add(o, "present_subblocks", json_object_new_uint64(st->present_subblocks));
	json_object_object_add(o, "zero_subblocks", json_object_new_uint64(st->zero_subblocks));
	json_object_object_add(o, "map_blocks", json_object_new_uint64(st->map_blocks));
	json_object_object_add(o, "leaf_blocks", json_object_new_uint64(st->leaf_blocks));
	json_object_object_add(o, "metadata_clusters", json_object_new_uint64(st->meta_clusters));
	json_object_object_add(o, "free_clusters", json_object_new_uint64(st->free_clusters));
	json_object_object_add(o, "file_size", json_object_new_uint64(st->file_size));
	json_object_object_add(o, "disk_usage", json_object_new_uint64(st->disk_usage));
	json_object_object_add(o, "journal_replayed", json_object_new_uint64(st->replayed));
	return o;
}

static void layer_text(const struct cowchain_layer *l, const struct cowchain_layer_stats *st,
		       int depth)
{
	const struct cowchain_sb *sb = cowchain_layer_sb(l);
	char uuid[37], h[32], fl[64], tbuf[64];
	time_t t = (time_t)sb->create_time;
	struct tm tm;

	if (depth >= 0)
		printf("layer %d: %s\n", depth, cowchain_layer_path(l));
	else
		printf("file:              %s\n", cowchain_layer_path(l));
	cowchain_uuid_str(sb->uuid, uuid);
	flags_str(sb->flags, fl, sizeof(fl));
	printf("uuid:              %s\n", uuid);
	printf("format version:    %u\n", sb->version);
	printf("virtual size:      %" PRIu64 " (%s)\n", sb->virtual_size, cli_human(sb->virtual_size, h));
	printf("cluster size:      %" PRIu64 "\n", (u64)1 << sb->cluster_shift);
	printf("sub-block size:    %" PRIu64 "\n", (u64)1 << sb->subblock_shift);
	printf("generation:        %" PRIu64 "\n", sb->generation);
	printf("state:             %s\n", fl);
	if (sb->parent_kind == COWCHAIN_PARENT_LAYER) {
		cowchain_uuid_str(sb->parent_uuid, uuid);
		printf("parent:            %.*s (uuid %s, generation %" PRIu64 ")\n",
		       (int)sb->locator_len, (const char *)sb->locator, uuid, sb->parent_generation);
	} else if (sb->parent_kind == COWCHAIN_PARENT_RAW) {
		printf("parent:            raw base %.*s\n", (int)sb->locator_len, (const char *)sb->locator);
	} else {
		printf("parent:            none (root)\n");
	}
	if (gmtime_r(&t, &tm) && strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S UTC", &tm))
		printf("created:           %s\n", tbuf);
	printf("journal:           %" PRIu64 " blocks at block %" PRIu64 ", head %" PRIu64 ", seq %" PRIu64 "\n",
	       sb->journal_blocks, sb->journal_start, sb->journal_head, sb->journal_seq);
	printf("capacity:          %" PRIu64 " clusters, data from cluster %" PRIu64 ", %" PRIu64 " free\n",
	       sb->capacity, sb->data_start, st->free_clusters);
	printf("allocated:         %" PRIu64 " clusters (%" PRIu64 " sub-blocks stored, %" PRIu64 " marked zero)\n",
	       st->data_clusters, st->present_subblocks, st->zero_subblocks);
	printf("metadata:          %" PRIu64 " map blocks, %" PRIu64 " leaf blocks in %" PRIu64 " clusters\n",
	       st->map_blocks, st->leaf_blocks, st->meta_clusters);
	printf("disk usage:        %" PRIu64 " (file size %" PRIu64 ")\n", st->disk_usage, st->file_size);
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c = NULL;
	struct cowchain_layer *l = NULL;
	struct cowchain_layer_stats st;
	json_object *root = NULL, *arr = NULL;
	int ret = EXIT_FAIL;
	u32 n = 1, i;

	(void)cmd;
	if (a->set[O_CHAIN]) {
		if (cowchain_chain_open(a->pos[0], 0, &c, &err))
			return cli_lib_error(&err);
		n = cowchain_chain_depth(c);
	} else if (cowchain_layer_open(a->pos[0], 0, &l, &err)) {
		return cli_lib_error(&err);
	}
	if (a->set[O_JSON] && c) {
		root = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(root, "chain", arr);
	}
	for (i = 0; i < n; i++) {
		struct cowchain_layer *x = c ? cowchain_chain_layer(c, i) : l;

		if (cowchain_layer_stats(x, &st, &err)) {
			cli_lib_error(&err);
			goto out;
		}
		if (a->set[O_JSON] && c)
			json_object_array_add(arr, layer_json(x, &st, (int)i));
		else if (a->set[O_JSON])
			root = layer_json(x, &st, -1);
		else {
			if (i)
				printf("\n");
			layer_text(x, &st, c ? (int)i : -1);
		}
	}
	if (c && cowchain_chain_base(c, NULL)) {
		u64 bsize;
		const char *base = cowchain_chain_base(c, &bsize);

		if (root) {
			json_object *b = json_object_new_object();

			json_object_object_add(b, "file", json_object_new_string(base));
			json_object_object_add(b, "size", json_object_new_uint64(bsize));
			json_object_object_add(root, "base", b);
		} else {
			printf("\nraw base: %s (%" PRIu64 " bytes)\n", base, bsize);
		}
	}
	if (root)
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	ret = EXIT_OK;
out:
	json_object_put(root);
	cowchain_chain_close(c, NULL);
	cowchain_layer_close(l, NULL);
	return ret;
}

const struct cli_command cmd_info = {
	.name = "info",
	.handler = run,
	.synopsis = "FILE [--chain] [--json]",
	.summary = "show a layer's header fields and allocation, or the whole chain",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
