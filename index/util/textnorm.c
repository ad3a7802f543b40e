/*
 * textnorm.c - query normalisation for the exact-match fast path.
 *
 * One pass over the bytes: ASCII letters are lowered, every run of ASCII
 * white space (space, \t, \n, \r, \v, \f) becomes a single space, and white
 * space at either end is dropped. Every other byte, including NUL and bytes
 * >= 0x80, is copied unchanged, so the output is never longer than the input
 * and no input is rejected.
 *
 * It does not fold Unicode case, apply Unicode normalisation (NFC/NFKC) or
 * touch punctuation: those would change what counts as the "same" query and
 * belong to the embedder, not to exact matching.
 */
#include "textnorm.h"

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

size_t textnorm(const char *in, size_t len, char *out)
{
	size_t i, n = 0;
	int pending_space = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (is_space(c)) {
			/* emitted only if more text follows, and never first */
			pending_space = n > 0;
			continue;
		}
		if (pending_space) {
			out[n++] = ' ';
			pending_space = 0;
		}
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		out[n++] = (char)c;
	}
	return n;
}
