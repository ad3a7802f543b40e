/*
 * embed_model2vec.c - Model2Vec static embeddings ("model2vec:/DIR").
 *
 * A Model2Vec model is a table of token vectors: a query is normalised,
 * tokenised, and its token vectors (times an optional per-token weight) are
 * summed; the sum is L2-normalised when config.json says "normalize": true
 * (the default), else divided by the token count (mean pooling).
 *
 * Files, all read once at creation (nothing is kept open):
 *  - model.safetensors: an 8-byte little-endian header length, a JSON header
 *    (read with json-c) naming tensors with dtype, shape and byte offsets.
 *    "embeddings" [rows, dim] is required (F32, F16 or F64). Vocabulary-
 *    quantised models (the test fixture) add "mapping" [vocab] (I32 or I64:
 *    token id -> embeddings row) and "weights" [vocab] (F64, F32 or F16).
 *  - tokenizer.json (json-c): the normaliser (Sequence of BertNormalizer,
 *    Lowercase and string Replace steps), the pre-tokeniser (Metaspace or
 *    BertPreTokenizer/Whitespace splitting) and the model: Unigram (Viterbi
 *    over piece scores) or WordPiece (greedy longest match with "##").
 *  - config.json: "normalize".
 *
 * The text pipeline follows the fixture's reference_encoder.py exactly (it
 * is our oracle; tests/unit/test_model2vec.c compares on 1000 strings):
 * invalid UTF-8 becomes U+FFFD; NUL, U+FFFD and every Unicode "other"
 * character (Cc, Cf, Cn, Co, Cs) except tab/newline/return is dropped; those
 * three and Zs become spaces; CJK ideographs get spaces around them; the
 * text is lowercased with full Unicode case mapping (ICU, root locale, as
 * Python's str.lower); Replace rules run in order; runs of white space
 * (Python's str.isspace: Zs or bidi class WS/B/S) collapse to one space and
 * the ends are stripped. Unknown pieces are dropped (not embedded). There is
 * no truncation: a 64 KiB query costs one linear pass.
 *
 * Deliberate differences from Hugging Face tokenizers, as in the oracle:
 * BertNormalizer's "strip_accents": null does not strip accents (only an
 * explicit true does), and only the three CJK blocks of the oracle are
 * spaced. Character categories come from ICU, whose Unicode version may be
 * newer than Python's: a character assigned only in the newer version is
 * dropped by one and kept by the other.
 *
 * Reentrant: the model is immutable after loading; each call allocates its
 * own scratch buffers. It does not download models or read other formats
 * (ONNX, PyTorch), and it does not support Regex Replace or Precompiled
 * normalisers (the model is refused with a message naming the step).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <unicode/uchar.h>
#include <unicode/ucasemap.h>

#include "embed.h"

#define UNK_PENALTY (-1e6)
#define META_DEFAULT "\xe2\x96\x81" /* U+2581 */

enum tok_kind { TOK_UNIGRAM, TOK_WORDPIECE };
enum pre_kind { PRE_METASPACE, PRE_BERT };

struct replace_rule {
	char *from, *to;
	size_t from_len, to_len;
};

struct piece {
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
	struct replace_rule *rules;
	size_t nrules;
	enum pre_kind pre;
	char meta[8];        /* Metaspace replacement, UTF-8 */
	size_t meta_len;
	/* tokeniser */
	enum tok_kind kind;
	struct piece *pieces;   /* open-addressing table, cap slots */
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

/* ---- small helpers --------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

static int read_file(const char *dir, const char *name, char **data,
		     size_t *len, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "model2vec: cannot open '%s': %s", path,
			 strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		snprintf(err, errlen, "model2vec: '%s' is not a regular file",
			 path);
		goto out;
	}
	*data = malloc((size_t)st.st_size + 1);
	if (!*data) {
		ret = -ENOMEM;
		snprintf(err, errlen, "model2vec: out of memory reading '%s'", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, *data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "model2vec: cannot read '%s': %s",
				 path, n < 0 ? strerror(-ret) : "file shrank");
			free(*data);
			*data = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	(*data)[got] = '\0';
	*len = got;
	ret = 0;
out:
	close(fd);
	return ret;
}

static struct json_object *parse_json(const char *data, size_t len,
				      const char *what, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *obj;

	if (!tok) {
		snprintf(err, errlen, "model2vec: out of memory parsing '%s'", what);
		return NULL;
	}
	obj = json_tokener_parse_ex(tok, data, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		snprintf(err, errlen, "model2vec: '%s' is not valid json: %s",
			 what, json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

static struct json_object *get(struct json_object *o, const char *key,
			       json_type type)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	if (!json_object_is_type(v, type))
		return NULL;
	return v;
}

/* UTF-8 decode one code point at s[*i]; invalid or overlong -> U+FFFD and
 * one byte consumed. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t cp, min;
	size_t n, k;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1; cp = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2; cp = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3; cp = c & 0x07; min = 0x10000;
	} else {
		(*i)++;
		return 0xfffd;
	}
	if (*i + n >= len) {
		(*i)++;
		return 0xfffd;
	}
	for (k = 1; k <= n; k++) {
		if ((s[*i + k] & 0xc0) != 0x80) {
			(*i)++;
			return 0xfffd;
		}
		cp = (cp << 6) | (s[*i + k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
		(*i)++;
		return 0xfffd;
	}
	*i += n + 1;
	return cp;
}

static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Python's str.isspace(). */
static bool is_py_space(uint32_t cp)
{
	UCharDirection d;

	if (u_charType((UChar32)cp) == U_SPACE_SEPARATOR)
		return true;
	d = u_charDirection((UChar32)cp);
	return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR ||
	       d == U_SEGMENT_SEPARATOR;
}

static bool is_other(uint32_t cp)
{
	switch (u_charType((UChar32)cp)) {
	case U_CONTROL_CHAR:
	case U_FORMAT_CHAR:
	case U_PRIVATE_USE_CHAR:
	case U_SURROGATE:
	case U_UNASSIGNED:
		return true;
	default:
		return false;
	}
}

static bool is_cjk(uint32_t cp)
{
	return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
	       (cp >= 0xf900 && cp <= 0xfaff);
}

/* BERT's punctuation: ASCII non-alphanumeric graphics and Unicode P*. */
static bool is_punct(uint32_t cp)
{
	int8_t t;

	if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) ||
	    (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
		return true;
	t = (int8_t)u_charType((UChar32)cp);
	return t == U_DASH_PUNCTUATION || t == U_START_PUNCTUATION ||
	       t == U_END_PUNCTUATION || t == U_CONNECTOR_PUNCTUATION ||
	       t == U_OTHER_PUNCTUATION || t == U_INITIAL_PUNCTUATION ||
	       t == U_FINAL_PUNCTUATION;
}

/* ---- the piece table ------------------------------------------------- */

static const struct piece *piece_find(const struct m2v *m, const char *s,
				      size_t len, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		const struct piece *p = &m->pieces[i];

		if (!p->s)
			return NULL;
		if (p->len == len && memcmp(p->s, s, len) == 0)
			return p;
	}
}

static int piece_add(struct m2v *m, const char *s, size_t len, int32_t id,
		     double score)
{
	uint64_t h = fnv1a(FNV_INIT, s, len);
	size_t i = (size_t)h & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		struct piece *p = &m->pieces[i];

		if (!p->s) {
			p->s = s;
			p->len = (uint32_t)len;
			p->id = id;
			p->score = score;
			return 0;
		}
		if (p->len == len && memcmp(p->s, s, len) == 0) {
			/* a duplicate piece: the last one wins, as in the
			 * oracle's dict */
			p->id = id;
			p->score = score;
			return 0;
		}
	}
}

/* ---- text pipeline --------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
	char *np;
	size_t ncap;

	if (b->len + extra <= b->cap)
		return 0;
	ncap = (b->len + extra) * 2 + 64;
	np = realloc(b->p, ncap);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = ncap;
	return 0;
}

/* Replace every from with to, left to right (Python's str.replace). */
static int apply_rule(const struct replace_rule *r, struct buf *in, struct buf *tmp)
{
	const char *s = in->p, *end = in->p + in->len, *hit;
	struct buf t;

	if (!r->from_len || !memmem(s, in->len, r->from, r->from_len))
		return 0;
	tmp->len = 0;
	while ((hit = memmem(s, (size_t)(end - s), r->from, r->from_len))) {
		if (buf_reserve(tmp, (size_t)(hit - s) + r->to_len))
			return -ENOMEM;
		memcpy(tmp->p + tmp->len, s, (size_t)(hit - s));
		tmp->len += (size_t)(hit - s);
		memcpy(tmp->p + tmp->len, r->to, r->to_len);
		tmp->len += r->to_len;
		s = hit + r->from_len;
	}
	if (buf_reserve(tmp, (size_t)(end - s) + 1))
		return -ENOMEM;
	memcpy(tmp->p + tmp->len, s, (size_t)(end - s));
	tmp->len += (size_t)(end - s);
	t = *in;
	*in = *tmp;
	*tmp = t;
	return 0;
}

/*
 * Normalise text into out (UTF-8, single spaces, no leading or trailing
 * space). a and b are scratch buffers the caller frees.
 */
static int normalize(const struct m2v *m, const char *text, size_t len,
		     struct buf *out, struct buf *tmp)
{
	const unsigned char *s = (const unsigned char *)text;
	UErrorCode st = U_ZERO_ERROR;
	size_t i = 0, r;
	int32_t n;

	/* 1. clean, space CJK: at most 5 output bytes per input byte */
	tmp->len = 0;
	if (buf_reserve(tmp, len * 5 + 16))
		return -ENOMEM;
	while (i < len) {
		uint32_t cp = utf8_next(s, len, &i);

		if (m->clean) {
			if (cp == 0 || cp == 0xfffd)
				continue;
			if (cp == '\t' || cp == '\n' || cp == '\r')
				cp = ' ';
			else if (is_other(cp))
				continue;
			else if (u_charType((UChar32)cp) == U_SPACE_SEPARATOR)
				cp = ' ';
		}
		if (m->chinese && is_cjk(cp)) {
			tmp->p[tmp->len++] = ' ';
			tmp->len += utf8_put(tmp->p + tmp->len, cp);
			tmp->p[tmp->len++] = ' ';
			continue;
		}
		tmp->len += utf8_put(tmp->p + tmp->len, cp);
	}

	/* 2. lowercase (full case mapping, may grow) */
	if (m->lowercase && tmp->len) {
		if (tmp->len > INT32_MAX / 4)
			return -E2BIG;
		out->len = 0;
		if (buf_reserve(out, tmp->len * 3 / 2 + 16))
			return -ENOMEM;
		n = ucasemap_utf8ToLower(m->casemap, out->p, (int32_t)out->cap,
					 tmp->p, (int32_t)tmp->len, &st);
		if (st == U_BUFFER_OVERFLOW_ERROR) {
			st = U_ZERO_ERROR;
			if (buf_reserve(out, (size_t)n + 1))
				return -ENOMEM;
			n = ucasemap_utf8ToLower(m->casemap, out->p,
						 (int32_t)out->cap, tmp->p,
						 (int32_t)tmp->len, &st);
		}
		if (U_FAILURE(st))
			return -EIO;
		out->len = (size_t)n;
	} else {
		struct buf t = *out;

		*out = *tmp;
		*tmp = t;
	}

	/* 3. Replace rules, in order */
	for (r = 0; r < m->nrules; r++)
		if (apply_rule(&m->rules[r], out, tmp))
			return -ENOMEM;

	/* 4. collapse and strip white space (Python's \s and str.strip) */
	if (!m->collapse && !m->strip)
		return 0;
	tmp->len = 0;
	if (buf_reserve(tmp, out->len + 1))
		return -ENOMEM;
	{
		bool pending = false;

		i = 0;
		while (i < out->len) {
			size_t at = i;
			uint32_t cp = utf8_next((const unsigned char *)out->p,
						out->len, &i);

			if (is_py_space(cp) && (m->collapse ||
						(m->strip && !tmp->len))) {
				pending = !m->strip || tmp->len > 0;
				continue;
			}
			if (pending)
				tmp->p[tmp->len++] = ' ';
			pending = false;
			memcpy(tmp->p + tmp->len, out->p + at, i - at);
			tmp->len += i - at;
		}
		/* a trailing run kept as one space when not stripping (a
		 * Strip without the \\s+ Replace keeps inner runs and trailing
		 * white space as they are: not supported exactly) */
		if (pending && !m->strip)
			tmp->p[tmp->len++] = ' ';
	}
	{
		struct buf t = *out;

		*out = *tmp;
		*tmp = t;
	}
	return 0;
}

/* A growing list of token ids. */
struct ids {
	int32_t *v;
	size_t n, cap;
};

static int ids_push(struct ids *ids, int32_t id)
{
	int32_t *nv;

	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? ids->cap * 2 : 64;
		nv = realloc(ids->v, ids->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		ids->v = nv;
	}
	ids->v[ids->n++] = id;
	return 0;
}

/* Viterbi over s (UTF-8) as the oracle does it, appending known ids. */
static int unigram(const struct m2v *m, const char *s, size_t len,
		   struct ids *ids)
{
	size_t *off = NULL, n = 0, i, L, j;
	double *best = NULL;
	int32_t *from = NULL, *tok = NULL, *rev = NULL;
	int ret = -ENOMEM;

	off = malloc((len + 1) * sizeof(*off));
	if (!off)
		goto out;
	for (i = 0; i < len; n++) {
		off[n] = i;
		utf8_next((const unsigned char *)s, len, &i);
	}
	off[n] = len;
	best = malloc((n + 1) * sizeof(*best));
	from = malloc((n + 1) * sizeof(*from));
	tok = malloc((n + 1) * sizeof(*tok));
	rev = malloc((n + 1) * sizeof(*rev));
	if (!best || !from || !tok || !rev)
		goto out;
	for (i = 0; i <= n; i++)
		best[i] = -1e18;
	best[0] = 0.0;
	for (i = 0; i < n; i++) {
		uint64_t h = FNV_INIT;
		double v;

		if (best[i] <= -1e17)
			continue;
		for (L = 1; L <= m->maxlen && i + L <= n; L++) {
			const struct piece *p;

			h = fnv1a(h, s + off[i + L - 1], off[i + L] - off[i + L - 1]);
			p = piece_find(m, s + off[i], off[i + L] - off[i], h);
			if (!p)
				continue;
			v = best[i] + p->score;
			if (v > best[i + L]) {
				best[i + L] = v;
				from[i + L] = (int32_t)i;
				tok[i + L] = p->id;
			}
		}
		v = best[i] + UNK_PENALTY;
		if (v > best[i + 1]) {
			best[i + 1] = v;
			from[i + 1] = (int32_t)i;
			tok[i + 1] = -1;
		}
	}
	for (j = n, L = 0; j > 0; j = (size_t)from[j])
		rev[L++] = tok[j];
	ret = 0;
	while (L-- > 0)
		if (rev[L] >= 0 && rev[L] != m->unk_id && (ret = ids_push(ids, rev[L])))
			break;
out:
	free(off);
	free(best);
	free(from);
	free(tok);
	free(rev);
	return ret;
}

/* Greedy longest-match-first WordPiece on one word; an unmatchable word
 * gives nothing (its [UNK] is not embedded). */
static int wordpiece_word(const struct m2v *m, const char *w, size_t len,
			  struct ids *ids, struct buf *tmp)
{
	size_t start = 0, nchars = 0, i = 0, first = ids->n;

	while (i < len) {
		utf8_next((const unsigned char *)w, len, &i);
		nchars++;
	}
	if (nchars > m->max_word)
		return 0;
	while (start < len) {
		size_t end = len;
		const struct piece *p = NULL;

		while (end > start) {
			tmp->len = 0;
			if (buf_reserve(tmp, m->prefix_len + end - start))
				return -ENOMEM;
			if (start) {
				memcpy(tmp->p, m->prefix, m->prefix_len);
				tmp->len = m->prefix_len;
			}
			memcpy(tmp->p + tmp->len, w + start, end - start);
			tmp->len += end - start;
			p = piece_find(m, tmp->p, tmp->len,
				       fnv1a(FNV_INIT, tmp->p, tmp->len));
			if (p)
				break;
			/* back off one code point */
			do
				end--;
			while (end > start && ((unsigned char)w[end] & 0xc0) == 0x80);
		}
		if (!p) {
			ids->n = first;
			return 0;
		}
		if (ids_push(ids, p->id))
			return -ENOMEM;
		start = end;
	}
	return 0;
}

/* Split at spaces, isolate punctuation, WordPiece each word. */
static int wordpiece(const struct m2v *m, const char *s, size_t len,
		     struct ids *ids, struct buf *tmp)
{
	size_t i = 0, word = 0;
	int ret;

	while (i < len) {
		size_t at = i;
		uint32_t cp = utf8_next((const unsigned char *)s, len, &i);

		if (cp == ' ' || is_punct(cp)) {
			if (at > word && (ret = wordpiece_word(m, s + word, at - word, ids, tmp)))
				return ret;
			if (cp != ' ' && (ret = wordpiece_word(m, s + at, i - at, ids, tmp)))
				return ret;
			word = i;
		}
	}
	if (len > word)
		return wordpiece_word(m, s + word, len - word, ids, tmp);
	return 0;
}

static int m2v_embed(const struct embedder *e, const char *text, size_t len,
		     float *out)
{
	const struct m2v *m = (const struct m2v *)e;
	struct buf a = { 0 }, b = { 0 }, c = { 0 };
	struct ids ids = { 0 };
	double *acc = NULL, nrm = 0;
	size_t i, k, dim = (size_t)e->dim;
	int ret;

	ret = normalize(m, text ? text : "", text ? len : 0, &a, &b);
	if (ret)
		goto out;
	if (a.len) {
		if (m->pre == PRE_METASPACE) {
			/* "▁" + text with every space a "▁" */
			c.len = 0;
			ret = -ENOMEM;
			if (buf_reserve(&c, (a.len + 1) * m->meta_len))
				goto out;
			memcpy(c.p, m->meta, m->meta_len);
			c.len = m->meta_len;
			for (i = 0; i < a.len; i++) {
				if (a.p[i] == ' ') {
					memcpy(c.p + c.len, m->meta, m->meta_len);
					c.len += m->meta_len;
				} else {
					c.p[c.len++] = a.p[i];
				}
			}
		}
		if (m->kind == TOK_UNIGRAM)
			ret = m->pre == PRE_METASPACE ?
				unigram(m, c.p, c.len, &ids) :
				unigram(m, a.p, a.len, &ids);
		else
			ret = m->pre == PRE_METASPACE ?
				wordpiece_word(m, c.p, c.len, &ids, &b) :
				wordpiece(m, a.p, a.len, &ids, &b);
		if (ret)
			goto out;
	}
	ret = -ENOMEM;
	acc = calloc(dim, sizeof(*acc));
	if (!acc)
		goto out;
	for (i = 0; i < ids.n; i++) {
		int32_t id = ids.v[i];
		int64_t row = m->mapping ? m->mapping[id] : id;
		double w = m->weights ? m->weights[id] : 1.0;
		const float *v = m->emb + (size_t)row * dim;

		for (k = 0; k < dim; k++)
			acc[k] += (double)v[k] * w;
	}
	if (m->normalize) {
		for (k = 0; k < dim; k++)
			nrm += acc[k] * acc[k];
		nrm = sqrt(nrm);
		if (nrm == 0)
			nrm = 1e-12;
	} else {
		nrm = ids.n ? (double)ids.n : 1.0;
	}
	for (k = 0; k < dim; k++)
		out[k] = (float)(acc[k] / nrm);
	ret = 0;
out:
	if (ret)
		embed_set_error("model2vec: cannot embed: %s", strerror(-ret));
	free(a.p);
	free(b.p);
	free(c.p);
	free(ids.v);
	free(acc);
	return ret;
}

static void m2v_free(struct embedder *e)
{
	struct m2v *m = (struct m2v *)e;
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nrules; i++) {
		free(m->rules[i].from);
		free(m->rules[i].to);
	}
	free(m->rules);
	free(m->pieces);
	free(m->pool);
	free(m->emb);
	free(m->mapping);
	free(m->weights);
	if (m->casemap)
		ucasemap_close(m->casemap);
	free(m);
}

static const struct embedder_ops m2v_ops = {
	.embed = m2v_embed,
	.free = m2v_free,
};

/* ---- loading --------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f,
		 man = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

struct tensor {
	const char *dtype;
	int64_t shape[2];
	int ndim;
	const unsigned char *data;
	size_t bytes;
};

static size_t dtype_size(const char *d)
{
	if (!strcmp(d, "F64") || !strcmp(d, "I64"))
		return 8;
	if (!strcmp(d, "F32") || !strcmp(d, "I32"))
		return 4;
	if (!strcmp(d, "F16"))
		return 2;
	return 0;
}

/* Find tensor name in the header; 1 found, 0 absent, <0 malformed. */
static int tensor_get(struct json_object *hdr, const char *name,
		      const unsigned char *base, size_t avail, struct tensor *t,
		      char *err, size_t errlen)
{
	struct json_object *o = get(hdr, name, json_type_object), *dt, *sh, *off;
	int64_t a, b, count = 1;
	size_t i, es;

	if (!o)
		return 0;
	dt = get(o, "dtype", json_type_string);
	sh = get(o, "shape", json_type_array);
	off = get(o, "data_offsets", json_type_array);
	if (!dt || !sh || !off || json_object_array_length(off) != 2 ||
	    json_object_array_length(sh) < 1 || json_object_array_length(sh) > 2)
		goto bad;
	t->dtype = json_object_get_string(dt);
	es = dtype_size(t->dtype);
	if (!es) {
		snprintf(err, errlen, "model2vec: tensor '%s' has dtype '%s' "
			 "(supported: F32, F16, F64, I32, I64)", name, t->dtype);
		return -ENOTSUP;
	}
	t->ndim = (int)json_object_array_length(sh);
	for (i = 0; i < (size_t)t->ndim; i++) {
		t->shape[i] = json_object_get_int64(json_object_array_get_idx(sh, i));
		if (t->shape[i] <= 0 || t->shape[i] > INT32_MAX)
			goto bad;
		count *= t->shape[i];
	}
	a = json_object_get_int64(json_object_array_get_idx(off, 0));
	b = json_object_get_int64(json_object_array_get_idx(off, 1));
	if (a < 0 || b < a || (uint64_t)b > avail ||
	    (uint64_t)(b - a) != (uint64_t)count * es)
		goto bad;
	t->data = base + a;
	t->bytes = (size_t)(b - a);
	return 1;
bad:
	snprintf(err, errlen, "model2vec: tensor '%s' in 'model.safetensors' "
		 "has a bad dtype, shape or offsets", name);
	return -EINVAL;
}

static double tensor_f(const struct tensor *t, size_t i)
{
	const unsigned char *p = t->data + i * dtype_size(t->dtype);
	double d;
	float f;
	uint16_t h;

	if (t->dtype[1] == '6') {
		memcpy(&d, p, 8);
		return d;
	}
	if (t->dtype[1] == '3') {
		memcpy(&f, p, 4);
		return f;
	}
	memcpy(&h, p, 2);
	return half_to_float(h);
}

static int64_t tensor_i(const struct tensor *t, size_t i)
{
	const unsigned char *p = t->data + i * dtype_size(t->dtype);
	int64_t v;
	int32_t w;

	if (t->dtype[1] == '6') {
		memcpy(&v, p, 8);
		return v;
	}
	memcpy(&w, p, 4);
	return w;
}

static int load_safetensors(struct m2v *m, const char *data, size_t len,
			    char *err, size_t errlen)
{
	struct tensor te, tm, tw;
	struct json_object *hdr;
	uint64_t hlen = 0;
	size_t i, n;
	int ret, hm, hw;

	for (i = 0; i < 8 && i < len; i++)
		hlen |= (uint64_t)(unsigned char)data[i] << (8 * i);
	if (len < 8 || hlen > len - 8 || hlen > (1u << 30)) {
		snprintf(err, errlen, "model2vec: 'model.safetensors' is too "
			 "short for its header length");
		return -EINVAL;
	}
	hdr = parse_json(data + 8, (size_t)hlen, "model.safetensors header",
			 err, errlen);
	if (!hdr)
		return -EINVAL;
	ret = tensor_get(hdr, "embeddings", (const unsigned char *)data + 8 + hlen,
			 len - 8 - hlen, &te, err, errlen);
	if (ret == 0) {
		snprintf(err, errlen, "model2vec: 'model.safetensors' has no "
			 "'embeddings' tensor");
		ret = -EINVAL;
	}
	if (ret < 0)
		goto out;
	if (te.ndim != 2 || te.dtype[0] != 'F') {
		snprintf(err, errlen, "model2vec: 'embeddings' must be a 2-d "
			 "float tensor");
		ret = -EINVAL;
		goto out;
	}
	hm = tensor_get(hdr, "mapping", (const unsigned char *)data + 8 + hlen,
			len - 8 - hlen, &tm, err, errlen);
	hw = hm < 0 ? 0 : tensor_get(hdr, "weights",
				     (const unsigned char *)data + 8 + hlen,
				     len - 8 - hlen, &tw, err, errlen);
	if (hm < 0 || hw < 0) {
		ret = hm < 0 ? hm : hw;
		goto out;
	}
	m->rows = te.shape[0];
	m->base.dim = (int)te.shape[1];
	n = (size_t)m->rows * (size_t)m->base.dim;
	ret = -ENOMEM;
	m->emb = malloc(n * sizeof(*m->emb));
	if (!m->emb)
		goto nomem;
	for (i = 0; i < n; i++)
		m->emb[i] = (float)tensor_f(&te, i);
	m->vocab = (int32_t)m->rows;
	if (hm) {
		if (tm.ndim != 1 || tm.dtype[0] != 'I')
			goto badshape;
		m->vocab = (int32_t)tm.shape[0];
		m->mapping = malloc((size_t)m->vocab * sizeof(*m->mapping));
		if (!m->mapping)
			goto nomem;
		for (i = 0; i < (size_t)m->vocab; i++) {
			int64_t r = tensor_i(&tm, i);

			if (r < 0 || r >= m->rows)
				goto badshape;
			m->mapping[i] = (int32_t)r;
		}
	}
	if (hw) {
		if (tw.ndim != 1 || tw.dtype[0] != 'F' || tw.shape[0] != m->vocab)
			goto badshape;
		m->weights = malloc((size_t)m->vocab * sizeof(*m->weights));
		if (!m->weights)
			goto nomem;
		for (i = 0; i < (size_t)m->vocab; i++)
			m->weights[i] = tensor_f(&tw, i);
	}
	ret = 0;
	goto out;
badshape:
	snprintf(err, errlen, "model2vec: 'mapping' or 'weights' does not fit "
		 "'embeddings' in 'model.safetensors'");
	ret = -EINVAL;
	goto out;
nomem:
	snprintf(err, errlen, "model2vec: out of memory loading the model");
	ret = -ENOMEM;
out:
	json_object_put(hdr);
	return ret;
}

static int add_rule(struct m2v *m, struct json_object *step, char *err,
		    size_t errlen)
{
	struct json_object *pat = get(step, "pattern", json_type_object);
	struct json_object *from = get(pat, "String", json_type_string);
	struct json_object *to = get(step, "content", json_type_string);
	struct replace_rule *nr, *r;

	if (!from && to && !strcmp(json_object_get_string(to), " ") &&
	    (from = get(pat, "Regex", json_type_string)) &&
	    !strcmp(json_object_get_string(from), "\\s+")) {
		m->collapse = true;
		return 0;
	}
	if (!from || !to) {
		snprintf(err, errlen, "model2vec: only string Replace steps and "
			 "the Regex '\\s+' are supported in the normalizer of "
			 "'tokenizer.json'");
		return -ENOTSUP;
	}
	nr = realloc(m->rules, (m->nrules + 1) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	m->rules = nr;
	r = &m->rules[m->nrules];
	r->from_len = (size_t)json_object_get_string_len(from);
	r->to_len = (size_t)json_object_get_string_len(to);
	r->from = malloc(r->from_len + 1);
	r->to = malloc(r->to_len + 1);
	if (!r->from || !r->to) {
		free(r->from);
		free(r->to);
		return -ENOMEM;
	}
	memcpy(r->from, json_object_get_string(from), r->from_len + 1);
	memcpy(r->to, json_object_get_string(to), r->to_len + 1);
	m->nrules++;
	return 0;
}

static bool flag(struct json_object *o, const char *key, bool def)
{
	struct json_object *v = get(o, key, json_type_boolean);

	return v ? json_object_get_boolean(v) : def;
}

static int load_normalizer(struct m2v *m, struct json_object *norm, char *err,
			   size_t errlen)
{
	struct json_object *type = get(norm, "type", json_type_string), *list;
	const char *t;
	size_t i;
	int ret;

	if (!norm || json_object_is_type(norm, json_type_null))
		return 0;
	t = type ? json_object_get_string(type) : "";
	if (!strcmp(t, "Sequence")) {
		list = get(norm, "normalizers", json_type_array);
		for (i = 0; list && i < json_object_array_length(list); i++) {
			ret = load_normalizer(m, json_object_array_get_idx(list, i),
					      err, errlen);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (!strcmp(t, "BertNormalizer")) {
		m->clean = flag(norm, "clean_text", true);
		m->chinese = flag(norm, "handle_chinese_chars", true);
		m->lowercase = flag(norm, "lowercase", true);
		m->strip_accents = flag(norm, "strip_accents", false);
		if (m->strip_accents) {
			snprintf(err, errlen, "model2vec: BertNormalizer with "
				 "strip_accents: true is not supported");
			return -ENOTSUP;
		}
		return 0;
	}
	if (!strcmp(t, "Lowercase")) {
		m->lowercase = true;
		return 0;
	}
	if (!strcmp(t, "Replace"))
		return add_rule(m, norm, err, errlen);
	if (!strcmp(t, "Strip")) {
		if (flag(norm, "strip_left", true) != flag(norm, "strip_right", true)) {
			snprintf(err, errlen, "model2vec: a one-sided Strip "
				 "normalizer is not supported");
			return -ENOTSUP;
		}
		m->strip = flag(norm, "strip_left", true);
		return 0;
	}
	snprintf(err, errlen, "model2vec: normalizer step '%s' in "
		 "'tokenizer.json' is not supported (supported: Sequence, "
		 "BertNormalizer, Lowercase, Replace, Strip)", t);
	return -ENOTSUP;
}

static int load_tokenizer(struct m2v *m, const char *data, size_t len,
			  char *err, size_t errlen)
{
	struct json_object *root, *model, *type, *vocab, *pre, *o;
	const char *t, *pt;
	size_t pool_len = 0, n, i, used = 0;
	int ret = -EINVAL;

	root = parse_json(data, len, "tokenizer.json", err, errlen);
	if (!root)
		return -EINVAL;
	model = get(root, "model", json_type_object);
	type = get(model, "type", json_type_string);
	t = type ? json_object_get_string(type) : "";
	if (!strcmp(t, "Unigram")) {
		m->kind = TOK_UNIGRAM;
		vocab = get(model, "vocab", json_type_array);
		n = vocab ? json_object_array_length(vocab) : 0;
	} else if (!strcmp(t, "WordPiece")) {
		m->kind = TOK_WORDPIECE;
		vocab = get(model, "vocab", json_type_object);
		n = vocab ? (size_t)json_object_object_length(vocab) : 0;
	} else {
		snprintf(err, errlen, "model2vec: tokenizer model '%s' is not "
			 "supported (supported: Unigram, WordPiece)", t);
		ret = -ENOTSUP;
		goto out;
	}
	if (!n || n > INT32_MAX / 2) {
		snprintf(err, errlen, "model2vec: 'tokenizer.json' has no vocabulary");
		goto out;
	}
	if ((ret = load_normalizer(m, get(root, "normalizer", json_type_object),
				   err, errlen)))
		goto out;
	ret = -EINVAL;

	/* pre-tokenizer: Metaspace, or BERT-style splitting */
	pre = get(root, "pre_tokenizer", json_type_object);
	o = get(pre, "type", json_type_string);
	pt = o ? json_object_get_string(o) : "";
	if (!strcmp(pt, "Metaspace")) {
		m->pre = PRE_METASPACE;
		o = get(pre, "replacement", json_type_string);
		snprintf(m->meta, sizeof(m->meta), "%s",
			 o ? json_object_get_string(o) : META_DEFAULT);
	} else if (!strcmp(pt, "BertPreTokenizer") || !strcmp(pt, "Whitespace") ||
		   (!*pt && m->kind == TOK_WORDPIECE)) {
		m->pre = PRE_BERT;
	} else {
		snprintf(err, errlen, "model2vec: pre_tokenizer '%s' in "
			 "'tokenizer.json' is not supported (supported: "
			 "Metaspace, BertPreTokenizer, Whitespace)", pt);
		ret = -ENOTSUP;
		goto out;
	}
	m->meta_len = strlen(m->meta);

	/* vocabulary: a pool of piece bytes and a hash table */
	if (m->kind == TOK_UNIGRAM) {
		for (i = 0; i < n; i++) {
			o = json_object_array_get_idx(vocab, i);
			if (!json_object_is_type(o, json_type_array) ||
			    json_object_array_length(o) != 2 ||
			    !json_object_is_type(json_object_array_get_idx(o, 0),
						 json_type_string)) {
				snprintf(err, errlen, "model2vec: Unigram vocab "
					 "entry %zu is not [piece, score]", i);
				goto out;
			}
			pool_len += (size_t)json_object_get_string_len(
				json_object_array_get_idx(o, 0)) + 1;
		}
	} else {
		json_object_object_foreach(vocab, key, val) {
			(void)val;
			pool_len += strlen(key) + 1;
		}
	}
	for (m->cap = 16; m->cap < 2 * n; m->cap *= 2)
		;
	ret = -ENOMEM;
	m->pieces = calloc(m->cap, sizeof(*m->pieces));
	m->pool = malloc(pool_len + 1);
	if (!m->pieces || !m->pool) {
		snprintf(err, errlen, "model2vec: out of memory loading the vocabulary");
		goto out;
	}
	ret = -EINVAL;
	if (m->kind == TOK_UNIGRAM) {
		o = get(model, "unk_id", json_type_int);
		m->unk_id = o ? json_object_get_int(o) : -1;
		for (i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(vocab, i);
			struct json_object *ps = json_object_array_get_idx(e, 0);
			size_t pl = (size_t)json_object_get_string_len(ps), cps = 0, k = 0;

			memcpy(m->pool + used, json_object_get_string(ps), pl);
			while (k < pl) {
				utf8_next((const unsigned char *)m->pool + used, pl, &k);
				cps++;
			}
			if (cps > m->maxlen)
				m->maxlen = cps;
			piece_add(m, m->pool + used, pl, (int32_t)i,
				  json_object_get_double(json_object_array_get_idx(e, 1)));
			used += pl + 1;
		}
	} else {
		o = get(model, "unk_token", json_type_string);
		m->unk_id = -1;
		json_object_object_foreach(vocab, key, val) {
			size_t pl = strlen(key);
			int64_t id = json_object_get_int64(val);

			if (!json_object_is_type(val, json_type_int) || id < 0 ||
			    id >= (int64_t)n * 2) {
				snprintf(err, errlen, "model2vec: WordPiece vocab "
					 "id of '%s' is not a token id", key);
				goto out;
			}
			memcpy(m->pool + used, key, pl + 1);
			piece_add(m, m->pool + used, pl, (int32_t)id, 0);
			if (o && !strcmp(key, json_object_get_string(o)))
				m->unk_id = (int32_t)id;
			used += pl + 1;
		}
		o = get(model, "continuing_subword_prefix", json_type_string);
		snprintf(m->prefix, sizeof(m->prefix), "%s",
			 o ? json_object_get_string(o) : "##");
		m->prefix_len = strlen(m->prefix);
		o = get(model, "max_input_chars_per_word", json_type_int);
		m->max_word = o ? (size_t)json_object_get_int64(o) : 100;
	}
	ret = 0;
out:
	json_object_put(root);
	return ret;
}

/* Every token id must have a row. */
static int check_ids(struct m2v *m, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < m->cap; i++) {
		const struct piece *p = &m->pieces[i];

		if (p->s && (p->id >= m->vocab) && p->id != m->unk_id) {
			snprintf(err, errlen, "model2vec: token id %d is past the "
				 "%d rows of the model", p->id, m->vocab);
			return -EINVAL;
		}
	}
	return 0;
}

int embed_model2vec_new(const char *dir, struct embedder **out, char *err,
			size_t errlen)
{
	char *st = NULL, *tok = NULL, *cfg = NULL;
	size_t st_len = 0, tok_len = 0, cfg_len = 0;
	struct json_object *config = NULL, *o;
	UErrorCode us = U_ZERO_ERROR;
	struct m2v *m;
	uint64_t h;
	int ret;

	*out = NULL;
	if (!dir || dir[0] != '/') {
		snprintf(err, errlen, "model2vec: '%s' is not an absolute "
			 "directory", dir ? dir : "");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "model2vec: out of memory");
		return -ENOMEM;
	}
	m->base.ops = &m2v_ops;
	m->normalize = true;
	m->unk_id = -1;
	snprintf(m->meta, sizeof(m->meta), META_DEFAULT);
	if ((ret = read_file(dir, "model.safetensors", &st, &st_len, err, errlen)) ||
	    (ret = read_file(dir, "tokenizer.json", &tok, &tok_len, err, errlen)))
		goto fail;
	/* config.json is optional; without it the vectors are normalised */
	if (read_file(dir, "config.json", &cfg, &cfg_len, err, errlen) == 0) {
		config = parse_json(cfg, cfg_len, "config.json", err, errlen);
		if (!config) {
			ret = -EINVAL;
			goto fail;
		}
		o = get(config, "normalize", json_type_boolean);
		if (o)
			m->normalize = json_object_get_boolean(o);
	}
	err[0] = '\0';
	if ((ret = load_safetensors(m, st, st_len, err, errlen)) ||
	    (ret = load_tokenizer(m, tok, tok_len, err, errlen)) ||
	    (ret = check_ids(m, err, errlen)))
		goto fail;
	m->casemap = ucasemap_open("", 0, &us);
	if (U_FAILURE(us)) {
		snprintf(err, errlen, "model2vec: cannot open the icu case map: %s",
			 u_errorName(us));
		ret = -EIO;
		goto fail;
	}
	h = fnv1a(FNV_INIT, st, st_len);
	h = fnv1a(h, tok, tok_len);
	h = fnv1a(h, &m->normalize, sizeof(m->normalize));
	snprintf(m->base.name, sizeof(m->base.name), "model2vec-%d-%016llx",
		 m->base.dim, (unsigned long long)h);
	json_object_put(config);
	free(st);
	free(tok);
	free(cfg);
	*out = &m->base;
	return 0;
fail:
	if (ret != -ENOENT && !err[0])
		snprintf(err, errlen, "model2vec: cannot load '%s': %s", dir,
			 strerror(-ret));
	json_object_put(config);
	free(st);
	free(tok);
	free(cfg);
	m2v_free(&m->base);
	return ret;
}
