/*
 * dir.c - directories: readdir, mkdir, rmdir.
 *
 * Design: every directory is a category of the engine, except the views
 * CATEGORY/entries, CATEGORY/entries/ID and /.load. A listing is a
 * snapshot: the reserved files, policy.yaml when there is one, the child
 * categories, then the session and scratch files of the node table.
 * mkdir refuses reserved names and categories deeper than FS_MAX_DEPTH
 * (FS_DEPTH_ERRNO, logged); rmdir of entries/ID invalidates the entry. A
 * directory removed while it is being listed lists as ENOENT.
 *
 * Not here: renaming (editor.c refuses categories), the engine's rules for
 * removing a category (cache_category_remove).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

struct dirfill {
	void *buf;
	fuse_fill_dir_t filler;
};

static int add_name(void *arg, const char *name)
{
	struct dirfill *df = arg;

	df->filler(df->buf, name, NULL, 0, 0);
	return 0;
}

static int add_entry(void *arg, int64_t id)
{
	char name[32];

	snprintf(name, sizeof(name), "%" PRId64, id);
	return add_name(arg, name);
}

static void add_node(void *arg, struct node *n)
{
	bool present[SF_N];
	char name[300];

	if (n->kind == NODE_PENDING)
		return; /* listed with the reserved names */
	if (n->kind == NODE_SCRATCH) {
		add_name(arg, n->name); /* the name changes under table.lock only */
		return;
	}
	pthread_mutex_lock(&n->lock); /* never held across slow work */
	memcpy(present, n->present, sizeof(present));
	pthread_mutex_unlock(&n->lock);
	for (int i = 0; i < SF_N; i++) {
		if (!present[i])
			continue;
		snprintf(name, sizeof(name), "%s%s", n->name, fs_session_files[i].suffix);
		add_name(arg, name);
	}
}

/* Does reserved name r of category dir exist (if_present rows)? */
static bool reserved_present(const char *dir, const struct fs_reserved *r)
{
	char *text = NULL;
	size_t len;

	if (r->text(dir, &text, &len, NULL) == 0) {
		free(text);
		return true;
	}
	return fs_pending(dir, r->name);
}

/* A category: its reserved names, child categories, session and scratch
 * files. */
static int list_category(const char *dir, struct dirfill *df)
{
	int rc;

	for (size_t i = 0; i < fs_reserved_n; i++) {
		const struct fs_reserved *r = &fs_reserved[i];

		if ((r->root_only && strcmp(dir, "/")) ||
		    (r->if_present && !reserved_present(dir, r)))
			continue;
		add_name(df, r->name);
	}
	rc = cache_category_children(fs_st()->cache, dir, add_name, df);
	if (rc)
		return rc;
	return node_foreach(dir, add_node, df);
}

int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
	       off_t off, struct fuse_file_info *fi,
	       enum fuse_readdir_flags flags)
{
	fs_count_request();
	struct dirfill df = { buf, filler };
	struct cache_entry_info ei;
	struct fs_path fp;
	int rc;

	if (!path)
		return -ENOENT; /* removed while open, as getdents(2) says */
	rc = fs_resolve(path, &fp);
	if (rc)
		return rc;
	if (fp.kind != FS_DIR && fp.kind != FS_ENTRIES && fp.kind != FS_ENTRY &&
	    fp.kind != FS_LOAD_DIR)
		return -ENOTDIR;
	if (fp.kind == FS_ENTRY) {
		rc = cache_entry_stat(fs_st()->cache, fp.dir, fp.entry, &ei);
		if (rc)
			return rc;
	}
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	switch (fp.kind) {
	case FS_LOAD_DIR:
		return cache_load_list(fs_st()->cache, add_name, &df);
	case FS_ENTRIES:
		return cache_entries_list(fs_st()->cache, fp.dir, add_entry, &df);
	case FS_ENTRY:
		for (int i = CACHE_PART_QUERY; i <= CACHE_PART_META; i++)
			if (i != CACHE_PART_CONTEXT || ei.context_len)
				filler(buf, fs_entry_part_name[i], NULL, 0, 0);
		return 0;
	default:
		return list_category(fp.dir, &df);
	}
}

/* How many levels below the root path is ("/a/b": 2). */
static int depth_of(const char *path)
{
	int d = 0;

	for (const char *p = path; *p; p++)
		d += *p == '/' && p[1];
	return d;
}

int fs_mkdir(const char *path, mode_t mode)
{
	fs_count_request();
	struct fuse_context *fc = fuse_get_context();
	char dir[4096], base[256];
	struct node *n;

	if (!path)
		return -ESTALE;
	if (fs_split(path, dir, sizeof(dir), base, sizeof(base)))
		return -ENAMETOOLONG;
	if (!fs_name_ok(base) || fs_reserved_name(base))
		return -EINVAL;
	if (cache_category_stat(fs_st()->cache, dir, NULL))
		return -ENOENT;
	if (depth_of(path) > FS_MAX_DEPTH) {
		fs_warn("mkdir '%s' at depth %d by uid %u refused (%s): categories "
			"nest at most %d levels deep", base, depth_of(path),
			(unsigned)fc->uid, strerrorname_np(FS_DEPTH_ERRNO), FS_MAX_DEPTH);
		return -FS_DEPTH_ERRNO;
	}
	n = node_get(NODE_SCRATCH, dir, base, 0);
	if (n) {
		node_put(n, false);
		return -EEXIST;
	}
	return cache_category_create(fs_st()->cache, path, mode & ~fc->umask & 07777,
				     fc->uid, fc->gid);
}

int fs_rmdir(const char *path)
{
	fs_count_request();
	struct fs_path fp;
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == FS_ENTRY) { /* rm -r CATEGORY/entries/ID: invalidate it */
		rc = cache_entry_remove(fs_st()->cache, fp.dir, fp.entry, fs_caller());
		/* its byte count; entries/ (the parent) the kernel drops itself */
		fs_kcache_path(fp.dir);
		if (!rc)
			fs_kcache_entry(fp.dir, fp.entry);
		return rc;
	}
	if (fp.kind == FS_ENTRIES) {
		struct cache_cat_info ci;

		rc = cache_category_stat(fs_st()->cache, fp.dir, &ci);
		return rc ? rc : (ci.entries ? -ENOTEMPTY : 0);
	}
	if (fp.kind != FS_DIR)
		return -ENOTDIR;
	if (node_dir_busy(fp.dir))
		return -ENOTEMPTY;
	rc = cache_category_remove(fs_st()->cache, fp.dir);
	if (!rc) /* descriptors still open on its files */
		fs_kcache_removed(fp.dir);
	return rc;
}
