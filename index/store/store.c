/*
 * store.c - the store dispatcher: store.h's functions on top of backends.
 *
 * store_open() picks the backend from where the store is: "redis://..." or
 * "rediss://..." is the Redis backend (redis/), anything else a local directory (local/). Every other call goes through the store's ops table
 * (store_i.h); an op a backend leaves NULL answers -ENOTSUP. Besides, the
 * helpers both backends use: the checks of a put's payload
 * (store_payload_check) and handing bytes to a caller (store_copy_out).
 * Nothing else lives here.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_i.h"

int store_open(const char *where, const struct store_options *opts,
	       struct store **out, struct store_report *report, char *err,
	       size_t errlen)
{
	const struct store_ops *ops = &store_local_ops;

	if (!strncmp(where, "redis://", 8) || !strncmp(where, "rediss://", 9))
		ops = &store_redis_ops;
	return ops->open(where, opts, out, report, err, errlen);
}

int store_check_options(const char *where, const struct store_options *opts,
			char *err, size_t errlen)
{
	bool tls = where && !strncmp(where, "rediss://", 9);

	if (!tls && opts && (opts->redis_tls_ca || opts->redis_tls_cert ||
			     opts->redis_tls_key || opts->redis_tls_sni)) {
		/* where is not echoed: it may hold a password */
		snprintf(err, errlen, "redis_tls_ca/cert/key/sni need a rediss:// store (TLS)");
		return -EINVAL;
	}
	return tls ? store_redis_tls_check(opts, err, errlen) : 0;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

const char *store_dir(const struct store *s)
{
	return s->ops->dir(s);
}

int store_category_list(struct store *s,
			int (*cb)(void *arg, const struct store_category *c),
			void *arg)
{
	return s->ops->category_list(s, cb, arg);
}

int store_category_create(struct store *s, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out)
{
	return s->ops->category_create(s, path, mode, uid, gid, id_out);
}

int store_category_delete(struct store *s, int64_t cat_id)
{
	return s->ops->category_delete(s, cat_id);
}

int store_category_setattr(struct store *s, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid)
{
	return s->ops->category_setattr(s, cat_id, mode, uid, gid);
}

int store_policy_get(struct store *s, int64_t cat_id, char **yaml, size_t *len)
{
	return s->ops->policy_get(s, cat_id, yaml, len);
}

int store_policy_put(struct store *s, int64_t cat_id, const char *yaml,
		     size_t len)
{
	return s->ops->policy_put(s, cat_id, yaml, len);
}

int store_entry_put(struct store *s, struct store_entry *e,
		    const struct store_payload *p)
{
	return s->ops->entry_put(s, e, p);
}

int store_entry_delete(struct store *s, int64_t id)
{
	return s->ops->entry_delete(s, id);
}

int store_entry_touch(struct store *s, struct store_touch *t, size_t n)
{
	/* a store that keeps what it is given has that as the total */
	for (size_t i = 0; t && i < n; i++)
		t[i].total = t[i].hits;
	return s->ops->entry_touch(s, t, n);
}

int store_entry_expire(struct store *s, int64_t id, int64_t ttl_ms,
		       bool sliding, int64_t now_ms)
{
	if (!s->ops->entry_expire)
		return s->ops->entry_delete(s, id);
	return s->ops->entry_expire(s, id, ttl_ms, sliding, now_ms);
}

int store_entry_scan(struct store *s, int64_t cat_id, int64_t min_id,
		     int (*cb)(void *arg, const struct store_entry *e,
			       const float *vec, int dim, const char *embedder),
		     void *arg)
{
	return s->ops->entry_scan(s, cat_id, min_id, cb, arg);
}

int store_response_read(struct store *s, int64_t id, const uint64_t *key,
			void **buf, size_t *len)
{
	return s->ops->response_read(s, id, key, buf, len);
}

int store_entry_text(struct store *s, int64_t id, char **query,
		     size_t *query_len, char **ctx, size_t *ctx_len)
{
	return s->ops->entry_text(s, id, query, query_len, ctx, ctx_len);
}

int store_watch(struct store *s, store_event_fn cb, void *arg)
{
	return s->ops->watch ? s->ops->watch(s, cb, arg) : -ENOTSUP;
}

int store_quota_enforce(struct store *s, int64_t cat_id,
			const struct store_quota *q, int64_t *evicted,
			size_t max, size_t *n, bool *keep_gone)
{
	*n = 0;
	*keep_gone = false;
	if (!s->ops->quota_enforce)
		return -ENOTSUP;
	return s->ops->quota_enforce(s, cat_id, q, evicted, max, n, keep_gone);
}

bool store_keeps_quotas(const struct store *s)
{
	return s->ops->quota_enforce != NULL;
}

int store_copy_out(const void *p, size_t n, char **out, size_t *out_len)
{
	*out = malloc(n + 1);
	if (!*out)
		return -ENOMEM;
	if (n)
		memcpy(*out, p, n);
	(*out)[n] = '\0';
	if (out_len)
		*out_len = n;
	return 0;
}

int store_payload_check(const struct store_entry *e,
			const struct store_payload *p)
{
	if (!e || !p || !p->embedder || p->dim < 0 || (p->dim && !p->vec) ||
	    (p->query_len && !p->query) || (p->context_len && !p->context) ||
	    (p->response_len && !p->response) || p->query_len > INT_MAX ||
	    p->context_len > INT_MAX ||
	    (size_t)p->dim > INT_MAX / sizeof(float) ||
	    p->response_len > (uint64_t)INT64_MAX)
		return -EINVAL;
	return 0;
}
