/*
 * vindex.c - one category's vector index: FAISS HNSW plus an exact buffer.
 *
 * Design. FAISS stores vectors at positions 0..ntotal-1. We keep:
 *  - pos_ids[pos]: the caller's id at each FAISS position (8 bytes/vector);
 *  - tomb: a bitmap over positions marking removed vectors (1 bit/vector);
 *  - slots: an open-addressing (linear probing, backward-shift delete) map
 *    from live id to where it lives, 4 bytes per slot at load <= 1/2. A slot
 *    holds loc+1; loc is a FAISS position, or BUF_BIT|i for buffer entry i.
 *    The key is not stored: it is read back through pos_ids / buf_ids.
 *  - buf_ids/buf_vecs: recently added vectors, searched by brute force,
 *    moved into HNSW by vindex_merge() in one faiss_Index_add per batch.
 * Searches ask FAISS for max(4k, 16) candidates, drop tombstoned and
 * unaccepted ones, widen x4 (to 4096, or 4k if larger) when too few remain,
 * and scan every stored vector exactly when the index holds <= 4096. The
 * buffer's exact results are merged in and the best k returned.
 * Compaction snapshots live vectors under the read lock, builds a new graph
 * with no lock held (merges are paused meanwhile so FAISS positions stay
 * put), then swaps it in under the write lock, re-applying removes that
 * happened during the build.
 *
 * FAISS 1.7.3 opens an OpenMP parallel region for every search and add and
 * allocates per-thread scratch; every thread that calls FAISS first limits
 * itself to one OpenMP thread (omp_one_thread()).
 *
 * What not: no vector normalisation (callers pass unit vectors), no id
 * recycling, no on-disk format portability across byte orders. Only the
 * official FAISS C API is used, so a real libfaiss_c can replace
 * faiss_compat.cpp.
 */
#include "vindex.h"
#include "fileio.h"
#include "hash.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#define BUF_BIT 0x80000000u
#define LOC_MAX 0x7ffffffeu     /* positions and buffer slots stay below */
#define WIDEN_CAP 4096          /* most FAISS candidates asked for */
#define EXACT_MAX 4096          /* at or below: exact scan when widening */
#define SLOTS_MIN 64

#define VX_MAGIC "SCVX"
#define VX_VERSION 1u
#define VX_HDR_SIZE 64

/*
 * Lock order: compact_mu, then lock. compact_mu only serialises
 * compactions; lock guards everything marked "lock" below.
 */
struct vindex {
	struct vindex_params p;         /* immutable except ef_search: lock */
	FaissParameterSpace *ps;        /* immutable; const use only */
	pthread_rwlock_t lock;
	pthread_mutex_t compact_mu;
	FaissIndex *hnsw;               /* lock (search under read side) */
	size_t ntotal;                  /* lock: FAISS positions */
	int64_t *pos_ids;               /* lock: [pos_cap] */
	size_t pos_cap;                 /* lock */
	uint64_t *tomb;                 /* lock: bitmap, pos_cap bits */
	size_t ntomb;                   /* lock */
	uint32_t *slots;                /* lock: id map, see top */
	size_t nslots;                  /* lock: power of two */
	size_t nused;                   /* lock */
	int64_t *buf_ids;               /* lock: [buf_cap] */
	float *buf_vecs;                /* lock: [buf_cap * dim] */
	size_t nbuf;                    /* lock */
	size_t buf_cap;                 /* lock */
	int64_t max_id;                 /* lock */
	bool compacting;                /* lock: merges wait it out */
};

static _Thread_local bool omp_limited;

static void omp_one_thread(void)
{
	if (!omp_limited) {
		omp_set_num_threads(1);
		omp_limited = true;
	}
}

static int faiss_err(const char *what, int rc)
{
	const char *msg = faiss_get_last_error();

	semlog(SEMLOG_ERR, "vindex: faiss %s failed (%d): %s", what, rc,
		msg ? msg : "no message");
	return -EIO;
}

static bool tomb_get(const struct vindex *vi, size_t pos)
{
	return vi->tomb[pos / 64] >> (pos % 64) & 1;
}

static void tomb_set(uint64_t *bits, size_t pos)
{
	bits[pos / 64] |= 1ull << (pos % 64);
}

static size_t tomb_words(size_t n)
{
	return (n + 63) / 64;
}

static float dot(const float *a, const float *b, int dim)
{
	float s = 0;

	for (int i = 0; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

/* ---- id map (lock held) ---- */

static int64_t loc_id(const struct vindex *vi, uint32_t loc)
{
	return loc & BUF_BIT ? vi->buf_ids[loc & ~BUF_BIT] : vi->pos_ids[loc];
}

/* Slot index holding id, or the empty slot where it would go. */
static size_t map_find(const struct vindex *vi, int64_t id)
{
	size_t mask = vi->nslots - 1;
	size_t i = hash_mix64((uint64_t)id) & mask;

	while (vi->slots[i] && loc_id(vi, vi->slots[i] - 1) != id)
		i = (i + 1) & mask;
	return i;
}

static int map_resize(struct vindex *vi, size_t nslots)
{
	uint32_t *old = vi->slots;
	size_t oldn = vi->nslots;
	uint32_t *s = calloc(nslots, sizeof(*s));

	if (!s)
		return -ENOMEM;
	vi->slots = s;
	vi->nslots = nslots;
	for (size_t i = 0; i < oldn; i++)
		if (old[i])
			s[map_find(vi, loc_id(vi, old[i] - 1))] = old[i];
	free(old);
	return 0;
}

/* Make room for one more entry; call before map_find for an insert. */
static int map_reserve(struct vindex *vi)
{
	if ((vi->nused + 1) * 2 <= vi->nslots)
		return 0;
	return map_resize(vi, vi->nslots * 2);
}

static void map_delete(struct vindex *vi, size_t i)
{
	size_t mask = vi->nslots - 1;
	size_t j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!vi->slots[j])
			break;
		size_t h = hash_mix64((uint64_t)loc_id(vi, vi->slots[j] - 1)) & mask;
		/* leave slots[j] alone if its home lies in (i, j] */
		if (((j - h) & mask) < ((j - i) & mask))
			continue;
		vi->slots[i] = vi->slots[j];
		i = j;
	}
	vi->slots[i] = 0;
	vi->nused--;
}

/* ---- construction ---- */

static bool params_ok(const struct vindex_params *p)
{
	return p && p->dim > 0 && p->dim <= 65536 && p->m >= 2 &&
	       p->m <= 512 && p->ef_construction > 0 && p->ef_search > 0;
}

static int set_param(struct vindex *vi, FaissIndex *idx, const char *name,
		     int v)
{
	int rc = faiss_ParameterSpace_set_index_parameter(vi->ps, idx, name, v);

	return rc ? faiss_err(name, rc) : 0;
}

/* New empty HNSW with efConstruction/efSearch from vi->p. */
static int new_hnsw(struct vindex *vi, FaissIndex **out)
{
	char desc[32];
	FaissIndex *idx = NULL;
	int rc;

	snprintf(desc, sizeof(desc), "HNSW%d,Flat", vi->p.m);
	rc = faiss_index_factory(&idx, vi->p.dim, desc, METRIC_INNER_PRODUCT);
	if (rc)
		return faiss_err("index_factory", rc);
	rc = set_param(vi, idx, "efConstruction", vi->p.ef_construction);
	if (!rc)
		rc = set_param(vi, idx, "efSearch", vi->p.ef_search);
	if (rc) {
		faiss_Index_free(idx);
		return rc;
	}
	*out = idx;
	return 0;
}

/* Allocate everything but the FAISS index. */
static int vindex_alloc(const struct vindex_params *p, struct vindex **out)
{
	pthread_rwlockattr_t attr;
	struct vindex *vi;
	int rc;

	if (!params_ok(p))
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
		rc = faiss_err("ParameterSpace_new", rc);
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
	*out = vi;
	return 0;

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

	omp_one_thread();
	rc = vindex_alloc(p, &vi);
	if (rc)
		return rc;
	rc = new_hnsw(vi, &vi->hnsw);
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
	pthread_mutex_destroy(&vi->compact_mu);
	pthread_rwlock_destroy(&vi->lock);
	free(vi->pos_ids);
	free(vi->tomb);
	free(vi->slots);
	free(vi->buf_ids);
	free(vi->buf_vecs);
	free(vi);
}

/* ---- add / remove ---- */

static int buf_reserve(struct vindex *vi, size_t n)
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
	size_t s = map_find(vi, id);

	vi->buf_ids[to] = id;
	memcpy(vi->buf_vecs + to * dim, vi->buf_vecs + from * dim,
	       dim * sizeof(float));
	vi->slots[s] = (uint32_t)(BUF_BIT | to) + 1;
}

int vindex_add(struct vindex *vi, int64_t id, const float *vec)
{
	size_t s;
	int rc;

	if (!vi || !vec)
		return -EINVAL;
	pthread_rwlock_wrlock(&vi->lock);
	if (vi->slots[map_find(vi, id)]) {
		rc = -EEXIST;
		goto out;
	}
	if (vi->nbuf >= LOC_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	rc = buf_reserve(vi, vi->nbuf + 1);
	if (!rc)
		rc = map_reserve(vi);
	if (rc)
		goto out;
	s = map_find(vi, id);
	vi->buf_ids[vi->nbuf] = id;
	memcpy(vi->buf_vecs + vi->nbuf * vi->p.dim, vec,
	       vi->p.dim * sizeof(*vec));
	vi->slots[s] = (uint32_t)(BUF_BIT | vi->nbuf) + 1;
	vi->nbuf++;
	vi->nused++;
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
	s = map_find(vi, id);
	if (!vi->slots[s]) {
		rc = -ENOENT;
		goto out;
	}
	loc = vi->slots[s] - 1;
	map_delete(vi, s);
	if (!(loc & BUF_BIT)) {
		tomb_set(vi->tomb, loc);
		vi->ntomb++;
		goto out;
	}
	/* buffer entry: move the last one into its place */
	loc &= ~BUF_BIT;
	vi->nbuf--;
	if (loc != vi->nbuf)
		buf_move(vi, vi->nbuf, loc);
out:
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}

/* ---- merge ---- */

static int pos_reserve(struct vindex *vi, size_t n)
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
	ow = tomb_words(vi->pos_cap);
	nw = tomb_words(cap);
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
	omp_one_thread();
	pthread_rwlock_wrlock(&vi->lock);
	n = vi->nbuf < (size_t)max ? vi->nbuf : (size_t)max;
	if (!n || vi->compacting) {
		rc = 0;
		goto out;
	}
	before = vi->ntotal;
	if (before + n > LOC_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	rc = pos_reserve(vi, before + n);
	if (rc)
		goto out;
	first = vi->nbuf - n;
	rc = faiss_Index_add(vi->hnsw, (idx_t)n,
			     vi->buf_vecs + first * vi->p.dim);
	if (rc)
		rc = faiss_err("add", rc);
	/* adopt whatever FAISS did store, even after a failure */
	after = faiss_Index_ntotal(vi->hnsw);
	got = after > (idx_t)before ? (size_t)after - before : 0;
	if (got > n)
		got = n;
	for (size_t i = 0; i < got; i++) {
		int64_t id = vi->buf_ids[first + i];
		size_t s = map_find(vi, id);

		vi->pos_ids[before + i] = id;
		vi->slots[s] = (uint32_t)(before + i) + 1;
	}
	vi->ntotal = before + got;
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

/* ---- search ---- */

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
		if (tomb_get(vi, pos) || !accepted(accept, arg, vi->pos_ids[pos]))
			continue;
		rc = faiss_Index_reconstruct(vi->hnsw, (idx_t)pos, v);
		if (rc) {
			rc = faiss_err("reconstruct", rc);
			break;
		}
		topk_push(t, vi->pos_ids[pos], dot(q, v, vi->p.dim));
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
		rc = faiss_Index_search(vi->hnsw, 1, q, (idx_t)kk, d, l);
		if (rc) {
			rc = faiss_err("search", rc);
			break;
		}
		t->n = 0;
		for (size_t i = 0; i < kk; i++) {
			if (l[i] < 0 || (size_t)l[i] >= vi->ntotal ||
			    tomb_get(vi, l[i]))
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
	omp_one_thread();
	pthread_rwlock_rdlock(&vi->lock);
	if (vi->ntotal > vi->ntomb)
		rc = search_hnsw(vi, q, k, accept, arg, &t);
	for (size_t i = 0; !rc && i < vi->nbuf; i++) {
		float sc = dot(q, vi->buf_vecs + i * vi->p.dim, vi->p.dim);

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

/* ---- small accessors ---- */

size_t vindex_buffered(struct vindex *vi)
{
	size_t n;

	pthread_rwlock_rdlock(&vi->lock);
	n = vi->nbuf;
	pthread_rwlock_unlock(&vi->lock);
	return n;
}

size_t vindex_live(struct vindex *vi)
{
	size_t n;

	pthread_rwlock_rdlock(&vi->lock);
	n = vi->nused;
	pthread_rwlock_unlock(&vi->lock);
	return n;
}

size_t vindex_tombstones(struct vindex *vi)
{
	size_t n;

	pthread_rwlock_rdlock(&vi->lock);
	n = vi->ntomb;
	pthread_rwlock_unlock(&vi->lock);
	return n;
}

int64_t vindex_max_id(struct vindex *vi)
{
	int64_t id;

	pthread_rwlock_rdlock(&vi->lock);
	id = vi->max_id;
	pthread_rwlock_unlock(&vi->lock);
	return id;
}

int vindex_set_ef_search(struct vindex *vi, int ef_search)
{
	int rc;

	if (!vi || ef_search <= 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&vi->lock);
	rc = set_param(vi, vi->hnsw, "efSearch", ef_search);
	if (!rc)
		vi->p.ef_search = ef_search;
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}

int vindex_get(struct vindex *vi, int64_t id, float *out)
{
	uint32_t loc;
	int rc = 0;

	if (!vi || !out)
		return -EINVAL;
	pthread_rwlock_rdlock(&vi->lock);
	loc = vi->slots[map_find(vi, id)];
	if (!loc) {
		rc = -ENOENT;
	} else if (--loc & BUF_BIT) {
		memcpy(out, vi->buf_vecs + (loc & ~BUF_BIT) * vi->p.dim,
		       vi->p.dim * sizeof(*out));
	} else {
		rc = faiss_Index_reconstruct(vi->hnsw, loc, out);
		if (rc)
			rc = faiss_err("reconstruct", rc);
	}
	pthread_rwlock_unlock(&vi->lock);
	return rc;
}

/* ---- compaction ---- */

struct snapshot {
	size_t n;
	float *vecs;            /* [n * dim] */
	int64_t *ids;           /* [n] */
	uint32_t *old_pos;      /* [n] */
};

static void snapshot_release(struct snapshot *s)
{
	free(s->vecs);
	free(s->ids);
	free(s->old_pos);
}

/* Copy live FAISS vectors (read lock held). */
static int snapshot_take(struct vindex *vi, struct snapshot *s)
{
	size_t live = vi->ntotal - vi->ntomb, j = 0, dim = vi->p.dim;
	int rc;

	s->vecs = malloc((live ? live : 1) * dim * sizeof(float));
	s->ids = malloc((live ? live : 1) * sizeof(*s->ids));
	s->old_pos = malloc((live ? live : 1) * sizeof(*s->old_pos));
	if (!s->vecs || !s->ids || !s->old_pos)
		return -ENOMEM;
	for (size_t pos = 0; pos < vi->ntotal && j < live; pos++) {
		if (tomb_get(vi, pos))
			continue;
		rc = faiss_Index_reconstruct(vi->hnsw, pos, s->vecs + j * dim);
		if (rc)
			return faiss_err("reconstruct", rc);
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
static void compact_swap(struct vindex *vi, struct snapshot *s,
			 FaissIndex *idx, int64_t *pos_ids, uint64_t *tomb,
			 size_t cap)
{
	size_t ntomb = 0;

	for (size_t i = 0; i < s->n; i++) {
		pos_ids[i] = s->ids[i];
		if (tomb_get(vi, s->old_pos[i])) {
			/* removed while we were building */
			tomb_set(tomb, i);
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

	/* same ids as before, so the table needs no growth */
	memset(vi->slots, 0, vi->nslots * sizeof(*vi->slots));
	for (size_t pos = 0; pos < vi->ntotal; pos++)
		if (!tomb_get(vi, pos))
			vi->slots[map_find(vi, pos_ids[pos])] = (uint32_t)pos + 1;
	for (size_t i = 0; i < vi->nbuf; i++)
		vi->slots[map_find(vi, vi->buf_ids[i])] =
			(uint32_t)(BUF_BIT | i) + 1;
}

/* Build a graph over the snapshot (no lock held). */
static int compact_build(struct vindex *vi, struct snapshot *s,
			 FaissIndex **out)
{
	FaissIndex *idx;
	int rc = new_hnsw(vi, &idx);

	if (rc)
		return rc;
	if (s->n) {
		rc = faiss_Index_add(idx, (idx_t)s->n, s->vecs);
		if (rc) {
			faiss_Index_free(idx);
			return faiss_err("add", rc);
		}
	}
	*out = idx;
	return 0;
}

int vindex_compact(struct vindex *vi)
{
	struct snapshot s = { 0 };
	FaissIndex *idx = NULL;
	int64_t *pos_ids = NULL;
	uint64_t *tomb = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!vi)
		return -EINVAL;
	omp_one_thread();
	pthread_mutex_lock(&vi->compact_mu);
	pthread_rwlock_wrlock(&vi->lock);
	if (!vi->ntomb) {
		pthread_rwlock_unlock(&vi->lock);
		goto out_mu;
	}
	vi->compacting = true;  /* pauses merges: positions stay put */
	pthread_rwlock_unlock(&vi->lock);

	pthread_rwlock_rdlock(&vi->lock);
	rc = snapshot_take(vi, &s);
	pthread_rwlock_unlock(&vi->lock);
	if (!rc)
		rc = compact_build(vi, &s, &idx);
	if (!rc) {
		cap = s.n ? s.n : 1;
		pos_ids = malloc(cap * sizeof(*pos_ids));
		tomb = calloc(tomb_words(cap), sizeof(*tomb));
		if (!pos_ids || !tomb)
			rc = -ENOMEM;
	}

	pthread_rwlock_wrlock(&vi->lock);
	if (!rc)
		rc = set_param(vi, idx, "efSearch", vi->p.ef_search);
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
	snapshot_release(&s);
out_mu:
	pthread_mutex_unlock(&vi->compact_mu);
	return rc;
}

/* ---- save / load ----
 *
 * File: a 64-byte header, then the body:
 *   int64 pos_ids[ntotal], uint64 tomb[(ntotal + 63) / 64],
 *   int64 buf_ids[nbuf], float buf_vecs[nbuf * dim],
 *   FAISS index bytes (faiss_write_index) to the end.
 * Header (host byte order): "SCVX", u32 version, u32 dim, u32 m, u32 efc,
 * u32 crc, u64 ntotal, u64 nbuf, u64 ntomb, i64 max_id, u64 body_len.
 * crc is zlib crc32 over the header with the crc field zeroed, then the body.
 */

struct vx_header {
	uint32_t version, dim, m, efc, crc;
	uint64_t ntotal, nbuf, ntomb, body_len;
	int64_t max_id;
};

static void hdr_encode(const struct vx_header *h, unsigned char *b)
{
	memset(b, 0, VX_HDR_SIZE);
	memcpy(b, VX_MAGIC, 4);
	memcpy(b + 4, &h->version, 4);
	memcpy(b + 8, &h->dim, 4);
	memcpy(b + 12, &h->m, 4);
	memcpy(b + 16, &h->efc, 4);
	memcpy(b + 20, &h->crc, 4);
	memcpy(b + 24, &h->ntotal, 8);
	memcpy(b + 32, &h->nbuf, 8);
	memcpy(b + 40, &h->ntomb, 8);
	memcpy(b + 48, &h->max_id, 8);
	memcpy(b + 56, &h->body_len, 8);
}

static void hdr_decode(const unsigned char *b, struct vx_header *h)
{
	memcpy(&h->version, b + 4, 4);
	memcpy(&h->dim, b + 8, 4);
	memcpy(&h->m, b + 12, 4);
	memcpy(&h->efc, b + 16, 4);
	memcpy(&h->crc, b + 20, 4);
	memcpy(&h->ntotal, b + 24, 8);
	memcpy(&h->nbuf, b + 32, 8);
	memcpy(&h->ntomb, b + 40, 8);
	memcpy(&h->max_id, b + 48, 8);
	memcpy(&h->body_len, b + 56, 8);
}

static uint32_t file_crc(const unsigned char *hdr, const unsigned char *body,
			 size_t len)
{
	unsigned char h[VX_HDR_SIZE];
	uLong crc = crc32(0L, Z_NULL, 0);

	memcpy(h, hdr, VX_HDR_SIZE);
	memset(h + 20, 0, 4);
	crc = crc32(crc, h, VX_HDR_SIZE);
	while (len) {
		uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, body, chunk);
		body += chunk;
		len -= chunk;
	}
	return (uint32_t)crc;
}

/* Serialise the body into memory (read lock held). */
static int body_encode(struct vindex *vi, struct vx_header *h, char **body,
		       size_t *len)
{
	FILE *f = open_memstream(body, len);
	size_t dim = vi->p.dim;
	int rc = 0;

	if (!f)
		return -errno;
	if (vi->ntotal &&
	    (fwrite(vi->pos_ids, sizeof(int64_t), vi->ntotal, f) != vi->ntotal ||
	     fwrite(vi->tomb, sizeof(uint64_t), tomb_words(vi->ntotal), f) !=
		     tomb_words(vi->ntotal)))
		rc = -ENOMEM;
	if (vi->nbuf &&
	    (fwrite(vi->buf_ids, sizeof(int64_t), vi->nbuf, f) != vi->nbuf ||
	     fwrite(vi->buf_vecs, sizeof(float) * dim, vi->nbuf, f) != vi->nbuf))
		rc = -ENOMEM;
	if (!rc) {
		rc = faiss_write_index(vi->hnsw, f);
		if (rc)
			rc = faiss_err("write_index", rc);
	}
	if (fclose(f) && !rc)
		rc = -ENOMEM;
	if (rc) {
		free(*body);
		*body = NULL;
		return rc;
	}
	*h = (struct vx_header){
		.version = VX_VERSION, .dim = vi->p.dim, .m = vi->p.m,
		.efc = vi->p.ef_construction, .ntotal = vi->ntotal,
		.nbuf = vi->nbuf, .ntomb = vi->ntomb, .max_id = vi->max_id,
		.body_len = *len,
	};
	return 0;
}

static int write_file(const char *path, const unsigned char *hdr,
		      const char *body, size_t len)
{
	const char *step = "create", *name;
	char *tmp;
	int fd, rc;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	name = tmp;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	step = "write";
	rc = fileio_write_all(fd, hdr, VX_HDR_SIZE);
	if (!rc)
		rc = fileio_write_all(fd, body, len);
	if (!rc) {
		step = "fsync";
		rc = fsync(fd) ? -errno : 0;
	}
	if (close(fd) && !rc) {
		step = "close";
		rc = -errno;
	}
	if (!rc) {
		step = "rename to";
		name = path;
		rc = rename(tmp, path) ? -errno : 0;
	}
	if (rc) {
		unlink(tmp);
		goto out;
	}
	step = "fsync directory of";
	rc = fileio_fsync_parent(path);
out:
	if (rc)
		semlog(SEMLOG_ERR, "vindex: %s '%s' failed: %s", step, name,
			strerror(-rc));
	free(tmp);
	return rc;
}

int vindex_save(struct vindex *vi, const char *path)
{
	struct vx_header h = { 0 };
	unsigned char hdr[VX_HDR_SIZE];
	char *body = NULL;
	size_t len = 0;
	int rc;

	if (!vi || !path)
		return -EINVAL;
	omp_one_thread();
	pthread_rwlock_rdlock(&vi->lock);
	rc = body_encode(vi, &h, &body, &len);
	pthread_rwlock_unlock(&vi->lock);
	if (rc)
		return rc;
	hdr_encode(&h, hdr);
	h.crc = file_crc(hdr, (unsigned char *)body, len);
	hdr_encode(&h, hdr);
	rc = write_file(path, hdr, body, len);
	free(body);
	return rc;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	struct stat st;
	unsigned char *b = NULL;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	b = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!b) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, b + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EBADMSG;
			goto out;
		}
		got += (size_t)r;
	}
	*out = b;
	*len = got;
	b = NULL;
out:
	free(b);
	close(fd);
	return rc;
}

static int map_insert(struct vindex *vi, int64_t id, uint32_t loc)
{
	size_t s;
	int rc = map_reserve(vi);

	if (rc)
		return rc;
	s = map_find(vi, id);
	if (vi->slots[s])
		return -EBADMSG;        /* duplicate id in the file */
	vi->slots[s] = loc + 1;
	vi->nused++;
	return 0;
}

/* Fill vi from a checked body (fresh vi, no lock needed). */
static int body_decode(struct vindex *vi, const struct vx_header *h,
		       const unsigned char *b)
{
	size_t dim = vi->p.dim, nt = h->ntotal, nb = h->nbuf, ntomb = 0;
	size_t fixed = nt * 8 + tomb_words(nt) * 8 + nb * 8 + nb * dim * 4;
	FaissIndex *idx = NULL;
	FILE *f;
	int rc;

	if (nt > LOC_MAX || nb > LOC_MAX || fixed >= h->body_len)
		return -EBADMSG;
	/* at least one element each, so no memcpy below gets NULL */
	rc = pos_reserve(vi, nt ? nt : 1);
	if (!rc)
		rc = buf_reserve(vi, nb ? nb : 1);
	if (rc)
		return rc;
	memcpy(vi->pos_ids, b, nt * 8);
	b += nt * 8;
	memcpy(vi->tomb, b, tomb_words(nt) * 8);
	b += tomb_words(nt) * 8;
	memcpy(vi->buf_ids, b, nb * 8);
	b += nb * 8;
	memcpy(vi->buf_vecs, b, nb * dim * 4);
	b += nb * dim * 4;
	vi->ntotal = nt;
	vi->nbuf = nb;
	vi->max_id = h->max_id;

	f = fmemopen((void *)b, h->body_len - fixed, "rb");
	if (!f)
		return -errno;
	rc = faiss_read_index(f, 0, &idx);
	fclose(f);
	if (rc) {
		faiss_err("read_index", rc);
		return -EBADMSG;
	}
	vi->hnsw = idx;
	if (faiss_Index_d(idx) != vi->p.dim ||
	    faiss_Index_ntotal(idx) != (idx_t)nt)
		return -EBADMSG;
	/* fails on anything but HNSW */
	if (set_param(vi, idx, "efConstruction", vi->p.ef_construction) ||
	    set_param(vi, idx, "efSearch", vi->p.ef_search))
		return -EBADMSG;

	for (size_t pos = 0; pos < tomb_words(nt) * 64; pos++) {
		if (pos >= nt) {
			if (tomb_get(vi, pos))
				return -EBADMSG;
		} else if (tomb_get(vi, pos)) {
			ntomb++;
		} else if ((rc = map_insert(vi, vi->pos_ids[pos], pos))) {
			return rc;
		}
	}
	if (ntomb != h->ntomb)
		return -EBADMSG;
	vi->ntomb = ntomb;
	for (size_t i = 0; i < nb; i++) {
		rc = map_insert(vi, vi->buf_ids[i], BUF_BIT | i);
		if (rc)
			return rc;
	}
	return 0;
}

int vindex_load(const char *path, const struct vindex_params *p,
		struct vindex **out)
{
	unsigned char *data = NULL;
	struct vx_header h = { 0 };
	struct vindex *vi = NULL;
	size_t len = 0;
	int rc;

	if (!path || !out || !params_ok(p))
		return -EINVAL;
	omp_one_thread();
	rc = read_file(path, &data, &len);
	if (rc)
		return rc;
	rc = -EBADMSG;
	if (len < VX_HDR_SIZE || memcmp(data, VX_MAGIC, 4))
		goto out;
	hdr_decode(data, &h);
	if (h.version != VX_VERSION || h.body_len != len - VX_HDR_SIZE ||
	    h.crc != file_crc(data, data + VX_HDR_SIZE, h.body_len))
		goto out;
	rc = -ESTALE;
	if (h.dim != (uint32_t)p->dim || h.m != (uint32_t)p->m)
		goto out;
	rc = vindex_alloc(p, &vi);
	if (rc)
		goto out;
	rc = body_decode(vi, &h, data + VX_HDR_SIZE);
	if (rc) {
		vindex_free(vi);
		goto out;
	}
	*out = vi;
out:
	if (rc == -EBADMSG)
		semlog(SEMLOG_ERR, "vindex: '%s' is damaged or not a vindex "
			"file; delete it to rebuild", path);
	else if (rc == -ESTALE)
		semlog(SEMLOG_ERR, "vindex: '%s' was saved with other "
			"parameters; delete it to rebuild", path);
	free(data);
	return rc;
}
