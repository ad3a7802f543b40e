/*
 * cat.c - the category table and the category operations of cache.h
 * (stat, mkdir, rmdir, chmod/chown, readdir).
 *
 * Categories are found by path through a hash map (and by store id through
 * another), both under cache.tree; each knows its parent, and its effective
 * policy is computed by walking up to the root (policy files inherit).
 * Operations take references under a short hold of cache.tree (see the
 * concurrency notes in engine_i.h) and never call the store with it held:
 * mkdir reserves the name with a record in state CAT_CREATING, writes the
 * store and builds the core without any lock, then makes it live; rmdir
 * marks the record CAT_REMOVING (fills are refused from then on), deletes
 * it from the store, then takes it out of the table. A category in either
 * state is invisible to lookups and keeps its name taken.
 *
 * Not here: loading categories at open (open.c), entries (entry.c), the
 * core (core.c), policy files (policy_ops.c), other hosts' categories
 * (remote.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

#define PATH_SEED 0x9a7c5e3a1b2d4f60ULL

static uint64_t path_key(const char *path)
{
	uint64_t h = hash64(path, strlen(path), PATH_SEED);

	return h ? h : 1;
}

/* The category named path in any state, or NULL. cache.tree held. */
static struct cat *cat_lookup(struct cache *c, const char *path)
{
	struct cat *x = u64map_get(&c->by_path, path_key(path));

	while (x && strcmp(x->path, path))
		x = x->hnext;
	return x;
}

struct cat *engine_cat_find(struct cache *c, const char *path)
{
	struct cat *x = cat_lookup(c, path);

	return x && x->state == CAT_LIVE ? x : NULL;
}

struct cat *engine_cat_find_id(struct cache *c, int64_t id)
{
	struct cat *x = id > 0 ? u64map_get(&c->by_id, (uint64_t)id) : NULL;

	return x && x->state == CAT_LIVE ? x : NULL;
}

char *engine_cat_parent_path(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash || !strcmp(path, "/"))
		return NULL;
	if (slash == path)
		return strdup("/");
	return strndup(path, slash - path);
}

bool engine_cat_in_subtree(const struct cat *x, const struct cat *top)
{
	for (; x; x = x->parent)
		if (x == top)
			return true;
	return false;
}

struct cat *engine_cat_new(const struct store_category *sc)
{
	struct cat *cat = calloc(1, sizeof(*cat));

	if (!cat)
		return NULL;
	cat->path = strdup(sc->path);
	if (!cat->path || clock_cond_init(&cat->pend_cv)) {
		free(cat->path);
		free(cat);
		return NULL;
	}
	cat->id = sc->id;
	cat->refs = 1;
	cat->state = CAT_LIVE;
	cat->mode = sc->mode;
	cat->uid = sc->uid;
	cat->gid = sc->gid;
	cat->created_ms = sc->created_ms;
	pthread_mutex_init(&cat->admin_mu, NULL);
	{
		/* cat.lock is held for a map look-up at a time, several times a
		 * lookup (once per search candidate): a waiter spins a little
		 * before it sleeps on a futex */
		pthread_mutexattr_t ma;

		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
		pthread_mutex_init(&cat->lock, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	u64map_init(&cat->by_id);
	u64map_init(&cat->by_key);
	return cat;
}

static void cat_free(struct cache *c, struct cat *cat)
{
	for (size_t i = 0; i < cat->by_id.cap; i++)
		if (cat->by_id.keys[i])
			engine_entry_free(cat->by_id.vals[i]);
	u64map_release(&cat->by_id);
	u64map_release(&cat->by_key);
	engine_core_put(c, cat->core);
	policy_file_free(cat->pfile);
	free(cat->pyaml);
	free(cat->perrors);
	free(cat->dirty);
	while (cat->pending) {
		struct pending *p = cat->pending;

		cat->pending = p->next;
		free(p->vec);
		free(p);
	}
	pthread_cond_destroy(&cat->pend_cv);
	pthread_mutex_destroy(&cat->lock);
	pthread_mutex_destroy(&cat->admin_mu);
	free(cat->path);
	free(cat);
}

void engine_cat_hold(struct cat *cat)
{
	cat->refs++;
}

void engine_cat_release(struct cache *c, struct cat *cat)
{
	if (cat && --cat->refs == 0)
		cat_free(c, cat);
}

int engine_cat_link(struct cache *c, struct cat *cat)
{
	uint64_t k = path_key(cat->path);
	int rc;

	if (c->ncats == c->cats_cap) {
		size_t ncap = c->cats_cap ? c->cats_cap * 2 : 16;
		struct cat **n = realloc(c->cats, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->cats = n;
		c->cats_cap = ncap;
	}
	if (cat->id > 0) {
		rc = u64map_put(&c->by_id, (uint64_t)cat->id, cat);
		if (rc)
			return rc;
	}
	cat->hnext = u64map_get(&c->by_path, k);
	rc = u64map_put(&c->by_path, k, cat);
	if (rc) {
		if (cat->id > 0)
			u64map_del(&c->by_id, (uint64_t)cat->id);
		return rc;
	}
	c->cats[c->ncats++] = cat;
	c->tree_gen++;
	return 0;
}

/* Give cat its store id once the store made it. cache.tree write. */
static int cat_set_id(struct cache *c, struct cat *cat, int64_t id)
{
	int rc = u64map_put(&c->by_id, (uint64_t)id, cat);

	if (!rc)
		cat->id = id;
	return rc;
}

void engine_cat_unlink(struct cache *c, struct cat *cat)
{
	uint64_t k = path_key(cat->path);
	struct cat *head = u64map_get(&c->by_path, k);

	if (head == cat) {
		if (cat->hnext)
			u64map_put(&c->by_path, k, cat->hnext); /* replaces: no allocation */
		else
			u64map_del(&c->by_path, k);
	} else {
		for (struct cat *x = head; x; x = x->hnext)
			if (x->hnext == cat) {
				x->hnext = cat->hnext;
				break;
			}
	}
	cat->hnext = NULL;
	if (cat->id > 0 && u64map_get(&c->by_id, (uint64_t)cat->id) == cat)
		u64map_del(&c->by_id, (uint64_t)cat->id);
	for (size_t i = 0; i < c->ncats; i++) {
		if (c->cats[i] == cat) {
			c->cats[i] = c->cats[--c->ncats];
			break;
		}
	}
	if (cat->state == CAT_LIVE)
		cat->state = CAT_REMOVING; /* out of the table: never live again */
	c->tree_gen++;
}

void engine_cat_policy(const struct cat *cat, const struct cat *over,
		       const struct policy_file *pf, struct policy *p)
{
	const struct cat *chain[ENGINE_MAX_DEPTH + 2];
	int n = 0;

	for (const struct cat *x = cat; x && n < ENGINE_MAX_DEPTH + 2; x = x->parent)
		chain[n++] = x;
	policy_defaults(p);
	while (n--) {
		const struct policy_file *f = chain[n] == over ? pf : chain[n]->pfile;

		if (f)
			policy_apply(p, f);
	}
}

static void ref_fill(struct cat *cat, struct catref *r)
{
	engine_cat_hold(cat);
	r->cat = cat;
	r->core = cat->core;
	r->owner = cat->uid;
	engine_core_hold(r->core);
	engine_cat_policy(cat, NULL, NULL, &r->pol);
	for (int i = 0; i < POLICY_NKEYS; i++)
		r->pol.source[i] = NULL; /* not valid past the lock */
}

int engine_cat_get(struct cache *c, const char *path, struct catref *r)
{
	struct cat *cat;

	pthread_rwlock_rdlock(&c->tree);
	cat = engine_cat_find(c, path);
	if (cat)
		ref_fill(cat, r);
	pthread_rwlock_unlock(&c->tree);
	if (!cat)
		memset(r, 0, sizeof(*r));
	return cat ? 0 : -ENOENT;
}

void engine_cat_ref(struct cache *c, struct cat *cat, struct catref *r)
{
	pthread_rwlock_rdlock(&c->tree);
	ref_fill(cat, r);
	pthread_rwlock_unlock(&c->tree);
}

void engine_cat_put(struct cache *c, struct catref *r)
{
	if (!r->cat)
		return;
	engine_core_put(c, r->core);
	engine_cat_release(c, r->cat);
	r->cat = NULL;
	r->core = NULL;
}

struct cat **engine_cat_all(struct cache *c, size_t *n)
{
	struct cat **all;

	*n = 0;
	pthread_rwlock_rdlock(&c->tree);
	all = malloc((c->ncats + 1) * sizeof(*all));
	for (size_t i = 0; all && i < c->ncats; i++) {
		if (c->cats[i]->state != CAT_LIVE)
			continue;
		engine_cat_hold(c->cats[i]);
		all[(*n)++] = c->cats[i];
	}
	pthread_rwlock_unlock(&c->tree);
	return all;
}

void engine_cat_release_all(struct cache *c, struct cat **cats, size_t n)
{
	for (size_t i = 0; i < n; i++)
		engine_cat_release(c, cats[i]);
	free(cats);
}

void engine_cat_snapshot_path(struct cache *c, const struct cat *cat,
			      char *buf, size_t size)
{
	snprintf(buf, size, "%s/index/%" PRId64 ".vx", store_dir(c->store), cat->id);
}

int cache_category_stat(struct cache *c, const char *path,
			struct cache_cat_info *info)
{
	struct cat *cat;

	pthread_rwlock_rdlock(&c->tree);
	cat = engine_cat_find(c, path);
	if (cat && info) {
		info->mode = cat->mode;
		info->uid = cat->uid;
		info->gid = cat->gid;
		info->created_ms = cat->created_ms;
		pthread_mutex_lock(&cat->lock);
		info->entries = (int64_t)cat->by_id.len;
		info->bytes = cat->bytes;
		pthread_mutex_unlock(&cat->lock);
	}
	pthread_rwlock_unlock(&c->tree);
	return cat ? 0 : -ENOENT;
}

static int path_depth(const char *path)
{
	int d = 0;

	for (const char *p = path; *p; p++)
		d += *p == '/';
	return strcmp(path, "/") ? d : 0;
}

/* Undo a mkdir that did not complete: the name is free again. */
static void create_abandon(struct cache *c, struct cat *cat)
{
	pthread_rwlock_wrlock(&c->tree);
	engine_cat_unlink(c, cat);
	pthread_rwlock_unlock(&c->tree);
	engine_cat_release(c, cat);
}

int cache_category_create(struct cache *c, const char *path, mode_t mode,
			  uid_t uid, gid_t gid)
{
	struct store_category sc = { .path = path, .mode = mode & 07777,
				     .uid = uid, .gid = gid };
	struct catcore *core = NULL;
	struct cat *parent, *cat;
	struct policy pol;
	char *pp = engine_cat_parent_path(path);
	int rc;

	if (!pp)
		return strcmp(path, "/") ? -ENOMEM : -EEXIST;
	if (path_depth(path) > ENGINE_MAX_DEPTH) {
		free(pp);
		return -EMLINK;
	}
	sc.created_ms = clock_wall_ms();
	cat = engine_cat_new(&sc);
	if (!cat) {
		free(pp);
		return -ENOMEM;
	}
	cat->state = CAT_CREATING;
	/* Reserve the name: a record nobody sees until it is live. */
	pthread_rwlock_wrlock(&c->tree);
	parent = engine_cat_find(c, pp);
	rc = cat_lookup(c, path) ? -EEXIST : !parent ? -ENOENT : 0;
	if (!rc) {
		cat->parent = parent;
		rc = engine_cat_link(c, cat);
	}
	if (!rc) {
		engine_cat_hold(cat); /* ours, while we work */
		engine_cat_policy(cat, NULL, NULL, &pol);
	}
	pthread_rwlock_unlock(&c->tree);
	free(pp);
	if (rc) {
		engine_cat_release(c, cat);
		return rc;
	}
	/* Slow work, no lock held: the store, then the embedder and index. */
	rc = store_category_create(c->store, path, sc.mode, uid, gid, &sc.id);
	if (!rc) {
		rc = engine_core_make(c, &pol, path, NULL, false, &core, NULL, 0);
	}
	if (!rc) {
		pthread_rwlock_wrlock(&c->tree);
		rc = cat_set_id(c, cat, sc.id);
		if (!rc) {
			cat->core = core;
			cat->state = CAT_LIVE;
			c->tree_gen++;
			core = NULL;
		}
		pthread_rwlock_unlock(&c->tree);
	}
	if (rc) {
		if (sc.id)
			store_category_delete(c->store, sc.id);
		engine_core_put(c, core);
		create_abandon(c, cat);
		/* Another host made it first: its event found the name taken
		 * by this attempt, so learn it from the store now. */
		if (rc == -EEXIST)
			engine_remote_categories(c);
	}
	engine_cat_release(c, cat);
	return rc;
}

/* May cat be removed? cache.tree held for writing. */
static int remove_check(struct cache *c, struct cat *cat)
{
	int rc = 0;

	if (!cat->parent)
		return -EBUSY;
	if (cat->pyaml)
		return -ENOTEMPTY;
	for (size_t i = 0; i < c->ncats; i++)
		if (c->cats[i]->parent == cat)
			return -ENOTEMPTY;
	pthread_mutex_lock(&cat->lock);
	if (cat->by_id.len)
		rc = -ENOTEMPTY;
	else if (cat->fills_inflight)
		rc = -EBUSY;
	else
		cat->removing = true; /* from here on fills are refused */
	pthread_mutex_unlock(&cat->lock);
	return rc;
}

int cache_category_remove(struct cache *c, const char *path)
{
	struct cat *cat;
	char snap[4096];
	int rc;

	pthread_rwlock_wrlock(&c->tree);
	cat = engine_cat_find(c, path);
	rc = cat ? remove_check(c, cat) : -ENOENT;
	if (!rc) {
		cat->state = CAT_REMOVING;
		c->tree_gen++;
		engine_cat_hold(cat);
	}
	pthread_rwlock_unlock(&c->tree);
	if (rc)
		return rc;
	rc = store_category_delete(c->store, cat->id);
	pthread_rwlock_wrlock(&c->tree);
	if (rc) {
		cat->state = CAT_LIVE;
		c->tree_gen++;
	} else {
		engine_cat_unlink(c, cat);
	}
	pthread_rwlock_unlock(&c->tree);
	if (rc) {
		pthread_mutex_lock(&cat->lock);
		cat->removing = false;
		pthread_mutex_unlock(&cat->lock);
	} else {
		engine_cat_snapshot_path(c, cat, snap, sizeof(snap));
		unlink(snap);
		engine_cat_release(c, cat); /* the table's reference */
	}
	engine_cat_release(c, cat);
	return rc;
}

int cache_category_setattr(struct cache *c, const char *path, int mode,
			   uid_t uid, gid_t gid)
{
	struct catref ref;
	struct cat *cat;
	mode_t nm;
	uid_t nu;
	gid_t ng;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	cat = ref.cat;
	pthread_mutex_lock(&cat->admin_mu);
	pthread_rwlock_rdlock(&c->tree);
	nm = mode >= 0 ? (mode_t)mode & 07777 : cat->mode;
	nu = uid != (uid_t)-1 ? uid : cat->uid;
	ng = gid != (gid_t)-1 ? gid : cat->gid;
	pthread_rwlock_unlock(&c->tree);
	rc = store_category_setattr(c->store, cat->id, nm, nu, ng);
	if (!rc) {
		pthread_rwlock_wrlock(&c->tree);
		cat->mode = nm;
		cat->uid = nu;
		cat->gid = ng;
		c->tree_gen++;
		pthread_rwlock_unlock(&c->tree);
	}
	pthread_mutex_unlock(&cat->admin_mu);
	engine_cat_put(c, &ref);
	return rc;
}

int cache_category_children(struct cache *c, const char *path,
			    int (*cb)(void *arg, const char *name), void *arg)
{
	char **names = NULL;
	size_t n = 0;
	struct cat *cat;
	int rc = 0;

	pthread_rwlock_rdlock(&c->tree);
	cat = engine_cat_find(c, path);
	if (!cat)
		rc = -ENOENT;
	else if (!(names = malloc((c->ncats + 1) * sizeof(*names))))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < c->ncats; i++) {
		struct cat *x = c->cats[i];

		if (x->parent != cat || x->state != CAT_LIVE)
			continue;
		names[n] = strdup(strrchr(x->path, '/') + 1);
		if (!names[n])
			rc = -ENOMEM;
		else
			n++;
	}
	pthread_rwlock_unlock(&c->tree);
	/* the callback (a readdir filler) runs with no lock held */
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			rc = cb(arg, names[i]);
		free(names[i]);
	}
	free(names);
	return rc;
}
