/*
 * textnorm.h - query normalisation for the exact-match fast path.
 *
 * Two queries that differ only in case (ASCII) or in white space (leading,
 * trailing, runs of spaces, tabs, newlines) normalise to the same bytes.
 * Non-ASCII bytes are kept as they are, so binary or invalid UTF-8 input is
 * matched byte for byte and never rejected.
 */
#ifndef SEMCACHE_TEXTNORM_H
#define SEMCACHE_TEXTNORM_H

#include <stddef.h>

/*
 * Normalise len bytes of in into out, which must hold at least len bytes.
 * Returns the normalised length (0 for input that is only white space).
 * out is not NUL-terminated.
 */
size_t textnorm(const char *in, size_t len, char *out);

#endif
