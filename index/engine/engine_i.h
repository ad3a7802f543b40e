/*
 * engine_i.h - private to index/engine/: the structures the engine's files
 * share, their locks, and the helpers one file offers the others.
 *
 * The engine is one struct cache holding a table of categories (struct
 * cat); each category holds its entries' in-memory records (struct centry)
 * in two hash maps and two eviction lists, its vector index, its embedder
 * (shared through struct embref) and its misses awaiting a fill (struct
 * pending). The store holds the truth; what is here is rebuilt from it at
 * open (open.c) and kept in line with other hosts' changes (remote.c).
 *
 * Names: the public API is cache_* (cache.h). A function one file offers
 * the others is engine_<part>_<verb>, declared below under the file that
 * defines it (engine_cat_* in cat.c, engine_entry_* in entry.c, ...);
 * everything else is static in its file.
 *
 * LOCKS, in the order they may be taken (never the other way round):
 *
 *   cache.lock     rwlock, writer-preferring: the category table (cats,
 *                  ncats), every struct cat field marked "cache.lock"
 *                  (policy files, embedder, index pointer, attributes), the
 *                  shared embedders (embs) and closing. Read to use a
 *                  category, write to change what it guards.
 *     -> vindex internal lock (vindex.h): taken inside every vindex_*
 *                  call; vindex_search() calls its accept callback with it
 *                  held, and that callback takes cat.lock.
 *       -> cat.lock  mutex, one per category: its entry maps, lists and
 *                  byte count, the centry fields, hit write-back queue,
 *                  adaptation and break-even state, fill note, pending
 *                  misses (pend_cv waits with it).
 *
 *   cache.load_mu  mutex, a leaf: the load reports; never held while
 *                  taking another lock.
 *   cache.maint_mu mutex, a leaf: stopping, with maint_cv; never held
 *                  while maintenance runs.
 *
 * vindex and store calls are never made while holding cat.lock. Counters
 * that are _Atomic need no lock.
 *
 * Not yet so: slow work still runs under cache.lock, which (being
 * writer-preferring) also holds up every new reader while a writer waits:
 *   held for reading: lookup.c cache_lookup (embedding, the store read of
 *     a hit), fill.c cache_fill (embedding, store put, quota store calls),
 *     pending.c cache_pending_wait (store read), entry.c cache_entry_remove
 *     and cache_purge, adapt.c cache_feedback_wrong (store deletes),
 *     maint.c maintain (merges, hit write-back, expiry deletes, quotas,
 *     vindex_compact), remote.c resync (a store scan of every category);
 *   held for writing: cat.c cache_category_create, _remove, _setattr
 *     (store calls, embedder creation), policy_ops.c cache_policy_put
 *     (parsing, embedder creation, store put), remote.c on_store_event and
 *     resync (embedder creation, policy parsing, store reads).
 * And scans of every entry run under cat.lock: maint.c sweep_expired,
 * quota.c pick_victim (lfu).
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

/* One entry's in-memory record. Every field: its category's cat.lock. */
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

struct cat {
	char *path;               /* immutable */
	struct cat *parent;       /* cache.lock (write to change); NULL: root */
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
	struct vindex *vi;        /* the pointer: cache.lock; the index is
				   * internally synchronised */
	struct embedder *emb;     /* NULL when it could not be created */
	char *emb_key;            /* what emb was made from (engine_embref_key) */
	char *emb_error;          /* why emb is NULL */
	struct vindex_params vp;  /* what vi was built with; cache.lock */
	_Atomic int ef_search;    /* ef_search vi uses now */

	pthread_mutex_t lock;     /* cat.lock: guards the fields below */
	struct u64map by_id;      /* id -> centry */
	struct u64map by_key;     /* key[0] -> centry */
	int64_t bytes;
	struct elist fifo, lru;   /* oldest / least recently used first */
	int64_t *dirty;           /* ids with unsaved hit counters */
	size_t ndirty, dirty_cap;

	/* Counters: atomic, no lock. */
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
	/* Misses whose fill others may wait for. cat.lock; pend_cv with it.
	 * waiters also changes only with cache.lock held for reading, so a
	 * holder of the write lock sees it stable. */
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
	int64_t deadline_ms;
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
 * a model is slow and its memory large). Guarded by cache.lock. */
struct embref {
	char *key;
	struct embedder *e;
	unsigned refs;
	struct embref *next;
};

struct cache {
	/* Set at open, read-only afterwards. */
	struct cache_options opts;
	char *store_dir;
	struct store *store;
	bool store_quotas;        /* the store keeps quotas */
	struct store_report report;

	pthread_rwlock_t lock;    /* cache.lock: see the lock order above */
	struct embref *embs;      /* cache.lock */
	struct cat **cats;        /* cache.lock */
	size_t ncats, cats_cap;   /* cache.lock */
	bool closing;             /* cache.lock: ignore the store's events */

	pthread_mutex_t load_mu;  /* cache.load_mu: guards loads (a leaf) */
	struct load_rep *loads;
	_Atomic int64_t next_pending;

	/* The maintenance thread: started by cache_start, joined at close. */
	pthread_t maint;
	bool maint_started;
	pthread_mutex_t maint_mu; /* cache.maint_mu: guards stopping */
	pthread_cond_t maint_cv;
	bool stopping;
	_Atomic bool backlog;     /* vectors were left unmerged at the last tick */
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

/* The category at path / with store id id, or NULL. cache.lock held. */
struct cat *engine_cat_find(struct cache *c, const char *path);
struct cat *engine_cat_find_id(struct cache *c, int64_t id);
/* The parent path of path (malloc'd), or NULL for "/" (or no memory). */
char *engine_cat_parent_path(const char *path);
/* A new category record for sc, with no index, embedder or parent yet
 * (NULL when out of memory); engine_cat_free() frees it with its entries,
 * index, policy and pending misses, and releases its embedder. */
struct cat *engine_cat_new(const struct store_category *sc);
void engine_cat_free(struct cache *c, struct cat *cat);
/* Give a new cat (parent set) the embedder and index of its effective
 * policy: the index from snapshot snap when that loads (snap may be NULL),
 * else a new empty one. Slow: may create an embedder (a model load) and
 * read a snapshot. cache.lock held for writing, or no other thread. */
int engine_cat_setup(struct cache *c, struct cat *cat, const char *snap);
/* Replace cat's index with the one p asks for (as engine_cat_setup), with
 * cat's embedder; on error cat keeps its index. */
int engine_cat_index_new(struct cat *cat, const struct policy *p,
			 const char *snap);
/* Add cat to the table / take it out and free it. cache.lock held for
 * writing. */
int engine_cat_append(struct cache *c, struct cat *cat);
void engine_cat_delete(struct cache *c, struct cat *cat);
/* cat's effective policy: defaults, then every ancestor's policy file from
 * the root down. cache.lock held (p's sources point into the files). */
void engine_cat_policy(const struct cat *cat, struct policy *p);
/* Where cat's index snapshot lives. */
void engine_cat_snapshot_path(struct cache *c, const struct cat *cat,
			      char *buf, size_t size);

/* ---- embref.c: shared embedders (all under cache.lock for writing) ---- */

/* The identity of the embedder a policy asks for (malloc'd, NULL: ENOMEM). */
char *engine_embref_key(const struct policy *p);
/* Find or create (slow: loads a model) the embedder for p; one reference
 * is taken, and *key_out (malloc'd) says what it was made from. */
int engine_embref_acquire(struct cache *c, const struct policy *p,
			  struct embedder **out, char **key_out, char *err,
			  size_t errlen);
/* Drop one reference to e; the last one frees it. */
void engine_embref_release(struct cache *c, struct embedder *e);
/* Free every embedder, referenced or not (at close). */
void engine_embref_free_all(struct cache *c);
/* Give cat the embedder p names (releasing the one it had), or record
 * why it cannot have one (cat->emb NULL, cat->emb_error set, logged). */
void engine_embref_assign(struct cache *c, struct cat *cat,
			  const struct policy *p);
/* cat's embedder becomes e (the caller's reference passes to cat), made
 * from key (malloc'd, cat owns it); the one it had is released. */
void engine_embref_install(struct cache *c, struct cat *cat,
			   struct embedder *e, char *key);

/* ---- entry.c: entry records in a category's maps ---- */

/* Publish e; *displaced is the entry it replaced (same exact key), which
 * the caller must retire. cat.lock held. */
int engine_entry_publish(struct cat *cat, struct centry *e,
			 struct centry **displaced);
/* Remove e from the maps and lists. cat.lock held. */
void engine_entry_unpublish(struct cat *cat, struct centry *e);
/* A new record for a stored entry (NULL when out of memory). */
struct centry *engine_entry_from_store(const struct store_entry *se);
/* Whether e is expired at now under p (ttl, fixed or sliding). */
bool engine_entry_expired(const struct policy *p, const struct centry *e,
			  int64_t now);
/* Take entry id out of the maps (takes cat.lock); the caller owns it. */
struct centry *engine_entry_take(struct cat *cat, int64_t id);
/* Delete an unpublished e from the index and the store, free it. */
void engine_entry_retire(struct cache *c, struct cat *cat, struct centry *e,
			 const char *why);
/* Take and retire entry id; whether it was there. */
bool engine_entry_drop(struct cache *c, struct cat *cat, int64_t id,
		       const char *why);
/* The store no longer has id: forget it here (maps, index). Idempotent. */
void engine_entry_forget(struct cat *cat, int64_t id);
/* A malloc'd snapshot of cat's entry ids, oldest first, *n of them (NULL
 * when out of memory). Takes cat.lock. */
int64_t *engine_entry_ids(struct cat *cat, size_t *n);

/* ---- lookup.c ---- */

/* Normalise q and derive its exact key under p (release k after). */
int engine_lookup_key(const struct cache_query *q, const struct policy *p,
		      struct keyed *k);
void engine_lookup_key_release(struct keyed *k);
/* Serve entry id as a hit into r (counting the hit on the entry); reads
 * the response from the store. cache.lock held for reading. */
int engine_lookup_serve(struct cache *c, struct cat *cat, int64_t id,
			int64_t now, struct cache_result *r);

/* ---- pending.c: miss coalescing ---- */

/* Drop resolved or expired pending misses. cat.lock held. */
void engine_pending_prune(struct cat *cat, int64_t now);
/* Make miss r pending on a matching earlier miss (true), or record it as
 * one others may wait on (false). Takes cat.lock. */
bool engine_pending_coalesce(struct cache *c, struct cat *cat,
			     const struct policy *pol, const struct keyed *k,
			     struct cache_result *r, int64_t now);
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

bool engine_quota_over(const struct policy *p, const struct cat *cat);
/* Bring cat within p's quota, keeping keep (0 = none). */
void engine_quota_apply(struct cache *c, struct cat *cat,
			const struct policy *p, int64_t keep);

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

/* ---- policy_ops.c ---- */

/* Read cat's stored policy at open (a bad one is kept as text, ignored). */
int engine_policy_load(struct cache *c, struct cat *cat);
/* pf, parsed from yaml (len bytes, malloc'd; NULL: no policy file),
 * becomes cat's policy file, both now owned by cat; the previous ones are
 * freed. cache.lock held for writing (or no other thread). */
void engine_policy_install(struct cat *cat, struct policy_file *pf,
			   char *yaml, size_t len);

/* ---- stats.c: statistics and the text they are returned as ---- */

/* Count one lookup of us microseconds in cat's histogram. */
void engine_lat_record(struct cat *cat, uint64_t us);
/* A malloc'd NUL-terminated copy of len bytes of s. */
int engine_text_dup(const char *s, size_t len, char **text, size_t *out_len);

#endif
