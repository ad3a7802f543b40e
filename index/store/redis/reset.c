/*
 * reset.c - the Redis store's epoch: noticing that the data was reset
 * behind the daemons' backs (FLUSHALL, FLUSHDB, a server restarted
 * without persistence) and rebuilding what the hosts need to go on.
 *
 * How: {semcache}:epoch holds a random value written when the store is
 * created (or first opened by a version that keeps epochs). Each process
 * remembers the epoch it works in; the watcher reads the key on every full
 * sweep (once a second, and right after it reconnects). Gone or changed
 * (in two reads in a row) means every key may be gone: categories,
 * counters, streams. Then the
 * process re-registers every category it knows (category.c), with its old
 * id, path, mode and owner, unless its id or path is taken by now; moves
 * the category id counter and each category's entry sequence counter
 * RESET_CAT_GAP / RESET_SEQ_GAP past the highest ids it has seen, so that
 * no new id can equal one that any host may still hold in memory; and
 * writes a new epoch unless another host did first (SET NX), adopting
 * whichever is there. The watcher then re-reads the stream positions and
 * delivers STORE_EV_RESYNC, whose reload drops the entries and policies
 * that are gone: after a reset the categories stay (empty, their policies
 * lost), the cache's entries are gone, and fills into the categories work
 * again. Every host does the same; each step is idempotent.
 *
 * What not: a category deleted just before the reset by a host whose
 * deletion another host had not yet seen comes back; a category created
 * on a fresh host after the reset but before an older host noticed it may
 * take a path that host restores under another id (that host then keeps
 * its old id for the path until it restarts). Policies and entries are not
 * restored (they are data the reset removed).
 */
#include "redis_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define EPOCH_KEY "{semcache}:epoch"

/* ARGV path minseq: the category's slot made live again (alive) with its
 * sequence counter at least minseq */
static const char lua_restore_slot[] =
	"redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
	"local n = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
	"if n < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end\n"
	"return 1\n";
static const struct redis_script restore_slot = { lua_restore_slot, {
	":alive", ":next" }, false, false, REDIS_SCRIPT_ID };

/* ARGV id path row minid: category id registered again unless its id or
 * path is taken; the id counter at least minid. 1 restored, 0 taken. */
static const char lua_restore_cat[] =
	"local n = tonumber(redis.call('GET', KEYS[3]) or '0') or 0\n"
	"if n < tonumber(ARGV[4]) then redis.call('SET', KEYS[3], ARGV[4]) end\n"
	"if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 or"
	" redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 0 end\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
	"redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])\n"
	"return 1\n";
static const struct redis_script restore_cat = { lua_restore_cat, {
	":paths", ":cats", ":next_cat" }, false, false, REDIS_SCRIPT_ID };

/* The epoch now: *out NUL-terminated (size 40), "" when there is none. */
static int epoch_get(struct rconn *rc, char *out)
{
	struct args a = { 0 };
	redisReply *r = NULL;
	int ret;

	*out = '\0';
	arg_s(&a, "GET");
	arg_s(&a, EPOCH_KEY);
	ret = rconn_call(rc, "{semcache}", &a, "read the store's epoch",
			 REDIS_REPLY_STRING, 0, &r);
	if (ret || !r)
		return ret;
	if (!r->len || r->len >= 40 || strlen(r->str) != r->len)
		ret = rconn_bad_reply(rc, "read the store's epoch",
				      "not a short string");
	else
		memcpy(out, r->str, r->len + 1);
	freeReplyObject(r);
	return ret;
}

/* Write a new epoch unless there is one, then read what is there. */
static int epoch_new(struct rconn *rc, char *out)
{
	struct args a = { 0 };
	uint64_t v = 0;
	char val[40];
	int ret;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint64_t)clock_mono_ms() * 2654435761u;
	snprintf(val, sizeof(val), "%016llx-%llx", (unsigned long long)v,
		 (unsigned long long)clock_wall_ms());
	arg_s(&a, "SET");
	arg_s(&a, EPOCH_KEY);
	arg_s(&a, val);
	arg_s(&a, "NX");
	ret = rconn_call(rc, "{semcache}", &a, "write the store's epoch", 0, 0,
			 NULL);
	if (!ret)
		ret = epoch_get(rc, out);
	if (!ret && !*out)
		ret = rconn_bad_reply(rc, "write the store's epoch",
				      "the epoch is not there after SET");
	return ret;
}

int redis_epoch_open(struct store_redis *s)
{
	char e[40];
	int ret = epoch_get(&s->rc, e);

	if (!ret && !*e)
		ret = epoch_new(&s->rc, e);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->mu);
	memcpy(s->epoch, e, sizeof(e));
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Register category k again (both slots); 1 restored, 0 taken. */
static int restore_one(struct store_redis *s, struct rconn *rc,
		       const struct known_cat *k, int64_t min_cat)
{
	struct store_category c;
	struct args a = { 0 };
	long long done = 0;
	char tag[24];
	int ret;

	if (redis_cat_parse(k->id, k->row, strlen(k->row), &c))
		return 0;
	redis_cat_tag(tag, sizeof(tag), k->id, "");
	redis_arg_script(&a, &restore_slot, tag, NULL);
	arg_s(&a, c.path);
	arg_i(&a, k->max_seq + RESET_SEQ_GAP);
	ret = rconn_call(rc, tag, &a, "restore a category", REDIS_REPLY_INTEGER,
			 -EPROTO, NULL);
	if (ret)
		return ret;
	redis_arg_script(&a, &restore_cat, "{semcache}", NULL);
	arg_i(&a, k->id);
	arg_s(&a, c.path);
	arg_s(&a, k->row);
	arg_i(&a, min_cat);
	ret = rconn_call_int(rc, "{semcache}", &a, "restore a category", 0, 1,
			     &done);
	if (!ret && !done)
		semlog(SEMLOG_WARN, "store: redis %s:%d: after the reset, "
		       "category '%s' (id %lld) is taken by another; not "
		       "restored", s->host, s->port, c.path, (long long)k->id);
	return ret ? ret : (int)done;
}

int redis_reset_check(struct store_redis *s, struct rconn *rc)
{
	struct known_cat *v = NULL;
	char now[40], again[40], was[40];
	int64_t min_cat = 0;
	size_t n = 0;
	int ret = epoch_get(rc, now), restored = 0;

	if (ret)
		return ret;
	pthread_mutex_lock(&s->mu);
	memcpy(was, s->epoch, sizeof(was));
	pthread_mutex_unlock(&s->mu);
	if (!strcmp(now, was))
		return 0;
	/* one odd reply is no reset: a second read must agree */
	ret = epoch_get(rc, again);
	if (ret || strcmp(now, again))
		return ret;
	pthread_mutex_lock(&s->mu);
	if (strcmp(now, was)) {
		v = calloc(s->nknown ? s->nknown : 1, sizeof(*v));
		for (size_t i = 0; v && i < s->nknown; i++) {
			v[i] = s->known[i];
			v[i].row = strdup(s->known[i].row);
			if (!v[i].row) {
				n = i;
				ret = -ENOMEM;
				break;
			}
			n = i + 1;
		}
		if (!v)
			ret = -ENOMEM;
	}
	pthread_mutex_unlock(&s->mu);
	if (!strcmp(now, was) || ret)
		goto out;
	semlog(SEMLOG_ERR, "store: redis %s:%d: the store was reset behind "
	       "this host's back (epoch '%s' is %s%s); restoring %zu categories, "
	       "their entries and policies are lost", s->host, s->port, was,
	       *now ? "now " : "gone", now, n);
	for (size_t i = 0; i < n; i++)
		if (v[i].id + RESET_CAT_GAP > min_cat)
			min_cat = v[i].id + RESET_CAT_GAP;
	for (size_t i = 0; !ret && i < n; i++) {
		ret = restore_one(s, rc, &v[i], min_cat);
		if (ret > 0)
			restored++;
		ret = ret < 0 ? ret : 0;
	}
	if (!ret)
		ret = *now ? 0 : epoch_new(rc, now);
	if (ret)
		goto out;
	pthread_mutex_lock(&s->mu);
	memcpy(s->epoch, now, sizeof(now));
	pthread_mutex_unlock(&s->mu);
	semlog(SEMLOG_INFO, "store: redis %s:%d: %d categories restored, epoch "
	       "'%s'", s->host, s->port, restored, now);
	ret = 1;
out:
	for (size_t i = 0; i < n; i++)
		free(v[i].row);
	free(v);
	return ret;
}
