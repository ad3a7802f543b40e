/*
 * startup.h - the steps of starting the daemon that can fail or wait
 * before the mount exists: the /dev/fuse check, opening the cache (waiting
 * for a store another daemon is still releasing), and keeping the log of
 * a background start off the terminal.
 *
 * Invariants: startup_check_fuse_dev() touches nothing but /dev/fuse, so
 * main() calls it before any store is created. Single-threaded (main()
 * before the FUSE loop starts).
 */
#ifndef SEMCACHE_STARTUP_H
#define SEMCACHE_STARTUP_H

#include <stdbool.h>
#include <stddef.h>

#include "cache.h"

/* 0 when this process can open /dev/fuse read-write; else -errno with
 * what to do in err (the group, the device's mode, modprobe fuse). */
int startup_check_fuse_dev(char *err, size_t errlen);

/*
 * cache_open(), waiting up to wait_s seconds while the store is locked by
 * another semcachefs (one that is still shutting down after an unmount
 * keeps it for a moment). Says once that it waits: on stderr when
 * on_terminal (a background start, whose log is not the terminal), and in
 * the log. Returns cache_open's result (-EBUSY after the wait).
 */
int startup_cache_open(const struct cache_options *co, int wait_s, bool on_terminal,
		       struct cache **out, char *err, size_t errlen);

/*
 * A background start logs into memory until the log file is known:
 * startup_log_hold() begins (0 or -errno; on failure the log stays on
 * stderr), startup_log_release(path) appends what was held to the file
 * at path and makes it the log, and copies the held warnings and errors
 * to stderr; path NULL (the start failed) copies only those. No-op when
 * nothing is held.
 */
int startup_log_hold(void);
int startup_log_release(const char *path);

#endif
