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
	ret = redis_scmd(s, "{semcache}", &a, &r, "list categories");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return -EIO;
	}
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
		if (redis_cat_parse(strtoll(r->element[i]->str, NULL, 10), row->buf,
			      &row->c)) {
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

int redis_category_create(struct store *st, const char *path,
				 mode_t mode, uid_t uid, gid_t gid,
				 int64_t *id_out)
{
	struct store_redis *s = R(st);
	char key[48], packed[64], *full = NULL;
	struct args a = { 0 };
	redisReply *r = NULL;
	int64_t id;
	int ret;

	if (!path || path[0] != '/')
		return -EINVAL;
	arg_s(&a, "INCR");
	arg_s(&a, "{semcache}:next_cat");
	ret = redis_scmd(s, "{semcache}", &a, &r, "allocate a category id");
	args_release(&a);
	if (ret)
		return ret;
	id = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	freeReplyObject(r);
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
	ret = redis_scmd(s, key, &a, NULL, "create category");
	args_release(&a);
	if (ret)
		return ret;
	/* 2. the global slot: the category becomes visible */
	snprintf(packed, sizeof(packed), "%lu %lu %lu %lld ",
		 (unsigned long)(mode & 07777), (unsigned long)uid,
		 (unsigned long)gid, (long long)clock_wall_ms());
	if (asprintf(&full, "%s%s", packed, path) < 0)
		return -ENOMEM;
	arg_eval(&a, redis_lua_cat_register, 4);
	arg_s(&a, "{semcache}:paths");
	arg_s(&a, "{semcache}:cats");
	arg_s(&a, "{semcache}:stream");
	arg_s(&a, "{semcache}:evseq");
	arg_i(&a, id);
	arg_s(&a, path);
	arg_s(&a, full);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_scmd(s, "{semcache}", &a, &r, "register category");
	args_release(&a);
	free(full);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -EEXIST;
	freeReplyObject(r);
	if (ret) {
		arg_s(&a, "DEL");
		arg_s(&a, key);
		redis_scmd(s, key, &a, NULL, "drop unused category id");
		args_release(&a);
		return ret;
	}
	if (id_out)
		*id_out = id;
	return 0;
}

/* Remove everything in a category's slot, in batches. */
static int cat_drop_keys(struct store_redis *s, int64_t id)
{
	char tag[24], k[11][48];
	static const char *const sfx[11] = { ":alive", ":ids", ":policy",
					     ":stream", ":evseq", ":next",
					     ":lru", ":lfu", ":bytes", ":qok",
					     ":evicted" };
	int ret;

	redis_cat_tag(tag, sizeof(tag), id, "");
	for (int i = 0; i < 11; i++)
		redis_cat_tag(k[i], sizeof(k[i]), id, sfx[i]);
	for (;;) {
		struct args a = { 0 };
		redisReply *r = NULL;

		arg_eval(&a, redis_lua_cat_drop, 11);
		for (int i = 0; i < 11; i++)
			arg_s(&a, k[i]);
		arg_s(&a, tag);
		arg_i(&a, DROP_BATCH);
		ret = redis_scmd(s, tag, &a, &r, "delete category entries");
		args_release(&a);
		if (ret)
			return ret;
		long long left = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
		freeReplyObject(r);
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
	int ret;

	arg_eval(&a, redis_lua_cat_unregister, 4);
	arg_s(&a, "{semcache}:paths");
	arg_s(&a, "{semcache}:cats");
	arg_s(&a, "{semcache}:stream");
	arg_s(&a, "{semcache}:evseq");
	arg_i(&a, cat_id);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	/* the root stays: refuse before touching anything */
	{
		struct cat_row *rows;
		size_t n;
		bool root = false;

		ret = cat_rows(s, &rows, &n);
		for (size_t i = 0; !ret && i < n; i++)
			if (rows[i].c.id == cat_id && !strcmp(rows[i].c.path, "/"))
				root = true;
		cat_rows_free(rows, n);
		if (!ret && root)
			ret = -EBUSY;
		if (ret) {
			args_release(&a);
			return ret;
		}
	}
	ret = redis_scmd(s, "{semcache}", &a, &r, "unregister category");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return -ENOENT;
	}
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

int redis_category_setattr(struct store *st, int64_t cat_id,
				  mode_t mode, uid_t uid, gid_t gid)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	redisReply *r = NULL;
	char attrs[64];
	int ret;

	snprintf(attrs, sizeof(attrs), "%lu %lu %lu",
		 (unsigned long)(mode & 07777), (unsigned long)uid,
		 (unsigned long)gid);
	arg_eval(&a, redis_lua_cat_attr, 3);
	arg_s(&a, "{semcache}:cats");
	arg_s(&a, "{semcache}:stream");
	arg_s(&a, "{semcache}:evseq");
	arg_i(&a, cat_id);
	arg_s(&a, attrs);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_scmd(s, "{semcache}", &a, &r, "set category attributes");
	args_release(&a);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_STRING ? 0 : -ENOENT;
	freeReplyObject(r);
	return ret;
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
	ret = redis_scmd(s, key, &a, &r, "read policy");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return -ENOENT;
	}
	*yaml = malloc(r->len + 1);
	if (!*yaml) {
		freeReplyObject(r);
		return -ENOMEM;
	}
	memcpy(*yaml, r->str, r->len);
	(*yaml)[r->len] = 0;
	if (len)
		*len = r->len;
	freeReplyObject(r);
	return 0;
}

int redis_policy_put(struct store *st, int64_t cat_id, const char *yaml,
			    size_t len)
{
	struct store_redis *s = R(st);
	static const char *const sfx[4] = { ":alive", ":policy", ":stream",
					    ":evseq" };
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], k[4][48];
	int ret;

	redis_cat_tag(tag, sizeof(tag), cat_id, "");
	arg_eval(&a, redis_lua_policy, 4);
	for (int i = 0; i < 4; i++) {
		redis_cat_tag(k[i], sizeof(k[i]), cat_id, sfx[i]);
		arg_s(&a, k[i]);
	}
	arg_s(&a, tag);
	arg_s(&a, yaml ? "s" : "r");
	arg_b(&a, yaml, yaml ? len : 0);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = redis_scmd(s, tag, &a, &r, yaml ? "write policy" : "remove policy");
	args_release(&a);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -ENOENT;
	freeReplyObject(r);
	return ret;
}
