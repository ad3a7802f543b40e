/*
 * faiss_bench.c - HNSW search and add latency of the linked FAISS, through
 * its C API only.
 *
 * Builds (or loads) an "HNSW32,Flat" inner-product index of N unit vectors,
 * sets efSearch with a ParameterSpace, then times single-query searches
 * (k = 16, as vindex asks for max(4k, 16) candidates) and single-vector
 * adds, and prints p50/p99/min in microseconds on one line. The same program
 * is built against Debian's scalar FAISS and against an AVX2 build (meson
 * -Dfaiss_prefix=...); each output line says which one is linked. Only the
 * C API calls the compat unit (index/faiss_compat.cpp) provides are used.
 *
 * -f STORAGE picks FAISS's vector storage after "HNSWM," (Flat, SQfp16,
 * SQ8, ...; SQ kinds that need training are trained on the base vectors),
 * -E sets efConstruction before the build. -x also prints the top-1
 * agreement with an exact scan of the base vectors (by score, so ties
 * count as agreement) and the decision agreement at threshold T
 * (-t, default 0.9): both say "no neighbour >= T", or both return a
 * neighbour >= T with the same score.
 *
 * Data: synthetic random unit vectors (Gaussian, normalised; a seed picks
 * them), or with -c CORPUS the first N lines of a question file embedded
 * with the built-in embedder, queried with the next Q lines (held out, so
 * the searches are misses, as most lookups are). With -i FILE the index is
 * saved after the first build and loaded afterwards, so two FAISS builds
 * search the very same graph (only distance code differs).
 *
 *   faiss_bench [-n N] [-d DIM] [-m M] [-e EF_SEARCH] [-q QUERIES]
 *               [-a ADDS] [-s SEED] [-c CORPUS] [-i INDEX_FILE]
 *               [-f STORAGE] [-E EF_CONSTRUCTION] [-x] [-t THRESHOLD]
 *
 * One OpenMP thread, like the daemon (vindex.c). Pin it with taskset.
 * Not part of the test suite.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "config.h"
#include "embed.h"
#include "bench_util.h"

#define K 16

static void die_faiss(const char *what)
{
	bench_die("faiss %s failed: %s", what, faiss_get_last_error());
}

/* bench_rng's state (-s picks it) and Box-Muller: Gaussian coordinates
 * give directions uniform on the sphere once normalised. */
static uint64_t rng_state;

static void random_unit(float *v, int dim)
{
	double s = 0;

	for (int i = 0; i < dim; i++) {
		double u = bench_rng_unit(&rng_state) + 1e-12, w = bench_rng_unit(&rng_state);

		v[i] = (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * w));
		s += (double)v[i] * v[i];
	}
	s = 1 / sqrt(s);
	for (int i = 0; i < dim; i++)
		v[i] = (float)(v[i] * s);
}

/* n vectors from lines skip..skip+n-1 of the corpus; 0 or -errno. */
static int corpus_vectors(const char *path, size_t skip, size_t n, float *out,
			  int dim)
{
	struct embedder *e;
	char *line = NULL;
	size_t cap = 0, i = 0, got = 0;
	ssize_t len;
	FILE *f;
	int rc = embed_builtin_new(&e);

	if (rc)
		return rc;
	if (e->dim != dim) {
		fprintf(stderr, "faiss_bench: the built-in embedder has dim %d, not %d: use -d %d\n",
			e->dim, dim, e->dim);
		embedder_free(e);
		return -EINVAL;
	}
	f = fopen(path, "r");
	if (!f) {
		rc = -errno;
		fprintf(stderr, "faiss_bench: cannot open corpus '%s': %s\n", path, strerror(errno));
		embedder_free(e);
		return rc;
	}
	while (got < n && (len = getline(&line, &cap, f)) > 0) {
		if (i++ < skip)
			continue;
		if (line[len - 1] == '\n')
			len--;
		rc = embedder_embed(e, line, (size_t)len, out + got * dim);
		if (rc)
			break;
		got++;
	}
	free(line);
	fclose(f);
	embedder_free(e);
	if (!rc && got < n) {
		fprintf(stderr, "faiss_bench: corpus '%s' has fewer than %zu lines\n", path, skip + n);
		rc = -EINVAL;
	}
	return rc;
}

/* Top-1 and threshold-decision agreement of HNSW with an exact scan. */
static void print_agreement(FaissIndex *idx, const float *base, long n,
			    const float *queries, long nq, long dim, double thr)
{
	long top1 = 0, decide = 0, above = 0;
	float dist[K];
	idx_t labels[K];

	for (long i = 0; i < nq; i++) {
		const float *q = queries + i * dim;
		float best = -2;

		for (long j = 0; j < n; j++) {
			const float *v = base + j * dim;
			float s = 0;

			for (long d = 0; d < dim; d++)
				s += q[d] * v[d];
			if (s > best)
				best = s;
		}
		if (faiss_Index_search(idx, 1, q, K, dist, labels))
			die_faiss("search");
		/* score of the HNSW top-1 recomputed exactly (SQ storage
		 * reports approximate scores) */
		float got = -2;

		if (labels[0] >= 0) {
			const float *v = base + labels[0] * dim;

			got = 0;
			for (long d = 0; d < dim; d++)
				got += q[d] * v[d];
		}
		top1 += fabsf(got - best) < 1e-5f;
		above += best >= thr;
		decide += best >= thr ? fabsf(got - best) < 1e-5f : got < thr;
	}
	printf(" top1_agreement=%.4f decision_agreement@%.2f=%.4f exact_above=%ld/%ld",
	       (double)top1 / nq, thr, (double)decide / nq, above, nq);
}

static void usage(void)
{
	fprintf(stderr, "usage: faiss_bench [-n N] [-d DIM] [-m M] [-e EF_SEARCH] [-q QUERIES]\n"
		"                   [-a ADDS] [-s SEED] [-c CORPUS] [-i INDEX_FILE]\n"
		"                   [-f STORAGE] [-E EF_CONSTRUCTION] [-x] [-t THRESHOLD]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long n = 10000, dim = 256, m = 32, ef = 64, nq = 2000, nadd = 1000, seed = 1;
	long efc = 40;
	const char *corpus = NULL, *index_file = NULL, *storage = "Flat";
	bool agree = false;
	double thr = 0.9;
	FaissIndex *idx = NULL;
	FaissParameterSpace *ps;
	char desc[64];
	float *base, *queries, *extra, dist[K];
	idx_t labels[K];
	double *t, t0, build_s = -1, p50, p99;
	FILE *f;
	int opt;

	while ((opt = getopt(argc, argv, "n:d:m:e:q:a:s:c:i:f:E:xt:")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 'd': dim = atol(optarg); break;
		case 'm': m = atol(optarg); break;
		case 'e': ef = atol(optarg); break;
		case 'q': nq = atol(optarg); break;
		case 'a': nadd = atol(optarg); break;
		case 's': seed = atol(optarg); break;
		case 'c': corpus = optarg; break;
		case 'i': index_file = optarg; break;
		case 'f': storage = optarg; break;
		case 'E': efc = atol(optarg); break;
		case 'x': agree = true; break;
		case 't': thr = atof(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || n < 1 || dim < 1 || m < 2 || ef < 1 || nq < 1 || nadd < 0)
		usage();
	omp_set_num_threads(1);
	rng_state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)seed;

	base = bench_xcalloc((size_t)n, dim * sizeof(float));
	queries = bench_xcalloc((size_t)nq, dim * sizeof(float));
	extra = bench_xcalloc((size_t)nadd + 1, dim * sizeof(float));
	if (corpus) {
		if (corpus_vectors(corpus, 0, (size_t)n, base, (int)dim) ||
		    corpus_vectors(corpus, (size_t)n, (size_t)nq, queries, (int)dim) ||
		    corpus_vectors(corpus, (size_t)(n + nq), (size_t)nadd, extra, (int)dim))
			return 1;
	} else {
		for (long i = 0; i < n; i++)
			random_unit(base + i * dim, (int)dim);
		for (long i = 0; i < nq; i++)
			random_unit(queries + i * dim, (int)dim);
		for (long i = 0; i < nadd; i++)
			random_unit(extra + i * dim, (int)dim);
	}

	if (index_file && (f = fopen(index_file, "rb"))) {
		if (faiss_read_index(f, 0, &idx))
			die_faiss("read_index");
		fclose(f);
		if (faiss_Index_ntotal(idx) != n || faiss_Index_d(idx) != dim) {
			fprintf(stderr, "faiss_bench: '%s' holds %lld vectors of dim %d, not %ld of %ld: delete it\n",
				index_file, (long long)faiss_Index_ntotal(idx), faiss_Index_d(idx), n, dim);
			return 1;
		}
	} else {
		snprintf(desc, sizeof(desc), "HNSW%ld,%s", m, storage);
		if (faiss_index_factory(&idx, (int)dim, desc, METRIC_INNER_PRODUCT))
			die_faiss("index_factory");
		if (faiss_ParameterSpace_new(&ps) ||
		    faiss_ParameterSpace_set_index_parameter(ps, idx, "efConstruction", (double)efc))
			die_faiss("set efConstruction");
		faiss_ParameterSpace_free(ps);
		t0 = bench_now_us();
		if (!faiss_Index_is_trained(idx) && faiss_Index_train(idx, n, base))
			die_faiss("train");
		if (faiss_Index_add(idx, n, base))
			die_faiss("add");
		build_s = (bench_now_us() - t0) / 1e6;
		if (index_file) {
			f = fopen(index_file, "wb");
			if (!f || faiss_write_index(idx, f) || fclose(f))
				die_faiss("write_index");
		}
	}
	if (faiss_ParameterSpace_new(&ps) ||
	    faiss_ParameterSpace_set_index_parameter(ps, idx, "efSearch", (double)ef))
		die_faiss("set efSearch");

	t = bench_xcalloc((size_t)(nq > nadd ? nq : nadd) + 1, sizeof(double));
	/* Warm-up pass, then the timed pass over the same queries. */
	for (int pass = 0; pass < 2; pass++) {
		for (long i = 0; i < nq; i++) {
			t0 = bench_now_us();
			if (faiss_Index_search(idx, 1, queries + i * dim, K, dist, labels))
				die_faiss("search");
			t[i] = bench_now_us() - t0;
		}
	}
	p50 = bench_quantile(t, (size_t)nq, 0.5);   /* sorts t */
	p99 = bench_quantile(t, (size_t)nq, 0.99);
	printf("faiss=%s data=%s n=%ld dim=%ld M=%ld storage=%s efConstruction=%ld "
	       "efSearch=%ld k=%d build_s=%.1f "
	       "search_p50_us=%.1f search_p99_us=%.1f search_min_us=%.1f",
	       SEMCACHE_FAISS_KIND, corpus ? "corpus" : "synthetic", n, dim, m,
	       storage, efc, ef, K, build_s, p50, p99, t[0]);
	if (agree)
		print_agreement(idx, base, n, queries, nq, dim, thr);

	for (long i = 0; i < nadd; i++) {
		t0 = bench_now_us();
		if (faiss_Index_add(idx, 1, extra + i * dim))
			die_faiss("add");
		t[i] = bench_now_us() - t0;
	}
	if (nadd) {
		p50 = bench_quantile(t, (size_t)nadd, 0.5);
		p99 = bench_quantile(t, (size_t)nadd, 0.99);
		printf(" add_p50_us=%.1f add_p99_us=%.1f", p50, p99);
	}
	printf("\n");

	faiss_ParameterSpace_free(ps);
	faiss_Index_free(idx);
	free(t);
	free(extra);
	free(queries);
	free(base);
	return 0;
}
