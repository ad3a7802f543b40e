/*
 * bytes.c - CRC-32 over buffers of any size (zlib's crc32 takes uInt).
 */
#include <zlib.h>

#include "bytes.h"

uint32_t bytes_crc32(const void *data, size_t len)
{
	const unsigned char *p = data;
	uLong crc = crc32(0L, Z_NULL, 0);

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)crc;
}
