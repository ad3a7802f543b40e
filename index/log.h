/*
 * log.h - one log for the daemon: timestamped lines to stderr or a file.
 *
 * Thread-safe (one write(2) per line). log_open_file() switches the sink,
 * e.g. to STORE/semcachefs.log once the daemon leaves the terminal.
 */
#ifndef SEMCACHE_LOG_H
#define SEMCACHE_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level max);
/* 0 or -errno. The file is opened for appending, mode 0600. */
int log_open_file(const char *path);
void semlog(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
