/*
 * fuzz_verify.c - libFuzzer harness for the verifier (index/verify/).
 *
 * The input is split at its first NUL byte (or its middle) into a query
 * and a candidate; both must give sides whose counts stay in bounds, whose
 * keys are sorted and distinct, and whose pair features and score are
 * finite, in range and the same when computed twice, with and without
 * cosines (NAN, out-of-range and missing ones included).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify.h"

#define FUZZ_NAME "fuzz_verify"
#include "fuzz_check.h"

static void check_side(const struct verify_side *s)
{
	uint32_t i;

	FUZZ_CHECK(s->n <= VERIFY_MAX_WORDS && s->nu <= s->n);
	FUZZ_CHECK(s->nnum <= VERIFY_MAX_WORDS);
	for (i = 1; i < s->nu; i++)
		FUZZ_CHECK(s->ukey[i - 1] < s->ukey[i]);
	for (i = 1; i < s->nnum; i++)
		FUZZ_CHECK(s->num[i - 1] < s->num[i]);
	FUZZ_CHECK(s->nonascii >= 0 && s->nonascii <= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t la = nul ? (size_t)(nul - data) : size / 2;
	size_t lb = size - la - (nul ? 1 : 0);
	/* exact-size heap copies: ASan catches any read past len */
	char *a = malloc(la ? la : 1), *b = malloc(lb ? lb : 1);
	const float cos[][VERIFY_NCOS] = {
		{ NAN, NAN }, { 0.5f, 0.9f }, { -1.0f, 1.0f }, { NAN, INFINITY },
	};
	struct verify_side sa, sb;
	double f[VERIFY_NFEAT], f2[VERIFY_NFEAT], s, s2;
	size_t k;
	int r, i;

	FUZZ_CHECK(a && b);
	memcpy(a, data, la);
	memcpy(b, data + size - lb, lb);
	FUZZ_CHECK(verify_side_init(&sa, a, la) == 0);
	FUZZ_CHECK(verify_side_init(&sb, b, lb) == 0);
	check_side(&sa);
	check_side(&sb);
	for (k = 0; k < sizeof(cos) / sizeof(cos[0]); k++) {
		for (i = -1; i <= VERIFY_NCOS; i++) {
			r = verify_features(&sa, &sb, cos[k], i, f);
			FUZZ_CHECK(r == -ENODATA ||
				   r == VERIFY_LEXICAL || r == VERIFY_USE_LITE);
			FUZZ_CHECK(verify_features(&sa, &sb, cos[k], i, f2) == r);
			FUZZ_CHECK(!memcmp(f, f2, sizeof(f)));
			FUZZ_CHECK(f[VF_WJACC] >= 0 && f[VF_WJACC] <= 1);
			FUZZ_CHECK(f[VF_NUM_DIFF] >= 0 && f[VF_NUM_DIFF] <= 5);
			FUZZ_CHECK(f[VF_DISC] >= 0 && f[VF_DISC] <= 1);
			s = verify_score(&sa, &sb, cos[k], i);
			s2 = verify_score(&sa, &sb, cos[k], i);
			FUZZ_CHECK(s == s2 && s >= 0 && s <= 1);
		}
	}
	verify_side_release(&sa);
	verify_side_release(&sb);
	free(a);
	free(b);
	return 0;
}
