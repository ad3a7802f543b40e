/*
 * ops.c - the FUSE surface of semcachefs: the operations table, mount
 * set-up and tear-down, and the collector of idle session files.
 *
 * Every directory is a category. In a category:
 *   NAME.context, NAME.query   written by the client (context first)
 *   NAME.status, NAME.response the answer, ready when close() of NAME.query
 *                              returns (the lookup runs in flush); writing
 *                              NAME.response after a lookup is a fill,
 *                              durable when its close() returns 0
 *   NAME.feedback              "wrong" after a hit invalidates that entry
 *   policy.yaml                the directory's policy (validated at close)
 *   .policy .stats .errors     read-only views; .purge (write-only) removes
 *                              every entry; entries/ID/ one directory per
 *                              entry; the root also has .metrics and .load/
 *   any other file name        an in-memory scratch file (editors' temp and
 *                              backup files); renaming one onto policy.yaml
 *                              installs it
 * Every file is opened direct_io (the kernel caches no content); the
 * kernel caches attributes for FS_ATTR_TIMEOUT_S, never names (entry and
 * negative timeouts are zero: every path walk asks again), and a request
 * that changes another file's attributes drops them (kcache.c), so
 * nothing stale is shown. The operations live in the files fs_i.h lists;
 * this one only puts them in the table.
 *
 * Not here: matching, storage and policy semantics (index/, policy/);
 * options and daemonising (main.c).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "fs_i.h"
#include "notify.h"
#include "semlog.h"

/* FUSE requests served, counted in stripes of one cache line each, so that
 * threads serving requests at once do not all write one line: a thread
 * takes the next stripe at its first request (threads beyond REQ_STRIPES
 * share one), and fs_requests_total sums them. No lock: each stripe is
 * atomic. */
#define REQ_STRIPES 32
static struct {
	_Atomic uint64_t n;
	char pad[64 - sizeof(uint64_t)];
} req_stripe[REQ_STRIPES] __attribute__((aligned(64)));
static _Atomic unsigned req_next;
static _Thread_local unsigned req_slot; /* this thread's stripe + 1; 0: none yet */

void fs_count_request(void)
{
	if (!req_slot)
		req_slot = atomic_fetch_add_explicit(&req_next, 1, memory_order_relaxed) %
			   REQ_STRIPES + 1;
	atomic_fetch_add_explicit(&req_stripe[req_slot - 1].n, 1, memory_order_relaxed);
}

uint64_t fs_requests_total(void)
{
	uint64_t t = 0;

	for (int i = 0; i < REQ_STRIPES; i++)
		t += atomic_load_explicit(&req_stripe[i].n, memory_order_relaxed);
	return t;
}

#define WARN_PER_SECOND 5

void fs_warn(const char *fmt, ...)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static int64_t window_ms;   /* mu: start of the current second */
	static unsigned shown, left_out; /* mu */
	unsigned dropped = 0;
	int64_t now = clock_mono_ms();
	bool show;
	char msg[512];
	va_list ap;

	pthread_mutex_lock(&mu);
	if (now - window_ms >= 1000) {
		dropped = left_out;
		window_ms = now;
		shown = left_out = 0;
	}
	show = shown < WARN_PER_SECOND;
	if (show)
		shown++;
	else
		left_out++;
	pthread_mutex_unlock(&mu);
	if (dropped)
		semlog(SEMLOG_WARN, "%u more warnings like the ones above were left out", dropped);
	if (!show)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	semlog(SEMLOG_WARN, "%s", msg);
}

static void *gc_main(void *arg)
{
	struct fs_state *s = arg;

	pthread_mutex_lock(&s->gc_mu);
	while (!s->gc_stop) {
		struct timespec ts = clock_abstime(1000);

		pthread_cond_timedwait(&s->gc_cv, &s->gc_mu, &ts);
		if (s->gc_stop)
			break;
		pthread_mutex_unlock(&s->gc_mu);
		node_gc(s->session_ttl_ms);
		pthread_mutex_lock(&s->gc_mu);
	}
	pthread_mutex_unlock(&s->gc_mu);
	return NULL;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fs_state *s = fuse_get_context()->private_data;

	/* names are never cached: libfuse's high-level API cannot drop a
	 * name the daemon removes by itself (kcache.c) */
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->attr_timeout = FS_ATTR_TIMEOUT_S;
	cfg->hard_remove = 1;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 0;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* no writeback cache: kcache.c's notices never block on one */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	fs_kcache_start(fuse_get_context()->fuse);
	if (cache_start(s->cache))
		semlog(SEMLOG_ERR, "cannot start the maintenance thread");
	pthread_mutex_init(&s->gc_mu, NULL);
	clock_cond_init(&s->gc_cv); /* timed waits on CLOCK_MONOTONIC */
	if (pthread_create(&s->gc, NULL, gc_main, s) == 0)
		s->gc_started = true;
	if (fs_hold_start(s->cache))
		semlog(SEMLOG_ERR, "cannot start the policy rename thread: renames of policy.yaml take effect at once");
	semlog(SEMLOG_INFO, "mounted");
	fs_notify_ready();
	return s;
}

static void fs_destroy(void *private_data)
{
	struct fs_state *s = private_data;

	fs_notify_stopping();
	fs_kcache_stop();
	if (s->gc_started) {
		pthread_mutex_lock(&s->gc_mu);
		s->gc_stop = true;
		pthread_cond_signal(&s->gc_cv);
		pthread_mutex_unlock(&s->gc_mu);
		pthread_join(s->gc, NULL);
		s->gc_started = false;
	}
	fs_hold_stop();
	node_table_release();
}

const struct fuse_operations semcache_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.truncate = fs_truncate,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setxattr = fs_setxattr,
};
