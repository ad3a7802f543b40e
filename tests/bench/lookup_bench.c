/*
 * lookup_bench.c - lookup latency through a mounted semcachefs.
 *
 * Fills N real questions into one category through the mount (the C file
 * sequence a client does), then times lookups of three kinds, each the full
 * three-file sequence (create/write/close NAME.query, open/read/close
 * NAME.status, open/read/close NAME.response):
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
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int put(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len) {
		int e = -errno;

		close(fd);
		return e;
	}
	return close(fd) ? -errno : 0;
}

static ssize_t get(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One lookup; returns 1 for a hit, 0 for a miss, -1 on error. */
static int lookup(const char *dir, const char *q, double *us)
{
	char path[4096], status[512], resp[65536];
	double t0 = now_us();

	snprintf(path, sizeof(path), "%s/b.query", dir);
	if (put(path, q, strlen(q)))
		return -1;
	snprintf(path, sizeof(path), "%s/b.status", dir);
	if (get(path, status, sizeof(status)) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/b.response", dir);
	if (get(path, resp, sizeof(resp)) < 0)
		return -1;
	*us = now_us() - t0;
	return !strncmp(status, "hit", 3);
}

static void report(const char *what, double *t, int n, int hits)
{
	if (!n)
		return;
	qsort(t, n, sizeof(*t), cmp_double);
	printf("%-9s n=%-6d hits=%-6d p50=%8.1f us  p99=%8.1f us\n", what, n, hits,
	       t[n / 2], t[(int)(n * 0.99)]);
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

	double t0 = now_us();
	for (int i = 0; i < n; i++) {
		char ans[64], st[256];
		int len = snprintf(ans, sizeof(ans), "answer %d", i);

		snprintf(path, sizeof(path), "%s/f.query", dir);
		if (put(path, qs[i], strlen(qs[i])))
			return fprintf(stderr, "fill query %d failed\n", i), 1;
		snprintf(path, sizeof(path), "%s/f.status", dir);
		get(path, st, sizeof(st));
		if (strncmp(st, "hit", 3)) {
			snprintf(path, sizeof(path), "%s/f.response", dir);
			if (put(path, ans, len))
				return fprintf(stderr, "fill %d failed\n", i), 1;
		}
	}
	printf("filled %d questions in %.2f s (%.0f fills/s, 1 writer, incl. lookup)\n",
	       n, (now_us() - t0) / 1e6, n / ((now_us() - t0) / 1e6));

	double *t = calloc(lookups, sizeof(*t));
	int hits = 0, k = 0;

	/* warm-up */
	for (int i = 0; i < 200 && i < lookups; i++) {
		double us;

		lookup(dir, qs[i], &us);
	}
	for (int i = 0; i < lookups; i++) {
		int r = lookup(dir, qs[(i * 7919) % n], &t[k]);

		if (r < 0)
			return fprintf(stderr, "lookup failed\n"), 1;
		hits += r;
		k++;
	}
	report("exact", t, k, hits);
	hits = k = 0;
	for (int i = 0; i < lookups; i++) {
		char q[4200];
		const char *src = qs[(i * 7919) % n];
		const char *sp = strchr(src, ' ');
		int r;

		/* drop the first word and the final punctuation */
		snprintf(q, sizeof(q), "%s", sp ? sp + 1 : src);
		q[strcspn(q, "?")] = '\0';
		if (!q[0])
			continue;
		r = lookup(dir, q, &t[k]);
		if (r < 0)
			return fprintf(stderr, "lookup failed\n"), 1;
		hits += r;
		k++;
	}
	report("semantic", t, k, hits);
	hits = k = 0;
	for (int i = 0; i < lookups; i++) {
		int r = lookup(dir, qs[n + i], &t[k]);

		if (r < 0)
			return fprintf(stderr, "lookup failed\n"), 1;
		hits += r;
		k++;
	}
	report("miss", t, k, hits);
	free(t);
	return 0;
}
