/*
 * use_lite_tok.c - the SentencePiece tokenizer of the Universal Sentence
 * Encoder lite, id for id as @energetic-ai/embeddings 0.2.0 (JavaScript)
 * tokenises.
 *
 * The reference, reproduced with its quirks:
 *  - The text is NFKC-normalised (ICU here, the ICU inside Node there: a
 *    character whose decomposition only the newer Unicode knows differs).
 *    If the result is not empty, U+2581 is put in front and every U+0020
 *    becomes U+2581; no other white space is touched.
 *  - Pieces 6.. of vocab.json go into a trie keyed by code points (a later
 *    duplicate replaces an earlier one's score and id; ids 0-5 are
 *    reserved). A score of null counts as 0.
 *  - Viterbi over code point positions, relaxing every piece that starts at
 *    a position (or, when none does, the lone code point as id 0, score 0);
 *    an end position takes a candidate when its best is still exactly 0 or
 *    the candidate's score is >= it, candidates arriving in increasing
 *    start order. So ties go to the later start and a genuine total of 0
 *    counts as "unset".
 *  - Back-tracking from the end steps back by the piece's length in UTF-16
 *    code units (the JavaScript string length), id 0 by the length of
 *    piece 0. Runs of id 0 collapse into one.
 *
 * Bytes are decoded as a WHATWG UTF-8 decoder (Node's Buffer.toString)
 * does: each maximal invalid subpart becomes one U+FFFD.
 *
 * What it does not do: the reference segments the whole text however long;
 * this reads at most USE_TOK_MAX_INPUT code points (cut at a normalisation
 * boundary) and segments at most USE_TOK_MAX_SYMBOLS of their NFKC form, so
 * time and memory are bounded. Only the first 128 tokens reach the model
 * and they span at most 2049 code points; back-tracking from the cut and
 * from the true end meet again after a piece or two on real text (the unit
 * test checks a 1 MiB text against the reference), but contrived input can
 * make them differ.
 *
 * Reentrant: the trie is immutable after use_tok_new(); each call allocates
 * its own buffers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>

#include "use_lite_i.h"

#define RESERVED 6
#define META 0x2581u

struct tok_node {
	double score;
	int32_t id;          /* -1: no piece ends here */
};

struct use_tok {
	struct tok_node *nodes;  /* node 0 is the root */
	size_t nnodes;
	uint64_t *keys;          /* edge (parent << 32 | code point) + 1; 0 empty */
	uint32_t *child;
	size_t cap;              /* power of two */
	uint8_t *u16len;         /* per id: UTF-16 length of the piece (>= 1) */
	int32_t nvocab;
	const UNormalizer2 *nfkc;
};

/* ---- UTF-8, WHATWG style --------------------------------------------- */

/* Decode one code point at s[*i]; a bad subpart gives U+FFFD and consumes
 * only the bytes that were valid so far (at least one). */
static uint32_t utf8_whatwg(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i], lo = 0x80, hi = 0xbf;
	uint32_t cp;
	size_t need, k;

	(*i)++;
	if (c < 0x80)
		return c;
	if (c < 0xc2 || c > 0xf4)
		return 0xfffd;
	need = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
	cp = c & (0x3fu >> need);
	/* the second byte's range excludes overlongs, surrogates, > U+10FFFF */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (k = 0; k < need; k++) {
		if (*i >= len || s[*i] < lo || s[*i] > hi)
			return 0xfffd;
		cp = (cp << 6) | (s[*i] & 0x3f);
		(*i)++;
		lo = 0x80;
		hi = 0xbf;
	}
	return cp;
}

/* ---- json ------------------------------------------------------------ */

struct json_object *use_json_parse(const char *data, size_t len,
				   const char *name, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *o = NULL;

	if (!tok) {
		snprintf(err, errlen, "use-lite: out of memory parsing '%s'", name);
		return NULL;
	}
	if (len < INT32_MAX)
		o = json_tokener_parse_ex(tok, len ? data : "", (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		snprintf(err, errlen, "use-lite: '%s' is not valid json: %s", name,
			 len ? json_tokener_error_desc(json_tokener_get_error(tok)) :
			 "empty file");
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* ---- the trie ------------------------------------------------------------ */

static size_t slot_of(uint64_t key, size_t cap)
{
	key *= 0x9e3779b97f4a7c15ull;
	return (size_t)(key >> 32) & (cap - 1);
}

/* The slot of edge (node, cp): where it is, or the empty slot for it. */
static size_t probe(const struct use_tok *t, uint32_t node, uint32_t cp,
		    uint64_t *key)
{
	size_t i;

	*key = ((uint64_t)node << 32 | cp) + 1;
	for (i = slot_of(*key, t->cap); t->keys[i] && t->keys[i] != *key;
	     i = (i + 1) & (t->cap - 1))
		;
	return i;
}

static int64_t child_get(const struct use_tok *t, uint32_t node, uint32_t cp)
{
	uint64_t key;
	size_t i = probe(t, node, cp, &key);

	return t->keys[i] ? (int64_t)t->child[i] : -1;
}

/* The child of node for cp, made when absent (capacity is reserved by the
 * caller: cap > 2 * total code points of all pieces). */
static uint32_t child_make(struct use_tok *t, uint32_t node, uint32_t cp)
{
	uint64_t key;
	size_t i = probe(t, node, cp, &key);

	if (t->keys[i])
		return t->child[i];
	t->keys[i] = key;
	t->child[i] = (uint32_t)t->nnodes;
	t->nodes[t->nnodes] = (struct tok_node){ 0, -1 };
	return (uint32_t)t->nnodes++;
}

static int piece_of(struct json_object *entry, const char **s, size_t *len,
		    double *score)
{
	struct json_object *p, *sc;

	if (!json_object_is_type(entry, json_type_array) ||
	    json_object_array_length(entry) < 2)
		return -1;
	p = json_object_array_get_idx(entry, 0);
	sc = json_object_array_get_idx(entry, 1);
	if (!json_object_is_type(p, json_type_string))
		return -1;
	if (sc && !json_object_is_type(sc, json_type_double) &&
	    !json_object_is_type(sc, json_type_int))
		return -1;
	*s = json_object_get_string(p);
	*len = (size_t)json_object_get_string_len(p);
	*score = sc ? json_object_get_double(sc) : 0;
	return 0;
}

int use_tok_new(const char *json, size_t len, struct use_tok **out, char *err,
		size_t errlen)
{
	struct json_object *root;
	struct use_tok *t = NULL;
	UErrorCode us = U_ZERO_ERROR;
	size_t n, i, total = 0, k, plen;
	const char *s;
	double score;
	int ret = -EINVAL;

	*out = NULL;
	if (!(root = use_json_parse(json, len, "vocab.json", err, errlen)))
		return -EINVAL;
	if (!json_object_is_type(root, json_type_array) ||
	    (n = json_object_array_length(root)) <= RESERVED || n > 1000000) {
		snprintf(err, errlen, "use-lite: 'vocab.json' must be an array of "
			 "more than %d [piece, score] entries", RESERVED);
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (piece_of(json_object_array_get_idx(root, i), &s, &plen, &score)) {
			snprintf(err, errlen, "use-lite: entry %zu of 'vocab.json' "
				 "is not [piece, score]", i);
			goto fail;
		}
		if (plen > 256 || (i == 0 && plen == 0)) {
			snprintf(err, errlen, "use-lite: piece %zu of 'vocab.json' is "
				 "%s", i, plen ? "longer than 256 bytes" : "empty");
			goto fail;
		}
		total += plen;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->nvocab = (int32_t)n;
	for (t->cap = 64; t->cap < 2 * total + 2; t->cap *= 2)
		;
	t->keys = calloc(t->cap, sizeof(*t->keys));
	t->child = malloc(t->cap * sizeof(*t->child));
	t->nodes = malloc((total + 1) * sizeof(*t->nodes));
	t->u16len = malloc(n);
	if (!t->keys || !t->child || !t->nodes || !t->u16len)
		goto nomem;
	t->nodes[0] = (struct tok_node){ 0, -1 };
	t->nnodes = 1;
	for (i = 0; i < n; i++) {
		uint32_t node = 0, cp;
		size_t u16 = 0;

		piece_of(json_object_array_get_idx(root, i), &s, &plen, &score);
		for (k = 0; k < plen;) {
			cp = utf8_whatwg((const unsigned char *)s, plen, &k);
			u16 += cp >= 0x10000 ? 2 : 1;
			if (i >= RESERVED)
				node = child_make(t, node, cp);
		}
		t->u16len[i] = (uint8_t)(u16 ? u16 : 1);
		if (i >= RESERVED && node) {
			t->nodes[node].score = score;
			t->nodes[node].id = (int32_t)i;
		}
	}
	t->nfkc = unorm2_getNFKCInstance(&us);
	if (U_FAILURE(us)) {
		snprintf(err, errlen, "use-lite: cannot open the icu nfkc "
			 "normaliser: %s", u_errorName(us));
		ret = -EIO;
		goto fail;
	}
	json_object_put(root);
	*out = t;
	return 0;
nomem:
	snprintf(err, errlen, "use-lite: out of memory loading 'vocab.json'");
	ret = -ENOMEM;
fail:
	json_object_put(root);
	use_tok_free(t);
	return ret;
}

void use_tok_free(struct use_tok *t)
{
	if (!t)
		return;
	free(t->nodes);
	free(t->keys);
	free(t->child);
	free(t->u16len);
	free(t);
}

int use_tok_vocab_size(const struct use_tok *t)
{
	return t->nvocab;
}

/* ---- encoding ------------------------------------------------------------ */

/* Decode at most USE_TOK_MAX_INPUT code points into UTF-16 at u (room for
 * 2 units each); a cut input ends at a normalisation boundary. */
static int32_t decode_input(const struct use_tok *t, const unsigned char *s,
			    size_t len, UChar *u)
{
	size_t i = 0, cps = 0;
	int32_t n = 0, back, k;
	uint32_t cp;

	while (i < len && cps < USE_TOK_MAX_INPUT) {
		cp = utf8_whatwg(s, len, &i);
		U16_APPEND_UNSAFE(u, n, cp);
		cps++;
	}
	if (i >= len)
		return n;
	/* cut before the last code point that starts a new segment */
	for (back = 0, k = n; k > 0 && back < 64; back++) {
		U16_BACK_1(u, 0, k);
		U16_GET(u, 0, k, n, cp);
		if (unorm2_hasBoundaryBefore(t->nfkc, (UChar32)cp))
			return k;
	}
	return n;
}

/* Normalise; *out is malloc'd (or NULL on -ENOMEM). Returns the length. */
static int32_t normalise(const struct use_tok *t, const UChar *u, int32_t n,
			 UChar **out)
{
	UErrorCode us = U_ZERO_ERROR;
	int32_t cap = n * 2 + 16, got;
	UChar *d = malloc((size_t)cap * sizeof(UChar));

	if (!d)
		goto fail;
	got = unorm2_normalize(t->nfkc, u, n, d, cap, &us);
	if (us == U_BUFFER_OVERFLOW_ERROR) {
		free(d);
		cap = got + 1;
		d = malloc((size_t)cap * sizeof(UChar));
		if (!d)
			goto fail;
		us = U_ZERO_ERROR;
		got = unorm2_normalize(t->nfkc, u, n, d, cap, &us);
	}
	if (U_FAILURE(us)) {
		/* only a broken ICU gets here: tokenise the text as it is */
		memcpy(d, u, (size_t)n * sizeof(UChar));
		got = n;
	}
	*out = d;
	return got;
fail:
	*out = NULL;
	return 0;
}

/* best/words relaxation exactly as the reference's inner loop */
static inline void relax(double *best, int32_t *words, size_t start,
			 size_t end, double score, int32_t id)
{
	double s = score + best[start];

	if (best[end] == 0 || s >= best[end]) {
		best[end] = s;
		words[end] = id;
	}
}

int use_tok_encode(const struct use_tok *t, const char *text, size_t len,
		   int32_t *ids, size_t max, size_t *nout)
{
	UChar *u = NULL, *norm = NULL;
	uint32_t *sym = NULL;
	double *best = NULL;
	int32_t *words = NULL, *rev = NULL, nu, nn, k;
	size_t n = 0, i, j, nrev = 0, cap, iter;
	int ret = -ENOMEM;

	*nout = 0;
	cap = (len < USE_TOK_MAX_INPUT ? len : USE_TOK_MAX_INPUT) * 2 + 2;
	u = malloc(cap * sizeof(UChar));
	if (!u)
		goto out;
	nu = decode_input(t, (const unsigned char *)text, len, u);
	nn = normalise(t, u, nu, &norm);
	if (!norm)
		goto out;
	if (nn == 0) {
		ret = 0;
		goto out;
	}
	cap = (size_t)nn + 1 < USE_TOK_MAX_SYMBOLS ? (size_t)nn + 1 : USE_TOK_MAX_SYMBOLS;
	sym = malloc(cap * sizeof(*sym));
	best = calloc(cap + 1, sizeof(*best));
	words = calloc(cap + 1, sizeof(*words));
	rev = malloc(cap * sizeof(*rev));
	if (!sym || !best || !words || !rev)
		goto out;
	sym[n++] = META;
	for (k = 0; k < nn && n < cap;) {
		UChar32 c;

		U16_NEXT(norm, k, nn, c);
		sym[n++] = c == ' ' ? META : (uint32_t)c;
	}

	for (i = 0; i < n; i++) {
		int64_t node = 0;
		bool found = false;

		for (j = i; j < n; j++) {
			node = child_get(t, (uint32_t)node, sym[j]);
			if (node < 0)
				break;
			if (t->nodes[node].id >= 0) {
				found = true;
				relax(best, words, i, j + 1, t->nodes[node].score,
				      t->nodes[node].id);
			}
		}
		if (!found)
			relax(best, words, i, i + 1, 0, 0);
	}

	/* back-track by JavaScript string lengths; collapse runs of id 0 */
	for (iter = n; iter > 0;) {
		int32_t id = words[iter];
		size_t step = t->u16len[id];

		if (!(id == 0 && nrev && rev[nrev - 1] == 0))
			rev[nrev++] = id;
		iter = step >= iter ? 0 : iter - step;
	}
	for (i = 0; i < nrev && i < max; i++)
		ids[i] = rev[nrev - 1 - i];
	*nout = i;
	ret = 0;
out:
	free(u);
	free(norm);
	free(sym);
	free(best);
	free(words);
	free(rev);
	return ret;
}
