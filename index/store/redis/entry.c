/*
 * entry.c - the Redis store's entries: put, delete, hit counters, scans,
 * texts and responses.
 *
 * How: an entry is the hash {cC}:e:SEQ with fields m (META2_LEN bytes of
 * packed little-endian metadata: created, bytes, key[2], ctx_hash, crc32
 * and dim, the filler's uid), h (hits), t (last hit), q (query), c
 * (context, absent = none), v (the vector as host float bytes), em
 * (embedder), r (the response) and i (its put's request id); its sequence
 * is in the sorted set {cC}:ids. Entries stored before uids were kept have
 * META_LEN bytes of m and are read back with the category's owner. Put,
 * delete and touch are one script each (scripts.c); a scan pages through
 * {cC}:ids SCAN_BATCH entries at a time with the get script (a scan from
 * id 0 starts from the local copy when it can and writes a new one:
 * resume.c). A response is
 * served only when its length and crc32 match the metadata (else
 * -EBADMSG). Touches are sorted by category and sent as one script call
 * per category and 1000 entries; each sends this host's own count of every
 * entry, which the script turns into a sum over the hosts that counts a
 * resent batch once (scripts.c), and reads the sums back. Expiry is one
 * script too, which judges the entry's age itself (entry_expire), so that
 * one host decides it and the others learn it from the stream.
 *
 * A put is acknowledged only when its reply is its own ({ request id,
 * sequence } with the sequence in 1..SEQ_MAX). A put that reached the
 * server but was not acknowledged (a timeout, a lost connection, a reply
 * that is not its own, an error after a resend) may still have run, or may
 * run later (a paused server): it is handed to cancel.c, which removes it
 * from the store as soon as the store answers, so that a fill reported as
 * failed is never served by another host for long.
 *
 * What not: no local response cache; a touch streams the sums it changed
 * (one 'h' event per call, watch.c), not each hit.
 */
#include "redis_i.h"
#include "bytes.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM_MAX 65536

/* m: created bytes key0 key1 ctx_hash (u64 LE each), crc32 | dim << 32
 * (u64 LE), uid (u64 LE): META2_LEN bytes */
static void meta_pack(unsigned char *m, const struct store_entry *e,
		      uint32_t crc, int dim)
{
	bytes_put_le64(m, (uint64_t)e->created_ms);
	bytes_put_le64(m + 8, (uint64_t)e->bytes);
	bytes_put_le64(m + 16, e->key[0]);
	bytes_put_le64(m + 24, e->key[1]);
	bytes_put_le64(m + 32, e->ctx_hash);
	bytes_put_le64(m + 40, (uint64_t)crc | ((uint64_t)(uint32_t)dim << 32));
	bytes_put_le64(m + 48, (uint64_t)e->uid);
}

/* m -> e (owner: the uid of an entry without its own), crc and dim. */
static int meta_unpack(const redisReply *m, struct store_entry *e,
		       uid_t owner, uint32_t *crc, int64_t *dim)
{
	const unsigned char *p = (const unsigned char *)m->str;
	uint64_t uid = owner, cd;

	if (m->type != REDIS_REPLY_STRING ||
	    (m->len != META_LEN && m->len != META2_LEN))
		return -EBADMSG;
	if (m->len == META2_LEN)
		uid = bytes_get_le64(p + 48);
	if (uid > UINT32_MAX || (int64_t)bytes_get_le64(p + 8) < 0)
		return -EBADMSG;
	e->created_ms = (int64_t)bytes_get_le64(p);
	e->bytes = (int64_t)bytes_get_le64(p + 8);
	e->key[0] = bytes_get_le64(p + 16);
	e->key[1] = bytes_get_le64(p + 24);
	e->ctx_hash = bytes_get_le64(p + 32);
	e->uid = (uid_t)uid;
	cd = bytes_get_le64(p + 40);
	if (crc)
		*crc = (uint32_t)cd;
	if (dim)
		*dim = (int64_t)(cd >> 32);
	return 0;
}

int redis_entry_put(struct store *st, struct store_entry *e,
		    const struct store_payload *p)
{
	struct store_redis *s = R(st);
	unsigned char meta[META2_LEN];
	struct args a = { 0 };
	redisReply *r = NULL;
	long long seq = 0;
	char tag[24], rid[40];
	bool sent = false;
	int ret = store_payload_check(e, p);

	if (ret)
		return ret;
	if (e->cat_id <= 0 || e->cat_id > CAT_MAX)
		return -ENOENT;
	e->bytes = (int64_t)p->response_len;
	meta_pack(meta, e, bytes_crc32(p->response, p->response_len), p->dim);
	redis_cat_tag(tag, sizeof(tag), e->cat_id, "");
	redis_rid(s, rid);
	redis_arg_script(&a, &redis_script_put, tag, rid);
	arg_s(&a, tag);
	arg_b(&a, meta, sizeof(meta));
	arg_b(&a, p->query, p->query_len);
	arg_s(&a, p->context ? "1" : "0");
	arg_b(&a, p->context, p->context ? p->context_len : 0);
	arg_b(&a, p->vec, sizeof(float) * (size_t)p->dim);
	arg_s(&a, p->embedder);
	arg_b(&a, p->response, p->response_len);
	arg_i(&a, e->hits);
	arg_i(&a, e->last_hit_ms);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	arg_i(&a, e->last_hit_ms > 0 ? e->last_hit_ms : e->created_ms);
	ret = redis_once_call(&s->rc, tag, &a, rid, "store entry",
			      REDIS_REPLY_INTEGER, -EPROTO, &sent, &r);
	if (!ret)
		ret = rconn_reply_int(&s->rc, r, -1, SEQ_MAX, "store entry", &seq);
	freeReplyObject(r);
	if (!ret && seq == -1)
		return -ENOENT;   /* no such category: nothing was stored */
	if (!ret && seq == 0)
		ret = rconn_bad_reply(&s->rc, "store entry", "sequence 0");
	if (ret) {
		if (sent)
			redis_doubt_add(s, e->cat_id, rid);
		return ret;
	}
	e->id = entry_id(e->cat_id, seq);
	redis_known_seq(s, e->cat_id, seq);
	return 0;
}

/* The del script, or with p the expire script under p (ttl_ms, sliding,
 * now_ms): *done is its result. */
struct expiry { int64_t ttl_ms; bool sliding; int64_t now_ms; };

static int drop_call(struct store_redis *s, int64_t id,
		     const struct expiry *p, long long *done)
{
	const char *what = p ? "expire entry" : "delete entry";
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], rid[40];
	int ret;

	redis_cat_tag(tag, sizeof(tag), id_cat(id), "");
	redis_rid(s, rid);
	redis_arg_script(&a, p ? &redis_script_expire : &redis_script_del, tag,
			 rid);
	arg_s(&a, tag);
	arg_i(&a, id_seq(id));
	if (p) {
		arg_i(&a, p->ttl_ms);
		arg_s(&a, p->sliding ? "1" : "0");
		arg_i(&a, p->now_ms);
	}
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_once_call(&s->rc, tag, &a, rid, what, REDIS_REPLY_INTEGER,
			      -EPROTO, NULL, &r);
	if (!ret)
		ret = rconn_reply_int(&s->rc, r, p ? -1 : 0, 1, what, done);
	freeReplyObject(r);
	return ret;
}

int redis_entry_delete(struct store *st, int64_t id)
{
	long long done = 0;
	int ret;

	if (!id_ok(id))
		return -ENOENT;
	ret = drop_call(R(st), id, NULL, &done);
	if (ret)
		return ret;
	return done == 1 ? 0 : -ENOENT;
}

int redis_entry_expire(struct store *st, int64_t id, int64_t ttl_ms,
		       bool sliding, int64_t now_ms)
{
	struct expiry p = { ttl_ms, sliding, now_ms };
	long long done = 0;
	int ret;

	if (!id_ok(id))
		return -ENOENT;
	if (ttl_ms <= 0 || now_ms < 0)
		return -EINVAL;
	ret = drop_call(R(st), id, &p, &done);
	if (ret)
		return ret;
	return done == 1 ? 0 : done == 0 ? -EAGAIN : -ENOENT;
}

static int cmp_touch_cat(const void *a, const void *b)
{
	const struct store_touch *x = *(struct store_touch *const *)a;
	const struct store_touch *y = *(struct store_touch *const *)b;
	int64_t cx = id_cat(x->id), cy = id_cat(y->id);

	return (cx > cy) - (cx < cy);
}

/* One touch call's reply: (h t) per entry of v[0..n); the store's view
 * goes back into them. */
static int touch_reply(struct store_redis *s, const redisReply *r,
		       struct store_touch **v, size_t n)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n)
		return rconn_bad_reply(&s->rc, "record hits", "not (h t) per entry");
	for (size_t j = 0; j < n; j++) {
		long long h, t;

		if (rconn_reply_int(&s->rc, r->element[2 * j], -1, INT64_MAX,
				    "record hits", &h) ||
		    rconn_reply_int(&s->rc, r->element[2 * j + 1], 0, INT64_MAX,
				    "record hits", &t))
			return -EPROTO;
		v[j]->total = h;
		if (h >= 0)
			v[j]->last_hit_ms = t;
	}
	return 0;
}

int redis_entry_touch(struct store *st, struct store_touch *t, size_t n)
{
	struct store_redis *s = R(st);
	struct store_touch **v;
	int ret = 0;

	if (n && !t)
		return -EINVAL;
	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = &t[i];
	qsort(v, n, sizeof(*v), cmp_touch_cat);
	for (size_t i = 0; !ret && i < n;) {
		int64_t cat = id_cat(v[i]->id);
		struct args a = { 0 };
		redisReply *r = NULL;
		size_t from = i;
		char tag[24];

		redis_cat_tag(tag, sizeof(tag), cat, "");
		redis_arg_script(&a, &redis_script_touch, tag, NULL);
		arg_s(&a, tag);
		arg_s(&a, s->host_id);
		arg_s(&a, HITS_MAXLEN);
		for (size_t j = 0; i < n && id_cat(v[i]->id) == cat && j < 1000;
		     i++, j++) {
			arg_i(&a, id_seq(v[i]->id));
			arg_i(&a, v[i]->hits);
			arg_i(&a, v[i]->last_hit_ms);
		}
		ret = rconn_call(&s->rc, tag, &a, "record hits",
				 REDIS_REPLY_ARRAY, -EPROTO, &r);
		if (!ret)
			ret = touch_reply(s, r, v + from, i - from);
		freeReplyObject(r);
	}
	free(v);
	return ret;
}

int redis_get_reply_check(const struct rconn *rc, const redisReply *r,
			  const char *what)
{
	if (r->type != REDIS_REPLY_ARRAY || !r->elements ||
	    (r->elements - 1) % 6)
		return rconn_bad_reply(rc, what, "not { last, (seq m h t v em)... }");
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING)
			return rconn_bad_reply(rc, what, "a member that is no string");
	return 0;
}

/* A counter field ("" = 0) in 0..INT64_MAX. */
static bool counter(const redisReply *f, int64_t *v)
{
	long long x = 0;

	if (f->len && rconn_reply_int(NULL, f, 0, INT64_MAX, NULL, &x))
		return false;
	*v = x;
	return true;
}

int redis_get_group(struct store_redis *s, int64_t cat, redisReply **f,
		    uid_t owner, store_scan_cb *cb, void *arg)
{
	struct store_entry e = { 0 };
	float *vec = NULL;
	long long seq;
	int64_t dim = 0;
	char *emb;
	int ret;

	ret = rconn_reply_int(&s->rc, f[0], 1, SEQ_MAX, "read entries", &seq);
	if (ret)
		return ret;
	e.id = entry_id(cat, seq);
	e.cat_id = cat;
	if (meta_unpack(f[1], &e, owner, NULL, &dim) ||
	    !counter(f[2], &e.hits) || !counter(f[3], &e.last_hit_ms) ||
	    f[4]->len % sizeof(float) || dim > DIM_MAX ||
	    (int64_t)(f[4]->len / sizeof(float)) != dim) {
		semlog(SEMLOG_WARN, "store: redis: entry %lld is damaged "
		       "(metadata, counters or vector length); skipped",
		       (long long)e.id);
		return 0;
	}
	redis_known_seq(s, cat, seq);
	if (dim) {
		/* the reply's bytes need not be float-aligned */
		vec = malloc(f[4]->len);
		if (!vec)
			return -ENOMEM;
		memcpy(vec, f[4]->str, f[4]->len);
	}
	emb = strndup(f[5]->str, f[5]->len);
	if (!emb) {
		free(vec);
		return -ENOMEM;
	}
	ret = cb(arg, &e, vec, (int)dim, emb);
	free(vec);
	free(emb);
	return ret;
}

int redis_entry_scan(struct store *st, int64_t cat_id, int64_t min_id,
		     store_scan_cb *cb, void *arg)
{
	struct store_redis *s = R(st);
	int64_t lo = min_id > 0 ? id_seq(min_id) - 1 : 0;
	struct redis_copy copy;
	bool copy_ok = false;
	uid_t owner = 0;
	char tag[24];
	int ret;

	if (!cb)
		return -EINVAL;
	if (cat_id <= 0 || cat_id > CAT_MAX)
		return 0;
	ret = redis_cat_owner(s, &s->rc, cat_id, &owner);
	if (ret && ret != -ENOENT && ret != -EBADMSG)
		return ret;
	if (lo < 0)
		lo = 0;
	if (!min_id) {
		bool done = false;

		ret = 0;
		/* the local copy serves the first full read since open (a
		 * restart); later ones (a resync) read Redis */
		if (!redis_known_scanned(s, cat_id))
			ret = redis_resume(s, cat_id, owner, cb, arg, &done);
		if (ret || done)
			return ret;
		/* a copy of what this scan reads, for the next start */
		copy_ok = !redis_copy_begin(s, &s->rc, cat_id, &copy);
	}
	redis_cat_tag(tag, sizeof(tag), cat_id, "");
	for (;;) {
		struct args a = { 0 };
		redisReply *r = NULL;
		long long last;

		redis_arg_script(&a, &redis_script_get, tag, NULL);
		arg_s(&a, tag);
		arg_s(&a, "r");
		arg_i(&a, lo);
		arg_i(&a, SCAN_BATCH);
		ret = rconn_call(&s->rc, tag, &a, "scan entries",
				 REDIS_REPLY_ARRAY, -EPROTO, &r);
		if (!ret)
			ret = redis_get_reply_check(&s->rc, r, "scan entries");
		if (!ret && !r->element[0]->len) {   /* nothing after lo */
			freeReplyObject(r);
			if (copy_ok)
				redis_copy_end(&copy, true);
			return 0;
		}
		if (!ret)
			ret = rconn_reply_int(&s->rc, r->element[0], lo + 1,
					      SEQ_MAX, "scan entries", &last);
		for (size_t i = 1; !ret && i + 6 <= r->elements; i += 6) {
			long long seq;

			ret = rconn_reply_int(&s->rc, r->element[i], lo + 1, last,
					      "scan entries", &seq);
			if (!ret && entry_id(cat_id, seq) > min_id) {
				if (copy_ok)
					redis_copy_add(&copy, seq, r->element + i);
				ret = redis_get_group(s, cat_id, r->element + i,
						      owner, cb, arg);
			}
		}
		freeReplyObject(r);
		if (ret) {
			if (copy_ok)
				redis_copy_end(&copy, false);
			return ret;
		}
		lo = last;   /* strictly more than before: the scan ends */
	}
}

/* HMGET of an entry's fields; -ENOENT when it is gone. Each field is a
 * string or nil (-EPROTO otherwise). */
static int entry_fields(struct store_redis *s, int64_t id, const char *f1,
			const char *f2, const char *f3, redisReply **out)
{
	struct args a = { 0 };
	char key[64];
	int ret;

	*out = NULL;
	if (!id_ok(id))
		return -ENOENT;
	snprintf(key, sizeof(key), "{c%lld}:e:%lld", (long long)id_cat(id),
		 (long long)id_seq(id));
	arg_s(&a, "HMGET");
	arg_s(&a, key);
	arg_s(&a, f1);
	arg_s(&a, f2);
	arg_s(&a, f3);
	ret = rconn_call(&s->rc, key, &a, "read entry", REDIS_REPLY_ARRAY,
			 -EPROTO, out);
	if (ret)
		return ret;
	if ((*out)->elements != 3)
		ret = rconn_bad_reply(&s->rc, "read entry", "not 3 fields");
	for (size_t i = 0; !ret && i < 3; i++)
		if ((*out)->element[i]->type != REDIS_REPLY_STRING &&
		    (*out)->element[i]->type != REDIS_REPLY_NIL)
			ret = rconn_bad_reply(&s->rc, "read entry",
					      "a field that is no string");
	if (!ret && (*out)->element[0]->type == REDIS_REPLY_NIL)
		ret = -ENOENT;
	if (ret) {
		freeReplyObject(*out);
		*out = NULL;
	}
	return ret;
}

int redis_response_read(struct store *st, int64_t id, const uint64_t *key,
			void **buf, size_t *len)
{
	struct store_redis *s = R(st);
	struct store_entry e = { 0 };
	redisReply *r = NULL;
	char *copy;
	uint32_t crc;
	int ret;

	if (!buf || !len)
		return -EINVAL;
	*buf = NULL;
	*len = 0;
	ret = entry_fields(s, id, "m", "r", "m", &r);
	if (ret)
		return ret;
	if (meta_unpack(r->element[0], &e, 0, &crc, NULL) ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    (int64_t)r->element[1]->len != e.bytes ||
	    bytes_crc32(r->element[1]->str, r->element[1]->len) != crc) {
		semlog(SEMLOG_ERR, "store: redis %s:%d: response of entry %lld "
		       "fails its checksum", s->host, s->port, (long long)id);
		freeReplyObject(r);
		return -EBADMSG;
	}
	if (key && (e.key[0] != key[0] || e.key[1] != key[1])) {
		semlog(SEMLOG_WARN, "store: redis %s:%d: entry %lld is another "
		       "question than the one known here (the server lost "
		       "entries and gave their ids out again: a failover or a "
		       "restore?): not served", s->host, s->port, (long long)id);
		freeReplyObject(r);
		return -ENOENT;
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
	int ret;

	if (query)
		*query = NULL;
	if (ctx)
		*ctx = NULL;
	if (ctx_len)
		*ctx_len = 0;
	ret = entry_fields(R(st), id, "m", "q", "c", &r);
	if (ret)
		return ret;
	if (r->element[1]->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return -EBADMSG;
	}
	if (query)
		ret = store_copy_out(r->element[1]->str, r->element[1]->len,
				     query, query_len);
	if (!ret && ctx && r->element[2]->type == REDIS_REPLY_STRING)
		ret = store_copy_out(r->element[2]->str, r->element[2]->len, ctx,
				     ctx_len);
	if (ret && query) {
		free(*query);
		*query = NULL;
	}
	freeReplyObject(r);
	return ret;
}
