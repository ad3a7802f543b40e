/*
 * buf.c - growable byte buffers (buf.h).
 *
 * Capacity doubles from 256 bytes, so appending is amortised O(1). No size
 * limit is applied here: callers check their own limits before writing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int buf_write(struct buf *b, const char *data, size_t size, off_t off)
{
	size_t end = (size_t)off + size;

	if (off < 0)
		return -EINVAL;
	if (end > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		char *n;

		while (ncap < end)
			ncap *= 2;
		n = realloc(b->data, ncap);
		if (!n)
			return -ENOMEM;
		b->data = n;
		b->cap = ncap;
	}
	if ((size_t)off > b->len)
		memset(b->data + b->len, 0, off - b->len);
	memcpy(b->data + off, data, size);
	if (end > b->len)
		b->len = end;
	return 0;
}

int buf_truncate(struct buf *b, size_t size)
{
	if (size > b->len) {
		static const char zero[1];
		int rc = buf_write(b, zero, 0, (off_t)size);

		if (rc)
			return rc;
		memset(b->data + b->len, 0, size - b->len);
	}
	b->len = size;
	return 0;
}

int buf_set(struct buf *b, const char *data, size_t size)
{
	b->len = 0;
	return size ? buf_write(b, data, size, 0) : 0;
}

void buf_release(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
