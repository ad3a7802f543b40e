/*
 * maint.c - the background maintenance thread.
 *
 * It works on references to each category and its core (taken under a
 * short hold of cache.tree) with no engine lock held across its slow work
 * (store calls, merges, compaction).
 *
 * Every tick (100 ms, 2 ms while a merge backlog remains) it merges
 * recently added vectors into HNSW in small batches, bounded in time per
 * category. Every tenth tick it also writes hit counters back to the
 * store (and reads the store's sums back), retires expired entries in
 * batches (expired entries are never served: this is only garbage
 * collection; the store decides each expiry once, for every host that
 * shares it: store_entry_expire), applies quotas, closes
 * break-even windows, prunes pending misses and compacts indexes whose
 * tombstones pass a quarter of them, and puts index arrays that are new
 * since the last look on huge pages (vindex_hugepages).
 *
 * Not here: the quota and adaptation rules themselves (quota.c, adapt.c),
 * snapshots (open.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "engine_i.h"
#include "semlog.h"

#define MERGE_BATCH_MAX 32    /* ~5 ms of inserts at 100k on AVX2 FAISS */

#define MERGE_BATCH 4         /* one write-lock hold: ~1 ms per vector at 100k on scalar FAISS */

#define MERGE_TICK_US 80000   /* merging time per category per tick */

#define SWEEP_BATCH 128       /* expired entries retired per category per tick */
#define SWEEP_SCAN 8192       /* map slots looked at per category per tick */

/* Put the entries of t[0..n) back in cat's write-back queue (a failed
 * write-back: sent again with the next, which a shared store counts
 * once, see store_entry_touch). */
static void requeue_hits(struct cat *cat, const struct store_touch *t,
			 size_t n)
{
	pthread_mutex_lock(&cat->lock);
	for (size_t i = 0; i < n; i++) {
		struct centry *e = u64map_get(&cat->by_id, (uint64_t)t[i].id);

		if (e && !e->dirty && cat->ndirty < cat->dirty_cap) {
			cat->dirty[cat->ndirty++] = e->id;
			e->dirty = true;
		}
	}
	pthread_mutex_unlock(&cat->lock);
}

/*
 * Write cat's unsaved hit counters to the store and take its view back.
 * A shared store gets each entry's own count (this process's hits since
 * it loaded it) and answers with the sum over the hosts; the local store
 * gets and keeps the count itself.
 */
void engine_maint_flush_hits(struct cache *c, struct cat *cat)
{
	struct store_touch *t;
	int64_t *own = NULL;
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&cat->lock);
	if (!cat->ndirty) {
		pthread_mutex_unlock(&cat->lock);
		return;
	}
	t = malloc(cat->ndirty * sizeof(*t));
	if (t)
		own = malloc(cat->ndirty * sizeof(*own));
	if (own) {
		for (size_t i = 0; i < cat->ndirty; i++) {
			struct centry *e = u64map_get(&cat->by_id, (uint64_t)cat->dirty[i]);

			if (!e || !e->dirty)
				continue;
			e->dirty = false;
			t[n].id = e->id;
			t[n].last_hit_ms = e->last_hit_ms;
			t[n].hits = c->store_quotas ? e->own : e->hits;
			own[n] = e->own;
			n++;
		}
		cat->ndirty = 0;
	}
	pthread_mutex_unlock(&cat->lock);
	rc = n ? store_entry_touch(c->store, t, n) : 0;
	if (rc) {
		semlog(SEMLOG_WARN, "category '%s': saving hit counters failed: %s (sent again with the next)",
		       cat->path, strerror(-rc));
		requeue_hits(cat, t, n);
	}
	for (size_t i = 0; !rc && i < n; i++)
		if (t[i].total >= 0)
			engine_entry_store_hits(cat, t[i].id, t[i].total,
						t[i].last_hit_ms, own[i]);
	free(own);
	free(t);
}

/* Retire up to SWEEP_BATCH expired entries of cat, looking at up to
 * SWEEP_SCAN slots of its map from where the last sweep stopped; true if
 * more may be left. Expired entries are never served (expiry is judged at
 * lookup), so this is only garbage collection: cat.lock is held for one
 * bounded scan, the store deletes run without it. */
static bool sweep_expired(struct cache *c, struct catref *ref)
{
	int64_t victims[SWEEP_BATCH];
	struct policy pol = ref->pol;
	struct cat *cat = ref->cat;
	int64_t now = clock_wall_ms();
	size_t n = 0, cap, i, scanned = 0;
	bool more;

	engine_adapt_policy(c, cat, &pol, now, NULL, 0);
	if (pol.ttl <= 0)
		return false;
	pthread_mutex_lock(&cat->lock);
	cap = cat->by_id.cap;
	i = cat->sweep_pos < cap ? cat->sweep_pos : 0;
	for (; scanned < SWEEP_SCAN && scanned < cap && n < SWEEP_BATCH; scanned++) {
		struct centry *e = cat->by_id.vals[i];

		if (cat->by_id.keys[i] && engine_entry_expired(&pol, e, now))
			victims[n++] = e->id;
		i = (i + 1) % cap;
	}
	cat->sweep_pos = i;
	more = n == SWEEP_BATCH || scanned < cap;
	pthread_mutex_unlock(&cat->lock);
	/* the store judges each again, once for every host (a hit another
	 * host made may keep it) */
	for (size_t k = 0; k < n; k++)
		engine_entry_expire(c, cat, ref->core, victims[k], &pol, now);
	return n > 0 && more;
}

/* Larger batches while a backlog is large (FAISS pays a cost per add call
 * that grows with the index), never more than MERGE_BATCH_MAX per hold of
 * the index's write lock. */
static int merge_batch(struct vindex *vi)
{
	size_t n = vindex_buffered(vi) / 64;

	return n < MERGE_BATCH ? MERGE_BATCH : n > MERGE_BATCH_MAX ? MERGE_BATCH_MAX : (int)n;
}

void engine_maint_merge(struct vindex *vi, int64_t budget_us, int batch)
{
	for (int64_t t0 = clock_mono_us(); vindex_buffered(vi) > 0 &&
	     (budget_us < 0 || clock_mono_us() - t0 < budget_us);)
		if (vindex_merge(vi, batch ? batch : merge_batch(vi)) <= 0)
			break;
}

/* Put the category's index arrays on huge pages where they are new (a
 * load, a moved array, a compaction); a no-op check otherwise. */
static void hugepages(struct catref *ref)
{
	int64_t t0 = clock_mono_us();
	size_t bytes = vindex_hugepages(ref->core->vi);

	if (bytes)
		semlog(SEMLOG_INFO, "category '%s': %zu MiB of its index put on huge pages in %.0f ms",
		       ref->cat->path, bytes >> 20, (clock_mono_us() - t0) / 1e3);
}

/* The slow tick's work on one category. */
static bool maintain_slow(struct cache *c, struct catref *ref)
{
	struct catcore *core = ref->core;
	size_t tomb, live;
	bool backlog;

	engine_maint_flush_hits(c, ref->cat);
	backlog = sweep_expired(c, ref);
	if (engine_quota_over(&ref->pol, ref->cat))
		engine_quota_apply(c, ref, 0);
	engine_adapt_break_even(ref->cat, &ref->pol);
	pthread_mutex_lock(&ref->cat->lock);
	engine_pending_prune(ref->cat, clock_mono_ms());
	pthread_mutex_unlock(&ref->cat->lock);
	hugepages(ref);
	tomb = vindex_tombstones(core->vi);
	live = vindex_live(core->vi);
	if (tomb >= 64 && tomb * 4 > tomb + live) {
		int rc = vindex_compact(core->vi); /* builds without its lock */

		if (rc)
			semlog(SEMLOG_WARN, "category '%s': compaction failed: %s",
			       ref->cat->path, strerror(-rc));
	}
	return backlog;
}

/* One tick over every category, each with references taken under a
 * short hold of cache.tree and worked on with no engine lock held. */
static void maintain(struct cache *c, bool slow)
{
	bool backlog = false;
	size_t n;
	struct cat **all = engine_cat_all(c, &n);

	for (size_t i = 0; all && i < n; i++) {
		struct catref ref;

		engine_cat_ref(c, all[i], &ref);
		/* Merge in small batches, releasing the index's write lock
		 * between them (a lookup waits for one batch at most), until
		 * the buffer is empty or this tick's time is used up. */
		engine_maint_merge(ref.core->vi, MERGE_TICK_US, 0);
		backlog |= vindex_buffered(ref.core->vi) > 0;
		if (slow)
			backlog |= maintain_slow(c, &ref);
		engine_cat_put(c, &ref);
	}
	if (all)
		engine_cat_release_all(c, all, n);
	c->backlog = backlog;
}

static void *maint_main(void *arg)
{
	struct cache *c = arg;
	unsigned tick = 0;

	pthread_mutex_lock(&c->maint_mu);
	while (!c->stopping) {
		/* keep merging promptly while fills outpace the merge */
		struct timespec ts = clock_abstime(c->backlog ? 2 : 100);

		pthread_cond_timedwait(&c->maint_cv, &c->maint_mu, &ts);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->maint_mu);
		maintain(c, ++tick % 10 == 0);
		pthread_mutex_lock(&c->maint_mu);
	}
	pthread_mutex_unlock(&c->maint_mu);
	return NULL;
}

int engine_maint_start(struct cache *c)
{
	int rc = pthread_create(&c->maint, NULL, maint_main, c);

	if (rc)
		return -rc;
	c->maint_started = true;
	return 0;
}

void engine_maint_stop(struct cache *c)
{
	if (!c->maint_started)
		return;
	pthread_mutex_lock(&c->maint_mu);
	c->stopping = true;
	pthread_cond_signal(&c->maint_cv);
	pthread_mutex_unlock(&c->maint_mu);
	pthread_join(c->maint, NULL);
}
