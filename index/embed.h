/*
 * embed.h - text embedders behind one interface.
 *
 * An embedder turns a query's bytes into a dense, L2-normalised float vector
 * of a fixed dimension, so that cosine similarity is a plain inner product.
 * Implementations: the built-in lexical embedder (embed_builtin.c); real
 * models plug in through the same struct.
 *
 * Invariants:
 *  - embed() is reentrant: many threads may embed with one embedder at once.
 *  - embed() never fails on content: any bytes (binary, invalid UTF-8, empty)
 *    give a valid vector; an input without features gives the zero vector.
 *  - The output is deterministic for a given embedder name.
 */
#ifndef SEMCACHE_EMBED_H
#define SEMCACHE_EMBED_H

#include <stddef.h>

#define EMBED_NAME_MAX 64

struct embedder;

struct embedder_ops {
	/* Write dim floats to out. Returns 0 or a negative errno. */
	int (*embed)(const struct embedder *e, const char *text, size_t len,
		     float *out);
	void (*free)(struct embedder *e);
};

struct embedder {
	const struct embedder_ops *ops;
	int dim;
	/* Recorded with every entry, e.g. "builtin-v1": a change of name means
	 * stored vectors are not comparable with new ones. */
	char name[EMBED_NAME_MAX];
};

/*
 * Create the embedder a policy names. spec is "builtin" for now.
 * On failure returns a negative errno and writes a message to err.
 * The caller owns *out and frees it with embedder_free().
 */
int embedder_new(const char *spec, struct embedder **out, char *err,
		 size_t errlen);
void embedder_free(struct embedder *e);

static inline int embedder_embed(const struct embedder *e, const char *text,
				 size_t len, float *out)
{
	return e->ops->embed(e, text, len, out);
}

/* The built-in lexical embedder: no files, no network. */
int embed_builtin_new(struct embedder **out);

#endif
