/*
 * multihost_bench.c - several semcachefs "hosts" sharing one redis-server
 * (issue 8): change propagation, lookups/s with 3 hosts against 1, and the
 * catch-up of a fresh and of a restarted host.
 *
 * The program starts its own redis-server on a loopback port (23000-32000,
 * --save '' --appendonly no: durability is not measured here) and its own
 * daemons (build/fs/semcachefs -f -o store=redis://127.0.0.1:PORT/DB), each
 * on a temp mountpoint with its own XDG_DATA_HOME (its local state: index
 * snapshots, log). All hosts run on this one machine, so they share its
 * CPUs; the tables say so. Real questions from the QQP corpus, deduplicated
 * after the engine's own normalisation. Every client uses the fast path
 * (openat(dirfd, NAME.query, O_RDWR|O_CREAT|O_TRUNC), write, pread from 0,
 * close) and fills through NAME.response (durable once close() returns 0).
 *
 *   1. Propagation (DB 0, category "prop", hosts A and B): a fill on A, then
 *      B polled back to back with exact lookups of that question until one
 *      answers "hit"; delay = from A's close() of NAME.response returning 0
 *      to the end of the first hit on B. Its resolution is one poll (the
 *      mean poll duration is printed). Once unpinned, once with A, B, the
 *      client and redis-server all pinned to CPU 0.
 *   2. Lookups/s (DB 0, category "tput" with N entries filled through A):
 *      closed-loop clients, each cycling exact hit / semantic hit
 *      (synthetic near-paraphrase: first word and punctuation dropped) /
 *      miss (held-out question), for --secs per run: 1 host with 1 client,
 *      1 host with 3 clients (the same concurrency as 3 hosts), 3 hosts
 *      (A, B, C) with 1 client each, alternating within each run; once
 *      unpinned and once with every daemon thread, client thread and
 *      redis-server pinned to CPU 0.
 *   3. Catch-up (DB 1, category "big" filled with BIG entries by a filler
 *      host F, 4 writers): (a) a fresh host D (empty local state) starts:
 *      time to mount, to the first answered lookup, until big/.stats shows
 *      entries = BIG and index_unmerged = 0, and its RSS then; D stops
 *      cleanly (writes its snapshot); (b) F adds K entries while D is down,
 *      D restarts on its snapshot: the same times; (c) D restarts again
 *      with nothing missed. With perf(1) present (and without --no-perf),
 *      `perf record -F 499 -p PID` runs over each catch-up, the daemon
 *      stopped before exec until perf is attached, and the top symbols are
 *      printed.
 * One Markdown table of figures follows, with the command line; the
 * median over --runs runs with [min-max] where there are runs.
 *
 *   multihost_bench [--ci] [-n 10000] [--fills 500] [--big 100000]
 *                   [--down 10000] [--runs 5] [--secs 3] [--no-perf]
 *                   [--daemon PATH] [--corpus FILE] [--tmp DIR] [--keep]
 *   multihost_bench --pool [-n N] [--runs R] [--secs S]
 *       only lookups/s of exact hits (responses read from Redis) through a
 *       host with -o redis_pool=1 and one with the default pool of 4, 1/2/4
 *       client threads, unpinned, alternating run by run
 * Exit 77 (skip) without redis-server, /dev/fuse, fusermount3, the daemon
 * or the corpus. Everything it started is stopped at exit, also on failure
 * or SIGINT/SIGTERM (unmount with fusermount3 -u, then the daemons and
 * redis-server are waited for). Built by meson, not run by the test suite;
 * `meson test --benchmark` runs --ci.
 *
 * What not: no network between the hosts (loopback only), no Redis
 * Cluster, no durability (AOF off).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "textnorm.h"
#include "bench_corpus.h"
#include "bench_util.h"

#define MAX_RUNS 15
#define MAX_HOSTS 8
#define MAX_CLIENTS 8
#define HELD_OUT 3000
#define POLL_TIMEOUT_S 10.0

static struct {
	long n, fills, big, down;
	int runs;
	double secs;
	bool ci, perf, keep, pool;
	const char *daemon, *corpus, *tmp;
	char cmdline[4096];
} O = { .n = 10000, .fills = 500, .big = 100000, .down = 10000, .runs = 5,
	.secs = 3, .perf = true };

static bool in_path(const char *prog)
{
	const char *p = getenv("PATH");
	char buf[PATH_MAX];

	while (p && *p) {
		size_t n = strcspn(p, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (!access(buf, X_OK))
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

/* --------------------------------------------------------------- corpus */

static char **Q;        /* unique (after textnorm) questions */
static size_t NQ;

static void corpus_load(const char *path)
{
	struct bench_corpus bc = { 0 };

	bench_corpus_need(&bc, path);
	Q = bc.q;
	NQ = bc.n;
	if (NQ < HELD_OUT + 1000) {
		printf("SKIP: corpus '%s' has only %zu usable questions\n", path, NQ);
		exit(77);
	}
}

/* The questions that may be filled: all but the held-out tail. */
static size_t fillable(void)
{
	return NQ - HELD_OUT;
}

/*
 * Fillable question i. Past the corpus, a question is reused with a
 * " (variant K)" suffix, which keeps it distinct after normalisation; the
 * note at start says whether that happened.
 */
static const char *question(size_t i, char *buf, size_t size)
{
	size_t f = fillable();

	if (i < f)
		return Q[i];
	snprintf(buf, size, "%s (variant %zu)", Q[i % f], i / f);
	return buf;
}

static const char *held_out(size_t i)
{
	return Q[fillable() + i % HELD_OUT];
}

/* ------------------------------------------------------------ processes */

struct host {
	char name[8];
	int db;
	pid_t pid;
	bool stop_at_exec;  /* SIGSTOP before exec, for perf to attach */
	const char *opts;   /* more -o options ("" or ",name=value...") */
	char mnt[PATH_MAX], state[PATH_MAX], log[PATH_MAX];
};

static char TMP[PATH_MAX];
static int PORT;
static pid_t REDIS_PID, PERF_PID;
static struct host H[MAX_HOSTS];   /* A B C (DB 0), F D (DB 1) */
static int NH;
static bool cleaned;
static _Atomic bool STOP;          /* set at exit: client threads stop */
static _Atomic long LOOKUPS;       /* lookups done by throughput clients */
static bool HITS_ONLY;             /* --pool: clients ask exact hits only */
static const char *LA0;            /* the load average at start */

/* Unmount h and wait for its daemon (see bench_fs_stop); seconds it took
 * (a clean stop writes the index snapshots). */
static double host_stop(struct host *h)
{
	return bench_fs_stop(&h->pid, h->mnt);
}

static void perf_stop(void)
{
	if (PERF_PID > 0) {
		kill(PERF_PID, SIGINT);
		bench_reap(PERF_PID, 60);
		PERF_PID = 0;
	}
}

static void cleanup(void)
{
	if (cleaned)
		return;
	cleaned = true;
	atomic_store(&STOP, true);
	perf_stop();
	for (int i = 0; i < NH; i++)
		host_stop(&H[i]);
	if (REDIS_PID > 0) {
		kill(REDIS_PID, SIGTERM);
		bench_reap(REDIS_PID, 30);
		REDIS_PID = 0;
	}
	if (TMP[0] && !O.keep)
		bench_rm_rf(TMP);
	else if (TMP[0])
		bench_note("kept %s", TMP);
}

static void on_signal(int sig)
{
	/* not async-signal-safe in theory; a benchmark's best effort to leave
	 * no mount and no redis-server behind */
	exit(128 + sig);
}

static void redis_cli(const char *cmd, int out_fd)
{
	char port[16];
	char *argv[8] = { "redis-cli", "-p", port };
	int n = 3;
	char buf[256], *save = NULL, *tok;

	snprintf(port, sizeof(port), "%d", PORT);
	snprintf(buf, sizeof(buf), "%s", cmd);
	for (tok = strtok_r(buf, " ", &save); tok && n < 7;
	     tok = strtok_r(NULL, " ", &save))
		argv[n++] = tok;
	argv[n] = NULL;
	bench_run(argv, out_fd);
}

static bool redis_up(void)
{
	char port[16];
	char *argv[] = { "redis-cli", "-p", port, "ping", NULL };
	char out[] = "/tmp/multihost-ping-XXXXXX";
	int fd = mkstemp(out);
	char b[16] = "";
	bool up;

	snprintf(port, sizeof(port), "%d", PORT);
	if (fd < 0)
		return false;
	unlink(out);
	bench_run(argv, fd);
	up = pread(fd, b, sizeof(b) - 1, 0) > 0 && !strncmp(b, "PONG", 4);
	close(fd);
	return up;
}

/* used_memory of redis-server in bytes, -1 when unknown. */
static long long redis_used_memory(void)
{
	char path[PATH_MAX], line[256];
	long long v = -1;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/redis-info.txt", TMP);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	redis_cli("info memory", fd);
	close(fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "used_memory:%lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* From INFO commandstats: calls and server-side µs of one command. */
static void redis_cmdstat(const char *cmd, long long *calls, long long *usec)
{
	char path[PATH_MAX], line[512], key[64];
	FILE *f;
	int fd;

	*calls = *usec = -1;
	snprintf(path, sizeof(path), "%s/redis-info.txt", TMP);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return;
	redis_cli("info commandstats", fd);
	close(fd);
	f = fopen(path, "r");
	if (!f)
		return;
	snprintf(key, sizeof(key), "cmdstat_%s:calls=%%lld,usec=%%lld", cmd);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, key, calls, usec) == 2)
			break;
	fclose(f);
}

static void redis_start(void)
{
	char port[16], dir[PATH_MAX], log[PATH_MAX];
	char *argv[] = { "redis-server", "--port", port, "--bind", "127.0.0.1",
			 "--save", "", "--appendonly", "no", "--dir", dir,
			 "--logfile", log, "--daemonize", "no", NULL };
	double t0;

	snprintf(dir, sizeof(dir), "%s/redis", TMP);
	snprintf(log, sizeof(log), "%s/redis.log", TMP);
	mkdir(dir, 0700);
	for (int attempt = 0; attempt < 5; attempt++) {
		PORT = 23000 + (int)(((unsigned)getpid() * 2654435761u + (unsigned)attempt * 7919u) % 9000u);
		snprintf(port, sizeof(port), "%d", PORT);
		REDIS_PID = bench_spawn(argv, NULL, NULL, NULL);
		for (t0 = bench_now_us(); bench_now_us() - t0 < 10e6; usleep(20000)) {
			int st;

			if (waitpid(REDIS_PID, &st, WNOHANG) == REDIS_PID) {
				REDIS_PID = 0;
				break;  /* port taken? try another */
			}
			if (redis_up()) {
				bench_note("redis-server pid %d on 127.0.0.1:%d (--save '' --appendonly no)",
					   (int)REDIS_PID, PORT);
				return;
			}
		}
		if (REDIS_PID > 0) {
			kill(REDIS_PID, SIGTERM);
			bench_reap(REDIS_PID, 10);
			REDIS_PID = 0;
		}
	}
	bench_die("redis-server did not come up; log: %s", log);
}

static struct host *host_new(const char *name, int db)
{
	struct host *h;

	if (NH == MAX_HOSTS)
		bench_die("too many hosts");
	h = &H[NH++];
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->db = db;
	snprintf(h->mnt, sizeof(h->mnt), "%s/mnt-%s", TMP, name);
	snprintf(h->state, sizeof(h->state), "%s/state-%s", TMP, name);
	snprintf(h->log, sizeof(h->log), "%s/%s.log", TMP, name);
	mkdir(h->mnt, 0755);
	mkdir(h->state, 0700);
	return h;
}

/* perf record on pid until perf_stop(); the daemon waits stopped (SIGSTOP
 * before exec) until perf is attached. */
static void perf_start(pid_t pid, const char *out)
{
	char p[16];
	char *argv[] = { "perf", "record", "-q", "-F", "499", "-p", p, "-o",
			 (char *)out, NULL };

	snprintf(p, sizeof(p), "%d", (int)pid);
	PERF_PID = bench_spawn(argv, "/dev/null", NULL, NULL);
	usleep(500000); /* perf attaches within this (no readiness signal) */
}

/*
 * Start h's daemon (-f, its own XDG_DATA_HOME) and wait until it is
 * mounted; returns seconds from the exec (after perf is attached, when
 * perf_out is given) to the mount. *t0_out gets the start time (µs).
 */
static void host_child(void *arg)
{
	const struct host *h = arg;

	setenv("XDG_DATA_HOME", h->state, 1);
	if (h->stop_at_exec)
		raise(SIGSTOP);
}

static double host_start(struct host *h, const char *perf_out, double *t0_out)
{
	char opt[256];
	char *argv[] = { (char *)O.daemon, "-f", "-o", opt, h->mnt, NULL };
	double t0;
	int st;

	snprintf(opt, sizeof(opt), "store=redis://127.0.0.1:%d/%d%s", PORT, h->db,
		 h->opts ? h->opts : "");
	h->stop_at_exec = perf_out != NULL;
	h->pid = bench_spawn(argv, h->log, host_child, h);
	if (perf_out) {
		waitpid(h->pid, &st, WUNTRACED);
		perf_start(h->pid, perf_out);
		t0 = bench_now_us();
		kill(h->pid, SIGCONT);
	} else {
		t0 = bench_now_us();
	}
	if (t0_out)
		*t0_out = t0;
	bench_wait_mounted(&h->pid, h->mnt, h->log, 900);
	return (bench_now_us() - t0) / 1e6;
}

/* ----------------------------------------------------------- the client */

/* Seconds until DIR/.stats shows entries >= n and index_unmerged 0. */
static double wait_caught_up(const char *dir, long n, double t0, double timeout_s)
{
	for (;;) {
		if (bench_stat(dir, "entries") >= n && bench_stat(dir, "index_unmerged") == 0)
			return (bench_now_us() - t0) / 1e6;
		if (bench_now_us() - t0 > timeout_s * 1e6)
			bench_die("'%s' not caught up after %.0f s (entries %.0f, index_unmerged %.0f)",
				  dir, timeout_s, bench_stat(dir, "entries"),
				  bench_stat(dir, "index_unmerged"));
		usleep(20000);
	}
}

static void wait_dir(const char *dir, double timeout_s)
{
	struct stat st;
	double t0 = bench_now_us();

	while (stat(dir, &st)) {
		if (bench_now_us() - t0 > timeout_s * 1e6)
			bench_die("'%s' did not appear within %.0f s", dir, timeout_s);
		usleep(2000);
	}
}

/* ---------------------------------------------------------------- fills */

static const char *fill_question(size_t i, char *buf, size_t size, void *arg)
{
	return question(i, buf, size);
}

/* Fill questions [from, to) into dir with k writers; fills per second. */
static double fill_range(const char *dir, size_t from, size_t to, int k)
{
	return bench_fill_range(dir, from, to, k, true, fill_question, NULL);
}

/* ------------------------------------------------------- 1. propagation */

struct prop_res {
	double p50, p90, p99, max, poll_us, fill_p50;
	long n, timeouts, polls;
};

static void propagation(struct host *a, struct host *b, size_t first, long n,
			int cpu, struct prop_res *out)
{
	char da[PATH_MAX], db[PATH_MAX], qb[8400];
	double *d = calloc(n, sizeof(double)), *f = calloc(n, sizeof(double));
	double poll_total = 0;
	struct bench_sess sa, sb;
	long k = 0;

	if (!d || !f)
		bench_die("out of memory");
	snprintf(da, sizeof(da), "%s/prop", a->mnt);
	snprintf(db, sizeof(db), "%s/prop", b->mnt);
	bench_sess_init(&sa, da, "pa");
	bench_sess_init(&sb, db, "pb");
	memset(out, 0, sizeof(*out));
	bench_set_cpu(0, cpu);
	bench_set_cpu_all(a->pid, cpu);
	bench_set_cpu_all(b->pid, cpu);
	bench_set_cpu_all(REDIS_PID, cpu);
	for (long i = 0; i < n; i++) {
		const char *q = question(first + i, qb, sizeof(qb));
		double t0 = bench_now_us(), t1;
		int rc = bench_fill(&sa, q, first + i, true);

		if (rc < 0)
			bench_die("propagation fill on %s failed: %s", a->name, strerror(-rc));
		t1 = bench_now_us();
		f[i] = t1 - t0;
		for (;;) {
			double p0 = bench_now_us();

			rc = bench_lookup_fast(&sb, q, strlen(q), true);
			poll_total += bench_now_us() - p0;
			out->polls++;
			if (rc < 0)
				bench_die("propagation poll on %s failed: %s", b->name, strerror(-rc));
			if (rc == 1) {
				d[k++] = bench_now_us() - t1;
				break;
			}
			if (bench_now_us() - t1 > POLL_TIMEOUT_S * 1e6) {
				out->timeouts++;
				break;
			}
		}
	}
	bench_set_cpu(0, -1);
	bench_set_cpu_all(a->pid, -1);
	bench_set_cpu_all(b->pid, -1);
	bench_set_cpu_all(REDIS_PID, -1);
	out->n = k;
	out->p50 = bench_quantile(d, k, 0.5) / 1e3;
	out->p90 = bench_quantile(d, k, 0.9) / 1e3;
	out->p99 = bench_quantile(d, k, 0.99) / 1e3;
	out->max = k ? d[k - 1] / 1e3 : NAN;
	out->fill_p50 = bench_quantile(f, n, 0.5) / 1e3;
	out->poll_us = out->polls ? poll_total / out->polls : NAN;
	bench_sess_release(&sa);
	bench_sess_release(&sb);
	free(d);
	free(f);
}

/* ---------------------------------------------------- 2. lookups/s */

enum cfg { C_1H1C, C_1H3C, C_3H1C, C_N };
static const char *const cfg_name[C_N] = {
	"1 host, 1 client", "1 host, 3 clients", "3 hosts, 1 client each" };

struct tclient {
	pthread_t th;
	struct bench_sess s;
	int id, cpu;
	pthread_barrier_t *bar;
	_Atomic bool *stop;
	long done, hits[3], asked[3];
	double secs;
	double *lat;
	size_t nlat, caplat;
	int err;
};

static void *tput_main(void *arg)
{
	struct tclient *c = arg;
	char qb[8400], pb[8400];
	size_t i = (size_t)c->id * 1000003u;
	double t0;

	bench_set_cpu(0, c->cpu);
	pthread_barrier_wait(c->bar);
	t0 = bench_now_us();
	while (!atomic_load(c->stop) && !atomic_load(&STOP)) {
		int kind = HITS_ONLY ? 0 : (int)(i % 3), rc;
		size_t idx = ((HITS_ONLY ? i : i / 3) * 7919) % (size_t)O.n;
		const char *q;
		double l0;

		if (kind == 0) {
			q = question(idx, qb, sizeof(qb));
		} else if (kind == 1) {
			bench_paraphrase(question(idx, qb, sizeof(qb)), pb, sizeof(pb));
			q = pb;
		} else {
			q = held_out(i / 3);
		}
		l0 = bench_now_us();
		rc = bench_lookup_fast(&c->s, q, strlen(q), true);
		l0 = bench_now_us() - l0;
		if (rc < 0) {
			c->err = rc;
			break;
		}
		if (c->nlat == c->caplat) {
			c->caplat = c->caplat ? c->caplat * 2 : 65536;
			c->lat = bench_xrealloc(c->lat, c->caplat, sizeof(double));
		}
		c->lat[c->nlat++] = l0;
		c->hits[kind] += rc;
		c->asked[kind]++;
		atomic_fetch_add(&LOOKUPS, 1);
		c->done++;
		i++;
	}
	c->secs = (bench_now_us() - t0) / 1e6;
	return NULL;
}

struct tput_res {
	double agg[MAX_RUNS], per_host[MAX_RUNS], host_min[MAX_RUNS], host_max[MAX_RUNS];
	double p50[MAX_RUNS], p99[MAX_RUNS];
	long hits[3], asked[3];
	int runs;
	/* CPU µs per lookup over all configurations of this mode (in [0]) */
	double cpu_daemons, cpu_clients, cpu_redis;
};

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* One run of a configuration: clients on hosts hs[0..nc) for O.secs. */
static void tput_run(struct host **hs, int nc, int nhosts, int cpu,
		     struct tput_res *out)
{
	struct tclient c[MAX_CLIENTS];
	pthread_barrier_t bar;
	_Atomic bool stop = false;
	double agg = 0, hr[MAX_HOSTS] = { 0 }, *all;
	size_t nall = 0;
	int r = out->runs;

	pthread_barrier_init(&bar, NULL, nc + 1);
	for (int i = 0; i < nc; i++) {
		char dir[PATH_MAX], name[32];

		memset(&c[i], 0, sizeof(c[i]));
		snprintf(dir, sizeof(dir), "%s/tput", hs[i]->mnt);
		snprintf(name, sizeof(name), "t%d", i);
		bench_sess_init(&c[i].s, dir, name);
		c[i].id = i + r * MAX_CLIENTS;
		c[i].cpu = cpu;
		c[i].bar = &bar;
		c[i].stop = &stop;
		pthread_create(&c[i].th, NULL, tput_main, &c[i]);
	}
	pthread_barrier_wait(&bar);
	usleep((useconds_t)(O.secs * 1e6));
	atomic_store(&stop, true);
	for (int i = 0; i < nc; i++)
		pthread_join(c[i].th, NULL);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < nc; i++) {
		double rate;

		if (c[i].err)
			bench_die("lookup through %s failed: %s", hs[i]->mnt, strerror(-c[i].err));
		rate = c[i].done / c[i].secs;
		agg += rate;
		hr[i % nhosts] += rate;
		nall += c[i].nlat;
		for (int k = 0; k < 3; k++) {
			out->hits[k] += c[i].hits[k];
			out->asked[k] += c[i].asked[k];
		}
	}
	all = malloc((nall + 1) * sizeof(double));
	if (!all)
		bench_die("out of memory");
	nall = 0;
	for (int i = 0; i < nc; i++) {
		memcpy(all + nall, c[i].lat, c[i].nlat * sizeof(double));
		nall += c[i].nlat;
		free(c[i].lat);
		bench_sess_release(&c[i].s);
	}
	out->agg[r] = agg;
	out->per_host[r] = agg / nhosts;
	out->host_min[r] = out->host_max[r] = hr[0];
	for (int i = 1; i < nhosts; i++) {
		if (hr[i] < out->host_min[r])
			out->host_min[r] = hr[i];
		if (hr[i] > out->host_max[r])
			out->host_max[r] = hr[i];
	}
	out->p50[r] = bench_quantile(all, nall, 0.5);
	out->p99[r] = bench_quantile(all, nall, 0.99);
	out->runs++;
	free(all);
}

static void pin_all(struct host **hs, int n, int cpu)
{
	for (int i = 0; i < n; i++)
		bench_set_cpu_all(hs[i]->pid, cpu);
	bench_set_cpu_all(REDIS_PID, cpu);
}

/* The three configurations side by side, O.runs times, in rotating order. */
static void throughput(struct host *a, struct host *b, struct host *c, int cpu,
		       struct tput_res res[C_N])
{
	struct host *h3[3] = { a, b, c }, *h1[3] = { a, a, a };
	double d0, c0, r0;
	long l0;

	memset(res, 0, sizeof(struct tput_res) * C_N);
	pin_all(h3, 3, cpu);
	d0 = bench_proc_cpu_s(a->pid) + bench_proc_cpu_s(b->pid) + bench_proc_cpu_s(c->pid);
	c0 = self_cpu_s();
	r0 = bench_proc_cpu_s(REDIS_PID);
	l0 = atomic_load(&LOOKUPS);
	{ /* warm-up, not counted */
		struct tput_res tmp = { 0 };
		double s = O.secs;

		O.secs = s < 1 ? s : 1;
		tput_run(h3, 3, 3, cpu, &tmp);
		O.secs = s;
	}
	for (int r = 0; r < O.runs; r++)
		for (int j = 0; j < C_N; j++) {
			int k = (j + r) % C_N;

			if (k == C_1H1C)
				tput_run(h1, 1, 1, cpu, &res[k]);
			else if (k == C_1H3C)
				tput_run(h1, 3, 1, cpu, &res[k]);
			else
				tput_run(h3, 3, 3, cpu, &res[k]);
		}
	l0 = atomic_load(&LOOKUPS) - l0;
	if (l0 > 0) {
		res[0].cpu_daemons = (bench_proc_cpu_s(a->pid) + bench_proc_cpu_s(b->pid) +
				      bench_proc_cpu_s(c->pid) - d0) * 1e6 / l0;
		res[0].cpu_clients = (self_cpu_s() - c0) * 1e6 / l0;
		res[0].cpu_redis = (bench_proc_cpu_s(REDIS_PID) - r0) * 1e6 / l0;
	}
	pin_all(h3, 3, -1);
}

/* ------------------------------------------------------- 3. catch-up */

struct catchup {
	long entries;
	double mount_s, first_s, caught_s, stop_s;
	bool first_hit;
	long rss_kib, hwm_kib;
	double cpu_s, redis_cpu_s;     /* daemon since exec; redis-server meanwhile */
	long long evals, eval_us;      /* redis EVALSHA + EVAL calls (scan batches and more) */
	char perf[PATH_MAX];
};

/*
 * Start h (its local state as it is) on a store holding `entries` entries
 * in category big; time mount, first answered lookup (of question
 * probe), and full catch-up.
 */
static void catch_up(struct host *h, long entries, size_t probe,
		     const char *tag, struct catchup *out)
{
	char dir[PATH_MAX], qb[8400];
	const char *q;
	double t0;
	struct bench_sess s;
	int rc;

	memset(out, 0, sizeof(*out));
	out->entries = entries;
	redis_cli("config resetstat", -1);
	out->redis_cpu_s = bench_proc_cpu_s(REDIS_PID);
	if (O.perf)
		snprintf(out->perf, sizeof(out->perf), "%s/perf-%s.data", TMP, tag);
	out->mount_s = host_start(h, O.perf ? out->perf : NULL, &t0);
	snprintf(dir, sizeof(dir), "%s/big", h->mnt);
	wait_dir(dir, 60);
	bench_sess_init(&s, dir, "probe");
	q = question(probe, qb, sizeof(qb));
	while ((rc = bench_lookup_fast(&s, q, strlen(q), true)) < 0) {
		if (bench_now_us() - t0 > 600e6)
			bench_die("no lookup answered on %s: %s", h->name, strerror(-rc));
		usleep(1000);
	}
	out->first_s = (bench_now_us() - t0) / 1e6;
	out->first_hit = rc == 1;
	bench_sess_release(&s);
	out->caught_s = wait_caught_up(dir, entries, t0, 1800);
	out->cpu_s = bench_proc_cpu_s(h->pid);
	out->redis_cpu_s = bench_proc_cpu_s(REDIS_PID) - out->redis_cpu_s;
	perf_stop();
	/* scripts go by hash (EVALSHA), their source (EVAL) after NOSCRIPT */
	redis_cmdstat("evalsha", &out->evals, &out->eval_us);
	{
		long long n, us;

		redis_cmdstat("eval", &n, &us);
		if (n > 0) {
			out->evals = (out->evals > 0 ? out->evals : 0) + n;
			out->eval_us = (out->eval_us > 0 ? out->eval_us : 0) + us;
		}
	}
	out->rss_kib = bench_proc_kib(h->pid, "VmRSS");
	out->hwm_kib = bench_proc_kib(h->pid, "VmHWM");
	bench_note("%s: mount %.2f s, first lookup %.2f s (%s), caught up %.2f s, RSS %ld KiB, peak %ld KiB, CPU %.2f s (redis %.2f s, %lld EVALs, %lld µs)",
		   tag, out->mount_s, out->first_s, out->first_hit ? "hit" : "miss",
		   out->caught_s, out->rss_kib, out->hwm_kib, out->cpu_s,
	     out->redis_cpu_s, out->evals, out->eval_us);
}

/* Run argv with stdout into TMP/NAME; an open FILE on it, or NULL. */
static FILE *run_to_file(char *const argv[], const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", TMP, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return NULL;
	bench_run(argv, fd);
	close(fd);
	return fopen(path, "r");
}

/* A sample of HNSW construction (FAISS's add path). */
static bool build_sample(const char *line)
{
	return strstr(line, "fvec_inner_product") || strstr(line, "add_links_starting_from") ||
	       strstr(line, "search_neighbors_to_add") || strstr(line, "shrink_neighbor_list");
}

/*
 * Where the catch-up's time went: the top symbols by self time, and the
 * timeline split at the first and last sample of HNSW construction (the
 * engine scans the store into a buffer first, then merges it into HNSW).
 */
static void perf_summary(const struct catchup *c, const char *what)
{
	char *rep[] = { "perf", "report", "-q", "-i", (char *)c->perf, "--stdio",
			"--no-children", "--sort", "dso,symbol", "--percent-limit",
			"1", NULL };
	char *scr[] = { "perf", "script", "-i", (char *)c->perf, "-F", "time,ip,sym,dso",
			NULL };
	char line[4096];
	double t_first = -1, t_last = -1, b_first = -1, b_last = -1;
	long before = 0, during = 0, after = 0, n = 0;
	FILE *f;

	if (!c->perf[0])
		return;
	f = run_to_file(scr, "perf-script.txt");
	while (f && fgets(line, sizeof(line), f)) {
		double t = atof(line);

		if (t <= 0)
			continue;
		if (t_first < 0)
			t_first = t;
		t_last = t;
		if (build_sample(line)) {
			if (b_first < 0)
				b_first = t;
			b_last = t;
		}
	}
	if (f)
		rewind(f);
	while (f && fgets(line, sizeof(line), f)) {
		double t = atof(line);

		if (t <= 0)
			continue;
		if (b_first < 0 || t < b_first)
			before++;
		else if (t <= b_last)
			during++;
		else
			after++;
	}
	if (f)
		fclose(f);
	printf("\n%s: perf record -F 499 -p PID from exec to caught up (%.2f s).\n",
	       what, c->caught_s);
	if (b_first >= 0)
		printf("Timeline of the samples: %.2f s before the first HNSW-construction sample "
		       "(%ld samples: connect, snapshot, store scan), %.2f s of construction "
		       "(%ld samples), %.2f s after (%ld samples).\n",
		       b_first - t_first, before, b_last - b_first, during, t_last - b_last, after);
	else
		printf("No HNSW-construction samples (%ld samples over %.2f s).\n", before,
		       t_last - t_first);
	printf("\n| self | dso | symbol |\n|---:|---|---|\n");
	f = run_to_file(rep, "perf-report.txt");
	while (f && fgets(line, sizeof(line), f) && n < 15) {
		char dso[256], *sym, *end;
		double pct;
		int off = 0;

		if (sscanf(line, " %lf%% %255s %n", &pct, dso, &off) != 2 || !off)
			continue;
		sym = line + off;
		if (!strncmp(sym, "[.] ", 4) || !strncmp(sym, "[k] ", 4))
			sym += 4;
		end = sym + strlen(sym);
		while (end > sym && strchr(" \t\n-", end[-1]))
			*--end = '\0';
		if (end - sym > 100)
			strcpy(sym + 97, "...");
		printf("| %.1f%% | %s | `%s` |\n", pct, dso, sym);
		n++;
	}
	if (f)
		fclose(f);
}

/* The daemon's log lines about opening the store (timestamps). */
static void log_excerpt(const struct host *h)
{
	char line[1024];
	FILE *f = fopen(h->log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "entries") || strstr(line, "snapshot") ||
		    strstr(line, "following") || strstr(line, "warning") ||
		    strstr(line, "error"))
			fprintf(stderr, "#   %s log: %s", h->name, line);
	fclose(f);
}

/* --------------------------------------------------------------- output */

static void cell_ms(char *b, size_t n, double v)
{
	snprintf(b, n, isnan(v) ? "–" : v < 10 ? "%.2f ms" : "%.0f ms", v);
}

static void print_tput(const char *mode, struct tput_res *t)
{
	for (int k = 0; k < C_N; k++) {
		struct bench_summary a = bench_summarise(t[k].agg, t[k].runs);
		struct bench_summary p = bench_summarise(t[k].per_host, t[k].runs);
		struct bench_summary mn = bench_summarise(t[k].host_min, t[k].runs);
		struct bench_summary mx = bench_summarise(t[k].host_max, t[k].runs);
		struct bench_summary l50 = bench_summarise(t[k].p50, t[k].runs);
		struct bench_summary l99 = bench_summarise(t[k].p99, t[k].runs);

		printf("| lookups/s, %s, %s | aggregate **%.0f** [%.0f–%.0f]; per host %.0f",
		       mode, cfg_name[k], a.med, a.min, a.max, p.med);
		if (k == C_3H1C)
			printf(" (slowest %.0f, fastest %.0f)", mn.med, mx.med);
		printf("; latency p50 %.0f µs, p99 %.0f µs | hits: exact %ld/%ld, semantic %ld/%ld, miss %ld/%ld |\n",
		       l50.med, l99.med, t[k].hits[0], t[k].asked[0], t[k].hits[1],
		       t[k].asked[1], t[k].hits[2], t[k].asked[2]);
	}
	printf("| CPU per lookup, %s (all three configurations, warm-up included) | daemons %.0f µs, clients %.0f µs, redis-server %.1f µs: %.0f µs in all | /proc/PID/stat of the daemons and redis-server, getrusage of the client process, over the lookups done |\n",
	       mode, t[0].cpu_daemons, t[0].cpu_clients, t[0].cpu_redis,
	       t[0].cpu_daemons + t[0].cpu_clients + t[0].cpu_redis);
}

static void print_catchup(const char *what, const struct catchup *c)
{
	printf("| %s | mount **%.2f s**; first answered lookup %.2f s (%s); all %ld searchable in HNSW (entries = %ld, index_unmerged = 0) **%.2f s**; RSS %.0f MiB (peak %.0f MiB, %.0f B/entry); CPU: daemon %.2f s, redis-server %.2f s (%lld EVALs, %.2f s inside them) | times from exec%s; CPU from /proc/PID/stat, EVALs from INFO commandstats |\n",
	       what, c->mount_s, c->first_s, c->first_hit ? "a hit" : "a miss",
	       c->entries, c->entries, c->caught_s, c->rss_kib / 1024.0,
	       c->hwm_kib / 1024.0, c->rss_kib * 1024.0 / c->entries, c->cpu_s,
	       c->redis_cpu_s, c->evals, c->eval_us / 1e6,
	       c->perf[0] ? ", perf record attached" : "");
}

/* ----------------------------------------------------------------- main */

/* ------------------------------------------ --pool: connections per node */

static void print_rate(const double *v, int n)
{
	double t[MAX_RUNS], lo = v[0], hi = v[0];

	for (int i = 0; i < n; i++) {
		t[i] = v[i];
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	printf(" %.0f [%.0f–%.0f] |", bench_quantile(t, (size_t)n, 0.5), lo, hi);
}

/*
 * Lookups/s of clients that only hit (every response fetched from Redis)
 * through a host with one connection to Redis (-o redis_pool=1, what every
 * command queued behind before the pool) and one with the default pool,
 * both on DB 0 and the same entries, 1, 2 and 4 client threads on one
 * host, unpinned; the two hosts alternate run by run.
 */
static int pool_compare(void)
{
	static const int ncs[] = { 1, 2, 4 };
	struct host *h[2];
	struct tput_res res[2][3];
	char dir[PATH_MAX], la1[128];
	double fills;

	memset(res, 0, sizeof(res));
	h[0] = host_new("P1", 0);
	h[0]->opts = ",redis_pool=1";
	h[1] = host_new("P4", 0);
	h[1]->opts = "";
	host_start(h[0], NULL, NULL);
	snprintf(dir, sizeof(dir), "%s/tput", h[0]->mnt);
	if (mkdir(dir, 0755))
		bench_die("mkdir '%s': %s", dir, strerror(errno));
	bench_note("filling %ld entries through P1 (4 writers)", O.n);
	fills = fill_range(dir, 0, (size_t)O.n, 4);
	wait_caught_up(dir, O.n, bench_now_us(), 600);
	host_start(h[1], NULL, NULL);
	snprintf(dir, sizeof(dir), "%s/tput", h[1]->mnt);
	wait_dir(dir, 30);
	wait_caught_up(dir, O.n, bench_now_us(), 600);
	HITS_ONLY = true;
	for (int w = 0; w < 2; w++) { /* warm-up, not counted */
		struct tput_res tmp = { 0 };
		struct host *hs[4] = { h[w], h[w], h[w], h[w] };
		double secs = O.secs;

		O.secs = secs < 1 ? secs : 1;
		tput_run(hs, 4, 1, -1, &tmp);
		O.secs = secs;
	}
	for (int r = 0; r < O.runs; r++)
		for (int k = 0; k < 3; k++)
			for (int j = 0; j < 2; j++) {
				int w = (j + r) % 2;
				struct host *hs[4] = { h[w], h[w], h[w], h[w] };

				tput_run(hs, ncs[k], 1, -1, &res[w][k]);
			}
	bench_loadavg(la1, sizeof(la1), 3);
	printf("\n## semcachefs: lookups/s of exact hits through one host, its responses from redis-server on loopback\n\n");
	printf("| client threads | `-o redis_pool=1` (one connection) | pool of 4 (default) | pool 4 ÷ pool 1 | p50 µs, pool 1 / pool 4 |\n|---|---|---|---|---|\n");
	for (int k = 0; k < 3; k++) {
		double a[MAX_RUNS], b[MAX_RUNS];

		printf("| %d |", ncs[k]);
		print_rate(res[0][k].agg, O.runs);
		print_rate(res[1][k].agg, O.runs);
		for (int r = 0; r < O.runs; r++) {
			a[r] = res[0][k].agg[r];
			b[r] = res[1][k].agg[r];
		}
		printf(" %.2f | %.0f / %.0f |\n",
		       bench_quantile(b, (size_t)O.runs, 0.5) / bench_quantile(a, (size_t)O.runs, 0.5),
		       bench_quantile(res[0][k].p50, (size_t)O.runs, 0.5),
		       bench_quantile(res[1][k].p50, (size_t)O.runs, 0.5));
	}
	for (int w = 0; w < 2; w++)
		if (res[w][2].hits[0] != res[w][2].asked[0])
			bench_note("%s: %ld of %ld lookups hit", h[w]->name, res[w][2].hits[0],
				   res[w][2].asked[0]);
	printf("\n%ld entries filled at %.0f fills/s; every lookup an exact hit of a stored question (fast path through openat(); the response read from Redis on each); %d runs of %.1f s per cell, the two hosts alternating, median [min–max]; unpinned, on one %ld-CPU machine shared by both daemons, the clients and redis-server. Load average %s at start, %s at end.\n",
	       O.n, fills, O.runs, O.secs, sysconf(_SC_NPROCESSORS_ONLN), LA0, la1);
	printf("\nCommand: `%s`\n", O.cmdline);
	host_stop(h[1]);
	host_stop(h[0]);
	fflush(stdout);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: multihost_bench [--ci] [-n N] [--fills P] [--big B] [--down K]\n"
		"                       [--runs R] [--secs S] [--no-perf] [--daemon PATH]\n"
		"                       [--corpus FILE] [--tmp DIR] [--keep]\n"
		"       multihost_bench --pool [-n N] [--runs R] [--secs S] ...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ci", no_argument, 0, 'C' }, { "fills", required_argument, 0, 'P' },
		{ "big", required_argument, 0, 'B' }, { "down", required_argument, 0, 'K' },
		{ "runs", required_argument, 0, 'r' }, { "secs", required_argument, 0, 's' },
		{ "no-perf", no_argument, 0, 'X' }, { "daemon", required_argument, 0, 'D' },
		{ "corpus", required_argument, 0, 'c' }, { "tmp", required_argument, 0, 't' },
		{ "keep", no_argument, 0, 'k' }, { "help", no_argument, 0, 'h' },
		{ "pool", no_argument, 0, 'p' },
		{ 0, 0, 0, 0 }
	};
	struct prop_res prop[2];
	struct tput_res tput[2][C_N];
	struct catchup fresh, back, again;
	struct host *a, *b, *c, *f, *d;
	char dir[PATH_MAX], la0[128], la1[128];
	double fills_tput, fills_big, fills_down, bulk_b, merge_f, tstop;
	long long mem;
	size_t off = 0;
	int opt;

	bench_cmdline(argc, argv, O.cmdline, sizeof(O.cmdline));
	while ((opt = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'C': O.ci = true; break;
		case 'n': O.n = atol(optarg); break;
		case 'P': O.fills = atol(optarg); break;
		case 'B': O.big = atol(optarg); break;
		case 'K': O.down = atol(optarg); break;
		case 'r': O.runs = atoi(optarg); break;
		case 's': O.secs = atof(optarg); break;
		case 'X': O.perf = false; break;
		case 'D': O.daemon = optarg; break;
		case 'c': O.corpus = optarg; break;
		case 't': O.tmp = optarg; break;
		case 'k': O.keep = true; break;
		case 'p': O.pool = true; break;
		default: usage();
		}
	}
	if (O.ci) {
		O.n = 1000;
		O.fills = 50;
		O.big = 3000;
		O.down = 500;
		O.runs = 3;
		O.secs = 0.5;
		O.perf = false;
	}
	if (O.runs < 1 || O.runs > MAX_RUNS || O.n < 10 || O.fills < 1 ||
	    O.big < 10 || O.down < 1 || O.secs <= 0)
		usage();

	if (!in_path("redis-server") || !in_path("redis-cli")) {
		printf("SKIP: needs redis-server and redis-cli on the PATH (package redis-server)\n");
		return 77;
	}
	if (access("/dev/fuse", R_OK | W_OK)) {
		printf("SKIP: /dev/fuse is not usable (%s): no FUSE mounts here\n",
		       strerror(errno));
		return 77;
	}
	if (!in_path("fusermount3")) {
		printf("SKIP: needs fusermount3 (package fuse3)\n");
		return 77;
	}
	O.daemon = bench_daemon(O.daemon);
	if (!O.corpus)
		O.corpus = SEMCACHE_SOURCE_ROOT "/../shared/data/corpus/qqp_questions.txt";
	corpus_load(O.corpus);
	if (O.perf && !in_path("perf")) {
		bench_note("perf not found: no profile of the catch-up");
		O.perf = false;
	}
	if ((size_t)(O.big + O.down) > fillable())
		bench_note("%zu unique questions: past that, questions are reused with a \" (variant K)\" suffix",
			   fillable());

	bench_mkdtemp(TMP, sizeof(TMP), O.tmp, "multihost-bench");
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	bench_loadavg(la0, sizeof(la0), 3);
	bench_note("temp dir %s; daemon %s; %zu unique questions; load average %s",
		   TMP, O.daemon, NQ, la0);
	redis_start();
	LA0 = la0;
	if (O.pool)
		return pool_compare();

	/* hosts A, B, C on DB 0 */
	a = host_new("A", 0);
	b = host_new("B", 0);
	c = host_new("C", 0);
	host_start(a, NULL, NULL);
	host_start(b, NULL, NULL);
	snprintf(dir, sizeof(dir), "%s/prop", a->mnt);
	if (mkdir(dir, 0755))
		bench_die("mkdir '%s': %s", dir, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/tput", a->mnt);
	if (mkdir(dir, 0755))
		bench_die("mkdir '%s': %s", dir, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/prop", b->mnt);
	wait_dir(dir, 10);

	/* 1. propagation: unpinned, then all on CPU 0 */
	bench_note("1. propagation: %ld fills on A, B polled", O.fills);
	off = (size_t)O.n;
	propagation(a, b, off, O.fills, -1, &prop[0]);
	propagation(a, b, off + (size_t)O.fills, O.fills, 0, &prop[1]);
	for (int i = 0; i < 2; i++)
		bench_note("   %s: p50 %.2f ms p99 %.2f ms max %.2f ms, %ld timeouts, %.1f polls/fill of %.0f µs",
			   i ? "cpu0" : "unpinned", prop[i].p50, prop[i].p99, prop[i].max,
			   prop[i].timeouts, (double)prop[i].polls / O.fills, prop[i].poll_us);

	/* 2. lookups/s: fill tput through A, then C joins */
	bench_note("2. filling %ld entries into tput through A (4 writers)", O.n);
	snprintf(dir, sizeof(dir), "%s/tput", a->mnt);
	fills_tput = fill_range(dir, 0, (size_t)O.n, 4);
	{
		double t0 = bench_now_us();

		snprintf(dir, sizeof(dir), "%s/tput", b->mnt);
		bulk_b = wait_caught_up(dir, O.n, t0, 600);
	}
	host_start(c, NULL, NULL);
	snprintf(dir, sizeof(dir), "%s/tput", c->mnt);
	wait_dir(dir, 30);
	wait_caught_up(dir, O.n, bench_now_us(), 600);
	snprintf(dir, sizeof(dir), "%s/tput", a->mnt);
	wait_caught_up(dir, O.n, bench_now_us(), 600);
	bench_note("   %.0f fills/s; B caught up %.2f s after the last fill; lookups/s unpinned, then on CPU 0",
		   fills_tput, bulk_b);
	throughput(a, b, c, -1, tput[0]);
	throughput(a, b, c, 0, tput[1]);
	host_stop(c);
	host_stop(b);
	host_stop(a);

	/* 3. catch-up on DB 1: F fills, D joins fresh, then restarts */
	f = host_new("F", 1);
	d = host_new("D", 1);
	host_start(f, NULL, NULL);
	snprintf(dir, sizeof(dir), "%s/big", f->mnt);
	if (mkdir(dir, 0755))
		bench_die("mkdir '%s': %s", dir, strerror(errno));
	bench_note("3. filling %ld entries into big through F (4 writers)", O.big);
	fills_big = fill_range(dir, 0, (size_t)O.big, 4);
	{
		double t0 = bench_now_us();

		merge_f = wait_caught_up(dir, O.big, t0, 1800);
	}
	mem = redis_used_memory();
	bench_note("   %.0f fills/s; F merged its backlog %.2f s after the last fill; redis used_memory %lld B",
		   fills_big, merge_f, mem);
	catch_up(d, O.big, (size_t)O.big / 2, "fresh", &fresh);
	tstop = host_stop(d);
	bench_note("   D stopped cleanly in %.2f s (snapshot written)", tstop);
	fills_down = fill_range(dir, (size_t)O.big, (size_t)(O.big + O.down), 4);
	wait_caught_up(dir, O.big + O.down, bench_now_us(), 1800);
	catch_up(d, O.big + O.down, (size_t)(O.big + O.down - 1), "restart", &back);
	host_stop(d);
	catch_up(d, O.big + O.down, (size_t)(O.big + O.down - 1), "restart-nothing-missed", &again);
	log_excerpt(d);
	host_stop(d);
	host_stop(f);
	bench_loadavg(la1, sizeof(la1), 3);

	/* the table */
	printf("\n## semcachefs: hosts sharing one redis-server on loopback, all on one machine\n\n");
	printf("| figure | result | how |\n|---|---|---|\n");
	for (int i = 0; i < 2; i++) {
		char p50[32], p90[32], p99[32], mx[32];

		cell_ms(p50, sizeof(p50), prop[i].p50);
		cell_ms(p90, sizeof(p90), prop[i].p90);
		cell_ms(p99, sizeof(p99), prop[i].p99);
		cell_ms(mx, sizeof(mx), prop[i].max);
		printf("| propagation, fill on A to hit on B, %s | p50 **%s**, p90 %s, p99 **%s**, max %s; %ld/%ld seen, %ld timeouts (%.0f s) | from A's close() of NAME.response returning 0 to the end of B's first exact hit; B polled back to back (%.1f polls per fill, one poll %.0f µs = the resolution); A's fill (lookup + response) p50 %.2f ms |\n",
		       i ? "all on CPU 0" : "unpinned", p50, p90, p99, mx, prop[i].n, O.fills,
		       prop[i].timeouts, POLL_TIMEOUT_S, (double)prop[i].polls / O.fills,
		       prop[i].poll_us, prop[i].fill_p50);
	}
	printf("| bulk propagation | %ld fills on A at %.0f fills/s (4 writers): B had all of them in HNSW %.2f s after the last fill returned | B's tput/.stats polled every 20 ms |\n",
	       O.n, fills_tput, bulk_b);
	print_tput("unpinned", tput[0]);
	print_tput("all on CPU 0", tput[1]);
	printf("| filling %ld entries through F | %.0f fills/s (4 writers, fast path + NAME.response); F's own index_unmerged reached 0 %.2f s after the last fill; redis used_memory %.0f MiB | |\n",
	       O.big, fills_big, merge_f, mem / 1048576.0);
	print_catchup("catch-up (a): fresh host, empty local state", &fresh);
	printf("| D's clean stop | %.2f s (unmount to exit: merges and writes the snapshot) | |\n",
	       tstop);
	{
		char what[256];

		snprintf(what, sizeof(what),
			 "catch-up (b): restart on its snapshot after %ld entries were added while down (%.0f fills/s)",
			 O.down, fills_down);
		print_catchup(what, &back);
	}
	print_catchup("catch-up (c): restart on its snapshot, nothing missed", &again);
	printf("\nAll daemons, clients and redis-server run on one %ld-CPU machine; \"unpinned\" lets the scheduler spread them, \"all on CPU 0\" pins every daemon thread, client thread and redis-server to CPU 0 (sched_setaffinity, i.e. taskset -c 0). Lookups: fast path through openat(), 1/3 each exact hit, semantic near-paraphrase, held-out miss; %d runs of %.1f s per configuration, alternating, median [min–max]; tput has %ld entries. Load average %s at start, %s at end.\n",
	       sysconf(_SC_NPROCESSORS_ONLN), O.runs, O.secs, O.n, la0, la1);
	printf("\nCommand: `%s`\n", O.cmdline);
	if (O.perf) {
		perf_summary(&fresh, "Catch-up (a), fresh host");
		perf_summary(&back, "Catch-up (b), restart after entries were added");
		perf_summary(&again, "Catch-up (c), restart with nothing missed");
	}
	fflush(stdout);
	return 0;
}
