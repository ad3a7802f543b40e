/*
 * bench_corpus.c - the benchmarks' question corpus (see bench_corpus.h).
 *
 * What not: no sampling or shuffling; callers pick questions by index.
 */
#include "bench_corpus.h"
#include "bench_util.h"

#include <ctype.h>
#include <errno.h>
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
