/*
 * store_i.h - private to index/store/ (and the backends' unit tests): how a
 * store backend plugs in behind store.h.
 *
 * Every backend's own struct begins with a struct store whose ops point at
 * its table; store.c (the dispatcher) picks a backend from the "where" given
 * to store_open(): "redis://HOST:PORT/DB" is the Redis backend (redis/),
 * anything else a local directory (local/). Each op has the contract of the
 * store.h function of the same name, and a type (store_OP_fn) that the
 * backends declare their functions with. watch is NULL for a backend whose
 * data only this process changes (the local one); so is quota_enforce, for
 * a backend whose quotas the engine keeps itself (the local one: the
 * dispatcher returns -ENOTSUP).
 */
#ifndef SEMCACHE_STORE_I_H
#define SEMCACHE_STORE_I_H

#include "store.h"

/* The type of each op, so that a backend declares its functions with one
 * line each ("store_entry_put_fn local_entry_put;"). */
typedef int store_open_fn(const char *where, const struct store_options *opts,
			  struct store **out, struct store_report *report,
			  char *err, size_t errlen);
typedef void store_close_fn(struct store *s);
typedef const char *store_dir_fn(const struct store *s);
typedef int store_category_list_fn(struct store *s,
		int (*cb)(void *arg, const struct store_category *c),
		void *arg);
typedef int store_category_create_fn(struct store *s, const char *path,
				     mode_t mode, uid_t uid, gid_t gid,
				     int64_t *id_out);
typedef int store_category_delete_fn(struct store *s, int64_t cat_id);
typedef int store_category_setattr_fn(struct store *s, int64_t cat_id,
				      mode_t mode, uid_t uid, gid_t gid);
typedef int store_policy_get_fn(struct store *s, int64_t cat_id, char **yaml,
				size_t *len);
typedef int store_policy_put_fn(struct store *s, int64_t cat_id,
				const char *yaml, size_t len);
typedef int store_entry_put_fn(struct store *s, struct store_entry *e,
			       const struct store_payload *p);
typedef int store_entry_delete_fn(struct store *s, int64_t id);
typedef int store_entry_touch_fn(struct store *s, struct store_touch *t,
				 size_t n);
typedef int store_entry_expire_fn(struct store *s, int64_t id, int64_t ttl_ms,
				  bool sliding, int64_t now_ms);
typedef int store_scan_cb(void *arg, const struct store_entry *e,
			  const float *vec, int dim, const char *embedder);
typedef int store_entry_scan_fn(struct store *s, int64_t cat_id,
				int64_t min_id, store_scan_cb *cb, void *arg);
typedef int store_response_read_fn(struct store *s, int64_t id,
				   const uint64_t *key, void **buf,
				   size_t *len);
typedef int store_entry_text_fn(struct store *s, int64_t id, char **query,
				size_t *query_len, char **ctx,
				size_t *ctx_len);
typedef int store_watch_fn(struct store *s, store_event_fn cb, void *arg);
typedef int store_quota_enforce_fn(struct store *s, int64_t cat_id,
				   const struct store_quota *q,
				   int64_t *evicted, size_t max, size_t *n,
				   bool *keep_gone);

struct store_ops {
	const char *name;   /* "local", "redis" */
	store_open_fn *open;
	store_close_fn *close;
	store_dir_fn *dir;
	store_category_list_fn *category_list;
	store_category_create_fn *category_create;
	store_category_delete_fn *category_delete;
	store_category_setattr_fn *category_setattr;
	store_policy_get_fn *policy_get;
	store_policy_put_fn *policy_put;
	store_entry_put_fn *entry_put;
	store_entry_delete_fn *entry_delete;
	store_entry_touch_fn *entry_touch;
	store_entry_expire_fn *entry_expire;     /* NULL: entry_delete */
	store_entry_scan_fn *entry_scan;
	store_response_read_fn *response_read;
	store_entry_text_fn *entry_text;
	store_watch_fn *watch;                   /* NULL: -ENOTSUP */
	store_quota_enforce_fn *quota_enforce;   /* NULL: -ENOTSUP */
};

struct store {
	const struct store_ops *ops;
};

extern const struct store_ops store_local_ops;
extern const struct store_ops store_redis_ops;
/* store_check_options for a rediss:// store: the TLS files load (redis/tls.c) */
int store_redis_tls_check(const struct store_options *opts, char *err,
			  size_t errlen);

/* For backends: the checks of store_entry_put's arguments they share
 * (-EINVAL). */
int store_payload_check(const struct store_entry *e,
			const struct store_payload *p);

/* For backends: *out = a malloc'd copy of the n bytes at p (p may be NULL
 * when n is 0) with a NUL after them, *out_len = n when out_len is not
 * NULL; 0, or -ENOMEM with *out NULL. */
int store_copy_out(const void *p, size_t n, char **out, size_t *out_len);

#endif
