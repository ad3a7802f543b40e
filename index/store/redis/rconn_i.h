/*
 * rconn_i.h - private to index/store/redis/: the connection and command
 * layer under the Redis backend. Everything that talks to a server goes
 * through here; nothing here knows the store's keys or scripts.
 *
 *   args.c    building a command's argument vector (struct args)
 *   conn.c    connections: connect by a deadline (SELECT checked), one
 *             round trip by a deadline, each node's pool of connections,
 *             failing fast while a node is down
 *   router.c  the node table and, on a cluster, the slot map: CRC16 key
 *             slots, CLUSTER SLOTS, MOVED and ASK, TRYAGAIN (rconn_cmd)
 *   call.c    a command and its reply, judged: the one way the store runs
 *             commands (rconn_call and its variants), and the checks of
 *             reply values (ids, integers)
 *   tls.c     rediss://: the OpenSSL context (CA, client certificate and
 *             key) and each new connection's handshake and certificate check
 *
 * Concurrency: one struct rconn serves every thread of the store. Its mu
 * guards what is marked so below and is held only to take or give back a
 * connection or to read or change the slot map: never across a connect, a
 * round trip or a pause. Each node keeps up to `pool` connections; a
 * command leases one (an idle one, a new one while fewer are open, or it
 * waits on `freed` for one until its deadline), runs its round trip
 * holding no lock, and gives it back (closed when the round trip failed),
 * so no command waits behind another's round trip while a connection is
 * free. A MOVED reply's slot map reload runs in the thread that got it,
 * outside mu, one at a time (`reloading`); TRYAGAIN pauses hold no lock.
 * Lock order: mu is a leaf (nothing else is taken while it is held).
 *
 * Deadlines: a command's deadline (CLOCK_MONOTONIC ms) is set once, when
 * rconn_call starts, cmd_ms later. The wait for a connection, a connect
 * (RCONN_CONNECT_MS at most), every write and read (poll on the socket),
 * the redirects and the pauses all end by it: a paused or dead server
 * fails a command with -ETIMEDOUT by its deadline, whatever it does.
 *
 * Resends: a command that finds its pooled connection closed (a restarted
 * server) is sent once more on a new one, whose failure is final. It may
 * then have run twice: every script that changes the store carries a
 * request id that makes its second run a no-op (scripts.c). A timeout is
 * never resent. *sent (rconn_call_sent) says that every byte of the
 * command reached a server at least once: then it may have run, whatever
 * reply (or failure) came back; a caller that cannot confirm from the
 * reply what happened must assume it did (entry.c cancels such puts).
 *
 * Errors: -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENETUNREACH, -EIO
 * (connection lost, too many redirects), -EPROTO (a reply that breaks the
 * protocol or the command's contract, logged), -ENOMEM; a node that failed
 * to connect answers its last error for RCONN_DOWN_MS without a new
 * attempt. Replies returned through an out pointer belong to the caller
 * (freeReplyObject).
 */
#ifndef SEMCACHE_RCONN_I_H
#define SEMCACHE_RCONN_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store.h"

#define RCONN_CONNECT_MS 1000
#define RCONN_DOWN_MS 200
#define RCONN_MAX_NODES 32
#define RCONN_POOL_MAX 64
#define RCONN_POOL_DEFAULT 4
#define RCONN_HOPS 5
#define RCONN_TRYAGAIN_MS 50
#define RCONN_SLOTS 16384

/* ---- args.c: a command's arguments ---- */

#define ARG_SLOT 64

struct args {
	int n, cap;        /* n = -1 once an allocation failed (sticky) */
	const char **v;
	size_t *l;
	char (*num)[ARG_SLOT];   /* printed arguments, one slot per argument */
	const char *script;      /* borrowed: an EVALSHA's source (arg_eval) */
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
/* EVALSHA sha nkeys (sha: the 40 hex digits of script's SHA-1, copied;
 * script borrowed for arg_eval_source): the keys and then the other
 * arguments follow. */
void arg_eval(struct args *a, const char *script, const char *sha, int nkeys);
/* Turn an arg_eval command into EVAL script nkeys ... (the server did not
 * know the script: NOSCRIPT): 0, or -ENOENT when a is not one. */
int arg_eval_source(struct args *a);

/* ---- conn.c and router.c: connections ---- */

struct rnode {
	char host[256];          /* immutable once the node is in the table */
	int port;                /* immutable likewise */
	redisContext *idle[RCONN_POOL_MAX];   /* mu */
	int nidle;               /* mu */
	int nopen;               /* mu: idle + leased + being connected */
	int64_t down_until;      /* mu: mono ms; fail fast until then */
	int down_err;            /* mu */
	char down_why[160];      /* mu: the last connect failure */
};

/* How every new connection proves who it is and checks the server: TLS
 * first when tls is set (rediss://), then AUTH [user] pass before
 * anything else; an empty pass sends no AUTH. Immutable after rconn_init;
 * each struct rconn holds a reference to tls. */
#define RCONN_USER_MAX 128
#define RCONN_PASS_MAX 512
struct rconn_tls;
struct rconn_auth {
	char user[RCONN_USER_MAX];
	char pass[RCONN_PASS_MAX];
	struct rconn_tls *tls;   /* NULL: plain TCP */
};

struct rconn {
	pthread_mutex_t mu;      /* see the top of this file */
	struct rconn_auth auth;  /* immutable after rconn_init; wiped by
				  * rconn_release */
	pthread_cond_t freed;    /* a connection was given back or closed */
	int db;                  /* immutable after rconn_init */
	int cmd_ms;              /* immutable: a command's time limit */
	int pool;                /* immutable: connections per node, >= 1 */
	bool cluster;            /* immutable */
	int nnodes;              /* mu; only grows; [0] is the seed */
	struct rnode nodes[RCONN_MAX_NODES];
	uint8_t slot_node[RCONN_SLOTS];   /* mu: cluster slot -> nodes[] */
	bool reloading;          /* mu: a slot map reload is running */
};

/* Connect to host:port by deadline (RCONN_CONNECT_MS at most) with TCP
 * keep-alive, the TLS handshake when auth->tls is set (a refused
 * certificate or a server that ends the session is -ECONNABORTED with
 * the reason), AUTH with auth when it has a password (a refusal is
 * -EACCES with the server's reason, e.g. WRONGPASS), else PING on TLS
 * (the server's verdict on a client certificate comes after the
 * handshake), SELECT db when not 0 (its reply must be +OK). NULL on
 * failure, with *ret the errno and why a message (never the password). */
redisContext *rconn_ctx_open(const struct rconn_auth *auth, const char *host,
			     int port, int db, int64_t deadline, int *ret,
			     char *why, size_t whylen);
/* The errno of a failed hiredis call on c (saved: errno right after it). */
int rconn_ctx_errno(const redisContext *c, int saved);
/* Send a command on c and read its reply, both by deadline. 0 with *out
 * (possibly an error reply), or a negative errno; *sent says every byte
 * of the command reached the socket (so it may have run). */
int rconn_ctx_exec(redisContext *c, int argc, const char **argv,
		   const size_t *len, int64_t deadline, bool *sent,
		   redisReply **out);
/* Run a on node idx (after ASKING when asking) by deadline: a leased
 * connection, and once more on a new one if that was found closed. *out
 * may be an error reply. *sent is set (never cleared) as described at the
 * top. */
int rconn_node_cmd(struct rconn *rc, int idx, bool asking, struct args *a,
		   int64_t deadline, bool *sent, redisReply **out);
/* Close every idle connection (leased ones are closed when given back
 * only if their round trip failed). */
void rconn_disconnect(struct rconn *rc);

/* Connect to the seed host:port and learn whether it is a cluster (then
 * db must be 0) and its slot map. pool: connections per node (0: the
 * default); auth (NULL: none) is copied. rc is the caller's; err says
 * why: a server that wants a password (NOAUTH) or refuses it (WRONGPASS)
 * is -EACCES. */
int rconn_init(struct rconn *rc, const struct rconn_auth *auth,
	       const char *host, int port, int db, int cmd_ms, int pool,
	       char *err, size_t errlen);
/* Close every connection, forget the nodes; no command may be running. */
void rconn_release(struct rconn *rc);
/* dst: a new rconn with src's nodes, slot map and credentials, without
 * connections or down marks, with command timeout cmd_ms and pool
 * connections per node. */
void rconn_clone(struct rconn *dst, struct rconn *src, int cmd_ms, int pool);
/*
 * Run command a on the node serving key's slot by deadline, following
 * MOVED (and reloading the slot map) and ASK. *out is the reply, possibly
 * an error reply for the caller to judge; 0 or a negative errno (-ENOMEM
 * when building a failed).
 */
int rconn_cmd(struct rconn *rc, const char *key, struct args *a,
	      int64_t deadline, bool *sent, redisReply **out);

/* ---- tls.c: TLS (rediss://) ---- */

/* A TLS context from o's redis_tls_ca (NULL: the system's CAs),
 * redis_tls_cert and redis_tls_key (both or neither; the key file must be
 * the user's, mode 0600 or stricter) and redis_tls_sni (the name every
 * server's certificate must carry, sent as SNI; NULL: each node's host).
 * 0 with *out (one reference), -EINVAL / -EPERM / -ENOENT with err naming
 * the option, or -ENOTSUP on a build without TLS. */
int rconn_tls_new(const struct store_options *o, struct rconn_tls **out,
		  char *err, size_t errlen);
struct rconn_tls *rconn_tls_ref(struct rconn_tls *t);   /* NULL-safe */
void rconn_tls_unref(struct rconn_tls *t);             /* NULL-safe */
/* The handshake on c, connected to host, by deadline: 0, -ECONNABORTED
 * (why: the certificate's verdict or the handshake's error), -ETIMEDOUT
 * or -ENOMEM. */
int rconn_tls_connect(redisContext *c, const struct rconn_tls *t,
		      const char *host, int64_t deadline, char *why,
		      size_t whylen);
/* c speaks TLS. */
bool rconn_tls_on(const redisContext *c);
/* c holds decrypted bytes not yet read (poll on its socket would miss). */
bool rconn_tls_pending(const redisContext *c);
/* After a failed read or write on a TLS c: c->errstr gets OpenSSL's
 * reason (e.g. the alert the server sent), when there is one. */
void rconn_tls_explain(redisContext *c);

/* ---- call.c: a command and its reply ---- */

/* rconn_call's type: any reply, error replies included (the caller judges
 * them). */
#define RCONN_ANY_REPLY (-1)

/*
 * Run command a (released here, whatever happens) on the node serving key
 * within the rconn's command timeout and judge the reply:
 *  - an error reply: with what (what the command is for), logged as
 *    "store: redis HOST:PORT: WHAT: MESSAGE" and -ENOSPC when the server
 *    is out of memory, else -EIO; without what, -EIO and no log line
 *    (unless type is RCONN_ANY_REPLY: then it is handed back);
 *  - a reply of type type (REDIS_REPLY_INTEGER, _STRING, _ARRAY; 0 = any
 *    that is not an error): 0, with *out the reply (the caller frees it),
 *    or freed when out is NULL;
 *  - a nil reply when type is not 0: nil_errno, with *out NULL (nil_errno
 *    0 makes it a success without a reply);
 *  - a reply of another type: -EPROTO, logged when what is given.
 * Transport errors are rconn_cmd's.
 */
int rconn_call(struct rconn *rc, const char *key, struct args *a,
	       const char *what, int type, int nil_errno, redisReply **out);
/* rconn_call that also says whether the command reached a server (*sent,
 * set in every case: see the top). */
int rconn_call_sent(struct rconn *rc, const char *key, struct args *a,
		    const char *what, int type, int nil_errno, bool *sent,
		    redisReply **out);
/* rconn_call for an integer reply in lo..hi: *v its value; out of range
 * is -EPROTO (logged). */
int rconn_call_int(struct rconn *rc, const char *key, struct args *a,
		   const char *what, long long lo, long long hi,
		   long long *v);

/* A reply value as an integer in lo..hi: an INTEGER reply, or a STRING of
 * decimal digits (a leading '-' allowed) and nothing else. 0, or -EPROTO
 * (logged naming what, when given, and rc's seed for the server). */
int rconn_reply_int(const struct rconn *rc, const redisReply *r,
		    long long lo, long long hi, const char *what,
		    long long *v);
/* Log a reply that breaks its command's contract; returns -EPROTO. */
int rconn_bad_reply(const struct rconn *rc, const char *what,
		    const char *why);
/* Element i of array r if it is a STRING reply, else NULL. */
const redisReply *rconn_elem_str(const redisReply *r, size_t i);

#endif
