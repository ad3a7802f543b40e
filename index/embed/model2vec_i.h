/*
 * model2vec_i.h - what the parts of the Model2Vec embedder share (private
 * to index/embed/; callers use embed.h's embed_model2vec_new()).
 *
 * The parts, in the order a query meets them:
 *  - m2v_text.c: the normaliser (clean, CJK spacing, lowercase, Replace
 *    rules, white space), with UTF-8 from utf8.c;
 *  - m2v_tokenize.c: the piece table and the Unigram and WordPiece
 *    tokenisers;
 *  - model2vec.c: pooling token vectors into one, freeing, and loading a
 *    model directory (with the file and JSON helpers the loaders share);
 *  - m2v_safetensors.c: model.safetensors (embeddings, mapping, weights);
 *  - m2v_tokenizer_json.c: tokenizer.json (normaliser steps,
 *    pre-tokeniser, vocabulary).
 *
 * Invariant: a struct m2v is immutable once embed_model2vec_new() returns
 * it, so every function taking a const struct m2v * is reentrant; each
 * call owns its scratch buffers (struct m2v_buf, caller frees .p).
 */
#ifndef SEMCACHE_MODEL2VEC_I_H
#define SEMCACHE_MODEL2VEC_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <unicode/ucasemap.h>

#include "embed.h"
#include "embed_i.h"

#define M2V_META_DEFAULT "\xe2\x96\x81" /* U+2581 */

enum m2v_tok { M2V_TOK_UNIGRAM, M2V_TOK_WORDPIECE };
enum m2v_pre { M2V_PRE_METASPACE, M2V_PRE_BERT };

struct m2v_rule {
	char *from, *to;
	size_t from_len, to_len;
};

struct m2v_piece {
	const char *s;       /* into the pool */
	uint32_t len;        /* bytes */
	int32_t id;
	double score;        /* Unigram */
};

struct m2v {
	struct embedder base;
	/* normaliser */
	bool clean, chinese, lowercase, strip_accents;
	bool collapse;       /* Replace Regex \s+ -> " " (applied last) */
	bool strip;          /* Strip both ends (applied last) */
	struct m2v_rule *rules;
	size_t nrules;
	enum m2v_pre pre;
	char meta[8];        /* Metaspace replacement, UTF-8 */
	size_t meta_len;
	/* tokeniser */
	enum m2v_tok kind;
	struct m2v_piece *pieces;   /* open-addressing table, cap slots */
	size_t cap;
	char *pool;
	int32_t vocab;          /* ids are 0..vocab-1 */
	int32_t unk_id;         /* -1 when none */
	size_t maxlen;          /* longest piece in code points (Unigram) */
	size_t max_word;        /* WordPiece max_input_chars_per_word */
	char prefix[16];        /* WordPiece continuing_subword_prefix */
	size_t prefix_len;
	/* model */
	bool normalize;
	float *emb;             /* rows x dim */
	int64_t rows;
	int32_t *mapping;       /* vocab ids -> rows, or NULL */
	double *weights;        /* per id, or NULL */
	UCaseMap *casemap;
};

/* A growing byte buffer. */
struct m2v_buf {
	char *p;
	size_t len, cap;
};

/* A growing list of token ids. */
struct m2v_ids {
	int32_t *v;
	size_t n, cap;
};

/* ---- m2v_text.c ---- */

/*
 * Room for need elements of size bytes in the array p of *cap elements:
 * returns p when it is large enough, else p reallocated to need * 2 + 64
 * elements with *cap updated, or NULL (p and *cap untouched) when out of
 * memory. Never NULL for success, even when need is 0.
 */
void *m2v_grow(void *p, size_t *cap, size_t need, size_t size);
/* Room for extra more bytes. 0 or -ENOMEM. */
int m2v_buf_reserve(struct m2v_buf *b, size_t extra);
/* BERT's punctuation: ASCII non-alphanumeric graphics and Unicode P*. */
bool m2v_is_punct(uint32_t cp);
/* Normalise text into out (UTF-8, single spaces, no leading or trailing
 * space); tmp is scratch. 0, -ENOMEM, -E2BIG or -EIO (ICU). */
int m2v_normalize(const struct m2v *m, const char *text, size_t len,
		  struct m2v_buf *out, struct m2v_buf *tmp);

/* ---- m2v_tokenize.c (each appends known ids; 0 or -ENOMEM) ---- */

/* Add a piece (s points into m->pool); a duplicate's last id wins. The
 * table has m->cap slots, at least twice the pieces. Returns 0. */
int m2v_piece_add(struct m2v *m, const char *s, size_t len, int32_t id,
		  double score);
/* Viterbi over s (UTF-8, Metaspace-prepared or normalised). */
int m2v_unigram(const struct m2v *m, const char *s, size_t len,
		struct m2v_ids *ids);
/* Greedy longest match on one word; tmp is scratch. */
int m2v_wordpiece_word(const struct m2v *m, const char *w, size_t len,
		       struct m2v_ids *ids, struct m2v_buf *tmp);
/* Split at spaces, isolate punctuation, WordPiece each word. */
int m2v_wordpiece(const struct m2v *m, const char *s, size_t len,
		  struct m2v_ids *ids, struct m2v_buf *tmp);

/* ---- model2vec.c: helpers of the loaders ---- */

/* Parse JSON; NULL with a message in err (naming what) when invalid.
 * The caller puts the object. */
struct json_object *m2v_parse_json(const char *data, size_t len,
				   const char *what, char *err, size_t errlen);
/* o's member key when it exists and has the type, else NULL (o may be
 * NULL). Borrowed from o. */
struct json_object *m2v_json_get(struct json_object *o, const char *key,
				 json_type type);

/* ---- the loaders: 0 or a negative errno with a message in err ---- */

/* Embeddings (and mapping, weights) from model.safetensors; sets dim. */
int m2v_load_safetensors(struct m2v *m, const char *data, size_t len,
			 char *err, size_t errlen);
/* Normaliser, pre-tokeniser and vocabulary from tokenizer.json. */
int m2v_load_tokenizer(struct m2v *m, const char *data, size_t len,
		       char *err, size_t errlen);

#endif
