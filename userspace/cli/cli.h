/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The cowchain tool's command framework.
 *
 * Adding a command: write cli/cmd_<name>.c defining
 *   const struct cli_command cmd_<name> = { name, handler, synopsis,
 *                                           summary, options, min, max };
 * and add one line "&cmd_<name>," to the table in cli/main.c.  Options are
 * declared once, in the command's cli_option array: the parser, --help and
 * the man page all come from it.  A handler gets parsed arguments, calls
 * the library and returns an exit code: 0 ok, 1 failure, 2 usage.
 */
#ifndef COWCHAIN_CLI_H
#define COWCHAIN_CLI_H

#include <stdbool.h>
#include "cowchain.h"

#define CLI_MAX_OPTS	24

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli_option {
	const char *name;	/* long name, without "--" */
	const char *arg;	/* metavariable if it takes a value, else NULL */
	const char *help;
};

struct cli_args {
	const char *val[CLI_MAX_OPTS];	/* by option index; NULL if absent */
	bool set[CLI_MAX_OPTS];
	char **pos;			/* positional arguments */
	int npos;
};

struct cli_command {
	const char *name;
	int (*handler)(const struct cli_command *cmd, struct cli_args *a);
	const char *synopsis;		/* after "cowchain NAME " */
	const char *summary;		/* one line */
	const struct cli_option *options;	/* NULL-name terminated */
	int min_pos, max_pos;		/* positional argument count */
	int usage_status;		/* exit code of a usage error; 0 = EXIT_USAGE */
};

/* "cowchain: <msg>" on stderr; returns EXIT_FAIL. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The library's message; returns EXIT_FAIL. */
int cli_lib_error(const struct cowchain_error *err);
/* "cowchain NAME: <msg>" + usage line on stderr; returns EXIT_USAGE. */
int cli_usage(const struct cli_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parse a size: digits (or 0x hex) with an optional K/M/G/T suffix (1024-based). */
int cli_parse_size(const char *s, u64 *out);
/* Option idx as a size; usage error naming the option if malformed. */
int cli_opt_size(const struct cli_command *cmd, const struct cli_args *a, int idx,
		 u64 *out);
/* A comma- (or colon-) separated option value, such as --search DIR[,DIR...]. */
struct cli_list {
	char *buf;
	const char **v;
	size_t n;
};
/* Option idx split into l (empty if absent); EXIT_FAIL with a message on no memory. */
int cli_opt_list(const struct cli_args *a, int idx, struct cli_list *l);
void cli_list_free(struct cli_list *l);
/* Human size: "1 GiB", "64 KiB", else bytes. */
const char *cli_human(u64 bytes, char buf[32]);
/*
 * The commands' test hooks (merge, attach; tests only, not a user
 * interface): create path holding line (through path.tmp and a rename), then
 * wait until path is removed, at most 600 s.  Does nothing if path cannot
 * be written.
 */
void cli_test_pause(const char *path, const char *line);

#endif /* COWCHAIN_CLI_H */
