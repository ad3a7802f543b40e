/*
 * fuzz_embed.c - libFuzzer harness for query normalisation and the
 * built-in embedder.
 *
 * textnorm() must write at most len bytes, be idempotent, and never return
 * more than it was given; the built-in embedder must turn any bytes
 * (binary, invalid UTF-8, huge runs) into finite floats with norm 1 (or all
 * zeros for text without features), deterministically.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "textnorm.h"

#define FUZZ_NAME "fuzz_embed"
#include "fuzz_check.h"

static struct embedder *emb;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out, *out2;
	float *v1, *v2;
	size_t n, n2;
	double norm = 0;

	if (!emb && embed_builtin_new(&emb))
		abort();
	/* exact-size heap buffers: ASan catches any write past len */
	out = malloc(size ? size : 1);
	out2 = malloc(size ? size : 1);
	FUZZ_CHECK(out && out2);
	n = textnorm((const char *)data, size, out);
	FUZZ_CHECK(n <= size);
	n2 = textnorm(out, n, out2);
	FUZZ_CHECK(n2 == n && !memcmp(out, out2, n));

	v1 = malloc(sizeof(float) * (size_t)emb->dim);
	v2 = malloc(sizeof(float) * (size_t)emb->dim);
	FUZZ_CHECK(v1 && v2);
	FUZZ_CHECK(embedder_embed(emb, (const char *)data, size, v1) == 0);
	FUZZ_CHECK(embedder_embed(emb, (const char *)data, size, v2) == 0);
	FUZZ_CHECK(!memcmp(v1, v2, sizeof(float) * (size_t)emb->dim));
	for (int i = 0; i < emb->dim; i++) {
		FUZZ_CHECK(isfinite(v1[i]));
		norm += (double)v1[i] * v1[i];
	}
	FUZZ_CHECK(norm == 0 || fabs(norm - 1.0) < 1e-3);
	free(v1);
	free(v2);
	free(out);
	free(out2);
	return 0;
}
