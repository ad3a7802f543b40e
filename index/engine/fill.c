/*
 * fill.c - cache_fill(): storing a response for a query.
 *
 * The store is written first and the entry published in memory only
 * then, so nothing is served that is not durable: store, then index, then
 * maps. The embedding and the store write run with no engine lock held,
 * between a check and a re-check under cat.lock: a fill counts as in
 * flight meanwhile (rmdir refuses), and an entry with the same exact key
 * is replaced only if who may replace it (its filler, the category's
 * owner, or trusted; a live entry of another user gives -EACCES). After
 * the fill the quota is applied and lookups waiting for this query woken.
 *
 * Not here: the lookup whose vector a fill reuses (lookup.c), eviction
 * (quota.c), waking waiters (pending.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

/* Is there an entry with k's key that who may not replace? cat.lock held. */
static bool key_taken(const struct cache *c, const struct catref *ref,
		      const struct keyed *k, const struct cache_caller *who,
		      int64_t now)
{
	const struct centry *e = u64map_get(&ref->cat->by_key, k->key[0]);

	return e && e->key[1] == k->key[1] &&
	       !engine_entry_expired(&ref->pol, e, now) &&
	       !engine_entry_may_change(c, ref->owner, e, who);
}

/* Begin a fill: refused for a category being removed, a disabled cache,
 * or a key another user's live entry holds. */
static int fill_begin(struct cache *c, struct catref *ref,
		      const struct keyed *k, const struct cache_caller *who)
{
	struct cat *cat = ref->cat;
	int rc = 0;

	pthread_mutex_lock(&cat->lock);
	if (cat->removing) {
		rc = -ENOENT;
	} else if (!ref->pol.cache || cat->disabled) {
		snprintf(cat->fill_note, sizeof(cat->fill_note), "%s",
			 !ref->pol.cache ? "cache disabled by policy" :
			 "auto-disabled: hit rate below break-even");
		rc = 1;
	} else if (key_taken(c, ref, k, who, clock_wall_ms())) {
		rc = -EACCES;
	} else {
		cat->fills_inflight++;
	}
	pthread_mutex_unlock(&cat->lock);
	if (rc == -EACCES)
		semlog(SEMLOG_WARN, "category '%s': fill by uid %u refused: a live entry for this query was filled by another user (only the category's owner may replace it)",
		       cat->path, (unsigned)who->uid);
	return rc;
}

/* The query's vector: the lookup's when it came from this core's
 * embedder, else embedded now (a remote one within the slow-work bound). */
static int fill_vector(struct cache *c, struct catref *ref,
		       const struct cache_query *q,
		       const struct cache_result *prior, float **vec)
{
	const struct catcore *core = ref->core;
	int rc;

	if (prior && prior->vec && prior->dim == core->emb->dim &&
	    prior->vec_by == core->emb) {
		*vec = prior->vec;
		return 0;
	}
	*vec = malloc(sizeof(float) * core->emb->dim);
	if (!*vec)
		return -ENOMEM;
	if (core->emb->remote && !engine_slow_enter(c, ref->cat))
		return -EBUSY;
	rc = engine_core_embed(core, q->query, q->query_len, *vec);
	if (core->emb->remote)
		engine_slow_exit(c, ref->cat);
	if (rc)
		semlog(SEMLOG_WARN, "category '%s': fill refused: embedder unavailable: %s",
		       ref->cat->path, embedder_last_error());
	return rc;
}

/* An entry taken out of the maps by a newer one: out of the index and
 * the store too (a failed store delete leaves an older row with the same
 * key, which the newer wins over at the next load). */
static void retire_replaced(struct cache *c, struct catref *ref,
			    struct centry *old)
{
	int rc;

	vindex_remove(ref->core->vi, old->id);
	rc = store_entry_delete(c->store, old->id);
	if (rc && rc != -ENOENT)
		semlog(SEMLOG_WARN, "category '%s': deleting replaced entry %" PRId64 " failed: %s",
		       ref->cat->path, old->id, strerror(-rc));
	engine_entry_free(old);
}

/* Publish e (stored and indexed) unless another user's live entry took
 * its key meanwhile (-EACCES). Ends the fill's time in flight. */
static int fill_publish(struct cache *c, struct catref *ref, struct centry *e,
			const struct keyed *k, const struct cache_caller *who,
			struct centry **old)
{
	struct cat *cat = ref->cat;
	int rc;

	*old = NULL;
	pthread_mutex_lock(&cat->lock);
	cat->fills_inflight--;
	rc = key_taken(c, ref, k, who, clock_wall_ms()) ? -EACCES :
	     engine_entry_publish(cat, e, old);
	pthread_mutex_unlock(&cat->lock);
	return rc;
}

static void fill_payload(const struct catref *ref, const struct cache_query *q,
			 const float *vec, const void *resp, size_t resp_len,
			 struct store_payload *pl)
{
	memset(pl, 0, sizeof(*pl));
	pl->query = q->query;
	pl->query_len = q->query_len;
	if (q->context && q->context_len) {
		pl->context = q->context;
		pl->context_len = q->context_len;
	}
	pl->vec = vec;
	pl->dim = ref->core->emb->dim;
	pl->embedder = ref->core->emb->name;
	pl->response = resp;
	pl->response_len = resp_len;
}

int cache_fill(struct cache *c, const char *path, const struct cache_query *q,
	       const struct cache_result *prior, const void *resp,
	       size_t resp_len, const struct cache_caller *who,
	       int64_t *id_out, bool *stored)
{
	struct store_payload pl;
	struct store_entry se = { 0 };
	struct centry *e = NULL, *old = NULL;
	struct keyed k = { 0 };
	struct catref ref;
	struct policy *pol;
	bool begun = false;
	float *vec = NULL;
	int rc;

	*stored = false;
	rc = engine_cat_get(c, path, &ref);
	if (rc)
		return rc;
	pol = &ref.pol;
	rc = -EINVAL;
	if (!resp_len)
		goto out;
	rc = -EFBIG;
	if ((int64_t)resp_len > pol->response_bytes ||
	    (int64_t)q->query_len > pol->query_bytes ||
	    (pol->quota_bytes > 0 && (int64_t)resp_len > pol->quota_bytes))
		goto out;
	rc = engine_lookup_key(q, pol, &k);
	if (rc)
		goto out;
	rc = fill_begin(c, &ref, &k, who);
	if (rc == 1) {
		ref.cat->not_stored++;
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	begun = true;
	rc = -EIO;
	if (!ref.core->emb) {
		semlog(SEMLOG_WARN, "category '%s': fill refused: embedder unavailable: %s",
		       ref.cat->path, ref.core->emb_error ? ref.core->emb_error : "unknown");
		goto out;
	}
	rc = fill_vector(c, &ref, q, prior, &vec);
	if (rc)
		goto out;
	se.cat_id = ref.cat->id;
	se.created_ms = clock_wall_ms();
	se.bytes = (int64_t)resp_len;
	se.key[0] = k.key[0];
	se.key[1] = k.key[1];
	se.ctx_hash = k.ctx_hash;
	se.uid = who ? who->uid : ref.owner;
	fill_payload(&ref, q, vec, resp, resp_len, &pl);
	rc = -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e)
		goto out;
	rc = store_entry_put(c->store, &se, &pl);
	if (rc) {
		semlog(SEMLOG_WARN, "category '%s': fill failed: %s", ref.cat->path, strerror(-rc));
		goto out;
	}
	e->id = se.id;
	e->created_ms = se.created_ms;
	e->bytes = se.bytes;
	e->key[0] = se.key[0];
	e->key[1] = se.key[1];
	e->ctx_hash = se.ctx_hash;
	e->uid = se.uid;
	if (pol->context == POLICY_CONTEXT_SIMILAR && e->ctx_hash &&
	    engine_ctx_embed(c, &ref, q->context, q->context_len, &e->ctx_vec) == 0)
		e->ctx_emb = engine_ctx_emb_id(ref.core);
	/* (not embedded: made from the stored text at a later lookup) */
	/* Into the index first: a lookup that finds it in the maps but not
	 * in the index merely misses; the reverse cannot be served. */
	rc = vindex_add(ref.core->vi, e->id, vec);
	if (!rc) {
		begun = false;
		rc = fill_publish(c, &ref, e, &k, who, &old);
		if (rc)
			vindex_remove(ref.core->vi, se.id);
	}
	if (rc) {
		store_entry_delete(c->store, se.id);
		goto out;
	}
	/* Published: another fill of the same query may retire e at any
	 * moment, so only its id (se.id) is used from here on. */
	e = NULL;
	if (old)
		retire_replaced(c, &ref, old);
	/* A store that keeps quotas is asked after every fill under a quota:
	 * this view may lag, and it says whether se.id survived. */
	if (engine_quota_over(pol, ref.cat) ||
	    (c->store_quotas && (pol->quota_entries > 0 || pol->quota_bytes > 0)))
		engine_quota_apply(c, &ref, se.id);
	engine_pending_resolve(ref.cat, prior ? prior->leader_id : 0, se.key, se.id);
	ref.cat->fills++;
	*id_out = se.id;
	*stored = true;
out:
	if (begun) {
		pthread_mutex_lock(&ref.cat->lock);
		ref.cat->fills_inflight--;
		pthread_mutex_unlock(&ref.cat->lock);
	}
	engine_cat_put(c, &ref);
	if (vec && (!prior || vec != prior->vec))
		free(vec);
	engine_entry_free(e);
	engine_lookup_key_release(&k);
	return rc;
}

void cache_fill_note(struct cache *c, const char *path, char *buf, size_t size)
{
	struct catref ref;

	buf[0] = '\0';
	if (engine_cat_get(c, path, &ref))
		return;
	pthread_mutex_lock(&ref.cat->lock);
	snprintf(buf, size, "%s", ref.cat->fill_note);
	pthread_mutex_unlock(&ref.cat->lock);
	engine_cat_put(c, &ref);
}
