/*
 * reserve.c - the full-disk reserve of the local store.
 *
 * A full disk also stops deletes: the WAL must grow to record them, and a
 * checkpoint must grow the database (db.c keeps the WAL small for that:
 * STORE_WAL_PAGES between checkpoints). So open sets aside a reserve file of
 * up to STORE_RESERVE_BYTES (allocated with posix_fallocate, one
 * STORE_RESERVE_CHUNK at a time, keeping what fits). A delete that hits
 * ENOSPC gives up one chunk and retries, as often as chunks are left
 * (local_delete_exec); from then on the disk counts as full, and every
 * delete is followed by a WAL checkpoint, so that the next transaction
 * writes the WAL from its start instead of growing it, and by an attempt
 * to take the reserve back as far as the space the delete freed (its
 * blob) allows. Once the reserve is whole again the disk no longer counts
 * as full. A category delete runs in transactions of STORE_DELETE_BATCH
 * entries (category.c) so that each fits one chunk.
 *
 * What not: it does not make room for puts (a fill on a full disk fails
 * with -ENOSPC); it cannot help when even the reserve is spent and nothing
 * was freed (the delete then fails with -ENOSPC, and the entry stays).
 */
#include "local_i.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Grow the reserve file chunk by chunk up to its size; mu held (or open). */
static void reserve_grow(struct store_local *s)
{
	int fd = openat(s->dirfd, STORE_RESERVE_NAME, O_WRONLY | O_CREAT |
			O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return;
	while (s->reserve_bytes < STORE_RESERVE_BYTES &&
	       !posix_fallocate(fd, s->reserve_bytes, STORE_RESERVE_CHUNK))
		s->reserve_bytes += STORE_RESERVE_CHUNK;
	/* a failed allocation may have kept part of it: cut back */
	if (ftruncate(fd, s->reserve_bytes) < 0)
		semlog(SEMLOG_ERR, "store: resize reserve '%s/%s': %s", s->dir,
		       STORE_RESERVE_NAME, strerror(errno));
	close(fd);
}

void local_reserve_take(struct store_local *s)
{
	reserve_grow(s);
}

bool local_reserve_give_up(struct store_local *s)
{
	int fd;

	if (s->reserve_bytes < STORE_RESERVE_CHUNK)
		return false;
	fd = openat(s->dirfd, STORE_RESERVE_NAME, O_WRONLY | O_CLOEXEC |
		    O_NOFOLLOW);
	if (fd < 0 || ftruncate(fd, s->reserve_bytes - STORE_RESERVE_CHUNK) < 0) {
		semlog(SEMLOG_ERR, "store: shrink reserve '%s/%s': %s", s->dir,
		       STORE_RESERVE_NAME, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	s->reserve_bytes -= STORE_RESERVE_CHUNK;
	if (!s->disk_full)
		semlog(SEMLOG_ERR, "store: disk of '%s' is full: gave up the reserve "
		       "to delete; free some space", s->dir);
	s->disk_full = true;
	return true;
}

void local_reserve_retake(struct store_local *s)
{
	struct statvfs vfs;

	if (!s->disk_full)
		return;
	/* the WAL is written from its start again after a checkpoint */
	sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
				  NULL);
	reserve_grow(s);
	/* whole, and room besides: the disk is no longer full */
	if (s->reserve_bytes == STORE_RESERVE_BYTES &&
	    !fstatvfs(s->dirfd, &vfs) &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize >= STORE_RESERVE_BYTES) {
		s->disk_full = false;
		semlog(SEMLOG_INFO, "store: the disk of '%s' has room again; the "
		       "reserve is whole", s->dir);
	}
}

int local_delete_exec(struct store_local *s, enum stmt_id id,
		      const char *what)
{
	sqlite3_stmt *st = s->st[id];
	int ret;

	/* local_stmt_exec clears the bindings: keep ours for the retries */
	for (;;) {
		int rc = sqlite3_step(st);

		if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
			ret = 0;
			break;
		}
		ret = local_sq_errno(s->db, rc);
		if (ret != -ENOSPC || s->reserve_bytes < STORE_RESERVE_CHUNK) {
			local_sq_fail(s, rc, what);
			break;
		}
		sqlite3_reset(st);
		if (!local_reserve_give_up(s)) {
			ret = -ENOSPC;
			break;
		}
	}
	local_stmt_done(st);
	return ret;
}
