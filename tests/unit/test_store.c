/*
 * test_store.c - unit tests of the local store (index/store/local/).
 *
 * Each test works in a fresh directory under $TMPDIR (or /tmp) and removes
 * it afterwards. Crashes are simulated by a forked child that leaves with
 * _exit() without store_close(), or by removing the "clean" marker; damage
 * by editing blob files directly. The ENOSPC test mounts a 1 MiB tmpfs and
 * runs only as root; it says why when it skips.
 */
#include "store.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "local_test.h"

static void test_open_create(void)
{
	char dir[PATH_MAX], p[PATH_MAX];
	struct store_report rep;
	struct store *s;
	struct stat sb;
	struct cats k = { 0 };

	fresh_dir(dir, sizeof(dir), "create");
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(!rep.unclean);
	CHECK_EQ_INT(rep.entries, 0);
	CHECK(!strcmp(store_dir(s), dir));
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 07777) == 0700);
	pathf(p, sizeof(p), "%s/semcache.db", dir);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0600);
	pathf(p, sizeof(p), "%s/semcache.db-wal", dir);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0600);
	pathf(p, sizeof(p), "%s/clean", dir);
	CHECK(access(p, F_OK) < 0 && errno == ENOENT);
	CHECK_EQ_INT(store_category_list(s, cat_cb, &k), 0);
	CHECK_EQ_INT(k.n, 1);
	CHECK(k.root);
	CHECK_EQ_INT(store_category_list(s, stop_cb, NULL), 42);

	/* a second opener is kept out */
	{
		struct store *s2 = NULL;
		char err[256];

		CHECK_EQ_INT(store_open(dir, NULL, &s2, NULL, err,
					sizeof(err)), -EBUSY);
		CHECK(s2 == NULL);
		CHECK(strstr(err, dir) != NULL);
	}
	store_close(s);
	CHECK(access(p, F_OK) == 0);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0600);

	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(!rep.unclean);
	memset(&k, 0, sizeof(k));
	CHECK_EQ_INT(store_category_list(s, cat_cb, &k), 0);
	CHECK_EQ_INT(k.n, 1);
	store_close(s);
	store_close(NULL);
}

static void test_categories_policies(void)
{
	char dir[PATH_MAX], *y;
	struct store *s;
	struct cats k = { 0 };
	int64_t a, b, a2;
	size_t len;
	const char bin[] = "x: 1\0y";

	fresh_dir(dir, sizeof(dir), "cats");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	CHECK_EQ_INT(store_category_create(s, "/code", 0750, 1000, 100, &a),
		     0);
	CHECK_EQ_INT(store_category_create(s, "/code/python", 0700, 1, 2,
					   &b), 0);
	CHECK(a > 0 && b > a);
	CHECK_EQ_INT(store_category_create(s, "/code", 0755, 0, 0, NULL),
		     -EEXIST);
	CHECK_EQ_INT(store_category_create(s, "/", 0755, 0, 0, NULL),
		     -EEXIST);
	CHECK_EQ_INT(store_category_create(s, "relative", 0755, 0, 0, NULL),
		     -EINVAL);
	k.want = "/code";
	CHECK_EQ_INT(store_category_list(s, cat_cb, &k), 0);
	CHECK_EQ_INT(k.n, 3);
	CHECK(k.found && k.want_c.id == a && k.want_c.mode == 0750 &&
	      k.want_c.uid == 1000 && k.want_c.gid == 100 &&
	      k.want_c.created_ms > 0);

	CHECK_EQ_INT(store_category_setattr(s, a, 01777 | S_IFDIR, 5, 6), 0);
	CHECK_EQ_INT(store_category_setattr(s, 99999, 0700, 5, 6), -ENOENT);

	CHECK_EQ_INT(store_policy_get(s, a, &y, &len), -ENOENT);
	CHECK(y == NULL);
	CHECK_EQ_INT(store_policy_put(s, a, "threshold: 0.9\n", 15), 0);
	CHECK_EQ_INT(store_policy_put(s, a, bin, sizeof(bin)), 0);
	CHECK_EQ_INT(store_policy_get(s, a, &y, &len), 0);
	CHECK(y && len == sizeof(bin) && !memcmp(y, bin, len) &&
	      y[len] == '\0');
	free(y);
	CHECK_EQ_INT(store_policy_put(s, b, "", 0), 0);
	CHECK_EQ_INT(store_policy_get(s, b, &y, &len), 0);
	CHECK(y && len == 0 && y[0] == '\0');
	free(y);
	CHECK_EQ_INT(store_policy_put(s, b, NULL, 0), 0);
	CHECK_EQ_INT(store_policy_get(s, b, &y, &len), -ENOENT);
	CHECK_EQ_INT(store_policy_put(s, b, NULL, 0), -ENOENT);
	CHECK_EQ_INT(store_policy_put(s, 99999, "a: 1", 4), -ENOENT);
	store_close(s);

	/* persistence across a clean close */
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	memset(&k, 0, sizeof(k));
	k.want = "/code";
	CHECK_EQ_INT(store_category_list(s, cat_cb, &k), 0);
	CHECK_EQ_INT(k.n, 3);
	CHECK(k.found && k.want_c.mode == 01777 && k.want_c.uid == 5 &&
	      k.want_c.gid == 6);
	CHECK_EQ_INT(store_policy_get(s, a, &y, &len), 0);
	CHECK(y && len == sizeof(bin) && !memcmp(y, bin, len));
	free(y);

	/* delete takes entries, policy and blobs with it */
	{
		int64_t id1, id2, id3;
		char bp[PATH_MAX];
		struct seen sn;
		void *buf;

		CHECK_EQ_INT(put_n(s, a, 1, &id1), 0);
		CHECK_EQ_INT(put_n(s, a, 2, &id2), 0);
		CHECK_EQ_INT(put_n(s, b, 3, &id3), 0);
		CHECK_EQ_INT(store_category_delete(s, a), 0);
		CHECK_EQ_INT(store_category_delete(s, a), -ENOENT);
		CHECK_EQ_INT(store_category_delete(s, 1), -EBUSY);
		CHECK_EQ_INT(store_policy_get(s, a, &y, &len), -ENOENT);
		CHECK_EQ_INT(store_response_read(s, id1, NULL, &buf, &len),
			     -ENOENT);
		blob_path(bp, sizeof(bp), dir, id2);
		CHECK(access(bp, F_OK) < 0 && errno == ENOENT);
		CHECK_EQ_INT(scan_all(s, a, &sn), 0);
		CHECK_EQ_INT(sn.n, 0);
		CHECK_EQ_INT(scan_all(s, b, &sn), 0);
		CHECK_EQ_INT(sn.n, 1);
		CHECK(response_is(s, id3, 3));
		/* an entry needs an existing category */
		CHECK_EQ_INT(put_n(s, a, 4, NULL), -ENOENT);
		CHECK_EQ_INT(store_category_create(s, "/code", 0755, 0, 0,
						   &a2), 0);
		CHECK(a2 != a);
	}
	store_close(s);
}

static void test_entries(void)
{
	char dir[PATH_MAX], *q, *c;
	struct store_report rep;
	struct store *s;
	struct seen sn;
	float v[DIM];
	size_t ql, cl, len, big = 1 << 20;
	unsigned char *resp;
	void *buf;
	int64_t ids[3];
	struct store_entry e = { .cat_id = 1, .created_ms = 1234567890123,
				 .last_hit_ms = 7, .hits = 3,
				 .key = { 0xfedcba9876543210ull,
					  0x8000000000000001ull },
				 .ctx_hash = 0xffffffffffffffffull };
	const char ctx[] = "ctx\0with nul";
	struct store_payload p = { .query = "what is\0binary", .query_len = 14,
				   .context = ctx, .context_len = sizeof(ctx),
				   .vec = v, .dim = DIM,
				   .embedder = "builtin-v1" };

	fresh_dir(dir, sizeof(dir), "entries");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	/* quotas are the engine's with a local store: nothing done here */
	{
		struct store_quota sq = { .entries = 1 };
		int64_t ev[4];
		size_t nev = 9;
		bool gone = true;

		CHECK(!store_keeps_quotas(s));
		CHECK_EQ_INT(store_quota_enforce(s, 1, &sq, ev, 4, &nev, &gone),
			     -ENOTSUP);
		CHECK(nev == 0 && !gone);
	}
	make_vec(v, 42);
	resp = malloc(big);
	for (size_t i = 0; i < big; i++)
		resp[i] = (unsigned char)(i * 131 + (i >> 9));
	resp[0] = 0;
	resp[big - 1] = 0;
	p.response = resp;
	p.response_len = big;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	ids[0] = e.id;
	CHECK(e.id > 0);
	CHECK_EQ_INT(e.bytes, (int64_t)big);

	/* a small binary response, without context */
	p.context = NULL;
	p.context_len = 0;
	p.response = "a\0b\0\xff";
	p.response_len = 5;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	ids[1] = e.id;
	/* an empty response with an empty (not absent) context */
	p.context = "";
	p.response = NULL;
	p.response_len = 0;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	ids[2] = e.id;
	CHECK(ids[0] < ids[1] && ids[1] < ids[2]);

	CHECK_EQ_INT(scan_all(s, 1, &sn), 0);
	CHECK_EQ_INT(sn.n, 3);
	CHECK(sn.ordered);
	CHECK(sn.last.id == ids[2] && sn.last.cat_id == 1 &&
	      sn.last.created_ms == 1234567890123 &&
	      sn.last.last_hit_ms == 7 && sn.last.hits == 3 &&
	      sn.last.bytes == 0 &&
	      sn.last.key[0] == 0xfedcba9876543210ull &&
	      sn.last.key[1] == 0x8000000000000001ull &&
	      sn.last.ctx_hash == 0xffffffffffffffffull);
	CHECK_EQ_INT(sn.dim, DIM);
	CHECK(!memcmp(sn.vec, v, sizeof(v)));
	CHECK(!strcmp(sn.emb, "builtin-v1"));
	/* min_id */
	memset(&sn, 0, sizeof(sn));
	CHECK_EQ_INT(store_entry_scan(s, 1, ids[1], collect, &sn), 0);
	CHECK_EQ_INT(sn.n, 1);

	CHECK_EQ_INT(store_response_read(s, ids[0], NULL, &buf, &len), 0);
	CHECK(len == big && !memcmp(buf, resp, big));
	free(buf);
	CHECK_EQ_INT(store_response_read(s, ids[1], NULL, &buf, &len), 0);
	CHECK(len == 5 && !memcmp(buf, "a\0b\0\xff", 5));
	free(buf);
	CHECK_EQ_INT(store_response_read(s, ids[2], NULL, &buf, &len), 0);
	CHECK(buf != NULL && len == 0);
	free(buf);

	CHECK_EQ_INT(store_entry_text(s, ids[0], &q, &ql, &c, &cl), 0);
	CHECK(ql == 14 && !memcmp(q, "what is\0binary", 14) && q[14] == 0);
	CHECK(c && cl == sizeof(ctx) && !memcmp(c, ctx, cl));
	free(q);
	free(c);
	CHECK_EQ_INT(store_entry_text(s, ids[1], NULL, NULL, &c, &cl), 0);
	CHECK(c == NULL && cl == 0);
	CHECK_EQ_INT(store_entry_text(s, ids[2], NULL, NULL, &c, &cl), 0);
	CHECK(c != NULL && cl == 0);
	free(c);
	CHECK_EQ_INT(store_entry_text(s, 99999, &q, &ql, NULL, NULL),
		     -ENOENT);

	/* delete */
	CHECK_EQ_INT(store_entry_delete(s, ids[1]), 0);
	CHECK_EQ_INT(store_response_read(s, ids[1], NULL, &buf, &len), -ENOENT);
	CHECK_EQ_INT(store_entry_delete(s, ids[1]), -ENOENT);
	CHECK_EQ_INT(store_entry_text(s, ids[1], &q, &ql, NULL, NULL),
		     -ENOENT);

	/* touch */
	{
		struct store_touch t[] = { { ids[0], 5555, 10 },
					   { ids[2], 6666, 20 },
					   { 99999, 1, 1 } };

		CHECK_EQ_INT(store_entry_touch(s, t, 3), 0);
		CHECK_EQ_INT(store_entry_touch(s, NULL, 0), 0);
	}
	/* bad input is refused, not fatal */
	p.dim = -1;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), -EINVAL);
	p.dim = DIM;
	p.embedder = NULL;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), -EINVAL);
	store_close(s);

	/* reopen: everything persisted, deleted ids are not reused */
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(!rep.unclean);
	CHECK_EQ_INT(rep.entries, 2);
	CHECK_EQ_INT(scan_all(s, 1, &sn), 0);
	CHECK_EQ_INT(sn.n, 2);
	CHECK(sn.ids[0] == ids[0] && sn.ids[1] == ids[2]);
	CHECK(sn.last.last_hit_ms == 6666 && sn.last.hits == 20);
	CHECK_EQ_INT(store_response_read(s, ids[0], NULL, &buf, &len), 0);
	CHECK(len == big && !memcmp(buf, resp, big));
	free(buf);
	CHECK_EQ_INT(store_entry_delete(s, ids[2]), 0);
	store_close(s);
	CHECK_EQ_INT(open_store(dir, true, &s, &rep), 0);
	p.embedder = "builtin-v1";
	p.response = "x";
	p.response_len = 1;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	CHECK(e.id > ids[2]);
	store_close(s);
	free(resp);
}

static void test_crash(void)
{
	char dir[PATH_MAX];
	struct store_report rep;
	struct store *s;
	struct seen sn;
	int status, n = 300;
	pid_t pid;

	fresh_dir(dir, sizeof(dir), "crash");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	store_close(s);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (open_store(dir, false, &s, NULL))
			_exit(2);
		for (int i = 0; i < n; i++)
			if (put_n(s, 1, i, NULL))
				_exit(3);
		_exit(0);  /* no store_close: a crash */
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(rep.unclean);
	CHECK_EQ_INT(rep.entries, n);
	CHECK_EQ_INT(rep.orphan_blobs, 0);
	CHECK_EQ_INT(rep.dropped_entries, 0);
	CHECK_EQ_INT(scan_all(s, 1, &sn), 0);
	CHECK_EQ_INT(sn.n, n);
	{
		int bad = 0;

		for (int i = 0; i < n && i < sn.n; i++)
			bad += !response_is(s, sn.ids[i], i);
		CHECK_EQ_INT(bad, 0);
	}
	store_close(s);
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(!rep.unclean);
	store_close(s);
}

static void test_recovery(void)
{
	char dir[PATH_MAX], p[PATH_MAX];
	struct store_report rep;
	struct store *s;
	struct seen sn;
	int64_t ids[5];

	fresh_dir(dir, sizeof(dir), "recover");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(put_n(s, 1, i, &ids[i]), 0);
	store_close(s);

	/* junk: an orphan blob, a temp file, a misplaced blob, a foreign
	 * file; and one blob missing */
	pathf(p, sizeof(p), "%s/blobs/3f/999999", dir);
	write_file(p, "SCB1junk", 8);
	pathf(p, sizeof(p), "%s/blobs/00/.tmp.12345", dir);
	write_file(p, "SCB1", 4);
	pathf(p, sizeof(p), "%s/blobs/00/%lld", dir, (long long)ids[1]);
	write_file(p, "SCB1", 4);
	pathf(p, sizeof(p), "%s/blobs/00/README", dir);
	write_file(p, "hi", 2);
	blob_path(p, sizeof(p), dir, ids[3]);
	CHECK(unlink(p) == 0);

	/* after a clean close nothing is scanned */
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(!rep.unclean);
	CHECK_EQ_INT(rep.orphan_blobs, 0);
	CHECK_EQ_INT(rep.entries, 5);
	store_close(s);

	drop_marker(dir);
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK(rep.unclean);
	CHECK_EQ_INT(rep.orphan_blobs, 3);
	CHECK_EQ_INT(rep.dropped_entries, 1);
	CHECK_EQ_INT(rep.entries, 4);
	pathf(p, sizeof(p), "%s/blobs/3f/999999", dir);
	CHECK(access(p, F_OK) < 0);
	pathf(p, sizeof(p), "%s/blobs/00/.tmp.12345", dir);
	CHECK(access(p, F_OK) < 0);
	pathf(p, sizeof(p), "%s/blobs/00/README", dir);
	CHECK(access(p, F_OK) == 0);
	CHECK_EQ_INT(scan_all(s, 1, &sn), 0);
	CHECK_EQ_INT(sn.n, 4);
	for (int i = 0; i < sn.n; i++)
		CHECK(sn.ids[i] != ids[3]);
	CHECK(response_is(s, ids[1], 1));
	CHECK_EQ_INT(store_entry_text(s, ids[3], NULL, NULL, NULL, NULL),
		     -ENOENT);
	store_close(s);
}

static void test_damage(void)
{
	char dir[PATH_MAX], p[PATH_MAX];
	struct store *s;
	int64_t ids[4];
	void *buf;
	size_t len;

	fresh_dir(dir, sizeof(dir), "damage");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(put_n(s, 1, i, &ids[i]), 0);

	blob_path(p, sizeof(p), dir, ids[0]);
	flip_byte(p, 24);           /* payload */
	CHECK_EQ_INT(store_response_read(s, ids[0], NULL, &buf, &len), -EBADMSG);
	CHECK(buf == NULL);
	blob_path(p, sizeof(p), dir, ids[1]);
	flip_byte(p, 1);            /* magic */
	CHECK_EQ_INT(store_response_read(s, ids[1], NULL, &buf, &len), -EBADMSG);
	blob_path(p, sizeof(p), dir, ids[2]);
	CHECK(truncate(p, 22) == 0);
	CHECK_EQ_INT(store_response_read(s, ids[2], NULL, &buf, &len), -EBADMSG);
	CHECK(truncate(p, 10) == 0);
	CHECK_EQ_INT(store_response_read(s, ids[2], NULL, &buf, &len), -EBADMSG);
	CHECK(truncate(p, 0) == 0);
	CHECK_EQ_INT(store_response_read(s, ids[2], NULL, &buf, &len), -EBADMSG);
	CHECK(response_is(s, ids[3], 3));
	CHECK_EQ_INT(store_response_read(s, 424242, NULL, &buf, &len), -ENOENT);
	store_close(s);

	/* a damaged database is moved aside (never deleted) and rebuilt */
	{
		char db[PATH_MAX], junk[8192], err[512];
		struct store_report rep;
		struct stat sb;

		fresh_dir(dir, sizeof(dir), "baddb");
		CHECK(mkdir(dir, 0700) == 0);
		pathf(db, sizeof(db), "%s/semcache.db", dir);
		memset(junk, 'x', sizeof(junk));
		write_file(db, junk, sizeof(junk));
		CHECK_EQ_INT(store_open(dir, NULL, &s, &rep, err,
					sizeof(err)), 0);
		CHECK(rep.db_repaired);
		CHECK_EQ_INT(rep.db_salvaged, 0);
		CHECK_EQ_INT(rep.db_lost, 0);
		CHECK(!strncmp(rep.db_aside, "semcache.db.corrupt-", 20));
		pathf(db, sizeof(db), "%s/%s", dir, rep.db_aside);
		CHECK(stat(db, &sb) == 0 && sb.st_size == sizeof(junk));
		store_close(s);
	}

	/* entries of a database with a garbled page: salvaged or lost+found */
	{
		char db[PATH_MAX], err[512];
		struct store_report rep;
		int64_t id;
		struct stat sb;
		int fd;

		fresh_dir(dir, sizeof(dir), "badpage");
		CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
		for (int i = 0; i < 200; i++)
			CHECK_EQ_INT(put_n(s, 1, i, &id), 0);
		store_close(s);
		pathf(db, sizeof(db), "%s/semcache.db", dir);
		CHECK(stat(db, &sb) == 0 && sb.st_size > 8 * 4096);
		fd = open(db, O_WRONLY);
		CHECK(fd >= 0);
		CHECK(pwrite(fd, "\xa5\xa5\xa5\xa5\xa5\xa5\xa5\xa5", 8,
			     (sb.st_size / 4096 / 2) * 4096) == 8);
		close(fd);
		CHECK_EQ_INT(store_open(dir, NULL, &s, &rep, err,
					sizeof(err)), 0);
		CHECK(rep.db_repaired);
		CHECK(rep.db_salvaged > 0);
		CHECK_EQ_INT(rep.db_salvaged + rep.db_lost, 200);
		CHECK_EQ_INT(rep.entries, rep.db_salvaged);
		/* ids are not handed out again */
		CHECK_EQ_INT(put_n(s, 1, 500, &id), 0);
		CHECK(id > 200);
		store_close(s);
	}
}

struct worker {
	struct store *s;
	int base, n, fails;
};

static void *put_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->n; i++)
		if (put_n(w->s, 1, w->base + i, NULL))
			w->fails++;
	return NULL;
}

static int scan_check(void *arg, const struct store_entry *e,
		      const float *vec, int dim, const char *embedder)
{
	struct seen *sn = arg;
	int n = (int)e->key[0];
	float v[DIM];

	make_vec(v, n);
	if (dim != DIM || memcmp(vec, v, sizeof(v)) ||
	    e->key[1] != ~(uint64_t)n || strcmp(embedder, "builtin-v1"))
		sn->dim = -1;
	if (n >= 0 && n < 4096)
		sn->ids[n]++;
	sn->n++;
	return 0;
}

static void test_threads(void)
{
	char dir[PATH_MAX];
	struct store_report rep;
	struct worker w[4];
	pthread_t th[4];
	struct store *s;
	struct seen sn;
	int missing = 0;

	fresh_dir(dir, sizeof(dir), "threads");
	CHECK_EQ_INT(open_store(dir, false, &s, NULL), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .s = s, .base = i * 500, .n = 500 };
		CHECK(pthread_create(&th[i], NULL, put_worker, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(w[i].fails, 0);
	}
	store_close(s);
	CHECK_EQ_INT(open_store(dir, false, &s, &rep), 0);
	CHECK_EQ_INT(rep.entries, 2000);
	memset(&sn, 0, sizeof(sn));
	CHECK_EQ_INT(store_entry_scan(s, 1, 0, scan_check, &sn), 0);
	CHECK_EQ_INT(sn.n, 2000);
	CHECK(sn.dim == 0);
	for (int i = 0; i < 2000; i++)
		missing += sn.ids[i] != 1;
	CHECK_EQ_INT(missing, 0);
	store_close(s);
}

/* Fill a 1 MiB tmpfs until the store says -ENOSPC. */
static void test_enospc(void)
{
	static char resp[200 * 1024];
	char mnt[PATH_MAX], dir[PATH_MAX];
	size_t lens[256];
	struct store_entry e = { .cat_id = 1 };
	float v[DIM];
	struct store_payload p = { .query = "q", .query_len = 1, .vec = v,
				   .dim = DIM, .embedder = "builtin-v1",
				   .response = resp,
				   .response_len = sizeof(resp) };
	int64_t ids[256];
	struct store *s;
	int n = 0, ret = 0, bad = 0;

	if (!mount_tmpfs("enospc", "tmpfs", "1m", mnt, sizeof(mnt)))
		return;
	pathf(dir, sizeof(dir), "%s/store", mnt);
	if (open_store(dir, false, &s, NULL)) {
		CHECK(0);
		goto out;
	}
	make_vec(v, 1);
	/* big responses first (the blob write runs out), then small ones
	 * (the database runs out) */
	for (int round = 0; round < 2; round++) {
		p.response_len = round ? 512 : sizeof(resp);
		while (n < 256) {
			memset(resp, 'a' + n % 26, p.response_len);
			ret = store_entry_put(s, &e, &p);
			if (ret)
				break;
			lens[n] = p.response_len;
			ids[n++] = e.id;
		}
		CHECK_EQ_INT(ret, -ENOSPC);
	}
	CHECK(n >= 3);
	for (int i = 0; i < n; i++) {
		void *buf;
		size_t len;

		if (store_response_read(s, ids[i], NULL, &buf, &len)) {
			bad++;
			continue;
		}
		bad += len != lens[i] ||
		       ((char *)buf)[len - 1] != 'a' + i % 26;
		free(buf);
	}
	CHECK_EQ_INT(bad, 0);
	/* no temp file left behind; room comes back after deletes */
	{
		char bd[PATH_MAX];
		struct dirent *de;
		int tmps = 0;
		DIR *d;

		for (int xx = 0; xx < 256; xx++) {
			pathf(bd, sizeof(bd), "%s/blobs/%02x", dir, xx);
			d = opendir(bd);
			if (!d)
				continue;
			while ((de = readdir(d)))
				tmps += !strncmp(de->d_name, ".tmp.", 5);
			closedir(d);
		}
		CHECK_EQ_INT(tmps, 0);
	}
	for (int i = 0; i < 8 && i < n; i++)
		CHECK_EQ_INT(store_entry_delete(s, ids[i]), 0);
	p.response_len = 1024;
	CHECK_EQ_INT(store_entry_put(s, &e, &p), 0);
	store_close(s);
out:
	CHECK(umount(mnt) == 0);
	rmdir(mnt);
}

/* "test_store enospc" runs the full-disk part (it may skip: it needs
 * root); no argument, the rest. */
int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	bool enospc = argc > 1 && !strcmp(argv[1], "enospc");

	snprintf(base, sizeof(base), "%s/test_store.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	if (enospc) {
		test_enospc();
		rm_rf(base);
		return check_done("store enospc");
	}
	test_open_create();
	test_categories_policies();
	test_entries();
	test_crash();
	test_recovery();
	test_damage();
	test_threads();
	rm_rf(base);
	return check_done("store");
}
