/*
 * vindex.h - one category's vector index: FAISS HNSW plus a recent buffer.
 *
 * Vectors are L2-normalised; scores are inner products (cosine similarity).
 * The HNSW graph lives in FAISS and is used only through the FAISS C API.
 * FAISS HNSW adds single vectors slowly and cannot remove them, so:
 *  - vindex_add() appends to a small exact buffer searched by brute force;
 *    vindex_merge() moves buffered vectors into HNSW in batches;
 *  - vindex_remove() marks a tombstone; searches skip tombstoned ids;
 *    vindex_compact() rebuilds HNSW from live vectors and swaps it in.
 * Entry ids are the caller's int64 ids; positions inside FAISS are private.
 *
 * Thread safety: every function may be called from any thread. Searches run
 * concurrently with each other; add/remove wait only for short critical
 * sections; merge holds the write lock for one batch at a time; compaction
 * builds the new graph without holding the lock.
 */
#ifndef SEMCACHE_VINDEX_H
#define SEMCACHE_VINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vindex;

struct vindex_params {
	int dim;
	int m;                 /* HNSW neighbours per node */
	int ef_construction;
	int ef_search;
};

/* Called for each candidate; return true to accept it as a result. */
typedef bool (*vindex_accept_fn)(void *arg, int64_t id);

int vindex_new(const struct vindex_params *p, struct vindex **out);
void vindex_free(struct vindex *vi);

/* Add one vector (dim floats). -EEXIST if id is present and live. */
int vindex_add(struct vindex *vi, int64_t id, const float *vec);
/* Tombstone id. -ENOENT if absent. */
int vindex_remove(struct vindex *vi, int64_t id);

/*
 * Best k accepted results by descending score. accept may be NULL (accept
 * all live). When too few candidates are accepted the search widens, up to
 * an exact scan for small indexes. Returns the number of results (0..k) or
 * a negative errno. accept runs under the index's read lock, possibly more
 * than once per id: it must not call vindex functions that write.
 */
int vindex_search(struct vindex *vi, const float *q, int k,
		  vindex_accept_fn accept, void *arg, int64_t *ids,
		  float *scores);

/* Move up to max buffered vectors into HNSW. Returns how many moved. */
int vindex_merge(struct vindex *vi, int max);
/* Functions returning an int give -EINVAL for a NULL index; the counters
 * below (vindex_buffered, _live, _tombstones, _max_id) give 0. */
/* Number of buffered (not yet merged) vectors. */
size_t vindex_buffered(struct vindex *vi);
/* Live vectors, and tombstoned vectors still inside HNSW. */
size_t vindex_live(struct vindex *vi);
size_t vindex_tombstones(struct vindex *vi);
/* Rebuild HNSW from live vectors and swap it in. */
int vindex_compact(struct vindex *vi);
/*
 * Ask the kernel to back the index's large arrays (the vectors, the HNSW
 * graph) with transparent huge pages, and collapse what they hold now
 * (MADV_HUGEPAGE, MADV_COLLAPSE): an HNSW search reads vectors all over
 * them, and with 4 KiB pages most reads first miss the TLB (at 1M
 * entries a search took 27% less time on huge pages). Only what is new
 * since the last call (a load, an array a merge moved or grew, a
 * compaction) is advised, without vi's lock held, so lookups and fills
 * go on meanwhile; for an array moved meanwhile the hint is harmless.
 * Slow (copies what it collapses): call it from a background thread.
 * Returns the bytes newly collapsed, 0 when nothing was new, the
 * kernel's THP setting is "never" (read at each call that has something
 * new: MADV_COLLAPSE itself ignores it) or the kernel has no THP (then
 * it stops trying).
 */
size_t vindex_hugepages(struct vindex *vi);
/* Change ef_search for later searches. */
int vindex_set_ef_search(struct vindex *vi, int ef_search);
/* Copy id's vector into out. -ENOENT if absent. */
int vindex_get(struct vindex *vi, int64_t id, float *out);
/* Whether id is in the index (buffered or merged), without its vector. */
bool vindex_contains(struct vindex *vi, int64_t id);
/* Highest id ever added (0 if none). */
int64_t vindex_max_id(struct vindex *vi);

/*
 * Persist to path atomically (temp, fsync, rename) with a checksum, and load
 * back. Load returns -EBADMSG for a damaged or foreign file and -ENOENT if
 * missing; params must match what was saved (else -ESTALE).
 */
int vindex_save(struct vindex *vi, const char *path);
int vindex_load(const char *path, const struct vindex_params *p,
		struct vindex **out);
/* The highest id a snapshot file says it holds, read from its header
 * alone (nothing is verified: vindex_load checks the whole file), or -1
 * when path is no snapshot. A hint for loading while the store is read. */
int64_t vindex_snapshot_max_id(const char *path);

#endif
