/*
 * db.c - the local store's SQLite side: schema, prepared statements,
 * transactions, result codes as errnos, and opening a database.
 *
 * How: one connection (opened SQLITE_OPEN_NOMUTEX) behind the store's mutex,
 * every statement prepared once (SQLITE_PREPARE_PERSISTENT) at open and
 * indexed by enum stmt_id. Columns of entries are ordered small fields
 * first, then vec, then the texts, so a scan reaches vec without walking the
 * overflow pages of long queries. The WAL is checkpointed every
 * STORE_WAL_PAGES pages (1 MiB, not SQLite's 4 MiB), so that a disk that
 * fills up is not filled by the WAL and a delete on it can still be
 * checkpointed (reserve.c). Entry ids come from an in-memory counter
 * that starts above both max(id) and sqlite_sequence, so an id is never
 * handed out twice. Every open runs PRAGMA quick_check: a database SQLite
 * calls corrupt gives -EUCLEAN, which open.c answers with repair.c.
 *
 * Schema versions: 2 adds entries.uid (who filled it; NULL in rows from
 * version 1, read as the category's owner) and the orphans table (blobs
 * whose unlink failed, removed later). A version 1 database is migrated at
 * open in one transaction (ALTER TABLE ADD COLUMN: the column lands after
 * the texts there, while a new database has it among the small fields); a
 * newer version is refused.
 *
 * What not: no repair (repair.c), no blob files (blob.c).
 */
#include "local_i.h"
#include "clock.h"
#include "fileio.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEMCACHE_STR_(x) #x
#define SEMCACHE_STR(x) SEMCACHE_STR_(x)

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
		" embedder, vec, query, context, uid)"
		" SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
		" ?13, ?14, ?15 WHERE EXISTS (SELECT 1 FROM categories"
		" WHERE id = ?2)",
	[ST_ENT_DELETE] = "DELETE FROM entries WHERE id = ?1",
	[ST_ENT_DELETE_CAT] = "DELETE FROM entries WHERE cat_id = ?1",
	[ST_ENT_IDS_CAT] = "SELECT id FROM entries WHERE cat_id = ?1",
	[ST_ENT_IDS_BATCH] = "SELECT id FROM entries WHERE cat_id = ?1"
		" ORDER BY id LIMIT ?2",
	[ST_ENT_DELETE_UPTO] = "DELETE FROM entries WHERE cat_id = ?1"
		" AND id <= ?2",
	[ST_ORPHAN_ADD] = "INSERT OR IGNORE INTO orphans(id) VALUES(?1)",
	[ST_ORPHAN_DEL] = "DELETE FROM orphans WHERE id = ?1",
	[ST_ORPHAN_LIST] = "SELECT id FROM orphans ORDER BY id LIMIT 1024",
	[ST_ENT_TOUCH] = "UPDATE entries SET last_hit_ms = ?2, hits = ?3"
		" WHERE id = ?1",
	[ST_ENT_SCAN] = "SELECT id, cat_id, created_ms, last_hit_ms, hits,"
		" bytes, key_hi, key_lo, ctx_hash, dim, embedder, vec,"
		" coalesce(uid, (SELECT uid FROM categories WHERE id = ?1), 0)"
		" FROM entries WHERE cat_id = ?1 AND id > ?2 ORDER BY id",
	[ST_ENT_TEXT] = "SELECT query, context FROM entries WHERE id = ?1",
};

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
	" uid INTEGER,"
	" key_hi INTEGER NOT NULL,"
	" key_lo INTEGER NOT NULL,"
	" ctx_hash INTEGER NOT NULL,"
	" dim INTEGER NOT NULL,"
	" embedder TEXT NOT NULL,"
	" vec BLOB NOT NULL,"
	" query BLOB NOT NULL,"
	" context BLOB);"
	"CREATE INDEX entries_cat ON entries(cat_id, id);"
	"CREATE TABLE orphans(id INTEGER PRIMARY KEY);";

/* From version 1 to 2 (see the top). */
static const char migrate_v2_sql[] =
	"BEGIN IMMEDIATE;"
	"ALTER TABLE entries ADD COLUMN uid INTEGER;"
	"CREATE TABLE IF NOT EXISTS orphans(id INTEGER PRIMARY KEY);"
	"PRAGMA user_version=2;"
	"COMMIT;";

void local_lock(struct store_local *s)
{
	int r = pthread_mutex_lock(&s->mu);

	if (r)
		BUG("mutex lock: %s (store called from a scan "
			  "callback?)", strerror(r));
}

void local_unlock(struct store_local *s)
{
	int r = pthread_mutex_unlock(&s->mu);

	if (r)
		BUG("mutex unlock: %s", strerror(r));
}

int local_sq_errno(sqlite3 *db, int rc)
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

int local_sq_fail(struct store_local *s, int rc, const char *what)
{
	int ret = local_sq_errno(s->db, rc);

	semlog(SEMLOG_ERR, "store: %s in '%s/%s': %s", what, s->dir, STORE_DB_NAME,
		  sqlite3_errmsg(s->db));
	return ret;
}

void local_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int local_stmt_exec(struct store_local *s, enum stmt_id id, const char *what)
{
	int rc = sqlite3_step(s->st[id]);
	int ret = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = local_sq_fail(s, rc, what);
	local_stmt_done(s->st[id]);
	return ret;
}

int local_stmt_row(struct store_local *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? -ENOENT : local_sq_fail(s, rc, what);
}

int local_column_copy(sqlite3_stmt *st, int col, char **out,
		      size_t *out_len)
{
	/* the blob first: sqlite3_column_bytes may convert it */
	const void *p = sqlite3_column_blob(st, col);

	return store_copy_out(p, (size_t)sqlite3_column_bytes(st, col), out,
			      out_len);
}

int local_ids_push(struct local_ids *ids, int64_t id)
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 256;
		int64_t *v = realloc(ids->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

int local_tx_begin(struct store_local *s)
{
	return local_stmt_exec(s, ST_BEGIN, "begin transaction");
}

void local_tx_rollback(struct store_local *s)
{
	if (!sqlite3_get_autocommit(s->db))
		local_stmt_exec(s, ST_ROLLBACK, "roll back transaction");
}

int local_tx_commit(struct store_local *s)
{
	int ret = local_stmt_exec(s, ST_COMMIT, "commit transaction");

	if (ret)
		local_tx_rollback(s);
	return ret;
}

int local_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen,
		  const char *dbpath)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	errbuf_set(err, errlen, "store: '%s' in '%s': %s", sql, dbpath,
		sqlite3_errmsg(db));
	return local_sq_errno(db, rc);
}

int local_db_int(sqlite3 *db, const char *sql, int64_t *v)
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

int local_db_create_schema(sqlite3 *db, const char *pre, const char *post,
			   char *err, size_t errlen, const char *dbpath)
{
	char sql[sizeof(schema_sql) + 128];
	int n;

	n = snprintf(sql, sizeof(sql), "%s%sPRAGMA user_version=%d;%s", pre,
		     schema_sql, STORE_SCHEMA_VERSION, post);
	if (n < 0 || (size_t)n >= sizeof(sql))
		BUG("schema script of %d bytes does not fit", n);
	return local_db_exec(db, sql, err, errlen, dbpath);
}

static int db_schema(struct store_local *s, const char *dbpath, char *err,
		     size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int64_t ver;
	int rc, ret;

	rc = local_db_int(s->db, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK) {
		errbuf_set(err, errlen, "store: read schema version of '%s': %s",
			dbpath, sqlite3_errmsg(s->db));
		return local_sq_errno(s->db, rc);
	}
	if (ver > STORE_SCHEMA_VERSION) {
		errbuf_set(err, errlen, "store: '%s' has schema version %lld but "
			"this build knows up to %d; use a newer semcachefs",
			dbpath, (long long)ver, STORE_SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (ver == 0) {
		ret = local_db_create_schema(s->db, "BEGIN IMMEDIATE;",
					     "COMMIT;", err, errlen, dbpath);
		if (ret) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return ret;
		}
	} else if (ver == 1) {
		ret = local_db_exec(s->db, migrate_v2_sql, err, errlen, dbpath);
		if (ret) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return ret;
		}
		semlog(SEMLOG_INFO, "store: '%s' upgraded from schema version 1 "
		       "to 2 (entries record who filled them)", dbpath);
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
		ret = local_sq_errno(s->db, rc);
		sqlite3_finalize(st);
		return ret;
	}
	sqlite3_finalize(st);
	return 0;
}

void local_db_mmap(sqlite3 *db, bool on)
{
	/* SQLite caps the map at its SQLITE_MAX_MMAP_SIZE (2 GB as built
	 * by Debian); past that it reads the rest as before */
	sqlite3_exec(db, on ? "PRAGMA mmap_size=4294967296" : "PRAGMA mmap_size=0",
		     NULL, NULL, NULL);
}

static int quick_check(struct store_local *s, const char *dbpath, char *err,
		       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *res;
	int rc, ret = 0;

	local_db_mmap(s->db, true);
	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st,
				NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = local_sq_errno(s->db, rc);
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
	local_db_mmap(s->db, false);
	return ret;
}

void local_db_teardown(struct store_local *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
}

int local_db_setup(struct store_local *s, const char *dbpath, char *err,
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
		ret = local_sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: open database '%s': %s", dbpath,
			s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return ret;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	ret = local_db_exec(s->db, "PRAGMA journal_mode=WAL", err, errlen,
			    dbpath);
	if (!ret)
		ret = local_db_exec(s->db, "PRAGMA wal_autocheckpoint="
				    SEMCACHE_STR(STORE_WAL_PAGES), err, errlen,
				    dbpath);
	if (!ret)
		ret = local_db_exec(s->db, s->sync_full ?
				    "PRAGMA synchronous=FULL" :
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
			ret = local_sq_errno(s->db, rc);
			errbuf_set(err, errlen, "store: prepare '%s' on '%s': %s",
				stmt_sql[i], dbpath, sqlite3_errmsg(s->db));
			return ret;
		}
	}
	/* sqlite_sequence keeps the highest id ever used, so ids of
	 * deleted entries are never handed out again. */
	rc = local_db_int(s->db, "SELECT max(id) FROM entries", &maxid);
	if (rc == SQLITE_OK)
		rc = local_db_int(s->db, "SELECT seq FROM sqlite_sequence"
				  " WHERE name = 'entries'", &seq);
	if (rc != SQLITE_OK) {
		ret = local_sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: read highest entry id in '%s': %s",
			dbpath, sqlite3_errmsg(s->db));
		return ret;
	}
	s->next_id = (maxid > seq ? maxid : seq) + 1;
	return 0;
}
