/*
 * cancel.c - work that must still reach the Redis store after the call
 * that needed it failed: cancelling puts whose outcome is unknown, and
 * dropping the keys a category delete left behind.
 *
 * Why: a put that timed out, lost its connection after sending, or got a
 * reply that is not its own may have run, or may still run (a paused
 * server reads it on waking). The fill was reported as failed, so it must
 * not stay in the store for other hosts to serve. entry.c hands such a
 * put's request id here; the cancel script (scripts.c) removes the entry
 * if the put ran (streaming a delete so that other hosts drop it) and
 * leaves a marker that makes a later run of that put a no-op. A category
 * delete is done once the category is unregistered; if dropping its keys
 * failed, the rest is dropped here.
 *
 * How: a FIFO of struct doubt under s->mu (copied out, worked on without
 * it); the watcher thread calls redis_doubts_settle on every round with
 * its own connection, and close tries once more. A step that fails stays
 * at the head for the next round (each step is safe to repeat).
 *
 * What not: no persistence: what a crashed process had not settled stays
 * (a put in doubt then remains stored; its fill had been reported failed).
 */
#include "redis_i.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOUBT_MAX 65536

static void push(struct store_redis *s, int64_t cat, const char *rid)
{
	pthread_mutex_lock(&s->mu);
	if (s->ndoubts == s->doubt_cap && s->doubt_cap < DOUBT_MAX) {
		size_t cap = s->doubt_cap ? s->doubt_cap * 2 : 16;
		struct doubt *v = realloc(s->doubts, cap * sizeof(*v));

		if (v) {
			s->doubts = v;
			s->doubt_cap = cap;
		}
	}
	if (s->ndoubts < s->doubt_cap) {
		struct doubt *d = &s->doubts[s->ndoubts++];

		d->cat_id = cat;
		snprintf(d->rid, sizeof(d->rid), "%s", rid);
		rid = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (rid)
		semlog(SEMLOG_ERR, "store: redis %s:%d: too much unfinished work "
		       "to remember; category %lld %s stays", s->host, s->port,
		       (long long)cat, *rid ? "may keep a failed fill" :
		       "keeps keys of its deleted entries");
}

void redis_doubt_add(struct store_redis *s, int64_t cat, const char *rid)
{
	semlog(SEMLOG_WARN, "store: redis %s:%d: a fill into category %lld may "
	       "have been stored although it failed; it will be removed when "
	       "the server answers", s->host, s->port, (long long)cat);
	push(s, cat, rid);
}

void redis_drop_later(struct store_redis *s, int64_t cat)
{
	push(s, cat, "");
}

/* Cancel the put of request rid into cat. */
static int cancel(struct store_redis *s, struct rconn *rc, int64_t cat,
		  const char *rid)
{
	struct args a = { 0 };
	long long removed = 0;
	char tag[24];
	int ret;

	redis_cat_tag(tag, sizeof(tag), cat, "");
	redis_arg_script(&a, &redis_script_cancel, tag, rid);
	arg_s(&a, tag);
	arg_s(&a, rid);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	arg_i(&a, CANCEL_SCAN);
	ret = rconn_call_int(rc, tag, &a, "cancel a failed fill", 0, 1,
			     &removed);
	if (!ret && removed)
		semlog(SEMLOG_INFO, "store: redis %s:%d: removed a fill into "
		       "category %lld that had been reported failed", s->host,
		       s->port, (long long)cat);
	return ret;
}

int redis_doubts_settle(struct store_redis *s, struct rconn *rc)
{
	for (;;) {
		struct doubt d;
		int ret;

		pthread_mutex_lock(&s->mu);
		if (!s->ndoubts) {
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		d = s->doubts[0];
		pthread_mutex_unlock(&s->mu);
		ret = *d.rid ? cancel(s, rc, d.cat_id, d.rid) :
		      redis_cat_drop_keys(s, rc, d.cat_id);
		if (ret)
			return ret;
		pthread_mutex_lock(&s->mu);
		/* only this thread removes, others append: [0] is still d */
		memmove(s->doubts, s->doubts + 1,
			(s->ndoubts - 1) * sizeof(*s->doubts));
		s->ndoubts--;
		pthread_mutex_unlock(&s->mu);
	}
}
