/*
 * bytes.h - fixed-width little-endian fields and the CRC-32 the on-disk and
 * on-wire formats use (blob headers, snapshots, Redis entry metadata).
 * Byte order is explicit so files move between machines.
 */
#ifndef SEMCACHE_BYTES_H
#define SEMCACHE_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline void bytes_put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void bytes_put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t bytes_get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t bytes_get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* zlib's CRC-32 of len bytes (any length). */
uint32_t bytes_crc32(const void *data, size_t len);

#endif
