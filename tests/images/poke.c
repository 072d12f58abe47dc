// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * poke: forge corruptions for the corrupt-image corpus (tests/images/).
 * A tiny xfs_db/debugfs: it edits bytes of a layer file and, where asked,
 * reseals the block's checksum (kernel/format.c) so the corruption is
 * exactly the one intended and not "bad checksum" as well.
 *
 *   poke set   FILE BLOCK OFF WIDTH VALUE   little-endian field, reseal
 *   poke bytes FILE BLOCK OFF HEX           raw bytes, reseal
 *   poke flip  FILE BYTE                    xor one byte with 0xff, no reseal
 *   poke copy  FILE SRC DST                 copy block SRC over block DST
 *   poke seal  FILE BLOCK [AS]              reseal BLOCK as if it lived at AS
 *   poke cursb FILE                         print the current superblock slot
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include "format.h"

static u8 blk[COWCHAIN_BLOCK_SIZE];

static void rd(int fd, u64 b)
{
	if (pread(fd, blk, sizeof(blk), (off_t)(b * COWCHAIN_BLOCK_SIZE)) != (ssize_t)sizeof(blk)) {
		perror("poke: read");
		exit(1);
	}
}

static void wrb(int fd, u64 b)
{
	if (pwrite(fd, blk, sizeof(blk), (off_t)(b * COWCHAIN_BLOCK_SIZE)) != (ssize_t)sizeof(blk)) {
		perror("poke: write");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: see the comment in tests/images/poke.c\n");
		return 2;
	}
	fd = open(argv[2], O_RDWR);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	if (!strcmp(argv[1], "set") && argc == 7) {
		u64 b = strtoull(argv[3], 0, 0), off = strtoull(argv[4], 0, 0);
		unsigned w = atoi(argv[5]);
		u64 v = strtoull(argv[6], 0, 0);

		rd(fd, b);
		for (unsigned i = 0; i < w; i++)
			blk[off + i] = (u8)(v >> (8 * i));
		cowchain_block_seal(blk, b);
		wrb(fd, b);
	} else if (!strcmp(argv[1], "bytes") && argc == 6) {
		u64 b = strtoull(argv[3], 0, 0), off = strtoull(argv[4], 0, 0);
		const char *h = argv[5];

		rd(fd, b);
		for (size_t i = 0; h[2 * i] && h[2 * i + 1]; i++) {
			unsigned x;

			sscanf(h + 2 * i, "%2x", &x);
			blk[off + i] = (u8)x;
		}
		cowchain_block_seal(blk, b);
		wrb(fd, b);
	} else if (!strcmp(argv[1], "flip") && argc == 4) {
		u64 off = strtoull(argv[3], 0, 0);
		u8 c;

		if (pread(fd, &c, 1, (off_t)off) != 1)
			return 1;
		c ^= 0xff;
		if (pwrite(fd, &c, 1, (off_t)off) != 1)
			return 1;
	} else if (!strcmp(argv[1], "copy") && argc == 5) {
		rd(fd, strtoull(argv[3], 0, 0));
		wrb(fd, strtoull(argv[4], 0, 0));
	} else if (!strcmp(argv[1], "seal") && (argc == 4 || argc == 5)) {
		u64 b = strtoull(argv[3], 0, 0);

		rd(fd, b);
		cowchain_block_seal(blk, argc == 5 ? strtoull(argv[4], 0, 0) : b);
		wrb(fd, b);
	} else if (!strcmp(argv[1], "cursb") && argc == 3) {
		struct cowchain_sb sb[2];
		struct cowchain_err e;
		int ok[2];

		for (int i = 0; i < 2; i++) {
			rd(fd, i);
			ok[i] = !cowchain_sb_unpack((void *)blk, i, 0, &sb[i], &e);
		}
		if (!ok[0] && !ok[1])
			return 1;
		printf("%d\n", !ok[0] ? 1 : !ok[1] ? 0 : sb[1].seq > sb[0].seq);
	} else {
		fprintf(stderr, "poke: bad command\n");
		return 2;
	}
	close(fd);
	return 0;
}
