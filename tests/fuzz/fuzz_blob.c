/*
 * fuzz_blob.c - libFuzzer harness for the store's blob reader.
 *
 * A store is opened once in a temporary directory. Each input becomes the
 * file blobs/01/1 (entry 1): with the first byte even, the input is written
 * as it is (random headers); odd, a valid header for the rest of the input
 * is written (version 1, or version 2 naming entry 1 or another entry, as
 * the second byte says), then one byte may be flipped or the file cut.
 * store_response_read() must then return -EBADMSG, or 0 with exactly the
 * payload bytes after the header of the file's version, or -ENOENT for no
 * file; never crash; a version 2 blob of another entry is never served.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "store.h"

#define FUZZ_NAME "fuzz_blob"
#include "fuzz_check.h"

static struct store *st;
static char dir[] = "/tmp/fuzz_blob.XXXXXX";
static char path[64];

static void le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void cleanup(void)
{
	store_close(st);
	if (fork() == 0)
		execlp("rm", "rm", "-rf", dir, (char *)NULL);
}

static unsigned char *file;   /* what was written last */
static size_t flen;

static void put(const void *a, size_t an, const void *b, size_t bn)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	FUZZ_CHECK(fd >= 0);
	free(file);
	flen = an + bn;
	file = malloc(flen ? flen : 1);
	FUZZ_CHECK(file);
	if (an)
		memcpy(file, a, an);
	if (bn)
		memcpy(file + an, b, bn);
	if (flen)
		FUZZ_CHECK(write(fd, file, flen) == (ssize_t)flen);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *payload = data;
	size_t plen = size;
	bool valid = false;
	void *buf;
	size_t len;
	int rc;

	if (!st) {
		char err[512];

		FUZZ_CHECK(mkdtemp(dir));
		FUZZ_CHECK(store_open(dir, NULL, &st, NULL, err,
				      sizeof(err)) == 0);
		snprintf(path, sizeof(path), "%s/blobs/01/1", dir);
		atexit(cleanup);
	}
	if (size >= 2 && (data[0] & 1)) {
		unsigned char hdr[28];
		unsigned mode = data[1];
		bool v2 = mode & 4, other = v2 && (mode & 8);
		size_t hlen = v2 ? 28 : 20;

		payload = data + 2;
		plen = size - 2;
		memcpy(hdr, "SCB1", 4);
		le32(hdr + 4, v2 ? 2 : 1);
		le64(hdr + 8, plen);
		le32(hdr + 16, (uint32_t)crc32(0, payload, (uInt)plen));
		le64(hdr + 20, other ? 2 : 1);
		if (mode < 128) {
			valid = !other;
			put(hdr, hlen, payload, plen);
		} else {
			/* damage one byte (header or payload) or cut */
			unsigned char *copy = malloc(hlen + plen);
			size_t at = (mode * 7919u) % (hlen + plen);

			FUZZ_CHECK(copy);
			memcpy(copy, hdr, hlen);
			memcpy(copy + hlen, payload, plen);
			if (mode & 2)
				copy[at] ^= (unsigned char)(1u << (mode % 8));
			put(copy, (mode & 2) ? hlen + plen : at, NULL, 0);
			free(copy);
		}
	} else {
		put(data, size, NULL, 0);
	}
	rc = store_response_read(st, 1, NULL, &buf, &len);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	if (valid)
		FUZZ_CHECK(rc == 0);
	if (rc == 0) {
		/* served bytes are exactly the file's payload, after the
		 * header of its version; a version 2 blob names entry 1 */
		size_t hl = flen >= 8 && file[4] == 2 ? 28 : 20;

		FUZZ_CHECK(flen >= hl && len == flen - hl &&
			   !memcmp(buf, file + hl, len));
		FUZZ_CHECK(hl == 20 || file[20] == 1);
		if (valid)
			FUZZ_CHECK(len == plen && !memcmp(buf, payload, plen));
		free(buf);
	}
	return 0;
}
