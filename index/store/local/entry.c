/*
 * entry.c - the local store's entries: put, delete, hit counters, scans,
 * texts and responses.
 *
 * How: a put takes its id from the in-memory counter under the mutex, writes
 * the blob without it (blob.c), then inserts the row (with the filler's
 * uid) under it; the insert checks in SQL that the category exists, and a
 * failed insert removes the blob again. A delete removes the row, then the
 * blob; on a full disk it gives up reserve chunks and retries (reserve.c),
 * and returns the errno when even that fails (the entry then stays). A
 * blob that cannot be unlinked is recorded in the orphans table and
 * removed at a later delete or open. Hit counters are batched into one
 * transaction that is not fsync'd even with sync_full (synchronous=NORMAL
 * for it; setting FULL back is checked, and retried before the next
 * durable write, which fails rather than commit without it). A scan runs
 * its callback with the mutex held, with vec pointing into SQLite's row
 * (copied to an aligned buffer when it is not float-aligned).
 *
 * What not: no eviction policy (the engine decides what to delete), no
 * reading of responses under the mutex (blob.c reads the file).
 */
#include "local_i.h"
#include "semlog.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int local_entry_put(struct store *store, struct store_entry *e,
		    const struct store_payload *p)
{
	struct store_local *s = local_of(store);
	sqlite3_stmt *st;
	char what[48];
	int64_t id;
	int rc, ret;

	if (!s || store_payload_check(e, p))
		return -EINVAL;

	local_lock(s);
	id = s->next_id++;
	local_unlock(s);

	ret = local_blob_write(s, id, p->response, p->response_len);
	if (ret)
		return ret;

	local_lock(s);
	ret = local_sync_restore(s);
	if (ret) {
		local_unlock(s);
		local_blob_unlink(s, id);
		return ret;
	}
	st = s->st[ST_ENT_INSERT];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, e->cat_id);
	sqlite3_bind_int64(st, 3, e->created_ms);
	sqlite3_bind_int64(st, 4, e->last_hit_ms);
	sqlite3_bind_int64(st, 5, e->hits);
	sqlite3_bind_int64(st, 6, (int64_t)p->response_len);
	sqlite3_bind_int64(st, 7, local_u64_to_i64(e->key[0]));
	sqlite3_bind_int64(st, 8, local_u64_to_i64(e->key[1]));
	sqlite3_bind_int64(st, 9, local_u64_to_i64(e->ctx_hash));
	sqlite3_bind_int64(st, 10, p->dim);
	sqlite3_bind_text(st, 11, p->embedder, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 12, p->dim ? (const void *)p->vec : "",
			  p->dim * (int)sizeof(float), SQLITE_STATIC);
	sqlite3_bind_blob(st, 13, p->query_len ? p->query : "",
			  (int)p->query_len, SQLITE_STATIC);
	if (p->context)
		sqlite3_bind_blob(st, 14, p->context_len ? p->context : "",
				  (int)p->context_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 14);
	sqlite3_bind_int64(st, 15, (int64_t)e->uid);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		snprintf(what, sizeof(what), "insert entry %lld",
			 (long long)id);
		ret = local_sq_fail(s, rc, what);
	}
	else if (sqlite3_changes(s->db) == 0)
		ret = -ENOENT;  /* no such category */
	local_stmt_done(st);
	local_unlock(s);
	if (ret) {
		local_blob_unlink(s, id);
		return ret;
	}
	e->id = id;
	e->bytes = (int64_t)p->response_len;
	return 0;
}

int local_entry_delete(struct store *store, int64_t id)
{
	struct store_local *s = local_of(store);
	int ret;

	if (!s)
		return -EINVAL;
	local_lock(s);
	ret = local_sync_restore(s);
	if (!ret) {
		sqlite3_bind_int64(s->st[ST_ENT_DELETE], 1, id);
		ret = local_delete_exec(s, ST_ENT_DELETE, "delete entry");
	}
	if (!ret && sqlite3_changes(s->db) == 0)
		ret = -ENOENT;
	local_unlock(s);
	if (ret)
		return ret;
	local_blob_drop(s, id);
	local_lock(s);
	local_reserve_retake(s);
	if (s->have_orphans)
		local_orphans_retry(s);
	local_unlock(s);
	return 0;
}

void local_blob_drop(struct store_local *s, int64_t id)
{
	int rc;

	if (!local_blob_unlink(s, id))
		return;
	local_lock(s);
	sqlite3_bind_int64(s->st[ST_ORPHAN_ADD], 1, id);
	rc = sqlite3_step(s->st[ST_ORPHAN_ADD]);
	local_stmt_done(s->st[ST_ORPHAN_ADD]);
	if (rc == SQLITE_DONE) {
		s->have_orphans = true;
		semlog(SEMLOG_WARN, "store: the blob of deleted entry %lld stays "
		       "for now; it is removed at a later delete or open",
		       (long long)id);
	} else {
		/* then the next open looks for orphans itself */
		s->orphans_lost = true;
		semlog(SEMLOG_ERR, "store: cannot record the blob of deleted "
		       "entry %lld for removal (%s); the next open checks the "
		       "store", (long long)id, sqlite3_errmsg(s->db));
	}
	local_unlock(s);
}

void local_orphans_retry(struct store_local *s)
{
	sqlite3_stmt *st = s->st[ST_ORPHAN_LIST];
	struct local_ids ids = { 0 };
	bool left = false;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (local_ids_push(&ids, sqlite3_column_int64(st, 0)))
			break;
	local_stmt_done(st);
	for (size_t i = 0; i < ids.n; i++) {
		if (local_blob_unlink(s, ids.v[i])) {
			left = true;
			continue;
		}
		sqlite3_bind_int64(s->st[ST_ORPHAN_DEL], 1, ids.v[i]);
		if (local_stmt_exec(s, ST_ORPHAN_DEL, "forget a removed orphan"))
			left = true;
	}
	s->have_orphans = left || ids.n == 1024 || rc != SQLITE_DONE;
	free(ids.v);
}

int local_sync_restore(struct store_local *s)
{
	int rc;

	if (!s->sync_normal)
		return 0;
	rc = sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return local_sq_fail(s, rc, "set synchronous=FULL again (the "
				     "write waits for it)");
	s->sync_normal = false;
	return 0;
}

int local_entry_touch(struct store *store, struct store_touch *t, size_t n)
{
	struct store_local *s = local_of(store);
	sqlite3_stmt *st;
	int ret;

	if (!s || (n && !t))
		return -EINVAL;
	if (!n)
		return 0;
	local_lock(s);
	/* Hit counters are not worth an fsync, even with sync_full; the
	 * next synchronous commit covers them. */
	if (s->sync_full &&
	    sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
			 NULL) == SQLITE_OK)
		s->sync_normal = true;
	ret = local_tx_begin(s);
	if (ret)
		goto out;
	st = s->st[ST_ENT_TOUCH];
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, t[i].id);
		sqlite3_bind_int64(st, 2, t[i].last_hit_ms);
		sqlite3_bind_int64(st, 3, t[i].hits);
		ret = local_stmt_exec(s, ST_ENT_TOUCH, "update hit counters");
		if (ret) {
			local_tx_rollback(s);
			goto out;
		}
	}
	ret = local_tx_commit(s);
out:
	/* checked: a failure is retried before the next durable write */
	if (local_sync_restore(s) && !ret)
		ret = -EIO;
	local_unlock(s);
	return ret;
}

int local_entry_scan(struct store *store, int64_t cat_id, int64_t min_id,
		     store_scan_cb *cb, void *arg)
{
	struct store_local *s = local_of(store);
	struct store_entry e;
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !cb)
		return -EINVAL;
	/* cb runs with mu held (vec points into SQLite's row buffer); a
	 * store call from cb is a programmer error caught by lock(). */
	local_lock(s);
	local_db_mmap(s->db, true);
	st = s->st[ST_ENT_SCAN];
	sqlite3_bind_int64(st, 1, cat_id);
	sqlite3_bind_int64(st, 2, min_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *vec = sqlite3_column_blob(st, 11);
		int vbytes = sqlite3_column_bytes(st, 11);
		int64_t dim = sqlite3_column_int64(st, 9);
		const char *emb = (const char *)sqlite3_column_text(st, 10);

		e.id = sqlite3_column_int64(st, 0);
		if (dim < 0 || dim > INT_MAX / (int64_t)sizeof(float) ||
		    vbytes != dim * (int64_t)sizeof(float)) {
			semlog(SEMLOG_ERR, "store: entry %lld: vector has %d bytes but dim "
				  "%lld needs %lld; skipping the entry",
				  (long long)e.id, vbytes, (long long)dim,
				  (long long)dim * (long long)sizeof(float));
			continue;
		}
		if ((uintptr_t)vec % _Alignof(float)) {
			if ((size_t)vbytes > s->scan_cap) {
				float *nb = realloc(s->scan_buf, vbytes);

				if (!nb) {
					ret = -ENOMEM;
					break;
				}
				s->scan_buf = nb;
				s->scan_cap = (size_t)vbytes;
			}
			memcpy(s->scan_buf, vec, vbytes);
			vec = s->scan_buf;
		}
		e.cat_id = sqlite3_column_int64(st, 1);
		e.created_ms = sqlite3_column_int64(st, 2);
		e.last_hit_ms = sqlite3_column_int64(st, 3);
		e.hits = sqlite3_column_int64(st, 4);
		e.bytes = sqlite3_column_int64(st, 5);
		e.key[0] = local_i64_to_u64(sqlite3_column_int64(st, 6));
		e.key[1] = local_i64_to_u64(sqlite3_column_int64(st, 7));
		e.ctx_hash = local_i64_to_u64(sqlite3_column_int64(st, 8));
		e.uid = (uid_t)sqlite3_column_int64(st, 12);
		ret = cb(arg, &e, dim ? vec : NULL, (int)dim, emb ? emb : "");
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = local_sq_fail(s, rc, "scan entries");
	local_stmt_done(st);
	local_db_mmap(s->db, false);
	local_unlock(s);
	return ret;
}

int local_response_read(struct store *store, int64_t id, const uint64_t *key,
			void **buf, size_t *len)
{
	struct store_local *s = local_of(store);

	if (!s || !buf || !len)
		return -EINVAL;
	*buf = NULL;
	*len = 0;
	return local_blob_read(s, id, buf, len);
}

int local_entry_text(struct store *store, int64_t id, char **query,
		     size_t *query_len, char **ctx, size_t *ctx_len)
{
	struct store_local *s = local_of(store);
	sqlite3_stmt *st;
	int ret;

	if (!s)
		return -EINVAL;
	if (query)
		*query = NULL;
	if (ctx)
		*ctx = NULL;
	if (ctx_len)
		*ctx_len = 0;
	local_lock(s);
	st = s->st[ST_ENT_TEXT];
	sqlite3_bind_int64(st, 1, id);
	ret = local_stmt_row(s, st, "read entry text");
	if (ret > 0) {
		ret = 0;
		if (query)
			ret = local_column_copy(st, 0, query, query_len);
		if (!ret && ctx &&
		    sqlite3_column_type(st, 1) != SQLITE_NULL)
			ret = local_column_copy(st, 1, ctx, ctx_len);
	}
	local_stmt_done(st);
	local_unlock(s);
	if (ret && query) {
		free(*query);
		*query = NULL;
	}
	return ret;
}
