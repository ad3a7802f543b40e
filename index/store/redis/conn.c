/*
 * conn.c - one Redis node's connection: connect, fail fast while the node
 * is down, run a command, reconnect once after a closed connection.
 *
 * How: hiredis' blocking API with a connect timeout (RCONN_CONNECT_MS) and
 * a command timeout (the rconn's cmd_ms) on the socket, TCP keep-alive, and
 * SELECT for a database other than 0. A node that failed to connect is
 * marked down for RCONN_DOWN_MS and answers its last error without a new
 * attempt, so a dead server costs callers a refusal, not a wait; the first
 * failure and the recovery are logged. A command that finds the connection
 * closed (a restarted server) is retried once on a fresh one; a timeout is
 * never retried, since the command may have run.
 *
 * What not: no AUTH or TLS, no pipelining, no pool (one connection per
 * node per rconn), no judging of replies (the caller's).
 */
#include "rconn_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

int rconn_ctx_errno(const redisContext *c, int saved)
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

redisContext *rconn_ctx_open(const char *host, int port, int cmd_ms, int db,
			     int *ret, char *why, size_t whylen)
{
	struct timeval ct = { RCONN_CONNECT_MS / 1000,
			      (RCONN_CONNECT_MS % 1000) * 1000 };
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
		*ret = rconn_ctx_errno(c, errno);
		snprintf(why, whylen, "%s", c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisEnableKeepAlive(c);
	if (db) {
		r = redisCommand(c, "SELECT %d", db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			*ret = r ? -EINVAL : rconn_ctx_errno(c, errno);
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

void rconn_node_drop(struct rnode *n)
{
	if (n->c)
		redisFree(n->c);
	n->c = NULL;
}

int rconn_node_connect(struct rconn *rc, struct rnode *n)
{
	char why[160];
	int ret = 0;

	if (n->c)
		return 0;
	if (n->down_until && clock_mono_ms() < n->down_until)
		return n->down_err;
	n->c = rconn_ctx_open(n->host, n->port, rc->cmd_ms, rc->db, &ret, why,
			      sizeof(why));
	if (!n->c) {
		if (!n->down_until)
			semlog(SEMLOG_ERR, "store: redis %s:%d: %s; is redis-server "
			       "running and reachable?", n->host, n->port, why);
		n->down_until = clock_mono_ms() + RCONN_DOWN_MS;
		n->down_err = ret;
		return ret;
	}
	if (n->down_until)
		semlog(SEMLOG_INFO, "store: redis %s:%d: connected again",
		       n->host, n->port);
	n->down_until = 0;
	return 0;
}

int rconn_node_cmd(struct rconn *rc, struct rnode *n, bool asking, int argc,
		   const char **argv, const size_t *len, redisReply **out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = !n->c;
		int ret = rconn_node_connect(rc, n), saved;
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
		ret = rconn_ctx_errno(n->c, saved);
		semlog(SEMLOG_WARN, "store: redis %s:%d: %s", n->host, n->port,
		       n->c->errstr);
		rconn_node_drop(n);
		if (fresh || ret == -ETIMEDOUT)
			return ret;
	}
	return -EIO;
}
