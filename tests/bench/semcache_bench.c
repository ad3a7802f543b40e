/*
 * semcache_bench.c - a lookup through the mount against its physical floor.
 *
 * One run prints one Markdown table (and the command line that made it) for
 * each N in a list (default 10000,100000), all entries in one category, with
 * real questions from the QQP corpus; an N beyond the corpus (after 5000
 * held-out questions) is made up with corpus-derived variants, two filled
 * questions joined by a space (bench_question() in bench_corpus.c: each
 * pair once, never a held-out question; checked distinct under the
 * engine's normalisation before the run). For each N the program:
 *   1. starts build/fs/semcachefs itself (-f -o store=TMP on a temp
 *      mountpoint), measures the RSS of the empty daemon, fills N questions
 *      through the mount (fast-path lookup, then NAME.response; the durable
 *      fills/s figure times batches with 1 and with 4 writers);
 *   2. restarts it on the filled store: start-up to the first answered
 *      lookup, several times (a clean stop merges every buffered vector into
 *      HNSW and snapshots it, so lookups then see the steady-state index);
 *   3. copies the store, opens the copy in-process (cache_open) and mounts
 *      tests/bench/nullfs (a do-nothing FUSE fs mounted like semcachefs),
 *      then times lookups run by run, side by side: a run through the
 *      mount, the same run through nullfs (floor b), the same queries with
 *      cache_lookup() in-process (floor a), so that load from other work on
 *      this shared machine hits all three alike. Kinds: exact hits (the
 *      same question), semantic hits (synthetic near-paraphrase: first word
 *      dropped, punctuation removed; how many really hit is counted) and
 *      misses (held-out questions; how many hit anyway is counted).
 *      Client protocols:
 *        3file    create/write/close NAME.query, open/read/close NAME.status
 *                 (one read: the status is one line), open/read-to-EOF/close
 *                 NAME.response (a client cannot know the length otherwise)
 *        fast     one fd O_RDWR|O_CREAT|O_TRUNC on NAME.query: write, pread
 *                 from 0 (status line + answer), close
 *        fast-at  the same through openat() on a descriptor of the category
 *                 directory: the kernel does not walk the path from the root
 *        persist  NAME.query opened O_RDWR once per session and kept:
 *                 pwrite(query, 0), pread from 0 (2 FUSE requests)
 *      with daemon, nullfs and client pinned together on CPU 0 (the VM's
 *      idle-vCPU wake-up costs tens of µs per round trip otherwise), then
 *      unpinned; and the FUSE requests per lookup (root .stats
 *      "fuse_requests" before and after a run, minus the cost of reading
 *      .stats itself);
 *   4. throughput with 1, 2, 4 client threads (unpinned), the mount and
 *      nullfs alternately; the daemon's RSS per entry next to the raw
 *      vector bytes and FAISS's own estimate;
 *   5. the shell cost: one bash process running `echo q > x.query;
 *      cat x.status; cat x.response` in a loop, per lookup (mount, nullfs);
 *   6. the HNSW agreement with an exact scan over the embedded corpus at
 *      ef_search 16..128, in-process (semantic and miss queries): top-1
 *      (compared by score so that ties among equal vectors count as
 *      agreement), the same hit/miss decision at thresholds 0.9 and 0.8,
 *      and the in-process miss p50 at each setting.
 * Latencies: a warm-up, then --runs runs of --lookups lookups; each cell is
 * the median over runs of the per-run p50 (p99), with [min-max] over runs.
 *
 *   semcache_bench [-n 10000,100000] [--runs 5] [--lookups 1000] [--ci]
 *                  [--daemon PATH] [--nullfs PATH] [--corpus FILE]
 *                  [--tmp DIR] [--keep DIR] [--no-unpinned] [--no-shell]
 *   semcache_bench --requests            FUSE requests per step, per protocol
 *                                        (three-file, fast, fast-at, and the
 *                                        persistent descriptors: pwrite + pread
 *                                        a lookup, pwrite + fsync a fill)
 *   semcache_bench --fuse LABEL=BUILDDIR[:io_uring] --fuse ... [-n N] [--runs R]
 *                                        only lookups/s (fast path, misses, 1/2/4
 *                                        threads, pinned and unpinned) through
 *                                        the semcachefs and nullfs of each build
 *                                        dir, with io_uring or /dev/fuse (at most
 *                                        4, mounted at once on copies of one
 *                                        store, alternating run by run)
 *   semcache_bench --fuse ... --persist [-n N] [--runs R] [--lookups L]
 *                                        the same builds, but each client
 *                                        thread opens its own NAME.query
 *                                        O_RDWR once and loops pwrite(0) +
 *                                        pread(0) (2 FUSE requests a lookup)
 *                                        over exact hits, semantic hits and
 *                                        misses, L lookups per thread, 1/2/4
 *                                        threads, unpinned, mount then nullfs;
 *                                        prints 2T÷1T and 4T÷1T (a before/after
 *                                        of a daemon: two --fuse build dirs)
 *   semcache_bench --inproc STORE -n N [--kind miss]
 *                                        only floor (a) on a kept store
 *                                        (for valgrind --tool=callgrind
 *                                        --toggle-collect=inproc_batch)
 *   semcache_bench --inproc STORE -n N --agreement
 *                                        only the HNSW agreement table (top-1,
 *                                        same decision, miss p50 per ef_search)
 *   semcache_bench --startup STORE [--runs R]
 *                                        only start-up to the first answered
 *                                        lookup and the clean stop (unmount
 *                                        to exit: snapshot write), R times, on
 *                                        a store filled earlier (e.g. a fill
 *                                        cut short at 1M), with the entries
 *                                        and the snapshot size
 *   semcache_bench --drive CATDIR -n N   only miss lookups through a mounted
 *                                        category (to profile a daemon with
 *                                        perf record -p PID)
 * Exit 77 (skip) without /dev/fuse, the daemon or the corpus.
 * Built by meson, not run by the test suite (meson test --benchmark runs
 * it with --ci).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "embed.h"
#include "hash.h"
#include "textnorm.h"
#include "bench_corpus.h"
#include "bench_util.h"

#define CAT "bench"
#define MAX_RUNS 15
#define MAX_NS 8
#define DIM_BUILTIN 256
#define HNSW_M 32
#define AGREE_N 6
#define AGREE_MAX_N 200000   /* the exact scan takes minutes beyond this */

enum proto { P_3FILE, P_FAST, P_FASTAT, P_PERSIST, P_N };
enum kind { K_EXACT, K_SEM, K_MISS, K_N };
static const char *const proto_name[P_N] = { "3file", "fast", "fast-at", "persist" };
static const char *const kind_name[K_N] = { "exact hit", "semantic", "miss" };

static struct {
	long ns[MAX_NS];
	int nn;
	int runs, lookups, warmup;
	bool ci, unpinned, shell, requests_only, agree_only, persist;
	int only_kind;             /* --inproc: -1 all kinds, else one */
	const char *daemon, *nullfs, *corpus, *tmp, *keep, *inproc, *drive, *startup;
	char cmdline[4096];
} O = { .runs = 5, .lookups = 1000, .warmup = 200, .unpinned = true,
	.shell = true, .only_kind = -1 };

/* --------------------------------------------------------------- corpus */

struct corpus {
	char **q;          /* unique (after textnorm) usable questions */
	size_t n;
	size_t held;       /* the last `held` are never filled: misses */
};

static void corpus_load(struct corpus *c, const char *path, size_t held)
{
	struct bench_corpus bc = { 0 };

	bench_corpus_need(&bc, path);
	c->q = bc.q;
	c->n = bc.n;
	c->held = held;
}

static size_t corpus_fillable(const struct corpus *c)
{
	return c->n > c->held ? c->n - c->held : 0;
}

/*
 * The query of lookup i of a kind in run r (r = -1: warm-up). Exact and
 * semantic lookups spread over the N filled questions; misses walk the
 * held-out tail.
 */
static const char *question_at(const struct corpus *c, size_t i, char *buf,
			       size_t size)
{
	return bench_question(c->q, corpus_fillable(c), i, buf, size);
}

static const char *query_of(const struct corpus *c, long n, enum kind k,
			    int r, int i, char *buf, size_t size)
{
	size_t idx = ((size_t)(r + 1) * (size_t)O.lookups + (size_t)i);
	char tmp[8192];

	switch (k) {
	case K_EXACT:
		return question_at(c, (idx * 7919) % (size_t)n, buf, size);
	case K_SEM:
		bench_paraphrase(question_at(c, (idx * 7919) % (size_t)n, tmp,
					     sizeof(tmp)), buf, size);
		return buf;
	default:
		return c->q[c->n - c->held + idx % c->held];
	}
}

/* ------------------------------------------------------------ processes */

struct fsproc {
	pid_t pid;
	char mnt[PATH_MAX];
	char log[PATH_MAX];
};

static void semcachefs_start(struct fsproc *p, const char *store)
{
	char opt[PATH_MAX + 16];
	char *argv[] = { (char *)O.daemon, "-f", "-o", opt, p->mnt, NULL };

	snprintf(opt, sizeof(opt), "store=%s", store);
	p->pid = bench_spawn(argv, p->log, NULL, NULL);
}

static void nullfs_start(struct fsproc *p)
{
	char *argv[] = { (char *)O.nullfs, "-f", p->mnt, NULL };

	p->pid = bench_spawn(argv, p->log, NULL, NULL);
	bench_wait_mounted(&p->pid, p->mnt, p->log, 30);
}

/* ----------------------------------------------------------- the client */


static int lookup(struct bench_sess *s, enum proto p, const char *q)
{
	size_t len = strlen(q);

	if (p == P_PERSIST)
		return bench_lookup_persist(s, q, len);
	return p == P_3FILE ? bench_lookup_3file(s, q, len)
			    : bench_lookup_fast(s, q, len, p == P_FASTAT);
}

/* The root's fuse_requests counter, or -1 when the daemon has none. */
static long long fuse_requests(const char *mnt)
{
	double v = bench_stat(mnt, "fuse_requests");

	return isnan(v) ? -1 : (long long)v;
}

/* What reading .stats itself costs in requests (counted between two reads). */
static long long stats_cost(const char *mnt)
{
	long long a = fuse_requests(mnt), b = fuse_requests(mnt);

	return a < 0 || b < 0 ? -1 : b - a;
}

/* ------------------------------------------------------------- results */

struct lat {
	double p50[MAX_RUNS], p99[MAX_RUNS];
	int runs;
	long hits, asked;
	double reqs;                /* FUSE requests per lookup (median), or -1 */
	double reqv[MAX_RUNS];
	int nreq;
};

struct result {
	long n;
	size_t fillable;
	/* [pinned 0 / unpinned 1] */
	struct lat mount[2][P_N][K_N];
	/* floors, measured run by run between the mount's runs */
	struct lat null[2][P_N][K_N];
	struct lat inproc[2][P_N][K_N];
	double tput[P_N][3][MAX_RUNS];        /* 1, 2, 4 threads */
	struct lat inproc_only[K_N];          /* --inproc mode */
	double null_tput[P_N][3][MAX_RUNS];
	char load_before[64], load_after[64];
	int tput_runs;
	double fills1[MAX_RUNS], fills4[MAX_RUNS];
	int fill_runs;
	double fill_total_s;
	long rss_empty_kib, rss_filled_kib, rss_restart_kib;
	double startup_ms[MAX_RUNS];
	int startup_runs;
	double stop_s;
	double stop_loaded_s[MAX_RUNS];       /* stops of restarted daemons */
	int stop_loaded_runs;
	long long snap_bytes, store_bytes;    /* after the fill's clean stop */
	double close_inproc_s;
	double open_inproc_ms;
	double shell_ms[MAX_RUNS], shell_null_ms[MAX_RUNS];
	int shell_runs;
	double agree[AGREE_N], decide90[AGREE_N], decide80[AGREE_N];
	double agree_us[AGREE_N];
	int agree_q;
	bool have_requests;
};

static void warm_up(struct bench_sess *s, const struct corpus *c, long n,
		    enum proto p, enum kind k)
{
	char qb[8192];

	for (int i = 0; i < O.warmup; i++)
		if (lookup(s, p, query_of(c, n, k, -1, i % O.lookups, qb, sizeof(qb))) < 0)
			bench_die("warm-up lookup failed: %s", strerror(errno));
}

/*
 * Time run r (O.lookups lookups of kind k) through s and append its p50/p99
 * to out. mnt (or NULL) is read for the request counter around the run;
 * cost is what one read of it costs (stats_cost).
 */
static void measure_run(struct bench_sess *s, const char *mnt, long long cost,
			const struct corpus *c, long n, enum proto p, enum kind k,
			int r, struct lat *out)
{
	double *t = malloc(sizeof(double) * O.lookups);
	long long before = mnt && cost >= 0 ? fuse_requests(mnt) : -1, after;
	char qb[8192];

	if (!out->runs)
		out->reqs = -1;
	for (int i = 0; i < O.lookups; i++) {
		const char *q = query_of(c, n, k, r, i, qb, sizeof(qb));
		double t0 = bench_now_us();
		int rc = lookup(s, p, q);

		t[i] = bench_now_us() - t0;
		if (rc < 0)
			bench_die("%s lookup '%s' failed: %s", proto_name[p], q,
				  strerror(-rc));
		out->hits += rc;
		out->asked++;
	}
	after = before >= 0 ? fuse_requests(mnt) : -1;
	if (before >= 0 && after >= 0)
		out->reqv[out->nreq++] = (double)(after - before - cost) / O.lookups;
	if (out->nreq)
		out->reqs = bench_summarise(out->reqv, out->nreq).med;
	out->p99[out->runs] = bench_quantile(t, O.lookups, 0.99);
	out->p50[out->runs] = bench_quantile(t, O.lookups, 0.50);
	out->runs++;
	free(t);
}

/* ---------------------------------------------------------------- fills */

static const char *corpus_question(size_t i, char *buf, size_t size, void *arg)
{
	return question_at(arg, i, buf, size);
}

/* Fill questions [from, to) with k writers; returns fills per second. */
static double fill_range(const char *dir, const struct corpus *c, size_t from,
			 size_t to, int k)
{
	return bench_fill_range(dir, from, to, k, false, corpus_question,
				(void *)c);
}

/* --------------------------------------------------- threads: lookups/s */

struct worker {
	pthread_t th;
	const struct corpus *c;
	struct bench_sess s;
	long n;
	enum proto p;
	enum kind k;
	bool persist;              /* one NAME.query O_RDWR: pwrite(0) + pread(0) */
	int count;                 /* lookups to do */
	int base;
	int cpu;                   /* -1: any */
	pthread_barrier_t *bar;
	int err;
	long hits;
};

/* One lookup on w's persistent descriptor fd: 1 hit, 0 miss, -errno. */
static int persist_lookup(struct worker *w, int fd, const char *q)
{
	size_t len = strlen(q);
	ssize_t n;

	if (pwrite(fd, q, len, 0) != (ssize_t)len)
		return -errno;
	n = pread(fd, w->s.buf, BENCH_BUF_BYTES, 0);
	return n < 4 ? (n < 0 ? -errno : -EIO) : !memcmp(w->s.buf, "hit", 3);
}

static void *tput_main(void *arg)
{
	struct worker *w = arg;
	int fd = w->persist ? open(w->s.query, O_RDWR | O_CREAT, 0644) : -1;
	char qb[8192];

	bench_set_cpu(0, w->cpu);
	if (w->persist && fd < 0)
		w->err = -errno;
	pthread_barrier_wait(w->bar);
	for (int i = 0; i < w->count && !w->err; i++) {
		const char *q = query_of(w->c, w->n, w->k, 0, w->base + i, qb,
					 sizeof(qb));
		int rc = w->persist ? persist_lookup(w, fd, q) : lookup(&w->s, w->p, q);

		if (rc < 0)
			w->err = rc;
		else
			w->hits += rc;
	}
	pthread_barrier_wait(w->bar);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/*
 * k threads on cpu (-1: any), each with its own NAME, doing lookups of
 * kind kd by protocol p, or (persist) each on its own NAME.query opened
 * O_RDWR once; lookups/s. *hits (or NULL) gets the hits counted.
 */
static double throughput_of(const char *dir, const struct corpus *c, long n,
			    enum proto p, bool persist, enum kind kd, int k,
			    int per_thread, int cpu, long *hits)
{
	struct worker w[4];
	pthread_barrier_t bar;
	double t0;

	pthread_barrier_init(&bar, NULL, k + 1);
	for (int i = 0; i < k; i++) {
		char name[32];

		memset(&w[i], 0, sizeof(w[i]));
		snprintf(name, sizeof(name), "tput%d", i);
		bench_sess_init(&w[i].s, dir, name);
		w[i].c = c;
		w[i].n = n;
		w[i].p = p;
		w[i].k = kd;
		w[i].persist = persist;
		w[i].count = per_thread;
		w[i].base = i * per_thread;
		w[i].cpu = cpu;
		w[i].bar = &bar;
		pthread_create(&w[i].th, NULL, tput_main, &w[i]);
	}
	pthread_barrier_wait(&bar);
	t0 = bench_now_us();
	pthread_barrier_wait(&bar);
	t0 = bench_now_us() - t0;
	for (int i = 0; i < k; i++) {
		pthread_join(w[i].th, NULL);
		bench_sess_release(&w[i].s);
		if (w[i].err)
			bench_die("throughput lookup in '%s' failed: %s", dir,
				  strerror(-w[i].err));
		if (hits)
			*hits += w[i].hits;
	}
	pthread_barrier_destroy(&bar);
	return (double)k * per_thread / (t0 / 1e6);
}

/* k threads doing miss lookups by protocol p; lookups/s. */
static double throughput(const char *dir, const struct corpus *c, long n,
			 enum proto p, int k, int per_thread, int cpu)
{
	return throughput_of(dir, c, n, p, false, K_MISS, k, per_thread, cpu, NULL);
}

/* ------------------------------------------------------------- in-process */

/* The floor (a) batch; a function of its own for callgrind --toggle-collect. */
__attribute__((noinline))
void inproc_batch(struct cache *cache, const struct corpus *c, long n,
		  enum kind k, int r, double *t, long *hits)
{
	char qb[8192];

	for (int i = 0; i < O.lookups; i++) {
		const char *q = query_of(c, n, k, r, i, qb, sizeof(qb));
		struct cache_query cq = { q, strlen(q), NULL, 0 };
		struct cache_result res;
		double t0 = bench_now_us();
		int rc = cache_lookup(cache, "/" CAT, &cq, &res);

		t[i] = bench_now_us() - t0;
		if (rc)
			bench_die("cache_lookup: %s", strerror(-rc));
		*hits += res.outcome == CACHE_HIT;
		cache_result_release(&res);
	}
}

static void inproc_run(struct cache *cache, const struct corpus *c, long n,
		       enum kind k, int r, struct lat *out)
{
	double *t = malloc(sizeof(double) * O.lookups);

	out->reqs = -1;
	inproc_batch(cache, c, n, k, r, t, &out->hits);
	out->asked += O.lookups;
	out->p99[out->runs] = bench_quantile(t, O.lookups, 0.99);
	out->p50[out->runs] = bench_quantile(t, O.lookups, 0.50);
	out->runs++;
	free(t);
}

static void inproc_warm_up(struct cache *cache, const struct corpus *c, long n,
			   enum kind k)
{
	double *t = malloc(sizeof(double) * O.lookups);
	long dummy = 0;

	inproc_batch(cache, c, n, k, -1, t, &dummy);
	free(t);
}

/*
 * HNSW agreement with an exact scan, for each ef_search in AGREE_EFS: the
 * engine's best score (hit or miss) against the best inner product over
 * every filled question's embedding. top-1: the scores are equal (ties
 * among equal vectors count as agreement). decision at threshold T: both
 * say "nothing >= T", or both find the best score >= T, i.e. the cache
 * gives the same answer. Queries answered by the exact map are skipped.
 * Also the in-process miss p50 at each ef_search (one run), so the cost of
 * each setting is read in the same table.
 */
static const int agree_efs[AGREE_N] = { 16, 24, 32, 48, 64, 128 };

static void agreement(struct cache *cache, const struct corpus *c, long n,
		      struct result *res)
{
	struct embedder *e;
	float *base, *qv, *best;
	int nq = n >= 50000 ? 400 : 1000, asked = 0;
	char qb[8192], yaml[64];
	const char **qs;

	if (embed_builtin_new(&e))
		bench_die("embed_builtin_new failed");
	base = malloc(sizeof(float) * e->dim * (size_t)n);
	qv = malloc(sizeof(float) * e->dim);
	best = malloc(sizeof(float) * nq);
	qs = calloc(nq, sizeof(*qs));
	if (!base || !qv || !best || !qs)
		bench_die("out of memory");
	for (long i = 0; i < n; i++) {
		const char *t = question_at(c, (size_t)i, qb, sizeof(qb));

		embedder_embed(e, t, strlen(t), base + (size_t)i * e->dim);
	}
	for (int j = 0; j < nq; j++) {
		float b = -2;
		const char *q = j % 2 ? query_of(c, n, K_MISS, 7, j, qb, sizeof(qb))
				      : query_of(c, n, K_SEM, 7, j, qb, sizeof(qb));

		qs[j] = strdup(q);
		embedder_embed(e, q, strlen(q), qv);
		for (long i = 0; i < n; i++) {
			const float *v = base + (size_t)i * e->dim;
			float s = 0;

			for (int d = 0; d < e->dim; d++)
				s += v[d] * qv[d];
			if (s > b)
				b = s;
		}
		best[j] = b;
	}
	for (int x = 0; x < AGREE_N; x++) {
		int agree = 0, dec[2] = { 0, 0 };
		static const float thr[2] = { 0.9f, 0.8f };
		double *t = malloc(sizeof(double) * O.lookups);
		long hits = 0;

		snprintf(yaml, sizeof(yaml), "hnsw: {ef_search: %d}\n", agree_efs[x]);
		if (!t || cache_policy_put(cache, "/" CAT, yaml, strlen(yaml), NULL))
			bench_die("cannot set hnsw.ef_search in-process");
		asked = 0;
		for (int j = 0; j < nq; j++) {
			struct cache_query cq = { qs[j], strlen(qs[j]), NULL, 0 };
			struct cache_result r;
			bool same;

			if (cache_lookup(cache, "/" CAT, &cq, &r))
				bench_die("cache_lookup failed");
			if (!r.exact) {
				asked++;
				same = fabsf(r.score - best[j]) <= 1e-4f;
				agree += same;
				for (int h = 0; h < 2; h++)
					dec[h] += best[j] >= thr[h] ? same : r.score < thr[h];
			}
			cache_result_release(&r);
		}
		inproc_warm_up(cache, c, n, K_MISS);
		inproc_batch(cache, c, n, K_MISS, 0, t, &hits);
		res->agree_us[x] = bench_quantile(t, O.lookups, 0.50);
		free(t);
		res->agree[x] = asked ? (double)agree / asked : NAN;
		res->decide90[x] = asked ? (double)dec[0] / asked : NAN;
		res->decide80[x] = asked ? (double)dec[1] / asked : NAN;
	}
	res->agree_q = asked;
	cache_policy_put(cache, "/" CAT, NULL, 0, NULL);
	for (int j = 0; j < nq; j++)
		free((void *)qs[j]);
	free(qs);
	free(best);
	free(qv);
	free(base);
	embedder_free(e);
}

static struct cache *inproc_open(const char *store, double *ms)
{
	struct cache_options co = { .store_dir = store, .quiet = true };
	struct cache *cache;
	char err[512];
	double t0 = bench_now_us();

	if (cache_open(&co, &cache, err, sizeof(err)))
		bench_die("cache_open '%s': %s", store, err);
	if (ms)
		*ms = (bench_now_us() - t0) / 1e3;
	return cache;
}

/* ------------------------------------------------------------- the shell */

/* ms per lookup of one bash process running `iters` echo/cat lookups. */
static double shell_lookup_ms(const char *dir, const struct corpus *c, long n,
			      int iters, int run, const char *tmp)
{
	char qfile[PATH_MAX], script[PATH_MAX * 2 + 512], qb[8192];
	double t0;
	FILE *f;
	int st;

	snprintf(qfile, sizeof(qfile), "%s/shell-queries.txt", tmp);
	f = fopen(qfile, "w");
	if (!f)
		bench_die("cannot write '%s'", qfile);
	for (int i = 0; i < iters; i++)
		fprintf(f, "%s\n", query_of(c, n, K_MISS, run, i, qb, sizeof(qb)));
	fclose(f);
	snprintf(script, sizeof(script),
		 "cd '%s' && while IFS= read -r q; do echo \"$q\" > x.query; "
		 "cat x.status >/dev/null; cat x.response >/dev/null; done < '%s'",
		 dir, qfile);
	t0 = bench_now_us();
	st = system(script);
	t0 = bench_now_us() - t0;
	if (st != 0)
		bench_die("the shell loop failed (status %d)", st);
	return t0 / 1e3 / iters;
}

/* ----------------------------------------------------------- one N */


static void mkdir_cat(const char *mnt, char *dir, size_t size)
{
	snprintf(dir, size, "%s/" CAT, mnt);
	if (mkdir(dir, 0755) && errno != EEXIST)
		bench_die("mkdir '%s': %s", dir, strerror(errno));
}

static void wait_answer(const char *dir, double timeout_s)
{
	struct bench_sess s = { .dirfd = -1, .pfd = -1 };
	double t0 = bench_now_us();
	char path[PATH_MAX];

	/* a first answered lookup, polled without holding a descriptor */
	snprintf(path, sizeof(path), "%s/startup.query", dir);
	s.buf = malloc(BENCH_BUF_BYTES);
	snprintf(s.query, sizeof(s.query), "%s", path);
	for (;;) {
		if (bench_lookup_fast(&s, "is the cache up", 15, false) >= 0)
			break;
		if (bench_now_us() - t0 > timeout_s * 1e6)
			bench_die("no answer from '%s' after %.0f s", dir, timeout_s);
		usleep(200);
	}
	free(s.buf);
}

/*
 * Bytes of the regular files under store/sub (sub NULL: the whole store)
 * whose names end in suffix (NULL: all).
 */
static long long bytes_under(const char *store, const char *sub,
			     const char *suffix)
{
	char path[PATH_MAX], cmd[PATH_MAX * 2 + 64];
	long long total = 0, v;
	FILE *f;

	snprintf(path, sizeof(path), "%s%s%s", store, sub ? "/" : "", sub ? sub : "");
	snprintf(cmd, sizeof(cmd), "find '%s' -type f -name '*%s' -printf '%%s\\n'",
		 path, suffix ? suffix : "");
	f = popen(cmd, "r");
	if (!f)
		bench_die("cannot run '%s'", cmd);
	while (fscanf(f, "%lld", &v) == 1)
		total += v;
	pclose(f);
	return total;
}

static void bench_n(long n, const struct corpus *c, const char *tmp,
		    struct result *res)
{
	struct fsproc d = { 0 }, nf = { 0 };
	char store[PATH_MAX], copy[PATH_MAX], dir[PATH_MAX], ndir[PATH_MAX];
	struct cache *cache;
	struct bench_sess s, ns;
	size_t at = 0;
	int B;

	memset(res, 0, sizeof(*res));
	res->n = n;
	bench_loadavg(res->load_before, sizeof(res->load_before), 1);
	snprintf(store, sizeof(store), "%s/store-%ld", tmp, n);
	snprintf(copy, sizeof(copy), "%s/store-%ld-copy", tmp, n);
	snprintf(d.mnt, sizeof(d.mnt), "%s/mnt-%ld", tmp, n);
	snprintf(d.log, sizeof(d.log), "%s/semcachefs-%ld.log", tmp, n);
	if (mkdir(d.mnt, 0700))
		bench_die("mkdir '%s': %s", d.mnt, strerror(errno));

	/* 1. empty daemon, then the fill */
	bench_note("N=%ld: starting '%s' (store %s)", n, O.daemon, store);
	semcachefs_start(&d, store);
	bench_wait_mounted(&d.pid, d.mnt, d.log, 60);
	mkdir_cat(d.mnt, dir, sizeof(dir));
	bench_sess_init(&s, dir, "probe");
	if (lookup(&s, P_FAST, "warm the embedder up") < 0)
		bench_die("first lookup failed");
	bench_sess_release(&s);
	usleep(300000);
	res->rss_empty_kib = bench_proc_kib(d.pid, "VmRSS");

	/* fills/s: alternating batches of 1 and 4 writers, then the rest */
	B = (int)(n / 20 < 500 ? n / 20 : 500);
	double t0 = bench_now_us();

	for (int r = 0; r < O.runs && at + 2 * (size_t)B <= (size_t)n; r++) {
		res->fills1[r] = fill_range(dir, c, at, at + B, 1);
		at += B;
		res->fills4[r] = fill_range(dir, c, at, at + B, 4);
		at += B;
		res->fill_runs++;
	}
	while (at < (size_t)n) {
		size_t to = at + 10000 < (size_t)n ? at + 10000 : (size_t)n;

		fill_range(dir, c, at, to, 4);
		at = to;
		bench_note("N=%ld: filled %zu (%.0f s)", n, at, (bench_now_us() - t0) / 1e6);
	}
	res->fill_total_s = (bench_now_us() - t0) / 1e6;
	sleep(1);
	res->rss_filled_kib = bench_proc_kib(d.pid, "VmRSS");
	bench_note("N=%ld: filled in %.1f s; RSS %ld KiB (empty %ld KiB)", n,
		   res->fill_total_s, res->rss_filled_kib, res->rss_empty_kib);
	res->stop_s = bench_fs_stop(&d.pid, d.mnt);
	res->snap_bytes = bytes_under(store, "index", ".vx");
	res->store_bytes = bytes_under(store, NULL, NULL);
	bench_note("N=%ld: clean stop %.1f s; snapshot %.1f MB, store %.1f MB", n,
		   res->stop_s, res->snap_bytes / 1e6, res->store_bytes / 1e6);

	/* 2. start-up to the first answered lookup (a clean stop each time) */
	for (int r = 0; r < O.runs; r++) {
		double t1 = bench_now_us();

		semcachefs_start(&d, store);
		snprintf(dir, sizeof(dir), "%s/" CAT, d.mnt);
		wait_answer(dir, 300);
		res->startup_ms[r] = (bench_now_us() - t1) / 1e3;
		res->startup_runs++;
		if (r + 1 < O.runs)
			res->stop_loaded_s[res->stop_loaded_runs++] =
				bench_fs_stop(&d.pid, d.mnt);
	}
	bench_note("N=%ld: start-up %.0f ms (last run)", n,
		   res->startup_ms[res->startup_runs - 1]);

	/* 3. latency: the mount, the nullfs floor and the in-process floor
	 * (on a copy of the store) run by run, side by side, pinned together
	 * on CPU 0 and then unpinned */
	res->have_requests = fuse_requests(d.mnt) >= 0;
	{
		char *cp[] = { "cp", "-a", store, copy, NULL };

		bench_run(cp, -1);
	}
	snprintf(nf.mnt, sizeof(nf.mnt), "%s/null-%ld", tmp, n);
	snprintf(nf.log, sizeof(nf.log), "%s/nullfs-%ld.log", tmp, n);
	if (mkdir(nf.mnt, 0700))
		bench_die("mkdir '%s': %s", nf.mnt, strerror(errno));
	nullfs_start(&nf);
	snprintf(ndir, sizeof(ndir), "%s/" CAT, nf.mnt);
	cache = inproc_open(copy, &res->open_inproc_ms);
	bench_sess_init(&s, dir, "b");
	bench_sess_init(&ns, ndir, "b");
	{
		long long cost = stats_cost(d.mnt), ncost = stats_cost(nf.mnt);

		for (int pin = 0; pin < (O.unpinned ? 2 : 1); pin++) {
			bench_set_cpu_all(d.pid, pin ? -1 : 0);
			bench_set_cpu_all(nf.pid, pin ? -1 : 0);
			bench_set_cpu(0, pin ? -1 : 0);
			for (int p = 0; p < P_N; p++)
				for (int k = 0; k < K_N; k++) {
					warm_up(&s, c, n, p, k);
					warm_up(&ns, c, n, p, k);
					inproc_warm_up(cache, c, n, k);
					for (int r = 0; r < O.runs; r++) {
						measure_run(&s, d.mnt, cost, c, n, p, k, r,
							    &res->mount[pin][p][k]);
						measure_run(&ns, nf.mnt, ncost, c, n, p, k, r,
							    &res->null[pin][p][k]);
						inproc_run(cache, c, n, k, r,
							   &res->inproc[pin][p][k]);
					}
				}
			bench_note("N=%ld: %s latency done", n, pin ? "unpinned" : "pinned");
		}
	}
	bench_sess_release(&s);
	bench_sess_release(&ns);

	/* 4. throughput, unpinned, the mount and nullfs run by run */
	bench_set_cpu_all(d.pid, -1);
	bench_set_cpu_all(nf.pid, -1);
	bench_set_cpu(0, -1);
	{
		int per = O.ci ? 200 : 1000;

		for (int r = 0; r < O.runs; r++) {
			for (int p = 0; p < P_N; p++)
				for (int t = 0; t < 3; t++) {
					res->tput[p][t][r] = throughput(dir, c, n, p,
						1 << t, per, -1);
					res->null_tput[p][t][r] = throughput(ndir, c, n, p,
						1 << t, per, -1);
				}
			res->tput_runs++;
		}
	}
	bench_note("N=%ld: throughput done", n);
	res->rss_restart_kib = bench_proc_kib(d.pid, "VmRSS");

	/* 7. the shell, through both mounts */
	if (O.shell) {
		int iters = O.ci ? 20 : 100;

		for (int r = 0; r < O.runs; r++) {
			res->shell_ms[r] = shell_lookup_ms(dir, c, n, iters, r, tmp);
			res->shell_null_ms[r] = shell_lookup_ms(ndir, c, n, iters, r, tmp);
		}
		res->shell_runs = O.runs;
	}
	res->stop_loaded_s[res->stop_loaded_runs++] = bench_fs_stop(&d.pid, d.mnt);
	bench_fs_stop(&nf.pid, nf.mnt);
	rmdir(nf.mnt);
	rmdir(d.mnt);

	/* 5b. HNSW agreement, in-process (nothing else running) */
	bench_set_cpu(0, -1);
	if (n <= AGREE_MAX_N) {
		agreement(cache, c, n, res);
		bench_note("N=%ld: HNSW agreement done", n);
	}
	{
		double t1 = bench_now_us();

		cache_close(cache);
		res->close_inproc_s = (bench_now_us() - t1) / 1e6;
	}
	bench_rm_rf(copy);
	bench_loadavg(res->load_after, sizeof(res->load_after), 1);
	bench_note("N=%ld: done", n);
}

/* The --startup mode: start-up and clean stop, O.runs times, on store. */
static int startup_mode(const char *store, const char *tmp)
{
	struct fsproc d = { 0 };
	char dir[PATH_MAX], load[2][64];
	double up[MAX_RUNS], down[MAX_RUNS], entries = NAN;
	long rss_kib = 0;
	struct bench_summary su, sd;

	bench_loadavg(load[0], sizeof(load[0]), 3);
	snprintf(d.mnt, sizeof(d.mnt), "%s/mnt", tmp);
	snprintf(d.log, sizeof(d.log), "%s/semcachefs.log", tmp);
	snprintf(dir, sizeof(dir), "%s/" CAT, d.mnt);
	if (mkdir(d.mnt, 0700))
		bench_die("mkdir '%s': %s", d.mnt, strerror(errno));
	for (int r = 0; r < O.runs; r++) {
		double t1 = bench_now_us();

		semcachefs_start(&d, store);
		wait_answer(dir, 600);
		up[r] = (bench_now_us() - t1) / 1e3;
		entries = bench_stat(dir, "entries");
		rss_kib = bench_proc_kib(d.pid, "VmRSS");
		down[r] = bench_fs_stop(&d.pid, d.mnt);
		bench_note("run %d: start-up %.0f ms, stop %.2f s", r + 1, up[r], down[r]);
	}
	rmdir(d.mnt);
	bench_loadavg(load[1], sizeof(load[1]), 3);
	su = bench_summarise(up, O.runs);
	sd = bench_summarise(down, O.runs);
	printf("\n| metric | '%s' |\n|---|---|\n", store);
	printf("| entries in '/" CAT "' | %.0f |\n", entries);
	printf("| start-up to first answered lookup, ms [min–max] | %.0f [%.0f–%.0f] |\n",
	       su.med, su.min, su.max);
	printf("| daemon RSS after the first answered lookup (last run), MiB (B per entry) | %.1f (%.0f) |\n",
	       rss_kib / 1024.0, rss_kib * 1024.0 / (entries > 0 ? entries : 1));
	printf("| clean stop (unmount to exit: snapshot write), s [min–max] | %.2f [%.2f–%.2f] |\n",
	       sd.med, sd.min, sd.max);
	printf("| snapshot index/*.vx, MB / whole store, MB | %.1f / %.1f |\n",
	       bytes_under(store, "index", ".vx") / 1e6, bytes_under(store, NULL, NULL) / 1e6);
	printf("| load average at start / end | %s / %s |\n", load[0], load[1]);
	printf("\nCommand: `%s` (%d runs)\n", O.cmdline, O.runs);
	return 0;
}

/* ------------------------------------------------------------- printing */

static char cells[MAX_NS][96][160];
static char rowname[96][160];
static int nrows;

static void row(const char *name)
{
	snprintf(rowname[nrows++], sizeof(rowname[0]), "%s", name);
}

static void cell(int col, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cell(int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cells[col][nrows - 1], sizeof(cells[0][0]), fmt, ap);
	va_end(ap);
}

/* The agreement rows of one result column. */
static void agreement_rows(int i, const struct result *r)
{
	char efs[64] = "", name[256], v[3][160] = { "", "", "" };
	bool skipped = r->n > AGREE_MAX_N;

	for (int x = 0; x < AGREE_N; x++) {
		const char *sep = x ? " / " : "";

		snprintf(efs + strlen(efs), sizeof(efs) - strlen(efs), "%s%d", sep, agree_efs[x]);
		snprintf(v[0] + strlen(v[0]), sizeof(v[0]) - strlen(v[0]), "%s%.3f", sep, r->agree[x]);
		snprintf(v[1] + strlen(v[1]), sizeof(v[1]) - strlen(v[1]), "%s%.3f·%.3f", sep,
			 r->decide90[x], r->decide80[x]);
		snprintf(v[2] + strlen(v[2]), sizeof(v[2]) - strlen(v[2]), "%s%.0f", sep, r->agree_us[x]);
	}
	/* the row names are shared by every column (each prints the same
	 * rows): counts and "skipped" go in the cells */
	if (skipped)
		for (int k = 0; k < 3; k++)
			snprintf(v[k], sizeof(v[k]), "skipped (N > %d: the exact scan takes minutes)",
				 AGREE_MAX_N);
	snprintf(name, sizeof(name), "HNSW vs exact scan, ef_search %s: top-1 agreement (queries)",
		 efs);
	row(name);
	if (skipped)
		cell(i, "%s", v[0]);
	else
		cell(i, "%s (%d)", v[0], r->agree_q);
	snprintf(name, sizeof(name), "HNSW vs exact scan, ef_search %s: same hit/miss decision at threshold 0.9·0.8", efs);
	row(name);
	cell(i, "%s", v[1]);
	snprintf(name, sizeof(name), "HNSW vs exact scan, ef_search %s: in-process miss p50 µs (one run)", efs);
	row(name);
	cell(i, "%s", v[2]);
}

static struct bench_summary s50(const struct lat *l)
{
	return bench_summarise(l->p50, l->runs);
}

static struct bench_summary s99(const struct lat *l)
{
	return bench_summarise(l->p99, l->runs);
}

/* "p50 [min-max] / p99" in µs */
static void lat_cell(int col, const struct lat *l)
{
	struct bench_summary a = s50(l), b = s99(l);

	if (!l->runs)
		cell(col, "-");
	else
		cell(col, "%.0f [%.0f–%.0f] / %.0f", a.med, a.min, a.max, b.med);
}

/* The lookups/s rows of one result column: 1, 2, 4 threads per protocol. */
static void tput_rows(int col, const char *what, double tput[P_N][3][MAX_RUNS],
		      int runs)
{
	char name[160];

	for (int p = 0; p < P_N; p++) {
		struct bench_summary t1 = bench_summarise(tput[p][0], runs);
		struct bench_summary t2 = bench_summarise(tput[p][1], runs);
		struct bench_summary t4 = bench_summarise(tput[p][2], runs);

		snprintf(name, sizeof(name),
			 "%s lookups/s %s, unpinned: 1 / 2 / 4 threads (2T÷1T)",
			 what, proto_name[p]);
		row(name);
		cell(col, "%.0f / %.0f / %.0f (%.2f×)", t1.med, t2.med, t4.med,
		     t2.med / t1.med);
	}
}

static void print_table(struct result *res, int nres)
{
	char name[160];

	nrows = 0;
	for (int i = 0; i < nres; i++) {
		struct result *r = &res[i];
		int pins = O.unpinned ? 2 : 1;

		nrows = 0;
		for (int pin = 0; pin < pins; pin++)
			for (int p = 0; p < P_N; p++)
				for (int k = 0; k < K_N; k++) {
					snprintf(name, sizeof(name),
						 "mount %s %s, %s: p50 µs [min–max] / p99",
						 proto_name[p], kind_name[k],
						 pin ? "unpinned" : "pinned cpu0");
					row(name);
					lat_cell(i, &r->mount[pin][p][k]);
				}
		for (int k = 0; k < K_N; k++) {
			snprintf(name, sizeof(name),
				 "floor (a) in-process %s, pinned cpu0 (runs beside fast): p50 µs [min–max] / p99",
				 kind_name[k]);
			row(name);
			lat_cell(i, &r->inproc[0][P_FAST][k]);
		}
		for (int pin = 0; pin < pins; pin++)
			for (int p = 0; p < P_N; p++) {
				snprintf(name, sizeof(name),
					 "floor (b) nullfs %s, %s (runs beside miss): p50 µs [min–max] / p99",
					 proto_name[p], pin ? "unpinned" : "pinned cpu0");
				row(name);
				lat_cell(i, &r->null[pin][p][K_MISS]);
			}
		for (int pin = 0; pin < pins; pin++)
			for (int p = 0; p < P_N; p++)
				for (int k = 0; k < K_N; k++) {
					double m = s50(&r->mount[pin][p][k]).med;
					double a = s50(&r->inproc[pin][p][k]).med;
					double b = s50(&r->null[pin][p][k]).med;
					double m9 = s99(&r->mount[pin][p][k]).med;
					double a9 = s99(&r->inproc[pin][p][k]).med;
					double b9 = s99(&r->null[pin][p][k]).med;

					snprintf(name, sizeof(name),
						 "ratio mount/(a+b) %s %s, %s: p50 (p99)",
						 proto_name[p], kind_name[k],
						 pin ? "unpinned" : "pinned cpu0");
					row(name);
					cell(i, "%.2f× (%.2f×)", m / (a + b), m9 / (a9 + b9));
				}
		for (int p = 0; p < P_N; p++) {
			snprintf(name, sizeof(name),
				 "FUSE requests per lookup, %s: exact / semantic / miss (nullfs)",
				 proto_name[p]);
			row(name);
			if (!r->have_requests)
				cell(i, "n/a (no fuse_requests in .stats)");
			else
				cell(i, "%.1f / %.1f / %.1f (%.1f)",
				     r->mount[0][p][K_EXACT].reqs,
				     r->mount[0][p][K_SEM].reqs,
				     r->mount[0][p][K_MISS].reqs, r->null[0][p][K_MISS].reqs);
		}
		row("hits among lookups: exact / semantic (synthetic paraphrase) / miss (held-out)");
		cell(i, "%.1f%% / %.1f%% / %.1f%%",
		     100.0 * r->mount[0][P_FAST][K_EXACT].hits / r->mount[0][P_FAST][K_EXACT].asked,
		     100.0 * r->mount[0][P_FAST][K_SEM].hits / r->mount[0][P_FAST][K_SEM].asked,
		     100.0 * r->mount[0][P_FAST][K_MISS].hits / r->mount[0][P_FAST][K_MISS].asked);
		tput_rows(i, "miss", r->tput, r->tput_runs);
		tput_rows(i, "nullfs", r->null_tput, r->tput_runs);
		{
			struct bench_summary f1 = bench_summarise(r->fills1, r->fill_runs);
			struct bench_summary f4 = bench_summarise(r->fills4, r->fill_runs);

			row("durable fills/s (lookup + fill), 1 writer [min–max]");
			cell(i, "%.0f [%.0f–%.0f]", f1.med, f1.min, f1.max);
			row("durable fills/s (lookup + fill), 4 writers [min–max]");
			cell(i, "%.0f [%.0f–%.0f]", f4.med, f4.min, f4.max);
			row("whole fill of N (4 writers after the batches), s");
			cell(i, "%.1f", r->fill_total_s);
		}
		{
			double per = (r->rss_filled_kib - r->rss_empty_kib) * 1024.0 / r->n;
			double per2 = (r->rss_restart_kib - r->rss_empty_kib) * 1024.0 / r->n;
			/* IndexHNSWFlat: codes 4d, level-0 links 2M int32, levels
			 * int32 + offsets size_t, upper levels ~M/(M-1) x M int32 */
			double faiss = 4.0 * DIM_BUILTIN + 2.0 * HNSW_M * 4 + 4 + 8 +
				       HNSW_M * 4.0 / (HNSW_M - 1);

			row("daemon RSS MiB: empty / filled / after restart + lookups");
			cell(i, "%.1f / %.1f / %.1f", r->rss_empty_kib / 1024.0,
			     r->rss_filled_kib / 1024.0, r->rss_restart_kib / 1024.0);
			row("RSS per entry B: after fill / after restart (raw vector B; FAISS estimate B; target ≤ 1.3×FAISS+300)");
			cell(i, "%.0f / %.0f (%d; %.0f; %.0f)", per, per2,
			     4 * DIM_BUILTIN, faiss, 1.3 * faiss + 300);
		}
		{
			struct bench_summary su = bench_summarise(r->startup_ms, r->startup_runs);

			row("start-up to first answered lookup, ms [min–max]");
			cell(i, "%.0f [%.0f–%.0f]", su.med, su.min, su.max);
			struct bench_summary st = bench_summarise(r->stop_loaded_s,
								  r->stop_loaded_runs);

			row("clean stop after the fill (unmount to exit: merge + snapshot write), s");
			cell(i, "%.2f", r->stop_s);
			row("clean stop of a restarted daemon (unmount to exit: snapshot write, nothing to merge), s [min–max]");
			cell(i, "%.2f [%.2f–%.2f] (%d stops)", st.med, st.min, st.max,
			     r->stop_loaded_runs);
			row("in-process cache_open, ms / cache_close (snapshot write), s");
			cell(i, "%.0f / %.2f", r->open_inproc_ms, r->close_inproc_s);
			row("snapshot index/*.vx after the fill, MB (B per entry) / whole store, MB");
			cell(i, "%.1f (%.0f) / %.1f", r->snap_bytes / 1e6,
			     (double)r->snap_bytes / r->n, r->store_bytes / 1e6);
		}
		if (r->shell_runs) {
			struct bench_summary a = bench_summarise(r->shell_ms, r->shell_runs);
			struct bench_summary b = bench_summarise(r->shell_null_ms, r->shell_runs);

			row("bash echo/cat lookup (miss), ms: mount [min–max] (nullfs)");
			cell(i, "%.2f [%.2f–%.2f] (%.2f)", a.med, a.min, a.max, b.med);
		}
		row("1-min load average at start / end (2 cores)");
		cell(i, "%s / %s", r->load_before, r->load_after);
		agreement_rows(i, r);
	}
	printf("\n| metric |");
	for (int i = 0; i < nres; i++)
		printf(" N=%ld |", res[i].n);
	printf("\n|---|");
	for (int i = 0; i < nres; i++)
		printf("---|");
	printf("\n");
	for (int k = 0; k < nrows; k++) {
		printf("| %s |", rowname[k]);
		for (int i = 0; i < nres; i++)
			printf(" %s |", cells[i][k]);
		printf("\n");
	}
	printf("\nCommand: `%s`\n", O.cmdline);
}

/* --------------------------------------------------- --requests mode */

/* nullfs's per-kind counters (see nullfs.c), in its .stats order. */
#define NOPS 11
static const char *const op_names[NOPS] = { "getattr", "create", "open",
	"read", "write", "flush", "release", "truncate", "getxattr", "fsync",
	"other" };

/* Reads .stats once: returns fuse_requests (-1 if none), fills v. */
static long long read_ops(const char *mnt, long long v[NOPS])
{
	char path[PATH_MAX], text[4096];
	double t;

	memset(v, 0, sizeof(long long) * NOPS);
	snprintf(path, sizeof(path), "%s/.stats", mnt);
	if (bench_get(path, text, sizeof(text)) <= 0)
		return -1;
	for (int i = 0; i < NOPS; i++) {
		double d = bench_stat_num(text, op_names[i]);

		if (!isnan(d))
			v[i] = (long long)d;
	}
	t = bench_stat_num(text, "fuse_requests");
	return isnan(t) ? -1 : (long long)t;
}

/* "getattr 4, open 1" for the per-kind difference b - a - cost. */
static void ops_text(const long long *a, const long long *b,
		     const long long *cost, char *out, size_t size)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < NOPS && o < size; i++) {
		long long d = b[i] - a[i] - cost[i];

		if (d)
			o += snprintf(out + o, size - o, "%s%s %lld", o ? ", " : "",
				      op_names[i] == op_names[0] ? "lookup/getattr" :
				      op_names[i], d);
	}
}


/* Print the requests each step of each protocol costs on one mount. */
static void requests_on(const char *label, const char *mnt, const char *dir,
			const char *q, const char *fq)
{
	long long cost, a, b, tot = 0;
	long long oc[NOPS], o1[NOPS], o2[NOPS];
	char buf[BENCH_BUF_BYTES], qpath[PATH_MAX], spath[PATH_MAX], rpath[PATH_MAX];
	char kinds[256];
	int fd, dfd, rfd, fsync_rc;
	ssize_t n;

	/* per-kind cost of one .stats read (nullfs only; zeros otherwise) */
	a = read_ops(mnt, o1);
	b = read_ops(mnt, o2);
	cost = b - a;
	for (int i = 0; i < NOPS; i++)
		oc[i] = o2[i] - o1[i];
#define STEP(desc, stmt) do { a = read_ops(mnt, o1); stmt; \
	b = read_ops(mnt, o2); long long d_ = b - a - cost; tot += d_; \
	ops_text(o1, o2, oc, kinds, sizeof(kinds)); \
	printf("| %s | %s | %lld | %s |\n", label, desc, d_, kinds); } while (0)

	snprintf(qpath, sizeof(qpath), "%s/r.query", dir);
	snprintf(spath, sizeof(spath), "%s/r.status", dir);
	snprintf(rpath, sizeof(rpath), "%s/r.response", dir);
	tot = 0;
	STEP("3file: open(NAME.query, O_WRONLY|O_CREAT|O_TRUNC)",
	     fd = open(qpath, O_WRONLY | O_CREAT | O_TRUNC, 0644));
	STEP("3file: write(query)", n = write(fd, q, strlen(q)));
	STEP("3file: close (lookup runs in flush)", close(fd));
	STEP("3file: open(NAME.status)", fd = open(spath, O_RDONLY));
	STEP("3file: read(status)", n = read(fd, buf, sizeof(buf)));
	STEP("3file: close", close(fd));
	STEP("3file: open(NAME.response)", fd = open(rpath, O_RDONLY));
	STEP("3file: read until 0", while ((n = read(fd, buf, sizeof(buf))) > 0) {});
	STEP("3file: close", close(fd));
	printf("| %s | **3file total** | **%lld** | |\n", label, tot);
	tot = 0;
	STEP("fast: open(NAME.query, O_RDWR|O_CREAT|O_TRUNC)",
	     fd = open(qpath, O_RDWR | O_CREAT | O_TRUNC, 0644));
	STEP("fast: write(query)", n = write(fd, q, strlen(q)));
	STEP("fast: pread(0) (lookup runs here)", n = pread(fd, buf, sizeof(buf), 0));
	STEP("fast: close", close(fd));
	printf("| %s | **fast total** | **%lld** | |\n", label, tot);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	tot = 0;
	STEP("fast-at: openat(dirfd, NAME.query, O_RDWR|O_CREAT|O_TRUNC)",
	     fd = openat(dfd, "r.query", O_RDWR | O_CREAT | O_TRUNC, 0644));
	STEP("fast-at: write(query)", n = write(fd, q, strlen(q)));
	STEP("fast-at: pread(0)", n = pread(fd, buf, sizeof(buf), 0));
	STEP("fast-at: close", close(fd));
	printf("| %s | **fast-at total** | **%lld** | |\n", label, tot);
	close(dfd);
	/* persistent descriptors: opened once, then pwrite + pread a lookup
	 * and pwrite + fsync a fill (of fq, a miss, looked up first) */
	tot = 0;
	STEP("persist: open(NAME.query, O_RDWR|O_CREAT), once",
	     fd = open(qpath, O_RDWR | O_CREAT, 0644));
	STEP("persist: open(NAME.response, O_WRONLY), once",
	     rfd = open(rpath, O_WRONLY));
	tot = 0;
	STEP("persist: pwrite(query, 0)", n = pwrite(fd, q, strlen(q), 0));
	STEP("persist: pread(0) (lookup runs here)", n = pread(fd, buf, sizeof(buf), 0));
	printf("| %s | **persist lookup total** | **%lld** | |\n", label, tot);
	n = pwrite(fd, fq, strlen(fq), 0);
	n = pread(fd, buf, sizeof(buf), 0);
	tot = 0;
	STEP("persist: pwrite(response, 0) (after a miss)",
	     n = pwrite(rfd, "a persistent answer", 19, 0));
	STEP("persist: fsync(response) (the fill is durable)", fsync_rc = fsync(rfd));
	printf("| %s | **persist fill total** | **%lld** |%s |\n", label, tot,
	       fsync_rc ? " (fsync failed)" : "");
	close(rfd);
	close(fd);
	(void)n;
#undef STEP
}

static int requests_mode(const struct corpus *c, const char *tmp)
{
	struct fsproc d = { 0 }, nf = { 0 };
	char store[PATH_MAX], dir[PATH_MAX], stats[PATH_MAX], text[4096];
	int fd;
	ssize_t n;

	snprintf(store, sizeof(store), "%s/store-req", tmp);
	snprintf(d.mnt, sizeof(d.mnt), "%s/mnt-req", tmp);
	snprintf(d.log, sizeof(d.log), "%s/semcachefs-req.log", tmp);
	snprintf(nf.mnt, sizeof(nf.mnt), "%s/null-req", tmp);
	snprintf(nf.log, sizeof(nf.log), "%s/nullfs-req.log", tmp);
	mkdir(d.mnt, 0700);
	mkdir(nf.mnt, 0700);
	semcachefs_start(&d, store);
	bench_wait_mounted(&d.pid, d.mnt, d.log, 60);
	if (fuse_requests(d.mnt) < 0) {
		printf("SKIP: this semcachefs has no fuse_requests counter in .stats\n");
		bench_fs_stop(&d.pid, d.mnt);
		return 77;
	}
	mkdir_cat(d.mnt, dir, sizeof(dir));
	fill_range(dir, c, 0, 50, 1);
	printf("| fs | step | FUSE requests | kinds (nullfs counts them) |\n|---|---|---|---|\n");
	/* a warm-up pass creates the session files, as in steady state */
	/* each persistent fill answers a held-out question of its own */
	requests_on("(warm-up)", d.mnt, dir, c->q[c->n - 1], c->q[c->n - 2]);
	requests_on("semcachefs miss", d.mnt, dir, c->q[c->n - 1], c->q[c->n - 3]);
	requests_on("semcachefs exact hit", d.mnt, dir, c->q[3], c->q[c->n - 4]);
	bench_fs_stop(&d.pid, d.mnt);
	nullfs_start(&nf);
	snprintf(dir, sizeof(dir), "%s/" CAT, nf.mnt);
	requests_on("(warm-up)", nf.mnt, dir, c->q[c->n - 1], c->q[c->n - 2]);
	requests_on("nullfs", nf.mnt, dir, c->q[c->n - 1], c->q[c->n - 3]);
	/* which request kinds nullfs saw in total */
	snprintf(stats, sizeof(stats), "%s/.stats", nf.mnt);
	fd = open(stats, O_RDONLY);
	n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		text[n] = '\0';
		printf("\nnullfs request kinds over the run (includes the .stats reads):\n%s", text);
	}
	bench_fs_stop(&nf.pid, nf.mnt);
	rmdir(d.mnt);
	rmdir(nf.mnt);
	printf("\nEach step's count is the root .stats counter after minus before, "
	       "minus one .stats read (%s).\nCommand: `%s`\n",
	       "calibrated by two reads in a row", O.cmdline);
	return 0;
}

/* ----------------------------------------------- --fuse: transports */

/*
 * One libfuse build and transport (--fuse LABEL=BUILDDIR[:io_uring]): the
 * semcachefs and the nullfs of BUILDDIR, both told to take requests through
 * io_uring or through /dev/fuse, on a copy of one filled store.
 */
#define MAX_FUSE 4
struct fusecfg {
	char label[64];
	char daemon[PATH_MAX], nullfs[PATH_MAX];
	bool uring;
	struct fsproc d, nf;
	char dir[PATH_MAX], ndir[PATH_MAX];
	int rings, null_rings;                 /* fuse-ring-* threads seen */
	double tput[2][3][MAX_RUNS];          /* [pinned, unpinned][1, 2, 4 threads] */
	double null_tput[2][3][MAX_RUNS];
	double cpu[2][3][MAX_RUNS];           /* CPU µs per lookup, fs + client */
	double null_cpu[2][3][MAX_RUNS];
	/* --persist: [kind][1, 2, 4 threads], unpinned */
	double ptput[K_N][3][MAX_RUNS], null_ptput[K_N][3][MAX_RUNS];
	double pcpu[K_N][3][MAX_RUNS], null_pcpu[K_N][3][MAX_RUNS];
	long phits[K_N], pasked[K_N];
};
static struct fusecfg F[MAX_FUSE];
static int nfuse;

static void parse_fuse(const char *arg)
{
	struct fusecfg *f = &F[nfuse];
	const char *eq = strchr(arg, '='), *colon;
	char dir[PATH_MAX];

	if (nfuse == MAX_FUSE)
		bench_die("at most %d --fuse", MAX_FUSE);
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(f->label))
		bench_die("--fuse '%s': use LABEL=BUILDDIR or LABEL=BUILDDIR:io_uring", arg);
	snprintf(f->label, sizeof(f->label), "%.*s", (int)(eq - arg), arg);
	colon = strrchr(eq + 1, ':');
	f->uring = colon && !strcmp(colon, ":io_uring");
	if (colon && !f->uring)
		bench_die("--fuse '%s': the only transport suffix is ':io_uring'", arg);
	snprintf(dir, sizeof(dir), "%.*s", (int)(f->uring ? colon - eq - 1 : (long)strlen(eq + 1)),
		 eq + 1);
	snprintf(f->daemon, sizeof(f->daemon), "%s/fs/semcachefs", dir);
	snprintf(f->nullfs, sizeof(f->nullfs), "%s/tests/nullfs", dir);
	if (access(f->daemon, X_OK) || access(f->nullfs, X_OK))
		bench_die("--fuse '%s': no '%s' or '%s' (build that directory with ninja)", arg,
			  f->daemon, f->nullfs);
	nfuse++;
}

static void fusecfg_start(struct fusecfg *f, const char *store)
{
	char opt[PATH_MAX + 16];
	char *dargv[] = { f->daemon, "-f", "-o", opt, "-o",
			  f->uring ? "transport=io_uring" : "transport=dev_fuse", f->d.mnt, NULL };
	char *nargv[] = { f->nullfs, "-f", f->nf.mnt, f->uring ? "-oio_uring" : NULL, NULL };

	snprintf(opt, sizeof(opt), "store=%s", store);
	f->d.pid = bench_spawn(dargv, f->d.log, NULL, NULL);
	bench_wait_mounted(&f->d.pid, f->d.mnt, f->d.log, 60);
	f->nf.pid = bench_spawn(nargv, f->nf.log, NULL, NULL);
	bench_wait_mounted(&f->nf.pid, f->nf.mnt, f->nf.log, 30);
	snprintf(f->dir, sizeof(f->dir), "%s/" CAT, f->d.mnt);
	snprintf(f->ndir, sizeof(f->ndir), "%s/" CAT, f->nf.mnt);
	wait_answer(f->dir, 300);
	wait_answer(f->ndir, 30);
	/* libfuse starts its ring threads when the kernel's INIT arrives */
	f->rings = bench_count_threads(f->d.pid, "fuse-ring-");
	f->null_rings = bench_count_threads(f->nf.pid, "fuse-ring-");
	if ((f->rings > 0) != f->uring || (f->null_rings > 0) != f->uring)
		bench_die("'%s': %d and %d io_uring queue threads in semcachefs and nullfs, "
			  "expected %s (see %s)", f->label, f->rings, f->null_rings,
			  f->uring ? "some" : "none", f->d.log);
}

/* CPU seconds used so far by process pid (every thread, exited ones too). */
static double proc_cpu_s(pid_t pid)
{
	struct timespec ts;
	clockid_t id;

	if (clock_getcpuclockid(pid, &id) || clock_gettime(id, &ts))
		bench_die("cannot read the CPU time of process %d: %s", (int)pid, strerror(errno));
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* throughput_of() (fast path, or persistent descriptors), and the CPU µs
 * per lookup of fs pid and this process */
static double tput_cpu(const char *dir, pid_t pid, const struct corpus *c, long n,
		       bool persist, enum kind kd, int k, int per, int cpu,
		       double *cpu_us, long *hits)
{
	double c0 = proc_cpu_s(pid) + proc_cpu_s(getpid()), tp;

	tp = throughput_of(dir, c, n, P_FAST, persist, kd, k, per, cpu, hits);
	*cpu_us = (proc_cpu_s(pid) + proc_cpu_s(getpid()) - c0) * 1e6 / ((double)k * per);
	return tp;
}

static void tput_cell(int col, const double *v, int runs)
{
	struct bench_summary t = bench_summarise(v, runs);

	cell(col, "%.0f (%.0f–%.0f)", t.med, t.min, t.max);
}

static const char *transport_name(const struct fusecfg *f)
{
	return f->uring ? "io_uring" : "/dev/fuse";
}

/* One table: lookups/s (cpu false) or CPU µs per lookup (cpu true). */
static void print_fuse_table(long n, int runs, bool cpu)
{
	static const char *const pins[2] = { "pinned", "unpinned" };
	char name[256];

	nrows = 0;
	for (int i = 0; i < nfuse; i++)
		for (int m = 0; m < 2; m++) {
			struct fusecfg *f = &F[i];
			double (*v)[3][MAX_RUNS] = cpu ? (m ? f->null_cpu : f->cpu) :
						   (m ? f->null_tput : f->tput);

			snprintf(name, sizeof(name), "%s, %s, %s",
				 m ? "do-nothing fs" : "mount", f->label, transport_name(f));
			row(name);
			for (int pin = 0; pin < 2; pin++)
				for (int t = 0; t < 3; t++)
					tput_cell(pin * 3 + t, v[pin][t], runs);
		}
	for (int i = 1; i < nfuse; i++)
		for (int m = 0; m < 2; m++) {
			double (*a)[3][MAX_RUNS] = cpu ? (m ? F[i].null_cpu : F[i].cpu) :
						   (m ? F[i].null_tput : F[i].tput);
			double (*b)[3][MAX_RUNS] = cpu ? (m ? F[0].null_cpu : F[0].cpu) :
						   (m ? F[0].null_tput : F[0].tput);

			snprintf(name, sizeof(name), "%s: %s %s ÷ %s %s (medians)",
				 m ? "do-nothing fs" : "mount", F[i].label, transport_name(&F[i]),
				 F[0].label, transport_name(&F[0]));
			row(name);
			for (int pin = 0; pin < 2; pin++)
				for (int t = 0; t < 3; t++)
					cell(pin * 3 + t, "%.2f", bench_summarise(a[pin][t], runs).med /
					     bench_summarise(b[pin][t], runs).med);
		}
	printf("\n%s, fast path, misses, N=%ld in one category; median (min–max) of %d runs; "
	       "pinned: the fs and the client threads on CPU 0 (taskset -c 0), "
	       "unpinned: any CPU (libfuse keeps io_uring queue thread Q on CPU Q)\n\n",
	       cpu ? "CPU µs per lookup (the fs process + the client process, all threads)" :
	       "Lookups/s", n, runs);
	printf("| %s |", cpu ? "CPU µs / lookup" : "lookups/s");
	for (int pin = 0; pin < 2; pin++)
		for (int t = 0; t < 3; t++)
			printf(" %s, %d thread%s |", pins[pin], 1 << t, t ? "s" : "");
	printf("\n|---|---|---|---|---|---|---|\n");
	for (int r = 0; r < nrows; r++) {
		printf("| %s |", rowname[r]);
		for (int col = 0; col < 6; col++)
			printf(" %s |", cells[col][r]);
		printf("\n");
	}
}

/*
 * One --persist run: for every kind, 1, 2 and 4 threads, each build's mount
 * then its nullfs, every thread on its own persistent NAME.query; unpinned
 * (on one CPU threads cannot scale).
 */
static void persist_run(const struct corpus *c, long n, int per, int r)
{
	bench_set_cpu(0, -1);
	for (int i = 0; i < nfuse; i++) {
		bench_set_cpu_all(F[i].d.pid, -1);
		bench_set_cpu_all(F[i].nf.pid, -1);
	}
	for (int k = 0; k < K_N; k++)
		for (int t = 0; t < 3; t++)
			for (int i = 0; i < nfuse; i++) {
				struct fusecfg *f = &F[i];

				f->ptput[k][t][r] = tput_cpu(f->dir, f->d.pid, c, n, true, k,
					1 << t, per, -1, &f->pcpu[k][t][r], &f->phits[k]);
				f->pasked[k] += (long)per << t;
				f->null_ptput[k][t][r] = tput_cpu(f->ndir, f->nf.pid, c, n,
					true, k, 1 << t, per, -1, &f->null_pcpu[k][t][r], NULL);
			}
}

/* The --persist table: lookups/s (cpu false) or CPU µs per lookup. */
static void print_persist_table(long n, int runs, bool cpu)
{
	printf("\n%s, persistent descriptors (one NAME.query O_RDWR per thread, "
	       "pwrite(0) + pread(0) per lookup), N=%ld in one category, unpinned; "
	       "median (min–max) of %d runs, the fs of each row and its do-nothing fs "
	       "alternating run by run\n\n",
	       cpu ? "CPU µs per lookup (the fs process + the client process, all threads)" :
	       "Lookups/s", n, runs);
	printf("| %s | 1 thread | 2 threads | 4 threads | 2T÷1T | 4T÷1T |\n"
	       "|---|---|---|---|---|---|\n", cpu ? "CPU µs / lookup" : "lookups/s");
	for (int i = 0; i < nfuse; i++)
		for (int m = 0; m < 2; m++)
			for (int k = 0; k < K_N; k++) {
				struct fusecfg *f = &F[i];
				double (*v)[MAX_RUNS] = cpu ? (m ? f->null_pcpu[k] : f->pcpu[k]) :
							(m ? f->null_ptput[k] : f->ptput[k]);
				struct bench_summary s[3];

				printf("| %s, %s, %s", m ? "do-nothing fs" : "mount", f->label,
				       kind_name[k]);
				if (!m && !cpu)
					printf(" (%.1f%% hits)", 100.0 * f->phits[k] /
					       (f->pasked[k] ? f->pasked[k] : 1));
				printf(" |");
				for (int t = 0; t < 3; t++) {
					s[t] = bench_summarise(v[t], runs);
					printf(cpu ? " %.1f (%.1f–%.1f) |" : " %.0f (%.0f–%.0f) |",
					       s[t].med, s[t].min, s[t].max);
				}
				if (cpu)
					printf(" | |\n");
				else
					printf(" %.2f× | %.2f× |\n", s[1].med / s[0].med,
					       s[2].med / s[0].med);
			}
}

/*
 * Fill one store through the first build's mount, then mount every build
 * on a copy of it next to its nullfs, all at once, and time lookups/s run
 * by run: each run goes through every build, pinned then unpinned, 1, 2
 * and 4 threads, mount then nullfs, so that load from other work on the
 * machine hits all alike. Besides lookups/s, the CPU time the fs process
 * and this one spent per lookup (user + system, every thread): less
 * disturbed by other work on a busy machine than wall time.
 */
static int fuse_mode(const struct corpus *c, const char *tmp, long n)
{
	struct fusecfg *f0 = &F[0];
	char store[PATH_MAX], copy[PATH_MAX];
	int per = O.ci ? 200 : O.lookups;

	snprintf(store, sizeof(store), "%s/store", tmp);
	for (int i = 0; i < nfuse; i++) {
		snprintf(F[i].d.mnt, sizeof(F[i].d.mnt), "%s/mnt-%d", tmp, i);
		snprintf(F[i].nf.mnt, sizeof(F[i].nf.mnt), "%s/null-%d", tmp, i);
		snprintf(F[i].d.log, sizeof(F[i].d.log), "%s/semcachefs-%d.log", tmp, i);
		snprintf(F[i].nf.log, sizeof(F[i].nf.log), "%s/nullfs-%d.log", tmp, i);
		if (mkdir(F[i].d.mnt, 0700) || mkdir(F[i].nf.mnt, 0700))
			bench_die("mkdir in '%s': %s", tmp, strerror(errno));
	}
	{
		char *argv[] = { f0->daemon, "-f", "-o", copy, f0->d.mnt, NULL };

		snprintf(copy, sizeof(copy), "store=%s", store);
		bench_note("filling %ld questions through '%s'", n, f0->daemon);
		f0->d.pid = bench_spawn(argv, f0->d.log, NULL, NULL);
		bench_wait_mounted(&f0->d.pid, f0->d.mnt, f0->d.log, 60);
		mkdir_cat(f0->d.mnt, f0->dir, sizeof(f0->dir));
		fill_range(f0->dir, c, 0, (size_t)n, 4);
		bench_fs_stop(&f0->d.pid, f0->d.mnt);
	}
	for (int i = 0; i < nfuse; i++) {
		char *cp[] = { "cp", "-a", store, copy, NULL };

		snprintf(copy, sizeof(copy), "%s/store-%d", tmp, i);
		bench_run(cp, -1);
		fusecfg_start(&F[i], copy);
		bench_note("%s: %s (%d io_uring queue threads)", F[i].label,
			   F[i].uring ? "io_uring" : "/dev/fuse", F[i].rings);
		throughput(F[i].dir, c, n, P_FAST, 2, O.warmup, -1);
		throughput(F[i].ndir, c, n, P_FAST, 2, O.warmup, -1);
	}
	for (int r = 0; r < O.runs && O.persist; r++) {
		persist_run(c, n, per, r);
		bench_note("run %d of %d done", r + 1, O.runs);
	}
	for (int r = 0; r < O.runs && !O.persist; r++) {
		for (int pin = 0; pin < 2; pin++)
			for (int i = 0; i < nfuse; i++) {
				struct fusecfg *f = &F[i];
				int cpu = pin ? -1 : 0;

				bench_set_cpu_all(f->d.pid, cpu);
				bench_set_cpu_all(f->nf.pid, cpu);
				bench_set_cpu(0, cpu);
				for (int t = 0; t < 3; t++) {
					f->tput[pin][t][r] = tput_cpu(f->dir, f->d.pid, c, n,
						false, K_MISS, 1 << t, per, cpu,
						&f->cpu[pin][t][r], NULL);
					f->null_tput[pin][t][r] = tput_cpu(f->ndir, f->nf.pid, c, n,
						false, K_MISS, 1 << t, per, cpu,
						&f->null_cpu[pin][t][r], NULL);
				}
			}
		bench_set_cpu(0, -1);
		bench_note("run %d of %d done", r + 1, O.runs);
	}
	for (int i = 0; i < nfuse; i++) {
		bench_fs_stop(&F[i].d.pid, F[i].d.mnt);
		bench_fs_stop(&F[i].nf.pid, F[i].nf.mnt);
	}
	bench_loadavg(copy, sizeof(copy), 3);
	if (O.persist) {
		print_persist_table(n, O.runs, false);
		print_persist_table(n, O.runs, true);
	} else {
		print_fuse_table(n, O.runs, false);
		print_fuse_table(n, O.runs, true);
	}
	printf("\nLoad average at the end: %s. Command: `%s`\n", copy, O.cmdline);
	return 0;
}

/* --------------------------------------------------------------- main */

static void parse_ns(const char *s)
{
	char *end;

	O.nn = 0;
	while (*s && O.nn < MAX_NS) {
		double v = strtod(s, &end);

		if (end == s)
			bench_die("bad -n list '%s'", s);
		if (*end == 'k' || *end == 'K')
			v *= 1000, end++;
		else if (*end == 'm' || *end == 'M')
			v *= 1000000, end++;
		O.ns[O.nn++] = (long)v;
		s = *end == ',' ? end + 1 : end;
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "runs", 1, 0, 'r' }, { "lookups", 1, 0, 'l' },
		{ "ci", 0, 0, 'C' }, { "daemon", 1, 0, 'D' },
		{ "nullfs", 1, 0, 'U' }, { "corpus", 1, 0, 'c' },
		{ "tmp", 1, 0, 't' }, { "keep", 1, 0, 'k' },
		{ "no-unpinned", 0, 0, 'P' }, { "no-shell", 0, 0, 'S' },
		{ "requests", 0, 0, 'R' }, { "inproc", 1, 0, 'I' },
		{ "drive", 1, 0, 'V' }, { "kind", 1, 0, 'K' },
		{ "agreement", 0, 0, 'A' }, { "fuse", 1, 0, 'F' },
		{ "persist", 0, 0, 'p' }, { "startup", 1, 0, 'T' },
		{ "help", 0, 0, 'h' }, { 0 } };
	struct result res[MAX_NS];
	struct corpus c = { 0 };
	char tmp[PATH_MAX];
	long maxn = 0;
	int opt;

	bench_cmdline(argc, argv, O.cmdline, sizeof(O.cmdline));
	parse_ns("10000,100000");
	while ((opt = getopt_long(argc, argv, "n:r:l:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'n': parse_ns(optarg); break;
		case 'r': O.runs = atoi(optarg); break;
		case 'l': O.lookups = atoi(optarg); break;
		case 'C': O.ci = true; break;
		case 'D': O.daemon = optarg; break;
		case 'U': O.nullfs = optarg; break;
		case 'c': O.corpus = optarg; break;
		case 't': O.tmp = optarg; break;
		case 'k': O.keep = optarg; break;
		case 'P': O.unpinned = false; break;
		case 'S': O.shell = false; break;
		case 'R': O.requests_only = true; break;
		case 'I': O.inproc = optarg; break;
		case 'V': O.drive = optarg; break;
		case 'A': O.agree_only = true; break;
		case 'F': parse_fuse(optarg); break;
		case 'p': O.persist = true; break;
		case 'T': O.startup = optarg; break;
		case 'K':
			O.only_kind = !strcmp(optarg, "exact") ? K_EXACT :
				      !strcmp(optarg, "semantic") ? K_SEM :
				      !strcmp(optarg, "miss") ? K_MISS : -2;
			if (O.only_kind == -2)
				bench_die("--kind is exact, semantic or miss");
			break;
		default:
			fprintf(stderr, "usage: see the comment at the top of tests/bench/semcache_bench.c\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (O.ci) {
		parse_ns("2000");
		O.runs = 3;
		O.lookups = 200;
		O.warmup = 50;
	}
	if (O.persist && !nfuse)
		bench_die("--persist goes with --fuse LABEL=BUILDDIR (the build dirs to compare)");
	if (O.runs < 1 || O.runs > MAX_RUNS || O.lookups < 10)
		bench_die("--runs must be 1..%d and --lookups at least 10", MAX_RUNS);
	if (O.warmup > O.lookups)
		O.warmup = O.lookups;
	if (!O.corpus)
		O.corpus = SEMCACHE_SOURCE_ROOT "/../shared/data/corpus/qqp_questions.txt";
	for (int i = 0; i < O.nn; i++)
		if (O.ns[i] > maxn)
			maxn = O.ns[i];
	corpus_load(&c, O.corpus, 5000);
	if ((size_t)maxn > bench_variant_capacity(corpus_fillable(&c))) {
		printf("SKIP: N=%ld needs more than the %zu questions and variants of the %zu "
		       "usable unique questions of '%s' (5000 are held out)\n",
		       maxn, bench_variant_capacity(corpus_fillable(&c)),
		       corpus_fillable(&c), O.corpus);
		return 77;
	}
	if ((size_t)maxn > corpus_fillable(&c)) {
		bench_variants_check(c.q, corpus_fillable(&c), (size_t)maxn,
				     c.q + corpus_fillable(&c), c.held);
		bench_note("N=%ld: %zu corpus questions and %zu variants (pairs of them), "
			   "all distinct", maxn, corpus_fillable(&c),
			   (size_t)maxn - corpus_fillable(&c));
	}

	if (O.inproc) {
		struct result r = { .n = maxn };
		struct cache *cache;

		bench_set_cpu(0, 0);
		cache = inproc_open(O.inproc, &r.open_inproc_ms);
		printf("cache_open %.0f ms\n", r.open_inproc_ms);
		if (O.agree_only) {
			agreement(cache, &c, maxn, &r);
			nrows = 0;
			agreement_rows(0, &r);
			printf("\n| metric | N=%ld |\n|---|---|\n", maxn);
			for (int i = 0; i < nrows; i++)
				printf("| %s | %s |\n", rowname[i], cells[0][i]);
			printf("\nCommand: `%s`\n", O.cmdline);
			cache_close(cache);
			return 0;
		}
		for (int k = 0; k < K_N; k++) {
			struct lat *l = &r.inproc_only[k];

			if (O.only_kind >= 0 && k != O.only_kind)
				continue;

			inproc_warm_up(cache, &c, maxn, k);
			for (int x = 0; x < O.runs; x++)
				inproc_run(cache, &c, maxn, k, x, l);
			printf("in-process %-9s p50 %.1f µs p99 %.1f µs (hits %ld/%ld)\n",
			       kind_name[k], s50(l).med, s99(l).med, l->hits, l->asked);
		}
		cache_close(cache);
		return 0;
	}

	if (O.drive) {
		struct lat l;
		struct bench_sess s;

		bench_sess_init(&s, O.drive, "drive");
		for (int p = 0; p < P_N; p++) {
			memset(&l, 0, sizeof(l));
			warm_up(&s, &c, maxn, p, K_MISS);
			for (int x = 0; x < O.runs; x++)
				measure_run(&s, NULL, -1, &c, maxn, p, K_MISS, x, &l);
			printf("drive %s miss: p50 %.1f µs p99 %.1f µs (hits %ld/%ld)\n",
			       proto_name[p], s50(&l).med, s99(&l).med, l.hits, l.asked);
		}
		bench_sess_release(&s);
		return 0;
	}

	if (access("/dev/fuse", R_OK | W_OK)) {
		printf("SKIP: /dev/fuse is not usable (%s): no FUSE mounts here\n",
		       strerror(errno));
		return 77;
	}
	O.daemon = bench_daemon(O.daemon);
	if (!O.nullfs)
		O.nullfs = bench_sibling("nullfs");
	if (!O.nullfs || access(O.nullfs, X_OK)) {
		printf("SKIP: nullfs '%s' not found (build with meson, or pass --nullfs)\n",
		       O.nullfs ? O.nullfs : "?");
		return 77;
	}
	bench_mkdtemp(tmp, sizeof(tmp), O.tmp, "semcache-bench");
	signal(SIGPIPE, SIG_IGN);
	bench_note("temp dir %s; daemon %s; nullfs %s; %zu unique questions", tmp,
		   O.daemon, O.nullfs, c.n);

	if (O.requests_only || nfuse || O.startup) {
		int rc = nfuse ? fuse_mode(&c, tmp, maxn) :
			 O.startup ? startup_mode(O.startup, tmp) : requests_mode(&c, tmp);

		bench_rm_rf(tmp);
		return rc;
	}
	for (int i = 0; i < O.nn; i++) {
		bench_n(O.ns[i], &c, tmp, &res[i]);
		if (O.keep) {
			char from[PATH_MAX], to[PATH_MAX];

			snprintf(from, sizeof(from), "%s/store-%ld", tmp, O.ns[i]);
			snprintf(to, sizeof(to), "%s/store-%ld", O.keep, O.ns[i]);
			mkdir(O.keep, 0700);
			bench_rm_rf(to);
			if (rename(from, to))
				bench_note("cannot keep '%s' as '%s': %s", from, to, strerror(errno));
			else
				bench_note("kept the store of N=%ld in %s", O.ns[i], to);
		}
		/* print as we go: a long run still leaves its results */
		print_table(res, i + 1);
		fflush(stdout);
	}
	bench_rm_rf(tmp);
	return 0;
}
