/*
 * redis_i.h - private to index/store/redis/: the Redis backend's shared
 * state, key names and the helpers its files call across each other.
 *
 * The backend (store_redis_ops) is shared by every host that mounts the
 * same "redis://HOST:PORT/DB", with a change stream so that each host sees
 * the others' changes. Keys: every key of category C carries the hash tag
 * {cC}, so a category lives in one Redis Cluster slot and each change to it
 * is one Lua script (scripts.c). Global keys carry {semcache}:
 *   {semcache}:cats      hash  cat id -> "MODE UID GID CREATED_MS PATH"
 *   {semcache}:paths     hash  path -> cat id (makes create -EEXIST atomic)
 *   {semcache}:next_cat  INCR counter of category ids (never reused)
 *   {semcache}:stream    stream of category create/delete/attr events
 *   {semcache}:evseq     count of events ever added to that stream
 *   {cC}:alive           exists while the category does (puts check it)
 *   {cC}:next            INCR counter of the category's entry sequence
 *   {cC}:ids             sorted set of live entry sequences (score = seq)
 *   {cC}:e:SEQ           hash: m (packed meta), h (hits), t (last hit),
 *                        q (query), c (context, absent = none), v (vector,
 *                        host float bytes), em (embedder), r (response)
 *   {cC}:policy          string: the raw policy.yaml
 *   {cC}:stream          stream of entry put/delete and policy events
 *   {cC}:evseq           count of events ever added to that stream
 *   {cC}:lru             sorted set of live sequences by last use (ms of
 *                        the last hit known here, else of the fill)
 *   {cC}:lfu             sorted set by hits + last use / 2^42 (fewest
 *                        hits first, ties to the least recent)
 *   {cC}:bytes           total response bytes of live entries
 *   {cC}:qok             exists once lru, lfu and bytes cover every entry
 *   {cC}:evicted         count of entries ever evicted for quotas
 * An entry id is SEQ << 24 | C: unique for the store's life without a
 * global counter, decodable to its category without a lookup, and
 * increasing within a category in commit order (the per-category counter
 * is bumped inside the put script), so store_entry_scan(min_id) catches up
 * exactly. Hence at most 2^24 - 1 categories over the store's life (then
 * create fails with -ENOSPC) and 2^39 entries per category.
 *
 * The parts:
 *   rconn_i.h   the connection and command layer (args, conn, router)
 *   call.c      a store command: run under mu, error replies as errnos
 *   scripts.c   the Lua scripts (every change is one script in one slot)
 *   category.c  categories and policies
 *   entry.c     entries: put, delete, touch, scan, text, response
 *   quota.c     evictions decided in Redis
 *   watch.c     the change-stream watcher thread
 *   open.c      redis://HOST:PORT/DB, open, close, the backend table
 */
#ifndef SEMCACHE_REDIS_I_H
#define SEMCACHE_REDIS_I_H

#include "store_i.h"
#include "rconn_i.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CAT_BITS 24
#define CAT_MAX ((INT64_C(1) << CAT_BITS) - 1)
#define STREAM_MAXLEN "100000"
#define HINT_CHANNEL "semcache:ev"
#define COMMAND_MS 2000
#define WATCH_COMMAND_MS 500
#define SCAN_BATCH 256
#define DROP_BATCH 500
#define META_LEN 48

/* An entry id is SEQ << CAT_BITS | CAT (above). */
static inline int64_t entry_id(int64_t cat, int64_t seq)
{
	return (int64_t)((uint64_t)seq << CAT_BITS) | cat;
}

static inline int64_t id_cat(int64_t id) { return id & CAT_MAX; }
static inline int64_t id_seq(int64_t id)
{
	return (int64_t)((uint64_t)id >> CAT_BITS);
}

/* A change stream the watcher reads, and where it is in it. */
struct wstream {
	int64_t cat_id;        /* 0 = the global stream */
	char key[40];          /* "{c5}:stream" */
	char tag[24];          /* "{c5}" */
	char last[48];         /* last stream id seen, "0-0" for none */
	int64_t n;             /* evseq of that entry, 0 for none */
	bool hinted;
};

struct wstate {
	struct wstream *v;
	size_t n, cap;
};

struct watcher;

/*
 * Lock order: mu is the only lock of the store; the watcher thread has its
 * own connections and takes no lock.
 */
struct store_redis {
	struct store base;      /* ops = &store_redis_ops; first member */
	char where[300];        /* immutable after open, like the next six */
	char host[256];
	int port, db;
	char dir[PATH_MAX];
	char host_id[20];       /* this instance's id in stream events */
	bool sync_full;

	pthread_mutex_t mu;     /* guards rc; never held with watcher locks */
	struct rconn rc;

	/* watcher; cb, arg, ws are the watcher thread's once it runs */
	struct wstate ws;       /* positions since open() */
	bool watching;
	atomic_bool stop;
	pthread_t thr;
	store_event_fn cb;
	void *cb_arg;
	struct watcher *wctx;
};

static inline struct store_redis *R(struct store *s)
{
	return (struct store_redis *)s;
}

/* "{cCAT}SUFFIX" into buf: the keys of category CAT share its slot. */
static inline void redis_cat_tag(char *buf, size_t len, int64_t cat,
				 const char *suffix)
{
	snprintf(buf, len, "{c%lld}%s", (long long)cat, suffix);
}

/* ---- call.c ---- */

/* Run a under mu on the node of key; an error reply is logged (what) and
 * mapped to an errno (-ENOSPC for OOM, else -EIO). The reply goes to *out
 * (the caller frees it), or is freed when out is NULL. */
int redis_scmd(struct store_redis *s, const char *key, struct args *a,
	       redisReply **out, const char *what);

/* ---- scripts.c ---- */

extern const char redis_lua_cat_register[];
extern const char redis_lua_cat_unregister[];
extern const char redis_lua_cat_attr[];
extern const char redis_lua_cat_drop[];
extern const char redis_lua_policy[];
extern const char redis_lua_put[];
extern const char redis_lua_del[];
extern const char redis_lua_touch[];
extern const char redis_lua_quota[];
extern const char redis_lua_get[];

/* ---- category.c ---- */

/* "MODE UID GID CREATED PATH" -> c (c->path points into v). */
int redis_cat_parse(int64_t id, const char *v, struct store_category *c);

/* ---- entry.c ---- */

typedef int (*scan_fn)(void *arg, const struct store_entry *e,
		       const float *vec, int dim, const char *embedder);

/* Call cb for one (seq m h t v em) group of a redis_lua_get reply. */
int redis_get_group(int64_t cat, redisReply **f, scan_fn cb, void *arg);

/* ---- the store_ops of the same names ---- */

int redis_category_list(struct store *st,
			int (*cb)(void *arg, const struct store_category *c),
			void *arg);
int redis_category_create(struct store *st, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out);
int redis_category_delete(struct store *st, int64_t cat_id);
int redis_category_setattr(struct store *st, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid);
int redis_policy_get(struct store *st, int64_t cat_id, char **yaml,
		     size_t *len);
int redis_policy_put(struct store *st, int64_t cat_id, const char *yaml,
		     size_t len);
int redis_entry_put(struct store *st, struct store_entry *e,
		    const struct store_payload *p);
int redis_entry_delete(struct store *st, int64_t id);
int redis_entry_touch(struct store *st, const struct store_touch *t,
		      size_t n);
int redis_entry_scan(struct store *st, int64_t cat_id, int64_t min_id,
		     scan_fn cb, void *arg);
int redis_response_read(struct store *st, int64_t id, void **buf,
			size_t *len);
int redis_entry_text(struct store *st, int64_t id, char **query,
		     size_t *query_len, char **ctx, size_t *ctx_len);
int redis_quota_enforce(struct store *st, int64_t cat_id,
			const struct store_quota *q, int64_t *evicted,
			size_t max, size_t *n, bool *keep_gone);
int redis_watch(struct store *st, store_event_fn cb, void *arg);

/* ---- watch.c, for open.c ---- */

/* Positions of every stream now (the global one and each category's). */
int redis_ws_snapshot(struct rconn *rc, struct wstate *w);

#endif
