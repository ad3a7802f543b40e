/*
 * test_use_lite.c - unit tests for the use-lite embedder (index/embed/).
 *
 * Always: the tokenizer on a small vocabulary written here, whose answers
 * were worked out by hand from the reference's algorithm (and agree with
 * it): the NFKC step, U+2581 for spaces only, unknown code points as id 0
 * in collapsed runs, a null score counting as 0, a best total of exactly 0
 * counting as unset, ties going to the later start, and back-tracking by
 * UTF-16 length (an astral piece swallows the piece before it). Also the
 * spec errors.
 *
 * With the model (tools/fetch-model.sh; $SEMCACHE_USE_LITE_DIR, set by
 * meson, names the directory): more than 500 texts - QQP questions, MRPC
 * and STS-B sentences from ../shared when present, written edge cases
 * (empty, ':', numbers, Chinese, emoji, NFKC forms, control bytes, invalid
 * UTF-8, over 128 tokens, longer than the tokenizer's window) and generated
 * mixes - against the JavaScript reference (tests/tools/use_ref.mjs on
 * node, its packages from tools/fetch-model.sh --reference): token ids
 * equal, vectors within 1e-5 per component. Then four threads and batches
 * against single calls, 1 MiB hostile inputs, OpenBLAS at one thread, and
 * each kind of damaged model refused with its message.
 *
 * Exit 77 (skip) when the model, node or the reference is missing and
 * nothing that did run failed.
 */
#include "embed.h"
#include "use_lite.h"
#include "check.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <json-c/json.h>

#define DIM USE_LITE_DIM
#define MAXIDS 65536

static char model_dir[2048], ref_dir[2048], src_root[1024];
static bool skipped, have_ref;

/* ---- the toy vocabulary -------------------------------------------------- */

static void expect_ids(const struct use_tok *t, const char *text,
		       const int32_t *want, size_t nwant)
{
	int32_t ids[64];
	size_t n = 0, i;
	bool same;

	CHECK_EQ_INT(use_tok_encode(t, text, strlen(text), ids, 64, &n), 0);
	same = n == nwant;
	for (i = 0; same && i < n; i++)
		same = ids[i] == want[i];
	if (!same) {
		fprintf(stderr, "  '%s': got", text);
		for (i = 0; i < n; i++)
			fprintf(stderr, " %d", ids[i]);
		fprintf(stderr, "\n");
	}
	CHECK(same);
}

#define IDS(text, ...)                                                     \
	do {                                                               \
		static const int32_t w_[] = { __VA_ARGS__ };               \
		expect_ids(t, text, w_, sizeof(w_) / sizeof(w_[0]));       \
	} while (0)

static void test_toy(void)
{
	/* ids: 0 "<u>" (3 UTF-16 units), 1-5 reserved, 6 "▁", 7 "a", 8 "b",
	 * 9 "ab", 10 "▁a", 11 ":" (null), 12 "c", 13 "cc", 14 "😀", 15 "b"
	 * again (replaces 8), 16 "▁c", 17 "▁:" (null) */
	static const char vocab[] =
		"[[\"<u>\",0],[\"<s>\",0],[\"</s>\",0],[\"r3\",0],[\"r4\",0],"
		"[\"r5\",0],[\"\xe2\x96\x81\",-1],[\"a\",-2],[\"b\",-2],[\"ab\",-1],"
		"[\"\xe2\x96\x81" "a\",-1.5],[\":\",null],[\"c\",-0.5],[\"cc\",-1],"
		"[\"\xf0\x9f\x98\x80\",-1],[\"b\",-3],[\"\xe2\x96\x81" "c\",-1.25],"
		"[\"\xe2\x96\x81:\",null]]";
	struct use_tok *t = NULL;
	char err[256];
	int32_t ids[4];
	size_t n = 9;

	CHECK_EQ_INT(use_tok_new(vocab, sizeof(vocab) - 1, &t, err, sizeof(err)), 0);
	if (!t) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK_EQ_INT(use_tok_vocab_size(t), 18);
	IDS("ab", 6, 9);                /* ▁ + ab (-2) beats ▁a + b */
	IDS("a:b", 10, 11, 15);         /* the later "b" took over */
	IDS("xy", 0);                   /* unknowns collapse; id 0 steps 3 back */
	IDS("a\tb", 0, 15);             /* a tab is no space: unknown */
	IDS("a b", 10, 6, 15);
	IDS("  ", 6, 6, 6);
	IDS("\xe2\x96\x81" "c", 6, 16);  /* a literal ▁ is a ▁ */
	IDS("\xef\xbd\x82", 6, 15);      /* fullwidth b: NFKC */
	IDS("\xf0\x9f\x98\x80", 14);     /* 2 UTF-16 units: ▁ is stepped over */
	IDS("a\xf0\x9f\x98\x80", 6, 14);
	IDS("ccc", 16, 12, 12);         /* tie at -2.25: the later start wins */
	IDS(":", 6, 11);                /* "▁:" totals 0 = unset, ":" replaces it */
	IDS("c:", 16, 11);
	CHECK_EQ_INT(use_tok_encode(t, "", 0, ids, 4, &n), 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(use_tok_encode(t, "ab ab ab", 8, ids, 4, &n), 0);
	CHECK_EQ_INT(n, 4);             /* cut at max */
	use_tok_free(t);

	CHECK_EQ_INT(use_tok_new("[[\"x\",0]]", 9, &t, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "more than 6") != NULL);
	CHECK_EQ_INT(use_tok_new("[[\"\",0],1,2,3,4,5,6]", 20, &t, err, sizeof(err)),
		     -EINVAL);
	CHECK(strstr(err, "'vocab.json'") != NULL);
	CHECK_EQ_INT(use_tok_new("[[\"a\",\"b\"]", 10, &t, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "not valid json") != NULL);
}

static void test_spec_errors(void)
{
	struct embedder *e = (struct embedder *)1;
	char err[512];

	CHECK_EQ_INT(embedder_new_spec("use-lite:relative/dir", &e, err,
				       sizeof(err)), -EINVAL);
	CHECK(e == NULL);
	CHECK(strstr(err, "'relative/dir' is not an absolute directory") != NULL);
	CHECK_EQ_INT(embedder_new_spec("use-lite:/nonexistent/use", &e, err,
				       sizeof(err)), -ENOENT);
	CHECK(strstr(err, "cannot open '/nonexistent/use/model.json'") != NULL);
	CHECK(strstr(err, "tools/fetch-model.sh") != NULL);
	CHECK(strcmp(embedder_last_error(), err) == 0);
}

/* ---- texts ----------------------------------------------------------- */

struct texts {
	char **s;
	size_t *len;
	size_t n, cap;
};

static void add_text(struct texts *ts, const char *s, size_t len)
{
	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 1024;
		ts->s = realloc(ts->s, ts->cap * sizeof(*ts->s));
		ts->len = realloc(ts->len, ts->cap * sizeof(*ts->len));
		if (!ts->s || !ts->len)
			abort();
	}
	ts->s[ts->n] = malloc(len + 1);
	if (!ts->s[ts->n])
		abort();
	memcpy(ts->s[ts->n], s, len);
	ts->s[ts->n][len] = '\0';
	ts->len[ts->n++] = len;
}

static void add_str(struct texts *ts, const char *s)
{
	add_text(ts, s, strlen(s));
}

/* Lines of a shared file: every step-th line from line first (columns:
 * tab-separated column col, or the whole line when col < 0), at most max. */
static size_t add_lines(struct texts *ts, const char *rel, size_t first,
			size_t step, int col, size_t max, bool non_ascii_only)
{
	char path[4096], *line = NULL;
	size_t cap = 0, lineno = 0, added = 0;
	const char *shared = getenv("SEMCACHE_SHARED");
	ssize_t got;
	FILE *f;

	if (shared)
		snprintf(path, sizeof(path), "%s/data/%s", shared, rel);
	else
		snprintf(path, sizeof(path), "%s/../shared/data/%s", src_root, rel);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (added < max && (got = getline(&line, &cap, f)) > 0) {
		char *s = line, *end;
		int c;

		if (lineno++ < first || (lineno - 1 - first) % step)
			continue;
		while (got && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = '\0';
		for (c = 0; c < col && s; c++) {
			s = strchr(s, '\t');
			if (s)
				s++;
		}
		if (!s)
			continue;
		end = col >= 0 ? strchr(s, '\t') : NULL;
		if (end)
			*end = '\0';
		if (non_ascii_only) {
			const unsigned char *p = (const unsigned char *)s;

			while (*p && *p < 0x80)
				p++;
			if (!*p)
				continue;
		}
		add_str(ts, s);
		added++;
	}
	free(line);
	fclose(f);
	return added;
}

static const char *const specials[] = {
	"", " ", "  ", ":", "::", "a:b", "10:30", ":30", ":00 am", "http://example.com:8080/a?b=c",
	"Ratio 3:2, time 12:45:07", ":) :( :-)", "1", "42", "3.14159", "1,000,000",
	"-273.15 degrees", "2024-01-01", "$100 or 50%", "#1 #2 #3",
	"What is the best way to learn Python programming?",
	"HOW do I   reverse\ta list\nin Python\r\n?",
	"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c",
	"\xe4\xb8\xad\xe6\x96\x87\xe5\x92\x8c English \xe6\xb7\xb7\xe5\x90\x88",
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0\xe3\x81\xa7\xe3\x81\x99",
	"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xeb\xac\xb8\xec\x9e\xa5",
	"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 \xd8\xa8\xd8\xa7\xd9\x84\xd8\xb9\xd8\xa7\xd9\x84\xd9\x85",
	"\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
	"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80",
	"\xf0\x9f\x98\x80", "\xf0\x9f\x99\x82 hi", "I \xe2\x9d\xa4\xef\xb8\x8f NY \xf0\x9f\x97\xbd",
	"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd thumbs", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 family",
	"\xf0\x9f\x87\xab\xf0\x9f\x87\xb7 flag", "\xef\xac\x81 \xc2\xbd \xe2\x84\x8c \xe2\x91\xa0 \xe3\x8d\xbf",
	"\xef\xbc\xa8\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f fullwidth", "x\xc2\xb2 + y\xc2\xb3 = z\xe2\x81\xbf",
	"A\xcc\x8a vs \xc3\x85 vs \xe2\x84\xab", "cafe\xcc\x81 caf\xc3\xa9", "na\xc3\xafve r\xc3\xa9sum\xc3\xa9",
	"stra\xc3\x9f" "e \xc4\xb0stanbul \xce\xa3\xce\xb1\xcf\x82", "\xe2\x80\x9csmart quotes\xe2\x80\x9d \xe2\x80\x94 dash",
	"\xe2\x96\x81 already a meta symbol \xe2\x96\x81\xe2\x96\x81", "non\xc2\xa0" "breaking\xe2\x80\x83" "spaces",
	"zero\xe2\x80\x8bwidth\xe2\x80\x8d" "joiner", "\xef\xbb\xbf" "BOM first", "tab\there", "line\nbreak",
	"\x01\x02\x03 control \x7f", "\xef\xbf\xbd replacement", "\xee\x80\x80 private use",
	"\xf0\x9d\x90\x80\xf0\x9d\x90\x81 math bold", "\xea\xb0\x80\xeb\x82\x98\xeb\x8b\xa4",
	"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 conjoining jamo", "e\xcc\x81\xcc\x82\xcc\x83\xcc\x84 marks",
	"\xff", "\xfe\xff bytes", "\xc3\x28 bad 2", "\xe2\x82\x28 bad 3", "\xe2\x82", "\xf0\x9f\x98",
	"\xc0\xaf overlong", "\xe0\x80\xaf overlong 3", "\xed\xa0\x80 surrogate", "\xed\xbf\xbf\xed\xa0\x80",
	"\xf4\x8f\xbf\xbf max", "\xf4\x90\x80\x80 past max", "\xf8\x88\x80\x80\x80 five", "a\x80\x80\x80z",
	"supercalifragilisticexpialidocious antidisestablishmentarianism",
	"pneumonoultramicroscopicsilicovolcanoconiosispneumonoultramicroscopicsilicovolcanoconiosis",
	"The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
	"C++ vs C# vs F# vs .NET; e-mail: a.b@c.de; path /usr/local/bin",
	"<html><body>tags &amp; entities</body></html>", "{\"json\": [1, 2, 3]}",
	"SELECT * FROM t WHERE a = 'b';", "!!!???...,,,;;;",
};

#define NSPECIAL (sizeof(specials) / sizeof(specials[0]))

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void add_generated(struct texts *ts, size_t count)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char buf[4096];
	size_t i, w, len;

	for (i = 0; i < count; i++) {
		size_t words = i % 20 == 3 ? 150 + rnd(&seed) % 100 : 1 + rnd(&seed) % 14;

		len = 0;
		for (w = 0; w < words; w++) {
			const char *p = specials[rnd(&seed) % NSPECIAL];
			size_t pl = strlen(p);

			if (len + pl + 2 >= sizeof(buf))
				break;
			memcpy(buf + len, p, pl);
			len += pl;
			if (rnd(&seed) % 3)
				buf[len++] = ' ';
		}
		add_text(ts, buf, len);
	}
}

/* one text of about len bytes from a file's lines, or the specials */
static void add_long(struct texts *ts, size_t want)
{
	char *buf = malloc(want + 4096);
	size_t len = 0, i = 0;

	if (!buf)
		abort();
	while (len < want) {
		const char *p = ts->n > 700 ? ts->s[(i * 7) % 600] : specials[i % NSPECIAL];
		size_t pl = strlen(p);

		memcpy(buf + len, p, pl);
		len += pl;
		buf[len++] = ' ';
		i++;
	}
	add_text(ts, buf, len);
	free(buf);
}

static void gather(struct texts *ts)
{
	size_t i, shared = 0;

	shared += add_lines(ts, "corpus/qqp_questions.txt", 0, 600, -1, 200, false);
	shared += add_lines(ts, "corpus/qqp_questions.txt", 0, 1, -1, 50, true);
	shared += add_lines(ts, "pairs/mrpc_train.txt", 1, 45, 3, 40, false);
	shared += add_lines(ts, "pairs/mrpc_train.txt", 2, 45, 4, 40, false);
	shared += add_lines(ts, "pairs/mrpc_train.txt", 1, 1, 3, 15, true);
	shared += add_lines(ts, "pairs/stsb/sts-dev.csv", 0, 30, 5, 40, false);
	shared += add_lines(ts, "pairs/stsb/sts-dev.csv", 1, 30, 6, 40, false);
	printf("texts from ../shared: %zu%s\n", shared,
	       shared ? "" : " (absent: generated texts only)");
	for (i = 0; i < NSPECIAL; i++)
		add_str(ts, specials[i]);
	add_generated(ts, shared ? 120 : 520);
	add_long(ts, 3000);
	add_long(ts, 9000);     /* past USE_TOK_MAX_SYMBOLS */
	add_long(ts, 20000);    /* past USE_TOK_MAX_INPUT */
}

/* ---- the reference ----------------------------------------------------- */

static const char b64c[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(FILE *f, const unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		fprintf(f, "%c%c%c%c", b64c[v >> 18], b64c[(v >> 12) & 63],
			b64c[(v >> 6) & 63], b64c[v & 63]);
	}
	if (len - i == 1)
		fprintf(f, "%c%c==", b64c[s[i] >> 2], b64c[(s[i] & 3) << 4]);
	else if (len - i == 2)
		fprintf(f, "%c%c%c=", b64c[s[i] >> 2],
			b64c[((s[i] & 3) << 4) | (s[i + 1] >> 4)],
			b64c[(s[i + 1] & 15) << 2]);
	fputc('\n', f);
}

/* Run use_ref.mjs; returns one json object per text, or NULL. */
static struct json_object **reference(const struct texts *ts)
{
	char dir[] = "/tmp/use_refXXXXXX", in[64], out[64], cmd[8192];
	struct json_object **res = NULL;
	char *line = NULL;
	size_t cap = 0, i = 0;
	FILE *f;
	int rc;

	if (!mkdtemp(dir))
		return NULL;
	snprintf(in, sizeof(in), "%s/in", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	f = fopen(in, "w");
	for (i = 0; f && i < ts->n; i++)
		put_b64(f, (const unsigned char *)ts->s[i], ts->len[i]);
	if (f)
		fclose(f);
	snprintf(cmd, sizeof(cmd), "node '%s/tests/tools/use_ref.mjs' '%s' '%s' "
		 "'%s' '%s'", src_root, ref_dir, model_dir, in, out);
	rc = system(cmd);
	if (rc != 0) {
		fprintf(stderr, "  reference failed: status %d\n", rc);
		goto out;
	}
	f = fopen(out, "r");
	res = calloc(ts->n, sizeof(*res));
	for (i = 0; f && res && i < ts->n && getline(&line, &cap, f) > 0; i++)
		res[i] = json_tokener_parse(line);
	if (f)
		fclose(f);
out:
	free(line);
	unlink(in);
	unlink(out);
	rmdir(dir);
	return res;
}

/* ---- with the model ------------------------------------------------------ */

struct worker_arg {
	const struct embedder *e;
	const struct texts *ts;
	const float *want;
	int bad;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	float v[DIM];
	size_t i;

	for (i = 0; i < a->ts->n; i++) {
		if (embedder_embed(a->e, a->ts->s[i], a->ts->len[i], v) ||
		    memcmp(v, a->want + i * DIM, sizeof(v)))
			a->bad++;
	}
	return NULL;
}

static bool unit_or_zero(const float *v)
{
	double n = 0;
	int k;

	for (k = 0; k < DIM; k++) {
		if (!isfinite(v[k]))
			return false;
		n += (double)v[k] * v[k];
	}
	return n == 0 || fabs(n - 1) < 1e-4;
}

static void compare(const struct embedder *e, const struct texts *ts,
		    const float *mine)
{
	const struct use_tok *tok = use_lite_tokenizer(e);
	struct json_object **ref;
	int32_t *ids = malloc(MAXIDS * sizeof(*ids));
	size_t i, k, n, id_bad = 0, vec_bad = 0, cut = 0, errors = 0;
	double worst = 0;

	if (!have_ref) {
		free(ids);
		return;
	}
	ref = reference(ts);
	CHECK(ref != NULL);
	for (i = 0; ref && i < ts->n; i++) {
		struct json_object *r = ref[i], *rids, *rvec;
		size_t nref, same = 0;
		bool long_text;

		CHECK(r != NULL);
		if (!r)
			continue;
		rids = json_object_object_get(r, "ids");
		rvec = json_object_object_get(r, "vec");
		nref = json_object_array_length(rids);
		CHECK_EQ_INT(use_tok_encode(tok, ts->s[i], ts->len[i], ids, MAXIDS, &n), 0);
		while (same < n && same < nref &&
		       ids[same] == json_object_get_int(json_object_array_get_idx(rids, same)))
			same++;
		/* past the tokenizer's window only the first 128 must agree */
		long_text = ts->len[i] >= USE_TOK_MAX_SYMBOLS - 1;
		if (long_text) {
			cut++;
			printf("long text %zu (%zu bytes): ids agree on %zu of %zu "
			       "(%zu here)\n", i, ts->len[i], same, nref, n);
		}
		if (long_text ? same < 128 : (same != n || n != nref)) {
			if (id_bad++ < 5)
				fprintf(stderr, "  text %zu: ids differ at %zu: '%.60s'\n",
					i, same, ts->s[i]);
		}
		if (!rvec) {
			/* the reference throws on the empty text: zero vector here */
			errors++;
			CHECK_EQ_INT(nref, 0);
			CHECK(mine[i * DIM] == 0 && mine[i * DIM + DIM - 1] == 0);
			continue;
		}
		CHECK_EQ_INT(json_object_array_length(rvec), DIM);
		for (k = 0; k < DIM && k < json_object_array_length(rvec); k++) {
			double d = fabs(mine[i * DIM + k] - json_object_get_double(
						json_object_array_get_idx(rvec, k)));

			if (d > worst)
				worst = d;
			if (d > 1e-5) {
				if (vec_bad++ < 5)
					fprintf(stderr, "  text %zu component %zu "
						"differs by %g: '%.60s'\n", i, k, d,
						ts->s[i]);
				break;
			}
		}
	}
	printf("reference: %zu texts (%zu past the tokenizer window, %zu the "
	       "reference cannot embed), ids differ on %zu, max abs diff %.3g, "
	       "%zu vectors over 1e-5\n", ts->n, cut, errors, id_bad, worst,
	       vec_bad);
	CHECK(ts->n >= 500);
	CHECK_EQ_INT(id_bad, 0);
	CHECK_EQ_INT(vec_bad, 0);
	for (i = 0; ref && i < ts->n; i++)
		json_object_put(ref[i]);
	free(ref);
	free(ids);
}

static void test_hostile(const struct embedder *e)
{
	size_t big = 1 << 20, i;
	char *buf = malloc(big);
	uint64_t seed = 12345;
	float v[DIM];

	for (i = 0; i < big; i++)
		buf[i] = (char)rnd(&seed);
	CHECK_EQ_INT(embedder_embed(e, buf, big, v), 0);
	CHECK(unit_or_zero(v));
	memset(buf, 'a', big);
	CHECK_EQ_INT(embedder_embed(e, buf, big, v), 0);
	CHECK(unit_or_zero(v));
	memset(buf, 0, big);
	CHECK_EQ_INT(embedder_embed(e, buf, big, v), 0);
	CHECK(unit_or_zero(v));
	for (i = 0; i + 3 <= big; i += 3)       /* U+FDFA: NFKC gives 18 */
		memcpy(buf + i, "\xef\xb7\xba", 3);
	CHECK_EQ_INT(embedder_embed(e, buf, i, v), 0);
	CHECK(unit_or_zero(v));
	for (i = 0; i + 2 <= big; i += 2)       /* combining marks, no boundary */
		memcpy(buf + i, "\xcc\x81", 2);
	CHECK_EQ_INT(embedder_embed(e, buf, i, v), 0);
	CHECK(unit_or_zero(v));
	CHECK_EQ_INT(embedder_embed(e, NULL, 0, v), 0);
	CHECK(v[0] == 0 && v[DIM - 1] == 0);
	free(buf);
}

static void test_model(void)
{
	struct embedder *e = NULL, *d = NULL;
	struct texts ts = { 0 };
	char err[512], spec[2100];
	float *mine;
	size_t i, k;
	int ret;

	snprintf(spec, sizeof(spec), "use-lite:%s", model_dir);
	ret = embedder_new_spec(spec, &e, err, sizeof(err));
	CHECK_EQ_INT(ret, 0);
	if (ret) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK_EQ_INT(e->dim, DIM);
	CHECK(!e->remote);
	CHECK(strncmp(e->name, "use-lite-512-", 13) == 0 && strlen(e->name) == 29);
	printf("model '%s': %s\n", model_dir, e->name);
	/* "use-lite" alone is the compiled-in directory: the same model */
	CHECK_EQ_INT(embedder_new_spec("use-lite", &d, err, sizeof(err)), 0);
	CHECK(d && !strcmp(d->name, e->name));
	embedder_free(d);
	{
		/* the OpenBLAS our products go to runs them on one thread */
		int (*get)(void) = NULL;
		Dl_info info;
		void *h;

		if (dladdr((void *)cblas_sgemm, &info) &&
		    (h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD))) {
			get = (int (*)(void))dlsym(h, "openblas_get_num_threads");
			dlclose(h);
		}
		if (get)
			CHECK_EQ_INT(get(), 1);
		else
			printf("the BLAS is not OpenBLAS: thread count not checked\n");
	}

	gather(&ts);
	mine = calloc(ts.n * DIM, sizeof(float));
	for (i = 0; i < ts.n; i++) {
		CHECK_EQ_INT(embedder_embed(e, ts.s[i], ts.len[i], mine + i * DIM), 0);
		CHECK(unit_or_zero(mine + i * DIM));
	}
	compare(e, &ts, mine);

	/* batches agree with single calls */
	{
		double worst = 0;
		float *bv = malloc(8 * DIM * sizeof(float));

		for (i = 0; i + 8 <= ts.n; i += 8) {
			CHECK_EQ_INT(use_lite_embed_batch(e, (const char *const *)ts.s + i,
							  ts.len + i, 8, bv), 0);
			for (k = 0; k < 8 * DIM; k++)
				if (fabs(bv[k] - mine[i * DIM + k]) > worst)
					worst = fabs(bv[k] - mine[i * DIM + k]);
		}
		printf("batches of 8: max abs diff to single calls %.3g\n", worst);
		CHECK(worst < 1e-6);
		free(bv);
	}
	/* four threads on one model: the same vectors, bit for bit */
	{
		struct worker_arg a[4];
		pthread_t th[4];

		for (k = 0; k < 4; k++) {
			a[k] = (struct worker_arg){ e, &ts, mine, 0 };
			CHECK_EQ_INT(pthread_create(&th[k], NULL, worker, &a[k]), 0);
		}
		for (k = 0; k < 4; k++) {
			pthread_join(th[k], NULL);
			CHECK_EQ_INT(a[k].bad, 0);
		}
	}
	test_hostile(e);
	for (i = 0; i < ts.n; i++)
		free(ts.s[i]);
	free(ts.s);
	free(ts.len);
	free(mine);
	embedder_free(e);
}

/* ---- damaged models ------------------------------------------------------ */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static void put_file(const char *dir, const char *name, const char *data,
		     size_t len)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	f = fopen(path, "wb");
	CHECK(f && fwrite(data, 1, len, f) == len);
	if (f)
		fclose(f);
}

/* A fresh copy of the model in dir: symlinks to the real files. */
static void fresh_copy(const char *dir)
{
	static const char *const names[] = {
		"model.json", "vocab.json", "group1-shard1of7", "group1-shard2of7",
		"group1-shard3of7", "group1-shard4of7", "group1-shard5of7",
		"group1-shard6of7", "group1-shard7of7",
	};
	char from[4200], to[4200];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", model_dir, names[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, names[i]);
		unlink(to);
		CHECK_EQ_INT(symlink(from, to), 0);
	}
}

/* model.json parsed, changed by fn, written into dir */
typedef void (*mutator)(struct json_object *root);

static void write_json(const char *dir, const char *json, mutator fn)
{
	struct json_object *root = json_tokener_parse(json);
	char path[4200];

	CHECK(root != NULL);
	if (!root)
		return;
	fn(root);
	snprintf(path, sizeof(path), "%s/model.json", dir);
	unlink(path);
	CHECK_EQ_INT(json_object_to_file_ext(path, root, JSON_C_TO_STRING_PLAIN), 0);
	json_object_put(root);
}

static struct json_object *manifest_entry(struct json_object *root,
					  const char *name)
{
	struct json_object *g = json_object_array_get_idx(
		json_object_object_get(root, "weightsManifest"), 0);
	struct json_object *ws = json_object_object_get(g, "weights");
	size_t i;

	for (i = 0; i < json_object_array_length(ws); i++) {
		struct json_object *w = json_object_array_get_idx(ws, i);

		if (!strcmp(json_object_get_string(json_object_object_get(w, "name")),
			    name))
			return w;
	}
	CHECK(0);
	return json_object_new_object();   /* leaks only on failure */
}

#define TANH_W "module/Encoder_en/hidden_layers/tanh_layer_0/weights"

static void set_shape(struct json_object *root, int a, int b)
{
	struct json_object *sh = json_object_new_array();

	json_object_array_add(sh, json_object_new_int(a));
	json_object_array_add(sh, json_object_new_int(b));
	json_object_object_add(manifest_entry(root, TANH_W), "shape", sh);
}

static void same_size_shape(struct json_object *root) { set_shape(root, 256, 1024); }
static void other_size_shape(struct json_object *root) { set_shape(root, 512, 511); }

static void float16(struct json_object *root)
{
	json_object_object_add(manifest_entry(root, "module/Embeddings_en"),
			       "dtype", json_object_new_string("float16"));
}

static void renamed(struct json_object *root)
{
	json_object_object_add(manifest_entry(root, "module/Embeddings_en"),
			       "name", json_object_new_string("module/Embeddings_xx"));
}

static void quantised(struct json_object *root)
{
	json_object_object_add(manifest_entry(root, TANH_W), "quantization",
			       json_tokener_parse("{\"dtype\": \"uint8\"}"));
}

static void escaping_path(struct json_object *root)
{
	struct json_object *g = json_object_array_get_idx(
		json_object_object_get(root, "weightsManifest"), 0);

	json_object_array_put_idx(json_object_object_get(g, "paths"), 1,
				  json_object_new_string("../group1-shard2of7"));
}

static void other_op(struct json_object *root)
{
	struct json_object *nodes = json_object_object_get(
		json_object_object_get(root, "modelTopology"), "node");
	size_t i;

	for (i = 0; i < json_object_array_length(nodes); i++) {
		struct json_object *n = json_object_array_get_idx(nodes, i);

		if (!strcmp(json_object_get_string(json_object_object_get(n, "name")),
			    "module_apply_default/Encoder_en/hidden_layers/"
			    "tanh_layer_0/MatMul"))
			json_object_object_add(n, "op", json_object_new_string("Conv2D"));
	}
}

static void no_manifest(struct json_object *root)
{
	json_object_object_del(root, "weightsManifest");
}

static void expect_refused(const char *dir, int want, const char *msg)
{
	struct embedder *e = (struct embedder *)1;
	char spec[4200], err[1024];
	int ret;

	snprintf(spec, sizeof(spec), "use-lite:%s", dir);
	ret = embedder_new_spec(spec, &e, err, sizeof(err));
	CHECK_EQ_INT(ret, want);
	if (ret == 0) {
		CHECK(e != NULL && !want);
		embedder_free(e);
		return;
	}
	CHECK(e == NULL);
	if (!strstr(err, msg))
		fprintf(stderr, "  want '%s' in '%s'\n", msg, err);
	CHECK(strstr(err, msg) != NULL);
	CHECK(strcmp(embedder_last_error(), err) == 0);
}

static void test_damage(void)
{
	char dir[] = "/tmp/use_damageXXXXXX", path[4200], cmd[4300];
	size_t jlen = 0, slen = 0, vlen = 0;
	char *json, *shard, *vocab;

	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	snprintf(path, sizeof(path), "%s/model.json", model_dir);
	json = slurp(path, &jlen);
	snprintf(path, sizeof(path), "%s/group1-shard7of7", model_dir);
	shard = slurp(path, &slen);
	snprintf(path, sizeof(path), "%s/vocab.json", model_dir);
	vocab = slurp(path, &vlen);
	CHECK(json && shard && vocab);
	if (!json || !shard || !vocab)
		goto out;

	fresh_copy(dir);
	expect_refused(dir, 0, "");                       /* the copy loads */

	put_file(dir, "group1-shard7of7", shard, slen - 100);
	expect_refused(dir, -EINVAL, "hold 27903556 bytes where 'model.json' "
		       "needs 27903656 (a shard is truncated)");
	fresh_copy(dir);
	snprintf(path, sizeof(path), "%s/group1-shard3of7", dir);
	unlink(path);
	expect_refused(dir, -ENOENT, "cannot open '");
	expect_refused(dir, -ENOENT, "/group1-shard3of7': No such file");

	fresh_copy(dir);
	write_json(dir, json, same_size_shape);
	expect_refused(dir, -EINVAL, "weight '" TANH_W "' in 'model.json' has "
		       "another shape or dtype than float32[512, ...]");
	write_json(dir, json, other_size_shape);
	expect_refused(dir, -EINVAL, "shard 'group1-shard7of7' is longer than "
		       "the weights manifest in 'model.json' says");
	write_json(dir, json, float16);
	expect_refused(dir, -EINVAL, "has dtype 'float16' (supported: float32, int32)");
	write_json(dir, json, renamed);
	expect_refused(dir, -EINVAL, "'model.json' has no weight 'module/Embeddings_en'");
	write_json(dir, json, escaping_path);
	expect_refused(dir, -EINVAL, "must be a file name in the model directory");
	write_json(dir, json, quantised);
	expect_refused(dir, -EINVAL, "is quantised (not supported)");
	write_json(dir, json, other_op);
	expect_refused(dir, -EINVAL, "feeds a 'Conv2D' in the graph of "
		       "'model.json', not a 'MatMul' (another model?)");
	write_json(dir, json, no_manifest);
	expect_refused(dir, -EINVAL, "has no modelTopology.node or weightsManifest");
	put_file(dir, "model.json", json, jlen / 2);      /* bad json */
	expect_refused(dir, -EINVAL, "'model.json' is not valid json");
	put_file(dir, "model.json", "", 0);
	expect_refused(dir, -EINVAL, "'model.json' is not valid json: empty file");

	fresh_copy(dir);
	snprintf(path, sizeof(path), "%s/vocab.json", dir);
	unlink(path);
	expect_refused(dir, -ENOENT, "/vocab.json': No such file or directory "
		       "(run tools/fetch-model.sh");
	put_file(dir, "vocab.json", vocab, vlen - 10);
	expect_refused(dir, -EINVAL, "'vocab.json' is not valid json");
	put_file(dir, "vocab.json", "[[\"a\", 0], [\"b\", 0], [\"c\", 0], 4, 5, 6, 7]", 43);
	expect_refused(dir, -EINVAL, "entry 3 of 'vocab.json' is not [piece, score]");
	{
		/* more pieces than embedding rows */
		char *big = malloc(vlen + 8 * 20);
		size_t bl = vlen - 1, k;

		memcpy(big, vocab, bl);
		for (k = 0; k < 8; k++)
			bl += (size_t)sprintf(big + bl, ",[\"zz%zu\",-20]", k);
		big[bl++] = ']';
		put_file(dir, "vocab.json", big, bl);
		free(big);
		expect_refused(dir, -EINVAL, "'vocab.json' has 8008 pieces but the "
			       "embedding table only 8002 rows");
	}
out:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ_INT(system(cmd), 0);
	free(json);
	free(shard);
	free(vocab);
}

int main(void)
{
	const char *root = getenv("SEMCACHE_SOURCE_ROOT");
	const char *dir = getenv("SEMCACHE_USE_LITE_DIR");
	const char *ref = getenv("SEMCACHE_USE_REF");
	struct stat st;

	snprintf(src_root, sizeof(src_root), "%s", root ? root : "..");
	if (dir)
		snprintf(model_dir, sizeof(model_dir), "%s", dir);
	else
		snprintf(model_dir, sizeof(model_dir),
			 "%s/.models/model-embeddings-en-0.2.0", src_root);
	if (ref)
		snprintf(ref_dir, sizeof(ref_dir), "%s", ref);
	else
		snprintf(ref_dir, sizeof(ref_dir), "%s/.models/use-ref", src_root);

	test_toy();
	test_spec_errors();
	snprintf(model_dir + strlen(model_dir), sizeof(model_dir) - strlen(model_dir),
		 "%s", "/model.json");
	if (stat(model_dir, &st) != 0) {
		printf("skip: no model at '%s' (run tools/fetch-model.sh)\n", model_dir);
		skipped = true;
	}
	*strrchr(model_dir, '/') = '\0';
	snprintf(ref_dir + strlen(ref_dir), sizeof(ref_dir) - strlen(ref_dir),
		 "%s", "/node_modules/@energetic-ai/embeddings");
	have_ref = stat(ref_dir, &st) == 0 &&
		   system("node --version >/dev/null 2>&1") == 0;
	if (!skipped && !have_ref) {
		printf("skip: node or the reference at '%s' is missing (run "
		       "tools/fetch-model.sh --reference): no comparison\n", ref_dir);
		skipped = true;
	}
	*strstr(ref_dir, "/node_modules/") = '\0';
	if (stat(model_dir, &st) == 0) {
		test_model();
		test_damage();
	}
	check_done("use_lite");
	return check_failed ? 1 : skipped ? 77 : 0;
}
