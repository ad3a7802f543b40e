/*
 * hash.h - 64-bit hashing of byte strings and an open-addressing map from
 * 64-bit keys to pointers.
 *
 * hash64() is a seeded multiply-xorshift hash (not cryptographic): two seeds
 * give the 128-bit exact-match keys. hash_fnv1a() is plain FNV-1a 64. u64map is a plain linear-probing table
 * with backward-shift deletion; it is not synchronised — its owner's lock
 * guards it. Key 0 is reserved (callers map it to another value).
 */
#ifndef SEMCACHE_HASH_H
#define SEMCACHE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SplitMix64's finaliser: a bijective 64-bit mix (hash64, in-memory maps). */
static inline uint64_t hash_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* MurmurHash3's fmix64. Part of the built-in embedder's definition
 * (builtin-v1 feature hashing): changing it changes every stored vector. */
static inline uint64_t hash_fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

uint64_t hash64(const void *data, size_t len, uint64_t seed);

/* FNV-1a 64 over n bytes, continuing from h (HASH_FNV_INIT to start). Part
 * of what the embedders and the verifier compute (feature hashes, keys,
 * names): changing it changes stored vectors and shipped tables. */
#define HASH_FNV_INIT 0xcbf29ce484222325ull

static inline uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

struct u64map {
	uint64_t *keys;     /* 0 = empty slot */
	void **vals;
	size_t cap;         /* power of two, or 0 */
	size_t len;
};

void u64map_init(struct u64map *m);
void u64map_release(struct u64map *m);
/* NULL if absent. */
void *u64map_get(const struct u64map *m, uint64_t key);
/* Insert or replace. 0 or -ENOMEM. */
int u64map_put(struct u64map *m, uint64_t key, void *val);
/* Remove; returns the value that was there, or NULL. */
void *u64map_del(struct u64map *m, uint64_t key);

#endif
