/*
 * replay_bench: the load-adaptive policy (issue 7) against real arrival times.
 *
 * Replays the arrival times of ../shared/data/traces/azure_llm_{conv,code}.csv
 * (one hour of Azure LLM inference traffic each), time-compressed by
 * --compress (default 60: an hour of trace takes a minute), with questions
 * from ../shared/data/corpus/qqp_questions.txt, through a real semcachefs
 * mount, in front of a simulated model. Every trace is replayed twice in one
 * invocation, each time on a fresh store and mount: adaptation off
 * (`model: sim`, threshold, ttl) and on (the same plus `adaptive: {...}`).
 * Same seed, same arrivals, same questions.
 *
 * Questions. A pool of --pool slots ranked by a Zipf(--zipf) popularity (in
 * seeded random order); each request draws a rank. A share --pair-share of
 * the slots are labelled Quora pairs from ../shared/data/pairs/qqp_val.csv
 * (question1, question2, is_duplicate; 37% duplicates), the rest distinct
 * questions of the corpus. For a pair slot, with probability --partner the
 * request asks question2 (a real near-duplicate or a real look-alike). Else
 * it asks the slot's question: with probability --verbatim as is, otherwise
 * a light mutation of it, one of four with equal odds:
 *   lower  ASCII-lowercase the whole question (the daemon's exact path
 *          normalises case, so this is an exact repeat to the cache);
 *   punct  drop the trailing '?', '.' or '!' (or add a '?' if none);
 *   drop   drop one word chosen uniformly among words 2..n (n >= 4 words,
 *          else punct);
 *   swap   swap two adjacent words chosen uniformly (n >= 3, else punct).
 * The answer the simulated model "generates" is "A#<slot>/<side> <question>"
 * padded with 4 bytes per GeneratedTokens, so a served hit tells which
 * question it was generated for: the same question (right), the other
 * question of a labelled pair (right if is_duplicate, else wrong), or another
 * slot (counted wrong; a slight over-count, as two corpus questions can be
 * real paraphrases). That precision is the quality measure next to the
 * hit-score distribution.
 *
 * The simulated model is a discrete-event simulation in trace (simulated)
 * time: --servers K identical servers, one FIFO queue, service time =
 * --base-ms + per_token_ms * GeneratedTokens of the trace row. per_token_ms
 * is derived so that the whole trace, with no cache in front, would keep the
 * servers busy a fraction --rho of the time (printed). Its load, the busy
 * fraction of the K servers over the last --window seconds of trace time
 * (0..1), is written to MOUNT/.load/sim every --report-ms of wall time. A
 * request's model latency is queue wait + service.
 *
 * The cache side is real: each arrival is a fast-path lookup on the mount
 * (open NAME.query O_RDWR, write, pread from 0: status line + answer). A miss
 * goes to the simulated model; when the model finishes (in simulated time,
 * i.e. at the matching wall time) NAME.response is filled. Wall time follows
 * simulated time / compress; if the client falls behind it goes as fast as
 * it can and the lag is reported.
 *
 * Time-scaled policy: ttl and ttl_max are given in trace seconds and written
 * as trace seconds / compress (at least 1 s); adaptive.rate is per wall
 * second, as the daemon measures it.
 *
 * Not run by the test suite. Skips (exit 77) when ../shared is absent.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#ifndef SEMCACHE_SOURCE_ROOT
#define SEMCACHE_SOURCE_ROOT "."
#endif

/* ------------------------------------------------------------ options */

static struct {
	const char *data;      /* ../shared/data */
	const char *daemon;
	const char *tmp;
	const char *traces;    /* "conv,code" */
	double duration;       /* trace seconds to replay; 0 = all */
	double compress;
	int servers;
	double base_ms;
	double rho;
	double window;         /* trace seconds */
	double report_ms;      /* wall ms */
	int pool;
	double zipf;
	double verbatim;
	double pair_share;     /* share of pool slots that are labelled QQP pairs */
	double partner;        /* chance a pair slot's request asks the partner */
	double threshold;
	double ttl;            /* trace seconds */
	double tmin;
	double ttl_max;        /* trace seconds */
	double high, low, rate;
	unsigned long seed;
	bool quick;
} O = {
	.traces = "conv,code",
	.compress = 60,
	.servers = 8,
	.base_ms = 100,
	.rho = 1.4,
	.window = 10,
	.report_ms = 100,
	.pool = 20000,
	.zipf = 0.9,
	.verbatim = 0.5,
	.pair_share = 0.3,
	.partner = 0.3,
	.threshold = 0.9,
	.ttl = 900,
	.tmin = 0.8,
	.ttl_max = 3600,
	.high = 0.8,
	.low = 0.5,
	.rate = 2,
	.seed = 7,
};

/* bench_rng's state: seeded per trace, so every run sees the same requests */
static uint64_t rng_state;

/* ------------------------------------------------------------ inputs */

struct row {
	double t;      /* trace seconds from the first row */
	int gen;       /* GeneratedTokens */
};

struct trace {
	const char *name;
	struct row *r;
	size_t n;
	double span;
};

static double parse_ts(const char *s)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi;
	double sec;

	if (sscanf(s, "%d-%d-%d %d:%d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6)
		return NAN;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return (double)timegm(&tm) + sec;
}

static void load_trace(struct trace *tr, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t cap = 0;
	double t0 = NAN;

	if (!f)
		bench_die("%s: %s", path, strerror(errno));
	tr->n = 0;
	tr->r = NULL;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ','), *c2;
		double t;

		if (!c1 || !(c2 = strchr(c1 + 1, ',')))
			continue;
		*c1 = '\0';
		t = parse_ts(line);
		if (isnan(t))
			continue; /* header */
		if (isnan(t0))
			t0 = t;
		if (O.duration > 0 && t - t0 > O.duration)
			break;
		if (tr->n == cap) {
			cap = cap ? 2 * cap : 4096;
			tr->r = bench_xrealloc(tr->r, cap, sizeof(*tr->r));
		}
		tr->r[tr->n].t = t - t0;
		tr->r[tr->n].gen = atoi(c2 + 1);
		if (tr->n && tr->r[tr->n].t < tr->r[tr->n - 1].t)
			tr->r[tr->n].t = tr->r[tr->n - 1].t; /* keep arrivals ordered */
		tr->n++;
	}
	fclose(f);
	if (!tr->n)
		bench_die("%s: no rows", path);
	tr->span = tr->r[tr->n - 1].t;
}

static char **corpus;
static size_t ncorpus;

static void load_corpus(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, acap = 0;
	ssize_t n;

	if (!f)
		bench_die("%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		int words = 0;
		for (char *p = line; *p; p++)
			if (!isspace((unsigned char)*p) && (p == line || isspace((unsigned char)p[-1])))
				words++;
		if (words < 3 || n > 400)
			continue;
		if (ncorpus == acap) {
			acap = acap ? 2 * acap : 65536;
			corpus = bench_xrealloc(corpus, acap, sizeof(*corpus));
		}
		corpus[ncorpus++] = strdup(line);
	}
	free(line);
	fclose(f);
}

/* ------------------------------------------------------------ workload */

enum { V_VERBATIM, V_LOWER, V_PUNCT, V_DROP, V_SWAP, V_PARTNER, V_N };

/* A pool question; pair slots also have the other question of a labelled
 * QQP pair (label 1: duplicate, 0: not), asked as the V_PARTNER variant. */
struct slot {
	const char *q[2];
	int label;      /* -1: no partner */
};

struct req {
	int pool_idx;
	int side;       /* 0: the pool question (maybe mutated), 1: its partner */
	int variant;
	char *text;
	bool servable;  /* an earlier request of this slot could rightly answer it */
};

static struct slot *pairs;
static size_t npairs;

/* One CSV field (RFC 4180 quoting) from *p; advances *p past the comma. */
static char *csv_field(char **p)
{
	char *s = *p, *out = s, *w = s;

	if (*s == '"') {
		for (s++; *s; s++) {
			if (*s == '"' && s[1] == '"')
				*w++ = '"', s++;
			else if (*s == '"') {
				s++;
				break;
			} else
				*w++ = *s;
		}
	} else {
		while (*s && *s != ',' && *s != '\n' && *s != '\r')
			*w++ = *s++;
	}
	while (*s && *s != ',')
		s++;
	if (*s == ',')
		s++;
	*w = '\0';
	*p = s;
	return out;
}

static void load_pairs(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, acap = 0;

	if (!f)
		bench_die("%s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		char *p = line, *a = csv_field(&p), *b = csv_field(&p), *l = csv_field(&p);

		if (!strcmp(l, "is_duplicate") || !*a || !*b || (*l != '0' && *l != '1'))
			continue;
		if (npairs == acap) {
			acap = acap ? 2 * acap : 16384;
			pairs = bench_xrealloc(pairs, acap, sizeof(*pairs));
		}
		pairs[npairs++] = (struct slot){ { strdup(a), strdup(b) }, *l - '0' };
	}
	free(line);
	fclose(f);
}

static char *mutate(const char *q, int *variant)
{
	char *w[128], *copy = strdup(q), *s, *out;
	int n = 0;
	size_t len = strlen(q);

	out = malloc(len + 4);
	for (s = strtok(copy, " \t"); s && n < 128; s = strtok(NULL, " \t"))
		w[n++] = s;
	if (*variant == V_DROP && n < 4)
		*variant = V_PUNCT;
	if (*variant == V_SWAP && n < 3)
		*variant = V_PUNCT;
	switch (*variant) {
	case V_LOWER:
		for (size_t i = 0; i <= len; i++)
			out[i] = (char)tolower((unsigned char)q[i]);
		break;
	case V_PUNCT:
		memcpy(out, q, len + 1);
		if (len && strchr("?.!", out[len - 1]))
			out[len - 1] = '\0';
		else
			strcpy(out + len, "?");
		break;
	case V_DROP:
	case V_SWAP: {
		int k = *variant == V_DROP ? 1 + (int)(bench_rng(&rng_state) % (uint64_t)(n - 1))
					   : (int)(bench_rng(&rng_state) % (uint64_t)(n - 1));
		if (*variant == V_SWAP) {
			char *t = w[k];
			w[k] = w[k + 1];
			w[k + 1] = t;
		}
		out[0] = '\0';
		for (int i = 0, first = 1; i < n; i++) {
			if (*variant == V_DROP && i == k)
				continue;
			if (!first)
				strcat(out, " ");
			strcat(out, w[i]);
			first = 0;
		}
		break;
	}
	default:
		memcpy(out, q, len + 1);
	}
	free(copy);
	return out;
}

/* Same seed, same requests for every run of a trace. */
static struct req *make_requests(size_t n, struct slot **slots_out, double *servable_share)
{
	size_t pool = (size_t)O.pool, np = (size_t)(O.pair_share * (double)pool + 0.5);
	size_t *perm = malloc((ncorpus > npairs ? ncorpus : npairs) * sizeof(size_t));
	struct slot *slot = calloc(pool, sizeof(*slot));
	double *cdf = malloc(pool * sizeof(double)), sum = 0;
	struct req *rq = calloc(n, sizeof(*rq));
	bool (*seen)[2] = calloc(pool, sizeof(*seen));
	size_t servable = 0;

	if (np > npairs)
		np = npairs;
	if (pool - np > ncorpus)
		pool = ncorpus + np;
	rng_state = O.seed * 0x9E3779B97F4A7C15ULL + 1;
	/* np random labelled pairs and pool - np random corpus questions ... */
	for (size_t i = 0; i < npairs; i++)
		perm[i] = i;
	for (size_t i = 0; i < np; i++) {
		size_t j = i + bench_rng(&rng_state) % (npairs - i), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
		slot[i] = pairs[perm[i]];
	}
	for (size_t i = 0; i < ncorpus; i++)
		perm[i] = i;
	for (size_t i = 0; i < pool - np; i++) {
		size_t j = i + bench_rng(&rng_state) % (ncorpus - i), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
		slot[np + i] = (struct slot){ { corpus[perm[i]], NULL }, -1 };
	}
	/* ... in random popularity order */
	for (size_t i = pool - 1; i > 0; i--) {
		size_t j = bench_rng(&rng_state) % (i + 1);
		struct slot t = slot[i];
		slot[i] = slot[j];
		slot[j] = t;
	}
	for (size_t k = 0; k < pool; k++)
		cdf[k] = (sum += 1.0 / pow((double)k + 1, O.zipf));
	for (size_t i = 0; i < n; i++) {
		double u = bench_rng_unit(&rng_state) * sum;
		size_t lo = 0, hi = pool - 1;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		struct req *r = &rq[i];
		const struct slot *sl = &slot[lo];

		r->pool_idx = (int)lo;
		if (sl->label >= 0 && bench_rng_unit(&rng_state) < O.partner) {
			r->side = 1;
			r->variant = V_PARTNER;
			r->text = strdup(sl->q[1]);
		} else {
			r->variant = bench_rng_unit(&rng_state) < O.verbatim ? V_VERBATIM : 1 + (int)(bench_rng(&rng_state) % 4);
			r->text = mutate(sl->q[0], &r->variant);
		}
		r->servable = seen[lo][r->side] || (sl->label == 1 && seen[lo][!r->side]);
		servable += r->servable;
		seen[lo][r->side] = true;
	}
	*servable_share = (double)servable / (double)n;
	*slots_out = slot;
	free(perm);
	free(cdf);
	free(seen);
	return rq;
}

/* ------------------------------------------------------------ daemon */

static pid_t daemon_start(const char *store, const char *mnt, const char *log)
{
	char opt[PATH_MAX + 16];
	char *argv[] = { (char *)O.daemon, "-f", "-o", opt, (char *)mnt, NULL };
	pid_t pid;

	snprintf(opt, sizeof(opt), "store=%s", store);
	pid = bench_spawn(argv, log, NULL, NULL);
	bench_wait_mounted(&pid, mnt, log, 30);
	return pid;
}

/* A .stats text (in a static buffer), or NULL. */
static char *read_file(const char *path)
{
	static char buf[65536];

	return bench_get(path, buf, sizeof(buf)) < 0 ? NULL : buf;
}

/* ------------------------------------------------------------ one run */

struct result {
	size_t requests, to_model, hits, exact, semantic, fill_fail, errors;
	size_t hit_same, hit_dup, hit_nondup, hit_other; /* what a hit served (see ROWs) */
	size_t hot, hot_to_model;  /* requests that arrived at load >= high in the run without adaptation */
	size_t hits_by_variant[V_N], reqs_by_variant[V_N];
	double hit_min, hit_p10, hit_p50;
	double wait_p50, wait_p95, lat_p50, lat_p95;
	double high_s, sim_s, load_mean;
	double lag_max, lag_late;         /* wall s; share of requests > 100 ms late */
	double wall_s;
	double thr_min, adapted_share;    /* from .stats samples during the run */
	double st_hits, st_misses, st_exact, st_semantic, st_eff, st_fills, st_expired;
	double lookup_us_p50;
};

/* fills pending: a binary min-heap on completion time */
struct fill { double t; size_t i; };
static struct fill *heap;
static size_t nheap;

static void heap_push(double t, size_t i)
{
	size_t k = nheap++;

	heap[k] = (struct fill){ t, i };
	while (k && heap[(k - 1) / 2].t > heap[k].t) {
		struct fill x = heap[k];
		heap[k] = heap[(k - 1) / 2];
		heap[(k - 1) / 2] = x;
		k = (k - 1) / 2;
	}
}

static struct fill heap_pop(void)
{
	struct fill top = heap[0];
	size_t k = 0;

	heap[0] = heap[--nheap];
	for (;;) {
		size_t l = 2 * k + 1, r = l + 1, m = k;
		if (l < nheap && heap[l].t < heap[m].t)
			m = l;
		if (r < nheap && heap[r].t < heap[m].t)
			m = r;
		if (m == k)
			break;
		struct fill x = heap[k];
		heap[k] = heap[m];
		heap[m] = x;
		k = m;
	}
	return top;
}

#define BUCKET 0.1 /* seconds of trace time per busy-time bucket */

static void run_one(const struct trace *tr, const struct req *rq, const struct slot *slot, bool *hot,
		    double per_tok, bool adaptive, const char *tmp, struct result *R)
{
	char store[PATH_MAX], mnt[PATH_MAX], log[PATH_MAX], cat[PATH_MAX], path[PATH_MAX + 64];
	char pol[1024], ans_buf[16384], rd[1 << 16];
	size_t n = tr->n;
	size_t nb = (size_t)(tr->span / BUCKET) + 16, nsc = 0, nwait = 0, nthr = 0, nadapt = 0;
	double *busy = calloc(nb, sizeof(double));
	double *free_at = calloc((size_t)O.servers, sizeof(double));
	double *scores = malloc(n * sizeof(double));
	double *waits = malloc(n * sizeof(double)), *lats = malloc(n * sizeof(double));
	double tick = O.report_ms / 1000.0 * O.compress; /* trace seconds per report */
	double next_tick = 0, last_tick = 0, last_load = 0, load_sum = 0;
	double t0, ttl_w = fmax(1, round(O.ttl / O.compress)), ttlmax_w = fmax(1, round(O.ttl_max / O.compress));
	size_t ai = 0, late = 0, ticks = 0;
	pid_t pid;

	memset(R, 0, sizeof(*R));
	R->thr_min = NAN;
	heap = malloc(n * sizeof(*heap));
	nheap = 0;
	snprintf(store, sizeof(store), "%s/%s-%s-store", tmp, tr->name, adaptive ? "on" : "off");
	snprintf(mnt, sizeof(mnt), "%s/%s-%s-mnt", tmp, tr->name, adaptive ? "on" : "off");
	snprintf(log, sizeof(log), "%s/%s-%s.log", tmp, tr->name, adaptive ? "on" : "off");
	if (mkdir(mnt, 0700))
		bench_die("mkdir %s: %s", mnt, strerror(errno));
	pid = daemon_start(store, mnt, log);
	snprintf(cat, sizeof(cat), "%s/%s", mnt, tr->name);
	if (mkdir(cat, 0755))
		bench_die("mkdir %s: %s", cat, strerror(errno));
	int pl = snprintf(pol, sizeof(pol), "model: sim\nthreshold: %g\nttl: %.0fs\n", O.threshold, ttl_w);
	if (adaptive)
		pl += snprintf(pol + pl, sizeof(pol) - (size_t)pl,
			       "adaptive: {enabled: true, threshold_min: %g, ttl_max: %.0fs, high: %g, low: %g, rate: %g}\n",
			       O.tmin, ttlmax_w, O.high, O.low, O.rate);
	snprintf(path, sizeof(path), "%s/policy.yaml", cat);
	if (bench_put(path, pol, (size_t)pl))
		bench_die("writing %s failed: %s (policy: %s)", path, strerror(errno), pol);
	snprintf(path, sizeof(path), "%s/.load/sim", mnt);
	if (bench_put(path, "0", 1))
		bench_die("writing %s failed", path);

	t0 = bench_now_us() / 1e6;
	for (;;) {
		double t_arr = ai < n ? tr->r[ai].t : INFINITY;
		double t_fill = nheap ? heap[0].t : INFINITY;
		double t = fmin(t_arr, fmin(t_fill, next_tick));
		int kind = t == t_fill ? 1 : t == t_arr ? 2 : 0; /* fills first */

		if (ai >= n && !nheap)
			break;
		/* pace: wall time follows trace time / compress */
		double target = t0 + t / O.compress, w = bench_now_us() / 1e6;
		if (target > w) {
			struct timespec ts = { .tv_sec = (time_t)(target - w),
					       .tv_nsec = (long)(fmod(target - w, 1.0) * 1e9) };
			nanosleep(&ts, NULL);
		} else if (kind == 2) {
			if (w - target > R->lag_max)
				R->lag_max = w - target;
			if (w - target > 0.1)
				late++;
		}
		if (kind == 0) { /* report the model's load */
			double lo = t - O.window, b = 0;
			for (size_t k = lo > 0 ? (size_t)(lo / BUCKET) : 0; k < nb && k * BUCKET < t; k++) {
				double s = k * BUCKET, e = s + BUCKET;
				double part = (fmin(e, t) - fmax(s, lo)) / BUCKET;
				if (part > 0)
					b += busy[k] * part;
			}
			double win = fmin(O.window, fmax(t, BUCKET));
			double load = fmin(1, b / ((double)O.servers * win));
			char s[32];
			int sl = snprintf(s, sizeof(s), "%.3f", load);

			if (t > 0 && last_load >= O.high && t <= tr->span)
				R->high_s += t - last_tick;
			if (t <= tr->span) {
				load_sum += load;
				ticks++;
			}
			last_load = load;
			last_tick = t;
			snprintf(path, sizeof(path), "%s/.load/sim", mnt);
			if (bench_put(path, s, (size_t)sl))
				R->errors++;
			if (ticks % 5 == 0) { /* sample the effective threshold */
				snprintf(path, sizeof(path), "%s/.stats", cat);
				char *st = read_file(path);
				double eff = st ? bench_stat_num(st, "effective_threshold") : NAN;
				if (!isnan(eff)) {
					nthr++;
					if (eff < O.threshold - 1e-9)
						nadapt++;
					if (isnan(R->thr_min) || eff < R->thr_min)
						R->thr_min = eff;
				}
			}
			next_tick += tick;
			if (ai >= n)
				next_tick = INFINITY; /* only fills left */
			continue;
		}
		if (kind == 1) { /* the model finished: fill */
			struct fill f = heap_pop();
			const struct req *q = &rq[f.i];
			int al = snprintf(ans_buf, sizeof(ans_buf), "A#%d/%d %s\n", q->pool_idx, q->side, q->text);
			int pad = 4 * tr->r[f.i].gen;

			if (al + pad > (int)sizeof(ans_buf))
				pad = (int)sizeof(ans_buf) - al;
			memset(ans_buf + al, 'x', (size_t)pad);
			snprintf(path, sizeof(path), "%s/r%zu.response", cat, f.i);
			if (bench_put(path, ans_buf, (size_t)(al + pad)))
				R->fill_fail++;
			snprintf(path, sizeof(path), "%s/r%zu.query", cat, f.i);
			unlink(path);
			continue;
		}
		/* an arrival: a fast-path lookup */
		size_t i = ai++;
		const struct req *q = &rq[i];
		int fd;
		ssize_t got;

		R->requests++;
		R->reqs_by_variant[q->variant]++;
		if (!adaptive)
			hot[i] = last_load >= O.high;
		R->hot += hot[i];
		snprintf(path, sizeof(path), "%s/r%zu.query", cat, i);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, q->text, strlen(q->text)) != (ssize_t)strlen(q->text) ||
		    (got = pread(fd, rd, sizeof(rd) - 1, 0)) < 0) {
			R->errors++;
			got = 0;
		}
		if (fd >= 0)
			close(fd);
		rd[got] = '\0';
		if (!strncmp(rd, "hit ", 4)) {
			char *sc = strstr(rd, "score="), *nl = strchr(rd, '\n');

			R->hits++;
			R->hits_by_variant[q->variant]++;
			scores[nsc++] = sc ? strtod(sc + 6, NULL) : NAN;
			if (strstr(rd, "match=exact"))
				R->exact++;
			else
				R->semantic++;
			int idx = -1, side = -1;
			if (!nl || sscanf(nl + 1, "A#%d/%d", &idx, &side) != 2 || idx != q->pool_idx)
				R->hit_other++;
			else if (side == q->side)
				R->hit_same++;
			else if (slot[idx].label == 1)
				R->hit_dup++;
			else
				R->hit_nondup++;
			unlink(path);
			continue;
		}
		/* miss (or pending/error): the model is called */
		R->to_model++;
		R->hot_to_model += hot[i];
		int s = 0;
		for (int k = 1; k < O.servers; k++)
			if (free_at[k] < free_at[s])
				s = k;
		double svc = O.base_ms / 1000.0 + per_tok * tr->r[i].gen;
		double start = fmax(t, free_at[s]), end = start + svc;
		free_at[s] = end;
		waits[nwait] = start - t;
		lats[nwait++] = end - t;
		for (double a = start; a < end;) { /* account busy time per bucket */
			size_t k = (size_t)(a / BUCKET);
			if ((double)(k + 1) * BUCKET <= a)
				k++; /* a sits on a boundary that rounded down */
			double e = fmin(end, (double)(k + 1) * BUCKET);
			if (k >= nb) {
				size_t nn = k * 2 + 16;
				busy = bench_xrealloc(busy, nn, sizeof(double));
				memset(busy + nb, 0, (nn - nb) * sizeof(double));
				nb = nn;
			}
			busy[k] += e - a;
			a = e;
		}
		heap_push(end, i);
	}
	R->wall_s = bench_now_us() / 1e6 - t0;
	R->sim_s = tr->span;
	R->load_mean = ticks ? load_sum / (double)ticks : 0;
	R->lag_late = (double)late / (double)n;
	R->adapted_share = nthr ? (double)nadapt / (double)nthr : NAN;
	{
		double *tmpv = malloc((nsc + 1) * sizeof(double));
		memcpy(tmpv, scores, nsc * sizeof(double));
		R->hit_min = nsc ? bench_quantile(tmpv, nsc, 0) : NAN;
		R->hit_p10 = bench_quantile(tmpv, nsc, 0.10);
		R->hit_p50 = bench_quantile(tmpv, nsc, 0.50);
		free(tmpv);
	}
	R->wait_p50 = bench_quantile(waits, nwait, 0.5);
	R->wait_p95 = bench_quantile(waits, nwait, 0.95);
	R->lat_p50 = bench_quantile(lats, nwait, 0.5);
	R->lat_p95 = bench_quantile(lats, nwait, 0.95);
	snprintf(path, sizeof(path), "%s/.stats", cat);
	char *st = read_file(path);
	if (st) {
		R->st_hits = bench_stat_num(st, "hits");
		R->st_misses = bench_stat_num(st, "misses");
		R->st_exact = bench_stat_num(st, "exact_hits");
		R->st_semantic = bench_stat_num(st, "semantic_hits");
		R->st_eff = bench_stat_num(st, "effective_threshold");
		R->st_fills = bench_stat_num(st, "fills");
		R->st_expired = bench_stat_num(st, "expired");
		R->lookup_us_p50 = bench_stat_num(st, "lookup_us_p50");
	}
	bench_fs_stop(&pid, mnt);
	rmdir(mnt);
	if (!R->errors && !R->fill_fail)
		unlink(log);
	else
		fprintf(stderr, "    errors: the daemon's log is kept: %s\n", log);
	bench_rm_rf(store);
	free(busy);
	free(free_at);
	free(scores);
	free(waits);
	free(lats);
	free(heap);
}

/* ------------------------------------------------------------ output */

static void usage(void)
{
	printf("usage: replay_bench [--quick] [options]\n"
	       "  --traces conv,code    which traces (azure_llm_NAME.csv) to replay (default both)\n"
	       "  --duration S          replay the first S seconds of each trace (default all; --quick: 300)\n"
	       "  --compress C          trace seconds per wall second (default 60)\n"
	       "  --servers K           simulated model servers (default 8)\n"
	       "  --base-ms MS          service time per request besides tokens (default 100)\n"
	       "  --rho R               model utilisation the whole trace would cause without a cache (default 1.4)\n"
	       "  --window S            load = busy fraction over the last S trace seconds (default 10)\n"
	       "  --report-ms MS        write .load/sim every MS wall milliseconds (default 100)\n"
	       "  --pool N --zipf S     question pool and Zipf exponent (default 20000, 0.9)\n"
	       "  --verbatim P          share of requests asking the pool question verbatim, else mutated (default 0.5)\n"
	       "  --pair-share F        share of pool slots that are labelled pairs from pairs/qqp_val.csv (default 0.3)\n"
	       "  --partner P           chance a pair slot's request asks the pair's other question (default 0.3)\n"
	       "  --threshold T --ttl S policy threshold and ttl in trace seconds (default 0.9, 900)\n"
	       "  --tmin T --ttl-max S --high H --low L --rate R   adaptive keys (default 0.8, 3600, 0.8, 0.5, 2/s wall)\n"
	       "  --seed N --data DIR --daemon PATH --tmp DIR\n");
}

int main(int argc, char **argv)
{
	char tmp[PATH_MAX], path[PATH_MAX + 64], cmdline[4096];

	bench_cmdline(argc, argv, cmdline, sizeof(cmdline));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, stmt) if (!strcmp(a, name)) { if (!v) bench_die("%s needs a value", a); stmt; i++; continue; }
		if (!strcmp(a, "--quick")) { O.quick = true; continue; }
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
		OPT("--traces", O.traces = v)
		OPT("--duration", O.duration = atof(v))
		OPT("--compress", O.compress = atof(v))
		OPT("--servers", O.servers = atoi(v))
		OPT("--base-ms", O.base_ms = atof(v))
		OPT("--rho", O.rho = atof(v))
		OPT("--window", O.window = atof(v))
		OPT("--report-ms", O.report_ms = atof(v))
		OPT("--pool", O.pool = atoi(v))
		OPT("--zipf", O.zipf = atof(v))
		OPT("--verbatim", O.verbatim = atof(v))
		OPT("--pair-share", O.pair_share = atof(v))
		OPT("--partner", O.partner = atof(v))
		OPT("--threshold", O.threshold = atof(v))
		OPT("--ttl", O.ttl = atof(v))
		OPT("--tmin", O.tmin = atof(v))
		OPT("--ttl-max", O.ttl_max = atof(v))
		OPT("--high", O.high = atof(v))
		OPT("--low", O.low = atof(v))
		OPT("--rate", O.rate = atof(v))
		OPT("--seed", O.seed = strtoul(v, NULL, 10))
		OPT("--data", O.data = v)
		OPT("--daemon", O.daemon = v)
		OPT("--tmp", O.tmp = v)
		usage();
		bench_die("unknown option '%s'", a);
	}
	if (O.quick && O.duration == 0)
		O.duration = 300;
	if (O.compress <= 0 || O.servers < 1 || O.pool < 1 || O.rho <= 0)
		bench_die("bad parameters");
	if (!O.data)
		O.data = SEMCACHE_SOURCE_ROOT "/../shared/data";
	snprintf(path, sizeof(path), "%s/corpus/qqp_questions.txt", O.data);
	if (access(path, R_OK)) {
		printf("SKIP: %s not found (the shared evaluation data is absent)\n", path);
		return 77;
	}
	O.daemon = bench_daemon(O.daemon);
	signal(SIGPIPE, SIG_IGN);
	load_corpus(path);
	snprintf(path, sizeof(path), "%s/pairs/qqp_val.csv", O.data);
	if (O.pair_share > 0 && access(path, R_OK) == 0)
		load_pairs(path);
	else if (O.pair_share > 0) {
		fprintf(stderr, "note: %s absent: no labelled pairs, --pair-share 0\n", path);
		O.pair_share = 0;
	}

	bench_mkdtemp(tmp, sizeof(tmp), O.tmp, "semcache-replay");

	struct col { char name[64]; struct result r; struct trace tr; double per_tok, repeat; size_t partner_reqs; } cols[8];
	int ncol = 0;
	char *traces = strdup(O.traces), *save = NULL;

	for (char *tn = strtok_r(traces, ",", &save); tn && ncol < 7; tn = strtok_r(NULL, ",", &save)) {
		struct trace tr = { .name = strdup(tn) };
		double tokens = 0, repeat;
		struct slot *slots;

		snprintf(path, sizeof(path), "%s/traces/azure_llm_%s.csv", O.data, tn);
		if (access(path, R_OK)) {
			printf("SKIP: %s not found\n", path);
			return 77;
		}
		load_trace(&tr, path);
		for (size_t i = 0; i < tr.n; i++)
			tokens += tr.r[i].gen;
		double per_tok = (O.rho * O.servers * tr.span - (double)tr.n * O.base_ms / 1000.0) / tokens;
		if (per_tok <= 0)
			bench_die("--rho %g with --base-ms %g leaves no time for tokens on trace %s", O.rho, O.base_ms, tn);
		struct req *rq = make_requests(tr.n, &slots, &repeat);
		bool *hot = calloc(tr.n, sizeof(bool));

		fprintf(stderr, "trace %s: %zu requests over %.0f s (%.1f s wall at %gx); per-token %.2f ms; "
			"mean service %.2f s; servable from an earlier request %.1f%%\n",
			tn, tr.n, tr.span, tr.span / O.compress, O.compress, per_tok * 1000,
			O.base_ms / 1000 + per_tok * tokens / (double)tr.n, 100 * repeat);
		for (int a = 0; a < 2; a++) {
			struct col *c = &cols[ncol++];
			snprintf(c->name, sizeof(c->name), "%s, adaptation %s", tn, a ? "on" : "off");
			c->tr = tr;
			c->per_tok = per_tok;
			c->repeat = repeat;
			fprintf(stderr, "  run %s ...\n", c->name);
			run_one(&tr, rq, slots, hot, per_tok, a == 1, tmp, &c->r);
			fprintf(stderr, "    done in %.1f s wall: %zu requests, %zu to the model, %zu hits\n",
				c->r.wall_s, c->r.requests, c->r.to_model, c->r.hits);
		}
		for (size_t i = 0; i < tr.n; i++)
			free(rq[i].text);
		free(rq);
		free(slots);
		free(hot);
	}
	rmdir(tmp);

	/* one table, every run side by side */
	printf("\n## semcachefs replay benchmark (issue 7)\n\n`%s`\n\n", cmdline);
	printf("Simulated model: %d servers, FIFO, service = %.0f ms + per-token cost x GeneratedTokens "
	       "(per-token cost set so the trace alone would load it %.0f%%); load = busy fraction over the "
	       "last %g s of trace time, written to .load/sim every %g ms wall. Time compression %gx. "
	       "Questions: pool of %d QQP questions (%.0f%% of them labelled qqp_val pairs whose other question is asked %.0f%% of the time), "
	       "Zipf %.2f; otherwise %.0f%% verbatim, else one of lower/punct/drop/swap. "
	       "Policy: threshold %g, ttl %g s (trace time); adaptive: threshold_min %g, ttl_max %g s, "
	       "high %g, low %g, rate %g/s wall. Seed %lu.\n\n",
	       O.servers, O.base_ms, 100 * O.rho, O.window, O.report_ms, O.compress, O.pool, 100 * O.pair_share, 100 * O.partner, O.zipf,
	       100 * O.verbatim, O.threshold, O.ttl, O.tmin, O.ttl_max, O.high, O.low, O.rate, O.seed);
	printf("| |");
	for (int c = 0; c < ncol; c++)
		printf(" %s |", cols[c].name);
	printf("\n|---|");
	for (int c = 0; c < ncol; c++)
		printf("---:|");
	printf("\n");
#define ROW(label, ...) do { printf("| %s |", label); for (int c = 0; c < ncol; c++) { \
	const struct result *r = &cols[c].r; (void)r; printf(" "); __VA_ARGS__; printf(" |"); } printf("\n"); } while (0)
	ROW("trace seconds replayed (wall s)", printf("%.0f (%.0f)", r->sim_s, r->wall_s));
	ROW("per-token cost (ms)", printf("%.2f", cols[c].per_tok * 1000));
	ROW("requests", printf("%zu", r->requests));
	ROW("requests reaching the model", printf("**%zu**", r->to_model));
	ROW("model traffic vs adaptation off", {
		if (c % 2 == 1 && cols[c - 1].r.to_model)
			printf("**%+.1f%%**", 100.0 * ((double)r->to_model - (double)cols[c - 1].r.to_model) /
					       (double)cols[c - 1].r.to_model);
		else
			printf("—");
	});
	ROW("requests arriving at load >= high (in the run without adaptation)", printf("%zu", r->hot));
	ROW("... of them reaching the model", printf("%zu (%.1f%%)", r->hot_to_model,
		100.0 * (double)r->hot_to_model / fmax(1, (double)r->hot)));
	ROW("model traffic under load vs adaptation off", {
		if (c % 2 == 1 && cols[c - 1].r.hot_to_model)
			printf("**%+.1f%%**", 100.0 * ((double)r->hot_to_model - (double)cols[c - 1].r.hot_to_model) /
					       (double)cols[c - 1].r.hot_to_model);
		else
			printf("—");
	});
	ROW("hit rate", printf("%.1f%%", 100.0 * (double)r->hits / (double)r->requests));
	ROW("ideal hit rate (a right answer was requested before)", printf("%.1f%%", 100 * cols[c].repeat));
	ROW("exact / semantic hits", printf("%zu / %zu", r->exact, r->semantic));
	ROW("hit rate of drop / swap / punct / partner requests", printf("%.0f / %.0f / %.0f / %.0f%%",
		100.0 * (double)r->hits_by_variant[V_DROP] / fmax(1, (double)r->reqs_by_variant[V_DROP]),
		100.0 * (double)r->hits_by_variant[V_SWAP] / fmax(1, (double)r->reqs_by_variant[V_SWAP]),
		100.0 * (double)r->hits_by_variant[V_PUNCT] / fmax(1, (double)r->reqs_by_variant[V_PUNCT]),
		100.0 * (double)r->hits_by_variant[V_PARTNER] / fmax(1, (double)r->reqs_by_variant[V_PARTNER])));
	ROW("hit score min / p10 / p50", printf("%.3f / %.3f / %.3f", r->hit_min, r->hit_p10, r->hit_p50));
	ROW("hits serving: same question / labelled duplicate / labelled non-duplicate / other question",
	    printf("%zu / %zu / %zu / %zu", r->hit_same, r->hit_dup, r->hit_nondup, r->hit_other));
	ROW("served-answer precision (same + duplicate) / hits", printf("%.2f%%",
		100.0 * (double)(r->hit_same + r->hit_dup) / fmax(1, (double)r->hits)));
	ROW("model queue wait of misses p50 / p95 (s)", printf("%.2f / %.2f", r->wait_p50, r->wait_p95));
	ROW("model latency of misses p50 / p95 (s)", printf("%.2f / %.2f", r->lat_p50, r->lat_p95));
	ROW("mean reported load", printf("%.2f", r->load_mean));
	ROW("time with load >= high", printf("%.0f s (%.1f%%)", r->high_s, 100 * r->high_s / r->sim_s));
	ROW("share of .stats samples adapted (min threshold)", {
		if (isnan(r->adapted_share))
			printf("—");
		else
			printf("%.0f%% (%.3f)", 100 * r->adapted_share, r->thr_min);
	});
	ROW(".stats hits / misses", printf("%.0f / %.0f", r->st_hits, r->st_misses));
	ROW(".stats exact / semantic hits", printf("%.0f / %.0f", r->st_exact, r->st_semantic));
	ROW(".stats fills / expired", printf("%.0f / %.0f", r->st_fills, r->st_expired));
	ROW(".stats effective_threshold at end", {
		if (isnan(r->st_eff))
			printf("— (not adaptive)");
		else
			printf("%.4f", r->st_eff);
	});
	ROW(".stats lookup_us_p50", printf("%.0f", r->lookup_us_p50));
	ROW("client lag max (s wall); requests >100 ms late", printf("%.2f; %.1f%%", r->lag_max, 100 * r->lag_late));
	ROW("failed fills / lookup errors", printf("%zu / %zu", r->fill_fail, r->errors));
	return 0;
}
