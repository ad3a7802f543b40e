/*
 * use_lite_bench.c - latency of the use-lite embedder next to its floor.
 *
 *   use_lite_bench [--model DIR] [--runs N] [--corpus FILE] [--ci]
 *
 * Workloads: short queries (QQP questions of 13-17 tokens) and long ones
 * (joined questions, cut at the model's 128 tokens). For each query, side by
 * side: the embedding (tokenizer and forward pass, one thread) and its
 * floor, the very cblas_sgemm calls that embedding made, with the same
 * shapes, leading dimensions and weight matrices, replayed alone on
 * scratch inputs. The calls are recorded by interposing cblas_sgemm in this
 * program (the index library is linked statically, so its calls bind here;
 * the real one is found with dlsym(RTLD_NEXT)). Each run gives the p50 per
 * query of both and their ratio; after a warm-up run, the median over runs
 * is printed with min and max. Then batches: k short queries through one
 * use_lite_embed_batch() call (their rows share each product), per query,
 * against k single calls, to see whether batching concurrent queries pays.
 *
 * Run it pinned (taskset -c 0) on a quiet machine; method in
 * ../shared/docs/BENCH.md. Exits 77 without the model.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "embed.h"
#include "use_lite.h"

/* ---- the sgemm interposer ------------------------------------------------- */

struct call {
	enum CBLAS_TRANSPOSE ta, tb;
	int m, n, k, lda, ldb, ldc;
	float alpha, beta;
	const float *b;         /* kept when it is a weight (inside the model) */
};

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE,
			 enum CBLAS_TRANSPOSE, const int, const int, const int,
			 const float, const float *, const int, const float *,
			 const int, const float, float *, const int);

static sgemm_fn real_sgemm;
static struct call *rec;        /* recording when not NULL */
static size_t nrec, caprec;
static double in_sgemm;         /* seconds spent in sgemm when timing */
static bool timing;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
		 const enum CBLAS_TRANSPOSE tb, const int m, const int n,
		 const int k, const float alpha, const float *a, const int lda,
		 const float *b, const int ldb, const float beta, float *c,
		 const int ldc)
{
	double t0 = timing ? now() : 0;

	if (rec && nrec < caprec)
		rec[nrec++] = (struct call){ ta, tb, m, n, k, lda, ldb, ldc,
					     alpha, beta, b };
	real_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	if (timing)
		in_sgemm += now() - t0;
}

/* ---- helpers ------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n ? v[n / 2] : 0;
}

struct query {
	char *text;
	size_t len, tokens;
	struct call *calls;
	size_t ncalls;
};

/* scratch for the replay: big enough for any A and C of a forward pass */
static float *scratch_a, *scratch_c;

static void record(const struct embedder *e, struct query *q)
{
	float v[USE_LITE_DIM];
	size_t i;

	caprec = 64;
	rec = calloc(caprec, sizeof(*rec));
	nrec = 0;
	embedder_embed(e, q->text, q->len, v);
	q->calls = rec;
	q->ncalls = nrec;
	rec = NULL;
	/* the attention products (q k^T, then weights v) multiply two
	 * scratch matrices; every other B is a weight matrix of the model */
	for (i = 0; i < q->ncalls; i++)
		if (q->calls[i].tb == CblasTrans || q->calls[i].k == (int)q->tokens)
			q->calls[i].b = NULL;
}

static void replay(const struct query *q)
{
	size_t i;

	for (i = 0; i < q->ncalls; i++) {
		const struct call *c = &q->calls[i];

		real_sgemm(CblasRowMajor, c->ta, c->tb, c->m, c->n, c->k, c->alpha,
			   scratch_a, c->lda, c->b ? c->b : scratch_a, c->ldb,
			   c->beta, scratch_c, c->ldc);
	}
}

/* ---- workloads --------------------------------------------------------- */

static size_t load_queries(const struct embedder *e, const char *corpus,
			   struct query *qs, size_t max, bool want_long)
{
	static const char *const fallback[] = {
		"What is the best way to learn Python programming for beginners?",
		"How do I reverse a linked list in place without extra memory?",
		"Why is the sky blue during the day and red at sunset?",
		"What are some good books to read about the history of Rome?",
	};
	const struct use_tok *tok = use_lite_tokenizer(e);
	char *line = NULL, *joined = NULL;
	size_t cap = 0, n = 0, jl = 0, jcap = 1 << 16, fb = 0;
	int32_t ids[256];
	ssize_t got;
	FILE *f = fopen(corpus, "r");

	if (!f)
		fprintf(stderr, "use_lite_bench: '%s' absent: a few built-in "
			"questions instead\n", corpus);
	joined = malloc(jcap);
	while (n < max) {
		const char *s;
		size_t len, nt;

		if (f && (got = getline(&line, &cap, f)) > 0) {
			line[strcspn(line, "\n")] = '\0';
			s = line;
		} else if (!f || fb < 4 * max) {
			s = fallback[fb++ % 4];
		} else {
			break;
		}
		len = strlen(s);
		if (want_long) {
			if (jl + len + 2 > jcap)
				jl = 0;
			memcpy(joined + jl, s, len);
			jl += len;
			joined[jl++] = ' ';
			use_tok_encode(tok, joined, jl, ids, 256, &nt);
			if (nt < 160)
				continue;
			s = joined;
			len = jl;
			jl = 0;
			nt = 128;
		} else {
			use_tok_encode(tok, s, len, ids, 256, &nt);
			if (nt < 13 || nt > 17)
				continue;
		}
		qs[n].text = strndup(s, len);
		qs[n].len = len;
		qs[n].tokens = nt;
		record(e, &qs[n]);
		n++;
	}
	if (f)
		fclose(f);
	free(line);
	free(joined);
	return n;
}

struct stat3 {
	double med, lo, hi;
};

static struct stat3 summarise(double *v, size_t n)
{
	struct stat3 s;
	size_t i;

	s.lo = s.hi = v[0];
	for (i = 1; i < n; i++) {
		if (v[i] < s.lo)
			s.lo = v[i];
		if (v[i] > s.hi)
			s.hi = v[i];
	}
	s.med = median(v, n);
	return s;
}

static void bench(const char *what, const struct embedder *e, struct query *qs,
		  size_t nq, int runs)
{
	double *te = malloc(nq * sizeof(double)), *tf = malloc(nq * sizeof(double));
	double *pe = malloc((size_t)runs * sizeof(double));
	double *pf = malloc((size_t)runs * sizeof(double));
	double *pr = malloc((size_t)runs * sizeof(double)), tokens = 0, t0;
	double *ti = malloc(nq * sizeof(double)), *pi = malloc((size_t)runs * sizeof(double));
	struct stat3 se, sf, sr, si;
	float v[USE_LITE_DIM];
	size_t i;
	int r;

	for (i = 0; i < nq; i++)
		tokens += (double)qs[i].tokens;
	for (r = -1; r < runs; r++) {           /* run -1 warms up */
		for (i = 0; i < nq; i++) {
			in_sgemm = 0;
			timing = true;
			t0 = now();
			embedder_embed(e, qs[i].text, qs[i].len, v);
			te[i] = now() - t0;
			timing = false;
			ti[i] = in_sgemm;
			t0 = now();
			replay(&qs[i]);
			tf[i] = now() - t0;
		}
		if (r < 0)
			continue;
		pe[r] = median(te, nq) * 1e3;
		pf[r] = median(tf, nq) * 1e3;
		pr[r] = pe[r] / pf[r];
		pi[r] = median(ti, nq) * 1e3;
	}
	se = summarise(pe, (size_t)runs);
	sf = summarise(pf, (size_t)runs);
	sr = summarise(pr, (size_t)runs);
	si = summarise(pi, (size_t)runs);
	printf("%s (%zu queries, %.1f tokens, %zu sgemm calls each): embed p50 "
	       "%.3f ms [%.3f-%.3f], sgemm floor p50 %.3f ms [%.3f-%.3f], "
	       "embed/floor %.2f [%.2f-%.2f]; inside the embed, sgemm took p50 "
	       "%.3f ms [%.3f-%.3f] (median [min-max] of %d runs)\n",
	       what, nq, tokens / (double)nq, qs[0].ncalls, se.med, se.lo, se.hi,
	       sf.med, sf.lo, sf.hi, sr.med, sr.lo, sr.hi, si.med, si.lo, si.hi,
	       runs);
	free(ti);
	free(pi);
	free(te);
	free(tf);
	free(pe);
	free(pf);
	free(pr);
}

/* k queries per use_lite_embed_batch() call against k single calls */
static void bench_batch(const struct embedder *e, struct query *qs, size_t nq,
			size_t k, int runs)
{
	const char **texts = malloc(k * sizeof(*texts));
	size_t *lens = malloc(k * sizeof(*lens)), i, j, nb = nq / k;
	float *out = malloc(k * USE_LITE_DIM * sizeof(float));
	double *ps = malloc((size_t)runs * sizeof(double));
	double *pb = malloc((size_t)runs * sizeof(double));
	double *pr = malloc((size_t)runs * sizeof(double));
	double *ts = malloc(nb * sizeof(double)), *tb = malloc(nb * sizeof(double)), t0;
	struct stat3 ss, sb, sr;
	int r;

	for (r = -1; r < runs; r++) {
		for (i = 0; i < nb; i++) {
			for (j = 0; j < k; j++) {
				texts[j] = qs[i * k + j].text;
				lens[j] = qs[i * k + j].len;
			}
			t0 = now();
			for (j = 0; j < k; j++)
				embedder_embed(e, texts[j], lens[j], out);
			ts[i] = (now() - t0) / (double)k;
			t0 = now();
			use_lite_embed_batch(e, texts, lens, k, out);
			tb[i] = (now() - t0) / (double)k;
		}
		if (r < 0)
			continue;
		ps[r] = median(ts, nb) * 1e3;
		pb[r] = median(tb, nb) * 1e3;
		pr[r] = ps[r] / pb[r];
	}
	ss = summarise(ps, (size_t)runs);
	sb = summarise(pb, (size_t)runs);
	sr = summarise(pr, (size_t)runs);
	printf("batch of %zu short queries: per query %.3f ms [%.3f-%.3f] in one "
	       "call vs %.3f ms [%.3f-%.3f] one by one: %.2fx [%.2f-%.2f]\n", k,
	       sb.med, sb.lo, sb.hi, ss.med, ss.lo, ss.hi, sr.med, sr.lo, sr.hi);
	free(texts);
	free(lens);
	free(out);
	free(ps);
	free(pb);
	free(pr);
	free(ts);
	free(tb);
}

int main(int argc, char **argv)
{
	const char *model = NULL, *corpus = SEMCACHE_SOURCE_ROOT
		"/../shared/data/corpus/qqp_questions.txt";
	struct query *shorts, *longs;
	size_t nshort = 200, nlong = 40, ns, nl, i;
	int runs = 7;
	struct embedder *e = NULL;
	char err[512], spec[4200];

	for (i = 1; i < (size_t)argc; i++) {
		if (!strcmp(argv[i], "--model") && i + 1 < (size_t)argc)
			model = argv[++i];
		else if (!strcmp(argv[i], "--corpus") && i + 1 < (size_t)argc)
			corpus = argv[++i];
		else if (!strcmp(argv[i], "--runs") && i + 1 < (size_t)argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ci")) {
			runs = 2;
			nshort = 16;
			nlong = 4;
		} else {
			fprintf(stderr, "usage: use_lite_bench [--model DIR] [--runs N] "
				"[--corpus FILE] [--ci]\n");
			return 2;
		}
	}
	if (runs < 1)
		runs = 1;
	/* the linker may have dropped the BLAS the index library would use
	 * (this file defines cblas_sgemm): then load it here, one thread */
	real_sgemm = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
	if (!real_sgemm) {
		void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_GLOBAL);
		void (*set)(int) = h ? (void (*)(int))dlsym(h,
			"openblas_set_num_threads") : NULL;

		real_sgemm = h ? (sgemm_fn)dlsym(h, "cblas_sgemm") : NULL;
		if (set)
			set(1);
	}
	if (!real_sgemm) {
		fprintf(stderr, "use_lite_bench: no cblas_sgemm in the libraries\n");
		return 1;
	}
	{
		Dl_info info;

		if (dladdr((void *)real_sgemm, &info))
			printf("use_lite_bench: cblas_sgemm from %s\n", info.dli_fname);
	}
	snprintf(spec, sizeof(spec), model ? "use-lite:%s" : "use-lite",
		 model ? model : "");
	if (embedder_new_spec(spec, &e, err, sizeof(err))) {
		printf("skip: %s\n", err);
		return 77;
	}
	scratch_a = calloc(128 * 4 * 1536, sizeof(float));
	scratch_c = calloc(128 * 4 * 1536, sizeof(float));
	for (i = 0; i < 128 * 4 * 1536; i++)
		scratch_a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
	shorts = calloc(nshort, sizeof(*shorts));
	longs = calloc(nlong, sizeof(*longs));
	ns = load_queries(e, corpus, shorts, nshort, false);
	nl = load_queries(e, corpus, longs, nlong, true);
	printf("use_lite_bench: %s, one thread\n", e->name);
	bench("short", e, shorts, ns, runs);
	bench("long", e, longs, nl, runs);
	bench_batch(e, shorts, ns, 4, runs);
	bench_batch(e, shorts, ns, 16, runs);
	for (i = 0; i < ns; i++) {
		free(shorts[i].text);
		free(shorts[i].calls);
	}
	for (i = 0; i < nl; i++) {
		free(longs[i].text);
		free(longs[i].calls);
	}
	free(shorts);
	free(longs);
	free(scratch_a);
	free(scratch_c);
	embedder_free(e);
	return 0;
}
