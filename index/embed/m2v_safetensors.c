/*
 * m2v_safetensors.c - reading a Model2Vec model.safetensors file.
 *
 * The file: an 8-byte little-endian header length, a JSON header (read with
 * json-c) naming tensors with dtype, shape and byte offsets, then the
 * tensor bytes. "embeddings" [rows, dim] is required (F32, F16 or F64).
 * Vocabulary-quantised models (the test fixture) add "mapping" [vocab] (I32
 * or I64: token id -> embeddings row) and "weights" [vocab] (F64, F32 or
 * F16). Every offset and shape is checked against the file before use;
 * the tensors are copied out (floats, int32 rows, double weights), so the
 * file's bytes can be freed after loading.
 *
 * What not: no memory mapping, no other dtypes (BF16, I8...), no tensors
 * beyond these three.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model2vec_i.h"

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
	struct json_object *o = m2v_json_get(hdr, name, json_type_object);
	struct json_object *dt, *sh, *off;
	int64_t a, b, count = 1;
	size_t i, es;

	if (!o)
		return 0;
	dt = m2v_json_get(o, "dtype", json_type_string);
	sh = m2v_json_get(o, "shape", json_type_array);
	off = m2v_json_get(o, "data_offsets", json_type_array);
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

int m2v_load_safetensors(struct m2v *m, const char *data, size_t len,
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
	hdr = m2v_parse_json(data + 8, (size_t)hlen, "model.safetensors header",
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
