/*
 * reserve.c - the full-disk reserve of the local store.
 *
 * A full disk also stops deletes: the WAL must grow to record them, and a
 * checkpoint must grow the database. So open sets aside a small reserve
 * file (STORE_RESERVE_BYTES, allocated with posix_fallocate); a delete that
 * hits ENOSPC gives it up and retries, and a later delete (which frees
 * blobs) takes it back.
 *
 * What not: it does not make room for puts (a fill on a full disk fails
 * with -ENOSPC), and it is one reserve for the whole store, given up once.
 */
#include "local_i.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

void local_reserve_take(struct store_local *s)
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

bool local_reserve_give_up(struct store_local *s)
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

void local_reserve_retake(struct store_local *s)
{
	local_lock(s);
	if (!s->have_reserve)
		local_reserve_take(s);
	local_unlock(s);
}
