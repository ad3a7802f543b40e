/*
 * test_vindex.c - unit tests for index/vector/: exact results on small
 * sets, accept filters, removes, buffer vs merged equivalence, HNSW recall
 * against brute force, compaction, save/load (and damaged files),
 * searches racing with adds and merges, and the single-query HNSW search
 * (hnsw_one.cpp) against faiss_Index_search.
 *
 * VINDEX_TEST_N sets the recall set size (default 20000; sanitizer runs use
 * less). Random data comes from a fixed-seed generator so runs repeat.
 * Not a benchmark: timings are printed only as a hint.
 */
#include "check.h"
#include "vindex.h"
#include "vindex_i.h"

#include <faiss/c_api/index_factory_c.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define DIM 256

static uint64_t rng_state = 0x5eedcafef00dull;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static float rng_gauss(void)
{
	double u = ((rng_next() >> 11) + 1.0) / 9007199254740993.0;
	double v = (rng_next() >> 11) / 9007199254740992.0;

	return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void normalise(float *v, int dim)
{
	double s = 0;

	for (int i = 0; i < dim; i++)
		s += (double)v[i] * v[i];
	s = sqrt(s);
	for (int i = 0; i < dim; i++)
		v[i] = (float)(v[i] / s);
}

static void random_unit(float *v, int dim)
{
	for (int i = 0; i < dim; i++)
		v[i] = rng_gauss();
	normalise(v, dim);
}

/* q = normalise(src + noise) */
static void noisy_copy(const float *src, float *q, int dim, float sigma)
{
	for (int i = 0; i < dim; i++)
		q[i] = src[i] + sigma * rng_gauss() / sqrtf((float)dim);
	normalise(q, dim);
}

static float dotf(const float *a, const float *b, int dim)
{
	float s = 0;

	for (int i = 0; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

/* Brute-force best id among live[] (ids are row numbers). */
static int64_t exact_top1(const float *data, const bool *live, size_t n,
			  const float *q, int dim)
{
	int64_t best = -1;
	float bs = -INFINITY;

	for (size_t i = 0; i < n; i++) {
		float s;

		if (!live[i])
			continue;
		s = dotf(data + i * dim, q, dim);
		if (s > bs) {
			bs = s;
			best = (int64_t)i;
		}
	}
	return best;
}

static bool only_even(void *arg, int64_t id)
{
	(void)arg;
	return id % 2 == 0;
}

/* ten ids that vindex_merge() (newest first) has moved into HNSW */
static bool ten_merged(void *arg, int64_t id)
{
	(void)arg;
	return id >= 200 && id < 210;
}

static struct vindex *new_index(int dim)
{
	struct vindex_params p = { .dim = dim, .m = 32,
				   .ef_construction = 80, .ef_search = 64 };
	struct vindex *vi = NULL;

	CHECK_EQ_INT(vindex_new(&p, &vi), 0);
	return vi;
}

/* A NULL index: every call answers (-EINVAL or 0), none crashes. */
static void test_null(void)
{
	float v[4] = { 1, 0, 0, 0 }, sc[1];
	int64_t ids[1];

	CHECK_EQ_INT(vindex_add(NULL, 1, v), -EINVAL);
	CHECK_EQ_INT(vindex_remove(NULL, 1), -EINVAL);
	CHECK_EQ_INT(vindex_search(NULL, v, 1, NULL, NULL, ids, sc), -EINVAL);
	CHECK_EQ_INT(vindex_merge(NULL, 1), -EINVAL);
	CHECK_EQ_INT(vindex_compact(NULL), -EINVAL);
	CHECK_EQ_INT(vindex_set_ef_search(NULL, 16), -EINVAL);
	CHECK_EQ_INT(vindex_get(NULL, 1, v), -EINVAL);
	CHECK_EQ_INT(vindex_save(NULL, "/nonexistent/x"), -EINVAL);
	CHECK_EQ_INT(vindex_buffered(NULL), 0);
	CHECK_EQ_INT(vindex_live(NULL), 0);
	CHECK_EQ_INT(vindex_tombstones(NULL), 0);
	CHECK_EQ_INT(vindex_max_id(NULL), 0);
	vindex_free(NULL);
}

static void test_small(void)
{
	enum { D = 16, N = 8 };
	float v[N][D], out[D];
	int64_t ids[N];
	float sc[N];
	struct vindex *vi = new_index(D);

	for (int i = 0; i < N; i++) {
		random_unit(v[i], D);
		CHECK_EQ_INT(vindex_add(vi, 100 + i, v[i]), 0);
	}
	CHECK_EQ_INT(vindex_add(vi, 100, v[0]), -EEXIST);
	CHECK_EQ_INT(vindex_buffered(vi), N);
	CHECK_EQ_INT(vindex_merge(vi, 3), 3);
	CHECK_EQ_INT(vindex_buffered(vi), N - 3);
	CHECK_EQ_INT(vindex_add(vi, 101, v[1]), -EEXIST);
	for (int i = 0; i < N; i++) {
		int n = vindex_search(vi, v[i], 3, NULL, NULL, ids, sc);

		CHECK_EQ_INT(n, 3);
		CHECK_EQ_INT(ids[0], 100 + i);
		CHECK(fabsf(sc[0] - 1.0f) < 1e-4f);
		CHECK(sc[0] >= sc[1] && sc[1] >= sc[2]);
	}
	CHECK_EQ_INT(vindex_search(vi, v[0], N + 5, NULL, NULL, ids, sc), N);
	CHECK_EQ_INT(vindex_get(vi, 101, out), 0);
	CHECK(memcmp(out, v[1], sizeof(out)) == 0);
	CHECK_EQ_INT(vindex_get(vi, 107, out), 0);
	CHECK(memcmp(out, v[7], sizeof(out)) == 0);
	CHECK_EQ_INT(vindex_get(vi, 99, out), -ENOENT);
	CHECK_EQ_INT(vindex_remove(vi, 99), -ENOENT);
	CHECK_EQ_INT(vindex_max_id(vi), 100 + N - 1);
	CHECK_EQ_INT(vindex_live(vi), N);
	CHECK_EQ_INT(vindex_search(vi, v[0], 0, NULL, NULL, ids, sc), 0);
	CHECK_EQ_INT(vindex_search(vi, v[0], -1, NULL, NULL, ids, sc), -EINVAL);
	CHECK_EQ_INT(vindex_set_ef_search(vi, 0), -EINVAL);
	vindex_free(vi);

	struct vindex_params bad = { .dim = 0, .m = 32, .ef_construction = 1,
				     .ef_search = 1 };
	CHECK_EQ_INT(vindex_new(&bad, &vi), -EINVAL);
}

static void test_filter_and_remove(void)
{
	enum { D = 32, N = 600, K = 10 };
	float *data = malloc(sizeof(float) * N * D), q[D];
	int64_t ids[K];
	float sc[K];
	struct vindex *vi = new_index(D);
	bool ok_even = true, ok_removed = true;

	for (int i = 0; i < N; i++) {
		random_unit(data + i * D, D);
		CHECK_EQ_INT(vindex_add(vi, i, data + i * D), 0);
	}
	CHECK_EQ_INT(vindex_merge(vi, 500), 500);       /* 100 stay buffered */
	for (int t = 0; t < 50; t++) {
		random_unit(q, D);
		int n = vindex_search(vi, q, K, only_even, NULL, ids, sc);

		CHECK_EQ_INT(n, K);
		for (int i = 0; i < n; i++)
			ok_even &= ids[i] % 2 == 0;
	}
	CHECK(ok_even);
	/* a filter accepting 10 ids out of 500 in HNSW: widening finds all */
	random_unit(q, D);
	CHECK_EQ_INT(vindex_search(vi, q, K, ten_merged, NULL, ids, sc), K);

	/* remove every id that is 1 mod 3, merged or buffered */
	for (int i = 1; i < N; i += 3)
		CHECK_EQ_INT(vindex_remove(vi, i), 0);
	CHECK_EQ_INT(vindex_remove(vi, 1), -ENOENT);
	CHECK_EQ_INT(vindex_live(vi), N - N / 3);
	/* the merge took the newest 500 (ids 100..599) */
	CHECK_EQ_INT(vindex_tombstones(vi), (599 - 100) / 3 + 1);
	for (int i = 1; i < N; i += 3) {
		int n = vindex_search(vi, data + i * D, K, NULL, NULL, ids, sc);

		CHECK_EQ_INT(n, K);
		for (int j = 0; j < n; j++)
			ok_removed &= ids[j] % 3 != 1;
	}
	CHECK(ok_removed);
	/* re-adding a removed id is allowed */
	CHECK_EQ_INT(vindex_add(vi, 1, data + D), 0);
	CHECK_EQ_INT(vindex_search(vi, data + D, 1, NULL, NULL, ids, sc), 1);
	CHECK_EQ_INT(ids[0], 1);
	vindex_free(vi);
	free(data);
}

static void test_buffer_vs_merged(void)
{
	enum { D = 64, N = 1000, K = 5, Q = 40 };
	float *data = malloc(sizeof(float) * N * D), q[Q][D];
	int64_t ids_a[K], ids_b[K];
	float sc_a[K], sc_b[K];
	struct vindex *a = new_index(D), *b = new_index(D);
	int same = 0, moved = 0, r;

	for (int i = 0; i < N; i++) {
		random_unit(data + i * D, D);
		CHECK_EQ_INT(vindex_add(a, i, data + i * D), 0);
		CHECK_EQ_INT(vindex_add(b, i, data + i * D), 0);
	}
	while ((r = vindex_merge(b, 128)) > 0)
		moved += r;
	CHECK_EQ_INT(moved, N);
	CHECK_EQ_INT(vindex_buffered(b), 0);
	CHECK_EQ_INT(vindex_buffered(a), N);
	for (int t = 0; t < Q; t++) {
		noisy_copy(data + (t * 7) * D, q[t], D, 1.0f);
		int na = vindex_search(a, q[t], K, NULL, NULL, ids_a, sc_a);
		int nb = vindex_search(b, q[t], K, NULL, NULL, ids_b, sc_b);

		same += na == K && nb == K &&
			!memcmp(ids_a, ids_b, sizeof(ids_a));
	}
	CHECK_EQ_INT(same, Q);
	vindex_free(a);
	vindex_free(b);
	free(data);
}

struct recall_set {
	size_t n;
	float *data;
	bool *live;
	float *q;
	size_t *src;            /* row each query is a noisy copy of */
	int nq;
};

/*
 * Share of queries whose HNSW top-1 is the exact top-1. Queries whose
 * source row was removed are skipped: their exact answer is one of many
 * near-ties among random vectors, which no ANN index is expected to find.
 */
static double agreement(struct vindex *vi, struct recall_set *rs)
{
	int64_t id;
	float sc;
	int hit = 0, asked = 0;

	for (int t = 0; t < rs->nq; t++) {
		const float *q = rs->q + (size_t)t * DIM;
		int n;

		if (!rs->live[rs->src[t]])
			continue;
		asked++;
		n = vindex_search(vi, q, 1, NULL, NULL, &id, &sc);
		hit += n == 1 &&
		       id == exact_top1(rs->data, rs->live, rs->n, q, DIM);
	}
	return asked ? (double)hit / asked : 0;
}

static void test_recall_compact_save(const char *dir, size_t n)
{
	struct recall_set rs = { .n = n, .nq = 200 };
	struct vindex *vi = new_index(DIM), *back = NULL;
	struct vindex_params p = { .dim = DIM, .m = 32, .ef_construction = 80,
				   .ef_search = 64 };
	char path[512];
	int64_t ids_a[10], ids_b[10];
	float sc_a[10], sc_b[10];
	int efs[] = { 16, 32, 64, 128 };
	size_t removed = 0;
	bool ok;

	rs.data = malloc(sizeof(float) * n * DIM);
	rs.live = malloc(n);
	rs.q = malloc(sizeof(float) * rs.nq * DIM);
	rs.src = malloc(sizeof(size_t) * rs.nq);
	for (size_t i = 0; i < n; i++) {
		random_unit(rs.data + i * DIM, DIM);
		rs.live[i] = true;
		CHECK_EQ_INT(vindex_add(vi, (int64_t)i, rs.data + i * DIM), 0);
		if (vindex_buffered(vi) >= 256)
			CHECK_EQ_INT(vindex_merge(vi, 256), 256);
	}
	while (vindex_merge(vi, 256) > 0)
		;
	for (int t = 0; t < rs.nq; t++) {
		rs.src[t] = rng_next() % n;
		noisy_copy(rs.data + rs.src[t] * DIM, rs.q + (size_t)t * DIM,
			   DIM, 1.0f);
	}
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_INT(vindex_set_ef_search(vi, efs[i]), 0);
		printf("recall n=%zu ef_search=%d: top-1 agreement %.1f%%\n",
		       n, efs[i], 100 * agreement(vi, &rs));
	}
	CHECK_EQ_INT(vindex_set_ef_search(vi, 64), 0);
	CHECK(agreement(vi, &rs) >= 0.99);

	/* remove 30%, compact */
	for (size_t i = 0; i < n; i++) {
		if (rng_next() % 10 < 3) {
			CHECK_EQ_INT(vindex_remove(vi, (int64_t)i), 0);
			rs.live[i] = false;
			removed++;
		}
	}
	CHECK_EQ_INT(vindex_tombstones(vi), removed);
	double before = agreement(vi, &rs);
	CHECK_EQ_INT(vindex_compact(vi), 0);
	CHECK_EQ_INT(vindex_tombstones(vi), 0);
	CHECK_EQ_INT(vindex_live(vi), n - removed);
	double after = agreement(vi, &rs);
	printf("after removing %zu of %zu: agreement %.1f%% before compact, "
	       "%.1f%% after\n", removed, n, 100 * before, 100 * after);
	CHECK(after >= 0.99);
	ok = true;
	for (int t = 0; t < rs.nq; t++) {
		int k = vindex_search(vi, rs.q + (size_t)t * DIM, 10, NULL,
				      NULL, ids_a, sc_a);
		ok &= k == 10;
		for (int j = 0; j < k; j++)
			ok &= rs.live[ids_a[j]];
	}
	CHECK(ok);

	/* some buffered and tombstoned state for the file too */
	for (size_t i = 0; i < 50; i++)
		if (!rs.live[i])
			CHECK_EQ_INT(vindex_add(vi, (int64_t)i,
						rs.data + i * DIM), 0);
	CHECK_EQ_INT(vindex_remove(vi, (int64_t)n - 1) == 0 ||
		     !rs.live[n - 1], 1);
	snprintf(path, sizeof(path), "%s/idx.vx", dir);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	CHECK_EQ_INT(vindex_load(path, &p, &back), 0);
	if (back) {
		ok = true;
		for (int t = 0; t < rs.nq; t++) {
			const float *q = rs.q + (size_t)t * DIM;
			int ka = vindex_search(vi, q, 10, NULL, NULL, ids_a, sc_a);
			int kb = vindex_search(back, q, 10, NULL, NULL, ids_b,
					       sc_b);
			ok &= ka == kb && !memcmp(ids_a, ids_b, sizeof(ids_a)) &&
			      !memcmp(sc_a, sc_b, sizeof(sc_a));
		}
		CHECK(ok);
		CHECK_EQ_INT(vindex_live(back), vindex_live(vi));
		CHECK_EQ_INT(vindex_buffered(back), vindex_buffered(vi));
		CHECK_EQ_INT(vindex_tombstones(back), vindex_tombstones(vi));
		CHECK_EQ_INT(vindex_max_id(back), vindex_max_id(vi));
		vindex_free(back);
	}
	p.dim = 128;
	CHECK_EQ_INT(vindex_load(path, &p, &back), -ESTALE);
	p.dim = DIM;
	p.m = 16;
	CHECK_EQ_INT(vindex_load(path, &p, &back), -ESTALE);
	p.m = 32;
	vindex_free(vi);
	free(rs.data);
	free(rs.live);
	free(rs.q);
	free(rs.src);
}

/* A snapshot whose body is past the size checked in two halves at once:
 * its header's CRC is zlib's over the whole file (crc field zeroed), it
 * loads back whole, and a flipped bit in either half is refused. */
static void test_large_crc(const char *dir)
{
	struct vindex_params p = { .dim = 256, .m = 8, .ef_construction = 40,
				   .ef_search = 32 };
	struct vindex *vi = NULL, *back = NULL;
	const int n = 70000; /* 70000 buffered vectors of 1 KiB: 68 MiB */
	unsigned char *file = NULL;
	char path[512];
	float v[256];
	uint32_t want;
	size_t len = 0;
	FILE *f;

	CHECK_EQ_INT(vindex_new(&p, &vi), 0);
	for (int i = 0; i < n; i++) {
		random_unit(v, 256);
		CHECK_EQ_INT(vindex_add(vi, i + 1, v), 0);
	}
	snprintf(path, sizeof(path), "%s/large.vx", dir);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	f = fopen(path, "rb");
	CHECK(f != NULL);
	if (f) {
		fseek(f, 0, SEEK_END);
		len = (size_t)ftell(f);
		rewind(f);
		file = malloc(len);
		CHECK(file && fread(file, 1, len, f) == len);
		fclose(f);
	}
	CHECK(len > (64u << 20) + 64);
	if (file && len > 64) {
		uint32_t got;

		memcpy(&got, file + 20, 4);
		memset(file + 20, 0, 4);
		want = (uint32_t)crc32(crc32(0L, Z_NULL, 0), file, (uInt)len);
		CHECK_EQ_INT(got, want);
	}
	CHECK_EQ_INT(vindex_load(path, &p, &back), 0);
	CHECK_EQ_INT(vindex_buffered(back), n);
	vindex_free(back);
	back = NULL;
	for (int half = 0; half < 2 && file; half++) {
		size_t at = half ? len - 100 : 64 + 100;
		int fd = open(path, O_WRONLY);
		unsigned char byte = file[at] ^ 0x10; /* one bit flipped */

		CHECK(fd >= 0);
		CHECK(pwrite(fd, &byte, 1, (off_t)at) == 1);
		close(fd);
		CHECK_EQ_INT(vindex_load(path, &p, &back), -EBADMSG);
		CHECK(back == NULL);
		CHECK_EQ_INT(vindex_save(vi, path), 0); /* whole again */
	}
	free(file);
	vindex_free(vi);
	unlink(path);
}

/* A 16-dimensional index of n random vectors, ids 1..n, the first
 * merged of them in HNSW and the rest buffered. */
static struct vindex *small_index(const struct vindex_params *p, int n,
				  int merged)
{
	struct vindex *vi = NULL;
	float v[16];

	CHECK_EQ_INT(vindex_new(p, &vi), 0);
	for (int i = 0; i < n && vi; i++) {
		random_unit(v, 16);
		CHECK_EQ_INT(vindex_add(vi, i + 1, v), 0);
	}
	CHECK_EQ_INT(vindex_merge(vi, merged), merged);
	return vi;
}

static ino_t inode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : st.st_ino;
}

/* A save of an index unchanged since its file was loaded or saved keeps
 * that file (the same inode: nothing was written); any change, or a file
 * that is no longer the one it knew, writes it again (temp + rename: a
 * new inode). */
static void test_save_unchanged(const char *dir)
{
	struct vindex_params p = { .dim = 16, .m = 8, .ef_construction = 40,
				   .ef_search = 32 };
	struct vindex *vi = NULL, *back = NULL;
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	char path[512];
	ino_t a, b;
	float v[16];

	vi = small_index(&p, 100, 60);
	snprintf(path, sizeof(path), "%s/same.vx", dir);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	a = inode_of(path);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	CHECK(inode_of(path) == a);           /* unchanged: kept */
	CHECK_EQ_INT(vindex_merge(vi, 10), 10);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	CHECK((b = inode_of(path)) != a);     /* a merge: written */
	CHECK_EQ_INT(vindex_remove(vi, 5), 0);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	CHECK((a = inode_of(path)) != b);     /* a removal: written */
	random_unit(v, 16);
	CHECK_EQ_INT(vindex_add(vi, 1000, v), 0);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	CHECK((b = inode_of(path)) != a);     /* an add: written */
	CHECK(vindex_contains(vi, 1) && vindex_contains(vi, 99));   /* merged */
	CHECK(vindex_contains(vi, 100) && vindex_contains(vi, 1000)); /* buffered */
	CHECK(!vindex_contains(vi, 5) && !vindex_contains(vi, 101));
	CHECK(!vindex_contains(NULL, 1));
	CHECK_EQ_INT(utimensat(AT_FDCWD, path, old, 0), 0);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	CHECK((a = inode_of(path)) != b);     /* the file changed: written */
	vindex_free(vi);

	CHECK_EQ_INT(vindex_load(path, &p, &back), 0);
	CHECK_EQ_INT(vindex_save(back, path), 0);
	CHECK(inode_of(path) == a);           /* loaded, unchanged: kept */
	CHECK_EQ_INT(unlink(path), 0);
	CHECK_EQ_INT(vindex_save(back, path), 0);
	CHECK(inode_of(path) != 0);           /* removed: written again */
	vindex_free(back);
	back = NULL;
	CHECK_EQ_INT(vindex_load(path, &p, &back), 0);
	CHECK_EQ_INT(vindex_live(back), 100);
	vindex_free(back);
	unlink(path);
}

static void test_damaged_files(const char *dir)
{
	struct vindex_params p = { .dim = 16, .m = 8, .ef_construction = 40,
				   .ef_search = 32 };
	struct vindex *vi = NULL, *back = NULL;
	char path[512], bad[512];
	float v[16];
	struct stat st;
	unsigned char byte;
	int fd;

	vi = small_index(&p, 300, 250);
	snprintf(path, sizeof(path), "%s/small.vx", dir);
	CHECK_EQ_INT(vindex_save(vi, path), 0);
	vindex_free(vi);
	CHECK_EQ_INT(stat(path, &st), 0);

	/* an empty index round-trips too */
	snprintf(bad, sizeof(bad), "%s/empty.vx", dir);
	CHECK_EQ_INT(vindex_new(&p, &vi), 0);
	CHECK_EQ_INT(vindex_save(vi, bad), 0);
	vindex_free(vi);
	CHECK_EQ_INT(vindex_load(bad, &p, &back), 0);
	if (back) {
		int64_t id;
		float sc;

		CHECK_EQ_INT(vindex_search(back, v, 1, NULL, NULL, &id, &sc), 0);
		CHECK_EQ_INT(vindex_add(back, 7, v), 0);
		CHECK_EQ_INT(vindex_merge(back, 10), 1);
		CHECK_EQ_INT(vindex_search(back, v, 1, NULL, NULL, &id, &sc), 1);
		CHECK_EQ_INT(id, 7);
		vindex_free(back);
		back = NULL;
	}

	snprintf(bad, sizeof(bad), "%s/missing.vx", dir);
	CHECK_EQ_INT(vindex_load(bad, &p, &back), -ENOENT);

	/* flip one bit in the middle */
	CHECK_EQ_INT(vindex_load(path, &p, &back), 0);
	vindex_free(back);
	back = NULL;
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ_INT(pread(fd, &byte, 1, st.st_size / 2), 1);
	byte ^= 0x10;
	CHECK_EQ_INT(pwrite(fd, &byte, 1, st.st_size / 2), 1);
	CHECK_EQ_INT(vindex_load(path, &p, &back), -EBADMSG);
	byte ^= 0x10;
	CHECK_EQ_INT(pwrite(fd, &byte, 1, st.st_size / 2), 1);
	CHECK_EQ_INT(vindex_load(path, &p, &back), 0);
	vindex_free(back);
	back = NULL;
	/* truncate */
	CHECK_EQ_INT(ftruncate(fd, st.st_size - 100), 0);
	CHECK_EQ_INT(vindex_load(path, &p, &back), -EBADMSG);
	CHECK_EQ_INT(ftruncate(fd, 10), 0);
	CHECK_EQ_INT(vindex_load(path, &p, &back), -EBADMSG);
	close(fd);
	CHECK(back == NULL);
}

struct race {
	struct vindex *vi;
	const float *data;
	size_t n;
	atomic_bool stop;
	atomic_long searches, bad;
};

static void *race_search(void *arg)
{
	struct race *r = arg;
	int64_t ids[8];
	float sc[8];
	unsigned seed = (unsigned)(uintptr_t)&ids;

	while (!atomic_load(&r->stop)) {
		size_t i = (size_t)rand_r(&seed) % r->n;
		int k = vindex_search(r->vi, r->data + i * DIM, 8,
				      i % 2 ? only_even : NULL, NULL, ids, sc);

		if (k < 0)
			atomic_fetch_add(&r->bad, 1);
		for (int j = 0; j < k; j++)
			if (ids[j] < 0 || (size_t)ids[j] >= r->n ||
			    (j && sc[j] > sc[j - 1]))
				atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->searches, 1);
	}
	return NULL;
}

static void *race_write(void *arg)
{
	struct race *r = arg;

	for (size_t i = r->n / 2; i < r->n; i++) {
		if (vindex_add(r->vi, (int64_t)i, r->data + i * DIM))
			atomic_fetch_add(&r->bad, 1);
		if (i % 5 == 0 && vindex_remove(r->vi, (int64_t)(i - r->n / 2)))
			atomic_fetch_add(&r->bad, 1);
		if (i % 64 == 0 && vindex_merge(r->vi, 64) < 0)
			atomic_fetch_add(&r->bad, 1);
		if (i % 1000 == 0 && vindex_compact(r->vi) < 0)
			atomic_fetch_add(&r->bad, 1);
	}
	while (vindex_merge(r->vi, 256) > 0)
		;
	atomic_store(&r->stop, true);
	return NULL;
}

static void test_concurrency(size_t n)
{
	struct race r = { .vi = new_index(DIM), .n = n };
	float *data = malloc(sizeof(float) * n * DIM);
	pthread_t th[5];

	for (size_t i = 0; i < n; i++)
		random_unit(data + i * DIM, DIM);
	r.data = data;
	for (size_t i = 0; i < n / 2; i++)
		CHECK_EQ_INT(vindex_add(r.vi, (int64_t)i, data + i * DIM), 0);
	while (vindex_merge(r.vi, 256) > 0)
		;
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, race_search, &r);
	pthread_create(&th[4], NULL, race_write, &r);
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	printf("concurrency n=%zu: %ld searches while adding/merging\n", n,
	       atomic_load(&r.searches));
	CHECK_EQ_INT(atomic_load(&r.bad), 0);
	CHECK(atomic_load(&r.searches) > 0);
	CHECK_EQ_INT(vindex_buffered(r.vi), 0);
	vindex_free(r.vi);
	free(data);
}

/*
 * vindex_hnsw_search1 answers exactly what faiss_Index_search answers (the
 * same ids, the same scores, in the same order) for inner product and L2,
 * several k (up to more than the index holds) and ef_search settings, and
 * declines (1) an index that is not HNSW.
 */
static void test_hnsw_one(void)
{
	enum { N = 3000, NQ = 100, KMAX = 64 };
	static const FaissMetricType metric[2] = { METRIC_INNER_PRODUCT, METRIC_L2 };
	static const int ks[3] = { 1, 10, KMAX };
	float *data = malloc(sizeof(float) * N * DIM), q[DIM];
	float da[KMAX], db[KMAX];
	idx_t la[KMAX], lb[KMAX];
	FaissParameterSpace *ps = NULL;
	FaissIndex *idx = NULL;
	long same = 0, asked = 0;
	double t_one = 0, t_faiss = 0;

	for (size_t i = 0; i < N; i++)
		random_unit(data + i * DIM, DIM);
	CHECK_EQ_INT(faiss_ParameterSpace_new(&ps), 0);
	for (int m = 0; m < 2; m++) {
		CHECK_EQ_INT(faiss_index_factory(&idx, DIM, "HNSW32,Flat", metric[m]), 0);
		CHECK_EQ_INT(faiss_Index_add(idx, N, data), 0);
		for (int ef = 16; ef <= 64; ef *= 4) {
			CHECK_EQ_INT(faiss_ParameterSpace_set_index_parameter(ps, idx,
				     "efSearch", ef), 0);
			for (int t = 0; t < NQ; t++) {
				noisy_copy(data + (rng_next() % N) * DIM, q, DIM, 1.0f);
				for (int j = 0; j < 3; j++) {
					int k = ks[j];

					/* in turn first: the second search of a query
					 * finds its graph nodes in the cache */
					for (int o = 0; o < 2; o++) {
						double t0 = now_s();

						if ((o + t) % 2) {
							CHECK_EQ_INT(faiss_Index_search(idx, 1, q, k, db, lb), 0);
							t_faiss += now_s() - t0;
						} else {
							CHECK_EQ_INT(vindex_hnsw_search1(idx, q, k, da, la), 0);
							t_one += now_s() - t0;
						}
					}
					same += !memcmp(la, lb, sizeof(la[0]) * k) &&
						!memcmp(da, db, sizeof(da[0]) * k);
					asked++;
				}
			}
		}
		faiss_Index_free(idx);
	}
	printf("hnsw_one: %ld of %ld searches answered as faiss_Index_search "
	       "(%.1f µs each, FAISS %.1f µs: a hint, not a benchmark)\n",
	       same, asked, t_one / asked * 1e6, t_faiss / asked * 1e6);
	CHECK_EQ_INT(same, asked);
	/* fewer vectors than k: the rest is -1 as FAISS leaves it */
	CHECK_EQ_INT(faiss_index_factory(&idx, DIM, "HNSW32,Flat", METRIC_INNER_PRODUCT), 0);
	CHECK_EQ_INT(faiss_Index_add(idx, 5, data), 0);
	CHECK_EQ_INT(vindex_hnsw_search1(idx, data, 10, da, la), 0);
	CHECK_EQ_INT(faiss_Index_search(idx, 1, data, 10, db, lb), 0);
	CHECK(!memcmp(la, lb, sizeof(la[0]) * 10) && la[5] == -1 && la[0] == 0);
	faiss_Index_free(idx);
	/* not an HNSW index: declined, the caller asks FAISS */
	CHECK_EQ_INT(faiss_index_factory(&idx, DIM, "Flat", METRIC_INNER_PRODUCT), 0);
	CHECK_EQ_INT(faiss_Index_add(idx, 10, data), 0);
	CHECK_EQ_INT(vindex_hnsw_search1(idx, data, 5, da, la), 1);
	faiss_Index_free(idx);
	faiss_ParameterSpace_free(ps);
	free(data);
}

/* AnonHugePages of the mappings over [addr, addr + len), in bytes (an
 * advised range is a mapping of its own, split from the allocation's). */
static long long huge_bytes_in(const void *addr, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	char line[512];
	bool in = false;
	long long kb, sum = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char *dash = strchr(line, '-'), *sp = strchr(line, ' ');

		if (dash && sp && dash < sp && sscanf(line, "%lx-%lx ", &a, &b) == 2)
			in = a < hi && b > lo;
		else if (in && sscanf(line, "AnonHugePages: %lld kB", &kb) == 1)
			sum += kb * 1024;
	}
	fclose(f);
	return sum;
}

/* Whether this kernel has MADV_COLLAPSE (Linux 6.1+): collapse 4 MiB of
 * fresh anonymous memory. */
static bool collapse_works(void)
{
	size_t len = (size_t)4 << 20;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;
	bool ok;

	if (m == MAP_FAILED)
		return false;
	memset(m, 1, len);
	a = ((uintptr_t)m + ((uintptr_t)2 << 20) - 1) & ~(((uintptr_t)2 << 20) - 1);
	ok = madvise((void *)a, (size_t)2 << 20, MADV_HUGEPAGE) == 0 &&
	     madvise((void *)a, (size_t)2 << 20, 25 /* MADV_COLLAPSE */) == 0;
	munmap(m, len);
	return ok;
}

/* The kernel's setting is madvise: nothing but MADV_HUGEPAGE and
 * MADV_COLLAPSE puts this process's memory on huge pages. */
static bool thp_madvise;

/* THP on (the mode in brackets in the kernel's setting is always or madvise)
 * and MADV_COLLAPSE there. */
static bool thp_usable(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "";

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	if (!strstr(line, "[always]") && !strstr(line, "[madvise]"))
		return false;
	thp_madvise = strstr(line, "[madvise]") != NULL;
	return collapse_works();
}

/* vindex_hugepages puts the vectors and the graph on huge pages once
 * (a second call finds nothing new), searches answer the same after, and
 * an array that a merge moved is advised again. */
static void test_hugepages(void)
{
	enum { HP_DIM = 256, HP_N = 6000, HP_NQ = 50 };
	struct vindex_params p = { .dim = HP_DIM, .m = 16, .ef_construction = 40,
				   .ef_search = 32 };
	struct vindex *vi = NULL;
	struct vindex_region r[VINDEX_THP_REGIONS];
	static float q[HP_NQ][HP_DIM];
	int64_t before[HP_NQ], ids[1];
	float v[HP_DIM], sc[1];
	size_t got;
	int n;

	if (!thp_usable()) {
		CHECK_SKIP("transparent huge pages are off here (/sys/kernel/mm/transparent_hugepage/enabled) or the kernel has no MADV_COLLAPSE (Linux 6.1+)");
		return;
	}
	CHECK_EQ_INT(vindex_new(&p, &vi), 0);
	if (!vi)
		return;
	for (int i = 0; i < HP_N; i++) {
		random_unit(v, HP_DIM);
		CHECK_EQ_INT(vindex_add(vi, i + 1, v), 0);
	}
	CHECK_EQ_INT(vindex_merge(vi, HP_N), HP_N);
	for (int i = 0; i < HP_NQ; i++) {
		random_unit(q[i], HP_DIM);
		CHECK_EQ_INT(vindex_search(vi, q[i], 1, NULL, NULL, ids, sc), 1);
		before[i] = ids[0];
	}
	/* MADV_COLLAPSE ignores the kernel's setting: the index reads it, and
	 * under "never" advises nothing until it allows huge pages again */
	pthread_rwlock_rdlock(&vi->lock);
	n = vindex_hnsw_regions(vi->hnsw, r, VINDEX_THP_REGIONS);
	pthread_rwlock_unlock(&vi->lock);
	{
		const char *real = vindex_thp_setting;
		char path[] = "/tmp/test_vindex_thp.XXXXXX";
		long long huge0 = n > 0 ? huge_bytes_in(r[0].p, r[0].len) : -1;
		int fd = mkstemp(path);

		CHECK(fd >= 0);
		CHECK(fd >= 0 && write(fd, "always madvise [never]\n", 23) == 23);
		if (fd >= 0)
			close(fd);
		vindex_thp_setting = path;
		CHECK_EQ_INT(vindex_hugepages(vi), 0);
		CHECK_EQ_INT(vindex_hugepages(vi), 0);
		if (thp_madvise) /* under always, faults and khugepaged may */
			CHECK(n > 0 && huge_bytes_in(r[0].p, r[0].len) == huge0);
		printf("hugepages: under never %lld KiB of the codes on huge pages (%lld before)\n",
		       n > 0 ? huge_bytes_in(r[0].p, r[0].len) >> 10 : -1, huge0 >> 10);
		vindex_thp_setting = real;
		unlink(path);
	}
	got = vindex_hugepages(vi);
	CHECK_EQ_INT(n, 4);
	/* the codes: 6000 x 1 KiB, at least 2 MiB of it aligned inside */
	CHECK(n > 0 && r[0].len == (size_t)HP_N * HP_DIM * sizeof(float));
	CHECK(got >= (size_t)2 << 20);
	CHECK(n > 0 && huge_bytes_in(r[0].p, r[0].len) >= (long long)2 << 20);
	printf("hugepages: %zu KiB collapsed; the codes' %zu KiB: %lld KiB on huge pages\n",
	       got >> 10, n > 0 ? r[0].len >> 10 : 0,
	       n > 0 ? huge_bytes_in(r[0].p, r[0].len) >> 10 : -1);
	CHECK_EQ_INT(vindex_hugepages(vi), 0);
	for (int i = 0; i < HP_NQ; i++) {
		CHECK_EQ_INT(vindex_search(vi, q[i], 1, NULL, NULL, ids, sc), 1);
		CHECK_EQ_INT(ids[0], before[i]);
	}
	/* twice as many vectors: the codes array is moved, advised again */
	for (int i = HP_N; i < 2 * HP_N + 1; i++) {
		random_unit(v, HP_DIM);
		CHECK_EQ_INT(vindex_add(vi, i + 1, v), 0);
	}
	CHECK_EQ_INT(vindex_merge(vi, HP_N + 1), HP_N + 1);
	CHECK(vindex_hugepages(vi) >= (size_t)2 << 20);
	CHECK_EQ_INT(vindex_hugepages(vi), 0);
	CHECK_EQ_INT(vindex_hugepages(NULL), 0);
	vindex_free(vi);
}

int main(int argc, char **argv)
{
	const char *env = getenv("VINDEX_TEST_N");
	size_t n = env ? strtoul(env, NULL, 10) : 20000;
	char dir[] = "/tmp/test_vindex.XXXXXX";
	char cmd[64];

	if (n < 1000)
		n = 1000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "hugepages")) {
		test_hugepages(); /* may skip: its own meson test */
		return check_done("vindex hugepages");
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_null();
	test_small();
	test_filter_and_remove();
	test_buffer_vs_merged();
	test_recall_compact_save(dir, n);
	test_damaged_files(dir);
	test_large_crc(dir);
	test_save_unchanged(dir);
	test_concurrency(n / 4 > 5000 ? 5000 : n / 4);
	test_hnsw_one();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove '%s'\n", dir);
	return check_done("test_vindex");
}
