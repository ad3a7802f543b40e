/*
 * fs.h - what the FUSE operations share with main(): the daemon's state.
 */
#ifndef SEMCACHE_FS_H
#define SEMCACHE_FS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache.h"

struct fs_state {
	struct cache *cache;
	const char *store_dir;     /* local state directory */
	int64_t session_ttl_ms;    /* idle session/scratch files are removed */
	uid_t owner_uid;           /* who mounted: trusted like root */
	gid_t owner_gid;

	pthread_t gc;              /* session garbage collector */
	bool gc_started;
	pthread_mutex_t gc_mu;     /* guards gc_stop */
	pthread_cond_t gc_cv;
	bool gc_stop;
};

extern const struct fuse_operations semcache_ops;

#endif
