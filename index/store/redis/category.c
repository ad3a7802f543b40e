/*
 * category.c - the Redis store's categories and their policies.
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
 * keys in batches of DROP_BATCH entries. The root "/" cannot be deleted
 * (-EBUSY). A policy is the string {cC}:policy, set and removed by one
 * script that checks {cC}:alive and streams the change.
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

int redis_cat_parse(int64_t id, const char *v, struct store_category *c)
{
	unsigned long mode, uid, gid;
	long long created;
	int off = 0;

	if (sscanf(v, "%lu %lu %lu %lld %n", &mode, &uid, &gid, &created,
		   &off) != 4 || !off)
		return -EBADMSG;
	c->id = id;
	c->mode = (mode_t)(mode & 07777);
	c->uid = (uid_t)uid;
	c->gid = (gid_t)gid;
	c->created_ms = created;
	c->path = v + off;
	return 0;
}

struct cat_row {
	struct store_category c;
	char *buf;
};

static int cmp_cat(const void *a, const void *b)
{
	const struct cat_row *x = a, *y = b;

	return (x->c.id > y->c.id) - (x->c.id < y->c.id);
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
			 REDIS_REPLY_ARRAY, -EIO, &r);
	if (ret)
		return ret;
	*rows = calloc(r->elements / 2 + 1, sizeof(**rows));
	if (!*rows) {
		freeReplyObject(r);
		return -ENOMEM;
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		struct cat_row *row = &(*rows)[*n];

		row->buf = strndup(r->element[i + 1]->str,
				   r->element[i + 1]->len);
		if (!row->buf) {
			ret = -ENOMEM;
			break;
		}
		if (redis_cat_parse(strtoll(r->element[i]->str, NULL, 10),
				    row->buf, &row->c)) {
			semlog(SEMLOG_WARN, "store: redis: skipping damaged "
			       "category %s", r->element[i]->str);
			free(row->buf);
			continue;
		}
		(*n)++;
	}
	freeReplyObject(r);
	qsort(*rows, *n, sizeof(**rows), cmp_cat);
	if (ret) {
		for (size_t i = 0; i < *n; i++)
			free((*rows)[i].buf);
		free(*rows);
		*rows = NULL;
		*n = 0;
	}
	return ret;
}

static void cat_rows_free(struct cat_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].buf);
	free(rows);
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

int redis_category_create(struct store *st, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out)
{
	struct store_redis *s = R(st);
	char key[48], packed[64], *full = NULL;
	struct args a = { 0 };
	long long id = -1, done = 0;
	int ret;

	if (!path || path[0] != '/')
		return -EINVAL;
	arg_s(&a, "INCR");
	arg_s(&a, "{semcache}:next_cat");
	ret = rconn_call_int(&s->rc, "{semcache}", &a, "allocate a category id",
			     0, &id);
	if (ret)
		return ret;
	if (id <= 0)
		return -EIO;
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
	ret = rconn_call(&s->rc, key, &a, "create category", 0, 0, NULL);
	if (ret)
		return ret;
	/* 2. the global slot: the category becomes visible */
	snprintf(packed, sizeof(packed), "%lu %lu %lu %lld ",
		 (unsigned long)(mode & 07777), (unsigned long)uid,
		 (unsigned long)gid, (long long)clock_wall_ms());
	if (asprintf(&full, "%s%s", packed, path) < 0)
		return -ENOMEM;
	redis_arg_script(&a, &redis_script_cat_register, "{semcache}");
	arg_i(&a, id);
	arg_s(&a, path);
	arg_s(&a, full);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = rconn_call_int(&s->rc, "{semcache}", &a, "register category", 0,
			     &done);
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

/* Remove everything in a category's slot, in batches. */
static int cat_drop_keys(struct store_redis *s, int64_t id)
{
	char tag[24];
	int ret;

	redis_cat_tag(tag, sizeof(tag), id, "");
	for (;;) {
		struct args a = { 0 };
		long long left = 0;

		redis_arg_script(&a, &redis_script_cat_drop, tag);
		arg_s(&a, tag);
		arg_i(&a, DROP_BATCH);
		ret = rconn_call_int(&s->rc, tag, &a, "delete category entries",
				     0, &left);
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
	struct cat_row *rows;
	redisReply *r = NULL;
	bool root = false;
	size_t n;
	int ret;

	/* the root stays: refuse before touching anything */
	ret = cat_rows(s, &rows, &n);
	for (size_t i = 0; !ret && i < n; i++)
		if (rows[i].c.id == cat_id && !strcmp(rows[i].c.path, "/"))
			root = true;
	cat_rows_free(rows, n);
	if (!ret && root)
		ret = -EBUSY;
	if (ret)
		return ret;
	redis_arg_script(&a, &redis_script_cat_unregister, "{semcache}");
	arg_i(&a, cat_id);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = rconn_call(&s->rc, "{semcache}", &a, "unregister category",
			 REDIS_REPLY_STRING, -ENOENT, &r);
	if (ret)
		return ret;
	if (redis_cat_parse(cat_id, r->str, &c))
		semlog(SEMLOG_WARN, "store: redis: category %lld was damaged",
		       (long long)cat_id);
	freeReplyObject(r);
	/* gone for everyone now; a failure here leaves unreachable keys */
	ret = cat_drop_keys(s, cat_id);
	if (ret)
		semlog(SEMLOG_WARN, "store: redis %s:%d: category %lld deleted but "
		       "its keys {c%lld}:* were not all removed: %s", s->host,
		       s->port, (long long)cat_id, (long long)cat_id,
		       strerror(-ret));
	return 0;
}

int redis_category_setattr(struct store *st, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	char attrs[64];

	snprintf(attrs, sizeof(attrs), "%lu %lu %lu",
		 (unsigned long)(mode & 07777), (unsigned long)uid,
		 (unsigned long)gid);
	redis_arg_script(&a, &redis_script_cat_attr, "{semcache}");
	arg_i(&a, cat_id);
	arg_s(&a, attrs);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	return rconn_call(&s->rc, "{semcache}", &a, "set category attributes",
			  REDIS_REPLY_STRING, -ENOENT, NULL);
}

int redis_policy_get(struct store *st, int64_t cat_id, char **yaml,
		     size_t *len)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	redisReply *r = NULL;
	char key[48];
	int ret;

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
	char tag[24];
	int ret;

	redis_cat_tag(tag, sizeof(tag), cat_id, "");
	redis_arg_script(&a, &redis_script_policy, tag);
	arg_s(&a, tag);
	arg_s(&a, yaml ? "s" : "r");
	arg_b(&a, yaml, yaml ? len : 0);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = rconn_call_int(&s->rc, tag, &a,
			     yaml ? "write policy" : "remove policy", 0, &done);
	if (ret)
		return ret;
	return done == 1 ? 0 : -ENOENT;
}
