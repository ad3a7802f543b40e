/*
 * attr.c - attributes: getattr, chmod, chown, utimens, statfs.
 *
 * Design: a path is resolved (names.c) and its kind says where the
 * attributes come from: a category's owner, group, mode and byte count
 * from the engine; session and scratch files from their node (owner =
 * creator); an entry is owned by its filler; generated files are owned
 * like their category (.metrics by the mount owner), with fixed modes,
 * and their size is the length of their current text (computed on each
 * stat, so `ls -l` and `wc -c` agree). Times: categories and entries
 * carry their creation time (an entry's atime is its last hit); views are
 * always "now". Only categories persist chmod/chown; scratch files keep a
 * mode in memory; other files accept and ignore them so editors succeed.
 * A file gone while open (path NULL) is described from its handle, with
 * no link left.
 *
 * Not here: truncate (editor.c), which is also a setattr.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs_i.h"

static void fill_times(struct stat *s, int64_t ms)
{
	s->st_mtim.tv_sec = ms / 1000;
	s->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	s->st_atim = s->st_mtim;
	s->st_ctim = s->st_mtim;
}

static int load_getattr(const struct fs_path *fp, struct stat *s)
{
	struct cache_cat_info ci;
	char *text = NULL;
	size_t len = 0;
	int rc = cache_category_stat(fs_st()->cache, "/", &ci);

	if (rc)
		return rc;
	s->st_uid = ci.uid;
	s->st_gid = ci.gid;
	fill_times(s, clock_wall_ms());
	if (fp->kind == FS_LOAD_DIR) {
		s->st_mode = fs_reserved_mode(fp->res, ci.mode);
		s->st_nlink = 2;
		return 0;
	}
	s->st_mode = S_IFREG | 0644;
	s->st_nlink = 1;
	rc = cache_load_text(fs_st()->cache, fp->name, &text, &len);
	if (rc == -ENOENT) /* being created */
		return fs_pending(FS_LOAD_PATH, fp->name) ? 0 : -ENOENT;
	free(text);
	s->st_size = (off_t)len;
	return rc;
}

/* Session file sf or the scratch file of node n: its owner (the
 * creator), mode, size and times. n->lock held. */
static void node_attrs(struct node *n, enum sfile sf, struct stat *s)
{
	if (n->kind == NODE_SESSION) {
		s->st_mode = S_IFREG | fs_session_files[sf].mode;
		s->st_size = fs_session_size(n, sf);
		fill_times(s, n->mtime_ms[sf]);
	} else {
		s->st_mode = S_IFREG | n->mode;
		s->st_size = n->data.len;
		fill_times(s, n->mtime_scratch);
	}
	s->st_blocks = (s->st_size + 511) / 512;
	s->st_uid = n->uid;
	s->st_gid = n->gid;
}

/* A session or scratch file: from its node. */
static int stat_node(const struct fs_path *fp, struct stat *s)
{
	struct node *n = node_get(fp->kind == FS_SESSION ? NODE_SESSION : NODE_SCRATCH,
				  fp->dir, fp->name, 0);
	int rc;

	if (!n)
		return -ENOENT;
	if (fp->kind == FS_SESSION && fp->sf == SF_NEIGHBORS)
		fs_neighbors_prepare(n, fp->dir); /* its true size */
	pthread_mutex_lock(&n->lock);
	rc = fp->kind == FS_SESSION && !n->present[fp->sf] ? -ENOENT : 0;
	node_attrs(n, fp->sf, s);
	pthread_mutex_unlock(&n->lock);
	node_put(n, false);
	return rc;
}

/* A file gone while open (path NULL): what its handle knows. */
static int stat_handle(struct fs_handle *h, struct stat *s)
{
	struct cache_cat_info ci = { .mode = 0777 };
	struct node *n = h->node;

	memset(s, 0, sizeof(*s));
	fill_times(s, clock_wall_ms());
	s->st_nlink = 0; /* its name is gone */
	if (n) {
		pthread_mutex_lock(&n->lock);
		node_attrs(n, h->sf, s);
		pthread_mutex_unlock(&n->lock);
		return 0;
	}
	/* a view, policy.yaml, .purge, an entry's file, .load/MODEL: owned
	 * like its category while it exists */
	if (cache_category_stat(fs_st()->cache, h->kind == FS_LOAD_FILE ? "/" : h->dir,
				&ci) == 0) {
		s->st_uid = ci.uid;
		s->st_gid = ci.gid;
	}
	if (h->res && h->res->mount_owner) {
		s->st_uid = fs_st()->owner_uid;
		s->st_gid = fs_st()->owner_gid;
	}
	s->st_mode = h->res ? fs_reserved_mode(h->res, ci.mode) :
		     S_IFREG | (h->kind == FS_LOAD_FILE ? 0644 : ci.mode & 0444);
	pthread_mutex_lock(&h->lock);
	s->st_size = h->data.len;
	pthread_mutex_unlock(&h->lock);
	s->st_blocks = (s->st_size + 511) / 512;
	return 0;
}

/* CATEGORY/entries/ID and its files; readable by who may read the
 * category. */
static int stat_entry(const struct fs_path *fp, const struct cache_cat_info *ci,
		      struct stat *s)
{
	struct cache_entry_info ei;
	struct buf b = { 0 };
	int rc = cache_entry_stat(fs_st()->cache, fp->dir, fp->entry, &ei);

	if (rc)
		return rc;
	s->st_uid = ei.uid; /* its filler */
	if (fp->kind == FS_ENTRY) {
		/* writable as the category is, so `rm -r entries/ID` can walk
		 * it (unlinking its files changes nothing; rmdir removes) */
		s->st_mode = S_IFDIR | (ci->mode & 0777);
		s->st_nlink = 2;
		s->st_size = ei.bytes;
	} else {
		s->st_mode = S_IFREG | (ci->mode & 0444);
		switch (fp->part) {
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
			rc = fs_view_text(fp, &b, NULL);
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

/* A reserved name (fs_reserved): its row's mode; a directory's size is
 * the category's bytes, a file's the length of its text now. */
static int stat_reserved(const struct fs_path *fp, const struct cache_cat_info *ci,
			 struct stat *s)
{
	struct buf b = { 0 };
	int64_t mtime = clock_wall_ms();
	int rc;

	s->st_mode = fs_reserved_mode(fp->res, ci->mode);
	if (fp->res->mount_owner) {
		s->st_uid = fs_st()->owner_uid;
		s->st_gid = fs_st()->owner_gid;
	}
	if (S_ISDIR(s->st_mode)) {
		s->st_nlink = 2;
		s->st_size = ci->bytes;
		fill_times(s, ci->created_ms);
		return 0;
	}
	rc = fs_view_text(fp, &b, &mtime);
	if (rc == -ENOENT && fp->res->if_present && fs_pending(fp->dir, fp->res->name))
		rc = 0;
	if (rc)
		return rc;
	fill_times(s, mtime);
	s->st_size = b.len;
	buf_release(&b);
	return 0;
}

int fs_getattr(const char *path, struct stat *s, struct fuse_file_info *fi)
{
	fs_count_request();
	struct cache_cat_info ci;
	struct fs_path fp;
	int rc;

	if (!path && fi)
		return stat_handle(fs_handle(fi), s);
	rc = fs_resolve(path, &fp);
	if (rc)
		return rc;
	memset(s, 0, sizeof(*s));
	if (fp.kind == FS_LOAD_DIR || fp.kind == FS_LOAD_FILE)
		return load_getattr(&fp, s);
	rc = cache_category_stat(fs_st()->cache, fp.dir, &ci);
	if (rc)
		return rc;
	s->st_uid = ci.uid;
	s->st_gid = ci.gid;
	if (fp.kind == FS_DIR) {
		s->st_mode = S_IFDIR | ci.mode;
		s->st_nlink = 2;
		s->st_size = ci.bytes;
		s->st_blocks = (ci.bytes + 511) / 512;
		fill_times(s, ci.created_ms);
		return 0;
	}
	s->st_nlink = 1;
	fill_times(s, clock_wall_ms());
	switch (fp.kind) {
	case FS_SESSION:
	case FS_SCRATCH:
		return stat_node(&fp, s);
	case FS_ENTRY:
	case FS_ENTRY_FILE:
		return stat_entry(&fp, &ci, s);
	default:
		return fp.res ? stat_reserved(&fp, &ci, s) : -ENOENT;
	}
}

int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_path fp;
	struct node *n;
	int rc;

	if (!path && fi) {
		struct fs_handle *h = fs_handle(fi);

		if (h->kind == FS_SCRATCH) {
			pthread_mutex_lock(&h->node->lock);
			h->node->mode = mode & 0777;
			pthread_mutex_unlock(&h->node->lock);
		}
		return 0;
	}
	rc = fs_resolve(path, &fp);
	if (rc)
		return rc;
	if (fp.kind == FS_DIR)
		return cache_category_setattr(fs_st()->cache, fp.dir, mode & 07777,
					      (uid_t)-1, (gid_t)-1);
	if (fp.kind == FS_SCRATCH) {
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

int fs_chown(const char *path, uid_t uid, gid_t gid,
	     struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_path fp;
	int rc;

	if (!path && fi)
		return 0; /* a file gone while open: nothing to keep */
	rc = fs_resolve(path, &fp);
	if (rc)
		return rc;
	if (fp.kind == FS_DIR)
		return cache_category_setattr(fs_st()->cache, fp.dir, -1, uid, gid);
	return 0;
}

int fs_utimens(const char *path, const struct timespec tv[2],
	       struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_path fp;

	return !path && fi ? 0 : fs_resolve(path, &fp);
}

int fs_statfs(const char *path, struct statvfs *sv)
{
	fs_count_request();
	if (statvfs(fs_st()->store_dir, sv))
		return -errno;
	sv->f_namemax = FS_NAME_MAX_BYTES;
	return 0;
}
