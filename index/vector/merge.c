/*
 * merge.c - writes to the vector index: add, remove, and merging the recent
 * buffer into HNSW.
 *
 * FAISS HNSW adds single vectors slowly and cannot remove them, so
 * vindex_add() appends to an exact buffer (buf_ids/buf_vecs, searched by
 * brute force) and vindex_merge() moves the newest max buffered vectors
 * into HNSW with one faiss_Index_add, under the write lock for that one
 * batch. vindex_remove() drops a buffered vector (the last one takes its
 * place) or tombstones a merged one; compact.c rebuilds HNSW without the
 * tombstoned ones. The buffer grows by doubling and gives memory back only
 * after large backlogs. Merges are skipped (0 moved) while a compaction is
 * building, so FAISS positions stay put.
 *
 * What not: no id recycling; max_id only grows.
 */
#include "vindex_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int vindex_buf_reserve(struct vindex *vi, size_t n)
{
	size_t dim = vi->p.dim;
	size_t cap;
	int64_t *ids;
	float *vecs;

	if (n <= vi->buf_cap)
		return 0;
	cap = vi->buf_cap ? vi->buf_cap * 2 : 64;
	if (cap < n)
		cap = n;
	ids = realloc(vi->buf_ids, cap * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	vi->buf_ids = ids;
	vecs = realloc(vi->buf_vecs, cap * dim * sizeof(*vecs));
	if (!vecs)
		return -ENOMEM;
	vi->buf_vecs = vecs;
	vi->buf_cap = cap;
	return 0;
}

/*
 * Give back buffer memory once a backlog is merged: when at most a quarter
 * of a large buffer (over BUF_SHRINK_MIN vectors: a catch-up, a bulk load)
 * is in use, shrink it to twice what is used (at least 64). Smaller buffers
 * keep their size, so steady fill traffic does not churn the heap. A failed
 * shrink keeps the larger buffer.
 */
#define BUF_SHRINK_MIN 16384

static void buf_shrink(struct vindex *vi)
{
	size_t dim = vi->p.dim, cap = vi->nbuf * 2;
	int64_t *ids;
	float *vecs;

	if (cap < 64)
		cap = 64;
	if (vi->buf_cap <= BUF_SHRINK_MIN || vi->nbuf > vi->buf_cap / 4 || cap >= vi->buf_cap)
		return;
	/* fresh arrays, committed only when both exist */
	ids = malloc(cap * sizeof(*ids));
	vecs = ids ? malloc(cap * dim * sizeof(*vecs)) : NULL;
	if (!vecs) {
		free(ids);
		return;
	}
	memcpy(ids, vi->buf_ids, vi->nbuf * sizeof(*ids));
	memcpy(vecs, vi->buf_vecs, vi->nbuf * dim * sizeof(*vecs));
	free(vi->buf_ids);
	free(vi->buf_vecs);
	vi->buf_ids = ids;
	vi->buf_vecs = vecs;
	vi->buf_cap = cap;
}

/*
 * Move buffer entry from -> to and repoint its slot. The slot is found while
 * buf_ids[from] still holds the id, so the map never reads a stale key.
 */
static void buf_move(struct vindex *vi, size_t from, size_t to)
{
	size_t dim = vi->p.dim;
	int64_t id = vi->buf_ids[from];
	size_t s = vindex_map_find(vi, id);

	vi->buf_ids[to] = id;
	memcpy(vi->buf_vecs + to * dim, vi->buf_vecs + from * dim,
	       dim * sizeof(float));
	vi->slots[s] = (uint32_t)(VINDEX_BUF_BIT | to) + 1;
}

int vindex_add(struct vindex *vi, int64_t id, const float *vec)
{
	size_t s;
	int rc;

	if (!vi || !vec)
		return -EINVAL;
	pthread_rwlock_wrlock(&vi->lock);
	if (vi->slots[vindex_map_find(vi, id)]) {
		rc = -EEXIST;
		goto out;
	}
	if (vi->nbuf >= VINDEX_LOC_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	rc = vindex_buf_reserve(vi, vi->nbuf + 1);
	if (!rc)
		rc = vindex_map_reserve(vi);
	if (rc)
		goto out;
	s = vindex_map_find(vi, id);
	vi->buf_ids[vi->nbuf] = id;
	memcpy(vi->buf_vecs + vi->nbuf * vi->p.dim, vec,
	       vi->p.dim * sizeof(*vec));
	vi->slots[s] = (uint32_t)(VINDEX_BUF_BIT | vi->nbuf) + 1;
	vi->nbuf++;
	vi->nused++;
	vi->gen++;
	if (id > vi->max_id)
		vi->max_id = id;
out:
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}

int vindex_remove(struct vindex *vi, int64_t id)
{
	size_t s;
	uint32_t loc;
	int rc = 0;

	if (!vi)
		return -EINVAL;
	pthread_rwlock_wrlock(&vi->lock);
	s = vindex_map_find(vi, id);
	if (!vi->slots[s]) {
		rc = -ENOENT;
		goto out;
	}
	loc = vi->slots[s] - 1;
	vindex_map_delete(vi, s);
	vi->gen++;
	if (!(loc & VINDEX_BUF_BIT)) {
		vindex_tomb_set(vi->tomb, loc);
		vi->ntomb++;
		goto out;
	}
	/* buffer entry: move the last one into its place */
	loc &= ~VINDEX_BUF_BIT;
	vi->nbuf--;
	if (loc != vi->nbuf)
		buf_move(vi, vi->nbuf, loc);
out:
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}

/* ---- merge ---- */

int vindex_pos_reserve(struct vindex *vi, size_t n)
{
	size_t cap, ow, nw;
	int64_t *ids;
	uint64_t *bits;

	if (n <= vi->pos_cap)
		return 0;
	cap = vi->pos_cap + vi->pos_cap / 2;
	if (cap < n)
		cap = n;
	if (cap < 256)
		cap = 256;
	ids = realloc(vi->pos_ids, cap * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	vi->pos_ids = ids;
	ow = vindex_tomb_words(vi->pos_cap);
	nw = vindex_tomb_words(cap);
	bits = realloc(vi->tomb, nw * sizeof(*bits));
	if (!bits)
		return -ENOMEM;
	memset(bits + ow, 0, (nw - ow) * sizeof(*bits));
	vi->tomb = bits;
	vi->pos_cap = cap;
	return 0;
}

/*
 * Merges take the newest buffered vectors (the tail), which are contiguous
 * and need no shifting; the order vectors enter HNSW does not matter.
 */
int vindex_merge(struct vindex *vi, int max)
{
	size_t n, got, first, before;
	idx_t after;
	int rc;

	if (!vi || max < 0)
		return -EINVAL;
	vindex_omp_one_thread();
	pthread_rwlock_wrlock(&vi->lock);
	n = vi->nbuf < (size_t)max ? vi->nbuf : (size_t)max;
	if (!n || vi->compacting) {
		rc = 0;
		goto out;
	}
	before = vi->ntotal;
	if (before + n > VINDEX_LOC_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	rc = vindex_pos_reserve(vi, before + n);
	if (rc)
		goto out;
	first = vi->nbuf - n;
	rc = faiss_Index_add(vi->hnsw, (idx_t)n,
			     vi->buf_vecs + first * vi->p.dim);
	if (rc)
		rc = vindex_faiss_err("add", rc);
	/* adopt whatever FAISS did store, even after a failure */
	after = faiss_Index_ntotal(vi->hnsw);
	got = after > (idx_t)before ? (size_t)after - before : 0;
	if (got > n)
		got = n;
	for (size_t i = 0; i < got; i++) {
		int64_t id = vi->buf_ids[first + i];
		size_t s = vindex_map_find(vi, id);

		vi->pos_ids[before + i] = id;
		vi->slots[s] = (uint32_t)(before + i) + 1;
	}
	vi->ntotal = before + got;
	vi->gen++;
	/* after a partial add, close the gap left by the stored ones */
	for (size_t i = got; i < n; i++)
		buf_move(vi, first + i, first + i - got);
	vi->nbuf -= got;
	buf_shrink(vi);
	if (!rc)
		rc = (int)got;
out:
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}
