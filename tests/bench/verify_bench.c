/*
 * verify_bench.c - the verifier's cost per candidate (issue 18: at most
 * 20 us), next to what it is made of, measured side by side in one run.
 *
 *   verify_bench [--corpus FILE] [--queries N] [--runs R] [--cpu C] [--ci]
 *
 * Questions from ../shared/data/corpus/qqp_questions.txt (or FILE): each of
 * N queries is scored against the K = 5 questions after it, as a lookup
 * scores its top-5 candidates. Per run it times, on one pinned CPU (C,
 * default 0, as `taskset -c 0` would):
 *   candidate = verify_side_init() of the candidate + verify_score() +
 *               release, per candidate (the query's side built before);
 *   query     = the query's side, per lookup;
 *   score     = verify_score() alone on sides built beforehand;
 *   builtin   = the builtin-v1 embedding a side includes.
 * Prints the median over R runs (min and max) of each, in microseconds of
 * the thread's CPU time (CLOCK_THREAD_CPUTIME_ID: on a shared, loaded
 * machine wall time mostly measures the other processes) and, for the
 * candidate, of wall time too.
 * Built by meson, never run by the suite (`meson test --benchmark` runs
 * --ci). Exits 77 without the corpus.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "bench_util.h"
#include "verify.h"

#define K 5
#define MAX_RUNS 31

enum { T_CAND, T_QUERY, T_SCORE, T_BUILTIN, T_WALL, T_N };

static double sink;

static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void one_run(const struct bench_corpus *c, size_t nq,
		    struct verify_side *pre, double *t)
{
	struct verify_side q, s;
	float vec[EMBED_BUILTIN_DIM];
	double t0, w0;
	size_t i, j;

	t0 = cpu_us();
	for (i = 0; i < nq; i++) {
		verify_side_init(&q, c->q[i], strlen(c->q[i]));
		verify_side_release(&q);
	}
	t[T_QUERY] = (cpu_us() - t0) / (double)nq;

	w0 = bench_now_us();
	t0 = cpu_us();
	for (i = 0; i < nq; i++)
		for (j = 1; j <= K; j++) {
			const char *x = c->q[i + j];

			if (verify_side_init(&s, x, strlen(x)))
				bench_die("out of memory");
			sink += verify_score(&pre[i], &s, NULL, 0);
			verify_side_release(&s);
		}
	t[T_CAND] = (cpu_us() - t0) / (double)(nq * K);
	t[T_WALL] = (bench_now_us() - w0) / (double)(nq * K);

	t0 = cpu_us();
	for (i = 0; i < nq; i++)
		for (j = 1; j <= K; j++)
			sink += verify_score(&pre[i], &pre[i + j], NULL, 0);
	t[T_SCORE] = (cpu_us() - t0) / (double)(nq * K);

	t0 = cpu_us();
	for (i = 0; i < nq; i++) {
		embed_builtin_vector(c->q[i + 1], strlen(c->q[i + 1]), vec);
		sink += vec[0];
	}
	t[T_BUILTIN] = (cpu_us() - t0) / (double)nq;
}

int main(int argc, char **argv)
{
	static const char *const names[T_N] = {
		"candidate (side + score)", "query side", "score only",
		"builtin-v1 embedding", "candidate, wall time",
	};
	const char *corpus = SEMCACHE_SOURCE_ROOT
		"/../shared/data/corpus/qqp_questions.txt";
	size_t nq = 2000, i;
	int runs = 7, cpu = 0, r, k;
	double t[T_N][MAX_RUNS], cur[T_N];
	struct bench_corpus c = { 0 };
	struct verify_side *pre;
	char load[64];

	for (i = 1; i < (size_t)argc; i++) {
		if (!strcmp(argv[i], "--corpus") && i + 1 < (size_t)argc)
			corpus = argv[++i];
		else if (!strcmp(argv[i], "--queries") && i + 1 < (size_t)argc)
			nq = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--runs") && i + 1 < (size_t)argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--cpu") && i + 1 < (size_t)argc)
			cpu = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ci")) {
			nq = 200;
			runs = 3;
		} else {
			fprintf(stderr, "usage: verify_bench [--corpus FILE] "
				"[--queries N] [--runs R] [--cpu C] [--ci]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || nq < 1)
		bench_die("--runs must be 1 to %d and --queries at least 1", MAX_RUNS);
	bench_corpus_need(&c, corpus);
	if (c.n < nq + K)
		nq = c.n > K ? c.n - K : 0;
	if (!nq)
		bench_die("'%s' has too few questions", corpus);
	if (bench_set_cpu(0, cpu))
		bench_note("could not pin to CPU %d: times include migrations", cpu);
	pre = bench_xcalloc(nq + K, sizeof(*pre));
	for (i = 0; i < nq + K; i++)
		if (verify_side_init(&pre[i], c.q[i], strlen(c.q[i])))
			bench_die("out of memory");
	one_run(&c, nq, pre, cur);      /* warm-up */
	for (r = 0; r < runs; r++) {
		one_run(&c, nq, pre, cur);
		for (k = 0; k < T_N; k++)
			t[k][r] = cur[k];
	}
	bench_loadavg(load, sizeof(load), 1);
	printf("verify_bench: %zu queries x %d candidates, %d runs, CPU %d, "
	       "load %s, models %s / %s\n", nq, K, runs, cpu, load,
	       verify_model_name(VERIFY_LEXICAL), verify_model_name(VERIFY_USE_LITE));
	for (k = 0; k < T_N; k++) {
		struct bench_summary s = bench_summarise(t[k], runs);

		printf("%-26s median %7.2f us  (min %.2f, max %.2f)%s\n", names[k],
		       s.med, s.min, s.max, k == T_WALL ? "" : " CPU");
	}
	for (i = 0; i < nq + K; i++)
		verify_side_release(&pre[i]);
	free(pre);
	return sink == 12345.678 ? 1 : 0;
}
