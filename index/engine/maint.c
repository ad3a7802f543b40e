/*
 * maint.c - the background maintenance thread.
 *
 * Every tick (100 ms, 2 ms while a merge backlog remains) it merges
 * recently added vectors into HNSW in small batches, bounded in time per
 * category. Every tenth tick it also writes hit counters back to the
 * store, retires expired entries in batches (expired entries are never
 * served: this is only garbage collection), applies quotas, closes
 * break-even windows, prunes pending misses and compacts indexes whose
 * tombstones pass a quarter of them.
 *
 * Not here: the quota and adaptation rules themselves (quota.c, adapt.c),
 * snapshots (open.c).
 */
#include <pthread.h>
#include <sched.h>
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

void engine_maint_flush_hits(struct cache *c, struct cat *cat)
{
	struct store_touch *t;
	size_t n = 0;

	pthread_mutex_lock(&cat->lock);
	if (!cat->ndirty) {
		pthread_mutex_unlock(&cat->lock);
		return;
	}
	t = malloc(cat->ndirty * sizeof(*t));
	if (t) {
		for (size_t i = 0; i < cat->ndirty; i++) {
			struct centry *e = u64map_get(&cat->by_id, (uint64_t)cat->dirty[i]);

			if (!e || !e->dirty)
				continue;
			e->dirty = false;
			t[n].id = e->id;
			t[n].last_hit_ms = e->last_hit_ms;
			t[n].hits = e->hits;
			n++;
		}
		cat->ndirty = 0;
	}
	pthread_mutex_unlock(&cat->lock);
	if (n) {
		int rc = store_entry_touch(c->store, t, n);

		if (rc)
			semlog(SEMLOG_WARN, "category '%s': saving hit counters failed: %s",
			       cat->path, strerror(-rc));
	}
	free(t);
}

/* Retire up to SWEEP_BATCH expired entries of cat; true if more are left.
 * Expired entries are never served (expiry is judged at lookup), so this is
 * only garbage collection: it yields between deletions so that lookups and
 * fills waiting for the index or the store are never held up for long. */
static bool sweep_expired(struct cache *c, struct cat *cat)
{
	struct centry *victims[SWEEP_BATCH];
	struct policy pol;
	int64_t now = clock_wall_ms();
	size_t n = 0;

	engine_cat_policy(cat, &pol);
	engine_adapt_policy(c, cat, &pol, now, NULL, 0);
	if (pol.ttl <= 0)
		return false;
	pthread_mutex_lock(&cat->lock);
	for (size_t i = 0; i < cat->by_id.cap && n < SWEEP_BATCH; i++) {
		struct centry *e = cat->by_id.vals[i];

		if (cat->by_id.keys[i] && engine_entry_expired(&pol, e, now))
			victims[n++] = e;
	}
	for (size_t i = 0; i < n; i++)
		engine_entry_unpublish(cat, victims[i]);
	pthread_mutex_unlock(&cat->lock);
	for (size_t i = 0; i < n; i++) {
		engine_entry_retire(c, cat, victims[i], "expired");
		sched_yield();
	}
	cat->expired += n;
	return n == SWEEP_BATCH;
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

static void maintain(struct cache *c, bool slow)
{
	bool backlog = false;

	pthread_rwlock_rdlock(&c->lock);
	for (size_t i = 0; i < c->ncats; i++) {
		struct cat *cat = c->cats[i];
		size_t tomb, live;

		/* Merge in small batches, releasing the index's write lock
		 * between them (a lookup waits for one batch at most), until
		 * the buffer is empty or this tick's time is used up. */
		engine_maint_merge(cat->vi, MERGE_TICK_US, 0);
		backlog |= vindex_buffered(cat->vi) > 0;
		if (!slow)
			continue;
		engine_maint_flush_hits(c, cat);
		backlog |= sweep_expired(c, cat);
		{
			struct policy pol;

			engine_cat_policy(cat, &pol);
			if (engine_quota_over(&pol, cat))
				engine_quota_apply(c, cat, &pol, 0);
			engine_adapt_break_even(cat, &pol);
			pthread_mutex_lock(&cat->lock);
			engine_pending_prune(cat, clock_wall_ms());
			pthread_mutex_unlock(&cat->lock);
		}
		tomb = vindex_tombstones(cat->vi);
		live = vindex_live(cat->vi);
		if (tomb >= 64 && tomb * 4 > tomb + live) {
			int rc = vindex_compact(cat->vi);

			if (rc)
				semlog(SEMLOG_WARN, "category '%s': compaction failed: %s",
				       cat->path, strerror(-rc));
		}
	}
	pthread_rwlock_unlock(&c->lock);
	c->backlog = backlog;
}

static void *maint_main(void *arg)
{
	struct cache *c = arg;
	unsigned tick = 0;

	pthread_mutex_lock(&c->maint_mu);
	while (!c->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		/* keep merging promptly while fills outpace the merge */
		ts.tv_nsec += (c->backlog ? 2 : 100) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
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
