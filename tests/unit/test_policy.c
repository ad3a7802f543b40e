/*
 * test_policy.c - unit tests for policy/.
 *
 * Covers every key in block and flow style, the defaults, three-level
 * inheritance with provenance, each kind of error with its message and (for
 * several) exact line and column, duration and size round trips, the key
 * documentation, and robustness against random and mutated input. Run it
 * under -fsanitize=address,undefined to catch leaks on the error paths.
 *
 * It does not test reading policy.yaml from disk or the FUSE .policy file:
 * those belong to fs/ and the bats tests.
 */
#include "policy.h"
#include "check.h"
#include "policy_readback.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)

static struct policy_file *parse_ok(const char *yaml, const char *source)
{
	struct policy_file *f = NULL;
	struct policy_error err;
	int r = policy_file_parse(yaml, strlen(yaml), source, &f, &err);

	CHECK_EQ_INT(r, 0);
	if (r != 0)
		fprintf(stderr, "  unexpected error %d:%d %s\n  in: %s\n",
			err.line, err.column, err.message, yaml);
	return f;
}

/* Parse must fail with -EINVAL at line:column (0 = don't care) and a
 * message containing want. */
static void expect_error(const char *yaml, int line, int column, const char *want)
{
	struct policy_file *f = (struct policy_file *)&f; /* must be reset */
	struct policy_error err;
	int r = policy_file_parse(yaml, strlen(yaml), "/t", &f, &err);

	CHECK_EQ_INT(r, -EINVAL);
	CHECK(f == NULL);
	if (r == 0)
		policy_file_free(f);
	if (line) {
		CHECK_EQ_INT(err.line, line);
		CHECK_EQ_INT(err.column, column);
	} else {
		CHECK(err.line >= 1 && err.column >= 1);
	}
	CHECK(strstr(err.message, want) != NULL);
	CHECK(err.message[0] >= 'a' && err.message[0] <= 'z');
	if (!strstr(err.message, want) || (line && (err.line != line ||
						     err.column != column)))
		fprintf(stderr, "  got %d:%d '%s'\n  want %d:%d '%s'\n  in: %s\n",
			err.line, err.column, err.message, line, column, want,
			yaml);
}

/* Is there a line "key: value ... # source" in the formatted policy? */
static int has_line(const char *text, const char *key_value, const char *source)
{
	size_t kv = strlen(key_value);
	const char *p = text;

	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > kv && strncmp(p, key_value, kv) == 0 && p[kv] == ' ') {
			const char *hash = memchr(p, '#', n);
			size_t tail = hash ? n - (size_t)(hash - p) : 0;

			return hash && tail == strlen(source) + 2 &&
			       strncmp(hash + 2, source, strlen(source)) == 0;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static void test_defaults(void)
{
	struct policy p;
	char buf[2048];
	int n, k;

	memset(&p, 0x5a, sizeof(p));
	policy_defaults(&p);
	CHECK(p.threshold > 0.8999 && p.threshold < 0.9001);
	CHECK(p.precision == 0);    /* unset: threshold decides */
	CHECK_EQ_INT(p.ttl, 7 * 86400);
	CHECK_EQ_INT(p.ttl_mode, POLICY_TTL_ABSOLUTE);
	CHECK_EQ_INT(p.quota_entries, 0);
	CHECK_EQ_INT(p.quota_bytes, 0);
	CHECK_EQ_INT(p.eviction, POLICY_EVICT_LRU);
	CHECK(p.cache);
	CHECK_EQ_INT(p.context, POLICY_CONTEXT_MATCH);
	CHECK(p.context_threshold > 0.9699 && p.context_threshold < 0.9701);
	CHECK_EQ_INT(p.query_bytes, 64 * 1024);
	CHECK_EQ_INT(p.response_bytes, 16 * MIB);
	CHECK_EQ_INT(p.hnsw_m, 32);
	CHECK_EQ_INT(p.hnsw_ef_construction, 128);
	CHECK_EQ_INT(p.hnsw_ef_search, 32);
	CHECK(strcmp(p.embedder, "builtin") == 0);
	CHECK(strcmp(p.http_url, "") == 0);
	CHECK(strcmp(p.http_model, "") == 0);
	CHECK_EQ_INT(p.http_dimensions, 0);
	CHECK(strcmp(p.http_api_key_env, "") == 0);
	CHECK_EQ_INT(p.http_timeout_ms, 2000);
	CHECK_EQ_INT(p.http_retries, 1);
	CHECK_EQ_INT(p.http_batch, 16);
	for (k = 0; k < POLICY_NKEYS; k++)
		CHECK(p.source[k] == NULL);

	n = policy_format(&p, buf, sizeof(buf));
	CHECK_EQ_INT(n, (int)strlen(buf));
	CHECK(has_line(buf, "threshold: 0.9", "default"));
	CHECK(has_line(buf, "precision: 0", "default"));
	/* printed next to threshold */
	CHECK(strstr(buf, "threshold: 0.9                  # default\n"
			  "precision: 0                    # default\n") == buf);
	CHECK(has_line(buf, "ttl: 7d", "default"));
	CHECK(has_line(buf, "ttl_mode: absolute", "default"));
	CHECK(has_line(buf, "quota.entries: 0", "default"));
	CHECK(has_line(buf, "quota.bytes: 0", "default"));
	CHECK(has_line(buf, "eviction: lru", "default"));
	CHECK(has_line(buf, "cache: true", "default"));
	CHECK(has_line(buf, "context: match", "default"));
	CHECK(has_line(buf, "context_threshold: 0.97", "default"));
	CHECK(has_line(buf, "limits.query_bytes: 64KiB", "default"));
	CHECK(has_line(buf, "limits.response_bytes: 16MiB", "default"));
	CHECK(has_line(buf, "hnsw.m: 32", "default"));
	CHECK(has_line(buf, "hnsw.ef_construction: 128", "default"));
	CHECK(has_line(buf, "hnsw.ef_search: 32", "default"));
	CHECK(has_line(buf, "embedder: builtin", "default"));
	CHECK(has_line(buf, "http.url: \"\"", "default"));
	CHECK(has_line(buf, "http.timeout: 2s", "default"));
	CHECK(has_line(buf, "http.batch: 16", "default"));

	/* one line per key, in enum order */
	{
		int lines = 0;
		const char *q;

		for (q = buf; *q; q++)
			lines += *q == '\n';
		CHECK_EQ_INT(lines, POLICY_NKEYS);
		CHECK(strncmp(buf, "threshold: ", 11) == 0);
	}
	for (k = 0; k < POLICY_NKEYS; k++)
		CHECK(policy_key_name(k) && strstr(buf, policy_key_name(k)));
	CHECK(strcmp(policy_key_name(POLICY_QUOTA_ENTRIES), "quota.entries") == 0);
	CHECK(strcmp(policy_key_name(POLICY_HNSW_EF_SEARCH), "hnsw.ef_search") == 0);
}

static void check_all_set(const struct policy_file *f, const char *style)
{
	struct policy p;
	int k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		CHECK(policy_file_sets(f, k));
		if (!policy_file_sets(f, k))
			fprintf(stderr, "  %s: %s not set\n", style,
				policy_key_name(k));
	}
	policy_defaults(&p);
	policy_apply(&p, f);
	CHECK(p.threshold > 0.4999 && p.threshold < 0.5001);
	CHECK(p.precision > 0.6999 && p.precision < 0.7001);
	CHECK_EQ_INT(p.ttl, 2 * 3600);
	CHECK_EQ_INT(p.ttl_mode, POLICY_TTL_SLIDING);
	CHECK_EQ_INT(p.quota_entries, 10);
	CHECK_EQ_INT(p.quota_bytes, 2 * GIB);
	CHECK_EQ_INT(p.eviction, POLICY_EVICT_FIFO);
	CHECK(!p.cache);
	CHECK_EQ_INT(p.context, POLICY_CONTEXT_IGNORE);
	CHECK(p.context_threshold > 0.7499 && p.context_threshold < 0.7501);
	CHECK_EQ_INT(p.query_bytes, MIB);
	CHECK_EQ_INT(p.response_bytes, 100000000);
	CHECK_EQ_INT(p.hnsw_m, 16);
	CHECK_EQ_INT(p.hnsw_ef_construction, 200);
	CHECK_EQ_INT(p.hnsw_ef_search, 128);
	CHECK(strcmp(p.embedder, "http") == 0);
	CHECK(strcmp(p.http_url, "http://127.0.0.1:8080/v1/embeddings") == 0);
	CHECK(strcmp(p.http_model, "nomic-embed-text") == 0);
	CHECK_EQ_INT(p.http_dimensions, 256);
	CHECK(strcmp(p.http_api_key_env, "EMBED_KEY") == 0);
	CHECK_EQ_INT(p.http_timeout_ms, 500);
	CHECK_EQ_INT(p.http_retries, 2);
	CHECK_EQ_INT(p.http_batch, 8);
	for (k = 0; k < POLICY_NKEYS; k++)
		CHECK(p.source[k] && strcmp(p.source[k], "/all") == 0);
}

static void test_every_key(void)
{
	static const char block[] =
		"# every key, block style\n"
		"threshold: 0.5\n"
		"precision: 0.7\n"
		"ttl: 2h\n"
		"ttl_mode: sliding\n"
		"quota:\n"
		"  entries: 10\n"
		"  bytes: 2GiB\n"
		"eviction: fifo\n"
		"cache: false\n"
		"context: ignore\n"
		"context_threshold: 0.75\n"
		"limits:\n"
		"  query_bytes: 1MiB\n"
		"  response_bytes: 100MB\n"
		"hnsw:\n"
		"  m: 16\n"
		"  ef_construction: 200\n"
		"  ef_search: 128\n"
		"embedder: http\n"
		"http:\n"
		"  url: http://127.0.0.1:8080/v1/embeddings\n"
		"  model: nomic-embed-text\n"
		"  dimensions: 256\n"
		"  api_key_env: EMBED_KEY\n"
		"  timeout: 500ms\n"
		"  retries: 2\n"
		"  batch: 8\n"
		"model: gpt-4o\n"
		"adaptive:\n"
		"  enabled: true\n"
		"  threshold_min: 0.7\n"
		"  ttl_max: 60d\n"
		"  high: 0.9\n"
		"  low: 0.4\n"
		"  rate: 0.5\n"
		"  stale_after: 1m\n"
		"  learn_threshold: true\n"
		"  learn_decay: 2h\n"
		"llm_cost_ms: 1500\n"
		"auto_disable: 1h\n"
		"fill_timeout: 20s\n";
	static const char flow[] =
		"{threshold: 0.5, precision: 0.7, ttl: 2h, ttl_mode: sliding,"
		" quota: {entries: 10, bytes: 2GiB}, eviction: fifo,"
		" cache: false, context: ignore, context_threshold: 0.75,"
		" limits: {query_bytes: 1MiB, response_bytes: 100MB},"
		" hnsw: {m: 16, ef_construction: 200, ef_search: 128},"
		" embedder: http, http: {url: 'http://127.0.0.1:8080/v1/embeddings',"
		" model: nomic-embed-text, dimensions: 256, api_key_env: EMBED_KEY,"
		" timeout: 500ms, retries: 2, batch: 8}, model: gpt-4o,"
		" adaptive: {enabled: true, threshold_min: 0.7, ttl_max: 60d, high: 0.9,"
		" low: 0.4, rate: 0.5, stale_after: 1m, learn_threshold: true,"
		" learn_decay: 2h}, llm_cost_ms: 1500, auto_disable: 1h,"
		" fill_timeout: 20s}\n";
	static const char mixed[] =
		"threshold: 0.5\nprecision: 0.7\nttl: 2h\nttl_mode: sliding\n"
		"quota: {entries: 10, bytes: 2GiB}\n"
		"eviction: fifo\ncache: false\ncontext: ignore\n"
		"context_threshold: 0.75\n"
		"limits: {query_bytes: 1MiB, response_bytes: 100MB}\n"
		"hnsw: {m: 16, ef_construction: 200, ef_search: 128}\n"
		"embedder: http\n"
		"http: {url: \"http://127.0.0.1:8080/v1/embeddings\", model: nomic-embed-text,\n"
		"  dimensions: 256, api_key_env: EMBED_KEY, timeout: 500ms, retries: 2,\n"
		"  batch: 8}\n"
		"model: gpt-4o\n"
		"adaptive: {enabled: true, threshold_min: 0.7, ttl_max: 60d, high: 0.9,\n"
		"  low: 0.4, rate: 0.5, stale_after: 1m, learn_threshold: true, learn_decay: 2h}\n"
		"llm_cost_ms: 1500\nauto_disable: 1h\nfill_timeout: 20s\n";
	struct policy_file *f;

	f = parse_ok(block, "/all");
	if (f) {
		check_all_set(f, "block");
		policy_file_free(f);
	}
	f = parse_ok(flow, "/all");
	if (f) {
		check_all_set(f, "flow");
		policy_file_free(f);
	}
	f = parse_ok(mixed, "/all");
	if (f) {
		check_all_set(f, "mixed");
		policy_file_free(f);
	}
}

/* One key, one value: parse "yaml" and check the printed line. */
static void expect_value(const char *yaml, const char *printed)
{
	struct policy_file *f = parse_ok(yaml, "/v");
	struct policy p;
	char buf[2048];

	if (!f)
		return;
	policy_defaults(&p);
	policy_apply(&p, f);
	policy_format(&p, buf, sizeof(buf));
	CHECK(has_line(buf, printed, "/v"));
	if (!has_line(buf, printed, "/v"))
		fprintf(stderr, "  want '%s # /v' for '%s' in:\n%s", printed,
			yaml, buf);
	policy_file_free(f);
}

static void test_values(void)
{
	struct policy_file *f;
	struct policy p;
	int k;

	expect_value("threshold: 0.85", "threshold: 0.85");
	expect_value("threshold: 0.90", "threshold: 0.9");
	expect_value("threshold: 1", "threshold: 1");
	expect_value("threshold: 0", "threshold: 0");
	expect_value("threshold: .75", "threshold: 0.75");
	expect_value("threshold: 0.12345", "threshold: 0.1235");
	expect_value("threshold: \"0.9\"", "threshold: 0.9");  /* quoted ok */
	expect_value("precision: 0.95", "precision: 0.95");
	expect_value("precision: 0.7", "precision: 0.7");
	expect_value("precision: 1", "precision: 1");
	expect_value("precision: 0", "precision: 0");
	expect_value("ttl: 30s", "ttl: 30s");
	expect_value("ttl: 5m", "ttl: 5m");
	expect_value("ttl: 300", "ttl: 5m");
	expect_value("ttl: 90", "ttl: 90s");
	expect_value("ttl: 0", "ttl: 0");
	expect_value("ttl: 0s", "ttl: 0");
	expect_value("ttl: 48h", "ttl: 2d");
	expect_value("ttl: '7d'", "ttl: 7d");
	expect_value("ttl: 36500d", "ttl: 36500d");
	expect_value("ttl_mode: absolute", "ttl_mode: absolute");
	expect_value("ttl_mode: sliding", "ttl_mode: sliding");
	expect_value("quota: {entries: 0}", "quota.entries: 0");
	expect_value("quota: {entries: 123456}", "quota.entries: 123456");
	expect_value("quota: {bytes: 512KiB}", "quota.bytes: 512KiB");
	expect_value("quota: {bytes: 524288}", "quota.bytes: 512KiB");
	expect_value("quota: {bytes: 10KB}", "quota.bytes: 10KB");
	expect_value("quota: {bytes: 1500}", "quota.bytes: 1500");
	expect_value("quota: {bytes: 0}", "quota.bytes: 0");
	expect_value("quota:\n  bytes: 3TiB\n", "quota.bytes: 3TiB");
	expect_value("eviction: lru", "eviction: lru");
	expect_value("eviction: lfu", "eviction: lfu");
	expect_value("eviction: fifo", "eviction: fifo");
	expect_value("cache: true", "cache: true");
	expect_value("cache: False", "cache: false");
	expect_value("cache: TRUE", "cache: true");
	expect_value("context: match", "context: match");
	expect_value("context: ignore", "context: ignore");
	expect_value("context: similar", "context: similar");
	expect_value("context_threshold: 0.75", "context_threshold: 0.75");
	expect_value("limits: {query_bytes: 1}", "limits.query_bytes: 1");
	expect_value("limits: {query_bytes: 16MiB}", "limits.query_bytes: 16MiB");
	expect_value("limits: {response_bytes: 1GiB}", "limits.response_bytes: 1GiB");
	expect_value("limits:\n  response_bytes: 1MB\n", "limits.response_bytes: 1MB");
	expect_value("hnsw: {m: 4}", "hnsw.m: 4");
	expect_value("hnsw: {m: 128}", "hnsw.m: 128");
	expect_value("hnsw: {ef_construction: 8}", "hnsw.ef_construction: 8");
	expect_value("hnsw: {ef_construction: 2048}", "hnsw.ef_construction: 2048");
	expect_value("hnsw: {ef_search: 1}", "hnsw.ef_search: 1");
	expect_value("hnsw: {ef_search: 4096}", "hnsw.ef_search: 4096");
	expect_value("embedder: builtin", "embedder: builtin");
	expect_value("embedder: \"builtin\"", "embedder: builtin");

	/* a file sets only what it names */
	f = parse_ok("ttl: 5m\nhnsw: {m: 8}\n", "/only");
	if (f) {
		for (k = 0; k < POLICY_NKEYS; k++)
			CHECK_EQ_INT(policy_file_sets(f, k),
				     k == POLICY_TTL || k == POLICY_HNSW_M);
		policy_defaults(&p);
		policy_apply(&p, f);
		CHECK_EQ_INT(p.hnsw_ef_search, 32);
		CHECK(p.source[POLICY_HNSW_EF_SEARCH] == NULL);
		CHECK(strcmp(p.source[POLICY_HNSW_M], "/only") == 0);
		policy_file_free(f);
	}

	/* empty documents set nothing */
	{
		static const char *const empty[] = {
			"", "# only a comment\n", "\n\n   \n", "{}", "---\n",
			"---\n...\n", "~\n", "quota: {}\n",
		};
		size_t i;

		for (i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
			f = parse_ok(empty[i], "/e");
			if (!f)
				continue;
			for (k = 0; k < POLICY_NKEYS; k++)
				CHECK(!policy_file_sets(f, k));
			policy_file_free(f);
		}
		f = NULL;
		{
			struct policy_error err;

			CHECK_EQ_INT(policy_file_parse(NULL, 0, "/n", &f, &err), 0);
			policy_file_free(f);
		}
	}
}

static void test_inheritance(void)
{
	struct policy_file *root, *code, *python;
	struct policy p;
	char buf[2048];
	char src[16];

	/* the source string is copied */
	strcpy(src, "/code");
	root = parse_ok("threshold: 0.85\nprecision: 0.7\nttl: 1d\n"
			"quota: {entries: 1000}\n", "/");
	code = parse_ok("threshold: 0.9\nquota:\n  bytes: 64MiB\n"
			"eviction: lfu\n", src);
	python = parse_ok("ttl: 2h\nquota: {entries: 50}\ncache: false\n",
			  "/code/python");
	memset(src, 0, sizeof(src));
	if (!root || !code || !python)
		goto out;

	policy_defaults(&p);
	policy_apply(&p, root);
	policy_apply(&p, code);
	policy_apply(&p, python);

	CHECK(p.threshold > 0.8999 && p.threshold < 0.9001);
	/* a precision target set at the root reaches /code/python */
	CHECK(p.precision > 0.6999 && p.precision < 0.7001);
	CHECK(p.source[POLICY_PRECISION] && strcmp(p.source[POLICY_PRECISION], "/") == 0);
	CHECK_EQ_INT(p.ttl, 7200);
	CHECK_EQ_INT(p.quota_entries, 50);
	CHECK_EQ_INT(p.quota_bytes, 64 * MIB);
	CHECK_EQ_INT(p.eviction, POLICY_EVICT_LFU);
	CHECK(!p.cache);
	CHECK_EQ_INT(p.hnsw_m, 32);

	CHECK(strcmp(p.source[POLICY_THRESHOLD], "/code") == 0);
	CHECK(strcmp(p.source[POLICY_TTL], "/code/python") == 0);
	CHECK(strcmp(p.source[POLICY_QUOTA_ENTRIES], "/code/python") == 0);
	CHECK(strcmp(p.source[POLICY_QUOTA_BYTES], "/code") == 0);
	CHECK(strcmp(p.source[POLICY_EVICTION], "/code") == 0);
	CHECK(strcmp(p.source[POLICY_CACHE], "/code/python") == 0);
	CHECK(p.source[POLICY_TTL_MODE] == NULL);
	CHECK(p.source[POLICY_EMBEDDER] == NULL);

	policy_format(&p, buf, sizeof(buf));
	CHECK(has_line(buf, "threshold: 0.9", "/code"));
	CHECK(has_line(buf, "ttl: 2h", "/code/python"));
	CHECK(has_line(buf, "ttl_mode: absolute", "default"));
	CHECK(has_line(buf, "quota.entries: 50", "/code/python"));
	CHECK(has_line(buf, "quota.bytes: 64MiB", "/code"));
	CHECK(has_line(buf, "eviction: lfu", "/code"));
	CHECK(has_line(buf, "cache: false", "/code/python"));
	CHECK(has_line(buf, "hnsw.m: 32", "default"));
	/* exact layout of one line */
	CHECK(strncmp(buf, "threshold: 0.9                  # /code\n", 40) == 0);

	/* only the root: its values, "/" as provenance */
	policy_defaults(&p);
	policy_apply(&p, root);
	policy_format(&p, buf, sizeof(buf));
	CHECK(has_line(buf, "threshold: 0.85", "/"));
	CHECK(has_line(buf, "ttl: 1d", "/"));
	CHECK(has_line(buf, "quota.entries: 1000", "/"));
	CHECK(has_line(buf, "quota.bytes: 0", "default"));

	/* snprintf semantics */
	{
		int full = policy_format(&p, buf, sizeof(buf));
		char small[20];

		CHECK_EQ_INT(policy_format(&p, NULL, 0), full);
		CHECK_EQ_INT(policy_format(&p, small, sizeof(small)), full);
		CHECK_EQ_INT(strlen(small), sizeof(small) - 1);
		CHECK(strncmp(small, buf, sizeof(small) - 1) == 0);
	}
out:
	policy_file_free(root);
	policy_file_free(code);
	policy_file_free(python);
	policy_file_free(NULL);
}

static void test_errors(void)
{
	/* syntax errors: libyaml's problem mark */
	expect_error("threshold: 0.9\n  bad: indent\n", 2, 6,
		     "invalid yaml: mapping values are not allowed");
	expect_error("ttl: 5m\nquota: {entries: 3\n", 3, 1, "invalid yaml: ");
	expect_error("ttl: [5m\n", 2, 1, "invalid yaml: ");
	expect_error(": x\n", 1, 1, "invalid yaml: did not find expected key");
	expect_error("ttl: 5m\nttl: *nope\n", 2, 6, "invalid yaml: found undefined alias");
	expect_error("ttl: \"5m\n", 0, 0, "invalid yaml: ");
	expect_error("ttl: 5m\n\x01\n", 2, 1, "invalid yaml: control characters");

	/* unknown keys */
	expect_error("treshold: 0.9\n", 1, 1,
		     "unknown key 'treshold' (known: threshold, precision, ttl, ttl_mode, "
		     "quota, eviction, cache, context, context_threshold, limits, hnsw, "
		     "embedder, http, "
		     "model, adaptive, llm_cost_ms, auto_disable, fill_timeout)");
	expect_error("ttl: 5m\nquota:\n  entires: 3\n", 3, 3,
		     "unknown key 'quota.entires' (known: entries, bytes)");
	expect_error("quota: {entires: 3}\n", 1, 9, "unknown key 'quota.entires'");
	expect_error("hnsw: {m: 8, ef: 3}\n", 1, 14,
		     "unknown key 'hnsw.ef' (known: m, ef_construction, ef_search)");
	expect_error("quota.entries: 3\n", 1, 1,
		     "unknown key 'quota.entries' (write nested keys as mappings");
	expect_error("TTL: 5m\n", 1, 1, "unknown key 'TTL'");
	expect_error("<<: {ttl: 5m}\n", 1, 1, "unknown key '<<'");
	expect_error("? [a]\n: 1\n", 1, 3, "keys must be names, got a sequence");
	expect_error("quota: {[a]: 1}\n", 1, 9, "quota: keys must be names, got a sequence");

	/* wrong types */
	expect_error("ttl: [1, 2]\n", 1, 6,
		     "ttl: expected a duration like 30s, 5m, 2h, 7d or 0, got a sequence");
	expect_error("threshold:\n  a: 1\n", 2, 3,
		     "threshold: expected a number from 0 to 1, got a mapping");
	expect_error("threshold: high\n", 1, 12,
		     "threshold: expected a number from 0 to 1, got 'high'");
	expect_error("threshold: 1e-1\n", 1, 12, "threshold: expected a number");
	expect_error("threshold: .nan\n", 1, 12, "threshold: expected a number");
	expect_error("quota: [1]\n", 1, 8,
		     "quota: expected a mapping like {entries: N, bytes: SIZE}, got a sequence");
	expect_error("hnsw: 5\n", 1, 7,
		     "hnsw: expected a mapping like {m: N, ef_construction: N, ef_search: N}, got '5'");
	expect_error("limits:\n", 1, 8, "limits: expected a mapping like {query_bytes: SIZE, response_bytes: SIZE}, got an empty value");
	expect_error("ttl:\n", 1, 5, "ttl: expected a duration like 30s, 5m, 2h, 7d or 0, got an empty value");
	expect_error("hnsw: {m: 8.5}\n", 1, 11, "hnsw.m: expected a whole number, got '8.5'");
	expect_error("quota: {entries: lots}\n", 1, 18, "quota.entries: expected a whole number, got 'lots'");
	expect_error("cache: yes\n", 1, 8, "cache: expected true or false, got 'yes'");
	expect_error("cache: 1\n", 1, 8, "cache: expected true or false");
	expect_error("eviction: random\n", 1, 11,
		     "eviction: expected one of lru, lfu, fifo, got 'random'");
	expect_error("ttl_mode: LRU\n", 1, 11,
		     "ttl_mode: expected one of absolute, sliding, got 'LRU'");
	expect_error("context: fuzzy\n", 1, 10,
		     "context: expected one of match, ignore, similar, got 'fuzzy'");
	expect_error("context_threshold: 1.5\n", 1, 20, "context_threshold");
	expect_error("context_threshold: near\n", 1, 20, "context_threshold");
	expect_error("embedder: [builtin]\n", 1, 11, "embedder: expected a name, got a sequence");
	expect_error("embedder: foo\n", 1, 11, "unknown embedder 'foo' (known: builtin, model2vec:/ABSOLUTE/DIR, http, use-lite, use-lite:/ABSOLUTE/DIR)");
	expect_error("embedder: \"\"\n", 1, 11, "unknown embedder '' (known: builtin,");
	expect_error("embedder: model2vec:models/m\n", 1, 11, "embedder: 'model2vec:models/m' needs an absolute model directory");
	expect_error("embedder: \"model2vec:\"\n", 1, 11, "needs an absolute model directory");
	expect_error("embedder: use-lite:models/u\n", 1, 11, "embedder: 'use-lite:models/u' needs an absolute model directory, like 'use-lite:/srv/models/use-lite'");
	expect_error("embedder: \"use-lite:\"\n", 1, 11, "needs an absolute model directory");
	expect_error("embedder: use-lite-large\n", 1, 11, "unknown embedder 'use-lite-large'");
	expect_error("http: {url: ftp://x}\n", 1, 13, "http.url: 'ftp://x' is not an http:// or https:// url");
	expect_error("http: {url: 'http://a b'}\n", 1, 13, "is not an http:// or https:// url");
	expect_error("http: {model: \"a\\tb\"}\n", 1, 15, "http.model: 'a?b' is not a model name");
	expect_error("http: {dimensions: -1}\n", 1, 20, "http.dimensions: '-1' is out of range (0..65536)");
	expect_error("http: {timeout: 0}\n", 1, 17, "http.timeout: '0' is out of range (1ms..10m)");
	expect_error("http: {timeout: 2x}\n", 1, 17, "http.timeout: expected a duration like 500ms, 2s or 1m, got '2x'");
	expect_error("http: {timeout: 11m}\n", 1, 17, "out of range");
	expect_error("http: {retries: 11}\n", 1, 17, "http.retries: '11' is out of range (0..10)");
	expect_error("http: {batch: 0}\n", 1, 15, "http.batch: '0' is out of range (1..2048)");
	expect_error("http: {port: 1}\n", 1, 8, "unknown key 'http.port' (known: url, model, dimensions, api_key_env, timeout, retries, batch)");
	expect_error("http: 3\n", 1, 7, "http: expected a mapping like {url: NAME, model: NAME, dimensions: N, api_key_env: NAME, timeout: DURATION, retries: N, batch: N}");
	expect_error("embedder: \"built\\0in\"\n", 1, 11, "embedder: 'built?in' contains a nul byte");

	/* out of range */
	expect_error("threshold: 1.5\n", 1, 12, "threshold: '1.5' is out of range (0..1)");
	expect_error("precision: 1.5\n", 1, 12, "precision: '1.5' is out of range (0..1)");
	expect_error("precision: -0.1\n", 1, 12, "precision: '-0.1' is out of range (0..1)");
	expect_error("precision: high\n", 1, 12,
		     "precision: expected a number from 0 to 1, got 'high'");
	expect_error("precision: [0.9]\n", 1, 12,
		     "precision: expected a number from 0 to 1, got a sequence");
	expect_error("threshold: -0.1\n", 1, 12, "threshold: '-0.1' is out of range (0..1)");
	expect_error("hnsw:\n  m: 2\n", 2, 6, "hnsw.m: '2' is out of range (4..128)");
	expect_error("hnsw: {m: 129}\n", 1, 11, "hnsw.m: '129' is out of range (4..128)");
	expect_error("hnsw: {ef_construction: 4096}\n", 1, 25,
		     "hnsw.ef_construction: '4096' is out of range (8..2048)");
	expect_error("hnsw: {ef_search: 0}\n", 1, 19,
		     "hnsw.ef_search: '0' is out of range (1..4096)");
	expect_error("hnsw: {ef_search: 99999999999999999999999}\n", 1, 19,
		     "hnsw.ef_search: '99999999999999999999999' is out of range");
	expect_error("limits: {query_bytes: 32MiB}\n", 1, 23,
		     "limits.query_bytes: '32MiB' is out of range (1..16MiB)");
	expect_error("limits: {query_bytes: 0}\n", 1, 23,
		     "limits.query_bytes: '0' is out of range (1..16MiB)");
	expect_error("limits: {response_bytes: 2GiB}\n", 1, 26,
		     "limits.response_bytes: '2GiB' is out of range (1..1GiB)");
	expect_error("quota: {entries: -1}\n", 1, 18,
		     "quota.entries: '-1' is out of range (0 or more)");
	expect_error("ttl: 36501d\n", 1, 6, "ttl: '36501d' is out of range (0..36500d)");
	expect_error("ttl: -5m\n", 1, 6, "ttl: '-5m' is out of range (0..36500d)");
	expect_error("ttl: 999999999999999999d\n", 1, 6, "is out of range (0..36500d)");

	/* bad durations and sizes */
	expect_error("ttl: soon\n", 1, 6,
		     "ttl: expected a duration like 30s, 5m, 2h, 7d or 0, got 'soon'");
	expect_error("ttl: 1h30m\n", 1, 6, "ttl: expected a duration");
	expect_error("ttl: 1.5h\n", 1, 6, "ttl: expected a duration");
	expect_error("ttl: 5 m\n", 1, 6, "ttl: expected a duration");
	expect_error("ttl: 5w\n", 1, 6, "ttl: expected a duration");
	expect_error("quota: {bytes: 1XB}\n", 1, 16,
		     "quota.bytes: expected a size like 512KiB, 64MiB, 2GiB or a number of bytes, got '1XB'");
	expect_error("quota: {bytes: 1.5MiB}\n", 1, 16, "quota.bytes: expected a size");
	expect_error("quota: {bytes: MiB}\n", 1, 16, "quota.bytes: expected a size");
	expect_error("quota: {bytes: 64mib}\n", 1, 16, "quota.bytes: expected a size");
	expect_error("quota: {bytes: 9EiB}\n", 1, 16, "quota.bytes: '9EiB' is out of range (0 or more)");

	/* duplicates */
	expect_error("ttl: 1m\nttl: 2m\n", 2, 1, "duplicate key 'ttl'");
	expect_error("quota: {entries: 1, entries: 2}\n", 1, 21,
		     "duplicate key 'quota.entries'");
	expect_error("quota: {entries: 1}\nttl: 5m\nquota: {bytes: 2}\n", 3, 1,
		     "duplicate key 'quota'");

	/* the root must be one mapping */
	expect_error("- ttl: 5m\n", 1, 1,
		     "a policy must be a mapping of keys to values like 'ttl: 5m', got a sequence");
	expect_error("# comment\n[ttl, 5m]\n", 2, 1, "got a sequence");
	expect_error("hello\n", 1, 1, "got 'hello'");
	expect_error("ttl: 5m\n---\nttl: 6m\n", 2, 1, "more than one yaml document");
	expect_error("---\nttl: 5m\n...\n---\n", 4, 1, "more than one yaml document");

	/* long and odd user text is cut and cleaned in messages */
	{
		char yaml[600];
		struct policy_file *f = NULL;
		struct policy_error err;

		memset(yaml, 'k', 500);
		memcpy(yaml + 500, ": 1\n", 5);
		CHECK_EQ_INT(policy_file_parse(yaml, strlen(yaml), "/", &f, &err),
			     -EINVAL);
		CHECK(strstr(err.message, "kkk...' (known: "));
		CHECK(strlen(err.message) < sizeof(err.message) - 1);
		memcpy(yaml, "embedder: ", 10);
		yaml[500] = '\n';
		yaml[501] = '\0';
		CHECK_EQ_INT(policy_file_parse(yaml, strlen(yaml), "/", &f, &err),
			     -EINVAL);
		CHECK(strstr(err.message, "embedder: 'kkk") &&
		      strstr(err.message, "...' is longer than 255 bytes"));
	}
}

/* Bad input of any size is refused in time linear in its size: more than
 * POLICY_FILE_MAX bytes before parsing, nesting past what a policy needs
 * as soon as it is seen, with a clear message either way. */
static void test_bounds(void)
{
	static const char *const too_deep[][2] = {
		/* yaml, want "LINE:COL" */
		{ "quota: {entries: [[[1]]]}\n", "1:20" },
		{ "- - - - - x\n", "1:9" },
		{ "a:\n b:\n  c:\n   d:\n    e: 1\n", "5:5" },
		/* the parse stops there even after an error of meaning */
		{ "treshold: 1\nttl: [[[[x]]]]\n", "2:9" },
		{ "{a: {b: {c: {d: {e: 1}}}}}\n", "1:17" },
	};
	size_t big = 500 * 1000, i;
	char *buf = malloc(big);
	struct policy_file *f = NULL;
	struct policy_error err;
	struct policy p;

	if (!buf) {
		CHECK(0);
		return;
	}
	/* 64 KiB of '[' (POLICY_FILE_MAX exactly): stopped at the fifth */
	memset(buf, '[', big);
	CHECK_EQ_INT(policy_file_parse(buf, POLICY_FILE_MAX, "/", &f, &err),
		     -EINVAL);
	CHECK(f == NULL);
	CHECK_EQ_INT(err.line, 1);
	CHECK_EQ_INT(err.column, 5);
	CHECK(strstr(err.message, "nested deeper than 4 levels") != NULL);
	/* one byte more, 100 KB, 500 KB: refused before parsing */
	{
		const size_t sizes[] = { POLICY_FILE_MAX + 1, 100 * 1000, big };

		for (i = 0; i < 3; i++) {
			char n[64];

			CHECK_EQ_INT(policy_file_parse(buf, sizes[i], "/", &f, &err),
				     -EFBIG);
			CHECK(f == NULL);
			CHECK_EQ_INT(err.line, 0);
			snprintf(n, sizeof(n), "the policy is %zu bytes, more than "
				 "the 65536", sizes[i]);
			CHECK(strstr(err.message, n) != NULL);
			if (!strstr(err.message, n))
				fprintf(stderr, "  got '%s'\n", err.message);
		}
	}
	/* unclosed: libyaml's own message, where the input ends */
	expect_error("[[[", 2, 1, "invalid yaml: did not find expected node content");
	for (i = 0; i < sizeof(too_deep) / sizeof(too_deep[0]); i++) {
		int line = atoi(too_deep[i][1]);
		int col = atoi(strchr(too_deep[i][1], ':') + 1);

		expect_error(too_deep[i][0], line, col, "nested deeper than 4 levels "
			     "(a policy needs 2, like 'quota: {entries: 3}')");
	}
	/* at the limit, a wrong value still gets its own message */
	expect_error("quota: {entries: [[1]]}\n", 1, 18,
		     "quota.entries: expected a whole number, got a sequence");
	/* a valid policy of exactly POLICY_FILE_MAX bytes parses */
	memset(buf, ' ', POLICY_FILE_MAX);
	buf[0] = '#';
	memcpy(buf + POLICY_FILE_MAX - 9, "\nttl: 5m\n", 9);
	f = NULL;
	CHECK_EQ_INT(policy_file_parse(buf, POLICY_FILE_MAX, "/", &f, &err), 0);
	CHECK(f && policy_file_sets(f, POLICY_TTL));
	policy_file_free(f);
	free(buf);

	/* anchors: a scalar's alias reads as the scalar */
	f = parse_ok("threshold: &t 0.5\nadaptive: {threshold_min: *t, high: *t}\n",
		     "/a");
	if (f) {
		policy_defaults(&p);
		policy_apply(&p, f);
		CHECK(p.adaptive_threshold_min > 0.4999 && p.adaptive_threshold_min < 0.5001);
		CHECK(p.adaptive_high > 0.4999 && p.adaptive_high < 0.5001);
		policy_file_free(f);
	}
	expect_error("ttl: &a 5m\nthreshold: &a 0.9\n", 2, 12,
		     "invalid yaml: found duplicate anchor 'a' (first occurrence "
		     "at line 1, column 6)");
	expect_error("quota: &q {entries: 3}\nlimits: *q\n", 2, 9,
		     "limits: an alias cannot stand for a group's keys");
	expect_error("ttl: &q [1]\nthreshold: *q\n", 1, 6,
		     "ttl: expected a duration");
	expect_error("quota: &q {entries: 3}\nthreshold: *q\n", 1, 8,
		     "threshold: expected a number from 0 to 1, got a mapping");
	/* an alias names an anchor of its own document only */
	expect_error("ttl: &d 5m\n---\nttl: *d\n", 3, 6,
		     "invalid yaml: found undefined alias");
	{
		char many[1024];
		size_t n = 0;

		for (i = 0; i < 33; i++)
			n += (size_t)snprintf(many + n, sizeof(many) - n,
					      "- &a%zu x\n", i);
		expect_error(many, 33, 3, "invalid yaml: anchor 'a32' is one more "
			     "than the 32 a policy may define");
	}
}

static void test_durations_sizes(void)
{
	static const struct {
		int64_t v;
		const char *text;
	} durations[] = {
		{ 0, "0" }, { 1, "1s" }, { 30, "30s" }, { 90, "90s" },
		{ 300, "5m" }, { 3601, "3601s" }, { 7200, "2h" },
		{ 5400, "90m" }, { 86400, "1d" }, { 7 * 86400, "7d" },
		{ 36500LL * 86400, "36500d" },
	}, sizes[] = {
		{ 0, "0" }, { 1, "1" }, { 1000, "1KB" }, { 1024, "1KiB" },
		{ 1500, "1500" }, { 1536, "1536" }, { 512 * 1024, "512KiB" },
		{ 64 * MIB, "64MiB" }, { 2 * GIB, "2GiB" }, { 1000000, "1MB" },
		{ 10000, "10KB" }, { 2048000, "2048KB" }, { 2000 * 1024 * 1024LL, "2000MiB" },
		{ (int64_t)1 << 40, "1TiB" }, { (int64_t)1 << 60, "1EiB" },
	};
	static const char *const bad_durations[] = {
		"", "s", "5x", "1h30m", "-5m", " 5m", "5m ", "1.5h", "5 m", "5M",
		"99999999999999999999", "999999999999999999d", "+5m",
	};
	static const char *const bad_sizes[] = {
		"", "KiB", "1.5MiB", "1 MiB", "-1", "1kib", "1Ki", "1iB",
		"99999999999999999999", "9EiB", "16EB", "0x10", "1MiBs",
	};
	char buf[64];
	int64_t v;
	size_t i;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int bad = 0;

	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		policy_format_duration(durations[i].v, buf, sizeof(buf));
		CHECK(strcmp(buf, durations[i].text) == 0);
		v = -1;
		CHECK_EQ_INT(policy_parse_duration(durations[i].text, &v), 0);
		CHECK_EQ_INT(v, durations[i].v);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		policy_format_size(sizes[i].v, buf, sizeof(buf));
		CHECK(strcmp(buf, sizes[i].text) == 0);
		if (strcmp(buf, sizes[i].text))
			fprintf(stderr, "  size %lld -> '%s', want '%s'\n",
				(long long)sizes[i].v, buf, sizes[i].text);
		v = -1;
		CHECK_EQ_INT(policy_parse_size(sizes[i].text, &v), 0);
		CHECK_EQ_INT(v, sizes[i].v);
	}
	for (i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++)
		CHECK_EQ_INT(policy_parse_duration(bad_durations[i], &v), -EINVAL);
	for (i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		CHECK_EQ_INT(policy_parse_size(bad_sizes[i], &v), -EINVAL);

	CHECK_EQ_INT(policy_parse_duration("120", &v), 0);
	CHECK_EQ_INT(v, 120);
	CHECK_EQ_INT(policy_parse_size("10KB", &v), 0);
	CHECK_EQ_INT(v, 10000);
	CHECK_EQ_INT(policy_parse_size("3GB", &v), 0);
	CHECK_EQ_INT(v, 3000000000LL);
	CHECK_EQ_INT(policy_parse_size("7B", &v), 0);
	CHECK_EQ_INT(v, 7);
	CHECK_EQ_INT(policy_parse_size("8EiB", &v), -EINVAL);
	CHECK_EQ_INT(policy_parse_size("7EiB", &v), 0);

	/* random round trips: format then parse gives the same number */
	for (i = 0; i < 20000; i++) {
		static const int64_t mults[] = {
			1, 60, 3600, 86400, 1000, 1024, 1000000, 1 << 20,
		};
		int64_t x, back = -1;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		x = (int64_t)(seed % 1000000) * mults[(seed >> 32) % 8];
		policy_format_duration(x, buf, sizeof(buf));
		if (policy_parse_duration(buf, &back) != 0 || back != x)
			bad++;
		back = -1;
		policy_format_size(x, buf, sizeof(buf));
		if (policy_parse_size(buf, &back) != 0 || back != x)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
}

/* The http embedder's keys: millisecond durations, the key never being a
 * secret, and the cross-key check policy_check(). */
static void test_http_keys(void)
{
	struct policy_file *f;
	struct policy_error err;
	struct policy p;
	char msg[256], buf[4096];
	int64_t ms;

	CHECK_EQ_INT(policy_parse_millis("500ms", &ms), 0);
	CHECK_EQ_INT(ms, 500);
	CHECK_EQ_INT(policy_parse_millis("2s", &ms), 0);
	CHECK_EQ_INT(ms, 2000);
	CHECK_EQ_INT(policy_parse_millis("3", &ms), 0);
	CHECK_EQ_INT(ms, 3000);
	CHECK_EQ_INT(policy_parse_millis("1m", &ms), 0);
	CHECK_EQ_INT(ms, 60000);
	CHECK_EQ_INT(policy_parse_millis("ms", &ms), -EINVAL);
	CHECK_EQ_INT(policy_parse_millis("-5ms", &ms), -EINVAL);
	CHECK_EQ_INT(policy_parse_millis("1.5s", &ms), -EINVAL);
	expect_value("http: {timeout: 1500ms}", "http.timeout: 1500ms");
	expect_value("http: {timeout: 3000ms}", "http.timeout: 3s");
	expect_value("http: {timeout: 120}", "http.timeout: 2m");
	expect_value("embedder: model2vec:/srv/models/potion-base-8M",
		     "embedder: model2vec:/srv/models/potion-base-8M");
	expect_value("embedder: use-lite", "embedder: use-lite");
	expect_value("embedder: use-lite:/srv/models/use-lite",
		     "embedder: use-lite:/srv/models/use-lite");
	expect_value("http: {api_key_env: OPENAI_API_KEY}",
		     "http.api_key_env: OPENAI_API_KEY");

	/* a key pasted where the variable name goes is refused, not echoed */
	f = NULL;
	CHECK_EQ_INT(policy_file_parse("http: {api_key_env: sk-proj-Secret123}\n",
				       39, "/s", &f, &err), -EINVAL);
	CHECK(f == NULL);
	CHECK(strstr(err.message, "not the key itself") != NULL);
	CHECK(strstr(err.message, "Secret123") == NULL);

	/* embedder http needs url and model, possibly from other files */
	policy_defaults(&p);
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), 0);
	snprintf(p.embedder, sizeof(p.embedder), "http");
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "embedder 'http' needs http.url") != NULL);
	snprintf(p.http_url, sizeof(p.http_url), "http://127.0.0.1:1/v1/embeddings");
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "needs http.model") != NULL);
	snprintf(p.http_model, sizeof(p.http_model), "m");
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), 0);

	/* miss coalescing decides by cosine: not with a precision target */
	policy_defaults(&p);
	p.precision = 0.7;
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), 0);
	p.fill_timeout_ms = 2000;
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "precision and fill_timeout cannot be combined") != NULL);
	p.precision = 0;
	CHECK_EQ_INT(policy_check(&p, msg, sizeof(msg)), 0);

	/* a long url prints whole */
	policy_defaults(&p);
	memset(p.http_url, 'a', POLICY_URL_MAX - 1);
	memcpy(p.http_url, "http://", 7);
	p.http_url[POLICY_URL_MAX - 1] = '\0';
	policy_format(&p, buf, sizeof(buf));
	CHECK(strstr(buf, p.http_url) != NULL);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Every printed policy reads back as itself, whatever its strings hold;
 * messages never carry a control byte of the input. */
static void test_readback(void)
{
	static const char *const odd[] = {
		"a # b", "a #b", "[x]", "{x}", "x: y", "x:", "'q'", "\"dq\"",
		"-a", "- a", "?a", ":a", ",a", " lead", "trail ", "a  b", "~",
		"null", "true", "&a", "*a", "!tag", "%x", "@x", "`x", "|", ">",
		"#x", "a\\b", "a\\", "a,b", "a\"", "---", "...", "x#y",
		"caf\xc3\xa9", "\xc2\x85nel", "a\xe2\x80\xa8" "b\xe2\x80\xa9",
		"\xef\xbb\xbf" "bom", "\xc2\xa0nbsp", "\xf0\x9f\x98\x80", "x",
	};
	static const char alphabet[][4] = {
		"a", "b", "1", " ", "#", ":", "-", "[", "]", "{", "}", ",", "'",
		"\"", "\\", "&", "*", "!", "|", ">", "%", "@", "`", "?", "~",
		".", "/", "\xc2\x85", "\xe2\x80\xa8", "\xc3\xa9",
	};
	struct policy_file *f = NULL;
	struct policy_error err;
	char why[4096];
	struct policy p;
	uint64_t seed = 77;
	size_t i;
	int bad = 0, r;

	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		policy_defaults(&p);
		snprintf(p.http_model, sizeof(p.http_model), "%s", odd[i]);
		snprintf(p.embedder, sizeof(p.embedder), "model2vec:/m/%s", odd[i]);
		snprintf(p.http_url, sizeof(p.http_url), "http://h/%s", odd[i]);
		if (strchr(odd[i], ' '))
			p.http_url[0] = '\0'; /* urls have no spaces */
		if (policy_reads_back(&p, why, sizeof(why))) {
			if (bad++ < 3)
				fprintf(stderr, "  '%s' does not read back: %s\n",
					odd[i], why);
		}
	}
	/* the quoted forms, exactly */
	{
		char buf[8192];

		policy_defaults(&p);
		snprintf(p.http_model, sizeof(p.http_model), "a # \"b\\\xc2\x85");
		policy_format(&p, buf, sizeof(buf));
		CHECK(strstr(buf, "\nhttp.model: \"a # \\\"b\\\\\\N\" ") != NULL);
		CHECK(strstr(buf, "\nhttp.url: \"\" ") != NULL);
		CHECK(strstr(buf, "\nembedder: builtin ") != NULL);
	}
	/* random strings of risky characters */
	for (i = 0; i < 3000; i++) {
		size_t len = 1 + next_rand(&seed) % 24, j, n = 0;

		policy_defaults(&p);
		for (j = 0; j < len; j++) {
			const char *c = alphabet[next_rand(&seed) %
						 (sizeof(alphabet) / sizeof(alphabet[0]))];

			memcpy(p.http_model + n, c, strlen(c));
			n += strlen(c);
		}
		p.http_model[n] = '\0';
		if (policy_reads_back(&p, why, sizeof(why)) && bad++ < 3)
			fprintf(stderr, "  random '%s' does not read back: %s\n",
				p.http_model, why);
	}
	CHECK_EQ_INT(bad, 0);

	/* a parsed policy of every key reads back too */
	f = parse_ok("http: {model: \"a # b\", url: \"http://x/[y]:\"}\n"
		     "embedder: \"model2vec:/m d/x: y\"\nmodel: gpt-4o\n", "/q");
	if (f) {
		policy_defaults(&p);
		policy_apply(&p, f);
		CHECK_EQ_INT(policy_reads_back(&p, why, sizeof(why)), 0);
		CHECK(strcmp(p.http_model, "a # b") == 0);
		policy_file_free(f);
	}

	/* a model name with an escape sequence: refused, the ESC not echoed */
	r = policy_file_parse("model: \"a\\e[2Jb\"\n", 17, "/m", &f, &err);
	CHECK_EQ_INT(r, -EINVAL);
	CHECK(strstr(err.message, "model: 'a?[2Jb' may only use letters") != NULL);
	CHECK(strchr(err.message, 0x1b) == NULL);
}

static void test_markdown(void)
{
	char buf[16384];
	int n = policy_keys_markdown(buf, sizeof(buf));
	int k;

	CHECK(n > 0 && (size_t)n < sizeof(buf));
	CHECK_EQ_INT(n, (int)strlen(buf));
	CHECK(strncmp(buf, "| key |", 7) == 0);
	for (k = 0; k < POLICY_NKEYS; k++) {
		char want[64];

		snprintf(want, sizeof(want), "| `%s` |", policy_key_name(k));
		CHECK(strstr(buf, want) != NULL);
	}
	CHECK(strstr(buf, "| `ttl` | duration | `7d` | 0..36500d |"));
	CHECK(strstr(buf, "| `limits.query_bytes` | size | `64KiB` | 1..16MiB |"));
	CHECK(strstr(buf, "| `eviction` | choice | `lru` | lru, lfu, fifo |"));
	CHECK(strstr(buf, "| `embedder` | string | `builtin` | builtin, model2vec:/ABSOLUTE/DIR, http, use-lite, use-lite:/ABSOLUTE/DIR |"));
	CHECK(strstr(buf, "| `http.timeout` | duration | `2s` | 1ms..10m |"));
	CHECK_EQ_INT(policy_keys_markdown(NULL, 0), n);
}


/* Check one arbitrary input: 0 or -EINVAL with a message; nothing else. */
static int robust_one(const char *buf, size_t len)
{
	struct policy_file *f = NULL;
	struct policy_error err;
	struct policy p;
	char out[2048];
	int r = policy_file_parse(buf, len, "/fuzz", &f, &err);

	if (r == 0) {
		if (!f)
			return 1;
		policy_defaults(&p);
		policy_apply(&p, f);
		policy_format(&p, out, sizeof(out));
		policy_file_free(f);
		return 0;
	}
	if (r != -EINVAL || f || !err.message[0] ||
	    strlen(err.message) >= sizeof(err.message) || err.line < 0 ||
	    err.column < 0)
		return 1;
	return 0;
}

static void test_robustness(void)
{
	static const char base[] =
		"threshold: 0.9\nttl: 5m\nttl_mode: sliding\n"
		"quota: {entries: 10, bytes: 64MiB}\neviction: lfu\n"
		"cache: true\ncontext: ignore\n"
		"limits:\n  query_bytes: 1KiB\n  response_bytes: 1MiB\n"
		"hnsw: {m: 16, ef_construction: 100, ef_search: 50}\n"
		"embedder: builtin\n";
	static const char alphabet[] = "{}[]:,-#&*!|>'\"%@`?~. \n\t0123456789abcdemsKiB";
	char buf[512];
	uint64_t seed = 12345;
	int bad = 0, i;
	size_t len, j;

	/* random bytes */
	for (i = 0; i < 4000; i++) {
		len = next_rand(&seed) % 200;
		for (j = 0; j < len; j++)
			buf[j] = (char)next_rand(&seed);
		bad += robust_one(buf, len);
	}
	/* random YAML-ish characters */
	for (i = 0; i < 4000; i++) {
		len = next_rand(&seed) % 120;
		for (j = 0; j < len; j++)
			buf[j] = alphabet[next_rand(&seed) % (sizeof(alphabet) - 1)];
		bad += robust_one(buf, len);
	}
	/* a valid policy with a few bytes changed, cut or inserted */
	for (i = 0; i < 4000; i++) {
		int edits = 1 + (int)(next_rand(&seed) % 4), e;

		len = sizeof(base) - 1;
		memcpy(buf, base, len);
		for (e = 0; e < edits; e++) {
			size_t at = next_rand(&seed) % len;
			char c = (next_rand(&seed) & 1) ?
				alphabet[next_rand(&seed) % (sizeof(alphabet) - 1)] :
				(char)next_rand(&seed);

			switch (next_rand(&seed) % 3) {
			case 0:
				buf[at] = c;
				break;
			case 1:
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
				break;
			default:
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = c;
				len++;
				break;
			}
		}
		bad += robust_one(buf, len);
	}
	/* the unchanged base is valid */
	bad += robust_one(base, sizeof(base) - 1);
	CHECK_EQ_INT(bad, 0);
}

int main(void)
{
	test_defaults();
	test_every_key();
	test_values();
	test_inheritance();
	test_errors();
	test_bounds();
	test_http_keys();
	test_readback();
	test_durations_sizes();
	test_markdown();
	test_robustness();
	return check_done("policy");
}
