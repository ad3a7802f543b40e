/*
 * cat.c - the category table and the category operations of cache.h
 * (stat, mkdir, rmdir, chmod/chown, readdir).
 *
 * Categories live in one array under cache.lock, found by a linear search
 * on path or store id; each knows its parent, and its effective policy is
 * computed by walking up to the root (policy files inherit). Creating a
 * category writes the store first, then builds its record, embedder and
 * empty index; any failure undoes the store row.
 *
 * Not here: loading categories at open (open.c), entries (entry.c),
 * policy files (policy_ops.c), other hosts' categories (remote.c).
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

#define MAX_DEPTH 64

struct cat *engine_cat_find(struct cache *c, const char *path)
{
	for (size_t i = 0; i < c->ncats; i++)
		if (!strcmp(c->cats[i]->path, path))
			return c->cats[i];
	return NULL;
}

struct cat *engine_cat_find_id(struct cache *c, int64_t id)
{
	for (size_t i = 0; i < c->ncats; i++)
		if (c->cats[i]->id == id)
			return c->cats[i];
	return NULL;
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

struct cat *engine_cat_new(const struct store_category *sc)
{
	struct cat *cat = calloc(1, sizeof(*cat));

	if (!cat)
		return NULL;
	cat->path = strdup(sc->path);
	if (!cat->path) {
		free(cat);
		return NULL;
	}
	cat->id = sc->id;
	cat->mode = sc->mode;
	cat->uid = sc->uid;
	cat->gid = sc->gid;
	cat->created_ms = sc->created_ms;
	pthread_mutex_init(&cat->lock, NULL);
	pthread_cond_init(&cat->pend_cv, NULL);
	u64map_init(&cat->by_id);
	u64map_init(&cat->by_key);
	return cat;
}

void engine_cat_free(struct cache *c, struct cat *cat)
{
	if (!cat)
		return;
	if (cat->emb)
		engine_embref_release(c, cat->emb);
	for (size_t i = 0; i < cat->by_id.cap; i++)
		if (cat->by_id.keys[i])
			free(cat->by_id.vals[i]);
	u64map_release(&cat->by_id);
	u64map_release(&cat->by_key);
	vindex_free(cat->vi);
	policy_file_free(cat->pfile);
	free(cat->pyaml);
	free(cat->perrors);
	free(cat->dirty);
	free(cat->emb_key);
	free(cat->emb_error);
	while (cat->pending) {
		struct pending *p = cat->pending;

		cat->pending = p->next;
		free(p->vec);
		free(p);
	}
	pthread_cond_destroy(&cat->pend_cv);
	pthread_mutex_destroy(&cat->lock);
	free(cat->path);
	free(cat);
}

/* Take cat out of the table and free it. cache.lock held for writing. */
void engine_cat_delete(struct cache *c, struct cat *cat)
{
	for (size_t i = 0; i < c->ncats; i++) {
		if (c->cats[i] == cat) {
			c->cats[i] = c->cats[--c->ncats];
			break;
		}
	}
	engine_cat_free(c, cat);
}

int engine_cat_append(struct cache *c, struct cat *cat)
{
	if (c->ncats == c->cats_cap) {
		size_t ncap = c->cats_cap ? c->cats_cap * 2 : 16;
		struct cat **n = realloc(c->cats, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->cats = n;
		c->cats_cap = ncap;
	}
	c->cats[c->ncats++] = cat;
	return 0;
}

void engine_cat_policy(const struct cat *cat, struct policy *p)
{
	const struct cat *chain[MAX_DEPTH];
	int n = 0;

	for (const struct cat *x = cat; x && n < MAX_DEPTH; x = x->parent)
		chain[n++] = x;
	policy_defaults(p);
	while (n--)
		if (chain[n]->pfile)
			policy_apply(p, chain[n]->pfile);
}

/*
 * Give cat the index policy p asks for with cat's embedder (its dimension;
 * 1 without an embedder): the snapshot snap when it loads with those
 * parameters (snap may be NULL), else a new empty one. It replaces (and
 * frees) the index cat had; cat->vp and cat->ef_search say what it was
 * built with. On error cat keeps what it had.
 */
int engine_cat_index_new(struct cat *cat, const struct policy *p,
			 const char *snap)
{
	struct vindex_params vp = { .dim = cat->emb ? cat->emb->dim : 1,
				    .m = p->hnsw_m,
				    .ef_construction = p->hnsw_ef_construction,
				    .ef_search = p->hnsw_ef_search };
	struct vindex *vi = NULL;
	int rc = -ENOENT;

	if (snap)
		rc = vindex_load(snap, &vp, &vi);
	if (rc) {
		if (rc != -ENOENT)
			semlog(SEMLOG_WARN, "index snapshot '%s' unusable (%s): rebuilding from the store",
			       snap, strerror(-rc));
		rc = vindex_new(&vp, &vi);
		if (rc)
			return rc;
	}
	vindex_free(cat->vi);
	cat->vi = vi;
	cat->vp = vp;
	cat->ef_search = vp.ef_search;
	return 0;
}

/* A new category's embedder and index, for its effective policy (its
 * parent must be set). cache.lock held for writing, or no other thread. */
int engine_cat_setup(struct cache *c, struct cat *cat, const char *snap)
{
	struct policy pol;

	engine_cat_policy(cat, &pol);
	engine_embref_assign(c, cat, &pol);
	return engine_cat_index_new(cat, &pol, snap);
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

	pthread_rwlock_rdlock(&c->lock);
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
	pthread_rwlock_unlock(&c->lock);
	return cat ? 0 : -ENOENT;
}

int cache_category_create(struct cache *c, const char *path, mode_t mode,
			  uid_t uid, gid_t gid)
{
	struct store_category sc = { .path = path, .mode = mode & 07777,
				     .uid = uid, .gid = gid };
	struct cat *parent, *cat = NULL;
	char *pp = engine_cat_parent_path(path);
	int rc;

	if (!pp)
		return -EEXIST;
	pthread_rwlock_wrlock(&c->lock);
	rc = -EEXIST;
	if (engine_cat_find(c, path))
		goto out;
	rc = -ENOENT;
	parent = engine_cat_find(c, pp);
	if (!parent)
		goto out;
	sc.created_ms = clock_wall_ms();
	rc = store_category_create(c->store, path, sc.mode, uid, gid, &sc.id);
	if (rc)
		goto out;
	rc = -ENOMEM;
	cat = engine_cat_new(&sc);
	if (!cat)
		goto undo;
	cat->parent = parent;
	rc = engine_cat_setup(c, cat, NULL);
	if (rc)
		goto undo;
	rc = engine_cat_append(c, cat);
	if (rc)
		goto undo;
	pthread_rwlock_unlock(&c->lock);
	free(pp);
	return 0;
undo:
	store_category_delete(c->store, sc.id);
	engine_cat_free(c, cat);
out:
	pthread_rwlock_unlock(&c->lock);
	free(pp);
	return rc;
}

int cache_category_remove(struct cache *c, const char *path)
{
	struct cat *cat;
	char snap[4096];
	int rc;

	pthread_rwlock_wrlock(&c->lock);
	cat = engine_cat_find(c, path);
	rc = -ENOENT;
	if (!cat)
		goto out;
	rc = -EBUSY;
	if (!cat->parent)
		goto out;
	rc = -ENOTEMPTY;
	if (cat->by_id.len || cat->pyaml)
		goto out;
	rc = -EBUSY;
	if (cat->waiters)
		goto out;
	rc = -ENOTEMPTY;
	for (size_t i = 0; i < c->ncats; i++)
		if (c->cats[i]->parent == cat)
			goto out;
	rc = store_category_delete(c->store, cat->id);
	if (rc)
		goto out;
	engine_cat_snapshot_path(c, cat, snap, sizeof(snap));
	unlink(snap);
	engine_cat_delete(c, cat);
out:
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int cache_category_setattr(struct cache *c, const char *path, int mode,
			   uid_t uid, gid_t gid)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_wrlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat) {
		mode_t nm = mode >= 0 ? (mode_t)mode & 07777 : cat->mode;
		uid_t nu = uid != (uid_t)-1 ? uid : cat->uid;
		gid_t ng = gid != (gid_t)-1 ? gid : cat->gid;

		rc = store_category_setattr(c->store, cat->id, nm, nu, ng);
		if (!rc) {
			cat->mode = nm;
			cat->uid = nu;
			cat->gid = ng;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int cache_category_children(struct cache *c, const char *path,
			    int (*cb)(void *arg, const char *name), void *arg)
{
	struct cat *cat;
	int rc = 0;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (!cat) {
		rc = -ENOENT;
		goto out;
	}
	for (size_t i = 0; i < c->ncats && !rc; i++) {
		if (c->cats[i]->parent != cat)
			continue;
		rc = cb(arg, strrchr(c->cats[i]->path, '/') + 1);
	}
out:
	pthread_rwlock_unlock(&c->lock);
	return rc;
}
