/*
 * fs_i.h - what the files of fs/ share (private to fs/, like libfuse's
 * fuse_i.h): the views a path resolves to, open-file handles, limits, and
 * the helpers one file of the folder offers the others.
 *
 * The folder, one job a file:
 *   names.c     the reserved-name table, name validation, path
 *               resolution into views, the text of generated files
 *   attr.c      getattr, chmod/chown/utimens, statfs
 *   dir.c       readdir, mkdir, rmdir
 *   io.c        open/create, read, write, flush, fsync, release (handles)
 *   protocol.c  the query protocol: lookup, fast path, fill, feedback,
 *               session file content, NAME.neighbors and the status line
 *   editor.c    truncate, unlink, rename: editors saving policy.yaml
 *               through scratch files
 *   hold.c      a rename of policy.yaml away, held back while an editor
 *               saves (the policy stays in force)
 *   xattr.c     user.semcache.* extended attributes
 *   ops.c       the fuse_operations table, init/destroy, idle-file GC
 *   guard.c     requests answered before libfuse sees them (a rename of
 *               a name onto itself, on which libfuse would hang)
 *   kcache.c    dropping the kernel's cached attributes of files the
 *               daemon changed by itself
 *   node.c      the in-memory session/scratch file table (node.h)
 *   quota.c     the byte caps of scratch files, per mount and per user
 *   buf.c       growable byte buffers (buf.h)
 *
 * Locks, in the order they are taken:
 *   handle.lock -> table.lock -> node.lock -> quota.lock
 *   hold.lock (hold.c) is a leaf: nothing else is taken under it
 * handle.lock (struct fs_handle) serialises the requests on one open file
 * (a pread beside a pwrite or a close of a duplicate): it is held across
 * that descriptor's own lookup or fill, and no request on another
 * descriptor ever takes it. table.lock and node.lock (node.h) and
 * quota.lock (quota.c) are only held for short copies: a node's lock is
 * never held across an engine call that may be slow (embedding, a fill's
 * fsync, feedback): the protocol copies under it, calls the engine
 * without it, re-takes it and re-checks the node's generation.
 *
 * Stale descriptors: with hard_remove, libfuse passes path NULL (and the
 * handle) for an open file that was unlinked or whose category was
 * removed. Operations with a handle answer from it (getattr, truncate,
 * chmod, read, write, flush, fsync, release work on the file as it was),
 * except that a session file's descriptor commits nothing once its file
 * was unlinked (-ESTALE: the session goes on without it, node.file_gen);
 * fs_resolve(NULL) is -ESTALE for the rest. Requests the kernel sends
 * without a handle for such a file (fstat, fchmod, futimens, fgetxattr)
 * are answered ESTALE by libfuse itself.
 *
 * Identity: commits (flush, fsync, release) act as the uid that opened the
 * descriptor (struct fs_handle.who), as permissions are checked at open;
 * a release request carries no caller (the kernel sends uid 0).
 *
 * Not here: anything of the engine or policies (index/, policy/): fs/
 * calls cache.h and nothing below it.
 */
#ifndef SEMCACHE_FS_I_H
#define SEMCACHE_FS_I_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif

#include <fuse.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "buf.h"
#include "cache.h"
#include "fs.h"
#include "node.h"

#define FS_NAME_MAX_BYTES 200          /* longest file or category name */
#define FS_SCRATCH_MAX_BYTES (1 << 20) /* a scratch file, a policy.yaml */
#define FS_CONTEXT_MAX_BYTES (1 << 20) /* NAME.context, NAME.feedback */
#define FS_PURGE_MAX_BYTES 64          /* what a write of .purge may reach */
#define FS_LOAD_MAX_BYTES 64           /* a .load/MODEL report */
#define FS_MAX_DEPTH 32                /* deepest category ("/a" is 1) */
#define FS_DEPTH_ERRNO EMLINK          /* mkdir below FS_MAX_DEPTH */
#define FS_LOAD_PATH "/.load"          /* the root's directory of loads */
#define FS_ATTR_TIMEOUT_S 1.0          /* the kernel caches attributes (kcache.c) */

/* What a path is (fs_resolve()); says nothing of whether it exists. */
enum fs_kind {
	FS_NONE,
	FS_DIR,
	FS_SESSION,      /* sfile says which */
	FS_POLICY,       /* policy.yaml */
	FS_VIEW_POLICY,  /* .policy */
	FS_VIEW_STATS,   /* .stats */
	FS_VIEW_ERRORS,  /* .errors */
	FS_VIEW_METRICS, /* .metrics (root only) */
	FS_PURGE,        /* .purge: writing it removes every entry */
	FS_SCRATCH,
	FS_ENTRIES,      /* CATEGORY/entries */
	FS_ENTRY,        /* CATEGORY/entries/ID */
	FS_ENTRY_FILE,   /* CATEGORY/entries/ID/{query,response,context,meta} */
	FS_LOAD_DIR,     /* /.load */
	FS_LOAD_FILE,    /* /.load/MODEL: its utilisation, 0..1 */
};

/*
 * The reserved names of a category, one row a name (names.c, in listing
 * order). Path resolution, readdir, mkdir's refusal, getattr's modes,
 * open's refusals, unlink, and README.md's file table and list of
 * reserved names (tests/30-bad-input.bats compares that list with the
 * mount) all follow it: a new reserved file is a new row. A root_only name exists only in the mount
 * root; elsewhere it is a scratch file name, yet still no category name.
 * Who may write: the write bits of mode. A row without write bits is
 * never opened for writing, one without read bits never read-only (even
 * by root); the kernel checks the rest against the shown owner: the
 * category's, or the mount owner's for a mount_owner row.
 */
struct fs_reserved {
	const char *name;
	enum fs_kind kind;
	bool root_only;
	bool if_present;     /* listed only when it exists (policy.yaml) */
	mode_t mode;         /* S_IFDIR or S_IFREG | permission bits */
	bool category_mode;  /* the bits shown are masked by the category's */
	bool mount_owner;    /* owned by the mount owner, not the category's */
	/* What it shows: its text, malloc'd (mtime set by those that have
	 * one); NULL for a directory. */
	int (*text)(const char *dir, char **text, size_t *len, int64_t *mtime);
};
extern const struct fs_reserved fs_reserved[];
extern const size_t fs_reserved_n;

/* The files of a session: NAME + suffix, with their permission bits (the
 * owner is the session's creator; writing one without write bits is
 * EACCES). */
struct fs_session_file {
	const char *suffix;
	mode_t mode;
};
extern const struct fs_session_file fs_session_files[SF_N];

/* The files of CATEGORY/entries/ID, by enum cache_entry_part. */
extern const char *const fs_entry_part_name[4];

/* A resolved path. */
struct fs_path {
	enum fs_kind kind;
	const struct fs_reserved *res; /* its row, for a reserved name */
	enum sfile sf;
	char dir[4096];          /* category path */
	char name[256];          /* base name (NAME for sessions) */
	int64_t entry;           /* FS_ENTRY, FS_ENTRY_FILE */
	enum cache_entry_part part;
};

/* An open file (fuse_file_info.fh). Owned by the descriptor: created in
 * open/create, freed in release. The fields set at open (kind to who) never
 * change; the others are guarded by lock. */
struct fs_handle {
	enum fs_kind kind;
	enum sfile sf;
	const struct fs_reserved *res; /* its row, for a reserved name */
	struct node *node;       /* session or scratch, referenced */
	struct node *pending;    /* policy.yaml being created, referenced */
	char dir[4096];          /* category; the model name for FS_LOAD_FILE */
	char name[256];          /* session: NAME, for log lines */
	bool writable;
	int64_t limit;           /* max bytes a write may reach (never 0) */
	struct cache_caller who; /* who opened it: commits act as them */
	unsigned file_gen;       /* session: node.file_gen[sf] at open */

	pthread_mutex_t lock;    /* guards what follows */
	bool dirty;              /* written or truncated since the last flush */
	int failed;              /* a write failed (-errno): never commit */
	bool written;            /* write() was called on this handle */
	struct buf answer;       /* fast path: status line + response */
	bool answered;
	int answer_rc;           /* fast path: the refused lookup's -errno */
	struct buf data;         /* write buffer, or read snapshot */
	/* NAME.response: the lookup (node.result_gen) the answer being
	 * written is for, bound at open and by every write at offset 0; and
	 * the one this descriptor last stored an answer for (stored). */
	unsigned fill_gen;
	unsigned stored_gen;
	bool stored;
	bool read_once;          /* a view: read since open (see do_read) */
};

/* hold.c: a rename of policy.yaml away, held back while an editor saves.
 * begin: hide dir's policy.yaml (the install stamped stamp, its text)
 * and remove it later as who unless something else ends the hold;
 * -EAGAIN when too many are held (remove it at once). hides: is the
 * install stamped stamp hidden? restore: text is the held one renamed
 * back: the hold ends with nothing to install. */
int fs_hold_begin(const char *dir, const char *text, size_t len, int64_t stamp,
		  const struct cache_caller *who);
bool fs_hold_hides(const char *dir, int64_t stamp);
bool fs_hold_restore(const char *dir, const char *text, size_t len, int64_t stamp);
int fs_hold_start(struct cache *c);
void fs_hold_stop(void);

/* Count one FUSE request served (at the start of every operation), and
 * the count so far (a benchmark divides it by lookups); ops.c. Per-thread
 * stripes: no shared cache line, no lock. */
void fs_count_request(void);
uint64_t fs_requests_total(void);

/* Who is asking: the caller of the FUSE request being served. */
static inline struct cache_caller *fs_caller(void)
{
	static _Thread_local struct cache_caller who;
	struct fuse_context *ctx = fuse_get_context();

	who.uid = ctx->uid;
	who.gid = ctx->gid;
	return &who;
}

static inline struct fs_state *fs_st(void)
{
	return fuse_get_context()->private_data;
}

/* Root and the mount owner (cache.h "Trust"). */
static inline bool fs_trusted(uid_t uid)
{
	return uid == 0 || uid == fs_st()->owner_uid;
}

static inline struct fs_handle *fs_handle(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* ---- names.c ---- */

/* A name a client may create: 1..FS_NAME_MAX_BYTES bytes, no control
 * characters, not "." or "..". */
bool fs_name_ok(const char *name);
/* A model name under .load/: letters, digits, '.', '_', '-'. */
bool fs_load_name_ok(const char *name);
/* A reserved name (of any row, or NAME.query and the like): never a
 * category. */
bool fs_reserved_name(const char *name);
/* The st_mode of a reserved name in a category of mode category_mode. */
mode_t fs_reserved_mode(const struct fs_reserved *r, mode_t category_mode);
/* Split path into parent directory and base name; -ENAMETOOLONG. */
int fs_split(const char *path, char *dir, size_t dsize, char *base,
	     size_t bsize);
/* Resolve path: a category (FS_DIR), or a kind of file inside an
 * existing category. -ENOENT when the parent is not a category,
 * -ENAMETOOLONG; -ESTALE for NULL (a file gone while open). */
int fs_resolve(const char *path, struct fs_path *fp);
/* The text of a generated file (a view, policy.yaml, an entry's part) into
 * out (its old content freed); mtime, if given, set for policy.yaml. */
int fs_view_text(const struct fs_path *fp, struct buf *out, int64_t *mtime);
/* The same for a reserved row's text in category dir (-EINVAL for a row
 * without one): what a held view renders again at a read from 0. */
int fs_res_text(const struct fs_reserved *res, const char *dir, struct buf *out,
		int64_t *mtime);
/* Is file name of dir being created (open since create(), not yet
 * closed)? Such a file (policy.yaml, .load/MODEL) exists meanwhile. */
bool fs_pending(const char *dir, const char *name);
/* May uid write or remove policy.yaml of category dir (its owner or a
 * trusted uid)? 0, -EACCES, -ENOENT. The engine checks the same when the
 * policy is installed; this answers at open, before anything is written. */
int fs_may_set_policy(const char *dir, uid_t uid);

/* ---- protocol.c ---- */

/* A session file's content / size. Called with n->lock held. */
int fs_session_content(struct node *n, enum sfile sf, struct buf *out);
size_t fs_session_size(struct node *n, enum sfile sf);
/* Build NAME.neighbors for n's current lookup if it is not yet (store
 * reads without n->lock). n->lock not held. */
void fs_neighbors_prepare(struct node *n, const char *dir);
/* The fast path: the first read of a written NAME.query handle. h->lock
 * held; n->lock not. */
int fs_fast_answer(struct fs_handle *h);
/* Wait for a coalesced miss's fill. Called with n->lock held (dropped
 * while waiting). */
void fs_wait_pending(struct node *n, const char *dir);
/*
 * A write to a NAME.query or NAME.response handle (its own buffer). A
 * write at offset 0 starts new content (a persistent descriptor's next
 * query or answer; a NAME.response write at 0 also binds the answer to
 * the session's last lookup); a write at a higher offset continues it (the
 * kernel splits large writes) and one past its end is -EINVAL: a content
 * with a hole is refused until the next write at 0. ftruncate to 0 starts
 * new content too (an empty one: a write of nothing sends no request).
 * h->lock held; n->lock not.
 */
int fs_session_write(struct fs_handle *h, const char *data, size_t size,
		     off_t off);
/* fsync of a NAME.response handle with nothing unstored: 0 if this
 * descriptor's last stored answer is for the session's last lookup,
 * -ENODATA if it wrote none for it, -ESTALE if its file is gone. h->lock
 * held; n->lock not. */
int fs_fill_synced(struct fs_handle *h);
/* Commit what a session handle wrote (flush): lookup, fill, feedback or
 * context. h->lock held; n->lock not (taken and dropped around the
 * engine's calls). */
int fs_session_commit(struct fs_handle *h);
/* Field key ("status", "score", ...) of a status line; -ENODATA. */
int fs_status_field(const char *status, const char *key, char *out,
		    size_t size);

/* ---- editor.c ---- */

/* Write into / cut or zero-extend a scratch file's content, and touch its
 * mtime. Called with n->lock held. 0, -EFBIG (over FS_SCRATCH_MAX_BYTES),
 * -ENOSPC / -EDQUOT (over the mount's / the creator's scratch cap,
 * quota.h), -ENOMEM; the content is unchanged on error. */
int fs_scratch_write(struct node *n, const char *data, size_t size, off_t off);
int fs_scratch_truncate(struct node *n, size_t size);

/* ---- ops.c ---- */

/* A warning about a caller's request (a cap, a limit), rate-limited so
 * that a hostile writer cannot fill the log: at most a few lines a second,
 * then one saying how many were left out. */
void fs_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* secret.c: the Redis password named by -o redis_password_env (a variable)
 * or -o redis_password_file (a file of the user's, mode 0600 or
 * stricter) into out; "" when neither is given. 0 or a negative errno
 * with err saying why (never the password). */
int fs_redis_password(const char *env, const char *file, char *out, size_t len,
		      char *err, size_t errlen);

/* ---- kcache.c: called by a request's handler, before it replies, for
 * files other than the one being read or written (kcache.c says why) ---- */

/* Drop the kernel's cached attributes of path (if it has any). */
void fs_kcache_path(const char *path);
/* the mount's struct fuse for notices from threads that serve no request
 * (fs_init / fs_destroy) */
void fs_kcache_start(struct fuse *f);
void fs_kcache_stop(void);
/* cache_options.changed: the engine changed the category at path by
 * itself (another host, expiry, eviction); removed: it is gone */
void fs_kcache_changed(void *arg, const char *path, bool removed);
/* ... of session NAME's files of dir, all but except (SF_N: none). */
void fs_kcache_session(const char *dir, const char *name, enum sfile except);
/* ... of category dir and its entries/ (their size is its byte count). */
void fs_kcache_category(const char *dir);
/* ... of the reserved files of dir, a category just removed (an open
 * descriptor's fstat asks again, and learns it is gone). */
void fs_kcache_removed(const char *dir);
/* ... of dir's entries/ID and its files, an entry just removed. */
void fs_kcache_entry(const char *dir, int64_t id);

/* ---- guard.c ---- */

/* Read the session's requests through the guard; after fuse_mount(),
 * before the loop. 0 or -EIO. */
struct fuse_session;
int fs_guard_install(struct fuse_session *se);

/* ---- the FUSE operations (ops.c's table); fs_i.h's head says what a
 * NULL path means ---- */

int fs_getattr(const char *path, struct stat *s, struct fuse_file_info *fi);
int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi);
int fs_utimens(const char *path, const struct timespec tv[2],
	       struct fuse_file_info *fi);
int fs_statfs(const char *path, struct statvfs *sv);
int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
	       struct fuse_file_info *fi, enum fuse_readdir_flags flags);
int fs_mkdir(const char *path, mode_t mode);
int fs_rmdir(const char *path);
int fs_open(const char *path, struct fuse_file_info *fi);
int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_read(const char *path, char *out, size_t size, off_t off,
	    struct fuse_file_info *fi);
int fs_write(const char *path, const char *data, size_t size, off_t off,
	     struct fuse_file_info *fi);
int fs_flush(const char *path, struct fuse_file_info *fi);
int fs_release(const char *path, struct fuse_file_info *fi);
int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi);
int fs_unlink(const char *path);
int fs_rename(const char *from, const char *to, unsigned int flags);
int fs_getxattr(const char *path, const char *name, char *value, size_t size);
int fs_listxattr(const char *path, char *list, size_t size);
int fs_setxattr(const char *path, const char *name, const char *value,
		size_t size, int flags);

#endif
