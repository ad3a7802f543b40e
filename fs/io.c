/*
 * io.c - open files: handles, open/create, read, write, flush, release.
 *
 * Design: open resolves the path once and keeps what it needs in a handle
 * (struct fs_handle, fuse_file_info.fh): a referenced node for session and
 * scratch files, a snapshot of a generated file's text, or a write buffer.
 * Writes go to the handle's buffer (scratch files: straight into the node;
 * NAME.query and NAME.response through fs_session_write, where a write at
 * offset 0 starts new content) and are committed at flush or fsync: the
 * protocol step for session files (protocol.c), the policy for
 * policy.yaml, a load report, a purge. A write past the handle's limit
 * fails with EFBIG and poisons the handle so that nothing partial is ever
 * committed; every writable handle has a limit. Every file is opened
 * direct_io: the kernel caches nothing (a persistent descriptor's pwrite
 * and pread are one request each, never answered from a cache). A
 * handle's lock serialises the requests on one descriptor; commits act as
 * the uid that opened it (fs_i.h).
 *
 * Not here: what a path is (names.c), the protocol steps (protocol.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs_i.h"

/* ---- opening files ---- */

/* limits.query_bytes or limits.response_bytes of dir into *limit. */
static int policy_limit(const char *dir, bool response, int64_t *limit)
{
	struct policy p;
	int rc = cache_policy(fs_st()->cache, dir, &p);

	if (rc)
		return rc; /* the category went away since the path resolved */
	*limit = response ? p.response_bytes : p.query_bytes;
	return 0;
}

static int open_session(struct fs_path *fp, struct fs_handle *h, int flags)
{
	bool wr = (flags & O_ACCMODE) != O_RDONLY;
	bool create = wr && (fp->sf == SF_QUERY || fp->sf == SF_CONTEXT);
	struct node *n;
	bool fresh = true;
	int rc = 0;

	if (wr && !(fs_session_files[fp->sf].mode & 0222))
		return -EACCES; /* NAME.status */
	if (wr && !fs_name_ok(fp->name))
		return -EINVAL;
	if (wr) {
		rc = fp->sf == SF_QUERY || fp->sf == SF_RESPONSE ?
		     policy_limit(fp->dir, fp->sf == SF_RESPONSE, &h->limit) : 0;
		if (rc)
			return rc;
		if (fp->sf != SF_QUERY && fp->sf != SF_RESPONSE)
			h->limit = FS_CONTEXT_MAX_BYTES;
	}
	n = node_get(NODE_SESSION, fp->dir, fp->name, NODE_TOUCH | (create ? NODE_CREATE : 0));
	if (!n)
		return create ? -ENOMEM : -ENOENT;
	pthread_mutex_lock(&n->lock);
	for (int i = 0; i < SF_N; i++)
		fresh &= !n->present[i];
	if (!fresh && n->uid != h->who.uid && h->who.uid != 0)
		rc = -EACCES; /* another user's session (its files are 0600) */
	else if ((fp->sf == SF_RESPONSE || fp->sf == SF_FEEDBACK) && wr && !n->looked_up)
		rc = -ENOENT; /* a fill or feedback needs a query looked up first */
	else if (!wr && !n->present[fp->sf])
		rc = -ENOENT;
	else if (!(flags & O_TRUNC))
		rc = fs_session_content(n, fp->sf, &h->data);
	if (!rc && wr && (flags & O_TRUNC))
		h->dirty = true;
	h->file_gen = n->file_gen[fp->sf];
	h->fill_gen = n->result_gen; /* a fill answers the lookup shown */
	if (!rc && wr && !n->present[fp->sf]) {
		/* the file exists from its creation on; the session is its
		 * first file's creator's */
		if (fresh) {
			n->uid = h->who.uid;
			n->gid = h->who.gid;
		}
		n->present[fp->sf] = true;
		n->mtime_ms[fp->sf] = clock_wall_ms();
	}
	pthread_mutex_unlock(&n->lock);
	if (!rc && fp->sf == SF_NEIGHBORS) {
		/* its candidates' queries are read now, without the lock; the
		 * handle reads this snapshot */
		fs_neighbors_prepare(n, fp->dir);
		pthread_mutex_lock(&n->lock);
		rc = fs_session_content(n, fp->sf, &h->data);
		pthread_mutex_unlock(&n->lock);
	}
	if (rc) {
		node_put(n, false);
		return rc;
	}
	h->node = n;
	return 0;
}

static int open_scratch(struct fs_path *fp, struct fs_handle *h, int flags,
			bool create, mode_t mode)
{
	struct node *n;

	if (create && !fs_name_ok(fp->name))
		return -EINVAL;
	n = node_get(NODE_SCRATCH, fp->dir, fp->name,
		     NODE_TOUCH | (create ? NODE_CREATE : 0));
	if (!n)
		return create ? -ENOMEM : -ENOENT;
	pthread_mutex_lock(&n->lock);
	if (create && !n->mtime_scratch) {
		n->mode = mode & 0777;
		n->mtime_scratch = clock_wall_ms();
		n->uid = h->who.uid;
		n->gid = h->who.gid;
	}
	if (flags & O_TRUNC)
		fs_scratch_truncate(n, 0); /* cannot fail */
	pthread_mutex_unlock(&n->lock);
	h->node = n;
	h->limit = FS_SCRATCH_MAX_BYTES;
	return 0;
}

static int do_open(const char *path, struct fuse_file_info *fi, bool create,
		   mode_t mode)
{
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct fs_handle *h;
	struct fs_path fp;
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == FS_DIR || fp.kind == FS_ENTRIES || fp.kind == FS_ENTRY ||
	    fp.kind == FS_LOAD_DIR)
		return create ? -EEXIST : -EISDIR;
	if (fp.kind == FS_LOAD_FILE && !fs_load_name_ok(fp.name))
		return create ? -EINVAL : -ENOENT;
	if (fp.res && !(fp.res->mode & (wr ? 0222 : 0444)))
		return -EACCES; /* .stats for writing, .purge for reading */
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->kind = fp.kind;
	h->sf = fp.sf;
	h->res = fp.res;
	h->writable = wr;
	h->who = *fs_caller();
	h->limit = FS_SCRATCH_MAX_BYTES;
	strcpy(h->dir, fp.dir);
	strcpy(h->name, fp.name);
	switch (fp.kind) {
	case FS_SESSION:
		rc = open_session(&fp, h, fi->flags);
		fi->direct_io = 1;
		break;
	case FS_SCRATCH:
		if (cache_category_stat(fs_st()->cache, path, NULL) == 0) {
			rc = -EEXIST;
			break;
		}
		rc = open_scratch(&fp, h, fi->flags, create, mode);
		fi->direct_io = 1;
		break;
	case FS_PURGE:
		h->dirty = (fi->flags & O_TRUNC) != 0;
		h->limit = FS_PURGE_MAX_BYTES;
		fi->direct_io = 1;
		break;
	case FS_LOAD_FILE:
		strcpy(h->dir, fp.name); /* the model name */
		if (!wr) {
			char *text = NULL;
			size_t len = 0;

			rc = cache_load_text(fs_st()->cache, fp.name, &text, &len);
			if (!rc) {
				h->data.data = text;
				h->data.len = h->data.cap = len;
			}
		} else if (create) {
			h->pending = node_get(NODE_PENDING, FS_LOAD_PATH, fp.name,
					      NODE_CREATE | NODE_TOUCH);
			if (!h->pending)
				rc = -ENOMEM;
		}
		h->limit = FS_LOAD_MAX_BYTES;
		fi->direct_io = 1;
		break;
	case FS_POLICY:
		if (wr) {
			rc = fs_may_set_policy(fp.dir, h->who.uid);
			if (rc)
				break;
		}
		if (!wr || !(fi->flags & O_TRUNC)) {
			rc = fs_view_text(&fp, &h->data, NULL);
			if (rc == -ENOENT && (create || wr))
				rc = 0;
		}
		if (!rc && create) {
			h->pending = node_get(NODE_PENDING, fp.dir, fp.name,
					      NODE_CREATE | NODE_TOUCH);
			if (!h->pending)
				rc = -ENOMEM;
		}
		if (wr && (fi->flags & O_TRUNC))
			h->dirty = true;
		fi->direct_io = 1;
		break;
	default:
		if (wr) {
			rc = -EACCES;
			break;
		}
		rc = fs_view_text(&fp, &h->data, NULL);
		fi->direct_io = 1;
		break;
	}
	if (rc) {
		if (h->pending) {
			node_unlink(h->pending);
			node_put(h->pending, false);
		}
		buf_release(&h->data);
		free(h);
		return rc;
	}
	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uintptr_t)h;
	return 0;
}

int fs_open(const char *path, struct fuse_file_info *fi)
{
	fs_count_request();
	return do_open(path, fi, false, 0);
}

int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	fs_count_request();
	return do_open(path, fi, true, mode);
}

static bool fs_kind_is_view(enum fs_kind k)
{
	return k == FS_VIEW_POLICY || k == FS_VIEW_STATS || k == FS_VIEW_ERRORS ||
	       k == FS_VIEW_METRICS;
}

/* A read: the fast path's answer, a scratch file, a session file's live
 * content, or the handle's snapshot / write buffer. h->lock held. */
static int do_read(struct fs_handle *h, char *out, size_t size, off_t off)
{
	struct buf *src = &h->data;
	struct node *n = h->node;
	bool changed;
	size_t len;

	if (h->kind == FS_SESSION && h->sf == SF_QUERY && h->writable) {
		int rc = fs_fast_answer(h);

		if (rc)
			return rc;
		if (h->answer_rc)
			return h->answer_rc; /* never the query's bytes as an answer */
		if (h->answered)
			src = &h->answer;
	}
	if (fs_kind_is_view(h->kind)) {
		/* a held view read again from 0 shows that moment's figures,
		 * as /proc does: a monitor polls with pread, no open per look */
		if (off == 0 && h->read_once) {
			int rc = fs_res_text(h->res, h->dir, &h->data, NULL);

			if (rc == -ENOENT)
				return -ESTALE; /* its category was removed */
			if (rc)
				return rc;
		}
		h->read_once = true;
	}
	if (h->kind == FS_SCRATCH) {
		pthread_mutex_lock(&n->lock);
		src = &n->data;
	} else if (h->kind == FS_SESSION && !h->writable && h->sf != SF_NEIGHBORS) {
		/* read-only session handles read the live content; once their
		 * file is unlinked, what they read last */
		int64_t shown;

		pthread_mutex_lock(&n->lock);
		shown = n->mtime_ms[SF_STATUS];
		if (n->file_gen[h->sf] == h->file_gen) {
			if (h->sf == SF_RESPONSE && off == 0)
				fs_wait_pending(n, h->dir);
			buf_release(&h->data);
			fs_session_content(n, h->sf, &h->data);
		}
		changed = shown != n->mtime_ms[SF_STATUS];
		pthread_mutex_unlock(&n->lock);
		if (changed) /* a coalesced fill's answer arrived */
			fs_kcache_session(h->dir, h->name, h->sf);
	}
	len = (size_t)off >= src->len ? 0 : src->len - (size_t)off;
	if (len > size)
		len = size;
	if (len)
		memcpy(out, src->data + off, len);
	if (h->kind == FS_SCRATCH)
		pthread_mutex_unlock(&n->lock);
	return (int)len;
}

int fs_read(const char *path, char *out, size_t size, off_t off,
	    struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_handle *h = fs_handle(fi);
	int rc;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	rc = do_read(h, out, size, off);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int fs_write(const char *path, const char *data, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_handle *h = fs_handle(fi);
	int rc;

	if (!h->writable)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	if ((uint64_t)off > (uint64_t)h->limit || size > (uint64_t)h->limit - (uint64_t)off) {
		h->failed = -EFBIG; /* a truncated query or answer is never used */
		rc = -EFBIG;
	} else if (h->kind == FS_SCRATCH) {
		pthread_mutex_lock(&h->node->lock);
		rc = fs_scratch_write(h->node, data, size, off);
		pthread_mutex_unlock(&h->node->lock);
	} else if (h->kind == FS_SESSION && (h->sf == SF_QUERY || h->sf == SF_RESPONSE)) {
		rc = fs_session_write(h, data, size, off);
	} else {
		rc = buf_write(&h->data, data, size, off);
		h->dirty = true;
		h->written = true;
	}
	pthread_mutex_unlock(&h->lock);
	return rc ? rc : (int)size;
}

/* Commit what a handle wrote: the protocol step, the policy, a load
 * report, a purge. h->lock held. */
static int do_flush(struct fs_handle *h)
{
	int rc = 0;

	if (!h->writable)
		return 0;
	if (h->failed)
		return h->failed;
	if (!h->dirty)
		return 0;
	h->dirty = false;
	switch (h->kind) {
	case FS_SESSION:
		rc = fs_session_commit(h);
		break;
	case FS_POLICY:
		/* A shell's `> policy.yaml` closes a duplicate descriptor before
		 * it writes: an unwritten truncation waits for release, so the
		 * policy never passes through an empty state. */
		if (!h->written) {
			h->dirty = true;
			break;
		}
		rc = cache_policy_put(fs_st()->cache, h->dir,
				      h->data.data ? h->data.data : "", h->data.len, &h->who);
		break;
	case FS_LOAD_FILE: {
		char num[FS_LOAD_MAX_BYTES + 1], *end;
		double load;

		if (!h->written)
			break;
		if (h->data.len)
			memcpy(num, h->data.data, h->data.len);
		num[h->data.len] = '\0';
		errno = 0;
		load = strtod(num, &end);
		while (*end == ' ' || *end == '\n' || *end == '\t')
			end++;
		if (errno || end == num || *end)
			rc = -EINVAL;
		else
			rc = cache_load_report(fs_st()->cache, h->dir, load);
		break;
	}
	case FS_PURGE: {
		int64_t n = cache_purge(fs_st()->cache, h->dir, &h->who);

		rc = n < 0 ? (int)n : 0;
		fs_kcache_category(h->dir);
		break;
	}
	default:
		break;
	}
	return rc;
}

int fs_flush(const char *path, struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_handle *h = fs_handle(fi);
	int rc;

	pthread_mutex_lock(&h->lock);
	rc = do_flush(h);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int fs_release(const char *path, struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_handle *h = fs_handle(fi);

	/* the last request on the descriptor: nothing else holds h->lock */
	if (h->kind == FS_POLICY && h->writable && h->dirty && !h->written &&
	    !h->failed) /* truncated to empty; as its opener (a release has no caller) */
		cache_policy_put(fs_st()->cache, h->dir, "", 0, &h->who);
	if (h->node)
		node_put(h->node, true);
	buf_release(&h->answer);
	if (h->pending) {
		node_unlink(h->pending);
		node_put(h->pending, false);
	}
	buf_release(&h->data);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return 0;
}

/* fsync commits like a close (flush); on a NAME.response descriptor with
 * nothing unstored it says whether its answer for the session's last
 * lookup is durable (fs_fill_synced). */
int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	fs_count_request();
	struct fs_handle *h = fs_handle(fi);
	int rc;

	pthread_mutex_lock(&h->lock);
	if (h->kind == FS_SESSION && h->sf == SF_RESPONSE && h->writable &&
	    !h->failed && !h->dirty)
		rc = fs_fill_synced(h);
	else
		rc = do_flush(h);
	pthread_mutex_unlock(&h->lock);
	return rc;
}
