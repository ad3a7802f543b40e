/*
 * ops.c - the FUSE surface: maps paths and file handles onto the engine.
 *
 * Every directory is a category. In a category:
 *   NAME.context, NAME.query   written by the client (context first)
 *   NAME.status, NAME.response the answer, ready when close() of NAME.query
 *                              returns (the lookup runs in flush); writing
 *                              NAME.response after a lookup is a fill,
 *                              durable when its close() returns 0
 *   policy.yaml                the directory's policy (validated at close)
 *   .policy .stats .errors     read-only views
 *   any other file name        an in-memory scratch file (editors' temp and
 *                              backup files); renaming one onto policy.yaml
 *                              installs it
 * Files whose content changes are opened with direct_io and all kernel
 * timeouts are zero, so nothing stale is ever shown.
 *
 * Not here: matching, storage and policy semantics (index/, policy/).
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <fuse.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs.h"
#include "semlog.h"
#include "clock.h"
#include "session.h"

#define NAME_MAX_BYTES 200
#define SCRATCH_MAX_BYTES (1 << 20)
#define CONTEXT_MAX_BYTES (1 << 20)

enum fkind {
	F_NONE,
	F_DIR,
	F_SESSION,      /* sfile says which */
	F_POLICY,       /* policy.yaml */
	F_VIEW_POLICY,  /* .policy */
	F_VIEW_STATS,   /* .stats */
	F_VIEW_ERRORS,  /* .errors */
	F_VIEW_METRICS, /* .metrics (root only) */
	F_PURGE,        /* .purge: writing it removes every entry */
	F_SCRATCH,
	F_ENTRIES,      /* CATEGORY/entries */
	F_ENTRY,        /* CATEGORY/entries/ID */
	F_ENTRY_FILE,   /* CATEGORY/entries/ID/{query,response,context,meta} */
	F_LOAD_DIR,     /* /.load */
	F_LOAD_FILE,    /* /.load/MODEL: its utilisation, 0..1 */
};

static const char *const entry_part_name[] = {
	[CACHE_PART_QUERY] = "query", [CACHE_PART_CONTEXT] = "context",
	[CACHE_PART_RESPONSE] = "response", [CACHE_PART_META] = "meta",
};

static const char *const sfile_suffix[SF_N] = {
	[SF_QUERY] = ".query", [SF_RESPONSE] = ".response",
	[SF_STATUS] = ".status", [SF_CONTEXT] = ".context",
	[SF_FEEDBACK] = ".feedback",
};

struct fpath {
	enum fkind kind;
	enum sfile sf;
	char dir[4096];          /* category path */
	char name[256];          /* base name (NAME for sessions) */
	int64_t entry;           /* F_ENTRY, F_ENTRY_FILE */
	enum cache_entry_part part;
};

struct handle {
	enum fkind kind;
	enum sfile sf;
	struct node *node;       /* session or scratch, referenced */
	struct node *pending;    /* policy.yaml being created, referenced */
	char dir[4096];
	bool writable;
	bool dirty;              /* written or truncated since the last flush */
	int failed;              /* a write failed (-errno): never commit */
	bool written;            /* write() was called on this handle */
	struct buf answer;       /* fast path: status line + response */
	bool answered;
	struct buf data;         /* write buffer, or read snapshot */
	int64_t limit;           /* max bytes a write may reach */
};

/* FUSE requests served (a benchmark divides it by lookups). */
static _Atomic uint64_t fuse_requests;

static struct fs_state *st(void)
{
	return fuse_get_context()->private_data;
}

/* ---- paths ---- */

static bool name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > NAME_MAX_BYTES)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return strcmp(name, ".") && strcmp(name, "..");
}

static bool is_reserved_dir_name(const char *name)
{
	static const char *const reserved[] = { "entries", "policy.yaml",
		".policy", ".stats", ".errors", ".metrics", ".load" };
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
		if (!strcmp(name, reserved[i]))
			return true;
	for (int i = 0; i < SF_N; i++) {
		size_t sl = strlen(sfile_suffix[i]);

		if (len >= sl && !strcmp(name + len - sl, sfile_suffix[i]))
			return true;
	}
	return false;
}

/* Split path into parent directory and base name. */
static int split(const char *path, char *dir, size_t dsize, char *base,
		 size_t bsize)
{
	const char *slash = strrchr(path, '/');
	size_t dl = slash == path ? 1 : (size_t)(slash - path);

	if (!slash || dl >= dsize || strlen(slash + 1) >= bsize)
		return -ENAMETOOLONG;
	memcpy(dir, path, dl);
	dir[dl] = '\0';
	strcpy(base, slash + 1);
	return 0;
}

/* Classify a name inside a category directory (not checking existence). */
static void classify_name(struct fpath *fp, const char *base)
{
	size_t len = strlen(base);

	snprintf(fp->name, sizeof(fp->name), "%s", base);
	if (!strcmp(base, "policy.yaml")) {
		fp->kind = F_POLICY;
		return;
	}
	if (!strcmp(base, ".policy")) {
		fp->kind = F_VIEW_POLICY;
		return;
	}
	if (!strcmp(base, ".stats")) {
		fp->kind = F_VIEW_STATS;
		return;
	}
	if (!strcmp(base, ".errors")) {
		fp->kind = F_VIEW_ERRORS;
		return;
	}
	if (!strcmp(base, ".metrics") && !strcmp(fp->dir, "/")) {
		fp->kind = F_VIEW_METRICS;
		return;
	}
	if (!strcmp(base, ".purge")) {
		fp->kind = F_PURGE;
		return;
	}
	if (!strcmp(base, "entries")) {
		fp->kind = F_ENTRIES;
		return;
	}
	for (int i = 0; i < SF_N; i++) {
		size_t sl = strlen(sfile_suffix[i]);

		if (len > sl && !strcmp(base + len - sl, sfile_suffix[i])) {
			fp->kind = F_SESSION;
			fp->sf = i;
			fp->name[len - sl] = '\0';
			return;
		}
	}
	fp->kind = F_SCRATCH;
}

/*
 * Resolve path: a category (F_DIR), or a file kind inside an existing
 * category. Returns -ENOENT when the parent is not a category.
 */
/* "ID" or "ID/PART" below CATEGORY/entries/ */
static int resolve_entry(const char *rest, struct fpath *fp)
{
	char *end;
	long long id;

	errno = 0;
	id = strtoll(rest, &end, 10);
	if (errno || id <= 0 || end == rest || (*end && *end != '/'))
		return -ENOENT;
	fp->entry = id;
	if (!*end) {
		fp->kind = F_ENTRY;
		return 0;
	}
	for (size_t i = 0; i < sizeof(entry_part_name) / sizeof(*entry_part_name); i++) {
		if (!strcmp(end + 1, entry_part_name[i])) {
			fp->kind = F_ENTRY_FILE;
			fp->part = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int resolve(const char *path, struct fpath *fp)
{
	char base[256];
	const char *ent;

	memset(fp, 0, sizeof(*fp));
	if (strlen(path) >= sizeof(fp->dir))
		return -ENAMETOOLONG;
	if (!strncmp(path, "/.load", 6) && (path[6] == '\0' || path[6] == '/')) {
		strcpy(fp->dir, "/.load");
		if (!path[6] || !path[7]) {
			fp->kind = F_LOAD_DIR;
			return 0;
		}
		if (strchr(path + 7, '/') || strlen(path + 7) >= sizeof(fp->name))
			return -ENOENT;
		fp->kind = F_LOAD_FILE;
		strcpy(fp->name, path + 7);
		return 0;
	}
	/* "entries" is never a category, so its first component is the one */
	for (ent = strstr(path, "/entries/"); ent; ent = strstr(ent + 1, "/entries/")) {
		size_t dl = ent == path ? 1 : (size_t)(ent - path);

		memcpy(fp->dir, path, dl);
		fp->dir[dl] = '\0';
		if (cache_category_stat(st()->cache, fp->dir, NULL) == 0)
			return resolve_entry(ent + strlen("/entries/"), fp);
	}
	if (cache_category_stat(st()->cache, path, NULL) == 0) {
		fp->kind = F_DIR;
		strcpy(fp->dir, path);
		return 0;
	}
	if (split(path, fp->dir, sizeof(fp->dir), base, sizeof(base)))
		return -ENAMETOOLONG;
	if (cache_category_stat(st()->cache, fp->dir, NULL))
		return -ENOENT;
	classify_name(fp, base);
	return 0;
}

/* ---- generated views ---- */

static int view_text(const struct fpath *fp, struct buf *out, int64_t *mtime)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	switch (fp->kind) {
	case F_VIEW_POLICY:
		rc = cache_policy_text(st()->cache, fp->dir, &text, &len);
		break;
	case F_VIEW_STATS:
		rc = cache_stats_text(st()->cache, fp->dir, &text, &len);
		if (!rc && !strcmp(fp->dir, "/")) {
			char *more = NULL;

			if (asprintf(&more, "%sfuse_requests: %" PRIu64 "\n", text,
				     (uint64_t)fuse_requests) < 0) {
				rc = -ENOMEM;
			} else {
				free(text);
				text = more;
				len = strlen(text);
			}
		}
		break;
	case F_VIEW_ERRORS:
		rc = cache_policy_errors(st()->cache, fp->dir, &text, &len);
		break;
	case F_VIEW_METRICS:
		rc = cache_metrics_text(st()->cache, &text, &len);
		break;
	case F_PURGE:
		text = strdup("");
		rc = text ? 0 : -ENOMEM;
		break;
	case F_ENTRY_FILE:
		rc = cache_entry_read(st()->cache, fp->dir, fp->entry, fp->part,
				      &text, &len);
		break;
	case F_POLICY:
		rc = cache_policy_get(st()->cache, fp->dir, &text, &len, mtime);
		break;
	default:
		return -EINVAL;
	}
	if (rc)
		return rc;
	free(out->data);
	out->data = text;
	out->len = out->cap = len;
	return 0;
}

/* Copy a session file's current content. Called with node->lock held. */
static int session_content(struct node *n, enum sfile sf, struct buf *out)
{
	switch (sf) {
	case SF_QUERY:
		return buf_set(out, n->query.data, n->query.len);
	case SF_CONTEXT:
		return buf_set(out, n->context.data, n->context.len);
	case SF_RESPONSE:
		return buf_set(out, n->response.data, n->response.len);
	case SF_STATUS:
		return buf_set(out, n->status, strlen(n->status));
	case SF_FEEDBACK:
		return buf_set(out, n->feedback.data, n->feedback.len);
	default:
		return -EINVAL;
	}
}

static size_t session_size(struct node *n, enum sfile sf)
{
	switch (sf) {
	case SF_QUERY:
		return n->query.len;
	case SF_CONTEXT:
		return n->context.len;
	case SF_RESPONSE:
		return n->response.len;
	case SF_FEEDBACK:
		return n->feedback.len;
	default:
		return strlen(n->status);
	}
}

static bool policy_pending(const char *dir)
{
	struct node *n = node_get(NODE_PENDING, dir, "policy.yaml", 0);

	if (n)
		node_put(n, false);
	return n != NULL;
}

/* ---- attributes ---- */

static void fill_times(struct stat *s, int64_t ms)
{
	s->st_mtim.tv_sec = ms / 1000;
	s->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	s->st_atim = s->st_mtim;
	s->st_ctim = s->st_mtim;
}

/* A model name is a file name under .load/: plain characters only. */
static bool load_name_ok(const char *name)
{
	if (!name[0] || strlen(name) > 100 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return false;
	return true;
}

static int load_getattr(const struct fpath *fp, struct stat *s)
{
	struct cache_cat_info ci;
	char *text = NULL;
	size_t len = 0;
	int rc = cache_category_stat(st()->cache, "/", &ci);

	if (rc)
		return rc;
	s->st_uid = ci.uid;
	s->st_gid = ci.gid;
	fill_times(s, clock_wall_ms());
	if (fp->kind == F_LOAD_DIR) {
		s->st_mode = S_IFDIR | 0755;
		s->st_nlink = 2;
		return 0;
	}
	s->st_mode = S_IFREG | 0644;
	s->st_nlink = 1;
	rc = cache_load_text(st()->cache, fp->name, &text, &len);
	if (rc == -ENOENT) {
		struct node *n = node_get(NODE_PENDING, "/.load", fp->name, 0);

		if (!n)
			return -ENOENT;
		node_put(n, false);
		return 0;
	}
	free(text);
	s->st_size = (off_t)len;
	return rc;
}

static int add_load_name(void *arg, const char *name);

static int fs_getattr(const char *path, struct stat *s, struct fuse_file_info *fi)
{
	fuse_requests++;
	struct cache_cat_info ci;
	struct fpath fp;
	struct node *n;
	struct buf b = { 0 };
	int64_t mtime;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	memset(s, 0, sizeof(*s));
	if (fp.kind == F_LOAD_DIR || fp.kind == F_LOAD_FILE)
		return load_getattr(&fp, s);
	if (fp.kind == F_DIR) {
		rc = cache_category_stat(st()->cache, fp.dir, &ci);
		if (rc)
			return rc;
		s->st_mode = S_IFDIR | ci.mode;
		s->st_nlink = 2;
		s->st_uid = ci.uid;
		s->st_gid = ci.gid;
		s->st_size = ci.bytes;
		s->st_blocks = (ci.bytes + 511) / 512;
		fill_times(s, ci.created_ms);
		return 0;
	}
	rc = cache_category_stat(st()->cache, fp.dir, &ci);
	if (rc)
		return rc;
	s->st_uid = ci.uid;
	s->st_gid = ci.gid;
	s->st_nlink = 1;
	fill_times(s, clock_wall_ms());
	switch (fp.kind) {
	case F_SESSION:
		n = node_get(NODE_SESSION, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		rc = n->present[fp.sf] ? 0 : -ENOENT;
		s->st_mode = S_IFREG | (fp.sf == SF_STATUS ? 0444 : 0644);
		s->st_size = session_size(n, fp.sf);
		s->st_blocks = (s->st_size + 511) / 512;
		s->st_uid = n->uid;
		s->st_gid = n->gid;
		fill_times(s, n->mtime_ms[fp.sf]);
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
		return rc;
	case F_SCRATCH:
		n = node_get(NODE_SCRATCH, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		s->st_mode = S_IFREG | n->mode;
		s->st_size = n->data.len;
		s->st_blocks = (s->st_size + 511) / 512;
		s->st_uid = n->uid;
		s->st_gid = n->gid;
		fill_times(s, n->mtime_scratch);
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
		return 0;
	case F_ENTRIES:
		s->st_mode = S_IFDIR | (ci.mode & 0555);
		s->st_nlink = 2;
		s->st_size = ci.bytes;
		fill_times(s, ci.created_ms);
		return 0;
	case F_ENTRY:
	case F_ENTRY_FILE: {
		struct cache_entry_info ei;

		rc = cache_entry_stat(st()->cache, fp.dir, fp.entry, &ei);
		if (rc)
			return rc;
		if (fp.kind == F_ENTRY) {
			s->st_mode = S_IFDIR | (ci.mode & 0555);
			s->st_nlink = 2;
			s->st_size = ei.bytes;
		} else {
			s->st_mode = S_IFREG | (ci.mode & 0444);
			switch (fp.part) {
			case CACHE_PART_QUERY:
				s->st_size = ei.query_len;
				break;
			case CACHE_PART_CONTEXT:
				if (!ei.context_len)
					return -ENOENT;
				s->st_size = ei.context_len;
				break;
			case CACHE_PART_RESPONSE:
				s->st_size = ei.bytes;
				break;
			case CACHE_PART_META:
				rc = view_text(&fp, &b, NULL);
				if (rc)
					return rc;
				s->st_size = b.len;
				buf_release(&b);
				break;
			}
			s->st_blocks = (s->st_size + 511) / 512;
		}
		/* mtime: when it was stored; atime: its last hit */
		fill_times(s, ei.created_ms);
		if (ei.last_hit_ms) {
			s->st_atim.tv_sec = ei.last_hit_ms / 1000;
			s->st_atim.tv_nsec = (ei.last_hit_ms % 1000) * 1000000;
		}
		return 0;
	}
	case F_PURGE:
		s->st_mode = S_IFREG | (ci.mode & 0200);
		return 0;
	case F_POLICY:
	case F_VIEW_POLICY:
	case F_VIEW_STATS:
	case F_VIEW_ERRORS:
	case F_VIEW_METRICS:
		mtime = clock_wall_ms();
		rc = view_text(&fp, &b, &mtime);
		if (rc == -ENOENT && fp.kind == F_POLICY && policy_pending(fp.dir))
			rc = 0;
		if (rc)
			return rc;
		fill_times(s, mtime);
		s->st_mode = S_IFREG | (fp.kind == F_POLICY ? 0644 : 0444);
		s->st_size = b.len;
		buf_release(&b);
		return 0;
	default:
		return -ENOENT;
	}
}

/* ---- directories ---- */

struct dirfill {
	void *buf;
	fuse_fill_dir_t filler;
};

static int add_child(void *arg, const char *name)
{
	struct dirfill *df = arg;

	df->filler(df->buf, name, NULL, 0, 0);
	return 0;
}

static int add_load_name(void *arg, const char *name)
{
	struct dirfill *df = arg;

	df->filler(df->buf, name, NULL, 0, 0);
	return 0;
}

static int add_entry(void *arg, int64_t id)
{
	struct dirfill *df = arg;
	char name[32];

	snprintf(name, sizeof(name), "%" PRId64, id);
	df->filler(df->buf, name, NULL, 0, 0);
	return 0;
}

static void add_node(void *arg, struct node *n)
{
	struct dirfill *df = arg;
	char name[300];

	if (n->kind == NODE_PENDING)
		return; /* listed as policy.yaml by the caller */
	if (n->kind == NODE_SCRATCH) {
		df->filler(df->buf, n->name, NULL, 0, 0);
		return;
	}
	/* present[] is read without n->lock: a listing is a snapshot anyway,
	 * and taking node locks under the table lock would invert the order. */
	for (int i = 0; i < SF_N; i++) {
		if (!n->present[i])
			continue;
		snprintf(name, sizeof(name), "%s%s", n->name, sfile_suffix[i]);
		df->filler(df->buf, name, NULL, 0, 0);
	}
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	fuse_requests++;
	struct dirfill df = { buf, filler };
	struct fpath fp;
	char *yaml;
	size_t len;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == F_LOAD_DIR) {
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		return cache_load_list(st()->cache, add_load_name, &df);
	}
	if (fp.kind == F_ENTRIES) {
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		return cache_entries_list(st()->cache, fp.dir, add_entry, &df);
	}
	if (fp.kind == F_ENTRY) {
		struct cache_entry_info ei;

		rc = cache_entry_stat(st()->cache, fp.dir, fp.entry, &ei);
		if (rc)
			return rc;
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		filler(buf, "query", NULL, 0, 0);
		if (ei.context_len)
			filler(buf, "context", NULL, 0, 0);
		filler(buf, "response", NULL, 0, 0);
		filler(buf, "meta", NULL, 0, 0);
		return 0;
	}
	if (fp.kind != F_DIR)
		return -ENOTDIR;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	filler(buf, "entries", NULL, 0, 0);
	filler(buf, ".purge", NULL, 0, 0);
	if (!strcmp(fp.dir, "/")) {
		filler(buf, ".metrics", NULL, 0, 0);
		filler(buf, ".load", NULL, 0, 0);
	}
	filler(buf, ".policy", NULL, 0, 0);
	filler(buf, ".stats", NULL, 0, 0);
	filler(buf, ".errors", NULL, 0, 0);
	if (cache_policy_get(st()->cache, fp.dir, &yaml, &len, NULL) == 0) {
		free(yaml);
		filler(buf, "policy.yaml", NULL, 0, 0);
	} else if (policy_pending(fp.dir)) {
		filler(buf, "policy.yaml", NULL, 0, 0);
	}
	rc = cache_category_children(st()->cache, fp.dir, add_child, &df);
	if (rc)
		return rc;
	node_foreach(fp.dir, add_node, &df);
	return 0;
}

static int fs_mkdir(const char *path, mode_t mode)
{
	fuse_requests++;
	struct fuse_context *fc = fuse_get_context();
	char dir[4096], base[256];
	struct node *n;

	if (split(path, dir, sizeof(dir), base, sizeof(base)))
		return -ENAMETOOLONG;
	if (!name_ok(base) || is_reserved_dir_name(base))
		return -EINVAL;
	if (cache_category_stat(st()->cache, dir, NULL))
		return -ENOENT;
	n = node_get(NODE_SCRATCH, dir, base, 0);
	if (n) {
		node_put(n, false);
		return -EEXIST;
	}
	return cache_category_create(st()->cache, path, mode & ~fc->umask & 07777,
				     fc->uid, fc->gid);
}

static int fs_rmdir(const char *path)
{
	fuse_requests++;
	struct fpath fp;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == F_ENTRY) /* rm -r CATEGORY/entries/ID: invalidate it */
		return cache_entry_remove(st()->cache, fp.dir, fp.entry);
	if (fp.kind == F_ENTRIES) {
		struct cache_cat_info ci;

		rc = cache_category_stat(st()->cache, fp.dir, &ci);
		return rc ? rc : (ci.entries ? -ENOTEMPTY : 0);
	}
	if (fp.kind != F_DIR)
		return -ENOTDIR;
	if (node_dir_busy(fp.dir))
		return -ENOTEMPTY;
	return cache_category_remove(st()->cache, fp.dir);
}

/* ---- opening files ---- */

static int64_t policy_limit(const char *dir, bool response)
{
	struct policy p;

	if (cache_policy(st()->cache, dir, &p))
		return 0;
	return response ? p.response_bytes : p.query_bytes;
}

static int open_session(struct fpath *fp, struct handle *h, int flags,
			bool create)
{
	bool wr = (flags & O_ACCMODE) != O_RDONLY;
	struct node *n;
	int rc = 0;

	if (wr && fp->sf == SF_STATUS)
		return -EACCES;
	if (wr && !name_ok(fp->name))
		return -EINVAL;
	n = node_get(NODE_SESSION, fp->dir, fp->name,
		     NODE_TOUCH | (wr && (fp->sf == SF_QUERY || fp->sf == SF_CONTEXT) ?
				   NODE_CREATE : 0));
	if (!n)
		return wr && fp->sf == SF_RESPONSE ? -ENOENT : (wr ? -ENOMEM : -ENOENT);
	pthread_mutex_lock(&n->lock);
	if ((fp->sf == SF_RESPONSE || fp->sf == SF_FEEDBACK) && wr && !n->looked_up)
		rc = -ENOENT; /* a fill or feedback needs a query looked up first */
	else if (!wr && !n->present[fp->sf])
		rc = -ENOENT;
	else if (!(flags & O_TRUNC))
		rc = session_content(n, fp->sf, &h->data);
	if (!rc && wr && (flags & O_TRUNC))
		h->dirty = true;
	if (!rc && wr && !n->present[fp->sf]) {
		/* the file exists from its creation on */
		bool fresh = true;

		for (int i = 0; i < SF_N; i++)
			fresh &= !n->present[i];
		if (fresh) {
			n->uid = fuse_get_context()->uid;
			n->gid = fuse_get_context()->gid;
		}
		n->present[fp->sf] = true;
		n->mtime_ms[fp->sf] = clock_wall_ms();
	}
	pthread_mutex_unlock(&n->lock);
	if (rc) {
		node_put(n, false);
		return rc;
	}
	if (wr) {
		if (fp->sf == SF_QUERY)
			h->limit = policy_limit(fp->dir, false);
		else if (fp->sf == SF_RESPONSE)
			h->limit = policy_limit(fp->dir, true);
		else
			h->limit = CONTEXT_MAX_BYTES;
	}
	h->node = n;
	(void)create;
	return 0;
}

static int open_scratch(struct fpath *fp, struct handle *h, int flags,
			bool create, mode_t mode)
{
	bool wr = (flags & O_ACCMODE) != O_RDONLY;
	struct node *n;

	if (create && !name_ok(fp->name))
		return -EINVAL;
	n = node_get(NODE_SCRATCH, fp->dir, fp->name,
		     NODE_TOUCH | (create ? NODE_CREATE : 0));
	if (!n)
		return create ? -ENOMEM : -ENOENT;
	pthread_mutex_lock(&n->lock);
	if (create && !n->mtime_scratch) {
		n->mode = mode & 0777;
		n->mtime_scratch = clock_wall_ms();
		n->uid = fuse_get_context()->uid;
		n->gid = fuse_get_context()->gid;
	}
	if (flags & O_TRUNC) {
		n->data.len = 0;
		n->mtime_scratch = clock_wall_ms();
	}
	pthread_mutex_unlock(&n->lock);
	h->node = n;
	h->limit = SCRATCH_MAX_BYTES;
	(void)wr;
	return 0;
}

static int do_open(const char *path, struct fuse_file_info *fi, bool create,
		   mode_t mode)
{
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct handle *h;
	struct fpath fp;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == F_DIR || fp.kind == F_ENTRIES || fp.kind == F_ENTRY ||
	    fp.kind == F_LOAD_DIR)
		return create ? -EEXIST : -EISDIR;
	if (fp.kind == F_LOAD_FILE && !load_name_ok(fp.name))
		return create ? -EINVAL : -ENOENT;
	if (fp.kind == F_PURGE && (fi->flags & O_ACCMODE) == O_RDONLY)
		return -EACCES;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->kind = fp.kind;
	h->sf = fp.sf;
	h->writable = wr;
	strcpy(h->dir, fp.dir);
	switch (fp.kind) {
	case F_SESSION:
		rc = open_session(&fp, h, fi->flags, create);
		fi->direct_io = 1;
		break;
	case F_SCRATCH:
		if (cache_category_stat(st()->cache, path, NULL) == 0) {
			rc = -EEXIST;
			break;
		}
		rc = open_scratch(&fp, h, fi->flags, create, mode);
		fi->direct_io = 1;
		break;
	case F_PURGE:
		h->dirty = (fi->flags & O_TRUNC) != 0;
		fi->direct_io = 1;
		break;
	case F_LOAD_FILE:
		strcpy(h->dir, fp.name); /* the model name */
		if (!wr) {
			char *text = NULL;
			size_t len = 0;

			rc = cache_load_text(st()->cache, fp.name, &text, &len);
			if (!rc) {
				h->data.data = text;
				h->data.len = h->data.cap = len;
			}
		} else if (create) {
			h->pending = node_get(NODE_PENDING, "/.load", fp.name,
					      NODE_CREATE | NODE_TOUCH);
			if (!h->pending)
				rc = -ENOMEM;
		}
		h->limit = 64;
		fi->direct_io = 1;
		break;
	case F_POLICY:
		if (!wr || !(fi->flags & O_TRUNC)) {
			rc = view_text(&fp, &h->data, NULL);
			if (rc == -ENOENT && (create || wr))
				rc = 0;
		}
		if (!rc && create) {
			h->pending = node_get(NODE_PENDING, fp.dir, "policy.yaml",
					      NODE_CREATE | NODE_TOUCH);
			if (!h->pending)
				rc = -ENOMEM;
		}
		if (wr && (fi->flags & O_TRUNC))
			h->dirty = true;
		h->limit = SCRATCH_MAX_BYTES;
		fi->direct_io = 1;
		break;
	default:
		if (wr) {
			rc = -EACCES;
			break;
		}
		rc = view_text(&fp, &h->data, NULL);
		fi->direct_io = 1;
		break;
	}
	if (rc) {
		buf_release(&h->data);
		free(h);
		return rc;
	}
	fi->fh = (uintptr_t)h;
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	fuse_requests++;
	return do_open(path, fi, false, 0);
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	fuse_requests++;
	return do_open(path, fi, true, mode);
}

/* ---- reading and writing ---- */

static int run_lookup(struct handle *h);
static void wait_pending(struct node *n, const char *dir);

/*
 * The fast path: a NAME.query opened read-write answers on the same
 * descriptor. The first read after a write runs the lookup and reads return
 * the status line, a newline, then the response bytes (from offset 0).
 */
static int fast_answer(struct handle *h)
{
	struct node *n = h->node;
	int rc;

	if (h->failed)
		return h->failed;
	if (!h->dirty)
		return 0;
	h->dirty = false;
	pthread_mutex_lock(&n->lock);
	rc = run_lookup(h);
	if (!rc)
		wait_pending(n, h->dir);
	if (!rc)
		rc = buf_set(&h->answer, n->status, strlen(n->status));
	if (!rc && n->response.len)
		rc = buf_write(&h->answer, n->response.data, n->response.len,
			       (off_t)h->answer.len);
	pthread_mutex_unlock(&n->lock);
	h->answered = !rc;
	return rc;
}

static int fs_read(const char *path, char *out, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	fuse_requests++;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct buf *src = &h->data;
	size_t n;

	if (h->kind == F_SESSION && h->sf == SF_QUERY && h->writable) {
		int rc = fast_answer(h);

		if (rc)
			return rc;
		if (h->answered)
			src = &h->answer;
	}

	if (h->kind == F_SCRATCH) {
		pthread_mutex_lock(&h->node->lock);
		src = &h->node->data;
	} else if (h->kind == F_SESSION && !h->writable) {
		/* read-only session handles read the live content */
		pthread_mutex_lock(&h->node->lock);
		if (h->sf == SF_RESPONSE && off == 0)
			wait_pending(h->node, h->dir);
		buf_release(&h->data);
		session_content(h->node, h->sf, &h->data);
		pthread_mutex_unlock(&h->node->lock);
	}
	n = (size_t)off >= src->len ? 0 : src->len - off;
	if (n > size)
		n = size;
	if (n)
		memcpy(out, src->data + off, n);
	if (h->kind == F_SCRATCH)
		pthread_mutex_unlock(&h->node->lock);
	return (int)n;
}

static int fs_write(const char *path, const char *data, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fuse_requests++;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc;

	if (!h->writable)
		return -EBADF;
	if (h->limit && (int64_t)(off + size) > h->limit) {
		h->failed = -EFBIG; /* a truncated query or answer is never used */
		return -EFBIG;
	}
	if (h->kind == F_SCRATCH) {
		pthread_mutex_lock(&h->node->lock);
		rc = buf_write(&h->node->data, data, size, off);
		h->node->mtime_scratch = clock_wall_ms();
		pthread_mutex_unlock(&h->node->lock);
	} else {
		rc = buf_write(&h->data, data, size, off);
		h->dirty = true;
		h->written = true;
	}
	return rc ? rc : (int)size;
}

static void set_status(struct node *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_status(struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(n->status, sizeof(n->status), fmt, ap);
	va_end(ap);
}

static void adopt_result(struct node *n);

/* The lookup of NAME.query: runs when its writer closes. node->lock held. */
static int run_lookup(struct handle *h)
{
	struct node *n = h->node;
	struct cache_query q = { h->data.data, h->data.len, NULL, 0 };
	struct cache_result r;
	int64_t now = clock_wall_ms();
	int rc;

	if (n->present[SF_CONTEXT]) {
		q.context = n->context.data;
		q.context_len = n->context.len;
	}
	rc = buf_set(&n->query, h->data.data, h->data.len);
	if (rc)
		return rc;
	cache_result_release(&n->result);
	n->looked_up = false;
	n->response.len = 0;
	n->present[SF_QUERY] = n->present[SF_STATUS] = n->present[SF_RESPONSE] = true;
	for (int i = SF_QUERY; i <= SF_STATUS; i++)
		n->mtime_ms[i] = now;
	n->gen++;
	rc = cache_lookup(st()->cache, h->dir, &q, &r);
	if (rc) {
		set_status(n, "error %s\n", rc == -EINVAL ? "empty query" :
			   rc == -EFBIG ? "query over limits.query_bytes" : strerror(-rc));
		return rc;
	}
	n->result = r;
	n->looked_up = true;
	adopt_result(n);
	return 0;
}

/* Show n->result in NAME.status and NAME.response. node->lock held. */
static void adopt_result(struct node *n)
{
	struct cache_result *r = &n->result;

	if (r->outcome == CACHE_HIT) {
		set_status(n, "hit score=%.3f entry=%" PRId64 " age=%" PRId64 " match=%s\n",
			   r->score, r->entry_id, r->age_s, r->exact ? "exact" : "semantic");
		/* hand the answer over without a copy */
		free(n->response.data);
		n->response.data = r->response;
		n->response.len = n->response.cap = r->response_len;
		r->response = NULL;
		r->response_len = 0;
	} else if (r->outcome == CACHE_PENDING) {
		set_status(n, "pending score=%.3f\n", r->score);
	} else if (r->note[0]) {
		set_status(n, "miss reason=%s\n", r->note);
	} else {
		set_status(n, "miss\n");
	}
	n->mtime_ms[SF_STATUS] = n->mtime_ms[SF_RESPONSE] = clock_wall_ms();
}

/*
 * Miss coalescing: if n's lookup is pending on another query's fill, wait
 * for it (without holding n->lock) and show the outcome. Concurrent readers
 * of the same session wait for the first one. node->lock held.
 */
static void wait_pending(struct node *n, const char *dir)
{
	while (n->waiting)
		pthread_cond_wait(&n->cv, &n->lock);
	if (!n->looked_up || n->result.outcome != CACHE_PENDING)
		return;
	struct cache_result r = n->result;
	unsigned gen = n->gen;

	memset(&n->result, 0, sizeof(n->result));
	n->waiting = true;
	pthread_mutex_unlock(&n->lock);
	cache_pending_wait(st()->cache, dir, &r);
	pthread_mutex_lock(&n->lock);
	n->waiting = false;
	pthread_cond_broadcast(&n->cv);
	if (gen != n->gen) { /* a new query replaced it meanwhile */
		cache_result_release(&r);
		return;
	}
	n->result = r;
	adopt_result(n);
}

/* The fill through NAME.response. node->lock held. */
static int run_fill(struct handle *h)
{
	struct node *n = h->node;
	struct cache_query q = { n->query.data, n->query.len, NULL, 0 };
	int64_t id = 0;
	bool stored;
	int rc;

	if (!n->looked_up)
		return -ENOENT;
	if (n->present[SF_CONTEXT]) {
		q.context = n->context.data;
		q.context_len = n->context.len;
	}
	rc = cache_fill(st()->cache, h->dir, &q, &n->result, h->data.data,
			h->data.len, &id, &stored);
	if (rc)
		return rc;
	rc = buf_set(&n->response, h->data.data, h->data.len);
	if (rc)
		return rc;
	n->mtime_ms[SF_RESPONSE] = n->mtime_ms[SF_STATUS] = clock_wall_ms();
	if (stored) {
		set_status(n, "stored entry=%" PRId64 "\n", id);
	} else {
		char note[160];

		cache_fill_note(st()->cache, h->dir, note, sizeof(note));
		set_status(n, "not-stored reason=%s\n", note[0] ? note : "policy");
	}
	return 0;
}

/* NAME.feedback: "wrong" after a hit invalidates the entry served and
 * counts a false hit. node->lock held. */
static int run_feedback(struct handle *h)
{
	struct node *n = h->node;
	char word[16];
	size_t len = h->data.len;
	const char *d = h->data.data ? h->data.data : "";
	int rc;

	while (len && (d[len - 1] == '\n' || d[len - 1] == ' ' || d[len - 1] == '\r'))
		len--;
	if (len >= sizeof(word))
		return -EINVAL;
	memcpy(word, d, len);
	word[len] = '\0';
	if (strcmp(word, "wrong"))
		return -EINVAL; /* the only verdict there is */
	if (!n->looked_up || n->result.outcome != CACHE_HIT || !n->result.entry_id)
		return -ENOENT; /* no hit to judge */
	rc = cache_feedback_wrong(st()->cache, h->dir, n->result.entry_id,
				  n->result.score);
	if (rc)
		return rc;
	rc = buf_set(&n->feedback, word, len);
	n->present[SF_FEEDBACK] = true;
	n->mtime_ms[SF_FEEDBACK] = clock_wall_ms();
	set_status(n, "miss reason=reported wrong (entry %" PRId64 " invalidated)\n",
		   n->result.entry_id);
	n->result.entry_id = 0;
	n->response.len = 0;
	return rc;
}

static int do_flush(struct fuse_file_info *fi);

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	fuse_requests++;
	return do_flush(fi);
}

/* Commit what a handle wrote: the lookup, fill, policy, ... (see above). */
static int do_flush(struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->node;
	int rc = 0;

	if (!h->writable)
		return 0;
	if (h->failed)
		return h->failed;
	if (!h->dirty)
		return 0;
	h->dirty = false;
	switch (h->kind) {
	case F_SESSION:
		pthread_mutex_lock(&n->lock);
		if (h->sf == SF_QUERY) {
			rc = run_lookup(h);
		} else if (h->sf == SF_RESPONSE) {
			rc = run_fill(h);
		} else if (h->sf == SF_FEEDBACK) {
			rc = run_feedback(h);
		} else if (h->sf == SF_CONTEXT) {
			rc = buf_set(&n->context, h->data.data, h->data.len);
			n->present[SF_CONTEXT] = true;
			n->mtime_ms[SF_CONTEXT] = clock_wall_ms();
		}
		pthread_mutex_unlock(&n->lock);
		break;
	case F_POLICY:
		/* A shell's `> policy.yaml` closes a duplicate descriptor before
		 * it writes: an unwritten truncation waits for release, so the
		 * policy never passes through an empty state. */
		if (!h->written) {
			h->dirty = true;
			break;
		}
		rc = cache_policy_put(st()->cache, h->dir,
				      h->data.data ? h->data.data : "", h->data.len);
		break;
	case F_LOAD_FILE: {
		char num[65], *end;
		double load;

		if (!h->written)
			break;
		memcpy(num, h->data.data, h->data.len);
		num[h->data.len] = '\0';
		errno = 0;
		load = strtod(num, &end);
		while (*end == ' ' || *end == '\n' || *end == '\t')
			end++;
		if (errno || end == num || *end)
			rc = -EINVAL;
		else
			rc = cache_load_report(st()->cache, h->dir, load);
		break;
	}
	case F_PURGE: {
		int64_t n = cache_purge(st()->cache, h->dir);

		rc = n < 0 ? (int)n : 0;
		break;
	}
	default:
		break;
	}
	return rc;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	fuse_requests++;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (h->kind == F_POLICY && h->writable && h->dirty && !h->written &&
	    !h->failed)
		cache_policy_put(st()->cache, h->dir, "", 0); /* truncated to empty */
	if (h->node)
		node_put(h->node, true);
	buf_release(&h->answer);
	if (h->pending) {
		node_unlink(h->pending);
		node_put(h->pending, false);
	}
	buf_release(&h->data);
	free(h);
	return 0;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	fuse_requests++;
	return do_flush(fi);
}

/* ---- changing files ---- */

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	fuse_requests++;
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct fpath fp;
	struct node *n;
	int rc;

	if (size < 0)
		return -EINVAL;
	if (h && h->writable && h->kind != F_SCRATCH) {
		h->dirty = true;
		if (h->limit && size > h->limit) {
			h->failed = -EFBIG;
			return -EFBIG;
		}
		return buf_truncate(&h->data, size);
	}
	rc = resolve(path, &fp);
	if (rc)
		return rc;
	switch (fp.kind) {
	case F_DIR:
		return -EISDIR;
	case F_SCRATCH:
		if (size > SCRATCH_MAX_BYTES)
			return -EFBIG;
		n = node_get(NODE_SCRATCH, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		rc = buf_truncate(&n->data, size);
		n->mtime_scratch = clock_wall_ms();
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
		return rc;
	case F_SESSION:
		if (fp.sf == SF_STATUS)
			return -EACCES;
		n = node_get(NODE_SESSION, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		/* the content changes when the writer that follows closes */
		node_put(n, false);
		return 0;
	case F_POLICY: {
		struct buf b = { 0 };

		rc = view_text(&fp, &b, NULL);
		if (rc == -ENOENT)
			rc = 0;
		if (!rc)
			rc = buf_truncate(&b, size);
		if (!rc)
			rc = cache_policy_put(st()->cache, fp.dir, b.data ? b.data : "", b.len);
		buf_release(&b);
		return rc;
	}
	default:
		return -EACCES;
	}
}

static int fs_unlink(const char *path)
{
	fuse_requests++;
	struct fpath fp;
	struct node *n;
	bool any = false;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	switch (fp.kind) {
	case F_DIR:
		return -EISDIR;
	case F_SESSION:
		n = node_get(NODE_SESSION, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		rc = n->present[fp.sf] ? 0 : -ENOENT;
		n->present[fp.sf] = false;
		if (fp.sf == SF_CONTEXT)
			n->context.len = 0;
		for (int i = 0; i < SF_N; i++)
			any |= n->present[i];
		pthread_mutex_unlock(&n->lock);
		if (!any)
			node_unlink(n);
		node_put(n, false);
		return rc;
	case F_SCRATCH:
		n = node_get(NODE_SCRATCH, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		node_unlink(n);
		node_put(n, false);
		return 0;
	case F_POLICY:
		return cache_policy_put(st()->cache, fp.dir, NULL, 0);
	case F_VIEW_POLICY:
	case F_VIEW_STATS:
	case F_VIEW_ERRORS:
	case F_VIEW_METRICS:
	case F_PURGE:
	case F_ENTRY_FILE:
		/* Views come back by themselves, and an entry goes with its
		 * directory (rmdir): succeeding lets `rm -r` walk a category. */
		return 0;
	default:
		return -EACCES;
	}
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	fuse_requests++;
	struct fpath a, b;
	struct node *n, *m;
	struct buf data = { 0 };
	int rc;

	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	rc = resolve(from, &a);
	if (rc)
		return rc;
	rc = resolve(to, &b);
	if (rc)
		return rc;
	if (a.kind == F_DIR || b.kind == F_DIR)
		return -EPERM; /* categories keep their path (indexes, policies) */
	if (strcmp(a.dir, b.dir))
		return -EXDEV;
	if (!name_ok(b.name))
		return -EINVAL;
	if (a.kind == F_SCRATCH && b.kind == F_POLICY) {
		/* an editor saving policy.yaml: validate, then install */
		n = node_get(NODE_SCRATCH, a.dir, a.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		rc = buf_set(&data, n->data.data, n->data.len);
		pthread_mutex_unlock(&n->lock);
		if (!rc)
			rc = cache_policy_put(st()->cache, a.dir, data.data ? data.data : "",
					      data.len);
		if (!rc)
			node_unlink(n);
		node_put(n, false);
		buf_release(&data);
		return rc;
	}
	if (a.kind == F_POLICY && b.kind == F_SCRATCH) {
		/* an editor keeping a backup of policy.yaml */
		rc = view_text(&a, &data, NULL);
		if (rc)
			return rc;
		m = node_get(NODE_SCRATCH, b.dir, b.name, NODE_CREATE | NODE_TOUCH);
		if (!m) {
			buf_release(&data);
			return -ENOMEM;
		}
		pthread_mutex_lock(&m->lock);
		rc = buf_set(&m->data, data.data, data.len);
		m->mode = 0644;
		m->mtime_scratch = clock_wall_ms();
		pthread_mutex_unlock(&m->lock);
		node_put(m, false);
		buf_release(&data);
		return rc ? rc : cache_policy_put(st()->cache, a.dir, NULL, 0);
	}
	if (a.kind == F_SCRATCH && b.kind == F_SCRATCH) {
		if (cache_category_stat(st()->cache, to, NULL) == 0)
			return -EISDIR;
		n = node_get(NODE_SCRATCH, a.dir, a.name, 0);
		if (!n)
			return -ENOENT;
		m = node_get(NODE_SCRATCH, b.dir, b.name, 0);
		if (m) {
			if (flags & RENAME_NOREPLACE) {
				node_put(m, false);
				node_put(n, false);
				return -EEXIST;
			}
			node_unlink(m);
			node_put(m, false);
		}
		rc = node_rename(n, b.name);
		node_put(n, false);
		return rc;
	}
	return -EPERM; /* session files and views are not renamed */
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	fuse_requests++;
	struct fpath fp;
	struct node *n;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == F_DIR)
		return cache_category_setattr(st()->cache, fp.dir, mode & 07777,
					      (uid_t)-1, (gid_t)-1);
	if (fp.kind == F_SCRATCH) {
		n = node_get(NODE_SCRATCH, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		n->mode = mode & 0777;
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
	}
	return 0; /* other files keep their fixed modes; editors need success */
}

static int fs_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	fuse_requests++;
	struct fpath fp;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == F_DIR)
		return cache_category_setattr(st()->cache, fp.dir, -1, uid, gid);
	return 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	fuse_requests++;
	struct fpath fp;

	return resolve(path, &fp);
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	fuse_requests++;
	if (statvfs(st()->store_dir, sv))
		return -errno;
	sv->f_namemax = NAME_MAX_BYTES;
	return 0;
}

/* ---- extended attributes ---- */

/* user.semcache.{status,score,entry,age} mirror NAME.status on
 * NAME.response; entry directories carry status, entry, age and hits. */
static const char *const xattr_names[] = {
	"user.semcache.status", "user.semcache.score", "user.semcache.entry",
	"user.semcache.age", "user.semcache.hits",
};
#define XATTR_N_RESPONSE 4
#define XATTR_N_ENTRY 5

/* Value of field key ("status", "score", ...) parsed from a status line. */
static int status_field(const char *status, const char *key, char *out,
			size_t size)
{
	char word[64];
	const char *p = status;
	size_t kl = strlen(key);

	if (!strcmp(key, "status")) {
		size_t n = strcspn(status, " \n");

		snprintf(out, size, "%.*s", (int)n, status);
		return 0;
	}
	while ((p = strchr(p, ' '))) {
		p++;
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \n");

			if (n >= sizeof(word))
				n = sizeof(word) - 1;
			snprintf(out, size, "%.*s", (int)n, p + kl + 1);
			return 0;
		}
	}
	return -ENODATA;
}

static int xattr_value(const char *path, const char *name, char *out,
		       size_t size)
{
	const char *field;
	struct fpath fp;
	struct node *n;
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (strncmp(name, "user.semcache.", 14))
		return -ENODATA;
	field = name + 14;
	if (fp.kind == F_SESSION && fp.sf == SF_RESPONSE) {
		char status[256];

		n = node_get(NODE_SESSION, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		snprintf(status, sizeof(status), "%s", n->status);
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
		if (!strcmp(field, "hits"))
			return -ENODATA;
		return status_field(status, field, out, size);
	}
	if (fp.kind == F_ENTRY) {
		struct cache_entry_info ei;

		rc = cache_entry_stat(st()->cache, fp.dir, fp.entry, &ei);
		if (rc)
			return rc;
		if (!strcmp(field, "status"))
			snprintf(out, size, "%s", ei.expired ? "expired" : "live");
		else if (!strcmp(field, "entry"))
			snprintf(out, size, "%" PRId64, ei.id);
		else if (!strcmp(field, "age"))
			snprintf(out, size, "%" PRId64, (clock_wall_ms() - ei.created_ms) / 1000);
		else if (!strcmp(field, "hits"))
			snprintf(out, size, "%" PRId64, ei.hits);
		else
			return -ENODATA;
		return 0;
	}
	return -ENODATA;
}

static int fs_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	fuse_requests++;
	char buf[128];
	size_t len;
	int rc = xattr_value(path, name, buf, sizeof(buf));

	if (rc)
		return rc;
	len = strlen(buf);
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(value, buf, len);
	return (int)len;
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	fuse_requests++;
	struct fpath fp;
	size_t need = 0, n = 0;
	char buf[128];
	int rc = resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == F_SESSION && fp.sf == SF_RESPONSE)
		n = XATTR_N_RESPONSE;
	else if (fp.kind == F_ENTRY)
		n = XATTR_N_ENTRY;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(xattr_names[i]) + 1;

		if (xattr_value(path, xattr_names[i], buf, sizeof(buf)))
			continue;
		if (size && need + l <= size)
			memcpy(list + need, xattr_names[i], l);
		else if (size)
			return -ERANGE;
		need += l;
	}
	return (int)need;
}

static int fs_setxattr(const char *path, const char *name, const char *value,
		       size_t size, int flags)
{
	fuse_requests++;
	struct fpath fp;
	int rc = resolve(path, &fp);

	return rc ? rc : -ENOTSUP;
}

/* ---- lifecycle ---- */

static void *gc_main(void *arg)
{
	struct fs_state *s = arg;

	pthread_mutex_lock(&s->gc_mu);
	while (!s->gc_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s->gc_cv, &s->gc_mu, &ts);
		if (s->gc_stop)
			break;
		pthread_mutex_unlock(&s->gc_mu);
		node_gc(s->session_ttl_ms);
		pthread_mutex_lock(&s->gc_mu);
	}
	pthread_mutex_unlock(&s->gc_mu);
	return NULL;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fs_state *s = fuse_get_context()->private_data;

	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->hard_remove = 1;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 0;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (cache_start(s->cache))
		semlog(SEMLOG_ERR, "cannot start the maintenance thread");
	pthread_mutex_init(&s->gc_mu, NULL);
	pthread_cond_init(&s->gc_cv, NULL);
	if (pthread_create(&s->gc, NULL, gc_main, s) == 0)
		s->gc_started = true;
	semlog(SEMLOG_INFO, "mounted");
	return s;
}

static void fs_destroy(void *private_data)
{
	struct fs_state *s = private_data;

	if (s->gc_started) {
		pthread_mutex_lock(&s->gc_mu);
		s->gc_stop = true;
		pthread_cond_signal(&s->gc_cv);
		pthread_mutex_unlock(&s->gc_mu);
		pthread_join(s->gc, NULL);
		s->gc_started = false;
	}
	node_table_release();
}

const struct fuse_operations semcache_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.truncate = fs_truncate,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setxattr = fs_setxattr,
};
