/*
 * embed.h - text embedders behind one interface.
 *
 * An embedder turns a query's bytes into a dense float vector of a fixed
 * dimension. Implementations: the built-in lexical embedder (builtin.c),
 * Model2Vec static models read from a directory (model2vec.c and its
 * m2v_*.c parts) and any OpenAI-compatible /v1/embeddings endpoint
 * (http.c). A category's policy picks one (policy key "embedder" and, for
 * http, the "http.*" keys); embedder_new() builds it (embed.c).
 *
 * Invariants:
 *  - embed() is reentrant: many threads may embed with one embedder at once.
 *  - Local embedders (remote == false) never fail on content: any bytes
 *    (binary, invalid UTF-8, empty) give a valid vector; an input without
 *    features (no known token) gives the zero vector.
 *  - Output vectors are L2-normalised (or zero), so cosine similarity is a
 *    plain inner product. Model2Vec models whose config.json says
 *    "normalize": false give the mean of their token vectors instead; the
 *    engine L2-normalises before indexing, so for cosine it is the same.
 *  - The output is deterministic for a given name: name changes whenever
 *    stored vectors would no longer be comparable with new ones (another
 *    model file, URL, model or dimension).
 *  - A remote embedder (remote == true) may block up to its timeout (times
 *    its retries) and may fail: embedder_embed() then returns a negative
 *    errno (-ETIMEDOUT, -ECONNREFUSED, -EPROTO, -EIO, ...). Callers treat
 *    a failed embedding as a miss and report embedder_last_error().
 */
#ifndef SEMCACHE_EMBED_H
#define SEMCACHE_EMBED_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

#define EMBED_NAME_MAX 64
#define EMBED_ERR_MAX 256

struct embedder;

struct embedder_ops {
	/* Write dim floats to out. Returns 0 or a negative errno; on failure
	 * the implementation records a message with embed_set_error(). */
	int (*embed)(const struct embedder *e, const char *text, size_t len,
		     float *out);
	void (*free)(struct embedder *e);
};

struct embedder {
	const struct embedder_ops *ops;
	int dim;
	/* true: embedding talks to another process or machine; it may block
	 * up to the configured timeout and may fail. */
	bool remote;
	/* Recorded with every entry, e.g. "builtin-v1",
	 * "model2vec-64-0123456789abcdef", "http-768-0123456789abcdef": a
	 * change of name means stored vectors are not comparable with new
	 * ones. */
	char name[EMBED_NAME_MAX];
};

/*
 * Create the embedder policy p names (p->embedder: "builtin",
 * "model2vec:/ABSOLUTE/DIR" or "http" with p->http_*). Model files are
 * read and checked here; an http embedder does not contact its endpoint
 * here (so a category can be created while the endpoint is down) but its
 * settings are validated and the API key variable, when named, must be set.
 * On failure returns a negative errno (-EINVAL bad settings, -ENOENT missing
 * files, -ENOMEM...) and writes a message to err. The caller owns *out and
 * frees it with embedder_free(). Creating is slow (model load); do it once
 * per category and policy change, not per query.
 */
int embedder_new(const struct policy *p, struct embedder **out, char *err,
		 size_t errlen);
/* The same with the built-in defaults for every other key: for tools and
 * tests that only have an embedder spec string. */
int embedder_new_spec(const char *spec, struct embedder **out, char *err,
		      size_t errlen);
void embedder_free(struct embedder *e);

/* Embed len bytes of text into e->dim floats at out. 0 or a negative errno
 * (only remote embedders fail; see embedder_last_error()). */
static inline int embedder_embed(const struct embedder *e, const char *text,
				 size_t len, float *out)
{
	return e->ops->embed(e, text, len, out);
}

/*
 * The message of the last failed embedder_embed() or embedder_new() on the
 * calling thread ("http embedder: 'http://...': timed out after 2000 ms"),
 * or "" when none. Thread-local: valid until the thread's next call into an
 * embedder. Never contains an API key.
 */
const char *embedder_last_error(void);
/* For implementations: record the calling thread's last error. */
void embed_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void embed_clear_error(void);

/* The built-in lexical embedder: no files, no network. */
int embed_builtin_new(struct embedder **out);
/* Its pieces, for the verifier (index/verify/), which reads words the way
 * the built-in embedder does: the vector of len bytes of text into
 * EMBED_BUILTIN_DIM floats (what embedder_embed() gives; reentrant); whether
 * a lowered, NUL-terminated word is on its stop list; its stemmer, in place
 * on n lowered bytes, returning the stem's length. */
#define EMBED_BUILTIN_DIM 256
void embed_builtin_vector(const char *text, size_t len, float *out);
bool embed_builtin_stop_word(const char *w);
size_t embed_builtin_stem(char *w, size_t n);
/* A Model2Vec static model directory (model.safetensors, tokenizer.json,
 * config.json). dir must be absolute. */
int embed_model2vec_new(const char *dir, struct embedder **out, char *err,
			size_t errlen);
/* An OpenAI-compatible /v1/embeddings endpoint, settings from p->http_*. */
int embed_http_new(const struct policy *p, struct embedder **out, char *err,
		   size_t errlen);

#endif
