/*
 * cache.c - the semantic cache engine (see cache.h for the contract).
 *
 * Design: the store holds the truth; each category keeps in memory a small
 * record per entry (id, times, counters, exact key) in two hash maps and its
 * vectors in a vindex. Lookups take the cache lock for reading (so categories
 * and policy files cannot change under them), compute the effective policy
 * by walking the category's ancestors, try the exact map, then embed and
 * search. Fills write the store first and only then publish the entry in
 * memory, so nothing is served that is not durable.
 *
 * A background thread merges recent vectors into HNSW, writes hit counters
 * back to the store, deletes expired entries and compacts indexes whose
 * tombstones pass a fraction. Quotas are enforced here on this process's
 * view, except with a store several hosts share (store_keeps_quotas): there
 * the store decides every eviction atomically on everyone's entries, and
 * this side only forgets the victims (quota_apply) — evicting on each
 * host's view would evict twice for one overflow. Index snapshots are written at clean shutdown;
 * at start a snapshot is loaded and entries newer than it are added from the
 * store (entry ids only grow), else the index is rebuilt from the store.
 *
 * Not here: FUSE, sessions and file names (fs/), YAML (policy/).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "embed.h"
#include "hash.h"
#include "semlog.h"
#include "store.h"
#include "textnorm.h"
#include "vindex.h"
#include "clock.h"

#define KEY_SEED_A 0x5e3ac4cef5a11e01ULL
#define KEY_SEED_B 0x0b5e55edca7e9a72ULL
#define CTX_SEED 0xc0a7e47c0a7e47c1ULL
#define MAX_DEPTH 64
#define MERGE_BATCH_MAX 32    /* ~5 ms of inserts at 100k on AVX2 FAISS */
#define LOAD_MERGE_US 1000000 /* merging at start before the mount answers */
#define MERGE_BATCH 4         /* one write-lock hold: ~1 ms per vector at 100k on scalar FAISS */
#define MERGE_TICK_US 80000   /* merging time per category per tick */
#define SWEEP_BATCH 128       /* expired entries retired per category per tick */
/* Lookup latency histogram: exact microseconds below 64, then 8 buckets
 * per power of two up to about 16 s. */
#define LAT_LINEAR 64
#define LAT_SUB 8
#define LAT_BUCKETS (LAT_LINEAR + 18 * LAT_SUB)

struct centry {
	int64_t id;
	int64_t created_ms;
	int64_t last_hit_ms;
	int64_t hits;
	int64_t bytes;
	uint64_t key[2];
	uint64_t ctx_hash;
	bool dirty;               /* hit counters not yet in the store */
	/* Eviction orders: insertion (fifo) and recency (lru). */
	struct centry *fifo_prev, *fifo_next;
	struct centry *lru_prev, *lru_next;
};

struct elist {
	struct centry *head, *tail;
};

struct cat {
	char *path;
	struct cat *parent;
	int64_t id;               /* store id; immutable */
	/* Guarded by cache.lock (write to change). */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int64_t created_ms;
	struct policy_file *pfile;
	char *pyaml;
	size_t pyaml_len;
	int64_t pyaml_mtime_ms;
	char *perrors;
	struct vindex *vi;        /* internally synchronised */
	struct embedder *emb;     /* NULL when it could not be created */
	char *emb_key;            /* what emb was made from (emb_key_of) */
	char *emb_error;          /* why emb is NULL */
	struct vindex_params vp;  /* what vi was built with; cache.lock */
	_Atomic int ef_search;    /* ef_search vi uses now */

	pthread_mutex_t lock;     /* guards the fields below */
	struct u64map by_id;      /* id -> centry */
	struct u64map by_key;     /* key[0] -> centry */
	int64_t bytes;
	struct elist fifo, lru;   /* oldest / least recently used first */
	int64_t *dirty;           /* ids with unsaved hit counters */
	size_t ndirty, dirty_cap;

	_Atomic uint64_t lookups, hits, exact_hits, semantic_hits, misses;
	_Atomic uint64_t fills, expired, evicted, dropped;
	_Atomic uint64_t lat[LAT_BUCKETS];  /* lookup time histogram */
	_Atomic uint64_t lat_sum_us, false_hits, coalesced, not_stored;
	_Atomic bool quota_failing; /* the store's last quota call failed */

	/* Adaptation to the model's load, and learnt thresholds. cat.lock. */
	double adapt_level;       /* 0 normal .. 1 fully adapted */
	bool adapt_high;          /* hysteresis state */
	int64_t adapt_ms;         /* when adapt_level was last moved */
	double learned_floor;     /* threshold floor set by a wrong hit */
	int64_t learned_ms;       /* when; 0 = none */
	/* Break-even window for auto_disable. cat.lock. */
	int64_t ad_start_ms;
	uint64_t ad_lookups0, ad_hits0;
	bool disabled;            /* auto_disable: stopped storing */
	char fill_note[160];      /* why the last fill was not stored */
	/* Misses whose fill others may wait for. cat.lock; pend_cv with it. */
	struct pending *pending;
	pthread_cond_t pend_cv;
	unsigned waiters;
};

/* A miss whose fill is awaited (miss coalescing). */
struct pending {
	int64_t id;
	float *vec;               /* the missed query's vector (NULL: none) */
	int dim;
	uint64_t key[2];
	uint64_t ctx_hash;
	int64_t deadline_ms;
	int64_t entry_id;         /* set when filled */
	bool done;                /* filled or abandoned */
	struct pending *next;
};

struct load_rep {
	char name[POLICY_NAME_MAX];
	double load;
	int64_t at_ms;
	struct load_rep *next;
};

/* Embedders are shared by every category with the same settings (loading
 * a model is slow and its memory large). Guarded by cache.lock. */
struct embref {
	char *key;
	struct embedder *e;
	unsigned refs;
	struct embref *next;
};

struct cache {
	struct cache_options opts;
	char *store_dir;
	struct store *store;
	bool store_quotas;        /* the store keeps quotas; set at open */
	struct embref *embs;      /* cache.lock */
	struct store_report report;

	pthread_rwlock_t lock;    /* guards cats, and what struct cat says */
	struct cat **cats;
	size_t ncats, cats_cap;

	pthread_mutex_t load_mu;  /* guards loads (a leaf lock) */
	struct load_rep *loads;
	_Atomic int64_t next_pending;

	pthread_t maint;
	bool maint_started;
	pthread_mutex_t maint_mu; /* guards stopping */
	pthread_cond_t maint_cv;
	bool stopping;
	bool closing;             /* cache.lock: ignore the store's events */
	_Atomic bool backlog;     /* vectors were left unmerged at the last tick */
};

static int dup_text(const char *s, size_t len, char **text, size_t *out_len);

/* ---- categories ---- */

static struct cat *cat_find(struct cache *c, const char *path)
{
	for (size_t i = 0; i < c->ncats; i++)
		if (!strcmp(c->cats[i]->path, path))
			return c->cats[i];
	return NULL;
}

static char *parent_path(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash || !strcmp(path, "/"))
		return NULL;
	if (slash == path)
		return strdup("/");
	return strndup(path, slash - path);
}

static void cat_free(struct cat *cat)
{
	if (!cat)
		return;
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

/* Free every embedder, referenced or not (at close). */
static void embs_free_all(struct cache *c)
{
	while (c->embs) {
		struct embref *r = c->embs;

		c->embs = r->next;
		embedder_free(r->e);
		free(r->key);
		free(r);
	}
}

static void effective_policy(const struct cat *cat, struct policy *p)
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

/* The identity of the embedder a policy asks for (settings included). */
static char *emb_key_of(const struct policy *p)
{
	char *key = NULL;
	int n;

	if (strcmp(p->embedder, "http"))
		return strdup(p->embedder);
	n = asprintf(&key, "http\x1f%s\x1f%s\x1f%d\x1f%s\x1f%" PRId64 "\x1f%d\x1f%d",
		     p->http_url, p->http_model, p->http_dimensions,
		     p->http_api_key_env, p->http_timeout_ms, p->http_retries,
		     p->http_batch);
	return n < 0 ? NULL : key;
}

/* Find or create the embedder for policy p. cache.lock held for writing
 * (or no other thread running yet). */
static int emb_acquire(struct cache *c, const struct policy *p,
		       struct embedder **out, char **key_out, char *err,
		       size_t errlen)
{
	char *key = emb_key_of(p);
	struct embref *r;
	int rc;

	if (!key)
		return -ENOMEM;
	for (r = c->embs; r; r = r->next)
		if (!strcmp(r->key, key))
			break;
	if (!r) {
		struct embedder *e = NULL;

		rc = embedder_new(p, &e, err, errlen);
		if (rc) {
			free(key);
			return rc;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			embedder_free(e);
			free(key);
			return -ENOMEM;
		}
		r->key = strdup(key);
		r->e = e;
		r->next = c->embs;
		c->embs = r;
		if (!r->key) {
			free(key);
			return -ENOMEM; /* r stays listed, unreferenced: freed at close */
		}
		semlog(SEMLOG_INFO, "embedder '%s' ready (%d dimensions)", e->name, e->dim);
	}
	r->refs++;
	*out = r->e;
	*key_out = key;
	return 0;
}

static void emb_release(struct cache *c, struct embedder *e)
{
	for (struct embref **pp = &c->embs; *pp; pp = &(*pp)->next) {
		struct embref *r = *pp;

		if (r->e != e)
			continue;
		if (--r->refs == 0) {
			*pp = r->next;
			embedder_free(r->e);
			free(r->key);
			free(r);
		}
		return;
	}
}

/* Give cat the embedder its effective policy names (or a reason why not). */
static void cat_set_embedder(struct cache *c, struct cat *cat,
			     const struct policy *p)
{
	char err[512] = "";
	struct embedder *e = NULL;
	char *key = NULL;
	int rc = emb_acquire(c, p, &e, &key, err, sizeof(err));

	if (cat->emb)
		emb_release(c, cat->emb);
	free(cat->emb_key);
	free(cat->emb_error);
	cat->emb = e;
	cat->emb_key = key;
	cat->emb_error = NULL;
	if (rc) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-rc));
		cat->emb_error = strdup(err);
		semlog(SEMLOG_ERR, "category '%s': embedder '%s' unavailable: %s (exact matches still served)",
		       cat->path, p->embedder, err);
	}
}

static void vparams(struct cat *cat, const struct policy *p,
		    struct vindex_params *vp)
{
	vp->dim = cat->emb ? cat->emb->dim : 1;
	vp->m = p->hnsw_m;
	vp->ef_construction = p->hnsw_ef_construction;
	vp->ef_search = p->hnsw_ef_search;
}

static int cats_append(struct cache *c, struct cat *cat)
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

static struct cat *cat_new(const struct store_category *sc)
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

#define ELIST_LINK(l, e, prev, next)                                       \
	do {                                                               \
		(e)->prev = (l)->tail;                                     \
		(e)->next = NULL;                                          \
		if ((l)->tail)                                             \
			(l)->tail->next = (e);                             \
		else                                                       \
			(l)->head = (e);                                   \
		(l)->tail = (e);                                           \
	} while (0)

#define ELIST_UNLINK(l, e, prev, next)                                     \
	do {                                                               \
		if ((e)->prev)                                             \
			(e)->prev->next = (e)->next;                       \
		else                                                       \
			(l)->head = (e)->next;                             \
		if ((e)->next)                                             \
			(e)->next->prev = (e)->prev;                       \
		else                                                       \
			(l)->tail = (e)->prev;                             \
		(e)->prev = (e)->next = NULL;                              \
	} while (0)

/* Publish e in cat's maps; returns the entry it displaced (same exact key),
 * which the caller must retire. Called with cat->lock held. */
static int entry_publish(struct cat *cat, struct centry *e,
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
static void entry_unpublish(struct cat *cat, struct centry *e)
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
static struct centry *centry_from_store(const struct store_entry *se)
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

struct load_ctx {
	struct cache *c;
	struct cat *cat;
	int64_t index_max;        /* ids up to this are in the loaded index */
	float *scratch;           /* one vector, for vindex_get */
	int64_t loaded, stale;
	int rc;
};

static int load_entry(void *arg, const struct store_entry *se, const float *vec,
		      int dim, const char *embedder)
{
	struct load_ctx *lc = arg;
	struct centry *e, *old;

	bool usable = lc->cat->emb && dim == lc->cat->emb->dim &&
		      !strcmp(embedder, lc->cat->emb->name);

	e = centry_from_store(se);
	if (!e) {
		lc->rc = -ENOMEM;
		return 1;
	}
	lc->rc = entry_publish(lc->cat, e, &old);
	if (lc->rc) {
		free(e);
		return 1;
	}
	if (old) /* two rows with one key: the newer wins, as in a fill */
		free(old);
	if (!usable) {
		/* Stored by another embedder: the exact path still serves it;
		 * its vector never enters this index (dimensions never mix). */
		lc->stale++;
	} else if (se->id > lc->index_max ||
		   vindex_get(lc->cat->vi, se->id, lc->scratch) == -ENOENT) {
		/* newer than the snapshot, or missing from it (another host's
		 * fill that was saved before this host's last one) */
		lc->rc = vindex_add(lc->cat->vi, se->id, vec);
		if (lc->rc && lc->rc != -EEXIST)
			return 1;
		lc->rc = 0;
	}
	lc->loaded++;
	return 0;
}

static void snapshot_path(struct cache *c, const struct cat *cat, char *buf,
			  size_t size)
{
	snprintf(buf, size, "%s/index/%" PRId64 ".vx", store_dir(c->store), cat->id);
}

static int cat_load(struct cache *c, struct cat *cat)
{
	struct load_ctx lc = { .c = c, .cat = cat };
	struct vindex_params vp;
	struct policy pol;
	char snap[4096];
	int rc;
	float *scratch;

	effective_policy(cat, &pol);
	cat_set_embedder(c, cat, &pol);
	vparams(cat, &pol, &vp);
	cat->vp = vp;
	cat->ef_search = vp.ef_search;
	snapshot_path(c, cat, snap, sizeof(snap));
	rc = vindex_load(snap, &vp, &cat->vi);
	if (rc == 0) {
		lc.index_max = vindex_max_id(cat->vi);
	} else {
		if (rc != -ENOENT)
			semlog(SEMLOG_WARN, "index snapshot '%s' unusable (%s): rebuilding from the store",
			       snap, strerror(-rc));
		rc = vindex_new(&vp, &cat->vi);
		if (rc)
			return rc;
	}
	scratch = malloc(sizeof(float) * (size_t)vp.dim);
	if (!scratch)
		return -ENOMEM;
	lc.scratch = scratch;
	rc = store_entry_scan(c->store, cat->id, 0, load_entry, &lc);
	free(scratch);
	if (rc < 0)
		return rc;
	if (lc.rc)
		return lc.rc;
	/* Merge for a bounded time only: a host joining a large store (or
	 * one without a usable snapshot) mounts and answers at once, from
	 * the brute-force buffer, while maintenance merges the rest. */
	for (int64_t t0 = clock_mono_us(); vindex_buffered(cat->vi) > 0 &&
	     clock_mono_us() - t0 < LOAD_MERGE_US;)
		if (vindex_merge(cat->vi, 512) <= 0)
			break;
	if (vindex_buffered(cat->vi) > 0)
		semlog(SEMLOG_INFO, "category '%s': %zu vectors left to merge into HNSW in the background",
		       cat->path, vindex_buffered(cat->vi));
	if (lc.stale)
		semlog(SEMLOG_WARN, "category '%s': %" PRId64 " entries were stored by another embedder: served on exact matches only",
		       cat->path, lc.stale);
	return 0;
}

static void cat_set_policy_error(struct cat *cat, const char *msg)
{
	free(cat->perrors);
	cat->perrors = msg ? strdup(msg) : NULL;
}

static int load_policy(struct cache *c, struct cat *cat)
{
	struct policy_error perr;
	char *yaml = NULL;
	size_t len = 0;
	int rc = store_policy_get(c->store, cat->id, &yaml, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = policy_file_parse(yaml, len, cat->path, &cat->pfile, &perr);
	if (rc) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s/policy.yaml:%d:%d: %s (stored policy ignored)\n",
			 strcmp(cat->path, "/") ? cat->path : "", perr.line, perr.column,
			 perr.message);
		semlog(SEMLOG_WARN, "%.*s", (int)strlen(msg) - 1, msg);
		cat_set_policy_error(cat, msg);
		cat->pfile = NULL;
	}
	cat->pyaml = yaml;
	cat->pyaml_len = len;
	cat->pyaml_mtime_ms = clock_wall_ms();
	return 0;
}

static int collect_cat(void *arg, const struct store_category *sc)
{
	struct cache *c = arg;
	struct cat *cat = cat_new(sc);

	if (!cat || cats_append(c, cat)) {
		cat_free(cat);
		return -ENOMEM;
	}
	return 0;
}

static int link_parents(struct cache *c)
{
	for (size_t i = 0; i < c->ncats; i++) {
		char *pp = parent_path(c->cats[i]->path);

		if (!pp)
			continue;
		c->cats[i]->parent = cat_find(c, pp);
		if (!c->cats[i]->parent) {
			semlog(SEMLOG_WARN, "category '%s' has no parent '%s' in the store; it is kept under the root",
			       c->cats[i]->path, pp);
			c->cats[i]->parent = cat_find(c, "/");
		}
		free(pp);
	}
	return 0;
}

/* ---- changes made by other hosts (a shared store) ---- */

static struct centry *entry_take(struct cat *cat, int64_t id);

static void pending_resolve(struct cat *cat, int64_t leader_id,
			    const uint64_t key[2], int64_t entry_id);

static struct cat *cat_find_id(struct cache *c, int64_t id)
{
	for (size_t i = 0; i < c->ncats; i++)
		if (c->cats[i]->id == id)
			return c->cats[i];
	return NULL;
}

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
	e = centry_from_store(se);
	if (!e)
		return;
	pthread_mutex_lock(&cat->lock);
	if (entry_publish(cat, e, &old)) {
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
		pending_resolve(cat, 0, se->key, se->id);
}

/* The store removed an entry (another host did, or a quota the store
 * keeps): forget it here. Idempotent. */
static void entry_forget(struct cat *cat, int64_t id)
{
	struct centry *e = entry_take(cat, id);

	if (e) {
		vindex_remove(cat->vi, id);
		free(e);
	}
}

static void remote_category(struct cache *c, const struct store_category *sc)
{
	struct cat *cat = cat_find_id(c, sc->id);
	struct vindex_params vp;
	struct policy pol;
	char *pp;

	if (cat) {
		cat->mode = sc->mode;
		cat->uid = sc->uid;
		cat->gid = sc->gid;
		return;
	}
	if (cat_find(c, sc->path))
		return;
	pp = parent_path(sc->path);
	cat = cat_new(sc);
	if (!cat || !pp) {
		free(pp);
		cat_free(cat);
		return;
	}
	cat->parent = cat_find(c, pp);
	free(pp);
	if (!cat->parent)
		cat->parent = cat_find(c, "/");
	effective_policy(cat, &pol);
	cat_set_embedder(c, cat, &pol);
	vparams(cat, &pol, &vp);
	cat->vp = vp;
	cat->ef_search = vp.ef_search;
	if (vindex_new(&vp, &cat->vi) || cats_append(c, cat)) {
		if (cat->emb)
			emb_release(c, cat->emb);
		cat_free(cat);
		return;
	}
	semlog(SEMLOG_INFO, "category '%s' created by another host", cat->path);
}

static void remote_category_delete(struct cache *c, int64_t id)
{
	struct cat *cat = cat_find_id(c, id);

	if (!cat || !cat->parent || cat->waiters)
		return;
	for (size_t i = 0; i < c->ncats; i++)
		if (c->cats[i]->parent == cat)
			c->cats[i]->parent = cat->parent;
	for (size_t i = 0; i < c->ncats; i++) {
		if (c->cats[i] == cat) {
			c->cats[i] = c->cats[--c->ncats];
			break;
		}
	}
	semlog(SEMLOG_INFO, "category '%s' removed by another host", cat->path);
	if (cat->emb)
		emb_release(c, cat->emb);
	cat_free(cat);
}

static void remote_policy(struct cat *cat, const char *yaml, size_t len)
{
	struct policy_file *pf = NULL;
	struct policy_error perr;
	char *copy = NULL;

	if (yaml) {
		if (policy_file_parse(yaml, len, cat->path, &pf, &perr)) {
			semlog(SEMLOG_WARN, "category '%s': policy from another host is invalid here (%d:%d: %s); kept the previous one",
			       cat->path, perr.line, perr.column, perr.message);
			return;
		}
		copy = malloc(len + 1);
		if (!copy) {
			policy_file_free(pf);
			return;
		}
		memcpy(copy, yaml, len);
		copy[len] = '\0';
	}
	policy_file_free(cat->pfile);
	free(cat->pyaml);
	cat->pfile = pf;
	cat->pyaml = copy;
	cat->pyaml_len = copy ? len : 0;
	cat->pyaml_mtime_ms = clock_wall_ms();
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
		int64_t *gone = NULL;
		size_t ngone = 0;

		u64map_init(&rs.seen);
		if (store_entry_scan(c->store, rs.cat->id, 0, resync_entry, &rs) >= 0) {
			pthread_mutex_lock(&rs.cat->lock);
			gone = malloc((rs.cat->by_id.len + 1) * sizeof(*gone));
			for (struct centry *e = rs.cat->fifo.head; gone && e; e = e->fifo_next)
				if (!u64map_get(&rs.seen, (uint64_t)e->id))
					gone[ngone++] = e->id;
			pthread_mutex_unlock(&rs.cat->lock);
			for (size_t k = 0; k < ngone; k++)
				entry_forget(rs.cat, gone[k]);
			free(gone);
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
		cat = cat_find_id(c, ev->entry.cat_id);
		if (cat && ev->kind == STORE_EV_ENTRY_PUT)
			remote_put(c, cat, ev);
		else if (cat)
			entry_forget(cat, ev->entry.id);
		break;
	case STORE_EV_CATEGORY_CREATE:
	case STORE_EV_CATEGORY_ATTR:
		remote_category(c, &ev->category);
		break;
	case STORE_EV_CATEGORY_DELETE:
		remote_category_delete(c, ev->category.id);
		break;
	case STORE_EV_POLICY:
		cat = cat_find_id(c, ev->category.id);
		if (cat)
			remote_policy(cat, ev->yaml, ev->yaml_len);
		break;
	case STORE_EV_RESYNC:
		break;
	}
	pthread_rwlock_unlock(&c->lock);
}

int cache_open(const struct cache_options *o, struct cache **out, char *err,
	       size_t errlen)
{
	struct store_options so = { .sync_full = o->sync_full };
	struct cache *c = calloc(1, sizeof(*c));
	pthread_rwlockattr_t ra;
	char path[4096];
	int rc;

	if (!c)
		return -ENOMEM;
	c->opts = *o;
	c->store_dir = strdup(o->store_dir);
	if (!c->store_dir) {
		free(c);
		return -ENOMEM;
	}
	c->opts.store_dir = c->store_dir;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&c->maint_mu, NULL);
	pthread_cond_init(&c->maint_cv, NULL);
	pthread_mutex_init(&c->load_mu, NULL);
	c->next_pending = 1;

	rc = store_open(o->store_dir, &so, &c->store, &c->report, err, errlen);
	if (rc)
		goto fail;
	c->store_quotas = store_keeps_quotas(c->store);
	snprintf(path, sizeof(path), "%s/index", store_dir(c->store));
	if (mkdir(path, 0700) && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create '%s': %s", path, strerror(-rc));
		goto fail;
	}
	{
		struct stat sb;

		/* snapshots are written inside the store, never through a link */
		if (lstat(path, &sb) || !S_ISDIR(sb.st_mode)) {
			rc = -ENOTDIR;
			snprintf(err, errlen, "'%s' is a symlink, not a directory; refusing to use the store (move it away and restart)",
				 path);
			goto fail;
		}
	}
	rc = store_category_list(c->store, collect_cat, c);
	if (rc < 0) {
		snprintf(err, errlen, "cannot list categories: %s", strerror(-rc));
		goto fail;
	}
	link_parents(c);
	for (size_t i = 0; i < c->ncats; i++) {
		rc = load_policy(c, c->cats[i]);
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
	for (size_t i = 0; i < c->ncats; i++)
		cat_free(c->cats[i]);
	free(c->cats);
	store_close(c->store);
	embs_free_all(c);
	free(c->store_dir);
	free(c);
	return rc;
}

/* ---- load adaptation, learnt thresholds ---- */

/* The latest report of model name: 0 and *load, or -ENOENT. */
static int load_get(struct cache *c, const char *name, double *load,
		    int64_t *at_ms)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&c->load_mu);
	for (struct load_rep *r = c->loads; r; r = r->next) {
		if (!strcmp(r->name, name)) {
			*load = r->load;
			*at_ms = r->at_ms;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->load_mu);
	return rc;
}

/*
 * Move cat's adaptation level for the load its model reports, and apply it
 * (with any learnt floor) to p's threshold and ttl. Under load at or above
 * adaptive.high the level climbs toward 1 at adaptive.rate per second; at or
 * below adaptive.low (or with no report, or one older than stale_after) it
 * falls back toward 0; in between it holds (hysteresis). Threshold and ttl
 * move linearly between their policy values and threshold_min / ttl_max.
 * why (may be NULL) says what happened, for .policy and .stats.
 */
static void adapt_policy(struct cache *c, struct cat *cat, struct policy *p,
			 int64_t now, char *why, size_t whysize)
{
	double load = 0, level, tmin;
	int64_t at = 0, age_ms = -1;
	bool have = false, was_high, changed_state = false;
	double base_thr = p->threshold;

	if (p->adaptive_enabled && p->model[0] &&
	    load_get(c, p->model, &load, &at) == 0) {
		age_ms = now - at;
		have = age_ms <= p->adaptive_stale_after * 1000;
	}
	pthread_mutex_lock(&cat->lock);
	if (p->adaptive_enabled) {
		double dt = cat->adapt_ms ? (double)(now - cat->adapt_ms) / 1000.0 : 0;
		double before = cat->adapt_level;

		if (dt < 0)
			dt = 0;
		was_high = cat->adapt_high;
		if (have && load >= p->adaptive_high)
			cat->adapt_high = true;
		else if (!have || load <= p->adaptive_low)
			cat->adapt_high = false;
		changed_state = was_high != cat->adapt_high;
		cat->adapt_level += (cat->adapt_high ? 1 : -1) * p->adaptive_rate * dt;
		if (cat->adapt_level > 1)
			cat->adapt_level = 1;
		if (cat->adapt_level < 0)
			cat->adapt_level = 0;
		cat->adapt_ms = now;
		if (!changed_state && before != cat->adapt_level &&
		    (cat->adapt_level == 1 || cat->adapt_level == 0))
			semlog(SEMLOG_INFO, "category '%s': adaptation %s (model '%s')",
			       cat->path, cat->adapt_level == 1 ? "complete" :
			       "ended, back to the policy's values", p->model);
	} else {
		cat->adapt_level = 0;
		cat->adapt_high = false;
	}
	level = cat->adapt_level;
	if (level > 0) {
		tmin = p->adaptive_threshold_min < p->threshold ?
		       p->adaptive_threshold_min : p->threshold;
		p->threshold -= level * (p->threshold - tmin);
		if (p->ttl > 0) {
			if (p->adaptive_ttl_max == 0)
				p->ttl = 0; /* never expires while adapted */
			else if (p->adaptive_ttl_max > p->ttl)
				p->ttl += (int64_t)(level * (double)(p->adaptive_ttl_max - p->ttl));
		}
	}
	if (cat->learned_ms && p->adaptive_learn_threshold) {
		double age = (double)(now - cat->learned_ms) / 1000.0;
		double decay = (double)p->adaptive_learn_decay;

		if (age >= decay) {
			cat->learned_ms = 0;
		} else {
			double floor = cat->learned_floor -
				       (cat->learned_floor - p->threshold) * age / decay;

			if (floor > p->threshold)
				p->threshold = floor;
		}
	}
	pthread_mutex_unlock(&cat->lock);
	if (changed_state)
		semlog(SEMLOG_INFO, "category '%s': model '%s' load %.2f %s: %s (level %.2f, threshold %.4f, ttl %" PRId64 "s)",
		       cat->path, p->model, load,
		       cat->adapt_high ? "at or above adaptive.high" :
		       have ? "at or below adaptive.low" : "report missing or stale",
		       cat->adapt_high ? "adapting" : "returning to normal",
		       level, p->threshold, p->ttl);
	if (why) {
		if (!p->adaptive_enabled)
			snprintf(why, whysize, "off");
		else if (age_ms < 0)
			snprintf(why, whysize, "level %.2f, no load report for model '%s' (normal)",
				 level, p->model);
		else
			snprintf(why, whysize, "level %.2f, model '%s' load %.2f reported %" PRId64 "s ago%s: %s",
				 level, p->model, load, age_ms / 1000,
				 have ? "" : " (stale, counts as normal)",
				 level > 0 ? (p->threshold < base_thr ? "threshold loosened, ttl lengthened" :
					      "adapting") : "normal");
	}
}

int cache_load_report(struct cache *c, const char *name, double load)
{
	struct load_rep *r;

	if (!(load >= 0 && load <= 1) || !name[0] || strlen(name) >= POLICY_NAME_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->load_mu);
	for (r = c->loads; r; r = r->next)
		if (!strcmp(r->name, name))
			break;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			pthread_mutex_unlock(&c->load_mu);
			return -ENOMEM;
		}
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->next = c->loads;
		c->loads = r;
	}
	r->load = load;
	r->at_ms = clock_wall_ms();
	pthread_mutex_unlock(&c->load_mu);
	semlog(SEMLOG_DEBUG, "model '%s' load %.3f", name, load);
	return 0;
}

int cache_load_text(struct cache *c, const char *name, char **text,
		    size_t *len)
{
	double load;
	int64_t at;
	char buf[128];
	int n;

	if (load_get(c, name, &load, &at))
		return -ENOENT;
	n = snprintf(buf, sizeof(buf), "load: %.4g\nage_s: %" PRId64 "\n", load,
		     (clock_wall_ms() - at) / 1000);
	return dup_text(buf, n, text, len);
}

int cache_load_list(struct cache *c, int (*cb)(void *arg, const char *name),
		    void *arg)
{
	char names[64][POLICY_NAME_MAX];
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&c->load_mu);
	for (struct load_rep *r = c->loads; r && n < 64; r = r->next)
		snprintf(names[n++], POLICY_NAME_MAX, "%s", r->name);
	pthread_mutex_unlock(&c->load_mu);
	for (size_t i = 0; i < n && !rc; i++)
		rc = cb(arg, names[i]);
	return rc;
}

/* Mean lookup cost in microseconds so far. */
static double mean_lookup_us(struct cat *cat)
{
	uint64_t n = cat->lookups;

	return n ? (double)cat->lat_sum_us / (double)n : 0;
}

/*
 * auto_disable: every window, compare the window's hit rate with the
 * break-even hit rate (lookup cost / llm cost); below it, stop storing
 * (and say so), above it, store again.
 */
static void break_even_window(struct cat *cat, const struct policy *p)
{
	int64_t now = clock_wall_ms();
	uint64_t lookups = cat->lookups, hits = cat->hits;

	pthread_mutex_lock(&cat->lock);
	if (!p->auto_disable || !p->llm_cost_ms) {
		if (cat->disabled)
			semlog(SEMLOG_INFO, "category '%s': storing again (auto_disable off)", cat->path);
		cat->disabled = false;
		cat->ad_start_ms = 0;
	} else if (!cat->ad_start_ms) {
		cat->ad_start_ms = now;
		cat->ad_lookups0 = lookups;
		cat->ad_hits0 = hits;
	} else if (now - cat->ad_start_ms >= p->auto_disable * 1000) {
		uint64_t dl = lookups - cat->ad_lookups0, dh = hits - cat->ad_hits0;
		double be = mean_lookup_us(cat) / 1000.0 / p->llm_cost_ms;
		double rate = dl ? (double)dh / (double)dl : 0;
		bool below = dl > 0 && rate < be;

		if (dl > 0 && below != cat->disabled) {
			cat->disabled = below;
			semlog(SEMLOG_WARN, "category '%s': hit rate %.4f %s break-even %.4f over the last %" PRId64 "s: %s",
			       cat->path, rate, below ? "below" : "at or above", be,
			       p->auto_disable, below ? "stops storing (auto_disable)" : "stores again");
		}
		cat->ad_start_ms = now;
		cat->ad_lookups0 = lookups;
		cat->ad_hits0 = hits;
	}
	pthread_mutex_unlock(&cat->lock);
}

/* ---- background maintenance ---- */

static bool over_quota(const struct policy *p, const struct cat *cat);
static void pending_prune(struct cat *cat, int64_t now);
static void quota_apply(struct cache *c, struct cat *cat,
			const struct policy *p, int64_t keep);

static void flush_hits(struct cache *c, struct cat *cat)
{
	struct store_touch *t;
	size_t n = 0;

	pthread_mutex_lock(&cat->lock);
	if (!cat->ndirty) {
		pthread_mutex_unlock(&cat->lock);
		return;
	}
	t = malloc(cat->ndirty * sizeof(*t));
	if (t) {
		for (size_t i = 0; i < cat->ndirty; i++) {
			struct centry *e = u64map_get(&cat->by_id, (uint64_t)cat->dirty[i]);

			if (!e || !e->dirty)
				continue;
			e->dirty = false;
			t[n].id = e->id;
			t[n].last_hit_ms = e->last_hit_ms;
			t[n].hits = e->hits;
			n++;
		}
		cat->ndirty = 0;
	}
	pthread_mutex_unlock(&cat->lock);
	if (n) {
		int rc = store_entry_touch(c->store, t, n);

		if (rc)
			semlog(SEMLOG_WARN, "category '%s': saving hit counters failed: %s",
			       cat->path, strerror(-rc));
	}
	free(t);
}

static bool expired(const struct policy *p, const struct centry *e, int64_t now)
{
	int64_t base;

	if (p->ttl <= 0)
		return false;
	base = e->created_ms;
	if (p->ttl_mode == POLICY_TTL_SLIDING && e->last_hit_ms > base)
		base = e->last_hit_ms;
	return now >= base + p->ttl * 1000;
}

/* Delete an entry everywhere: memory (if still there), index, store. */
static void entry_retire(struct cache *c, struct cat *cat, struct centry *e,
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

/* Take entry id out of cat's maps; the caller owns what is returned
 * (NULL if it was gone). Called without cat->lock. */
static struct centry *entry_take(struct cat *cat, int64_t id)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e)
		entry_unpublish(cat, e);
	pthread_mutex_unlock(&cat->lock);
	return e;
}

/* Take entry id out and retire it everywhere. Returns whether it was there. */
static bool entry_drop(struct cache *c, struct cat *cat, int64_t id,
		       const char *why)
{
	struct centry *e = entry_take(cat, id);

	if (e)
		entry_retire(c, cat, e, why);
	return e != NULL;
}

/* Retire up to SWEEP_BATCH expired entries of cat; true if more are left.
 * Expired entries are never served (expiry is judged at lookup), so this is
 * only garbage collection: it yields between deletions so that lookups and
 * fills waiting for the index or the store are never held up for long. */
static bool sweep_expired(struct cache *c, struct cat *cat)
{
	struct centry *victims[SWEEP_BATCH];
	struct policy pol;
	int64_t now = clock_wall_ms();
	size_t n = 0;

	effective_policy(cat, &pol);
	adapt_policy(c, cat, &pol, now, NULL, 0);
	if (pol.ttl <= 0)
		return false;
	pthread_mutex_lock(&cat->lock);
	for (size_t i = 0; i < cat->by_id.cap && n < SWEEP_BATCH; i++) {
		struct centry *e = cat->by_id.vals[i];

		if (cat->by_id.keys[i] && expired(&pol, e, now))
			victims[n++] = e;
	}
	for (size_t i = 0; i < n; i++)
		entry_unpublish(cat, victims[i]);
	pthread_mutex_unlock(&cat->lock);
	for (size_t i = 0; i < n; i++) {
		entry_retire(c, cat, victims[i], "expired");
		sched_yield();
	}
	cat->expired += n;
	return n == SWEEP_BATCH;
}

/* Larger batches while a backlog is large (FAISS pays a cost per add call
 * that grows with the index), never more than MERGE_BATCH_MAX per hold of
 * the index's write lock. */
static int merge_batch(struct vindex *vi)
{
	size_t n = vindex_buffered(vi) / 64;

	return n < MERGE_BATCH ? MERGE_BATCH : n > MERGE_BATCH_MAX ? MERGE_BATCH_MAX : (int)n;
}

static void maintain(struct cache *c, bool slow)
{
	bool backlog = false;

	pthread_rwlock_rdlock(&c->lock);
	for (size_t i = 0; i < c->ncats; i++) {
		struct cat *cat = c->cats[i];
		size_t tomb, live;

		/* Merge in small batches, releasing the index's write lock
		 * between them (a lookup waits for one batch at most), until
		 * the buffer is empty or this tick's time is used up. */
		for (int64_t t0 = clock_mono_us(); vindex_buffered(cat->vi) > 0 &&
		     clock_mono_us() - t0 < MERGE_TICK_US;)
			if (vindex_merge(cat->vi, merge_batch(cat->vi)) <= 0)
				break;
		backlog |= vindex_buffered(cat->vi) > 0;
		if (!slow)
			continue;
		flush_hits(c, cat);
		backlog |= sweep_expired(c, cat);
		{
			struct policy pol;

			effective_policy(cat, &pol);
			if (over_quota(&pol, cat))
				quota_apply(c, cat, &pol, 0);
			break_even_window(cat, &pol);
			pthread_mutex_lock(&cat->lock);
			pending_prune(cat, clock_wall_ms());
			pthread_mutex_unlock(&cat->lock);
		}
		tomb = vindex_tombstones(cat->vi);
		live = vindex_live(cat->vi);
		if (tomb >= 64 && tomb * 4 > tomb + live) {
			int rc = vindex_compact(cat->vi);

			if (rc)
				semlog(SEMLOG_WARN, "category '%s': compaction failed: %s",
				       cat->path, strerror(-rc));
		}
	}
	pthread_rwlock_unlock(&c->lock);
	c->backlog = backlog;
}

static void *maint_main(void *arg)
{
	struct cache *c = arg;
	unsigned tick = 0;

	pthread_mutex_lock(&c->maint_mu);
	while (!c->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		/* keep merging promptly while fills outpace the merge */
		ts.tv_nsec += (c->backlog ? 2 : 100) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->maint_cv, &c->maint_mu, &ts);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->maint_mu);
		maintain(c, ++tick % 10 == 0);
		pthread_mutex_lock(&c->maint_mu);
	}
	pthread_mutex_unlock(&c->maint_mu);
	return NULL;
}

const char *cache_state_dir(struct cache *c)
{
	return store_dir(c->store);
}

int cache_start(struct cache *c)
{
	int rc = pthread_create(&c->maint, NULL, maint_main, c);

	if (rc)
		return -rc;
	c->maint_started = true;
	rc = store_watch(c->store, on_store_event, c);
	if (rc && rc != -ENOTSUP)
		semlog(SEMLOG_ERR, "cannot follow other hosts' changes: %s", strerror(-rc));
	else if (!rc)
		semlog(SEMLOG_INFO, "following other hosts' changes to the shared store");
	return 0;
}

void cache_close(struct cache *c)
{
	char snap[4096];

	if (!c)
		return;
	pthread_rwlock_wrlock(&c->lock);
	c->closing = true; /* from here on the store's events are ignored */
	pthread_rwlock_unlock(&c->lock);
	if (c->maint_started) {
		pthread_mutex_lock(&c->maint_mu);
		c->stopping = true;
		pthread_cond_signal(&c->maint_cv);
		pthread_mutex_unlock(&c->maint_mu);
		pthread_join(c->maint, NULL);
	}
	for (size_t i = 0; i < c->ncats; i++) {
		struct cat *cat = c->cats[i];
		int rc;

		flush_hits(c, cat);
		while (vindex_buffered(cat->vi) > 0)
			if (vindex_merge(cat->vi, 4096) <= 0)
				break;
		snapshot_path(c, cat, snap, sizeof(snap));
		rc = vindex_save(cat->vi, snap);
		if (rc)
			semlog(SEMLOG_WARN, "saving index snapshot '%s' failed: %s (it will be rebuilt at start)",
			       snap, strerror(-rc));
		cat_free(cat);
	}
	free(c->cats);
	store_close(c->store);
	embs_free_all(c);
	while (c->loads) {
		struct load_rep *r = c->loads;

		c->loads = r->next;
		free(r);
	}
	pthread_mutex_destroy(&c->load_mu);
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->maint_mu);
	pthread_cond_destroy(&c->maint_cv);
	semlog(SEMLOG_INFO, "store '%s' closed cleanly", c->store_dir);
	free(c->store_dir);
	free(c);
}

/* ---- quotas ---- */

static bool over_quota(const struct policy *p, const struct cat *cat)
{
	return (p->quota_entries > 0 && (int64_t)cat->by_id.len > p->quota_entries) ||
	       (p->quota_bytes > 0 && cat->bytes > p->quota_bytes);
}

/* The entry the eviction order gives up first, never keep. cat->lock held. */
static struct centry *pick_victim(struct cat *cat, const struct policy *p,
				  int64_t keep)
{
	struct centry *best = NULL;

	switch (p->eviction) {
	case POLICY_EVICT_FIFO:
		for (best = cat->fifo.head; best && best->id == keep; best = best->fifo_next)
			;
		return best;
	case POLICY_EVICT_LRU:
		for (best = cat->lru.head; best && best->id == keep; best = best->lru_next)
			;
		return best;
	case POLICY_EVICT_LFU:
		/* least hits; ties go to the least recently used */
		for (struct centry *e = cat->lru.head; e; e = e->lru_next)
			if (e->id != keep && (!best || e->hits < best->hits))
				best = e;
		return best;
	}
	return NULL;
}

/*
 * Evict until cat fits its quota (keeping keep, the entry just filled).
 * Removal from FAISS is a tombstone; compaction happens in the background.
 */
static void enforce_quota(struct cache *c, struct cat *cat,
			  const struct policy *p, int64_t keep)
{
	struct centry *victims[64];
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&cat->lock);
		while (n < 64 && over_quota(p, cat)) {
			struct centry *v = pick_victim(cat, p, keep);

			if (!v)
				break;
			entry_unpublish(cat, v);
			victims[n++] = v;
		}
		pthread_mutex_unlock(&cat->lock);
		for (size_t i = 0; i < n; i++)
			entry_retire(c, cat, victims[i], "evicted");
		cat->evicted += n;
	} while (n == 64);
}

#define QUOTA_BATCH 256   /* evictions per call of a store that keeps quotas */

/*
 * Bring cat within p's quota, keeping keep (the entry just filled; 0 =
 * none). A store that keeps quotas decides the evictions itself, once for
 * all hosts, in the order p asks; this host flushes its own hit counters
 * first (so that its hits count), then forgets the victims and keep if
 * another host evicted it meanwhile. Otherwise (the local store) evict on
 * this view. A store error evicts nothing: the entries stay, and the
 * maintenance tick asks again while this view is over quota.
 */
static void quota_apply(struct cache *c, struct cat *cat,
			const struct policy *p, int64_t keep)
{
	struct store_quota q = { .entries = p->quota_entries,
				 .bytes = p->quota_bytes, .keep = keep };
	int64_t victims[QUOTA_BATCH];
	bool keep_gone;
	size_t n;
	int rc;

	if (!c->store_quotas) {
		enforce_quota(c, cat, p, keep);
		return;
	}
	switch (p->eviction) {
	case POLICY_EVICT_FIFO:
		q.order = STORE_EVICT_FIFO;
		break;
	case POLICY_EVICT_LFU:
		q.order = STORE_EVICT_LFU;
		flush_hits(c, cat);
		break;
	case POLICY_EVICT_LRU:
	default:
		q.order = STORE_EVICT_LRU;
		flush_hits(c, cat);
		break;
	}
	do {
		rc = store_quota_enforce(c->store, cat->id, &q, victims,
					 QUOTA_BATCH, &n, &keep_gone);
		if (rc) {
			if (!atomic_exchange(&cat->quota_failing, true))
				semlog(SEMLOG_WARN, "category '%s': quota eviction in the store failed: %s (entries kept here; retried while over quota)",
				       cat->path, strerror(-rc));
			return;
		}
		if (atomic_exchange(&cat->quota_failing, false))
			semlog(SEMLOG_INFO, "category '%s': quota eviction in the store works again",
			       cat->path);
		for (size_t i = 0; i < n; i++)
			entry_forget(cat, victims[i]);
		cat->evicted += n;
		if (keep_gone)
			entry_forget(cat, keep);
	} while (n == QUOTA_BATCH);
}

/* ---- category operations ---- */

int cache_category_stat(struct cache *c, const char *path,
			struct cache_cat_info *info)
{
	struct cat *cat;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
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
	struct vindex_params vp;
	struct policy pol;
	struct cat *parent, *cat = NULL;
	char *pp = parent_path(path);
	int rc;

	if (!pp)
		return -EEXIST;
	pthread_rwlock_wrlock(&c->lock);
	rc = -EEXIST;
	if (cat_find(c, path))
		goto out;
	rc = -ENOENT;
	parent = cat_find(c, pp);
	if (!parent)
		goto out;
	sc.created_ms = clock_wall_ms();
	rc = store_category_create(c->store, path, sc.mode, uid, gid, &sc.id);
	if (rc)
		goto out;
	rc = -ENOMEM;
	cat = cat_new(&sc);
	if (!cat)
		goto undo;
	cat->parent = parent;
	effective_policy(cat, &pol);
	cat_set_embedder(c, cat, &pol);
	vparams(cat, &pol, &vp);
	cat->vp = vp;
	cat->ef_search = vp.ef_search;
	rc = vindex_new(&vp, &cat->vi);
	if (rc)
		goto undo;
	rc = cats_append(c, cat);
	if (rc)
		goto undo;
	pthread_rwlock_unlock(&c->lock);
	free(pp);
	return 0;
undo:
	store_category_delete(c->store, sc.id);
	if (cat && cat->emb)
		emb_release(c, cat->emb);
	cat_free(cat);
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
	cat = cat_find(c, path);
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
	snapshot_path(c, cat, snap, sizeof(snap));
	unlink(snap);
	for (size_t i = 0; i < c->ncats; i++) {
		if (c->cats[i] == cat) {
			c->cats[i] = c->cats[--c->ncats];
			break;
		}
	}
	if (cat->emb)
		emb_release(c, cat->emb);
	cat_free(cat);
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
	cat = cat_find(c, path);
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
	cat = cat_find(c, path);
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

/* ---- lookup latency ---- */

static int lat_bucket(uint64_t us)
{
	int k, b;

	if (us < LAT_LINEAR)
		return (int)us;
	k = 63 - __builtin_clzll(us);             /* 2^k <= us, k >= 6 */
	b = LAT_LINEAR + (k - 6) * LAT_SUB +
	    (int)((us - (1ULL << k)) >> (k - 3)); /* 8 sub-buckets */
	return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

/* Upper bound (µs) of bucket b. */
static uint64_t lat_upper(int b)
{
	int k, sub;

	if (b < LAT_LINEAR)
		return (uint64_t)b;
	k = 6 + (b - LAT_LINEAR) / LAT_SUB;
	sub = (b - LAT_LINEAR) % LAT_SUB;
	return (1ULL << k) + ((uint64_t)(sub + 1) << (k - 3)) - 1;
}

/* q-quantile (0..1) of summed histograms h, or 0 when empty. */
static uint64_t lat_quantile(const uint64_t *h, double q)
{
	uint64_t total = 0, seen = 0, want;

	for (int b = 0; b < LAT_BUCKETS; b++)
		total += h[b];
	if (!total)
		return 0;
	want = (uint64_t)(q * (double)total);
	if (want >= total)
		want = total - 1;
	for (int b = 0; b < LAT_BUCKETS; b++) {
		seen += h[b];
		if (seen > want)
			return lat_upper(b);
	}
	return lat_upper(LAT_BUCKETS - 1);
}

/* ---- lookups and fills ---- */

struct keyed {
	char *norm;
	size_t norm_len;
	uint64_t key[2];
	uint64_t ctx_hash;
	char stackbuf[2048];
};

/* Normalise q and derive its exact key under policy p. */
static int make_key(const struct cache_query *q, const struct policy *p,
		    struct keyed *k)
{
	size_t cap = q->query_len > q->context_len ? q->query_len : q->context_len;

	k->norm = cap <= sizeof(k->stackbuf) ? k->stackbuf : malloc(cap ? cap : 1);
	if (!k->norm)
		return -ENOMEM;
	k->ctx_hash = 0;
	if (q->context && q->context_len && p->context == POLICY_CONTEXT_MATCH) {
		size_t n = textnorm(q->context, q->context_len, k->norm);

		if (n)
			k->ctx_hash = hash64(k->norm, n, CTX_SEED) | 1;
	}
	k->norm_len = textnorm(q->query, q->query_len, k->norm);
	if (!k->norm_len)
		return -EINVAL;
	k->key[0] = hash64(k->norm, k->norm_len, KEY_SEED_A ^ k->ctx_hash);
	k->key[1] = hash64(k->norm, k->norm_len, KEY_SEED_B ^ k->ctx_hash);
	if (!k->key[0])
		k->key[0] = 1;
	return 0;
}

static void keyed_release(struct keyed *k)
{
	if (k->norm && k->norm != k->stackbuf)
		free(k->norm);
	k->norm = NULL;
}

struct accept_ctx {
	struct cat *cat;
	const struct policy *pol;
	uint64_t ctx_hash;
	int64_t now;
};

static bool entry_matches(const struct accept_ctx *ac, const struct centry *e)
{
	if (ac->pol->context == POLICY_CONTEXT_MATCH && e->ctx_hash != ac->ctx_hash)
		return false;
	return !expired(ac->pol, e, ac->now);
}

static bool accept_entry(void *arg, int64_t id)
{
	struct accept_ctx *ac = arg;
	struct centry *e;
	bool ok;

	pthread_mutex_lock(&ac->cat->lock);
	e = u64map_get(&ac->cat->by_id, (uint64_t)id);
	ok = e && entry_matches(ac, e);
	pthread_mutex_unlock(&ac->cat->lock);
	return ok;
}

/* Count a hit on id; returns false if the entry is gone. */
static bool note_hit(struct cat *cat, int64_t id, int64_t now, int64_t *created)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e) {
		e->hits++;
		e->last_hit_ms = now;
		*created = e->created_ms;
		ELIST_UNLINK(&cat->lru, e, lru_prev, lru_next);
		ELIST_LINK(&cat->lru, e, lru_prev, lru_next);
		if (!e->dirty) {
			if (cat->ndirty == cat->dirty_cap) {
				size_t ncap = cat->dirty_cap ? cat->dirty_cap * 2 : 64;
				int64_t *n = realloc(cat->dirty, ncap * sizeof(*n));

				if (n) {
					cat->dirty = n;
					cat->dirty_cap = ncap;
				}
			}
			if (cat->ndirty < cat->dirty_cap) {
				cat->dirty[cat->ndirty++] = e->id;
				e->dirty = true;
			}
		}
	}
	pthread_mutex_unlock(&cat->lock);
	return e != NULL;
}

/* A stored response could not be read back: drop the entry for good. */
static void drop_damaged(struct cache *c, struct cat *cat, int64_t id, int err)
{
	semlog(SEMLOG_ERR, "category '%s': entry %" PRId64 " response unreadable (%s): entry dropped",
	       cat->path, id, strerror(-err));
	entry_drop(c, cat, id, "damaged");
	cat->dropped++;
}

static int serve(struct cache *c, struct cat *cat, int64_t id, int64_t now,
		 struct cache_result *r)
{
	int64_t created = now;
	int rc;

	if (!note_hit(cat, id, now, &created))
		return -ENOENT;
	rc = store_response_read(c->store, id, &r->response, &r->response_len);
	if (rc == -EBADMSG || rc == -ENOENT) {
		drop_damaged(c, cat, id, rc); /* really damaged or gone */
		return rc;
	}
	if (rc) {
		/* the store is unreachable: the entry stays, this is a miss */
		snprintf(r->note, sizeof(r->note), "store unavailable: %s",
			 strerror(-rc));
		return rc;
	}
	r->outcome = CACHE_HIT;
	r->entry_id = id;
	r->age_s = (now - created) / 1000;
	return 0;
}

/* ---- miss coalescing ---- */

#define MAX_WAITERS 48 /* below the FUSE worker threads: fills must get through */

static float dot(const float *a, const float *b, int n)
{
	float s = 0;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Drop resolved or expired pending misses. cat->lock held. */
static void pending_prune(struct cat *cat, int64_t now)
{
	bool woke = false;

	for (struct pending **pp = &cat->pending; *pp;) {
		struct pending *p = *pp;

		if (!p->done && now >= p->deadline_ms) {
			p->done = true;
			woke = true;
		}
		/* keep resolved ones until their deadline: waiters read them */
		if (p->done && now >= p->deadline_ms && !cat->waiters) {
			*pp = p->next;
			free(p->vec);
			free(p);
			continue;
		}
		pp = &p->next;
	}
	if (woke)
		pthread_cond_broadcast(&cat->pend_cv);
}

/*
 * A miss under fill_timeout: if a matching query missed moments ago and
 * its fill has not arrived, make r pending on it (true). Otherwise record r
 * as a miss others may wait on (r->leader_id) and return false.
 */
static bool coalesce(struct cache *c, struct cat *cat, const struct policy *pol,
		     const struct keyed *k, struct cache_result *r, int64_t now)
{
	struct pending *best = NULL, *p;
	float best_score = -2;

	pthread_mutex_lock(&cat->lock);
	pending_prune(cat, now);
	for (p = cat->pending; p; p = p->next) {
		float sc;

		if (p->done || (pol->context == POLICY_CONTEXT_MATCH && p->ctx_hash != k->ctx_hash))
			continue;
		if (p->key[0] == k->key[0] && p->key[1] == k->key[1])
			sc = 1.0f;
		else if (p->vec && r->vec && p->dim == r->dim)
			sc = dot(p->vec, r->vec, r->dim);
		else
			continue;
		if (sc + 1e-6f >= (float)pol->threshold && sc > best_score) {
			best = p;
			best_score = sc;
		}
	}
	if (best && cat->waiters < MAX_WAITERS) {
		r->outcome = CACHE_PENDING;
		r->pending_id = best->id;
		r->score = best_score;
		pthread_mutex_unlock(&cat->lock);
		return true;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		p->id = c->next_pending++;
		p->key[0] = k->key[0];
		p->key[1] = k->key[1];
		p->ctx_hash = k->ctx_hash;
		p->deadline_ms = now + pol->fill_timeout_ms;
		if (r->vec) {
			p->vec = malloc(sizeof(float) * r->dim);
			if (p->vec) {
				memcpy(p->vec, r->vec, sizeof(float) * r->dim);
				p->dim = r->dim;
			}
		}
		p->next = cat->pending;
		cat->pending = p;
		r->leader_id = p->id;
	}
	pthread_mutex_unlock(&cat->lock);
	return false;
}

/* A fill arrived: wake whoever waits on it or on the same exact query. */
static void pending_resolve(struct cat *cat, int64_t leader_id,
			    const uint64_t key[2], int64_t entry_id)
{
	bool woke = false;

	pthread_mutex_lock(&cat->lock);
	for (struct pending *p = cat->pending; p; p = p->next) {
		if (p->done)
			continue;
		if ((leader_id && p->id == leader_id) ||
		    (p->key[0] == key[0] && p->key[1] == key[1])) {
			p->done = true;
			p->entry_id = entry_id;
			woke = true;
		}
	}
	if (woke)
		pthread_cond_broadcast(&cat->pend_cv);
	pthread_mutex_unlock(&cat->lock);
}

int cache_pending_wait(struct cache *c, const char *path,
		       struct cache_result *r)
{
	struct pending *p;
	struct cat *cat;
	int64_t entry = 0, now;
	int rc = 0;

	if (r->outcome != CACHE_PENDING)
		return 0;
	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->lock);
		r->outcome = CACHE_MISS;
		return -ENOENT;
	}
	pthread_mutex_lock(&cat->lock);
	cat->waiters++; /* keeps cat alive: removal refuses while waited on */
	pthread_rwlock_unlock(&c->lock);
	for (;;) {
		struct timespec ts;

		for (p = cat->pending; p && p->id != r->pending_id; p = p->next)
			;
		now = clock_wall_ms();
		if (!p || p->done || now >= p->deadline_ms) {
			entry = p && p->done ? p->entry_id : 0;
			break;
		}
		ts.tv_sec = p->deadline_ms / 1000;
		ts.tv_nsec = (p->deadline_ms % 1000) * 1000000;
		pthread_cond_timedwait(&cat->pend_cv, &cat->lock, &ts);
	}
	pthread_mutex_unlock(&cat->lock);

	pthread_rwlock_rdlock(&c->lock);
	pthread_mutex_lock(&cat->lock);
	cat->waiters--;
	pthread_mutex_unlock(&cat->lock);
	r->outcome = CACHE_MISS;
	if (entry && serve(c, cat, entry, clock_wall_ms(), r) == 0) {
		cat->hits++;
		cat->semantic_hits++;
		cat->coalesced++;
	} else {
		snprintf(r->note, sizeof(r->note), "fill timeout");
		cat->misses++;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int cache_lookup(struct cache *c, const char *path, const struct cache_query *q,
		 struct cache_result *r)
{
	struct accept_ctx ac;
	struct policy pol;
	struct keyed k = { 0 };
	struct cat *cat;
	struct centry *e;
	int64_t hit_id = 0, id;
	float score;
	int rc, n;

	int64_t t0 = clock_mono_us();

	memset(r, 0, sizeof(*r));
	r->outcome = CACHE_MISS;
	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	rc = -ENOENT;
	if (!cat)
		goto out;
	effective_policy(cat, &pol);
	adapt_policy(c, cat, &pol, clock_wall_ms(), NULL, 0);
	r->threshold = (float)pol.threshold;
	rc = -EFBIG;
	if ((int64_t)q->query_len > pol.query_bytes)
		goto out;
	rc = make_key(q, &pol, &k);
	if (rc)
		goto out;
	cat->lookups++;
	if (!pol.cache) {
		snprintf(r->note, sizeof(r->note), "cache disabled by policy");
		cat->misses++;
		goto out;
	}
	ac = (struct accept_ctx){ .cat = cat, .pol = &pol,
				  .ctx_hash = k.ctx_hash, .now = clock_wall_ms() };

	/* Exact fast path: no embedding, no index. */
	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_key, k.key[0]);
	if (e && e->key[1] == k.key[1] && entry_matches(&ac, e))
		hit_id = e->id;
	pthread_mutex_unlock(&cat->lock);
	if (hit_id && serve(c, cat, hit_id, ac.now, r) == 0) {
		r->exact = true;
		r->score = 1.0f;
		cat->hits++;
		cat->exact_hits++;
		goto out;
	}

	if (!cat->emb) {
		snprintf(r->note, sizeof(r->note), "embedder unavailable: %s",
			 cat->emb_error ? cat->emb_error : "unknown");
		cat->misses++;
		rc = 0;
		goto out;
	}
	r->dim = cat->emb->dim;
	r->vec = malloc(sizeof(float) * r->dim);
	rc = -ENOMEM;
	if (!r->vec)
		goto out;
	rc = embedder_embed(cat->emb, q->query, q->query_len, r->vec);
	if (rc) {
		/* a remote embedder is down or slow: answer miss, say why */
		snprintf(r->note, sizeof(r->note), "embedder unavailable: %s",
			 embedder_last_error());
		free(r->vec);
		r->vec = NULL;
		cat->misses++;
		rc = 0;
		goto out;
	}
	if (pol.hnsw_ef_search != cat->ef_search) {
		/* two lookups may both set the same value: harmless */
		cat->ef_search = pol.hnsw_ef_search;
		vindex_set_ef_search(cat->vi, pol.hnsw_ef_search);
	}
	n = vindex_search(cat->vi, r->vec, 1, accept_entry, &ac, &id, &score);
	if (n < 0) {
		rc = n;
		goto out;
	}
	rc = 0;
	if (n == 1) {
		r->score = score;
		if (score + 1e-6f >= (float)pol.threshold &&
		    serve(c, cat, id, ac.now, r) == 0) {
			cat->hits++;
			cat->semantic_hits++;
			goto out;
		}
	}
	if (pol.fill_timeout_ms > 0 && coalesce(c, cat, &pol, &k, r, ac.now))
		goto out; /* pending: counted once resolved */
	cat->misses++;
out:
	if (cat && !rc) {
		uint64_t us = (uint64_t)(clock_mono_us() - t0);

		cat->lat[lat_bucket(us)]++;
		cat->lat_sum_us += us;
	}
	pthread_rwlock_unlock(&c->lock);
	keyed_release(&k);
	if (rc)
		cache_result_release(r);
	return rc;
}

void cache_result_release(struct cache_result *r)
{
	free(r->response);
	free(r->vec);
	r->response = NULL;
	r->vec = NULL;
	r->response_len = 0;
}

int cache_fill(struct cache *c, const char *path, const struct cache_query *q,
	       const struct cache_result *prior, const void *resp,
	       size_t resp_len, int64_t *id_out, bool *stored)
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
	cat = cat_find(c, path);
	rc = -ENOENT;
	if (!cat)
		goto out;
	effective_policy(cat, &pol);
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
	rc = make_key(q, &pol, &k);
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
	rc = entry_publish(cat, e, &old);
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
		entry_retire(c, cat, old, "replaced");
	/* A store that keeps quotas is asked after every fill under a quota:
	 * this view may lag, and it says whether se.id survived. */
	if (over_quota(&pol, cat) ||
	    (c->store_quotas && (pol.quota_entries > 0 || pol.quota_bytes > 0)))
		quota_apply(c, cat, &pol, se.id);
	if (cat->pending)
		pending_resolve(cat, prior ? prior->leader_id : 0, se.key, se.id);
	cat->fills++;
	*id_out = se.id;
	*stored = true;
out:
	pthread_rwlock_unlock(&c->lock);
	if (vec && (!prior || vec != prior->vec))
		free(vec);
	free(e);
	keyed_release(&k);
	return rc;
}

void cache_fill_note(struct cache *c, const char *path, char *buf, size_t size)
{
	struct cat *cat;

	buf[0] = '\0';
	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (cat) {
		pthread_mutex_lock(&cat->lock);
		snprintf(buf, size, "%s", cat->fill_note);
		pthread_mutex_unlock(&cat->lock);
	}
	pthread_rwlock_unlock(&c->lock);
}

int cache_feedback_wrong(struct cache *c, const char *path, int64_t entry_id,
			 float score)
{
	struct policy pol;
	struct cat *cat;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOENT;
	}
	effective_policy(cat, &pol);
	pthread_mutex_lock(&cat->lock);
	if (pol.adaptive_learn_threshold) {
		double floor = score + 0.001;
		double cap = pol.threshold + 0.1;

		if (cap > 1.0)
			cap = 1.0;
		if (floor > cap)
			floor = cap;
		if (floor > pol.threshold) {
			cat->learned_floor = floor;
			cat->learned_ms = clock_wall_ms();
		}
	}
	pthread_mutex_unlock(&cat->lock);
	entry_drop(c, cat, entry_id, "reported wrong");
	cat->false_hits++;
	semlog(SEMLOG_INFO, "category '%s': entry %" PRId64 " (score %.4f) reported wrong: invalidated%s",
	       cat->path, entry_id, score, pol.adaptive_learn_threshold ?
	       ", threshold raised above its score" : "");
	pthread_rwlock_unlock(&c->lock);
	return 0;
}

/* ---- policies ---- */

int cache_policy(struct cache *c, const char *path, struct policy *out)
{
	struct cat *cat;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (cat) {
		effective_policy(cat, out);
		for (int i = 0; i < POLICY_NKEYS; i++)
			out->source[i] = NULL; /* not valid past the lock */
	}
	pthread_rwlock_unlock(&c->lock);
	return cat ? 0 : -ENOENT;
}

static int dup_text(const char *s, size_t len, char **text, size_t *out_len)
{
	*text = malloc(len + 1);
	if (!*text)
		return -ENOMEM;
	memcpy(*text, s, len);
	(*text)[len] = '\0';
	*out_len = len;
	return 0;
}

int cache_policy_get(struct cache *c, const char *path, char **yaml,
		     size_t *len, int64_t *mtime_ms)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (cat && cat->pyaml) {
		rc = dup_text(cat->pyaml, cat->pyaml_len, yaml, len);
		if (mtime_ms)
			*mtime_ms = cat->pyaml_mtime_ms;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

static bool in_subtree(const struct cat *x, const struct cat *top)
{
	for (; x; x = x->parent)
		if (x == top)
			return true;
	return false;
}

/*
 * What installing pf as cat's policy would change in cat's subtree. The
 * index structure (hnsw.m, hnsw.ef_construction) and the embedder are fixed
 * while a category has entries: such a change is refused (purge first), so a
 * mixed index is never built. An empty category gets a new embedder and index
 * (rebuild[i]; the new embedder is acquired here, in newemb[i], so that an
 * unusable one — a missing model — rejects the write). Called with
 * cache.lock held for writing. Returns -EINVAL with msg filled, or 0.
 */
struct restructure {
	bool rebuild;
	struct embedder *emb;      /* acquired when the embedder changes */
	char *emb_key;
};

static void restructure_release(struct cache *c, struct restructure *rs,
				size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (rs[i].emb)
			emb_release(c, rs[i].emb);
		free(rs[i].emb_key);
		rs[i].emb = NULL;
		rs[i].emb_key = NULL;
	}
}

static int check_structure(struct cache *c, struct cat *cat,
			   struct policy_file *pf, struct restructure *rs,
			   char *msg, size_t msize)
{
	struct policy_file *saved = cat->pfile;
	const char *where = strcmp(cat->path, "/") ? cat->path : "";
	int rc = 0;

	cat->pfile = pf;
	for (size_t i = 0; i < c->ncats && !rc; i++) {
		struct cat *x = c->cats[i];
		char why[400], err[400] = "";
		struct policy np;
		char *key;
		bool emb_changes, hnsw_changes;

		if (!in_subtree(x, cat))
			continue;
		effective_policy(x, &np);
		if (policy_check(&np, why, sizeof(why))) {
			snprintf(msg, msize, "%s/policy.yaml: %s\n", where, why);
			rc = -EINVAL;
			break;
		}
		key = emb_key_of(&np);
		if (!key) {
			rc = -ENOMEM;
			break;
		}
		emb_changes = !x->emb_key || strcmp(key, x->emb_key);
		hnsw_changes = np.hnsw_m != x->vp.m ||
			       np.hnsw_ef_construction != x->vp.ef_construction;
		free(key);
		if (!emb_changes && !hnsw_changes)
			continue;
		if (x->by_id.len) {
			snprintf(msg, msize,
				 "%s/policy.yaml: %s cannot change while '%s' has entries (it has %zu; purge it first)\n",
				 where, emb_changes ? "embedder" :
				 "hnsw.m and hnsw.ef_construction", x->path, x->by_id.len);
			rc = -EINVAL;
			break;
		}
		rs[i].rebuild = true;
		if (!emb_changes)
			continue;
		rc = emb_acquire(c, &np, &rs[i].emb, &rs[i].emb_key, err, sizeof(err));
		if (rc) {
			snprintf(msg, msize, "%s/policy.yaml: embedder '%s' unusable: %s\n",
				 where, np.embedder, err[0] ? err : strerror(-rc));
			rc = -EINVAL;
		}
	}
	cat->pfile = saved;
	return rc;
}

static void rebuild_empty(struct cache *c, struct restructure *rs)
{
	for (size_t i = 0; i < c->ncats; i++) {
		struct cat *x = c->cats[i];
		struct vindex_params vp;
		struct vindex *nv;
		struct policy np;

		if (!rs[i].rebuild)
			continue;
		if (rs[i].emb) {
			if (x->emb)
				emb_release(c, x->emb);
			free(x->emb_key);
			free(x->emb_error);
			x->emb = rs[i].emb;
			x->emb_key = rs[i].emb_key;
			x->emb_error = NULL;
			rs[i].emb = NULL;
			rs[i].emb_key = NULL;
		}
		effective_policy(x, &np);
		vparams(x, &np, &vp);
		if (vindex_new(&vp, &nv) == 0) {
			vindex_free(x->vi);
			x->vi = nv;
			x->vp = vp;
			x->ef_search = vp.ef_search;
		}
	}
}

int cache_policy_put(struct cache *c, const char *path, const char *yaml,
		     size_t len)
{
	struct restructure *rs = NULL;
	struct policy_file *pf = NULL;
	struct policy_error perr;
	struct cat *cat;
	char *copy = NULL;
	int rc;

	pthread_rwlock_wrlock(&c->lock);
	cat = cat_find(c, path);
	rc = -ENOENT;
	if (!cat)
		goto out;
	if (yaml) {
		rc = policy_file_parse(yaml, len, cat->path, &pf, &perr);
		if (rc) {
			char msg[512];

			snprintf(msg, sizeof(msg), "%s/policy.yaml:%d:%d: %s\n",
				 strcmp(cat->path, "/") ? cat->path : "", perr.line,
				 perr.column, perr.message);
			semlog(SEMLOG_WARN, "rejected %.*s", (int)strlen(msg) - 1, msg);
			cat_set_policy_error(cat, msg);
			goto out;
		}
		rc = -ENOMEM;
		copy = malloc(len + 1);
		if (!copy)
			goto out;
		memcpy(copy, yaml, len);
		copy[len] = '\0';
	}
	rc = -ENOMEM;
	rs = calloc(c->ncats, sizeof(*rs));
	if (!rs)
		goto out;
	{
		char msg[1024];

		rc = check_structure(c, cat, pf, rs, msg, sizeof(msg));
		if (rc) {
			semlog(SEMLOG_WARN, "rejected %.*s", (int)strlen(msg) - 1, msg);
			cat_set_policy_error(cat, msg);
			goto out;
		}
	}
	rc = store_policy_put(c->store, cat->id, yaml, len);
	if (rc == -ENOENT && !yaml)
		rc = 0; /* removing a policy that was never stored */
	if (rc)
		goto out;
	policy_file_free(cat->pfile);
	free(cat->pyaml);
	cat->pfile = pf;
	cat->pyaml = copy;
	cat->pyaml_len = copy ? len : 0;
	cat->pyaml_mtime_ms = clock_wall_ms();
	cat_set_policy_error(cat, NULL);
	rebuild_empty(c, rs);
	pf = NULL;
	copy = NULL;
	semlog(SEMLOG_INFO, "policy of '%s' %s", cat->path, yaml ? "updated" : "removed");
out:
	pthread_rwlock_unlock(&c->lock);
	if (rs)
		restructure_release(c, rs, c->ncats);
	policy_file_free(pf);
	free(copy);
	free(rs);
	return rc;
}

int cache_policy_text(struct cache *c, const char *path, char **text,
		      size_t *len)
{
	struct policy pol;
	struct cat *cat;
	char buf[8192];
	int rc = -ENOENT, n;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (cat) {
		struct policy eff;
		char why[256], ttl[32];

		effective_policy(cat, &pol);
		n = policy_format(&pol, buf, sizeof(buf));
		if (n >= (int)sizeof(buf))
			n = sizeof(buf) - 1;
		eff = pol;
		adapt_policy(c, cat, &eff, clock_wall_ms(), why, sizeof(why));
		if (n >= 0 && (pol.adaptive_enabled || eff.threshold != pol.threshold)) {
			policy_format_duration(eff.ttl, ttl, sizeof(ttl));
			n += snprintf(buf + n, sizeof(buf) - n,
				      "effective.threshold: %-12.4g     # %s\n"
				      "effective.ttl: %-18s # %s\n",
				      eff.threshold, eff.threshold != pol.threshold &&
				      !pol.adaptive_enabled ? "learnt from wrong-hit feedback" : why,
				      ttl, pol.adaptive_enabled ? "adaptive" : "policy");
			if (n >= (int)sizeof(buf))
				n = sizeof(buf) - 1;
		}
		rc = dup_text(buf, n < 0 ? 0 : n, text, len);
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int cache_policy_errors(struct cache *c, const char *path, char **text,
			size_t *len)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (cat) {
		const char *s = cat->perrors ? cat->perrors : "";

		rc = dup_text(s, strlen(s), text, len);
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

/* ---- entries ---- */

int cache_entries_list(struct cache *c, const char *path,
		       int (*cb)(void *arg, int64_t id), void *arg)
{
	struct cat *cat;
	int64_t *ids = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&cat->lock);
	ids = malloc((cat->by_id.len + 1) * sizeof(*ids));
	if (ids)
		for (struct centry *e = cat->fifo.head; e; e = e->fifo_next)
			ids[n++] = e->id;
	pthread_mutex_unlock(&cat->lock);
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

	effective_policy(cat, &pol);
	adapt_policy(c, cat, &pol, now, NULL, 0);
	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e) {
		memset(info, 0, sizeof(*info));
		info->id = e->id;
		info->created_ms = e->created_ms;
		info->last_hit_ms = e->last_hit_ms;
		info->hits = e->hits;
		info->bytes = e->bytes;
		info->expired = expired(&pol, e, now);
		if (pol.ttl > 0) {
			int64_t base = e->created_ms;

			if (pol.ttl_mode == POLICY_TTL_SLIDING && e->last_hit_ms > base)
				base = e->last_hit_ms;
			info->expires_ms = base + pol.ttl * 1000;
		}
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
	cat = cat_find(c, path);
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
		cat = cat_find(c, path);
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
		return dup_text(buf, n, data, len);
	}
	}
	return -EINVAL;
}

int cache_entry_remove(struct cache *c, const char *path, int64_t id)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (cat && entry_drop(c, cat, id, "invalidated")) {
		semlog(SEMLOG_INFO, "category '%s': entry %" PRId64 " invalidated",
		       cat->path, id);
		rc = 0;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int64_t cache_purge(struct cache *c, const char *path)
{
	struct centry *e;
	struct cat *cat;
	int64_t n = 0;

	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOENT;
	}
	for (;;) {
		pthread_mutex_lock(&cat->lock);
		e = cat->fifo.head;
		if (e)
			entry_unpublish(cat, e);
		pthread_mutex_unlock(&cat->lock);
		if (!e)
			break;
		entry_retire(c, cat, e, "purged");
		n++;
	}
	semlog(SEMLOG_INFO, "category '%s': purged %" PRId64 " entries", cat->path, n);
	pthread_rwlock_unlock(&c->lock);
	return n;
}

/* ---- statistics ---- */

struct counters {
	uint64_t entries, bytes, lookups, hits, exact_hits, semantic_hits;
	uint64_t misses, fills, expired, evicted, dropped;
	uint64_t lat[LAT_BUCKETS];
	uint64_t lat_sum;
};

static void counters_add(struct counters *t, struct cat *cat)
{
	pthread_mutex_lock(&cat->lock);
	t->entries += cat->by_id.len;
	t->bytes += (uint64_t)cat->bytes;
	pthread_mutex_unlock(&cat->lock);
	t->lookups += cat->lookups;
	t->hits += cat->hits;
	t->exact_hits += cat->exact_hits;
	t->semantic_hits += cat->semantic_hits;
	t->misses += cat->misses;
	t->fills += cat->fills;
	t->expired += cat->expired;
	t->evicted += cat->evicted;
	t->dropped += cat->dropped;
	for (int b = 0; b < LAT_BUCKETS; b++)
		t->lat[b] += cat->lat[b];
	t->lat_sum += cat->lat_sum_us;
}

int cache_stats_text(struct cache *c, const char *path, char **text,
		     size_t *len)
{
	struct counters *t = calloc(1, sizeof(*t));
	struct cat *cat;
	char buf[4096];
	int n = 0, rc = 0;
	bool root = !strcmp(path, "/");

	if (!t)
		return -ENOMEM;
	pthread_rwlock_rdlock(&c->lock);
	cat = cat_find(c, path);
	if (!cat) {
		rc = -ENOENT;
	} else if (root) {
		for (size_t i = 0; i < c->ncats; i++)
			counters_add(t, c->cats[i]);
	} else {
		counters_add(t, cat);
	}
	if (!rc)
		n = snprintf(buf, sizeof(buf),
			     "entries: %" PRIu64 "\nbytes: %" PRIu64 "\nlookups: %" PRIu64
			     "\nhits: %" PRIu64 "\nexact_hits: %" PRIu64
			     "\nsemantic_hits: %" PRIu64 "\nmisses: %" PRIu64
			     "\nfills: %" PRIu64 "\nexpired: %" PRIu64 "\nevicted: %" PRIu64
			     "\ndamaged_dropped: %" PRIu64 "\nhit_rate: %.4f"
			     "\nlookup_us_p50: %" PRIu64 "\nlookup_us_p99: %" PRIu64 "\n",
			     t->entries, t->bytes, t->lookups, t->hits, t->exact_hits,
			     t->semantic_hits, t->misses, t->fills, t->expired, t->evicted,
			     t->dropped, t->lookups ? (double)t->hits / t->lookups : 0.0,
			     lat_quantile(t->lat, 0.5), lat_quantile(t->lat, 0.99));
	if (!rc) {
		uint64_t fh = 0, co = 0, ns = 0;

		for (size_t i = 0; i < c->ncats; i++) {
			if (!root && c->cats[i] != cat)
				continue;
			fh += c->cats[i]->false_hits;
			co += c->cats[i]->coalesced;
			ns += c->cats[i]->not_stored;
		}
		n += snprintf(buf + n, sizeof(buf) - n,
			      "false_hits: %" PRIu64 "\ncoalesced_hits: %" PRIu64
			      "\nnot_stored: %" PRIu64 "\n", fh, co, ns);
	}
	if (!rc && !root) {
		struct policy pol;
		char why[256], ttl[32];
		double mean = t->lookups ? (double)t->lat_sum / t->lookups : 0;

		effective_policy(cat, &pol);
		n += snprintf(buf + n, sizeof(buf) - n,
			      "lookup_cost_us: %.1f\nindex_unmerged: %zu\nindex_tombstones: %zu\n",
			      mean, vindex_buffered(cat->vi), vindex_tombstones(cat->vi));
		if (pol.llm_cost_ms > 0) {
			double be = mean / 1000.0 / pol.llm_cost_ms;
			double saved = (double)t->hits * pol.llm_cost_ms - t->lookups * mean / 1000.0;

			n += snprintf(buf + n, sizeof(buf) - n,
				      "llm_cost_ms: %d\nbreak_even_hit_rate: %.6f\n"
				      "time_saved_ms: %.0f\nabove_break_even: %s\n",
				      pol.llm_cost_ms, be, saved,
				      (t->lookups ? (double)t->hits / t->lookups : 0) >= be ? "yes" : "no");
		}
		if (pol.auto_disable)
			n += snprintf(buf + n, sizeof(buf) - n, "auto_disabled: %s\n",
				      cat->disabled ? "yes (stopped storing: hit rate below break-even)" : "no");
		if (pol.adaptive_enabled || cat->learned_ms) {
			struct policy eff = pol;

			adapt_policy(c, cat, &eff, clock_wall_ms(), why, sizeof(why));
			policy_format_duration(eff.ttl, ttl, sizeof(ttl));
			n += snprintf(buf + n, sizeof(buf) - n,
				      "effective_threshold: %.4f\neffective_ttl: %s\nadaptive: %s\n",
				      eff.threshold, ttl, why);
		}
	}
	if (root && !rc)
		n += snprintf(buf + n, sizeof(buf) - n,
			      "categories: %zu\nstore_dropped_at_start: %" PRId64
			      "\nstore_orphans_removed_at_start: %" PRId64
			      "\nstore_db_repaired: %d\nstore_db_salvaged: %" PRId64
			      "\nstore_db_lost: %" PRId64
			      "\nstore_db_categories_recreated: %" PRId64 "\n",
			      c->ncats, c->report.dropped_entries,
			      c->report.orphan_blobs, c->report.db_repaired ? 1 : 0,
			      (int64_t)c->report.db_salvaged, (int64_t)c->report.db_lost,
			      (int64_t)c->report.db_cats_recreated);
	pthread_rwlock_unlock(&c->lock);
	free(t);
	if (rc)
		return rc;
	return dup_text(buf, n, text, len);
}

struct sbuf {
	char *data;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
		char *nd = realloc(b->data, ncap);

		if (!nd) {
			b->oom = true;
			return;
		}
		b->data = nd;
		b->cap = ncap;
	}
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void label_escape(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in && o + 3 < size; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

int cache_metrics_text(struct cache *c, char **text, size_t *len)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} m[] = {
#define M(n, t, h, f) { n, t, h, offsetof(struct counters, f) }
		M("semcache_entries", "gauge", "Entries stored.", entries),
		M("semcache_bytes", "gauge", "Bytes of responses stored.", bytes),
		M("semcache_lookups_total", "counter", "Lookups.", lookups),
		M("semcache_hits_total", "counter", "Lookups answered from the cache.", hits),
		M("semcache_exact_hits_total", "counter", "Hits through the exact fast path.", exact_hits),
		M("semcache_semantic_hits_total", "counter", "Hits through the vector index.", semantic_hits),
		M("semcache_misses_total", "counter", "Lookups not answered.", misses),
		M("semcache_fills_total", "counter", "Responses stored.", fills),
		M("semcache_expired_total", "counter", "Entries removed after their ttl.", expired),
		M("semcache_evicted_total", "counter", "Entries removed by a quota.", evicted),
		M("semcache_damaged_dropped_total", "counter", "Entries dropped for a damaged response.", dropped),
#undef M
	};
	struct sbuf b = { 0 };
	struct counters *t;
	size_t ncats;
	char lbl[1024];

	pthread_rwlock_rdlock(&c->lock);
	ncats = c->ncats;
	t = calloc(ncats ? ncats : 1, sizeof(*t));
	if (!t) {
		pthread_rwlock_unlock(&c->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ncats; i++)
		counters_add(&t[i], c->cats[i]);
	for (size_t k = 0; k < sizeof(m) / sizeof(*m); k++) {
		sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help,
			  m[k].name, m[k].type);
		for (size_t i = 0; i < ncats; i++) {
			label_escape(c->cats[i]->path, lbl, sizeof(lbl));
			sb_printf(&b, "%s{category=\"%s\"} %" PRIu64 "\n", m[k].name, lbl,
				  *(const uint64_t *)((const char *)&t[i] + m[k].off));
		}
	}
	sb_printf(&b, "# HELP semcache_lookup_microseconds Lookup time inside the daemon.\n"
		  "# TYPE semcache_lookup_microseconds gauge\n");
	for (size_t i = 0; i < ncats; i++) {
		label_escape(c->cats[i]->path, lbl, sizeof(lbl));
		sb_printf(&b, "semcache_lookup_microseconds{category=\"%s\",quantile=\"0.5\"} %" PRIu64 "\n",
			  lbl, lat_quantile(t[i].lat, 0.5));
		sb_printf(&b, "semcache_lookup_microseconds{category=\"%s\",quantile=\"0.99\"} %" PRIu64 "\n",
			  lbl, lat_quantile(t[i].lat, 0.99));
	}
	pthread_rwlock_unlock(&c->lock);
	free(t);
	if (b.oom) {
		free(b.data);
		return -ENOMEM;
	}
	*text = b.data ? b.data : strdup("");
	*len = b.len;
	return *text ? 0 : -ENOMEM;
}
