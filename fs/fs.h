/*
 * fs.h - what the FUSE operations share with main(): the daemon's state.
 */
#ifndef SEMCACHE_FS_H
#define SEMCACHE_FS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"

struct fs_state {
	struct cache *cache;
	const char *store_dir;     /* local state directory */
	int64_t session_ttl_ms;    /* idle session/scratch files are removed */

	pthread_t gc;              /* session garbage collector */
	bool gc_started;
	pthread_mutex_t gc_mu;     /* guards gc_stop */
	pthread_cond_t gc_cv;
	bool gc_stop;
};

extern const struct fuse_operations semcache_ops;

#endif
