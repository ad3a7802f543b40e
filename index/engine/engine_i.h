/*
 * engine_i.h - private to index/engine/: the structures the engine's files
 * share, their locks, and the helpers one file offers the others.
 *
 * The engine is one struct cache holding a table of categories (struct
 * cat); each category holds its entries' in-memory records (struct centry)
 * in two hash maps and two eviction lists, its misses awaiting a fill
 * (struct pending), and a reference to its core (struct catcore): the
 * embedder and the vector index it searches with. The store holds the
 * truth; what is here is rebuilt from it at open (open.c) and kept in line
 * with other hosts' changes (remote.c).
 *
 * Names: the public API is cache_* (cache.h). A function one file offers
 * the others is engine_<part>_<verb>, declared below under the file that
 * defines it; everything else is static in its file.
 *
 * CONCURRENCY. No lock that other requests need is held across slow work
 * (embedding, a store call — network or fsync —, compaction, parsing,
 * creating an embedder). An operation takes what it needs under a short
 * hold of cache.tree (a reference to its category and to the category's
 * core, and a copy of its effective policy), drops it, does its slow work
 * with no engine lock held, and re-takes a lock only to publish the
 * result, re-checking that the world did not change meanwhile.
 *
 * LOCKS, in the order they may be taken (never the other way round):
 *
 *   cat.admin_mu   mutex, one per category: serialises the writers of
 *                  that category's policy.yaml and attributes (local
 *                  writes and other hosts' changes). Held across a writer's
 *                  slow work (creating an embedder, the store write): only
 *                  another writer of the same category waits for it.
 *     -> cache.tree  rwlock: the category table (cats, by_path, by_id),
 *                  every struct cat field marked "tree" (parent, state,
 *                  attributes, policy file, core pointer) and tree_gen.
 *                  Held only for lookups in the table and for changes of
 *                  it: never across a store call, an embedding, a vindex
 *                  call, an embedder's creation or a parse.
 *       -> cat.lock  mutex (adaptive: a waiter spins briefly before it
 *                  sleeps), one per category: its entry maps, lists and
 *                  byte count, the centry fields, hit write-back queue,
 *                  adaptation and break-even state, fill note, policy
 *                  errors, fills in flight, pending misses (pend_cv waits
 *                  with it).
 *
 *   vindex's own lock (vindex.h) is taken inside vindex_* calls, which are
 *   never made holding cache.tree or cat.lock; vindex_search() calls its
 *   accept callback with it held, and that callback takes cat.lock (so
 *   vindex lock -> cat.lock is the one nesting with it).
 *   cache.emb_mu   mutex, a leaf: the list of shared embedders and their
 *                  reference counts. Never held while an embedder is made.
 *   cache.load_mu  mutex, a leaf: the load reports.
 *   cache.maint_mu mutex, a leaf: stopping, with maint_cv.
 *
 * References: a struct cat lives while the table or an operation holds a
 * reference (refs); a category removed from the table is freed by the last
 * operation using it. A struct catcore is immutable once published and is
 * freed (index and embedder reference) by its last reference, so a lookup
 * never sees an embedder and an index that do not belong together.
 * Counters that are _Atomic need no lock.
 */
#ifndef SEMCACHE_ENGINE_I_H
#define SEMCACHE_ENGINE_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache.h"
#include "hash.h"
#include "policy.h"
#include "store.h"
#include "vindex.h"

struct embedder;

/* Lookup latency histogram: exact microseconds below 64, then 8 buckets
 * per power of two up to about 16 s. */
#define LAT_LINEAR 64
#define LAT_SUB 8
#define LAT_BUCKETS (LAT_LINEAR + 18 * LAT_SUB)

/* Best-score histograms of lookups, hits and misses apart (stats.c):
 * bucket 0 counts lookups whose search had no candidate, 1 scores up to
 * 0.5, then (0.5, 0.6] ... (0.9, 0.95], and the last above 0.95. */
#define SCORE_BUCKETS 9
enum { SCORE_MISS, SCORE_HIT };

#define ENGINE_MAX_DEPTH 32      /* categories below the root, at most */
#define ENGINE_MAX_MODELS 1024   /* load reports kept, at most */

/* One entry's in-memory record. Every field: its category's cat.lock. */
struct centry {
	int64_t id;
	int64_t created_ms;
	int64_t last_hit_ms;
	/* hits = hits_store + own - own_sent: the store's count as last
	 * known (on a shared store the sum over the hosts, from touch
	 * replies and other hosts' hits events), plus the hits made here
	 * that it does not have yet. own counts this process's hits since
	 * it loaded the entry; own_sent is the own count the store holds. */
	int64_t hits;
	int64_t hits_store, own, own_sent;
	int64_t bytes;
	uint64_t key[2];
	uint64_t ctx_hash;        /* 0: stored without a context */
	/* context: similar (ctxsim.c): the context's embedding (dim floats of
	 * the embedder ctx_emb identifies), made at fill or later from the
	 * stored text; NULL with ctx_emb set: that embedder could not embed
	 * it (never a hit under similar). ctx_emb 0: not tried yet. */
	float *ctx_vec;
	uint64_t ctx_emb;
	uid_t uid;                /* who filled it */
	bool dirty;               /* hit counters not yet in the store */
	/* Eviction orders: insertion (fifo) and recency (lru). */
	struct centry *fifo_prev, *fifo_next;
	struct centry *lru_prev, *lru_next;
};

struct elist {
	struct centry *head, *tail;
};

/* Append e to list l through its prev/next fields (cat.lock held). */
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

/* The embedder and index a category searches with. Immutable once
 * published in cat->core; replaced whole when a policy changes the
 * embedder or the HNSW structure; freed by its last reference. */
struct catcore {
	_Atomic unsigned refs;
	struct embedder *emb;     /* a reference from embref.c; NULL: none */
	char *emb_key;            /* what emb was made from (engine_embref_key) */
	char *emb_error;          /* why emb is NULL (or NULL) */
	struct vindex *vi;        /* internally synchronised */
	struct vindex_params vp;  /* what vi was built with */
	_Atomic int ef_search;    /* ef_search vi uses now */
};

enum cat_state {
	CAT_CREATING,             /* mkdir in progress: invisible, name taken */
	CAT_LIVE,
	CAT_REMOVING,             /* rmdir in progress: invisible, name taken */
};

struct cat {
	char *path;               /* immutable */
	int64_t id;               /* store id; set once (0 while creating) */
	_Atomic unsigned refs;    /* the table's and every operation's */
	struct cat *hnext;        /* tree: next in by_path's bucket */
	pthread_mutex_t admin_mu; /* cat.admin_mu, see the lock order */

	/* tree: read under cache.tree, changed under it held for writing. */
	struct cat *parent;       /* NULL: the root */
	enum cat_state state;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int64_t created_ms;
	struct policy_file *pfile;
	char *pyaml;
	size_t pyaml_len;
	int64_t pyaml_mtime_ms;
	struct catcore *core;     /* the table's reference */

	pthread_mutex_t lock;     /* cat.lock: guards the fields below */
	struct u64map by_id;      /* id -> centry */
	struct u64map by_key;     /* key[0] -> centry */
	int64_t bytes;
	int64_t entry_hits;       /* the hits of the entries in by_id */
	struct elist fifo, lru;   /* oldest / least recently used first */
	int64_t *dirty;           /* ids with unsaved hit counters */
	size_t ndirty, dirty_cap;
	char *perrors;            /* why the last policy write was refused */
	unsigned fills_inflight;  /* fills between their check and publish */
	bool removing;            /* rmdir under way: fills refused */
	size_t sweep_pos;         /* where the expiry sweep goes on */
	/* context: similar: ctx_gen counts entries published with a context
	 * but no context vector; ctx_done_gen / ctx_done_emb say that every
	 * entry up to that count has one for that embedder (ctxsim.c). */
	uint64_t ctx_gen, ctx_done_gen, ctx_done_emb;

	/* Counters: atomic, no lock. */
	_Atomic uint64_t lookups, hits, exact_hits, semantic_hits, misses;
	_Atomic uint64_t fills, expired, evicted, dropped;
	_Atomic uint64_t lat[LAT_BUCKETS];  /* lookup time histogram */
	_Atomic uint64_t lat_sum_us, false_hits, coalesced, not_stored;
	_Atomic uint64_t busy;    /* refused: too many waiting on slow work */
	_Atomic uint64_t best[2][SCORE_BUCKETS]; /* [SCORE_MISS|SCORE_HIT] */
	_Atomic int64_t best_sum_micro[2];       /* their scores, x 1e6 */
	_Atomic unsigned slow;    /* requests of this category on slow work */
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
	/* Misses whose fill others may wait for. cat.lock; pend_cv with it
	 * (a CLOCK_MONOTONIC condition: clock_cond_init). */
	struct pending *pending;
	pthread_cond_t pend_cv;
	unsigned waiters;
};

/* A miss whose fill is awaited (miss coalescing). cat.lock. */
struct pending {
	int64_t id;
	float *vec;               /* the missed query's vector (NULL: none) */
	int dim;
	uint64_t key[2];
	uint64_t ctx_hash;
	int64_t deadline_ms;      /* CLOCK_MONOTONIC */
	int64_t entry_id;         /* set when filled */
	bool done;                /* filled or abandoned */
	struct pending *next;
};

/* The latest load report of one model. cache.load_mu. */
struct load_rep {
	char name[POLICY_NAME_MAX];
	double load;
	int64_t at_ms;
	struct load_rep *next;
};

/* Embedders are shared by every category with the same settings (loading
 * a model is slow and its memory large). cache.emb_mu. */
struct embref {
	char *key;
	struct embedder *e;
	unsigned refs;
	struct embref *next;
};

/* The mount owner's grants (cache_options, parsed at open). */
struct trust {
	uid_t owner;
	char **env;               /* variables an api_key_env may name */
	size_t nenv;
	char **urls;              /* URL prefixes */
	size_t nurls;
	char **dirs;              /* model directory prefixes */
	size_t ndirs;
};

struct cache {
	/* Set at open, read-only afterwards. */
	struct cache_options opts;
	char *store_dir;
	struct store *store;
	bool store_quotas;        /* the store keeps quotas */
	struct store_report report;
	struct trust trust;
	unsigned max_slow;        /* requests on slow work at once, in all */
	unsigned max_slow_cat;    /* ... and in one category */

	pthread_rwlock_t tree;    /* cache.tree: see the lock order above */
	struct cat **cats;        /* tree: every category, in any state */
	size_t ncats, cats_cap;   /* tree */
	struct u64map by_path;    /* tree: hash of path -> cat (hnext chain) */
	struct u64map by_id;      /* tree: store id -> cat */
	uint64_t tree_gen;        /* tree: bumped by every change it guards */
	bool closing;             /* tree: ignore the store's events */

	pthread_mutex_t emb_mu;   /* cache.emb_mu: guards embs */
	struct embref *embs;

	pthread_mutex_t load_mu;  /* cache.load_mu: guards loads, nloads */
	struct load_rep *loads;
	size_t nloads;
	_Atomic int64_t next_pending;
	_Atomic unsigned slow;    /* requests on slow work now */

	/* The maintenance thread: started by cache_start, joined at close. */
	pthread_t maint;
	bool maint_started;
	pthread_mutex_t maint_mu; /* cache.maint_mu: guards stopping */
	pthread_cond_t maint_cv;
	bool stopping;
	_Atomic bool backlog;     /* vectors were left unmerged at the last tick */
};

/* Tell the cache's user that the category at path changed by itself
 * (cache_options.changed); no engine lock may be held. */
void engine_changed(struct cache *c, const char *path, bool removed);

/* What an operation on one category holds while it works: references to
 * the category and its core, and a copy of its effective policy (not
 * adapted; sources cleared). Taken by engine_cat_get, given back by
 * engine_cat_put. */
struct catref {
	struct cat *cat;
	struct catcore *core;
	struct policy pol;
	uid_t owner;              /* the category's owner at that moment */
};

/* A query's normalised text and exact key (lookup.c). */
struct keyed {
	char *norm;
	size_t norm_len;
	uint64_t key[2];
	uint64_t ctx_hash;
	char stackbuf[2048];
};

/* ---- cat.c: the category table ---- */

/* The live category at path / with store id id, or NULL. cache.tree
 * held. */
struct cat *engine_cat_find(struct cache *c, const char *path);
struct cat *engine_cat_find_id(struct cache *c, int64_t id);
/* Take references to the live category at path and its core, and its
 * effective policy; -ENOENT if there is none. Takes cache.tree briefly. */
int engine_cat_get(struct cache *c, const char *path, struct catref *r);
/* The same for a category already referenced (cat->refs taken here). */
void engine_cat_ref(struct cache *c, struct cat *cat, struct catref *r);
/* Give back what engine_cat_get took. No lock may be held. */
void engine_cat_put(struct cache *c, struct catref *r);
/* One more / one less reference to cat; the last frees it. */
void engine_cat_hold(struct cat *cat);
void engine_cat_release(struct cache *c, struct cat *cat);
/* References to every live category (malloc'd array, *n of them), for
 * maintenance and resync; give them back with engine_cat_release_all. */
struct cat **engine_cat_all(struct cache *c, size_t *n);
void engine_cat_release_all(struct cache *c, struct cat **cats, size_t n);
/* The parent path of path (malloc'd), or NULL for "/" (or no memory). */
char *engine_cat_parent_path(const char *path);
/* A new category record for sc in state CAT_LIVE with one reference (the
 * table's), no core and no parent (NULL when out of memory). */
struct cat *engine_cat_new(const struct store_category *sc);
/* Add cat to / take it out of the table. cache.tree held for writing
 * (or no other thread). Taking out drops the table's reference. */
int engine_cat_link(struct cache *c, struct cat *cat);
void engine_cat_unlink(struct cache *c, struct cat *cat);
/* cat's effective policy: defaults, then every ancestor's policy file
 * from the root down, with over's file replaced by pf when over is not
 * NULL. cache.tree held (p's sources point into the files). */
void engine_cat_policy(const struct cat *cat, const struct cat *over,
		       const struct policy_file *pf, struct policy *p);
/* Where cat's index snapshot lives. */
void engine_cat_snapshot_path(struct cache *c, const struct cat *cat,
			      char *buf, size_t size);
/* Is cat at or below top? cache.tree held. */
bool engine_cat_in_subtree(const struct cat *cat, const struct cat *top);

/* ---- core.c: a category's embedder and index ---- */

/* A core for policy p: the embedder p names (made if no category shares
 * it yet: slow, no lock may be held) and its index, loaded from snapshot
 * snap when that matches (snap may be NULL), else empty. An embedder that
 * cannot be made fails with its reason in err when strict; otherwise it
 * gives a core without one (emb_error says why; logged for path). */
int engine_core_make(struct cache *c, const struct policy *p,
		     const char *path, const char *snap, bool strict,
		     struct catcore **out, char *err, size_t errlen);
/* A core with the embedder of base and a new empty index for p. */
struct catcore *engine_core_reindex(struct cache *c, const struct catcore *base,
				    const struct policy *p);
void engine_core_hold(struct catcore *core);
/* Drop a reference; the last frees the index and the embedder's
 * reference. Never call it holding cache.tree or cat.lock. */
void engine_core_put(struct cache *c, struct catcore *core);
/* Embed text with core's embedder into out (core->emb->dim floats),
 * L2-normalised; 0 or a negative errno (remote embedders fail). */
int engine_core_embed(const struct catcore *core, const char *text,
		      size_t len, float *out);
/* May this request start slow work (a remote embedding, waiting for a
 * pending fill)? false: too many already wait (counted as busy). */
bool engine_slow_enter(struct cache *c, struct cat *cat);
void engine_slow_exit(struct cache *c, struct cat *cat);

/* ---- embref.c: shared embedders (cache.emb_mu inside) ---- */

/* The identity of the embedder a policy asks for (malloc'd, NULL: ENOMEM). */
char *engine_embref_key(const struct policy *p);
/* Find or create (slow: loads a model; call with no lock held) the
 * embedder for p, after checking it against the mount owner's grants
 * (engine_trust_embedder); one reference is taken. */
int engine_embref_acquire(struct cache *c, const struct policy *p,
			  struct embedder **out, char *err, size_t errlen);
/* One more reference to a listed embedder e (returned). */
struct embedder *engine_embref_hold(struct cache *c, struct embedder *e);
/* Drop one reference to e; the last one frees it. */
void engine_embref_release(struct cache *c, struct embedder *e);
/* Free every embedder, referenced or not (at close). */
void engine_embref_free_all(struct cache *c);

/* ---- trust.c: what the mount owner allows ---- */

/* Parse opts' grants into c->trust. -EINVAL with err for a bad one. */
int engine_trust_init(const struct cache_options *o, struct trust *t,
		      char *err, size_t errlen);
void engine_trust_release(struct trust *t);
/* Is who trusted (NULL, root or the mount owner)? */
bool engine_trust_caller(const struct cache *c, const struct cache_caller *who);
/* Whether an embedder for p may be made at all: an API key variable only
 * from the grants, sent only to granted URLs. -EPERM with err. */
int engine_trust_embedder(const struct cache *c, const struct policy *p,
			  char *err, size_t errlen);
/* Whether an untrusted writer may set what pf sets, given the effective
 * policy eff it leads to: http only to granted URLs, model directories only
 * under granted ones. -EPERM with err. */
int engine_trust_policy(const struct cache *c, const struct policy_file *pf,
			const struct policy *eff, char *err, size_t errlen);

/* ---- entry.c: entry records in a category's maps ---- */

/* Publish e; *displaced is the entry it replaced (same exact key), which
 * the caller must retire. cat.lock held. */
int engine_entry_publish(struct cat *cat, struct centry *e,
			 struct centry **displaced);
/* Remove e from the maps and lists. cat.lock held. */
void engine_entry_unpublish(struct cat *cat, struct centry *e);
/* A new record for a stored entry (NULL when out of memory). */
struct centry *engine_entry_from_store(const struct store_entry *se);
/* When e expires under p (0 = never) / whether it has at now. */
int64_t engine_entry_expires_ms(const struct policy *p, const struct centry *e);
bool engine_entry_expired(const struct policy *p, const struct centry *e,
			  int64_t now);
/* Delete entry id from the store, then (once the store has it gone) from
 * the maps and the index of core. 0, -ENOENT if the category or the
 * store no longer had it (it is forgotten here then), or the store's
 * errno (the entry then stays, still served). */
int engine_entry_delete(struct cache *c, struct cat *cat,
			struct catcore *core, int64_t id, const char *why);
/* The store no longer has id: forget it here (maps, index). Idempotent:
 * true when it was known here. */
bool engine_entry_forget(struct cat *cat, struct catcore *core, int64_t id);
/* Retire entry id of cat if the store agrees it expired under p at now
 * (store_entry_expire): 0 when this call did (counted in cat.expired),
 * -EAGAIN when the store's view has it unexpired, -ENOENT when the store
 * no longer has it (its delete event forgets it here, and counts an
 * expiry once), or the store's errno. No engine lock held. */
int engine_entry_expire(struct cache *c, struct cat *cat,
			struct catcore *core, int64_t id,
			const struct policy *p, int64_t now);
/* The store's view of id's counters after a touch (a reply, or another
 * host's, from the stream): total (hits_store) and last hit, each only
 * moved forward; own_sent (< 0: unknown) the own count the store holds.
 * Takes cat.lock. */
void engine_entry_store_hits(struct cat *cat, int64_t id, int64_t total,
			     int64_t last_hit_ms, int64_t own_sent);
/* A malloc'd snapshot of cat's entry ids, oldest first, *n of them (NULL
 * when out of memory). Takes cat.lock. */
int64_t *engine_entry_ids(struct cat *cat, size_t *n);
/* May who remove / replace entry e of a category owned by owner (e's
 * filler, the category's owner, or trusted)? cat.lock held. */
bool engine_entry_may_change(const struct cache *c, uid_t owner,
			     const struct centry *e,
			     const struct cache_caller *who);

/* Free an entry record (and its context vector). No lock needed: it is
 * in no map. */
void engine_entry_free(struct centry *e);

/* ---- ctxsim.c: context: similar ---- */

/* The identity (never 0) of core's embedder, for centry.ctx_emb. */
uint64_t engine_ctx_emb_id(const struct catcore *core);
/* Embed q's context with ref's embedder into a malloc'd *out (dim floats);
 * a remote embedder only within the slow-work bound. 0, -EBUSY or the
 * embedder's errno (a miss). */
int engine_ctx_embed(struct cache *c, struct catref *ref, const char *ctx,
		     size_t len, float **out);
/* Give every entry of ref's category stored with a context a context
 * vector of ref's embedder, at most a batch per call: texts are read from
 * the store and embedded with no lock held. Until then such an entry
 * never hits under similar. */
void engine_ctx_backfill(struct cache *c, struct catref *ref);
/* Does e's context match a query's context vector qv (NULL: the query
 * has none) under threshold thr? cat.lock held. */
bool engine_ctx_similar(const struct centry *e, const float *qv, int dim,
			uint64_t emb, double thr);
/* The cosine of e's context with qv (1 when neither has one; -2 when
 * they cannot be compared). cat.lock held. */
float engine_ctx_score(const struct centry *e, const float *qv, int dim,
		       uint64_t emb);

/* ---- lookup.c ---- */

/* Normalise q and derive its exact key under p (release k after). */
int engine_lookup_key(const struct cache_query *q, const struct policy *p,
		      struct keyed *k);
void engine_lookup_key_release(struct keyed *k);
/* Serve entry id as a hit into r: reads the response from the store (no
 * lock held), then counts the hit on the entry. */
int engine_lookup_serve(struct cache *c, struct catref *ref, int64_t id,
			int64_t now, struct cache_result *r);
/* The verifier's operating point for p's precision target (p->precision
 * > 0; 0 is unset and always fine): the model p's embedder is judged with
 * (verify-use-lite-v2 for use-lite, else verify-lexical-v2) and its score
 * threshold through verify_operating_point() at the training prior, as
 * semcachefs-eval --pipeline --precision maps it. 0 with *model_name and
 * *thr (either may be NULL), or -ERANGE with msg (may be NULL) naming the
 * best precision the calibration supports. */
int engine_precision_point(const struct policy *p, const char **model_name,
			   double *thr, char *msg, size_t size);

/* ---- pending.c: miss coalescing ---- */

/* Drop resolved or expired pending misses. cat.lock held. */
void engine_pending_prune(struct cat *cat, int64_t now_mono);
/* Make miss r pending on a matching earlier miss (true), or record it as
 * one others may wait on (false). Takes cat.lock. */
bool engine_pending_coalesce(struct cache *c, struct cat *cat,
			     const struct policy *pol, const struct keyed *k,
			     struct cache_result *r);
/* A fill arrived: wake whoever waits on leader_id or on key. Takes
 * cat.lock. */
void engine_pending_resolve(struct cat *cat, int64_t leader_id,
			    const uint64_t key[2], int64_t entry_id);

/* ---- maint.c: background maintenance ---- */

/* Start / stop (and join) the maintenance thread. */
int engine_maint_start(struct cache *c);
void engine_maint_stop(struct cache *c);
/* Write cat's hit counters back to the store (store call without
 * cat.lock). */
void engine_maint_flush_hits(struct cache *c, struct cat *cat);
/* Merge vi's buffered vectors into HNSW, batch at a time (0: sized to the
 * backlog), until none are left or budget_us has passed (< 0: no limit).
 * Each batch holds the index's write lock; none is held between them. */
void engine_maint_merge(struct vindex *vi, int64_t budget_us, int batch);

/* ---- quota.c ---- */

/* Is cat over p's quota? Takes cat.lock. */
bool engine_quota_over(const struct policy *p, struct cat *cat);
/* Bring cat within p's quota, keeping keep (0 = none). */
void engine_quota_apply(struct cache *c, struct catref *ref, int64_t keep);

/* ---- adapt.c: load adaptation, learnt thresholds, break-even ---- */

/* Apply cat's adaptation level (moved for its model's load) and learnt
 * floor to p's threshold and ttl; why (may be NULL) says what happened. */
void engine_adapt_policy(struct cache *c, struct cat *cat, struct policy *p,
			 int64_t now, char *why, size_t whysize);
/* auto_disable: close a break-even window when it is due. */
void engine_adapt_break_even(struct cat *cat, const struct policy *p);

/* ---- remote.c: other hosts' changes ---- */

/* Follow the store's change stream (a store several hosts share). */
void engine_remote_follow(struct cache *c);
/* Bring the category table in line with the store's list (categories
 * created or removed elsewhere). No lock may be held. */
void engine_remote_categories(struct cache *c);

/* ---- policy_ops.c ---- */

/* Read cat's stored policy at open (a bad one is kept as text, ignored). */
int engine_policy_load(struct cache *c, struct cat *cat);
/* Install yaml (len bytes; NULL: remove) as cat's policy, as a write by
 * who (NULL: trusted) or, with remote, as a change another host made to
 * the store (not written back, not refused for existing entries). Parses
 * and checks with no lock held, then installs under cache.tree. */
int engine_policy_set(struct cache *c, struct cat *cat, const char *yaml,
		      size_t len, const struct cache_caller *who, bool remote);

/* ---- stats.c: statistics and the text they are returned as ---- */

/* Count one lookup of us microseconds in cat's histogram. */
void engine_lat_record(struct cat *cat, uint64_t us);
/* Count one answered lookup r in cat's best-score histogram of its kind
 * (a hit's score; a miss's or pending lookup's best candidate, if any). */
void engine_best_record(struct cat *cat, const struct cache_result *r);
/* A malloc'd NUL-terminated copy of len bytes of s. */
int engine_text_dup(const char *s, size_t len, char **text, size_t *out_len);

#endif
