/*
 * protocol.c - the query protocol of a session: NAME.context, NAME.query,
 * NAME.status, NAME.response, NAME.feedback.
 *
 * Design: a session is a node (node.h); a handle writes into its own
 * buffer and the protocol step runs when the writer closes (flush), under
 * the node's lock: the close() of NAME.query returns after the lookup, the
 * close() of NAME.response after the fill is durable. The fast path runs
 * the same lookup on the first read of a NAME.query opened read-write and
 * answers on that descriptor. A lookup pending on another query's fill
 * (miss coalescing) is waited for by the reader, without the node's lock.
 *
 * The status line ("hit score=S entry=ID ...", "miss reason=...",
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
		set_status(n, "miss reason=%s\n", r->note);
	} else {
		set_status(n, "miss\n");
	}
	n->mtime_ms[SF_STATUS] = n->mtime_ms[SF_RESPONSE] = clock_wall_ms();
}

/* The lookup of NAME.query: runs when its writer closes. node->lock held. */
static int run_lookup(struct fs_handle *h)
{
	struct node *n = h->node;
	struct cache_query q = { h->data.data, h->data.len, NULL, 0 };
	struct cache_result r;
	int64_t now = clock_wall_ms();
	int rc;

	if (n->present[SF_CONTEXT]) {
		q.context = n->context.data;
		q.context_len = n->context.len;
	}
	rc = buf_set(&n->query, h->data.data, h->data.len);
	if (rc)
		return rc;
	cache_result_release(&n->result);
	n->looked_up = false;
	n->response.len = 0;
	n->present[SF_QUERY] = n->present[SF_STATUS] = n->present[SF_RESPONSE] = true;
	for (int i = SF_QUERY; i <= SF_STATUS; i++)
		n->mtime_ms[i] = now;
	n->gen++;
	rc = cache_lookup(fs_st()->cache, h->dir, &q, &r);
	if (rc) {
		set_status(n, "error %s\n", rc == -EINVAL ? "empty query" :
			   rc == -EFBIG ? "query over limits.query_bytes" : strerror(-rc));
		return rc;
	}
	n->result = r;
	n->looked_up = true;
	adopt_result(n);
	return 0;
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
 * the status line, a newline, then the response bytes (from offset 0).
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
	pthread_mutex_lock(&n->lock);
	rc = run_lookup(h);
	if (!rc)
		fs_wait_pending(n, h->dir);
	if (!rc)
		rc = buf_set(&h->answer, n->status, strlen(n->status));
	if (!rc && n->response.len)
		rc = buf_write(&h->answer, n->response.data, n->response.len,
			       (off_t)h->answer.len);
	pthread_mutex_unlock(&n->lock);
	h->answered = !rc;
	return rc;
}

/* The fill through NAME.response. node->lock held. */
static int run_fill(struct fs_handle *h)
{
	struct node *n = h->node;
	struct cache_query q = { n->query.data, n->query.len, NULL, 0 };
	int64_t id = 0;
	bool stored;
	int rc;

	if (!n->looked_up)
		return -ENOENT;
	if (n->present[SF_CONTEXT]) {
		q.context = n->context.data;
		q.context_len = n->context.len;
	}
	rc = cache_fill(fs_st()->cache, h->dir, &q, &n->result, h->data.data,
			h->data.len, fs_caller(), &id, &stored);
	if (rc)
		return rc;
	rc = buf_set(&n->response, h->data.data, h->data.len);
	if (rc)
		return rc;
	n->mtime_ms[SF_RESPONSE] = n->mtime_ms[SF_STATUS] = clock_wall_ms();
	if (stored) {
		set_status(n, "stored entry=%" PRId64 "\n", id);
	} else {
		char note[160];

		cache_fill_note(fs_st()->cache, h->dir, note, sizeof(note));
		set_status(n, "not-stored reason=%s\n", note[0] ? note : "policy");
	}
	return 0;
}

/* NAME.feedback: "wrong" after a hit invalidates the entry served and
 * counts a false hit. node->lock held. */
static int run_feedback(struct fs_handle *h)
{
	struct node *n = h->node;
	char word[16];
	size_t len = h->data.len;
	const char *d = h->data.data ? h->data.data : "";
	int rc;

	while (len && (d[len - 1] == '\n' || d[len - 1] == ' ' || d[len - 1] == '\r'))
		len--;
	if (len >= sizeof(word))
		return -EINVAL;
	memcpy(word, d, len);
	word[len] = '\0';
	if (strcmp(word, "wrong"))
		return -EINVAL; /* the only verdict there is */
	if (!n->looked_up || n->result.outcome != CACHE_HIT || !n->result.entry_id)
		return -ENOENT; /* no hit to judge */
	rc = cache_feedback_wrong(fs_st()->cache, h->dir, n->result.entry_id,
				  n->result.score, fs_caller());
	if (rc)
		return rc;
	rc = buf_set(&n->feedback, word, len);
	n->present[SF_FEEDBACK] = true;
	n->mtime_ms[SF_FEEDBACK] = clock_wall_ms();
	set_status(n, "miss reason=reported wrong (entry %" PRId64 " invalidated)\n",
		   n->result.entry_id);
	n->result.entry_id = 0;
	n->response.len = 0;
	return rc;
}

/* Commit what a session handle wrote (the flush of a dirty handle). */
int fs_session_commit(struct fs_handle *h)
{
	struct node *n = h->node;
	int rc = 0;

	pthread_mutex_lock(&n->lock);
	if (h->sf == SF_QUERY) {
		rc = run_lookup(h);
	} else if (h->sf == SF_RESPONSE) {
		rc = run_fill(h);
	} else if (h->sf == SF_FEEDBACK) {
		rc = run_feedback(h);
	} else if (h->sf == SF_CONTEXT) {
		rc = buf_set(&n->context, h->data.data, h->data.len);
		n->present[SF_CONTEXT] = true;
		n->mtime_ms[SF_CONTEXT] = clock_wall_ms();
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
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
