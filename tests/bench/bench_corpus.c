/*
 * bench_corpus.c - the benchmarks' question corpus (see bench_corpus.h).
 *
 * What not: no sampling or shuffling; callers pick questions by index.
 */
#include "bench_corpus.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "textnorm.h"

static void oom(void)
{
	fprintf(stderr, "bench: out of memory loading the corpus\n");
	exit(1);
}

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
			oom();
		if (c->n == cap) {
			cap = cap ? cap * 2 : 65536;
			c->q = realloc(c->q, cap * sizeof(*c->q));
			if (!c->q)
				oom();
		}
		c->q[c->n] = strdup(line);
		if (!c->q[c->n])
			oom();
		c->n++;
	}
	fclose(f);
	u64map_release(&seen);
	return 0;
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
