/*
 * search.c - k-nearest search in the vector index: HNSW plus the buffer.
 *
 * Under the read lock, so searches run concurrently with each other; the
 * HNSW graph is searched on the calling thread (hnsw_one.cpp: no OpenMP
 * region, whose libgomp lock made concurrent searches wait for each other),
 * with faiss_Index_search as the fallback. FAISS is asked for max(4k, 16)
 * candidates; tombstoned and unaccepted ones are
 * dropped, and when fewer than k remain the request widens x4 (to 4096, or
 * 4k if larger); an index holding at most 4096 vectors is then scanned
 * exactly (every stored vector reconstructed). The buffer is always scanned
 * exactly and its results merged in; the best k are returned by descending
 * inner product.
 *
 * What not: no batching of queries, no result cache, no score threshold
 * (the caller's accept function and k decide).
 */
#include "vindex_i.h"

#include <errno.h>
#include <stdlib.h>

#define WIDEN_CAP 4096          /* most FAISS candidates asked for */
#define EXACT_MAX 4096          /* at or below: exact scan when widening */

struct topk {
	int k, n;
	int64_t *ids;
	float *scores;
};

/* Insert into a descending top-k list. */
static void topk_push(struct topk *t, int64_t id, float score)
{
	int i;

	if (t->n == t->k && score <= t->scores[t->n - 1])
		return;
	i = t->n < t->k ? t->n++ : t->n - 1;
	while (i > 0 && t->scores[i - 1] < score) {
		t->ids[i] = t->ids[i - 1];
		t->scores[i] = t->scores[i - 1];
		i--;
	}
	t->ids[i] = id;
	t->scores[i] = score;
}

static bool accepted(vindex_accept_fn accept, void *arg, int64_t id)
{
	return !accept || accept(arg, id);
}

/* Exact scan over every live vector stored in FAISS (read lock held). */
static int scan_hnsw(struct vindex *vi, const float *q, vindex_accept_fn accept,
		     void *arg, struct topk *t)
{
	float *v = malloc(vi->p.dim * sizeof(*v));
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (size_t pos = 0; pos < vi->ntotal; pos++) {
		if (vindex_tomb_get(vi, pos) ||
		    !accepted(accept, arg, vi->pos_ids[pos]))
			continue;
		rc = faiss_Index_reconstruct(vi->hnsw, (idx_t)pos, v);
		if (rc) {
			rc = vindex_faiss_err("reconstruct", rc);
			break;
		}
		topk_push(t, vi->pos_ids[pos], vindex_dot(q, v, vi->p.dim));
	}
	free(v);
	return rc;
}

/* Approximate search in FAISS, widening as needed (read lock held). */
static int search_hnsw(struct vindex *vi, const float *q, int k,
		       vindex_accept_fn accept, void *arg, struct topk *t)
{
	size_t cap = (size_t)k * 4 > WIDEN_CAP ? (size_t)k * 4 : WIDEN_CAP;
	size_t kk = (size_t)k * 4 > 16 ? (size_t)k * 4 : 16;
	float *d = NULL;
	idx_t *l = NULL;
	int rc = 0;

	for (;;) {
		if (kk > vi->ntotal)
			kk = vi->ntotal;
		float *nd = realloc(d, kk * sizeof(*d));
		idx_t *nl = nd ? realloc(l, kk * sizeof(*l)) : NULL;

		if (nd)
			d = nd;
		if (!nl) {
			rc = -ENOMEM;
			break;
		}
		l = nl;
		rc = vindex_hnsw_search1(vi->hnsw, q, (idx_t)kk, d, l);
		if (rc > 0)
			rc = faiss_Index_search(vi->hnsw, 1, q, (idx_t)kk, d, l);
		if (rc) {
			rc = vindex_faiss_err("search", rc);
			break;
		}
		t->n = 0;
		for (size_t i = 0; i < kk; i++) {
			if (l[i] < 0 || (size_t)l[i] >= vi->ntotal ||
			    vindex_tomb_get(vi, l[i]))
				continue;
			if (accepted(accept, arg, vi->pos_ids[l[i]]))
				topk_push(t, vi->pos_ids[l[i]], d[i]);
		}
		if (t->n >= k)
			break;
		if (vi->ntotal <= EXACT_MAX) {
			t->n = 0;
			rc = scan_hnsw(vi, q, accept, arg, t);
			break;
		}
		if (kk >= vi->ntotal || kk >= cap)
			break;
		kk *= 4;
	}
	free(d);
	free(l);
	return rc;
}

int vindex_search(struct vindex *vi, const float *q, int k,
		  vindex_accept_fn accept, void *arg, int64_t *ids,
		  float *scores)
{
	struct topk t = { .k = k, .ids = ids, .scores = scores };
	int rc = 0;

	if (!vi || !q || k < 0 || (k && (!ids || !scores)))
		return -EINVAL;
	if (!k)
		return 0;
	vindex_omp_one_thread();
	pthread_rwlock_rdlock(&vi->lock);
	if (vi->ntotal > vi->ntomb)
		rc = search_hnsw(vi, q, k, accept, arg, &t);
	for (size_t i = 0; !rc && i < vi->nbuf; i++) {
		float sc = vindex_dot(q, vi->buf_vecs + i * vi->p.dim,
				      vi->p.dim);

		/* the score first: accept (which takes the caller's locks) only
		 * for a vector that would enter the top k */
		if (t.n == t.k && sc <= t.scores[t.n - 1])
			continue;
		if (accepted(accept, arg, vi->buf_ids[i]))
			topk_push(&t, vi->buf_ids[i], sc);
	}
	pthread_rwlock_unlock(&vi->lock);
	return rc ? rc : t.n;
}
