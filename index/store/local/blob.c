/*
 * blob.c - the local store's response files, blobs/XX/ID.
 *
 * Format: a header, "SCB1", u32 version, u64 payload length, u32 zlib
 * crc32 of the payload, and in version 2 the u64 id of the entry it
 * belongs to (all little-endian), then the payload. Version 2 (28 bytes of
 * header) is written; version 1 (20 bytes, no id, written by older
 * builds) is still read. A version 2 blob is served only for its own
 * entry: a valid blob copied over another entry's is -EBADMSG. A blob
 * is written temp -> fsync? -> rename -> fsync(dir)? (the fsyncs with
 * sync_full), each failure logged naming its step, and read back only when
 * the header, the file's length and the checksum agree (else -EBADMSG).
 * XX is the low byte of the id in hex, so no directory grows past 1/256 of
 * the store. Blob paths are opened relative to the store directory with
 * O_NOFOLLOW on the last component only, so the directories on the way must
 * not be symlinks: local_blob_dirs refuses a store where they are.
 *
 * What not: no locking (callers hold no lock across blob I/O; ids are
 * unique so no two writers share a name), no caching, no compression.
 */
#include "local_i.h"
#include "bytes.h"
#include "fileio.h"
#include "semlog.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_MAGIC "SCB1"
#define BLOB_VERSION 2u
#define BLOB_V1_HDR_LEN 20
#define BLOB_HDR_LEN 28

int local_blob_name(int64_t id, struct blob_name *n)
{
	unsigned xx = (unsigned)(local_i64_to_u64(id) & 0xff);
	int a, b, c;

	a = snprintf(n->dir, sizeof(n->dir), "blobs/%02x", xx);
	b = snprintf(n->tmp, sizeof(n->tmp), "blobs/%02x/.tmp.%lld", xx,
		     (long long)id);
	c = snprintf(n->fin, sizeof(n->fin), "blobs/%02x/%lld", xx,
		     (long long)id);
	if (a < 0 || (size_t)a >= sizeof(n->dir) || b < 0 ||
	    (size_t)b >= sizeof(n->tmp) || c < 0 ||
	    (size_t)c >= sizeof(n->fin))
		return -ENAMETOOLONG;
	return 0;
}

ssize_t local_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int local_fsync_dir_at(int dirfd, const char *name)
{
	int fd, ret = 0;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int local_blob_write(struct store_local *s, int64_t id, const void *data,
		     size_t len)
{
	unsigned char hdr[BLOB_HDR_LEN];
	struct blob_name n;
	int fd, ret;

	ret = local_blob_name(id, &n);
	if (ret)
		return ret;
	memcpy(hdr, BLOB_MAGIC, 4);
	bytes_put_le32(hdr + 4, BLOB_VERSION);
	bytes_put_le64(hdr + 8, (uint64_t)len);
	bytes_put_le32(hdr + 16, bytes_crc32(data, len));
	bytes_put_le64(hdr + 20, local_i64_to_u64(id));

	fd = openat(s->dirfd, n.tmp,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: create blob '%s': %s", n.tmp, strerror(-ret));
		goto out_unlink;
	}
	ret = fileio_write_all(fd, hdr, sizeof(hdr));
	if (!ret && len)
		ret = fileio_write_all(fd, data, len);
	if (ret) {
		semlog(SEMLOG_ERR, "store: write blob '%s': %s", n.fin, strerror(-ret));
		goto out_close;
	}
	if (s->sync_full && fsync(fd) < 0) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: fsync blob '%s': %s", n.fin, strerror(-ret));
		goto out_close;
	}
	if (close(fd) < 0) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: close blob '%s': %s", n.fin, strerror(-ret));
		goto out_unlink;
	}
	if (renameat(s->dirfd, n.tmp, s->dirfd, n.fin) < 0) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: rename blob '%s' to '%s': %s", n.tmp, n.fin,
			  strerror(-ret));
		goto out_unlink;
	}
	if (s->sync_full) {
		ret = local_fsync_dir_at(s->dirfd, n.dir);
		if (ret) {
			semlog(SEMLOG_ERR, "store: fsync blob directory '%s': %s", n.dir,
				  strerror(-ret));
			unlinkat(s->dirfd, n.fin, 0);
			return ret;
		}
	}
	return 0;

out_close:
	close(fd);
out_unlink:
	unlinkat(s->dirfd, n.tmp, 0);
	return ret;
}

int local_blob_read(struct store_local *s, int64_t id, void **buf,
		    size_t *len)
{
	unsigned char hdr[BLOB_HDR_LEN];
	struct blob_name n;
	struct stat sb;
	uint64_t plen;
	uint32_t ver;
	size_t hlen;
	void *data = NULL;
	ssize_t got;
	int fd, ret;

	ret = local_blob_name(id, &n);
	if (ret)
		return ret;
	fd = openat(s->dirfd, n.fin, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			semlog(SEMLOG_ERR, "store: open blob '%s': %s", n.fin, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: stat blob '%s': %s", n.fin, strerror(-ret));
		goto out;
	}
	got = local_read_full(fd, hdr, sizeof(hdr));
	if (got < 0) {
		ret = (int)got;
		semlog(SEMLOG_ERR, "store: read blob '%s': %s", n.fin, strerror(-ret));
		goto out;
	}
	ver = (size_t)got >= BLOB_V1_HDR_LEN ? bytes_get_le32(hdr + 4) : 0;
	hlen = ver == 1 ? BLOB_V1_HDR_LEN : BLOB_HDR_LEN;
	plen = bytes_get_le64(hdr + 8);
	if ((size_t)got < hlen || memcmp(hdr, BLOB_MAGIC, 4) ||
	    (ver != 1 && ver != BLOB_VERSION) || sb.st_size < (off_t)hlen ||
	    plen != (uint64_t)sb.st_size - hlen || plen > SIZE_MAX - 1) {
		ret = -EBADMSG;
		semlog(SEMLOG_ERR, "store: blob '%s' is damaged (bad header or length); "
			  "delete entry %lld", n.fin, (long long)id);
		goto out;
	}
	if (ver == BLOB_VERSION &&
	    bytes_get_le64(hdr + 20) != local_i64_to_u64(id)) {
		ret = -EBADMSG;
		semlog(SEMLOG_ERR, "store: blob '%s' belongs to entry %lld, not to "
		       "entry %lld (copied over it?); not served: delete entry "
		       "%lld", n.fin, (long long)local_u64_to_i64(
		       bytes_get_le64(hdr + 20)), (long long)id, (long long)id);
		goto out;
	}
	/* a version 1 header is shorter: its payload starts inside hdr */
	if (lseek(fd, (off_t)hlen, SEEK_SET) < 0) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: seek in blob '%s': %s", n.fin,
		       strerror(-ret));
		goto out;
	}
	data = malloc(plen ? (size_t)plen : 1);
	if (!data) {
		ret = -ENOMEM;
		goto out;
	}
	got = local_read_full(fd, data, (size_t)plen);
	if (got < 0) {
		ret = (int)got;
		semlog(SEMLOG_ERR, "store: read blob '%s': %s", n.fin, strerror(-ret));
		goto out;
	}
	if ((uint64_t)got != plen ||
	    bytes_crc32(data, (size_t)plen) != bytes_get_le32(hdr + 16)) {
		ret = -EBADMSG;
		semlog(SEMLOG_ERR, "store: blob '%s' is damaged (checksum mismatch); delete "
			  "entry %lld", n.fin, (long long)id);
		goto out;
	}
	*buf = data;
	*len = (size_t)plen;
	data = NULL;
	ret = 0;
out:
	free(data);
	close(fd);
	return ret;
}

int local_blob_unlink(struct store_local *s, int64_t id)
{
	struct blob_name n;
	int ret = local_blob_name(id, &n);

	if (ret)
		return ret;
	if (unlinkat(s->dirfd, n.fin, 0) < 0 && errno != ENOENT) {
		ret = -errno;
		semlog(SEMLOG_ERR, "store: remove blob '%s': %s", n.fin,
		       strerror(-ret));
	}
	return ret;
}

static int mkdir_at(int dirfd, const char *name, bool *created)
{
	if (mkdirat(dirfd, name, 0700) == 0) {
		*created = true;
		return 0;
	}
	return errno == EEXIST ? 0 : -errno;
}

/* name must be a real directory, not a symlink or a file. */
static int check_real_dir(struct store_local *s, const char *name, char *err,
			  size_t errlen)
{
	struct stat sb;

	if (fstatat(s->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		int e = errno;

		errbuf_set(err, errlen, "store: stat '%s/%s': %s", s->dir, name,
			strerror(e));
		return -e;
	}
	if (S_ISDIR(sb.st_mode))
		return 0;
	errbuf_set(err, errlen, "store: '%s/%s' is %s, not a directory; "
		"refusing to use the store: remove it and start again",
		s->dir, name, S_ISLNK(sb.st_mode) ? "a symlink" : "a file");
	semlog(SEMLOG_ERR, "store: %s", err ? err : "blob directory is not a directory");
	return -ENOTDIR;
}

int local_blob_dirs(struct store_local *s, char *err, size_t errlen)
{
	bool made_top = false, made_sub = false;
	char name[16];
	int ret;

	ret = mkdir_at(s->dirfd, "blobs", &made_top);
	if (ret) {
		errbuf_set(err, errlen, "store: create directory '%s/blobs': %s",
			s->dir, strerror(-ret));
		return ret;
	}
	ret = check_real_dir(s, "blobs", err, errlen);
	if (ret)
		return ret;
	for (unsigned i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "blobs/%02x", i);
		ret = mkdir_at(s->dirfd, name, &made_sub);
		if (ret) {
			errbuf_set(err, errlen, "store: create directory "
				"'%s/%s': %s", s->dir, name, strerror(-ret));
			return ret;
		}
		ret = check_real_dir(s, name, err, errlen);
		if (ret)
			return ret;
	}
	if (made_sub && (ret = local_fsync_dir_at(s->dirfd, "blobs"))) {
		errbuf_set(err, errlen, "store: fsync directory '%s/blobs': %s",
			s->dir, strerror(-ret));
		return ret;
	}
	if (made_top && fsync(s->dirfd) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "store: fsync directory '%s': %s",
			s->dir, strerror(-ret));
		return ret;
	}
	return 0;
}

int local_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

bool local_parse_id(const char *name, int64_t *id)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)name[0]) || name[0] == '0')
		return false;
	errno = 0;
	v = strtoll(name, &end, 10);
	if (errno || *end || v <= 0)
		return false;
	*id = v;
	return true;
}

DIR *local_blob_dir(struct store_local *s, unsigned xx, char *dname,
		    int flags)
{
	DIR *d;
	int fd, e;

	snprintf(dname, 16, "blobs/%02x", xx);
	fd = openat(s->dirfd, dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

int local_blob_ids(struct store_local *s, int64_t **out, size_t *out_n)
{
	struct local_ids ids = { 0 };

	for (unsigned xx = 0; xx < 256; xx++) {
		char dname[16];
		struct dirent *de;
		DIR *d = local_blob_dir(s, xx, dname, O_NOFOLLOW);

		if (!d) {
			int e = errno;

			if (e == ENOENT)
				continue;
			free(ids.v);
			return -e;
		}
		while ((de = readdir(d))) {
			int64_t id;

			if (!local_parse_id(de->d_name, &id) ||
			    (local_i64_to_u64(id) & 0xff) != xx)
				continue;
			if (local_ids_push(&ids, id)) {
				closedir(d);
				free(ids.v);
				return -ENOMEM;
			}
		}
		closedir(d);
	}
	if (ids.n)
		qsort(ids.v, ids.n, sizeof(*ids.v), local_cmp_i64);
	*out = ids.v;
	*out_n = ids.n;
	return 0;
}
