/*
 * hash.c - byte hashing and the u64 -> pointer map (see hash.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

uint64_t hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = hash_mix64(seed ^ (len * 0x9e3779b97f4a7c15ULL));

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		h = hash_mix64(h ^ hash_mix64(w));
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = 0;

		memcpy(&w, p, len);
		h = hash_mix64(h ^ hash_mix64(w ^ 0xff51afd7ed558ccdULL));
	}
	return h;
}

void u64map_init(struct u64map *m)
{
	memset(m, 0, sizeof(*m));
}

void u64map_release(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	u64map_init(m);
}

static size_t slot_of(const struct u64map *m, uint64_t key)
{
	return (size_t)hash_mix64(key) & (m->cap - 1);
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key)
			return m->vals[i];
		if (!m->keys[i])
			return NULL;
	}
}

static int grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	uint64_t *nk = calloc(ncap, sizeof(*nk));
	void **nv = calloc(ncap, sizeof(*nv));

	if (!nk || !nv) {
		free(nk);
		free(nv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = (size_t)hash_mix64(m->keys[i]) & (ncap - 1);

		while (nk[j])
			j = (j + 1) & (ncap - 1);
		nk[j] = m->keys[i];
		nv[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
	if ((m->len + 1) * 4 > m->cap * 3) {
		int rc = grow(m);

		if (rc)
			return rc;
	}
	for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return 0;
		}
		if (!m->keys[i]) {
			m->keys[i] = key;
			m->vals[i] = val;
			m->len++;
			return 0;
		}
	}
}

void *u64map_del(struct u64map *m, uint64_t key)
{
	size_t i, j, mask;
	void *old;

	if (!m->cap)
		return NULL;
	mask = m->cap - 1;
	for (i = slot_of(m, key);; i = (i + 1) & mask) {
		if (!m->keys[i])
			return NULL;
		if (m->keys[i] == key)
			break;
	}
	old = m->vals[i];
	/* Backward-shift: pull later members of the run into the hole. */
	for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
		size_t home = slot_of(m, m->keys[j]);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = 0;
	m->vals[i] = NULL;
	m->len--;
	return old;
}
