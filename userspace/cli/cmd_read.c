// SPDX-License-Identifier: GPL-2.0-only OR MIT
/* cowchain read: bytes of the virtual disk, through the chain, to stdout or a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

enum { O_OFFSET, O_LENGTH, O_OUTPUT };

static const struct cli_option options[] = {
	[O_OFFSET] = { "offset", "N", "first byte of the virtual disk to read" },
	[O_LENGTH] = { "length", "N", "bytes to read" },
	[O_OUTPUT] = { "output", "OUT", "write to OUT instead of standard output" },
	{ NULL, NULL, NULL },
};

#define CHUNK (1u << 20)

static int run(const struct cli_command *cmd, struct cli_args *a)
{
	struct cowchain_error err = { 0 };
	struct cowchain_chain *c = NULL;
	u64 off, len;
	int fd = STDOUT_FILENO, r, ret = EXIT_FAIL;
	u8 *buf = NULL;

	if (!a->set[O_OFFSET] || !a->set[O_LENGTH])
		return cli_usage(cmd, "--offset and --length are required");
	if ((r = cli_opt_size(cmd, a, O_OFFSET, &off)) || (r = cli_opt_size(cmd, a, O_LENGTH, &len)))
		return r;
	if (cowchain_chain_open(a->pos[0], 0, &c, &err))
		return cli_lib_error(&err);
	if (off > cowchain_chain_size(c) || len > cowchain_chain_size(c) - off) {
		cli_error("'%s': range %llu+%llu lies outside the virtual disk (%llu bytes)",
			  a->pos[0], (unsigned long long)off, (unsigned long long)len,
			  (unsigned long long)cowchain_chain_size(c));
		goto out;
	}
	if (a->set[O_OUTPUT]) {
		fd = open(a->val[O_OUTPUT], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			cli_error("cannot open '%s': %s", a->val[O_OUTPUT], strerror(errno));
			goto out;
		}
	}
	buf = malloc(CHUNK);
	if (!buf) {
		cli_error("out of memory");
		goto out;
	}
	while (len) {
		u64 n = len < CHUNK ? len : CHUNK;
		u8 *p = buf;
		u64 left = n;

		if (cowchain_read(c, buf, off, n, &err)) {
			cli_lib_error(&err);
			goto out;
		}
		while (left) {
			ssize_t w = write(fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				cli_error("cannot write to '%s': %s",
					  a->set[O_OUTPUT] ? a->val[O_OUTPUT] : "standard output",
					  w < 0 ? strerror(errno) : "short write");
				goto out;
			}
			p += w;
			left -= (u64)w;
		}
		off += n;
		len -= n;
	}
	ret = EXIT_OK;
out:
	free(buf);
	if (fd != STDOUT_FILENO && fd >= 0 && close(fd) && ret == EXIT_OK)
		ret = cli_error("cannot write to '%s': %s", a->val[O_OUTPUT], strerror(errno));
	if (cowchain_chain_close(c, &err) && ret == EXIT_OK)
		ret = cli_lib_error(&err);
	return ret;
}

const struct cli_command cmd_read = {
	.name = "read",
	.handler = run,
	.synopsis = "FILE --offset N --length N [--output OUT]",
	.summary = "read bytes of the virtual disk through the chain",
	.options = options,
	.min_pos = 1,
	.max_pos = 1,
};
