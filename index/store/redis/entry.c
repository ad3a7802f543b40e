/*
 * entry.c - the Redis store's entries: put, delete, hit counters, scans,
 * texts and responses.
 *
 * How: an entry is the hash {cC}:e:SEQ with fields m (META_LEN bytes of
 * packed little-endian metadata: created, bytes, key[2], ctx_hash, crc32
 * and dim), h (hits), t (last hit), q (query), c (context, absent = none),
 * v (the vector as host float bytes), em (embedder) and r (the response);
 * its sequence is in the sorted set {cC}:ids. Put, delete and touch are one
 * script each (scripts.c); a scan pages through {cC}:ids SCAN_BATCH entries
 * at a time with the get script. A response is served only when its length
 * and crc32 match the metadata (else -EBADMSG). Touches are sorted by
 * category and sent as one script call per category and 1000 entries.
 *
 * What not: no local response cache, touch is not streamed to the other
 * hosts (it keeps the maximum of every host's counters).
 */
#include "redis_i.h"
#include "bytes.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* m: created bytes key0 key1 ctx_hash (u64 LE each), crc32 (u64 LE of a
 * u32), dim (u64 LE): META_LEN bytes */
static void meta_pack(unsigned char *m, const struct store_entry *e,
		      uint32_t crc, int dim)
{
	bytes_put_le64(m, (uint64_t)e->created_ms);
	bytes_put_le64(m + 8, (uint64_t)e->bytes);
	bytes_put_le64(m + 16, e->key[0]);
	bytes_put_le64(m + 24, e->key[1]);
	bytes_put_le64(m + 32, e->ctx_hash);
	bytes_put_le64(m + 40, (uint64_t)crc | ((uint64_t)(uint32_t)dim << 32));
}

static int meta_unpack(const redisReply *m, struct store_entry *e,
		       uint32_t *crc)
{
	const unsigned char *p = (const unsigned char *)m->str;

	if (m->type != REDIS_REPLY_STRING || m->len != META_LEN)
		return -EBADMSG;
	e->created_ms = (int64_t)bytes_get_le64(p);
	e->bytes = (int64_t)bytes_get_le64(p + 8);
	e->key[0] = bytes_get_le64(p + 16);
	e->key[1] = bytes_get_le64(p + 24);
	e->ctx_hash = bytes_get_le64(p + 32);
	if (crc)
		*crc = (uint32_t)bytes_get_le64(p + 40);
	return 0;
}

int redis_entry_put(struct store *st, struct store_entry *e,
		    const struct store_payload *p)
{
	struct store_redis *s = R(st);
	unsigned char meta[META_LEN];
	struct args a = { 0 };
	long long seq = 0;
	char tag[24];
	int ret;

	if (!e || !p || !p->query || p->dim < 0 || (p->dim && !p->vec) ||
	    e->cat_id <= 0 || e->cat_id > CAT_MAX)
		return -EINVAL;
	e->bytes = (int64_t)p->response_len;
	meta_pack(meta, e, bytes_crc32(p->response, p->response_len), p->dim);
	redis_cat_tag(tag, sizeof(tag), e->cat_id, "");
	redis_arg_script(&a, &redis_script_put, tag);
	arg_s(&a, tag);
	arg_b(&a, meta, sizeof(meta));
	arg_b(&a, p->query, p->query_len);
	arg_s(&a, p->context ? "1" : "0");
	arg_b(&a, p->context, p->context ? p->context_len : 0);
	arg_b(&a, p->vec, sizeof(float) * (size_t)p->dim);
	arg_s(&a, p->embedder ? p->embedder : "");
	arg_b(&a, p->response, p->response_len);
	arg_i(&a, e->hits);
	arg_i(&a, e->last_hit_ms);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	arg_i(&a, e->last_hit_ms > 0 ? e->last_hit_ms : e->created_ms);
	ret = rconn_call_int(&s->rc, tag, &a, "store entry", -EIO, &seq);
	if (ret)
		return ret;
	if (seq <= 0)
		return -ENOENT;   /* no such category */
	e->id = entry_id(e->cat_id, seq);
	return 0;
}

int redis_entry_delete(struct store *st, int64_t id)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	long long done = 0;
	char tag[24];
	int ret;

	if (id <= 0 || !id_cat(id) || !id_seq(id))
		return -ENOENT;
	redis_cat_tag(tag, sizeof(tag), id_cat(id), "");
	redis_arg_script(&a, &redis_script_del, tag);
	arg_s(&a, tag);
	arg_i(&a, id_seq(id));
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = rconn_call_int(&s->rc, tag, &a, "delete entry", 0, &done);
	if (ret)
		return ret;
	return done == 1 ? 0 : -ENOENT;
}

static int cmp_touch_cat(const void *a, const void *b)
{
	const struct store_touch *x = a, *y = b;
	int64_t cx = id_cat(x->id), cy = id_cat(y->id);

	return (cx > cy) - (cx < cy);
}

int redis_entry_touch(struct store *st, const struct store_touch *t,
		      size_t n)
{
	struct store_redis *s = R(st);
	struct store_touch *v;
	int ret = 0;

	if (n && !t)
		return -EINVAL;
	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, t, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_touch_cat);
	for (size_t i = 0; !ret && i < n;) {
		int64_t cat = id_cat(v[i].id);
		struct args a = { 0 };
		char tag[24];

		redis_cat_tag(tag, sizeof(tag), cat, "");
		redis_arg_script(&a, &redis_script_touch, tag);
		arg_s(&a, tag);
		for (size_t j = 0; i < n && id_cat(v[i].id) == cat && j < 1000;
		     i++, j++) {
			arg_i(&a, id_seq(v[i].id));
			arg_i(&a, v[i].hits);
			arg_i(&a, v[i].last_hit_ms);
		}
		ret = rconn_call(&s->rc, tag, &a, "record hits", 0, 0, NULL);
	}
	free(v);
	return ret;
}

int redis_get_group(int64_t cat, redisReply **f, store_scan_cb *cb,
		    void *arg)
{
	struct store_entry e = { 0 };
	float *vec = NULL;
	char *emb;
	int dim, ret;

	e.id = entry_id(cat, strtoll(f[0]->str, NULL, 10));
	e.cat_id = cat;
	if (meta_unpack(f[1], &e, NULL)) {
		semlog(SEMLOG_WARN, "store: redis: entry %lld has damaged "
		       "metadata; skipped", (long long)e.id);
		return 0;
	}
	e.hits = strtoll(f[2]->str ? f[2]->str : "0", NULL, 10);
	e.last_hit_ms = strtoll(f[3]->str ? f[3]->str : "0", NULL, 10);
	dim = (int)(f[4]->len / sizeof(float));
	if (dim) {
		/* the reply's bytes need not be float-aligned */
		vec = malloc(f[4]->len);
		if (!vec)
			return -ENOMEM;
		memcpy(vec, f[4]->str, (size_t)dim * sizeof(float));
	}
	emb = strndup(f[5]->str ? f[5]->str : "", f[5]->len);
	if (!emb) {
		free(vec);
		return -ENOMEM;
	}
	ret = cb(arg, &e, vec, dim, emb);
	free(vec);
	free(emb);
	return ret;
}

/* Call cb for each group of a get script reply with an id above min_id. */
static int get_reply_each(int64_t cat, const redisReply *r,
			  store_scan_cb *cb, void *arg, int64_t min_id)
{
	for (size_t i = 1; i + 6 <= r->elements; i += 6) {
		int ret;

		if (entry_id(cat, strtoll(r->element[i]->str, NULL, 10)) <= min_id)
			continue;
		ret = redis_get_group(cat, r->element + i, cb, arg);
		if (ret)
			return ret;
	}
	return 0;
}

int redis_entry_scan(struct store *st, int64_t cat_id, int64_t min_id,
		     store_scan_cb *cb, void *arg)
{
	struct store_redis *s = R(st);
	int64_t lo = min_id > 0 ? id_seq(min_id) - 1 : 0;
	char tag[24];

	if (lo < 0)
		lo = 0;
	redis_cat_tag(tag, sizeof(tag), cat_id, "");
	for (;;) {
		struct args a = { 0 };
		redisReply *r = NULL;
		int ret;

		redis_arg_script(&a, &redis_script_get, tag);
		arg_s(&a, tag);
		arg_s(&a, "r");
		arg_i(&a, lo);
		arg_i(&a, SCAN_BATCH);
		/* a reply that is no array ends the scan like the last page */
		ret = rconn_call(&s->rc, tag, &a, "scan entries",
				 REDIS_REPLY_ARRAY, 0, &r);
		if (ret)
			return ret;
		if (!r || !r->elements ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    !r->element[0]->len) {
			if (r)
				freeReplyObject(r);
			return 0;
		}
		lo = strtoll(r->element[0]->str, NULL, 10);
		ret = get_reply_each(cat_id, r, cb, arg, min_id);
		freeReplyObject(r);
		if (ret)
			return ret;
	}
}

/* HMGET of an entry's fields; -ENOENT when it is gone. */
static int entry_fields(struct store_redis *s, int64_t id, const char *f1,
			const char *f2, const char *f3, redisReply **out)
{
	struct args a = { 0 };
	char key[64];
	int ret;

	if (id <= 0 || !id_cat(id) || !id_seq(id))
		return -ENOENT;
	snprintf(key, sizeof(key), "{c%lld}:e:%lld", (long long)id_cat(id),
		 (long long)id_seq(id));
	arg_s(&a, "HMGET");
	arg_s(&a, key);
	arg_s(&a, f1);
	arg_s(&a, f2);
	arg_s(&a, f3);
	ret = rconn_call(&s->rc, key, &a, "read entry", REDIS_REPLY_ARRAY,
			 -ENOENT, out);
	if (ret)
		return ret;
	if ((*out)->elements != 3 ||
	    (*out)->element[0]->type != REDIS_REPLY_STRING) {
		freeReplyObject(*out);
		*out = NULL;
		return -ENOENT;
	}
	return 0;
}

int redis_response_read(struct store *st, int64_t id, void **buf,
			size_t *len)
{
	struct store_redis *s = R(st);
	struct store_entry e = { 0 };
	redisReply *r = NULL;
	char *copy;
	uint32_t crc;
	int ret = entry_fields(s, id, "m", "r", "m", &r);

	if (ret)
		return ret;
	if (meta_unpack(r->element[0], &e, &crc) ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    (int64_t)r->element[1]->len != e.bytes ||
	    bytes_crc32(r->element[1]->str, r->element[1]->len) != crc) {
		semlog(SEMLOG_ERR, "store: redis %s:%d: response of entry %lld "
		       "fails its checksum", s->host, s->port, (long long)id);
		freeReplyObject(r);
		return -EBADMSG;
	}
	ret = store_copy_out(r->element[1]->str, r->element[1]->len, &copy,
			     len);
	*buf = copy;
	freeReplyObject(r);
	return ret;
}

int redis_entry_text(struct store *st, int64_t id, char **query,
		     size_t *query_len, char **ctx, size_t *ctx_len)
{
	redisReply *r = NULL;
	int ret = entry_fields(R(st), id, "m", "q", "c", &r);

	if (ret)
		return ret;
	if (query)
		ret = store_copy_out(r->element[1]->str, r->element[1]->len,
				     query, query_len);
	if (ctx) {
		*ctx = NULL;
		if (ctx_len)
			*ctx_len = 0;
		if (!ret && r->element[2]->type == REDIS_REPLY_STRING)
			ret = store_copy_out(r->element[2]->str,
					     r->element[2]->len, ctx, ctx_len);
	}
	if (ret && query) {
		free(*query);
		*query = NULL;
	}
	freeReplyObject(r);
	return ret;
}
