/*
 * store_i.h - private to index/: how a store backend plugs in behind store.h.
 *
 * Every backend's own struct begins with a struct store whose ops point at
 * its table; store.c (the dispatcher) picks a backend from the "where" given
 * to store_open(): "redis://HOST:PORT/DB" is the Redis backend, anything else
 * a local directory. Each op has the contract of the store.h function of the
 * same name. watch is NULL for a backend whose data only this process
 * changes (the local one); so is quota_enforce, for a backend whose quotas
 * the engine keeps itself (the local one: the dispatcher returns -ENOTSUP).
 */
#ifndef SEMCACHE_STORE_I_H
#define SEMCACHE_STORE_I_H

#include "store.h"

struct store_ops {
	const char *name;   /* "local", "redis" */
	int (*open)(const char *where, const struct store_options *opts,
		    struct store **out, struct store_report *report, char *err,
		    size_t errlen);
	void (*close)(struct store *s);
	const char *(*dir)(const struct store *s);
	int (*category_list)(struct store *s,
			     int (*cb)(void *arg, const struct store_category *c),
			     void *arg);
	int (*category_create)(struct store *s, const char *path, mode_t mode,
			       uid_t uid, gid_t gid, int64_t *id_out);
	int (*category_delete)(struct store *s, int64_t cat_id);
	int (*category_setattr)(struct store *s, int64_t cat_id, mode_t mode,
				uid_t uid, gid_t gid);
	int (*policy_get)(struct store *s, int64_t cat_id, char **yaml,
			  size_t *len);
	int (*policy_put)(struct store *s, int64_t cat_id, const char *yaml,
			  size_t len);
	int (*entry_put)(struct store *s, struct store_entry *e,
			 const struct store_payload *p);
	int (*entry_delete)(struct store *s, int64_t id);
	int (*entry_touch)(struct store *s, const struct store_touch *t, size_t n);
	int (*entry_scan)(struct store *s, int64_t cat_id, int64_t min_id,
			  int (*cb)(void *arg, const struct store_entry *e,
				    const float *vec, int dim,
				    const char *embedder),
			  void *arg);
	int (*response_read)(struct store *s, int64_t id, void **buf,
			     size_t *len);
	int (*entry_text)(struct store *s, int64_t id, char **query,
			  size_t *query_len, char **ctx, size_t *ctx_len);
	int (*watch)(struct store *s, store_event_fn cb, void *arg);
	int (*quota_enforce)(struct store *s, int64_t cat_id,
			     const struct store_quota *q, int64_t *evicted,
			     size_t max, size_t *n, bool *keep_gone);
};

struct store {
	const struct store_ops *ops;
};

extern const struct store_ops store_local_ops;
extern const struct store_ops store_redis_ops;

#endif
