/*
 * open.c - opening and closing the engine: the store, every category's
 * record, policy and index, and the snapshots written at a clean close.
 *
 * At open a category's index snapshot is loaded when it matches the
 * policy's parameters and entries newer than it (entry ids only grow) are
 * added from the store; otherwise the index is rebuilt from the store.
 * Merging into HNSW at open is bounded in time: the rest is merged in the
 * background, served meanwhile from the index's exact buffer. A snapshot
 * is read by a thread of its own while the store's entries are scanned
 * (cat_load_overlapped). Nothing else runs while cache_open() works, and
 * that thread touches only the index it makes, which nothing sees before
 * it is joined, so open takes no locks. At close
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
	int64_t stale;
	int rc;
	/* cat_load_overlapped: usable entries the snapshot should hold */
	int64_t *old_ids;
	size_t nold, cap_old;
	bool full_pass;           /* the second scan checks every entry */
};

/* Whether a stored vector (dim floats by embedder) belongs in core's index. */
static bool usable(const struct catcore *core, int dim, const char *embedder)
{
	return core->emb && dim == core->emb->dim && !strcmp(embedder, core->emb->name);
}

/* Publish a stored entry in cat's maps. */
static int publish(struct cat *cat, const struct store_entry *se)
{
	struct centry *e = engine_entry_from_store(se), *old;
	int rc;

	if (!e)
		return -ENOMEM;
	rc = engine_entry_publish(cat, e, &old);
	if (rc) {
		free(e);
		return rc;
	}
	if (old) /* two rows with one key: the newer wins, as in a fill */
		engine_entry_free(old);
	return 0;
}

static int load_entry(void *arg, const struct store_entry *se, const float *vec,
		      int dim, const char *embedder)
{
	struct load_ctx *lc = arg;
	struct catcore *core = lc->core;

	lc->rc = publish(lc->cat, se);
	if (lc->rc)
		return 1;
	if (!usable(core, dim, embedder)) {
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
	return 0;
}

/* After a category's entries are loaded: merge for a bounded time, log. */
static int cat_load_done(struct cat *cat, int64_t stale)
{
	/* Merge for a bounded time only: a host joining a large store (or
	 * one without a usable snapshot) mounts and answers at once, from
	 * the brute-force buffer, while maintenance merges the rest. */
	engine_maint_merge(cat->core->vi, LOAD_MERGE_US, 512);
	if (vindex_buffered(cat->core->vi) > 0)
		semlog(SEMLOG_INFO, "category '%s': %zu vectors left to merge into HNSW in the background",
		       cat->path, vindex_buffered(cat->core->vi));
	if (stale)
		semlog(SEMLOG_WARN, "category '%s': %" PRId64 " entries were stored by another embedder: served on exact matches only",
		       cat->path, stale);
	return 0;
}

/* The snapshot load that runs while the store is scanned. */
struct snap_job {
	const char *path;
	struct vindex_params vp;
	struct vindex *vi;
	int rc;
};

static void *snap_run(void *arg)
{
	struct snap_job *j = arg;

	j->rc = vindex_load(j->path, &j->vp, &j->vi);
	return NULL;
}

/* Scan callback while the snapshot loads: publish every entry; remember
 * the usable ones the snapshot should hold (id <= index_max), to ask the
 * index about them once it is loaded. */
static int publish_entry(void *arg, const struct store_entry *se, const float *vec,
			 int dim, const char *embedder)
{
	struct load_ctx *lc = arg;
	struct catcore *core = lc->core;

	(void)vec;
	lc->rc = publish(lc->cat, se);
	if (lc->rc)
		return 1;
	if (!usable(core, dim, embedder)) {
		lc->stale++;
	} else if (se->id <= lc->index_max && !lc->full_pass) {
		if (lc->nold == lc->cap_old) {
			size_t cap = lc->cap_old ? lc->cap_old * 2 : 4096;
			int64_t *ids = realloc(lc->old_ids, cap * sizeof(*ids));

			if (ids) {
				lc->old_ids = ids;
				lc->cap_old = cap;
			}
		}
		if (lc->nold < lc->cap_old)
			lc->old_ids[lc->nold++] = se->id;
		else
			lc->full_pass = true; /* no memory: check every entry */
	}
	return 0;
}

/* Second scan callback: add the usable vectors the index lacks. */
static int add_entry(void *arg, const struct store_entry *se, const float *vec,
		     int dim, const char *embedder)
{
	struct load_ctx *lc = arg;
	struct catcore *core = lc->core;

	if (!usable(core, dim, embedder) || vindex_contains(core->vi, se->id))
		return 0;
	lc->rc = vindex_add(core->vi, se->id, vec);
	if (lc->rc && lc->rc != -EEXIST)
		return 1;
	lc->rc = 0;
	return 0;
}

/*
 * Load a category whose snapshot's header says it holds ids up to
 * index_max: the snapshot is read in a thread while this one scans the
 * store and publishes the entries (the two are independent; at 1M entries
 * each takes seconds). Then the vectors the index lacks are added in a
 * second scan: only entries newer than the snapshot when it holds every
 * older usable one (the usual case), else all of them (no usable
 * snapshot, or one that lacks entries: another host's fill saved before
 * this host's last one). The thread touches only its own new index.
 */
static int cat_load_overlapped(struct cache *c, struct cat *cat, const char *snap,
			       int64_t index_max)
{
	struct load_ctx lc = { .c = c, .cat = cat, .core = cat->core,
			       .index_max = index_max };
	struct snap_job j = { .path = snap, .vp = cat->core->vp };
	pthread_t t;
	int rc;

	if (pthread_create(&t, NULL, snap_run, &j)) {
		j.rc = vindex_load(snap, &j.vp, &j.vi); /* in turn, then */
		rc = store_entry_scan(c->store, cat->id, 0, publish_entry, &lc);
	} else {
		rc = store_entry_scan(c->store, cat->id, 0, publish_entry, &lc);
		pthread_join(t, NULL);
	}
	if (!j.rc && vindex_max_id(j.vi) == index_max) {
		vindex_free(cat->core->vi); /* the empty one engine_core_make made */
		cat->core->vi = j.vi;
	} else {
		if (j.rc && j.rc != -ENOENT)
			semlog(SEMLOG_WARN, "index snapshot '%s' unusable (%s): rebuilding from the store",
			       snap, strerror(-j.rc));
		else if (!j.rc)
			semlog(SEMLOG_WARN, "index snapshot '%s' changed while it was read: rebuilding from the store",
			       snap);
		vindex_free(j.vi);
		lc.full_pass = true;
	}
	if (rc >= 0 && !lc.rc) {
		for (size_t i = 0; i < lc.nold && !lc.full_pass; i++)
			lc.full_pass = !vindex_contains(cat->core->vi, lc.old_ids[i]);
		rc = store_entry_scan(c->store, cat->id, lc.full_pass ? 0 : index_max,
				      add_entry, &lc);
	}
	free(lc.old_ids);
	if (rc < 0)
		return rc;
	if (lc.rc)
		return lc.rc;
	return cat_load_done(cat, lc.stale);
}

static int cat_load(struct cache *c, struct cat *cat)
{
	struct load_ctx lc = { .c = c, .cat = cat };
	struct policy pol;
	char snap[4096];
	int64_t index_max;
	int rc;

	engine_cat_snapshot_path(c, cat, snap, sizeof(snap));
	engine_cat_policy(cat, NULL, NULL, &pol);
	index_max = vindex_snapshot_max_id(snap);
	/* with a snapshot and an embedder: an empty index now, the snapshot
	 * read while the store is scanned */
	rc = engine_core_make(c, &pol, cat->path, index_max >= 0 ? NULL : snap, false,
			      &cat->core, NULL, 0);
	if (rc)
		return rc;
	if (index_max >= 0)
		return cat_load_overlapped(c, cat, snap, index_max);
	lc.core = cat->core;
	lc.index_max = vindex_max_id(cat->core->vi); /* 0 for a new index */
	rc = store_entry_scan(c->store, cat->id, 0, load_entry, &lc);
	if (rc < 0)
		return rc;
	if (lc.rc)
		return lc.rc;
	return cat_load_done(cat, lc.stale);
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
