/*
 * dir.c - directories: readdir, mkdir, rmdir.
 *
 * Design: every directory is a category of the engine, except the views
 * CATEGORY/entries, CATEGORY/entries/ID and /.load. A listing is a
 * snapshot: the reserved files, policy.yaml when there is one, the child
 * categories, then the session and scratch files of the node table.
 * mkdir refuses reserved names; rmdir of entries/ID invalidates the entry.
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
		snprintf(name, sizeof(name), "%s%s", n->name, fs_sfile_suffix[i]);
		df->filler(df->buf, name, NULL, 0, 0);
	}
}

int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
	       off_t off, struct fuse_file_info *fi,
	       enum fuse_readdir_flags flags)
{
	fs_requests++;
	struct dirfill df = { buf, filler };
	struct fs_path fp;
	char *yaml;
	size_t len;
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == FS_LOAD_DIR) {
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		return cache_load_list(fs_st()->cache, add_load_name, &df);
	}
	if (fp.kind == FS_ENTRIES) {
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		return cache_entries_list(fs_st()->cache, fp.dir, add_entry, &df);
	}
	if (fp.kind == FS_ENTRY) {
		struct cache_entry_info ei;

		rc = cache_entry_stat(fs_st()->cache, fp.dir, fp.entry, &ei);
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
	if (fp.kind != FS_DIR)
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
	if (cache_policy_get(fs_st()->cache, fp.dir, &yaml, &len, NULL) == 0) {
		free(yaml);
		filler(buf, "policy.yaml", NULL, 0, 0);
	} else if (fs_policy_pending(fp.dir)) {
		filler(buf, "policy.yaml", NULL, 0, 0);
	}
	rc = cache_category_children(fs_st()->cache, fp.dir, add_child, &df);
	if (rc)
		return rc;
	node_foreach(fp.dir, add_node, &df);
	return 0;
}

int fs_mkdir(const char *path, mode_t mode)
{
	fs_requests++;
	struct fuse_context *fc = fuse_get_context();
	char dir[4096], base[256];
	struct node *n;

	if (fs_split(path, dir, sizeof(dir), base, sizeof(base)))
		return -ENAMETOOLONG;
	if (!fs_name_ok(base) || fs_is_reserved_dir_name(base))
		return -EINVAL;
	if (cache_category_stat(fs_st()->cache, dir, NULL))
		return -ENOENT;
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
	fs_requests++;
	struct fs_path fp;
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == FS_ENTRY) /* rm -r CATEGORY/entries/ID: invalidate it */
		return cache_entry_remove(fs_st()->cache, fp.dir, fp.entry);
	if (fp.kind == FS_ENTRIES) {
		struct cache_cat_info ci;

		rc = cache_category_stat(fs_st()->cache, fp.dir, &ci);
		return rc ? rc : (ci.entries ? -ENOTEMPTY : 0);
	}
	if (fp.kind != FS_DIR)
		return -ENOTDIR;
	if (node_dir_busy(fp.dir))
		return -ENOTEMPTY;
	return cache_category_remove(fs_st()->cache, fp.dir);
}
