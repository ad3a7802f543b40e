/*
 * vregion.h - a memory region of a FAISS index (hnsw_one.cpp reports them,
 * hugepages.c advises the kernel on them). Shared by C and C++.
 */
#ifndef SEMCACHE_VREGION_H
#define SEMCACHE_VREGION_H

#include <stddef.h>

struct vindex_region {
	void *p;    /* first byte */
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated (>= len) */
};

#endif
