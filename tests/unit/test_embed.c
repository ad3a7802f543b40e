/*
 * test_embed.c - the embedder interface and the built-in embedder:
 * lookup by spec, determinism, unit norm (or the zero vector), paraphrases
 * scoring above unrelated text, and hostile input (empty, binary, invalid
 * UTF-8, 1 MiB) giving a valid vector. Scores are checked loosely: exact
 * values belong to semcachefs-eval, not here.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "embed.h"

static double norm2(const float *v, int dim)
{
	double s = 0;
	int i;

	for (i = 0; i < dim; i++)
		s += (double)v[i] * v[i];
	return s;
}

static int all_finite(const float *v, int dim)
{
	int i;

	for (i = 0; i < dim; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

static int is_unit(const float *v, int dim)
{
	return all_finite(v, dim) && fabs(norm2(v, dim) - 1.0) < 1e-4;
}

static int is_zero(const float *v, int dim)
{
	int i;

	for (i = 0; i < dim; i++)
		if (v[i] != 0.0f)
			return 0;
	return 1;
}

static float cosine(const struct embedder *e, const char *a, const char *b)
{
	float va[1024], vb[1024], s = 0;
	int i;

	embedder_embed(e, a, strlen(a), va);
	embedder_embed(e, b, strlen(b), vb);
	for (i = 0; i < e->dim; i++)
		s += va[i] * vb[i];
	return s;
}

struct thread_arg {
	const struct embedder *e;
	const float *want;
	int ok;
};

static void *embed_thread(void *p)
{
	struct thread_arg *a = p;
	const char *q = "how do I reverse a list in python";
	float v[1024];
	int i;

	a->ok = 1;
	for (i = 0; i < 2000; i++) {
		embedder_embed(a->e, q, strlen(q), v);
		if (memcmp(v, a->want, a->e->dim * sizeof(float)))
			a->ok = 0;
	}
	return NULL;
}

int main(void)
{
	struct embedder *e = NULL, *e2 = NULL;
	float a[1024], b[1024];
	char err[128] = "";
	const char *q = "How do I reverse a list in Python?";
	char *big;
	size_t n = 1 << 20, i;
	int ret, dim;

	/* lookup */
	ret = embedder_new_spec("nope", &e, err, sizeof(err));
	CHECK_EQ_INT(ret, -EINVAL);
	CHECK(e == NULL);
	CHECK(!strcmp(err, "unknown embedder 'nope' (known: builtin, model2vec:/PATH/TO/MODEL, http, use-lite, use-lite:/PATH/TO/MODEL)"));
	ret = embedder_new_spec("builtin", &e, err, sizeof(err));
	CHECK_EQ_INT(ret, 0);
	if (ret < 0)
		return check_done("embed");
	CHECK(!strcmp(e->name, "builtin-v1"));
	dim = e->dim;
	CHECK(dim == 256 || dim == 384 || dim == 512);

	/* deterministic, across embedder instances too */
	CHECK_EQ_INT(embedder_embed(e, q, strlen(q), a), 0);
	CHECK_EQ_INT(embedder_embed(e, q, strlen(q), b), 0);
	CHECK(!memcmp(a, b, dim * sizeof(float)));
	CHECK_EQ_INT(embed_builtin_new(&e2), 0);
	if (e2) {
		embedder_embed(e2, q, strlen(q), b);
		CHECK(!memcmp(a, b, dim * sizeof(float)));
		embedder_free(e2);
	}
	CHECK(is_unit(a, dim));

	/* no features: zero vector, not NaN */
	CHECK_EQ_INT(embedder_embed(e, "", 0, a), 0);
	CHECK(is_zero(a, dim));
	CHECK_EQ_INT(embedder_embed(e, NULL, 0, a), 0);
	CHECK(is_zero(a, dim));
	CHECK_EQ_INT(embedder_embed(e, " ?!, \t\n-- ", 11, a), 0);
	CHECK(is_zero(a, dim));
	/* a lone stop word is still a feature */
	embedder_embed(e, "the", 3, a);
	CHECK(is_unit(a, dim));

	/* binary, NULs and invalid UTF-8 */
	embedder_embed(e, "\xff\xfe\x00\x01\xc3\x28\xa0\xa1", 8, a);
	CHECK(is_unit(a, dim));
	embedder_embed(e, "caf\xc3\xa9", 5, a);
	CHECK(is_unit(a, dim));
	embedder_embed(e, "a\xe2\x80", 3, a);	/* cut U+2019 at the end */
	CHECK(is_unit(a, dim));

	/* 1 MiB: all bytes, then one giant word */
	big = malloc(n);
	CHECK(big != NULL);
	if (big) {
		for (i = 0; i < n; i++)
			big[i] = (char)(i * 2654435761u >> 13);
		CHECK_EQ_INT(embedder_embed(e, big, n, a), 0);
		CHECK(is_unit(a, dim));
		memset(big, 'x', n);
		CHECK_EQ_INT(embedder_embed(e, big, n, a), 0);
		CHECK(is_unit(a, dim));
		free(big);
	}

	/* paraphrases above unrelated pairs */
	{
		const char *p1 = "how do I reverse a list in python";
		const char *p2 = "python: reverse a list";
		const char *u1 = "what is the capital of france";
		const char *u2 = "best pizza in new york";
		float para = cosine(e, p1, p2);

		CHECK(para > 0.8f);
		CHECK(para > cosine(e, p1, u1) + 0.5f);
		CHECK(para > cosine(e, p1, u2) + 0.5f);
		CHECK(cosine(e, "What are the best books on machine learning?",
			     "Which books about machine learning are best?") >
		      cosine(e, "What are the best books on machine learning?",
			     "What is the best way to learn guitar?"));
		/* spacing and a sentence's first capital change nothing */
		CHECK(cosine(e, "Reverse  a\tlist ", "reverse a list") > 0.9999f);
		/* a capital inside a sentence marks a likely name and weighs
		 * more, so case matters there, but only a little */
		CHECK(cosine(e, "how to learn Python", "how to learn python") <
		      0.9999f);
		CHECK(cosine(e, "how to learn Python", "how to learn python") >
		      0.9f);
		/* plural and -ing stems meet */
		CHECK(cosine(e, "sorting lists", "sort list") > 0.6f);
	}

	/* reentrant: threads embedding at once get identical vectors */
	{
		const char *t = "how do I reverse a list in python";
		struct thread_arg args[4];
		pthread_t th[4];
		int k, started = 0;

		embedder_embed(e, t, strlen(t), b);
		for (k = 0; k < 4; k++) {
			args[k] = (struct thread_arg){ .e = e, .want = b };
			if (pthread_create(&th[k], NULL, embed_thread, &args[k]))
				break;
			started++;
		}
		CHECK_EQ_INT(started, 4);
		for (k = 0; k < started; k++) {
			pthread_join(th[k], NULL);
			CHECK(args[k].ok);
		}
	}

	embedder_free(e);
	embedder_free(NULL);
	return check_done("embed");
}
