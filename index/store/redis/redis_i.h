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
 *   rconn_i.h   the connection and command layer (args, conn, router,
 *               call: every command goes through rconn_call)
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

	pthread_mutex_t mu;     /* rc.lock: held around each round trip */
	struct rconn rc;        /* guarded by mu (rconn_call takes it) */

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

/* ---- scripts.c ---- */

#define REDIS_SCRIPT_KEYS 12

/* A Lua script and the keys it runs on: KEYS[i] is the tag of its slot
 * ("{c5}", or "{semcache}" for the global scripts) followed by keys[i-1]. */
struct redis_script {
	const char *src;
	const char *keys[REDIS_SCRIPT_KEYS];   /* NULL after the last */
};

extern const struct redis_script redis_script_cat_register;   /* {semcache} */
extern const struct redis_script redis_script_cat_unregister; /* {semcache} */
extern const struct redis_script redis_script_cat_attr;       /* {semcache} */
extern const struct redis_script redis_script_cat_drop;
extern const struct redis_script redis_script_policy;
extern const struct redis_script redis_script_put;
extern const struct redis_script redis_script_del;
extern const struct redis_script redis_script_touch;
extern const struct redis_script redis_script_quota;
extern const struct redis_script redis_script_get;

/* Start a call of sc on the slot of tag: EVAL, the source, the number of
 * keys and the keys; the caller adds the ARGV. */
void redis_arg_script(struct args *a, const struct redis_script *sc,
		      const char *tag);

/* ---- category.c ---- */

/* "MODE UID GID CREATED PATH" -> c (c->path points into v). */
int redis_cat_parse(int64_t id, const char *v, struct store_category *c);

/* ---- entry.c ---- */

/* Call cb for one (seq m h t v em) group of a get script reply. */
int redis_get_group(int64_t cat, redisReply **f, store_scan_cb *cb,
		    void *arg);

/* ---- category.c, entry.c, quota.c, watch.c: the store_ops of the same
 * names ---- */

store_category_list_fn redis_category_list;
store_category_create_fn redis_category_create;
store_category_delete_fn redis_category_delete;
store_category_setattr_fn redis_category_setattr;
store_policy_get_fn redis_policy_get;
store_policy_put_fn redis_policy_put;
store_entry_put_fn redis_entry_put;
store_entry_delete_fn redis_entry_delete;
store_entry_touch_fn redis_entry_touch;
store_entry_scan_fn redis_entry_scan;
store_response_read_fn redis_response_read;
store_entry_text_fn redis_entry_text;
store_quota_enforce_fn redis_quota_enforce;
store_watch_fn redis_watch;

/* ---- watch.c, for open.c ---- */

/* Positions of every stream now (the global one and each category's). */
int redis_ws_snapshot(struct rconn *rc, struct wstate *w);

#endif
