/*
 * use_lite_net.c - the forward pass of the Universal Sentence Encoder lite.
 *
 * The graph of model.json, step by step (n tokens of one text, n <= 128):
 *   x = E[id] + (E[id] + timing[pos])       the graph adds the embedding
 *                                           twice; timing = sin | cos of
 *                                           pos * 128 inverse timescales
 *   two pre-layer-norm transformer layers, 4 heads:
 *     layer 0: h = attn(LN(x)) @ Wo + (x @ Wres)   widths 256 -> 512
 *     layer 1: h = h + attn(LN(h)) @ Wo            width 512
 *     each:    h = h + relu(LN(h) @ W1) @ W2       feed-forward 1536
 *   (every product has its bias; LN is layer norm, epsilon from the graph)
 *   v = tanh(mean of the n rows of h @ Wt + bt); v * rsqrt(max(v.v, 1e-12))
 *
 * Design: every product is one cblas_sgemm over the rows of all texts of
 * the call (a batch shares each product; attention runs per text and head,
 * also through sgemm). A product's bias is copied into its output (or
 * added to the residual the output accumulates into) and sgemm adds the
 * product with beta = 1, so no pass adds a product afterwards. Everything
 * else (layer norms, softmax, relu, tanh) is one plain loop over the data,
 * written so that -O2 vectorises it. Scratch memory is one allocation
 * per call: reentrant, no state outside the call.
 *
 * The empty text (no tokens, where the reference throws) gives the zero
 * vector. It does not batch across calls (a batch's vectors differ from
 * single calls' in the last bits, and embed.h promises one vector per
 * text), and runs no other graph: the loader (use_lite.c) refuses a
 * model.json whose weights differ in names, shapes or consuming ops.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "use_lite_i.h"

/* C[rows][cols] = bias in every row */
static void fill_bias(float *c, size_t rows, int cols, const float *bias)
{
	size_t r;

	for (r = 0; r < rows; r++)
		memcpy(c + r * (size_t)cols, bias, (size_t)cols * sizeof(float));
}

/* C[rows][cols] += bias. Widths are multiples of LANES: inner loops of a
 * fixed trip count over restrict pointers, which -O2 vectorises. */
#define LANES 8

static void add_bias(float *restrict c, size_t rows, int cols,
		     const float *restrict bias)
{
	size_t r;
	int j, l;

	for (r = 0; r < rows; r++, c += cols)
		for (j = 0; j < cols; j += LANES)
			for (l = 0; l < LANES; l++)
				c[j + l] += bias[j + l];
}

/* C[m][n] += A[m][k] @ B[k][n], all row-major and dense */
static void gemm_acc(size_t m, int n, int k, const float *a, const float *b,
		     float *c)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, n, k,
		    1.0f, a, k, b, n, 1.0f, c, n);
}

/* Sum of w floats (w a multiple of LANES) in LANES partial sums. */
static float sum_lanes(const float *restrict x, int w)
{
	float acc[LANES] = { 0 }, s = 0;
	int j, l;

	for (j = 0; j < w; j += LANES)
		for (l = 0; l < LANES; l++)
			acc[l] += x[j + l];
	for (l = 0; l < LANES; l++)
		s += acc[l];
	return s;
}

/* y = layer_norm(x) row by row, as the graph: (scale * rsqrt(var + eps)) *
 * (x - mean) + bias. y holds x - mean in between. */
static void layer_norm(const float *restrict x, float *restrict y,
		       size_t rows, int w, const float *restrict s,
		       const float *restrict b, float eps)
{
	size_t r;
	int j, l;

	for (r = 0; r < rows; r++) {
		const float *restrict xr = x + r * (size_t)w;
		float *restrict yr = y + r * (size_t)w;
		float mean, inv, acc[LANES] = { 0 }, var = 0;

		mean = sum_lanes(xr, w) / (float)w;
		for (j = 0; j < w; j += LANES)
			for (l = 0; l < LANES; l++) {
				yr[j + l] = xr[j + l] - mean;
				acc[l] += yr[j + l] * yr[j + l];
			}
		for (l = 0; l < LANES; l++)
			var += acc[l];
		inv = 1.0f / sqrtf(var / (float)w + eps);
		for (j = 0; j < w; j += LANES)
			for (l = 0; l < LANES; l++)
				yr[j + l] = (s[j + l] * inv) * yr[j + l] + b[j + l];
	}
}

static void softmax_rows(float *s, size_t n)
{
	size_t r, j;

	for (r = 0; r < n; r++) {
		float *row = s + r * n, max = row[0];
		double sum = 0;
		float inv;

		for (j = 1; j < n; j++)
			if (row[j] > max)
				max = row[j];
		for (j = 0; j < n; j++) {
			row[j] = expf(row[j] - max);
			sum += row[j];
		}
		inv = (float)(1.0 / sum);
		for (j = 0; j < n; j++)
			row[j] *= inv;
	}
}

/* Multi-head self-attention of one text: qkv [n][3d] (q | k | v), heads
 * side by side in each; out [n][d]. s is n*n scratch. */
static void attention(const struct use_layer *l, const float *qkv, size_t n,
		      float *s, float *out)
{
	int d = l->d, depth = d / USE_HEADS, h, ld = 3 * d;

	for (h = 0; h < USE_HEADS; h++) {
		const float *q = qkv + h * depth, *k = q + d, *v = q + 2 * d;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n,
			    (int)n, depth, l->qscale, q, ld, k, ld, 0.0f, s,
			    (int)n);
		softmax_rows(s, n);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n,
			    depth, (int)n, 1.0f, s, (int)n, v, ld, 0.0f,
			    out + h * depth, d);
	}
}

/* x = max(x, 0), n a multiple of LANES */
static void relu(float *restrict x, size_t n)
{
	size_t i;
	int l;

	for (i = 0; i < n; i += LANES)
		for (l = 0; l < LANES; l++)
			x[i + l] = x[i + l] > 0 ? x[i + l] : 0;
}

struct scratch {
	float *x, *h, *y, *qkv, *att, *f, *s, *pool;
};

/* h += relu(LN(h) @ W1 + b1) @ W2 + b2 */
static void feed_forward(const struct use_lite *m, const struct use_layer *l,
			 struct scratch *w, size_t rows)
{
	layer_norm(w->h, w->y, rows, USE_D, l->fln_s, l->fln_b, m->eps);
	fill_bias(w->f, rows, USE_FFN, l->b1);
	gemm_acc(rows, USE_FFN, USE_D, w->y, l->w1, w->f);
	relu(w->f, rows * USE_FFN);
	add_bias(w->h, rows, USE_D, l->b2);
	gemm_acc(rows, USE_D, USE_FFN, w->f, l->w2, w->h);
}

/* One transformer layer over all rows; in is x (layer 0) or h (layer 1),
 * the result is in h. */
static void layer(const struct use_lite *m, int li, struct scratch *w,
		  size_t rows, const size_t *n, const size_t *off, size_t k)
{
	const struct use_layer *l = &m->l[li];
	const float *in = li == 0 ? w->x : w->h;
	size_t i;

	layer_norm(in, w->y, rows, l->din, l->ln_s, l->ln_b, m->eps);
	fill_bias(w->qkv, rows, 3 * l->d, l->bqkv);
	gemm_acc(rows, 3 * l->d, l->din, w->y, l->wqkv, w->qkv);
	for (i = 0; i < k; i++)
		if (n[i])
			attention(l, w->qkv + off[i] * 3 * (size_t)l->d, n[i],
				  w->s, w->att + off[i] * (size_t)l->d);
	if (li == 0) {
		/* h = att @ Wo + bo + x @ Wres + bres */
		fill_bias(w->h, rows, USE_D, l->bo);
		add_bias(w->h, rows, USE_D, m->bres);
		gemm_acc(rows, USE_D, USE_EMB, w->x, m->wres, w->h);
	} else {
		add_bias(w->h, rows, USE_D, l->bo);
	}
	gemm_acc(rows, USE_D, l->d, w->att, l->wo, w->h);
	feed_forward(m, l, w, rows);
}

int use_lite_forward(const struct use_lite *m, const int32_t *const *ids,
		     const size_t *n, size_t k, float *out)
{
	struct scratch w;
	size_t rows = 0, maxn = 0, i, p, *off, total;
	float *mem;
	int j;

	off = malloc((k ? k : 1) * sizeof(*off));
	if (!off)
		return -ENOMEM;
	for (i = 0; i < k; i++) {
		off[i] = rows;
		rows += n[i];
		if (n[i] > maxn)
			maxn = n[i];
	}
	memset(out, 0, k * USE_LITE_DIM * sizeof(float));
	if (!rows) {
		free(off);
		return 0;
	}
	total = rows * (USE_EMB + 3 * USE_D + 3 * USE_D + USE_FFN) +
		maxn * maxn + k * USE_D;
	mem = malloc(total * sizeof(float));
	if (!mem) {
		free(off);
		return -ENOMEM;
	}
	w.x = mem;
	w.h = w.x + rows * USE_EMB;
	w.y = w.h + rows * USE_D;
	w.att = w.y + rows * USE_D;
	w.qkv = w.att + rows * USE_D;
	w.f = w.qkv + rows * 3 * USE_D;
	w.s = w.f + rows * USE_FFN;
	w.pool = w.s + maxn * maxn;

	/* embeddings, added twice, plus the timing signal */
	for (i = 0; i < k; i++)
		for (p = 0; p < n[i]; p++) {
			const float *e = m->emb + (size_t)ids[i][p] * USE_EMB;
			const float *t = m->timing + p * USE_EMB;
			float *x = w.x + (off[i] + p) * USE_EMB;

			for (j = 0; j < USE_EMB; j++)
				x[j] = e[j] + (e[j] + t[j]);
		}
	layer(m, 0, &w, rows, n, off, k);
	layer(m, 1, &w, rows, n, off, k);

	/* mean over each text's tokens, then the tanh layer for all texts */
	fill_bias(out, k, USE_D, m->bt);
	for (i = 0; i < k; i++) {
		float *pr = w.pool + i * USE_D;

		memset(pr, 0, USE_D * sizeof(float));
		for (p = 0; p < n[i]; p++) {
			const float *hr = w.h + (off[i] + p) * USE_D;

			for (j = 0; j < USE_D; j++)
				pr[j] += hr[j];
		}
		for (j = 0; j < USE_D; j++)
			pr[j] /= (float)(n[i] ? n[i] : 1);
	}
	gemm_acc(k, USE_D, USE_D, w.pool, m->wt, out);
	for (i = 0; i < k; i++) {
		float *v = out + i * USE_D, inv;
		double ss = 0;

		if (!n[i]) {
			memset(v, 0, USE_D * sizeof(float));
			continue;
		}
		for (j = 0; j < USE_D; j++) {
			v[j] = tanhf(v[j]);
			ss += (double)v[j] * v[j];
		}
		inv = 1.0f / sqrtf(fmaxf((float)ss, m->l2eps));
		for (j = 0; j < USE_D; j++)
			v[j] *= inv;
	}
	free(mem);
	free(off);
	return 0;
}
