/*
 * quota.c - evictions decided in Redis, not on any host's view.
 *
 * How: after a fill (and whenever a host's view is over quota, e.g. a
 * lowered quota) the engine calls store_quota_enforce, which runs the quota
 * script: it reads the category's count (ZCARD) and byte total and evicts,
 * in one atomic script, exactly the overflow in the order asked: fifo from
 * {cC}:ids (sequence = commit order), lru and lfu from {cC}:lru / {cC}:lfu,
 * which every put, delete and touch script keeps up to date. Two hosts
 * seeing one overflow thus evict once: the second script finds the
 * category fitting. Each eviction is a 'd' event marked e=1, delivered to
 * every host including the evicting one (its reply may be lost; its engine
 * may be publishing a put event for that very entry), and the script
 * reports whether the entry just filled (keep) still exists, so that a host
 * never keeps an entry another host evicted meanwhile. Recency and hit
 * counts are what the hosts' hit flushes (touch) wrote: up to a flush
 * interval old, times from the hosts' clocks (as ttl already assumes), hits
 * the maximum any host counted; the engine flushes its own hits before
 * asking for an eviction. Categories stored before quotas were kept here
 * get their orders and byte total rebuilt by the first quota script (one
 * pass over the category, {cC}:qok marks it done); entries the order does
 * not know (written by an older daemon) are evicted after the known ones,
 * oldest first. {cC}:evicted counts the evictions ever made.
 *
 * What not: expiry (ttl) is still judged by each host on its own view.
 */
#include "redis_i.h"

#include <errno.h>
#include <stdlib.h>

int redis_quota_enforce(struct store *st, int64_t cat_id,
			const struct store_quota *q, int64_t *evicted,
			size_t max, size_t *n, bool *keep_gone)
{
	struct store_redis *s = R(st);
	static const char order[] = { [STORE_EVICT_LRU] = 'l',
				      [STORE_EVICT_LFU] = 'u',
				      [STORE_EVICT_FIFO] = 'f' };
	struct args a = { 0 };
	redisReply *r = NULL;
	char tag[24], ord[2] = { 0 }, rid[40];
	long long gone = 0;
	int ret;

	if (!n || !keep_gone)
		return -EINVAL;
	*n = 0;
	*keep_gone = false;
	if (!q || !evicted || !max || cat_id <= 0 || cat_id > CAT_MAX ||
	    q->entries < 0 || q->bytes < 0 ||
	    (unsigned)q->order > STORE_EVICT_FIFO)
		return -EINVAL;
	if (max > 100000)
		max = 100000;
	ord[0] = order[q->order];
	redis_cat_tag(tag, sizeof(tag), cat_id, "");
	redis_rid(s, rid);
	redis_arg_script(&a, &redis_script_quota, tag, rid);
	arg_s(&a, tag);
	arg_i(&a, q->entries);
	arg_i(&a, q->bytes);
	arg_s(&a, ord);
	arg_i(&a, q->keep > 0 && id_cat(q->keep) == cat_id ? id_seq(q->keep) : 0);
	arg_s(&a, s->host_id);
	arg_s(&a, STREAM_MAXLEN);
	arg_i(&a, (int64_t)max);
	ret = redis_once_call(&s->rc, tag, &a, rid, "evict for quota",
			      REDIS_REPLY_ARRAY, -EPROTO, NULL, &r);
	if (ret)
		return ret;
	/* { keep gone (0|1), seq... } with at most max seqs */
	if (!r->elements || r->elements - 1 > max)
		ret = rconn_bad_reply(&s->rc, "evict for quota",
				      "not { gone, seq... } of at most the limit");
	if (!ret)
		ret = rconn_reply_int(&s->rc, r->element[0], 0, 1,
				      "evict for quota", &gone);
	for (size_t i = 1; !ret && i < r->elements; i++) {
		long long seq;

		ret = r->element[i]->type == REDIS_REPLY_STRING ?
		      rconn_reply_int(&s->rc, r->element[i], 1, SEQ_MAX,
				      "evict for quota", &seq) :
		      rconn_bad_reply(&s->rc, "evict for quota",
				      "an evicted id that is no string");
		if (!ret)
			evicted[(*n)++] = entry_id(cat_id, seq);
	}
	freeReplyObject(r);
	if (ret) {
		*n = 0;
		return ret;
	}
	*keep_gone = q->keep > 0 && gone == 1;
	return 0;
}
