/*
 * redis_test.h - what the Redis store's unit tests share: redis-server
 * processes on free loopback ports (single nodes and cluster nodes), one
 * command to a server, opening a store through store_redis_ops, a log of
 * the events a watcher delivers, puts of marked entries and counting
 * them, categories by path, and the fault proxy (tests/tools/
 * redis_chaos.py) that corrupts chosen replies. Header-only; included once
 * by test_store_redis.c and test_store_redis_faults.c, after check.h and
 * store_i.h.
 */
#ifndef SEMCACHE_REDIS_TEST_H
#define SEMCACHE_REDIS_TEST_H

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define OPS store_redis_ops
#define DIM 256

static char tmp[PATH_MAX];

static inline int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static inline bool port_free(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* A cluster node also listens on port + 10000 (its bus), so <= 55535. */
static inline int free_cluster_port(void)
{
	for (int i = 0; i < 1000; i++) {
		int p = 20000 + (int)((unsigned)rand() % 35000);

		if (port_free(p) && port_free(p + 10000))
			return p;
	}
	return 0;
}

struct srv {
	pid_t pid;
	int port;
	char dir[PATH_MAX];
};

static inline redisReply *cmd1(int port, const char *fmt, const char *arg)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;

	if (c && !c->err)
		r = redisCommand(c, fmt, arg);
	if (c)
		redisFree(c);
	return r;
}

/* Keys of category cat that stay (no expiry): what a delete left behind.
 * Request-id keys ({cC}:rq:RID) expire on their own and are not counted. */
static inline int cat_keys_left(int port, int64_t cat)
{
	char pat[48];
	redisReply *r;
	int left = 0;

	snprintf(pat, sizeof(pat), "{c%lld}:*", (long long)cat);
	r = cmd1(port, "KEYS %s", pat);
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++) {
		redisReply *t = cmd1(port, "PTTL %s", r->element[i]->str);

		left += !t || t->type != REDIS_REPLY_INTEGER || t->integer < 0;
		freeReplyObject(t);
	}
	freeReplyObject(r);
	return left;
}

static inline bool srv_ping(int port)
{
	redisReply *r = cmd1(port, "PING %s", "x");
	bool ok = r && r->type == REDIS_REPLY_STRING;

	freeReplyObject(r);
	return ok;
}

/* Start redis-server on s->port (0: pick one) with its data in s->dir. */
static inline bool srv_start(struct srv *s, bool cluster)
{
	char port[16];

	if (!s->port)
		s->port = cluster ? free_cluster_port() : free_port();
	if (!*s->dir) {
		snprintf(s->dir, sizeof(s->dir), "%s/redis-%d", tmp, s->port);
		mkdir(s->dir, 0700);
	}
	snprintf(port, sizeof(port), "%d", s->port);
	fflush(NULL);
	s->pid = fork();
	if (s->pid == 0) {
		char log[PATH_MAX + 8];

		snprintf(log, sizeof(log), "%s/log", s->dir);
		freopen(log, "a", stdout);
		freopen(log, "a", stderr);
		if (cluster)
			execlp("redis-server", "redis-server", "--port", port,
			       "--bind", "127.0.0.1", "--save", "",
			       "--appendonly", "yes", "--dir", s->dir,
			       "--daemonize", "no", "--cluster-enabled", "yes",
			       "--cluster-config-file", "nodes.conf",
			       "--cluster-node-timeout", "2000", (char *)NULL);
		else
			/* appendfsync always: the restart check relies on every
			 * acknowledged write being in the AOF when redis is
			 * killed; with everysec a busy disk may delay the write */
			execlp("redis-server", "redis-server", "--port", port,
			       "--bind", "127.0.0.1", "--save", "",
			       "--appendonly", "yes", "--appendfsync", "always",
			       "--dir", s->dir, "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	for (int64_t end = mono_us() + 5000000; mono_us() < end; pause_ms(10))
		if (srv_ping(s->port))
			return true;
	return false;
}

/* SIGKILL a child this test started, and reap it. */
static inline void child_kill(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

static inline void srv_kill(struct srv *s)
{
	child_kill(&s->pid);
}

static inline struct store *open_with(int port, const struct store_options *o,
				      char *err, size_t errlen, int *ret)
{
	char where[64];
	struct store *st = NULL;

	snprintf(where, sizeof(where), "redis://127.0.0.1:%d/0", port);
	*ret = OPS.open(where, o, &st, NULL, err, errlen);
	return st;
}

static inline struct store *open_at(int port, char *err, size_t errlen,
				    int *ret)
{
	return open_with(port, NULL, err, errlen, ret);
}

/* ---- collecting events ---- */

struct evlog {
	pthread_mutex_t mu;
	size_t n, cap;
	struct { struct store_event ev; int64_t t_us; uint64_t mark; } *v;
	int resyncs;
};

static inline void ev_cb(void *arg, const struct store_event *ev)
{
	struct evlog *l = arg;

	pthread_mutex_lock(&l->mu);
	if (ev->kind == STORE_EV_RESYNC)
		l->resyncs++;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].ev = *ev;
	l->v[l->n].ev.vec = NULL;
	l->v[l->n].ev.embedder = NULL;
	l->v[l->n].ev.yaml = NULL;
	l->v[l->n].ev.category.path = NULL;
	l->v[l->n].t_us = mono_us();
	l->v[l->n].mark = ev->dim == DIM && ev->vec &&
			  ev->vec[0] == (float)ev->entry.key[0] ? 1 : 0;
	l->n++;
	pthread_mutex_unlock(&l->mu);
}

static inline size_t ev_count(struct evlog *l)
{
	size_t n;

	pthread_mutex_lock(&l->mu);
	n = l->n;
	pthread_mutex_unlock(&l->mu);
	return n;
}

static inline bool ev_wait(struct evlog *l, size_t n, int ms)
{
	for (int64_t end = mono_us() + ms * 1000; mono_us() < end; pause_ms(2))
		if (ev_count(l) >= n)
			return true;
	return ev_count(l) >= n;
}

/* ---- entries ---- */

static float vec[DIM];

/* Put entry "query MARK" (key mark, ~mark; vec[0] = mark) filled by uid. */
static inline int put_as(struct store *st, int64_t cat, uint64_t mark,
			 const void *resp, size_t resp_len, int64_t *id,
			 uid_t uid)
{
	struct store_entry e = { .cat_id = cat, .created_ms = 1000 + (int64_t)mark,
				 .key = { mark, ~mark }, .ctx_hash = 0,
				 .uid = uid };
	char q[64];
	struct store_payload p = { .query = q, .vec = vec, .dim = DIM,
				   .embedder = "builtin-v1",
				   .response = resp, .response_len = resp_len };
	int ret;

	p.query_len = (size_t)snprintf(q, sizeof(q), "query %llu",
				       (unsigned long long)mark);
	vec[0] = (float)mark;
	ret = OPS.entry_put(st, &e, &p);
	if (id)
		*id = e.id;
	return ret;
}

static inline int put(struct store *st, int64_t cat, uint64_t mark,
		      const void *resp, size_t resp_len, int64_t *id)
{
	return put_as(st, cat, mark, resp, resp_len, id, 0);
}

struct scan_ctx {
	int n;
	int64_t ids[4096];
	struct store_entry first;
	float vec[DIM];
	int dim;
	char emb[32];
};

static inline int scan_cb(void *arg, const struct store_entry *e, const float *v,
		   int dim, const char *embedder)
{
	struct scan_ctx *sc = arg;

	if (!sc->n) {
		sc->first = *e;
		sc->dim = dim;
		memcpy(sc->vec, v, sizeof(float) * (dim > DIM ? DIM : dim));
		snprintf(sc->emb, sizeof(sc->emb), "%s", embedder);
	}
	if (sc->n < 4096)
		sc->ids[sc->n] = e->id;
	sc->n++;
	return 0;
}

static inline int count_entries(struct store *st, int64_t cat)
{
	struct scan_ctx *sc = calloc(1, sizeof(*sc));
	int ret = OPS.entry_scan(st, cat, 0, scan_cb, sc), n = sc->n;

	free(sc);
	return ret ? ret : n;
}

struct cat_find { const char *path; int64_t id; mode_t mode; int n; };

static inline int cat_cb(void *arg, const struct store_category *c)
{
	struct cat_find *f = arg;

	f->n++;
	if (!strcmp(c->path, f->path)) {
		f->id = c->id;
		f->mode = c->mode;
	}
	return 0;
}

static inline int64_t cat_lookup(struct store *st, const char *path, mode_t *mode)
{
	struct cat_find f = { path, 0, 0, 0 };

	OPS.category_list(st, cat_cb, &f);
	if (mode)
		*mode = f.mode;
	return f.id;
}

static inline long long rint_of(int port, const char *fmt, const char *key)
{
	redisReply *r = cmd1(port, fmt, key);
	long long v = -1;

	if (r && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	else if (r && r->type == REDIS_REPLY_STRING)
		v = strtoll(r->str, NULL, 10);
	freeReplyObject(r);
	return v;
}

/* A test program's start: a temporary directory (tmp, also the stores'
 * XDG_DATA_HOME) and a redis-server in s. 0, or the exit status to end
 * with (77: no redis-server, a skip). */
static inline int redis_test_begin(const char *name, struct srv *s)
{
	if (system("command -v redis-server >/dev/null 2>&1") != 0) {
		printf("%s: SKIP: redis-server is not installed (apt-get install "
		       "redis-server redis-tools)\n", name);
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp, sizeof(tmp), "%s/semcache-%s-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("XDG_DATA_HOME", tmp, 1);
	srand((unsigned)getpid() ^ (unsigned)mono_us());
	if (!srv_start(s, false)) {
		printf("%s: redis-server did not start (see %s)\n", name, s->dir);
		srv_kill(s);
		return 1;
	}
	return 0;
}

/* ---- the fault proxy ---- */

struct chaos {
	pid_t pid;
	int port;
};

/* Start tests/tools/redis_chaos.py in front of upstream; false (and a
 * line on stdout) when it cannot run. */
static inline bool chaos_start(struct chaos *c, int upstream)
{
	const char *root = getenv("SEMCACHE_SOURCE_ROOT");
	char script[PATH_MAX], lport[16], uport[16];

	snprintf(script, sizeof(script), "%s/tests/tools/redis_chaos.py",
		 root ? root : ".");
	c->port = free_port();
	snprintf(lport, sizeof(lport), "%d", c->port);
	snprintf(uport, sizeof(uport), "%d", upstream);
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		freopen("/dev/null", "w", stdout);
		execlp("python3", "python3", script, lport, uport, (char *)NULL);
		_exit(127);
	}
	for (int64_t end = mono_us() + 5000000; mono_us() < end; pause_ms(10))
		if (srv_ping(c->port))
			return true;
	printf("chaos proxy %s did not start\n", script);
	return false;
}

static inline void chaos_stop(struct chaos *c)
{
	child_kill(&c->pid);
}

/* CHAOS RULE match mode count skip arg: true when the proxy took it. */
static inline bool chaos_rule(struct chaos *c, const char *match,
			      const char *mode, int count, int skip,
			      const char *arg)
{
	struct timeval tv = { 1, 0 };
	redisContext *x = redisConnectWithTimeout("127.0.0.1", c->port, tv);
	redisReply *r = NULL;
	bool ok;

	if (x && !x->err)
		r = redisCommand(x, "CHAOS RULE %s %s %d %d %s", match, mode,
				 count, skip, arg ? arg : "");
	ok = r && r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	if (x)
		redisFree(x);
	return ok;
}

static inline void chaos_clear(struct chaos *c)
{
	redisReply *r = cmd1(c->port, "CHAOS %s", "CLEAR");

	freeReplyObject(r);
}

#endif
