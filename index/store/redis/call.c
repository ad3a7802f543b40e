/*
 * call.c - running a command and judging its reply: the one path by which
 * the Redis store (category.c, entry.c, quota.c, watch.c, open.c) talks to
 * the server.
 *
 * How: rconn_call holds the rconn's lock around the round trip only
 * (rconn_cmd: routing, redirects, reconnect), then judges the reply without
 * it: an error reply becomes an errno (logged when the caller named the
 * command), a reply of an unexpected type becomes the caller's mismatch
 * errno, and the arguments are released in every case. Callers state the
 * reply type they expect once, here, instead of checking r->type
 * themselves.
 *
 * What not: no per-command timeouts beyond the socket's, no pipelining, no
 * checks of a reply's values (ranges are the callers').
 */
#include "rconn_i.h"
#include "semlog.h"

#include <errno.h>
#include <string.h>

/* An error reply as an errno, logged naming what when there is one. */
static int reply_errno(const struct rconn *rc, const redisReply *r,
		       const char *what)
{
	if (!what)
		return -EIO;
	semlog(SEMLOG_ERR, "store: redis %s:%d: %s: %s", rc->nodes[0].host,
	       rc->nodes[0].port, what, r->str);
	if (!strncmp(r->str, "OOM", 3))
		return -ENOSPC;
	return -EIO;
}

int rconn_call(struct rconn *rc, const char *key, struct args *a,
	       const char *what, int type, int mismatch, redisReply **out)
{
	redisReply *r = NULL;
	bool keep = true;
	int ret;

	if (out)
		*out = NULL;
	if (rc->lock)
		pthread_mutex_lock(rc->lock);
	ret = rconn_cmd(rc, key, a, &r);
	if (rc->lock)
		pthread_mutex_unlock(rc->lock);
	args_release(a);
	if (ret)
		return ret;
	if (type != RCONN_ANY_REPLY && r->type == REDIS_REPLY_ERROR) {
		ret = reply_errno(rc, r, what);
		keep = false;
	} else if (type > 0 && r->type != type) {
		ret = mismatch;
		keep = false;
	}
	if (keep && out)
		*out = r;
	else
		freeReplyObject(r);
	return ret;
}

int rconn_call_int(struct rconn *rc, const char *key, struct args *a,
		   const char *what, int mismatch, long long *v)
{
	redisReply *r = NULL;
	int ret = rconn_call(rc, key, a, what, REDIS_REPLY_INTEGER, mismatch,
			     &r);

	if (r) {
		*v = r->integer;
		freeReplyObject(r);
	}
	return ret;
}
