/*
 * builtin.c - the built-in lexical embedder ("builtin-v1").
 *
 * Design: one streaming pass splits the bytes into words (ASCII letters and
 * digits, and every byte >= 0x80 so UTF-8 words stay whole; an apostrophe
 * inside a word is dropped, so "don't" == "dont"). Each word is lowered,
 * lightly stemmed (plural -s, -ies, -ing, -ed, -ly; our own few rules) and
 * turned into features, each added with signed feature hashing: a 64-bit
 * hash picks one of BUILTIN_DIM buckets and one hash bit picks the sign.
 * Features and weights (measured on qqp_val.csv with semcachefs-eval):
 *   - the stemmed word, weight 1, or W_STOP for a small English stop list;
 *     a word holding a digit, or capitalised and not first (a likely name:
 *     "Visual Studio 2008"), weighs W_NUM / W_CAP instead, a file-free
 *     stand-in for IDF;
 *   - character 3- and 4-grams of the lowered word with "<" ">" boundary
 *     marks (W_NGRAM each, not for stop words), so spelling variants and
 *     inflections still overlap.
 * Word bigrams, a longer stop list, length weighting and larger dimensions
 * were measured and did not pay. The sum is L2-normalised; no features
 * gives the zero vector.
 *
 * Reentrant and allocation-free: all state lives on the stack and in out;
 * the tables are const. Words longer than WORD_MAX bytes are cut to their
 * first WORD_MAX bytes, so any input, 1 MiB of binary included, costs one
 * linear pass and no memory. It knows no meaning: synonyms with no shared
 * spelling ("car"/"automobile") do not match. Any change to the features,
 * weights or dimension must change BUILTIN_NAME, because stored vectors
 * would no longer be comparable.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "embed_i.h"
#include "hash.h"

#define BUILTIN_NAME "builtin-v1"

/*
 * Measured with semcachefs-eval on qqp_val.csv (ROC-AUC): plain
 * hashed words 0.702; + stop weight 0.731; + stems 0.732; + char 3/4-grams
 * 0.738 (word bigrams: 0.723, dropped); + name/number weights 0.749 at 256
 * dims, 0.752 at 384 (too small a gain for 1.5x the memory). Debian's
 * Snowball libstemmer in place of the light rules: 0.7472 against 0.7492
 * measured side by side, and slower per query; not adopted.
 */
#define BUILTIN_DIM EMBED_BUILTIN_DIM
#define W_STOP 0.25f
#define W_NGRAM 0.4f
#define W_CAP 2.0f
#define W_NUM 2.0f
#define NGRAM_MIN 3
#define NGRAM_MAX 4

#define WORD_MAX 32

/* Seeds keep the feature kinds apart in hash space. */
#define SEED_WORD 0x9e3779b97f4a7c15ull
#define SEED_NGRAM 0xc2b2ae3d27d4eb4full

/* Sorted for bsearch; lowered, before stemming. No negations: they matter. */
static const char *const stop_words[] = {
	"a", "about", "above", "after", "again", "against", "all", "am", "an",
	"and", "any", "are", "as", "at", "be", "because", "been", "before",
	"being", "below", "between", "both", "but", "by", "can", "could",
	"did", "do", "does", "doing", "down", "during", "each", "few", "for",
	"from", "further", "had", "has", "have", "having", "he", "her", "here",
	"hers", "herself", "him", "himself", "his", "how", "i", "if", "in",
	"into", "is", "it", "its", "itself", "just", "me", "more", "most", "my",
	"myself", "of", "off", "on", "once", "only", "or", "other", "our",
	"ours", "out", "over", "own", "same", "she", "should", "so", "some",
	"such", "than", "that", "the", "their", "theirs", "them", "then",
	"there", "these", "they", "this", "those", "through", "to", "too",
	"under", "until", "up", "very", "was", "we", "were", "what", "when",
	"where", "which", "while", "who", "whom", "why", "will", "with",
	"would", "you", "your", "yours", "yourself",
};

#define N_STOP (sizeof(stop_words) / sizeof(stop_words[0]))

/* One embed call's state; lives on the caller's stack. */
struct builtin_state {
	float *out;
	int cap;		/* the current word starts with A-Z */
	int num;		/* the current word holds a digit */
	int sent_start;		/* no word yet in this sentence */
};

static uint64_t hash_bytes(const char *p, size_t n, uint64_t seed)
{
	return hash_fmix64(embed_fnv1a(EMBED_FNV_INIT ^ seed, p, n));
}

static void add_feature(float *out, uint64_t h, float w)
{
	uint32_t idx = (uint32_t)(h >> 32) % BUILTIN_DIM;

	out[idx] += (h & 1) ? -w : w;
}

static int cmp_stop(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

bool embed_builtin_stop_word(const char *w)
{
	return bsearch(w, stop_words, N_STOP, sizeof(stop_words[0]),
		       cmp_stop) != NULL;
}

static int ends(const char *w, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && !memcmp(w + n - k, suf, k);
}

static int is_vowel(char c)
{
	return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/* Undouble "runn" -> "run", but keep "ll", "ss", "zz" ("install"). */
static size_t undouble(const char *w, size_t n)
{
	if (n >= 3 && w[n - 1] == w[n - 2] && !is_vowel(w[n - 1]) &&
	    w[n - 1] != 'l' && w[n - 1] != 's' && w[n - 1] != 'z')
		return n - 1;
	return n;
}

/* A few suffix rules, in place; returns the new length. */
size_t embed_builtin_stem(char *w, size_t n)
{
	if (n > 4 && ends(w, n, "ies")) {
		w[n - 3] = 'y';
		return n - 2;
	}
	if (ends(w, n, "sses"))
		return n - 2;
	if (n > 3 && w[n - 1] == 's' && !ends(w, n, "ss") &&
	    !ends(w, n, "us") && !ends(w, n, "is"))
		n--;
	if (n > 5 && ends(w, n, "ing"))
		return undouble(w, n - 3);
	if (n > 4 && ends(w, n, "ed") && !ends(w, n, "eed"))
		return undouble(w, n - 2);
	if (n > 5 && ends(w, n, "ly"))
		return n - 2;
	return n;
}

static void add_ngrams(float *out, const char *w, size_t n)
{
	char buf[WORD_MAX + 2];
	size_t len = n + 2, k, i;

	buf[0] = '<';
	memcpy(buf + 1, w, n);
	buf[n + 1] = '>';
	for (k = NGRAM_MIN; k <= NGRAM_MAX && k <= len; k++)
		for (i = 0; i + k <= len; i++)
			add_feature(out, hash_bytes(buf + i, k, SEED_NGRAM + k),
				    W_NGRAM);
}

/* w holds n lowered bytes (n <= WORD_MAX) and room for a NUL. */
static void add_word(struct builtin_state *st, char *w, size_t n)
{
	float weight = 1.0f;

	w[n] = '\0';
	if (embed_builtin_stop_word(w)) {
		weight = W_STOP;
	} else {
		add_ngrams(st->out, w, n);
		if (st->cap && !st->sent_start)
			weight *= W_CAP;
		if (st->num)
			weight *= W_NUM;
	}
	n = embed_builtin_stem(w, n);
	add_feature(st->out, hash_bytes(w, n, SEED_WORD), weight);
	st->sent_start = 0;
}

static int is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c >= 0x80;
}

void embed_builtin_vector(const char *text, size_t len, float *out)
{
	struct builtin_state st = { .out = out, .sent_start = 1 };
	char word[WORD_MAX + 1];
	size_t i, n = 0;
	double sum = 0;
	int d;

	memset(out, 0, BUILTIN_DIM * sizeof(*out));
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		/* an apostrophe inside a word: ' or U+2019 */
		if (n && c == '\'' && i + 1 < len &&
		    is_word_byte((unsigned char)text[i + 1]))
			continue;
		if (n && c == 0xe2 && i + 3 < len &&
		    (unsigned char)text[i + 1] == 0x80 &&
		    (unsigned char)text[i + 2] == 0x99 &&
		    is_word_byte((unsigned char)text[i + 3])) {
			i += 2;
			continue;
		}
		if (is_word_byte(c)) {
			if (!n) {
				st.cap = c >= 'A' && c <= 'Z';
				st.num = 0;
			}
			if (c >= '0' && c <= '9')
				st.num = 1;
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c - 'A' + 'a');
			if (n < WORD_MAX)
				word[n] = (char)c;
			n++;
			continue;
		}
		if (n)
			add_word(&st, word, n < WORD_MAX ? n : WORD_MAX);
		n = 0;
		if (c == '.' || c == '?' || c == '!' || c == '\n')
			st.sent_start = 1;
	}
	if (n)
		add_word(&st, word, n < WORD_MAX ? n : WORD_MAX);

	for (d = 0; d < BUILTIN_DIM; d++)
		sum += (double)out[d] * out[d];
	if (sum > 0) {
		float inv = (float)(1.0 / sqrt(sum));

		for (d = 0; d < BUILTIN_DIM; d++)
			out[d] *= inv;
	}
}

static int builtin_embed(const struct embedder *e, const char *text,
			 size_t len, float *out)
{
	(void)e;
	embed_builtin_vector(text, len, out);
	return 0;
}

static void builtin_free(struct embedder *e)
{
	free(e);
}

static const struct embedder_ops builtin_ops = {
	.embed = builtin_embed,
	.free = builtin_free,
};

int embed_builtin_new(struct embedder **out)
{
	struct embedder *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return -ENOMEM;
	e->ops = &builtin_ops;
	e->dim = BUILTIN_DIM;
	strcpy(e->name, BUILTIN_NAME);
	*out = e;
	return 0;
}
