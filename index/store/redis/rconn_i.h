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
 *   call.c    a command and its reply, judged: the one way the store runs
 *             commands (rconn_call, rconn_call_int)
 *
 * Invariants: everything in a struct rconn is guarded by *lock, which
 * rconn_call holds around each round trip (lock is NULL for an rconn that
 * one thread owns, like the watcher's); the lower functions (rconn_cmd,
 * rconn_node_*) expect the caller to hold it. Every wait is bounded: the
 * connect and command timeouts per attempt, at most two attempts per node
 * (a reconnect after a closed connection), five hops per command (MOVED,
 * ASK, or a 50 ms pause after TRYAGAIN/CLUSTERDOWN).
 * Errors: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENETUNREACH, -EIO
 * (connection lost, protocol), -ENOMEM; a node that failed to connect
 * answers its last error for DOWN_MS without a new attempt.
 * Replies returned through an out pointer belong to the caller
 * (freeReplyObject).
 */
#ifndef SEMCACHE_RCONN_I_H
#define SEMCACHE_RCONN_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define RCONN_CONNECT_MS 1000
#define RCONN_DOWN_MS 200
#define RCONN_MAX_NODES 32

/* ---- args.c: a command's arguments ---- */

#define ARG_SLOT 48

struct args {
	int n, cap;        /* n = -1 once an allocation failed (sticky) */
	const char **v;
	size_t *l;
	char (*num)[ARG_SLOT];   /* printed arguments, one slot per argument */
};

/* Strings and bytes are borrowed: keep each buffer alive until the
 * command ran. Printed arguments (arg_f, arg_i) are copied. A
 * zero-initialised struct args is empty; args_release frees what it holds
 * and empties it again. */
void args_release(struct args *a);
void arg_b(struct args *a, const void *p, size_t len);   /* bytes */
void arg_s(struct args *a, const char *s);               /* a C string */
void arg_i(struct args *a, int64_t v);                   /* a number */
/* printf into the argument's slot; more than ARG_SLOT - 1 bytes is BUG() */
void arg_f(struct args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
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
	pthread_mutex_t *lock;           /* NULL: one thread owns the rconn */
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
/* dst: src's nodes and slot map, without connections, down marks or lock,
 * with command timeout cmd_ms (src's lock held by the caller). */
void rconn_clone(struct rconn *dst, const struct rconn *src, int cmd_ms);
/* Close every connection, keeping the nodes and the slot map. */
void rconn_disconnect(struct rconn *rc);
/*
 * Run command a on the node serving key's slot, following MOVED (and
 * reloading the slot map) and ASK. *out is the reply, possibly an error
 * reply for the caller to judge; 0 or a negative errno (-ENOMEM when
 * building a failed).
 */
int rconn_cmd(struct rconn *rc, const char *key, struct args *a,
	      redisReply **out);

/* ---- call.c: a command and its reply ---- */

/* rconn_call's type: any reply, error replies included (the caller judges
 * them). */
#define RCONN_ANY_REPLY (-1)

/*
 * Run command a (released here, whatever happens) on the node serving key,
 * holding rc->lock around the round trip only, and judge the reply:
 *  - an error reply: with what (what the command is for), logged as
 *    "store: redis HOST:PORT: WHAT: MESSAGE" and -ENOSPC when the server
 *    is out of memory, else -EIO; without what, -EIO and no log line
 *    (unless type is RCONN_ANY_REPLY: then it is handed back);
 *  - a reply of type type (REDIS_REPLY_INTEGER, _STRING, _ARRAY; 0 = any
 *    that is not an error): 0, with *out the reply (the caller frees it),
 *    or freed when out is NULL;
 *  - a reply of another type: mismatch, with *out NULL. mismatch 0 makes
 *    that a success without a reply.
 * Transport errors are rconn_cmd's.
 */
int rconn_call(struct rconn *rc, const char *key, struct args *a,
	       const char *what, int type, int mismatch, redisReply **out);
/* rconn_call for an integer reply: *v is its value (untouched when the
 * reply is of another type and mismatch is 0). */
int rconn_call_int(struct rconn *rc, const char *key, struct args *a,
		   const char *what, int mismatch, long long *v);

#endif
