/*
 * m2v_text.c - the Model2Vec normaliser: UTF-8 in, normalised UTF-8 out.
 *
 * The pipeline follows the fixture's reference_encoder.py exactly (it is
 * our oracle; tests/unit/test_model2vec.c compares on 1000 strings):
 * invalid UTF-8 becomes U+FFFD; NUL, U+FFFD and every Unicode "other"
 * character (Cc, Cf, Cn, Co, Cs) except tab/newline/return is dropped; those
 * three and Zs become spaces; CJK ideographs get spaces around them; the
 * text is lowercased with full Unicode case mapping (ICU, root locale, as
 * Python's str.lower); Replace rules run in order; runs of white space
 * (Python's str.isspace: Zs or bidi class WS/B/S) collapse to one space and
 * the ends are stripped. Which steps run is read from tokenizer.json
 * (m2v_tokenizer_json.c). There is no truncation: a 64 KiB query costs one
 * linear pass.
 *
 * Deliberate differences from Hugging Face tokenizers, as in the oracle:
 * BertNormalizer's "strip_accents": null does not strip accents (only an
 * explicit true does), and only the three CJK blocks of the oracle are
 * spaced. Character categories come from ICU, whose Unicode version may be
 * newer than Python's: a character assigned only in the newer version is
 * dropped by one and kept by the other.
 *
 * What not: no Unicode normalisation forms (NFC/NFKC), no accent stripping,
 * no regular expressions beyond the \s+ collapse.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>

#include "model2vec_i.h"

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
bool m2v_is_punct(uint32_t cp)
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

void *m2v_grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t ncap;

	if (p && need <= *cap)
		return p;
	if (need > (SIZE_MAX / size - 64) / 2)
		return NULL;
	ncap = need * 2 + 64;
	p = realloc(p, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

int m2v_buf_reserve(struct m2v_buf *b, size_t extra)
{
	char *np = m2v_grow(b->p, &b->cap, b->len + extra, 1);

	if (!np)
		return -ENOMEM;
	b->p = np;
	return 0;
}

/* Replace every from with to, left to right (Python's str.replace). */
static int apply_rule(const struct m2v_rule *r, struct m2v_buf *in, struct m2v_buf *tmp)
{
	const char *s = in->p, *end = in->p + in->len, *hit;
	struct m2v_buf t;

	if (!r->from_len || !memmem(s, in->len, r->from, r->from_len))
		return 0;
	tmp->len = 0;
	while ((hit = memmem(s, (size_t)(end - s), r->from, r->from_len))) {
		if (m2v_buf_reserve(tmp, (size_t)(hit - s) + r->to_len))
			return -ENOMEM;
		memcpy(tmp->p + tmp->len, s, (size_t)(hit - s));
		tmp->len += (size_t)(hit - s);
		memcpy(tmp->p + tmp->len, r->to, r->to_len);
		tmp->len += r->to_len;
		s = hit + r->from_len;
	}
	if (m2v_buf_reserve(tmp, (size_t)(end - s) + 1))
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
 * space). tmp is scratch; the caller frees both buffers.
 */
int m2v_normalize(const struct m2v *m, const char *text, size_t len,
		  struct m2v_buf *out, struct m2v_buf *tmp)
{
	const unsigned char *s = (const unsigned char *)text;
	UErrorCode st = U_ZERO_ERROR;
	size_t i = 0, r;
	int32_t n;

	/* 1. clean, space CJK: at most 5 output bytes per input byte */
	tmp->len = 0;
	if (m2v_buf_reserve(tmp, len * 5 + 16))
		return -ENOMEM;
	while (i < len) {
		uint32_t cp = embed_utf8_next(s, len, &i);

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
			tmp->len += embed_utf8_put(tmp->p + tmp->len, cp);
			tmp->p[tmp->len++] = ' ';
			continue;
		}
		tmp->len += embed_utf8_put(tmp->p + tmp->len, cp);
	}

	/* 2. lowercase (full case mapping, may grow) */
	if (m->lowercase && tmp->len) {
		if (tmp->len > INT32_MAX / 4)
			return -E2BIG;
		out->len = 0;
		if (m2v_buf_reserve(out, tmp->len * 3 / 2 + 16))
			return -ENOMEM;
		n = ucasemap_utf8ToLower(m->casemap, out->p, (int32_t)out->cap,
					 tmp->p, (int32_t)tmp->len, &st);
		if (st == U_BUFFER_OVERFLOW_ERROR) {
			st = U_ZERO_ERROR;
			if (m2v_buf_reserve(out, (size_t)n + 1))
				return -ENOMEM;
			n = ucasemap_utf8ToLower(m->casemap, out->p,
						 (int32_t)out->cap, tmp->p,
						 (int32_t)tmp->len, &st);
		}
		if (U_FAILURE(st))
			return -EIO;
		out->len = (size_t)n;
	} else {
		struct m2v_buf t = *out;

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
	if (m2v_buf_reserve(tmp, out->len + 1))
		return -ENOMEM;
	{
		bool pending = false;

		i = 0;
		while (i < out->len) {
			size_t at = i;
			uint32_t cp = embed_utf8_next((const unsigned char *)out->p,
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
		struct m2v_buf t = *out;

		*out = *tmp;
		*tmp = t;
	}
	return 0;
}
