/*
 * semlog.h - the one log of the daemon: timestamped lines to stderr or a file.
 *
 * Every part of the daemon (engine, stores, vector index, embedders, FUSE
 * surface) logs through semlog(), so that in the background, where stderr
 * is /dev/null, nothing is lost: semlog_open_file() switches the sink to
 * STORE/semcachefs.log. Thread-safe (one write(2) per line, lines never
 * interleave). Not for command-line tools' own usage messages.
 *
 * BUG(): a programmer error (a broken invariant, never bad input): logs
 * file:line and the message, then aborts.
 */
#ifndef SEMCACHE_SEMLOG_H
#define SEMCACHE_SEMLOG_H

enum semlog_level { SEMLOG_ERR, SEMLOG_WARN, SEMLOG_INFO, SEMLOG_DEBUG };

void semlog_set_level(enum semlog_level max);
/* 0 or -errno. The file is opened for appending, mode 0600. */
int semlog_open_file(const char *path);
void semlog(enum semlog_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

_Noreturn void semlog_bug(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define BUG(...) semlog_bug(__FILE__, __LINE__, __VA_ARGS__)

#endif
