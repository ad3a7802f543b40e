/*
 * cache.h - the semantic cache engine: categories, lookups, fills, policies.
 *
 * The engine ties the store (durable truth), one vector index per category
 * (rebuilt from the store or loaded from a snapshot), the embedder and the
 * per-directory policies together. It knows nothing of FUSE: the file
 * system layer calls it with category paths ("/", "/code", "/code/python")
 * and bytes.
 *
 * Lookup: an identical query (after textnorm, same context) hits through an
 * exact map without touching the index; otherwise the query is embedded and
 * the best live entry of that category scoring at or above the category's
 * threshold is a hit. Expiry is judged at lookup time from the current
 * policy, so ttl changes apply to existing entries at once.
 *
 * Every function may be called from any thread between cache_open() and
 * cache_close(). The engine's locks, what each guards and the order they
 * are taken in are written in engine_i.h, where they are declared.
 */
#ifndef SEMCACHE_CACHE_H
#define SEMCACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

struct cache;

struct cache_options {
	const char *store_dir;
	bool sync_full;            /* fsync every fill (survives power loss) */
	bool quiet;                /* no informational log lines */
	/* The trust the mount owner grants (see "Trust" below). */
	uid_t owner_uid;           /* who mounted: trusted like root */
	const char *embed_env;     /* "NAME:NAME": environment variables an
				    * http.api_key_env may name (each starts
				    * with SEMCACHEFS_); NULL or "": none */
	const char *embed_urls;    /* "PREFIX,PREFIX": URLs an http embedder
				    * may use with a key, or at all in a
				    * policy an untrusted user wrote */
	const char *model_dirs;    /* "DIR:DIR": model directories a policy an
				    * untrusted user wrote may name */
	unsigned max_slow;         /* most requests waiting on slow work at
				    * once (remote embedding, a pending
				    * fill); 0 = the engine's default */
	const char *redis_password; /* a redis:// store's AUTH password (the
				    * user is in the URL); NULL: none. Copied
				    * by the store; never logged */
	/* a rediss:// store's TLS files and the name its servers'
	 * certificates must carry (store.h's store_options; NULL: none, or
	 * the defaults) */
	const char *redis_tls_ca;
	const char *redis_tls_cert;
	const char *redis_tls_key;
	const char *redis_tls_sni;
	/* a redis:// store's connections per node and the limit of one
	 * command in ms (store.h's store_options; 0: the defaults) */
	unsigned redis_pool;
	int redis_timeout_ms;
	/* Told when a category changed by itself, not through a call of the
	 * caller's: another host's fills, deletes, chmod, policy or removal
	 * of it (removed), a resync ("/" and every category), expiries and
	 * evictions. Called from the engine's own threads (the store's
	 * watcher, maintenance) or from the call that evicted, with no engine
	 * lock held; path is only valid during the call. NULL: not told. */
	void (*changed)(void *arg, const char *path, bool removed);
	void *changed_arg;
};

/*
 * Trust. Every mutating call says who asks (struct cache_caller: the FUSE
 * caller's uid and gid; NULL means trusted, for in-process tools and
 * tests). Trusted are root and the mount owner. Rules:
 *  - policy.yaml of a category may be written or removed only by the
 *    category's owner or a trusted caller (-EACCES otherwise), whatever the
 *    directory's mode (a sticky 1777 category included);
 *  - an http embedder sends an API key only if the variable is named in
 *    opts.embed_env and the URL starts with a prefix in opts.embed_urls; a
 *    policy written by an untrusted caller may enable http only for URLs
 *    under opts.embed_urls, and name model directories only under
 *    opts.model_dirs (-EPERM otherwise, with the reason in .errors);
 *  - every entry records the uid that filled it; a fill never replaces a
 *    live entry another user filled unless the caller owns the category or
 *    is trusted (-EACCES); removing an entry, purging, and wrong-hit
 *    feedback that invalidates follow the same rule (feedback from others
 *    is counted but does not invalidate).
 */
struct cache_caller {
	uid_t uid;
	gid_t gid;
};

/* Check o's grants (embed_env, embed_urls, model_dirs) and, for the store
 * o->store_dir names as given (may be NULL), its TLS options
 * (store_check_options) without opening anything: 0, or a negative errno
 * (-EINVAL, -ENOTSUP: a build without TLS, ...) with err saying which
 * option is wrong (cache_open checks the same). For usage errors before
 * any store is touched. */
int cache_check_options(const struct cache_options *o, char *err,
			size_t errlen);
/* Open the store, load or rebuild every category's index. */
int cache_open(const struct cache_options *o, struct cache **out, char *err,
	       size_t errlen);
/* Start the background thread (merges, hit counters, expiry). Call after
 * any fork (daemonising). */
int cache_start(struct cache *c);
/* The local directory of this cache's state (the store itself for a local
 * store; for a shared store, where snapshots and the log live). */
const char *cache_state_dir(struct cache *c);
/* Stop the background thread, snapshot indexes, close the store. */
void cache_close(struct cache *c);

/* ---- categories ---- */

struct cache_cat_info {
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int64_t created_ms;
	int64_t entries;
	int64_t bytes;
};

/* 0 if path is a category (filling info if non-NULL), else -ENOENT. */
int cache_category_stat(struct cache *c, const char *path,
			struct cache_cat_info *info);
/* -EEXIST, -ENOENT (parent missing), -EINVAL (bad name). */
int cache_category_create(struct cache *c, const char *path, mode_t mode,
			  uid_t uid, gid_t gid);
/* rmdir: -ENOTEMPTY if it has entries, subcategories or a policy;
 * -EBUSY for the root. */
int cache_category_remove(struct cache *c, const char *path);
/* chmod/chown; pass (uid_t)-1 / (gid_t)-1 to keep, mode -1 to keep. */
int cache_category_setattr(struct cache *c, const char *path, int mode,
			   uid_t uid, gid_t gid);
/* Call cb with the name of every direct subcategory of path. */
int cache_category_children(struct cache *c, const char *path,
			    int (*cb)(void *arg, const char *name), void *arg);

/* ---- lookups and fills ---- */

struct cache_query {
	const char *query;
	size_t query_len;
	const char *context;       /* NULL or empty: no context */
	size_t context_len;
};

/* CACHE_PENDING: a matching query missed moments ago and its fill has not
 * arrived; cache_pending_wait() waits for it (miss coalescing). */
enum cache_outcome { CACHE_MISS, CACHE_HIT, CACHE_PENDING };

/* Candidates a lookup keeps from its index search (NAME.neighbors). */
#define CACHE_NEIGHBORS 5

struct cache_result {
	enum cache_outcome outcome;
	bool exact;                /* hit through the exact fast path */
	float score;               /* hit score, or best score seen on a miss */
	int64_t entry_id;          /* hit: the entry served */
	int64_t age_s;             /* hit: seconds since the entry was stored */
	void *response;            /* hit: malloc'd answer bytes */
	size_t response_len;
	char note[96];             /* miss: why, when not simply "no match" */
	/* Kept for a fill of the same query (no second embedding). */
	float *vec;                /* malloc'd, dim floats, or NULL */
	int dim;
	const void *vec_by;        /* the embedder vec came from (identity) */
	int64_t pending_id;        /* CACHE_PENDING: the fill waited for */
	int64_t leader_id;         /* a miss others may wait on: this query's
				    * fill resolves it (0 = none) */
	float threshold;           /* the effective threshold applied */
	/* The best candidates of the lookup's index search, best first:
	 * live, unexpired entries of the same context, above the threshold
	 * or not (0 of them after an exact hit, or when no search ran). */
	int ncand;
	int64_t cand_id[CACHE_NEIGHBORS];
	float cand_score[CACHE_NEIGHBORS];
};

/*
 * Look a query up in category path (its candidates, cand_*, come from the
 * same index search that decided it). Returns 0 with *r filled (release it
 * with cache_result_release), or -ENOENT (no such category), -EINVAL (empty
 * query), -EFBIG (query over limits.query_bytes).
 */
int cache_lookup(struct cache *c, const char *path, const struct cache_query *q,
		 struct cache_result *r);
void cache_result_release(struct cache_result *r);

/*
 * Store resp as the answer to q in category path; durable when it returns 0.
 * prior may be the result of looking q up (its vector is reused) or NULL.
 * An entry with the same exact key is replaced (unless it is a live entry
 * another user filled and who may not replace it: -EACCES). *stored is
 * false when the policy says cache: false (nothing stored, not an error).
 * Errors: -ENOENT (category gone), -EINVAL (empty response or query),
 * -EFBIG (over limits.response_bytes), -EACCES, -EBUSY (its remote
 * embedder has too many requests waiting), -ENOSPC, -EIO.
 */
int cache_fill(struct cache *c, const char *path, const struct cache_query *q,
	       const struct cache_result *prior, const void *resp,
	       size_t resp_len, const struct cache_caller *who,
	       int64_t *id_out, bool *stored);
/* Why the last fill of category path was not stored ("" if it was). */
void cache_fill_note(struct cache *c, const char *path, char *buf, size_t size);

/*
 * Wait (at most the category's fill_timeout from the first miss) for the
 * fill r is pending on. On return r is a hit served from that fill, or a
 * miss (note says "fill timeout"). Never call it holding a lock.
 */
int cache_pending_wait(struct cache *c, const char *path,
		       struct cache_result *r);

/*
 * Wrong-hit feedback: entry_id was served with score and was wrong. The
 * entry is invalidated, a false hit counted, and with
 * adaptive.learn_threshold the threshold is raised just above score.
 */
int cache_feedback_wrong(struct cache *c, const char *path, int64_t entry_id,
			 float score, const struct cache_caller *who);

/* ---- downstream model load ---- */

/* Record a load report (0..1) for model name. -EINVAL if out of range. */
int cache_load_report(struct cache *c, const char *name, double load);
/* "load: 0.93\nage_s: 4\n" for name; -ENOENT if never reported. */
int cache_load_text(struct cache *c, const char *name, char **text,
		    size_t *len);
/* Call cb with every model name that has a report. */
int cache_load_list(struct cache *c, int (*cb)(void *arg, const char *name),
		    void *arg);

/* The effective policy of a category (copied out). */
int cache_policy(struct cache *c, const char *path, struct policy *out);

/* ---- policy files ---- */

/* The raw policy.yaml of path: malloc'd copy, or -ENOENT if none.
 * mtime_ms (may be NULL) is when it was last installed (stable between
 * writes, as editors compare it before saving). */
int cache_policy_get(struct cache *c, const char *path, char **yaml,
		     size_t *len, int64_t *mtime_ms);
/*
 * Replace path's policy.yaml. Invalid YAML or values: -EINVAL, the previous
 * policy stays, and the reason (with line and column) is kept for
 * cache_policy_errors() and logged. yaml NULL removes the file.
 */
int cache_policy_put(struct cache *c, const char *path, const char *yaml,
		     size_t len, const struct cache_caller *who);
/* Remove path's policy.yaml only if it is still the one installed at
 * mtime_ms (cache_policy_get): -ESTALE if another was installed or it was
 * removed since. For a removal decided earlier and carried out later. */
int cache_policy_remove_if(struct cache *c, const char *path, int64_t mtime_ms,
			   const struct cache_caller *who);
/* .policy text (effective values with provenance). malloc'd. */
int cache_policy_text(struct cache *c, const char *path, char **text,
		      size_t *len);
/* .errors text: the last rejected policy write of path, or empty. */
int cache_policy_errors(struct cache *c, const char *path, char **text,
			size_t *len);

/* ---- entries (inspection and invalidation) ---- */

struct cache_entry_info {
	int64_t id;
	int64_t created_ms;
	int64_t last_hit_ms;       /* 0 = never hit */
	int64_t expires_ms;        /* 0 = never (under the current policy) */
	int64_t hits;
	int64_t bytes;             /* response length */
	uint32_t query_len;
	uint32_t context_len;      /* 0 = stored without context */
	uid_t uid;                 /* who filled it */
	bool expired;
};

/* Call cb with every entry id of category path (a snapshot). */
int cache_entries_list(struct cache *c, const char *path,
		       int (*cb)(void *arg, int64_t id), void *arg);
/* -ENOENT if the category or the entry does not exist. */
int cache_entry_stat(struct cache *c, const char *path, int64_t id,
		     struct cache_entry_info *info);

enum cache_entry_part { CACHE_PART_QUERY, CACHE_PART_CONTEXT,
			CACHE_PART_RESPONSE, CACHE_PART_META };
/* One part of an entry as bytes (malloc'd); meta is "key: value" lines. */
int cache_entry_read(struct cache *c, const char *path, int64_t id,
		     enum cache_entry_part part, char **data, size_t *len);
/* Invalidate one entry: never served again, its blob deleted. */
int cache_entry_remove(struct cache *c, const char *path, int64_t id,
		       const struct cache_caller *who);
/* Remove every entry of category path (not of its subcategories); the
 * category and its policy stay. Returns how many were removed. */
int64_t cache_purge(struct cache *c, const char *path,
		    const struct cache_caller *who);

/* ---- statistics ---- */

/* .stats text: key: value lines; the root's covers every category. */
int cache_stats_text(struct cache *c, const char *path, char **text,
		     size_t *len);
/* .metrics text: every category's counters in Prometheus text exposition
 * format, labelled by category. */
int cache_metrics_text(struct cache *c, char **text, size_t *len);

#endif
