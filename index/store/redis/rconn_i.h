/*
 * rconn_i.h - private to index/store/redis/: the connection and command
 * layer under the Redis backend. Everything that talks to a server goes
 * through here; nothing here knows the store's keys or scripts.
 *
 *   args.c    building a command's argument vector (struct args)
 *   conn.c    one node: connect (timeouts, SELECT), fail fast while it is
 *             down, run a command, reconnect once after a closed connection
 *   router.c  a node table and, on a cluster, the slot map: CRC16 key
 *             slots, CLUSTER SLOTS, MOVED and ASK, TRYAGAIN
 *
 * Invariants: a struct rconn is not synchronised; its owner's lock guards
 * all of it (the store's mu for the store's, the watcher thread owns its
 * own). No function here sleeps longer than a command timeout, except a
 * TRYAGAIN/CLUSTERDOWN retry (50 ms, at most 5 hops).
 * Errors: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENETUNREACH, -EIO
 * (connection lost, protocol), -ENOMEM; a node that failed to connect
 * answers its last error for DOWN_MS without a new attempt.
 * Replies returned through an out pointer belong to the caller
 * (freeReplyObject).
 */
#ifndef SEMCACHE_RCONN_I_H
#define SEMCACHE_RCONN_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define RCONN_CONNECT_MS 1000
#define RCONN_DOWN_MS 200
#define RCONN_MAX_NODES 32

/* ---- args.c: a command's arguments ---- */

struct args {
	int n, cap;        /* n = -1 once an allocation failed (sticky) */
	const char **v;
	size_t *l;
	char (*num)[24];   /* backing store of numbers, one per argument */
};

/* Arguments are borrowed (only numbers are copied): keep each buffer alive
 * and distinct until the command ran. A zero-initialised struct args is
 * empty; args_release frees what it holds and empties it again. */
void args_release(struct args *a);
void arg_b(struct args *a, const void *p, size_t len);   /* bytes */
void arg_s(struct args *a, const char *s);               /* a C string */
void arg_i(struct args *a, int64_t v);                   /* a number */
/* EVAL script nkeys: the keys and then the other arguments follow. */
void arg_eval(struct args *a, const char *script, int nkeys);

/* ---- conn.c and router.c: connections ---- */

struct rnode {
	char host[256];
	int port;
	redisContext *c;
	int64_t down_until;   /* mono ms: fail fast until then */
	int down_err;
};

struct rconn {
	int db;
	int cmd_ms;                      /* command timeout */
	bool cluster;
	int nnodes;
	struct rnode nodes[RCONN_MAX_NODES];   /* [0] is the seed */
	uint8_t slot_node[16384];        /* cluster: slot -> nodes[] index */
};

/* Connect to host:port with the connect timeout, set the command timeout
 * and keep-alive, SELECT db when not 0. NULL on failure, with *ret the
 * errno and why a message. */
redisContext *rconn_ctx_open(const char *host, int port, int cmd_ms, int db,
			     int *ret, char *why, size_t whylen);
/* The errno of a failed hiredis call on c (saved: errno right after it). */
int rconn_ctx_errno(const redisContext *c, int saved);
/* Connect n if it is not (logging the first failure and the recovery). */
int rconn_node_connect(struct rconn *rc, struct rnode *n);
void rconn_node_drop(struct rnode *n);
/* Raw command on one node (after ASKING when asking); reconnects once if
 * the connection was found closed, never after a timeout (it may have
 * run). *out may be an error reply. */
int rconn_node_cmd(struct rconn *rc, struct rnode *n, bool asking, int argc,
		   const char **argv, const size_t *len, redisReply **out);

/* Connect to the seed host:port and learn whether it is a cluster (then
 * db must be 0) and its slot map. rc is the caller's; err says why. */
int rconn_init(struct rconn *rc, const char *host, int port, int db,
	       int cmd_ms, char *err, size_t errlen);
/* Close every connection and forget the nodes. */
void rconn_release(struct rconn *rc);
/*
 * Run command a on the node serving key's slot, following MOVED (and
 * reloading the slot map) and ASK. *out is the reply, possibly an error
 * reply for the caller to judge; 0 or a negative errno (-ENOMEM when
 * building a failed).
 */
int rconn_cmd(struct rconn *rc, const char *key, struct args *a,
	      redisReply **out);

#endif
