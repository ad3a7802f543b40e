/*
 * open.c - opening and closing a Redis store, and the backend table
 * (store_redis_ops) that store.c dispatches to.
 *
 * How: "redis://HOST[:PORT][/DB]" (PORT 6379, DB 0, HOST may be [v6]) is
 * parsed, a local state directory $XDG_DATA_HOME/semcachefs/redis-HOST-
 * PORT-DB is made (0700; the engine keeps its index snapshots there) and
 * locked (flock): a second process of this user on the same URL takes
 * redis-HOST-PORT-DB-1 (up to -7) instead, so each daemon's snapshots are
 * its own and a restarted daemon finds its snapshots again, while two
 * mounts of one cache on one host still work. Then the connection pool is
 * set up (rconn_init: a cluster needs DB 0), the store's epoch read or
 * written (reset.c), the root category created unless some host did, and
 * the stream positions are taken before the engine loads anything. Each
 * open gets a random host id that marks its own events and prefixes its
 * request ids. Command timeout opts->redis_timeout_ms (COMMAND_MS by
 * default), opts->redis_pool connections per node (RCONN_POOL_DEFAULT);
 * the watcher has its own connection with WATCH_COMMAND_MS.
 *
 * Durability is Redis' own: a call returns after the script's reply, which
 * Redis sends after writing its AOF. appendonly yes + appendfsync everysec:
 * acknowledged changes survive a crash of redis-server, up to ~1 s may be
 * lost in a crash of the machine; appendfsync always: they survive both.
 * open() logs a warning when appendonly is off (and, with sync_full, when
 * appendfsync is not always). Redis 7.2's WAITAOF is not used (Debian 12
 * ships 7.0).
 *
 * AUTH: redis://USER@HOST... names an ACL user; the password comes only
 * through opts->redis_password (the daemon reads it from a variable or a
 * file its owner names), is sent on every new connection, never logged,
 * and wiped at close. A password in the URL is refused.
 *
 * TLS: rediss://... is the same store over TLS (tls.c: the CA, client
 * certificate and key, and the name checked come from opts->redis_tls_*);
 * a refused certificate fails the open before anything is created.
 *
 * What not: no replicas for reads, no repair (a damaged
 * category or entry is skipped with a log line where it is read).
 */
#include "redis_i.h"
#include "clock.h"
#include "fileio.h"
#include "semlog.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_SLOTS 8

/* "redis://[USER@]HOST:PORT/DB" (PORT 6379, DB 0 by default; HOST may be
 * [v6]; USER of letters, digits and -_.), or "rediss://..." (*tls). A
 * password in the URL ("USER:PASS@") is -EPERM: it would be on the
 * command line. */
static int parse_where(const char *where, bool *tls, char *user,
		       size_t userlen, char *host, size_t hostlen, int *port,
		       int *db)
{
	const char *p, *end, *at;
	char *e;
	long v;

	*tls = !strncmp(where, "rediss://", 9);
	if (strncmp(where, "redis://", 8) && !*tls)
		return -EINVAL;
	p = where + (*tls ? 9 : 8);
	*user = 0;
	at = strchr(p, '@');
	if (at && at < p + strcspn(p, "/")) {
		if (memchr(p, ':', (size_t)(at - p)))
			return -EPERM;
		if (at == p || (size_t)(at - p) >= userlen)
			return -EINVAL;
		for (const char *q = p; q < at; q++)
			if (!isalnum((unsigned char)*q) && !strchr("-_.", *q))
				return -EINVAL;
		memcpy(user, p, (size_t)(at - p));
		user[at - p] = 0;
		p = at + 1;
	}
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

/* $XDG_DATA_HOME/semcachefs/redis-HOST-PORT-DB[-K] (or ~/.local/share/...):
 * the first of STATE_SLOTS such directories whose flock this process
 * gets; s->dir_fd keeps it. */
static int state_dir(struct store_redis *s, char *err, size_t errlen)
{
	char base[PATH_MAX];
	int ret = fileio_default_data_dir(base, sizeof(base));

	if (ret) {
		errbuf_set(err, errlen, "store: no local state directory: set "
			"XDG_DATA_HOME or HOME (%s)", strerror(-ret));
		return ret;
	}
	for (int k = 0; k < STATE_SLOTS; k++) {
		char sfx[8] = "";
		int n, fd;

		if (k)
			snprintf(sfx, sizeof(sfx), "-%d", k);
		n = snprintf(s->dir, sizeof(s->dir), "%s/redis-%s-%d-%d%s", base,
			     s->host, s->port, s->db, sfx);
		if (n < 0 || (size_t)n >= sizeof(s->dir)) {
			errbuf_set(err, errlen, "store: local state directory "
				"name under '%s' is too long", base);
			return -ENAMETOOLONG;
		}
		for (char *p = s->dir + strlen(base) + 1; *p; p++)
			if (*p == '/' || *p == ':')
				*p = '_';
		ret = fileio_mkdir_p(s->dir, 0700);
		if (ret) {
			errbuf_set(err, errlen, "store: create local state "
				"directory '%s': %s", s->dir, strerror(-ret));
			return ret;
		}
		chmod(s->dir, 0700);
		fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			ret = -errno;
			errbuf_set(err, errlen, "store: open local state directory "
				"'%s': %s", s->dir, strerror(-ret));
			return ret;
		}
		if (!flock(fd, LOCK_EX | LOCK_NB)) {
			s->dir_fd = fd;
			if (k)
				semlog(SEMLOG_INFO, "store: another semcachefs uses "
				       "the local state of %s; this one keeps its "
				       "own in '%s'", s->where, s->dir);
			return 0;
		}
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		if (ret != -EBUSY) {
			errbuf_set(err, errlen, "store: lock local state directory "
				"'%s': %s", s->dir, strerror(-ret));
			return ret;
		}
	}
	errbuf_set(err, errlen, "store: %d semcachefs processes of this user "
		"already use %s on this host (their local state is locked); "
		"stop one, or give this one its own XDG_DATA_HOME", STATE_SLOTS,
		s->where);
	return -EBUSY;
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
	if (rconn_call(&s->rc, "{semcache}", &a, NULL, REDIS_REPLY_ARRAY, 0,
		       &r) || !r)
		return;
	if (r->elements == 2 && rconn_elem_str(r, 1))
		snprintf(out, outlen, "%s", r->element[1]->str);
	freeReplyObject(r);
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
	long long n = 0;
	char k[48];
	int ret;

	redis_cat_tag(k, sizeof(k), c->id, ":ids");
	arg_s(&a, "ZCARD");
	arg_s(&a, k);
	ret = rconn_call_int(&cc->s->rc, k, &a, "count entries", 0, SEQ_MAX, &n);
	if (!ret)
		cc->n += n;
	return ret;
}

static void redis_free(struct store_redis *s)
{
	if (s->rc.pool)
		rconn_release(&s->rc);
	free(s->ws.v);
	free(s->doubts);
	for (size_t i = 0; i < s->nknown; i++)
		free(s->known[i].row);
	free(s->known);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int redis_open(const char *where, const struct store_options *opts,
		      struct store **out, struct store_report *report,
		      char *err, size_t errlen)
{
	struct store_report rep = { 0 };
	struct rconn_auth auth = { 0 };
	bool tls = false;
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
	s->dir_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->where, sizeof(s->where), "%s", where ? where : "");
	ret = where ? parse_where(where, &tls, auth.user, sizeof(auth.user),
				  s->host, sizeof(s->host), &s->port, &s->db) :
		      -EINVAL;
	if (ret == -EPERM) {
		/* where is not echoed: it holds a password */
		errbuf_set(err, errlen, "store: a password does not belong in the "
			"redis:// URL (it would show in the process list): use "
			"redis://USER@HOST:PORT/DB with -o redis_password_env=NAME "
			"or -o redis_password_file=PATH");
		s->where[0] = 0;
		goto fail;
	}
	if (ret) {
		errbuf_set(err, errlen, "store: '%s' is not redis[s]://[USER@]HOST[:PORT][/DB]",
			where ? where : "");
		ret = -EINVAL;
		goto fail;
	}
	if (opts && opts->redis_password) {
		size_t n = strlen(opts->redis_password);

		if (!n || n >= sizeof(auth.pass)) {
			errbuf_set(err, errlen, "store: the Redis password must be "
				"1 to %zu bytes", sizeof(auth.pass) - 1);
			ret = -EINVAL;
			goto fail;
		}
		memcpy(auth.pass, opts->redis_password, n + 1);
	} else if (auth.user[0]) {
		errbuf_set(err, errlen, "store: redis user '%s' needs a password: "
			"-o redis_password_env=NAME or -o redis_password_file=PATH",
			auth.user);
		ret = -EINVAL;
		goto fail;
	}
	s->sync_full = opts && opts->sync_full;
	s->cmd_ms = opts && opts->redis_timeout_ms > 0 ? opts->redis_timeout_ms :
		    COMMAND_MS;
	if (getrandom(&hid, sizeof(hid), 0) != sizeof(hid))
		hid = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^
		      (uint64_t)(uintptr_t)s;
	snprintf(s->host_id, sizeof(s->host_id), "%016llx",
		 (unsigned long long)hid);
	if (tls) {
		ret = rconn_tls_new(opts, &auth.tls, err, errlen);
		if (ret) {
			explicit_bzero(&auth, sizeof(auth));
			goto fail;
		}
	}
	/* connect first: a refused password or certificate leaves nothing
	 * behind */
	ret = rconn_init(&s->rc, &auth, s->host, s->port, s->db, s->cmd_ms,
			 opts ? (int)opts->redis_pool : 0, err, errlen);
	rconn_tls_unref(auth.tls);   /* s->rc holds its own reference */
	explicit_bzero(&auth, sizeof(auth));
	if (ret)
		goto fail;
	ret = state_dir(s, err, errlen);
	if (ret)
		goto fail;
	ret = redis_epoch_open(s);
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: read the store's "
			"epoch: %s", s->host, s->port, strerror(-ret));
		goto fail;
	}

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
	ret = redis_ws_snapshot(&s->rc, &s->ws);
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
	       " %d connections per node, %d ms per command, local state in "
	       "'%s'", s->host, s->port, s->db,
	       s->rc.cluster ? " (cluster)" : "", (long long)rep.entries,
	       s->host_id, s->rc.pool, s->cmd_ms, s->dir);
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
	/* one more try at what failed calls left (stops at the first error) */
	if (redis_doubts_settle(s, &s->rc))
		semlog(SEMLOG_WARN, "store: redis %s:%d: closing with store work "
		       "left undone (a failed fill may stay stored)", s->host,
		       s->port);
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
	.entry_expire = redis_entry_expire,
	.entry_scan = redis_entry_scan,
	.response_read = redis_response_read,
	.entry_text = redis_entry_text,
	.watch = redis_watch,
	.quota_enforce = redis_quota_enforce,
};
