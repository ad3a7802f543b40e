/*
 * vindex_i.h - what the parts of the vector index share (private to
 * index/vector/; callers use vindex.h).
 *
 * Design. FAISS stores vectors at positions 0..ntotal-1. We keep:
 *  - pos_ids[pos]: the caller's id at each FAISS position (8 bytes/vector);
 *  - tomb: a bitmap over positions marking removed vectors (1 bit/vector);
 *  - slots: an open-addressing (linear probing, backward-shift delete) map
 *    from live id to where it lives, 4 bytes per slot at load <= 1/2. A slot
 *    holds loc+1; loc is a FAISS position, or VINDEX_BUF_BIT|i for buffer
 *    entry i. The key is not stored: it is read back through pos_ids /
 *    buf_ids (idmap.c).
 *  - buf_ids/buf_vecs: recently added vectors, searched by brute force,
 *    moved into HNSW by vindex_merge() in one faiss_Index_add per batch
 *    (merge.c).
 * Searches are in search.c, compaction in compact.c, save/load in
 * snapshot.c; vindex.c creates and frees and holds the small accessors.
 *
 * FAISS 1.7.3 opens an OpenMP parallel region for every search and add and
 * allocates per-thread scratch; every thread that calls FAISS first limits
 * itself to one OpenMP thread (vindex_omp_one_thread()). Searches of the
 * HNSW graph avoid the region altogether (hnsw_one.cpp).
 *
 * Every helper declared here expects the caller to hold vi->lock as the
 * comment says (or to own a vindex no other thread sees yet, as load does).
 */
#ifndef SEMCACHE_VINDEX_I_H
#define SEMCACHE_VINDEX_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>

#include "vindex.h"
#include "vregion.h"

#define VINDEX_BUF_BIT 0x80000000u
/* FAISS positions and buffer entries stay below VINDEX_LOC_MAX */
#define VINDEX_LOC_MAX 0x7ffffffeu
/* FAISS regions a hugepage pass looks at (vector codes, graph arrays) */
#define VINDEX_THP_REGIONS 4
/* The kernel's THP setting that hugepage passes honour (hugepages.c);
 * only the unit tests point it elsewhere. */
extern const char *vindex_thp_setting;

/*
 * Lock order: compact_mu, then lock; thp_mu, then lock (never both
 * compact_mu and thp_mu). compact_mu only serialises compactions, thp_mu
 * hugepage passes (hugepages.c); lock guards everything marked "lock"
 * below.
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
	uint64_t gen;                   /* lock: bumped by every change */
	/* lock: the snapshot file this index was loaded from or last saved
	 * to, as of generation file.gen (see vindex_save) */
	struct vindex_file {
		char *path;             /* NULL: none known */
		dev_t dev;
		ino_t ino;
		off_t size;
		struct timespec mtime;
		uint64_t gen;
	} file;
	/* thp_mu: the FAISS regions last put on huge pages (hugepages.c) */
	pthread_mutex_t thp_mu;
	struct vindex_region thp[VINDEX_THP_REGIONS];
	int nthp;
	bool thp_off;                   /* thp_mu: the kernel refused */
};

/* ---- tombstone bitmap and vectors ---- */

static inline bool vindex_tomb_get(const struct vindex *vi, size_t pos)
{
	return vi->tomb[pos / 64] >> (pos % 64) & 1;
}

static inline void vindex_tomb_set(uint64_t *bits, size_t pos)
{
	bits[pos / 64] |= 1ull << (pos % 64);
}

static inline size_t vindex_tomb_words(size_t n)
{
	return (n + 63) / 64;
}

static inline float vindex_dot(const float *a, const float *b, int dim)
{
	float s = 0;

	for (int i = 0; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

/* ---- vindex.c: construction and FAISS calls ---- */

/* Limit the calling thread to one OpenMP thread (once per thread). */
void vindex_omp_one_thread(void);
/* One query's k nearest in an IndexHNSW on the calling thread, without
 * OpenMP and FAISS's global counters (hnsw_one.cpp): 0 with dist and ids
 * filled as faiss_Index_search fills them, or 1 when it cannot (another
 * kind of index, a FAISS exception): then use faiss_Index_search. Read
 * lock held. */
int vindex_hnsw_search1(FaissIndex *index, const float *q, idx_t k, float *dist,
			idx_t *ids);
/* The memory regions of an IndexHNSW (its flat storage's codes, the
 * graph's neighbors, offsets and levels) into r[0..max): how many (0 for
 * another kind of index). Read lock held; the regions stay valid only
 * while it is. */
int vindex_hnsw_regions(FaissIndex *index, struct vindex_region *r, int max);
/* Log a failed FAISS call with FAISS's message; returns -EIO. */
int vindex_faiss_err(const char *what, int rc);
bool vindex_params_ok(const struct vindex_params *p);
/* Set one HNSW parameter of idx (vi->ps is only read). 0 or -EIO. */
int vindex_set_param(struct vindex *vi, FaissIndex *idx, const char *name,
		     int v);
/* New empty HNSW with efConstruction/efSearch from vi->p. */
int vindex_new_hnsw(struct vindex *vi, FaissIndex **out);
/* Allocate everything but the FAISS index (no lock: vi is new). */
int vindex_alloc(const struct vindex_params *p, struct vindex **out);

/* ---- idmap.c: id -> location (lock held; write lock to change) ---- */

/* Slot index holding id, or the empty slot where it would go. */
size_t vindex_map_find(const struct vindex *vi, int64_t id);
/* Make room for one more entry; call before map_find for an insert. */
int vindex_map_reserve(struct vindex *vi);
/* Insert id at loc; -EBADMSG if id is already present (load only). */
int vindex_map_insert(struct vindex *vi, int64_t id, uint32_t loc);
/* Empty slot i (backward-shift delete). */
void vindex_map_delete(struct vindex *vi, size_t i);

/* ---- merge.c: buffer and position arrays (write lock held) ---- */

/* Capacity for n buffered vectors. 0 or -ENOMEM. */
int vindex_buf_reserve(struct vindex *vi, size_t n);
/* Capacity for n FAISS positions (pos_ids and tomb). 0 or -ENOMEM. */
int vindex_pos_reserve(struct vindex *vi, size_t n);

#endif
