/*
 * side.c - one text's side of the verifier's pair features.
 *
 * One pass over the bytes splits words the way builtin-v1 does (ASCII
 * letters and digits and every byte >= 0x80 are word bytes; an apostrophe,
 * ' or U+2019, inside a word is dropped, so "don't" == "dont"), with two
 * rules of its own for numbers: a ',' between two digits is dropped and a
 * '.' between two digits kept ("5,000" == "5000", "3.5" stays one word).
 * ASCII letters are lowered; a word keeps its first VERIFY_WORD_MAX bytes.
 * Each word, in this order: one pointing outside the text ("this",
 * "above") adds to the deixis count and goes on; holding a digit, it is a
 * number (its key is FNV-1a of its bytes); a negation adds to the
 * negation count; a question word sets its bit; a builtin-v1 stop word is
 * dropped; anything else is a content word, keyed by FNV-1a of its
 * builtin-v1 stem. The side keeps the content keys in order and as a
 * sorted set, the number set, the sum of their quantised IDF, the deixis
 * count, the text's length, the share of non-ASCII word bytes and the text's
 * builtin-v1 vector.
 *
 * Words after the VERIFY_MAX_WORDS-th are not read, so any input costs at
 * most one pass (and builtin-v1's linear pass for the vector), 4 KiB of
 * stack and one allocation of at most 6 KiB. No meaning: synonyms are
 * different keys; key collisions (64-bit) are ignored.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "verify_i.h"

#define VERIFY_WORD_MAX 32

/* Sorted for bsearch; apostrophes already dropped. */
static const char *const neg_words[] = {
	"aint", "arent", "cannot", "cant", "couldnt", "didnt", "doesnt", "dont",
	"hadnt", "hasnt", "havent", "isnt", "neither", "never", "no", "nobody",
	"none", "nor", "not", "nothing", "nowhere", "shouldnt", "wasnt",
	"werent", "without", "wont", "wouldnt",
};
/* Words that point outside the text: a question about "this photo" or
 * "the above code" needs what came with it, so two of them asked in the
 * same words may still be about different things. Sorted for bsearch;
 * they are still read as stop or content words. */
static const char *const deixis_words[] = {
	"above", "attached", "below", "following", "these", "this", "those",
};
/* Bit i of the question-word mask is wh_words[i]. */
static const char *const wh_words[] = {
	"what", "how", "why", "when", "where", "who", "which",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct word {
	char w[VERIFY_WORD_MAX + 1];
	size_t len;         /* bytes kept (at most VERIFY_WORD_MAX) */
	size_t bytes;       /* word bytes seen */
	bool digit, nonascii;
};

/* Collected while reading, before the side's arrays are allocated. */
struct scratch {
	uint64_t key[VERIFY_MAX_WORDS], num[VERIFY_MAX_WORDS];
	uint32_t n, nnum, words;
	size_t bytes, nonascii_bytes;
};

static int cmp_str(const void *k, const void *e)
{
	return strcmp(k, *(const char *const *)e);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort v[0..n) and drop repeats; returns the distinct count. */
static uint32_t sort_uniq(uint64_t *v, uint32_t n)
{
	uint32_t i, m = 0;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	for (i = 0; i < n; i++)
		if (!m || v[m - 1] != v[i])
			v[m++] = v[i];
	return m;
}

static void add_word(struct verify_side *s, struct scratch *sc, struct word *t)
{
	size_t i;

	t->w[t->len] = '\0';
	sc->bytes += t->bytes;
	if (t->nonascii)
		sc->nonascii_bytes += t->bytes;
	if (bsearch(t->w, deixis_words, NELEM(deixis_words),
		    sizeof(deixis_words[0]), cmp_str))
		s->deixis++;
	if (t->digit) {
		sc->num[sc->nnum++] = hash_fnv1a(HASH_FNV_INIT, t->w, t->len);
		return;
	}
	if (bsearch(t->w, neg_words, NELEM(neg_words), sizeof(neg_words[0]),
		    cmp_str)) {
		s->neg++;
		return;
	}
	for (i = 0; i < NELEM(wh_words); i++)
		if (strcmp(t->w, wh_words[i]) == 0) {
			s->wh |= 1u << i;
			return;
		}
	if (embed_builtin_stop_word(t->w))
		return;
	sc->key[sc->n++] = hash_fnv1a(HASH_FNV_INIT, t->w,
				      embed_builtin_stem(t->w, t->len));
}

static bool word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c >= 0x80;
}

static bool digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static void read_words(struct verify_side *s, struct scratch *sc,
		       const unsigned char *b, size_t len)
{
	struct word t;
	unsigned char last = 0;
	bool in = false;
	size_t i;

	for (i = 0; i <= len && sc->words < VERIFY_MAX_WORDS; i++) {
		unsigned char c = i < len ? b[i] : ' ';

		if (in && c == '\'' && i + 1 < len && word_byte(b[i + 1]))
			continue;
		if (in && c == 0xe2 && i + 3 < len && b[i + 1] == 0x80 &&
		    b[i + 2] == 0x99 && word_byte(b[i + 3])) {
			i += 2;
			continue;
		}
		if (in && (c == ',' || c == '.') && digit(last) && i + 1 < len &&
		    digit(b[i + 1])) {
			if (c == '.') {
				if (t.len < VERIFY_WORD_MAX)
					t.w[t.len++] = '.';
				last = '.';
			}
			continue;
		}
		if (i < len && word_byte(c)) {
			if (!in) {
				in = true;
				memset(&t, 0, sizeof(t));
			}
			t.digit |= digit(c);
			t.nonascii |= c >= 0x80;
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c - 'A' + 'a');
			if (t.len < VERIFY_WORD_MAX)
				t.w[t.len++] = (char)c;
			t.bytes++;
			last = c;
			continue;
		}
		if (in) {
			add_word(s, sc, &t);
			s->whash = hash_fnv1a(s->whash, t.w, t.len + 1);
			sc->words++;
			in = false;
		}
	}
}

int verify_side_init_idf(struct verify_side *s, const char *text, size_t len,
			 const uint8_t *idf)
{
	struct scratch sc_, *sc = &sc_;     /* 4 KiB of stack */
	uint64_t *buf = NULL;
	uint32_t i;

	memset(s, 0, sizeof(*s));
	sc->n = sc->nnum = sc->words = 0;
	sc->bytes = sc->nonascii_bytes = 0;
	s->whash = HASH_FNV_INIT;
	read_words(s, sc, (const unsigned char *)text, len);
	if (sc->words >= VERIFY_MAX_WORDS)
		s->whash = 0;       /* words left unread: never "the same" */
	if (sc->n + sc->nnum) {
		buf = malloc((2 * (size_t)sc->n + sc->nnum) * sizeof(*buf));
		if (!buf) {
			memset(s, 0, sizeof(*s));
			return -ENOMEM;
		}
	}
	s->key = buf;
	s->ukey = buf ? buf + sc->n : NULL;
	s->n = sc->n;
	if (sc->n) {
		memcpy(s->key, sc->key, sc->n * sizeof(*buf));
		memcpy(s->ukey, sc->key, sc->n * sizeof(*buf));
	}
	s->nu = sort_uniq(s->ukey, sc->n);
	/* the numbers follow the n slots reserved for ukey */
	s->num = buf ? buf + 2 * (size_t)sc->n : NULL;
	if (sc->nnum)
		memcpy(s->num, sc->num, sc->nnum * sizeof(*buf));
	s->nnum = sort_uniq(s->num, sc->nnum);
	for (i = 0; i < s->nu; i++)
		s->idf_sum += idf[s->ukey[i] % VERIFY_IDF_BUCKETS];
	for (i = 0; i < s->nnum; i++)
		s->idf_sum += idf[s->num[i] % VERIFY_IDF_BUCKETS];
	s->bytes = len < UINT32_MAX ? (uint32_t)len : UINT32_MAX;
	s->nonascii = sc->bytes ? (float)((double)sc->nonascii_bytes /
					  (double)sc->bytes) : 0.0f;
	embed_builtin_vector(text, len, s->vec);
	return 0;
}

int verify_side_init(struct verify_side *s, const char *text, size_t len)
{
	return verify_side_init_idf(s, text, len, verify_idf);
}

void verify_side_release(struct verify_side *s)
{
	free(s->key);
	memset(s, 0, sizeof(*s));
}
