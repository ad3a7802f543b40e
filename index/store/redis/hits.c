/*
 * hits.c - hit counts summed over the hosts, as the other hosts learn
 * them: the hits events of a category's hits stream, and a full read of
 * its counts when that stream lost events.
 *
 * How: a touch (scripts.c) that moved any entry's sum or last hit XADDs
 * one event {h: host, n: hseq, k: h, b: "seq h t ..."} to {cC}:hstream,
 * trimmed to about HITS_MAXLEN events: the watcher (watch.c) reads that
 * stream next to the change stream, and each event becomes one
 * STORE_EV_ENTRY_HITS per entry (redis_hits_event). A stream kept short
 * keeps Redis' memory small (an event names up to 1000 entries, a change
 * stream keeps 100000 events) and keeps the change stream, which restarts
 * resume from (resume.c), free of them; a watcher that fell behind by more
 * than that (an n that does not follow on) reads every entry's (h t) with
 * the hits script instead (redis_hits_refresh) and goes on from the
 * stream's end. Counts only grow and last hits only move forward, so an
 * event that arrives late or twice does no harm (the engine keeps the
 * larger).
 *
 * What not: no per-host breakdown is delivered (the o:HOST fields stay in
 * Redis); nothing is written.
 */
#include "redis_i.h"
#include "semlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_BATCH 1000

static void deliver_one(struct store_redis *s, int64_t cat, long long seq,
			long long h, long long t)
{
	struct store_event ev = { .kind = STORE_EV_ENTRY_HITS };

	ev.entry.id = entry_id(cat, seq);
	ev.entry.cat_id = cat;
	ev.entry.hits = h;
	ev.entry.last_hit_ms = t;
	ev.category.id = cat;
	s->cb(s->cb_arg, &ev);
}

/* One decimal number in lo..hi at *p (after spaces), ending at a space or
 * end; moves *p past it. false when there is none or it is out of range. */
static bool next_num(const char **p, const char *end, long long lo,
		     long long hi, long long *v)
{
	long long x = 0;
	bool any = false;

	while (*p < end && **p == ' ')
		(*p)++;
	for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
		if (x > (INT64_MAX - (**p - '0')) / 10)
			return false;
		x = x * 10 + (**p - '0');
		any = true;
	}
	if (!any || x < lo || x > hi || (*p < end && **p != ' '))
		return false;
	*v = x;
	return true;
}

void redis_hits_event(struct store_redis *s, const char *key, int64_t cat,
		      const redisReply *b)
{
	const char *p = b ? b->str : NULL, *end = b ? b->str + b->len : NULL;
	bool bad = !b;

	while (p && p < end) {
		long long seq, h, t;

		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		if (!next_num(&p, end, 1, SEQ_MAX, &seq) ||
		    !next_num(&p, end, 0, INT64_MAX, &h) ||
		    !next_num(&p, end, 0, INT64_MAX, &t)) {
			bad = true;
			break;
		}
		deliver_one(s, cat, seq, h, t);
	}
	if (bad)
		semlog(SEMLOG_WARN, "store: redis watch %s: a malformed hits "
		       "event; skipped (the next touch of its entries streams "
		       "their counts again)", key);
}

/* A counter of the hits script's reply ("" = 0). */
static bool count_of(const redisReply *r, long long *v)
{
	*v = 0;
	return !r->len || !rconn_reply_int(NULL, r, 0, INT64_MAX, NULL, v);
}

int redis_hits_refresh(struct store_redis *s, struct rconn *rc, int64_t cat)
{
	long long lo = 0;
	char tag[24];

	redis_cat_tag(tag, sizeof(tag), cat, "");
	for (;;) {
		struct args a = { 0 };
		redisReply *r = NULL;
		long long last;
		int ret;

		redis_arg_script(&a, &redis_script_hits, tag, NULL);
		arg_s(&a, tag);
		arg_i(&a, lo);
		arg_i(&a, REFRESH_BATCH);
		ret = rconn_call(rc, tag, &a, "read hit counts",
				 REDIS_REPLY_ARRAY, -EPROTO, &r);
		if (!ret && (!r->elements || (r->elements - 1) % 3))
			ret = rconn_bad_reply(rc, "read hit counts",
					      "not { last, (seq h t)... }");
		for (size_t i = 0; !ret && i < r->elements; i++)
			if (r->element[i]->type != REDIS_REPLY_STRING)
				ret = rconn_bad_reply(rc, "read hit counts",
						      "a member that is no string");
		if (!ret && !r->element[0]->len) {
			freeReplyObject(r);
			return 0;
		}
		if (!ret)
			ret = rconn_reply_int(rc, r->element[0], lo + 1, SEQ_MAX,
					      "read hit counts", &last);
		for (size_t i = 1; !ret && i + 3 <= r->elements; i += 3) {
			long long seq, h, t;

			if (!rconn_reply_int(NULL, r->element[i], lo + 1, last,
					     NULL, &seq) &&
			    count_of(r->element[i + 1], &h) &&
			    count_of(r->element[i + 2], &t))
				deliver_one(s, cat, seq, h, t);
		}
		freeReplyObject(r);
		if (ret)
			return ret;
		lo = last;   /* strictly more than before: the loop ends */
	}
}
