/*
 * pending.c - miss coalescing: lookups that miss on a query whose fill is
 * already awaited wait for that fill instead of asking the model again.
 *
 * A miss under fill_timeout is recorded per category (exact key, vector,
 * deadline). A later miss matching it exactly, or by vector at the
 * threshold, becomes CACHE_PENDING; cache_pending_wait() then sleeps on
 * the category's condition variable until the fill resolves it or the
 * deadline passes. At most MAX_WAITERS wait per category so that fills
 * still find FUSE worker threads. All state is under cat.lock; a waiter
 * keeps its category alive (removal refuses while waiters > 0).
 *
 * Not here: recognising a miss (lookup.c), the fill itself (fill.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "engine_i.h"

static float dot(const float *a, const float *b, int n)
{
	float s = 0;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Drop resolved or expired pending misses. cat->lock held. */
void engine_pending_prune(struct cat *cat, int64_t now)
{
	bool woke = false;

	for (struct pending **pp = &cat->pending; *pp;) {
		struct pending *p = *pp;

		if (!p->done && now >= p->deadline_ms) {
			p->done = true;
			woke = true;
		}
		/* keep resolved ones until their deadline: waiters read them */
		if (p->done && now >= p->deadline_ms && !cat->waiters) {
			*pp = p->next;
			free(p->vec);
			free(p);
			continue;
		}
		pp = &p->next;
	}
	if (woke)
		pthread_cond_broadcast(&cat->pend_cv);
}

/*
 * A miss under fill_timeout: if a matching query missed moments ago and
 * its fill has not arrived, make r pending on it (true). Otherwise record r
 * as a miss others may wait on (r->leader_id) and return false.
 */
bool engine_pending_coalesce(struct cache *c, struct cat *cat,
			     const struct policy *pol, const struct keyed *k,
			     struct cache_result *r)
{
	struct pending *best = NULL, *p;
	float best_score = -2;
	int64_t now = clock_mono_ms();

	pthread_mutex_lock(&cat->lock);
	engine_pending_prune(cat, now);
	for (p = cat->pending; p; p = p->next) {
		float sc;

		if (p->done || (pol->context != POLICY_CONTEXT_IGNORE &&
				 p->ctx_hash != k->ctx_hash))
			continue;
		if (p->key[0] == k->key[0] && p->key[1] == k->key[1])
			sc = 1.0f;
		else if (p->vec && r->vec && p->dim == r->dim)
			sc = dot(p->vec, r->vec, r->dim);
		else
			continue;
		if (sc + 1e-6f >= (float)pol->threshold && sc > best_score) {
			best = p;
			best_score = sc;
		}
	}
	if (best) {
		r->outcome = CACHE_PENDING;
		r->pending_id = best->id;
		r->score = best_score;
		pthread_mutex_unlock(&cat->lock);
		return true;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		p->id = c->next_pending++;
		p->key[0] = k->key[0];
		p->key[1] = k->key[1];
		p->ctx_hash = k->ctx_hash;
		p->deadline_ms = now + pol->fill_timeout_ms;
		if (r->vec) {
			p->vec = malloc(sizeof(float) * r->dim);
			if (p->vec) {
				memcpy(p->vec, r->vec, sizeof(float) * r->dim);
				p->dim = r->dim;
			}
		}
		p->next = cat->pending;
		cat->pending = p;
		r->leader_id = p->id;
	}
	pthread_mutex_unlock(&cat->lock);
	return false;
}

/* A fill arrived: wake whoever waits on it or on the same exact query. */
void engine_pending_resolve(struct cat *cat, int64_t leader_id,
			    const uint64_t key[2], int64_t entry_id)
{
	bool woke = false;

	pthread_mutex_lock(&cat->lock);
	for (struct pending *p = cat->pending; p; p = p->next) {
		if (p->done)
			continue;
		if ((leader_id && p->id == leader_id) ||
		    (p->key[0] == key[0] && p->key[1] == key[1])) {
			p->done = true;
			p->entry_id = entry_id;
			woke = true;
		}
	}
	if (woke)
		pthread_cond_broadcast(&cat->pend_cv);
	pthread_mutex_unlock(&cat->lock);
}

int cache_pending_wait(struct cache *c, const char *path,
		       struct cache_result *r)
{
	struct catref ref;
	struct pending *p;
	struct cat *cat;
	int64_t entry = 0, now;
	bool waited = false;
	int rc;

	if (r->outcome != CACHE_PENDING)
		return 0;
	r->outcome = CACHE_MISS;
	rc = engine_cat_get(c, path, &ref);
	if (rc)
		return rc;
	cat = ref.cat;
	if (engine_slow_enter(c, cat)) {
		waited = true;
		pthread_mutex_lock(&cat->lock);
		cat->waiters++;
		for (;;) {
			struct timespec ts;

			for (p = cat->pending; p && p->id != r->pending_id; p = p->next)
				;
			now = clock_mono_ms();
			if (!p || p->done || now >= p->deadline_ms) {
				entry = p && p->done ? p->entry_id : 0;
				break;
			}
			ts = clock_abstime(p->deadline_ms - now);
			pthread_cond_timedwait(&cat->pend_cv, &cat->lock, &ts);
		}
		cat->waiters--;
		pthread_mutex_unlock(&cat->lock);
		engine_slow_exit(c, cat);
	}
	if (entry && engine_lookup_serve(c, &ref, entry, clock_wall_ms(), r) == 0) {
		cat->hits++;
		cat->semantic_hits++;
		cat->coalesced++;
	} else {
		snprintf(r->note, sizeof(r->note), "%s", waited ? "fill timeout" :
			 "busy: too many requests wait on slow work");
		cat->misses++;
	}
	engine_cat_put(c, &ref);
	return 0;
}
