/*
 * test_textnorm.c - textnorm(): case, white space runs, ends, and bytes
 * that are not ASCII text are kept as they are.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "textnorm.h"

/* Normalise s and compare with want (both NUL-free here unless sized). */
static int norm_is(const char *in, size_t len, const char *want, size_t wlen)
{
	char out[256];
	size_t n;

	if (len > sizeof(out))
		return 0;
	n = textnorm(in, len, out);
	return n == wlen && !memcmp(out, want, wlen);
}

#define NORM_IS(in, want) \
	CHECK(norm_is(in, strlen(in), want, strlen(want)))

int main(void)
{
	char *big, *out;
	size_t n, i;

	NORM_IS("Hello World", "hello world");
	NORM_IS("HOW Do I", "how do i");
	NORM_IS("a   b", "a b");
	NORM_IS("a\tb\nc\r\nd\v\fe", "a b c d e");
	NORM_IS("  \t lead and trail \n\n ", "lead and trail");
	NORM_IS("", "");
	NORM_IS(" \t\r\n ", "");
	NORM_IS("x", "x");
	NORM_IS("Punctuation, Kept!", "punctuation, kept!");
	/* non-ASCII bytes kept byte for byte, not case-folded */
	NORM_IS("Caf\xc3\xa9 \xc3\x89T\xc3\x89", "caf\xc3\xa9 \xc3\x89t\xc3\x89");
	NORM_IS("\xff\xfe  \x80", "\xff\xfe \x80");
	/* an embedded NUL is an ordinary byte */
	CHECK(norm_is("A\0B", 3, "a\0b", 3));
	/* same query, different spacing and case */
	{
		char a[64], b[64];
		size_t na = textnorm("How do I  reverse a list?", 25, a);
		size_t nb = textnorm("\thow DO i reverse a list?\n", 26, b);

		CHECK(na == nb && !memcmp(a, b, na));
	}

	/* 1 MiB of every byte value: no overflow, never longer than input */
	n = 1 << 20;
	big = malloc(n);
	out = malloc(n);
	CHECK(big && out);
	if (big && out) {
		size_t m;
		int ok = 1;

		for (i = 0; i < n; i++)
			big[i] = (char)(i * 131 + (i >> 8));
		m = textnorm(big, n, out);
		CHECK(m <= n);
		for (i = 0; i < m; i++)
			if ((out[i] >= 'A' && out[i] <= 'Z') || out[i] == '\t' ||
			    out[i] == '\n' || (out[i] == ' ' && i + 1 < m &&
					       out[i + 1] == ' '))
				ok = 0;
		CHECK(ok);
		CHECK(m == 0 || (out[0] != ' ' && out[m - 1] != ' '));
	}
	free(big);
	free(out);
	return check_done("textnorm");
}
