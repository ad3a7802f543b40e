/*
 * fuzz_usetok.c - libFuzzer harness for the use-lite tokenizer
 * (index/embed/use_lite_tok.c).
 *
 * The vocabulary is the installed model's vocab.json when
 * $SEMCACHE_USE_LITE_DIR names it (tests/fuzz/run.sh sets it when
 * tools/fetch-model.sh has run), else a small one written here with the
 * reference's quirks (null scores, a duplicate piece, an astral piece).
 * For any bytes: encoding succeeds, gives ids inside the vocabulary with no
 * two id 0 in a row, the same ids twice, and a cut at max is a prefix of
 * the uncut answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "use_lite.h"

#define FUZZ_NAME "fuzz_usetok"
#include "fuzz_check.h"

static const char toy[] =
	"[[\"\xef\xbf\xbd\",0],[\"<s>\",0],[\"</s>\",0],[\"r3\",0],[\"r4\",0],"
	"[\"r5\",0],[\"\xe2\x96\x81\",-1],[\"a\",-2],[\"b\",-2],[\"ab\",-1],"
	"[\"\xe2\x96\x81" "a\",-1.5],[\":\",null],[\"c\",-0.5],[\"cc\",-1],"
	"[\"\xf0\x9f\x98\x80\",-1],[\"b\",-3],[\"\xe2\x96\x81:\",null],"
	"[\"\xe4\xbd\xa0\xe5\xa5\xbd\",-4],[\"fi\",-2],[\"1\xe2\x81\x84" "2\",-3]]";

static struct use_tok *tok;

static void load(void)
{
	const char *dir = getenv("SEMCACHE_USE_LITE_DIR");
	char path[4096], err[256], *buf = NULL;
	size_t len = 0;
	FILE *f = NULL;
	long n;

	if (dir) {
		snprintf(path, sizeof(path), "%s/vocab.json", dir);
		f = fopen(path, "rb");
	}
	if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n)
		len = (size_t)n;
	if (f)
		fclose(f);
	if (!len || use_tok_new(buf, len, &tok, err, sizeof(err)))
		FUZZ_CHECK(use_tok_new(toy, sizeof(toy) - 1, &tok, err,
				       sizeof(err)) == 0);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum { MAX = 4096, CUT = 7 };
	static int32_t a[MAX], b[MAX], c[CUT];
	size_t na, nb, nc, i;

	if (!tok)
		load();
	FUZZ_CHECK(use_tok_encode(tok, (const char *)data, size, a, MAX, &na) == 0);
	FUZZ_CHECK(na <= MAX && na <= (size ? USE_TOK_MAX_SYMBOLS : 0));
	for (i = 0; i < na; i++) {
		FUZZ_CHECK(a[i] >= 0 && a[i] < use_tok_vocab_size(tok));
		FUZZ_CHECK(!(i && a[i] == 0 && a[i - 1] == 0));
	}
	FUZZ_CHECK(use_tok_encode(tok, (const char *)data, size, b, MAX, &nb) == 0);
	FUZZ_CHECK(nb == na && !memcmp(a, b, na * sizeof(*a)));
	FUZZ_CHECK(use_tok_encode(tok, (const char *)data, size, c, CUT, &nc) == 0);
	FUZZ_CHECK(nc == (na < CUT ? na : CUT) && !memcmp(a, c, nc * sizeof(*c)));
	return 0;
}
