/*
 * m2v_tokenize.c - the Model2Vec tokenisers: Unigram and WordPiece over
 * normalised text, giving token ids.
 *
 * The vocabulary is an open-addressing table of pieces (FNV-1a, linear
 * probing, at most half full) filled once by m2v_tokenizer_json.c. Unigram
 * is the Viterbi search of the oracle (reference_encoder.py) over piece
 * scores, an unknown code point costing UNK_PENALTY; WordPiece is greedy
 * longest match first with the continuing-subword prefix ("##"). Unknown
 * pieces and words are dropped (not embedded), as in the oracle.
 *
 * What not: no BPE, no byte fallback, no truncation or special tokens.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model2vec_i.h"

#define UNK_PENALTY (-1e6)

static const struct m2v_piece *piece_find(const struct m2v *m, const char *s,
					  size_t len, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		const struct m2v_piece *p = &m->pieces[i];

		if (!p->s)
			return NULL;
		if (p->len == len && memcmp(p->s, s, len) == 0)
			return p;
	}
}

int m2v_piece_add(struct m2v *m, const char *s, size_t len, int32_t id,
		  double score)
{
	uint64_t h = embed_fnv1a(EMBED_FNV_INIT, s, len);
	size_t i = (size_t)h & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		struct m2v_piece *p = &m->pieces[i];

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

static int ids_push(struct m2v_ids *ids, int32_t id)
{
	int32_t *nv = m2v_grow(ids->v, &ids->cap, ids->n + 1, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	ids->v = nv;
	ids->v[ids->n++] = id;
	return 0;
}

/* Viterbi over s (UTF-8) as the oracle does it, appending known ids. */
int m2v_unigram(const struct m2v *m, const char *s, size_t len,
		struct m2v_ids *ids)
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
		embed_utf8_next((const unsigned char *)s, len, &i);
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
		uint64_t h = EMBED_FNV_INIT;
		double v;

		if (best[i] <= -1e17)
			continue;
		for (L = 1; L <= m->maxlen && i + L <= n; L++) {
			const struct m2v_piece *p;

			h = embed_fnv1a(h, s + off[i + L - 1], off[i + L] - off[i + L - 1]);
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
int m2v_wordpiece_word(const struct m2v *m, const char *w, size_t len,
		       struct m2v_ids *ids, struct m2v_buf *tmp)
{
	size_t start = 0, nchars = 0, i = 0, first = ids->n;

	while (i < len) {
		embed_utf8_next((const unsigned char *)w, len, &i);
		nchars++;
	}
	if (nchars > m->max_word)
		return 0;
	while (start < len) {
		size_t end = len;
		const struct m2v_piece *p = NULL;

		while (end > start) {
			tmp->len = 0;
			if (m2v_buf_reserve(tmp, m->prefix_len + end - start))
				return -ENOMEM;
			if (start) {
				memcpy(tmp->p, m->prefix, m->prefix_len);
				tmp->len = m->prefix_len;
			}
			memcpy(tmp->p + tmp->len, w + start, end - start);
			tmp->len += end - start;
			p = piece_find(m, tmp->p, tmp->len,
				       embed_fnv1a(EMBED_FNV_INIT, tmp->p, tmp->len));
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
int m2v_wordpiece(const struct m2v *m, const char *s, size_t len,
		  struct m2v_ids *ids, struct m2v_buf *tmp)
{
	size_t i = 0, word = 0;
	int ret;

	while (i < len) {
		size_t at = i;
		uint32_t cp = embed_utf8_next((const unsigned char *)s, len, &i);

		if (cp == ' ' || m2v_is_punct(cp)) {
			if (at > word &&
			    (ret = m2v_wordpiece_word(m, s + word, at - word,
						      ids, tmp)))
				return ret;
			if (cp != ' ' &&
			    (ret = m2v_wordpiece_word(m, s + at, i - at,
						      ids, tmp)))
				return ret;
			word = i;
		}
	}
	if (len > word)
		return m2v_wordpiece_word(m, s + word, len - word, ids, tmp);
	return 0;
}
