/*
 * call.c - running a command and judging its reply: the one path by which
 * the Redis store (category.c, entry.c, quota.c, watch.c, open.c) talks to
 * the server, and the checks of the values in replies.
 *
 * How: rconn_call sets the command's deadline (the rconn's cmd_ms from
 * now), runs it (rconn_cmd: routing, pool, redirects, resend), then judges
 * the reply: an error reply becomes an errno (logged when the caller named
 * the command), a nil reply the caller's nil errno, a reply of another
 * type than expected -EPROTO, and the arguments are released in every
 * case. Callers state the reply type they expect once, here. Values the
 * store uses as ids or counts go through rconn_reply_int, which takes an
 * integer or a string of decimal digits and nothing else, in a range.
 *
 * A script sent by its hash (EVALSHA) that the server does not know
 * (NOSCRIPT) is sent once more with its source (EVAL), by the same
 * deadline.
 *
 * What not: no pipelining; no knowledge of what a reply means beyond its
 * type and range (the callers check their contracts).
 */
#include "rconn_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(int type)
{
	switch (type) {
	case REDIS_REPLY_STRING: return "string";
	case REDIS_REPLY_ARRAY: return "array";
	case REDIS_REPLY_INTEGER: return "integer";
	case REDIS_REPLY_NIL: return "nil";
	case REDIS_REPLY_STATUS: return "status";
	case REDIS_REPLY_ERROR: return "error";
	default: return "unknown";
	}
}

int rconn_bad_reply(const struct rconn *rc, const char *what,
		    const char *why)
{
	semlog(SEMLOG_ERR, "store: redis %s:%d: %s: %s; refused (is something "
	       "between this host and redis-server changing replies?)",
	       rc->nodes[0].host, rc->nodes[0].port, what ? what : "reply", why);
	return -EPROTO;
}

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

int rconn_call_sent(struct rconn *rc, const char *key, struct args *a,
		      const char *what, int type, int nil_errno,
		      bool *sent, redisReply **out)
{
	redisReply *r = NULL;
	bool keep = true, u = false;
	int ret;

	if (out)
		*out = NULL;
	int64_t deadline = clock_mono_ms() + rc->cmd_ms;

	ret = rconn_cmd(rc, key, a, deadline, &u, &r);
	if (!ret && r->type == REDIS_REPLY_ERROR &&
	    !strncmp(r->str, "NOSCRIPT", 8) && !arg_eval_source(a)) {
		/* a server without the script (flushed, restarted, another
		 * node) did not run it: send its source, by the same deadline */
		freeReplyObject(r);
		r = NULL;
		ret = rconn_cmd(rc, key, a, deadline, &u, &r);
	}
	args_release(a);
	if (sent)
		*sent = u;
	if (ret)
		return ret;
	if (type != RCONN_ANY_REPLY && r->type == REDIS_REPLY_ERROR) {
		ret = reply_errno(rc, r, what);
		keep = false;
	} else if (type > 0 && r->type == REDIS_REPLY_NIL) {
		ret = nil_errno;
		if (ret == -EPROTO && what)
			rconn_bad_reply(rc, what, "nil reply");
		keep = false;
	} else if (type > 0 && r->type != type) {
		char why[64];

		snprintf(why, sizeof(why), "%s reply where %s was expected",
			 type_name(r->type), type_name(type));
		ret = what ? rconn_bad_reply(rc, what, why) : -EPROTO;
		keep = false;
	}
	if (keep && out)
		*out = r;
	else
		freeReplyObject(r);
	return ret;
}

int rconn_call(struct rconn *rc, const char *key, struct args *a,
	       const char *what, int type, int nil_errno, redisReply **out)
{
	return rconn_call_sent(rc, key, a, what, type, nil_errno, NULL, out);
}

int rconn_reply_int(const struct rconn *rc, const redisReply *r,
		    long long lo, long long hi, const char *what,
		    long long *v)
{
	char why[96];
	long long x;

	if (r->type == REDIS_REPLY_INTEGER) {
		x = r->integer;
	} else if (r->type == REDIS_REPLY_STRING && r->len && r->len < 21) {
		const char *p = r->str;
		char *end;

		if (*p == '-')
			p++;
		if (*p < '0' || *p > '9')
			goto bad;
		errno = 0;
		x = strtoll(r->str, &end, 10);
		if (errno || end != r->str + r->len)
			goto bad;
	} else {
		goto bad;
	}
	if (x < lo || x > hi) {
		snprintf(why, sizeof(why), "%lld is out of range %lld..%lld",
			 x, lo, hi);
		return rc ? rconn_bad_reply(rc, what, why) : -EPROTO;
	}
	*v = x;
	return 0;
bad:
	snprintf(why, sizeof(why), "a %s reply where a number was expected",
		 type_name(r->type));
	return rc ? rconn_bad_reply(rc, what, why) : -EPROTO;
}

int rconn_call_int(struct rconn *rc, const char *key, struct args *a,
		   const char *what, long long lo, long long hi,
		   long long *v)
{
	redisReply *r = NULL;
	int ret = rconn_call(rc, key, a, what, REDIS_REPLY_INTEGER, -EPROTO,
			     &r);

	if (!ret)
		ret = rconn_reply_int(rc, r, lo, hi, what, v);
	freeReplyObject(r);
	return ret;
}

const redisReply *rconn_elem_str(const redisReply *r, size_t i)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
	    r->element[i]->type != REDIS_REPLY_STRING)
		return NULL;
	return r->element[i];
}
