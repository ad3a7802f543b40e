/*
 * hnsw_one.cpp - one k-nearest search of a FAISS IndexHNSW on the calling
 * thread, for search.c.
 *
 * Why: faiss::IndexHNSW::search (1.7.3) runs every call, even of one
 * query, in an OpenMP parallel region whose reduction of its counters
 * takes libgomp's single process-wide lock (GOMP_atomic_start), then adds
 * them to the global faiss::hnsw_stats. Two lookups searching at once
 * therefore wait for each other on that lock (futex sleeps and wake-ups,
 * seen with perf on two client threads) and write the same cache line.
 * The same search is made here without OpenMP and without the global
 * counters.
 *
 * How: what IndexHNSW::search does for one query, with the index's own
 * efSearch: the storage's distance computer (negated for inner product,
 * as FAISS's search minimises), faiss::HNSW::search into a max-heap of k,
 * the heap sorted, the distances negated back. The visited table is kept
 * per thread and only grown (as the project's FAISS patch does inside
 * IndexHNSW::search): HNSW::search advances it after every query, and new
 * slots start at 0, which no visit number equals.
 *
 * What not: any index but an IndexHNSW with flat storage and no
 * reconstruct_from_neighbors; batches; interrupt checks. For anything it
 * does not handle, and on any exception, it returns 1 and the caller asks
 * faiss_Index_search instead.
 */
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/HNSW.h>
#include <faiss/utils/Heap.h>

#include <limits>
#include <memory>

extern "C" {
#include <faiss/c_api/Index_c.h>
#include "vregion.h"
}

namespace {

using faiss::DistanceComputer;
using fidx_t = faiss::Index::idx_t;

/* Forward a prefetch hint where the FAISS headers have one (the patched
 * build's DistanceComputer::prefetch); nothing otherwise. */
template <class D>
auto prefetch_of(D *d, fidx_t i, int) -> decltype(d->prefetch(i), void())
{
	d->prefetch(i);
}

template <class D>
void prefetch_of(D *, fidx_t, long)
{
}

/* Inner product as a distance to minimise; does not own base. */
struct Negated : DistanceComputer {
	DistanceComputer *base;

	explicit Negated(DistanceComputer *b) : base(b) {}
	void set_query(const float *x) override { base->set_query(x); }
	float operator()(fidx_t i) override { return -(*base)(i); }
	float symmetric_dis(fidx_t i, fidx_t j) override { return -base->symmetric_dis(i, j); }
	/* overrides the patched build's virtual; a plain member otherwise */
	void prefetch(fidx_t i) { prefetch_of(base, i, 0); }
};

faiss::VisitedTable &thread_visited(size_t n)
{
	static thread_local std::unique_ptr<faiss::VisitedTable> vt;

	if (!vt)
		vt.reset(new faiss::VisitedTable((int)n));
	else if (vt->visited.size() < n)
		vt->visited.resize(n, 0);
	return *vt;
}

} // namespace

/* declared in vindex_i.h */
extern "C" int vindex_hnsw_search1(FaissIndex *index, const float *q, idx_t k,
				   float *dist, idx_t *ids);

extern "C" int vindex_hnsw_search1(FaissIndex *index, const float *q, idx_t k,
				   float *dist, idx_t *ids)
{
	try {
		const faiss::IndexHNSW *h = dynamic_cast<const faiss::IndexHNSW *>(
			reinterpret_cast<faiss::Index *>(index));

		if (!h || !h->storage || h->reconstruct_from_neighbors || k <= 0 ||
		    h->ntotal <= 0 || h->ntotal > std::numeric_limits<int>::max())
			return 1;

		std::unique_ptr<DistanceComputer> base(h->storage->get_distance_computer());
		bool ip = h->storage->metric_type == faiss::METRIC_INNER_PRODUCT;
		Negated neg(base.get());
		DistanceComputer &dis = ip ? static_cast<DistanceComputer &>(neg) : *base;

		dis.set_query(q);
		faiss::maxheap_heapify(k, dist, ids);
		h->hnsw.search(dis, (int)k, ids, dist, thread_visited((size_t)h->ntotal));
		faiss::maxheap_reorder(k, dist, ids);
		if (ip)
			for (idx_t i = 0; i < k; i++)
				dist[i] = -dist[i];
		return 0;
	} catch (...) {
		return 1;
	}
}

/* declared in vindex_i.h */
extern "C" int vindex_hnsw_regions(FaissIndex *index, struct vindex_region *r, int max);

extern "C" int vindex_hnsw_regions(FaissIndex *index, struct vindex_region *r, int max)
{
	try {
		const faiss::IndexHNSW *h = dynamic_cast<const faiss::IndexHNSW *>(
			reinterpret_cast<faiss::Index *>(index));
		const faiss::IndexFlatCodes *flat =
			h ? dynamic_cast<const faiss::IndexFlatCodes *>(h->storage) : nullptr;
		int n = 0;

		if (!h)
			return 0;
		auto put = [&](const auto &v) {
			if (n < max && v.data()) {
				r[n].p = (void *)v.data();
				r[n].len = v.size() * sizeof(v[0]);
				r[n].cap = v.capacity() * sizeof(v[0]);
				n++;
			}
		};
		if (flat)
			put(flat->codes);
		put(h->hnsw.neighbors);
		put(h->hnsw.offsets);
		put(h->hnsw.levels);
		return n;
	} catch (...) {
		return 0;
	}
}
