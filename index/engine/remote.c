/*
 * remote.c - changes other hosts make to a store they share with this
 * one: entries put, deleted and expired, their hit counts summed over the
 * hosts, categories created, changed and removed,
 * policies replaced; and a full resync when the change stream had a gap
 * (or the store was reset behind the daemons' backs).
 *
 * Events arrive on the store's watcher thread and are handled like local
 * requests: references taken under a short hold of cache.tree, the slow
 * work (index adds, making a new category's core, parsing a policy, store
 * reads) done with no engine lock held, the result published under the
 * lock it belongs to. A policy from another host goes through the same
 * path as a local write (policy_ops.c), so a new embedder or index
 * structure is built here too. Events may arrive twice: every handler is
 * idempotent. Once cache_close() has set closing, events are ignored.
 *
 * Not here: the store's change stream itself (index/store/redis/).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

static bool closing(struct cache *c)
{
	bool v;

	pthread_rwlock_rdlock(&c->tree);
	v = c->closing;
	pthread_rwlock_unlock(&c->tree);
	return v;
}

/* References to the live category with store id id; -ENOENT. */
static int ref_id(struct cache *c, int64_t id, struct catref *r)
{
	struct cat *cat;

	pthread_rwlock_rdlock(&c->tree);
	cat = c->closing ? NULL : engine_cat_find_id(c, id);
	if (cat)
		engine_cat_hold(cat);
	pthread_rwlock_unlock(&c->tree);
	if (!cat)
		return -ENOENT;
	engine_cat_ref(c, cat, r);
	engine_cat_release(c, cat);
	return 0;
}

/* Another host filled: publish the entry here too. 0, or -ENOMEM. */
static int remote_put(struct cache *c, struct catref *ref,
		      const struct store_event *ev)
{
	const struct store_entry *se = &ev->entry;
	struct catcore *core = ref->core;
	struct cat *cat = ref->cat;
	struct centry *e, *old = NULL;
	bool known, same = false;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)se->id);
	known = e != NULL;
	if (e)
		same = e->key[0] == se->key[0] && e->key[1] == se->key[1] &&
		       e->created_ms == se->created_ms;
	pthread_mutex_unlock(&cat->lock);
	if (same) {
		/* a change may arrive twice; a resync brings the counts */
		engine_entry_store_hits(cat, se->id, se->hits, se->last_hit_ms, -1);
		return 0;
	}
	if (known) {
		/* the store gave this id to another entry: it lost the one
		 * known here (a failover to a replica that lacked it) */
		semlog(SEMLOG_WARN, "category '%s': entry %" PRId64 " in the store is another question than the one known here (the store lost it): the one known here is dropped",
		       cat->path, se->id);
		engine_entry_forget(cat, core, se->id);
	}
	if (core->emb && ev->vec && ev->dim == core->emb->dim && ev->embedder &&
	    !strcmp(ev->embedder, core->emb->name))
		vindex_add(core->vi, se->id, ev->vec); /* -EEXIST: already there */
	e = engine_entry_from_store(se);
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&cat->lock);
	if (engine_entry_publish(cat, e, &old)) {
		pthread_mutex_unlock(&cat->lock);
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&cat->lock);
	if (old) {
		/* the other host replaced it in the store already */
		vindex_remove(core->vi, old->id);
		engine_entry_free(old);
	}
	engine_pending_resolve(cat, 0, se->key, se->id);
	return 0;
}

/* A category made (or changed) elsewhere: known here by id, its
 * attributes follow; unknown, it is made with its core (slow, no lock)
 * and linked unless the name was taken meanwhile. */
static void remote_category(struct cache *c, const struct store_category *sc)
{
	struct catcore *core = NULL;
	struct cat *cat, *parent;
	struct policy pol;
	char *pp;
	bool taken;

	pthread_rwlock_wrlock(&c->tree);
	cat = c->closing ? NULL : engine_cat_find_id(c, sc->id);
	if (cat) {
		cat->mode = sc->mode;
		cat->uid = sc->uid;
		cat->gid = sc->gid;
	}
	taken = c->closing || cat || engine_cat_find(c, sc->path);
	pthread_rwlock_unlock(&c->tree);
	if (taken)
		return;
	pp = engine_cat_parent_path(sc->path);
	cat = pp ? engine_cat_new(sc) : NULL;
	if (!cat) {
		free(pp);
		return;
	}
	pthread_rwlock_rdlock(&c->tree);
	parent = engine_cat_find(c, pp);
	if (!parent)
		parent = engine_cat_find(c, "/");
	engine_cat_hold(parent); /* kept while the core is made */
	cat->parent = parent;
	engine_cat_policy(cat, NULL, NULL, &pol);
	pthread_rwlock_unlock(&c->tree);
	free(pp);
	if (engine_core_make(c, &pol, cat->path, NULL, false, &core, NULL, 0)) {
		engine_cat_release(c, parent);
		engine_cat_release(c, cat);
		return;
	}
	cat->core = core;
	pthread_rwlock_wrlock(&c->tree);
	/* re-check: the name still free, the parent still there */
	taken = c->closing || engine_cat_find(c, sc->path) ||
		engine_cat_find_id(c, sc->id) || parent->state != CAT_LIVE ||
		engine_cat_link(c, cat);
	pthread_rwlock_unlock(&c->tree);
	engine_cat_release(c, parent);
	if (taken) {
		engine_cat_release(c, cat);
		return;
	}
	semlog(SEMLOG_INFO, "category '%s' created by another host", sc->path);
}

static void remote_category_delete(struct cache *c, int64_t id)
{
	struct cat *cat;

	pthread_rwlock_wrlock(&c->tree);
	cat = c->closing ? NULL : engine_cat_find_id(c, id);
	if (cat && cat->parent) {
		for (size_t i = 0; i < c->ncats; i++)
			if (c->cats[i]->parent == cat)
				c->cats[i]->parent = cat->parent;
		engine_cat_unlink(c, cat);
	} else {
		cat = NULL;
	}
	pthread_rwlock_unlock(&c->tree);
	if (!cat)
		return;
	semlog(SEMLOG_INFO, "category '%s' removed by another host", cat->path);
	pthread_mutex_lock(&cat->lock);
	cat->removing = true;
	pthread_mutex_unlock(&cat->lock);
	engine_cat_release(c, cat); /* the table's reference */
}

static void remote_policy(struct cache *c, int64_t id, const char *yaml,
			  size_t len)
{
	struct catref ref;

	if (ref_id(c, id, &ref))
		return;
	engine_policy_set(c, ref.cat, yaml, len, NULL, true);
	engine_cat_put(c, &ref);
}

/* ---- resync ---- */

struct cat_list {
	struct store_category *v;
	size_t n, cap;
	int rc;
};

static int collect(void *arg, const struct store_category *sc)
{
	struct cat_list *l = arg;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		struct store_category *nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv)
			return l->rc = -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n] = *sc;
	l->v[l->n].path = strdup(sc->path);
	if (!l->v[l->n].path)
		return l->rc = -ENOMEM;
	l->n++;
	return 0;
}

/* Is a category with store id id in the list? */
static bool listed(const struct cat_list *l, int64_t id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].id == id)
			return true;
	return false;
}

void engine_remote_categories(struct cache *c)
{
	struct cat_list l = { 0 };
	struct cat **all;
	size_t n;
	int rc = store_category_list(c->store, collect, &l);

	if (rc < 0 || l.rc) {
		semlog(SEMLOG_WARN, "reloading categories from the store failed: %s",
		       strerror(-(l.rc ? l.rc : rc)));
		goto out;
	}
	/* parents before children: the store lists in id order, and a
	 * category's id is above its parent's */
	for (size_t i = 0; i < l.n; i++)
		remote_category(c, &l.v[i]);
	all = engine_cat_all(c, &n);
	for (size_t i = 0; all && i < n; i++)
		if (all[i]->parent && !listed(&l, all[i]->id))
			remote_category_delete(c, all[i]->id);
	if (all)
		engine_cat_release_all(c, all, n);
out:
	for (size_t i = 0; i < l.n; i++)
		free((char *)l.v[i].path);
	free(l.v);
}

/* cat's policy as the store has it now, installed if it differs. */
static void resync_policy(struct cache *c, struct cat *cat)
{
	char *yaml = NULL;
	size_t len = 0;
	bool same;
	int rc = store_policy_get(c->store, cat->id, &yaml, &len);

	if (rc && rc != -ENOENT)
		return;
	pthread_rwlock_rdlock(&c->tree);
	same = rc ? !cat->pyaml : cat->pyaml && cat->pyaml_len == len &&
	       !memcmp(cat->pyaml, yaml, len);
	pthread_rwlock_unlock(&c->tree);
	if (!same)
		engine_policy_set(c, cat, rc ? NULL : yaml, len, NULL, true);
	free(yaml);
}

struct resync_ctx {
	struct cache *c;
	struct catref *ref;
	struct u64map seen;
	int rc;
};

static int resync_entry(void *arg, const struct store_entry *se,
			const float *vec, int dim, const char *embedder)
{
	struct resync_ctx *rs = arg;
	struct store_event ev = { .kind = STORE_EV_ENTRY_PUT, .entry = *se,
				  .vec = vec, .dim = dim, .embedder = embedder };

	if (!rs->rc)
		rs->rc = u64map_put(&rs->seen, (uint64_t)se->id, (void *)1);
	if (!rs->rc)
		rs->rc = remote_put(rs->c, rs->ref, &ev);
	return rs->rc;
}

/* cat's entries as the store has them: the missing published, the ones
 * the store lost forgotten — unless the scan did not complete. */
static void resync_entries(struct cache *c, struct cat *cat)
{
	struct catref ref;
	struct resync_ctx rs = { .c = c, .ref = &ref };
	int64_t *known;
	size_t n;
	int rc;

	engine_cat_ref(c, cat, &ref);
	u64map_init(&rs.seen);
	rc = store_entry_scan(c->store, cat->id, 0, resync_entry, &rs);
	if (rc < 0 || rs.rc) {
		semlog(SEMLOG_WARN, "category '%s': reloading entries from the store failed: %s (entries kept)",
		       cat->path, strerror(-(rs.rc ? rs.rc : rc)));
	} else {
		known = engine_entry_ids(cat, &n);
		for (size_t k = 0; known && k < n; k++)
			if (!u64map_get(&rs.seen, (uint64_t)known[k]))
				engine_entry_forget(cat, ref.core, known[k]);
		free(known);
	}
	u64map_release(&rs.seen);
	engine_cat_put(c, &ref);
}

/* Events were lost: bring categories, policies and entries back in line. */
static void resync(struct cache *c)
{
	struct cat **all;
	size_t n;

	semlog(SEMLOG_WARN, "change stream had a gap: reloading from the store");
	engine_remote_categories(c);
	engine_changed(c, "/", false);
	all = engine_cat_all(c, &n);
	for (size_t i = 0; all && i < n && !closing(c); i++) {
		resync_policy(c, all[i]);
		resync_entries(c, all[i]);
		engine_changed(c, all[i]->path, false);
	}
	if (all)
		engine_cat_release_all(c, all, n);
}

void engine_changed(struct cache *c, const char *path, bool removed)
{
	if (c->opts.changed && path)
		c->opts.changed(c->opts.changed_arg, path, removed);
}

/* A copy of the path of the category with store id id, or NULL. */
static char *path_of_id(struct cache *c, int64_t id)
{
	struct cat *cat;
	char *p = NULL;

	pthread_rwlock_rdlock(&c->tree);
	cat = engine_cat_find_id(c, id);
	if (cat)
		p = strdup(cat->path);
	pthread_rwlock_unlock(&c->tree);
	return p;
}

/* Runs on the store's watcher thread. */
static void on_store_event(void *arg, const struct store_event *ev)
{
	struct cache *c = arg;
	struct catref ref;
	char *path = NULL;     /* the category that changed, told afterwards */
	bool removed = false;

	if (closing(c))
		return;
	switch (ev->kind) {
	case STORE_EV_RESYNC:
		resync(c);
		break;
	case STORE_EV_ENTRY_PUT:
	case STORE_EV_ENTRY_DELETE:
	case STORE_EV_ENTRY_HITS:
		if (ref_id(c, ev->entry.cat_id, &ref))
			break;
		if (ev->kind == STORE_EV_ENTRY_PUT)
			remote_put(c, &ref, ev);
		else if (ev->kind == STORE_EV_ENTRY_HITS)
			engine_entry_store_hits(ref.cat, ev->entry.id, ev->entry.hits,
						ev->entry.last_hit_ms, -1);
		/* an expiry another host decided counts here too, once:
		 * only while the entry was still known here */
		else if (engine_entry_forget(ref.cat, ref.core, ev->entry.id) &&
			 ev->expired)
			ref.cat->expired++;
		if (ev->kind != STORE_EV_ENTRY_HITS)
			path = strdup(ref.cat->path);
		engine_cat_put(c, &ref);
		break;
	case STORE_EV_CATEGORY_CREATE:
	case STORE_EV_CATEGORY_ATTR:
		remote_category(c, &ev->category);
		path = path_of_id(c, ev->category.id);
		break;
	case STORE_EV_CATEGORY_DELETE:
		path = path_of_id(c, ev->category.id);
		removed = true;
		remote_category_delete(c, ev->category.id);
		break;
	case STORE_EV_POLICY:
		remote_policy(c, ev->category.id, ev->yaml, ev->yaml_len);
		path = path_of_id(c, ev->category.id);
		break;
	}
	engine_changed(c, path, removed);
	free(path);
}

void engine_remote_follow(struct cache *c)
{
	int rc = store_watch(c->store, on_store_event, c);

	if (rc && rc != -ENOTSUP)
		semlog(SEMLOG_ERR, "cannot follow other hosts' changes: %s", strerror(-rc));
	else if (!rc)
		semlog(SEMLOG_INFO, "following other hosts' changes to the shared store");
}
