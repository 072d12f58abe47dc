// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * tableload: the long tier of the hostile-table test (tests/stress/s-tables.sh).
 * Loads a list of cowchain tables ROUNDS times through libdevmapper, the
 * same ioctls dmsetup issues, without a process and a udev round trip per
 * load: 10,000 loads take minutes in the TCG guest instead of hours.
 *
 *   tableload NAME ROUNDS < LIST
 *
 * LIST has one step per line, fields separated by a tab:
 *   refuse LEN PARAMS   "0 LEN cowchain PARAMS" must be refused, and no
 *                       device NAME may be left behind
 *   accept LEN PARAMS   must be accepted; the device is removed at once
 *   any LEN PARAMS      either, but nothing may be left behind
 *   live LEN PARAMS     must be accepted; the device stays for the messages
 *   msg TEXT            sent to the live device; refusal allowed
 *   msgok TEXT          sent to the live device; must succeed
 *   end                 removes the live device
 * Prints the counts; exits 1 at the first step that breaks its rule (naming
 * the round, the line and what happened), 2 on a usage or list error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libdevmapper.h>

struct step {
	char kind[8];
	uint64_t len;
	char *text;
	unsigned lineno;
};

/* libdevmapper reports each refusal on stderr: thousands of lines. */
static void quiet(int level, const char *file, int line, int dm_errno, const char *f, ...)
{
	(void)level; (void)file; (void)line; (void)dm_errno; (void)f;
}

static bool run_task(int type, const char *name, uint64_t len, const char *params,
		     const char *msg)
{
	struct dm_task *dmt = dm_task_create(type);
	bool ok;

	if (!dmt) {
		fprintf(stderr, "tableload: out of memory\n");
		exit(2);
	}
	ok = dm_task_set_name(dmt, name);
	if (ok && params)
		ok = dm_task_add_target(dmt, 0, len, "cowchain", params);
	if (ok && msg)
		ok = dm_task_set_sector(dmt, 0) && dm_task_set_message(dmt, msg);
	ok = ok && dm_task_run(dmt);
	dm_task_destroy(dmt);
	return ok;
}

static int exists(const char *name)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_INFO);
	struct dm_info info;
	int r = -1;

	if (dmt && dm_task_set_name(dmt, name) && dm_task_run(dmt) &&
	    dm_task_get_info(dmt, &info))
		r = info.exists;
	if (dmt)
		dm_task_destroy(dmt);
	return r;
}

static void broke(unsigned round, const struct step *s, const char *what)
{
	fprintf(stderr, "tableload: round %u, line %u (%s %" PRIu64 " '%s'): %s\n",
		round, s->lineno, s->kind, s->len, s->text, what);
	exit(1);
}

static int read_list(struct step **out)
{
	char *line = NULL;
	size_t cap = 0, n = 0, max = 0;
	unsigned lineno = 0;
	struct step *v = NULL;

	while (getline(&line, &cap, stdin) > 0) {
		char *tab, *end;
		struct step s = { .lineno = ++lineno };

		line[strcspn(line, "\n")] = 0;
		if (!*line)
			continue;
		tab = strchr(line, '\t');
		if (tab)
			*tab++ = 0;
		if (strlen(line) >= sizeof(s.kind))
			goto bad;
		strcpy(s.kind, line);
		if (!strcmp(s.kind, "refuse") || !strcmp(s.kind, "accept") ||
		    !strcmp(s.kind, "any") || !strcmp(s.kind, "live")) {
			if (!tab)
				goto bad;
			errno = 0;
			s.len = strtoull(tab, &end, 10);
			if (errno || *end != '\t')
				goto bad;
			tab = end + 1;
		} else if (!strcmp(s.kind, "msg") || !strcmp(s.kind, "msgok")) {
			if (!tab)
				goto bad;
		} else if (strcmp(s.kind, "end")) {
			goto bad;
		}
		s.text = strdup(tab ? tab : "");
		if (n == max) {
			max = max ? 2 * max : 64;
			v = realloc(v, max * sizeof(*v));
		}
		if (!v || !s.text) {
			fprintf(stderr, "tableload: out of memory\n");
			exit(2);
		}
		v[n++] = s;
	}
	free(line);
	*out = v;
	return (int)n;
bad:
	fprintf(stderr, "tableload: list line %u is not a step\n", lineno);
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long refused = 0, accepted = 0, msgs = 0, msgs_refused = 0;
	struct step *v;
	unsigned round, rounds;
	const char *name;
	bool live = false;
	int n, i;

	if (argc != 3) {
		fprintf(stderr, "usage: tableload NAME ROUNDS < LIST\n");
		return 2;
	}
	name = argv[1];
	rounds = (unsigned)strtoul(argv[2], NULL, 10);
	dm_log_with_errno_init(quiet);
	n = read_list(&v);
	if (exists(name) != 0) {
		fprintf(stderr, "tableload: device %s exists or dm cannot be asked\n", name);
		return 2;
	}
	for (round = 1; round <= rounds; round++) {
		for (i = 0; i < n; i++) {
			const struct step *s = &v[i];
			bool ok;

			if (!strcmp(s->kind, "end")) {
				if (!live || !run_task(DM_DEVICE_REMOVE, name, 0, NULL, NULL))
					broke(round, s, "cannot remove the live device");
				live = false;
				continue;
			}
			if (!strcmp(s->kind, "msg") || !strcmp(s->kind, "msgok")) {
				if (!live)
					broke(round, s, "no live device");
				ok = run_task(DM_DEVICE_TARGET_MSG, name, 0, NULL, s->text);
				msgs++;
				msgs_refused += !ok;
				if (!ok && !strcmp(s->kind, "msgok"))
					broke(round, s, "message refused");
				continue;
			}
			if (live)
				broke(round, s, "a table load while the live device exists");
			ok = run_task(DM_DEVICE_CREATE, name, s->len, s->text, NULL);
			if (ok) {
				accepted++;
				if (!strcmp(s->kind, "refuse"))
					broke(round, s, "accepted");
				if (!strcmp(s->kind, "live")) {
					live = true;
					continue;
				}
				if (!run_task(DM_DEVICE_REMOVE, name, 0, NULL, NULL))
					broke(round, s, "cannot remove the accepted device");
			} else {
				refused++;
				if (!strcmp(s->kind, "accept") || !strcmp(s->kind, "live"))
					broke(round, s, "refused");
			}
			if (exists(name) != 0)
				broke(round, s, "a device is left behind");
		}
	}
	if (live)
		run_task(DM_DEVICE_REMOVE, name, 0, NULL, NULL);
	printf("tableload: %u rounds of %d steps: %lu tables refused, %lu accepted, "
	       "%lu messages (%lu refused)\n", rounds, n, refused, accepted, msgs, msgs_refused);
	return 0;
}
