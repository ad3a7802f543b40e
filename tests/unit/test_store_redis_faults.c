/*
 * test_store_redis_faults.c - the Redis backend when the server or the
 * network misbehaves, against real redis-server processes on loopback and
 * the fault proxy tests/tools/redis_chaos.py in front of them:
 *  - a paused server (SIGSTOP) fails every call of several threads within
 *    the command timeout, and a stalled command does not hold up others
 *    (the connection pool);
 *  - a put whose connection closes after it ran is sent again and stored
 *    once (request ids);
 *  - a put whose reply is not its own (corrupted, wrong type, negative,
 *    zero, not RESP, made up, a LOADING error after a resend) fails and is
 *    never left stored: the watcher cancels it;
 *  - negative, zero and out-of-range ids and replies of the wrong shape
 *    from every command are refused with -EPROTO, never used; random
 *    garbage for any command never crashes;
 *  - a fake cluster's MOVED / ASK redirects and CLUSTER SLOTS maps with
 *    slots or ports out of range are refused, the map kept;
 *  - entries keep their filler's uid, older entries read back with the
 *    category's owner;
 *  - FLUSHALL behind the stores' backs: detected, categories restored
 *    under their ids, RESYNC delivered, fills work again, new ids differ
 *    from every old one;
 *  - puts with NULL pointers and lengths are refused as by the local
 *    store, a refused create uses up no id, a category whose stored value
 *    is damaged can still be deleted;
 *  - two stores on one URL get local state directories of their own.
 * Skips (exit 77) without redis-server or python3.
 */
#include "check.h"
#include "store_i.h"
#include "redis_i.h"   /* the scripts, to match their calls by hash */

#include "redis_test.h"

#define TIMEOUT_MS 1000

static const struct store_options quick = { .redis_timeout_ms = TIMEOUT_MS };

static int64_t mkcat(struct store *st, const char *path)
{
	int64_t id = 0;

	CHECK_EQ_INT(OPS.category_create(st, path, 0755, 1000, 1000, &id), 0);
	return id;
}

/* ---- the pool: a paused server, a stalled command ---- */

struct reader {
	struct store *st;
	int64_t id;
	int ret;
	int64_t took_us;
};

static void *read_thread(void *arg)
{
	struct reader *r = arg;
	int64_t t0 = mono_us();
	void *buf = NULL;
	size_t len;

	r->ret = OPS.response_read(r->st, r->id, NULL, &buf, &len);
	r->took_us = mono_us() - t0;
	free(buf);
	return NULL;
}

static void test_paused(struct srv *srv)
{
	enum { N = 8 };
	char err[256];
	int ret;
	struct store *a = open_with(srv->port, &quick, err, sizeof(err), &ret);
	struct reader rd[N];
	pthread_t t[N];
	int64_t cat, ids[N], worst = 0;
	int timeouts = 0;

	CHECK(a != NULL);
	if (!a)
		return;
	cat = mkcat(a, "/paused");
	for (int i = 0; i < N; i++)
		CHECK_EQ_INT(put(a, cat, (uint64_t)i, "answer", 6, &ids[i]), 0);
	kill(srv->pid, SIGSTOP);
	for (int i = 0; i < N; i++) {
		rd[i] = (struct reader){ a, ids[i], 0, 0 };
		pthread_create(&t[i], NULL, read_thread, &rd[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		timeouts += rd[i].ret == -ETIMEDOUT;
		if (rd[i].took_us > worst)
			worst = rd[i].took_us;
	}
	kill(srv->pid, SIGCONT);
	printf("paused server: %d reads from %d threads (pool 4, timeout %d ms): "
	       "%d timed out, slowest %.0f ms\n", N, N, TIMEOUT_MS, timeouts,
	       worst / 1000.0);
	CHECK_EQ_INT(timeouts, N);
	/* each within its own timeout (+ slack), not behind the others' */
	CHECK(worst < 2 * TIMEOUT_MS * 1000);
	/* and the store works again once the server does */
	void *buf = NULL;
	size_t len = 0;
	ret = -1;
	for (int64_t end = mono_us() + 3000000; ret && mono_us() < end;
	     pause_ms(20)) {
		ret = OPS.response_read(a, ids[0], NULL, &buf, &len);
		free(buf);
		buf = NULL;
	}
	CHECK_EQ_INT(ret, 0);
	OPS.close(a);
}

static void test_stall_alone(struct srv *srv, struct chaos *cx)
{
	char err[256];
	int ret;
	struct store *a = open_with(cx->port, &quick, err, sizeof(err), &ret);
	struct reader slow, fast;
	pthread_t ts, tf;
	int64_t cat, ids[2];

	CHECK(a != NULL);
	if (!a)
		return;
	cat = mkcat(a, "/stall");
	CHECK_EQ_INT(put(a, cat, 1, "one", 3, &ids[0]), 0);
	CHECK_EQ_INT(put(a, cat, 2, "two", 3, &ids[1]), 0);
	/* the next read of entry 1's response gets no answer at all */
	char match[64];
	snprintf(match, sizeof(match), "{c%lld}:e:%lld", (long long)cat,
		 (long long)(ids[0] >> 24));
	CHECK(chaos_rule(cx, match, "stall", 1, 0, NULL));
	slow = (struct reader){ a, ids[0], 0, 0 };
	fast = (struct reader){ a, ids[1], 0, 0 };
	pthread_create(&ts, NULL, read_thread, &slow);
	pause_ms(100);
	pthread_create(&tf, NULL, read_thread, &fast);
	pthread_join(tf, NULL);
	pthread_join(ts, NULL);
	printf("a stalled read took %.0f ms (%s); another read meanwhile %.1f "
	       "ms (%s)\n", slow.took_us / 1000.0, strerror(-slow.ret),
	       fast.took_us / 1000.0, strerror(-fast.ret));
	CHECK_EQ_INT(slow.ret, -ETIMEDOUT);
	CHECK(slow.took_us < 2 * TIMEOUT_MS * 1000);
	CHECK_EQ_INT(fast.ret, 0);
	CHECK(fast.took_us < TIMEOUT_MS * 1000 / 2);
	chaos_clear(cx);
	OPS.close(a);
	(void)srv;
}

/* ---- puts: resent once, confirmed, cancelled ---- */

/*
 * A chaos rule on the calls of script sc. They go by its SHA-1 (EVALSHA),
 * which the rule matches; the script is loaded first (SCRIPT LOAD, which
 * also checks the store's SHA-1 against the server's), so that a call the
 * rule lets through runs instead of answering NOSCRIPT.
 */
static bool script_rule(struct chaos *cx, const struct redis_script *sc,
			const char *mode, int count, int skip, const char *arg)
{
	redisReply *r = cmd1(cx->port, "SCRIPT LOAD %s", sc->src);
	char sha[41];
	bool ok;

	redis_sha1_hex(sc->src, strlen(sc->src), sha);
	ok = r && r->type == REDIS_REPLY_STRING && r->len == 40 &&
	     !memcmp(r->str, sha, 40);
	freeReplyObject(r);
	return ok && chaos_rule(cx, sha, mode, count, skip, arg);
}

static void test_resend_once(struct chaos *cx, int port)
{
	char err[256];
	int ret;
	struct store *a = open_at(cx->port, err, sizeof(err), &ret);
	int64_t cat, id = 0;

	CHECK(a != NULL);
	if (!a)
		return;
	cat = mkcat(a, "/resend");
	/* the put runs, then its connection closes before the reply */
	CHECK(script_rule(cx, &redis_script_put, "drop", 1, 0, NULL));
	CHECK_EQ_INT(put(a, cat, 5, "once", 4, &id), 0);
	CHECK(id > 0);
	chaos_clear(cx);
	char key[48];
	snprintf(key, sizeof(key), "{c%lld}:ids", (long long)cat);
	/* resent on a new connection, stored once, under the id returned */
	CHECK_EQ_INT(rint_of(port, "ZCARD %s", key), 1);
	CHECK_EQ_INT(count_entries(a, cat), 1);
	void *buf = NULL;
	size_t len = 0;
	CHECK_EQ_INT(OPS.response_read(a, id, NULL, &buf, &len), 0);
	CHECK(len == 4 && buf && !memcmp(buf, "once", 4));
	free(buf);
	OPS.close(a);
}

static void test_unconfirmed_puts(struct chaos *cx, int port)
{
	static const struct { const char *mode, *arg; bool ran; } cases[] = {
		{ "negate", NULL, true },
		{ "zero", NULL, true },
		{ "big", NULL, true },
		{ "wrongtype", NULL, true },
		{ "garbage", NULL, true },
		{ "raw", NULL, true },
		{ "reply", ":5\\r\\n", true },
		{ "reply", "*2\\r\\n$3\\r\\nabc\\r\\n:5\\r\\n", true },
		{ "fake", ":5\\r\\n", false },
		{ "fake", "*2\\r\\n$1\\r\\nx\\r\\n:-3\\r\\n", false },
		{ "fake", "-ERR chaos\\r\\n", false },
		{ "stall", NULL, false },
	};
	char err[256], key[48];
	int ret;
	struct store *a = open_with(cx->port, &quick, err, sizeof(err), &ret);
	int64_t cat;
	int acked = 0, stored_after = 0;

	CHECK(a != NULL);
	if (!a)
		return;
	/* the watcher settles what failed; it talks to the server directly
	 * here only through the proxy too */
	struct evlog l = { .mu = PTHREAD_MUTEX_INITIALIZER };
	CHECK_EQ_INT(OPS.watch(a, ev_cb, &l), 0);
	cat = mkcat(a, "/confirm");
	snprintf(key, sizeof(key), "{c%lld}:ids", (long long)cat);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t id = 0;

		CHECK(script_rule(cx, &redis_script_put, cases[i].mode, 1, 0, cases[i].arg));
		ret = put(a, cat, 100 + i, "unconfirmed", 11, &id);
		chaos_clear(cx);
		if (ret == 0) {
			acked++;
			fprintf(stderr, "a put acknowledged with the reply "
				"changed by '%s' (id %lld)\n", cases[i].mode,
				(long long)id);
		}
		CHECK(ret < 0);
	}
	CHECK_EQ_INT(acked, 0);
	/* whatever ran is cancelled as soon as the server answers again */
	for (int64_t end = mono_us() + 8000000; mono_us() < end; pause_ms(20))
		if ((stored_after = (int)rint_of(port, "ZCARD %s", key)) == 0)
			break;
	printf("puts with a reply not their own: %zu refused, %d acknowledged, "
	       "%d left stored after the watcher's round\n",
	       sizeof(cases) / sizeof(cases[0]), acked, stored_after);
	CHECK_EQ_INT(stored_after, 0);
	/* and a put now works */
	CHECK_EQ_INT(put(a, cat, 1, "fine", 4, NULL), 0);
	CHECK_EQ_INT(rint_of(port, "ZCARD %s", key), 1);
	OPS.close(a);
	free(l.v);
}

/* The put runs, its connection closes, the resend finds the server
 * loading: the fill fails, and the put that ran must not stay. */
static void test_loading_after_resend(struct chaos *cx, int port)
{
	char err[256], key[48];
	int ret;
	struct store *a = open_with(cx->port, &quick, err, sizeof(err), &ret);
	struct store *b = open_at(port, err, sizeof(err), &ret);
	struct evlog la = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct evlog lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	int64_t cat, id = 0;
	long long left = -1;

	CHECK(a && b);
	if (!a || !b)
		return;
	cat = mkcat(a, "/loading");
	CHECK_EQ_INT(OPS.watch(a, ev_cb, &la), 0);
	CHECK_EQ_INT(OPS.watch(b, ev_cb, &lb), 0);
	CHECK(script_rule(cx, &redis_script_put, "drop", 1, 0, NULL));
	CHECK(script_rule(cx, &redis_script_put, "fake", 1, 0,
			 "-LOADING Redis is loading the dataset in memory\\r\\n"));
	ret = put(a, cat, 9, "loading", 7, &id);
	CHECK_EQ_INT(ret, -EIO);
	chaos_clear(cx);
	snprintf(key, sizeof(key), "{c%lld}:ids", (long long)cat);
	for (int64_t end = mono_us() + 5000000; mono_us() < end; pause_ms(20))
		if ((left = rint_of(port, "ZCARD %s", key)) == 0)
			break;
	CHECK_EQ_INT(left, 0);
	/* host b heard of it and then of its removal */
	bool put_seen = false, del_seen = false;
	for (int64_t end = mono_us() + 3000000; !del_seen && mono_us() < end;
	     pause_ms(20)) {
		pthread_mutex_lock(&lb.mu);
		for (size_t i = 0; i < lb.n; i++) {
			if (lb.v[i].ev.entry.cat_id != cat)
				continue;
			put_seen |= lb.v[i].ev.kind == STORE_EV_ENTRY_PUT;
			del_seen |= lb.v[i].ev.kind == STORE_EV_ENTRY_DELETE;
		}
		pthread_mutex_unlock(&lb.mu);
	}
	printf("a put that ran before its connection closed, resent into "
	       "LOADING: failed with %s, %lld left stored, other host saw "
	       "put %d delete %d\n", strerror(-ret), left, put_seen, del_seen);
	CHECK(!put_seen || del_seen);
	OPS.close(b);
	OPS.close(a);
	free(la.v);
	free(lb.v);
}

/* ---- ids and shapes ---- */

static void test_bad_ids(struct chaos *cx)
{
	char err[256];
	int ret;
	struct store *a = open_with(cx->port, &quick, err, sizeof(err), &ret);
	int64_t cat, id, v[8];
	size_t n;
	bool gone;
	struct cat_find f = { "/", 0, 0, 0 };

	CHECK(a != NULL);
	if (!a)
		return;
	cat = mkcat(a, "/ids");
	CHECK_EQ_INT(put(a, cat, 1, "x", 1, &id), 0);
	CHECK_EQ_INT(put(a, cat, 2, "y", 1, NULL), 0);
	/* category ids */
	CHECK(chaos_rule(cx, "HGETALL", "negate", 1, 0, NULL));
	CHECK_EQ_INT(OPS.category_list(a, cat_cb, &f), -EPROTO);
	CHECK(chaos_rule(cx, "HGETALL", "zero", 1, 0, NULL));
	CHECK_EQ_INT(OPS.category_list(a, cat_cb, &f), -EPROTO);
	CHECK(chaos_rule(cx, "HGETALL", "fake", 1, 0,
			 "*2\r\n:5\r\n$12\r\n493 0 0 1 /x\r\n"));
	CHECK_EQ_INT(OPS.category_list(a, cat_cb, &f), -EPROTO);
	CHECK(chaos_rule(cx, "HGETALL", "fake", 1, 0,
			 "*2\r\n$8\r\n16777216\r\n$12\r\n493 0 0 1 /x\r\n"));
	CHECK_EQ_INT(OPS.category_list(a, cat_cb, &f), -EPROTO);
	CHECK(chaos_rule(cx, "HGETALL", "fake", 1, 0, "*1\r\n$1\r\n7\r\n"));
	CHECK_EQ_INT(OPS.category_list(a, cat_cb, &f), -EPROTO);
	CHECK(chaos_rule(cx, "INCR", "negate", 1, 0, NULL));
	CHECK_EQ_INT(OPS.category_create(a, "/neg", 0755, 0, 0, NULL), -EPROTO);
	CHECK(chaos_rule(cx, "INCR", "zero", 1, 0, NULL));
	CHECK_EQ_INT(OPS.category_create(a, "/zero", 0755, 0, 0, NULL), -EPROTO);
	/* sequences in scans */
	CHECK(script_rule(cx, &redis_script_get, "negate", 1, 0, NULL));
	CHECK_EQ_INT(count_entries(a, cat), -EPROTO);
	CHECK(script_rule(cx, &redis_script_get, "fake", 1, 0, "$2\r\nno\r\n"));
	CHECK_EQ_INT(count_entries(a, cat), -EPROTO);
	/* a server that answers the same page again cannot make a scan loop */
	CHECK(script_rule(cx, &redis_script_get, "fake", -1, 0,
			 "*1\r\n$1\r\n0\r\n"));
	CHECK_EQ_INT(count_entries(a, cat), -EPROTO);
	chaos_clear(cx);
	/* fields of an entry */
	CHECK(chaos_rule(cx, "HMGET", "fake", 1, 0, "*3\r\n:1\r\n:2\r\n:3\r\n"));
	void *buf = NULL;
	size_t len;
	CHECK_EQ_INT(OPS.response_read(a, id, NULL, &buf, &len), -EPROTO);
	CHECK(chaos_rule(cx, "HMGET", "fake", 1, 0, "*1\r\n$1\r\nm\r\n"));
	CHECK_EQ_INT(OPS.response_read(a, id, NULL, &buf, &len), -EPROTO);
	char *y = NULL;
	size_t yl;
	CHECK_EQ_INT(OPS.policy_put(a, cat, "ttl: 1h\n", 8), 0);
	CHECK(chaos_rule(cx, "GET", "wrongtype", 1, 0, NULL));
	CHECK_EQ_INT(OPS.policy_get(a, cat, &y, &yl), -EPROTO);
	CHECK(y == NULL);
	/* a policy write whose reply is another request's */
	CHECK(script_rule(cx, &redis_script_policy, "fake", 1, 0,
			 "*2\r\n$5\r\nother\r\n:1\r\n"));
	CHECK_EQ_INT(OPS.policy_put(a, cat, "ttl: 2h\n", 8), -EPROTO);
	chaos_clear(cx);
	CHECK_EQ_INT(count_entries(a, cat), 2);
	/* evicted ids (the eviction itself happened: one entry is left) */
	CHECK(script_rule(cx, &redis_script_quota, "negate", 1, 0, NULL));
	ret = OPS.quota_enforce(a, cat, &(struct store_quota){ .entries = 1 },
				v, 8, &n, &gone);
	CHECK_EQ_INT(ret, -EPROTO);
	CHECK_EQ_INT(n, 0);
	chaos_clear(cx);
	CHECK_EQ_INT(count_entries(a, cat), 1);
	OPS.close(a);
}

struct garbage_ctx {
	struct store *st;
	int64_t cat, id;
};

/* One store call, chosen by k; returns its result. */
static int any_call(struct garbage_ctx *g, int k)
{
	struct cat_find f = { "/", 0, 0, 0 };
	struct store_touch t = { g->id, 5, 1 };
	int64_t v[8];
	size_t n, len, ql, cl;
	bool gone;
	void *buf = NULL;
	char *q = NULL, *c = NULL, *y = NULL;
	int64_t nid = 0;
	int ret;

	switch (k % 10) {
	case 0: return OPS.category_list(g->st, cat_cb, &f);
	case 1: return put(g->st, g->cat, (uint64_t)k, "g", 1, &nid);
	case 2: return count_entries(g->st, g->cat) < 0 ? -EPROTO : 0;
	case 3:
		ret = OPS.response_read(g->st, g->id, NULL, &buf, &len);
		free(buf);
		return ret;
	case 4:
		ret = OPS.entry_text(g->st, g->id, &q, &ql, &c, &cl);
		free(q);
		free(c);
		return ret;
	case 5: return OPS.entry_touch(g->st, &t, 1);
	case 6:
		return OPS.quota_enforce(g->st, g->cat,
					 &(struct store_quota){ .entries = 50 },
					 v, 8, &n, &gone);
	case 7:
		ret = OPS.policy_get(g->st, g->cat, &y, &len);
		free(y);
		return ret;
	case 8: return OPS.category_setattr(g->st, g->cat, 0755, 1000, 1000);
	default: return OPS.entry_delete(g->st, (int64_t)k << 24 | g->cat);
	}
}

static void test_garbage(struct chaos *cx)
{
	char err[256];
	int ret;
	struct store *a = open_with(cx->port, &quick, err, sizeof(err), &ret);
	struct evlog l = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct garbage_ctx g;
	int bad = 0, failed = 0;

	CHECK(a != NULL);
	if (!a)
		return;
	g.st = a;
	g.cat = mkcat(a, "/garbage");
	CHECK_EQ_INT(put(a, g.cat, 1, "x", 1, &g.id), 0);
	CHECK_EQ_INT(OPS.watch(a, ev_cb, &l), 0);
	/* every command's reply replaced by a random one, in turn, while
	 * the watcher runs through the same proxy */
	for (int k = 0; k < 400; k++) {
		CHECK(chaos_rule(cx, "*", k % 3 ? "garbage" : "raw", 1,
				 (int)((unsigned)k * 7 % 3), NULL));
		ret = any_call(&g, k);
		failed += ret < 0;
		bad += ret > 0 || ret < -4095;
		chaos_clear(cx);
	}
	printf("400 calls with garbage replies: %d failed, none crashed\n",
	       failed);
	CHECK_EQ_INT(bad, 0);
	CHECK(failed > 100);
	/* the store is whole afterwards */
	ret = -1;
	for (int64_t end = mono_us() + 3000000; ret && mono_us() < end;
	     pause_ms(20))
		ret = OPS.category_setattr(a, g.cat, 0750, 1000, 1000);
	CHECK_EQ_INT(ret, 0);
	OPS.close(a);
	free(l.v);
}

/* ---- a fake cluster: redirects and slot maps ---- */

static void test_fake_cluster(struct chaos *cx)
{
	char err[256], map[160], moved[96];
	int ret;
	struct store *a;
	int64_t cat;

	/* the proxy is the only node of a cluster that owns every slot */
	snprintf(map, sizeof(map), "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n"
		 "$9\r\n127.0.0.1\r\n:%d\r\n", cx->port);
	CHECK(chaos_rule(cx, "CLUSTER SLOTS", "fake", -1, 0, map));
	a = open_with(cx->port, &quick, err, sizeof(err), &ret);
	CHECK_EQ_INT(ret, 0);
	if (!a) {
		chaos_clear(cx);
		return;
	}
	cat = mkcat(a, "/cluster");
	static const char *const bad[] = {
		"-MOVED 99999 127.0.0.1:%d\\r\\n",
		"-MOVED -5 127.0.0.1:%d\\r\\n",
		"-MOVED 16384 127.0.0.1:%d\\r\\n",
		"-ASK 4294967296 127.0.0.1:%d\\r\\n",
		"-MOVED 12 127.0.0.1:0\\r\\n",
		"-MOVED 12 127.0.0.1:99999\\r\\n",
		"-ASK 12 127.0.0.1:-1\\r\\n",
		"-MOVED 12 bad/host:%d\\r\\n",
		"-MOVED 12\\r\\n",
		"-ASK 12\\r\\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(moved, sizeof(moved), bad[i], cx->port);
		CHECK(script_rule(cx, &redis_script_put, "fake", 1, 0, moved));
		ret = put(a, cat, i, "r", 1, NULL);
		if (ret != -EPROTO)
			fprintf(stderr, "redirect '%s': %d\n", moved, ret);
		CHECK_EQ_INT(ret, -EPROTO);
	}
	/* a valid MOVED to this node reloads the map; a map with slots or
	 * ports out of range is refused and the old one kept */
	static const char *const maps[] = {
		"*1\\r\\n*3\\r\\n:-100\\r\\n:5\\r\\n*2\\r\\n$9\\r\\n127.0.0.1\\r\\n:%d\\r\\n",
		"*1\\r\\n*3\\r\\n:0\\r\\n:99999\\r\\n*2\\r\\n$9\\r\\n127.0.0.1\\r\\n:%d\\r\\n",
		"*1\\r\\n*3\\r\\n:9\\r\\n:3\\r\\n*2\\r\\n$9\\r\\n127.0.0.1\\r\\n:%d\\r\\n",
		"*1\\r\\n*3\\r\\n:0\\r\\n:16383\\r\\n*2\\r\\n$9\\r\\n127.0.0.1\\r\\n$5\\r\\n%d\\r\\n",
		"*1\\r\\n*3\\r\\n:0\\r\\n:16383\\r\\n*2\\r\\n:7\\r\\n:%d\\r\\n",
		"*1\\r\\n*2\\r\\n:0\\r\\n:16383\\r\\n",
		"*1\\r\\n:%d\\r\\n",
	};
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		char m[200];
		int64_t id = 0;
		void *buf = NULL;
		size_t len = 0;

		chaos_clear(cx);
		snprintf(m, sizeof(m), maps[i], cx->port);
		CHECK(chaos_rule(cx, "CLUSTER SLOTS", "fake", -1, 0, m));
		snprintf(moved, sizeof(moved), "-MOVED 12 127.0.0.1:%d\\r\\n",
			 cx->port);
		CHECK(script_rule(cx, &redis_script_put, "fake", 1, 0, moved));
		/* followed to the same node, which then runs it */
		CHECK_EQ_INT(put(a, cat, 50 + i, "moved", 5, &id), 0);
		CHECK_EQ_INT(OPS.response_read(a, id, NULL, &buf, &len), 0);
		CHECK(len == 5 && buf && !memcmp(buf, "moved", 5));
		free(buf);
	}
	chaos_clear(cx);
	OPS.close(a);
}

/* ---- uids ---- */

static void test_uids(int port)
{
	char err[256], key[64];
	int ret;
	struct store *a = open_at(port, err, sizeof(err), &ret);
	struct store *b = open_at(port, err, sizeof(err), &ret);
	struct evlog lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct scan_ctx *sc = calloc(1, sizeof(*sc));
	int64_t cat, id1, id2;

	CHECK(a && b && sc);
	if (!a || !b || !sc)
		return;
	CHECK_EQ_INT(OPS.category_create(a, "/uids", 01777, 4242, 4242, &cat), 0);
	CHECK_EQ_INT(OPS.watch(b, ev_cb, &lb), 0);
	CHECK_EQ_INT(put_as(a, cat, 1, "mine", 4, &id1, 1234), 0);
	CHECK_EQ_INT(put_as(a, cat, 2, "yours", 5, &id2, 0), 0);
	CHECK_EQ_INT(OPS.entry_scan(b, cat, 0, scan_cb, sc), 0);
	CHECK_EQ_INT(sc->n, 2);
	CHECK_EQ_INT(sc->first.uid, 1234);
	/* the other host hears both with their uids */
	int heard = 0;
	for (int64_t end = mono_us() + 3000000; heard < 2 && mono_us() < end;
	     pause_ms(10)) {
		heard = 0;
		pthread_mutex_lock(&lb.mu);
		for (size_t i = 0; i < lb.n; i++)
			if (lb.v[i].ev.kind == STORE_EV_ENTRY_PUT)
				heard += (lb.v[i].ev.entry.id == id1 &&
					  lb.v[i].ev.entry.uid == 1234) ||
					 (lb.v[i].ev.entry.id == id2 &&
					  lb.v[i].ev.entry.uid == 0);
		pthread_mutex_unlock(&lb.mu);
	}
	CHECK_EQ_INT(heard, 2);
	/* an entry stored before uids were kept: its metadata is 48 bytes */
	snprintf(key, sizeof(key), "{c%lld}:e:%lld", (long long)cat,
		 (long long)(id1 >> 24));
	redisReply *r = cmd1(port, "HGET %s m", key);
	CHECK(r && r->type == REDIS_REPLY_STRING && r->len == 56);
	if (r && r->type == REDIS_REPLY_STRING && r->len == 56) {
		struct timeval tv = { 1, 0 };
		redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
		redisReply *w = redisCommand(c, "HSET %s m %b", key, r->str,
					     (size_t)48);
		freeReplyObject(w);
		redisFree(c);
	}
	freeReplyObject(r);
	memset(sc, 0, sizeof(*sc));
	CHECK_EQ_INT(OPS.entry_scan(b, cat, 0, scan_cb, sc), 0);
	CHECK_EQ_INT(sc->n, 2);
	CHECK_EQ_INT(sc->first.uid, 4242);   /* the category's owner */
	free(sc);
	OPS.close(b);
	OPS.close(a);
	free(lb.v);
}

/* ---- a reset store ---- */

static int resyncs(struct evlog *l)
{
	int n;

	pthread_mutex_lock(&l->mu);
	n = l->resyncs;
	pthread_mutex_unlock(&l->mu);
	return n;
}

static void test_reset(int port)
{
	char err[256];
	int ret;
	struct store *a = open_at(port, err, sizeof(err), &ret);
	struct store *b = open_at(port, err, sizeof(err), &ret);
	struct evlog la = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct evlog lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	int64_t cat, root, id_old, id_new, cat2;
	mode_t mode;

	CHECK(a && b);
	if (!a || !b)
		return;
	cat = mkcat(a, "/kept");
	CHECK_EQ_INT(OPS.category_setattr(a, cat, 0710, 77, 88), 0);
	root = cat_lookup(a, "/", NULL);
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(put(a, cat, (uint64_t)i, "old", 3, &id_old), 0);
	CHECK_EQ_INT(OPS.watch(a, ev_cb, &la), 0);
	CHECK_EQ_INT(OPS.watch(b, ev_cb, &lb), 0);
	pause_ms(200);
	redisReply *r = cmd1(port, "FLUSHALL %s", "SYNC");
	freeReplyObject(r);
	bool both = false;
	for (int64_t end = mono_us() + 6000000; !both && mono_us() < end;
	     pause_ms(20))
		both = resyncs(&la) >= 1 && resyncs(&lb) >= 1;
	CHECK(both);
	/* the categories are back under their ids, with their attributes */
	CHECK_EQ_INT(cat_lookup(b, "/", NULL), root);
	CHECK_EQ_INT(cat_lookup(b, "/kept", &mode), cat);
	CHECK_EQ_INT(mode, 0710);
	/* the entries are gone; fills work again, under new ids */
	CHECK_EQ_INT(count_entries(b, cat), 0);
	CHECK_EQ_INT(put(a, cat, 1, "new", 3, &id_new), 0);
	CHECK(id_new > id_old);
	CHECK_EQ_INT(count_entries(b, cat), 1);
	/* a category made now is new to every host, and heard of */
	size_t before = ev_count(&lb);
	CHECK_EQ_INT(OPS.category_create(a, "/after", 0755, 0, 0, &cat2), 0);
	CHECK(cat2 > cat && cat2 > root);
	bool heard = false;
	for (int64_t end = mono_us() + 3000000; !heard && mono_us() < end;
	     pause_ms(10)) {
		pthread_mutex_lock(&lb.mu);
		for (size_t i = before; i < lb.n; i++)
			heard |= lb.v[i].ev.kind == STORE_EV_CATEGORY_CREATE &&
				 lb.v[i].ev.category.id == cat2;
		pthread_mutex_unlock(&lb.mu);
	}
	CHECK(heard);
	/* one reset, one resync each */
	pause_ms(1200);
	CHECK_EQ_INT(resyncs(&la), 1);
	CHECK_EQ_INT(resyncs(&lb), 1);
	printf("FLUSHALL: both hosts resynchronised, categories back under "
	       "their ids, new entry id %lld > old %lld, new category %lld\n",
	       (long long)id_new, (long long)id_old, (long long)cat2);
	OPS.close(b);
	OPS.close(a);
	free(la.v);
	free(lb.v);
}

/* ---- smaller contracts ---- */

static void test_small(int port)
{
	char err[256], key[48];
	int ret;
	struct store *a = open_at(port, err, sizeof(err), &ret);
	struct store_entry e = { 0 };
	struct store_payload p = { .query = "q", .query_len = 1,
				   .embedder = "builtin-v1",
				   .response = NULL, .response_len = 5 };
	int64_t cat, cat2;
	long long before;

	CHECK(a != NULL);
	if (!a)
		return;
	/* a put both backends refuse alike: a NULL response with a length */
	e.cat_id = cat = mkcat(a, "/small");
	CHECK_EQ_INT(OPS.entry_put(a, &e, &p), -EINVAL);
	p.response = "r";
	p.embedder = NULL;
	CHECK_EQ_INT(OPS.entry_put(a, &e, &p), -EINVAL);
	/* a create refused with -EEXIST uses up no category id */
	before = rint_of(port, "GET %s", "{semcache}:next_cat");
	CHECK_EQ_INT(OPS.category_create(a, "/small", 0755, 0, 0, NULL), -EEXIST);
	CHECK_EQ_INT(rint_of(port, "GET %s", "{semcache}:next_cat"), before);
	/* a damaged category value: its delete still frees the path */
	CHECK_EQ_INT(OPS.category_create(a, "/damaged", 0755, 0, 0, &cat2), 0);
	snprintf(key, sizeof(key), "%lld", (long long)cat2);
	{
		struct timeval tv = { 1, 0 };
		redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
		redisReply *r = redisCommand(c, "HSET {semcache}:cats %s garbage",
					     key);

		freeReplyObject(r);
		redisFree(c);
	}
	CHECK_EQ_INT(OPS.category_delete(a, cat2), 0);
	CHECK_EQ_INT(OPS.category_create(a, "/damaged", 0755, 0, 0, &cat2), 0);
	OPS.close(a);
}

/* ---- local state ---- */

static void test_state_dirs(int port)
{
	enum { N = 9 };
	struct store *st[N] = { 0 };
	char err[512];
	int ret, opened = 0, distinct = 1;

	for (int i = 0; i < N; i++) {
		st[i] = open_at(port, err, sizeof(err), &ret);
		if (st[i])
			opened++;
		else
			CHECK_EQ_INT(ret, -EBUSY);
	}
	CHECK_EQ_INT(opened, 8);
	for (int i = 0; i < opened; i++)
		for (int j = 0; j < i; j++)
			distinct &= strcmp(OPS.dir(st[i]), OPS.dir(st[j])) != 0;
	CHECK(distinct);
	CHECK(strstr(err, "already use") != NULL);
	printf("9 stores on one URL: 8 local state directories, the 9th: %s\n",
	       err);
	char first[PATH_MAX];
	snprintf(first, sizeof(first), "%s", st[0] ? OPS.dir(st[0]) : "");
	for (int i = 0; i < N; i++)
		OPS.close(st[i]);
	/* freed again: a restarted store gets the first one back */
	st[0] = open_at(port, err, sizeof(err), &ret);
	CHECK(st[0] && !strcmp(OPS.dir(st[0]), first));
	OPS.close(st[0]);
}

int main(void)
{
	struct srv s = { 0 };
	struct chaos cx = { 0 };
	char cmd[PATH_MAX + 16];

	int ret;

	if (system("command -v python3 >/dev/null 2>&1") != 0) {
		printf("store_redis_faults: SKIP: needs python3 (the fault "
		       "proxy)\n");
		return 77;
	}
	ret = redis_test_begin("store_redis_faults", &s);
	if (ret)
		return ret;
	if (!chaos_start(&cx, s.port)) {
		srv_kill(&s);
		return 1;
	}
	test_paused(&s);
	test_stall_alone(&s, &cx);
	test_resend_once(&cx, s.port);
	test_unconfirmed_puts(&cx, s.port);
	test_loading_after_resend(&cx, s.port);
	test_bad_ids(&cx);
	test_garbage(&cx);
	test_fake_cluster(&cx);
	test_uids(s.port);
	test_reset(s.port);
	test_small(s.port);
	test_state_dirs(s.port);
	chaos_stop(&cx);
	srv_kill(&s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (!check_failed && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
	return check_done("store_redis_faults");
}
