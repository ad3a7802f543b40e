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
 *   {cC}:e:SEQ           hash: m (packed meta), h (hits: the sum over
 *                        the hosts), t (last hit), q (query), c (context,
 *                        absent = none), v (vector, host float bytes), em
 *                        (embedder), r (response), i (the request id of
 *                        its put), o:HOST (host's own count, in h)
 *   {cC}:policy          string: the raw policy.yaml
 *   {cC}:stream          stream of entry put/delete and policy events
 *   {cC}:evseq           count of events ever added to that stream
 *   {cC}:hstream         stream of hit-count events (the sums a touch
 *                        moved), MAXLEN ~ HITS_MAXLEN
 *   {cC}:hseq            count of events ever added to that stream
 *   {cC}:lru             sorted set of live sequences by last use (ms of
 *                        the last hit known here, else of the fill)
 *   {cC}:lfu             sorted set by hits + last use / 2^42 (fewest
 *                        hits first, ties to the least recent)
 *   {cC}:bytes           total response bytes of live entries
 *   {cC}:qok             exists once lru, lfu and bytes cover every entry
 *   {cC}:evicted         count of entries ever evicted for quotas
 *   {semcache}:epoch     a random value written when the store is created:
 *                        gone or changed = the data was reset (reset.c)
 *   {TAG}:rq:RID         a write script's result, kept RQ_TTL_S seconds
 *                        under its request id (scripts.c)
 * An entry id is SEQ << 24 | C: unique for the store's life without a
 * global counter, decodable to its category without a lookup, and
 * increasing within a category in commit order (the per-category counter
 * is bumped inside the put script), so store_entry_scan(min_id) catches up
 * exactly. Hence at most 2^24 - 1 categories over the store's life (then
 * create fails with -ENOSPC) and 2^39 - 1 entries per category. Every id,
 * sequence and count read from the server is checked against these bounds
 * before use: out of range is -EPROTO with a log line.
 *
 * The parts:
 *   rconn_i.h   the connection and command layer (args, conn, router,
 *               call: every command goes through rconn_call)
 *   scripts.c   the Lua scripts (every change is one script in one slot,
 *               sent by its SHA-1: sha1.c) and the request-id wrapper's
 *               call (redis_once_call)
 *   category.c  categories and policies; the categories this process
 *               knows (for a reset)
 *   entry.c     entries: put, delete, touch, scan, text, response
 *   resume.c    local copies of the entries at a stream position: a
 *               restart reads only the changes since
 *   cancel.c    puts that failed in doubt, cancelled in the store
 *   quota.c     evictions decided in Redis
 *   reset.c     the store's epoch: a reset store detected and rebuilt
 *   watch.c     the change-stream watcher thread
 *   hits.c      other hosts' hit counts: hits events, full reads
 *   open.c      redis://HOST:PORT/DB, open, close, the local state
 *               directory, the backend table
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
#define SEQ_MAX ((INT64_C(1) << (63 - CAT_BITS)) - 1)
#define RQ_TTL_S "60"
#define CANCEL_TTL_S "3600"
#define CANCEL_SCAN 4096
#define RESET_SEQ_GAP (INT64_C(1) << 20)
#define RESET_CAT_GAP 1024
#define STREAM_MAXLEN "100000"
#define HITS_MAXLEN "1000"
#define HINT_CHANNEL "semcache:ev"
#define COMMAND_MS 2000
#define WATCH_COMMAND_MS 500
#define SCAN_BATCH 256
#define DROP_BATCH 500
#define META_LEN 48        /* entries stored before uids were kept */
#define META2_LEN 56       /* META_LEN, then the filler's uid (u64 LE) */

/* An entry id is SEQ << CAT_BITS | CAT (above). */
static inline int64_t entry_id(int64_t cat, int64_t seq)
{
	return (int64_t)((uint64_t)seq << CAT_BITS) | cat;
}

static inline int64_t id_cat(int64_t id) { return id & CAT_MAX; }
/* A valid entry id: positive, in a category 1..CAT_MAX, sequence >= 1. */
static inline bool id_ok(int64_t id)
{
	return id > 0 && (id & CAT_MAX) && ((uint64_t)id >> CAT_BITS) >= 1;
}
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
	bool hits;             /* {cC}:hstream (key), its n from hseq */
};

struct wstate {
	struct wstream *v;
	size_t n, cap;
};

struct watcher;

/* Work that must still reach the store (cancel.c): cancelling the put of
 * request rid into cat_id, or (rid "") dropping the keys of deleted
 * category cat_id. */
struct doubt {
	int64_t cat_id;
	char rid[40];
};

/* A category this process knows, to rebuild the store after a reset. */
struct known_cat {
	int64_t id;
	char *row;              /* "MODE UID GID CREATED_MS PATH", malloc'd */
	int64_t max_seq;        /* highest entry sequence seen in it */
	bool scanned;           /* read in full since open (resume.c) */
};

/*
 * Locks: rc has its own (rconn_i.h); mu guards the lists below and the
 * epoch and is held only to copy or change them, never across a command.
 * Lock order: mu and an rconn's mu are never held together (each is a
 * leaf); the watcher thread has its own rconn and takes mu only as above.
 */
struct store_redis {
	struct store base;      /* ops = &store_redis_ops; first member */
	char where[300];        /* immutable after open, like the next eight */
	char host[256];
	int port, db;
	char dir[PATH_MAX];
	int dir_fd;             /* holds the flock on dir (open.c) */
	char host_id[20];       /* this instance's id in stream events */
	bool sync_full;
	int cmd_ms;             /* the command timeout */
	struct rconn rc;        /* every command but the watcher's */
	atomic_uint_fast64_t rid_next;   /* request ids: host_id.COUNTER */

	pthread_mutex_t mu;
	struct doubt *doubts;   /* mu: puts to cancel, oldest first */
	size_t ndoubts, doubt_cap;
	struct known_cat *known;   /* mu: sorted by id */
	size_t nknown, known_cap;
	char epoch[40];         /* mu: the epoch this process works in */

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

#define REDIS_SCRIPT_KEYS 14

/* A Lua script and the keys it runs on: KEYS[i] is the tag of its slot
 * ("{c5}", or "{semcache}" for the global scripts) followed by keys[i-1];
 * once: wrapped by LUA_ONCE (its last KEY is TAG:rq:RID, its last ARGV
 * RID, its reply { RID, result }); rq_key: the last KEY is TAG:rq:RID
 * without the wrapper (cancel). */
struct redis_script_id {
	atomic_int state;      /* 0 none, 1 being computed, 2 hex is set */
	char hex[41];          /* the source's SHA-1; written once, before 2 */
};

struct redis_script {
	const char *src;
	const char *keys[REDIS_SCRIPT_KEYS];   /* NULL after the last */
	bool once;
	bool rq_key;
	struct redis_script_id *id;   /* REDIS_SCRIPT_ID: its hash, cached */
};

/* A script's modifiable hash cache (a file-scope compound literal has
 * static storage). */
#define REDIS_SCRIPT_ID (&(struct redis_script_id){ 0 })

extern const struct redis_script redis_script_cat_register;   /* {semcache} */
extern const struct redis_script redis_script_cat_unregister; /* {semcache} */
extern const struct redis_script redis_script_cat_attr;       /* {semcache} */
extern const struct redis_script redis_script_cat_drop;
extern const struct redis_script redis_script_policy;
extern const struct redis_script redis_script_put;
extern const struct redis_script redis_script_del;
extern const struct redis_script redis_script_touch;
extern const struct redis_script redis_script_expire;
extern const struct redis_script redis_script_quota;
extern const struct redis_script redis_script_get;
extern const struct redis_script redis_script_cancel;
extern const struct redis_script redis_script_resume;
extern const struct redis_script redis_script_hits;

/* SHA-1 of len bytes at data as 40 lowercase hex digits (sha1.c). */
void redis_sha1_hex(const void *data, size_t len, char hex[41]);

/* Start a call of sc on the slot of tag: EVALSHA, the source's hash (EVAL
 * and the source when the server answers NOSCRIPT: call.c), the number of
 * keys and the keys (rid: the request id, for a once or rq_key script;
 * else NULL); the caller adds the ARGV. */
void redis_arg_script(struct args *a, const struct redis_script *sc,
		      const char *tag, const char *rid);
/* A new request id into rid (40 bytes). */
void redis_rid(struct store_redis *s, char *rid);
/*
 * Run a once script's call a (redis_arg_script with rid, then its ARGV;
 * rid is appended here as the last ARGV) on rc and check that the reply
 * is { rid, result }: anything else is -EPROTO (logged). *out is the
 * result (the caller frees it; NULL when out is NULL), which must be of
 * type type (0: any but nil); nil is nil_errno. *sent as rconn_call_sent
 * (NULL when not wanted).
 */
int redis_once_call(struct rconn *rc, const char *tag, struct args *a,
		    const char *rid, const char *what, int type,
		    int nil_errno, bool *sent, redisReply **out);

/* ---- category.c ---- */

/* "MODE UID GID CREATED PATH" (len bytes, no NUL inside) -> c, with
 * c->path pointing into v (NUL-terminated after len). -EBADMSG when it is
 * not that or the path is not absolute. */
int redis_cat_parse(int64_t id, const char *v, size_t len,
		    struct store_category *c);
/* The categories this process knows (mu taken here): row NULL forgets. */
int redis_known_set(struct store_redis *s, int64_t id, const char *row);
/* Whether category cat was read in full since open (then a full read
 * does not start from its local copy); marks it so. Unknown: true. */
bool redis_known_scanned(struct store_redis *s, int64_t cat);
/* Note that category cat has an entry with sequence seq. */
void redis_known_seq(struct store_redis *s, int64_t cat, int64_t seq);
/* Remove everything in deleted category id's slot, in batches, over rc. */
int redis_cat_drop_keys(struct store_redis *s, struct rconn *rc, int64_t id);
/* The owner uid of category cat as known, else read from the server
 * (rc: the caller's connection); -ENOENT when there is no such category. */
int redis_cat_owner(struct store_redis *s, struct rconn *rc, int64_t cat,
		    uid_t *uid);

/* ---- entry.c ---- */

/* Call cb for one (seq m h t v em) group of a get script reply, the
 * sequence checked (-EPROTO) and the entry's other fields too (a damaged
 * entry is skipped with a log line); owner is the uid entries without
 * their own get. */
int redis_get_group(struct store_redis *s, int64_t cat, redisReply **f,
		    uid_t owner, store_scan_cb *cb, void *arg);
/* The groups of get script reply r from index 1 on: -EPROTO unless it is
 * an array of one string (the last sequence looked at) and then groups of
 * six with string members (rconn_bad_reply naming what). */
int redis_get_reply_check(const struct rconn *rc, const redisReply *r,
			  const char *what);

/* ---- resume.c ---- */

/* A local copy of a category's entries being written (by a full scan or a
 * resume). */
struct redis_copy {
	FILE *f;
	char path[PATH_MAX + 32], tmp[PATH_MAX + 96];
	uint32_t crc;
	uint64_t count;
	int64_t last_seq;
	bool bad;               /* a write failed: commit drops it */
};

/*
 * A full scan of category cat from its local copy and the stream events
 * after the copy's position (one call per batch of events, then the get
 * script for the entries put since), delivering every entry to cb as
 * store_entry_scan does, in sequence order, and writing a new copy at the
 * new position. *done false (nothing delivered) when the scan must read
 * everything instead: no copy, another epoch, a damaged copy, the stream
 * trimmed past its position, or counts that disagree (logged but for the
 * first). 0 or an errno (cb's non-zero result is returned as it is).
 */
int redis_resume(struct store_redis *s, int64_t cat, uid_t owner,
		 store_scan_cb *cb, void *arg, bool *done);
/* Start a new copy of cat at its stream position now, for a full scan
 * about to start; -errno when none can be written (the scan goes on). */
int redis_copy_begin(struct store_redis *s, struct rconn *rc, int64_t cat,
		     struct redis_copy *w);
/* Add one get script group (seq m h t v em, checked strings). */
void redis_copy_add(struct redis_copy *w, int64_t seq, redisReply **f);
/* Finish (commit true: rename into place) or drop the copy. */
void redis_copy_end(struct redis_copy *w, bool commit);
/* Remove deleted category cat's copy. */
void redis_copy_forget(struct store_redis *s, int64_t cat);

/* ---- cancel.c ---- */

/* Remember that the put of request rid into cat may have run: it is
 * cancelled as soon as the store answers. */
void redis_doubt_add(struct store_redis *s, int64_t cat, const char *rid);
/* Remember that deleted category cat still has keys to drop. */
void redis_drop_later(struct store_redis *s, int64_t cat);
/* Do the remembered work (oldest first) over rc until a step fails: 0
 * when none is left, else the errno of the failure. */
int redis_doubts_settle(struct store_redis *s, struct rconn *rc);

/* ---- reset.c ---- */

/* At open: read the store's epoch, writing one for a store that has
 * none (new, or from before epochs). */
int redis_epoch_open(struct store_redis *s);
/* From the watcher: 1 when the store was reset behind this process's
 * back (its epoch gone or changed) and has been rebuilt (epoch, the known
 * categories with their ids, counters past every id known); 0 when not;
 * or a negative errno. */
int redis_reset_check(struct store_redis *s, struct rconn *rc);

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
store_entry_expire_fn redis_entry_expire;
store_entry_scan_fn redis_entry_scan;
store_response_read_fn redis_response_read;
store_entry_text_fn redis_entry_text;
store_quota_enforce_fn redis_quota_enforce;
store_watch_fn redis_watch;

/* ---- watch.c, for open.c ---- */

/* Positions of every stream now (the global one and each category's). */
int redis_ws_snapshot(struct rconn *rc, struct wstate *w);

/* hits.c: deliver a hits event's b ("seq h t ...") of category cat's
 * stream key as STORE_EV_ENTRY_HITS (a malformed one is logged and
 * skipped); deliver every entry's (h t) of cat, read on rc. */
void redis_hits_event(struct store_redis *s, const char *key, int64_t cat,
		      const redisReply *b);
int redis_hits_refresh(struct store_redis *s, struct rconn *rc, int64_t cat);
/* The category id of a string reply (a hash field, an event's id):
 * 1..CAT_MAX, else -EPROTO (logged naming what). */
int redis_cat_id(const struct rconn *rc, const redisReply *r,
		 const char *what, int64_t *id);

#endif
