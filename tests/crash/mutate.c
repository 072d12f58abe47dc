// SPDX-License-Identifier: GPL-2.0-only
/*
 * mutate: make one hostile variant of a cowchain layer, in place.
 *
 *   mutate FILE SEED [--other-uuid HEX32]
 *
 * Finds the metadata blocks (any 4 KiB block starting with a cowchain
 * magic), picks one by SEED, picks a field of it at a field boundary
 * (header fields, every superblock field, a root/map pointer, a leaf
 * entry word, a journal descriptor entry), and changes it: a bit flip,
 * 0, all ones, +1, -1, a power of two, another field's value of the same
 * block (its own block number, the layer's UUID: pointers that point home,
 * a parent that is the layer itself), or the UUID given with --other-uuid
 * (a parent that is its own grandchild, when FILE is the parent).  Half of
 * the time the block's checksum is recomputed (FORMAT.md 3) so the change
 * reaches the validation behind the checksum.  Prints one line saying what
 * it did.  Exit 0, or 2 when FILE holds no metadata block.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096

static uint64_t rs;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static uint32_t crc_tab[256];
static uint32_t crc_update(uint32_t c, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		c = crc_tab[(c ^ *b++) & 0xff] ^ (c >> 8);
	return c;
}

static void recsum(unsigned char *blk)
{
	uint64_t blocknr;
	uint32_t c, zero = 0;
	int i, j;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78 : c >> 1;
		crc_tab[i] = c;
	}
	memcpy(&blocknr, blk + 8, 8);	/* le64 on x86: used as is */
	c = crc_update(0xFFFFFFFF, &blocknr, 8);
	c = crc_update(c, blk, 4);
	c = crc_update(c, &zero, 4);
	c = crc_update(c, blk + 8, BS - 8);
	c ^= 0xFFFFFFFF;
	memcpy(blk + 4, &c, 4);
}

struct field { unsigned int off, size; const char *name; };

static const struct field hdr[] = {
	{ 0, 4, "magic" }, { 8, 8, "blocknr" }, { 16, 8, "uuid" }, { 24, 8, "uuid+8" },
	{ 32, 8, "key" }, { 40, 4, "count" }, { 44, 4, "reserved" },
};
static const struct field sb[] = {
	{ 64, 4, "version" }, { 68, 4, "compat" }, { 72, 4, "ro_compat" },
	{ 76, 4, "incompat" }, { 80, 4, "flags" }, { 84, 4, "parent_kind" },
	{ 88, 4, "cluster_shift" }, { 92, 4, "subblock_shift" }, { 96, 8, "parent_uuid" },
	{ 104, 8, "parent_uuid+8" }, { 112, 8, "generation" }, { 120, 8, "parent_generation" },
	{ 128, 8, "virtual_size" }, { 136, 8, "root_start" }, { 144, 8, "root_blocks" },
	{ 152, 8, "journal_start" }, { 160, 8, "journal_blocks" }, { 168, 8, "journal_head" },
	{ 176, 8, "journal_seq" }, { 184, 8, "data_start" }, { 192, 8, "capacity" },
	{ 200, 8, "create_time" }, { 208, 8, "merge_cursor" }, { 216, 4, "merge_state" },
	{ 220, 4, "locator_len" }, { 224, 8, "merge_peer_uuid" }, { 240, 8, "reserved" },
	{ 512, 8, "locator" }, { 2560, 8, "tail" },
};

int main(int argc, char **argv)
{
	static const char *const magics[] = { "CCSB", "CCRT", "CCMP", "CCLF", "CCJD" };
	unsigned char blk[BS], other[16] = { 0 };
	uint64_t nblocks, *meta, nmeta = 0, b, v, old;
	struct field f;
	int fd, type = -1, i, how, fix;
	const char *what;
	char fname[64];
	struct stat st;

	if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--other-uuid"))) {
		fprintf(stderr, "usage: mutate FILE SEED [--other-uuid HEX32]\n");
		return 3;
	}
	if (argc == 5)
		for (i = 0; i < 16 && argv[4][2 * i] && argv[4][2 * i + 1]; i++)
			sscanf(argv[4] + 2 * i, "%2hhx", &other[i]);
	rs = strtoull(argv[2], NULL, 0) * 0x9e3779b97f4a7c15ULL + 7;
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st)) {
		perror(argv[1]);
		return 2;
	}
	nblocks = st.st_size / BS;
	meta = malloc(sizeof(*meta) * (nblocks + 1));
	for (b = 0; b < nblocks; b++) {
		off_t d = lseek(fd, b * BS, SEEK_DATA);	/* skip holes fast */

		if (d < 0)
			break;
		if ((uint64_t)d > b * BS) {
			b = d / BS - 1;
			continue;
		}
		if (pread(fd, blk, 4, b * BS) != 4)
			break;
		for (i = 0; i < 5; i++)
			if (!memcmp(blk, magics[i], 4))
				meta[nmeta++] = b;
	}
	if (!nmeta) {
		fprintf(stderr, "mutate: %s: no metadata block\n", argv[1]);
		return 2;
	}
	/* superblocks and the index are the interesting part: favour them */
	b = rnd() % 3 == 0 ? rnd() % 2 : meta[rnd() % nmeta];
	if (pread(fd, blk, BS, b * BS) != BS)
		return 2;
	for (i = 0; i < 5; i++)
		if (!memcmp(blk, magics[i], 4))
			type = i;
	if (type == 0 && rnd() % 4) {
		f = sb[rnd() % (sizeof(sb) / sizeof(sb[0]))];
	} else if (type < 0 || rnd() % 3 == 0) {
		f = hdr[rnd() % (sizeof(hdr) / sizeof(hdr[0]))];
	} else if (type == 3) {		/* leaf: 128 entries of phys, present, zero */
		i = rnd() % 128;
		f.off = 64 + 24 * i + 8 * (rnd() % 3);
		f.size = 8;
		f.name = f.off % 24 == 64 % 24 ? "leaf.phys" : (f.off - 64) % 24 == 8 ?
			 "leaf.present" : "leaf.zero";
		/* prefer entries in use */
		if (rnd() % 2)
			for (i = 0; i < 128; i++) {
				memcpy(&v, blk + 64 + 24 * i, 8);
				if (v) {
					f.off = 64 + 24 * i + (f.off - 64) % 24;
					break;
				}
			}
	} else if (type == 4) {		/* descriptor: 252 entries of home, csum */
		i = rnd() % 4;
		f.off = 64 + 16 * i + (rnd() % 2) * 8;
		f.size = f.off % 16 ? 4 : 8;
		f.name = f.off % 16 ? "jd.image_csum" : "jd.home";
	} else {			/* root, map: 256 pointers */
		i = rnd() % 256;
		if (rnd() % 2)
			for (i = 0; i < 256; i++) {
				memcpy(&v, blk + 64 + 8 * i, 8);
				if (v)
					break;
			}
		f.off = 64 + 8 * (i % 256);
		f.size = 8;
		f.name = "pointer";
	}
	old = 0;
	memcpy(&old, blk + f.off, f.size);
	how = rnd() % 10;
	switch (how) {
	case 0: v = old ^ (1ULL << (rnd() % (f.size * 8))); what = "bit flip"; break;
	case 1: v = 0; what = "zero"; break;
	case 2: v = ~0ULL; what = "all ones"; break;
	case 3: v = old + 1; what = "+1"; break;
	case 4: v = old - 1; what = "-1"; break;
	case 5: v = 1ULL << (rnd() % (f.size * 8)); what = "power of two"; break;
	case 6: memcpy(&v, blk + 8, 8); what = "own block number"; break;
	case 7: v = old ^ (1ULL << (f.size * 8 - 1)); what = "top bit"; break;
	case 8:
		if (f.size == 8 && (f.off == 96 || f.off == 104 || f.off == 16 || f.off == 24)) {
			memcpy(&v, (rnd() % 2 ? other : blk + 16) + (f.off % 16 == 8 ? 8 : 0), 8);
			what = "a uuid (self or --other-uuid)";
		} else {
			v = old * 2 + 1;
			what = "2x+1";
		}
		break;
	default: v = rnd(); what = "random"; break;
	}
	memcpy(blk + f.off, &v, f.size);
	fix = rnd() % 2;
	if (fix)
		recsum(blk);
	if (pwrite(fd, blk, BS, b * BS) != BS || fsync(fd)) {
		perror("write");
		return 2;
	}
	snprintf(fname, sizeof(fname), "%s", f.name);
	printf("block %" PRIu64 " %.4s %s@%u: %s (%#" PRIx64 " -> %#" PRIx64 ")%s\n", b,
	       type >= 0 ? magics[type] : "????", fname, f.off, what, old,
	       (uint64_t)(f.size == 8 ? v : (v & ((1ULL << (f.size * 8)) - 1))),
	       fix ? ", checksum recomputed" : "");
	return 0;
}
