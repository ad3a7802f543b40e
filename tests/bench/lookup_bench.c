/*
 * lookup_bench.c - lookup latency through a mounted semcachefs.
 *
 * Fills N real questions into one category through the mount (the C file
 * sequence a client does), then times lookups of three kinds, each the full
 * three-file sequence (bench_lookup_3file: create/write/close NAME.query,
 * open/read/close NAME.status, open/read to EOF/close NAME.response):
 *   exact    the same question again
 *   semantic the question with its punctuation and first word changed
 *            (a synthetic near-paraphrase: not equal after normalisation,
 *            so it goes through the embedder and the HNSW index)
 *   miss     held-out questions never filled
 * and prints p50/p99 in microseconds. Pin it with taskset and say how.
 *
 *   lookup_bench MOUNT CATEGORY CORPUS N [LOOKUPS]
 * Not part of the test suite.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"

/* One timed lookup (bench_lookup_3file): its time in t[*k], then *k and
 * *hits counted; a failed lookup ends the program. */
static void lookup(struct bench_sess *s, const char *q, double *t, int *k,
		   int *hits)
{
	double t0 = bench_now_us();
	int rc = bench_lookup_3file(s, q, strlen(q));

	t[*k] = bench_now_us() - t0;
	if (rc < 0)
		bench_die("lookup '%s' failed: %s", q, strerror(-rc));
	*hits += rc;
	(*k)++;
}

static void report(const char *what, double *t, int n, int hits)
{
	if (!n)
		return;
	printf("%-9s n=%-6d hits=%-6d p50=%8.1f us  p99=%8.1f us\n", what, n, hits,
	       bench_quantile(t, (size_t)n, 0.5), bench_quantile(t, (size_t)n, 0.99));
}

int main(int argc, char **argv)
{
	char dir[4096], path[4200], line[4096];
	char **qs = NULL;
	size_t nq = 0, cap = 0;
	int n, lookups;
	FILE *f;

	if (argc < 5) {
		fprintf(stderr, "usage: lookup_bench MOUNT CATEGORY CORPUS N [LOOKUPS]\n");
		return 2;
	}
	n = atoi(argv[4]);
	lookups = argc > 5 ? atoi(argv[5]) : 1000;
	snprintf(dir, sizeof(dir), "%s/%s", argv[1], argv[2]);
	if (mkdir(dir, 0755) && errno != EEXIST) {
		perror(dir);
		return 1;
	}
	f = fopen(argv[3], "r");
	if (!f) {
		perror(argv[3]);
		return 1;
	}
	while (fgets(line, sizeof(line), f) && nq < (size_t)(n + lookups)) {
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line) < 8)
			continue;
		if (nq == cap) {
			cap = cap ? cap * 2 : 1024;
			qs = realloc(qs, cap * sizeof(*qs));
			if (!qs)
				return 1;
		}
		qs[nq++] = strdup(line);
	}
	fclose(f);
	if ((int)nq < n + lookups) {
		fprintf(stderr, "corpus has only %zu usable questions\n", nq);
		return 1;
	}

	double t0 = bench_now_us();
	for (int i = 0; i < n; i++) {
		char ans[64], st[256];
		int len = snprintf(ans, sizeof(ans), "answer %d", i);

		snprintf(path, sizeof(path), "%s/f.query", dir);
		if (bench_put(path, qs[i], strlen(qs[i])))
			return fprintf(stderr, "fill query %d failed\n", i), 1;
		snprintf(path, sizeof(path), "%s/f.status", dir);
		bench_get(path, st, sizeof(st));
		if (strncmp(st, "hit", 3)) {
			snprintf(path, sizeof(path), "%s/f.response", dir);
			if (bench_put(path, ans, len))
				return fprintf(stderr, "fill %d failed\n", i), 1;
		}
	}
	printf("filled %d questions in %.2f s (%.0f fills/s, 1 writer, incl. lookup)\n",
	       n, (bench_now_us() - t0) / 1e6, n / ((bench_now_us() - t0) / 1e6));

	double *t = bench_xcalloc(lookups, sizeof(*t));
	int hits = 0, k = 0;
	struct bench_sess s;

	bench_sess_init(&s, dir, "b");

	/* warm-up */
	for (int i = 0; i < 200 && i < lookups; i++) {
		k = 0;
		lookup(&s, qs[i], t, &k, &hits);
	}
	hits = k = 0;
	for (int i = 0; i < lookups; i++)
		lookup(&s, qs[(i * 7919) % n], t, &k, &hits);
	report("exact", t, k, hits);
	hits = k = 0;
	for (int i = 0; i < lookups; i++) {
		char q[4200];
		const char *src = qs[(i * 7919) % n];
		const char *sp = strchr(src, ' ');

		/* drop the first word and the final punctuation */
		snprintf(q, sizeof(q), "%s", sp ? sp + 1 : src);
		q[strcspn(q, "?")] = '\0';
		if (!q[0])
			continue;
		lookup(&s, q, t, &k, &hits);
	}
	report("semantic", t, k, hits);
	hits = k = 0;
	for (int i = 0; i < lookups; i++)
		lookup(&s, qs[n + i], t, &k, &hits);
	report("miss", t, k, hits);
	bench_sess_release(&s);
	free(t);
	return 0;
}
