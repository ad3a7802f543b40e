/*
 * buf.h - a growable byte buffer: the content of session and scratch files
 * and of handles' read snapshots and write buffers.
 *
 * Invariants: len <= cap; data is NULL or from malloc() (a buffer may adopt
 * a malloc'd string by setting data and len = cap = its length); a zeroed
 * struct buf is an empty buffer; bytes past len are undefined. The buffer
 * owns data: buf_release() frees it. A buffer has no lock of its own: the
 * struct it lives in says which lock guards it.
 */
#ifndef SEMCACHE_BUF_H
#define SEMCACHE_BUF_H

#include <stddef.h>
#include <sys/types.h>

struct buf {
	char *data;
	size_t len, cap;
};

/* Write size bytes at off, growing the buffer; a gap is zero-filled.
 * 0, -EINVAL for a negative offset, -ENOMEM (the buffer is unchanged). */
int buf_write(struct buf *b, const char *data, size_t size, off_t off);
/* Cut or zero-extend to size bytes. 0 or -ENOMEM. */
int buf_truncate(struct buf *b, size_t size);
/* Replace the content with a copy of data. 0 or -ENOMEM. */
int buf_set(struct buf *b, const char *data, size_t size);
/* Free the content; the buffer is empty again. */
void buf_release(struct buf *b);

#endif
