/*
 * remote.c - changes other hosts make to a store they share with this
 * one: entries put and deleted, categories created, changed and removed,
 * policies replaced; and a full resync when the change stream had a gap.
 *
 * Events arrive on the store's watcher thread. Entry events take
 * cache.lock for reading, structural ones (categories, policies) for
 * writing; every handler checks closing under that lock, so once
 * cache_close() has set it no event touches the categories again. Events
 * may arrive twice: every handler is idempotent.
 *
 * Not here: the store's change stream itself (index/store/redis/).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

/* Another host filled: publish the entry here too. cache.lock read. */
static void remote_put(struct cache *c, struct cat *cat,
		       const struct store_event *ev)
{
	const struct store_entry *se = &ev->entry;
	struct centry *e, *old = NULL;
	bool usable;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)se->id);
	pthread_mutex_unlock(&cat->lock);
	if (e)
		return; /* already known (a change may arrive twice) */
	usable = cat->emb && ev->vec && ev->dim == cat->emb->dim &&
		 ev->embedder && !strcmp(ev->embedder, cat->emb->name);
	if (usable)
		vindex_add(cat->vi, se->id, ev->vec); /* -EEXIST: already there */
	e = engine_entry_from_store(se);
	if (!e)
		return;
	pthread_mutex_lock(&cat->lock);
	if (engine_entry_publish(cat, e, &old)) {
		pthread_mutex_unlock(&cat->lock);
		free(e);
		return;
	}
	pthread_mutex_unlock(&cat->lock);
	if (old) {
		/* the other host replaced it in the store already */
		vindex_remove(cat->vi, old->id);
		free(old);
	}
	if (cat->pending)
		engine_pending_resolve(cat, 0, se->key, se->id);
}

static void remote_category(struct cache *c, const struct store_category *sc)
{
	struct cat *cat = engine_cat_find_id(c, sc->id);
	char *pp;

	if (cat) {
		cat->mode = sc->mode;
		cat->uid = sc->uid;
		cat->gid = sc->gid;
		return;
	}
	if (engine_cat_find(c, sc->path))
		return;
	pp = engine_cat_parent_path(sc->path);
	cat = engine_cat_new(sc);
	if (!cat || !pp) {
		free(pp);
		engine_cat_free(c, cat);
		return;
	}
	cat->parent = engine_cat_find(c, pp);
	free(pp);
	if (!cat->parent)
		cat->parent = engine_cat_find(c, "/");
	if (engine_cat_setup(c, cat, NULL) || engine_cat_append(c, cat)) {
		engine_cat_free(c, cat);
		return;
	}
	semlog(SEMLOG_INFO, "category '%s' created by another host", cat->path);
}

static void remote_category_delete(struct cache *c, int64_t id)
{
	struct cat *cat = engine_cat_find_id(c, id);

	if (!cat || !cat->parent || cat->waiters)
		return;
	for (size_t i = 0; i < c->ncats; i++)
		if (c->cats[i]->parent == cat)
			c->cats[i]->parent = cat->parent;
	semlog(SEMLOG_INFO, "category '%s' removed by another host", cat->path);
	engine_cat_delete(c, cat);
}

static void remote_policy(struct cat *cat, const char *yaml, size_t len)
{
	struct policy_file *pf = NULL;
	struct policy_error perr;
	char *copy = NULL;
	size_t copy_len;

	if (yaml) {
		if (policy_file_parse(yaml, len, cat->path, &pf, &perr)) {
			semlog(SEMLOG_WARN, "category '%s': policy from another host is invalid here (%d:%d: %s); kept the previous one",
			       cat->path, perr.line, perr.column, perr.message);
			return;
		}
		if (engine_text_dup(yaml, len, &copy, &copy_len)) {
			policy_file_free(pf);
			return;
		}
	}
	engine_policy_install(cat, pf, copy, len);
	semlog(SEMLOG_INFO, "policy of '%s' %s by another host", cat->path,
	       yaml ? "updated" : "removed");
}

static int resync_cat(void *arg, const struct store_category *sc)
{
	remote_category(arg, sc);
	return 0;
}

struct resync_ctx {
	struct cache *c;
	struct cat *cat;
	struct u64map seen;
};

static int resync_entry(void *arg, const struct store_entry *se,
			const float *vec, int dim, const char *embedder)
{
	struct resync_ctx *rc = arg;
	struct store_event ev = { .kind = STORE_EV_ENTRY_PUT, .entry = *se,
				  .vec = vec, .dim = dim, .embedder = embedder };

	u64map_put(&rc->seen, (uint64_t)se->id, (void *)1);
	remote_put(rc->c, rc->cat, &ev);
	return 0;
}

/* Events were lost: bring categories, policies and entries back in line. */
static void resync(struct cache *c)
{
	semlog(SEMLOG_WARN, "change stream had a gap: reloading from the store");
	pthread_rwlock_wrlock(&c->lock);
	if (c->closing) {
		pthread_rwlock_unlock(&c->lock);
		return;
	}
	store_category_list(c->store, resync_cat, c);
	for (size_t i = 0; i < c->ncats; i++) {
		char *yaml = NULL;
		size_t len = 0;
		int rc = store_policy_get(c->store, c->cats[i]->id, &yaml, &len);

		if (rc == 0 || rc == -ENOENT)
			remote_policy(c->cats[i], rc ? NULL : yaml, len);
		free(yaml);
	}
	pthread_rwlock_unlock(&c->lock);
	pthread_rwlock_rdlock(&c->lock);
	for (size_t i = 0; i < c->ncats && !c->closing; i++) {
		struct resync_ctx rs = { .c = c, .cat = c->cats[i] };
		int64_t *known;
		size_t n;

		u64map_init(&rs.seen);
		if (store_entry_scan(c->store, rs.cat->id, 0, resync_entry, &rs) >= 0) {
			/* what this host knows and the store no longer has */
			known = engine_entry_ids(rs.cat, &n);
			for (size_t k = 0; known && k < n; k++)
				if (!u64map_get(&rs.seen, (uint64_t)known[k]))
					engine_entry_forget(rs.cat, known[k]);
			free(known);
		}
		u64map_release(&rs.seen);
	}
	pthread_rwlock_unlock(&c->lock);
}

/*
 * Runs on the store's watcher thread. Every handler checks closing under
 * the lock it works in, so once cache_close() has set it (under the write
 * lock) no event touches the categories again.
 */
static void on_store_event(void *arg, const struct store_event *ev)
{
	struct cache *c = arg;
	bool structural = ev->kind != STORE_EV_ENTRY_PUT &&
			  ev->kind != STORE_EV_ENTRY_DELETE;
	struct cat *cat;

	if (ev->kind == STORE_EV_RESYNC) {
		resync(c);
		return;
	}
	if (structural)
		pthread_rwlock_wrlock(&c->lock);
	else
		pthread_rwlock_rdlock(&c->lock);
	if (c->closing) {
		pthread_rwlock_unlock(&c->lock);
		return;
	}
	switch (ev->kind) {
	case STORE_EV_ENTRY_PUT:
	case STORE_EV_ENTRY_DELETE:
		cat = engine_cat_find_id(c, ev->entry.cat_id);
		if (cat && ev->kind == STORE_EV_ENTRY_PUT)
			remote_put(c, cat, ev);
		else if (cat)
			engine_entry_forget(cat, ev->entry.id);
		break;
	case STORE_EV_CATEGORY_CREATE:
	case STORE_EV_CATEGORY_ATTR:
		remote_category(c, &ev->category);
		break;
	case STORE_EV_CATEGORY_DELETE:
		remote_category_delete(c, ev->category.id);
		break;
	case STORE_EV_POLICY:
		cat = engine_cat_find_id(c, ev->category.id);
		if (cat)
			remote_policy(cat, ev->yaml, ev->yaml_len);
		break;
	case STORE_EV_RESYNC:
		break;
	}
	pthread_rwlock_unlock(&c->lock);
}

void engine_remote_follow(struct cache *c)
{
	int rc = store_watch(c->store, on_store_event, c);

	if (rc && rc != -ENOTSUP)
		semlog(SEMLOG_ERR, "cannot follow other hosts' changes: %s", strerror(-rc));
	else if (!rc)
		semlog(SEMLOG_INFO, "following other hosts' changes to the shared store");
}
