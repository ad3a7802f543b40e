/*
 * open.c - opening and closing the engine: the store, every category's
 * record, policy and index, and the snapshots written at a clean close.
 *
 * At open a category's index snapshot is loaded when it matches the
 * policy's parameters and entries newer than it (entry ids only grow) are
 * added from the store; otherwise the index is rebuilt from the store.
 * Merging into HNSW at open is bounded in time: the rest is merged in the
 * background, served meanwhile from the index's exact buffer. Nothing else
 * runs while cache_open() works, so it takes no locks. At close
 * maintenance and the store's events are stopped, hit counters written
 * back, indexes merged and saved; by then no request is running (the FUSE
 * loop has ended).
 *
 * Not here: the maintenance thread (maint.c), following other hosts
 * (remote.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

#define LOAD_MERGE_US 1000000 /* merging at start before the mount answers */

struct load_ctx {
	struct cache *c;
	struct cat *cat;
	struct catcore *core;
	int64_t index_max;        /* ids up to this are in the loaded index */
	int64_t loaded, stale;
	int rc;
};

static int load_entry(void *arg, const struct store_entry *se, const float *vec,
		      int dim, const char *embedder)
{
	struct load_ctx *lc = arg;
	struct catcore *core = lc->core;
	struct centry *e, *old;
	bool usable = core->emb && dim == core->emb->dim &&
		      !strcmp(embedder, core->emb->name);

	e = engine_entry_from_store(se);
	if (!e) {
		lc->rc = -ENOMEM;
		return 1;
	}
	lc->rc = engine_entry_publish(lc->cat, e, &old);
	if (lc->rc) {
		free(e);
		return 1;
	}
	if (old) /* two rows with one key: the newer wins, as in a fill */
		engine_entry_free(old);
	if (!usable) {
		/* Stored by another embedder: the exact path still serves it;
		 * its vector never enters this index (dimensions never mix). */
		lc->stale++;
	} else if (se->id > lc->index_max || !vindex_contains(core->vi, se->id)) {
		/* newer than the snapshot, or missing from it (another host's
		 * fill that was saved before this host's last one) */
		lc->rc = vindex_add(core->vi, se->id, vec);
		if (lc->rc && lc->rc != -EEXIST)
			return 1;
		lc->rc = 0;
	}
	lc->loaded++;
	return 0;
}

static int cat_load(struct cache *c, struct cat *cat)
{
	struct load_ctx lc = { .c = c, .cat = cat };
	struct policy pol;
	char snap[4096];
	int rc;

	engine_cat_snapshot_path(c, cat, snap, sizeof(snap));
	engine_cat_policy(cat, NULL, NULL, &pol);
	rc = engine_core_make(c, &pol, cat->path, snap, false, &cat->core, NULL, 0);
	if (rc)
		return rc;
	lc.core = cat->core;
	lc.index_max = vindex_max_id(cat->core->vi); /* 0 for a new index */
	rc = store_entry_scan(c->store, cat->id, 0, load_entry, &lc);
	if (rc < 0)
		return rc;
	if (lc.rc)
		return lc.rc;
	/* Merge for a bounded time only: a host joining a large store (or
	 * one without a usable snapshot) mounts and answers at once, from
	 * the brute-force buffer, while maintenance merges the rest. */
	engine_maint_merge(cat->core->vi, LOAD_MERGE_US, 512);
	if (vindex_buffered(cat->core->vi) > 0)
		semlog(SEMLOG_INFO, "category '%s': %zu vectors left to merge into HNSW in the background",
		       cat->path, vindex_buffered(cat->core->vi));
	if (lc.stale)
		semlog(SEMLOG_WARN, "category '%s': %" PRId64 " entries were stored by another embedder: served on exact matches only",
		       cat->path, lc.stale);
	return 0;
}

static int collect_cat(void *arg, const struct store_category *sc)
{
	struct cache *c = arg;
	struct cat *cat = engine_cat_new(sc);

	if (!cat || engine_cat_link(c, cat)) {
		engine_cat_release(c, cat);
		return -ENOMEM;
	}
	return 0;
}

static void link_parents(struct cache *c)
{
	for (size_t i = 0; i < c->ncats; i++) {
		char *pp = engine_cat_parent_path(c->cats[i]->path);

		if (!pp)
			continue;
		c->cats[i]->parent = engine_cat_find(c, pp);
		if (!c->cats[i]->parent) {
			semlog(SEMLOG_WARN, "category '%s' has no parent '%s' in the store; it is kept under the root",
			       c->cats[i]->path, pp);
			c->cats[i]->parent = engine_cat_find(c, "/");
		}
		free(pp);
	}
}

/* Free what open made, in reverse (c->store may be NULL). */
static void cache_free(struct cache *c)
{
	while (c->ncats) {
		struct cat *cat = c->cats[c->ncats - 1];

		engine_cat_unlink(c, cat);
		engine_cat_release(c, cat);
	}
	free(c->cats);
	u64map_release(&c->by_path);
	u64map_release(&c->by_id);
	store_close(c->store);
	engine_embref_free_all(c);
	engine_trust_release(&c->trust);
	while (c->loads) {
		struct load_rep *r = c->loads;

		c->loads = r->next;
		free(r);
	}
	pthread_mutex_destroy(&c->load_mu);
	pthread_mutex_destroy(&c->emb_mu);
	pthread_rwlock_destroy(&c->tree);
	pthread_mutex_destroy(&c->maint_mu);
	pthread_cond_destroy(&c->maint_cv);
	free(c->store_dir);
	free(c);
}

/* The index directory inside the store: made 0700, never through a link. */
static int index_dir(struct cache *c, char *err, size_t errlen)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/index", store_dir(c->store));
	if (mkdir(path, 0700) && errno != EEXIST) {
		int rc = -errno;

		snprintf(err, errlen, "cannot create '%s': %s", path, strerror(-rc));
		return rc;
	}
	if (lstat(path, &sb) || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "'%s' is a symlink, not a directory; refusing to use the store (move it away and restart)",
			 path);
		return -ENOTDIR;
	}
	return 0;
}

int cache_open(const struct cache_options *o, struct cache **out, char *err,
	       size_t errlen)
{
	struct store_options so = { .sync_full = o->sync_full,
				    .redis_password = o->redis_password,
				    .redis_tls_ca = o->redis_tls_ca,
				    .redis_tls_cert = o->redis_tls_cert,
				    .redis_tls_key = o->redis_tls_key,
				    .redis_tls_sni = o->redis_tls_sni,
				    .redis_pool = o->redis_pool,
				    .redis_timeout_ms = o->redis_timeout_ms };
	struct cache *c = calloc(1, sizeof(*c));
	pthread_rwlockattr_t ra;
	int rc;

	if (!c)
		return -ENOMEM;
	c->opts = *o;
	c->store_dir = strdup(o->store_dir);
	pthread_rwlockattr_init(&ra);
	/* writers hold it for microseconds, never across slow work: they
	 * go first so that a stream of lookups cannot starve a mkdir */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->tree, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&c->emb_mu, NULL);
	pthread_mutex_init(&c->maint_mu, NULL);
	clock_cond_init(&c->maint_cv);
	pthread_mutex_init(&c->load_mu, NULL);
	u64map_init(&c->by_path);
	u64map_init(&c->by_id);
	c->next_pending = 1;
	c->max_slow = o->max_slow ? o->max_slow : 40;
	c->max_slow_cat = c->max_slow > 3 ? c->max_slow * 2 / 3 : c->max_slow;
	if (!c->store_dir) {
		rc = -ENOMEM;
		goto fail;
	}
	c->opts.store_dir = c->store_dir;
	rc = engine_trust_init(&c->opts, &c->trust, err, errlen); /* copies o's grants */
	c->opts.embed_env = c->opts.embed_urls = c->opts.model_dirs = NULL;
	if (rc)
		goto fail;
	rc = store_open(o->store_dir, &so, &c->store, &c->report, err, errlen);
	if (rc)
		goto fail;
	c->store_quotas = store_keeps_quotas(c->store);
	rc = index_dir(c, err, errlen);
	if (rc)
		goto fail;
	rc = store_category_list(c->store, collect_cat, c);
	if (rc < 0) {
		snprintf(err, errlen, "cannot list categories: %s", strerror(-rc));
		goto fail;
	}
	link_parents(c);
	for (size_t i = 0; i < c->ncats; i++) {
		rc = engine_policy_load(c, c->cats[i]);
		if (rc) {
			snprintf(err, errlen, "cannot read the policy of '%s': %s",
				 c->cats[i]->path, strerror(-rc));
			goto fail;
		}
	}
	for (size_t i = 0; i < c->ncats; i++) {
		rc = cat_load(c, c->cats[i]);
		if (rc) {
			snprintf(err, errlen, "cannot load category '%s': %s",
				 c->cats[i]->path, strerror(-rc));
			goto fail;
		}
	}
	if (c->report.unclean || c->report.orphan_blobs || c->report.dropped_entries)
		semlog(SEMLOG_WARN, "store '%s': previous run did not close cleanly; removed %" PRId64
		       " orphan blobs, dropped %" PRId64 " entries without a response",
		       c->store_dir, c->report.orphan_blobs, c->report.dropped_entries);
	semlog(SEMLOG_INFO, "store '%s' open: %zu categories, %" PRId64 " entries",
	       c->store_dir, c->ncats, c->report.entries);
	*out = c;
	return 0;
fail:
	cache_free(c);
	return rc;
}

const char *cache_state_dir(struct cache *c)
{
	return store_dir(c->store);
}

int cache_start(struct cache *c)
{
	int rc = engine_maint_start(c);

	if (rc)
		return rc;
	engine_remote_follow(c);
	return 0;
}

void cache_close(struct cache *c)
{
	char snap[4096];

	if (!c)
		return;
	pthread_rwlock_wrlock(&c->tree);
	c->closing = true; /* from here on the store's events are ignored */
	pthread_rwlock_unlock(&c->tree);
	engine_maint_stop(c);
	for (size_t i = 0; i < c->ncats; i++) {
		struct cat *cat = c->cats[i];
		struct vindex *vi = cat->core ? cat->core->vi : NULL;
		int rc;

		if (cat->state != CAT_LIVE || !vi)
			continue;
		engine_maint_flush_hits(c, cat);
		engine_maint_merge(vi, -1, 4096);
		engine_cat_snapshot_path(c, cat, snap, sizeof(snap));
		rc = vindex_save(vi, snap);
		if (rc)
			semlog(SEMLOG_WARN, "saving index snapshot '%s' failed: %s (it will be rebuilt at start)",
			       snap, strerror(-rc));
	}
	semlog(SEMLOG_INFO, "store '%s' closed cleanly", c->store_dir);
	cache_free(c);
}
