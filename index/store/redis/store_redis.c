/*
 * store_redis.c - the Redis backend of store.h (store_redis_ops), shared by
 * every host that mounts the same "redis://HOST:PORT/DB", with a change
 * stream so that each host sees the others' changes.
 *
 * DESIGN
 *
 * Keys. Every key of category C carries the hash tag {cC}, so a category
 * lives in one Redis Cluster slot and each change to it is one Lua script
 * (atomic, replicated and AOF-logged as one unit). Global keys carry
 * {semcache}:
 *   {semcache}:cats      hash  cat id -> "MODE UID GID CREATED_MS PATH"
 *   {semcache}:paths     hash  path -> cat id (makes create -EEXIST atomic)
 *   {semcache}:next_cat  INCR counter of category ids (never reused)
 *   {semcache}:stream    stream of category create/delete/attr events
 *   {semcache}:evseq     count of events ever added to that stream
 *   {cC}:alive           exists while the category does (puts check it)
 *   {cC}:next            INCR counter of the category's entry sequence
 *   {cC}:ids             sorted set of live entry sequences (score = seq)
 *   {cC}:e:SEQ           hash: m (packed meta), h (hits), t (last hit),
 *                        q (query), c (context, absent = none), v (vector,
 *                        host float bytes), em (embedder), r (response)
 *   {cC}:policy          string: the raw policy.yaml
 *   {cC}:stream          stream of entry put/delete and policy events
 *   {cC}:evseq           count of events ever added to that stream
 *   {cC}:lru             sorted set of live sequences by last use (ms of
 *                        the last hit known here, else of the fill)
 *   {cC}:lfu             sorted set by hits + last use / 2^42 (fewest
 *                        hits first, ties to the least recent)
 *   {cC}:bytes           total response bytes of live entries
 *   {cC}:qok             exists once lru, lfu and bytes cover every entry
 *   {cC}:evicted         count of entries ever evicted for quotas
 * An entry id is SEQ << 24 | C: unique for the store's life without a
 * global counter, decodable to its category without a lookup, and
 * increasing within a category in commit order (the per-category counter
 * is bumped inside the put script), so store_entry_scan(min_id) catches up
 * exactly. Hence at most 2^24 - 1 categories over the store's life (then
 * create fails with -ENOSPC) and 2^39 entries per category.
 *
 * Change stream. Each write script also XADDs (MAXLEN ~ STREAM_MAXLEN) an
 * event {h: writer host id, n: evseq, k: kind, ...} to its category's (or
 * the global) stream and PUBLISHes the category's tag on "semcache:ev" as
 * a wake-up hint (Pub/Sub reaches every node of a cluster). The watcher
 * thread keeps its own connections: a subscriber waits for hints with a
 * 100 ms poll, then reads the hinted streams with non-blocking XREAD from
 * the last id seen (one key per XREAD, so it works across slots); every
 * second it reads all streams anyway, so a lost hint costs at most 1 s.
 * An n that does not follow the last one seen (a trimmed stream, a Redis
 * that lost data) makes it re-read the positions and deliver
 * STORE_EV_RESYNC. Positions are taken at open(), so nothing between the
 * engine's initial load and watch() is lost; the price is that such changes
 * may also arrive as events (apply them idempotently). Events written by
 * this instance (its random host id) are read but not delivered, except
 * evictions (see Quotas).
 *
 * Cluster. No hiredis-cluster in Debian 12, so a minimal router: CLUSTER
 * SLOTS at open (a server without cluster support is a single node), our
 * own CRC16 for key slots, MOVED refreshes the map, ASK is followed once.
 * Cluster mode needs DB 0. Category create and delete span the global slot
 * and the category's slot, so they are two steps, ordered so that a crash
 * between them leaves only unreachable keys of an unregistered category.
 *
 * Failure. Connect timeout 1 s, command timeout 2 s (watcher 0.5 s); a node
 * that failed to connect is reported down for 200 ms without retrying, so a
 * dead Redis costs callers a connection refusal, not a wait. A connection
 * found closed (Redis restarted) is retried once with a fresh connect.
 * Errors are -ECONNREFUSED, -ETIMEDOUT, -EIO (logged with the server's
 * address), -ENOSPC for Redis' OOM.
 *
 * Durability is Redis' own: a call returns after the script's reply, which
 * Redis sends after writing its AOF. appendonly yes + appendfsync everysec:
 * acknowledged changes survive a crash of redis-server, up to ~1 s may be
 * lost in a crash of the machine; appendfsync always: they survive both.
 * open() logs a warning when appendonly is off (and, with sync_full, when
 * appendfsync is not always). Redis 7.2's WAITAOF is not used (Debian 12
 * ships 7.0).
 *
 * Quotas. Evictions are decided here, not on any host's view: after a
 * fill (and whenever a host's view is over quota, e.g. a lowered quota) the
 * engine runs LUA_QUOTA, which reads the category's count (ZCARD) and byte
 * total and evicts, in one atomic script, exactly the overflow in the
 * order asked: fifo from {cC}:ids (sequence = commit order), lru and lfu
 * from {cC}:lru / {cC}:lfu, which every put, delete and touch script keeps
 * up to date. Two hosts seeing one overflow thus evict once: the second
 * script finds the category fitting. Each eviction is a 'd' event marked
 * e=1, delivered to every host including the evicting one (its reply may
 * be lost; its engine may be publishing a put event for that very entry),
 * and the script reports whether the entry just filled (keep) still exists,
 * so that a host never keeps an entry another host evicted meanwhile.
 * Recency and hit counts are what the hosts' hit flushes (touch) wrote:
 * up to a flush interval old, times from the hosts' clocks (as ttl already
 * assumes), hits the maximum any host counted; the engine flushes its own
 * hits before asking for an eviction. Categories stored before quotas were
 * kept here get their orders and byte total rebuilt by the first LUA_QUOTA
 * (one pass over the category); entries the order does not know (written
 * by an older daemon) are evicted after the known ones, oldest first.
 *
 * What not: touch keeps the maximum of hits/last hit of all hosts and is
 * not streamed, no local response cache, no TLS or AUTH, no replicas for
 * reads.
 */
#include "store_i.h"

#include "semlog.h"
#include "bytes.h"
#include "clock.h"
#include "fileio.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <zlib.h>

#define CAT_BITS 24
#define CAT_MAX ((INT64_C(1) << CAT_BITS) - 1)
#define STREAM_MAXLEN "100000"
#define HINT_CHANNEL "semcache:ev"
#define CONNECT_MS 1000
#define COMMAND_MS 2000
#define WATCH_COMMAND_MS 500
#define DOWN_MS 200
#define MAX_NODES 32
#define SCAN_BATCH 256
#define DROP_BATCH 500
#define META_LEN 48

/* ---- small helpers ---- */

static int64_t entry_id(int64_t cat, int64_t seq)
{
	return (int64_t)((uint64_t)seq << CAT_BITS) | cat;
}

static int64_t id_cat(int64_t id) { return id & CAT_MAX; }
static int64_t id_seq(int64_t id) { return (int64_t)((uint64_t)id >> CAT_BITS); }

/* CRC16-CCITT (XModem: poly 0x1021, init 0), as Redis Cluster hashes keys. */
static uint16_t crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
					     : (uint16_t)(crc << 1);
	}
	return crc;
}

/* The cluster slot of a key, honouring a {hash tag}. */
static int key_slot(const char *key)
{
	size_t len = strlen(key);
	const char *o = memchr(key, '{', len), *c;

	if (o) {
		c = memchr(o + 1, '}', len - (size_t)(o + 1 - key));
		if (c && c > o + 1)
			return crc16(o + 1, (size_t)(c - o - 1)) & 16383;
	}
	return crc16(key, len) & 16383;
}

/* ---- command arguments ---- */

struct args {
	int n, cap;
	const char **v;
	size_t *l;
	char (*num)[24];   /* backing store of numbers, one per argument */
};

static void args_release(struct args *a)
{
	free(a->v);
	free(a->l);
	free(a->num);
	memset(a, 0, sizeof(*a));
}

static int args_grow(struct args *a)
{
	int cap = a->cap ? a->cap * 2 : 32;
	const char **v = realloc(a->v, sizeof(*v) * (size_t)cap);

	if (!v)
		return -ENOMEM;
	a->v = v;
	size_t *l = realloc(a->l, sizeof(*l) * (size_t)cap);
	if (!l)
		return -ENOMEM;
	a->l = l;
	char (*num)[24] = realloc(a->num, sizeof(*num) * (size_t)cap);
	if (!num)
		return -ENOMEM;
	/* numbers already added point into the old array: re-point them */
	for (int i = 0; i < a->n; i++)
		if (a->v[i] >= a->num[0] && a->v[i] < a->num[0] + 24 * a->cap)
			a->v[i] = num[(a->v[i] - a->num[0]) / 24];
	a->num = num;
	a->cap = cap;
	return 0;
}

/* Arguments are borrowed (only numbers are copied): keep each buffer alive
 * and distinct until the command ran. Errors are sticky: n = -1. */
static void arg_b(struct args *a, const void *p, size_t len)
{
	if (a->n < 0 || (a->n == a->cap && args_grow(a))) {
		a->n = -1;
		return;
	}
	a->v[a->n] = p ? p : "";
	a->l[a->n++] = p ? len : 0;
}

static void arg_s(struct args *a, const char *s) { arg_b(a, s, strlen(s)); }

static void arg_i(struct args *a, int64_t v)
{
	if (a->n < 0 || (a->n == a->cap && args_grow(a))) {
		a->n = -1;
		return;
	}
	int len = snprintf(a->num[a->n], 24, "%lld", (long long)v);
	a->v[a->n] = a->num[a->n];
	a->l[a->n++] = (size_t)len;
}

/* ---- connections: one node, or a cluster through a slot map ---- */

struct rnode {
	char host[256];
	int port;
	redisContext *c;
	int64_t down_until;   /* mono ms: fail fast until then */
	int down_err;
};

/* Not synchronised: its owner's lock guards it. */
struct rconn {
	int db;
	int cmd_ms;
	bool cluster;
	int nnodes;
	struct rnode nodes[MAX_NODES];   /* [0] is the seed */
	uint8_t slot_node[16384];        /* cluster: slot -> nodes[] index */
};

static int ctx_errno(const redisContext *c, int saved)
{
	if (c->err == REDIS_ERR_EOF)
		return -EIO;
	if (saved == ECONNREFUSED || strstr(c->errstr, "refused"))
		return -ECONNREFUSED;
	if (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT ||
	    strstr(c->errstr, "timed out") ||
	    strstr(c->errstr, "temporarily unavailable"))
		return -ETIMEDOUT;
	if (saved == EHOSTUNREACH || saved == ENETUNREACH)
		return -saved;
	return -EIO;
}

static redisContext *ctx_open(const char *host, int port, int cmd_ms, int db,
			      int *ret, char *why, size_t whylen)
{
	struct timeval ct = { CONNECT_MS / 1000, (CONNECT_MS % 1000) * 1000 };
	struct timeval tv = { cmd_ms / 1000, (cmd_ms % 1000) * 1000 };
	redisContext *c;
	redisReply *r;

	errno = 0;
	c = redisConnectWithTimeout(host, port, ct);
	if (!c) {
		*ret = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	if (c->err) {
		*ret = ctx_errno(c, errno);
		snprintf(why, whylen, "%s", c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisEnableKeepAlive(c);
	if (db) {
		r = redisCommand(c, "SELECT %d", db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			*ret = r ? -EINVAL : ctx_errno(c, errno);
			snprintf(why, whylen, "select db %d: %s", db,
				 r ? r->str : c->errstr);
			freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

static void node_drop(struct rnode *n)
{
	if (n->c)
		redisFree(n->c);
	n->c = NULL;
}

static int node_connect(struct rconn *rc, struct rnode *n)
{
	char why[160];
	int ret = 0;

	if (n->c)
		return 0;
	if (n->down_until && clock_mono_ms() < n->down_until)
		return n->down_err;
	n->c = ctx_open(n->host, n->port, rc->cmd_ms, rc->db, &ret, why,
			sizeof(why));
	if (!n->c) {
		if (!n->down_until)
			semlog(SEMLOG_ERR, "store: redis %s:%d: %s; is redis-server "
			       "running and reachable?", n->host, n->port, why);
		n->down_until = clock_mono_ms() + DOWN_MS;
		n->down_err = ret;
		return ret;
	}
	if (n->down_until)
		semlog(SEMLOG_INFO, "store: redis %s:%d: connected again",
		       n->host, n->port);
	n->down_until = 0;
	return 0;
}

static int node_index(struct rconn *rc, const char *host, int port)
{
	for (int i = 0; i < rc->nnodes; i++)
		if (rc->nodes[i].port == port && !strcmp(rc->nodes[i].host, host))
			return i;
	if (rc->nnodes == MAX_NODES)
		return -ENOSPC;
	struct rnode *n = &rc->nodes[rc->nnodes];
	memset(n, 0, sizeof(*n));
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	return rc->nnodes++;
}

/* Raw command on one node; reconnects once if the connection was found
 * closed (a restarted server), never after a timeout (it may have run). */
static int node_cmd(struct rconn *rc, struct rnode *n, bool asking, int argc,
		    const char **argv, const size_t *len, redisReply **out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = !n->c;
		int ret = node_connect(rc, n), saved;
		redisReply *r;

		if (ret)
			return ret;
		if (asking) {
			r = redisCommand(n->c, "ASKING");
			freeReplyObject(r);
		}
		errno = 0;
		r = redisCommandArgv(n->c, argc, argv, len);
		saved = errno;
		if (r) {
			*out = r;
			return 0;
		}
		ret = ctx_errno(n->c, saved);
		semlog(SEMLOG_WARN, "store: redis %s:%d: %s", n->host, n->port,
		       n->c->errstr);
		node_drop(n);
		if (fresh || ret == -ETIMEDOUT)
			return ret;
	}
	return -EIO;
}

static int rconn_load_slots(struct rconn *rc, int from)
{
	const char *argv[] = { "CLUSTER", "SLOTS" };
	size_t len[] = { 7, 5 };
	redisReply *r = NULL;
	int ret = node_cmd(rc, &rc->nodes[from], false, 2, argv, len, &r);

	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_ARRAY) {
		ret = r->type == REDIS_REPLY_ERROR &&
		      strstr(r->str, "cluster support disabled") ? -ENOTSUP : -EIO;
		freeReplyObject(r);
		return ret;
	}
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *s = r->element[i], *m;
		int idx;

		if (s->type != REDIS_REPLY_ARRAY || s->elements < 3)
			continue;
		m = s->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2)
			continue;
		idx = node_index(rc, m->element[0]->str && *m->element[0]->str ?
				 m->element[0]->str : rc->nodes[from].host,
				 (int)m->element[1]->integer);
		if (idx < 0)
			continue;
		for (long long sl = s->element[0]->integer;
		     sl <= s->element[1]->integer && sl < 16384; sl++)
			rc->slot_node[sl] = (uint8_t)idx;
	}
	freeReplyObject(r);
	return 0;
}

static int rconn_init(struct rconn *rc, const char *host, int port, int db,
		      int cmd_ms, char *err, size_t errlen)
{
	char why[160];
	int ret = 0;

	memset(rc, 0, sizeof(*rc));
	rc->db = db;
	rc->cmd_ms = cmd_ms;
	node_index(rc, host, port);
	rc->nodes[0].c = ctx_open(host, port, cmd_ms, db, &ret, why,
				  sizeof(why));
	if (!rc->nodes[0].c) {
		errbuf_set(err, errlen, "store: redis %s:%d: %s; is redis-server "
			"running and reachable?", host, port, why);
		return ret;
	}
	ret = rconn_load_slots(rc, 0);
	if (ret == -ENOTSUP)
		return 0;
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: cluster slots: %s",
			host, port, strerror(-ret));
		return ret;
	}
	rc->cluster = true;
	if (db) {
		errbuf_set(err, errlen, "store: redis %s:%d is a cluster, which has "
			"only database 0; use redis://%s:%d/0", host, port,
			host, port);
		return -EINVAL;
	}
	return 0;
}

static void rconn_release(struct rconn *rc)
{
	for (int i = 0; i < rc->nnodes; i++)
		node_drop(&rc->nodes[i]);
	rc->nnodes = 0;
}

/* "MOVED 3999 127.0.0.1:6381" -> slot, node index */
static int parse_redirect(struct rconn *rc, const char *s, int *slot)
{
	char host[256];
	const char *sp = strchr(s, ' '), *colon;
	int port;

	if (!sp)
		return -EIO;
	*slot = atoi(sp + 1);
	sp = strchr(sp + 1, ' ');
	if (!sp || !(colon = strrchr(sp, ':')) || colon - sp - 1 >= 256)
		return -EIO;
	memcpy(host, sp + 1, (size_t)(colon - sp - 1));
	host[colon - sp - 1] = 0;
	port = atoi(colon + 1);
	return node_index(rc, *host ? host : rc->nodes[0].host, port);
}

/*
 * Run a command whose keys hash like key. *out is the reply (possibly an
 * error reply, for the caller to judge); 0 or a negative errno.
 */
static int rconn_cmd(struct rconn *rc, const char *key, struct args *a,
		     redisReply **out)
{
	int node = rc->cluster ? rc->slot_node[key_slot(key)] : 0;
	bool asking = false;

	if (a->n < 0)
		return -ENOMEM;
	for (int hop = 0; hop < 5; hop++) {
		redisReply *r = NULL;
		int ret = node_cmd(rc, &rc->nodes[node], asking, a->n, a->v,
				   a->l, &r);
		int slot, idx;

		asking = false;
		if (ret)
			return ret;
		if (r->type == REDIS_REPLY_ERROR && rc->cluster) {
			if (!strncmp(r->str, "MOVED ", 6) &&
			    (idx = parse_redirect(rc, r->str, &slot)) >= 0) {
				rc->slot_node[slot] = (uint8_t)idx;
				node = idx;
				rconn_load_slots(rc, idx);
				freeReplyObject(r);
				continue;
			}
			if (!strncmp(r->str, "ASK ", 4) &&
			    (idx = parse_redirect(rc, r->str, &slot)) >= 0) {
				node = idx;
				asking = true;
				freeReplyObject(r);
				continue;
			}
			if (!strncmp(r->str, "TRYAGAIN", 8) ||
			    !strncmp(r->str, "CLUSTERDOWN", 11)) {
				freeReplyObject(r);
				usleep(50000);
				continue;
			}
		}
		*out = r;
		return 0;
	}
	return -EIO;
}

/* ---- the store ---- */

struct wstream {
	int64_t cat_id;        /* 0 = the global stream */
	char key[40];          /* "{c5}:stream" */
	char tag[24];          /* "{c5}" */
	char last[48];         /* last stream id seen, "0-0" for none */
	int64_t n;             /* evseq of that entry, 0 for none */
	bool hinted;
};

struct watcher;

struct wstate {
	struct wstream *v;
	size_t n, cap;
};

struct store_redis {
	struct store base;
	char where[300];
	char host[256];
	int port, db;
	char dir[PATH_MAX];
	char host_id[20];       /* this instance's id in stream events */
	bool sync_full;

	pthread_mutex_t mu;     /* guards rc; never held with watcher locks */
	struct rconn rc;

	/* watcher; cb, arg, ws are the watcher thread's once it runs */
	struct wstate ws;       /* positions since open() */
	bool watching;
	atomic_bool stop;
	pthread_t thr;
	store_event_fn cb;
	void *cb_arg;
	struct watcher *wctx;
};

static struct store_redis *R(struct store *s)
{
	return (struct store_redis *)s;
}

static void cat_tag(char *buf, size_t len, int64_t cat, const char *suffix)
{
	snprintf(buf, len, "{c%lld}%s", (long long)cat, suffix);
}

/* Map an error reply to an errno, logging it. */
static int reply_errno(struct store_redis *s, const redisReply *r,
		       const char *what)
{
	semlog(SEMLOG_ERR, "store: redis %s:%d: %s: %s", s->host, s->port, what,
	       r->str);
	if (!strncmp(r->str, "OOM", 3))
		return -ENOSPC;
	return -EIO;
}

/* Run a command under the store lock; frees the reply unless out. */
static int scmd(struct store_redis *s, const char *key, struct args *a,
		redisReply **out, const char *what)
{
	redisReply *r = NULL;
	int ret;

	pthread_mutex_lock(&s->mu);
	ret = rconn_cmd(&s->rc, key, a, &r);
	pthread_mutex_unlock(&s->mu);
	if (ret)
		return ret;
	if (r->type == REDIS_REPLY_ERROR) {
		ret = reply_errno(s, r, what);
		freeReplyObject(r);
		return ret;
	}
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return 0;
}

/* ---- Lua scripts (each touches one slot) ---- */

static const char LUA_CAT_REGISTER[] =
	"if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 0 end\n"
	"redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
	"local n = redis.call('INCR', KEYS[4])\n"
	"redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'h', ARGV[4],"
	" 'n', n, 'k', 'c', 'id', ARGV[1], 'c', ARGV[3])\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', '{semcache}')\n"
	"return 1\n";

static const char LUA_CAT_UNREGISTER[] =
	"local v = redis.call('HGET', KEYS[2], ARGV[1])\n"
	"if not v then return false end\n"
	"local path = string.match(v, '^%S+ %S+ %S+ %S+ (.*)$')\n"
	"redis.call('HDEL', KEYS[2], ARGV[1])\n"
	"redis.call('HDEL', KEYS[1], path)\n"
	"local n = redis.call('INCR', KEYS[4])\n"
	"redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'h', ARGV[2],"
	" 'n', n, 'k', 'x', 'id', ARGV[1], 'c', v)\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', '{semcache}')\n"
	"return v\n";

static const char LUA_CAT_ATTR[] =
	"local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not v then return false end\n"
	"local created, path = string.match(v, '^%S+ %S+ %S+ (%S+) (.*)$')\n"
	"local nv = ARGV[2] .. ' ' .. created .. ' ' .. path\n"
	"redis.call('HSET', KEYS[1], ARGV[1], nv)\n"
	"local n = redis.call('INCR', KEYS[3])\n"
	"redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'h', ARGV[3],"
	" 'n', n, 'k', 'a', 'id', ARGV[1], 'c', nv)\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', '{semcache}')\n"
	"return nv\n";

/* KEYS alive ids policy stream evseq next lru lfu bytes qok evicted;
 * ARGV tag batch */
static const char LUA_CAT_DROP[] =
	"redis.call('DEL', KEYS[1], KEYS[3], KEYS[7], KEYS[8], KEYS[9],"
	" KEYS[10], KEYS[11])\n"
	"local s = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)\n"
	"for _, x in ipairs(s) do redis.call('DEL', ARGV[1] .. ':e:' .. x) end\n"
	"if #s > 0 then redis.call('ZREM', KEYS[2], unpack(s)) end\n"
	"local left = redis.call('ZCARD', KEYS[2])\n"
	"if left == 0 then redis.call('DEL', KEYS[4], KEYS[5], KEYS[6]) end\n"
	"return left\n";

/* KEYS alive policy stream evseq; ARGV tag op yaml host maxlen */
static const char LUA_POLICY[] =
	"if ARGV[2] == 's' then\n"
	"  if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
	"  redis.call('SET', KEYS[2], ARGV[3])\n"
	"elseif redis.call('DEL', KEYS[2]) == 0 then return -1 end\n"
	"local n = redis.call('INCR', KEYS[4])\n"
	"if ARGV[2] == 's' then\n"
	"  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'h', ARGV[4],"
	"   'n', n, 'k', 'y', 'y', ARGV[3])\n"
	"else\n"
	"  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'h', ARGV[4],"
	"   'n', n, 'k', 'y')\n"
	"end\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', ARGV[1])\n"
	"return 1\n";

/*
 * Shared by the scripts that keep the quota structures: u64(m, at) reads
 * the little-endian u64 at byte offset at of packed meta m (0: created,
 * 8: bytes); order_add(lru, lfu, seq, hits, t) files an entry under last
 * use t (ms, clamped below 2^42 so that lfu's fraction stays below 1).
 */
#define LUA_QUOTA_LIB \
	"local function u64(m, at)\n" \
	"  local x = 0\n" \
	"  if m and #m >= at + 8 then\n" \
	"    for i = at + 8, at + 1, -1 do x = x * 256 + string.byte(m, i) end\n" \
	"  end\n" \
	"  return x\n" \
	"end\n" \
	"local function order_add(lru, lfu, s, h, t)\n" \
	"  if t < 0 then t = 0 end\n" \
	"  if t >= 4398046511104 then t = 4398046511103 end\n" \
	"  redis.call('ZADD', lru, string.format('%.17g', t), s)\n" \
	"  redis.call('ZADD', lfu,\n" \
	"   string.format('%.17g', h + t / 4398046511104), s)\n" \
	"end\n"

/* KEYS alive next ids stream evseq lru lfu bytes; ARGV tag meta query
 * hasctx ctx vec embedder response hits last host maxlen use */
static const char LUA_PUT[] =
	LUA_QUOTA_LIB
	"if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
	"local seq = redis.call('INCR', KEYS[2])\n"
	"local k = ARGV[1] .. ':e:' .. seq\n"
	"redis.call('HSET', k, 'm', ARGV[2], 'q', ARGV[3], 'v', ARGV[6],"
	" 'em', ARGV[7], 'r', ARGV[8], 'h', ARGV[9], 't', ARGV[10])\n"
	"if ARGV[4] == '1' then redis.call('HSET', k, 'c', ARGV[5]) end\n"
	"redis.call('ZADD', KEYS[3], seq, seq)\n"
	"order_add(KEYS[6], KEYS[7], seq, tonumber(ARGV[9]) or 0,"
	" tonumber(ARGV[13]) or 0)\n"
	"redis.call('INCRBY', KEYS[8], #ARGV[8])\n"
	"local n = redis.call('INCR', KEYS[5])\n"
	"redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'h', ARGV[11],"
	" 'n', n, 'k', 'p', 's', seq)\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', ARGV[1])\n"
	"return seq\n";

/* KEYS ids stream evseq lru lfu bytes; ARGV tag seq host maxlen */
static const char LUA_DEL[] =
	LUA_QUOTA_LIB
	"if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end\n"
	"local k = ARGV[1] .. ':e:' .. ARGV[2]\n"
	"local b = u64(redis.call('HGET', k, 'm'), 8)\n"
	"redis.call('DEL', k)\n"
	"redis.call('ZREM', KEYS[4], ARGV[2])\n"
	"redis.call('ZREM', KEYS[5], ARGV[2])\n"
	"redis.call('DECRBY', KEYS[6], string.format('%.17g', b))\n"
	"local n = redis.call('INCR', KEYS[3])\n"
	"redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'h', ARGV[3],"
	" 'n', n, 'k', 'd', 's', ARGV[2])\n"
	"redis.call('PUBLISH', '" HINT_CHANNEL "', ARGV[1])\n"
	"return 1\n";

/* KEYS ids lru lfu; ARGV tag (seq hits last)... : keeps the maximum and
 * files the entry under it in the lru and lfu orders */
static const char LUA_TOUCH[] =
	LUA_QUOTA_LIB
	"for i = 2, #ARGV, 3 do\n"
	"  local k = ARGV[1] .. ':e:' .. ARGV[i]\n"
	"  local v = redis.call('HMGET', k, 'h', 't', 'm')\n"
	"  if v[1] then\n"
	"    local h, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0\n"
	"    local nh, nt = tonumber(ARGV[i+1]) or 0, tonumber(ARGV[i+2]) or 0\n"
	"    if nh > h then redis.call('HSET', k, 'h', ARGV[i+1]); h = nh end\n"
	"    if nt > t then redis.call('HSET', k, 't', ARGV[i+2]); t = nt end\n"
	"    if t == 0 then t = u64(v[3], 0) end\n"
	"    order_add(KEYS[2], KEYS[3], ARGV[i], h, t)\n"
	"  end\n"
	"end\n"
	"return 0\n";

/*
 * KEYS ids lru lfu bytes qok evicted stream evseq; ARGV tag entries bytes
 * order(f|l|u) keep host maxlen limit. Evicts at most limit entries until
 * the category fits (0 = no limit), never keep; returns { keep gone (0|1),
 * seq... }. Rebuilds lru, lfu and bytes first when qok is missing.
 */
static const char LUA_QUOTA[] =
	LUA_QUOTA_LIB
	"local tag, ids, lru, lfu, bytes = ARGV[1], KEYS[1], KEYS[2], KEYS[3],"
	" KEYS[4]\n"
	"if redis.call('EXISTS', KEYS[5]) == 0 then\n"
	"  redis.call('DEL', lru, lfu, bytes)\n"
	"  local b = 0\n"
	"  for _, s in ipairs(redis.call('ZRANGE', ids, 0, -1)) do\n"
	"    local v = redis.call('HMGET', tag .. ':e:' .. s, 'm', 'h', 't')\n"
	"    local t = tonumber(v[3]) or 0\n"
	"    if t == 0 then t = u64(v[1], 0) end\n"
	"    order_add(lru, lfu, s, tonumber(v[2]) or 0, t)\n"
	"    b = b + u64(v[1], 8)\n"
	"  end\n"
	"  redis.call('SET', bytes, string.format('%.17g', b))\n"
	"  redis.call('SET', KEYS[5], '1')\n"
	"end\n"
	"local maxn, maxb = tonumber(ARGV[2]) or 0, tonumber(ARGV[3]) or 0\n"
	"local keep, limit = ARGV[5], tonumber(ARGV[8]) or 1\n"
	"local n = redis.call('ZCARD', ids)\n"
	"local b = tonumber(redis.call('GET', bytes) or '0') or 0\n"
	"local z = ids\n"
	"if ARGV[4] == 'l' then z = lru elseif ARGV[4] == 'u' then z = lfu end\n"
	"local out = { (keep == '0' or redis.call('ZSCORE', ids, keep))"
	" and 0 or 1 }\n"
	"local skip = 0\n"
	"while #out - 1 < limit and ((maxn > 0 and n > maxn) or"
	" (maxb > 0 and b > maxb)) do\n"
	"  local v = redis.call('ZRANGE', z, skip, skip)[1]\n"
	"  if not v and z ~= ids then\n"
	"    z, skip = ids, 0\n"
	"  elseif not v then\n"
	"    break\n"
	"  elseif v == keep then\n"
	"    skip = skip + 1\n"
	"  else\n"
	"    redis.call('ZREM', lru, v)\n"
	"    redis.call('ZREM', lfu, v)\n"
	"    if redis.call('ZREM', ids, v) == 1 then\n"
	"      local k = tag .. ':e:' .. v\n"
	"      local eb = u64(redis.call('HGET', k, 'm'), 8)\n"
	"      redis.call('DEL', k)\n"
	"      redis.call('DECRBY', bytes, string.format('%.17g', eb))\n"
	"      n, b = n - 1, b - eb\n"
	"      local e = redis.call('INCR', KEYS[8])\n"
	"      redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'h',"
	" ARGV[6], 'n', e, 'k', 'd', 's', v, 'e', '1')\n"
	"      out[#out + 1] = v\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if #out > 1 then\n"
	"  redis.call('INCRBY', KEYS[6], #out - 1)\n"
	"  redis.call('PUBLISH', '" HINT_CHANNEL "', tag)\n"
	"end\n"
	"return out\n";

/* KEYS ids; ARGV tag 'r' lo count | tag 'l' seq...; returns the last seq
 * looked at, then (seq m h t v em) per live entry */
static const char LUA_GET[] =
	"local seqs\n"
	"if ARGV[2] == 'r' then\n"
	"  seqs = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[3], '+inf',"
	"   'LIMIT', 0, tonumber(ARGV[4]))\n"
	"else\n"
	"  seqs = {}\n"
	"  for i = 3, #ARGV do seqs[#seqs + 1] = ARGV[i] end\n"
	"end\n"
	"local out = { seqs[#seqs] or '' }\n"
	"for _, s in ipairs(seqs) do\n"
	"  local v = redis.call('HMGET', ARGV[1] .. ':e:' .. s,"
	"   'm', 'h', 't', 'v', 'em')\n"
	"  if v[1] then\n"
	"    out[#out + 1] = s\n"
	"    for j = 1, 5 do out[#out + 1] = v[j] or '' end\n"
	"  end\n"
	"end\n"
	"return out\n";

static void arg_eval(struct args *a, const char *script, int nkeys)
{
	arg_s(a, "EVAL");
	arg_s(a, script);
	arg_i(a, nkeys);
}

/* ---- categories ---- */

/* "MODE UID GID CREATED PATH" -> c (path points into v) */
static int cat_parse(int64_t id, const char *v, struct store_category *c)
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
	ret = scmd(s, "{semcache}", &a, &r, "list categories");
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
		if (cat_parse(strtoll(r->element[i]->str, NULL, 10), row->buf,
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

static int redis_category_list(struct store *st,
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

static int redis_category_create(struct store *st, const char *path,
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
	ret = scmd(s, "{semcache}", &a, &r, "allocate a category id");
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
	cat_tag(key, sizeof(key), id, ":alive");
	arg_s(&a, "SET");
	arg_s(&a, key);
	arg_s(&a, path);
	ret = scmd(s, key, &a, NULL, "create category");
	args_release(&a);
	if (ret)
		return ret;
	/* 2. the global slot: the category becomes visible */
	snprintf(packed, sizeof(packed), "%lu %lu %lu %lld ",
		 (unsigned long)(mode & 07777), (unsigned long)uid,
		 (unsigned long)gid, (long long)clock_wall_ms());
	if (asprintf(&full, "%s%s", packed, path) < 0)
		return -ENOMEM;
	arg_eval(&a, LUA_CAT_REGISTER, 4);
	arg_s(&a, "{semcache}:paths");
	arg_s(&a, "{semcache}:cats");
	arg_s(&a, "{semcache}:stream");
	arg_s(&a, "{semcache}:evseq");
	arg_i(&a, id);
	arg_s(&a, path);
	arg_s(&a, full);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = scmd(s, "{semcache}", &a, &r, "register category");
	args_release(&a);
	free(full);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -EEXIST;
	freeReplyObject(r);
	if (ret) {
		arg_s(&a, "DEL");
		arg_s(&a, key);
		scmd(s, key, &a, NULL, "drop unused category id");
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

	cat_tag(tag, sizeof(tag), id, "");
	for (int i = 0; i < 11; i++)
		cat_tag(k[i], sizeof(k[i]), id, sfx[i]);
	for (;;) {
		struct args a = { 0 };
		redisReply *r = NULL;

		arg_eval(&a, LUA_CAT_DROP, 11);
		for (int i = 0; i < 11; i++)
			arg_s(&a, k[i]);
		arg_s(&a, tag);
		arg_i(&a, DROP_BATCH);
		ret = scmd(s, tag, &a, &r, "delete category entries");
		args_release(&a);
		if (ret)
			return ret;
		long long left = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
		freeReplyObject(r);
		if (!left)
			return 0;
	}
}

static int redis_category_delete(struct store *st, int64_t cat_id)
{
	struct store_redis *s = R(st);
	struct store_category c;
	struct args a = { 0 };
	redisReply *r = NULL;
	int ret;

	arg_eval(&a, LUA_CAT_UNREGISTER, 4);
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
	ret = scmd(s, "{semcache}", &a, &r, "unregister category");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return -ENOENT;
	}
	if (cat_parse(cat_id, r->str, &c))
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

static int redis_category_setattr(struct store *st, int64_t cat_id,
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
	arg_eval(&a, LUA_CAT_ATTR, 3);
	arg_s(&a, "{semcache}:cats");
	arg_s(&a, "{semcache}:stream");
	arg_s(&a, "{semcache}:evseq");
	arg_i(&a, cat_id);
	arg_s(&a, attrs);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = scmd(s, "{semcache}", &a, &r, "set category attributes");
	args_release(&a);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_STRING ? 0 : -ENOENT;
	freeReplyObject(r);
	return ret;
}

/* ---- policies ---- */

static int redis_policy_get(struct store *st, int64_t cat_id, char **yaml,
			    size_t *len)
{
	struct store_redis *s = R(st);
	struct args a = { 0 };
	redisReply *r = NULL;
	char key[48];
	int ret;

	cat_tag(key, sizeof(key), cat_id, ":policy");
	arg_s(&a, "GET");
	arg_s(&a, key);
	ret = scmd(s, key, &a, &r, "read policy");
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

static int redis_policy_put(struct store *st, int64_t cat_id, const char *yaml,
			    size_t len)
{
	struct store_redis *s = R(st);
	static const char *const sfx[4] = { ":alive", ":policy", ":stream",
					    ":evseq" };
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], k[4][48];
	int ret;

	cat_tag(tag, sizeof(tag), cat_id, "");
	arg_eval(&a, LUA_POLICY, 4);
	for (int i = 0; i < 4; i++) {
		cat_tag(k[i], sizeof(k[i]), cat_id, sfx[i]);
		arg_s(&a, k[i]);
	}
	arg_s(&a, tag);
	arg_s(&a, yaml ? "s" : "r");
	arg_b(&a, yaml, yaml ? len : 0);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = scmd(s, tag, &a, &r, yaml ? "write policy" : "remove policy");
	args_release(&a);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -ENOENT;
	freeReplyObject(r);
	return ret;
}

/* ---- entries ---- */

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

static int redis_entry_put(struct store *st, struct store_entry *e,
			   const struct store_payload *p)
{
	struct store_redis *s = R(st);
	static const char *const sfx[8] = { ":alive", ":next", ":ids",
					    ":stream", ":evseq", ":lru",
					    ":lfu", ":bytes" };
	unsigned char meta[META_LEN];
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], k[8][48];
	int ret;

	if (!e || !p || !p->query || p->dim < 0 || (p->dim && !p->vec) ||
	    e->cat_id <= 0 || e->cat_id > CAT_MAX)
		return -EINVAL;
	e->bytes = (int64_t)p->response_len;
	meta_pack(meta, e, bytes_crc32(p->response, p->response_len), p->dim);
	cat_tag(tag, sizeof(tag), e->cat_id, "");
	arg_eval(&a, LUA_PUT, 8);
	for (int i = 0; i < 8; i++) {
		cat_tag(k[i], sizeof(k[i]), e->cat_id, sfx[i]);
		arg_s(&a, k[i]);
	}
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
	ret = scmd(s, tag, &a, &r, "store entry");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
		ret = r->type == REDIS_REPLY_INTEGER ? -ENOENT : -EIO;
		freeReplyObject(r);
		return ret;
	}
	e->id = entry_id(e->cat_id, r->integer);
	freeReplyObject(r);
	return 0;
}

static int redis_entry_delete(struct store *st, int64_t id)
{
	struct store_redis *s = R(st);
	static const char *const sfx[6] = { ":ids", ":stream", ":evseq",
					    ":lru", ":lfu", ":bytes" };
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], k[6][48];
	int ret;

	if (id <= 0 || !id_cat(id) || !id_seq(id))
		return -ENOENT;
	cat_tag(tag, sizeof(tag), id_cat(id), "");
	arg_eval(&a, LUA_DEL, 6);
	for (int i = 0; i < 6; i++) {
		cat_tag(k[i], sizeof(k[i]), id_cat(id), sfx[i]);
		arg_s(&a, k[i]);
	}
	arg_s(&a, tag);
	arg_i(&a, id_seq(id));
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	ret = scmd(s, tag, &a, &r, "delete entry");
	args_release(&a);
	if (ret)
		return ret;
	ret = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -ENOENT;
	freeReplyObject(r);
	return ret;
}

static int cmp_touch_cat(const void *a, const void *b)
{
	const struct store_touch *x = a, *y = b;
	int64_t cx = id_cat(x->id), cy = id_cat(y->id);

	return (cx > cy) - (cx < cy);
}

static int redis_entry_touch(struct store *st, const struct store_touch *t,
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
		char tag[24], k[3][48];

		cat_tag(tag, sizeof(tag), cat, "");
		cat_tag(k[0], sizeof(k[0]), cat, ":ids");
		cat_tag(k[1], sizeof(k[1]), cat, ":lru");
		cat_tag(k[2], sizeof(k[2]), cat, ":lfu");
		arg_eval(&a, LUA_TOUCH, 3);
		for (int j = 0; j < 3; j++)
			arg_s(&a, k[j]);
		arg_s(&a, tag);
		for (size_t j = 0; i < n && id_cat(v[i].id) == cat && j < 1000;
		     i++, j++) {
			arg_i(&a, id_seq(v[i].id));
			arg_i(&a, v[i].hits);
			arg_i(&a, v[i].last_hit_ms);
		}
		ret = scmd(s, tag, &a, NULL, "record hits");
		args_release(&a);
	}
	free(v);
	return ret;
}

static int redis_quota_enforce(struct store *st, int64_t cat_id,
			       const struct store_quota *q, int64_t *evicted,
			       size_t max, size_t *n, bool *keep_gone)
{
	struct store_redis *s = R(st);
	static const char *const sfx[8] = { ":ids", ":lru", ":lfu", ":bytes",
					    ":qok", ":evicted", ":stream",
					    ":evseq" };
	static const char order[] = { [STORE_EVICT_LRU] = 'l',
				      [STORE_EVICT_LFU] = 'u',
				      [STORE_EVICT_FIFO] = 'f' };
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], k[8][48], ord[2] = { 0 };
	int ret;

	if (!n || !keep_gone)
		return -EINVAL;
	*n = 0;
	*keep_gone = false;
	if (!q || !evicted || !max || cat_id <= 0 || cat_id > CAT_MAX ||
	    q->entries < 0 || q->bytes < 0 || (unsigned)q->order > STORE_EVICT_FIFO)
		return -EINVAL;
	ord[0] = order[q->order];
	cat_tag(tag, sizeof(tag), cat_id, "");
	arg_eval(&a, LUA_QUOTA, 8);
	for (int i = 0; i < 8; i++) {
		cat_tag(k[i], sizeof(k[i]), cat_id, sfx[i]);
		arg_s(&a, k[i]);
	}
	arg_s(&a, tag);
	arg_i(&a, q->entries);
	arg_i(&a, q->bytes);
	arg_s(&a, ord);
	arg_i(&a, q->keep > 0 && id_cat(q->keep) == cat_id ? id_seq(q->keep) : 0);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	arg_i(&a, (int64_t)(max < 100000 ? max : 100000));
	ret = scmd(s, tag, &a, &r, "evict for quota");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_ARRAY || !r->elements ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		freeReplyObject(r);
		return -EIO;
	}
	*keep_gone = q->keep > 0 && r->element[0]->integer == 1;
	for (size_t i = 1; i < r->elements && *n < max; i++) {
		const redisReply *v = r->element[i];

		if (v->type == REDIS_REPLY_STRING)
			evicted[(*n)++] = entry_id(cat_id,
						   strtoll(v->str, NULL, 10));
	}
	freeReplyObject(r);
	return 0;
}

typedef int (*scan_fn)(void *arg, const struct store_entry *e,
		       const float *vec, int dim, const char *embedder);

/* Call cb for one (seq m h t v em) group of a LUA_GET reply. */
static int get_group(int64_t cat, redisReply **f, scan_fn cb, void *arg)
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

/* Call cb for each group of a LUA_GET reply with an id above min_id. */
static int get_reply_each(int64_t cat, const redisReply *r, scan_fn cb,
			  void *arg, int64_t min_id)
{
	for (size_t i = 1; i + 6 <= r->elements; i += 6) {
		int ret;

		if (entry_id(cat, strtoll(r->element[i]->str, NULL, 10)) <= min_id)
			continue;
		ret = get_group(cat, r->element + i, cb, arg);
		if (ret)
			return ret;
	}
	return 0;
}

static int redis_entry_scan(struct store *st, int64_t cat_id, int64_t min_id,
			    scan_fn cb, void *arg)
{
	struct store_redis *s = R(st);
	int64_t lo = min_id > 0 ? id_seq(min_id) - 1 : 0;
	char tag[24], k[48];

	if (lo < 0)
		lo = 0;
	cat_tag(tag, sizeof(tag), cat_id, "");
	cat_tag(k, sizeof(k), cat_id, ":ids");
	for (;;) {
		struct args a = { 0 };
		redisReply *r = NULL;
		int ret;

		arg_eval(&a, LUA_GET, 1);
		arg_s(&a, k);
		arg_s(&a, tag);
		arg_s(&a, "r");
		arg_i(&a, lo);
		arg_i(&a, SCAN_BATCH);
		ret = scmd(s, tag, &a, &r, "scan entries");
		args_release(&a);
		if (ret)
			return ret;
		if (r->type != REDIS_REPLY_ARRAY || !r->elements ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    !r->element[0]->len) {
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
	ret = scmd(s, key, &a, out, "read entry");
	args_release(&a);
	if (ret)
		return ret;
	if ((*out)->type != REDIS_REPLY_ARRAY || (*out)->elements != 3 ||
	    (*out)->element[0]->type != REDIS_REPLY_STRING) {
		freeReplyObject(*out);
		*out = NULL;
		return -ENOENT;
	}
	return 0;
}

static void *dup_bytes(const char *p, size_t len)
{
	char *b = malloc(len + 1);

	if (b) {
		memcpy(b, p, len);
		b[len] = 0;
	}
	return b;
}

static int redis_response_read(struct store *st, int64_t id, void **buf,
			       size_t *len)
{
	struct store_redis *s = R(st);
	struct store_entry e = { 0 };
	redisReply *r = NULL;
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
	*buf = dup_bytes(r->element[1]->str, r->element[1]->len);
	*len = r->element[1]->len;
	freeReplyObject(r);
	return *buf ? 0 : -ENOMEM;
}

static int redis_entry_text(struct store *st, int64_t id, char **query,
			    size_t *query_len, char **ctx, size_t *ctx_len)
{
	redisReply *r = NULL;
	int ret = entry_fields(R(st), id, "m", "q", "c", &r);

	if (ret)
		return ret;
	if (query) {
		*query = dup_bytes(r->element[1]->str ? r->element[1]->str : "",
				   r->element[1]->len);
		if (query_len)
			*query_len = r->element[1]->len;
		if (!*query)
			ret = -ENOMEM;
	}
	if (ctx) {
		*ctx = NULL;
		if (ctx_len)
			*ctx_len = 0;
		if (!ret && r->element[2]->type == REDIS_REPLY_STRING) {
			*ctx = dup_bytes(r->element[2]->str, r->element[2]->len);
			if (ctx_len)
				*ctx_len = r->element[2]->len;
			if (!*ctx)
				ret = -ENOMEM;
		}
	}
	if (ret && query) {
		free(*query);
		*query = NULL;
	}
	freeReplyObject(r);
	return ret;
}

/* ---- watch positions ---- */

static int ws_add(struct wstate *w, int64_t cat, const char *last, int64_t n)
{
	struct wstream *x;

	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].cat_id == cat)
			return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct wstream *v = realloc(w->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	x = &w->v[w->n++];
	memset(x, 0, sizeof(*x));
	x->cat_id = cat;
	if (cat) {
		cat_tag(x->tag, sizeof(x->tag), cat, "");
		cat_tag(x->key, sizeof(x->key), cat, ":stream");
	} else {
		snprintf(x->tag, sizeof(x->tag), "{semcache}");
		snprintf(x->key, sizeof(x->key), "{semcache}:stream");
	}
	snprintf(x->last, sizeof(x->last), "%s", last);
	x->n = n;
	return 0;
}

static void ws_del(struct wstate *w, int64_t cat)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].cat_id == cat) {
			w->v[i] = w->v[--w->n];
			return;
		}
}

/* A stream entry's field value, or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (!strcmp(fields->element[i]->str, name))
			return fields->element[i + 1];
	return NULL;
}

static int64_t field_i(const redisReply *fields, const char *name)
{
	const redisReply *f = field(fields, name);

	return f && f->str ? strtoll(f->str, NULL, 10) : -1;
}

/* The last entry of a stream: its id and n ("0-0", 0 if empty). */
static int stream_tail(struct rconn *rc, const struct wstream *x,
		       char *last, size_t lastlen, int64_t *n)
{
	struct args a = { 0 };
	redisReply *r = NULL;
	int ret;

	arg_s(&a, "XREVRANGE");
	arg_s(&a, x->key);
	arg_s(&a, "+");
	arg_s(&a, "-");
	arg_s(&a, "COUNT");
	arg_s(&a, "1");
	ret = rconn_cmd(rc, x->key, &a, &r);
	args_release(&a);
	if (ret)
		return ret;
	snprintf(last, lastlen, "0-0");
	*n = 0;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
		redisReply *e = r->element[0];

		snprintf(last, lastlen, "%s", e->element[0]->str);
		*n = field_i(e->element[1], "n");
	} else if (r->type == REDIS_REPLY_ERROR) {
		ret = -EIO;
	}
	freeReplyObject(r);
	return ret;
}

/* Positions of every stream now (the global one and each category's). */
static int ws_snapshot(struct store_redis *s, struct rconn *rc,
		       struct wstate *w)
{
	struct args a = { 0 };
	redisReply *r = NULL;
	int ret;

	w->n = 0;
	/* global first: a category created after it is in its stream */
	ret = ws_add(w, 0, "0-0", 0);
	if (!ret)
		ret = stream_tail(rc, &w->v[0], w->v[0].last,
				  sizeof(w->v[0].last), &w->v[0].n);
	if (ret)
		return ret;
	arg_s(&a, "HKEYS");
	arg_s(&a, "{semcache}:cats");
	ret = rconn_cmd(rc, "{semcache}", &a, &r);
	args_release(&a);
	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return -EIO;
	}
	for (size_t i = 0; !ret && i < r->elements; i++) {
		ret = ws_add(w, strtoll(r->element[i]->str, NULL, 10), "0-0", 0);
		if (!ret)
			ret = stream_tail(rc, &w->v[w->n - 1], w->v[w->n - 1].last,
					  sizeof(w->v[0].last), &w->v[w->n - 1].n);
	}
	freeReplyObject(r);
	(void)s;
	return ret;
}

/* ---- the watcher thread ---- */

struct watcher {
	struct store_redis *s;
	struct rconn rc;          /* the thread's own */
	redisContext *sub;        /* subscribed to HINT_CHANNEL */
	struct wstate *w;
	bool resync;
	redisReply *pre;          /* the entries of a batch's put events */
	size_t pre_at;            /* next group of pre to look at */
};

static bool stopping(const struct watcher *wt)
{
	return atomic_load(&wt->s->stop);
}

static void deliver(struct watcher *wt, const struct store_event *ev)
{
	wt->s->cb(wt->s->cb_arg, ev);
}

struct fetch_ctx {
	struct watcher *wt;
	bool found;
};

static int fetch_cb(void *arg, const struct store_entry *e, const float *vec,
		    int dim, const char *embedder)
{
	struct fetch_ctx *fc = arg;
	struct store_event ev = { .kind = STORE_EV_ENTRY_PUT };

	ev.entry = *e;
	ev.vec = vec;
	ev.dim = dim;
	ev.embedder = embedder;
	fc->found = true;
	deliver(fc->wt, &ev);
	return 0;
}

/*
 * Read the entries of the put events (by other hosts) in one XREAD batch
 * with one script call, into wt->pre: one round trip per batch instead of
 * one per event. An entry gone by now is absent: its delete event follows.
 */
static int prefetch_puts(struct watcher *wt, int64_t cat,
			 const redisReply *ents)
{
	struct args a = { 0 };
	char tag[24], k[48];
	bool any = false;
	int ret;

	wt->pre = NULL;
	wt->pre_at = 1;
	cat_tag(tag, sizeof(tag), cat, "");
	cat_tag(k, sizeof(k), cat, ":ids");
	arg_eval(&a, LUA_GET, 1);
	arg_s(&a, k);
	arg_s(&a, tag);
	arg_s(&a, "l");
	for (size_t j = 0; j < ents->elements; j++) {
		const redisReply *f = ents->element[j]->element[1];
		const redisReply *h = field(f, "h"), *kind = field(f, "k");

		if (kind && kind->str && kind->str[0] == 'p' &&
		    !(h && h->str && !strcmp(h->str, wt->s->host_id))) {
			arg_i(&a, field_i(f, "s"));
			any = true;
		}
	}
	if (!any) {
		args_release(&a);
		return 0;
	}
	ret = rconn_cmd(&wt->rc, tag, &a, &wt->pre);
	args_release(&a);
	if (ret)
		return ret;
	if (wt->pre->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(wt->pre);
		wt->pre = NULL;
		return -EIO;
	}
	return 0;
}

/* A put event: deliver the prefetched entry, if it still existed. */
static int deliver_put(struct watcher *wt, int64_t cat, int64_t seq)
{
	struct fetch_ctx fc = { wt, false };
	const redisReply *r = wt->pre;

	/* groups are in event order, so a cursor finds them */
	while (r && wt->pre_at + 6 <= r->elements) {
		redisReply **f = r->element + wt->pre_at;
		int64_t s = strtoll(f[0]->str, NULL, 10);

		if (s > seq)
			break;
		wt->pre_at += 6;
		if (s == seq)
			return get_group(cat, f, fetch_cb, &fc);
	}
	return 0;
}

/* Handle one stream entry of stream x (fields f); 0 or -errno. */
static int handle(struct watcher *wt, struct wstream *x, const redisReply *f)
{
	const redisReply *h = field(f, "h"), *k = field(f, "k");
	bool mine = h && h->str && !strcmp(h->str, wt->s->host_id);
	struct store_event ev = { 0 };
	char kind = k && k->str ? k->str[0] : 0;
	int64_t cat = x->cat_id;

	if (!x->cat_id) {
		const redisReply *c = field(f, "c");
		int64_t id = field_i(f, "id");
		char *buf;

		if (!c || id <= 0)
			return 0;
		if (kind == 'c') {
			/* a new category's stream is read from its start */
			int ret = ws_add(wt->w, id, "0-0", 0);
			if (ret)
				return ret;
		} else if (kind == 'x') {
			ws_del(wt->w, id);
		}
		if (mine)
			return 0;
		buf = strndup(c->str, c->len);
		if (!buf)
			return -ENOMEM;
		if (!cat_parse(id, buf, &ev.category)) {
			ev.kind = kind == 'c' ? STORE_EV_CATEGORY_CREATE :
				  kind == 'x' ? STORE_EV_CATEGORY_DELETE :
						STORE_EV_CATEGORY_ATTR;
			if (kind == 'c' || kind == 'x' || kind == 'a')
				deliver(wt, &ev);
		}
		free(buf);
		return 0;
	}
	/* an eviction (e=1) reaches its own host too: see store_watch */
	if (mine && !(kind == 'd' && field(f, "e")))
		return 0;
	if (kind == 'p')
		return deliver_put(wt, cat, field_i(f, "s"));
	if (kind == 'd') {
		ev.kind = STORE_EV_ENTRY_DELETE;
		ev.entry.id = entry_id(cat, field_i(f, "s"));
		ev.entry.cat_id = cat;
		ev.category.id = cat;
		deliver(wt, &ev);
	} else if (kind == 'y') {
		const redisReply *y = field(f, "y");

		ev.kind = STORE_EV_POLICY;
		ev.category.id = cat;
		ev.entry.cat_id = cat;
		if (y) {
			ev.yaml = y->str ? y->str : "";
			ev.yaml_len = y->len;
		}
		deliver(wt, &ev);
	}
	return 0;
}

static void pre_free(struct watcher *wt)
{
	if (wt->pre)
		freeReplyObject(wt->pre);
	wt->pre = NULL;
}

/* Read stream x from its position to its end, delivering. */
static int sweep(struct watcher *wt, size_t i)
{
	for (;;) {
		struct wstream *x = &wt->w->v[i];
		char key[40];
		struct args a = { 0 };
		redisReply *r = NULL;
		size_t got;
		int ret;

		arg_s(&a, "XREAD");
		arg_s(&a, "COUNT");
		arg_i(&a, SCAN_BATCH);
		arg_s(&a, "STREAMS");
		arg_s(&a, x->key);
		arg_s(&a, x->last);
		snprintf(key, sizeof(key), "%s", x->key);
		ret = rconn_cmd(&wt->rc, key, &a, &r);
		args_release(&a);
		if (ret)
			return ret;
		if (r->type == REDIS_REPLY_ERROR) {
			semlog(SEMLOG_WARN, "store: redis watch %s: %s", key, r->str);
			freeReplyObject(r);
			pre_free(wt);
			return -EIO;
		}
		if (r->type != REDIS_REPLY_ARRAY || !r->elements) {
			freeReplyObject(r);
			pre_free(wt);
			return 0;
		}
		redisReply *ents = r->element[0]->element[1];
		got = ents->elements;
		if (x->cat_id) {
			ret = prefetch_puts(wt, x->cat_id, ents);
			if (ret) {
				freeReplyObject(r);
				pre_free(wt);
				return ret;
			}
		}
		for (size_t j = 0; j < ents->elements; j++) {
			redisReply *e = ents->element[j];
			int64_t n = field_i(e->element[1], "n");

			/* handle() may grow wt->w: re-find x each time */
			x = &wt->w->v[i];
			if (n != x->n + 1) {
				semlog(SEMLOG_WARN, "store: redis watch %s: event "
				       "%lld follows %lld: events were lost, "
				       "resynchronising", key, (long long)n,
				       (long long)x->n);
				wt->resync = true;
				freeReplyObject(r);
				pre_free(wt);
				return 0;
			}
			snprintf(x->last, sizeof(x->last), "%s",
				 e->element[0]->str);
			x->n = n;
			int64_t cat = x->cat_id;
			ret = handle(wt, x, e->element[1]);
			if (ret) {
				freeReplyObject(r);
				pre_free(wt);
				return ret;
			}
			/* a deleted category's stream is no longer ours */
			if (i >= wt->w->n || wt->w->v[i].cat_id != cat) {
				freeReplyObject(r);
				pre_free(wt);
				return 0;
			}
		}
		freeReplyObject(r);
		pre_free(wt);
		if (got < SCAN_BATCH)
			return 0;
	}
}

static int sweep_all(struct watcher *wt, bool hinted_only)
{
	int ret = 0;

	/* the global stream first: it adds the streams of new categories */
	for (size_t i = 0; !ret && i < wt->w->n && !wt->resync; i++) {
		struct wstream *x = &wt->w->v[i];

		if (hinted_only && !x->hinted)
			continue;
		x->hinted = false;
		int64_t cat = x->cat_id;
		ret = sweep(wt, i);
		/* the entry at i may have been replaced by a deletion */
		if (i < wt->w->n && wt->w->v[i].cat_id != cat)
			i--;
	}
	return ret;
}

static void sub_close(struct watcher *wt)
{
	if (wt->sub)
		redisFree(wt->sub);
	wt->sub = NULL;
}

static int sub_open(struct watcher *wt)
{
	char why[160];
	int ret = -EIO;

	for (int i = 0; i < wt->rc.nnodes; i++) {
		redisReply *r;

		wt->sub = ctx_open(wt->rc.nodes[i].host, wt->rc.nodes[i].port,
				   WATCH_COMMAND_MS, 0, &ret, why, sizeof(why));
		if (!wt->sub)
			continue;
		r = redisCommand(wt->sub, "SUBSCRIBE " HINT_CHANNEL);
		if (r && r->type == REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return 0;
		}
		freeReplyObject(r);
		sub_close(wt);
		ret = -EIO;
	}
	return ret;
}

/* Wait up to ms for hints; mark hinted streams. 0, or -EIO when the
 * subscription broke. */
static int sub_wait(struct watcher *wt, int ms, bool *any)
{
	void *reply = NULL;

	*any = false;
	for (;;) {
		if (redisGetReplyFromReader(wt->sub, &reply) != REDIS_OK)
			return -EIO;
		if (!reply) {
			struct pollfd pfd = { wt->sub->fd, POLLIN, 0 };
			int pr;

			if (*any)
				return 0;
			pr = poll(&pfd, 1, ms);
			if (pr <= 0)
				return 0;
			if (redisBufferRead(wt->sub) != REDIS_OK)
				return -EIO;
			ms = 0;
			continue;
		}
		redisReply *r = reply;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		    r->element[2]->type == REDIS_REPLY_STRING) {
			for (size_t i = 0; i < wt->w->n; i++)
				if (!strcmp(wt->w->v[i].tag, r->element[2]->str))
					wt->w->v[i].hinted = *any = true;
			/* the global stream may announce this category */
			if (wt->w->n)
				wt->w->v[0].hinted = *any = true;
		}
		freeReplyObject(r);
	}
}

static void *watch_main(void *arg)
{
	struct watcher *wt = arg;
	struct store_redis *s = wt->s;
	int64_t backoff = 0, next_full = 0;
	bool up = true;

	while (!stopping(wt)) {
		bool any = false;
		int ret = 0;

		if (!wt->sub) {
			ret = sub_open(wt);
			if (!ret)
				next_full = 0;   /* catch up at once */
		}
		if (!ret && wt->resync) {
			ret = ws_snapshot(s, &wt->rc, wt->w);
			if (!ret) {
				struct store_event ev = { .kind = STORE_EV_RESYNC };

				wt->resync = false;
				deliver(wt, &ev);
			}
		}
		if (!ret && clock_mono_ms() >= next_full) {
			next_full = clock_mono_ms() + 1000;
			ret = sweep_all(wt, false);
			if (!ret && !up) {
				semlog(SEMLOG_INFO, "store: redis %s:%d: change "
				       "stream reconnected and caught up",
				       s->host, s->port);
				up = true;
				backoff = 0;
			}
		}
		if (!ret)
			ret = sub_wait(wt, 100, &any);
		if (!ret && any)
			ret = sweep_all(wt, true);
		if (!ret)
			continue;
		/* broken: back off, in slices so close is never delayed */
		if (up)
			semlog(SEMLOG_WARN, "store: redis %s:%d: change stream "
			       "interrupted (%s); reconnecting", s->host,
			       s->port, strerror(ret < 0 ? -ret : EIO));
		up = false;
		sub_close(wt);
		for (int i = 0; i < wt->rc.nnodes; i++)
			node_drop(&wt->rc.nodes[i]);
		backoff = backoff ? backoff * 2 : 100;
		if (backoff > 2000)
			backoff = 2000;
		for (int64_t until = clock_mono_ms() + backoff;
		     !stopping(wt) && clock_mono_ms() < until;)
			usleep(50000);
	}
	sub_close(wt);
	rconn_release(&wt->rc);
	return NULL;
}

static int redis_watch(struct store *st, store_event_fn cb, void *arg)
{
	struct store_redis *s = R(st);
	struct watcher *wt;
	int ret;

	if (!cb)
		return -EINVAL;
	if (s->watching)
		return -EBUSY;
	wt = calloc(1, sizeof(*wt));
	if (!wt)
		return -ENOMEM;
	wt->s = s;
	wt->w = &s->ws;
	/* the slot map is copied; connections are the thread's own */
	pthread_mutex_lock(&s->mu);
	wt->rc = s->rc;
	pthread_mutex_unlock(&s->mu);
	wt->rc.cmd_ms = WATCH_COMMAND_MS;
	for (int i = 0; i < wt->rc.nnodes; i++) {
		wt->rc.nodes[i].c = NULL;
		wt->rc.nodes[i].down_until = 0;
	}
	s->cb = cb;
	s->cb_arg = arg;
	atomic_store(&s->stop, false);
	ret = -pthread_create(&s->thr, NULL, watch_main, wt);
	if (ret) {
		free(wt);
		return ret;
	}
	s->watching = true;
	s->wctx = wt;   /* s->ws is the thread's from here; freed at close */
	return 0;
}

/* ---- open, close ---- */

/* "redis://HOST:PORT/DB" (PORT 6379, DB 0 by default; HOST may be [v6]) */
static int parse_where(const char *where, char *host, size_t hostlen,
		       int *port, int *db)
{
	const char *p, *end;
	char *e;
	long v;

	if (strncmp(where, "redis://", 8))
		return -EINVAL;
	p = where + 8;
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end)
			return -EINVAL;
		p++;
	} else {
		end = p + strcspn(p, ":/");
	}
	if (end == p || (size_t)(end - p) >= hostlen)
		return -EINVAL;
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = 0;
	p = *end == ']' ? end + 1 : end;
	*port = 6379;
	*db = 0;
	if (*p == ':') {
		errno = 0;
		v = strtol(p + 1, &e, 10);
		if (errno || e == p + 1 || v <= 0 || v > 65535)
			return -EINVAL;
		*port = (int)v;
		p = e;
	}
	if (*p == '/' && p[1]) {
		errno = 0;
		v = strtol(p + 1, &e, 10);
		if (errno || e == p + 1 || *e || v < 0 || v > INT_MAX)
			return -EINVAL;
		*db = (int)v;
		p = e;
	} else if (*p == '/') {
		p++;
	}
	return *p ? -EINVAL : 0;
}

/* $XDG_DATA_HOME/semcachefs/redis-HOST-PORT-DB (or ~/.local/share/...) */
static int local_dir(struct store_redis *s, char *err, size_t errlen)
{
	char base[PATH_MAX];
	int n, ret = fileio_default_data_dir(base, sizeof(base));

	if (ret)
		return ret;
	n = snprintf(s->dir, sizeof(s->dir), "%s/redis-%s-%d-%d", base,
		     s->host, s->port, s->db);
	if (n < 0 || (size_t)n >= sizeof(s->dir))
		return -ENAMETOOLONG;
	for (char *p = s->dir + strlen(base) + 1; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	ret = fileio_mkdir_p(s->dir, 0700);
	if (!ret)
		chmod(s->dir, 0700);
	if (ret)
		errbuf_set(err, errlen, "store: create local state directory "
			"'%s': %s", s->dir, strerror(-ret));
	return ret;
}

/* A CONFIG GET value, or "" when CONFIG is not allowed. */
static void config_get(struct store_redis *s, const char *name, char *out,
		       size_t outlen)
{
	struct args a = { 0 };
	redisReply *r = NULL;

	*out = 0;
	arg_s(&a, "CONFIG");
	arg_s(&a, "GET");
	arg_s(&a, name);
	if (!rconn_cmd(&s->rc, "{semcache}", &a, &r)) {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[1]->str)
			snprintf(out, outlen, "%s", r->element[1]->str);
		freeReplyObject(r);
	}
	args_release(&a);
}

static int find_root(void *arg, const struct store_category *c)
{
	if (!strcmp(c->path, "/"))
		*(int64_t *)arg = c->id;
	return 0;
}

struct count_ctx { struct store_redis *s; int64_t n; };

static int count_cat(void *arg, const struct store_category *c)
{
	struct count_ctx *cc = arg;
	struct args a = { 0 };
	redisReply *r = NULL;
	char k[48];
	int ret;

	cat_tag(k, sizeof(k), c->id, ":ids");
	arg_s(&a, "ZCARD");
	arg_s(&a, k);
	ret = scmd(cc->s, k, &a, &r, "count entries");
	args_release(&a);
	if (ret)
		return ret;
	if (r->type == REDIS_REPLY_INTEGER)
		cc->n += r->integer;
	freeReplyObject(r);
	return 0;
}

static void redis_free(struct store_redis *s)
{
	rconn_release(&s->rc);
	free(s->ws.v);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int redis_open(const char *where, const struct store_options *opts,
		      struct store **out, struct store_report *report,
		      char *err, size_t errlen)
{
	struct store_report rep = { 0 };
	struct count_ctx cc;
	struct store_redis *s;
	uint64_t hid = 0;
	int64_t root = 0;
	char val[32];
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		errbuf_set(err, errlen, "store: out of memory");
		return -ENOMEM;
	}
	s->base.ops = &store_redis_ops;
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->where, sizeof(s->where), "%s", where ? where : "");
	if (!where || parse_where(where, s->host, sizeof(s->host), &s->port,
				  &s->db)) {
		errbuf_set(err, errlen, "store: '%s' is not redis://HOST[:PORT][/DB]",
			where ? where : "");
		ret = -EINVAL;
		goto fail;
	}
	s->sync_full = opts && opts->sync_full;
	if (getrandom(&hid, sizeof(hid), 0) != sizeof(hid))
		hid = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^
		      (uint64_t)(uintptr_t)s;
	snprintf(s->host_id, sizeof(s->host_id), "%016llx",
		 (unsigned long long)hid);
	ret = local_dir(s, err, errlen);
	if (ret)
		goto fail;
	ret = rconn_init(&s->rc, s->host, s->port, s->db, COMMAND_MS, err,
			 errlen);
	if (ret)
		goto fail;

	config_get(s, "appendonly", val, sizeof(val));
	if (!strcmp(val, "no"))
		semlog(SEMLOG_WARN, "store: redis %s:%d has appendonly no: fills "
		       "are lost when redis-server restarts; set appendonly yes "
		       "(appendfsync everysec or always)", s->host, s->port);
	config_get(s, "appendfsync", val, sizeof(val));
	if (s->sync_full && *val && strcmp(val, "always"))
		semlog(SEMLOG_WARN, "store: redis %s:%d has appendfsync %s: with "
		       "sync=full set appendfsync always, or a machine crash "
		       "can lose the last second of fills", s->host, s->port,
		       val);

	ret = redis_category_list(&s->base, find_root, &root);
	if (!ret && !root) {
		ret = redis_category_create(&s->base, "/", 0755, getuid(),
					    getgid(), &root);
		if (ret == -EEXIST)   /* another host was quicker */
			ret = 0;
	}
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: create the root "
			"category: %s", s->host, s->port, strerror(-ret));
		goto fail;
	}
	/* watch positions before the engine loads anything */
	pthread_mutex_lock(&s->mu);
	ret = ws_snapshot(s, &s->rc, &s->ws);
	pthread_mutex_unlock(&s->mu);
	cc.s = s;
	cc.n = 0;
	if (!ret)
		ret = redis_category_list(&s->base, count_cat, &cc);
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: read the store: %s",
			s->host, s->port, strerror(-ret));
		goto fail;
	}
	rep.entries = cc.n;
	semlog(SEMLOG_INFO, "store: redis %s:%d db %d%s: %lld entries, host id %s,"
	       " local state in '%s'", s->host, s->port, s->db,
	       s->rc.cluster ? " (cluster)" : "", (long long)rep.entries,
	       s->host_id, s->dir);
	if (report)
		*report = rep;
	*out = &s->base;
	return 0;
fail:
	redis_free(s);
	return ret;
}

static void redis_close(struct store *st)
{
	struct store_redis *s = R(st);

	if (!s)
		return;
	if (s->watching) {
		atomic_store(&s->stop, true);
		pthread_join(s->thr, NULL);
		free(s->wctx);
		s->watching = false;
	}
	redis_free(s);
}

static const char *redis_dir(const struct store *st)
{
	return ((const struct store_redis *)st)->dir;
}

const struct store_ops store_redis_ops = {
	.name = "redis",
	.open = redis_open,
	.close = redis_close,
	.dir = redis_dir,
	.category_list = redis_category_list,
	.category_create = redis_category_create,
	.category_delete = redis_category_delete,
	.category_setattr = redis_category_setattr,
	.policy_get = redis_policy_get,
	.policy_put = redis_policy_put,
	.entry_put = redis_entry_put,
	.entry_delete = redis_entry_delete,
	.entry_touch = redis_entry_touch,
	.entry_scan = redis_entry_scan,
	.response_read = redis_response_read,
	.entry_text = redis_entry_text,
	.watch = redis_watch,
	.quota_enforce = redis_quota_enforce,
};
