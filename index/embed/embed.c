/*
 * embed.c - pick an embedder by the policy of a category.
 *
 * A small table maps spec strings (an exact name, or a prefix such as
 * "model2vec:" followed by an argument) to constructors. It also holds the
 * thread-local last-error message every embedder reports through. This file
 * does not embed anything itself and keeps no other state.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "embed.h"
#include "use_lite.h"

static _Thread_local char last_error[EMBED_ERR_MAX];

const char *embedder_last_error(void)
{
	return last_error;
}

void embed_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

void embed_clear_error(void)
{
	last_error[0] = '\0';
}

static int create_builtin(const struct policy *p, const char *arg,
			  struct embedder **out, char *err, size_t errlen)
{
	int ret = embed_builtin_new(out);

	if (ret < 0)
		snprintf(err, errlen, "cannot create embedder 'builtin': %s",
			 strerror(-ret));
	return ret;
}

static int create_model2vec(const struct policy *p, const char *arg,
			    struct embedder **out, char *err, size_t errlen)
{
	return embed_model2vec_new(arg, out, err, errlen);
}

static int create_http(const struct policy *p, const char *arg,
		       struct embedder **out, char *err, size_t errlen)
{
	return embed_http_new(p, out, err, errlen);
}

/* "use-lite" (arg "": the compiled-in directory) or "use-lite:/DIR" */
static int create_use_lite(const struct policy *p, const char *arg,
			   struct embedder **out, char *err, size_t errlen)
{
	return embed_use_lite_new(*arg ? arg : NULL, out, err, errlen);
}

struct embedder_kind {
	const char *spec;
	int prefix;     /* spec is "name:" and the rest is the argument */
	int (*create)(const struct policy *p, const char *arg,
		      struct embedder **out, char *err, size_t errlen);
};

static const struct embedder_kind embedder_kinds[] = {
	{ "builtin", 0, create_builtin },
	{ "model2vec:", 1, create_model2vec },
	{ "http", 0, create_http },
	{ "use-lite", 0, create_use_lite },
	{ "use-lite:", 1, create_use_lite },
};

#define N_KINDS (sizeof(embedder_kinds) / sizeof(embedder_kinds[0]))

int embedder_new(const struct policy *p, struct embedder **out, char *err,
		 size_t errlen)
{
	char dummy[EMBED_ERR_MAX];
	const char *spec = p->embedder;
	size_t i, n;
	int ret;

	*out = NULL;
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	for (i = 0; i < N_KINDS; i++) {
		const struct embedder_kind *k = &embedder_kinds[i];

		n = strlen(k->spec);
		if (k->prefix ? strncmp(spec, k->spec, n) : strcmp(spec, k->spec))
			continue;
		ret = k->create(p, spec + n, out, err, errlen);
		if (ret < 0) {
			*out = NULL;
			embed_set_error("%s", err);
		}
		return ret;
	}
	snprintf(err, errlen, "unknown embedder '%s' (known: builtin, "
		 "model2vec:/PATH/TO/MODEL, http, use-lite, "
		 "use-lite:/PATH/TO/MODEL)", spec);
	embed_set_error("%s", err);
	return -EINVAL;
}

int embedder_new_spec(const char *spec, struct embedder **out, char *err,
		      size_t errlen)
{
	struct policy p;

	policy_defaults(&p);
	snprintf(p.embedder, sizeof(p.embedder), "%s", spec ? spec : "");
	return embedder_new(&p, out, err, errlen);
}

void embedder_free(struct embedder *e)
{
	if (e)
		e->ops->free(e);
}
