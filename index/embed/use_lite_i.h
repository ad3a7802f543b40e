/*
 * use_lite_i.h - the loaded Universal Sentence Encoder lite, shared by the
 * loader (use_lite.c) and the forward pass (use_lite_net.c). Private to
 * index/embed/.
 *
 * Everything here is written once by embed_use_lite_new() and only read
 * afterwards, so threads share a model without locks. The weight pointers
 * point into blob (the shards, concatenated as the weights manifest says)
 * or, for timing, into a table computed at load.
 */
#ifndef SEMCACHE_USE_LITE_I_H
#define SEMCACHE_USE_LITE_I_H

#include "use_lite.h"

struct json_object;

#define USE_EMB 256      /* token embedding width */
#define USE_D 512        /* model width after layer 0 */
#define USE_FFN 1536     /* feed-forward width */
#define USE_TIMESCALES 128
#define USE_HEADS 4
#define USE_MAXLEN_MAX 4096

struct use_layer {
	int din;                   /* input width: 256, then 512 */
	int d;                     /* attention width (q, k, v each) */
	float qscale;              /* 1 / sqrt(d / heads), from the graph */
	const float *ln_s, *ln_b;  /* [din] */
	const float *wqkv, *bqkv;  /* [din][3d], [3d] */
	const float *wo, *bo;      /* [d][USE_D], [USE_D] */
	const float *fln_s, *fln_b;/* [USE_D] */
	const float *w1, *b1;      /* [USE_D][USE_FFN], [USE_FFN] */
	const float *w2, *b2;      /* [USE_FFN][USE_D], [USE_D] */
};

struct use_lite {
	struct embedder base;
	struct use_tok *tok;
	void *blob;                /* all weight bytes */
	size_t blob_len;
	const float *emb;          /* [rows][USE_EMB] */
	int64_t rows;
	float *timing;             /* [maxlen][USE_EMB]: sin | cos */
	int maxlen;                /* tokens past it are dropped (128) */
	float eps;                 /* layer norm epsilon */
	float l2eps;               /* floor of the squared norm */
	const float *wres, *bres;  /* layer 0 residual projection [USE_EMB][USE_D] */
	const float *wt, *bt;      /* the tanh layer [USE_D][USE_D] */
	struct use_layer l[2];
};

/* Parse len bytes of JSON; NULL with a message naming the file on error. */
struct json_object *use_json_parse(const char *data, size_t len,
				   const char *name, char *err, size_t errlen);

/* The forward pass over k token sequences (ids[i], n[i] <= maxlen tokens);
 * out gets k * USE_LITE_DIM floats. 0 or -ENOMEM. */
int use_lite_forward(const struct use_lite *m, const int32_t *const *ids,
		     const size_t *n, size_t k, float *out);

#endif
