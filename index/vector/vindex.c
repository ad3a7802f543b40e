/*
 * vindex.c - one category's vector index: creation, freeing, parameters and
 * the small accessors.
 *
 * The index is FAISS HNSW (through the official FAISS C API only, so a real
 * libfaiss_c can replace faiss_compat.cpp) plus an exact buffer of recent
 * vectors; vindex_i.h describes the structure and which file does what.
 * Here: the struct's allocation and locks, the HNSW factory and parameter
 * calls every part uses, the one-OpenMP-thread rule and FAISS error
 * logging, and the accessors that read one field under the read lock.
 *
 * What not: no vector normalisation (callers pass unit vectors), no id
 * recycling, no on-disk format portability across byte orders.
 */
#include "vindex_i.h"
#include "semlog.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#define SLOTS_MIN 64

static _Thread_local bool omp_limited;

void vindex_omp_one_thread(void)
{
	if (!omp_limited) {
		omp_set_num_threads(1);
		omp_limited = true;
	}
}

int vindex_faiss_err(const char *what, int rc)
{
	const char *msg = faiss_get_last_error();

	semlog(SEMLOG_ERR, "vindex: faiss %s failed (%d): %s", what, rc,
		msg ? msg : "no message");
	return -EIO;
}

/* ---- construction ---- */

bool vindex_params_ok(const struct vindex_params *p)
{
	return p && p->dim > 0 && p->dim <= 65536 && p->m >= 2 &&
	       p->m <= 512 && p->ef_construction > 0 && p->ef_search > 0;
}

int vindex_set_param(struct vindex *vi, FaissIndex *idx, const char *name,
		     int v)
{
	int rc = faiss_ParameterSpace_set_index_parameter(vi->ps, idx, name, v);

	return rc ? vindex_faiss_err(name, rc) : 0;
}

int vindex_new_hnsw(struct vindex *vi, FaissIndex **out)
{
	char desc[32];
	FaissIndex *idx = NULL;
	int rc;

	snprintf(desc, sizeof(desc), "HNSW%d,Flat", vi->p.m);
	rc = faiss_index_factory(&idx, vi->p.dim, desc, METRIC_INNER_PRODUCT);
	if (rc)
		return vindex_faiss_err("index_factory", rc);
	rc = vindex_set_param(vi, idx, "efConstruction", vi->p.ef_construction);
	if (!rc)
		rc = vindex_set_param(vi, idx, "efSearch", vi->p.ef_search);
	if (rc) {
		faiss_Index_free(idx);
		return rc;
	}
	*out = idx;
	return 0;
}

int vindex_alloc(const struct vindex_params *p, struct vindex **out)
{
	pthread_rwlockattr_t attr;
	struct vindex *vi;
	int rc;

	if (!vindex_params_ok(p))
		return -EINVAL;
	vi = calloc(1, sizeof(*vi));
	if (!vi)
		return -ENOMEM;
	vi->p = *p;
	vi->nslots = SLOTS_MIN;
	vi->slots = calloc(vi->nslots, sizeof(*vi->slots));
	if (!vi->slots) {
		rc = -ENOMEM;
		goto fail_vi;
	}
	rc = faiss_ParameterSpace_new(&vi->ps);
	if (rc) {
		rc = vindex_faiss_err("ParameterSpace_new", rc);
		goto fail_slots;
	}
	/* glibc's default rwlock lets a stream of searches starve merges */
	rc = -pthread_rwlockattr_init(&attr);
	if (rc)
		goto fail_ps;
	pthread_rwlockattr_setkind_np(&attr,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = -pthread_rwlock_init(&vi->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc)
		goto fail_ps;
	rc = -pthread_mutex_init(&vi->compact_mu, NULL);
	if (rc)
		goto fail_lock;
	rc = -pthread_mutex_init(&vi->thp_mu, NULL);
	if (rc)
		goto fail_compact;
	*out = vi;
	return 0;

fail_compact:
	pthread_mutex_destroy(&vi->compact_mu);
fail_lock:
	pthread_rwlock_destroy(&vi->lock);
fail_ps:
	faiss_ParameterSpace_free(vi->ps);
fail_slots:
	free(vi->slots);
fail_vi:
	free(vi);
	return rc;
}

int vindex_new(const struct vindex_params *p, struct vindex **out)
{
	struct vindex *vi;
	int rc;

	vindex_omp_one_thread();
	rc = vindex_alloc(p, &vi);
	if (rc)
		return rc;
	rc = vindex_new_hnsw(vi, &vi->hnsw);
	if (rc) {
		vindex_free(vi);
		return rc;
	}
	*out = vi;
	return 0;
}

void vindex_free(struct vindex *vi)
{
	if (!vi)
		return;
	if (vi->hnsw)
		faiss_Index_free(vi->hnsw);
	faiss_ParameterSpace_free(vi->ps);
	pthread_mutex_destroy(&vi->thp_mu);
	pthread_mutex_destroy(&vi->compact_mu);
	pthread_rwlock_destroy(&vi->lock);
	free(vi->pos_ids);
	free(vi->tomb);
	free(vi->slots);
	free(vi->buf_ids);
	free(vi->buf_vecs);
	free(vi->file.path);
	free(vi);
}

/* ---- small accessors ---- */

/* The counters the accessors report, copied under the read lock; all 0
 * for a NULL index (the accessors have no errno to return). */
struct counts {
	size_t nbuf, nused, ntomb;
	int64_t max_id;
};

static struct counts counts_get(struct vindex *vi)
{
	struct counts c = { 0 };

	if (!vi)
		return c;
	pthread_rwlock_rdlock(&vi->lock);
	c = (struct counts){ .nbuf = vi->nbuf, .nused = vi->nused,
			     .ntomb = vi->ntomb, .max_id = vi->max_id };
	pthread_rwlock_unlock(&vi->lock);
	return c;
}

size_t vindex_buffered(struct vindex *vi)
{
	return counts_get(vi).nbuf;
}

size_t vindex_live(struct vindex *vi)
{
	return counts_get(vi).nused;
}

size_t vindex_tombstones(struct vindex *vi)
{
	return counts_get(vi).ntomb;
}

int64_t vindex_max_id(struct vindex *vi)
{
	return counts_get(vi).max_id;
}

int vindex_set_ef_search(struct vindex *vi, int ef_search)
{
	int rc;

	if (!vi || ef_search <= 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&vi->lock);
	rc = vindex_set_param(vi, vi->hnsw, "efSearch", ef_search);
	if (!rc)
		vi->p.ef_search = ef_search;
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}

bool vindex_contains(struct vindex *vi, int64_t id)
{
	bool in;

	if (!vi)
		return false;
	pthread_rwlock_rdlock(&vi->lock);
	in = vi->slots[vindex_map_find(vi, id)] != 0;
	pthread_rwlock_unlock(&vi->lock);
	return in;
}

int vindex_get(struct vindex *vi, int64_t id, float *out)
{
	uint32_t loc;
	int rc = 0;

	if (!vi || !out)
		return -EINVAL;
	pthread_rwlock_rdlock(&vi->lock);
	loc = vi->slots[vindex_map_find(vi, id)];
	if (!loc) {
		rc = -ENOENT;
	} else if (--loc & VINDEX_BUF_BIT) {
		memcpy(out, vi->buf_vecs + (loc & ~VINDEX_BUF_BIT) * vi->p.dim,
		       vi->p.dim * sizeof(*out));
	} else {
		rc = faiss_Index_reconstruct(vi->hnsw, loc, out);
		if (rc)
			rc = vindex_faiss_err("reconstruct", rc);
	}
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}
