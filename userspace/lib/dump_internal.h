/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * What dump.c and dump_restore.c share (not installed, not a stable API).
 *
 * The text format lives in dump.c alone (its field tables, the JSON
 * emitter and the parser), so dump -> restore-dump -> dump cannot drift;
 * dump_restore.c only reads the text, hands the parsed document to
 * cc_dump_parse and writes what the emitter calls describe.
 */
#ifndef COWCHAIN_DUMP_INTERNAL_H
#define COWCHAIN_DUMP_INTERNAL_H

#include <stddef.h>
#include "dump.h"

struct json_object;
struct cowchain_error;

/*
 * Check the parsed dump top (from the file src, for messages) and make
 * the emitter calls it describes, in the order of struct cowchain_emitter.
 * where (wsize bytes, an empty string on entry) holds the path of the
 * object being parsed ("roots[0].maps[2]"), for the parser's messages and
 * the emitter's.  Returns 0 or the first negative errno (err filled).
 */
int cc_dump_parse(struct json_object *top, const struct cowchain_emitter *em,
		  char *where, size_t wsize, const char *src, struct cowchain_error *err);

#endif /* COWCHAIN_DUMP_INTERNAL_H */
