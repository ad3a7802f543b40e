/*
 * m2v_tokenizer_json.c - reading a Model2Vec tokenizer.json (json-c).
 *
 * From the Hugging Face tokenizer file it takes: the normaliser (Sequence
 * of BertNormalizer, Lowercase, Strip and string Replace steps, plus the
 * Regex Replace "\s+" -> " " as a white-space collapse), the
 * pre-tokeniser (Metaspace, or BertPreTokenizer/Whitespace splitting) and
 * the model: Unigram ([piece, score] pairs, unk_id) or WordPiece (piece ->
 * id, unk_token, continuing_subword_prefix, max_input_chars_per_word). The
 * piece bytes are copied into one pool and indexed in the piece table.
 *
 * What not: any other step is refused with a message naming it (other
 * Regex Replaces, Precompiled, NFC/NFKC, one-sided Strip, strip_accents:
 * true, BPE models); post-processors and added tokens are ignored.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model2vec_i.h"

static int add_rule(struct m2v *m, struct json_object *step, char *err,
		    size_t errlen)
{
	struct json_object *pat = m2v_json_get(step, "pattern", json_type_object);
	struct json_object *from = m2v_json_get(pat, "String", json_type_string);
	struct json_object *to = m2v_json_get(step, "content", json_type_string);
	struct m2v_rule *nr, *r;

	if (!from && to && !strcmp(json_object_get_string(to), " ") &&
	    (from = m2v_json_get(pat, "Regex", json_type_string)) &&
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
	struct json_object *v = m2v_json_get(o, key, json_type_boolean);

	return v ? json_object_get_boolean(v) : def;
}

/* o's string member key, or def when absent or not a string. */
static const char *str(struct json_object *o, const char *key,
		       const char *def)
{
	struct json_object *v = m2v_json_get(o, key, json_type_string);

	return v ? json_object_get_string(v) : def;
}

static int load_normalizer(struct m2v *m, struct json_object *norm, char *err,
			   size_t errlen)
{
	struct json_object *list;
	const char *t;
	size_t i;
	int ret;

	if (!norm || json_object_is_type(norm, json_type_null))
		return 0;
	t = str(norm, "type", "");
	if (!strcmp(t, "Sequence")) {
		list = m2v_json_get(norm, "normalizers", json_type_array);
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

int m2v_load_tokenizer(struct m2v *m, const char *data, size_t len,
		       char *err, size_t errlen)
{
	struct json_object *root, *model, *vocab, *pre, *o;
	const char *t, *pt, *unk;
	size_t pool_len = 0, n, i, used = 0;
	int ret = -EINVAL;

	root = m2v_parse_json(data, len, "tokenizer.json", err, errlen);
	if (!root)
		return -EINVAL;
	model = m2v_json_get(root, "model", json_type_object);
	t = str(model, "type", "");
	if (!strcmp(t, "Unigram")) {
		m->kind = M2V_TOK_UNIGRAM;
		vocab = m2v_json_get(model, "vocab", json_type_array);
		n = vocab ? json_object_array_length(vocab) : 0;
	} else if (!strcmp(t, "WordPiece")) {
		m->kind = M2V_TOK_WORDPIECE;
		vocab = m2v_json_get(model, "vocab", json_type_object);
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
	if ((ret = load_normalizer(m, m2v_json_get(root, "normalizer",
						   json_type_object),
				   err, errlen)))
		goto out;
	ret = -EINVAL;

	/* pre-tokenizer: Metaspace, or BERT-style splitting */
	pre = m2v_json_get(root, "pre_tokenizer", json_type_object);
	pt = str(pre, "type", "");
	if (!strcmp(pt, "Metaspace")) {
		m->pre = M2V_PRE_METASPACE;
		snprintf(m->meta, sizeof(m->meta), "%s",
			 str(pre, "replacement", M2V_META_DEFAULT));
	} else if (!strcmp(pt, "BertPreTokenizer") || !strcmp(pt, "Whitespace") ||
		   (!*pt && m->kind == M2V_TOK_WORDPIECE)) {
		m->pre = M2V_PRE_BERT;
	} else {
		snprintf(err, errlen, "model2vec: pre_tokenizer '%s' in "
			 "'tokenizer.json' is not supported (supported: "
			 "Metaspace, BertPreTokenizer, Whitespace)", pt);
		ret = -ENOTSUP;
		goto out;
	}
	m->meta_len = strlen(m->meta);

	/* vocabulary: a pool of piece bytes and a hash table */
	if (m->kind == M2V_TOK_UNIGRAM) {
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
	if (m->kind == M2V_TOK_UNIGRAM) {
		o = m2v_json_get(model, "unk_id", json_type_int);
		m->unk_id = o ? json_object_get_int(o) : -1;
		for (i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(vocab, i);
			struct json_object *ps = json_object_array_get_idx(e, 0);
			size_t pl = (size_t)json_object_get_string_len(ps), cps = 0, k = 0;

			memcpy(m->pool + used, json_object_get_string(ps), pl);
			while (k < pl) {
				embed_utf8_next((const unsigned char *)m->pool + used,
					      pl, &k);
				cps++;
			}
			if (cps > m->maxlen)
				m->maxlen = cps;
			m2v_piece_add(m, m->pool + used, pl, (int32_t)i,
				      json_object_get_double(json_object_array_get_idx(e, 1)));
			used += pl + 1;
		}
	} else {
		unk = str(model, "unk_token", NULL);
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
			m2v_piece_add(m, m->pool + used, pl, (int32_t)id, 0);
			if (unk && !strcmp(key, unk))
				m->unk_id = (int32_t)id;
			used += pl + 1;
		}
		snprintf(m->prefix, sizeof(m->prefix), "%s",
			 str(model, "continuing_subword_prefix", "##"));
		m->prefix_len = strlen(m->prefix);
		o = m2v_json_get(model, "max_input_chars_per_word", json_type_int);
		m->max_word = o ? (size_t)json_object_get_int64(o) : 100;
	}
	ret = 0;
out:
	json_object_put(root);
	return ret;
}
