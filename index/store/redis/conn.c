/*
 * conn.c - Redis connections: connect by a deadline, one round trip by a
 * deadline, each node's pool, failing fast while a node is down.
 *
 * How: hiredis' blocking contexts, but no call that could wait on the
 * server is left to hiredis: before each write the socket's send timeout
 * is set to the time left, and every read waits in poll() for at most the
 * time left, so a round trip ends by its deadline even when the server
 * stops answering halfway (kill -STOP). A node's pool (rconn_i.h) hands
 * out idle connections first and opens new ones up to rc->pool; a command
 * that finds none free waits on rc->freed until its deadline. A node that
 * failed to connect is marked down for RCONN_DOWN_MS and answers its last
 * error without a new attempt, so a dead server costs callers a refusal,
 * not a wait; the first failure and the recovery are logged. A command
 * whose pooled connection turns out closed is sent once more on a new
 * connection after the node's other idle connections are closed too (a
 * restarted server closed them all); a timeout is never resent.
 *
 * TLS (rediss://, tls.c): the handshake follows the TCP connect, by the
 * same deadline; a read then also waits in poll() unless OpenSSL holds
 * decrypted bytes already, and the socket timeout is set to the time left
 * before it too (SSL_read may wait for the rest of a record).
 *
 * What not: no pipelining, no judging of replies (call.c), no limit on a
 * reply's size beyond the deadline.
 */
#include "rconn_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static struct timeval tv_ms(int64_t ms)
{
	if (ms < 1)
		ms = 1;
	return (struct timeval){ (time_t)(ms / 1000),
				 (suseconds_t)(ms % 1000) * 1000 };
}

int rconn_ctx_errno(const redisContext *c, int saved)
{
	if (c->err == REDIS_ERR_EOF)
		return -EIO;
	if (c->err == REDIS_ERR_OOM)
		return -ENOMEM;
	if (c->err == REDIS_ERR_PROTOCOL)
		return -EPROTO;
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

/* Wait until c's socket is readable, by deadline. */
static int wait_readable(redisContext *c, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - clock_mono_ms();
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (rconn_tls_pending(c))
			return 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int rconn_ctx_exec(redisContext *c, int argc, const char **argv,
		   const size_t *len, int64_t deadline, bool *sent,
		   redisReply **out)
{
	void *reply = NULL;
	int done = 0, ret;

	*sent = false;
	*out = NULL;
	if (redisAppendCommandArgv(c, argc, argv, len) != REDIS_OK)
		return c->err == REDIS_ERR_OOM ? -ENOMEM : -EIO;
	while (!done) {
		int64_t left = deadline - clock_mono_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		/* a blocking write waits for room at most this long */
		redisSetTimeout(c, tv_ms(left));
		errno = 0;
		if (redisBufferWrite(c, &done) != REDIS_OK) {
			ret = rconn_ctx_errno(c, errno);
			rconn_tls_explain(c);
			return ret;
		}
	}
	*sent = true;
	for (;;) {
		if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
			return rconn_ctx_errno(c, 0);
		if (reply)
			break;
		ret = wait_readable(c, deadline);
		if (ret)
			return ret;
		if (rconn_tls_on(c))
			redisSetTimeout(c, tv_ms(deadline - clock_mono_ms()));
		errno = 0;
		if (redisBufferRead(c) != REDIS_OK) {
			ret = rconn_ctx_errno(c, errno);
			rconn_tls_explain(c);
			return ret;
		}
	}
	*out = reply;
	return 0;
}

/* AUTH [user] pass on a new connection c: 0, or -EACCES with the server's
 * reason (WRONGPASS, an ACL refusal), or the round trip's errno. */
static int ctx_auth(redisContext *c, const struct rconn_auth *auth,
		    int64_t deadline, char *why, size_t whylen)
{
	const char *argv[3] = { "AUTH" };
	size_t len[3] = { 4 };
	redisReply *r = NULL;
	bool sent;
	int n = 1, ret;

	if (auth->user[0]) {
		argv[n] = auth->user;
		len[n++] = strlen(auth->user);
	}
	argv[n] = auth->pass;
	len[n++] = strlen(auth->pass);
	ret = rconn_ctx_exec(c, n, argv, len, deadline, &sent, &r);
	if (ret) {
		snprintf(why, whylen, "auth: %s", c->err ? c->errstr :
			 strerror(-ret));
		/* a TLS session the server ended (tls_probe) */
		return rconn_tls_on(c) && ret == -EIO ? -ECONNABORTED : ret;
	}
	if (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK")) {
		freeReplyObject(r);
		return 0;
	}
	/* the server's reason names no secret (WRONGPASS invalid
	 * username-password pair, ERR AUTH ... without any password
	 * configured) */
	snprintf(why, whylen, "auth%s%s refused: %.120s",
		 auth->user[0] ? " as " : "", auth->user,
		 r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ?
		 r->str : "unexpected reply");
	freeReplyObject(r);
	return -EACCES;
}

/* PING on a new TLS connection c: a server that wants a client
 * certificate says so only after the handshake, with an alert that ends
 * the session. Any reply proves the session (NOAUTH included: AUTH is
 * judged where it is sent); a lost session is -ECONNABORTED. */
static int tls_probe(redisContext *c, int64_t deadline, char *why,
		     size_t whylen)
{
	const char *argv[] = { "PING" };
	size_t len[] = { 4 };
	redisReply *r = NULL;
	bool sent;
	int ret = rconn_ctx_exec(c, 1, argv, len, deadline, &sent, &r);

	freeReplyObject(r);
	if (!ret)
		return 0;
	snprintf(why, whylen, "tls: the server ended the session after the "
		 "handshake: %s", c->err ? c->errstr : strerror(-ret));
	return ret == -ETIMEDOUT || ret == -ENOMEM ? ret : -ECONNABORTED;
}

redisContext *rconn_ctx_open(const struct rconn_auth *auth, const char *host,
			     int port, int db, int64_t deadline, int *ret,
			     char *why, size_t whylen)
{
	int64_t left = deadline - clock_mono_ms();
	redisContext *c;
	redisReply *r = NULL;
	bool sent;

	if (left <= 0) {
		*ret = -ETIMEDOUT;
		snprintf(why, whylen, "no time left to connect");
		return NULL;
	}
	errno = 0;
	c = redisConnectWithTimeout(host, port, tv_ms(left < RCONN_CONNECT_MS ?
						      left : RCONN_CONNECT_MS));
	if (!c) {
		*ret = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	if (c->err) {
		*ret = rconn_ctx_errno(c, errno);
		snprintf(why, whylen, "%s", c->errstr);
		redisFree(c);
		return NULL;
	}
	redisEnableKeepAlive(c);
	if (auth && auth->tls) {
		*ret = rconn_tls_connect(c, auth->tls, host, deadline, why, whylen);
		if (*ret) {
			redisFree(c);
			return NULL;
		}
	}
	if (auth && auth->pass[0]) {
		*ret = ctx_auth(c, auth, deadline, why, whylen);
		if (*ret) {
			redisFree(c);
			return NULL;
		}
	} else if (auth && auth->tls) {
		*ret = tls_probe(c, deadline, why, whylen);
		if (*ret) {
			redisFree(c);
			return NULL;
		}
	}
	if (db) {
		char num[16];
		const char *argv[] = { "SELECT", num };
		size_t len[2] = { 6, 0 };

		len[1] = (size_t)snprintf(num, sizeof(num), "%d", db);
		*ret = rconn_ctx_exec(c, 2, argv, len, deadline, &sent, &r);
		if (!*ret && (r->type != REDIS_REPLY_STATUS ||
			      strcmp(r->str, "OK"))) {
			snprintf(why, whylen, "select db %d: %s", db,
				 r->type == REDIS_REPLY_ERROR ||
				 r->type == REDIS_REPLY_STATUS ? r->str :
				 "unexpected reply");
			*ret = r->type == REDIS_REPLY_ERROR &&
			       !strncmp(r->str, "ERR", 3) ? -EINVAL : -EIO;
		} else if (*ret) {
			snprintf(why, whylen, "select db %d: %s", db,
				 c->err ? c->errstr : strerror(-*ret));
		}
		freeReplyObject(r);
		if (*ret) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/* Lease a connection of node idx by deadline; *fresh says it is new. With
 * renew, the node's idle connections are closed and a new one is opened. */
static int lease(struct rconn *rc, int idx, bool renew, int64_t deadline,
		 redisContext **out, bool *fresh)
{
	struct rnode *n = &rc->nodes[idx];
	redisContext *stale[RCONN_POOL_MAX];
	int nstale = 0, ret = 0;
	bool was_down = false, log_down = false;
	char why[160];

	*out = NULL;
	*fresh = false;
	pthread_mutex_lock(&rc->mu);
	for (;;) {
		if (n->down_until && clock_mono_ms() < n->down_until) {
			ret = n->down_err;
			break;
		}
		if (renew) {
			while (n->nidle) {
				stale[nstale++] = n->idle[--n->nidle];
				n->nopen--;
			}
		}
		if (n->nidle) {
			*out = n->idle[--n->nidle];
			break;
		}
		if (n->nopen < rc->pool) {
			n->nopen++;
			*fresh = true;
			break;
		}
		struct timespec ts;
		int64_t until = deadline;

		if (clock_mono_ms() >= until) {
			ret = -ETIMEDOUT;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		until -= clock_mono_ms();
		ts.tv_sec += (time_t)(until / 1000);
		ts.tv_nsec += (long)(until % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rc->freed, &rc->mu, &ts);
	}
	pthread_mutex_unlock(&rc->mu);
	for (int i = 0; i < nstale; i++)
		redisFree(stale[i]);
	if (ret || !*fresh)
		return ret;

	*out = rconn_ctx_open(&rc->auth, n->host, n->port, rc->db, deadline,
			      &ret, why, sizeof(why));
	pthread_mutex_lock(&rc->mu);
	was_down = n->down_until != 0;
	if (!*out) {
		n->nopen--;
		/* a connect that ran out of the command's time says nothing
		 * about the node */
		if (ret != -ETIMEDOUT || clock_mono_ms() < deadline) {
			log_down = !was_down;
			n->down_until = clock_mono_ms() + RCONN_DOWN_MS;
			n->down_err = ret;
			snprintf(n->down_why, sizeof(n->down_why), "%s", why);
		}
		pthread_cond_broadcast(&rc->freed);
	} else {
		n->down_until = 0;
	}
	pthread_mutex_unlock(&rc->mu);
	if (log_down)
		semlog(SEMLOG_ERR, "store: redis %s:%d: %s%s", n->host, n->port,
		       why, ret == -EACCES ? "; check the ACL user and password" :
		       ret == -ECONNABORTED ? "; check the server's certificate "
		       "and -o redis_tls_ca/redis_tls_cert/redis_tls_sni" :
		       "; is redis-server running and reachable?");
	else if (*out && was_down)
		semlog(SEMLOG_INFO, "store: redis %s:%d: connected again",
		       n->host, n->port);
	return ret;
}

/* Give a leased connection back: to the idle list when it is still good,
 * else closed. */
static void give_back(struct rconn *rc, int idx, redisContext *c, bool good)
{
	struct rnode *n = &rc->nodes[idx];

	pthread_mutex_lock(&rc->mu);
	if (good && !c->err && n->nidle < RCONN_POOL_MAX) {
		n->idle[n->nidle++] = c;
		c = NULL;
	} else {
		n->nopen--;
	}
	pthread_cond_broadcast(&rc->freed);
	pthread_mutex_unlock(&rc->mu);
	if (c)
		redisFree(c);
}

/* ASKING before the command that an ASK redirect named: +OK or -EPROTO. */
static int asking(redisContext *c, int64_t deadline)
{
	const char *argv[] = { "ASKING" };
	size_t len[] = { 6 };
	redisReply *r = NULL;
	bool sent;
	int ret = rconn_ctx_exec(c, 1, argv, len, deadline, &sent, &r);

	if (!ret && (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK")))
		ret = -EPROTO;
	freeReplyObject(r);
	return ret;
}

int rconn_node_cmd(struct rconn *rc, int idx, bool ask, struct args *a,
		   int64_t deadline, bool *any_sent, redisReply **out)
{
	struct rnode *n = &rc->nodes[idx];
	int ret = -EIO;

	*out = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		redisContext *c;
		redisReply *r = NULL;
		bool fresh, sent = false;

		ret = lease(rc, idx, attempt > 0, deadline, &c, &fresh);
		if (ret)
			return ret;
		ret = ask ? asking(c, deadline) : 0;
		if (!ret)
			ret = rconn_ctx_exec(c, a->n, a->v, a->l, deadline,
					     &sent, &r);
		if (sent)
			*any_sent = true;
		if (!ret) {
			give_back(rc, idx, c, true);
			*out = r;
			return 0;
		}
		if (ret == -EPROTO)
			semlog(SEMLOG_WARN, "store: redis %s:%d: %s", n->host,
			       n->port, c->err ? c->errstr :
			       "ASKING was not answered +OK");
		else
			semlog(SEMLOG_WARN, "store: redis %s:%d: %s", n->host,
			       n->port, ret == -ETIMEDOUT ?
			       "no reply within the command timeout" :
			       c->err ? c->errstr : strerror(-ret));
		give_back(rc, idx, c, false);
		/* a timeout may have run; a new connection's failure is the
		 * server's answer */
		if (fresh || ret == -ETIMEDOUT || ret == -ENOMEM ||
		    ret == -EPROTO)
			return ret;
	}
	return ret;
}

void rconn_disconnect(struct rconn *rc)
{
	redisContext *v[RCONN_POOL_MAX];

	for (int i = 0; i < RCONN_MAX_NODES; i++) {
		int k = 0;

		pthread_mutex_lock(&rc->mu);
		if (i < rc->nnodes) {
			struct rnode *n = &rc->nodes[i];

			while (n->nidle) {
				v[k++] = n->idle[--n->nidle];
				n->nopen--;
			}
			n->down_until = 0;
		}
		pthread_cond_broadcast(&rc->freed);
		pthread_mutex_unlock(&rc->mu);
		for (int j = 0; j < k; j++)
			redisFree(v[j]);
	}
}
