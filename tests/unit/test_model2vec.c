/*
 * test_model2vec.c - unit tests for index/embed/model2vec.c.
 *
 * Against the shared fixture (../shared/data/models/model2vec-fixture, or
 * $SEMCACHE_SHARED/data/...): the "hello" reference vector, and agreement
 * to 1e-5 with the fixture's reference_encoder.py (the oracle, run with
 * python3) on 1000 strings generated here deterministically: ASCII,
 * punctuation, accents, final sigma, CJK, emoji, zero-width and control
 * characters, odd white space and inputs up to ~20 KB. Prints microseconds
 * per query and checks several threads get identical vectors. That part
 * runs as "test_model2vec fixture" and skips (exit 77), saying why, when
 * the fixture or python3 is absent.
 *
 * Always: a tiny WordPiece model with F16 embeddings and no weights, written
 * by the test into a temp directory (hand-computable vectors), models
 * crafted with token ids past their rows (refused at load), and the
 * errors for a relative path, a missing directory and a broken header.
 */
#include "embed.h"
#include "check.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define NSTRINGS 1000

static char fixture[2048];

static bool find_fixture(void)
{
	const char *shared = getenv("SEMCACHE_SHARED");
	const char *root = getenv("SEMCACHE_SOURCE_ROOT");
	struct stat st;

	if (shared)
		snprintf(fixture, sizeof(fixture),
			 "%s/data/models/model2vec-fixture", shared);
	else
		snprintf(fixture, sizeof(fixture),
			 "%s/../shared/data/models/model2vec-fixture",
			 root ? root : "..");
	if (fixture[0] != '/') {
		char cwd[1024], tmp[sizeof(fixture) + 1100];

		if (!getcwd(cwd, sizeof(cwd)))
			return false;
		snprintf(tmp, sizeof(tmp), "%s/%s", cwd, fixture);
		snprintf(fixture, sizeof(fixture), "%.2000s", tmp);
	}
	return stat(fixture, &st) == 0 && S_ISDIR(st.st_mode);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Pieces the generator strings together. */
static const char *const pieces[] = {
	"hello", "Hello", "WORLD", "what", "is", "the", "best", "way", "to",
	"learn", "python", "programming", "?", "!", ".", ",", "'s", "don't",
	"(c++)", "#tag", "$100", "50%", "a/b", "x=y", "[unk]", "[UNK]", "---",
	"\"quoted\"", "e-mail", "3.14159", "2024-01-01", "https://ex.com/a?b=c",
	"caf\xc3\xa9", "na\xc3\xafve", "\xc3\xb1" "and\xc3\xba", "stra\xc3\x9f" "e",
	"\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xa3\xce\xb1\xcf\x82",
	"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
	"\xe4\xb8\xad\xe6\x96\x87", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	"\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf",
	"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
	"\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
	"e\xcc\x81", "\xe2\x80\x8d", "\xe2\x80\x8b", "\xc2\xa0", "\xe2\x80\xa8",
	"\xe2\x80\x83", "\t", "\n", "\r\n", "  ", "\x01", "\x7f",
	"\xef\xbf\xbd", "\xee\x80\x80", "\xc4\xb0stanbul", "\xef\xbc\xa1\xef\xbc\xa2",
	"\xe2\x84\xa2", "\xc2\xbd", "\xe2\x80\x9csmart\xe2\x80\x9d", "\xe2\x80\x94",
	"\xc3\x85ngstr\xc3\xb6m", "\xf0\x9d\x90\x80", "\xea\xb0\x80\xeb\x82\x98",
	"", " ",
};

#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

static char *gen(uint64_t *seed, size_t i)
{
	size_t words = (i % 50 == 7) ? 2000 + rnd(seed) % 2000 :
		       (i % 10 == 3) ? 100 + rnd(seed) % 200 : rnd(seed) % 16;
	size_t cap = words * 24 + 8, len = 0, w;
	char *s = malloc(cap);

	for (w = 0; w < words; w++) {
		const char *p = pieces[rnd(seed) % NPIECES];
		size_t pl = strlen(p);

		if (len + pl + 2 >= cap)
			break;
		memcpy(s + len, p, pl);
		len += pl;
		if (rnd(seed) % 4)
			s[len++] = ' ';
	}
	s[len] = '\0';
	return s;
}

/* Run the oracle on strings; returns a json array of vectors or NULL. */
static struct json_object *oracle(char **strs, size_t n)
{
	char dir[] = "/tmp/m2v_oracleXXXXXX", in[128], out[128], cmd[8192];
	struct json_object *arr = json_object_new_array(), *res = NULL;
	size_t i;
	int rc;

	if (!mkdtemp(dir))
		return NULL;
	snprintf(in, sizeof(in), "%s/in.json", dir);
	snprintf(out, sizeof(out), "%s/out.json", dir);
	for (i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(strs[i]));
	json_object_to_file_ext(in, arr, JSON_C_TO_STRING_PLAIN);
	json_object_put(arr);
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import sys, json, importlib.util\n"
		 "spec = importlib.util.spec_from_file_location(\"ref\", sys.argv[1] + \"/reference_encoder.py\")\n"
		 "ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)\n"
		 "strs = json.load(open(sys.argv[2], encoding=\"utf-8\"))\n"
		 "json.dump([ref.embed(s) for s in strs], open(sys.argv[3], \"w\"))\n"
		 "' '%s' '%s' '%s'", fixture, in, out);
	rc = system(cmd);
	if (rc == 0)
		res = json_object_from_file(out);
	else
		fprintf(stderr, "  oracle failed: status %d\n", rc);
	unlink(in);
	unlink(out);
	rmdir(dir);
	return res;
}

static double max_diff(const float *v, struct json_object *ref, int dim)
{
	double m = 0;
	int k;

	if (!ref || (int)json_object_array_length(ref) != dim)
		return INFINITY;
	for (k = 0; k < dim; k++) {
		double d = fabs(v[k] - json_object_get_double(
				    json_object_array_get_idx(ref, (size_t)k)));

		if (d > m)
			m = d;
	}
	return m;
}

struct thread_arg {
	const struct embedder *e;
	char **strs;
	float *want;
	int bad;
};

static void *worker(void *p)
{
	struct thread_arg *a = p;
	float v[1024];
	size_t i;

	for (i = 0; i < 200; i++) {
		embedder_embed(a->e, a->strs[i], strlen(a->strs[i]), v);
		if (memcmp(v, a->want + i * (size_t)a->e->dim,
			   (size_t)a->e->dim * sizeof(float)))
			a->bad++;
	}
	return NULL;
}

static void test_fixture(void)
{
	struct embedder *e = NULL;
	struct json_object *ref, *out;
	char err[256], path[2200], *strs[NSTRINGS], *hello;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	float *mine;
	double worst = 0, t0, t1;
	struct timespec ts;
	size_t i, bad = 0, total = 0, len;
	int ret;

	if (!find_fixture()) {
		CHECK_SKIP("fixture '%s' absent (needs ../shared)", fixture);
		return;
	}
	snprintf(path, sizeof(path), "model2vec:%s", fixture);
	ret = embedder_new_spec(path, &e, err, sizeof(err));
	CHECK_EQ_INT(ret, 0);
	if (ret) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK_EQ_INT(e->dim, 64);
	CHECK(!e->remote);
	CHECK(strncmp(e->name, "model2vec-64-", 13) == 0);

	/* the reference vector: "hello" a thousand times */
	snprintf(path, sizeof(path), "%s/reference_embedding_hello_x1000.json",
		 fixture);
	ref = json_object_from_file(path);
	CHECK(ref != NULL);
	len = 6 * 1000;
	hello = malloc(len + 1);
	for (i = 0; i < 1000; i++)
		memcpy(hello + 6 * i, "hello ", 6);
	hello[len - 1] = '\0';
	mine = calloc((size_t)NSTRINGS * 64, sizeof(float));
	CHECK_EQ_INT(embedder_embed(e, hello, len - 1, mine), 0);
	worst = max_diff(mine, json_object_array_get_idx(ref, 0), 64);
	printf("hello x1000: max abs diff %.3g\n", worst);
	CHECK(worst < 1e-6);
	json_object_put(ref);
	free(hello);

	/* 1000 varied strings against the oracle */
	for (i = 0; i < NSTRINGS; i++)
		strs[i] = gen(&seed, i);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = ts.tv_sec + ts.tv_nsec / 1e9;
	for (i = 0; i < NSTRINGS; i++) {
		CHECK_EQ_INT(embedder_embed(e, strs[i], strlen(strs[i]),
					    mine + i * 64), 0);
		total += strlen(strs[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t1 = ts.tv_sec + ts.tv_nsec / 1e9;
	printf("embedded %d strings (%zu bytes) in %.1f us per string\n",
	       NSTRINGS, total, (t1 - t0) * 1e6 / NSTRINGS);
	{
		const char *q = "What is the best way to learn Python programming?";
		float v[64];
		int k, reps = 20000;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		t0 = ts.tv_sec + ts.tv_nsec / 1e9;
		for (k = 0; k < reps; k++)
			embedder_embed(e, q, strlen(q), v);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t1 = ts.tv_sec + ts.tv_nsec / 1e9;
		printf("a 50-byte question: %.2f us per query\n",
		       (t1 - t0) * 1e6 / reps);
	}

	if (system("python3 -c 'import json' >/dev/null 2>&1") != 0) {
		CHECK_SKIP("python3 absent, oracle comparison not run");
	} else {
		out = oracle(strs, NSTRINGS);
		CHECK(out != NULL);
		if (out) {
			CHECK_EQ_INT(json_object_array_length(out), NSTRINGS);
			worst = 0;
			for (i = 0; i < NSTRINGS && i < json_object_array_length(out); i++) {
				double d = max_diff(mine + i * 64,
						    json_object_array_get_idx(out, i), 64);

				if (d > 1e-5) {
					if (bad++ < 5)
						fprintf(stderr, "  string %zu differs by %g: '%.60s'\n",
							i, d, strs[i]);
				}
				if (d > worst)
					worst = d;
			}
			printf("oracle: %d strings, max abs diff %.3g, %zu over 1e-5\n",
			       NSTRINGS, worst, bad);
			CHECK_EQ_INT(bad, 0);
			json_object_put(out);
		}
	}

	/* reentrant: four threads, same vectors */
	{
		struct thread_arg a[4];
		pthread_t th[4];
		int k;

		for (k = 0; k < 4; k++) {
			a[k] = (struct thread_arg){ e, strs, mine, 0 };
			pthread_create(&th[k], NULL, worker, &a[k]);
		}
		for (k = 0; k < 4; k++) {
			pthread_join(th[k], NULL);
			CHECK_EQ_INT(a[k].bad, 0);
		}
	}
	for (i = 0; i < NSTRINGS; i++)
		free(strs[i]);
	free(mine);
	embedder_free(e);
}

static void write_file(const char *dir, const char *name, const void *data,
		       size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	fwrite(data, 1, len, f);
	fclose(f);
}

/* A model directory: model.safetensors holding one "embeddings" tensor
 * (dtype, rows x dim, the bytes), tokenizer.json and config.json. */
static void write_model(const char *dir, const char *dtype, int rows, int dim,
			const void *emb, size_t emb_len, const char *tokenizer,
			const char *config)
{
	char hdr[256];
	unsigned char file[1024];
	uint64_t hl;
	int n;

	n = snprintf(hdr, sizeof(hdr), "{\"embeddings\":{\"dtype\":\"%s\","
		     "\"shape\":[%d,%d],\"data_offsets\":[0,%zu]}}", dtype,
		     rows, dim, emb_len);
	hl = (uint64_t)n;
	memcpy(file, &hl, 8);   /* little-endian host assumed (x86, arm) */
	memcpy(file + 8, hdr, (size_t)n);
	memcpy(file + 8 + n, emb, emb_len);
	write_file(dir, "model.safetensors", file, 8 + (size_t)n + emb_len);
	write_file(dir, "tokenizer.json", tokenizer, strlen(tokenizer));
	write_file(dir, "config.json", config, strlen(config));
}

static void remove_dir(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

/* A 4-dimensional WordPiece model: vocab [UNK], hello, world, ##s, !, with
 * F16 embeddings (unit vectors, exact in half precision). */
static void test_wordpiece(void)
{
	static const char tokenizer[] =
		"{\"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true,"
		" \"handle_chinese_chars\": true, \"strip_accents\": null,"
		" \"lowercase\": true},"
		" \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
		" \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\","
		" \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100,"
		" \"vocab\": {\"[UNK]\": 0, \"hello\": 1, \"world\": 2, \"##s\": 3, \"!\": 4}}}";
	/* rows: [UNK]=0, hello=e0, world=e1, ##s=e2, !=e3 (F16 1.0 = 0x3c00) */
	uint16_t emb[5][4] = { { 0 }, { 0x3c00, 0, 0, 0 }, { 0, 0x3c00, 0, 0 },
			       { 0, 0, 0x3c00, 0 }, { 0, 0, 0, 0x3c00 } };
	char dir[] = "/tmp/m2v_wpXXXXXX", err[256], spec[300];
	struct embedder *e = NULL;
	float v[4];
	int ret;

	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	write_model(dir, "F16", 5, 4, emb, sizeof(emb), tokenizer,
		    "{\"normalize\": false}");
	snprintf(spec, sizeof(spec), "model2vec:%s", dir);
	ret = embedder_new_spec(spec, &e, err, sizeof(err));
	CHECK_EQ_INT(ret, 0);
	if (ret) {
		fprintf(stderr, "  %s\n", err);
		goto out;
	}
	CHECK_EQ_INT(e->dim, 4);
	/* "Hello worlds!" -> hello, world, ##s, ! : mean of four unit vectors */
	CHECK_EQ_INT(embedder_embed(e, "Hello worlds!", 13, v), 0);
	CHECK(fabsf(v[0] - 0.25f) < 1e-7 && fabsf(v[1] - 0.25f) < 1e-7 &&
	      fabsf(v[2] - 0.25f) < 1e-7 && fabsf(v[3] - 0.25f) < 1e-7);
	/* an unknown word adds nothing; "hellos" = hello + ##s */
	CHECK_EQ_INT(embedder_embed(e, "zzz hellos", 10, v), 0);
	CHECK(fabsf(v[0] - 0.5f) < 1e-7 && fabsf(v[2] - 0.5f) < 1e-7 && v[1] == 0);
	/* nothing known: the zero vector, not an error */
	CHECK_EQ_INT(embedder_embed(e, "\xff\xfe zzz", 6, v), 0);
	CHECK(v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 0);
	embedder_free(e);

	/* a broken header is refused with a message */
	write_model(dir, "F16", 5, 8, emb, sizeof(emb), tokenizer, "{}");
	ret = embedder_new_spec(spec, &e, err, sizeof(err));
	CHECK_EQ_INT(ret, -EINVAL);
	CHECK(e == NULL);
	CHECK(strstr(err, "model2vec:") != NULL);
	CHECK(strcmp(embedder_last_error(), err) == 0);
out:
	remove_dir(dir);
}

/*
 * Models crafted so that a token id is past the embedding rows (whoever
 * may write a policy names the model directory): refused at load, with a
 * message, never read out of bounds. Run under ASan or valgrind.
 */
static void test_crafted(void)
{
	static const char *const tokenizers[] = {
		/* WordPiece emits the unknown token's id when "UNK" is written out */
		"{\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": false},"
		" \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
		" \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"UNK\","
		" \"vocab\": {\"a\": 0, \"UNK\": 3}}}",
		/* an ordinary piece past the rows */
		"{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
		" \"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 2}}}",
		/* Unigram: more pieces than rows, the last one the unknown token */
		"{\"pre_tokenizer\": {\"type\": \"Metaspace\"},"
		" \"model\": {\"type\": \"Unigram\", \"unk_id\": 2,"
		" \"vocab\": [[\"\\u2581a\", -1.0], [\"a\", -2.0], [\"UNK\", -3.0]]}}",
	};
	static const char *const want[] = {
		"model2vec: token id 3 (the unknown token) in 'tokenizer.json' is "
		"past the 1 rows of 'model.safetensors'",
		"model2vec: token id 2 in 'tokenizer.json' is past the 1 rows",
		"model2vec: token id 2 (the unknown token) in 'tokenizer.json' is "
		"past the 2 rows",
	};
	const float emb[2][4] = { { 1, 0, 0, 0 }, { 0, 1, 0, 0 } };
	char dir[] = "/tmp/m2v_badXXXXXX", err[256], spec[300];
	struct embedder *e;
	size_t i;

	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	snprintf(spec, sizeof(spec), "model2vec:%s", dir);
	for (i = 0; i < sizeof(tokenizers) / sizeof(tokenizers[0]); i++) {
		int rows = i == 2 ? 2 : 1;
		float v[4];
		int ret;

		e = NULL;
		write_model(dir, "F32", rows, 4, emb, rows * sizeof(emb[0]),
			    tokenizers[i], "{}");
		ret = embedder_new_spec(spec, &e, err, sizeof(err));
		CHECK_EQ_INT(ret, -EINVAL);
		CHECK(e == NULL);
		CHECK(strstr(err, want[i]) != NULL);
		if (!strstr(err, want[i]))
			fprintf(stderr, "  crafted model %zu: got '%s'\n", i, err);
		if (e) {
			/* what the refusal prevents: reading past the rows */
			embedder_embed(e, "UNK b", 5, v);
			embedder_free(e);
		}
	}
	remove_dir(dir);
}

static void test_errors(void)
{
	struct embedder *e = (struct embedder *)1;
	char err[256];

	CHECK_EQ_INT(embedder_new_spec("model2vec:relative/dir", &e, err,
				       sizeof(err)), -EINVAL);
	CHECK(e == NULL);
	CHECK(strstr(err, "'relative/dir' is not an absolute directory") != NULL);
	CHECK_EQ_INT(embedder_new_spec("model2vec:/nonexistent/model", &e, err,
				       sizeof(err)), -ENOENT);
	CHECK(strstr(err, "cannot open '/nonexistent/model/model.safetensors'") != NULL);
	CHECK_EQ_INT(embedder_new_spec("word2vec", &e, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "unknown embedder 'word2vec'") != NULL);
}

/* "model2vec fixture" runs the part that needs ../shared (it may skip);
 * no argument, the parts that always run. */
int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "fixture")) {
		test_fixture();
		return check_done("model2vec fixture");
	}
	test_errors();
	test_wordpiece();
	test_crafted();
	return check_done("model2vec");
}
