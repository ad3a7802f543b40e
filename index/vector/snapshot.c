/*
 * snapshot.c - saving the vector index to a file and loading it back.
 *
 * File: a 64-byte header, then the body:
 *   int64 pos_ids[ntotal], uint64 tomb[(ntotal + 63) / 64],
 *   int64 buf_ids[nbuf], float buf_vecs[nbuf * dim],
 *   FAISS index bytes (faiss_write_index) to the end.
 * Header (host byte order): "SCVX", u32 version, u32 dim, u32 m, u32 efc,
 * u32 crc, u64 ntotal, u64 nbuf, u64 ntomb, i64 max_id, u64 body_len.
 * crc is zlib crc32 over the header with the crc field zeroed, then the body.
 *
 * Save serialises the body into memory under the read lock, then writes
 * temp -> fsync -> rename -> fsync(dir) with no lock held; each error names
 * the step. Load maps the whole file, checks magic, version, length and
 * crc before trusting any field, then rebuilds the id map from pos_ids,
 * tomb and buf_ids, refusing duplicates and stray tombstone bits.
 *
 * What not: the format is not portable across byte orders, and a file
 * saved with another dim or m is refused (-ESTALE), not converted.
 */
#include "vindex_i.h"
#include "bytes.h"
#include "fileio.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <faiss/c_api/index_io_c.h>

#define VX_MAGIC "SCVX"
#define VX_VERSION 1u
#define VX_HDR_SIZE 64

struct vx_header {
	uint32_t version, dim, m, efc, crc;
	uint64_t ntotal, nbuf, ntomb, body_len;
	int64_t max_id;
};

static void hdr_encode(const struct vx_header *h, unsigned char *b)
{
	memset(b, 0, VX_HDR_SIZE);
	memcpy(b, VX_MAGIC, 4);
	memcpy(b + 4, &h->version, 4);
	memcpy(b + 8, &h->dim, 4);
	memcpy(b + 12, &h->m, 4);
	memcpy(b + 16, &h->efc, 4);
	memcpy(b + 20, &h->crc, 4);
	memcpy(b + 24, &h->ntotal, 8);
	memcpy(b + 32, &h->nbuf, 8);
	memcpy(b + 40, &h->ntomb, 8);
	memcpy(b + 48, &h->max_id, 8);
	memcpy(b + 56, &h->body_len, 8);
}

static void hdr_decode(const unsigned char *b, struct vx_header *h)
{
	memcpy(&h->version, b + 4, 4);
	memcpy(&h->dim, b + 8, 4);
	memcpy(&h->m, b + 12, 4);
	memcpy(&h->efc, b + 16, 4);
	memcpy(&h->crc, b + 20, 4);
	memcpy(&h->ntotal, b + 24, 8);
	memcpy(&h->nbuf, b + 32, 8);
	memcpy(&h->ntomb, b + 40, 8);
	memcpy(&h->max_id, b + 48, 8);
	memcpy(&h->body_len, b + 56, 8);
}

#define CRC_SPLIT_BYTES (64u << 20) /* bodies from this size: two threads */

struct crc_part {
	const unsigned char *p;
	size_t len;
	uint32_t crc;
};

static void *crc_part_run(void *arg)
{
	struct crc_part *cp = arg;

	cp->crc = bytes_crc32(cp->p, cp->len);
	return NULL;
}

/* CRC-32 of the body; a large one in two halves at once (the second on a
 * thread of its own, joined here), combined: a 1.3 GB snapshot of 1M
 * entries is checked at every start-up and written at every clean stop. */
static uint32_t body_crc(const unsigned char *body, size_t len)
{
	struct crc_part tail;
	pthread_t t;
	size_t half = len / 2;
	uint32_t head;

	if (len < CRC_SPLIT_BYTES)
		return bytes_crc32(body, len);
	tail = (struct crc_part){ .p = body + half, .len = len - half };
	if (pthread_create(&t, NULL, crc_part_run, &tail))
		return bytes_crc32(body, len);
	head = bytes_crc32(body, half);
	pthread_join(t, NULL);
	return (uint32_t)crc32_combine(head, tail.crc, (z_off_t)(len - half));
}

/* CRC-32 of the header (crc field zeroed) followed by the body. */
static uint32_t file_crc(const unsigned char *hdr, const unsigned char *body,
			 size_t len)
{
	unsigned char h[VX_HDR_SIZE];

	memcpy(h, hdr, VX_HDR_SIZE);
	memset(h + 20, 0, 4);
	return (uint32_t)crc32_combine(bytes_crc32(h, VX_HDR_SIZE),
				       body_crc(body, len), (z_off_t)len);
}

/* Serialise the body into memory (read lock held). */
static int body_encode(struct vindex *vi, struct vx_header *h, char **body,
		       size_t *len)
{
	FILE *f = open_memstream(body, len);
	size_t dim = vi->p.dim, words = vindex_tomb_words(vi->ntotal);
	int rc = 0;

	if (!f)
		return -errno;
	if (vi->ntotal &&
	    (fwrite(vi->pos_ids, sizeof(int64_t), vi->ntotal, f) != vi->ntotal ||
	     fwrite(vi->tomb, sizeof(uint64_t), words, f) != words))
		rc = -ENOMEM;
	if (vi->nbuf &&
	    (fwrite(vi->buf_ids, sizeof(int64_t), vi->nbuf, f) != vi->nbuf ||
	     fwrite(vi->buf_vecs, sizeof(float) * dim, vi->nbuf, f) != vi->nbuf))
		rc = -ENOMEM;
	if (!rc) {
		rc = faiss_write_index(vi->hnsw, f);
		if (rc)
			rc = vindex_faiss_err("write_index", rc);
	}
	if (fclose(f) && !rc)
		rc = -ENOMEM;
	if (rc) {
		free(*body);
		*body = NULL;
		return rc;
	}
	*h = (struct vx_header){
		.version = VX_VERSION, .dim = vi->p.dim, .m = vi->p.m,
		.efc = vi->p.ef_construction, .ntotal = vi->ntotal,
		.nbuf = vi->nbuf, .ntomb = vi->ntomb, .max_id = vi->max_id,
		.body_len = *len,
	};
	return 0;
}

static int write_file(const char *path, const unsigned char *hdr,
		      const char *body, size_t len)
{
	const char *step = "create", *name;
	char *tmp;
	int fd, rc;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	name = tmp;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	step = "write";
	rc = fileio_write_all(fd, hdr, VX_HDR_SIZE);
	if (!rc)
		rc = fileio_write_all(fd, body, len);
	if (!rc) {
		step = "fsync";
		rc = fsync(fd) ? -errno : 0;
	}
	if (close(fd) && !rc) {
		step = "close";
		rc = -errno;
	}
	if (!rc) {
		step = "rename to";
		name = path;
		rc = rename(tmp, path) ? -errno : 0;
	}
	if (rc) {
		unlink(tmp);
		goto out;
	}
	step = "fsync directory of";
	rc = fileio_fsync_parent(path);
out:
	if (rc)
		semlog(SEMLOG_ERR, "vindex: %s '%s' failed: %s", step, name,
			strerror(-rc));
	free(tmp);
	return rc;
}

static bool file_is(const struct stat *st, const struct vindex_file *f)
{
	return st->st_dev == f->dev && st->st_ino == f->ino &&
	       st->st_size == f->size &&
	       st->st_mtim.tv_sec == f->mtime.tv_sec &&
	       st->st_mtim.tv_nsec == f->mtime.tv_nsec;
}

/* Remember path (as stat saw it) as this index's file at generation gen;
 * a failure to remember only costs a later save. Takes the write lock. */
static void file_remember(struct vindex *vi, const char *path,
			  const struct stat *st, uint64_t gen)
{
	char *copy = strdup(path);

	pthread_rwlock_wrlock(&vi->lock);
	free(vi->file.path);
	vi->file = (struct vindex_file){ .path = copy, .dev = st->st_dev,
		.ino = st->st_ino, .size = st->st_size,
		.mtime = st->st_mtim, .gen = gen };
	pthread_rwlock_unlock(&vi->lock);
}

/*
 * An index unchanged since it was loaded from path or last saved there,
 * with that file still the very one (same inode, size and mtime), is not
 * written again: a restarted 1M-entry daemon that only answered lookups
 * stopped in 11 s, most of it writing the same 1.3 GB again.
 */
int vindex_save(struct vindex *vi, const char *path)
{
	struct vx_header h = { 0 };
	unsigned char hdr[VX_HDR_SIZE];
	struct vindex_file same = { 0 };
	char *body = NULL;
	struct stat st;
	uint64_t gen;
	size_t len = 0;
	int rc;

	if (!vi || !path)
		return -EINVAL;
	vindex_omp_one_thread();
	pthread_rwlock_rdlock(&vi->lock);
	if (vi->file.path && vi->file.gen == vi->gen && !strcmp(vi->file.path, path))
		same = vi->file;
	pthread_rwlock_unlock(&vi->lock);
	if (same.path && !stat(path, &st) && file_is(&st, &same))
		return 0;
	pthread_rwlock_rdlock(&vi->lock);
	gen = vi->gen;
	rc = body_encode(vi, &h, &body, &len);
	pthread_rwlock_unlock(&vi->lock);
	if (rc)
		return rc;
	hdr_encode(&h, hdr);
	h.crc = file_crc(hdr, (unsigned char *)body, len);
	hdr_encode(&h, hdr);
	rc = write_file(path, hdr, body, len);
	free(body);
	if (!rc && !stat(path, &st))
		file_remember(vi, path, &st, gen);
	return rc;
}

/* Map the whole file read-only (MAP_POPULATE: one pass through the page
 * cache, no copy and no fresh pages to zero, where reading it into a
 * buffer as large as the file cost about a third of a start-up). The file
 * is the daemon's own, in its 0700 index directory, replaced only by
 * rename: nothing truncates it under the mapping. An empty file is
 * -EBADMSG (too short for a header). */
static int map_file(const char *path, unsigned char **out, size_t *len,
		    struct stat *stp)
{
	struct stat st;
	void *p;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
	} else if (!S_ISREG(st.st_mode) || st.st_size < VX_HDR_SIZE) {
		rc = -EBADMSG;
	} else if ((uint64_t)st.st_size > SIZE_MAX) {
		rc = -EFBIG;
	} else {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ,
			 MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (p == MAP_FAILED) {
			rc = -errno;
		} else {
			*out = p;
			*len = (size_t)st.st_size;
			*stp = st;
		}
	}
	close(fd);
	return rc;
}

/* Fill vi from a checked body (fresh vi, no lock needed). */
static int body_decode(struct vindex *vi, const struct vx_header *h,
		       const unsigned char *b)
{
	size_t dim = vi->p.dim, nt = h->ntotal, nb = h->nbuf, ntomb = 0;
	size_t fixed = nt * 8 + vindex_tomb_words(nt) * 8 + nb * 8 +
		       nb * dim * 4;
	FaissIndex *idx = NULL;
	FILE *f;
	int rc;

	if (nt > VINDEX_LOC_MAX || nb > VINDEX_LOC_MAX || fixed >= h->body_len)
		return -EBADMSG;
	/* at least one element each, so no memcpy below gets NULL */
	rc = vindex_pos_reserve(vi, nt ? nt : 1);
	if (!rc)
		rc = vindex_buf_reserve(vi, nb ? nb : 1);
	if (rc)
		return rc;
	memcpy(vi->pos_ids, b, nt * 8);
	b += nt * 8;
	memcpy(vi->tomb, b, vindex_tomb_words(nt) * 8);
	b += vindex_tomb_words(nt) * 8;
	memcpy(vi->buf_ids, b, nb * 8);
	b += nb * 8;
	memcpy(vi->buf_vecs, b, nb * dim * 4);
	b += nb * dim * 4;
	vi->ntotal = nt;
	vi->nbuf = nb;
	vi->max_id = h->max_id;

	f = fmemopen((void *)b, h->body_len - fixed, "rb");
	if (!f)
		return -errno;
	rc = faiss_read_index(f, 0, &idx);
	fclose(f);
	if (rc) {
		vindex_faiss_err("read_index", rc);
		return -EBADMSG;
	}
	vi->hnsw = idx;
	if (faiss_Index_d(idx) != vi->p.dim ||
	    faiss_Index_ntotal(idx) != (idx_t)nt)
		return -EBADMSG;
	/* fails on anything but HNSW */
	if (vindex_set_param(vi, idx, "efConstruction",
			     vi->p.ef_construction) ||
	    vindex_set_param(vi, idx, "efSearch", vi->p.ef_search))
		return -EBADMSG;

	for (size_t pos = 0; pos < vindex_tomb_words(nt) * 64; pos++) {
		if (pos >= nt) {
			if (vindex_tomb_get(vi, pos))
				return -EBADMSG;
		} else if (vindex_tomb_get(vi, pos)) {
			ntomb++;
		} else if ((rc = vindex_map_insert(vi, vi->pos_ids[pos],
						   pos))) {
			return rc;
		}
	}
	if (ntomb != h->ntomb)
		return -EBADMSG;
	vi->ntomb = ntomb;
	for (size_t i = 0; i < nb; i++) {
		rc = vindex_map_insert(vi, vi->buf_ids[i], VINDEX_BUF_BIT | i);
		if (rc)
			return rc;
	}
	return 0;
}

int64_t vindex_snapshot_max_id(const char *path)
{
	unsigned char b[VX_HDR_SIZE];
	struct vx_header h;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	got = pread(fd, b, sizeof(b), 0);
	close(fd);
	if (got != (ssize_t)sizeof(b) || memcmp(b, VX_MAGIC, 4))
		return -1;
	hdr_decode(b, &h);
	if (h.version != VX_VERSION || h.max_id < 0)
		return -1;
	return h.max_id;
}

int vindex_load(const char *path, const struct vindex_params *p,
		struct vindex **out)
{
	unsigned char *data = NULL;
	struct vx_header h = { 0 };
	struct vindex *vi = NULL;
	struct stat st;
	size_t len = 0;
	int rc;

	if (!path || !out || !vindex_params_ok(p))
		return -EINVAL;
	vindex_omp_one_thread();
	rc = map_file(path, &data, &len, &st);
	if (rc == -EBADMSG)
		semlog(SEMLOG_ERR, "vindex: '%s' is damaged or not a vindex "
			"file; delete it to rebuild", path);
	if (rc)
		return rc;
	rc = -EBADMSG;
	if (len < VX_HDR_SIZE || memcmp(data, VX_MAGIC, 4))
		goto out;
	hdr_decode(data, &h);
	if (h.version != VX_VERSION || h.body_len != len - VX_HDR_SIZE ||
	    h.crc != file_crc(data, data + VX_HDR_SIZE, h.body_len))
		goto out;
	rc = -ESTALE;
	if (h.dim != (uint32_t)p->dim || h.m != (uint32_t)p->m)
		goto out;
	rc = vindex_alloc(p, &vi);
	if (rc)
		goto out;
	rc = body_decode(vi, &h, data + VX_HDR_SIZE);
	if (rc) {
		vindex_free(vi);
		goto out;
	}
	file_remember(vi, path, &st, vi->gen);
	*out = vi;
out:
	if (rc == -EBADMSG)
		semlog(SEMLOG_ERR, "vindex: '%s' is damaged or not a vindex "
			"file; delete it to rebuild", path);
	else if (rc == -ESTALE)
		semlog(SEMLOG_ERR, "vindex: '%s' was saved with other "
			"parameters; delete it to rebuild", path);
	munmap(data, len);
	return rc;
}
