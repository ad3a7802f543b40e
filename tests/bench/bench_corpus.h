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

/*
 * Question i of a fill of more questions than the corpus has: q[i] for
 * i < fillable, else a corpus-derived variant, "A B": two different
 * fillable questions joined by a space. Variant j = i - fillable is round
 * k = j / fillable, a = j % fillable, b = (a + 1 + k * BENCH_VARIANT_STEP)
 * mod fillable; every step is below fillable / 2, so no pair {a, b} comes
 * twice in either order (order hardly moves a lexical embedding). Only
 * fillable questions are used, never held-out ones. Returns q[i] or buf
 * (truncated to size); i beyond bench_variant_capacity() exits.
 */
#define BENCH_VARIANT_STEP 5003
const char *bench_question(char *const *q, size_t fillable, size_t i,
			   char *buf, size_t size);
/* How many questions bench_question() can give for a corpus of fillable. */
size_t bench_variant_capacity(size_t fillable);
/*
 * Exits (bench_die) when two of the first n questions of bench_question(),
 * or one of them and one of the held-out extra[0..nextra), are equal under
 * the engine's normalisation (an exact hit of each other).
 */
void bench_variants_check(char *const *q, size_t fillable, size_t n,
			  char *const *extra, size_t nextra);

/* The synthetic near-paraphrase: first word dropped, punctuation removed. */
void bench_paraphrase(const char *src, char *out, size_t size);

#endif
