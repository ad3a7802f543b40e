/*
 * local_i.h - private to index/store/local/: the local directory backend's
 * shared state and the helpers its files call across each other.
 *
 * A store directory holds semcache.db (SQLite, WAL mode), blobs/XX/ID
 * response files (XX = two hex digits of id & 0xff), a "clean" marker that
 * exists only while the store is closed cleanly, a small "reserve" file that
 * lets deletes proceed on a full disk, and after a repair lost+found/ and
 * semcache.db.corrupt-TIME. The parts:
 *   db.c       statements, transactions, SQLite result codes -> errnos,
 *              opening and checking the database
 *   reserve.c  the full-disk reserve
 *   blob.c     blob files and directories: names, write, read and verify
 *   recover.c  the check after an unclean stop (orphans, missing blobs)
 *   repair.c   rebuilding a corrupt database (salvage, lost+found)
 *   category.c categories and policies
 *   entry.c    entries: put, delete, touch, scan, text, response
 *   open.c     open, close and the backend table (store_local_ops)
 * Every function returns 0 (or a count) or a negative errno, like store.h.
 */
#ifndef SEMCACHE_LOCAL_I_H
#define SEMCACHE_LOCAL_I_H

#include "store.h"
#include "store_i.h"

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <sqlite3.h>

#define STORE_SCHEMA_VERSION 2
#define STORE_DB_NAME "semcache.db"
#define STORE_CLEAN_NAME "clean"
#define STORE_RESERVE_NAME "reserve"
#define STORE_LOST_NAME "lost+found"
#define STORE_SALVAGE_NAME "salvage.tmp"
#define STORE_RESERVE_BYTES (256 * 1024)
#define STORE_RESERVE_CHUNK (64 * 1024)
#define STORE_DELETE_BATCH 8       /* entries per transaction of a category
				    * delete: its WAL growth fits a chunk */
#define STORE_BUSY_MS 5000
#define STORE_WAL_PAGES 256        /* wal_autocheckpoint: a WAL that a full
				    * disk's reserve can still checkpoint */

/* The statements prepared once at open (db.c has their SQL). */
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
	ST_ENT_IDS_BATCH,
	ST_ENT_DELETE_UPTO,
	ST_ORPHAN_ADD,
	ST_ORPHAN_DEL,
	ST_ORPHAN_LIST,
	ST_ENT_TOUCH,
	ST_ENT_SCAN,
	ST_ENT_TEXT,
	ST_COUNT
};

/*
 * Lock order: mu is the only lock. Blob file I/O happens without it; a scan
 * callback runs with it held (and must not call the store).
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
	int64_t reserve_bytes;       /* guarded by mu: set aside now */
	bool disk_full;              /* guarded by mu: the reserve was used
				      * (checkpoint after every delete) */
	bool have_orphans;           /* guarded by mu: rows in orphans */
	bool orphans_lost;           /* guarded by mu: an orphan could not be
				      * recorded: no clean marker at close */
	bool sync_normal;            /* guarded by mu: synchronous=FULL could
				      * not be set back (retried before the
				      * next durable write) */
	float *scan_buf;             /* guarded by mu: aligned copy of a vec */
	size_t scan_cap;             /* guarded by mu */
};

/* base is the first member of struct store_local, so the cast is exact. */
static inline struct store_local *local_of(struct store *s)
{
	return (struct store_local *)s;
}

/* uint64 values are kept as int64 bit patterns. */
static inline int64_t local_u64_to_i64(uint64_t v)
{
	int64_t r;

	memcpy(&r, &v, sizeof(r));
	return r;
}

static inline uint64_t local_i64_to_u64(int64_t v)
{
	uint64_t r;

	memcpy(&r, &v, sizeof(r));
	return r;
}

/* ---- db.c ---- */

/* Run pre, the CREATE statements of schema STORE_SCHEMA_VERSION with its
 * user_version, then post, as one script on db (pre/post are fixed SQL such
 * as "BEGIN IMMEDIATE;" and "COMMIT;"). */
int local_db_create_schema(sqlite3 *db, const char *pre, const char *post,
			   char *err, size_t errlen, const char *dbpath);

/* mu; BUG() on a lock error (a store call from a scan callback). */
void local_lock(struct store_local *s);
void local_unlock(struct store_local *s);
/* Map a SQLite result code to a negative errno (db may be NULL). */
int local_sq_errno(sqlite3 *db, int rc);
/* Log a failed database step (what failed) and return its errno. mu held. */
int local_sq_fail(struct store_local *s, int rc, const char *what);
/* Reset a prepared statement and clear its bindings. */
void local_stmt_done(sqlite3_stmt *st);
/* Step a prepared statement that returns no rows, then reset it. mu held. */
int local_stmt_exec(struct store_local *s, enum stmt_id id, const char *what);
/* Step st once: 1 when it gave a row (read it now), -ENOENT when there is
 * none, or the errno of a failure (logged naming what). mu held; the
 * caller resets st (local_stmt_done) in every case. */
int local_stmt_row(struct store_local *s, sqlite3_stmt *st, const char *what);
/* Copy column col of st's row out (store_copy_out: malloc'd, NUL after). */
int local_column_copy(sqlite3_stmt *st, int col, char **out,
		      size_t *out_len);
/* BEGIN IMMEDIATE / ROLLBACK (if in a transaction) / COMMIT (rolling back
 * when it fails). mu held. */
int local_tx_begin(struct store_local *s);
void local_tx_rollback(struct store_local *s);
int local_tx_commit(struct store_local *s);
/* sqlite3_exec sql; a failure is described in err, naming dbpath. */
int local_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen,
		  const char *dbpath);
/* The first column of the first row of sql (0 without rows); returns a
 * SQLite result code. */
int local_db_int(sqlite3 *db, const char *sql, int64_t *v);
/* Whole-database passes (the open's check, a category scan) read through
 * a memory map, on for the pass only: no pread and no copy into SQLite's
 * page cache per page, and no mapped pages left counting in the daemon's
 * RSS afterwards. A failure only costs speed: it is ignored. */
void local_db_mmap(sqlite3 *db, bool on);
/* Open the database, check it, create the schema, prepare the statements
 * and find the next entry id. On failure s->db may be left open. */
int local_db_setup(struct store_local *s, const char *dbpath, char *err,
		   size_t errlen);
/* Finalize the statements and close the database (after a failed setup). */
void local_db_teardown(struct store_local *s);

/* A growing list of ids (entries, blobs); zero-initialised is empty, the
 * caller frees v. */
struct local_ids {
	int64_t *v;
	size_t n, cap;
};

/* Append id; -ENOMEM (ids unchanged) when it cannot grow. */
int local_ids_push(struct local_ids *ids, int64_t id);

/* ---- reserve.c ---- */

/* Set up to STORE_RESERVE_BYTES aside in STORE_RESERVE_CHUNK pieces,
 * keeping what fits (reserve_bytes says how much). At open, and with mu
 * held. */
void local_reserve_take(struct store_local *s);
/* mu held: give up one chunk of the reserve for a delete that hit ENOSPC;
 * true if a retry may now succeed. */
bool local_reserve_give_up(struct store_local *s);
/* mu held: after a delete, checkpoint the WAL if the disk was found full
 * (so it is reused, not grown) and take the reserve back as far as the
 * freed space allows. */
void local_reserve_retake(struct store_local *s);
/* mu held: run one delete statement (bound already), giving up reserve
 * chunks and retrying while it fails with ENOSPC. */
int local_delete_exec(struct store_local *s, enum stmt_id id,
		      const char *what);

/* ---- orphans (entry.c) ---- */

/* Unlink the blob of deleted entry id; a failure is recorded in orphans
 * (mu taken here) so that it is removed later. */
void local_blob_drop(struct store_local *s, int64_t id);
/* Unlink the blobs recorded in orphans and forget them. mu held. */
void local_orphans_retry(struct store_local *s);
/* mu held: synchronous=FULL again where it was set off (sync_full). */
int local_sync_restore(struct store_local *s);

/* ---- blob.c ---- */

struct blob_name {
	char dir[16];    /* "blobs/1a" */
	char tmp[48];    /* "blobs/1a/.tmp.26" */
	char fin[48];    /* "blobs/1a/26" */
};

int local_blob_name(int64_t id, struct blob_name *n);
/* Write blobs/XX/ID: temp -> fsync? -> rename -> fsync(dir)?. */
int local_blob_write(struct store_local *s, int64_t id, const void *data,
		     size_t len);
/* Read and verify blobs/XX/ID; *buf malloc'd. -ENOENT, -EBADMSG. */
int local_blob_read(struct store_local *s, int64_t id, void **buf,
		    size_t *len);
/* Remove blobs/XX/ID: 0 (also when it was gone) or the errno, logged. */
int local_blob_unlink(struct store_local *s, int64_t id);
/* Create blobs/ and blobs/00..ff as real directories (never symlinks). */
int local_blob_dirs(struct store_local *s, char *err, size_t errlen);
/* The ids of all blob files blobs/XX/ID with the right XX, sorted; *out
 * malloc'd (NULL when there are none). */
int local_blob_ids(struct store_local *s, int64_t **out, size_t *out_n);
/* Open blobs/XX (xx < 256) for listing, opened with O_RDONLY | O_DIRECTORY
 * | O_CLOEXEC | flags; its name goes to dname (16 bytes). NULL with errno
 * set on failure. */
DIR *local_blob_dir(struct store_local *s, unsigned xx, char *dname,
		    int flags);
/* A blob file name: a positive decimal id without sign or leading zeros. */
bool local_parse_id(const char *name, int64_t *id);
/* qsort/bsearch order of int64_t. */
int local_cmp_i64(const void *a, const void *b);
/* Bytes read (short only at end of file) or a negative errno. */
ssize_t local_read_full(int fd, void *buf, size_t len);
/* fsync the directory name (relative to dirfd). */
int local_fsync_dir_at(int dirfd, const char *name);

/* ---- recover.c ---- */

/* After an unclean stop: remove temp files and blobs without a row, then
 * drop rows whose blob is missing (counted in rep). */
int local_recover(struct store_local *s, struct store_report *rep, char *err,
		  size_t errlen);

/* ---- repair.c ---- */

/* An empty database file without a WAL next to blob files. */
bool local_db_damaged_empty(struct store_local *s);
/* Rebuild a damaged semcache.db with s->db closed: rename it aside and
 * salvage what can be read into a fresh database (counted in rep). */
int local_db_repair(struct store_local *s, struct store_report *rep,
		    char *err, size_t errlen);

/* ---- category.c and entry.c: the store_ops of the same names ---- */

store_category_list_fn local_category_list;
store_category_create_fn local_category_create;
store_category_delete_fn local_category_delete;
store_category_setattr_fn local_category_setattr;
store_policy_get_fn local_policy_get;
store_policy_put_fn local_policy_put;
store_entry_put_fn local_entry_put;
store_entry_delete_fn local_entry_delete;
store_entry_touch_fn local_entry_touch;
store_entry_scan_fn local_entry_scan;
store_response_read_fn local_response_read;
store_entry_text_fn local_entry_text;

#endif
