/*
 * fill.c - cache_fill(): storing a response for a query.
 *
 * The store is written first and the entry published in memory only
 * then, so nothing is served that is not durable: store, then index, then
 * maps. An entry with the same exact key is replaced. After the fill the
 * quota is applied and lookups waiting for this query are woken. All of
 * it, embedding and store calls included, runs under cache.lock held for
 * reading.
 *
 * Not here: the lookup whose vector a fill reuses (lookup.c), eviction
 * (quota.c), waking waiters (pending.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

int cache_fill(struct cache *c, const char *path, const struct cache_query *q,
	       const struct cache_result *prior, const void *resp,
	       size_t resp_len, const struct cache_caller *who,
	       int64_t *id_out, bool *stored)
{
	struct store_payload pl = { 0 };
	struct store_entry se = { 0 };
	struct centry *e = NULL, *old = NULL;
	struct keyed k = { 0 };
	struct policy pol;
	struct cat *cat;
	float *vec = NULL;
	int rc;

	*stored = false;
	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	rc = -ENOENT;
	if (!cat)
		goto out;
	engine_cat_policy(cat, &pol);
	rc = 0;
	if (!pol.cache || cat->disabled) {
		pthread_mutex_lock(&cat->lock);
		snprintf(cat->fill_note, sizeof(cat->fill_note), "%s",
			 !pol.cache ? "cache disabled by policy" :
			 "auto-disabled: hit rate below break-even");
		pthread_mutex_unlock(&cat->lock);
		cat->not_stored++;
		goto out;
	}
	rc = -EINVAL;
	if (!resp_len)
		goto out;
	rc = -EFBIG;
	if ((int64_t)resp_len > pol.response_bytes ||
	    (int64_t)q->query_len > pol.query_bytes ||
	    (pol.quota_bytes > 0 && (int64_t)resp_len > pol.quota_bytes))
		goto out;
	rc = engine_lookup_key(q, &pol, &k);
	if (rc)
		goto out;
	rc = -EIO;
	if (!cat->emb) {
		semlog(SEMLOG_WARN, "category '%s': fill refused: embedder unavailable: %s",
		       cat->path, cat->emb_error ? cat->emb_error : "unknown");
		goto out;
	}
	if (prior && prior->vec && prior->dim == cat->emb->dim) {
		vec = prior->vec;
	} else {
		rc = -ENOMEM;
		vec = malloc(sizeof(float) * cat->emb->dim);
		if (!vec)
			goto out;
		rc = embedder_embed(cat->emb, q->query, q->query_len, vec);
		if (rc) {
			semlog(SEMLOG_WARN, "category '%s': fill refused: embedder unavailable: %s",
			       cat->path, embedder_last_error());
			goto out;
		}
	}
	se.cat_id = cat->id;
	se.created_ms = clock_wall_ms();
	se.bytes = (int64_t)resp_len;
	se.key[0] = k.key[0];
	se.key[1] = k.key[1];
	se.ctx_hash = k.ctx_hash;
	pl.query = q->query;
	pl.query_len = q->query_len;
	if (q->context && q->context_len) {
		pl.context = q->context;
		pl.context_len = q->context_len;
	}
	pl.vec = vec;
	pl.dim = cat->emb->dim;
	pl.embedder = cat->emb->name;
	pl.response = resp;
	pl.response_len = resp_len;
	rc = -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e)
		goto out;
	rc = store_entry_put(c->store, &se, &pl);
	if (rc) {
		semlog(SEMLOG_WARN, "category '%s': fill failed: %s", cat->path, strerror(-rc));
		goto out;
	}
	e->id = se.id;
	e->created_ms = se.created_ms;
	e->bytes = se.bytes;
	e->key[0] = se.key[0];
	e->key[1] = se.key[1];
	e->ctx_hash = se.ctx_hash;
	/* Into the index first: a lookup that finds it in the maps but not
	 * in the index merely misses; the reverse cannot be served. */
	rc = vindex_add(cat->vi, e->id, vec);
	if (rc) {
		store_entry_delete(c->store, e->id);
		goto out;
	}
	pthread_mutex_lock(&cat->lock);
	rc = engine_entry_publish(cat, e, &old);
	pthread_mutex_unlock(&cat->lock);
	if (rc) {
		vindex_remove(cat->vi, se.id);
		store_entry_delete(c->store, se.id);
		goto out;
	}
	/* Published: another fill of the same query may retire e at any
	 * moment, so only its id (se.id) is used from here on. */
	e = NULL;
	if (old)
		engine_entry_retire(c, cat, old, "replaced");
	/* A store that keeps quotas is asked after every fill under a quota:
	 * this view may lag, and it says whether se.id survived. */
	if (engine_quota_over(&pol, cat) ||
	    (c->store_quotas && (pol.quota_entries > 0 || pol.quota_bytes > 0)))
		engine_quota_apply(c, cat, &pol, se.id);
	if (cat->pending)
		engine_pending_resolve(cat, prior ? prior->leader_id : 0, se.key, se.id);
	cat->fills++;
	*id_out = se.id;
	*stored = true;
out:
	pthread_rwlock_unlock(&c->lock);
	if (vec && (!prior || vec != prior->vec))
		free(vec);
	free(e);
	engine_lookup_key_release(&k);
	return rc;
}

void cache_fill_note(struct cache *c, const char *path, char *buf, size_t size)
{
	struct cat *cat;

	buf[0] = '\0';
	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat) {
		pthread_mutex_lock(&cat->lock);
		snprintf(buf, size, "%s", cat->fill_note);
		pthread_mutex_unlock(&cat->lock);
	}
	pthread_rwlock_unlock(&c->lock);
}
