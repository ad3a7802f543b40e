/*
 * embed.c - pick an embedder by the name a policy gives.
 *
 * A small table maps spec strings to constructors; "builtin" is the only
 * entry for now. Model-backed embedders add a row here. This file does not
 * embed anything itself and keeps no state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "embed.h"

struct embedder_kind {
	const char *spec;
	int (*create)(struct embedder **out);
};

static const struct embedder_kind embedder_kinds[] = {
	{ "builtin", embed_builtin_new },
};

#define N_KINDS (sizeof(embedder_kinds) / sizeof(embedder_kinds[0]))

int embedder_new(const char *spec, struct embedder **out, char *err,
		 size_t errlen)
{
	size_t i;
	int ret;

	*out = NULL;
	if (!spec)
		spec = "";
	for (i = 0; i < N_KINDS; i++) {
		if (strcmp(spec, embedder_kinds[i].spec))
			continue;
		ret = embedder_kinds[i].create(out);
		if (ret < 0 && err && errlen)
			snprintf(err, errlen, "cannot create embedder '%s': %s",
				 spec, strerror(-ret));
		return ret;
	}
	if (err && errlen)
		snprintf(err, errlen, "unknown embedder '%s' (known: builtin)",
			 spec);
	return -EINVAL;
}

void embedder_free(struct embedder *e)
{
	if (e)
		e->ops->free(e);
}
