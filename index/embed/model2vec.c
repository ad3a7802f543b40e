/*
 * model2vec.c - Model2Vec static embeddings ("model2vec:/DIR"): loading a
 * model directory and pooling token vectors.
 *
 * A Model2Vec model is a table of token vectors: a query is normalised
 * (m2v_text.c), tokenised (m2v_tokenize.c), and its token vectors (times an
 * optional per-token weight) are summed; the sum is L2-normalised when
 * config.json says "normalize": true (the default), else divided by the
 * token count (mean pooling).
 *
 * Files, all read once at creation (nothing is kept open):
 * model.safetensors (m2v_safetensors.c), tokenizer.json
 * (m2v_tokenizer_json.c) and the optional config.json ("normalize"). The
 * embedder's name hashes the first two files and the normalize flag, so
 * another model gives another name.
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

#include "model2vec_i.h"
#include "semlog.h"

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
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "model2vec: cannot stat '%s': %s", path,
			 strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
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

struct json_object *m2v_parse_json(const char *data, size_t len,
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

struct json_object *m2v_json_get(struct json_object *o, const char *key,
				 json_type type)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	if (!json_object_is_type(v, type))
		return NULL;
	return v;
}

static int m2v_embed(const struct embedder *e, const char *text, size_t len,
		     float *out)
{
	const struct m2v *m = (const struct m2v *)e;
	struct m2v_buf a = { 0 }, b = { 0 }, c = { 0 };
	struct m2v_ids ids = { 0 };
	double *acc = NULL, nrm = 0;
	size_t i, k, dim = (size_t)e->dim;
	int ret;

	ret = m2v_normalize(m, text ? text : "", text ? len : 0, &a, &b);
	if (ret)
		goto out;
	if (a.len) {
		if (m->pre == M2V_PRE_METASPACE) {
			/* "▁" + text with every space a "▁" */
			c.len = 0;
			ret = -ENOMEM;
			if (m2v_buf_reserve(&c, (a.len + 1) * m->meta_len))
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
		if (m->kind == M2V_TOK_UNIGRAM)
			ret = m->pre == M2V_PRE_METASPACE ?
				m2v_unigram(m, c.p, c.len, &ids) :
				m2v_unigram(m, a.p, a.len, &ids);
		else
			ret = m->pre == M2V_PRE_METASPACE ?
				m2v_wordpiece_word(m, c.p, c.len, &ids, &b) :
				m2v_wordpiece(m, a.p, a.len, &ids, &b);
		if (ret)
			goto out;
	}
	ret = -ENOMEM;
	acc = calloc(dim, sizeof(*acc));
	if (!acc)
		goto out;
	for (i = 0; i < ids.n; i++) {
		int32_t id = ids.v[i];
		int64_t row;

		if (id < 0 || id >= m->vocab)
			BUG("model2vec: token id past the rows passed check_ids");
		row = m->mapping ? m->mapping[id] : id;
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

/*
 * Every token id must have a row, the unknown token's too: a tokeniser may
 * emit any piece it holds (WordPiece matches "[UNK]" written out), and
 * m2v_embed() indexes the rows, mapping and weights by it.
 */
static int check_ids(struct m2v *m, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < m->cap; i++) {
		const struct m2v_piece *p = &m->pieces[i];

		if (p->s && (p->id < 0 || p->id >= m->vocab)) {
			snprintf(err, errlen, "model2vec: token id %d%s in "
				 "'tokenizer.json' is past the %d rows of "
				 "'model.safetensors'; the model is broken",
				 p->id, p->id == m->unk_id ?
				 " (the unknown token)" : "", m->vocab);
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
	snprintf(m->meta, sizeof(m->meta), M2V_META_DEFAULT);
	if ((ret = read_file(dir, "model.safetensors", &st, &st_len, err, errlen)) ||
	    (ret = read_file(dir, "tokenizer.json", &tok, &tok_len, err, errlen)))
		goto fail;
	/* config.json is optional; without it the vectors are normalised */
	if (read_file(dir, "config.json", &cfg, &cfg_len, err, errlen) == 0) {
		config = m2v_parse_json(cfg, cfg_len, "config.json", err, errlen);
		if (!config) {
			ret = -EINVAL;
			goto fail;
		}
		o = m2v_json_get(config, "normalize", json_type_boolean);
		if (o)
			m->normalize = json_object_get_boolean(o);
	}
	err[0] = '\0';
	if ((ret = m2v_load_safetensors(m, st, st_len, err, errlen)) ||
	    (ret = m2v_load_tokenizer(m, tok, tok_len, err, errlen)) ||
	    (ret = check_ids(m, err, errlen)))
		goto fail;
	m->casemap = ucasemap_open("", 0, &us);
	if (U_FAILURE(us)) {
		snprintf(err, errlen, "model2vec: cannot open the icu case map: %s",
			 u_errorName(us));
		ret = -EIO;
		goto fail;
	}
	h = embed_fnv1a(EMBED_FNV_INIT, st, st_len);
	h = embed_fnv1a(h, tok, tok_len);
	h = embed_fnv1a(h, &m->normalize, sizeof(m->normalize));
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
