/*
 * protocol.c - the query protocol of a session: NAME.context, NAME.query,
 * NAME.status, NAME.response, NAME.feedback.
 *
 * Design: a session is a node (node.h); a handle writes into its own
 * buffer and the protocol step runs when the writer closes (flush): the
 * close() of NAME.query returns after the lookup, the close() of
 * NAME.response after the fill is durable. The fast path runs the same
 * lookup on the first read of a NAME.query opened read-write and answers
 * on that descriptor. A lookup pending on another query's fill (miss
 * coalescing) is waited for by the reader, without the node's lock.
 *
 * Persistent descriptors: a write at offset 0 of NAME.query or
 * NAME.response starts new content (writes at higher offsets continue it,
 * one past its end is refused), so one NAME.query opened read-write asks
 * query after query and one NAME.response fills lookup after lookup, each
 * fill stored at fsync or close. An answer is bound to the lookup the
 * session showed when it was started (node.result_gen): if a newer lookup
 * replaced that one before the answer is stored, nothing is stored
 * (-ESTALE), never the answer under the newer query. Refusals are logged.
 *
 * Locking: a step copies what it needs from the node under the node's
 * lock, calls the engine without it (an embedding, a fill's fsync may be
 * slow: stat and getxattr of the session's files never wait for them),
 * then re-takes it and shows the outcome only if no newer lookup of the
 * session began meanwhile (node.gen): the last query wins, never a stale
 * one. Meanwhile the session shows what it showed before the step. A
 * descriptor whose file was unlinked since it was opened (node.file_gen)
 * changes nothing: -ESTALE.
 *
 * NAME.neighbors lists the lookup's candidates, "SCORE<TAB>ENTRY<TAB>QUERY"
 * a line, best first, the query escaped and cut to a bounded length.
 *
 * The status line ("hit score=S entry=ID ...", "miss best=S entry=ID" for
 * a miss whose search had a candidate, "miss reason=..." when something
 * other than the score decided it (the reason alone is shown then),
 * "stored entry=ID", "error ...") is written here and parsed back here
 * (fs_status_field) for the extended attributes.
 *
 * Not here: matching, storing and policies (index/ through cache.h); what
 * opens and reads do with handles (io.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs_i.h"

#define NEIGHBOR_TEXT_MAX 256  /* bytes of a candidate's escaped query */

/* Copy a session file's current content. Called with node->lock held. */
int fs_session_content(struct node *n, enum sfile sf, struct buf *out)
{
	switch (sf) {
	case SF_QUERY:
		return buf_set(out, n->query.data, n->query.len);
	case SF_CONTEXT:
		return buf_set(out, n->context.data, n->context.len);
	case SF_RESPONSE:
		return buf_set(out, n->response.data, n->response.len);
	case SF_STATUS:
		return buf_set(out, n->status, strlen(n->status));
	case SF_FEEDBACK:
		return buf_set(out, n->feedback.data, n->feedback.len);
	case SF_NEIGHBORS:
		return buf_set(out, n->neighbors.data, n->neighbors.len);
	default:
		return -EINVAL;
	}
}

size_t fs_session_size(struct node *n, enum sfile sf)
{
	switch (sf) {
	case SF_QUERY:
		return n->query.len;
	case SF_CONTEXT:
		return n->context.len;
	case SF_RESPONSE:
		return n->response.len;
	case SF_FEEDBACK:
		return n->feedback.len;
	case SF_NEIGHBORS:
		return n->neighbors.len;
	default:
		return strlen(n->status);
	}
}

static void set_status(struct node *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_status(struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(n->status, sizeof(n->status), fmt, ap);
	va_end(ap);
}

/* Show n->result in NAME.status and NAME.response. node->lock held. */
static void adopt_result(struct node *n)
{
	struct cache_result *r = &n->result;

	if (r->outcome == CACHE_HIT) {
		set_status(n, "hit score=%.3f entry=%" PRId64 " age=%" PRId64 " match=%s\n",
			   r->score, r->entry_id, r->age_s, r->exact ? "exact" : "semantic");
		/* hand the answer over without a copy */
		free(n->response.data);
		n->response.data = r->response;
		n->response.len = n->response.cap = r->response_len;
		r->response = NULL;
		r->response_len = 0;
	} else if (r->outcome == CACHE_PENDING) {
		set_status(n, "pending score=%.3f\n", r->score);
	} else if (r->note[0]) {
		/* a reason wins: the score did not decide this miss */
		set_status(n, "miss reason=%s\n", r->note);
	} else if (r->ncand > 0) {
		/* how close it came: the best candidate below the threshold */
		set_status(n, "miss best=%.3f entry=%" PRId64 "\n", r->cand_score[0],
			   r->cand_id[0]);
	} else {
		set_status(n, "miss\n");
	}
	n->mtime_ms[SF_STATUS] = n->mtime_ms[SF_RESPONSE] = clock_wall_ms();
}

/* Was h's file unlinked since h was opened? node->lock held. */
static bool stale(const struct fs_handle *h)
{
	return h->node->file_gen[h->sf] != h->file_gen;
}

/* The query's context (NAME.context, if present) copied into ctx.
 * node->lock held. */
static int copy_context(struct node *n, struct buf *ctx)
{
	return n->present[SF_CONTEXT] ? buf_set(ctx, n->context.data, n->context.len) : 0;
}

/* Log why a step on h's descriptor was refused (rate-limited); returns rc. */
static int refused(const struct fs_handle *h, const char *step, int rc,
		   const char *why)
{
	fs_warn("%s of '%s/%s%s' by uid %u refused (%s): %s", step,
		strcmp(h->dir, "/") ? h->dir : "", h->name,
		fs_session_files[h->sf].suffix, (unsigned)h->who.uid,
		strerrorname_np(-rc), why);
	return rc;
}

/* The lookup of NAME.query: runs when its writer closes. Takes and drops
 * node->lock around the engine's call. */
static int run_lookup(struct fs_handle *h)
{
	struct node *n = h->node;
	struct cache_query q = { h->data.data, h->data.len, NULL, 0 };
	struct buf ctx = { 0 };
	struct cache_result r;
	unsigned gen;
	int rc, rc2;

	pthread_mutex_lock(&n->lock);
	rc = stale(h) ? -ESTALE : copy_context(n, &ctx);
	gen = rc ? n->gen : ++n->gen;
	pthread_mutex_unlock(&n->lock);
	if (rc == -ESTALE)
		return refused(h, "lookup", rc, "its file was removed since it was opened (open it again)");
	if (rc)
		return rc;
	q.context = ctx.data;
	q.context_len = ctx.len;
	rc = cache_lookup(fs_st()->cache, h->dir, &q, &r);
	buf_release(&ctx);

	pthread_mutex_lock(&n->lock);
	rc2 = gen == n->gen && !stale(h) ? buf_set(&n->query, h->data.data, h->data.len) : 0;
	if (gen != n->gen || stale(h) || rc2) {
		/* a newer query of the session began meanwhile (it decides
		 * what the session shows), or NAME.query was removed */
		pthread_mutex_unlock(&n->lock);
		if (!rc)
			cache_result_release(&r);
		return rc ? rc : rc2;
	}
	cache_result_release(&n->result);
	n->result_gen = gen;
	n->looked_up = false;
	n->response.len = 0;
	n->neighbors.len = 0;
	n->neighbors_built = rc || r.ncand == 0; /* nothing to list */
	n->present[SF_QUERY] = n->present[SF_STATUS] = n->present[SF_RESPONSE] = true;
	n->present[SF_NEIGHBORS] = true;
	n->mtime_ms[SF_QUERY] = n->mtime_ms[SF_STATUS] = n->mtime_ms[SF_RESPONSE] = clock_wall_ms();
	n->mtime_ms[SF_NEIGHBORS] = n->mtime_ms[SF_STATUS];
	if (rc) {
		set_status(n, "error %s\n", rc == -EINVAL ? "empty query" :
			   rc == -EFBIG ? "query over limits.query_bytes" : strerror(-rc));
	} else {
		n->result = r;
		n->looked_up = true;
		adopt_result(n);
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

/* One candidate's query as one bounded line: backslash, tab and control
 * bytes escaped (\\, \t, \n, \r, \xHH), cut after NEIGHBOR_TEXT_MAX bytes
 * of output at a character boundary, "..." marking the cut. */
static int neighbor_line(struct buf *out, float score, int64_t id,
			 const char *q, size_t qlen)
{
	char line[NEIGHBOR_TEXT_MAX + 64];
	int o = snprintf(line, sizeof(line), "%.4f\t%" PRId64 "\t", score, id);
	size_t lim = (size_t)o + NEIGHBOR_TEXT_MAX;
	size_t i;

	for (i = 0; i < qlen && (size_t)o + 4 <= lim; i++) {
		unsigned char ch = (unsigned char)q[i];

		if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
			line[o++] = '\\';
			line[o++] = ch == '\\' ? '\\' : ch == '\t' ? 't' : ch == '\n' ? 'n' : 'r';
		} else if (ch < 0x20 || ch == 0x7f) {
			o += snprintf(line + o, sizeof(line) - (size_t)o, "\\x%02x", ch);
		} else {
			line[o++] = (char)ch;
		}
	}
	if (i < qlen) {
		/* cut: never in the middle of a UTF-8 sequence */
		while (i > 0 && ((unsigned char)q[i] & 0xc0) == 0x80 &&
		       ((unsigned char)line[o - 1] & 0x80)) {
			i--;
			o--;
		}
		memcpy(line + o, "...", 3);
		o += 3;
	}
	line[o++] = '\n';
	return buf_write(out, line, (size_t)o, (off_t)out->len);
}

/*
 * NAME.neighbors: the lookup's candidates with their query texts, read
 * from the engine (a store call each) when the file is first opened or
 * stat'ed after a lookup, without n->lock; shown only if no newer lookup
 * began meanwhile. A candidate removed since the lookup is left out.
 */
void fs_neighbors_prepare(struct node *n, const char *dir)
{
	int64_t ids[CACHE_NEIGHBORS];
	float scores[CACHE_NEIGHBORS];
	struct buf text = { 0 };
	unsigned gen;
	int nc, rc = 0;

	pthread_mutex_lock(&n->lock);
	nc = n->neighbors_built || !n->looked_up ? 0 : n->result.ncand;
	memcpy(ids, n->result.cand_id, sizeof(ids));
	memcpy(scores, n->result.cand_score, sizeof(scores));
	gen = n->gen;
	pthread_mutex_unlock(&n->lock);
	if (!nc)
		return;
	for (int i = 0; i < nc && !rc; i++) {
		char *q = NULL;
		size_t qlen = 0;

		if (cache_entry_read(fs_st()->cache, dir, ids[i], CACHE_PART_QUERY,
				     &q, &qlen) == 0)
			rc = neighbor_line(&text, scores[i], ids[i], q, qlen);
		free(q);
	}
	pthread_mutex_lock(&n->lock);
	if (!rc && gen == n->gen && !n->neighbors_built) {
		buf_release(&n->neighbors);
		n->neighbors = text;
		n->neighbors_built = true;
		text = (struct buf){ 0 };
	}
	pthread_mutex_unlock(&n->lock);
	buf_release(&text);
}

/*
 * Miss coalescing: if n's lookup is pending on another query's fill, wait
 * for it (without holding n->lock) and show the outcome. Concurrent readers
 * of the same session wait for the first one. node->lock held.
 */
void fs_wait_pending(struct node *n, const char *dir)
{
	while (n->waiting)
		pthread_cond_wait(&n->cv, &n->lock);
	if (!n->looked_up || n->result.outcome != CACHE_PENDING)
		return;
	struct cache_result r = n->result;
	unsigned gen = n->gen;

	memset(&n->result, 0, sizeof(n->result));
	n->waiting = true;
	pthread_mutex_unlock(&n->lock);
	cache_pending_wait(fs_st()->cache, dir, &r);
	pthread_mutex_lock(&n->lock);
	n->waiting = false;
	pthread_cond_broadcast(&n->cv);
	if (gen != n->gen) { /* a new query replaced it meanwhile */
		cache_result_release(&r);
		return;
	}
	n->result = r;
	adopt_result(n);
}

/*
 * The fast path: a NAME.query opened read-write answers on the same
 * descriptor. The first read after a write runs the lookup and reads return
 * the status line, a newline, then the response bytes (from offset 0). A
 * refused lookup's errno answers every read until the next write.
 */
int fs_fast_answer(struct fs_handle *h)
{
	struct node *n = h->node;
	int rc;

	if (h->failed)
		return h->failed;
	if (!h->dirty)
		return 0;
	h->dirty = false;
	h->answered = false;
	h->answer.len = 0;
	rc = run_lookup(h);
	if (!rc) {
		pthread_mutex_lock(&n->lock);
		fs_wait_pending(n, h->dir);
		rc = buf_set(&h->answer, n->status, strlen(n->status));
		if (!rc && n->response.len)
			rc = buf_write(&h->answer, n->response.data, n->response.len,
				       (off_t)h->answer.len);
		pthread_mutex_unlock(&n->lock);
	}
	/* a read of NAME.query: the others only (kcache.c) */
	fs_kcache_session(h->dir, h->name, SF_QUERY);
	h->answered = !rc;
	h->answer_rc = rc;
	return rc;
}

/* What a fill needs of the session's last lookup, copied. node->lock
 * held. */
static int copy_for_fill(struct node *n, struct buf *query, struct buf *ctx,
			 struct cache_result *prior)
{
	int rc = buf_set(query, n->query.data, n->query.len);

	if (!rc)
		rc = copy_context(n, ctx);
	*prior = n->result;
	prior->response = NULL;
	prior->response_len = 0;
	prior->vec = NULL;
	if (!rc && n->result.vec && n->result.dim > 0) {
		size_t bytes = (size_t)n->result.dim * sizeof(float);

		prior->vec = malloc(bytes);
		if (prior->vec)
			memcpy(prior->vec, n->result.vec, bytes);
		else
			rc = -ENOMEM;
	}
	return rc;
}

/* The fill through NAME.response. Takes and drops node->lock around the
 * engine's call. */
static int run_fill(struct fs_handle *h)
{
	struct node *n = h->node;
	struct buf query = { 0 }, ctx = { 0 };
	struct cache_result prior = { 0 };
	struct cache_query q;
	char note[160] = "";
	int64_t id = 0;
	bool stored = false;
	const char *why = NULL;
	unsigned gen;
	int rc;

	pthread_mutex_lock(&n->lock);
	if (stale(h)) {
		rc = -ESTALE;
		why = "its file was removed since it was opened (open it again)";
	} else if (n->result_gen != h->fill_gen) {
		rc = -ESTALE;
		why = "a newer lookup of the session replaced the one this answer "
		      "was written for (write the answer again from offset 0)";
	} else if (!n->looked_up) {
		rc = -ENOENT;
		why = "the session's last lookup failed: there is no query to answer";
	} else if (n->uid != h->who.uid && h->who.uid != 0) {
		rc = -EACCES; /* open checks it too; the session never changes hands */
		why = "the session is another user's";
	} else {
		rc = copy_for_fill(n, &query, &ctx, &prior);
	}
	gen = n->gen;
	pthread_mutex_unlock(&n->lock);
	if (why)
		refused(h, "fill", rc, why);
	if (rc)
		goto out;
	q = (struct cache_query){ query.data, query.len, ctx.data, ctx.len };
	rc = cache_fill(fs_st()->cache, h->dir, &q, &prior, h->data.data,
			h->data.len, &h->who, &id, &stored);
	if (rc)
		goto out;
	h->stored = true; /* durable: fsync's answer from now on */
	h->stored_gen = h->fill_gen;
	if (!stored)
		cache_fill_note(fs_st()->cache, h->dir, note, sizeof(note));

	pthread_mutex_lock(&n->lock);
	if (gen == n->gen && !stale(h)) { /* else a newer query shows its own */
		rc = buf_set(&n->response, h->data.data, h->data.len);
		n->mtime_ms[SF_RESPONSE] = n->mtime_ms[SF_STATUS] = clock_wall_ms();
		if (stored)
			set_status(n, "stored entry=%" PRId64 "\n", id);
		else
			set_status(n, "not-stored reason=%s\n", note[0] ? note : "policy");
	}
	pthread_mutex_unlock(&n->lock);
out:
	buf_release(&query);
	buf_release(&ctx);
	cache_result_release(&prior);
	return rc;
}

int fs_session_write(struct fs_handle *h, const char *data, size_t size,
		     off_t off)
{
	struct node *n = h->node;
	int rc;

	if (off == 0) {
		h->data.len = 0;
		h->failed = 0;
		if (h->sf == SF_RESPONSE) {
			pthread_mutex_lock(&n->lock);
			h->fill_gen = n->result_gen;
			pthread_mutex_unlock(&n->lock);
		}
	} else if ((uint64_t)off > h->data.len) {
		char why[160];

		h->failed = -EINVAL;
		snprintf(why, sizeof(why), "a write at offset %lld would leave a hole after "
			 "byte %zu (write from offset 0, or continue at the end)",
			 (long long)off, h->data.len);
		return refused(h, "write", -EINVAL, why);
	}
	rc = size ? buf_write(&h->data, data, size, off) : 0;
	if (rc) {
		h->failed = rc; /* a part is missing: never commit the rest */
		return rc;
	}
	h->dirty = true;
	h->written = true;
	return 0;
}

int fs_fill_synced(struct fs_handle *h)
{
	struct node *n = h->node;
	bool gone, done;

	pthread_mutex_lock(&n->lock);
	gone = stale(h);
	done = h->stored && h->stored_gen == n->result_gen;
	pthread_mutex_unlock(&n->lock);
	if (gone)
		return refused(h, "fsync", -ESTALE,
			       "its file was removed since it was opened (open it again)");
	if (!done)
		return refused(h, "fsync", -ENODATA,
			       "this descriptor wrote no answer for the session's last lookup "
			       "(pwrite the answer at offset 0 first)");
	return 0;
}

/* NAME.feedback: "wrong" after a hit invalidates the entry served and
 * counts a false hit. Takes and drops node->lock around the engine's
 * call. */
static int run_feedback(struct fs_handle *h)
{
	struct node *n = h->node;
	char word[16];
	size_t len = h->data.len;
	const char *d = h->data.data ? h->data.data : "";
	int64_t entry;
	float score;
	unsigned gen;
	int rc;

	while (len && (d[len - 1] == '\n' || d[len - 1] == ' ' || d[len - 1] == '\r'))
		len--;
	if (len >= sizeof(word))
		return -EINVAL;
	memcpy(word, d, len);
	word[len] = '\0';
	if (strcmp(word, "wrong"))
		return -EINVAL; /* the only verdict there is */
	pthread_mutex_lock(&n->lock);
	rc = stale(h) ? -ESTALE : 0;
	entry = n->looked_up && n->result.outcome == CACHE_HIT ? n->result.entry_id : 0;
	score = n->result.score;
	gen = n->gen;
	pthread_mutex_unlock(&n->lock);
	if (rc)
		return rc;
	if (!entry)
		return -ENOENT; /* no hit to judge */
	rc = cache_feedback_wrong(fs_st()->cache, h->dir, entry, score, &h->who);
	if (rc)
		return rc;
	fs_kcache_entry(h->dir, entry); /* a flush: no inode of it is busy */

	pthread_mutex_lock(&n->lock);
	rc = buf_set(&n->feedback, word, len);
	n->present[SF_FEEDBACK] = true;
	n->mtime_ms[SF_FEEDBACK] = clock_wall_ms();
	if (gen == n->gen && n->result.entry_id == entry) {
		set_status(n, "miss reason=reported wrong (entry %" PRId64 " invalidated)\n",
			   entry);
		n->result.entry_id = 0;
		n->response.len = 0;
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

/* Commit what a session handle wrote (the flush of a dirty handle). */
int fs_session_commit(struct fs_handle *h)
{
	struct node *n = h->node;
	int rc = 0;

	/* a flush or fsync, no read or write: every file of the session may
	 * be told of (kcache.c) */
	switch (h->sf) {
	case SF_QUERY:
		rc = run_lookup(h);
		fs_kcache_session(h->dir, h->name, SF_N);
		return rc;
	case SF_RESPONSE:
		rc = run_fill(h);
		fs_kcache_session(h->dir, h->name, SF_N);
		fs_kcache_category(h->dir);
		return rc;
	case SF_FEEDBACK:
		rc = run_feedback(h);
		fs_kcache_session(h->dir, h->name, SF_N);
		fs_kcache_category(h->dir);
		return rc;
	case SF_CONTEXT:
		pthread_mutex_lock(&n->lock);
		rc = stale(h) ? -ESTALE : buf_set(&n->context, h->data.data, h->data.len);
		if (!rc) {
			n->present[SF_CONTEXT] = true;
			n->mtime_ms[SF_CONTEXT] = clock_wall_ms();
		}
		pthread_mutex_unlock(&n->lock);
		return rc;
	default:
		return 0;
	}
}

/* Value of field key ("status", "score", ...) parsed from a status line. */
int fs_status_field(const char *status, const char *key, char *out,
		    size_t size)
{
	char word[64];
	const char *p = status;
	size_t kl = strlen(key);

	if (!strcmp(key, "status")) {
		size_t n = strcspn(status, " \n");

		snprintf(out, size, "%.*s", (int)n, status);
		return 0;
	}
	while ((p = strchr(p, ' '))) {
		p++;
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \n");

			if (n >= sizeof(word))
				n = sizeof(word) - 1;
			snprintf(out, size, "%.*s", (int)n, p + kl + 1);
			return 0;
		}
	}
	return -ENODATA;
}
