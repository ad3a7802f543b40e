/*
 * embed_i.h - helpers the embedders share (private to index/embed/;
 * callers use embed.h).
 *
 * UTF-8 decoding and encoding (utf8.c) and FNV-1a. Both are part of what
 * embedders compute (piece lookups, the bytes sent to an endpoint, the
 * built-in feature hashes, embedder names), so changing either changes
 * stored vectors or names: don't.
 */
#ifndef SEMCACHE_EMBED_I_H
#define SEMCACHE_EMBED_I_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

/*
 * Decode one code point at s[*i] (*i < len) and advance *i past it.
 * Invalid UTF-8 (a bad lead or continuation byte, a sequence cut by len,
 * an overlong form, a surrogate, anything past U+10FFFF) gives U+FFFD and
 * consumes one byte.
 */
uint32_t embed_utf8_next(const unsigned char *s, size_t len, size_t *i);
/* Encode cp (at most U+10FFFF) at out, which has room for 4 bytes.
 * Returns the bytes written (1-4). */
size_t embed_utf8_put(char *out, uint32_t cp);

/* FNV-1a over n bytes, continuing from h (EMBED_FNV_INIT to start); the
 * one in hash.h under the name the embedders use. */
#define EMBED_FNV_INIT HASH_FNV_INIT

static inline uint64_t embed_fnv1a(uint64_t h, const void *p, size_t n)
{
	return hash_fnv1a(h, p, n);
}

#endif
