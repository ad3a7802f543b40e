/*
 * test_store_faults.c - the local store (index/store/local/) where files
 * lie or the disk is full:
 *  - a valid blob copied over another entry's blob is refused (-EBADMSG),
 *    a version 1 blob (no entry id, older builds) is still served;
 *  - entries keep the uid that filled them; a version 1 database is
 *    migrated at open and its entries read back with the category's owner;
 *  - a blob that cannot be unlinked at a delete is recorded and removed
 *    by the next open, even after a clean close;
 *  - on a full disk (a 1 MiB tmpfs filled to the last byte; root only,
 *    skipped with a message otherwise) every entry delete and a category
 *    delete of many entries reach the store, and what was deleted stays
 *    deleted after a reopen.
 * Each test works in a fresh directory under $TMPDIR (or /tmp).
 */
#include "store.h"
#include "bytes.h"
#include "check.h"

#include "local_test.h"

#include <sqlite3.h>

/* ---- blobs know their entry ---- */

static void test_blob_owner(void)
{
	char dir[PATH_MAX], pa[PATH_MAX], pb[PATH_MAX];
	unsigned char hdr[20];
	struct store *s;
	int64_t a, b;
	void *buf = NULL;
	size_t len;
	int fd;

	fresh_dir(dir, sizeof(dir), "owner");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(put_n(s, 1, 1, &a), 0);
	CHECK_EQ_INT(put_n(s, 1, 2, &b), 0);
	blob_path(pa, sizeof(pa), dir, a);
	blob_path(pb, sizeof(pb), dir, b);
	/* a's blob, whole and valid, over b's */
	{
		char cmd[2 * PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", pa, pb);
		CHECK(system(cmd) == 0);
	}
	CHECK_EQ_INT(store_response_read(s, b, NULL, &buf, &len), -EBADMSG);
	CHECK(buf == NULL);
	CHECK(response_is(s, a, 1));
	/* a version 1 blob for b (20-byte header, no id) is served as before */
	memcpy(hdr, "SCB1", 4);
	hdr[4] = 1; hdr[5] = hdr[6] = hdr[7] = 0;
	for (int i = 0; i < 8; i++)
		hdr[8 + i] = (unsigned char)((uint64_t)strlen("response 2") >> (8 * i));
	{
		uint32_t crc = bytes_crc32("response 2", 10);

		for (int i = 0; i < 4; i++)
			hdr[16 + i] = (unsigned char)(crc >> (8 * i));
	}
	fd = open(pb, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0);
	CHECK(write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
	CHECK(write(fd, "response 2", 10) == 10);
	close(fd);
	CHECK(response_is(s, b, 2));
	/* a version 1 blob with a bad checksum is still refused */
	flip_byte(pb, 21);
	CHECK_EQ_INT(store_response_read(s, b, NULL, &buf, &len), -EBADMSG);
	store_close(s);
}

/* ---- uids ---- */

static int64_t cat_id_of(struct store *s, const char *path)
{
	struct cats k = { .want = path };

	CHECK_EQ_INT(store_category_list(s, cat_cb, &k), 0);
	return k.found ? k.want_c.id : 0;
}

static void put_uid(struct store *s, int64_t cat, int n, uid_t uid,
		    int64_t *id)
{
	struct store_entry e = { .cat_id = cat, .created_ms = 5, .uid = uid,
				 .key = { (uint64_t)n, 0 } };
	float v[DIM];
	struct store_payload p = { .query = "q", .query_len = 1, .vec = v,
				   .dim = DIM, .embedder = "builtin-v1",
				   .response = "r", .response_len = 1 };

	make_vec(v, n);
	CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	*id = e.id;
}

/* The schema of version 1 (as older builds wrote it). */
static const char v1_schema[] =
	"CREATE TABLE categories(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT"
	" NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT"
	" NULL, created_ms INTEGER NOT NULL);"
	"CREATE TABLE policies(cat_id INTEGER PRIMARY KEY, yaml BLOB NOT NULL,"
	" updated_ms INTEGER NOT NULL);"
	"CREATE TABLE entries(id INTEGER PRIMARY KEY AUTOINCREMENT, cat_id"
	" INTEGER NOT NULL, created_ms INTEGER NOT NULL, last_hit_ms INTEGER"
	" NOT NULL, hits INTEGER NOT NULL, bytes INTEGER NOT NULL, key_hi"
	" INTEGER NOT NULL, key_lo INTEGER NOT NULL, ctx_hash INTEGER NOT"
	" NULL, dim INTEGER NOT NULL, embedder TEXT NOT NULL, vec BLOB NOT"
	" NULL, query BLOB NOT NULL, context BLOB);"
	"CREATE INDEX entries_cat ON entries(cat_id, id);"
	"PRAGMA user_version=1;"
	"INSERT INTO categories VALUES(1, '/', 493, 0, 0, 1);"
	"INSERT INTO categories VALUES(2, '/shared', 1023, 4242, 4242, 1);"
	"INSERT INTO entries VALUES(7, 2, 1, 0, 0, 1, 7, 0, 0, 0,"
	" 'builtin-v1', x'', x'71', NULL);";

static void test_uids(void)
{
	char dir[PATH_MAX], db[PATH_MAX], p[PATH_MAX];
	struct store *s;
	struct seen *sn = calloc(1, sizeof(*sn));
	sqlite3 *h = NULL;
	int64_t cat, id, ver = 0;

	fresh_dir(dir, sizeof(dir), "uids");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(store_category_create(s, "/u", 01777, 4242, 4242, &cat), 0);
	put_uid(s, cat, 1, 1234, &id);
	CHECK_EQ_INT(scan_all(s, cat, sn), 0);
	CHECK_EQ_INT(sn->n, 1);
	CHECK_EQ_INT(sn->last.uid, 1234);
	store_close(s);
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(scan_all(s, cat, sn), 0);
	CHECK_EQ_INT(sn->last.uid, 1234);
	store_close(s);

	/* a database of version 1, with one entry and its version 1 blob */
	fresh_dir(dir, sizeof(dir), "v1");
	CHECK(mkdir(dir, 0700) == 0);
	pathf(db, sizeof(db), "%s/semcache.db", dir);
	CHECK_EQ_INT(sqlite3_open(db, &h), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(h, v1_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	pathf(p, sizeof(p), "%s/blobs", dir);
	CHECK(mkdir(p, 0700) == 0);
	pathf(p, sizeof(p), "%s/blobs/07", dir);
	CHECK(mkdir(p, 0700) == 0);
	pathf(p, sizeof(p), "%s/blobs/07/7", dir);
	{
		unsigned char f[21] = "SCB1\1\0\0\0\1\0\0\0\0\0\0\0";
		uint32_t crc = bytes_crc32("A", 1);

		for (int i = 0; i < 4; i++)
			f[16 + i] = (unsigned char)(crc >> (8 * i));
		f[20] = 'A';
		write_file(p, f, sizeof(f));
	}
	pathf(p, sizeof(p), "%s/clean", dir);
	write_file(p, "", 0);
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(cat_id_of(s, "/shared"), 2);
	CHECK_EQ_INT(scan_all(s, 2, sn), 0);
	CHECK_EQ_INT(sn->n, 1);
	CHECK_EQ_INT(sn->last.id, 7);
	CHECK_EQ_INT(sn->last.uid, 4242);   /* the category's owner */
	{
		void *buf = NULL;
		size_t len = 0;

		CHECK_EQ_INT(store_response_read(s, 7, NULL, &buf, &len), 0);
		CHECK(len == 1 && buf && *(char *)buf == 'A');
		free(buf);
	}
	put_uid(s, 2, 2, 99, &id);
	CHECK(id > 7);
	CHECK_EQ_INT(scan_all(s, 2, sn), 0);
	CHECK_EQ_INT(sn->n, 2);
	CHECK_EQ_INT(sn->last.uid, 99);
	store_close(s);
	CHECK_EQ_INT(sqlite3_open(db, &h), SQLITE_OK);
	{
		sqlite3_stmt *st;

		sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
		if (sqlite3_step(st) == SQLITE_ROW)
			ver = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	CHECK_EQ_INT(ver, 2);
	free(sn);
}

/* ---- a blob that cannot be unlinked ---- */

static void test_orphans(void)
{
	char dir[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	struct store_report rep;
	struct store *s;
	int64_t a, b;

	fresh_dir(dir, sizeof(dir), "orphans");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(put_n(s, 1, 1, &a), 0);
	CHECK_EQ_INT(put_n(s, 1, 2, &b), 0);
	/* a's blob is a non-empty directory now: unlink fails (EISDIR) */
	blob_path(p, sizeof(p), dir, a);
	CHECK(unlink(p) == 0);
	CHECK(mkdir(p, 0700) == 0);
	pathf(q, sizeof(q), "%s/x", p);
	write_file(q, "x", 1);
	CHECK_EQ_INT(store_entry_delete(s, a), 0);
	CHECK(access(p, F_OK) == 0);
	/* what was there becomes a blob file again, left behind */
	CHECK(unlink(q) == 0 && rmdir(p) == 0);
	write_file(p, "SCB1 left behind", 16);
	store_close(s);   /* a clean close */
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(!rep.unclean);
	CHECK(access(p, F_OK) < 0 && errno == ENOENT);
	CHECK(response_is(s, b, 2));
	CHECK_EQ_INT(rep.entries, 1);
	store_close(s);
}

/* ---- deletes on a full disk ---- */

/* Fill the file system of dir to the last byte with a ballast file. */
static void fill_up(const char *dir)
{
	char p[PATH_MAX], block[4096];
	int fd;

	pathf(p, sizeof(p), "%s/../ballast", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0600);
	CHECK(fd >= 0);
	memset(block, 'b', sizeof(block));
	for (size_t n = sizeof(block); fd >= 0 && n; n /= 2)
		while (write(fd, block, n) == (ssize_t)n)
			;
	if (fd >= 0)
		close(fd);
}

static void test_full_disk(void)
{
	enum { N = 120 };
	char mnt[PATH_MAX], dir[PATH_MAX];
	static char resp[3000];
	struct store_entry e = { 0 };
	float v[DIM];
	struct store_payload p = { .query = "question", .query_len = 8,
				   .vec = v, .dim = DIM,
				   .embedder = "builtin-v1", .response = resp,
				   .response_len = sizeof(resp) };
	struct seen *sn = calloc(1, sizeof(*sn));
	int64_t ids[N], big;
	struct store *s;
	int n = 0, failed = 0;

	if (!mount_tmpfs("full disk", "fulldisk", "8m", mnt, sizeof(mnt))) {
		free(sn);
		return;
	}
	pathf(dir, sizeof(dir), "%s/store", mnt);
	if (open_store(dir, false, &s, NULL)) {
		CHECK(0);
		goto out;
	}
	make_vec(v, 3);
	memset(resp, 'r', sizeof(resp));
	e.cat_id = 1;
	for (n = 0; n < N; n++) {
		e.key[0] = (uint64_t)n;
		if (store_entry_put(s, &e, &p))
			break;
		ids[n] = e.id;
	}
	CHECK_EQ_INT(n, N);
	CHECK_EQ_INT(store_category_create(s, "/big", 0755, 0, 0, &big), 0);
	e.cat_id = big;
	p.response_len = 100;
	for (int i = 0; i < 200; i++) {
		e.key[0] = 1000 + (uint64_t)i;
		CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	}
	store_close(s);
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	fill_up(dir);
	p.response_len = 10;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), -ENOSPC);
	/* every delete reaches the store */
	for (int i = 0; i < n; i++) {
		int ret = store_entry_delete(s, ids[i]);

		if (ret) {
			failed++;
			fprintf(stderr, "delete %d of %d on a full disk: %s\n", i,
				n, strerror(-ret));
		}
	}
	CHECK_EQ_INT(failed, 0);
	fill_up(dir);   /* what the deletes freed is taken again */
	CHECK_EQ_INT(store_category_delete(s, big), 0);
	printf("full disk: %d entry deletes and a category of 200 deleted, %d "
	       "failed\n", n, failed);
	store_close(s);
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(scan_all(s, 1, sn), 0);
	CHECK_EQ_INT(sn->n, 0);
	CHECK_EQ_INT(cat_id_of(s, "/big"), 0);
	CHECK_EQ_INT(scan_all(s, big, sn), 0);
	CHECK_EQ_INT(sn->n, 0);
	store_close(s);
out:
	CHECK(umount(mnt) == 0);
	rmdir(mnt);
	free(sn);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/test_store_faults.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	test_blob_owner();
	test_uids();
	test_orphans();
	test_full_disk();
	rm_rf(base);
	return check_done("store_faults");
}
