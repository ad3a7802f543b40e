/*
 * editor.c - the changes editors and shells make to files: truncate,
 * unlink, rename.
 *
 * Design: saving policy.yaml goes through scratch files (in-memory files
 * of any other name, node.h): vim writes a swap and a backup, sed -i a temp
 * file, then rename it onto policy.yaml; that rename validates and
 * installs the policy (EINVAL leaves the old one). Renaming policy.yaml
 * away keeps its text as a scratch backup and removes the policy.
 * Truncating an open handle cuts its write buffer (committed at flush)
 * or its scratch file, even one gone since (path NULL); by path it
 * changes scratch files and policy.yaml at once, a size over the limit
 * refused before anything is allocated. Unlinking a view succeeds and
 * changes nothing, so `rm -r` can walk a category. Every change of a
 * scratch file's length goes through fs_scratch_write/truncate, which
 * charge it to the creator's scratch cap (quota.h).
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
#include "quota.h"
#include "semlog.h"

/* Charge the change of n's length from its current one to len. */
static int charge_len(struct node *n, size_t len)
{
	if (len > FS_SCRATCH_MAX_BYTES)
		return -EFBIG;
	return quota_charge(n->uid, (int64_t)len - (int64_t)n->data.len);
}

int fs_scratch_write(struct node *n, const char *data, size_t size, off_t off)
{
	size_t old = n->data.len, end;
	int rc;

	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off > FS_SCRATCH_MAX_BYTES || size > FS_SCRATCH_MAX_BYTES - (size_t)off)
		return -EFBIG;
	end = (size_t)off + size;
	if (end > old) {
		rc = charge_len(n, end);
		if (rc)
			return rc;
	}
	rc = buf_write(&n->data, data, size, off);
	if (rc) {
		if (end > old)
			quota_charge(n->uid, -(int64_t)(end - old));
		return rc;
	}
	n->mtime_scratch = clock_wall_ms();
	return 0;
}

int fs_scratch_truncate(struct node *n, size_t size)
{
	size_t old = n->data.len;
	int rc = size > old ? charge_len(n, size) : 0;

	if (rc)
		return rc;
	rc = buf_truncate(&n->data, size);
	if (rc) {
		if (size > old)
			quota_charge(n->uid, -(int64_t)(size - old));
		return rc;
	}
	if (size < old)
		quota_charge(n->uid, -(int64_t)(old - size));
	n->mtime_scratch = clock_wall_ms();
	return 0;
}

int fs_may_set_policy(const char *dir, uid_t uid)
{
	struct cache_cat_info ci;
	int rc = cache_category_stat(fs_st()->cache, dir, &ci);

	if (rc)
		return rc;
	if (fs_trusted(uid) || ci.uid == uid)
		return 0;
	fs_warn("%s/policy.yaml: change by uid %u refused (EACCES): only the category's owner (uid %u) or the mount owner may change it",
		dir, (unsigned)uid, (unsigned)ci.uid);
	return -EACCES;
}

/* ftruncate: the handle's write buffer, or its scratch file. */
static int truncate_handle(struct fs_handle *h, off_t size)
{
	int rc;

	pthread_mutex_lock(&h->lock);
	if (h->kind == FS_SCRATCH) {
		pthread_mutex_lock(&h->node->lock);
		rc = fs_scratch_truncate(h->node, (size_t)size);
		pthread_mutex_unlock(&h->node->lock);
	} else {
		h->dirty = true;
		if (size > h->limit)
			rc = h->failed = -EFBIG;
		else if (size == 0 && h->kind == FS_SESSION &&
			 (h->sf == SF_QUERY || h->sf == SF_RESPONSE))
			rc = fs_session_write(h, "", 0, 0); /* new content, as a write at 0 */
		else
			rc = buf_truncate(&h->data, (size_t)size);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_handle *h = fi ? fs_handle(fi) : NULL;
	struct fs_path fp;
	struct node *n;
	int rc;

	if (size < 0)
		return -EINVAL;
	if (h && h->writable)
		return truncate_handle(h, size);
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

		if (size > FS_SCRATCH_MAX_BYTES)
			return -EFBIG; /* before anything is allocated */
		rc = fs_may_set_policy(fp.dir, fs_caller()->uid);
		if (rc)
			return rc;
		rc = fs_view_text(&fp, &b, NULL);
		if (rc == -ENOENT && fs_pending(fp.dir, fp.name))
			rc = 0; /* being created: empty so far */
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

static bool policy_exists(const struct fs_path *p);

int fs_unlink(const char *path)
{
	fs_count_request();
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
		n->file_gen[fp.sf]++; /* its open descriptors commit nothing */
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
		rc = fs_may_set_policy(fp.dir, fs_caller()->uid);
		if (!rc && !policy_exists(&fp))
			rc = -ENOENT; /* none, or renamed away (hold.c) */
		return rc ? rc : cache_policy_put(fs_st()->cache, fp.dir, NULL, 0, fs_caller());
	default:
		/* Views come back by themselves, and an entry goes with its
		 * directory (rmdir): succeeding lets `rm -r` walk a category. */
		if (fp.kind == FS_ENTRY_FILE || (fp.res && S_ISREG(fp.res->mode)))
			return 0;
		return -EACCES;
	}
}

/* Does policy.yaml of dir exist (installed, or being created)? */
static bool policy_exists(const struct fs_path *p)
{
	struct buf b = { 0 };
	int rc = fs_view_text(p, &b, NULL);

	buf_release(&b);
	return rc == 0 || fs_pending(p->dir, p->name);
}

/* Is data the policy.yaml of dir that was renamed away and is still in
 * force (hold.c)? Then that hold ends and nothing is installed. */
static bool restored(const char *dir, const struct buf *data)
{
	char *text = NULL;
	size_t len = 0;
	int64_t stamp;
	bool same = false;

	if (cache_policy_get(fs_st()->cache, dir, &text, &len, &stamp) == 0)
		same = fs_hold_restore(dir, data->data ? data->data : "", data->len, stamp);
	free(text);
	return same;
}

/* An editor saving policy.yaml: validate the scratch file a, then install
 * it; the scratch file is gone once the policy is. Renaming back the
 * backup of a policy renamed away a moment ago installs nothing: that
 * policy never left (hold.c), and .errors keeps the refusal in between. */
static int rename_onto_policy(const struct fs_path *a, const struct fs_path *b,
			      bool noreplace)
{
	struct buf data = { 0 };
	struct node *n;
	int rc = fs_may_set_policy(a->dir, fs_caller()->uid);

	if (rc)
		return rc;
	if (noreplace && policy_exists(b))
		return -EEXIST;
	n = node_get(NODE_SCRATCH, a->dir, a->name, 0);
	if (!n)
		return -ENOENT;
	pthread_mutex_lock(&n->lock);
	rc = buf_set(&data, n->data.data, n->data.len);
	pthread_mutex_unlock(&n->lock);
	if (!rc && restored(a->dir, &data)) {
		semlog(SEMLOG_INFO, "policy of '%s' kept: '%s' renamed back unchanged",
		       a->dir, a->name);
	} else if (!rc) {
		rc = cache_policy_put(fs_st()->cache, a->dir, data.data ? data.data : "",
				      data.len, fs_caller());
	}
	if (!rc)
		node_unlink(n);
	node_put(n, false);
	buf_release(&data);
	return rc;
}

/* An editor keeping a backup of policy.yaml: its text becomes scratch file
 * b (owned by the caller if new), then the policy is removed — held back
 * for a moment (hold.c), in case the editor renames it back. Nothing
 * changes if either step is refused. */
static int rename_policy_away(const struct fs_path *a, const struct fs_path *b,
			      bool noreplace)
{
	struct fuse_context *fc = fuse_get_context();
	struct buf data = { 0 };
	struct cache_caller who = { fc->uid, fc->gid };
	struct node *m;
	int64_t stamp = 0;
	bool fresh;
	int rc = fs_may_set_policy(a->dir, fc->uid);

	if (rc)
		return rc;
	rc = fs_view_text(a, &data, &stamp);
	if (rc)
		return rc;
	m = node_get(NODE_SCRATCH, b->dir, b->name, 0);
	if (m && noreplace) {
		node_put(m, false);
		buf_release(&data);
		return -EEXIST;
	}
	if (!m)
		m = node_get(NODE_SCRATCH, b->dir, b->name, NODE_CREATE | NODE_TOUCH);
	if (!m) {
		buf_release(&data);
		return -ENOMEM;
	}
	pthread_mutex_lock(&m->lock);
	fresh = !m->mtime_scratch;
	if (fresh) {
		m->uid = fc->uid;
		m->gid = fc->gid;
		m->mode = 0644;
		m->mtime_scratch = clock_wall_ms();
	}
	pthread_mutex_unlock(&m->lock);
	/* the new text is charged before the policy goes, the old content
	 * credited once it is replaced */
	rc = data.len > FS_SCRATCH_MAX_BYTES ? -EFBIG : quota_charge(m->uid, (int64_t)data.len);
	if (!rc) {
		rc = fs_hold_begin(a->dir, data.data ? data.data : "", data.len, stamp, &who);
		if (rc == -EAGAIN || rc == -ENOMEM)
			rc = cache_policy_put(fs_st()->cache, a->dir, NULL, 0, &who);
		if (rc)
			quota_charge(m->uid, -(int64_t)data.len);
	}
	if (!rc) {
		struct buf old;

		pthread_mutex_lock(&m->lock);
		old = m->data;
		m->data = data;
		data = old;
		quota_charge(m->uid, -(int64_t)old.len);
		m->mtime_scratch = clock_wall_ms();
		pthread_mutex_unlock(&m->lock);
	} else if (fresh) {
		node_unlink(m);
	}
	node_put(m, false);
	buf_release(&data);
	return rc;
}

int fs_rename(const char *from, const char *to, unsigned int flags)
{
	fs_count_request();
	bool noreplace = flags & RENAME_NOREPLACE;
	struct fs_path a, b;
	struct node *n;
	int rc;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
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
	if (a.kind == FS_SCRATCH && b.kind == FS_POLICY)
		return rename_onto_policy(&a, &b, noreplace);
	if (a.kind == FS_POLICY && b.kind == FS_SCRATCH)
		return rename_policy_away(&a, &b, noreplace);
	if (a.kind == FS_SCRATCH && b.kind == FS_SCRATCH) {
		if (cache_category_stat(fs_st()->cache, to, NULL) == 0)
			return -EISDIR;
		n = node_get(NODE_SCRATCH, a.dir, a.name, 0);
		if (!n)
			return -ENOENT;
		rc = node_rename(n, b.name, noreplace);
		node_put(n, false);
		return rc;
	}
	return -EPERM; /* session files and views are not renamed */
}
