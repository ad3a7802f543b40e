/*
 * store_local.c - the local backend of store.h: SQLite for metadata and
 * vectors, one checksummed file per response.
 *
 * What: a store directory holds semcache.db (SQLite, WAL mode), blobs/XX/ID
 * response files (XX = two hex digits of id & 0xff) and a "clean" marker
 * that exists only while the store is closed cleanly.
 *
 * How: one SQLite connection behind one mutex, with every statement
 * prepared once at open. Entry ids come from an in-memory counter so that a
 * put can write its blob (temp -> fsync? -> rename -> fsync(dir)?) outside
 * the mutex and only then insert the row; a blob without a row is garbage.
 * Blob files start with a 20-byte header: "SCB1", u32 version, u64 payload
 * length, u32 zlib crc32 of the payload (all little-endian). An open that
 * finds no clean marker removes orphan blobs and temp files and drops rows
 * whose blob is missing; after a clean close it skips that scan. A flock on
 * the directory keeps a second process out, since ids are allocated in
 * memory.
 *
 * Every open runs PRAGMA quick_check. A database SQLite calls corrupt or
 * not a database (or an empty one next to existing blobs) is repaired
 * (db_repair): the damaged files are renamed to semcache.db.corrupt-TIME
 * (never deleted), a copy of them is read table by table with per-row error
 * tolerance into a fresh database, entries are salvaged by the ids of the
 * blob files (a point lookup each, so one bad page loses only its rows),
 * blobs whose row is lost are moved to lost+found/ (a blob holds only the
 * response, so such an entry cannot be served again) and categories whose
 * row is lost are recreated as /recovered-ID. A disk too full to open the
 * database gives up the reserve and tries again. The blob directories must
 * be real directories: a symlink there makes open fail, so no blob is ever
 * written outside the store.
 *
 * What not: no repair of a damaged WAL (SQLite ignores the frames from the
 * first bad checksum on; the blobs of the rows lost there are orphans and
 * removed like any orphan), no caching of responses, no eviction policy;
 * the engine decides what to delete.
 */
#include "store.h"
#include "store_i.h"
#include "bytes.h"
#include "clock.h"
#include "fileio.h"
#include "semlog.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_DB_NAME "semcache.db"
#define STORE_CLEAN_NAME "clean"
#define STORE_RESERVE_NAME "reserve"
#define STORE_LOST_NAME "lost+found"
#define STORE_SALVAGE_NAME "salvage.tmp"
#define STORE_RESERVE_BYTES (256 * 1024)
#define STORE_BUSY_MS 5000

#define BLOB_MAGIC "SCB1"
#define BLOB_VERSION 1u
#define BLOB_HDR_LEN 20

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_CAT_LIST,
	ST_CAT_INSERT,
	ST_CAT_DELETE,
	ST_CAT_SETATTR,
	ST_CAT_EXISTS,
	ST_POL_GET,
	ST_POL_PUT,
	ST_POL_DELETE,
	ST_ENT_INSERT,
	ST_ENT_DELETE,
	ST_ENT_DELETE_CAT,
	ST_ENT_IDS_CAT,
	ST_ENT_TOUCH,
	ST_ENT_SCAN,
	ST_ENT_TEXT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_CAT_LIST] = "SELECT id, path, mode, uid, gid, created_ms"
		" FROM categories ORDER BY id",
	[ST_CAT_INSERT] = "INSERT INTO categories(path, mode, uid, gid,"
		" created_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_CAT_DELETE] = "DELETE FROM categories WHERE id = ?1",
	[ST_CAT_SETATTR] = "UPDATE categories SET mode = ?2, uid = ?3,"
		" gid = ?4 WHERE id = ?1",
	[ST_CAT_EXISTS] = "SELECT path FROM categories WHERE id = ?1",
	[ST_POL_GET] = "SELECT yaml FROM policies WHERE cat_id = ?1",
	[ST_POL_PUT] = "INSERT OR REPLACE INTO policies(cat_id, yaml,"
		" updated_ms) VALUES(?1, ?2, ?3)",
	[ST_POL_DELETE] = "DELETE FROM policies WHERE cat_id = ?1",
	[ST_ENT_INSERT] = "INSERT INTO entries(id, cat_id, created_ms,"
		" last_hit_ms, hits, bytes, key_hi, key_lo, ctx_hash, dim,"
		" embedder, vec, query, context)"
		" SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
		" ?13, ?14 WHERE EXISTS (SELECT 1 FROM categories"
		" WHERE id = ?2)",
	[ST_ENT_DELETE] = "DELETE FROM entries WHERE id = ?1",
	[ST_ENT_DELETE_CAT] = "DELETE FROM entries WHERE cat_id = ?1",
	[ST_ENT_IDS_CAT] = "SELECT id FROM entries WHERE cat_id = ?1",
	[ST_ENT_TOUCH] = "UPDATE entries SET last_hit_ms = ?2, hits = ?3"
		" WHERE id = ?1",
	[ST_ENT_SCAN] = "SELECT id, cat_id, created_ms, last_hit_ms, hits,"
		" bytes, key_hi, key_lo, ctx_hash, dim, embedder, vec"
		" FROM entries WHERE cat_id = ?1 AND id > ?2 ORDER BY id",
	[ST_ENT_TEXT] = "SELECT query, context FROM entries WHERE id = ?1",
};

/*
 * Columns are ordered small fields first, then vec, then the texts, so a
 * scan reaches vec without walking the overflow pages of long queries.
 */
static const char schema_sql[] =
	"CREATE TABLE categories("
	" id INTEGER PRIMARY KEY,"
	" path TEXT UNIQUE NOT NULL,"
	" mode INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" gid INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL);"
	"CREATE TABLE policies("
	" cat_id INTEGER PRIMARY KEY,"
	" yaml BLOB NOT NULL,"
	" updated_ms INTEGER NOT NULL);"
	"CREATE TABLE entries("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" cat_id INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" last_hit_ms INTEGER NOT NULL,"
	" hits INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL,"
	" key_hi INTEGER NOT NULL,"
	" key_lo INTEGER NOT NULL,"
	" ctx_hash INTEGER NOT NULL,"
	" dim INTEGER NOT NULL,"
	" embedder TEXT NOT NULL,"
	" vec BLOB NOT NULL,"
	" query BLOB NOT NULL,"
	" context BLOB);"
	"CREATE INDEX entries_cat ON entries(cat_id, id);";

/*
 * Lock order: mu is the only lock. Blob file I/O happens without it.
 */
struct store_local {
	struct store base;           /* ops = &store_local_ops; first member */
	char *dir;                   /* immutable after open */
	int dirfd;                   /* immutable; holds the flock */
	bool sync_full;              /* immutable */
	pthread_mutex_t mu;
	sqlite3 *db;                 /* guarded by mu */
	sqlite3_stmt *st[ST_COUNT];  /* guarded by mu */
	int64_t next_id;             /* guarded by mu */
	bool have_reserve;           /* guarded by mu */
	float *scan_buf;             /* guarded by mu: aligned copy of a vec */
	size_t scan_cap;             /* guarded by mu */
};

static void lock(struct store_local *s)
{
	int r = pthread_mutex_lock(&s->mu);

	if (r)
		BUG("mutex lock: %s (store called from a scan "
			  "callback?)", strerror(r));
}

static void unlock(struct store_local *s)
{
	int r = pthread_mutex_unlock(&s->mu);

	if (r)
		BUG("mutex unlock: %s", strerror(r));
}

/* uint64 values are kept as int64 bit patterns. */
static int64_t u64_to_i64(uint64_t v)
{
	int64_t r;

	memcpy(&r, &v, sizeof(r));
	return r;
}

static uint64_t i64_to_u64(int64_t v)
{
	uint64_t r;

	memcpy(&r, &v, sizeof(r));
	return r;
}

/* Map a SQLite result code to a negative errno. Call with mu held. */
static int sq_errno(sqlite3 *db, int rc)
{
	int e;

	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_TOOBIG:
		return -EFBIG;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		e = db ? sqlite3_system_errno(db) : 0;
		return e > 0 ? -e : -EIO;
	default:
		return -EIO;
	}
}

/* Log a failed database step and return its errno. Call with mu held. */
static int sq_fail(struct store_local *s, int rc, const char *what)
{
	int ret = sq_errno(s->db, rc);

	semlog(SEMLOG_ERR, "store: %s in '%s/%s': %s", what, s->dir, STORE_DB_NAME,
		  sqlite3_errmsg(s->db));
	return ret;
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Step a statement that returns no rows, then reset it. */
static int stmt_exec(struct store_local *s, enum stmt_id id, const char *what)
{
	int rc = sqlite3_step(s->st[id]);
	int ret = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = sq_fail(s, rc, what);
	stmt_done(s->st[id]);
	return ret;
}

static int tx_begin(struct store_local *s)
{
	return stmt_exec(s, ST_BEGIN, "begin transaction");
}

static void tx_rollback(struct store_local *s)
{
	if (!sqlite3_get_autocommit(s->db))
		stmt_exec(s, ST_ROLLBACK, "roll back transaction");
}

static int tx_commit(struct store_local *s)
{
	int ret = stmt_exec(s, ST_COMMIT, "commit transaction");

	if (ret)
		tx_rollback(s);
	return ret;
}

/*
 * A full disk also stops deletes: the WAL must grow to record them, and a
 * checkpoint must grow the database. So open sets aside a small reserve
 * file; a delete that hits ENOSPC gives it up and retries, and a later
 * delete (which frees blobs) takes it back.
 */
static void reserve_take(struct store_local *s)
{
	int fd, r;

	fd = openat(s->dirfd, STORE_RESERVE_NAME, O_WRONLY | O_CREAT |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	r = posix_fallocate(fd, 0, STORE_RESERVE_BYTES);
	close(fd);
	if (r) {
		unlinkat(s->dirfd, STORE_RESERVE_NAME, 0);
		return;
	}
	s->have_reserve = true;
}

/* Call with mu held. Returns true if a retry may now succeed. */
static bool make_room(struct store_local *s)
{
	if (!s->have_reserve)
		return false;
	s->have_reserve = false;
	if (unlinkat(s->dirfd, STORE_RESERVE_NAME, 0) < 0) {
		semlog(SEMLOG_ERR, "store: remove reserve '%s/%s': %s", s->dir,
			  STORE_RESERVE_NAME, strerror(errno));
		return false;
	}
	semlog(SEMLOG_ERR, "store: disk of '%s' is full: gave up the reserve to delete; "
		  "free some space", s->dir);
	return true;
}

static void reserve_retake(struct store_local *s)
{
	lock(s);
	if (!s->have_reserve)
		reserve_take(s);
	unlock(s);
}

/* ---- blob files ---- */

struct blob_name {
	char dir[16];    /* "blobs/1a" */
	char tmp[48];    /* "blobs/1a/.tmp.26" */
	char fin[48];    /* "blobs/1a/26" */
};

static int blob_name(int64_t id, struct blob_name *n)
{
	unsigned xx = (unsigned)(i64_to_u64(id) & 0xff);
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

/* Returns bytes read (short only at end of file) or a negative errno. */
static ssize_t read_full(int fd, void *buf, size_t len)
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

static int fsync_dir_at(int dirfd, const char *name)
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

/* Write blobs/XX/ID: temp -> fsync? -> rename -> fsync(dir)?. */
static int blob_write(struct store_local *s, int64_t id, const void *data,
		      size_t len)
{
	unsigned char hdr[BLOB_HDR_LEN];
	struct blob_name n;
	int fd, ret;

	ret = blob_name(id, &n);
	if (ret)
		return ret;
	memcpy(hdr, BLOB_MAGIC, 4);
	bytes_put_le32(hdr + 4, BLOB_VERSION);
	bytes_put_le64(hdr + 8, (uint64_t)len);
	bytes_put_le32(hdr + 16, bytes_crc32(data, len));

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
		ret = fsync_dir_at(s->dirfd, n.dir);
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

static void blob_unlink(struct store_local *s, int64_t id)
{
	struct blob_name n;

	if (blob_name(id, &n))
		return;
	if (unlinkat(s->dirfd, n.fin, 0) < 0 && errno != ENOENT)
		semlog(SEMLOG_ERR, "store: remove blob '%s': %s; it stays until the next "
			  "unclean open", n.fin, strerror(errno));
}

/* ---- open and close ---- */

static int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen,
		   const char *dbpath)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	errbuf_set(err, errlen, "store: '%s' in '%s': %s", sql, dbpath,
		sqlite3_errmsg(db));
	return sq_errno(db, rc);
}

static int db_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*v = 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int mkdir_at(int dirfd, const char *name, bool *created)
{
	if (mkdirat(dirfd, name, 0700) == 0) {
		*created = true;
		return 0;
	}
	return errno == EEXIST ? 0 : -errno;
}

/*
 * Blob paths are opened relative to the store directory with O_NOFOLLOW on
 * the last component only, so the directories on the way must not be
 * symlinks: refuse to open a store where they are.
 */
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

static int make_blob_dirs(struct store_local *s, char *err, size_t errlen)
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
	if (made_sub && (ret = fsync_dir_at(s->dirfd, "blobs"))) {
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

static int db_schema(struct store_local *s, const char *dbpath, char *err,
		     size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int64_t ver;
	int rc, ret;

	rc = db_int(s->db, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK) {
		errbuf_set(err, errlen, "store: read schema version of '%s': %s",
			dbpath, sqlite3_errmsg(s->db));
		return sq_errno(s->db, rc);
	}
	if (ver > STORE_SCHEMA_VERSION) {
		errbuf_set(err, errlen, "store: '%s' has schema version %lld but "
			"this build knows up to %d; use a newer semcachefs",
			dbpath, (long long)ver, STORE_SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (ver == 0) {
		char sql[sizeof(schema_sql) + 128];

		snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;%s"
			 "PRAGMA user_version=%d;COMMIT;", schema_sql,
			 STORE_SCHEMA_VERSION);
		ret = db_exec(s->db, sql, err, errlen, dbpath);
		if (ret) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return ret;
		}
	}
	rc = sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO categories"
				"(path, mode, uid, gid, created_ms)"
				" VALUES('/', ?1, ?2, ?3, ?4)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, 0755);
		sqlite3_bind_int64(st, 2, (int64_t)getuid());
		sqlite3_bind_int64(st, 3, (int64_t)getgid());
		sqlite3_bind_int64(st, 4, clock_wall_ms());
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		errbuf_set(err, errlen, "store: create root category in '%s': %s",
			dbpath, sqlite3_errmsg(s->db));
		ret = sq_errno(s->db, rc);
		sqlite3_finalize(st);
		return ret;
	}
	sqlite3_finalize(st);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Parse a blob file name: a positive decimal id without sign or zeros. */
static bool parse_id(const char *name, int64_t *id)
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

/*
 * After an unclean shutdown: remove temp files and blobs without a row,
 * then drop rows whose blob is missing. Runs inside store_open.
 */
static int recover(struct store_local *s, struct store_report *rep, char *err,
		   size_t errlen)
{
	int64_t *ids = NULL;
	unsigned char *seen = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(s->db, "SELECT id FROM entries ORDER BY id",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			int64_t *nids = realloc(ids, ncap * sizeof(*ids));

			if (!nids) {
				ret = -ENOMEM;
				errbuf_set(err, errlen, "store: recovery: out of "
					"memory listing entries");
				goto out;
			}
			ids = nids;
			cap = ncap;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		ret = sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: recovery: list entries: %s",
			sqlite3_errmsg(s->db));
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	seen = calloc(n ? n : 1, 1);
	if (!seen) {
		ret = -ENOMEM;
		errbuf_set(err, errlen, "store: recovery: out of memory");
		goto out;
	}

	for (unsigned xx = 0; xx < 256; xx++) {
		char dname[16];
		struct dirent *de;
		DIR *d;
		int fd;

		snprintf(dname, sizeof(dname), "blobs/%02x", xx);
		fd = openat(s->dirfd, dname,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(d = fdopendir(fd))) {
			ret = -errno;
			if (fd >= 0)
				close(fd);
			errbuf_set(err, errlen, "store: recovery: open directory "
				"'%s/%s': %s", s->dir, dname, strerror(-ret));
			goto out;
		}
		while ((de = readdir(d))) {
			const char *name = de->d_name;
			int64_t id, *hit;
			bool orphan;

			if (!strcmp(name, ".") || !strcmp(name, ".."))
				continue;
			if (!strncmp(name, ".tmp.", 5)) {
				orphan = true;
			} else if (parse_id(name, &id)) {
				hit = ((i64_to_u64(id) & 0xff) != xx) ? NULL :
				      bsearch(&id, ids, n, sizeof(*ids),
					      cmp_i64);
				if (hit)
					seen[hit - ids] = 1;
				orphan = !hit;
			} else {
				semlog(SEMLOG_ERR, "store: recovery: leaving unknown file "
					  "'%s/%s/%s' alone", s->dir, dname,
					  name);
				continue;
			}
			if (!orphan)
				continue;
			if (unlinkat(fd, name, 0) < 0) {
				semlog(SEMLOG_ERR, "store: recovery: remove orphan blob "
					  "'%s/%s': %s", dname, name,
					  strerror(errno));
				continue;
			}
			rep->orphan_blobs++;
		}
		closedir(d);
	}

	ret = tx_begin(s);
	if (ret)
		goto out_msg;
	for (size_t i = 0; i < n; i++) {
		if (seen[i])
			continue;
		semlog(SEMLOG_ERR, "store: recovery: entry %lld has no blob 'blobs/%02x/%lld';"
			  " dropping the entry", (long long)ids[i],
			  (unsigned)(i64_to_u64(ids[i]) & 0xff),
			  (long long)ids[i]);
		sqlite3_bind_int64(s->st[ST_ENT_DELETE], 1, ids[i]);
		ret = stmt_exec(s, ST_ENT_DELETE, "drop entry without blob");
		if (ret) {
			tx_rollback(s);
			goto out_msg;
		}
		rep->dropped_entries++;
	}
	ret = tx_commit(s);
out_msg:
	if (ret)
		errbuf_set(err, errlen, "store: recovery: drop entries without "
			"blob in '%s/%s': %s", s->dir, STORE_DB_NAME,
			strerror(-ret));
out:
	sqlite3_finalize(st);
	free(seen);
	free(ids);
	return ret;
}

static int quick_check(struct store_local *s, const char *dbpath, char *err,
		       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *res;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st,
				NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: check '%s': %s", dbpath,
			sqlite3_errmsg(s->db));
	} else {
		res = (const char *)sqlite3_column_text(st, 0);
		if (!res || strcmp(res, "ok")) {
			ret = -EUCLEAN;
			errbuf_set(err, errlen, "store: database '%s' is corrupt "
				"(%s)", dbpath, res ? res : "?");
		}
	}
	sqlite3_finalize(st);
	return ret;
}

static void store_free(struct store_local *s)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		semlog(SEMLOG_ERR, "store: close database '%s/%s': %s", s->dir, STORE_DB_NAME,
			  sqlite3_errmsg(s->db));
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->mu);
	free(s->scan_buf);
	free(s->dir);
	free(s);
}

/* Finalize the statements and close the database (after a failed setup). */
static void db_teardown(struct store_local *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
}

/* Open the database, check it, create the schema, prepare statements and
 * find the next entry id. On failure s->db may be left open. */
static int db_setup(struct store_local *s, const char *dbpath, char *err,
		    size_t errlen)
{
	int64_t maxid, seq;
	int fd, rc, ret;

	if (err && errlen)
		err[0] = '\0';
	/* Create the database ourselves so that it is 0600; SQLite gives
	 * the -wal and -shm files the database's mode. */
	fd = openat(s->dirfd, STORE_DB_NAME,
		    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "store: create database '%s': %s",
			dbpath, strerror(-ret));
		return ret;
	}
	close(fd);

	rc = sqlite3_open_v2(dbpath, &s->db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: open database '%s': %s", dbpath,
			s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return ret;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	ret = db_exec(s->db, "PRAGMA journal_mode=WAL", err, errlen, dbpath);
	if (!ret)
		ret = db_exec(s->db, s->sync_full ? "PRAGMA synchronous=FULL" :
			      "PRAGMA synchronous=NORMAL", err, errlen,
			      dbpath);
	if (!ret)
		ret = quick_check(s, dbpath, err, errlen);
	if (!ret)
		ret = db_schema(s, dbpath, err, errlen);
	if (ret)
		return ret;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &s->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			ret = sq_errno(s->db, rc);
			errbuf_set(err, errlen, "store: prepare '%s' on '%s': %s",
				stmt_sql[i], dbpath, sqlite3_errmsg(s->db));
			return ret;
		}
	}
	/* sqlite_sequence keeps the highest id ever used, so ids of
	 * deleted entries are never handed out again. */
	rc = db_int(s->db, "SELECT max(id) FROM entries", &maxid);
	if (rc == SQLITE_OK)
		rc = db_int(s->db, "SELECT seq FROM sqlite_sequence"
			    " WHERE name = 'entries'", &seq);
	if (rc != SQLITE_OK) {
		ret = sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: read highest entry id in '%s': %s",
			dbpath, sqlite3_errmsg(s->db));
		return ret;
	}
	s->next_id = (maxid > seq ? maxid : seq) + 1;
	return 0;
}

/* The ids of all blob files blobs/XX/ID with the right XX, sorted. */
static int list_blob_ids(struct store_local *s, int64_t **out, size_t *out_n)
{
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;

	for (unsigned xx = 0; xx < 256; xx++) {
		char dname[16];
		struct dirent *de;
		DIR *d;
		int fd;

		snprintf(dname, sizeof(dname), "blobs/%02x", xx);
		fd = openat(s->dirfd, dname, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || !(d = fdopendir(fd))) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			if (e == ENOENT)
				continue;
			free(ids);
			return -e;
		}
		while ((de = readdir(d))) {
			int64_t id;

			if (!parse_id(de->d_name, &id) ||
			    (i64_to_u64(id) & 0xff) != xx)
				continue;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				int64_t *nids = realloc(ids, ncap * sizeof(*ids));

				if (!nids) {
					closedir(d);
					free(ids);
					return -ENOMEM;
				}
				ids = nids;
				cap = ncap;
			}
			ids[n++] = id;
		}
		closedir(d);
	}
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_i64);
	*out = ids;
	*out_n = n;
	return 0;
}

/* An empty database file without a WAL next to blob files: the database
 * was truncated (SQLite would take it for a new, empty one). */
static bool db_damaged_empty(struct store_local *s)
{
	struct stat sb;
	int64_t *ids;
	size_t n;

	if (fstatat(s->dirfd, STORE_DB_NAME, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    sb.st_size != 0)
		return false;
	if (fstatat(s->dirfd, STORE_DB_NAME "-wal", &sb,
		    AT_SYMLINK_NOFOLLOW) == 0 && sb.st_size > 0)
		return false;
	if (list_blob_ids(s, &ids, &n))
		return false;
	free(ids);
	return n > 0;
}

/* Copy file from -> to in the store directory; ENOENT of from is 1. */
static int copy_at(struct store_local *s, const char *from, const char *to)
{
	char buf[65536];
	int in, outfd, ret = 0;
	ssize_t n;

	in = openat(s->dirfd, from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return errno == ENOENT ? 1 : -errno;
	unlinkat(s->dirfd, to, 0);
	outfd = openat(s->dirfd, to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		       O_NOFOLLOW, 0600);
	if (outfd < 0) {
		ret = -errno;
		close(in);
		return ret;
	}
	while ((n = read_full(in, buf, sizeof(buf))) > 0) {
		ret = fileio_write_all(outfd, buf, (size_t)n);
		if (ret)
			break;
	}
	if (n < 0 && !ret)
		ret = (int)n;
	if (close(outfd) < 0 && !ret)
		ret = -errno;
	close(in);
	return ret;
}

/* Copy the rows of one table, keyed by an integer first column, from src
 * to dst, skipping what cannot be read. sel has ?1 = "key greater than";
 * ins binds the selected columns in order. Returns rows copied. */
static int64_t salvage_table(sqlite3 *src, sqlite3 *dst, const char *table,
			     const char *sel, const char *ins)
{
	sqlite3_stmt *rd = NULL, *wr = NULL;
	int64_t last = INT64_MIN, skip = 1, copied = 0;
	int errors = 0, rc;

	if (sqlite3_prepare_v2(dst, ins, -1, &wr, NULL) != SQLITE_OK) {
		semlog(SEMLOG_ERR, "store: repair: prepare insert into '%s': %s", table,
			  sqlite3_errmsg(dst));
		return 0;
	}
	for (;;) {
		rc = sqlite3_prepare_v2(src, sel, -1, &rd, NULL);
		if (rc != SQLITE_OK) {
			semlog(SEMLOG_ERR, "store: repair: table '%s' is unreadable (%s); its "
				  "rows are lost", table, sqlite3_errmsg(src));
			break;
		}
		sqlite3_bind_int64(rd, 1, last);
		while ((rc = sqlite3_step(rd)) == SQLITE_ROW) {
			int nc = sqlite3_column_count(rd);

			last = sqlite3_column_int64(rd, 0);
			skip = 1;
			for (int c = 0; c < nc; c++)
				sqlite3_bind_value(wr, c + 1,
						   sqlite3_column_value(rd, c));
			if (sqlite3_step(wr) == SQLITE_DONE)
				copied += sqlite3_changes(dst) > 0;
			else
				semlog(SEMLOG_ERR, "store: repair: row %lld of '%s' is not "
					  "valid (%s); dropped", (long long)last,
					  table, sqlite3_errmsg(dst));
			sqlite3_reset(wr);
			sqlite3_clear_bindings(wr);
		}
		sqlite3_finalize(rd);
		rd = NULL;
		if (rc == SQLITE_DONE)
			break;
		semlog(SEMLOG_ERR, "store: repair: reading '%s' after key %lld: %s; skipping "
			  "ahead", table, (long long)last, sqlite3_errmsg(src));
		if (++errors > 62 || last == INT64_MIN)
			break;
		if (last > INT64_MAX - skip)
			break;
		last += skip;
		skip *= 2;
	}
	sqlite3_finalize(wr);
	return copied;
}

/* Move blobs/XX/ID to lost+found/ID. */
static void blob_to_lost(struct store_local *s, int64_t id)
{
	struct blob_name n;
	char to[64];

	if (blob_name(id, &n))
		return;
	snprintf(to, sizeof(to), STORE_LOST_NAME "/%lld", (long long)id);
	if (renameat(s->dirfd, n.fin, s->dirfd, to) < 0)
		semlog(SEMLOG_ERR, "store: repair: move '%s' to '%s': %s; it stays and will be "
			  "removed as an orphan", n.fin, to, strerror(errno));
}

/* Salvage the entries that have a blob, by point lookups. */
static void salvage_entries(struct store_local *s, sqlite3 *src, sqlite3 *dst,
			    const int64_t *ids, size_t n,
			    struct store_report *rep)
{
	sqlite3_stmt *rd = NULL, *wr = NULL, *cat = NULL, *mk = NULL;
	bool lost_dir = false;

	sqlite3_prepare_v2(src, "SELECT id, cat_id, created_ms, last_hit_ms,"
			   " hits, bytes, key_hi, key_lo, ctx_hash, dim,"
			   " embedder, vec, query, context FROM entries"
			   " WHERE id = ?1", -1, &rd, NULL);
	if (!rd)
		semlog(SEMLOG_ERR, "store: repair: table 'entries' is unreadable (%s)",
			  sqlite3_errmsg(src));
	sqlite3_prepare_v2(dst, "INSERT INTO entries(id, cat_id, created_ms,"
			   " last_hit_ms, hits, bytes, key_hi, key_lo,"
			   " ctx_hash, dim, embedder, vec, query, context)"
			   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
			   " ?11, ?12, ?13, ?14)", -1, &wr, NULL);
	sqlite3_prepare_v2(dst, "SELECT 1 FROM categories WHERE id = ?1", -1,
			   &cat, NULL);
	sqlite3_prepare_v2(dst, "INSERT OR IGNORE INTO categories(id, path,"
			   " mode, uid, gid, created_ms) VALUES(?1, ?2, 493,"
			   " ?3, ?4, ?5)", -1, &mk, NULL);
	for (size_t i = 0; i < n; i++) {
		bool ok = false;
		int rc;

		if (rd && wr && cat && mk) {
			sqlite3_bind_int64(rd, 1, ids[i]);
			rc = sqlite3_step(rd);
			if (rc == SQLITE_ROW) {
				int64_t cid = sqlite3_column_int64(rd, 1);

				sqlite3_bind_int64(cat, 1, cid);
				if (sqlite3_step(cat) != SQLITE_ROW) {
					char path[48];

					snprintf(path, sizeof(path),
						 "/recovered-%lld",
						 (long long)cid);
					sqlite3_bind_int64(mk, 1, cid);
					sqlite3_bind_text(mk, 2, path, -1,
							  SQLITE_TRANSIENT);
					sqlite3_bind_int64(mk, 3, getuid());
					sqlite3_bind_int64(mk, 4, getgid());
					sqlite3_bind_int64(mk, 5, clock_wall_ms());
					if (sqlite3_step(mk) == SQLITE_DONE &&
					    sqlite3_changes(dst) > 0) {
						rep->db_cats_recreated++;
						semlog(SEMLOG_ERR, "store: repair: category %lld "
							  "was lost; its entries "
							  "are kept in '%s'",
							  (long long)cid, path);
					}
					sqlite3_reset(mk);
				}
				sqlite3_reset(cat);
				for (int c = 0; c < 14; c++)
					sqlite3_bind_value(wr, c + 1,
						sqlite3_column_value(rd, c));
				ok = sqlite3_step(wr) == SQLITE_DONE;
				sqlite3_reset(wr);
				sqlite3_clear_bindings(wr);
			} else if (rc != SQLITE_DONE) {
				semlog(SEMLOG_ERR, "store: repair: entry %lld: %s",
					  (long long)ids[i],
					  sqlite3_errmsg(src));
			}
			sqlite3_reset(rd);
		}
		if (ok) {
			rep->db_salvaged++;
			continue;
		}
		if (!lost_dir) {
			if (mkdirat(s->dirfd, STORE_LOST_NAME, 0700) < 0 &&
			    errno != EEXIST)
				semlog(SEMLOG_ERR, "store: repair: create '%s/%s': %s", s->dir,
					  STORE_LOST_NAME, strerror(errno));
			lost_dir = true;
		}
		semlog(SEMLOG_ERR, "store: repair: the row of entry %lld is lost; its response "
			  "moved to '%s/%s/%lld' (the query is gone, so it "
			  "cannot be served)", (long long)ids[i], s->dir,
			  STORE_LOST_NAME, (long long)ids[i]);
		blob_to_lost(s, ids[i]);
		rep->db_lost++;
	}
	sqlite3_finalize(rd);
	sqlite3_finalize(wr);
	sqlite3_finalize(cat);
	sqlite3_finalize(mk);
}

/*
 * Rebuild a damaged semcache.db: rename it (and its -wal/-shm) aside,
 * salvage what can be read from a copy into a fresh database. Runs inside
 * store_open with s->db closed.
 */
static int db_repair(struct store_local *s, struct store_report *rep, char *err,
		     size_t errlen)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char ts[32], from[96], to[96], path[PATH_MAX];
	sqlite3 *src = NULL, *dst = NULL;
	int64_t *ids = NULL, seq = 0, maxblob;
	size_t n = 0;
	struct tm tm;
	time_t t = time(NULL);
	int ret, fd;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(rep->db_aside, sizeof(rep->db_aside), "%s.corrupt-%s",
		 STORE_DB_NAME, ts);
	for (int k = 1; faccessat(s->dirfd, rep->db_aside, F_OK,
				  AT_SYMLINK_NOFOLLOW) == 0; k++)
		snprintf(rep->db_aside, sizeof(rep->db_aside),
			 "%s.corrupt-%s-%d", STORE_DB_NAME, ts, k);
	/* 1. the damaged files go aside, untouched from here on */
	for (int i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "%s%s", STORE_DB_NAME, sfx[i]);
		snprintf(to, sizeof(to), "%s%s", rep->db_aside, sfx[i]);
		if (renameat(s->dirfd, from, s->dirfd, to) < 0 &&
		    errno != ENOENT) {
			ret = -errno;
			errbuf_set(err, errlen, "store: repair: move '%s/%s' "
				"aside to '%s': %s", s->dir, from, to,
				strerror(-ret));
			return ret;
		}
	}
	if (fsync(s->dirfd) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "store: repair: fsync directory '%s': %s",
			s->dir, strerror(-ret));
		return ret;
	}
	rep->db_repaired = true;
	semlog(SEMLOG_ERR, "store: repair: moved the damaged database aside to '%s/%s' (kept, "
		  "not deleted)", s->dir, rep->db_aside);

	/* 2. a working copy to read from (reading may write its WAL) */
	for (int i = 0; i < 2; i++) {
		snprintf(from, sizeof(from), "%s%s", rep->db_aside, sfx[i]);
		snprintf(to, sizeof(to), "%s%s", STORE_SALVAGE_NAME, sfx[i]);
		ret = copy_at(s, from, to);
		if (ret < 0) {
			errbuf_set(err, errlen, "store: repair: copy '%s/%s' to "
				"'%s': %s", s->dir, from, to, strerror(-ret));
			goto out;
		}
	}
	snprintf(path, sizeof(path), "%s/%s", s->dir, STORE_SALVAGE_NAME);
	if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK)
		semlog(SEMLOG_ERR, "store: repair: open the copy of the damaged database: %s",
			  src ? sqlite3_errmsg(src) : "out of memory");
	/* lets the schema load when a table's root page is past the end of
	 * a truncated file; the copy is only read */
	if (src)
		sqlite3_exec(src, "PRAGMA writable_schema=ON", NULL, NULL, NULL);

	/* 3. a fresh database */
	fd = openat(s->dirfd, STORE_DB_NAME, O_RDWR | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "store: repair: create '%s/%s': %s",
			s->dir, STORE_DB_NAME, strerror(-ret));
		goto out;
	}
	close(fd);
	snprintf(path, sizeof(path), "%s/%s", s->dir, STORE_DB_NAME);
	if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		ret = sq_errno(dst, SQLITE_CANTOPEN);
		errbuf_set(err, errlen, "store: repair: open new '%s': %s", path,
			dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	{
		char sql[sizeof(schema_sql) + 128];

		snprintf(sql, sizeof(sql), "PRAGMA journal_mode=WAL;"
			 "BEGIN IMMEDIATE;%sPRAGMA user_version=%d;",
			 schema_sql, STORE_SCHEMA_VERSION);
		ret = db_exec(dst, sql, err, errlen, path);
		if (ret)
			goto out;
	}

	/* 4. salvage: categories, policies, then entries by blob id */
	if (src) {
		int64_t c, p;

		c = salvage_table(src, dst, "categories",
			"SELECT id, path, mode, uid, gid, created_ms FROM"
			" categories WHERE id > ?1 ORDER BY id",
			"INSERT OR IGNORE INTO categories(id, path, mode, uid,"
			" gid, created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
		p = salvage_table(src, dst, "policies",
			"SELECT cat_id, yaml, updated_ms FROM policies"
			" WHERE cat_id > ?1 ORDER BY cat_id",
			"INSERT OR IGNORE INTO policies(cat_id, yaml,"
			" updated_ms) SELECT ?1, ?2, ?3 WHERE EXISTS"
			" (SELECT 1 FROM categories WHERE id = ?1)");
		semlog(SEMLOG_ERR, "store: repair: salvaged %lld categories and %lld policies",
			  (long long)c, (long long)p);
		if (db_int(src, "SELECT seq FROM sqlite_sequence WHERE name ="
			   " 'entries'", &seq) != SQLITE_OK)
			seq = 0;
	}
	ret = list_blob_ids(s, &ids, &n);
	if (ret) {
		errbuf_set(err, errlen, "store: repair: list blobs in '%s': %s",
			s->dir, strerror(-ret));
		goto out;
	}
	salvage_entries(s, src, dst, ids, n, rep);
	/* ids are never handed out twice: keep the highest ever seen */
	maxblob = n ? ids[n - 1] : 0;
	if (maxblob > seq)
		seq = maxblob;
	{
		char sql[320];

		snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO"
			 " sqlite_sequence(name, seq) SELECT 'entries', 0"
			 " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence"
			 " WHERE name = 'entries'); UPDATE sqlite_sequence SET"
			 " seq = max(seq, %lld) WHERE name = 'entries';",
			 (long long)seq);
		ret = db_exec(dst, sql, err, errlen, path);
		if (!ret)
			ret = db_exec(dst, "COMMIT", err, errlen, path);
		if (ret)
			goto out;
	}
	semlog(SEMLOG_ERR, "store: repair: new database '%s': %lld entries salvaged, %lld lost "
		  "(responses kept in '%s/%s'), %lld categories recreated",
		  path, (long long)rep->db_salvaged, (long long)rep->db_lost,
		  s->dir, STORE_LOST_NAME, (long long)rep->db_cats_recreated);
out:
	free(ids);
	if (src)
		sqlite3_close(src);
	if (dst && sqlite3_close(dst) != SQLITE_OK && !ret)
		ret = -EIO;
	for (int i = 0; i < 3; i++) {
		snprintf(to, sizeof(to), "%s%s", STORE_SALVAGE_NAME, sfx[i]);
		unlinkat(s->dirfd, to, 0);
	}
	if (ret) {
		/* leave no half-built database behind */
		unlinkat(s->dirfd, STORE_DB_NAME, 0);
		unlinkat(s->dirfd, STORE_DB_NAME "-wal", 0);
		unlinkat(s->dirfd, STORE_DB_NAME "-shm", 0);
	}
	fsync(s->dirfd);
	return ret;
}

static int local_open(const char *dir, const struct store_options *opts,
	       struct store_local **out, struct store_report *report, char *err,
	       size_t errlen)
{
	struct store_report rep = { 0 };
	pthread_mutexattr_t ma;
	char dbpath[PATH_MAX];
	struct store_local *s;
	bool fresh, marker;
	int rc, ret;

	if (err && errlen)
		err[0] = '\0';
	if (!dir || !*dir || !out) {
		errbuf_set(err, errlen, "store: open: no directory given");
		return -EINVAL;
	}
	*out = NULL;
	rc = snprintf(dbpath, sizeof(dbpath), "%s/%s", dir, STORE_DB_NAME);
	if (rc < 0 || (size_t)rc >= sizeof(dbpath)) {
		errbuf_set(err, errlen, "store: directory name '%s' is too long",
			dir);
		return -ENAMETOOLONG;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		errbuf_set(err, errlen, "store: open '%s': out of memory", dir);
		return -ENOMEM;
	}
	s->dirfd = -1;
	s->sync_full = opts && opts->sync_full;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		errbuf_set(err, errlen, "store: create directory '%s': %s", dir,
			strerror(-ret));
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "store: open directory '%s': %s", dir,
			strerror(-ret));
		goto fail;
	}
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		errbuf_set(err, errlen, "store: lock directory '%s': %s; is "
			"another semcachefs using it?", dir, strerror(errno));
		goto fail;
	}

	fresh = faccessat(s->dirfd, STORE_DB_NAME, F_OK, 0) < 0 &&
		errno == ENOENT;
	marker = faccessat(s->dirfd, STORE_CLEAN_NAME, F_OK, 0) == 0;
	rep.unclean = !fresh && !marker;
	/* From here on, a crash must look unclean to the next open. */
	if (marker) {
		if (unlinkat(s->dirfd, STORE_CLEAN_NAME, 0) < 0) {
			ret = -errno;
			errbuf_set(err, errlen, "store: remove marker '%s/%s': %s",
				dir, STORE_CLEAN_NAME, strerror(-ret));
			goto fail;
		}
		if (fsync(s->dirfd) < 0) {
			ret = -errno;
			errbuf_set(err, errlen, "store: fsync directory '%s': %s",
				dir, strerror(-ret));
			goto fail;
		}
	}
	ret = make_blob_dirs(s, err, errlen);
	if (ret)
		goto fail;
	reserve_take(s);
	if (!s->have_reserve)
		semlog(SEMLOG_ERR, "store: cannot set aside %d KiB in '%s/%s'; deletes may fail"
			  " while the disk is full", STORE_RESERVE_BYTES / 1024,
			  dir, STORE_RESERVE_NAME);
	ret = db_damaged_empty(s) ? -EUCLEAN : db_setup(s, dbpath, err, errlen);
	if (ret == -ENOSPC && make_room(s)) {
		semlog(SEMLOG_ERR, "store: opening '%s' on a full disk: gave up the reserve and "
			  "trying again", dbpath);
		db_teardown(s);
		ret = db_setup(s, dbpath, err, errlen);
	}
	if (ret == -EUCLEAN) {
		semlog(SEMLOG_ERR, "store: database '%s' is damaged (%s); repairing it", dbpath,
			  err && *err ? err : "empty database next to blobs");
		db_teardown(s);
		ret = db_repair(s, &rep, err, errlen);
		if (!ret)
			ret = db_setup(s, dbpath, err, errlen);
		/* cross-check rows and blobs whatever the marker said */
		rep.unclean = true;
	}
	if (ret)
		goto fail_db;

	if (rep.unclean) {
		ret = recover(s, &rep, err, errlen);
		if (ret)
			goto fail_db;
	}
	rc = db_int(s->db, "SELECT count(*) FROM entries", &rep.entries);
	if (rc != SQLITE_OK) {
		ret = sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: count entries in '%s': %s",
			dbpath, sqlite3_errmsg(s->db));
		goto fail_db;
	}
	if (report)
		*report = rep;
	*out = s;
	return 0;

fail_db:
	if (ret == -EUCLEAN && !strstr(err ? err : "", "corrupt"))
		errbuf_set(err, errlen, "store: database '%s' is corrupt or not a "
			"database and could not be repaired; see the log",
			dbpath);
fail:
	store_free(s);
	return ret;
}

static void local_close(struct store_local *s)
{
	int fd, dirfd;
	bool ok;

	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	/* The last connection's close checkpoints the WAL into the db. */
	ok = sqlite3_close(s->db) == SQLITE_OK;
	if (!ok)
		semlog(SEMLOG_ERR, "store: close database '%s/%s': %s; the next open will "
			  "check the store", s->dir, STORE_DB_NAME,
			  sqlite3_errmsg(s->db));
	else
		s->db = NULL;
	/* Without sync_full nothing was fsync'd; the marker promises that
	 * everything before it is on disk. */
	if (ok && !s->sync_full && syncfs(s->dirfd) < 0) {
		semlog(SEMLOG_ERR, "store: syncfs '%s': %s; the next open will check the store",
			  s->dir, strerror(errno));
		ok = false;
	}
	if (ok) {
		dirfd = s->dirfd;
		fd = openat(dirfd, STORE_CLEAN_NAME, O_WRONLY | O_CREAT |
			    O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			semlog(SEMLOG_ERR, "store: create marker '%s/%s': %s; the next open "
				  "will check the store", s->dir,
				  STORE_CLEAN_NAME, strerror(errno));
		else if (fsync(fd) < 0 || close(fd) < 0 || fsync(dirfd) < 0)
			semlog(SEMLOG_ERR, "store: fsync marker '%s/%s': %s", s->dir,
				  STORE_CLEAN_NAME, strerror(errno));
	}
	store_free(s);
}

static const char *local_dir(const struct store_local *s)
{
	return s ? s->dir : NULL;
}

/* ---- categories and policies ---- */

struct cat_row {
	struct store_category c;
	char *path;
};

static int local_category_list(struct store_local *s,
			int (*cb)(void *arg, const struct store_category *c),
			void *arg)
{
	struct cat_row *rows = NULL, *nrows;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !cb)
		return -EINVAL;
	/* Copy the rows out so that cb may call back into the store. */
	lock(s);
	st = s->st[ST_CAT_LIST];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 1);

		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nrows = realloc(rows, cap * sizeof(*rows));
			if (!nrows) {
				ret = -ENOMEM;
				break;
			}
			rows = nrows;
		}
		rows[n].path = strdup(p ? p : "");
		if (!rows[n].path) {
			ret = -ENOMEM;
			break;
		}
		rows[n].c.id = sqlite3_column_int64(st, 0);
		rows[n].c.mode = (mode_t)sqlite3_column_int64(st, 2) & 07777;
		rows[n].c.uid = (uid_t)sqlite3_column_int64(st, 3);
		rows[n].c.gid = (gid_t)sqlite3_column_int64(st, 4);
		rows[n].c.created_ms = sqlite3_column_int64(st, 5);
		n++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sq_fail(s, rc, "list categories");
	stmt_done(st);
	unlock(s);

	for (size_t i = 0; i < n && !ret; i++) {
		rows[i].c.path = rows[i].path;
		ret = cb(arg, &rows[i].c);
	}
	for (size_t i = 0; i < n; i++)
		free(rows[i].path);
	free(rows);
	return ret;
}

static int local_category_create(struct store_local *s, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !path || path[0] != '/')
		return -EINVAL;
	lock(s);
	st = s->st[ST_CAT_INSERT];
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)(mode & 07777));
	sqlite3_bind_int64(st, 3, (int64_t)uid);
	sqlite3_bind_int64(st, 4, (int64_t)gid);
	sqlite3_bind_int64(st, 5, clock_wall_ms());
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		if (id_out)
			*id_out = sqlite3_last_insert_rowid(s->db);
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		ret = -EEXIST;
	} else {
		ret = sq_fail(s, rc, "create category");
	}
	stmt_done(st);
	unlock(s);
	return ret;
}

/* Collect the ids of a category's entries. Call with mu held. */
static int cat_entry_ids(struct store_local *s, int64_t cat_id, int64_t **ids,
			 size_t *n)
{
	sqlite3_stmt *st = s->st[ST_ENT_IDS_CAT];
	size_t cap = 0;
	int rc, ret = 0;

	*ids = NULL;
	*n = 0;
	sqlite3_bind_int64(st, 1, cat_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			int64_t *nids = realloc(*ids, ncap * sizeof(**ids));

			if (!nids) {
				ret = -ENOMEM;
				break;
			}
			*ids = nids;
			cap = ncap;
		}
		(*ids)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sq_fail(s, rc, "list entries of category");
	stmt_done(st);
	return ret;
}

/* One try of store_category_delete. Call with mu held; on success *ids
 * holds the ids whose blobs the caller unlinks. */
static int category_delete_tx(struct store_local *s, int64_t cat_id,
			      int64_t **ids, size_t *n)
{
	int ret;

	*ids = NULL;
	*n = 0;
	ret = tx_begin(s);
	if (ret)
		return ret;
	sqlite3_bind_int64(s->st[ST_CAT_EXISTS], 1, cat_id);
	ret = sqlite3_step(s->st[ST_CAT_EXISTS]);
	if (ret == SQLITE_ROW) {
		const char *p = (const char *)
			sqlite3_column_text(s->st[ST_CAT_EXISTS], 0);

		/* the root category stays */
		ret = p && !strcmp(p, "/") ? -EBUSY : 0;
	} else {
		ret = ret == SQLITE_DONE ? -ENOENT :
		      sq_fail(s, ret, "look up category");
	}
	stmt_done(s->st[ST_CAT_EXISTS]);
	if (ret)
		goto out_rollback;
	ret = cat_entry_ids(s, cat_id, ids, n);
	if (ret)
		goto out_rollback;
	sqlite3_bind_int64(s->st[ST_ENT_DELETE_CAT], 1, cat_id);
	ret = stmt_exec(s, ST_ENT_DELETE_CAT, "delete entries of category");
	if (ret)
		goto out_rollback;
	sqlite3_bind_int64(s->st[ST_POL_DELETE], 1, cat_id);
	ret = stmt_exec(s, ST_POL_DELETE, "delete policy of category");
	if (ret)
		goto out_rollback;
	sqlite3_bind_int64(s->st[ST_CAT_DELETE], 1, cat_id);
	ret = stmt_exec(s, ST_CAT_DELETE, "delete category");
	if (ret)
		goto out_rollback;
	ret = tx_commit(s);
	if (ret)
		goto out_free;
	return 0;

out_rollback:
	tx_rollback(s);
out_free:
	free(*ids);
	*ids = NULL;
	*n = 0;
	return ret;
}

static int local_category_delete(struct store_local *s, int64_t cat_id)
{
	int64_t *ids;
	size_t n;
	int ret;

	if (!s)
		return -EINVAL;
	lock(s);
	ret = category_delete_tx(s, cat_id, &ids, &n);
	if (ret == -ENOSPC && make_room(s))
		ret = category_delete_tx(s, cat_id, &ids, &n);
	unlock(s);
	for (size_t i = 0; i < n; i++)
		blob_unlink(s, ids[i]);
	free(ids);
	if (!ret)
		reserve_retake(s);
	return ret;
}

static int local_category_setattr(struct store_local *s, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid)
{
	sqlite3_stmt *st;
	int ret;

	if (!s)
		return -EINVAL;
	lock(s);
	st = s->st[ST_CAT_SETATTR];
	sqlite3_bind_int64(st, 1, cat_id);
	sqlite3_bind_int64(st, 2, (int64_t)(mode & 07777));
	sqlite3_bind_int64(st, 3, (int64_t)uid);
	sqlite3_bind_int64(st, 4, (int64_t)gid);
	ret = stmt_exec(s, ST_CAT_SETATTR, "update category");
	if (!ret && sqlite3_changes(s->db) == 0)
		ret = -ENOENT;
	unlock(s);
	return ret;
}

static int local_policy_get(struct store_local *s, int64_t cat_id, char **yaml,
		     size_t *len)
{
	sqlite3_stmt *st;
	const void *p;
	size_t n;
	int rc, ret = 0;

	if (!s || !yaml)
		return -EINVAL;
	*yaml = NULL;
	lock(s);
	st = s->st[ST_POL_GET];
	sqlite3_bind_int64(st, 1, cat_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		p = sqlite3_column_blob(st, 0);
		n = (size_t)sqlite3_column_bytes(st, 0);
		*yaml = malloc(n + 1);
		if (!*yaml) {
			ret = -ENOMEM;
		} else {
			if (n)
				memcpy(*yaml, p, n);
			(*yaml)[n] = '\0';
			if (len)
				*len = n;
		}
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = sq_fail(s, rc, "read policy");
	}
	stmt_done(st);
	unlock(s);
	return ret;
}

static int local_policy_put(struct store_local *s, int64_t cat_id, const char *yaml,
		     size_t len)
{
	int rc, ret;

	if (!s || len > INT_MAX)
		return -EINVAL;
	lock(s);
	if (!yaml) {
		sqlite3_bind_int64(s->st[ST_POL_DELETE], 1, cat_id);
		ret = stmt_exec(s, ST_POL_DELETE, "remove policy");
		if (!ret && sqlite3_changes(s->db) == 0)
			ret = -ENOENT;
		goto out;
	}
	sqlite3_bind_int64(s->st[ST_CAT_EXISTS], 1, cat_id);
	rc = sqlite3_step(s->st[ST_CAT_EXISTS]);
	stmt_done(s->st[ST_CAT_EXISTS]);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOENT :
		      sq_fail(s, rc, "look up category");
		goto out;
	}
	sqlite3_bind_int64(s->st[ST_POL_PUT], 1, cat_id);
	/* a non-NULL pointer even for len 0: NULL would bind SQL NULL */
	sqlite3_bind_blob(s->st[ST_POL_PUT], 2, len ? yaml : "", (int)len,
			  SQLITE_STATIC);
	sqlite3_bind_int64(s->st[ST_POL_PUT], 3, clock_wall_ms());
	ret = stmt_exec(s, ST_POL_PUT, "write policy");
out:
	unlock(s);
	return ret;
}

/* ---- entries ---- */

static int local_entry_put(struct store_local *s, struct store_entry *e,
		    const struct store_payload *p)
{
	sqlite3_stmt *st;
	char what[48];
	int64_t id;
	int rc, ret;

	if (!s || !e || !p || !p->embedder || p->dim < 0 ||
	    (p->dim && !p->vec) || (p->query_len && !p->query) ||
	    (p->context_len && !p->context) ||
	    (p->response_len && !p->response) ||
	    p->query_len > INT_MAX || p->context_len > INT_MAX ||
	    (size_t)p->dim > INT_MAX / sizeof(float) ||
	    p->response_len > (uint64_t)INT64_MAX)
		return -EINVAL;

	lock(s);
	id = s->next_id++;
	unlock(s);

	ret = blob_write(s, id, p->response, p->response_len);
	if (ret)
		return ret;

	lock(s);
	st = s->st[ST_ENT_INSERT];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, e->cat_id);
	sqlite3_bind_int64(st, 3, e->created_ms);
	sqlite3_bind_int64(st, 4, e->last_hit_ms);
	sqlite3_bind_int64(st, 5, e->hits);
	sqlite3_bind_int64(st, 6, (int64_t)p->response_len);
	sqlite3_bind_int64(st, 7, u64_to_i64(e->key[0]));
	sqlite3_bind_int64(st, 8, u64_to_i64(e->key[1]));
	sqlite3_bind_int64(st, 9, u64_to_i64(e->ctx_hash));
	sqlite3_bind_int64(st, 10, p->dim);
	sqlite3_bind_text(st, 11, p->embedder, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 12, p->dim ? (const void *)p->vec : "",
			  p->dim * (int)sizeof(float), SQLITE_STATIC);
	sqlite3_bind_blob(st, 13, p->query_len ? p->query : "",
			  (int)p->query_len, SQLITE_STATIC);
	if (p->context)
		sqlite3_bind_blob(st, 14, p->context_len ? p->context : "",
				  (int)p->context_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 14);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		snprintf(what, sizeof(what), "insert entry %lld",
			 (long long)id);
		ret = sq_fail(s, rc, what);
	}
	else if (sqlite3_changes(s->db) == 0)
		ret = -ENOENT;  /* no such category */
	stmt_done(st);
	unlock(s);
	if (ret) {
		blob_unlink(s, id);
		return ret;
	}
	e->id = id;
	e->bytes = (int64_t)p->response_len;
	return 0;
}

static int local_entry_delete(struct store_local *s, int64_t id)
{
	int ret;

	if (!s)
		return -EINVAL;
	lock(s);
	sqlite3_bind_int64(s->st[ST_ENT_DELETE], 1, id);
	ret = stmt_exec(s, ST_ENT_DELETE, "delete entry");
	if (ret == -ENOSPC && make_room(s)) {
		sqlite3_bind_int64(s->st[ST_ENT_DELETE], 1, id);
		ret = stmt_exec(s, ST_ENT_DELETE, "delete entry");
	}
	if (!ret && sqlite3_changes(s->db) == 0)
		ret = -ENOENT;
	unlock(s);
	if (!ret) {
		blob_unlink(s, id);
		reserve_retake(s);
	}
	return ret;
}

static int local_entry_touch(struct store_local *s, const struct store_touch *t, size_t n)
{
	sqlite3_stmt *st;
	int ret;

	if (!s || (n && !t))
		return -EINVAL;
	if (!n)
		return 0;
	lock(s);
	/* Hit counters are not worth an fsync, even with sync_full; the
	 * next synchronous commit covers them. */
	if (s->sync_full)
		sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
			     NULL);
	ret = tx_begin(s);
	if (ret)
		goto out;
	st = s->st[ST_ENT_TOUCH];
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, t[i].id);
		sqlite3_bind_int64(st, 2, t[i].last_hit_ms);
		sqlite3_bind_int64(st, 3, t[i].hits);
		ret = stmt_exec(s, ST_ENT_TOUCH, "update hit counters");
		if (ret) {
			tx_rollback(s);
			goto out;
		}
	}
	ret = tx_commit(s);
out:
	if (s->sync_full)
		sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL,
			     NULL);
	unlock(s);
	return ret;
}

static int local_entry_scan(struct store_local *s, int64_t cat_id, int64_t min_id,
		     int (*cb)(void *arg, const struct store_entry *e,
			       const float *vec, int dim,
			       const char *embedder),
		     void *arg)
{
	struct store_entry e;
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !cb)
		return -EINVAL;
	/* cb runs with mu held (vec points into SQLite's row buffer); a
	 * store call from cb is a programmer error caught by lock(). */
	lock(s);
	st = s->st[ST_ENT_SCAN];
	sqlite3_bind_int64(st, 1, cat_id);
	sqlite3_bind_int64(st, 2, min_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *vec = sqlite3_column_blob(st, 11);
		int vbytes = sqlite3_column_bytes(st, 11);
		int64_t dim = sqlite3_column_int64(st, 9);
		const char *emb = (const char *)sqlite3_column_text(st, 10);

		e.id = sqlite3_column_int64(st, 0);
		if (dim < 0 || dim > INT_MAX / (int64_t)sizeof(float) ||
		    vbytes != dim * (int64_t)sizeof(float)) {
			semlog(SEMLOG_ERR, "store: entry %lld: vector has %d bytes but dim "
				  "%lld needs %lld; skipping the entry",
				  (long long)e.id, vbytes, (long long)dim,
				  (long long)dim * (long long)sizeof(float));
			continue;
		}
		if ((uintptr_t)vec % _Alignof(float)) {
			if ((size_t)vbytes > s->scan_cap) {
				float *nb = realloc(s->scan_buf, vbytes);

				if (!nb) {
					ret = -ENOMEM;
					break;
				}
				s->scan_buf = nb;
				s->scan_cap = (size_t)vbytes;
			}
			memcpy(s->scan_buf, vec, vbytes);
			vec = s->scan_buf;
		}
		e.cat_id = sqlite3_column_int64(st, 1);
		e.created_ms = sqlite3_column_int64(st, 2);
		e.last_hit_ms = sqlite3_column_int64(st, 3);
		e.hits = sqlite3_column_int64(st, 4);
		e.bytes = sqlite3_column_int64(st, 5);
		e.key[0] = i64_to_u64(sqlite3_column_int64(st, 6));
		e.key[1] = i64_to_u64(sqlite3_column_int64(st, 7));
		e.ctx_hash = i64_to_u64(sqlite3_column_int64(st, 8));
		ret = cb(arg, &e, dim ? vec : NULL, (int)dim, emb ? emb : "");
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = sq_fail(s, rc, "scan entries");
	stmt_done(st);
	unlock(s);
	return ret;
}

static int local_response_read(struct store_local *s, int64_t id, void **buf,
			size_t *len)
{
	unsigned char hdr[BLOB_HDR_LEN];
	struct blob_name n;
	struct stat sb;
	uint64_t plen;
	void *data = NULL;
	ssize_t got;
	int fd, ret;

	if (!s || !buf || !len)
		return -EINVAL;
	*buf = NULL;
	*len = 0;
	ret = blob_name(id, &n);
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
	got = read_full(fd, hdr, sizeof(hdr));
	if (got < 0) {
		ret = (int)got;
		semlog(SEMLOG_ERR, "store: read blob '%s': %s", n.fin, strerror(-ret));
		goto out;
	}
	plen = bytes_get_le64(hdr + 8);
	if ((size_t)got < sizeof(hdr) || memcmp(hdr, BLOB_MAGIC, 4) ||
	    bytes_get_le32(hdr + 4) != BLOB_VERSION ||
	    plen != (uint64_t)sb.st_size - BLOB_HDR_LEN ||
	    plen > SIZE_MAX - 1) {
		ret = -EBADMSG;
		semlog(SEMLOG_ERR, "store: blob '%s' is damaged (bad header or length); "
			  "delete entry %lld", n.fin, (long long)id);
		goto out;
	}
	data = malloc(plen ? (size_t)plen : 1);
	if (!data) {
		ret = -ENOMEM;
		goto out;
	}
	got = read_full(fd, data, (size_t)plen);
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

static int copy_col(sqlite3_stmt *st, int col, char **out, size_t *out_len)
{
	const void *p = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	*out = malloc(n + 1);
	if (!*out)
		return -ENOMEM;
	if (n)
		memcpy(*out, p, n);
	(*out)[n] = '\0';
	if (out_len)
		*out_len = n;
	return 0;
}

static int local_entry_text(struct store_local *s, int64_t id, char **query,
		     size_t *query_len, char **ctx, size_t *ctx_len)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s)
		return -EINVAL;
	if (query)
		*query = NULL;
	if (ctx)
		*ctx = NULL;
	if (ctx_len)
		*ctx_len = 0;
	lock(s);
	st = s->st[ST_ENT_TEXT];
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (query)
			ret = copy_col(st, 0, query, query_len);
		if (!ret && ctx &&
		    sqlite3_column_type(st, 1) != SQLITE_NULL)
			ret = copy_col(st, 1, ctx, ctx_len);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = sq_fail(s, rc, "read entry text");
	}
	stmt_done(st);
	unlock(s);
	if (ret && query) {
		free(*query);
		*query = NULL;
	}
	return ret;
}

/* ---- the backend table (store_i.h) ---- */

/* base is the first member of struct store_local, so the casts are exact. */
#define LOCAL(s) ((struct store_local *)(s))

static int op_open(const char *where, const struct store_options *opts,
		   struct store **out, struct store_report *report, char *err,
		   size_t errlen)
{
	struct store_local *s = NULL;
	int rc = local_open(where, opts, &s, report, err, errlen);

	if (rc)
		return rc;
	s->base.ops = &store_local_ops;
	*out = &s->base;
	return 0;
}

static void op_close(struct store *s) { local_close(LOCAL(s)); }
static const char *op_dir(const struct store *s)
{
	return local_dir((const struct store_local *)s);
}
static int op_category_list(struct store *s,
			    int (*cb)(void *arg, const struct store_category *c),
			    void *arg)
{
	return local_category_list(LOCAL(s), cb, arg);
}
static int op_category_create(struct store *s, const char *path, mode_t mode,
			      uid_t uid, gid_t gid, int64_t *id_out)
{
	return local_category_create(LOCAL(s), path, mode, uid, gid, id_out);
}
static int op_category_delete(struct store *s, int64_t cat_id)
{
	return local_category_delete(LOCAL(s), cat_id);
}
static int op_category_setattr(struct store *s, int64_t cat_id, mode_t mode,
			       uid_t uid, gid_t gid)
{
	return local_category_setattr(LOCAL(s), cat_id, mode, uid, gid);
}
static int op_policy_get(struct store *s, int64_t cat_id, char **yaml,
			 size_t *len)
{
	return local_policy_get(LOCAL(s), cat_id, yaml, len);
}
static int op_policy_put(struct store *s, int64_t cat_id, const char *yaml,
			 size_t len)
{
	return local_policy_put(LOCAL(s), cat_id, yaml, len);
}
static int op_entry_put(struct store *s, struct store_entry *e,
			const struct store_payload *p)
{
	return local_entry_put(LOCAL(s), e, p);
}
static int op_entry_delete(struct store *s, int64_t id)
{
	return local_entry_delete(LOCAL(s), id);
}
static int op_entry_touch(struct store *s, const struct store_touch *t, size_t n)
{
	return local_entry_touch(LOCAL(s), t, n);
}
static int op_entry_scan(struct store *s, int64_t cat_id, int64_t min_id,
			 int (*cb)(void *arg, const struct store_entry *e,
				   const float *vec, int dim, const char *embedder),
			 void *arg)
{
	return local_entry_scan(LOCAL(s), cat_id, min_id, cb, arg);
}
static int op_response_read(struct store *s, int64_t id, void **buf, size_t *len)
{
	return local_response_read(LOCAL(s), id, buf, len);
}
static int op_entry_text(struct store *s, int64_t id, char **query,
			 size_t *query_len, char **ctx, size_t *ctx_len)
{
	return local_entry_text(LOCAL(s), id, query, query_len, ctx, ctx_len);
}

const struct store_ops store_local_ops = {
	.name = "local",
	.open = op_open,
	.close = op_close,
	.dir = op_dir,
	.category_list = op_category_list,
	.category_create = op_category_create,
	.category_delete = op_category_delete,
	.category_setattr = op_category_setattr,
	.policy_get = op_policy_get,
	.policy_put = op_policy_put,
	.entry_put = op_entry_put,
	.entry_delete = op_entry_delete,
	.entry_touch = op_entry_touch,
	.entry_scan = op_entry_scan,
	.response_read = op_response_read,
	.entry_text = op_entry_text,
	.watch = NULL, /* only this process changes a local store */
	.quota_enforce = NULL, /* the engine keeps quotas on its own view */
};
