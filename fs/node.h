/*
 * node.h - the table of in-memory files of the mount: query sessions and
 * scratch files.
 *
 * A session is what a client builds under one NAME in a category:
 * NAME.context, NAME.query, and the daemon's answer NAME.status and
 * NAME.response. A scratch file is any other regular file a client creates
 * (editors' temporary and backup files, e.g. while saving policy.yaml).
 * Both live only in memory, disappear at unmount, and are removed after
 * being idle (no open handle, no access) for a while.
 *
 * A node is found by (kind, category directory, name) and kept alive by
 * references: the table holds one until node_unlink() or node_gc(), each
 * open handle and each lookup in flight holds one; the last node_put()
 * frees it. What the fields mean for the protocol is fs/'s business
 * (protocol.c); this module only stores them.
 *
 * Lock order: table.lock (the map, every node's next, refs and used_ms)
 * -> node.lock (a node's content). Never take table.lock while holding a
 * node.lock. Neither is held across slow work (fs_i.h).
 */
#ifndef SEMCACHE_NODE_H
#define SEMCACHE_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "cache.h"

enum sfile { SF_QUERY, SF_RESPONSE, SF_STATUS, SF_CONTEXT, SF_FEEDBACK,
	     SF_NEIGHBORS, SF_N };
/* NODE_PENDING marks a policy.yaml (or a .load/MODEL file) being created:
 * it exists from create() on, though what is written is installed only
 * when the writer closes. */
enum node_kind { NODE_SESSION, NODE_SCRATCH, NODE_PENDING };

struct node {
	enum node_kind kind;
	char *dir;                 /* category path; immutable */
	char *name;                /* NAME (session) or file name (scratch) */
	uint64_t hkey;
	struct node *next;         /* hash chain; table.lock */
	unsigned refs;             /* open handles + lookups in flight; table.lock */
	int64_t used_ms;           /* table.lock */

	pthread_mutex_t lock;      /* guards everything below */
	bool present[SF_N];        /* session: which files exist */
	unsigned file_gen[SF_N];   /* bumped when that file is unlinked: a
	                            * descriptor opened before is stale */
	struct buf query, context, response;
	char status[256];
	bool looked_up;            /* a lookup ran for the current query */
	struct cache_result result;/* its vector, for a fill */
	struct buf feedback;       /* what was written to NAME.feedback */
	struct buf neighbors;      /* NAME.neighbors once built (protocol.c) */
	bool neighbors_built;      /* for the current lookup (gen) */
	unsigned gen;              /* bumped by every lookup begun; a step
	                            * that dropped the lock re-checks it */
	unsigned result_gen;       /* the gen of the lookup shown (query,
	                            * result, status): what a fill answers */
	bool waiting;              /* a reader waits on result's pending fill */
	pthread_cond_t cv;         /* signalled when waiting ends; with lock */
	int64_t mtime_ms[SF_N];
	struct buf data;           /* scratch content; its length is charged
	                            * to uid's scratch cap (quota.h) */
	mode_t mode;               /* scratch permission bits */
	uid_t uid;                 /* who created it: set with its first file,
	                            * then never changed */
	gid_t gid;
	int64_t mtime_scratch;
};

/* Flags of node_get(). */
#define NODE_CREATE 1   /* create the node if absent */
#define NODE_TOUCH 2    /* count as use: restarts the idle timer */

/* Find (and reference) a node. NULL if absent (or on allocation failure
 * when creating). Looking at a node (stat) must not keep it alive, so only
 * opens pass NODE_TOUCH. */
struct node *node_get(enum node_kind kind, const char *dir, const char *name,
		      int flags);
/* Drop a reference; touch restarts the idle timer (end of a use). */
void node_put(struct node *n, bool touch);
/* Drop a node from the table (it is freed once unreferenced). */
void node_unlink(struct node *n);
/* Rename n (referenced by the caller) to name in its directory, in one
 * step: a node of that kind and name is replaced (dropped from the table)
 * unless noreplace (-EEXIST). -ENOENT if n is no longer in the table
 * (unlinked meanwhile), -ENOMEM. */
int node_rename(struct node *n, const char *name, bool noreplace);

/* Call cb(arg, node) for every node of dir: the nodes are collected (and
 * referenced) under table.lock, then cb runs without it, so it may take
 * the node's lock. 0 or -ENOMEM. */
int node_foreach(const char *dir, void (*cb)(void *arg, struct node *n),
		 void *arg);
/* Is there any node in dir? */
bool node_dir_busy(const char *dir);
/* Remove nodes idle longer than idle_ms. Returns how many. */
size_t node_gc(int64_t idle_ms);
/* Free everything (at unmount). */
void node_table_release(void);

#endif
