/*
 * semlog.c - timestamped log lines (see semlog.h). A line is formatted into
 * a stack buffer and written with one write(2) so concurrent lines never
 * interleave. Keeps only the sink and the level; no buffering, no rotation
 * (reopening the file is the caller's job).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "semlog.h"

static _Atomic int log_fd = 2;
static _Atomic int log_max = SEMLOG_INFO;

void semlog_set_level(enum semlog_level max)
{
	log_max = max;
}

int semlog_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int old;

	if (fd < 0)
		return -errno;
	old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
	return 0;
}

static void vlog_line(int fd, const char *level, const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	n = (m < 0) ? n : (n + m >= (int)sizeof(line) - 1 ? (int)sizeof(line) - 2 : n + m);
	line[n++] = '\n';
	if (write(fd, line, n) < 0) {
		/* nowhere left to report it */
	}
}

void semlog(enum semlog_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if ((int)lvl > log_max)
		return;
	va_start(ap, fmt);
	vlog_line(log_fd, names[lvl], fmt, ap);
	va_end(ap);
}

_Noreturn void semlog_bug(const char *file, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	semlog(SEMLOG_ERR, "BUG at %s:%d: %s", file, line, msg);
	if (log_fd != 2)
		fprintf(stderr, "semcachefs: BUG at %s:%d: %s\n", file, line, msg);
	abort();
}
