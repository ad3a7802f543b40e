/*
 * watch.c - the change-stream watcher: delivers other hosts' changes.
 *
 * How: each write script XADDs an event {h: writer host id, n: evseq, k:
 * kind, ...} to its category's (or the global) stream and PUBLISHes the
 * category's tag on HINT_CHANNEL as a wake-up hint (Pub/Sub reaches every
 * node of a cluster). The watcher thread has an rconn of its own (one
 * connection per node, a copy of the slot map), so it never waits for the
 * pool the other threads use, nor they for it. A subscriber waits for
 * hints with a 100 ms poll, then reads the hinted streams with non-blocking
 * XREAD from the last id seen (one key per XREAD, so it works across
 * slots); every second it reads all streams anyway, so a lost hint costs
 * at most 1 s. The entries
 * of a batch's put events are fetched with one get script call. An n that
 * does not follow the last one seen (a trimmed stream, a Redis that lost
 * data) makes it re-read the positions and deliver STORE_EV_RESYNC; so
 * does a reset store (reset.c: the epoch is checked on every full sweep,
 * and first after a reconnect). Every reply is checked before use: the
 * shape of XREAD and XREVRANGE replies, field names and values, ids and
 * sequences in range; a malformed reply fails the sweep (-EPROTO, logged)
 * and the stream position moves past an event only once it was handled.
 * Each round also does the store work left by failed calls (cancel.c).
 * Positions are taken at open() (redis_ws_snapshot), so nothing between the
 * engine's initial load and watch() is lost; the price is that such
 * changes may also arrive as events (apply them idempotently). Events
 * written by this instance (its random host id) are read but not
 * delivered, except evictions (quota.c). A broken connection is retried
 * with a backoff of 100 ms doubling to 2 s, slept in 50 ms slices so that
 * close is never delayed.
 *
 * Each category also has a hits stream, read the same way (hits.c): its
 * events carry the sums over the hosts of the entries a touch changed,
 * delivered as STORE_EV_ENTRY_HITS; a gap there costs a read of the
 * category's counts, not a resync. A delete event with x = 1 is an expiry
 * (the expire script), delivered with expired set.
 *
 * What not: no blocking XREAD (one key per call across slots).
 */
#include "redis_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ws_add_one(struct wstate *w, int64_t cat, bool hits,
		      const char *last, int64_t n)
{
	struct wstream *x;

	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].cat_id == cat && w->v[i].hits == hits)
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
	x->hits = hits;
	if (cat) {
		redis_cat_tag(x->tag, sizeof(x->tag), cat, "");
		redis_cat_tag(x->key, sizeof(x->key), cat,
			      hits ? ":hstream" : ":stream");
	} else {
		snprintf(x->tag, sizeof(x->tag), "{semcache}");
		snprintf(x->key, sizeof(x->key), "{semcache}:stream");
	}
	snprintf(x->last, sizeof(x->last), "%s", last);
	x->n = n;
	return 0;
}

/* The streams of category cat (0: the global one) from position last, n
 * (the hits stream of a category: from its start). */
static int ws_add(struct wstate *w, int64_t cat, const char *last, int64_t n)
{
	int ret = ws_add_one(w, cat, false, last, n);

	if (!ret && cat)
		ret = ws_add_one(w, cat, true, "0-0", 0);
	return ret;
}

static void ws_del(struct wstate *w, int64_t cat)
{
	for (size_t i = 0; i < w->n;)
		if (w->v[i].cat_id == cat)
			w->v[i] = w->v[--w->n];
		else
			i++;
}

/* A stream entry's field value (a string), or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];

		if (k->type == REDIS_REPLY_STRING && !strcmp(k->str, name))
			return rconn_elem_str(fields, i + 1);
	}
	return NULL;
}

/* A numeric field in lo..hi, else -1 (absent or malformed). */
static int64_t field_i(const redisReply *fields, const char *name,
		       long long lo, long long hi)
{
	const redisReply *f = field(fields, name);
	long long v;

	return f && !rconn_reply_int(NULL, f, lo, hi, NULL, &v) ? v : -1;
}

/* A stream entry as XRANGE/XREAD give it: [id, [field, value, ...]]. */
static bool entry_ok(const redisReply *e)
{
	const redisReply *f;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    !e->element[0]->len || e->element[0]->len >= 48)
		return false;
	f = e->element[1];
	if (f->type != REDIS_REPLY_ARRAY || f->elements % 2)
		return false;
	for (size_t i = 0; i < f->elements; i++)
		if (f->element[i]->type != REDIS_REPLY_STRING)
			return false;
	return true;
}

/* The last entry of a stream: its id and n ("0-0", 0 if empty; n -1 when
 * the entry has no valid n: the next event is then taken as it comes). */
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
	ret = rconn_call(rc, x->key, &a, "read a change stream",
			 REDIS_REPLY_ARRAY, -EPROTO, &r);
	if (ret)
		return ret;
	if (r->elements > 1 || (r->elements && !entry_ok(r->element[0]))) {
		freeReplyObject(r);
		return rconn_bad_reply(rc, "read a change stream",
				       "not a stream entry");
	}
	snprintf(last, lastlen, "0-0");
	*n = 0;
	if (r->elements == 1) {
		redisReply *e = r->element[0];

		snprintf(last, lastlen, "%s", e->element[0]->str);
		*n = field_i(e->element[1], "n", 1, INT64_MAX);
	}
	freeReplyObject(r);
	return 0;
}

int redis_ws_snapshot(struct rconn *rc, struct wstate *w)
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
	ret = rconn_call(rc, "{semcache}", &a, "list categories",
			 REDIS_REPLY_ARRAY, -EPROTO, &r);
	if (ret)
		return ret;
	for (size_t i = 0; !ret && i < r->elements; i++) {
		int64_t id;

		ret = redis_cat_id(rc, r->element[i], "list categories", &id);
		if (!ret)
			ret = ws_add(w, id, "0-0", 0);
		/* its change stream, then its hits stream */
		for (size_t k = w->n - 2; !ret && k < w->n; k++)
			ret = stream_tail(rc, &w->v[k], w->v[k].last,
					  sizeof(w->v[k].last), &w->v[k].n);
	}
	freeReplyObject(r);
	return ret;
}

struct watcher {
	struct store_redis *s;
	struct rconn rc;          /* the thread's own */
	redisContext *sub;        /* subscribed to HINT_CHANNEL */
	struct wstate *w;
	bool resync;
	redisReply *pre;          /* the entries of a batch's put events */
	size_t pre_at;            /* next group of pre to look at */
	uid_t owner;              /* of pre's category (entries without uid) */
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
	char tag[24];
	bool any = false;
	int ret;

	wt->pre = NULL;
	wt->pre_at = 1;
	redis_cat_tag(tag, sizeof(tag), cat, "");
	redis_arg_script(&a, &redis_script_get, tag, NULL);
	arg_s(&a, tag);
	arg_s(&a, "l");
	for (size_t j = 0; j < ents->elements; j++) {
		const redisReply *f = ents->element[j]->element[1];
		const redisReply *h = field(f, "h"), *kind = field(f, "k");

		int64_t seq = field_i(f, "s", 1, SEQ_MAX);

		if (kind && kind->str[0] == 'p' && seq > 0 &&
		    !(h && !strcmp(h->str, wt->s->host_id))) {
			arg_i(&a, seq);
			any = true;
		}
	}
	if (!any) {
		args_release(&a);
		return 0;
	}
	ret = redis_cat_owner(wt->s, &wt->rc, cat, &wt->owner);
	if (ret == -ENOENT || ret == -EBADMSG)
		wt->owner = 0;
	else if (ret) {
		args_release(&a);
		return ret;
	}
	ret = rconn_call(&wt->rc, tag, &a, "read new entries",
			 REDIS_REPLY_ARRAY, -EPROTO, &wt->pre);
	if (!ret)
		ret = redis_get_reply_check(&wt->rc, wt->pre, "read new entries");
	return ret;
}

/* A put event: deliver the prefetched entry, if it still existed. */
static int deliver_put(struct watcher *wt, int64_t cat, int64_t seq)
{
	struct fetch_ctx fc = { wt, false };
	const redisReply *r = wt->pre;

	/* groups are in event order, so a cursor finds them */
	while (r && wt->pre_at + 6 <= r->elements) {
		redisReply **f = r->element + wt->pre_at;
		long long s;
		int ret = rconn_reply_int(&wt->rc, f[0], 1, SEQ_MAX,
					  "read new entries", &s);

		if (ret)
			return ret;
		if (s > seq)
			break;
		wt->pre_at += 6;
		if (s == seq)
			return redis_get_group(wt->s, cat, f, wt->owner, fetch_cb,
					       &fc);
	}
	return 0;
}

/* Handle one stream entry of stream x (fields f); 0 or -errno. */
static int handle(struct watcher *wt, struct wstream *x, const redisReply *f)
{
	const redisReply *h = field(f, "h"), *k = field(f, "k");
	bool mine = h && !strcmp(h->str, wt->s->host_id);
	struct store_event ev = { 0 };
	char kind = k ? k->str[0] : 0;
	int64_t cat = x->cat_id, seq;

	if (!x->cat_id) {
		const redisReply *c = field(f, "c");
		int64_t id = field_i(f, "id", 1, CAT_MAX);
		int ret;

		if (!c || id <= 0 || (kind != 'c' && kind != 'x' && kind != 'a')) {
			semlog(SEMLOG_WARN, "store: redis watch: a malformed "
			       "category event; skipped");
			return 0;
		}
		if (redis_cat_parse(id, c->str, c->len, &ev.category)) {
			semlog(SEMLOG_WARN, "store: redis watch: category %lld: "
			       "damaged event; skipped", (long long)id);
			return 0;
		}
		if (kind == 'c') {
			/* a new category's stream is read from its start */
			ret = ws_add(wt->w, id, "0-0", 0);
			if (ret)
				return ret;
		} else if (kind == 'x') {
			ws_del(wt->w, id);
		}
		ret = redis_known_set(wt->s, id, kind == 'x' ? NULL : c->str);
		if (ret || mine)
			return ret;
		ev.kind = kind == 'c' ? STORE_EV_CATEGORY_CREATE :
			  kind == 'x' ? STORE_EV_CATEGORY_DELETE :
					STORE_EV_CATEGORY_ATTR;
		deliver(wt, &ev);
		return 0;
	}
	/* an eviction (e=1) reaches its own host too: see store_watch */
	if (mine && !(kind == 'd' && field(f, "e")))
		return 0;
	if (kind == 'p' || kind == 'd') {
		seq = field_i(f, "s", 1, SEQ_MAX);
		if (seq <= 0) {
			semlog(SEMLOG_WARN, "store: redis watch %s: an entry "
			       "event without a valid sequence; skipped", x->key);
			return 0;
		}
		if (kind == 'p')
			return deliver_put(wt, cat, seq);
		ev.kind = STORE_EV_ENTRY_DELETE;
		ev.expired = field(f, "x") != NULL;
		ev.entry.id = entry_id(cat, seq);
		ev.entry.cat_id = cat;
		ev.category.id = cat;
		deliver(wt, &ev);
	} else if (kind == 'y') {
		const redisReply *y = field(f, "y");

		ev.kind = STORE_EV_POLICY;
		ev.category.id = cat;
		ev.entry.cat_id = cat;
		if (y) {
			ev.yaml = y->str;
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

/* An XREAD reply of one stream: nil, or [[key, [entry...]]]. */
static bool xread_ok(const redisReply *r)
{
	const redisReply *s;

	if (r->type == REDIS_REPLY_NIL)
		return true;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
		return false;
	s = r->element[0];
	if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
	    s->element[0]->type != REDIS_REPLY_STRING ||
	    s->element[1]->type != REDIS_REPLY_ARRAY)
		return false;
	for (size_t j = 0; j < s->element[1]->elements; j++)
		if (!entry_ok(s->element[1]->element[j]))
			return false;
	return true;
}

/*
 * The events ents of hits stream i (hits.c): other hosts' sums delivered.
 * An n that does not follow on (the stream was trimmed past this watcher's
 * position) costs a read of every count of the category, not a resync.
 */
static int hits_batch(struct watcher *wt, size_t i, const redisReply *ents)
{
	struct wstream *x = &wt->w->v[i];

	for (size_t j = 0; j < ents->elements; j++) {
		const redisReply *e = ents->element[j], *f = e->element[1];
		const redisReply *h = field(f, "h"), *k = field(f, "k");
		int64_t n = field_i(f, "n", 1, INT64_MAX);

		if (n < 0 || (x->n >= 0 && n != x->n + 1)) {
			int ret;

			semlog(SEMLOG_INFO, "store: redis watch %s: event %lld "
			       "follows %lld: reading the category's hit counts",
			       x->key, (long long)n, (long long)x->n);
			ret = redis_hits_refresh(wt->s, &wt->rc, x->cat_id);
			if (ret)
				return ret;
		} else if (k && k->str[0] == 'h' &&
			   !(h && !strcmp(h->str, wt->s->host_id))) {
			redis_hits_event(wt->s, x->key, x->cat_id, field(f, "b"));
		}
		snprintf(x->last, sizeof(x->last), "%s", e->element[0]->str);
		x->n = n;
	}
	return 0;
}

/* Read one XREAD batch of stream i, delivering; *more when the batch was
 * full (more may follow). */
static int sweep_batch(struct watcher *wt, size_t i, bool *more)
{
	struct wstream *x = &wt->w->v[i];
	struct args a = { 0 };
	redisReply *r = NULL, *ents;
	char key[40];
	int ret;

	*more = false;
	arg_s(&a, "XREAD");
	arg_s(&a, "COUNT");
	arg_i(&a, SCAN_BATCH);
	arg_s(&a, "STREAMS");
	arg_s(&a, x->key);
	arg_s(&a, x->last);
	/* handle() may grow wt->w, moving x */
	snprintf(key, sizeof(key), "%s", x->key);
	ret = rconn_call(&wt->rc, key, &a, NULL, RCONN_ANY_REPLY, 0, &r);
	if (ret)
		return ret;
	if (r->type == REDIS_REPLY_ERROR) {
		semlog(SEMLOG_WARN, "store: redis watch %s: %s", key, r->str);
		ret = -EIO;
		goto out;
	}
	if (!xread_ok(r)) {
		ret = rconn_bad_reply(&wt->rc, "read a change stream",
				      "not an XREAD reply");
		goto out;
	}
	if (r->type == REDIS_REPLY_NIL)
		goto out;   /* nothing new */
	ents = r->element[0]->element[1];
	if (x->hits) {
		ret = hits_batch(wt, i, ents);
		*more = !ret && ents->elements >= SCAN_BATCH;
		goto out;
	}
	if (x->cat_id) {
		ret = prefetch_puts(wt, x->cat_id, ents);
		if (ret)
			goto out;
	}
	for (size_t j = 0; j < ents->elements; j++) {
		redisReply *e = ents->element[j];
		int64_t n = field_i(e->element[1], "n", 1, INT64_MAX), cat;

		x = &wt->w->v[i];
		if (n < 0 || (x->n >= 0 && n != x->n + 1)) {
			semlog(SEMLOG_WARN, "store: redis watch %s: event "
			       "%lld follows %lld: events were lost, "
			       "resynchronising", key, (long long)n,
			       (long long)x->n);
			wt->resync = true;
			goto out;
		}
		cat = x->cat_id;
		ret = handle(wt, x, e->element[1]);
		if (ret)
			goto out;
		/* handled: only now does the position move past it */
		if (i < wt->w->n && wt->w->v[i].cat_id == cat) {
			x = &wt->w->v[i];
			snprintf(x->last, sizeof(x->last), "%s",
				 e->element[0]->str);
			x->n = n;
		} else {
			goto out;   /* a deleted category's stream is gone */
		}
	}
	*more = ents->elements >= SCAN_BATCH;
out:
	freeReplyObject(r);
	pre_free(wt);
	return ret;
}

/* Read stream i from its position to its end, delivering. */
static int sweep(struct watcher *wt, size_t i)
{
	bool more = true;
	int ret = 0;

	while (!ret && more)
		ret = sweep_batch(wt, i, &more);
	return ret;
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
	const char *argv[] = { "SUBSCRIBE", HINT_CHANNEL };
	size_t len[] = { 9, sizeof(HINT_CHANNEL) - 1 };
	char why[160];
	int ret = -EIO;

	for (int i = 0; i < wt->rc.nnodes; i++) {
		int64_t deadline = clock_mono_ms() + WATCH_COMMAND_MS;
		redisReply *r = NULL;
		bool sent;

		wt->sub = rconn_ctx_open(&wt->rc.auth, wt->rc.nodes[i].host,
					 wt->rc.nodes[i].port, 0, deadline,
					 &ret, why, sizeof(why));
		if (!wt->sub)
			continue;
		ret = rconn_ctx_exec(wt->sub, 2, argv, len, deadline, &sent, &r);
		if (!ret && r->type == REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return 0;
		}
		freeReplyObject(r);
		sub_close(wt);
		ret = ret ? ret : -EIO;
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
		if (rconn_elem_str(r, 2) && r->elements == 3) {
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
		bool any = false, full;
		int ret = 0;

		if (!wt->sub) {
			ret = sub_open(wt);
			if (!ret)
				next_full = 0;   /* catch up at once */
		}
		full = !ret && clock_mono_ms() >= next_full;
		if (full) {
			/* a reset store first: its streams are gone too */
			ret = redis_reset_check(s, &wt->rc);
			if (ret == 1)
				wt->resync = true;
			ret = ret < 0 ? ret : 0;
		}
		if (!ret && wt->resync) {
			ret = redis_ws_snapshot(&wt->rc, wt->w);
			if (!ret) {
				struct store_event ev = { .kind = STORE_EV_RESYNC };

				wt->resync = false;
				deliver(wt, &ev);
			}
		}
		if (!ret && full) {
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
		/* failed calls' leftovers; a failure here is retried next round */
		if (!ret)
			redis_doubts_settle(s, &wt->rc);
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
		rconn_disconnect(&wt->rc);
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

int redis_watch(struct store *st, store_event_fn cb, void *arg)
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
	rconn_clone(&wt->rc, &s->rc, WATCH_COMMAND_MS, 1);
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
