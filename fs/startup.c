/*
 * startup.c - /dev/fuse, the store lock and the start-up log (see
 * startup.h).
 *
 * /dev/fuse: libfuse opens it itself at mount, after the store exists,
 * and says only "Permission denied"; opening it here first (and closing
 * it) gives the reason and the fix before anything is created.
 *
 * The store lock: the local store holds an flock on its directory until
 * cache_close() returns, and the kernel reports an unmount done when the
 * daemon has only begun its shutdown (saving index snapshots can take
 * seconds). A new mount of the same store therefore retries cache_open()
 * on -EBUSY every 50 ms up to a deadline instead of failing at once. The
 * retry is cheap: the local store takes the lock before reading anything.
 *
 * The start-up log of a background start: info lines belong in
 * STORE/semcachefs.log, not on the terminal the command was typed at, but
 * that file is known only once the store is open. Until then semlog
 * writes into a memfd; release appends it to the file, and puts the
 * warnings and errors on stderr, which is still the terminal then.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "semlog.h"
#include "startup.h"

#define FUSE_DEV "/dev/fuse"

int startup_check_fuse_dev(char *err, size_t errlen)
{
	int fd = open(FUSE_DEV, O_RDWR | O_CLOEXEC);
	struct stat sb;
	int rc;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	rc = -errno;
	if (rc == -ENOENT || rc == -ENODEV || rc == -ENXIO) {
		snprintf(err, errlen, "cannot open %s: %s; the fuse kernel module is not loaded "
			 "(as root: modprobe fuse)", FUSE_DEV, strerror(-rc));
	} else if ((rc == -EACCES || rc == -EPERM) && stat(FUSE_DEV, &sb) == 0) {
		struct group *gr = getgrgid(sb.st_gid);
		char group[64];

		if (gr)
			snprintf(group, sizeof(group), "'%s'", gr->gr_name);
		else
			snprintf(group, sizeof(group), "%u", (unsigned)sb.st_gid);
		snprintf(err, errlen, "cannot open %s: %s; it is mode %04o, group %s: ask for "
			 "read-write access (membership of group %s with mode 0660, or mode 0666 "
			 "as most distributions ship it)", FUSE_DEV, strerror(-rc),
			 (unsigned)(sb.st_mode & 07777), group, group);
	} else {
		snprintf(err, errlen, "cannot open %s: %s", FUSE_DEV, strerror(-rc));
	}
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int startup_cache_open(const struct cache_options *co, int wait_s, bool on_terminal,
		       struct cache **out, char *err, size_t errlen)
{
	const struct timespec step = { 0, 50 * 1000 * 1000 };
	double deadline = now_s() + wait_s;
	bool said = false;
	int rc;

	while ((rc = cache_open(co, out, err, errlen)) == -EBUSY && now_s() < deadline) {
		if (!said) {
			if (on_terminal)
				fprintf(stderr, "semcachefs: store '%s' is in use by another semcachefs "
					"(or one still shutting down); waiting up to %d s\n",
					co->store_dir, wait_s);
			semlog(on_terminal ? SEMLOG_INFO : SEMLOG_WARN,
			       "store '%s' is in use by another semcachefs (or one still "
			       "shutting down); waiting up to %d s", co->store_dir, wait_s);
			said = true;
		}
		nanosleep(&step, NULL);
	}
	if (said && !rc)
		semlog(SEMLOG_INFO, "store '%s' released by the other semcachefs", co->store_dir);
	return rc;
}

static int held_fd = -1; /* the memfd semlog writes into; main thread only */

int startup_log_hold(void)
{
	char path[64];
	int fd = memfd_create("semcachefs-startup-log", MFD_CLOEXEC);
	int rc;

	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = semlog_open_file(path);
	if (rc) {
		close(fd);
		return rc;
	}
	held_fd = fd;
	return 0;
}

/* the held lines into fd: all of them, or (all false) the warnings and errors */
static void copy_held(int fd, bool all)
{
	char buf[8192], line[1100];
	size_t len = 0;
	off_t off = 0;
	ssize_t n;

	while ((n = pread(held_fd, buf, sizeof(buf), off)) > 0) {
		off += n;
		for (ssize_t i = 0; i < n; i++) {
			if (len < sizeof(line) - 1)
				line[len++] = buf[i];
			if (buf[i] != '\n')
				continue;
			line[len] = 0;
			/* "TIMESTAMP LEVEL: text": info and debug stay in the log */
			if ((all || strstr(line, "Z warning: ") || strstr(line, "Z error: ")) &&
			    write(fd, line, len) < 0) {
				/* nowhere to report it */
			}
			len = 0;
		}
	}
}

int startup_log_release(const char *path)
{
	int fd, rc = 0;

	if (held_fd < 0)
		return 0;
	copy_held(2, false);
	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
		} else {
			copy_held(fd, true);
			close(fd);
			rc = semlog_open_file(path);
		}
	}
	if (!path || rc)
		semlog_open_file("/dev/stderr");
	close(held_fd);
	held_fd = -1;
	return rc;
}
