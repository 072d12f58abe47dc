// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * cowchain check: the report (see check.h for its shape).
 *
 * Why the report is its own file: it is the one thing every part of the
 * check touches.  The walk adds findings to it (cc_report), the repair
 * pass looks findings up and marks them fixed, the driver decides from it
 * whether an interrupted merge may be finished, and the CLI turns it into
 * wording, counts, JSON and the exit status.  Keeping those queries here,
 * next to the container, keeps their rules in one place:
 *
 *  - a finding's count is at least 1, its detail is truncated to fit;
 *  - adding a finding never fails the check: out of memory, the finding
 *    is dropped and the check goes on;
 *  - INFO findings never count as problems, in the exit status or when
 *    deciding whether anything is "left uncorrected";
 *  - a corruption of the index (CK_ROOT_BAD .. CK_DATA_META_OVERLAP) is
 *    also counted in the walker: leaks are not punched over a damaged index.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check_internal.h"

static int rep_add(struct cowchain_check_report *rep, unsigned layer,
		   enum cowchain_problem code, unsigned long long count,
		   const char *fmt, va_list ap)
{
	struct cowchain_finding *f;

	if (rep->n == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 16;
		void *p = realloc(rep->f, cap * sizeof(*rep->f));

		if (!p)
			return -ENOMEM;
		rep->f = p;
		rep->cap = cap;
	}
	f = &rep->f[rep->n++];
	memset(f, 0, sizeof(*f));
	f->code = code;
	f->layer = layer;
	f->count = count ? count : 1;
	vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
	return 0;
}

void cc_report(struct walker *w, enum cowchain_problem code,
	       unsigned long long count, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rep_add(w->cx->rep, w->layer, code, count, fmt, ap);
	va_end(ap);
	if (code >= CK_ROOT_BAD && code <= CK_DATA_META_OVERLAP)
		w->index_damage++;
}

int cc_report_layer(struct cowchain_check_report *rep, const char *path)
{
	char **p = realloc(rep->layers, (rep->nlayers + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	rep->layers = p;
	p[rep->nlayers] = strdup(path);
	if (!p[rep->nlayers])
		return -ENOMEM;
	return rep->nlayers++;
}

bool cc_uncorrected_besides(const struct cowchain_check_report *rep,
			    enum cowchain_problem except)
{
	size_t i;

	/* An interrupted merge is finished after these repairs (finish_merge). */
	for (i = 0; i < rep->n; i++)
		if (!rep->f[i].fixed && rep->f[i].code != except &&
		    rep->f[i].code != CK_SB_MERGING &&
		    cowchain_problems[rep->f[i].code].severity != COWCHAIN_SEV_INFO)
			return true;
	return false;
}

void cc_mark_fixed(struct cowchain_check_report *rep, unsigned layer,
		   enum cowchain_problem code)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		if (rep->f[i].layer == layer && rep->f[i].code == code)
			rep->f[i].fixed = true;
}

bool cc_report_has(const struct cowchain_check_report *rep, unsigned layer,
		   enum cowchain_problem code)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		if (rep->f[i].layer == layer && rep->f[i].code == code)
			return true;
	return false;
}

/* The layer-0 finding of code, or NULL. */
struct cowchain_finding *cc_report_finding(struct cowchain_check_report *rep,
					   enum cowchain_problem code)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		if (rep->f[i].layer == 0 && rep->f[i].code == code)
			return &rep->f[i];
	return NULL;
}

/* Append to a finding's detail (truncated to fit, like the rest of it). */
void cc_add_detail(struct cowchain_finding *f, const char *fmt, ...)
{
	size_t len = strlen(f->detail);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->detail + len, sizeof(f->detail) - len, fmt, ap);
	va_end(ap);
}

void cowchain_check_report_free(struct cowchain_check_report *rep)
{
	unsigned i;

	for (i = 0; i < rep->nlayers; i++)
		free(rep->layers[i]);
	free(rep->layers);
	free(rep->f);
	memset(rep, 0, sizeof(*rep));
}

int cowchain_check_status(const struct cowchain_check_report *rep)
{
	int st = 0;
	size_t i;

	for (i = 0; i < rep->n; i++) {
		if (cowchain_problems[rep->f[i].code].severity == COWCHAIN_SEV_INFO)
			continue;
		st |= rep->f[i].fixed ? 1 : 4;
	}
	return st;
}
