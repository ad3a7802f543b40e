/*
 * resume.c - restarts that do not rescan: a local copy of each category's
 * entries at a position of its change stream, brought up to date from the
 * events after that position instead of being read again from Redis.
 *
 * How: a full scan from id 0 (entry.c) first reads the category's stream
 * position P (its last event's id and evseq, in one script call) and then
 * writes every entry it reads, as the get script gives it (seq m h t v
 * em), to STATE_DIR/entries-cC: temp file, then rename, no fsync (a lost or
 * torn copy costs one full scan; its crc tells). The first full scan of
 * that category after the next open (a restart; later ones, resyncs, read
 * Redis) finds the copy, checks its epoch, crc and
 * layout, and reads only the stream's events after P (the resume script,
 * RESUME_BATCH events and the entry count per call): their n must follow
 * on from P's without a gap, else the stream was trimmed past P (or data
 * was lost) and the scan reads everything. The entries put since are read
 * with the get script; the copy's entries that an event touched are
 * dropped from it. The count of what is left plus what was read must be
 * the category's entry count as the last call saw it, else the scan reads
 * everything too. Only then is anything delivered (copy first, then the
 * new entries: sequence order), and a new copy written at the new
 * position when there were events. Events after P may also arrive through
 * the watcher, whose positions open() took before: they are applied
 * idempotently, as before.
 *
 * File: a 128-byte header ("SCRE", u32 version, i64 cat, i64 n, char
 * last[48], char epoch[40], zeros), then per entry i64 seq and five fields
 * (u32 length, the bytes, a NUL), then u64 count and u32 crc32 of all the
 * bytes before it; host byte order, integers little-endian.
 *
 * Hit counts and last-hit times are not in the change stream (they have
 * a short stream of their own, hits.c): those of the copy's entries are
 * read again, HITS_BATCH entries per call of the hits script (a few bytes
 * each, not the vectors).
 *
 * What not: no copy of a category scanned from a later id, so a category
 * created while this process runs is read in full at its next start
 * (which writes its first copy); no fsync. Locks: only
 * s->mu, to copy the epoch (a leaf, as everywhere); a copy is this
 * process's (its state directory is locked), written under a name of its
 * own and renamed into place, and removed with its category.
 */
#include "redis_i.h"
#include "bytes.h"
#include "semlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define COPY_MAGIC "SCRE"
#define COPY_VERSION 1u
#define COPY_HDR 128
#define COPY_TRAILER 12
#define COPY_FIELDS 5
#define RESUME_BATCH 1000
#define TRIMMED "its stream was trimmed past the copy's position (or " \
	"events were lost)"

static atomic_uint copy_serial;

static void copy_path(const struct store_redis *s, int64_t cat, char *buf,
		      size_t len)
{
	snprintf(buf, len, "%s/entries-c%lld", s->dir, (long long)cat);
}

void redis_copy_forget(struct store_redis *s, int64_t cat)
{
	char path[PATH_MAX + 32];

	copy_path(s, cat, path, sizeof(path));
	if (unlink(path) && errno != ENOENT)
		semlog(SEMLOG_WARN, "store: redis: could not remove the local "
		       "copy '%s' of a deleted category: %s", path,
		       strerror(errno));
}

static void copy_write(struct redis_copy *w, const void *p, size_t n)
{
	if (w->bad || fwrite(p, 1, n, w->f) != n) {
		w->bad = true;
		return;
	}
	w->crc = (uint32_t)crc32(w->crc, p, (uInt)n);
}

/* The resume script's call: '+' for the position, else events after from. */
static int resume_call(struct rconn *rc, int64_t cat, const char *from,
		       redisReply **out)
{
	struct args a = { 0 };
	char tag[24];
	int ret;

	redis_cat_tag(tag, sizeof(tag), cat, "");
	redis_arg_script(&a, &redis_script_resume, tag, NULL);
	arg_s(&a, from);
	arg_i(&a, RESUME_BATCH);
	ret = rconn_call(rc, tag, &a, "read a change stream", REDIS_REPLY_ARRAY,
			 -EPROTO, out);
	if (!ret && ((*out)->elements < 2 ||
		     (!strcmp(from, "+") ? (*out)->elements != 3 :
					   ((*out)->elements - 2) % 4)))
		ret = -EPROTO;
	for (size_t i = 1; !ret && i < (*out)->elements; i++)
		if ((*out)->element[i]->type != REDIS_REPLY_STRING ||
		    (*out)->element[i]->len >= 48)
			ret = -EPROTO;
	if (ret == -EPROTO)
		rconn_bad_reply(rc, "read a change stream",
				"not the resume script's reply");
	if (ret && *out) {
		freeReplyObject(*out);
		*out = NULL;
	}
	return ret;
}

static int copy_start(struct store_redis *s, int64_t cat, const char *last,
		      int64_t n, struct redis_copy *w)
{
	unsigned char h[COPY_HDR] = { 0 };
	int fd;

	memset(w, 0, sizeof(*w));
	copy_path(s, cat, w->path, sizeof(w->path));
	snprintf(w->tmp, sizeof(w->tmp), "%s.%ld.%u.tmp", w->path,
		 (long)getpid(), atomic_fetch_add(&copy_serial, 1));
	fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return -errno;
	w->f = fdopen(fd, "wb");
	if (!w->f) {
		close(fd);
		unlink(w->tmp);
		return -ENOMEM;
	}
	memcpy(h, COPY_MAGIC, 4);
	bytes_put_le32(h + 4, COPY_VERSION);
	bytes_put_le64(h + 8, (uint64_t)cat);
	bytes_put_le64(h + 16, (uint64_t)n);
	snprintf((char *)h + 24, 48, "%s", last);
	pthread_mutex_lock(&s->mu);
	snprintf((char *)h + 72, 40, "%s", s->epoch);
	pthread_mutex_unlock(&s->mu);
	w->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	copy_write(w, h, sizeof(h));
	return 0;
}

int redis_copy_begin(struct store_redis *s, struct rconn *rc, int64_t cat,
		     struct redis_copy *w)
{
	redisReply *r = NULL;
	long long n;
	int ret;

	memset(w, 0, sizeof(*w));
	ret = resume_call(rc, cat, "+", &r);
	if (ret)
		return ret;
	ret = rconn_reply_int(rc, r->element[1], 0, INT64_MAX,
			      "read a change stream", &n);
	if (!ret)
		ret = copy_start(s, cat, r->element[2]->str, n, w);
	freeReplyObject(r);
	return ret;
}

void redis_copy_add(struct redis_copy *w, int64_t seq, redisReply **f)
{
	unsigned char b[8];

	if (!w->f)
		return;
	if (seq <= w->last_seq)
		w->bad = true;   /* the file must be in sequence order */
	w->last_seq = seq;
	bytes_put_le64(b, (uint64_t)seq);
	copy_write(w, b, 8);
	for (int i = 1; i <= COPY_FIELDS; i++) {
		bytes_put_le32(b, (uint32_t)f[i]->len);
		copy_write(w, b, 4);
		copy_write(w, f[i]->str, f[i]->len);
		copy_write(w, "", 1);
	}
	w->count++;
}

void redis_copy_end(struct redis_copy *w, bool commit)
{
	unsigned char b[COPY_TRAILER];

	if (!w->f)
		return;
	bytes_put_le64(b, w->count);
	copy_write(w, b, 8);
	bytes_put_le32(b + 8, w->crc);
	if (!w->bad && fwrite(b + 8, 1, 4, w->f) != 4)
		w->bad = true;
	if (fclose(w->f))
		w->bad = true;
	w->f = NULL;
	if (!commit || w->bad || rename(w->tmp, w->path)) {
		if (commit)
			semlog(SEMLOG_WARN, "store: redis: could not write the "
			       "local copy '%s' (%s): the next start reads the "
			       "category from redis", w->path,
			       w->bad ? "write failed" : strerror(errno));
		unlink(w->tmp);
	}
}

/* A mapped copy and its header. */
struct copy_map {
	const unsigned char *p;
	size_t len;
	int64_t n;
	char last[48];
	uint64_t count;
};

/* Record at *at (bounds and NULs checked): its seq and fields as string
 * replies pointing into the map. false at the end or when malformed. */
static bool copy_next(const struct copy_map *m, size_t *at, int64_t *seq,
		      redisReply f[COPY_FIELDS + 1])
{
	size_t end = m->len - COPY_TRAILER, o = *at;

	if (o + 8 > end)
		return false;
	*seq = (int64_t)bytes_get_le64(m->p + o);
	o += 8;
	memset(f, 0, sizeof(*f) * (COPY_FIELDS + 1));
	f[0].type = REDIS_REPLY_INTEGER;
	f[0].integer = *seq;
	for (int i = 1; i <= COPY_FIELDS; i++) {
		size_t l;

		if (o + 4 > end)
			return false;
		l = bytes_get_le32(m->p + o);
		o += 4;
		if (l >= end - o || m->p[o + l])
			return false;
		f[i].type = REDIS_REPLY_STRING;
		f[i].str = (char *)(m->p + o);
		f[i].len = l;
		o += l + 1;
	}
	*at = o;
	return true;
}

/* Map and check cat's copy: 0, -ENOENT (none), or -EBADMSG / -ESTALE
 * (damaged, another epoch or category) with why set. */
static int copy_open(struct store_redis *s, int64_t cat, struct copy_map *m,
		     const char **why)
{
	redisReply f[COPY_FIELDS + 1];
	char path[PATH_MAX + 32], epoch[40];
	uint64_t count = 0;
	int64_t seq, prev = 0;
	struct stat sb;
	size_t at;
	void *p;
	int fd;

	memset(m, 0, sizeof(*m));
	copy_path(s, cat, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) ||
	    sb.st_size < COPY_HDR + COPY_TRAILER) {
		close(fd);
		*why = "it is too short";
		return -EBADMSG;
	}
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	m->p = p;
	m->len = (size_t)sb.st_size;
	pthread_mutex_lock(&s->mu);
	memcpy(epoch, s->epoch, sizeof(epoch));
	pthread_mutex_unlock(&s->mu);
	if (memcmp(m->p, COPY_MAGIC, 4) || bytes_get_le32(m->p + 4) != COPY_VERSION ||
	    (int64_t)bytes_get_le64(m->p + 8) != cat) {
		*why = "it is not a copy of this category";
		goto bad;
	}
	if (bytes_crc32(m->p, m->len - 4) != bytes_get_le32(m->p + m->len - 4)) {
		*why = "its checksum fails";
		goto bad;
	}
	if (m->p[24 + 47] || m->p[72 + 39] ||
	    strncmp((const char *)m->p + 72, epoch, 40)) {
		*why = "the store was reset since";
		munmap(p, m->len);
		return -ESTALE;
	}
	m->n = (int64_t)bytes_get_le64(m->p + 16);
	memcpy(m->last, m->p + 24, 48);
	m->count = bytes_get_le64(m->p + m->len - COPY_TRAILER);
	for (at = COPY_HDR; copy_next(m, &at, &seq, f); prev = seq, count++)
		if (seq <= prev || seq > SEQ_MAX)
			break;
	if (at != m->len - COPY_TRAILER || count != m->count || m->n < 0) {
		*why = "its records are malformed";
		goto bad;
	}
	return 0;
bad:
	munmap(p, m->len);
	return -EBADMSG;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* A growable sorted-later list of sequences. */
struct seqs {
	int64_t *v;
	size_t n, cap;
};

static int seqs_add(struct seqs *q, int64_t v)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		int64_t *nv = realloc(q->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		q->v = nv;
		q->cap = cap;
	}
	q->v[q->n++] = v;
	return 0;
}

static void seqs_sort(struct seqs *q)
{
	size_t k = 0;

	if (!q->n)
		return;
	qsort(q->v, q->n, sizeof(*q->v), cmp_i64);
	for (size_t i = 1; i < q->n; i++)
		if (q->v[i] != q->v[k])
			q->v[++k] = q->v[i];
	q->n = k + 1;
}

static bool seqs_has(const struct seqs *q, int64_t v)
{
	return q->n && bsearch(&v, q->v, q->n, sizeof(v), cmp_i64);
}

/* What the events after the copy's position say. */
struct delta {
	struct seqs touched;      /* every sequence an event names */
	struct seqs puts;         /* put since */
	char last[48];            /* position after the last event */
	int64_t n;
	long long entries;        /* the category's count at that position */
	redisReply **got;         /* get script replies for puts */
	size_t ngot;
	uint64_t fetched;         /* entries in got */
};

static void delta_release(struct delta *d)
{
	free(d->touched.v);
	free(d->puts.v);
	for (size_t i = 0; i < d->ngot; i++)
		freeReplyObject(d->got[i]);
	free(d->got);
}

/* Read the events after m's position: 0, 1 when they do not follow on
 * from it (why set), or -errno. */
static int delta_read(struct store_redis *s, int64_t cat,
		      const struct copy_map *m, struct delta *d,
		      const char **why)
{
	size_t got;

	snprintf(d->last, sizeof(d->last), "%s", m->last);
	d->n = m->n;
	do {
		redisReply *r = NULL;
		long long ev;
		int ret = resume_call(&s->rc, cat, d->last, &r);

		if (ret)
			return ret;
		ret = rconn_reply_int(&s->rc, r->element[0], 0, SEQ_MAX,
				      "read a change stream", &d->entries);
		if (!ret)
			ret = rconn_reply_int(&s->rc, r->element[1], 0, INT64_MAX,
					      "read a change stream", &ev);
		got = (r->elements - 2) / 4;
		for (size_t i = 2; !ret && i + 4 <= r->elements; i += 4) {
			redisReply **e = r->element + i;
			const char *k = e[2]->str;
			long long n, seq = 0;

			if (rconn_reply_int(NULL, e[1], 1, INT64_MAX, NULL, &n) ||
			    n != d->n + 1) {
				*why = TRIMMED;
				ret = 1;
				break;
			}
			if ((*k == 'p' || *k == 'd') &&
			    rconn_reply_int(NULL, e[3], 1, SEQ_MAX, NULL, &seq)) {
				*why = "an event of its stream is malformed";
				ret = 1;
				break;
			}
			if (seq)
				ret = seqs_add(&d->touched, seq);
			if (!ret && *k == 'p')
				ret = seqs_add(&d->puts, seq);
			d->n = n;
			snprintf(d->last, sizeof(d->last), "%s", e[0]->str);
		}
		if (!ret && got < RESUME_BATCH && ev != d->n) {
			*why = TRIMMED;   /* no event follows P, but there were */
			ret = 1;
		}
		freeReplyObject(r);
		if (ret)
			return ret;
	} while (got == RESUME_BATCH);
	seqs_sort(&d->touched);
	seqs_sort(&d->puts);
	return 0;
}

/* The entries put since, with the get script, SCAN_BATCH at a time. */
static int delta_fetch(struct store_redis *s, int64_t cat, struct delta *d)
{
	char tag[24];

	redis_cat_tag(tag, sizeof(tag), cat, "");
	d->got = calloc(d->puts.n / SCAN_BATCH + 1, sizeof(*d->got));
	if (!d->got)
		return -ENOMEM;
	for (size_t i = 0; i < d->puts.n; i += SCAN_BATCH) {
		struct args a = { 0 };
		redisReply *r = NULL;
		int ret;

		redis_arg_script(&a, &redis_script_get, tag, NULL);
		arg_s(&a, tag);
		arg_s(&a, "l");
		for (size_t j = i; j < d->puts.n && j < i + SCAN_BATCH; j++)
			arg_i(&a, d->puts.v[j]);
		ret = rconn_call(&s->rc, tag, &a, "scan entries",
				 REDIS_REPLY_ARRAY, -EPROTO, &r);
		if (!ret)
			ret = redis_get_reply_check(&s->rc, r, "scan entries");
		if (ret) {
			if (r)
				freeReplyObject(r);
			return ret;
		}
		d->got[d->ngot++] = r;
		d->fetched += (r->elements - 1) / 6;
	}
	return 0;
}

/* The current hit counters of the entries after a sequence, a batch at a
 * time, for the copy's entries in sequence order. */
struct hits {
	redisReply *r;            /* the hits script's reply, or NULL */
	size_t at;                /* next (seq h t) group in r */
	int64_t lo;               /* r covers the live entries in (lo, hi] */
	int64_t hi;
	bool end;                 /* nothing after hi */
};

#define HITS_BATCH 1000

/* Into *hf and *tf the h and t replies of entry seq (ascending from call
 * to call), NULL when it is not live now (its delete follows in the
 * stream); 0 or -errno. */
static int hits_of(struct store_redis *s, int64_t cat, struct hits *h,
		   int64_t seq, redisReply **hf, redisReply **tf)
{
	*hf = *tf = NULL;
	while (!h->end && seq > h->hi) {
		struct args a = { 0 };
		char tag[24];
		long long last;
		int ret;

		if (h->r)
			freeReplyObject(h->r);
		h->r = NULL;
		h->at = 1;
		h->lo = h->hi;
		redis_cat_tag(tag, sizeof(tag), cat, "");
		redis_arg_script(&a, &redis_script_hits, tag, NULL);
		arg_s(&a, tag);
		arg_i(&a, h->lo);
		arg_i(&a, HITS_BATCH);
		ret = rconn_call(&s->rc, tag, &a, "read hit counts",
				 REDIS_REPLY_ARRAY, -EPROTO, &h->r);
		if (!ret && (!h->r->elements || (h->r->elements - 1) % 3))
			ret = rconn_bad_reply(&s->rc, "read hit counts",
					      "not { last, (seq h t)... }");
		for (size_t i = 0; !ret && i < h->r->elements; i++)
			if (h->r->element[i]->type != REDIS_REPLY_STRING)
				ret = rconn_bad_reply(&s->rc, "read hit counts",
						      "a member that is no string");
		if (ret)
			return ret;
		if (!h->r->element[0]->len) {
			h->end = true;
			break;
		}
		ret = rconn_reply_int(&s->rc, h->r->element[0], h->lo + 1,
				      SEQ_MAX, "read hit counts", &last);
		if (ret)
			return ret;
		h->hi = last;
	}
	for (; h->r && h->at + 3 <= h->r->elements; h->at += 3) {
		redisReply **g = h->r->element + h->at;
		long long sq;

		if (rconn_reply_int(NULL, g[0], 1, SEQ_MAX, NULL, &sq) || sq > seq)
			break;
		if (sq == seq) {
			*hf = g[1];
			*tf = g[2];
			h->at += 3;
			break;
		}
	}
	return 0;
}

/* Deliver the copy's untouched entries (with their current hit counters),
 * then the fetched ones; into w when it is open. */
static int deliver(struct store_redis *s, int64_t cat, uid_t owner,
		   const struct copy_map *m, struct delta *d,
		   struct redis_copy *w, store_scan_cb *cb, void *arg)
{
	redisReply f[COPY_FIELDS + 1], *fp[COPY_FIELDS + 1], *hf, *tf;
	struct hits h = { 0 };
	int64_t seq;
	size_t at = COPY_HDR;
	int ret = 0;

	while (!ret && copy_next(m, &at, &seq, f)) {
		if (seqs_has(&d->touched, seq))
			continue;
		ret = hits_of(s, cat, &h, seq, &hf, &tf);
		if (ret)
			break;
		for (int i = 0; i <= COPY_FIELDS; i++)
			fp[i] = &f[i];
		if (hf) {          /* h and t are fields 2 and 3 */
			fp[2] = hf;
			fp[3] = tf;
		}
		redis_copy_add(w, seq, fp);
		ret = redis_get_group(s, cat, fp, owner, cb, arg);
	}
	if (h.r)
		freeReplyObject(h.r);
	for (size_t i = 0; !ret && i < d->ngot; i++) {
		redisReply *r = d->got[i];

		for (size_t j = 1; !ret && j + 6 <= r->elements; j += 6) {
			long long sq;

			ret = rconn_reply_int(&s->rc, r->element[j], 1, SEQ_MAX,
					      "scan entries", &sq);
			if (ret)
				break;
			redis_copy_add(w, sq, r->element + j);
			ret = redis_get_group(s, cat, r->element + j, owner, cb,
					      arg);
		}
	}
	return ret;
}

int redis_resume(struct store_redis *s, int64_t cat, uid_t owner,
		 store_scan_cb *cb, void *arg, bool *done)
{
	struct delta d = { 0 };
	struct redis_copy w = { 0 };
	struct copy_map m;
	const char *why = NULL;
	uint64_t kept = 0;
	redisReply f[COPY_FIELDS + 1];
	int64_t seq;
	size_t at = COPY_HDR;
	int ret;

	*done = false;
	ret = copy_open(s, cat, &m, &why);
	if (ret) {
		if (ret != -ENOENT)
			semlog(SEMLOG_INFO, "store: redis: category %lld: the "
			       "local copy is not used (%s): reading all its "
			       "entries", (long long)cat, why ? why : strerror(-ret));
		return 0;
	}
	ret = delta_read(s, cat, &m, &d, &why);
	if (!ret)
		ret = delta_fetch(s, cat, &d);
	if (!ret) {
		while (copy_next(&m, &at, &seq, f))
			kept += !seqs_has(&d.touched, seq);
		if ((long long)(kept + d.fetched) != d.entries) {
			why = "its count disagrees with the store's";
			ret = 1;
		}
	}
	if (ret > 0) {
		semlog(SEMLOG_INFO, "store: redis: category %lld: the local copy "
		       "is not used (%s): reading all its entries",
		       (long long)cat, why);
		ret = 0;
		goto out;
	}
	if (ret)
		goto out;
	/* a copy at the new position, unless nothing changed */
	if (d.touched.n && copy_start(s, cat, d.last, d.n, &w))
		memset(&w, 0, sizeof(w));
	*done = true;
	ret = deliver(s, cat, owner, &m, &d, &w, cb, arg);
	redis_copy_end(&w, !ret);
	if (!ret)
		semlog(SEMLOG_INFO, "store: redis: category %lld: %llu entries "
		       "from the local copy, %llu read from redis (%zu "
		       "changed since)", (long long)cat,
		       (unsigned long long)kept, (unsigned long long)d.fetched,
		       d.touched.n);
out:
	delta_release(&d);
	munmap((void *)m.p, m.len);
	return ret;
}
