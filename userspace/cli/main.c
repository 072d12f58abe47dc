// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain: the command table, argument parsing and help.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

extern const struct cli_command cmd_check, cmd_dump, cmd_restore_dump;
extern const struct cli_command cmd_merge, cmd_flatten, cmd_compact;
extern const struct cli_command cmd_create, cmd_info, cmd_map, cmd_read, cmd_write;
extern const struct cli_command cmd_table, cmd_attach, cmd_detach, cmd_snapshot, cmd_restore,
	cmd_set, cmd_resize, cmd_tree, cmd_delete;

/* One line per command. */
static const struct cli_command *const commands[] = {
	&cmd_create,
	&cmd_info,
	&cmd_map,
	&cmd_read,
	&cmd_write,
	&cmd_attach,
	&cmd_detach,
	&cmd_table,
	&cmd_snapshot,
	&cmd_restore,
	&cmd_set,
	&cmd_resize,
	&cmd_tree,
	&cmd_delete,
	&cmd_merge,
	&cmd_flatten,
	&cmd_compact,
	&cmd_check,
	&cmd_dump,
	&cmd_restore_dump,
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cowchain: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

int cli_lib_error(const struct cowchain_error *err)
{
	return cli_error("%s", err->msg[0] ? err->msg : strerror(-err->code));
}

int cli_usage(const struct cli_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cowchain %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: cowchain %s %s\n", cmd->name, cmd->synopsis);
	fprintf(stderr, "Try 'cowchain %s --help' for more information.\n", cmd->name);
	return cmd->usage_status ? cmd->usage_status : EXIT_USAGE;
}

int cli_parse_size(const char *s, u64 *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
		end += 2;
	else if (shift && (*end == 'B' || *end == 'b'))
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (u64)v << shift;
	return 0;
}

int cli_opt_size(const struct cli_command *cmd, const struct cli_args *a, int idx,
		 u64 *out)
{
	if (cli_parse_size(a->val[idx], out))
		return cli_usage(cmd, "invalid size '%s' for --%s", a->val[idx],
				 cmd->options[idx].name);
	return 0;
}

int cli_opt_list(const struct cli_args *a, int idx, struct cli_list *l)
{
	char *tok, *save = NULL;

	memset(l, 0, sizeof(*l));
	if (!a->set[idx])
		return 0;
	l->buf = strdup(a->val[idx]);
	l->v = calloc(strlen(a->val[idx]) + 1, sizeof(*l->v));
	if (!l->buf || !l->v) {
		cli_list_free(l);
		return cli_error("out of memory");
	}
	for (tok = strtok_r(l->buf, ",:", &save); tok; tok = strtok_r(NULL, ",:", &save))
		l->v[l->n++] = tok;
	return 0;
}

void cli_list_free(struct cli_list *l)
{
	free(l->buf);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

const char *cli_human(u64 b, char buf[32])
{
	static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	int u = 0;

	while (u < 6 && b >= 1024 && !(b & 1023)) {
		b >>= 10;
		u++;
	}
	snprintf(buf, 32, "%" PRIu64 " %s", b, unit[u]);
	return buf;
}

void cli_test_pause(const char *path, const char *line)
{
	char tmp[4200];
	FILE *f;
	int i;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fputs(line, f);
	if (fclose(f) || rename(tmp, path))
		return;
	for (i = 0; i < 60000 && !access(path, F_OK); i++)
		usleep(10000);
}

static void print_command_help(const struct cli_command *cmd)
{
	const struct cli_option *o;

	printf("usage: cowchain %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->summary);
	printf("\noptions:\n");
	for (o = cmd->options; o && o->name; o++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		printf("  %-24s %s\n", left, o->help);
	}
	printf("  %-24s %s\n", "--help", "show this help");
}

static void print_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: cowchain COMMAND [options] ARGS\n\n"
		   "VirtualBox-style differencing disk images (cowchain layers).\n\ncommands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-13s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\n'cowchain COMMAND --help' describes one command.\n"
		   "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/* Returns -1 when --help was printed, else an exit code (0 = parsed). */
static int parse(const struct cli_command *cmd, int argc, char **argv, struct cli_args *a)
{
	struct option lo[CLI_MAX_OPTS + 2];
	int n = 0, c, help_idx;

	memset(a, 0, sizeof(*a));
	for (; cmd->options && cmd->options[n].name; n++) {
		lo[n].name = cmd->options[n].name;
		lo[n].has_arg = cmd->options[n].arg ? required_argument : no_argument;
		lo[n].flag = NULL;
		lo[n].val = 256 + n;
	}
	help_idx = n;
	lo[n++] = (struct option){ "help", no_argument, NULL, 256 + help_idx };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (c == 'h' || c == 256 + help_idx) {
			print_command_help(cmd);
			return -1;
		}
		if (c == ':')
			return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
		if (c == '?')
			return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
		if (a->set[c - 256] && cmd->options[c - 256].arg)
			return cli_usage(cmd, "option '--%s' given twice", cmd->options[c - 256].name);
		a->set[c - 256] = true;
		a->val[c - 256] = optarg;
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < cmd->min_pos)
		return cli_usage(cmd, "missing argument");
	if (a->npos > cmd->max_pos)
		return cli_usage(cmd, "unexpected argument '%s'", a->pos[cmd->max_pos]);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli_args a;
	size_t i;
	int r;

	if (argc < 2) {
		print_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		print_help(stdout);
		r = EXIT_OK;
		goto out;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i]->name))
			break;
	if (i == NCOMMANDS) {
		fprintf(stderr, "cowchain: '%s' is not a cowchain command. See 'cowchain --help'.\n",
			argv[1]);
		return EXIT_USAGE;
	}
	r = parse(commands[i], argc - 1, argv + 1, &a);
	if (r == EXIT_USAGE && !strcmp(commands[i]->name, "check"))
		r = 16;	/* check exits with the fsck bitmask: 16 = usage */
	if (r == -1)
		r = EXIT_OK;
	else if (r == 0)
		r = commands[i]->handler(commands[i], &a);
out:
	/* A full disk or closed pipe must not pass silently (git does the same). */
	if (fflush(stdout) || ferror(stdout)) {
		cli_error("cannot write to standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (fclose(stdout) && r == EXIT_OK) {
		cli_error("cannot write to standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return r;
}
