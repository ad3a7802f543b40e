/*
 * open.c - opening and closing a local store directory, and the backend
 * table (store_local_ops) that store.c dispatches to.
 *
 * How: open creates the directory (0700), takes a flock on it (ids are
 * allocated in memory, so a second process must stay out), removes the
 * clean marker before anything else (from then on a crash looks unclean),
 * makes the blob directories, sets the full-disk reserve aside and opens
 * the database. A database too full to open gives up the reserve and tries
 * again; a corrupt one (-EUCLEAN, or empty next to blobs) is repaired
 * (repair.c) and then always cross-checked against the blobs (recover.c),
 * as is any store that was not closed cleanly. Close finalizes the
 * statements, closes the database (checkpointing the WAL), syncs the file
 * system unless every step was already fsync'd (sync_full), and only then
 * writes the clean marker (not when a blob's removal could not even be
 * recorded: then the next open checks the store). Every open removes the
 * blobs recorded in the orphans table.
 *
 * What not: no schema work (db.c), no blob format (blob.c).
 */
#include "local_i.h"
#include "fileio.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void local_free(struct store_local *s)
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
	ret = local_blob_dirs(s, err, errlen);
	if (ret)
		goto fail;
	local_reserve_take(s);
	if (s->reserve_bytes < STORE_RESERVE_BYTES)
		semlog(SEMLOG_ERR, "store: could set aside only %lld of %d KiB in "
		       "'%s/%s'; deletes may fail while the disk is full",
		       (long long)s->reserve_bytes / 1024,
		       STORE_RESERVE_BYTES / 1024, dir, STORE_RESERVE_NAME);
	ret = local_db_damaged_empty(s) ? -EUCLEAN : local_db_setup(s, dbpath, err, errlen);
	if (ret == -ENOSPC && local_reserve_give_up(s)) {
		semlog(SEMLOG_ERR, "store: opening '%s' on a full disk: gave up the reserve and "
			  "trying again", dbpath);
		local_db_teardown(s);
		ret = local_db_setup(s, dbpath, err, errlen);
	}
	if (ret == -EUCLEAN) {
		semlog(SEMLOG_ERR, "store: database '%s' is damaged (%s); repairing it", dbpath,
			  err && *err ? err : "empty database next to blobs");
		local_db_teardown(s);
		ret = local_db_repair(s, &rep, err, errlen);
		if (!ret)
			ret = local_db_setup(s, dbpath, err, errlen);
		/* cross-check rows and blobs whatever the marker said */
		rep.unclean = true;
	}
	if (ret)
		goto fail_db;

	if (rep.unclean) {
		ret = local_recover(s, &rep, err, errlen);
		if (ret)
			goto fail_db;
	}
	/* blobs whose unlink failed before: removed now */
	s->have_orphans = true;
	local_orphans_retry(s);
	rc = local_db_int(s->db, "SELECT count(*) FROM entries", &rep.entries);
	if (rc != SQLITE_OK) {
		ret = local_sq_errno(s->db, rc);
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
	local_free(s);
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
	/* an orphan blob nobody recorded: let the next open look for it */
	if (ok && s->orphans_lost)
		ok = false;
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
	local_free(s);
}

static const char *local_dir(const struct store_local *s)
{
	return s ? s->dir : NULL;
}

/* ---- the backend table (store_i.h) ---- */

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

static void op_close(struct store *s) { local_close(local_of(s)); }
static const char *op_dir(const struct store *s)
{
	return local_dir((const struct store_local *)s);
}

const struct store_ops store_local_ops = {
	.name = "local",
	.open = op_open,
	.close = op_close,
	.dir = op_dir,
	.category_list = local_category_list,
	.category_create = local_category_create,
	.category_delete = local_category_delete,
	.category_setattr = local_category_setattr,
	.policy_get = local_policy_get,
	.policy_put = local_policy_put,
	.entry_put = local_entry_put,
	.entry_delete = local_entry_delete,
	.entry_touch = local_entry_touch,
	.entry_scan = local_entry_scan,
	.response_read = local_response_read,
	.entry_text = local_entry_text,
	.watch = NULL, /* only this process changes a local store */
	.quota_enforce = NULL, /* the engine keeps quotas on its own view */
};
