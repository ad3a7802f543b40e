/*
 * editor.c - the changes editors and shells make to files: truncate,
 * unlink, rename.
 *
 * Design: saving policy.yaml goes through scratch files (in-memory files
 * of any other name, node.h): vim writes a swap and a backup, sed -i a temp
 * file, then rename it onto policy.yaml; that rename validates and
 * installs the policy (EINVAL leaves the old one). Renaming policy.yaml
 * away keeps its text as a scratch backup and removes the policy.
 * Truncating an open handle cuts its write buffer (committed at flush);
 * by path it changes scratch files and policy.yaml at once. Unlinking a
 * view succeeds and changes nothing, so `rm -r` can walk a category.
 *
 * Not here: renaming categories (refused: their path names their index and
 * policy) or session files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs_i.h"

/* Scratch content changes only here: a cap on scratch memory goes here. */
int fs_scratch_write(struct node *n, const char *data, size_t size, off_t off)
{
	int rc = buf_write(&n->data, data, size, off);

	n->mtime_scratch = clock_wall_ms();
	return rc;
}

int fs_scratch_truncate(struct node *n, size_t size)
{
	int rc = buf_truncate(&n->data, size);

	n->mtime_scratch = clock_wall_ms();
	return rc;
}

int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	fs_requests++;
	struct fs_handle *h = fi ? fs_handle(fi) : NULL;
	struct fs_path fp;
	struct node *n;
	int rc;

	if (size < 0)
		return -EINVAL;
	if (h && h->writable && h->kind != FS_SCRATCH) {
		h->dirty = true;
		if (h->limit && size > h->limit) {
			h->failed = -EFBIG;
			return -EFBIG;
		}
		return buf_truncate(&h->data, size);
	}
	rc = fs_resolve(path, &fp);
	if (rc)
		return rc;
	switch (fp.kind) {
	case FS_DIR:
		return -EISDIR;
	case FS_SCRATCH:
		if (size > FS_SCRATCH_MAX_BYTES)
			return -EFBIG;
		n = node_get(NODE_SCRATCH, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		rc = fs_scratch_truncate(n, size);
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
		return rc;
	case FS_SESSION:
		if (!(fs_session_files[fp.sf].mode & 0222))
			return -EACCES; /* NAME.status */
		n = node_get(NODE_SESSION, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		/* the content changes when the writer that follows closes */
		node_put(n, false);
		return 0;
	case FS_POLICY: {
		struct buf b = { 0 };

		rc = fs_view_text(&fp, &b, NULL);
		if (rc == -ENOENT)
			rc = 0;
		if (!rc)
			rc = buf_truncate(&b, size);
		if (!rc)
			rc = cache_policy_put(fs_st()->cache, fp.dir, b.data ? b.data : "", b.len, fs_caller());
		buf_release(&b);
		return rc;
	}
	default:
		return -EACCES;
	}
}

int fs_unlink(const char *path)
{
	fs_requests++;
	struct fs_path fp;
	struct node *n;
	bool any = false;
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	switch (fp.kind) {
	case FS_DIR:
		return -EISDIR;
	case FS_SESSION:
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
	case FS_SCRATCH:
		n = node_get(NODE_SCRATCH, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		node_unlink(n);
		node_put(n, false);
		return 0;
	case FS_POLICY:
		return cache_policy_put(fs_st()->cache, fp.dir, NULL, 0, fs_caller());
	default:
		/* Views come back by themselves, and an entry goes with its
		 * directory (rmdir): succeeding lets `rm -r` walk a category. */
		if (fp.kind == FS_ENTRY_FILE || (fp.res && S_ISREG(fp.res->mode)))
			return 0;
		return -EACCES;
	}
}

int fs_rename(const char *from, const char *to, unsigned int flags)
{
	fs_requests++;
	struct fs_path a, b;
	struct node *n, *m;
	struct buf data = { 0 };
	int rc;

	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	rc = fs_resolve(from, &a);
	if (rc)
		return rc;
	rc = fs_resolve(to, &b);
	if (rc)
		return rc;
	if (a.kind == FS_DIR || b.kind == FS_DIR)
		return -EPERM; /* categories keep their path (indexes, policies) */
	if (strcmp(a.dir, b.dir))
		return -EXDEV;
	if (!fs_name_ok(b.name))
		return -EINVAL;
	if (a.kind == FS_SCRATCH && b.kind == FS_POLICY) {
		/* an editor saving policy.yaml: validate, then install */
		n = node_get(NODE_SCRATCH, a.dir, a.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		rc = buf_set(&data, n->data.data, n->data.len);
		pthread_mutex_unlock(&n->lock);
		if (!rc)
			rc = cache_policy_put(fs_st()->cache, a.dir, data.data ? data.data : "",
					      data.len, fs_caller());
		if (!rc)
			node_unlink(n);
		node_put(n, false);
		buf_release(&data);
		return rc;
	}
	if (a.kind == FS_POLICY && b.kind == FS_SCRATCH) {
		/* an editor keeping a backup of policy.yaml */
		rc = fs_view_text(&a, &data, NULL);
		if (rc)
			return rc;
		m = node_get(NODE_SCRATCH, b.dir, b.name, NODE_CREATE | NODE_TOUCH);
		if (!m) {
			buf_release(&data);
			return -ENOMEM;
		}
		pthread_mutex_lock(&m->lock);
		fs_scratch_truncate(m, 0); /* cannot fail */
		rc = data.len ? fs_scratch_write(m, data.data, data.len, 0) : 0;
		m->mode = 0644;
		pthread_mutex_unlock(&m->lock);
		node_put(m, false);
		buf_release(&data);
		return rc ? rc : cache_policy_put(fs_st()->cache, a.dir, NULL, 0, fs_caller());
	}
	if (a.kind == FS_SCRATCH && b.kind == FS_SCRATCH) {
		if (cache_category_stat(fs_st()->cache, to, NULL) == 0)
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
