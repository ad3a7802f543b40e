/*
 * router.c - which node runs a command: the node table, and on a Redis
 * Cluster the slot map.
 *
 * How: no hiredis-cluster in Debian 12, so a minimal router. CLUSTER SLOTS
 * at init tells a cluster from a single node (a server without cluster
 * support answers an error); key slots are our own CRC16 of the key or of
 * its {hash tag}. A MOVED reply updates that slot, reloads the map from the
 * node named (in the calling thread, holding no lock, one reload at a
 * time) and retries there; ASK is followed once with ASKING; at most
 * RCONN_HOPS such redirects in all. TRYAGAIN (a multi-key script whose
 * keys a live resharding has split between two nodes) and CLUSTERDOWN
 * are not redirects: they are retried every RCONN_TRYAGAIN_MS until the
 * command's deadline, then fail with -ETIMEDOUT (logged); nothing goes
 * past the deadline. Nodes are added as the
 * map or a redirect names them, up to RCONN_MAX_NODES. Everything a server
 * says is checked before it is used: a redirect's slot must be 0..16383 and
 * its port 1..65535, a CLUSTER SLOTS reply must be an array of [start,
 * end, [host, port, ...], ...] with integer bounds 0 <= start <= end <=
 * 16383 and an integer port, host names must look like host names; a
 * reply that is not is refused whole (-EPROTO, logged) and the map kept.
 *
 * What not: no replicas for reads, no periodic map refresh (only on MOVED),
 * no multi-slot commands (every command's keys share one slot).
 */
#include "rconn_i.h"
#include "clock.h"
#include "fileio.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CRC16-CCITT (XModem: poly 0x1021, init 0), as Redis Cluster hashes keys. */
static uint16_t crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
					     : (uint16_t)(crc << 1);
	}
	return crc;
}

/* The cluster slot of a key, honouring a {hash tag}. */
static int key_slot(const char *key)
{
	size_t len = strlen(key);
	const char *o = memchr(key, '{', len), *c;

	if (o) {
		c = memchr(o + 1, '}', len - (size_t)(o + 1 - key));
		if (c && c > o + 1)
			return crc16(o + 1, (size_t)(c - o - 1)) & (RCONN_SLOTS - 1);
	}
	return crc16(key, len) & (RCONN_SLOTS - 1);
}

/* A host name or address as a server may name a node: letters, digits and
 * ".-_:" (IPv6), 1..255 bytes. */
static bool host_ok(const char *h, size_t len)
{
	if (!len || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
		    !(ch >= '0' && ch <= '9') && !strchr(".-_:", ch))
			return false;
	}
	return true;
}

/* The index of node host:port, added when new. mu held. */
static int node_index(struct rconn *rc, const char *host, int port)
{
	struct rnode *n;

	for (int i = 0; i < rc->nnodes; i++)
		if (rc->nodes[i].port == port && !strcmp(rc->nodes[i].host, host))
			return i;
	if (rc->nnodes == RCONN_MAX_NODES)
		return -ENOSPC;
	n = &rc->nodes[rc->nnodes];
	memset(n, 0, sizeof(*n));
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	return rc->nnodes++;
}

struct slot_range {
	int lo, hi, port;
	char host[256];
};

/* A CLUSTER SLOTS reply as ranges; -EPROTO if any part is malformed. */
static int parse_slots(const redisReply *r, const char *from_host,
		       struct slot_range **out, size_t *nout)
{
	struct slot_range *v = calloc(r->elements ? r->elements : 1, sizeof(*v));

	*out = NULL;
	*nout = 0;
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *s = r->element[i], *m, *h, *p;

		if (s->type != REDIS_REPLY_ARRAY || s->elements < 3 ||
		    s->element[0]->type != REDIS_REPLY_INTEGER ||
		    s->element[1]->type != REDIS_REPLY_INTEGER)
			goto bad;
		m = s->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2)
			goto bad;
		h = m->element[0];
		p = m->element[1];
		if (s->element[0]->integer < 0 ||
		    s->element[0]->integer > s->element[1]->integer ||
		    s->element[1]->integer >= RCONN_SLOTS ||
		    h->type != REDIS_REPLY_STRING ||
		    p->type != REDIS_REPLY_INTEGER || p->integer < 1 ||
		    p->integer > 65535)
			goto bad;
		if (!h->len)   /* the node we asked, by the name we know it */
			snprintf(v[i].host, sizeof(v[i].host), "%s", from_host);
		else if (host_ok(h->str, h->len))
			memcpy(v[i].host, h->str, h->len);
		else
			goto bad;
		v[i].lo = (int)s->element[0]->integer;
		v[i].hi = (int)s->element[1]->integer;
		v[i].port = (int)p->integer;
	}
	*out = v;
	*nout = r->elements;
	return 0;
bad:
	free(v);
	return -EPROTO;
}

/* CLUSTER SLOTS on node from, installed into the map; -ENOTSUP when the
 * server is no cluster. One reload at a time: another one running makes
 * this a no-op. */
static int load_slots(struct rconn *rc, int from, int64_t deadline)
{
	struct args a = { 0 };
	struct slot_range *v = NULL;
	redisReply *r = NULL;
	size_t n = 0;
	bool unsure = false;
	int ret;

	pthread_mutex_lock(&rc->mu);
	ret = rc->reloading ? 1 : 0;
	rc->reloading = true;
	pthread_mutex_unlock(&rc->mu);
	if (ret)
		return 0;
	arg_s(&a, "CLUSTER");
	arg_s(&a, "SLOTS");
	ret = a.n < 0 ? -ENOMEM :
	      rconn_node_cmd(rc, from, false, &a, deadline, &unsure, &r);
	args_release(&a);
	if (!ret && r->type != REDIS_REPLY_ARRAY)
		ret = r->type != REDIS_REPLY_ERROR ? -EPROTO :
		      strstr(r->str, "cluster support disabled") ? -ENOTSUP :
		      !strncmp(r->str, "NOPERM", 6) ? -EACCES : -EPROTO;
	if (ret == -EACCES)
		semlog(SEMLOG_ERR, "store: redis %s:%d: CLUSTER SLOTS refused: "
		       "%.160s; the ACL user needs +cluster|slots",
		       rc->nodes[from].host, rc->nodes[from].port, r->str);
	if (!ret)
		ret = parse_slots(r, rc->nodes[from].host, &v, &n);
	if (ret == -EPROTO)
		semlog(SEMLOG_ERR, "store: redis %s:%d: CLUSTER SLOTS reply is "
		       "malformed (slot bounds, host or port); the slot map is "
		       "kept", rc->nodes[from].host, rc->nodes[from].port);
	pthread_mutex_lock(&rc->mu);
	for (size_t i = 0; i < n; i++) {
		int idx = node_index(rc, v[i].host, v[i].port);

		for (int sl = v[i].lo; idx >= 0 && sl <= v[i].hi; sl++)
			rc->slot_node[sl] = (uint8_t)idx;
	}
	rc->reloading = false;
	pthread_mutex_unlock(&rc->mu);
	free(v);
	freeReplyObject(r);
	return ret;
}

int rconn_init(struct rconn *rc, const struct rconn_auth *auth,
	       const char *host, int port, int db, int cmd_ms, int pool,
	       char *err, size_t errlen)
{
	pthread_condattr_t ca;
	redisReply *r = NULL;
	struct args a = { 0 };
	bool unsure = false;
	int ret;

	memset(rc, 0, sizeof(*rc));
	pthread_mutex_init(&rc->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rc->freed, &ca);
	pthread_condattr_destroy(&ca);
	if (auth)
		rc->auth = *auth;
	rconn_tls_ref(rc->auth.tls);
	rc->db = db;
	rc->cmd_ms = cmd_ms;
	rc->pool = pool > 0 ? (pool < RCONN_POOL_MAX ? pool : RCONN_POOL_MAX) :
		   RCONN_POOL_DEFAULT;
	node_index(rc, host, port);
	/* the first round trip connects: its failure is the reason to give */
	arg_s(&a, "PING");
	ret = rconn_node_cmd(rc, 0, false, &a, clock_mono_ms() + cmd_ms,
			     &unsure, &r);
	args_release(&a);
	if (!ret && (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG")))
		ret = r->type == REDIS_REPLY_ERROR ? -EIO : -EPROTO;
	if (ret == -EIO && r && r->type == REDIS_REPLY_ERROR &&
	    (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "NOPERM", 6)))
		ret = -EACCES;
	if (ret == -EACCES) {
		errbuf_set(err, errlen, "store: redis %s:%d: %s; give the password "
			"with -o redis_password_env=NAME or -o redis_password_file=PATH"
			" (and the ACL user as redis://USER@HOST)", host, port,
			rc->nodes[0].down_why[0] ? rc->nodes[0].down_why :
			r && r->type == REDIS_REPLY_ERROR ? r->str : "refused");
		freeReplyObject(r);
		return ret;
	}
	if (ret == -ECONNABORTED) {
		errbuf_set(err, errlen, "store: redis %s:%d: %s; check the server's "
			"certificate and -o redis_tls_ca, redis_tls_sni (a server "
			"that wants a client certificate: -o redis_tls_cert and "
			"redis_tls_key)", host, port, rc->nodes[0].down_why);
		freeReplyObject(r);
		return ret;
	}
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: %s; is redis-server "
			"running and reachable?", host, port,
			rc->nodes[0].down_why[0] ? rc->nodes[0].down_why :
			r && r->type == REDIS_REPLY_ERROR ? r->str :
			strerror(-ret));
		freeReplyObject(r);
		return ret;
	}
	freeReplyObject(r);
	ret = load_slots(rc, 0, clock_mono_ms() + cmd_ms);
	if (ret == -ENOTSUP)
		return 0;
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: cluster slots: %s%s",
			host, port, strerror(-ret), ret == -EACCES ?
			" (NOPERM: the ACL user needs +cluster|slots and the "
			"store's keys, see the README)" : "");
		return ret;
	}
	rc->cluster = true;
	if (db) {
		errbuf_set(err, errlen, "store: redis %s:%d is a cluster, which has "
			"only database 0; use redis://%s:%d/0", host, port,
			host, port);
		return -EINVAL;
	}
	return 0;
}

void rconn_release(struct rconn *rc)
{
	rconn_disconnect(rc);
	rconn_tls_unref(rc->auth.tls);
	explicit_bzero(&rc->auth, sizeof(rc->auth));
	rc->nnodes = 0;
	pthread_cond_destroy(&rc->freed);
	pthread_mutex_destroy(&rc->mu);
}

void rconn_clone(struct rconn *dst, struct rconn *src, int cmd_ms, int pool)
{
	pthread_condattr_t ca;

	memset(dst, 0, sizeof(*dst));
	pthread_mutex_lock(&src->mu);
	dst->auth = src->auth;
	rconn_tls_ref(dst->auth.tls);
	dst->db = src->db;
	dst->cluster = src->cluster;
	dst->nnodes = src->nnodes;
	for (int i = 0; i < src->nnodes; i++) {
		memcpy(dst->nodes[i].host, src->nodes[i].host,
		       sizeof(dst->nodes[i].host));
		dst->nodes[i].port = src->nodes[i].port;
	}
	memcpy(dst->slot_node, src->slot_node, sizeof(dst->slot_node));
	pthread_mutex_unlock(&src->mu);
	dst->cmd_ms = cmd_ms;
	dst->pool = pool > 0 ? (pool < RCONN_POOL_MAX ? pool : RCONN_POOL_MAX) :
		    RCONN_POOL_DEFAULT;
	pthread_mutex_init(&dst->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dst->freed, &ca);
	pthread_condattr_destroy(&ca);
}

/* A number of digits only, in lo..hi; end is where it stopped. */
static bool parse_num(const char *s, long lo, long hi, long *v,
		      const char **end)
{
	char *e;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtol(s, &e, 10);
	*end = e;
	return !errno && *v >= lo && *v <= hi;
}

/* "MOVED 3999 127.0.0.1:6381" (or ASK): slot and node index; -EPROTO
 * (logged) when any part is out of range. mu is taken here. */
static int parse_redirect(struct rconn *rc, const char *s, int *slot)
{
	const char *p = strchr(s, ' '), *host, *colon, *end;
	char hbuf[256];
	long v, port;
	int idx;

	if (!p || !parse_num(p + 1, 0, RCONN_SLOTS - 1, &v, &end) || *end != ' ')
		goto bad;
	*slot = (int)v;
	host = end + 1;
	colon = strrchr(host, ':');
	if (!colon || !parse_num(colon + 1, 1, 65535, &port, &end) || *end)
		goto bad;
	if (colon > host && !host_ok(host, (size_t)(colon - host)))
		goto bad;
	memcpy(hbuf, host, (size_t)(colon - host));
	hbuf[colon - host] = '\0';
	pthread_mutex_lock(&rc->mu);
	idx = node_index(rc, *hbuf ? hbuf : rc->nodes[0].host, (int)port);
	pthread_mutex_unlock(&rc->mu);
	if (idx < 0)
		semlog(SEMLOG_ERR, "store: redis: a redirect names a node beyond "
		       "the %d known; not followed", RCONN_MAX_NODES);
	return idx < 0 ? -EPROTO : idx;
bad:
	semlog(SEMLOG_ERR, "store: redis: malformed redirect '%.80s' (slot "
	       "0..16383, HOST:PORT); not followed", s);
	return -EPROTO;
}

static void pause_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	if (ms > 0)
		nanosleep(&ts, NULL);
}

int rconn_cmd(struct rconn *rc, const char *key, struct args *a,
	      int64_t deadline, bool *sent, redisReply **out)
{
	int slot = rc->cluster ? key_slot(key) : 0, node;
	bool ask = false;

	*out = NULL;
	if (a->n < 0)
		return -ENOMEM;
	pthread_mutex_lock(&rc->mu);
	node = rc->cluster ? rc->slot_node[slot] : 0;
	pthread_mutex_unlock(&rc->mu);
	for (int hop = 0, waits = 0; hop < RCONN_HOPS;) {
		redisReply *r = NULL;
		int ret, rslot, idx;

		if ((hop || waits) && clock_mono_ms() >= deadline) {
			if (waits)
				semlog(SEMLOG_ERR, "store: redis: slot %d was still "
				       "being migrated (TRYAGAIN) or the cluster "
				       "down after %d tries in the command timeout; "
				       "given up", slot, waits);
			return -ETIMEDOUT;
		}
		bool asked = ask;

		ret = rconn_node_cmd(rc, node, ask, a, deadline, sent, &r);
		ask = false;
		if (ret)
			return ret;
		if (r->type != REDIS_REPLY_ERROR || !rc->cluster) {
			*out = r;
			return 0;
		}
		if (!strncmp(r->str, "MOVED ", 6) || !strncmp(r->str, "ASK ", 4)) {
			bool moved = r->str[0] == 'M';

			idx = parse_redirect(rc, r->str, &rslot);
			freeReplyObject(r);
			if (idx < 0)
				return idx;
			node = idx;
			hop++;
			if (moved) {
				pthread_mutex_lock(&rc->mu);
				rc->slot_node[rslot] = (uint8_t)idx;
				pthread_mutex_unlock(&rc->mu);
				load_slots(rc, idx, deadline);
			} else {
				ask = true;
			}
			continue;
		}
		if (!strncmp(r->str, "TRYAGAIN", 8) ||
		    !strncmp(r->str, "CLUSTERDOWN", 11)) {
			int64_t left = deadline - clock_mono_ms();

			/* not a hop: the slot's keys are on their way (a live
			 * resharding) or a node is failing over; the same node
			 * is asked again (after ASKING again if this was the
			 * node an ASK named) until the deadline */
			freeReplyObject(r);
			ask = asked;
			waits++;
			pause_ms(left < RCONN_TRYAGAIN_MS ? left : RCONN_TRYAGAIN_MS);
			continue;
		}
		*out = r;
		return 0;
	}
	semlog(SEMLOG_ERR, "store: redis: a command was redirected %d times; "
	       "given up", RCONN_HOPS);
	return -EIO;
}
