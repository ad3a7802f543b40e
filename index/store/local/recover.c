/*
 * recover.c - the local store's check after an unclean stop.
 *
 * An open that finds no clean marker (or that repaired the database) runs
 * local_recover: it lists the entry ids, walks blobs/00..ff removing temp
 * files and blobs without a row (a put writes its blob before its row, so a
 * crash between the two leaves such an orphan), then drops, in one
 * transaction, the rows whose blob is missing. Files whose name is not an
 * id are logged and left alone. After a clean close, open skips all this.
 *
 * What not: blobs are not read or checksummed here (a damaged blob is found
 * when it is read, -EBADMSG); it runs inside store_open, before any caller.
 */
#include "local_i.h"
#include "fileio.h"
#include "semlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int local_recover(struct store_local *s, struct store_report *rep, char *err,
		  size_t errlen)
{
	struct local_ids rows = { 0 };
	int64_t *ids;
	unsigned char *seen = NULL;
	size_t n;
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(s->db, "SELECT id FROM entries ORDER BY id",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (local_ids_push(&rows, sqlite3_column_int64(st, 0))) {
			ret = -ENOMEM;
			errbuf_set(err, errlen, "store: recovery: out of "
				"memory listing entries");
			goto out;
		}
		rc = SQLITE_OK;
	}
	ids = rows.v;
	n = rows.n;
	if (rc != SQLITE_DONE) {
		ret = local_sq_errno(s->db, rc);
		errbuf_set(err, errlen, "store: recovery: list entries: %s",
			sqlite3_errmsg(s->db));
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	seen = calloc(n ? n : 1, 1);
	if (!seen) {
		ret = -ENOMEM;
		errbuf_set(err, errlen, "store: recovery: out of memory");
		goto out;
	}

	for (unsigned xx = 0; xx < 256; xx++) {
		char dname[16];
		struct dirent *de;
		DIR *d = local_blob_dir(s, xx, dname, 0);
		int fd;

		if (!d) {
			ret = -errno;
			errbuf_set(err, errlen, "store: recovery: open directory "
				"'%s/%s': %s", s->dir, dname, strerror(-ret));
			goto out;
		}
		fd = dirfd(d);
		while ((de = readdir(d))) {
			const char *name = de->d_name;
			int64_t id, *hit;
			bool orphan;

			if (!strcmp(name, ".") || !strcmp(name, ".."))
				continue;
			if (!strncmp(name, ".tmp.", 5)) {
				orphan = true;
			} else if (local_parse_id(name, &id)) {
				hit = ((local_i64_to_u64(id) & 0xff) != xx) ? NULL :
				      bsearch(&id, ids, n, sizeof(*ids),
					      local_cmp_i64);
				if (hit)
					seen[hit - ids] = 1;
				orphan = !hit;
			} else {
				semlog(SEMLOG_ERR, "store: recovery: leaving unknown file "
					  "'%s/%s/%s' alone", s->dir, dname,
					  name);
				continue;
			}
			if (!orphan)
				continue;
			if (unlinkat(fd, name, 0) < 0) {
				semlog(SEMLOG_ERR, "store: recovery: remove orphan blob "
					  "'%s/%s': %s", dname, name,
					  strerror(errno));
				continue;
			}
			rep->orphan_blobs++;
		}
		closedir(d);
	}

	ret = local_tx_begin(s);
	if (ret)
		goto out_msg;
	for (size_t i = 0; i < n; i++) {
		if (seen[i])
			continue;
		semlog(SEMLOG_ERR, "store: recovery: entry %lld has no blob 'blobs/%02x/%lld';"
			  " dropping the entry", (long long)ids[i],
			  (unsigned)(local_i64_to_u64(ids[i]) & 0xff),
			  (long long)ids[i]);
		sqlite3_bind_int64(s->st[ST_ENT_DELETE], 1, ids[i]);
		ret = local_stmt_exec(s, ST_ENT_DELETE, "drop entry without blob");
		if (ret) {
			local_tx_rollback(s);
			goto out_msg;
		}
		rep->dropped_entries++;
	}
	ret = local_tx_commit(s);
out_msg:
	if (ret)
		errbuf_set(err, errlen, "store: recovery: drop entries without "
			"blob in '%s/%s': %s", s->dir, STORE_DB_NAME,
			strerror(-ret));
out:
	sqlite3_finalize(st);
	free(seen);
	free(rows.v);
	return ret;
}
