/*
 * compact.c - rebuilding HNSW without its tombstoned vectors.
 *
 * FAISS HNSW cannot delete, so removed vectors stay in the graph as
 * tombstones until vindex_compact() copies the live vectors under the read
 * lock, builds a new graph from them with no lock held (searches, adds and
 * removes go on; merges are paused by vi->compacting so FAISS positions
 * stay put), then swaps it in under the write lock, re-applying the
 * removes that happened during the build. compact_mu (taken before lock)
 * keeps compactions one at a time.
 *
 * What not: it does not decide when to compact (the engine does, from
 * vindex_tombstones()), and it leaves buffered vectors in the buffer.
 */
#include "vindex_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The live vectors of HNSW, copied out for a rebuild. */
struct live_set {
	size_t n;
	float *vecs;            /* [n * dim] */
	int64_t *ids;           /* [n] */
	uint32_t *old_pos;      /* [n] */
};

static void live_set_release(struct live_set *s)
{
	free(s->vecs);
	free(s->ids);
	free(s->old_pos);
}

/* Copy live FAISS vectors (read lock held). */
static int live_set_take(struct vindex *vi, struct live_set *s)
{
	size_t live = vi->ntotal - vi->ntomb, j = 0, dim = vi->p.dim;
	int rc;

	s->vecs = malloc((live ? live : 1) * dim * sizeof(float));
	s->ids = malloc((live ? live : 1) * sizeof(*s->ids));
	s->old_pos = malloc((live ? live : 1) * sizeof(*s->old_pos));
	if (!s->vecs || !s->ids || !s->old_pos)
		return -ENOMEM;
	for (size_t pos = 0; pos < vi->ntotal && j < live; pos++) {
		if (vindex_tomb_get(vi, pos))
			continue;
		rc = faiss_Index_reconstruct(vi->hnsw, pos, s->vecs + j * dim);
		if (rc)
			return vindex_faiss_err("reconstruct", rc);
		s->ids[j] = vi->pos_ids[pos];
		s->old_pos[j++] = pos;
	}
	s->n = j;
	return 0;
}

/*
 * Swap the new graph in (write lock held). Cannot fail once called. The id
 * map is rebuilt after the swap: its keys are read through pos_ids, so
 * patching slots one by one while two pos_ids arrays exist would misread.
 */
static void compact_swap(struct vindex *vi, struct live_set *s,
			 FaissIndex *idx, int64_t *pos_ids, uint64_t *tomb,
			 size_t cap)
{
	size_t ntomb = 0;

	for (size_t i = 0; i < s->n; i++) {
		pos_ids[i] = s->ids[i];
		if (vindex_tomb_get(vi, s->old_pos[i])) {
			/* removed while we were building */
			vindex_tomb_set(tomb, i);
			ntomb++;
		}
	}
	faiss_Index_free(vi->hnsw);
	free(vi->pos_ids);
	free(vi->tomb);
	vi->hnsw = idx;
	vi->pos_ids = pos_ids;
	vi->tomb = tomb;
	vi->pos_cap = cap;
	vi->ntotal = s->n;
	vi->ntomb = ntomb;
	vi->gen++;

	/* same ids as before, so the table needs no growth */
	memset(vi->slots, 0, vi->nslots * sizeof(*vi->slots));
	for (size_t pos = 0; pos < vi->ntotal; pos++)
		if (!vindex_tomb_get(vi, pos))
			vi->slots[vindex_map_find(vi, pos_ids[pos])] =
				(uint32_t)pos + 1;
	for (size_t i = 0; i < vi->nbuf; i++)
		vi->slots[vindex_map_find(vi, vi->buf_ids[i])] =
			(uint32_t)(VINDEX_BUF_BIT | i) + 1;
}

/* Build a graph over the live set (no lock held). */
static int compact_build(struct vindex *vi, struct live_set *s,
			 FaissIndex **out)
{
	FaissIndex *idx;
	int rc = vindex_new_hnsw(vi, &idx);

	if (rc)
		return rc;
	if (s->n) {
		rc = faiss_Index_add(idx, (idx_t)s->n, s->vecs);
		if (rc) {
			faiss_Index_free(idx);
			return vindex_faiss_err("add", rc);
		}
	}
	*out = idx;
	return 0;
}

int vindex_compact(struct vindex *vi)
{
	struct live_set s = { 0 };
	FaissIndex *idx = NULL;
	int64_t *pos_ids = NULL;
	uint64_t *tomb = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!vi)
		return -EINVAL;
	vindex_omp_one_thread();
	pthread_mutex_lock(&vi->compact_mu);
	pthread_rwlock_wrlock(&vi->lock);
	if (!vi->ntomb) {
		pthread_rwlock_unlock(&vi->lock);
		goto out_mu;
	}
	vi->compacting = true;  /* pauses merges: positions stay put */
	pthread_rwlock_unlock(&vi->lock);

	pthread_rwlock_rdlock(&vi->lock);
	rc = live_set_take(vi, &s);
	pthread_rwlock_unlock(&vi->lock);
	if (!rc)
		rc = compact_build(vi, &s, &idx);
	if (!rc) {
		cap = s.n ? s.n : 1;
		pos_ids = malloc(cap * sizeof(*pos_ids));
		tomb = calloc(vindex_tomb_words(cap), sizeof(*tomb));
		if (!pos_ids || !tomb)
			rc = -ENOMEM;
	}

	pthread_rwlock_wrlock(&vi->lock);
	if (!rc)
		rc = vindex_set_param(vi, idx, "efSearch", vi->p.ef_search);
	if (!rc) {
		compact_swap(vi, &s, idx, pos_ids, tomb, cap);
		idx = NULL;
		pos_ids = NULL;
		tomb = NULL;
	}
	vi->compacting = false;
	pthread_rwlock_unlock(&vi->lock);

	free(pos_ids);
	free(tomb);
	faiss_Index_free(idx);
	live_set_release(&s);
out_mu:
	pthread_mutex_unlock(&vi->compact_mu);
	return rc;
}
