/*
 * idmap.c - the vector index's map from a caller's id to where its vector
 * lives (a FAISS position or a buffer entry).
 *
 * Open addressing with linear probing and backward-shift deletion, 4 bytes
 * per slot, load kept at or below 1/2 (doubling). A slot holds loc+1 (0 is
 * empty); the key is not stored but read back through pos_ids / buf_ids,
 * so whoever moves a vector repoints its slot while the old location still
 * holds the id. Not synchronised: callers hold vi->lock (the write side to
 * change it). It never shrinks.
 */
#include "vindex_i.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>

static int64_t loc_id(const struct vindex *vi, uint32_t loc)
{
	return loc & VINDEX_BUF_BIT ? vi->buf_ids[loc & ~VINDEX_BUF_BIT] :
				      vi->pos_ids[loc];
}

size_t vindex_map_find(const struct vindex *vi, int64_t id)
{
	size_t mask = vi->nslots - 1;
	size_t i = hash_mix64((uint64_t)id) & mask;

	while (vi->slots[i] && loc_id(vi, vi->slots[i] - 1) != id)
		i = (i + 1) & mask;
	return i;
}

static int map_resize(struct vindex *vi, size_t nslots)
{
	uint32_t *old = vi->slots;
	size_t oldn = vi->nslots;
	uint32_t *s = calloc(nslots, sizeof(*s));

	if (!s)
		return -ENOMEM;
	vi->slots = s;
	vi->nslots = nslots;
	for (size_t i = 0; i < oldn; i++)
		if (old[i])
			s[vindex_map_find(vi, loc_id(vi, old[i] - 1))] = old[i];
	free(old);
	return 0;
}

int vindex_map_reserve(struct vindex *vi)
{
	if ((vi->nused + 1) * 2 <= vi->nslots)
		return 0;
	return map_resize(vi, vi->nslots * 2);
}

int vindex_map_insert(struct vindex *vi, int64_t id, uint32_t loc)
{
	size_t s;
	int rc = vindex_map_reserve(vi);

	if (rc)
		return rc;
	s = vindex_map_find(vi, id);
	if (vi->slots[s])
		return -EBADMSG;        /* duplicate id in the file */
	vi->slots[s] = loc + 1;
	vi->nused++;
	return 0;
}

void vindex_map_delete(struct vindex *vi, size_t i)
{
	size_t mask = vi->nslots - 1;
	size_t j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!vi->slots[j])
			break;
		size_t h = hash_mix64((uint64_t)loc_id(vi, vi->slots[j] - 1)) & mask;
		/* leave slots[j] alone if its home lies in (i, j] */
		if (((j - h) & mask) < ((j - i) & mask))
			continue;
		vi->slots[i] = vi->slots[j];
		i = j;
	}
	vi->slots[i] = 0;
	vi->nused--;
}
