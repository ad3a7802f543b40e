/*
 * nullfs.c - a do-nothing FUSE file system: the round-trip floor of a lookup.
 *
 * semcache_bench runs the same file sequences against it as against
 * semcachefs, so that (mount time) - (nullfs time) - (in-process engine
 * time) is what the semcachefs FUSE layer itself costs. To be a fair floor
 * it is mounted exactly like semcachefs: libfuse3 high-level API,
 * multi-threaded loop, entry/attr/negative timeouts 0, hard_remove,
 * default_permissions, atomic O_TRUNC, direct_io on every file; and it
 * answers the requests the kernel sends for the sequences (lookup via
 * getattr, create, open, write, read, flush, release, truncate, getxattr,
 * fsync) so
 * that the kernel sends the same requests it sends to semcachefs.
 *
 * Every name exists: one without a dot is a directory (a category), any
 * other is an empty regular file. A read of
 * NAME.response returns nothing (a miss has no answer); a read of any other
 * file returns the fixed 5 bytes "miss\n" (the status line, or the fast
 * path's answer on NAME.query). Writes are accepted and dropped.
 *
 * /.stats returns "fuse_requests: N" plus one "OP: N" line per request kind
 * (the same counter semcachefs has), so the benchmark can count the requests
 * each step of a sequence costs.
 *
 *   nullfs [FUSE options] MOUNTPOINT      (semcache_bench uses -f)
 *
 * Not part of the test suite; not a product file system.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum op { OP_GETATTR, OP_CREATE, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH,
	  OP_RELEASE, OP_TRUNCATE, OP_GETXATTR, OP_FSYNC, OP_OTHER, OP_N };

static const char *const op_name[OP_N] = {
	"getattr", "create", "open", "read", "write", "flush", "release",
	"truncate", "getxattr", "fsync", "other",
};

static _Atomic uint64_t counts[OP_N];
static _Atomic uint64_t total;

static void count(enum op o)
{
	counts[o]++;
	total++;
}

static bool is_stats(const char *path)
{
	return !strcmp(path, "/.stats");
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static int nf_getattr(const char *path, struct stat *s, struct fuse_file_info *fi)
{
	count(OP_GETATTR);
	memset(s, 0, sizeof(*s));
	s->st_uid = getuid();
	s->st_gid = getgid();
	s->st_nlink = 1;
	/* the root and names without a dot ("/bench") are directories */
	if (!strcmp(path, "/") || !strchr(strrchr(path, '/'), '.')) {
		s->st_mode = S_IFDIR | 0755;
		s->st_nlink = 2;
		return 0;
	}
	s->st_mode = S_IFREG | (is_stats(path) ? 0444 : 0644);
	return 0;
}

/* The .stats text is taken at open (as semcachefs does) into the handle. */
static int open_common(const char *path, struct fuse_file_info *fi)
{
	fi->direct_io = 1;
	fi->fh = 0;
	if (is_stats(path)) {
		char *text = NULL, *more;
		uint64_t t = total;

		if (asprintf(&text, "fuse_requests: %" PRIu64 "\n", t) < 0)
			return -ENOMEM;
		for (int i = 0; i < OP_N; i++) {
			if (asprintf(&more, "%s%s: %" PRIu64 "\n", text, op_name[i],
				     (uint64_t)counts[i]) < 0) {
				free(text);
				return -ENOMEM;
			}
			free(text);
			text = more;
		}
		fi->fh = (uintptr_t)text;
	}
	return 0;
}

static int nf_open(const char *path, struct fuse_file_info *fi)
{
	count(OP_OPEN);
	return open_common(path, fi);
}

static int nf_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	count(OP_CREATE);
	return open_common(path, fi);
}

static int nf_read(const char *path, char *out, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	const char *src = fi->fh ? (const char *)(uintptr_t)fi->fh :
			  ends_with(path, ".response") ? "" : "miss\n";
	size_t len = strlen(src), n;

	count(OP_READ);
	n = (size_t)off >= len ? 0 : len - off;
	if (n > size)
		n = size;
	memcpy(out, src + off, n);
	return (int)n;
}

static int nf_write(const char *path, const char *data, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	count(OP_WRITE);
	return (int)size;
}

static int nf_flush(const char *path, struct fuse_file_info *fi)
{
	count(OP_FLUSH);
	return 0;
}

/* answered (not ENOSYS, after which the kernel stops sending fsync) */
static int nf_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	count(OP_FSYNC);
	return 0;
}

static int nf_release(const char *path, struct fuse_file_info *fi)
{
	count(OP_RELEASE);
	free((void *)(uintptr_t)fi->fh);
	return 0;
}

static int nf_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	count(OP_TRUNCATE);
	return 0;
}

static int nf_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	count(OP_GETXATTR);
	return -ENODATA;
}

static int nf_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	count(OP_OTHER);
	return 0;
}

static int nf_unlink(const char *path)
{
	count(OP_OTHER);
	return 0;
}

static int nf_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	count(OP_OTHER);
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	filler(buf, ".stats", NULL, 0, 0);
	return 0;
}

static void *nf_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->hard_remove = 1;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 0;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	return NULL;
}

static const struct fuse_operations nullfs_ops = {
	.init = nf_init,
	.getattr = nf_getattr,
	.open = nf_open,
	.create = nf_create,
	.read = nf_read,
	.write = nf_write,
	.flush = nf_flush,
	.release = nf_release,
	.fsync = nf_fsync,
	.truncate = nf_truncate,
	.getxattr = nf_getxattr,
	.utimens = nf_utimens,
	.unlink = nf_unlink,
	.readdir = nf_readdir,
};

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	int rc;

	for (int i = 0; i < argc; i++)
		if (fuse_opt_add_arg(&args, argv[i]) != 0)
			return 2;
	/* semcachefs always adds it; the kernel then checks modes itself */
	if (fuse_opt_add_arg(&args, "-odefault_permissions") != 0)
		return 2;
	rc = fuse_main(args.argc, args.argv, &nullfs_ops, NULL);
	fuse_opt_free_args(&args);
	return rc;
}
