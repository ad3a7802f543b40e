/*
 * category.c - the local store's categories and their policies.
 *
 * How: each call is one prepared statement (or one transaction) under the
 * store's mutex. Listing copies the rows out first, so the callback runs
 * without the mutex and may call back into the store. Deleting a category
 * (the root "/" is refused with -EBUSY) removes its entries in
 * transactions of STORE_DELETE_BATCH, unlinking their blobs without the
 * mutex after each (so that on a full disk each transaction fits a
 * reserve chunk and frees space for the next), then what is left with its
 * policy and its row in one last transaction; each is retried after giving
 * up reserve chunks (reserve.c). A failure leaves the category in place
 * with the entries not yet removed.
 *
 * What not: no path syntax checks beyond a leading '/' (the engine owns
 * names), no inheritance of policies (policy/ does that).
 */
#include "local_i.h"
#include "clock.h"
#include "semlog.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct cat_row {
	struct store_category c;
	char *path;
};

int local_category_list(struct store *store,
			int (*cb)(void *arg, const struct store_category *c),
			void *arg)
{
	struct store_local *s = local_of(store);
	struct cat_row *rows = NULL, *nrows;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !cb)
		return -EINVAL;
	/* Copy the rows out so that cb may call back into the store. */
	local_lock(s);
	st = s->st[ST_CAT_LIST];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 1);

		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nrows = realloc(rows, cap * sizeof(*rows));
			if (!nrows) {
				ret = -ENOMEM;
				break;
			}
			rows = nrows;
		}
		rows[n].path = strdup(p ? p : "");
		if (!rows[n].path) {
			ret = -ENOMEM;
			break;
		}
		rows[n].c.id = sqlite3_column_int64(st, 0);
		rows[n].c.mode = (mode_t)sqlite3_column_int64(st, 2) & 07777;
		rows[n].c.uid = (uid_t)sqlite3_column_int64(st, 3);
		rows[n].c.gid = (gid_t)sqlite3_column_int64(st, 4);
		rows[n].c.created_ms = sqlite3_column_int64(st, 5);
		n++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = local_sq_fail(s, rc, "list categories");
	local_stmt_done(st);
	local_unlock(s);

	for (size_t i = 0; i < n && !ret; i++) {
		rows[i].c.path = rows[i].path;
		ret = cb(arg, &rows[i].c);
	}
	for (size_t i = 0; i < n; i++)
		free(rows[i].path);
	free(rows);
	return ret;
}

int local_category_create(struct store *store, const char *path, mode_t mode,
			  uid_t uid, gid_t gid, int64_t *id_out)
{
	struct store_local *s = local_of(store);
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !path || path[0] != '/')
		return -EINVAL;
	local_lock(s);
	st = s->st[ST_CAT_INSERT];
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)(mode & 07777));
	sqlite3_bind_int64(st, 3, (int64_t)uid);
	sqlite3_bind_int64(st, 4, (int64_t)gid);
	sqlite3_bind_int64(st, 5, clock_wall_ms());
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		if (id_out)
			*id_out = sqlite3_last_insert_rowid(s->db);
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		ret = -EEXIST;
	} else {
		ret = local_sq_fail(s, rc, "create category");
	}
	local_stmt_done(st);
	local_unlock(s);
	return ret;
}

/* Collect the entry ids statement id gives for category cat_id (?1),
 * at most limit (?2) when limit > 0. Call with mu held. */
static int cat_entry_ids(struct store_local *s, enum stmt_id id,
			 int64_t cat_id, int64_t limit, struct local_ids *ids)
{
	sqlite3_stmt *st = s->st[id];
	int rc, ret = 0;

	sqlite3_bind_int64(st, 1, cat_id);
	if (limit > 0)
		sqlite3_bind_int64(st, 2, limit);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ret = local_ids_push(ids, sqlite3_column_int64(st, 0));
	if (!ret && rc != SQLITE_DONE)
		ret = local_sq_fail(s, rc, "list entries of category");
	local_stmt_done(st);
	return ret;
}

/* One try of store_category_delete. Call with mu held; on success ids
 * holds the ids whose blobs the caller unlinks (and frees). */
static int category_delete_tx(struct store_local *s, int64_t cat_id,
			      struct local_ids *ids)
{
	sqlite3_stmt *st = s->st[ST_CAT_EXISTS];
	int ret;

	*ids = (struct local_ids){ 0 };
	ret = local_tx_begin(s);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, cat_id);
	ret = local_stmt_row(s, st, "look up category");
	if (ret > 0) {
		const char *p = (const char *)sqlite3_column_text(st, 0);

		/* the root category stays */
		ret = p && !strcmp(p, "/") ? -EBUSY : 0;
	}
	local_stmt_done(st);
	if (ret)
		goto out_rollback;
	ret = cat_entry_ids(s, ST_ENT_IDS_CAT, cat_id, 0, ids);
	if (ret)
		goto out_rollback;
	sqlite3_bind_int64(s->st[ST_ENT_DELETE_CAT], 1, cat_id);
	ret = local_stmt_exec(s, ST_ENT_DELETE_CAT, "delete entries of category");
	if (ret)
		goto out_rollback;
	sqlite3_bind_int64(s->st[ST_POL_DELETE], 1, cat_id);
	ret = local_stmt_exec(s, ST_POL_DELETE, "delete policy of category");
	if (ret)
		goto out_rollback;
	sqlite3_bind_int64(s->st[ST_CAT_DELETE], 1, cat_id);
	ret = local_stmt_exec(s, ST_CAT_DELETE, "delete category");
	if (ret)
		goto out_rollback;
	ret = local_tx_commit(s);
	if (ret)
		goto out_free;
	return 0;

out_rollback:
	local_tx_rollback(s);
out_free:
	free(ids->v);
	*ids = (struct local_ids){ 0 };
	return ret;
}

/* Remove the first STORE_DELETE_BATCH entries of a category (their ids go
 * to ids). mu held. 0 with ids->n 0 once none is left. */
static int delete_batch(struct store_local *s, int64_t cat_id,
			struct local_ids *ids)
{
	int ret;

	ids->n = 0;
	ret = cat_entry_ids(s, ST_ENT_IDS_BATCH, cat_id, STORE_DELETE_BATCH, ids);
	if (ret || !ids->n)
		return ret;
	sqlite3_bind_int64(s->st[ST_ENT_DELETE_UPTO], 1, cat_id);
	sqlite3_bind_int64(s->st[ST_ENT_DELETE_UPTO], 2, ids->v[ids->n - 1]);
	ret = local_delete_exec(s, ST_ENT_DELETE_UPTO, "delete entries of category");
	if (ret)
		ids->n = 0;
	return ret;
}

/* Unlink the blobs of ids without mu, then retake the reserve. */
static void drop_blobs(struct store_local *s, const struct local_ids *ids)
{
	local_unlock(s);
	for (size_t i = 0; i < ids->n; i++)
		local_blob_drop(s, ids->v[i]);
	local_lock(s);
	local_reserve_retake(s);
}

int local_category_delete(struct store *store, int64_t cat_id)
{
	struct store_local *s = local_of(store);
	struct local_ids ids = { 0 };
	sqlite3_stmt *st;
	int ret;

	if (!s)
		return -EINVAL;
	local_lock(s);
	ret = local_sync_restore(s);
	st = s->st[ST_CAT_EXISTS];
	sqlite3_bind_int64(st, 1, cat_id);
	if (!ret)
		ret = local_stmt_row(s, st, "look up category");
	if (ret > 0) {
		const char *p = (const char *)sqlite3_column_text(st, 0);

		/* the root category stays */
		ret = p && !strcmp(p, "/") ? -EBUSY : 0;
	}
	local_stmt_done(st);
	while (!ret) {
		ret = delete_batch(s, cat_id, &ids);
		if (ret || !ids.n)
			break;
		drop_blobs(s, &ids);
	}
	if (!ret) {
		free(ids.v);
		ret = category_delete_tx(s, cat_id, &ids);
		while (ret == -ENOSPC && local_reserve_give_up(s))
			ret = category_delete_tx(s, cat_id, &ids);
		if (!ret)
			drop_blobs(s, &ids);
	}
	if (!ret && s->have_orphans)
		local_orphans_retry(s);
	local_unlock(s);
	free(ids.v);
	return ret;
}

int local_category_setattr(struct store *store, int64_t cat_id, mode_t mode,
			   uid_t uid, gid_t gid)
{
	struct store_local *s = local_of(store);
	sqlite3_stmt *st;
	int ret;

	if (!s)
		return -EINVAL;
	local_lock(s);
	st = s->st[ST_CAT_SETATTR];
	sqlite3_bind_int64(st, 1, cat_id);
	sqlite3_bind_int64(st, 2, (int64_t)(mode & 07777));
	sqlite3_bind_int64(st, 3, (int64_t)uid);
	sqlite3_bind_int64(st, 4, (int64_t)gid);
	ret = local_stmt_exec(s, ST_CAT_SETATTR, "update category");
	if (!ret && sqlite3_changes(s->db) == 0)
		ret = -ENOENT;
	local_unlock(s);
	return ret;
}

int local_policy_get(struct store *store, int64_t cat_id, char **yaml,
		     size_t *len)
{
	struct store_local *s = local_of(store);
	sqlite3_stmt *st;
	int ret;

	if (!s || !yaml)
		return -EINVAL;
	*yaml = NULL;
	local_lock(s);
	st = s->st[ST_POL_GET];
	sqlite3_bind_int64(st, 1, cat_id);
	ret = local_stmt_row(s, st, "read policy");
	if (ret > 0)
		ret = local_column_copy(st, 0, yaml, len);
	local_stmt_done(st);
	local_unlock(s);
	return ret;
}

int local_policy_put(struct store *store, int64_t cat_id, const char *yaml,
		     size_t len)
{
	struct store_local *s = local_of(store);
	int ret;

	if (!s || len > INT_MAX)
		return -EINVAL;
	local_lock(s);
	if (!yaml) {
		sqlite3_bind_int64(s->st[ST_POL_DELETE], 1, cat_id);
		ret = local_stmt_exec(s, ST_POL_DELETE, "remove policy");
		if (!ret && sqlite3_changes(s->db) == 0)
			ret = -ENOENT;
		goto out;
	}
	sqlite3_bind_int64(s->st[ST_CAT_EXISTS], 1, cat_id);
	ret = local_stmt_row(s, s->st[ST_CAT_EXISTS], "look up category");
	local_stmt_done(s->st[ST_CAT_EXISTS]);
	if (ret < 0)
		goto out;
	sqlite3_bind_int64(s->st[ST_POL_PUT], 1, cat_id);
	/* a non-NULL pointer even for len 0: NULL would bind SQL NULL */
	sqlite3_bind_blob(s->st[ST_POL_PUT], 2, len ? yaml : "", (int)len,
			  SQLITE_STATIC);
	sqlite3_bind_int64(s->st[ST_POL_PUT], 3, clock_wall_ms());
	ret = local_stmt_exec(s, ST_POL_PUT, "write policy");
out:
	local_unlock(s);
	return ret;
}
