/*
 * repair.c - rebuilding the local store's database when SQLite finds it
 * corrupt, or finds it empty next to existing blobs (a truncated file).
 *
 * How: the damaged semcache.db (and its -wal, -shm) is renamed to
 * semcache.db.corrupt-TIME, never deleted; a copy of it (reading may write
 * its WAL) is opened with writable_schema so that a table whose root page
 * lies past a truncated end still loads; a fresh database gets the schema
 * and, in one transaction, the categories and policies copied table by
 * table with per-row error tolerance (a read error skips ahead by doubling
 * steps), then the entries looked up one by one by the ids of the blob
 * files, so one bad page loses only its rows. A blob whose row is lost is
 * moved to lost+found/ (a blob holds only the response, so such an entry
 * cannot be served again); a category whose row is lost but has salvaged
 * entries is recreated as /recovered-ID. sqlite_sequence keeps the highest
 * id ever seen (rows or blobs), so ids are never handed out twice.
 *
 * What not: no repair of a damaged WAL (SQLite ignores the frames from the
 * first bad checksum on; the blobs of the rows lost there are orphans that
 * recover.c removes), no attempt to read the rows of an unreadable page.
 */
#include "local_i.h"
#include "clock.h"
#include "fileio.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* An empty database file without a WAL next to blob files: the database
 * was truncated (SQLite would take it for a new, empty one). */
bool local_db_damaged_empty(struct store_local *s)
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
	if (local_blob_ids(s, &ids, &n))
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
	while ((n = local_read_full(in, buf, sizeof(buf))) > 0) {
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

	if (local_blob_name(id, &n))
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

	/* a version 1 database has no uid column: NULL, the owner's */
	if (sqlite3_prepare_v2(src, "SELECT id, cat_id, created_ms, last_hit_ms,"
			       " hits, bytes, key_hi, key_lo, ctx_hash, dim,"
			       " embedder, vec, query, context, uid FROM entries"
			       " WHERE id = ?1", -1, &rd, NULL) != SQLITE_OK)
		sqlite3_prepare_v2(src, "SELECT id, cat_id, created_ms,"
				   " last_hit_ms, hits, bytes, key_hi, key_lo,"
				   " ctx_hash, dim, embedder, vec, query,"
				   " context, NULL FROM entries WHERE id = ?1",
				   -1, &rd, NULL);
	if (!rd)
		semlog(SEMLOG_ERR, "store: repair: table 'entries' is unreadable (%s)",
			  sqlite3_errmsg(src));
	sqlite3_prepare_v2(dst, "INSERT INTO entries(id, cat_id, created_ms,"
			   " last_hit_ms, hits, bytes, key_hi, key_lo,"
			   " ctx_hash, dim, embedder, vec, query, context, uid)"
			   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
			   " ?11, ?12, ?13, ?14, ?15)", -1, &wr, NULL);
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
				for (int c = 0; c < 15; c++)
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
int local_db_repair(struct store_local *s, struct store_report *rep,
		    char *err, size_t errlen)
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
		ret = local_sq_errno(dst, SQLITE_CANTOPEN);
		errbuf_set(err, errlen, "store: repair: open new '%s': %s", path,
			dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	ret = local_db_create_schema(dst, "PRAGMA journal_mode=WAL;"
				     "BEGIN IMMEDIATE;", "", err, errlen, path);
	if (ret)
		goto out;

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
		if (local_db_int(src, "SELECT seq FROM sqlite_sequence WHERE name ="
			   " 'entries'", &seq) != SQLITE_OK)
			seq = 0;
	}
	ret = local_blob_ids(s, &ids, &n);
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
		ret = local_db_exec(dst, sql, err, errlen, path);
		if (!ret)
			ret = local_db_exec(dst, "COMMIT", err, errlen, path);
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
