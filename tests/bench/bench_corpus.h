/*
 * bench_corpus.h - the benchmarks' question corpus and synthetic
 * paraphrases, shared by semcache_bench and multihost_bench.
 */
#ifndef SEMCACHE_BENCH_CORPUS_H
#define SEMCACHE_BENCH_CORPUS_H

#include <stddef.h>

struct bench_corpus {
	char **q;   /* unique (after textnorm) questions of 8 bytes or more */
	size_t n;
};

/*
 * Load one question per line, dropping duplicates under the engine's own
 * normalisation (so no two count as an exact hit of each other). 0, or
 * -errno when the file cannot be opened; out of memory exits (bench_die).
 */
int bench_corpus_load(struct bench_corpus *c, const char *path);
/* The same, but a corpus that cannot be read prints SKIP (naming path)
 * and exits 77: the benchmark has nothing to measure. */
void bench_corpus_need(struct bench_corpus *c, const char *path);

/* The synthetic near-paraphrase: first word dropped, punctuation removed. */
void bench_paraphrase(const char *src, char *out, size_t size);

#endif
