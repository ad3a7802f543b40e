/*
 * store.h - the crash-safe store: categories, policies, entries, responses.
 *
 * Everything the cache must not lose lives here; the in-memory index is
 * rebuilt from it. This header is the whole interface the engine uses.
 * store_open() picks one of two backends by where the store is (store.c):
 *  - a local directory (local/): metadata and vectors in SQLite (WAL mode),
 *    each response in its own checksummed blob file written temp ->
 *    fsync? -> rename; only this process uses it (a flock keeps others out);
 *  - "redis://HOST[:PORT][/DB]" (redis/; "rediss://" over TLS): a Redis
 *    server or Redis Cluster
 *    that several hosts share, each change one Lua script, with a change
 *    stream that delivers the other hosts' changes (store_watch) and
 *    evictions decided in Redis (store_quota_enforce). Calls run on a pool
 *    of connections (opts.redis_pool per node), each bounded end to end by
 *    opts.redis_timeout_ms: a call never waits behind another's round
 *    trip while a connection is free, and a paused or dead server fails
 *    it with -ETIMEDOUT (or -ECONNREFUSED) by then.
 *
 * Invariants:
 *  - Every function is thread-safe; no lock of the store is held while a
 *    caller's callback runs, except during a local scan (see
 *    store_entry_scan).
 *  - A call that returned 0 survives a crash of the process (kill -9). With
 *    opts.sync_full it also survives a crash of the machine (for Redis:
 *    given its appendonly/appendfsync settings; open warns otherwise).
 *  - An entry exists only once its response is complete (local: the row
 *    is inserted after its blob is; a blob without a row is garbage, removed
 *    by the next open after an unclean stop).
 *  - Responses carry their own length and checksum; a damaged one is
 *    reported as -EBADMSG, never served.
 *  - A call that failed changed nothing, with two exceptions. A local
 *    store_category_delete may have removed some entries (see there). A
 *    Redis call that failed after reaching the server (-ETIMEDOUT, -EIO,
 *    -EPROTO) may have taken effect there: a put is then cancelled (the
 *    entry removed, with a delete event to the other hosts) as soon as the
 *    server answers again, so it is never served for long; any other
 *    change (a delete, a policy, a category) may stand, and shows at the
 *    next scan or listing.
 *  - Functions return 0 (or a count) or a negative errno; -ENOSPC when the
 *    disk is full (Redis: out of memory); -ETIMEDOUT, -ECONNREFUSED, -EIO
 *    when a server does not answer; -EPROTO (with a log line) when a
 *    server's reply breaks the protocol or is out of range (a negative or
 *    zero id, a wrong type, a reply that is not the request's own). They
 *    never abort on bad data, from a caller, a file or a server.
 * Times are milliseconds since the epoch.
 */
#ifndef SEMCACHE_STORE_H
#define SEMCACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct store;

struct store_options {
	bool sync_full;   /* fsync blobs, directories and every commit */
	/* Redis only (0 = the default): connections per node (4; at most
	 * 64) and the time limit of one call in ms (2000). */
	unsigned redis_pool;
	int redis_timeout_ms;
	/* Redis only: the AUTH password (NULL: none; the user name comes from
	 * redis://USER@HOST). The store keeps a copy for reconnects, wipes it
	 * at close and never logs it. */
	const char *redis_password;
	/* Redis only, for a rediss:// store (TLS): the PEM file of the CAs
	 * that sign the servers' certificates (NULL: the system's), the
	 * client certificate and its private key (both or neither; the key
	 * file must be the user's, mode 0600 or stricter), and the name the
	 * servers' certificates must carry, also sent as SNI (NULL: the
	 * node's host, the URL's for the first). Read at open. */
	const char *redis_tls_ca;
	const char *redis_tls_cert;
	const char *redis_tls_key;
	const char *redis_tls_sni;
};

/*
 * Check where and opts before anything is opened or created: TLS options
 * need a rediss:// store; a rediss:// store needs a build with TLS
 * (-ENOTSUP) and CA, certificate and key files that load (-EINVAL,
 * -ENOENT, -EPERM...). 0, or a negative errno with err naming the option.
 */
int store_check_options(const char *where, const struct store_options *opts,
			char *err, size_t errlen);

/* What open found and repaired. */
struct store_report {
	int64_t entries;             /* entries loaded */
	int64_t orphan_blobs;        /* blobs without a row, removed */
	int64_t dropped_entries;     /* rows whose blob was missing, removed */
	bool unclean;                /* the previous run did not close cleanly */
	/* Repair of a damaged semcache.db (SQLITE_CORRUPT / NOTADB, or an
	 * empty database next to existing blobs). The damaged files are
	 * renamed, never deleted; rows are salvaged into a fresh database. */
	bool db_repaired;            /* the database was rebuilt at open */
	int64_t db_salvaged;         /* entry rows copied from the damaged db */
	int64_t db_lost;             /* entries whose row was unreadable; their
				      * blobs were moved to lost+found/ */
	int64_t db_cats_recreated;   /* categories whose row was lost, recreated
				      * as /recovered-ID for salvaged entries */
	char db_aside[64];           /* name in the store dir of the damaged db,
				      * e.g. "semcache.db.corrupt-20250101T000000Z" */
};

struct store_category {
	int64_t id;
	const char *path;            /* "/" for the root, "/code/python" */
	mode_t mode;                 /* permission bits only */
	uid_t uid;
	gid_t gid;
	int64_t created_ms;
};

struct store_entry {
	int64_t id;                  /* > 0, unique for the store's life
				      * (Redis: a reset store moves its
				      * counters past every id this host
				      * has seen, see STORE_EV_RESYNC) */
	int64_t cat_id;
	int64_t created_ms;
	int64_t last_hit_ms;         /* 0 = never hit */
	int64_t hits;
	int64_t bytes;               /* response length */
	uint64_t key[2];             /* exact key of (normalised query, context) */
	uint64_t ctx_hash;           /* 0 = stored without context */
	uid_t uid;                   /* who filled it (the caller's, kept by
				      * store_entry_put); entries stored
				      * before uids were kept read back as
				      * the category's owner */
};

/* What a fill stores besides the entry's metadata. */
struct store_payload {
	const char *query;  size_t query_len;
	const char *context; size_t context_len;  /* context may be NULL */
	const float *vec;   int dim;
	const char *embedder;                     /* name, e.g. "builtin-v1" */
	const void *response; size_t response_len;
};

/*
 * Open (creating if needed, mode 0700) the store in dir. The root category
 * "/" always exists after a successful open. report may be NULL.
 * On failure returns a negative errno and writes a message to err.
 */
int store_open(const char *dir, const struct store_options *opts,
	       struct store **out, struct store_report *report, char *err,
	       size_t errlen);
/* Mark the store cleanly closed and free it. NULL is fine. */
void store_close(struct store *s);
/* The directory given to store_open (owned by the store). */
const char *store_dir(const struct store *s);

/* Categories. The callback returns 0 to go on, non-zero to stop (returned). */
int store_category_list(struct store *s,
			int (*cb)(void *arg, const struct store_category *c),
			void *arg);
/* -EEXIST if path exists. */
int store_category_create(struct store *s, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out);
/* Removes the category, its policy, its entries and their blobs; -EBUSY
 * for the root, -ENOENT if there is none. On failure the category is still
 * there, but (local store, on a full disk) some of its entries may be gone
 * already: a store_entry_scan tells which are left. */
int store_category_delete(struct store *s, int64_t cat_id);
int store_category_setattr(struct store *s, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid);

/* Policies: the raw policy.yaml bytes of a category. -ENOENT if none.
 * *yaml is malloc'd, NUL-terminated, owned by the caller. */
int store_policy_get(struct store *s, int64_t cat_id, char **yaml,
		     size_t *len);
/* yaml NULL removes the policy. */
int store_policy_put(struct store *s, int64_t cat_id, const char *yaml,
		     size_t len);

/*
 * Store an entry: blob first, then the row. e->id is assigned here; the
 * other fields of e (uid included) are the caller's. Returns 0 once
 * durable (Redis: once the server confirmed this very put). -ENOENT when
 * the category does not exist, -EINVAL for a payload with NULL pointers
 * and non-zero lengths, a negative dim or no embedder name.
 */
int store_entry_put(struct store *s, struct store_entry *e,
		    const struct store_payload *p);
/* Remove the row, then the blob. -ENOENT if there is no such entry; any
 * other error means the entry is still stored (local: -ENOSPC only when
 * even the full-disk reserve did not make room). A blob whose unlink
 * failed is recorded and removed at a later delete or open. */
int store_entry_delete(struct store *s, int64_t id);

/*
 * Hit counters, written back in batches (not fsync'd). A store only this
 * process uses keeps hits as the entry's count. A shared one (Redis)
 * takes hits as this process's own count on the entry (the hits it made
 * since it loaded the entry: it only grows) and keeps one such count per
 * process: their growth is added to the entry's sum, so a batch that runs
 * twice (a lost reply, a resend) or an own count sent again later counts
 * once, and a process that starts again starts an own count of its own
 * (what it sent before stays counted and is never sent again). last_hit_ms
 * is kept as the latest of all. On success every t[i].total is the
 * entry's count in the store after the batch (the sum over the processes;
 * -1: the entry is gone) and last_hit_ms its latest hit; total is not
 * read. A store that keeps quotas (store_quota_enforce) orders lru and lfu
 * by these only: recency there is as fresh as the last touch.
 */
struct store_touch {
	int64_t id;
	int64_t last_hit_ms;
	int64_t hits;
	int64_t total;
};
int store_entry_touch(struct store *s, struct store_touch *t, size_t n);

/*
 * Remove entry id as expired if the store agrees that it is: ttl_ms after
 * its creation, or (sliding) after its last hit as the store knows it
 * (every process's, from their touches), has passed at now_ms. A shared
 * store decides this once, atomically, whichever process asks first; the
 * others learn of it as a STORE_EV_ENTRY_DELETE with expired set. 0 when
 * this call removed it, -EAGAIN when the store's view has it unexpired (a
 * hit elsewhere), -ENOENT when it is gone already. A store only this
 * process uses removes it as store_entry_delete does.
 */
int store_entry_expire(struct store *s, int64_t id, int64_t ttl_ms,
		       bool sliding, int64_t now_ms);

/*
 * Call cb for every entry of a category with id > min_id, in id order, with
 * its vector (dim floats) and embedder name. cb returns 0 to go on. An
 * entry whose record is damaged (vector length not dim floats, bad
 * metadata) is skipped with a log line. The local store runs cb with its
 * lock held: cb must not call the store.
 */
int store_entry_scan(struct store *s, int64_t cat_id, int64_t min_id,
		     int (*cb)(void *arg, const struct store_entry *e,
			       const float *vec, int dim,
			       const char *embedder),
		     void *arg);

/* Read and verify an entry's response. *buf is malloc'd (caller frees);
 * -ENOENT if gone, -EBADMSG if the blob is damaged or belongs to another
 * entry (local blobs record their entry's id). key: the entry's exact key
 * as the caller knows it, or NULL for any: -ENOENT if the store's entry
 * of that id has another key (a Redis that lost entries, e.g. a failover
 * to a replica that lacked them, may hand their ids out again; a local
 * store never reuses an id and does not check). */
int store_response_read(struct store *s, int64_t id, const uint64_t *key,
			void **buf, size_t *len);
/*
 * Quotas kept by the store itself. A store that several hosts share must
 * decide evictions in one place: each host evicting on its own view would
 * evict twice for one overflow, and under lru pick different victims.
 */
enum store_evict {
	STORE_EVICT_LRU,   /* least recently used (hit, else stored) first */
	STORE_EVICT_LFU,   /* fewest hits first, ties to the least recent */
	STORE_EVICT_FIFO,  /* oldest stored first */
};

struct store_quota {
	int64_t entries;          /* most entries; 0 = unlimited */
	int64_t bytes;            /* most response bytes; 0 = unlimited */
	enum store_evict order;
	int64_t keep;             /* never evicted here (the entry just
				   * filled); 0 = none */
};

/*
 * Evict entries of category cat_id, atomically in the store, in q->order
 * until it fits q; at most max per call (call again while *n == max). The
 * ids evicted go to evicted[0..*n). *keep_gone says q->keep no longer
 * exists (another host evicted it first). Each eviction is announced as a
 * STORE_EV_ENTRY_DELETE to every watcher, this process's included (see
 * store_watch). -ENOTSUP for a backend whose quotas the engine keeps on its
 * own view (the local directory), without touching anything.
 */
int store_quota_enforce(struct store *s, int64_t cat_id,
			const struct store_quota *q, int64_t *evicted,
			size_t max, size_t *n, bool *keep_gone);
/* Whether the store keeps quotas itself (store_quota_enforce works): the
 * engine must then never evict on its own view. */
bool store_keeps_quotas(const struct store *s);

/*
 * Changes made by other hosts sharing the store (a networked backend).
 * Events arrive in the order the store applied them, after the change is
 * durable there; this process's own changes are not echoed back, except
 * evictions by store_quota_enforce (so that one whose reply was lost, or
 * that removed an entry whose put event is being delivered, still reaches
 * this process; deletes must be idempotent anyway).
 */
enum store_event_kind {
	STORE_EV_ENTRY_PUT,        /* entry, vec, dim, embedder */
	STORE_EV_ENTRY_DELETE,     /* entry.id, entry.cat_id; expired when
				    * it was store_entry_expire's doing */
	STORE_EV_ENTRY_HITS,       /* entry.id, entry.cat_id, entry.hits
				    * (the sum over every process) and
				    * entry.last_hit_ms after another
				    * process's touch */
	STORE_EV_CATEGORY_CREATE,  /* category */
	STORE_EV_CATEGORY_DELETE,  /* category.id, category.path */
	STORE_EV_CATEGORY_ATTR,    /* category */
	STORE_EV_POLICY,           /* category.id; yaml NULL = removed */
	STORE_EV_RESYNC,           /* events were lost, or the store was
				    * reset behind our back (FLUSHALL):
				    * reload categories, policies and
				    * entries, dropping what is gone. After
				    * a reset the store has put back every
				    * category this process knew under the
				    * same id (empty, without policy) and
				    * made sure no new id equals an old one. */
};

struct store_event {
	enum store_event_kind kind;
	struct store_entry entry;
	const float *vec;
	int dim;
	const char *embedder;
	struct store_category category;
	const char *yaml;
	size_t yaml_len;
	bool expired;              /* STORE_EV_ENTRY_DELETE: see there */
};

typedef void (*store_event_fn)(void *arg, const struct store_event *ev);

/*
 * Deliver other hosts' changes to cb, from a thread of the store's own,
 * until store_close(). -ENOTSUP for a backend only this process changes
 * (the local directory). cb may call the store. The thread also finishes
 * store work that failed calls left (cancelled puts, dropped keys) and
 * checks, every second, whether the store was reset.
 */
int store_watch(struct store *s, store_event_fn cb, void *arg);

/* Read an entry's query and context (either out pointer may be NULL).
 * *ctx is NULL with *ctx_len 0 when stored without context. */
int store_entry_text(struct store *s, int64_t id, char **query,
		     size_t *query_len, char **ctx, size_t *ctx_len);

#endif
