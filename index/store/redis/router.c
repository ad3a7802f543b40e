/*
 * router.c - which node runs a command: the node table, and on a Redis
 * Cluster the slot map.
 *
 * How: no hiredis-cluster in Debian 12, so a minimal router. CLUSTER SLOTS
 * at init tells a cluster from a single node (a server without cluster
 * support answers an error); key slots are our own CRC16 of the key or of
 * its {hash tag}. A MOVED reply updates that slot, reloads the map from the
 * node named and retries there; ASK is followed once with ASKING; TRYAGAIN
 * and CLUSTERDOWN are retried after 50 ms; at most 5 hops in all. Nodes are
 * added as the map or a redirect names them, up to RCONN_MAX_NODES.
 *
 * What not: no replicas for reads, no periodic map refresh (only on MOVED),
 * no multi-slot commands (every command's keys share one slot).
 */
#include "rconn_i.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
			return crc16(o + 1, (size_t)(c - o - 1)) & 16383;
	}
	return crc16(key, len) & 16383;
}

static int node_index(struct rconn *rc, const char *host, int port)
{
	for (int i = 0; i < rc->nnodes; i++)
		if (rc->nodes[i].port == port && !strcmp(rc->nodes[i].host, host))
			return i;
	if (rc->nnodes == RCONN_MAX_NODES)
		return -ENOSPC;
	struct rnode *n = &rc->nodes[rc->nnodes];
	memset(n, 0, sizeof(*n));
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	return rc->nnodes++;
}

static int rconn_load_slots(struct rconn *rc, int from)
{
	const char *argv[] = { "CLUSTER", "SLOTS" };
	size_t len[] = { 7, 5 };
	redisReply *r = NULL;
	int ret = rconn_node_cmd(rc, &rc->nodes[from], false, 2, argv, len, &r);

	if (ret)
		return ret;
	if (r->type != REDIS_REPLY_ARRAY) {
		ret = r->type == REDIS_REPLY_ERROR &&
		      strstr(r->str, "cluster support disabled") ? -ENOTSUP : -EIO;
		freeReplyObject(r);
		return ret;
	}
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *s = r->element[i], *m;
		int idx;

		if (s->type != REDIS_REPLY_ARRAY || s->elements < 3)
			continue;
		m = s->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2)
			continue;
		idx = node_index(rc, m->element[0]->str && *m->element[0]->str ?
				 m->element[0]->str : rc->nodes[from].host,
				 (int)m->element[1]->integer);
		if (idx < 0)
			continue;
		for (long long sl = s->element[0]->integer;
		     sl <= s->element[1]->integer && sl < 16384; sl++)
			rc->slot_node[sl] = (uint8_t)idx;
	}
	freeReplyObject(r);
	return 0;
}

int rconn_init(struct rconn *rc, const char *host, int port, int db,
	       int cmd_ms, char *err, size_t errlen)
{
	char why[160];
	int ret = 0;

	memset(rc, 0, sizeof(*rc));
	rc->db = db;
	rc->cmd_ms = cmd_ms;
	node_index(rc, host, port);
	rc->nodes[0].c = rconn_ctx_open(host, port, cmd_ms, db, &ret, why,
					sizeof(why));
	if (!rc->nodes[0].c) {
		errbuf_set(err, errlen, "store: redis %s:%d: %s; is redis-server "
			"running and reachable?", host, port, why);
		return ret;
	}
	ret = rconn_load_slots(rc, 0);
	if (ret == -ENOTSUP)
		return 0;
	if (ret) {
		errbuf_set(err, errlen, "store: redis %s:%d: cluster slots: %s",
			host, port, strerror(-ret));
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
	rc->nnodes = 0;
}

void rconn_disconnect(struct rconn *rc)
{
	for (int i = 0; i < rc->nnodes; i++)
		rconn_node_drop(&rc->nodes[i]);
}

void rconn_clone(struct rconn *dst, const struct rconn *src, int cmd_ms)
{
	*dst = *src;
	dst->lock = NULL;
	dst->cmd_ms = cmd_ms;
	for (int i = 0; i < dst->nnodes; i++) {
		dst->nodes[i].c = NULL;
		dst->nodes[i].down_until = 0;
	}
}

/* "MOVED 3999 127.0.0.1:6381" -> slot, node index */
static int parse_redirect(struct rconn *rc, const char *s, int *slot)
{
	char host[256];
	const char *sp = strchr(s, ' '), *colon;
	int port;

	if (!sp)
		return -EIO;
	*slot = atoi(sp + 1);
	sp = strchr(sp + 1, ' ');
	if (!sp || !(colon = strrchr(sp, ':')) || colon - sp - 1 >= 256)
		return -EIO;
	memcpy(host, sp + 1, (size_t)(colon - sp - 1));
	host[colon - sp - 1] = 0;
	port = atoi(colon + 1);
	return node_index(rc, *host ? host : rc->nodes[0].host, port);
}

int rconn_cmd(struct rconn *rc, const char *key, struct args *a,
	      redisReply **out)
{
	int node = rc->cluster ? rc->slot_node[key_slot(key)] : 0;
	bool asking = false;

	if (a->n < 0)
		return -ENOMEM;
	for (int hop = 0; hop < 5; hop++) {
		redisReply *r = NULL;
		int ret = rconn_node_cmd(rc, &rc->nodes[node], asking, a->n,
					 a->v, a->l, &r);
		int slot, idx;

		asking = false;
		if (ret)
			return ret;
		if (r->type == REDIS_REPLY_ERROR && rc->cluster) {
			if (!strncmp(r->str, "MOVED ", 6) &&
			    (idx = parse_redirect(rc, r->str, &slot)) >= 0) {
				rc->slot_node[slot] = (uint8_t)idx;
				node = idx;
				rconn_load_slots(rc, idx);
				freeReplyObject(r);
				continue;
			}
			if (!strncmp(r->str, "ASK ", 4) &&
			    (idx = parse_redirect(rc, r->str, &slot)) >= 0) {
				node = idx;
				asking = true;
				freeReplyObject(r);
				continue;
			}
			if (!strncmp(r->str, "TRYAGAIN", 8) ||
			    !strncmp(r->str, "CLUSTERDOWN", 11)) {
				freeReplyObject(r);
				usleep(50000);
				continue;
			}
		}
		*out = r;
		return 0;
	}
	return -EIO;
}
