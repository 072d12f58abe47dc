// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain write: change the top layer of a chain, with the semantics of
 * FORMAT.md 6: data from a file or a repeated byte, write-zeroes (zero
 * markers) or discard.  The change is committed and checkpointed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

enum { O_OFFSET, O_LENGTH, O_INPUT, O_PATTERN, O_ZERO, O_DISCARD };

static const struct cli_option options[] = {
	[O_OFFSET]  = { "offset", "N", "first byte of the virtual disk to change" },
	[O_LENGTH]  = { "length", "N", "bytes to change (with --input: at most N, default all of IN)" },
	[O_INPUT]   = { "input", "IN", "write the contents of IN ('-' for standard input)" },
	[O_PATTERN] = { "pattern", "BYTE", "write BYTE (0..255, or 0xNN) repeated" },
	[O_ZERO]    = { "zero", NULL, "write zeroes (zero markers on whole sub-blocks)" },
	[O_DISCARD] = { "discard", NULL, "discard (zero markers on whole sub-blocks, partial ones unchanged)" },
	{ NULL, NULL, NULL },
};

#define CHUNK (1u << 20)

static int write_input(struct cowchain_chain *c, const char *in, u64 off, u64 len,
		       bool has_len, struct cowchain_error *err)
{
	int fd = strcmp(in, "-") ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	u8 *buf = malloc(CHUNK);
	int ret = EXIT_FAIL;

	if (fd < 0) {
		cli_error("cannot open '%s': %s", in, strerror(errno));
		goto out;
	}
	if (!buf) {
		cli_error("out of memory");
		goto out;
	}
	while (!has_len || len) {
		size_t want = has_len && len < CHUNK ? (size_t)len : CHUNK, got = 0;

		while (got < want) {
			ssize_t n = read(fd, buf + got, want - got);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				cli_error("cannot read '%s': %s", in, strerror(errno));
				goto out;
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		if (!got)
			break;
		if (cowchain_write(c, buf, off, got, err)) {
			cli_lib_error(err);
			goto out;
		}
		off += got;
		len -= got;
		if (got < want)
			break;
	}
	if (has_len && len) {
		cli_error("'%s': input ended %llu bytes short of --length", in,
			  (unsigned long long)len);
		goto out;
	}
	ret = EXIT_OK;
out:
	free(buf);
	if (fd > STDIN_FILENO)
		close(fd);
	return ret;
}

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c = NULL;
	int modes = a->set[O_INPUT] + a->set[O_PATTERN] + a->set[O_ZERO] + a->set[O_DISCARD];
	u64 off, len = 0, pattern = 0;
	int r, ret = EXIT_FAIL;

	if (modes != 1)
		return cli_usage(cmd, "give exactly one of --input, --pattern, --zero, --discard");
	if (!a->set[O_OFFSET])
		return cli_usage(cmd, "--offset is required");
	if (!a->set[O_INPUT] && !a->set[O_LENGTH])
		return cli_usage(cmd, "--length is required");
	if ((r = cli_opt_size(cmd, a, O_OFFSET, &off)))
		return r;
	if (a->set[O_LENGTH] && (r = cli_opt_size(cmd, a, O_LENGTH, &len)))
		return r;
	if (a->set[O_PATTERN] && (cli_parse_size(a->val[O_PATTERN], &pattern) || pattern > 255))
		return cli_usage(cmd, "--pattern takes a byte value 0..255, not '%s'", a->val[O_PATTERN]);

	if (cowchain_chain_open(a->pos[0], COWCHAIN_OPEN_WRITE, &c, &err))
		return cli_lib_error(&err);
	if (off > cowchain_chain_size(c) ||
	    (a->set[O_LENGTH] && len > cowchain_chain_size(c) - off)) {
		cli_error("'%s': range %llu+%llu lies outside the virtual disk (%llu bytes)",
			  a->pos[0], (unsigned long long)off, (unsigned long long)len,
			  (unsigned long long)cowchain_chain_size(c));
		goto out;
	}
	if (a->set[O_INPUT]) {
		ret = write_input(c, a->val[O_INPUT], off, len, a->set[O_LENGTH], &err);
	} else if (a->set[O_PATTERN]) {
		u8 *buf = malloc(CHUNK);

		if (!buf) {
			cli_error("out of memory");
			goto out;
		}
		memset(buf, (int)pattern, CHUNK);
		ret = EXIT_OK;
		while (len && ret == EXIT_OK) {
			u64 n = len < CHUNK ? len : CHUNK;

			if (cowchain_write(c, buf, off, n, &err))
				ret = cli_lib_error(&err);
			off += n;
			len -= n;
		}
		free(buf);
	} else {
		r = a->set[O_ZERO] ? cowchain_write_zeroes(c, off, len, &err)
				   : cowchain_discard(c, off, len, &err);
		ret = r ? cli_lib_error(&err) : EXIT_OK;
	}
out:
	if (cowchain_chain_close(c, &err) && ret == EXIT_OK)
		ret = cli_lib_error(&err);
	return ret;
}

const struct cli_command cmd_write = {
	.name = "write",
	.handler = run,
	.synopsis = "FILE --offset N (--input IN [--length N] | --pattern BYTE --length N | --zero --length N | --discard --length N)",
	.summary = "change the top layer: write data, a byte pattern, zeroes, or discard",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
