/*
 * local_test.h - what the local store's unit tests share: a base
 * directory under $TMPDIR with fresh subdirectories, paths of blob files,
 * opening a store, puts of numbered entries and checks of their
 * responses, scans collected into a struct seen, category lookups, and
 * writing or damaging files. Header-only; included once by test_store.c
 * and test_store_faults.c, after store.h and check.h.
 */
#ifndef SEMCACHE_LOCAL_TEST_H
#define SEMCACHE_LOCAL_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 8

static char base[PATH_MAX];

/* snprintf for test paths: a path that does not fit is a broken test. */
static inline void pathf(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void pathf(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "test path too long: %s\n", fmt);
		exit(2);
	}
}

static inline int rm_rf(const char *path)
{
	struct stat sb;
	char sub[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(sb.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		pathf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	closedir(d);
	return rmdir(path) < 0 ? -errno : 0;
}

/* A fresh, not yet existing store directory for one test. */
static inline void fresh_dir(char *out, size_t len, const char *name)
{
	pathf(out, len, "%s/%s", base, name);
	rm_rf(out);
}

static inline void blob_path(char *out, size_t len, const char *dir, int64_t id)
{
	pathf(out, len, "%s/blobs/%02x/%lld", dir,
		 (unsigned)(id & 0xff), (long long)id);
}

static inline void drop_marker(const char *dir)
{
	char p[PATH_MAX];

	pathf(p, sizeof(p), "%s/clean", dir);
	CHECK(unlink(p) == 0);
}

static inline int open_store(const char *dir, bool sync_full, struct store **s,
		      struct store_report *rep)
{
	struct store_options o = { .sync_full = sync_full };
	char err[512];
	int ret = store_open(dir, &o, s, rep, err, sizeof(err));

	if (ret)
		fprintf(stderr, "open '%s': %d: %s\n", dir, ret, err);
	return ret;
}

static inline void make_vec(float *v, int64_t seed)
{
	for (int i = 0; i < DIM; i++)
		v[i] = (float)seed * 0.5f + (float)i * 0.25f;
}

/* Put an entry whose response is "response <n>" in category cat. */
static inline int put_n(struct store *s, int64_t cat, int n, int64_t *id)
{
	struct store_entry e = { .cat_id = cat, .created_ms = 1000 + n,
				 .key = { (uint64_t)n, ~(uint64_t)n },
				 .ctx_hash = 0 };
	char q[64], r[64];
	float v[DIM];
	struct store_payload p;
	int ret;

	make_vec(v, n);
	snprintf(q, sizeof(q), "query %d", n);
	snprintf(r, sizeof(r), "response %d", n);
	p = (struct store_payload){ .query = q, .query_len = strlen(q),
				    .vec = v, .dim = DIM,
				    .embedder = "builtin-v1",
				    .response = r,
				    .response_len = strlen(r) };
	ret = store_entry_put(s, &e, &p);
	if (id)
		*id = e.id;
	return ret;
}

static inline bool response_is(struct store *s, int64_t id, int n)
{
	char want[64];
	void *buf;
	size_t len;
	bool ok;

	snprintf(want, sizeof(want), "response %d", n);
	if (store_response_read(s, id, NULL, &buf, &len))
		return false;
	ok = len == strlen(want) && !memcmp(buf, want, len);
	free(buf);
	return ok;
}

/* ---- scan helpers ---- */

struct seen {
	int n;
	int64_t ids[4096];
	struct store_entry last;
	float vec[DIM];
	char emb[32];
	int dim;
	bool ordered;
};

static inline int collect(void *arg, const struct store_entry *e, const float *vec,
		   int dim, const char *embedder)
{
	struct seen *sn = arg;

	if (sn->n && e->id <= sn->ids[sn->n - 1])
		sn->ordered = false;
	if (sn->n < 4096)
		sn->ids[sn->n] = e->id;
	sn->n++;
	sn->last = *e;
	sn->dim = dim;
	if (dim == DIM)
		memcpy(sn->vec, vec, sizeof(sn->vec));
	snprintf(sn->emb, sizeof(sn->emb), "%s", embedder);
	return 0;
}

static inline int scan_all(struct store *s, int64_t cat, struct seen *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->ordered = true;
	return store_entry_scan(s, cat, 0, collect, sn);
}

struct cats {
	int n;
	bool root;
	int64_t root_id;
	struct store_category want_c;
	const char *want;
	bool found;
};

static inline int cat_cb(void *arg, const struct store_category *c)
{
	struct cats *k = arg;

	k->n++;
	if (!strcmp(c->path, "/")) {
		k->root = c->mode == 0755 && c->uid == getuid() &&
			  c->gid == getgid();
		k->root_id = c->id;
	}
	if (k->want && !strcmp(c->path, k->want)) {
		k->found = true;
		k->want_c = *c;
	}
	return 0;
}

static inline int stop_cb(void *arg, const struct store_category *c)
{
	(void)arg;
	(void)c;
	return 42;
}

/* ---- tests ---- */

static inline void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static inline void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c = 0;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(pread(fd, &c, 1, off) == 1);
	c ^= 0x10;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

/* Mount a tmpfs of size (mount's "size=" value) on base/name into mnt;
 * false (with a line saying why) when that cannot be done here. */
static inline bool mount_tmpfs(const char *what, const char *name,
			       const char *size, char *mnt, size_t len)
{
	char opt[32];

	if (geteuid() != 0) {
		CHECK_SKIP("%s: mounting a tmpfs needs root", what);
		return false;
	}
	pathf(mnt, len, "%s/%s", base, name);
	snprintf(opt, sizeof(opt), "size=%s", size);
	CHECK(mkdir(mnt, 0700) == 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, opt) < 0) {
		CHECK_SKIP("%s: mount tmpfs on '%s': %s", what, mnt,
			   strerror(errno));
		rmdir(mnt);
		return false;
	}
	return true;
}

#endif
