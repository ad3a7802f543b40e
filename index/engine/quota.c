/*
 * quota.c - keeping a category within its quota (entries, bytes).
 *
 * With the local store, evictions are decided here on this process's view
 * in the policy's order (fifo, lru, lfu), in batches picked under cat.lock
 * and deleted from the store without it (then forgotten here). With a store several hosts share
 * (store_keeps_quotas) the store decides every eviction atomically on
 * everyone's entries and this side only forgets the victims: evicting on
 * each host's view would evict twice for one overflow.
 *
 * Not here: when quotas are checked (fill.c after a fill, maint.c every
 * slow tick).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "engine_i.h"
#include "semlog.h"

static bool over(const struct policy *p, const struct cat *cat)
{
	return (p->quota_entries > 0 && (int64_t)cat->by_id.len > p->quota_entries) ||
	       (p->quota_bytes > 0 && cat->bytes > p->quota_bytes);
}

bool engine_quota_over(const struct policy *p, struct cat *cat)
{
	bool o;

	if (p->quota_entries <= 0 && p->quota_bytes <= 0)
		return false;
	pthread_mutex_lock(&cat->lock);
	o = over(p, cat);
	pthread_mutex_unlock(&cat->lock);
	return o;
}

#define VICTIMS 64

struct victims {
	int64_t id[VICTIMS];
	int64_t hits[VICTIMS];    /* lfu: kept sorted, fewest first */
	int64_t bytes;            /* what they free */
	size_t n;
};

/* Would cat fit p without n entries of bytes in all? */
static bool fits(const struct policy *p, const struct cat *cat, size_t n,
		 int64_t bytes)
{
	return (p->quota_entries <= 0 ||
		(int64_t)(cat->by_id.len - n) <= p->quota_entries) &&
	       (p->quota_bytes <= 0 || cat->bytes - bytes <= p->quota_bytes);
}

/* lfu: keep the VICTIMS entries with the fewest hits (ties: the least
 * recently used, as the list is walked in lru order). */
static void lfu_offer(struct victims *v, const struct centry *e)
{
	size_t i;

	if (v->n == VICTIMS && e->hits >= v->hits[VICTIMS - 1])
		return;
	i = v->n < VICTIMS ? v->n++ : VICTIMS - 1;
	while (i > 0 && v->hits[i - 1] > e->hits) {
		v->id[i] = v->id[i - 1];
		v->hits[i] = v->hits[i - 1];
		i--;
	}
	v->id[i] = e->id;
	v->hits[i] = e->hits;
}

/* Pick the entries p's order gives up first, never keep, as few as fit
 * p (at most VICTIMS). cat.lock held; nothing is changed. */
static void pick_victims(struct cat *cat, const struct policy *p,
			 int64_t keep, struct victims *v)
{
	const struct centry *e;

	v->n = 0;
	v->bytes = 0;
	if (p->eviction == POLICY_EVICT_LFU) {
		for (e = cat->lru.head; e; e = e->lru_next)
			if (e->id != keep)
				lfu_offer(v, e);
		/* only as many as needed, fewest hits first */
		for (size_t k = 0; k < v->n; k++) {
			const struct centry *x = u64map_get(&cat->by_id, (uint64_t)v->id[k]);

			v->bytes += x->bytes;
			if (fits(p, cat, k + 1, v->bytes)) {
				v->n = k + 1;
				break;
			}
		}
		return;
	}
	e = p->eviction == POLICY_EVICT_FIFO ? cat->fifo.head : cat->lru.head;
	while (e && v->n < VICTIMS && !fits(p, cat, v->n, v->bytes)) {
		if (e->id != keep) {
			v->id[v->n++] = e->id;
			v->bytes += e->bytes;
		}
		e = p->eviction == POLICY_EVICT_FIFO ? e->fifo_next : e->lru_next;
	}
}

/*
 * Evict until cat fits its quota (keeping keep, the entry just filled):
 * victims are picked under cat.lock, then deleted from the store (with no
 * lock held) and only then forgotten here; a failed delete stops the round
 * (the entries stay; the maintenance tick tries again). Removal from FAISS
 * is a tombstone; compaction happens in the background.
 */
static void enforce_quota(struct cache *c, struct catref *ref, int64_t keep)
{
	struct victims v;
	size_t gone = 0;
	int rc = 0;

	do {
		pthread_mutex_lock(&ref->cat->lock);
		pick_victims(ref->cat, &ref->pol, keep, &v);
		pthread_mutex_unlock(&ref->cat->lock);
		for (size_t i = 0; i < v.n && (!rc || rc == -ENOENT); i++) {
			rc = engine_entry_delete(c, ref->cat, ref->core, v.id[i], "evicted");
			if (!rc) {
				ref->cat->evicted++;
				gone++;
			}
		}
	} while (v.n == VICTIMS && (!rc || rc == -ENOENT));
	if (gone)
		engine_changed(c, ref->cat->path, false);
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
void engine_quota_apply(struct cache *c, struct catref *ref, int64_t keep)
{
	const struct policy *p = &ref->pol;
	struct cat *cat = ref->cat;
	struct store_quota q = { .entries = p->quota_entries,
				 .bytes = p->quota_bytes, .keep = keep };
	int64_t victims[QUOTA_BATCH];
	bool keep_gone;
	size_t n;
	int rc;

	if (!c->store_quotas) {
		enforce_quota(c, ref, keep);
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
			engine_entry_forget(cat, ref->core, victims[i]);
		cat->evicted += n;
		if (n)
			engine_changed(c, cat->path, false);
		if (keep_gone)
			engine_entry_forget(cat, ref->core, keep);
	} while (n == QUOTA_BATCH);
}
