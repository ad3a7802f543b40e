/*
 * quota.c - keeping a category within its quota (entries, bytes).
 *
 * With the local store, evictions are decided here on this process's view
 * in the policy's order (fifo, lru, lfu), in batches taken under cat.lock
 * and retired without it. With a store several hosts share
 * (store_keeps_quotas) the store decides every eviction atomically on
 * everyone's entries and this side only forgets the victims: evicting on
 * each host's view would evict twice for one overflow.
 *
 * Not here: when quotas are checked (fill.c after a fill, maint.c every
 * slow tick).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "engine_i.h"
#include "semlog.h"

bool engine_quota_over(const struct policy *p, const struct cat *cat)
{
	return (p->quota_entries > 0 && (int64_t)cat->by_id.len > p->quota_entries) ||
	       (p->quota_bytes > 0 && cat->bytes > p->quota_bytes);
}

/* The entry the eviction order gives up first, never keep. cat->lock held. */
static struct centry *pick_victim(struct cat *cat, const struct policy *p,
				  int64_t keep)
{
	struct centry *best = NULL;

	switch (p->eviction) {
	case POLICY_EVICT_FIFO:
		for (best = cat->fifo.head; best && best->id == keep; best = best->fifo_next)
			;
		return best;
	case POLICY_EVICT_LRU:
		for (best = cat->lru.head; best && best->id == keep; best = best->lru_next)
			;
		return best;
	case POLICY_EVICT_LFU:
		/* least hits; ties go to the least recently used */
		for (struct centry *e = cat->lru.head; e; e = e->lru_next)
			if (e->id != keep && (!best || e->hits < best->hits))
				best = e;
		return best;
	}
	return NULL;
}

/*
 * Evict until cat fits its quota (keeping keep, the entry just filled).
 * Removal from FAISS is a tombstone; compaction happens in the background.
 */
static void enforce_quota(struct cache *c, struct cat *cat,
			  const struct policy *p, int64_t keep)
{
	struct centry *victims[64];
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&cat->lock);
		while (n < 64 && engine_quota_over(p, cat)) {
			struct centry *v = pick_victim(cat, p, keep);

			if (!v)
				break;
			engine_entry_unpublish(cat, v);
			victims[n++] = v;
		}
		pthread_mutex_unlock(&cat->lock);
		for (size_t i = 0; i < n; i++)
			engine_entry_retire(c, cat, victims[i], "evicted");
		cat->evicted += n;
	} while (n == 64);
}

#define QUOTA_BATCH 256   /* evictions per call of a store that keeps quotas */

/*
 * Bring cat within p's quota, keeping keep (the entry just filled; 0 =
 * none). A store that keeps quotas decides the evictions itself, once for
 * all hosts, in the order p asks; this host flushes its own hit counters
 * first (so that its hits count), then forgets the victims and keep if
 * another host evicted it meanwhile. Otherwise (the local store) evict on
 * this view. A store error evicts nothing: the entries stay, and the
 * maintenance tick asks again while this view is over quota.
 */
void engine_quota_apply(struct cache *c, struct cat *cat,
			const struct policy *p, int64_t keep)
{
	struct store_quota q = { .entries = p->quota_entries,
				 .bytes = p->quota_bytes, .keep = keep };
	int64_t victims[QUOTA_BATCH];
	bool keep_gone;
	size_t n;
	int rc;

	if (!c->store_quotas) {
		enforce_quota(c, cat, p, keep);
		return;
	}
	switch (p->eviction) {
	case POLICY_EVICT_FIFO:
		q.order = STORE_EVICT_FIFO;
		break;
	case POLICY_EVICT_LFU:
		q.order = STORE_EVICT_LFU;
		engine_maint_flush_hits(c, cat);
		break;
	case POLICY_EVICT_LRU:
	default:
		q.order = STORE_EVICT_LRU;
		engine_maint_flush_hits(c, cat);
		break;
	}
	do {
		rc = store_quota_enforce(c->store, cat->id, &q, victims,
					 QUOTA_BATCH, &n, &keep_gone);
		if (rc) {
			if (!atomic_exchange(&cat->quota_failing, true))
				semlog(SEMLOG_WARN, "category '%s': quota eviction in the store failed: %s (entries kept here; retried while over quota)",
				       cat->path, strerror(-rc));
			return;
		}
		if (atomic_exchange(&cat->quota_failing, false))
			semlog(SEMLOG_INFO, "category '%s': quota eviction in the store works again",
			       cat->path);
		for (size_t i = 0; i < n; i++)
			engine_entry_forget(cat, victims[i]);
		cat->evicted += n;
		if (keep_gone)
			engine_entry_forget(cat, keep);
	} while (n == QUOTA_BATCH);
}
