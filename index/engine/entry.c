/*
 * entry.c - a category's entries: the in-memory records (publish,
 * unpublish, take, retire, forget), and the entry operations of cache.h
 * (listing, stat, reading parts, invalidation, purge).
 *
 * Each entry is in two hash maps (by id, and by the first half of its
 * exact key) and two lists (insertion and recency order, for eviction),
 * all under cat.lock. Removing an entry deletes it from the store first
 * (with no lock held) and only then takes it out of the maps and the index,
 * so that a removal the store refused leaves the entry as it was. Only the
 * entry's filler, the category's owner or a trusted caller may remove or
 * replace an entry.
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
	cat->entry_hits += e->hits;
	if (e->ctx_hash && !e->ctx_emb)
		cat->ctx_gen++;   /* its context vector is made later */
	ELIST_LINK(&cat->fifo, e, fifo_prev, fifo_next);
	ELIST_LINK(&cat->lru, e, lru_prev, lru_next);
	if (old && old != e) {
		u64map_del(&cat->by_id, (uint64_t)old->id);
		cat->bytes -= old->bytes;
		cat->entry_hits -= old->hits;
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
		cat->entry_hits -= e->hits;
		ELIST_UNLINK(&cat->fifo, e, fifo_prev, fifo_next);
		ELIST_UNLINK(&cat->lru, e, lru_prev, lru_next);
	}
}

void engine_entry_free(struct centry *e)
{
	if (e)
		free(e->ctx_vec);
	free(e);
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
	e->hits = e->hits_store = se->hits;
	e->bytes = se->bytes;
	e->key[0] = se->key[0];
	e->key[1] = se->key[1];
	e->ctx_hash = se->ctx_hash;
	e->uid = se->uid;
	return e;
}

/* When e expires under p (0 = never): ttl after its creation, or after
 * its last hit with a sliding ttl. */
int64_t engine_entry_expires_ms(const struct policy *p, const struct centry *e)
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
	return p->ttl > 0 && now >= engine_entry_expires_ms(p, e);
}

bool engine_entry_may_change(const struct cache *c, uid_t owner,
			     const struct centry *e,
			     const struct cache_caller *who)
{
	return engine_trust_caller(c, who) || who->uid == owner ||
	       who->uid == e->uid;
}

/* Take entry id out of cat's maps; the caller owns what is returned
 * (NULL if it was gone). Takes cat.lock. */
static struct centry *entry_take(struct cat *cat, int64_t id)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e)
		engine_entry_unpublish(cat, e);
	pthread_mutex_unlock(&cat->lock);
	return e;
}

/*
 * The store first: only once it no longer has the entry is it taken out
 * here, so a removal either reaches the store or fails with its errno and
 * changes nothing (a lookup meanwhile may still serve it, or find the
 * response gone and miss). With no cat.lock or cache.tree held.
 */
int engine_entry_delete(struct cache *c, struct cat *cat,
			struct catcore *core, int64_t id, const char *why)
{
	bool known;
	int rc;

	pthread_mutex_lock(&cat->lock);
	known = u64map_get(&cat->by_id, (uint64_t)id) != NULL;
	pthread_mutex_unlock(&cat->lock);
	if (!known)
		return -ENOENT;
	rc = store_entry_delete(c->store, id);
	if (rc && rc != -ENOENT) {
		semlog(SEMLOG_WARN, "category '%s': deleting %s entry %" PRId64 " failed: %s (it stays)",
		       cat->path, why, id, strerror(-rc));
		return rc;
	}
	/* gone from the store (here, or already by another host or call) */
	engine_entry_forget(cat, core, id);
	return rc;
}

bool engine_entry_forget(struct cat *cat, struct catcore *core, int64_t id)
{
	struct centry *e = entry_take(cat, id);

	if (e) {
		if (core)
			vindex_remove(core->vi, id);
		engine_entry_free(e);
	}
	return e != NULL;
}

int engine_entry_expire(struct cache *c, struct cat *cat,
			struct catcore *core, int64_t id,
			const struct policy *p, int64_t now)
{
	int rc;

	if (p->ttl <= 0)
		return -EAGAIN;
	rc = store_entry_expire(c->store, id, p->ttl * 1000,
				p->ttl_mode == POLICY_TTL_SLIDING, now);
	if (rc && rc != -EAGAIN && rc != -ENOENT)
		semlog(SEMLOG_WARN, "category '%s': expiring entry %" PRId64 " failed: %s (it stays, never served)",
		       cat->path, id, strerror(-rc));
	if (!rc && engine_entry_forget(cat, core, id)) {
		cat->expired++;
		engine_changed(c, cat->path, false);
	}
	/* gone: a shared store's delete event forgets it here (and counts
	 * an expiry once); a store only this process uses sends none */
	if (rc == -ENOENT && !c->store_quotas)
		engine_entry_forget(cat, core, id);
	return rc;
}

void engine_entry_store_hits(struct cat *cat, int64_t id, int64_t total,
			     int64_t last_hit_ms, int64_t own_sent)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e) {
		cat->entry_hits -= e->hits;
		if (total > e->hits_store)
			e->hits_store = total;
		if (own_sent > e->own_sent)
			e->own_sent = own_sent;
		if (last_hit_ms > e->last_hit_ms)
			e->last_hit_ms = last_hit_ms;
		e->hits = e->hits_store + e->own - e->own_sent;
		cat->entry_hits += e->hits;
	}
	pthread_mutex_unlock(&cat->lock);
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
	struct catref ref;
	int64_t *ids;
	size_t n = 0;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	ids = engine_entry_ids(ref.cat, &n);
	engine_cat_put(c, &ref);
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++)
		rc = cb(arg, ids[i]);
	free(ids);
	return rc;
}

/* Fill *info for entry id of ref's category from memory. */
static int entry_info(struct cache *c, struct catref *ref, int64_t id,
		      struct cache_entry_info *info)
{
	struct policy pol = ref->pol;
	struct cat *cat = ref->cat;
	struct centry *e;
	int64_t now = clock_wall_ms();

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
		info->uid = e->uid;
		info->expired = engine_entry_expired(&pol, e, now);
		info->expires_ms = engine_entry_expires_ms(&pol, e);
	}
	pthread_mutex_unlock(&cat->lock);
	return e ? 0 : -ENOENT;
}

int cache_entry_stat(struct cache *c, const char *path, int64_t id,
		     struct cache_entry_info *info)
{
	char *q = NULL, *ctx = NULL;
	size_t ql = 0, cl = 0;
	struct catref ref;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	rc = entry_info(c, &ref, id, info);
	engine_cat_put(c, &ref);
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

static int entry_meta(struct cache *c, const char *path,
		      const struct cache_entry_info *info, char **data,
		      size_t *len)
{
	char created[32], expires[32], last[32], buf[1024];
	char emb_name[EMBED_NAME_MAX] = "unavailable";
	struct catref ref;
	int n;

	if (engine_cat_get(c, path, &ref) == 0) {
		if (ref.core->emb)
			snprintf(emb_name, sizeof(emb_name), "%s", ref.core->emb->name);
		engine_cat_put(c, &ref);
	}
	iso_time(info->created_ms, created, sizeof(created));
	iso_time(info->expires_ms, expires, sizeof(expires));
	iso_time(info->last_hit_ms, last, sizeof(last));
	n = snprintf(buf, sizeof(buf),
		     "id: %" PRId64 "\ncreated: %s\nexpires: %s\nexpired: %s\n"
		     "hits: %" PRId64 "\nlast_hit: %s\nbytes: %" PRId64
		     "\nquery_bytes: %u\ncontext: %s\nembedder: %s\nuid: %u\n",
		     info->id, created, expires, info->expired ? "yes" : "no",
		     info->hits, last, info->bytes, info->query_len,
		     info->context_len ? "yes" : "no", emb_name,
		     (unsigned)info->uid);
	return engine_text_dup(buf, n, data, len);
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
		return store_response_read(c->store, id, NULL, (void **)data,
					   len);
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
	case CACHE_PART_META:
		return entry_meta(c, path, &info, data, len);
	}
	return -EINVAL;
}

int cache_entry_remove(struct cache *c, const char *path, int64_t id,
		       const struct cache_caller *who)
{
	struct catref ref;
	struct centry *e;
	bool may = false;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	pthread_mutex_lock(&ref.cat->lock);
	e = u64map_get(&ref.cat->by_id, (uint64_t)id);
	if (e)
		may = engine_entry_may_change(c, ref.owner, e, who);
	pthread_mutex_unlock(&ref.cat->lock);
	if (!e)
		rc = -ENOENT;
	else if (!may)
		rc = -EACCES;
	else
		rc = engine_entry_delete(c, ref.cat, ref.core, id, "invalidated");
	if (rc == -EACCES)
		semlog(SEMLOG_WARN, "category '%s': uid %u may not remove entry %" PRId64 " (filled by another user; the category's owner may)",
		       ref.cat->path, (unsigned)who->uid, id);
	else if (!rc)
		semlog(SEMLOG_INFO, "category '%s': entry %" PRId64 " invalidated",
		       ref.cat->path, id);
	engine_cat_put(c, &ref);
	return rc;
}

int64_t cache_purge(struct cache *c, const char *path,
		    const struct cache_caller *who)
{
	struct catref ref;
	int64_t *ids, n = 0;
	size_t nids = 0;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	if (!engine_trust_caller(c, who) && who->uid != ref.owner) {
		semlog(SEMLOG_WARN, "category '%s': uid %u may not purge it (only its owner uid %u may)",
		       ref.cat->path, (unsigned)who->uid, (unsigned)ref.owner);
		engine_cat_put(c, &ref);
		return -EACCES;
	}
	ids = engine_entry_ids(ref.cat, &nids);
	rc = ids ? 0 : -ENOMEM;
	for (size_t i = 0; i < nids && !rc; i++) {
		rc = engine_entry_delete(c, ref.cat, ref.core, ids[i], "purged");
		if (rc == -ENOENT)
			rc = 0; /* gone meanwhile */
		else if (!rc)
			n++;
	}
	free(ids);
	semlog(rc ? SEMLOG_WARN : SEMLOG_INFO, "category '%s': purged %" PRId64 " entries%s%s",
	       ref.cat->path, n, rc ? "; stopped: " : "", rc ? strerror(-rc) : "");
	engine_cat_put(c, &ref);
	return rc ? rc : n;
}
