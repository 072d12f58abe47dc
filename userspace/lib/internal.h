/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Library internals shared by the lib/ sources (and by the unit tests, which poke
 * at layouts to corrupt them).  Not installed, not a stable API.
 */
#ifndef COWCHAIN_INTERNAL_H
#define COWCHAIN_INTERNAL_H

#include "cowchain.h"
#include "journal.h"

/* ---- errors (err.c) ---------------------------------------------------- */

int cc_fail(struct cowchain_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* err->msg = "'path': " + fmt; returns code. */
int cc_failf(struct cowchain_error *err, int code, const char *path,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "'path': " + format.c message. */
int cc_fail_fmt(struct cowchain_error *err, int code, const char *path,
		const struct cowchain_err *ferr);

/* ---- hash tables (index.c) --------------------------------------------- */

/* A 4 KiB index block held in memory. */
struct cc_block {
	struct cc_block *next;		/* hash chain by (kind, key) */
	struct cc_block *bnext;		/* hash chain by blocknr */
	enum cowchain_block_kind kind;
	u64 key;			/* first vcluster covered */
	u64 blocknr;			/* home */
	bool dirty;			/* changed since the last commit */
	union {
		u8 raw[COWCHAIN_BLOCK_SIZE];
		struct cowchain_ptr_disk ptr;
		struct cowchain_leaf_disk leaf;
	} *img;
};

struct cc_btab {
	struct cc_block **by_key;
	struct cc_block **by_nr;
	size_t nbuckets, count;
};

/* Used physical clusters: value is 0 for data, else metadata blocks in it. */
struct cc_cent {
	u64 phys;
	u64 owner;		/* data: the vcluster using it (for messages) */
	u32 meta;		/* metadata blocks living in the cluster */
	bool is_meta;
	bool used;
};

struct cc_ctab {
	struct cc_cent *slots;	/* open addressing, linear probing */
	size_t nslots, count;
};

/* An image committed since the last checkpoint (FORMAT.md 7). */
struct cc_pending {
	u64 home;
	u8 img[COWCHAIN_BLOCK_SIZE];
};

struct cowchain_layer {
	char *path;
	int fd;
	bool writable, nobump, bumped;
	bool merging;			/* COWCHAIN_OPEN_MERGE */
	struct cowchain_sb sb;
	u64 dev_blocks;
	u64 vclusters;
	u64 bpc;			/* metadata blocks per cluster */
	u32 subblocks;

	struct cc_block **root;		/* root_blocks entries */
	struct cc_btab blocks;		/* maps and leaves */
	struct cc_ctab used;		/* used physical clusters */
	u64 alloc_cursor;		/* next cluster to try */
	u64 meta_open;			/* metadata cluster being filled, 0 = none */

	u64 *pending_free;		/* data clusters freed since the last commit */
	size_t npending_free, cap_pending_free;

	/* journal state */
	u64 jhead, jseq_head;		/* oldest transaction not checkpointed */
	u64 jtail, jseq;		/* where and with which seq the next goes */
	bool jempty;
	struct cc_pending *ckpt;	/* committed, not yet checkpointed */
	size_t nckpt, cap_ckpt;
	u64 replayed;

	/* replayed images (read-only open): home -> image */
	struct cc_pending *overlay;
	size_t noverlay, cap_overlay;
	bool failed;			/* an I/O error left memory ahead of disk */
};

/* index.c */
struct cc_block *cc_btab_find(const struct cc_btab *t, enum cowchain_block_kind k, u64 key);
struct cc_block *cc_btab_find_nr(const struct cc_btab *t, u64 blocknr);
int cc_btab_insert(struct cc_btab *t, struct cc_block *b);
void cc_btab_free(struct cc_btab *t);
struct cc_cent *cc_ctab_find(const struct cc_ctab *t, u64 phys);
struct cc_cent *cc_ctab_add(struct cc_ctab *t, u64 phys);	/* NULL: ENOMEM */
void cc_ctab_del(struct cc_ctab *t, u64 phys);
void cc_ctab_free(struct cc_ctab *t);
int cc_index_load(struct cowchain_layer *l, struct cowchain_error *err);
/* The leaf holding c, or NULL. */
struct cc_block *cc_leaf_of(const struct cowchain_layer *l, u64 c);
/* The leaf holding c, created (with its map) if needed. */
int cc_leaf_get(struct cowchain_layer *l, u64 c, struct cc_block **out,
		struct cowchain_error *err);
struct cc_block *cc_block_new(enum cowchain_block_kind kind, u64 key, u64 blocknr);
void cc_block_free(struct cc_block *b);
/* Sorted array of the blocks of one kind (caller frees). */
struct cc_block **cc_blocks_sorted(const struct cowchain_layer *l,
				   enum cowchain_block_kind kind, size_t *n);

/* alloc.c */
int cc_alloc_data(struct cowchain_layer *l, u64 *phys, struct cowchain_error *err);
int cc_alloc_meta(struct cowchain_layer *l, u64 *blocknr, struct cowchain_error *err);
int cc_free_data(struct cowchain_layer *l, u64 phys, struct cowchain_error *err);
void cc_release_pending(struct cowchain_layer *l);

/* journal_io.c */
int cc_read_block(struct cowchain_layer *l, u64 blocknr, void *buf,
		  struct cowchain_error *err);
int cc_journal_replay(struct cowchain_layer *l, struct cowchain_error *err);
int cc_sb_write(struct cowchain_layer *l, struct cowchain_error *err);
int cc_prepare_write(struct cowchain_layer *l, struct cowchain_error *err);

/* create.c */
char *cc_dirname(const char *path);
/* sb->locator = target's path relative to the directory of child. */
int cc_set_locator(struct cowchain_sb *sb, const char *target, const char *child,
		   struct cowchain_error *err);

/* io helpers (err.c) */
int cc_pread(int fd, void *buf, size_t len, u64 off);
int cc_pwrite(int fd, const void *buf, size_t len, u64 off);
/*
 * The size of what fd is open on: a regular file's length or a block
 * device's size, *is_reg (if not NULL) saying which.  Returns 0, -EISDIR
 * for a directory, -EINVAL for any other kind of file, or the -errno of a
 * failed fstat or BLKGETSIZE64.
 */
int cc_fd_size(int fd, u64 *size, bool *is_reg);
/*
 * Test hook: when set, called before every write the library issues
 * (cc_pwrite, and each data copy, hole punch and unlink of lib/merge.c), so
 * crash tests can kill the process at the Nth write.  NULL in production.
 */
extern void (*cc_io_hook)(void);
static inline void cc_io_step(void)
{
	if (cc_io_hook)
		cc_io_hook();
}
int cc_random(void *buf, size_t len);

#endif /* COWCHAIN_INTERNAL_H */
