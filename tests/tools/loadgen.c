/*
 * loadgen.c - load for a mounted semcachefs, through the mount only.
 *
 *   loadgen prefill DIR FIRST COUNT
 *       fill items FIRST..FIRST+COUNT-1 ("load item I ..." -> its answer)
 *   loadgen run DIR CLIENTS SECONDS ITEMS DAEMON_PID [COMPACTIONS [FILLS]]
 *       CLIENTS threads for SECONDS: 70% lookups of a random prefilled item
 *       (must hit match=exact with the exact answer bytes), 20% refills of
 *       a random prefilled item with its same answer (the entry is
 *       replaced, so the entry count and the memory it needs stay steady),
 *       10% rm of the client's session files. Meanwhile
 *       samples DAEMON_PID's VmRSS, the root .stats' heap_bytes (what the
 *       daemon has allocated and not freed) and DIR/.stats'
 *       index_tombstones every 250 ms. Refills leave tombstones that the daemon compacts away
 *       once they pass a share of the index (a compaction: tombstones fall
 *       to under half), so memory is a sawtooth, and the allocator adds
 *       swings of its own. With COMPACTIONS the run goes on past SECONDS
 *       until that many compactions ended (and with FILLS until that many
 *       refills were made; at most 10 x SECONDS). A client
 *       making no progress for 30 s is a deadlock. Prints
 *         ops N lookups L fills F rms R errors E stalls S
 *         rss_kb early_max A last_max B samples K compactions C
 *         heap_kb mid_median M last_median L
 *       (early = the first two thirds of the samples, last = the last
 *       third, mid = the middle third) and exits 1 on any error or stall. LOADGEN_TRACE=1 prints
 *       every sample to stderr.
 *
 * What not: no assertions on latency.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define STALL_MS 30000

static const char *dir;
static long items;
static _Atomic int stop;
static _Atomic long n_lookups, n_fills, n_rms, n_errors;

static long long now_ms(void)
{
	return (long long)(bench_now_us() / 1000);
}

struct client {
	pthread_t th;
	int id;
	_Atomic long long last_progress_ms;
};

static int question(long i, char *q, size_t cap)
{
	return snprintf(q, cap, "load item %ld: how does subsystem %ld handle "
			"request kind %ld\n", i, i % 97, i % 13);
}

static int answer(long i, char *a, size_t cap)
{
	int n = snprintf(a, cap, "answer for load item %ld: ", i);

	for (long k = 0; k < 20 + i % 200 && (size_t)n + 2 < cap; k++)
		a[n++] = (char)('a' + (i * 7 + k) % 26);
	a[n] = '\0';
	return n;
}

static void error(const char *what, const char *path, int e)
{
	const char *n = strerrorname_np(e);

	if (++n_errors <= 20)
		fprintf(stderr, "loadgen: %s '%s': %s\n", what, path,
			n ? n : "?");
	if (n_errors >= 100)
		stop = 1;  /* the daemon is gone or broken: stop early */
}

static int fill_one(const char *name, const char *q, size_t qn,
		    const char *a, size_t an)
{
	char path[4096];
	int rc;

	snprintf(path, sizeof(path), "%s/%s.query", dir, name);
	if ((rc = bench_put(path, q, qn))) {
		error("query", path, -rc);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/%s.response", dir, name);
	if ((rc = bench_put(path, a, an)))
		error("fill", path, -rc);
	return rc;
}

static int do_prefill(long first, long count)
{
	char q[256], a[512], name[48];

	/* one session name per process: concurrent prefills must not share */
	snprintf(name, sizeof(name), "prefill%ld", first);
	for (long i = first; i < first + count; i++) {
		int qn = question(i, q, sizeof(q)), an = answer(i, a, sizeof(a));

		if (fill_one(name, q, (size_t)qn, a, (size_t)an))
			return 1;
	}
	printf("prefilled %ld\n", count);
	return 0;
}

static void *client(void *arg)
{
	struct client *c = arg;
	unsigned seed = (unsigned)c->id * 2654435761u;
	char name[32], path[4096], q[256], a[512], got[1024], st[256];
	long fills = 0;

	snprintf(name, sizeof(name), "lg%d", c->id);
	while (!stop) {
		int r = (int)(rand_r(&seed) % 100);

		if (r < 70) {
			long i = (long)(rand_r(&seed) % (unsigned)items);
			int qn = question(i, q, sizeof(q));
			int an = answer(i, a, sizeof(a));
			ssize_t n;
			int rc;

			snprintf(path, sizeof(path), "%s/%s.query", dir, name);
			if ((rc = bench_put(path, q, (size_t)qn))) {
				error("lookup", path, -rc);
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s.status", dir, name);
			n = bench_get(path, st, sizeof(st));
			if (n < 0 || strncmp(st, "hit score=1.000 ", 16) ||
			    !strstr(st, "match=exact")) {
				error("lookup status", st, EPROTO);
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s.response", dir,
				 name);
			n = bench_get(path, got, sizeof(got));
			if (n != an || memcmp(got, a, (size_t)an)) {
				error("wrong response of", q, EBADMSG);
				continue;
			}
			n_lookups++;
		} else if (r < 90) {
			/* a refill of a prefilled item with its same answer:
			 * replaces the entry, keeps the entry count steady */
			long i = (long)(rand_r(&seed) % (unsigned)items);
			int qn = question(i, q, sizeof(q));
			int an = answer(i, a, sizeof(a));

			fills++;
			if (!fill_one(name, q, (size_t)qn, a, (size_t)an))
				n_fills++;
		} else {
			static const char *const sfx[] = { "query",
				"response", "status" };

			for (int k = 0; k < 3; k++) {
				snprintf(path, sizeof(path), "%s/%s.%s", dir,
					 name, sfx[k]);
				if (unlink(path) && errno != ENOENT)
					error("rm", path, errno);
			}
			n_rms++;
		}
		c->last_progress_ms = now_ms();
	}
	return NULL;
}

/* The number after "KEY: " in the .stats file DIR/SUB, or -1. */
static long stats_field(const char *sub, const char *key)
{
	char path[4096], buf[8192], pat[64];
	const char *at;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	snprintf(pat, sizeof(pat), "\n%s: ", key);
	n = bench_get(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	at = strstr(buf, pat);
	return at ? atol(at + strlen(pat)) : -1;
}

/* DIR/.stats' index_tombstones, or -1. */
static long tombstones(void)
{
	return stats_field(".stats", "index_tombstones");
}

/* The root's heap_bytes (what the daemon has allocated and not freed) in
 * KiB, or -1. */
static long heap_kib(void)
{
	long b = stats_field("../.stats", "heap_bytes");

	return b < 0 ? -1 : b / 1024;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* the median of v[from..to) (sorts that part) */
static long median(long *v, long from, long to)
{
	if (to <= from)
		return 0;
	qsort(v + from, (size_t)(to - from), sizeof(*v), cmp_long);
	return v[from + (to - from) / 2];
}

static int do_run(int nclients, long secs, long pid, int want_compactions,
		  long min_fills)
{
	long max_secs = want_compactions || min_fills ? secs * 10 : secs;
	struct client *cs = calloc((size_t)nclients, sizeof(*cs));
	long *rss = calloc((size_t)(max_secs * 4 + 8), sizeof(long));
	long *heap = calloc((size_t)(max_secs * 4 + 8), sizeof(long));
	long nrss = 0, stalls = 0, early_max = 0, last_max = 0, prev_tomb = -1;
	long mid_heap, last_heap;
	int compactions = 0;
	long long t0 = now_ms(), end = t0 + secs * 1000;
	long long hard_end = t0 + max_secs * 1000;
	struct timespec tick = { 0, 250 * 1000000L };

	if (!cs || !rss || !heap)
		return 2;
	for (int i = 0; i < nclients; i++) {
		cs[i].id = i;
		cs[i].last_progress_ms = t0;
		pthread_create(&cs[i].th, NULL, client, &cs[i]);
	}
	while (now_ms() < end ||
	       ((compactions < want_compactions || n_fills < min_fills) &&
		now_ms() < hard_end)) {
		long long t = now_ms();
		long tomb, kib;

		nanosleep(&tick, NULL);  /* the sampling period, not a wait */
		kib = bench_proc_kib((pid_t)pid, "VmRSS");
		if (nrss < max_secs * 4 + 8) {
			heap[nrss] = heap_kib();
			rss[nrss++] = kib;
		}
		tomb = tombstones();
		if (tomb >= 0 && prev_tomb >= 64 && tomb * 2 < prev_tomb)
			compactions++;
		if (tomb >= 0)
			prev_tomb = tomb;
		if (getenv("LOADGEN_TRACE"))
			fprintf(stderr, "sample %ld ms rss_kb %ld heap_kb %ld "
				"threads %ld tombstones %ld compactions %d\n",
				(long)(now_ms() - t0), kib, heap[nrss - 1],
				bench_proc_kib((pid_t)pid, "Threads"), tomb,
				compactions);
		for (int i = 0; i < nclients; i++)
			if (t - cs[i].last_progress_ms > STALL_MS) {
				fprintf(stderr, "loadgen: client %d made no "
					"progress for %d s: deadlock?\n", i,
					STALL_MS / 1000);
				stalls++;
				cs[i].last_progress_ms = t;
			}
		if (stalls)
			break;
	}
	stop = 1;
	for (int i = 0; i < nclients && !stalls; i++)
		pthread_join(cs[i].th, NULL);
	for (long k = 0; k < nrss; k++) {
		long *m = k < nrss - nrss / 3 ? &early_max : &last_max;

		if (rss[k] > *m)
			*m = rss[k];
	}
	printf("ops %ld lookups %ld fills %ld rms %ld errors %ld stalls %ld\n",
	       n_lookups + n_fills + n_rms, (long)n_lookups, (long)n_fills,
	       (long)n_rms, (long)n_errors, stalls);
	mid_heap = median(heap, nrss / 3, nrss - nrss / 3);
	last_heap = median(heap, nrss - nrss / 3, nrss);
	printf("rss_kb early_max %ld last_max %ld samples %ld compactions %d\n",
	       early_max, last_max, nrss, compactions);
	printf("heap_kb mid_median %ld last_median %ld\n", mid_heap, last_heap);
	fflush(stdout);
	if (stalls)
		_exit(1);  /* stuck threads cannot be joined */
	free(cs);
	free(rss);
	free(heap);
	return n_errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";

	if (!strcmp(op, "prefill") && argc == 5) {
		dir = argv[2];
		return do_prefill(atol(argv[3]), atol(argv[4]));
	}
	if (!strcmp(op, "run") && argc >= 7 && argc <= 9) {
		dir = argv[2];
		items = atol(argv[5]);
		if (items <= 0)
			return 2;
		return do_run(atoi(argv[3]), atol(argv[4]), atol(argv[6]),
			      argc >= 8 ? atoi(argv[7]) : 0,
			      argc == 9 ? atol(argv[8]) : 0);
	}
	fprintf(stderr, "usage: loadgen prefill DIR FIRST COUNT\n"
		"       loadgen run DIR CLIENTS SECONDS ITEMS DAEMON_PID "
		"[COMPACTIONS [FILLS]]\n");
	return 2;
}
