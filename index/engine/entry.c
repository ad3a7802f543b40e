/*
 * entry.c - a category's entries: the in-memory records (publish,
 * unpublish, take, retire, forget), and the entry operations of cache.h
 * (listing, stat, reading parts, invalidation, purge).
 *
 * Each entry is in two hash maps (by id, and by the first half of its
 * exact key) and two lists (insertion and recency order, for eviction),
 * all under cat.lock. Removing an entry takes it out of the maps under
 * cat.lock, then deletes it from the index and the store without it.
 *
 * Not here: adding entries (fill.c, open.c, remote.c), serving them
 * (lookup.c), eviction (quota.c), expiry sweeps (maint.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

/* Publish e in cat's maps; returns the entry it displaced (same exact key),
 * which the caller must retire. Called with cat->lock held. */
int engine_entry_publish(struct cat *cat, struct centry *e,
			 struct centry **displaced)
{
	struct centry *old = u64map_get(&cat->by_key, e->key[0]);
	int rc;

	*displaced = NULL;
	rc = u64map_put(&cat->by_id, (uint64_t)e->id, e);
	if (rc)
		return rc;
	rc = u64map_put(&cat->by_key, e->key[0], e);
	if (rc) {
		u64map_del(&cat->by_id, (uint64_t)e->id);
		return rc;
	}
	cat->bytes += e->bytes;
	ELIST_LINK(&cat->fifo, e, fifo_prev, fifo_next);
	ELIST_LINK(&cat->lru, e, lru_prev, lru_next);
	if (old && old != e) {
		u64map_del(&cat->by_id, (uint64_t)old->id);
		cat->bytes -= old->bytes;
		ELIST_UNLINK(&cat->fifo, old, fifo_prev, fifo_next);
		ELIST_UNLINK(&cat->lru, old, lru_prev, lru_next);
		*displaced = old;
	}
	return 0;
}

/* Remove e from cat's maps. Called with cat->lock held. */
void engine_entry_unpublish(struct cat *cat, struct centry *e)
{
	if (u64map_get(&cat->by_key, e->key[0]) == e)
		u64map_del(&cat->by_key, e->key[0]);
	if (u64map_del(&cat->by_id, (uint64_t)e->id)) {
		cat->bytes -= e->bytes;
		ELIST_UNLINK(&cat->fifo, e, fifo_prev, fifo_next);
		ELIST_UNLINK(&cat->lru, e, lru_prev, lru_next);
	}
}

/* A new in-memory record for a stored entry (NULL when out of memory). */
struct centry *engine_entry_from_store(const struct store_entry *se)
{
	struct centry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->id = se->id;
	e->created_ms = se->created_ms;
	e->last_hit_ms = se->last_hit_ms;
	e->hits = se->hits;
	e->bytes = se->bytes;
	e->key[0] = se->key[0];
	e->key[1] = se->key[1];
	e->ctx_hash = se->ctx_hash;
	return e;
}

/* When e expires under p (0 = never): ttl after its creation, or after
 * its last hit with a sliding ttl. */
static int64_t expires_ms(const struct policy *p, const struct centry *e)
{
	int64_t base;

	if (p->ttl <= 0)
		return 0;
	base = e->created_ms;
	if (p->ttl_mode == POLICY_TTL_SLIDING && e->last_hit_ms > base)
		base = e->last_hit_ms;
	return base + p->ttl * 1000;
}

bool engine_entry_expired(const struct policy *p, const struct centry *e,
			  int64_t now)
{
	return p->ttl > 0 && now >= expires_ms(p, e);
}

/* Take entry id out of cat's maps; the caller owns what is returned
 * (NULL if it was gone). Called without cat->lock. */
struct centry *engine_entry_take(struct cat *cat, int64_t id)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e)
		engine_entry_unpublish(cat, e);
	pthread_mutex_unlock(&cat->lock);
	return e;
}

/* Delete an entry everywhere: memory (if still there), index, store. */
void engine_entry_retire(struct cache *c, struct cat *cat, struct centry *e,
			 const char *why)
{
	int rc;

	vindex_remove(cat->vi, e->id);
	rc = store_entry_delete(c->store, e->id);
	if (rc && rc != -ENOENT)
		semlog(SEMLOG_WARN, "category '%s': deleting %s entry %" PRId64 " failed: %s",
		       cat->path, why, e->id, strerror(-rc));
	free(e);
}

/* Take entry id out and retire it everywhere. Returns whether it was there. */
bool engine_entry_drop(struct cache *c, struct cat *cat, int64_t id,
		       const char *why)
{
	struct centry *e = engine_entry_take(cat, id);

	if (e)
		engine_entry_retire(c, cat, e, why);
	return e != NULL;
}

/* The store removed an entry (another host did, or a quota the store
 * keeps): forget it here. Idempotent. */
void engine_entry_forget(struct cat *cat, int64_t id)
{
	struct centry *e = engine_entry_take(cat, id);

	if (e) {
		vindex_remove(cat->vi, id);
		free(e);
	}
}

int64_t *engine_entry_ids(struct cat *cat, size_t *n)
{
	int64_t *ids;

	*n = 0;
	pthread_mutex_lock(&cat->lock);
	ids = malloc((cat->by_id.len + 1) * sizeof(*ids));
	if (ids)
		for (struct centry *e = cat->fifo.head; e; e = e->fifo_next)
			ids[(*n)++] = e->id;
	pthread_mutex_unlock(&cat->lock);
	return ids;
}

int cache_entries_list(struct cache *c, const char *path,
		       int (*cb)(void *arg, int64_t id), void *arg)
{
	struct cat *cat;
	int64_t *ids = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOENT;
	}
	ids = engine_entry_ids(cat, &n);
	pthread_rwlock_unlock(&c->lock);
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++)
		rc = cb(arg, ids[i]);
	free(ids);
	return rc;
}

/* Look entry id up in path's category: fills *info. cache.lock held. */
static int entry_info(struct cache *c, struct cat *cat, int64_t id,
		      struct cache_entry_info *info)
{
	struct policy pol;
	struct centry *e;
	int64_t now = clock_wall_ms();

	engine_cat_policy(cat, &pol);
	engine_adapt_policy(c, cat, &pol, now, NULL, 0);
	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e) {
		memset(info, 0, sizeof(*info));
		info->id = e->id;
		info->created_ms = e->created_ms;
		info->last_hit_ms = e->last_hit_ms;
		info->hits = e->hits;
		info->bytes = e->bytes;
		info->expired = engine_entry_expired(&pol, e, now);
		info->expires_ms = expires_ms(&pol, e);
	}
	pthread_mutex_unlock(&cat->lock);
	return e ? 0 : -ENOENT;
}

int cache_entry_stat(struct cache *c, const char *path, int64_t id,
		     struct cache_entry_info *info)
{
	char *q = NULL, *ctx = NULL;
	size_t ql = 0, cl = 0;
	struct cat *cat;
	int rc;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	rc = cat ? entry_info(c, cat, id, info) : -ENOENT;
	pthread_rwlock_unlock(&c->lock);
	if (rc)
		return rc;
	rc = store_entry_text(c->store, id, &q, &ql, &ctx, &cl);
	if (rc)
		return rc;
	info->query_len = (uint32_t)ql;
	info->context_len = (uint32_t)cl;
	free(q);
	free(ctx);
	return 0;
}

static void iso_time(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms) {
		snprintf(buf, size, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cache_entry_read(struct cache *c, const char *path, int64_t id,
		     enum cache_entry_part part, char **data, size_t *len)
{
	struct cache_entry_info info;
	char *q = NULL, *ctx = NULL;
	size_t ql = 0, cl = 0;
	int rc = cache_entry_stat(c, path, id, &info);

	if (rc)
		return rc;
	switch (part) {
	case CACHE_PART_RESPONSE:
		return store_response_read(c->store, id, (void **)data, len);
	case CACHE_PART_QUERY:
	case CACHE_PART_CONTEXT:
		rc = store_entry_text(c->store, id, &q, &ql, &ctx, &cl);
		if (rc)
			return rc;
		if (part == CACHE_PART_QUERY) {
			free(ctx);
			*data = q;
			*len = ql;
		} else {
			free(q);
			if (!ctx)
				return -ENOENT;
			*data = ctx;
			*len = cl;
		}
		return 0;
	case CACHE_PART_META: {
		char created[32], expires[32], last[32], buf[1024];
		char emb_name[EMBED_NAME_MAX] = "unavailable";
		struct cat *cat;
		int n;

		pthread_rwlock_rdlock(&c->lock);
		cat = engine_cat_find(c, path);
		if (cat && cat->emb)
			snprintf(emb_name, sizeof(emb_name), "%s", cat->emb->name);
		pthread_rwlock_unlock(&c->lock);
		iso_time(info.created_ms, created, sizeof(created));
		iso_time(info.expires_ms, expires, sizeof(expires));
		iso_time(info.last_hit_ms, last, sizeof(last));
		n = snprintf(buf, sizeof(buf),
			     "id: %" PRId64 "\ncreated: %s\nexpires: %s\nexpired: %s\n"
			     "hits: %" PRId64 "\nlast_hit: %s\nbytes: %" PRId64
			     "\nquery_bytes: %u\ncontext: %s\nembedder: %s\n",
			     info.id, created, expires, info.expired ? "yes" : "no",
			     info.hits, last, info.bytes, info.query_len,
			     info.context_len ? "yes" : "no", emb_name);
		return engine_text_dup(buf, n, data, len);
	}
	}
	return -EINVAL;
}

int cache_entry_remove(struct cache *c, const char *path, int64_t id,
		       const struct cache_caller *who)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat && engine_entry_drop(c, cat, id, "invalidated")) {
		semlog(SEMLOG_INFO, "category '%s': entry %" PRId64 " invalidated",
		       cat->path, id);
		rc = 0;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int64_t cache_purge(struct cache *c, const char *path,
		    const struct cache_caller *who)
{
	struct centry *e;
	struct cat *cat;
	int64_t n = 0;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOENT;
	}
	for (;;) {
		pthread_mutex_lock(&cat->lock);
		e = cat->fifo.head;
		if (e)
			engine_entry_unpublish(cat, e);
		pthread_mutex_unlock(&cat->lock);
		if (!e)
			break;
		engine_entry_retire(c, cat, e, "purged");
		n++;
	}
	semlog(SEMLOG_INFO, "category '%s': purged %" PRId64 " entries", cat->path, n);
	pthread_rwlock_unlock(&c->lock);
	return n;
}
