/*
 * call.c - a command of the Redis store: run under the store's lock on the
 * node that serves its key, with an error reply turned into an errno.
 *
 * How: the lock (store_redis.mu) is held only around rconn_cmd, the round
 * trip; the reply is judged after it is dropped. An error reply is logged
 * with what the command was for and the server's message, and is -ENOSPC
 * when the server is out of memory (OOM), else -EIO.
 *
 * What not: the watcher thread does not come here (it owns its own rconn
 * and takes no lock).
 */
#include "redis_i.h"
#include "semlog.h"

#include <errno.h>
#include <string.h>

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

int redis_scmd(struct store_redis *s, const char *key, struct args *a,
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
