/*
 * args.c - a Redis command's argument vector, built one argument at a time.
 *
 * How: three parallel arrays (pointers, lengths, and an ARG_SLOT-byte slot
 * per argument for what arg_f and arg_i print) grown by doubling; strings
 * and byte buffers are borrowed, printed argument i lives in slot i (so
 * growing re-points exactly those, found by equality before the old slots
 * are freed). An
 * allocation failure makes the vector invalid (n = -1) and every later
 * call a no-op, so builders check once, when the command is sent
 * (rconn_cmd answers -ENOMEM).
 *
 * A script call (arg_eval) is EVALSHA by its hash; arg_eval_source turns
 * it into EVAL with the source when the server answers NOSCRIPT (call.c).
 *
 * What not: no copying of borrowed buffers, no printed argument longer
 * than a slot (a programmer error: BUG()), no limit on the number of
 * arguments.
 */
#include "rconn_i.h"
#include "semlog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_release(struct args *a)
{
	free(a->v);
	free(a->l);
	free(a->num);
	memset(a, 0, sizeof(*a));
}

static int args_grow(struct args *a)
{
	int cap = a->cap ? a->cap * 2 : 32;
	const char **v = realloc(a->v, sizeof(*v) * (size_t)cap);
	char (*num)[ARG_SLOT];

	if (!v)
		return -ENOMEM;
	a->v = v;
	size_t *l = realloc(a->l, sizeof(*l) * (size_t)cap);
	if (!l)
		return -ENOMEM;
	a->l = l;
	num = malloc(sizeof(*num) * (size_t)cap);
	if (!num)
		return -ENOMEM;
	/* a printed argument i lives in slot i: re-point those while the old
	 * slots are still allocated */
	for (int i = 0; i < a->n; i++)
		if (a->v[i] == a->num[i]) {
			memcpy(num[i], a->num[i], ARG_SLOT);
			a->v[i] = num[i];
		}
	free(a->num);
	a->num = num;
	a->cap = cap;
	return 0;
}

void arg_b(struct args *a, const void *p, size_t len)
{
	if (a->n < 0 || (a->n == a->cap && args_grow(a))) {
		a->n = -1;
		return;
	}
	a->v[a->n] = p ? p : "";
	a->l[a->n++] = p ? len : 0;
}

void arg_s(struct args *a, const char *s) { arg_b(a, s, strlen(s)); }

void arg_f(struct args *a, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (a->n < 0 || (a->n == a->cap && args_grow(a))) {
		a->n = -1;
		return;
	}
	va_start(ap, fmt);
	len = vsnprintf(a->num[a->n], ARG_SLOT, fmt, ap);
	va_end(ap);
	if (len < 0 || len >= ARG_SLOT)
		BUG("command argument '%s' does not fit %d bytes", fmt, ARG_SLOT);
	a->v[a->n] = a->num[a->n];
	a->l[a->n++] = (size_t)len;
}

void arg_i(struct args *a, int64_t v) { arg_f(a, "%lld", (long long)v); }

void arg_eval(struct args *a, const char *script, const char *sha, int nkeys)
{
	arg_s(a, "EVALSHA");
	arg_f(a, "%s", sha);
	arg_i(a, nkeys);
	if (a->n >= 0)
		a->script = script;
}

int arg_eval_source(struct args *a)
{
	if (a->n < 2 || !a->script || a->l[0] != 7 ||
	    memcmp(a->v[0], "EVALSHA", 7))
		return -ENOENT;
	a->v[0] = "EVAL";
	a->l[0] = 4;
	a->v[1] = a->script;   /* borrowed, not a slot: args_grow leaves it */
	a->l[1] = strlen(a->script);
	a->script = NULL;
	return 0;
}
