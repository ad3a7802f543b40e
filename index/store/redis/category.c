/*
 * category.c - the Redis store's categories and their policies, and the
 * categories this process knows.
 *
 * How: categories live in the global slot ({semcache}:cats id -> "MODE UID
 * GID CREATED_MS PATH", {semcache}:paths path -> id, ids from the INCR
 * counter {semcache}:next_cat, never reused); a category's own keys live in
 * its slot {cC}. Create and delete span the two slots, so each is two
 * steps, ordered so that a crash between them leaves only unreachable keys
 * of an unregistered category: create sets {cC}:alive (puts are accepted
 * from then on) and then registers the path (-EEXIST, atomically, when it
 * is taken: the alive key is dropped again); delete unregisters first (the
 * category is gone for every host at once) and then drops the category's
 * keys in batches of DROP_BATCH entries (what a failure leaves is dropped
 * later, cancel.c). The root "/" cannot be deleted (-EBUSY). A policy is
 * the string {cC}:policy, set and removed by one script that checks
 * {cC}:alive and streams the change. Every reply is checked: ids 1..CAT_MAX
 * and strings where strings belong (-EPROTO otherwise); a category whose
 * value does not parse is skipped with a log line.
 *
 * Known categories: every category this process listed, created, changed
 * or heard of (watch.c), with the highest entry sequence seen in it, in an
 * array sorted by id under s->mu; reset.c rebuilds the store from it, and
 * it gives the owner of entries stored before uids were kept.
 *
 * What not: no path syntax checks beyond a leading '/', no renames.
 */
#include "redis_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int redis_cat_parse(int64_t id, const char *v, size_t len,
		    struct store_category *c)
{
	unsigned long mode, uid, gid;
	long long created;
	int off = 0;

	if (strlen(v) != len ||
	    sscanf(v, "%lu %lu %lu %lld %n", &mode, &uid, &gid, &created,
		   &off) != 4 || !off || v[off] != '/' || uid > UINT32_MAX ||
	    gid > UINT32_MAX)
		return -EBADMSG;
	c->id = id;
	c->mode = (mode_t)(mode & 07777);
	c->uid = (uid_t)uid;
	c->gid = (gid_t)gid;
	c->created_ms = created;
	c->path = v + off;
	return 0;
}

int redis_cat_id(const struct rconn *rc, const redisReply *r,
		 const char *what, int64_t *id)
{
	long long v;
	int ret = r->type == REDIS_REPLY_STRING ?
		  rconn_reply_int(rc, r, 1, CAT_MAX, what, &v) :
		  rconn_bad_reply(rc, what, "a category id that is no string");

	if (!ret)
		*id = v;
	return ret;
}

/* ---- known categories ---- */

static size_t known_find(const struct store_redis *s, int64_t id, bool *hit)
{
	size_t lo = 0, hi = s->nknown;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->known[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*hit = lo < s->nknown && s->known[lo].id == id;
	return lo;
}

int redis_known_set(struct store_redis *s, int64_t id, const char *row)
{
	char *copy = row ? strdup(row) : NULL;
	bool hit;
	size_t i;

	if (row && !copy)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	i = known_find(s, id, &hit);
	if (hit) {
		free(s->known[i].row);
		if (copy) {
			s->known[i].row = copy;
		} else {
			memmove(s->known + i, s->known + i + 1,
				(s->nknown - i - 1) * sizeof(*s->known));
			s->nknown--;
		}
		copy = NULL;
	} else if (copy) {
		if (s->nknown == s->known_cap) {
			size_t cap = s->known_cap ? s->known_cap * 2 : 16;
			struct known_cat *v = realloc(s->known, cap * sizeof(*v));

			if (!v) {
				pthread_mutex_unlock(&s->mu);
				free(copy);
				return -ENOMEM;
			}
			s->known = v;
			s->known_cap = cap;
		}
		memmove(s->known + i + 1, s->known + i,
			(s->nknown - i) * sizeof(*s->known));
		s->known[i] = (struct known_cat){ id, copy, 0 };
		s->nknown++;
		copy = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	free(copy);
	if (!row)
		redis_copy_forget(s, id);   /* a deleted category's local copy */
	return 0;
}

bool redis_known_scanned(struct store_redis *s, int64_t cat)
{
	bool hit, was = true;
	size_t i;

	pthread_mutex_lock(&s->mu);
	i = known_find(s, cat, &hit);
	if (hit) {
		was = s->known[i].scanned;
		s->known[i].scanned = true;
	}
	pthread_mutex_unlock(&s->mu);
	return was;
}

void redis_known_seq(struct store_redis *s, int64_t cat, int64_t seq)
{
	bool hit;
	size_t i;

	pthread_mutex_lock(&s->mu);
	i = known_find(s, cat, &hit);
	if (hit && s->known[i].max_seq < seq)
		s->known[i].max_seq = seq;
	pthread_mutex_unlock(&s->mu);
}

/* The category row of id from the server: *row malloc'd; -ENOENT. */
static int cat_fetch(struct store_redis *s, struct rconn *rc, int64_t id,
		     char **row)
{
	struct args a = { 0 };
	redisReply *r = NULL;
	int ret;

	arg_s(&a, "HGET");
	arg_s(&a, "{semcache}:cats");
	arg_i(&a, id);
	ret = rconn_call(rc, "{semcache}", &a, "read category",
			 REDIS_REPLY_STRING, -ENOENT, &r);
	if (ret)
		return ret;
	ret = store_copy_out(r->str, r->len, row, NULL);
	freeReplyObject(r);
	(void)s;
	return ret;
}

int redis_cat_owner(struct store_redis *s, struct rconn *rc, int64_t cat,
		    uid_t *uid)
{
	struct store_category c;
	char *row = NULL;
	bool hit;
	size_t i;
	int ret;

	pthread_mutex_lock(&s->mu);
	i = known_find(s, cat, &hit);
	if (hit && !redis_cat_parse(cat, s->known[i].row,
				    strlen(s->known[i].row), &c)) {
		*uid = c.uid;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	pthread_mutex_unlock(&s->mu);
	ret = cat_fetch(s, rc, cat, &row);
	if (!ret && redis_cat_parse(cat, row, strlen(row), &c))
		ret = -EBADMSG;
	if (!ret) {
		*uid = c.uid;
		ret = redis_known_set(s, cat, row);
	}
	free(row);
	return ret;
}

/* ---- listing ---- */

struct cat_row {
	struct store_category c;
	char *buf;
};

static int cmp_cat(const void *a, const void *b)
{
	const struct cat_row *x = a, *y = b;

	return (x->c.id > y->c.id) - (x->c.id < y->c.id);
}

static void cat_rows_free(struct cat_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].buf);
	free(rows);
}

/* All categories, sorted by id; *rows malloc'd with each buf. */
static int cat_rows(struct store_redis *s, struct cat_row **rows, size_t *n)
{
	struct args a = { 0 };
	redisReply *r = NULL;
	int ret;

	*rows = NULL;
	*n = 0;
	arg_s(&a, "HGETALL");
	arg_s(&a, "{semcache}:cats");
	ret = rconn_call(&s->rc, "{semcache}", &a, "list categories",
			 REDIS_REPLY_ARRAY, -EPROTO, &r);
	if (ret)
		return ret;
	if (r->elements % 2) {
		freeReplyObject(r);
		return rconn_bad_reply(&s->rc, "list categories",
				       "an odd number of hash members");
	}
	*rows = calloc(r->elements / 2 + 1, sizeof(**rows));
	if (!*rows) {
		freeReplyObject(r);
		return -ENOMEM;
	}
	for (size_t i = 0; !ret && i + 1 < r->elements; i += 2) {
		const redisReply *v = rconn_elem_str(r, i + 1);
		struct cat_row *row = &(*rows)[*n];
		int64_t id;

		ret = redis_cat_id(&s->rc, r->element[i], "list categories", &id);
		if (!ret && !v)
			ret = rconn_bad_reply(&s->rc, "list categories",
					      "a category that is no string");
		if (ret)
			break;
		row->buf = strndup(v->str, v->len);
		if (!row->buf) {
			ret = -ENOMEM;
			break;
		}
		if (redis_cat_parse(id, row->buf, v->len, &row->c)) {
			semlog(SEMLOG_WARN, "store: redis: skipping damaged "
			       "category %lld", (long long)id);
			free(row->buf);
			continue;
		}
		ret = redis_known_set(s, id, row->buf);
		(*n)++;
	}
	freeReplyObject(r);
	qsort(*rows, *n, sizeof(**rows), cmp_cat);
	if (ret) {
		cat_rows_free(*rows, *n);
		*rows = NULL;
		*n = 0;
	}
	return ret;
}

int redis_category_list(struct store *st,
			int (*cb)(void *arg, const struct store_category *c),
			void *arg)
{
	struct cat_row *rows;
	size_t n;
	int ret = cat_rows(R(st), &rows, &n);

	for (size_t i = 0; !ret && i < n; i++)
		ret = cb(arg, &rows[i].c);
	cat_rows_free(rows, n);
	return ret;
}

/* ---- create, delete, attributes ---- */

int redis_category_create(struct store *st, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out)
{
	struct store_redis *s = R(st);
	char key[48], rid[40], *full = NULL;
	struct args a = { 0 };
	long long id = 0, done = 0;
	redisReply *r = NULL;
	int ret;

	if (!path || path[0] != '/')
		return -EINVAL;
	/* taken already: refuse without using up an id */
	arg_s(&a, "HEXISTS");
	arg_s(&a, "{semcache}:paths");
	arg_s(&a, path);
	ret = rconn_call_int(&s->rc, "{semcache}", &a, "look up category", 0, 1,
			     &done);
	if (ret)
		return ret;
	if (done)
		return -EEXIST;
	arg_s(&a, "INCR");
	arg_s(&a, "{semcache}:next_cat");
	ret = rconn_call_int(&s->rc, "{semcache}", &a, "allocate a category id",
			     1, INT64_MAX, &id);
	if (ret)
		return ret;
	if (id > CAT_MAX) {
		semlog(SEMLOG_ERR, "store: redis %s:%d: category ids exhausted",
		       s->host, s->port);
		return -ENOSPC;
	}
	/* 1. the category's slot: puts are accepted from here on */
	redis_cat_tag(key, sizeof(key), id, ":alive");
	arg_s(&a, "SET");
	arg_s(&a, key);
	arg_s(&a, path);
	ret = rconn_call(&s->rc, key, &a, "create category", REDIS_REPLY_STATUS,
			 -EPROTO, NULL);
	if (ret)
		return ret;
	/* 2. the global slot: the category becomes visible */
	if (asprintf(&full, "%lu %lu %lu %lld %s", (unsigned long)(mode & 07777),
		     (unsigned long)uid, (unsigned long)gid,
		     (long long)clock_wall_ms(), path) < 0)
		return -ENOMEM;
	redis_rid(s, rid);
	redis_arg_script(&a, &redis_script_cat_register, "{semcache}", rid);
	arg_i(&a, id);
	arg_s(&a, path);
	arg_s(&a, full);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_once_call(&s->rc, "{semcache}", &a, rid, "register category",
			      REDIS_REPLY_INTEGER, -EPROTO, NULL, &r);
	if (!ret)
		ret = rconn_reply_int(&s->rc, r, 0, 1, "register category", &done);
	freeReplyObject(r);
	if (!ret && done == 1)
		ret = redis_known_set(s, id, full);
	free(full);
	if (ret)
		return ret;
	if (done != 1) {
		arg_s(&a, "DEL");
		arg_s(&a, key);
		rconn_call(&s->rc, key, &a, "drop unused category id", 0, 0,
			   NULL);
		return -EEXIST;
	}
	if (id_out)
		*id_out = id;
	return 0;
}

int redis_cat_drop_keys(struct store_redis *s, struct rconn *rc, int64_t id)
{
	char tag[24];
	int ret;

	redis_cat_tag(tag, sizeof(tag), id, "");
	for (;;) {
		struct args a = { 0 };
		long long left = 0;

		redis_arg_script(&a, &redis_script_cat_drop, tag, NULL);
		arg_s(&a, tag);
		arg_i(&a, DROP_BATCH);
		ret = rconn_call_int(rc, tag, &a, "delete category entries", 0,
				     INT64_MAX, &left);
		if (ret)
			return ret;
		if (!left)
			return 0;
	}
}

int redis_category_delete(struct store *st, int64_t cat_id)
{
	struct store_redis *s = R(st);
	struct store_category c;
	struct args a = { 0 };
	redisReply *r = NULL;
	char *row = NULL, rid[40];
	int ret;

	if (cat_id <= 0 || cat_id > CAT_MAX)
		return -ENOENT;
	/* the root stays: refuse before touching anything */
	ret = cat_fetch(s, &s->rc, cat_id, &row);
	if (!ret && !redis_cat_parse(cat_id, row, strlen(row), &c) &&
	    !strcmp(c.path, "/"))
		ret = -EBUSY;
	free(row);
	if (ret)
		return ret;
	redis_rid(s, rid);
	redis_arg_script(&a, &redis_script_cat_unregister, "{semcache}", rid);
	arg_i(&a, cat_id);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_once_call(&s->rc, "{semcache}", &a, rid,
			      "unregister category", REDIS_REPLY_STRING, -ENOENT,
			      NULL, &r);
	if (ret)
		return ret;
	freeReplyObject(r);
	redis_known_set(s, cat_id, NULL);
	/* gone for everyone now; what is left is dropped later */
	ret = redis_cat_drop_keys(s, &s->rc, cat_id);
	if (ret) {
		semlog(SEMLOG_WARN, "store: redis %s:%d: category %lld deleted; "
		       "its keys {c%lld}:* will be removed later: %s", s->host,
		       s->port, (long long)cat_id, (long long)cat_id,
		       strerror(-ret));
		redis_drop_later(s, cat_id);
	}
	return 0;
}

int redis_category_setattr(struct store *st, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid)
{
	struct store_redis *s = R(st);
	struct store_category c;
	struct args a = { 0 };
	redisReply *r = NULL;
	char attrs[64], rid[40];
	int ret;

	if (cat_id <= 0 || cat_id > CAT_MAX)
		return -ENOENT;
	snprintf(attrs, sizeof(attrs), "%lu %lu %lu",
		 (unsigned long)(mode & 07777), (unsigned long)uid,
		 (unsigned long)gid);
	redis_rid(s, rid);
	redis_arg_script(&a, &redis_script_cat_attr, "{semcache}", rid);
	arg_i(&a, cat_id);
	arg_s(&a, attrs);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_once_call(&s->rc, "{semcache}", &a, rid,
			      "set category attributes", REDIS_REPLY_STRING,
			      -ENOENT, NULL, &r);
	if (ret)
		return ret;
	if (!redis_cat_parse(cat_id, r->str, r->len, &c))
		ret = redis_known_set(s, cat_id, r->str);
	freeReplyObject(r);
	return ret;
}

/* ---- policies ---- */

int redis_policy_get(struct store *st, int64_t cat_id, char **yaml,
		     size_t *len)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	redisReply *r = NULL;
	char key[48];
	int ret;

	*yaml = NULL;
	if (cat_id <= 0 || cat_id > CAT_MAX)
		return -ENOENT;
	redis_cat_tag(key, sizeof(key), cat_id, ":policy");
	arg_s(&a, "GET");
	arg_s(&a, key);
	ret = rconn_call(&s->rc, key, &a, "read policy", REDIS_REPLY_STRING,
			 -ENOENT, &r);
	if (ret)
		return ret;
	ret = store_copy_out(r->str, r->len, yaml, len);
	freeReplyObject(r);
	return ret;
}

int redis_policy_put(struct store *st, int64_t cat_id, const char *yaml,
		     size_t len)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	long long done = 0;
	redisReply *r = NULL;
	char tag[24], rid[40];
	int ret;

	if (cat_id <= 0 || cat_id > CAT_MAX)
		return -ENOENT;
	redis_cat_tag(tag, sizeof(tag), cat_id, "");
	redis_rid(s, rid);
	redis_arg_script(&a, &redis_script_policy, tag, rid);
	arg_s(&a, tag);
	arg_s(&a, yaml ? "s" : "r");
	arg_b(&a, yaml, yaml ? len : 0);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_once_call(&s->rc, tag, &a, rid,
			      yaml ? "write policy" : "remove policy",
			      REDIS_REPLY_INTEGER, -EPROTO, NULL, &r);
	if (!ret)
		ret = rconn_reply_int(&s->rc, r, -1, 1, "write policy", &done);
	freeReplyObject(r);
	if (ret)
		return ret;
	return done == 1 ? 0 : -ENOENT;
}
