/*
 * bench_corpus.c - the benchmarks' question corpus (see bench_corpus.h).
 *
 * Beyond the corpus, bench_question() makes deterministic variants: two
 * fillable questions joined (see bench_corpus.h for the pairing).
 *
 * What not: no sampling or shuffling; callers pick questions by index.
 */
#include "bench_corpus.h"
#include "bench_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "textnorm.h"

int bench_corpus_load(struct bench_corpus *c, const char *path)
{
	struct u64map seen;
	char line[8192], norm[8192];
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	u64map_init(&seen);
	while (fgets(line, sizeof(line), f)) {
		size_t len, nl;
		uint64_t h;

		line[strcspn(line, "\r\n")] = '\0';
		len = strlen(line);
		if (len < 8)
			continue;
		nl = textnorm(line, len, norm);
		h = hash64(norm, nl, 7) | 1;
		if (u64map_get(&seen, h))
			continue;
		if (u64map_put(&seen, h, (void *)1))
			bench_die("out of memory loading the corpus");
		if (c->n == cap) {
			cap = cap ? cap * 2 : 65536;
			c->q = bench_xrealloc(c->q, cap, sizeof(*c->q));
		}
		c->q[c->n] = strdup(line);
		if (!c->q[c->n])
			bench_die("out of memory loading the corpus");
		c->n++;
	}
	fclose(f);
	u64map_release(&seen);
	return 0;
}

void bench_corpus_need(struct bench_corpus *c, const char *path)
{
	int rc = bench_corpus_load(c, path);

	if (rc) {
		printf("SKIP: corpus '%s' not readable (%s); get ../shared/data or pass --corpus\n",
		       path, strerror(-rc));
		exit(77);
	}
}

void bench_paraphrase(const char *src, char *out, size_t size)
{
	const char *p = strchr(src, ' ');
	size_t o = 0;

	p = p ? p + 1 : src;
	for (; *p && o + 1 < size; p++)
		if (!(*p > 0 && *p < 0x7f && ispunct((unsigned char)*p)))
			out[o++] = *p;
	out[o] = '\0';
}

size_t bench_variant_capacity(size_t fillable)
{
	size_t rounds = fillable < 4 ? 0 : (fillable / 2 - 2) / BENCH_VARIANT_STEP + 1;

	return fillable + rounds * fillable;
}

const char *bench_question(char *const *q, size_t fillable, size_t i,
			   char *buf, size_t size)
{
	size_t j, k, a, b;

	if (i < fillable)
		return q[i];
	if (i >= bench_variant_capacity(fillable))
		bench_die("question %zu is beyond the %zu the corpus and its variants give",
			  i, bench_variant_capacity(fillable));
	j = i - fillable;
	k = j / fillable;
	a = j % fillable;
	b = (a + 1 + k * BENCH_VARIANT_STEP) % fillable;
	snprintf(buf, size, "%s %s", q[a], q[b]);
	return buf;
}

/* Puts text's normalised hash into seen; false when it was there. */
static bool seen_put(struct u64map *seen, const char *text, char *norm)
{
	size_t nl = textnorm(text, strlen(text), norm);
	uint64_t h = hash64(norm, nl, 7) | 1;

	if (u64map_get(seen, h))
		return false;
	if (u64map_put(seen, h, (void *)1))
		bench_die("out of memory checking the variants");
	return true;
}

void bench_variants_check(char *const *q, size_t fillable, size_t n,
			  char *const *extra, size_t nextra)
{
	struct u64map seen;
	char *buf = malloc(16384), *norm = malloc(16384);

	if (!buf || !norm)
		bench_die("out of memory checking the variants");
	u64map_init(&seen);
	for (size_t i = 0; i < nextra; i++)
		seen_put(&seen, extra[i], norm);
	for (size_t i = 0; i < n; i++) {
		const char *t = bench_question(q, fillable, i, buf, 8192);

		if (!seen_put(&seen, t, norm))
			bench_die("question %zu '%.80s' repeats an earlier one (or a held-out one)",
				  i, t);
	}
	u64map_release(&seen);
	free(norm);
	free(buf);
}
