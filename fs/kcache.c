/*
 * kcache.c - tells the kernel to drop the attributes it caches of a file
 * the daemon changed by itself, before the request that changed it
 * replies.
 *
 * What the kernel caches (ops.c fs_init): attributes, for
 * FS_ATTR_TIMEOUT_S; never names: the entry and negative timeouts are
 * zero, so every step of a path walk asks the daemon again (LOOKUP), and
 * that answer also refreshes the attributes of the inode it reaches. The
 * cached attributes are therefore only ever used for inodes reached
 * without a lookup: the mount root, a working directory or a dirfd's
 * directory (their mode for the permission check, `stat .`), and an open
 * descriptor (fstat). Those must not be stale either, so when a request
 * changes a file other than the one it is on (a lookup rewrites
 * NAME.status and NAME.response, a fill or a purge changes the category's
 * byte count), its handler drops those inodes' attributes here, before it
 * replies: the caller's next stat asks the daemon.
 *
 * How: fuse_invalidate_path() (libfuse's high-level API; a
 * FUSE_NOTIFY_INVAL_INODE for the inode of that path, if the kernel was
 * told of it; -ENOENT otherwise, which is not an error). With no
 * writeback cache (every file is direct_io, none is mmapped shared) that
 * notice never blocks and takes no inode lock, so it is safe inside a
 * handler; even so it is never sent for the inode whose read or write is
 * being served (libfuse documents those as related operations).
 *
 * Not here: names. The high-level API can drop an inode's attributes by
 * path, not a dentry (that needs the parent's node id, which libfuse
 * keeps to itself), so a positive entry timeout would let the kernel keep
 * a name the daemon removed (an idle session collected, an entry evicted,
 * a category removed on another host) and answer an open(O_CREAT) of it
 * with ENOENT.
 *
 * Changes the engine makes without a request of this mount (another
 * host's fills, deletes, chmod, policy or removal of a category, a
 * resync, TTL expiry, evictions by the maintenance thread) arrive through
 * the engine's changed hook (cache_options.changed) on the engine's own
 * threads: fs_kcache_changed() drops that category's attributes (and a
 * removed one's reserved files') through the mount's struct fuse, kept
 * here from init until the FUSE loop ends (main.c; libfuse's fuse_destroy
 * frees its node table before it calls destroy) under kfuse_lock. Such a notice from a
 * thread that serves no request is what libfuse documents as always safe.
 * The kernel may still show the old attributes between the change in the
 * store and the watcher's reading of it (milliseconds).
 *
 * Lock order: kfuse_lock is a leaf (only libfuse's own lock is taken
 * under it, inside fuse_invalidate_path); requests never take it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fs_i.h"

static pthread_rwlock_t kfuse_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct fuse *kfuse; /* kfuse_lock: the mount's, init to destroy */

void fs_kcache_start(struct fuse *f)
{
	pthread_rwlock_wrlock(&kfuse_lock);
	kfuse = f;
	pthread_rwlock_unlock(&kfuse_lock);
}

void fs_kcache_stop(void)
{
	pthread_rwlock_wrlock(&kfuse_lock);
	kfuse = NULL;
	pthread_rwlock_unlock(&kfuse_lock);
}

static void invalidate(struct fuse *f, const char *path)
{
	int rc = fuse_invalidate_path(f, path);

	if (rc && rc != -ENOENT) /* ENOENT: the kernel caches nothing of it */
		fs_warn("cannot tell the kernel that '%s' changed: %s (its "
			"attributes may lag for %g s)", path, strerror(-rc),
			FS_ATTR_TIMEOUT_S);
}

void fs_kcache_path(const char *path)
{
	struct fuse_context *ctx = fuse_get_context();

	if (ctx && ctx->fuse) {
		invalidate(ctx->fuse, path); /* a request's thread */
		return;
	}
	pthread_rwlock_rdlock(&kfuse_lock);
	if (kfuse)
		invalidate(kfuse, path);
	pthread_rwlock_unlock(&kfuse_lock);
}

/* path = dir + "/" + name + suffix, or -ENAMETOOLONG. */
static int join(char *out, size_t size, const char *dir, const char *name,
		const char *suffix)
{
	int n = snprintf(out, size, "%s/%s%s", strcmp(dir, "/") ? dir : "", name,
			 suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

void fs_kcache_session(const char *dir, const char *name, enum sfile except)
{
	char path[4096 + 256 + 16];

	for (int sf = 0; sf < SF_N; sf++)
		if (sf != (int)except &&
		    !join(path, sizeof(path), dir, name, fs_session_files[sf].suffix))
			fs_kcache_path(path);
}

void fs_kcache_removed(const char *dir)
{
	char path[4096 + 256 + 2];

	for (size_t i = 0; i < fs_reserved_n; i++)
		if (!join(path, sizeof(path), dir, fs_reserved[i].name, ""))
			fs_kcache_path(path);
}

void fs_kcache_entry(const char *dir, int64_t id)
{
	char name[64], path[4096 + 64 + 16];

	snprintf(name, sizeof(name), "entries/%" PRId64, id);
	if (!join(path, sizeof(path), dir, name, ""))
		fs_kcache_path(path);
	for (int p = 0; p < 4; p++) {
		snprintf(name, sizeof(name), "entries/%" PRId64 "/%s", id,
			 fs_entry_part_name[p]);
		if (!join(path, sizeof(path), dir, name, ""))
			fs_kcache_path(path);
	}
}

void fs_kcache_category(const char *dir)
{
	char path[4096 + 16];

	fs_kcache_path(dir);
	if (!join(path, sizeof(path), dir, "entries", ""))
		fs_kcache_path(path);
}

void fs_kcache_changed(void *arg, const char *path, bool removed)
{
	char parent[4096];
	const char *slash = strrchr(path, '/');

	(void)arg;
	fs_kcache_category(path);
	fs_kcache_removed(path); /* .policy, .stats, ...: sizes and modes */
	if (removed && slash && slash != path &&
	    (size_t)(slash - path) < sizeof(parent)) {
		memcpy(parent, path, (size_t)(slash - path));
		parent[slash - path] = '\0';
		fs_kcache_path(parent);
	} else if (removed) {
		fs_kcache_path("/");
	}
}
