/*
 * http.c - an OpenAI-compatible /v1/embeddings client ("http").
 *
 * Works with any server speaking the OpenAI embeddings API (Ollama,
 * llama.cpp server, vLLM, text-embeddings-inference, OpenAI): POST
 * {"model": M, "input": [..], "encoding_format": "float"[, "dimensions": D]}
 * and read {"data": [{"index": i, "embedding": [..]}, ..]}. libcurl does
 * the HTTP, json-c the JSON.
 *
 * Batching: threads that embed at the same time share one request. A caller
 * queues its text; the oldest queued caller becomes the leader once no other
 * leader is collecting, waits up to LINGER_US (1 ms) or until http.batch
 * texts are queued, takes them off the queue and sends them; the others wait
 * for their vector. While one batch is in flight the next one collects, so
 * requests overlap.
 *
 * Time: http.timeout bounds a whole embedding, linger, retries and backoff
 * included. Every attempt gets what is left of it (libcurl's connect and
 * total timeouts, no signals), so a down or slow endpoint gives an error
 * within the timeout, never a hang. Failed attempts (connection errors,
 * timeouts, HTTP 429 and 5xx) are retried http.retries times; 4xx answers
 * and malformed JSON are not; when the time runs out between attempts the
 * last attempt's error is the answer. Errors: -ETIMEDOUT, -ECONNREFUSED,
 * -EHOSTUNREACH, -EACCES (401/403), -EIO (other HTTP status), -EPROTO
 * (malformed answer), with a message through embed_set_error().
 *
 * Secrets: the API key is read from the environment variable the policy
 * names, once, at creation, and only ever put in the Authorization header;
 * no message contains it. The dimension: http.dimensions when set (the
 * endpoint is not contacted at creation, so a category can be created
 * while it is down), else learnt by one probe request at creation. Vectors
 * are L2-normalised here whatever the server sends.
 *
 * It does not queue fills durably while the endpoint is down, cache
 * vectors, or speak other APIs (Ollama's native /api/embed, gRPC).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "embed.h"
#include "embed_i.h"
#include "clock.h"

#define LINGER_US 1000
#define MAX_ANSWER (256u << 20)   /* largest response body accepted */
#define MAX_DIM 65536

struct req {
	const char *text;
	size_t len;
	float *out;
	int ret;
	bool done;
	char err[EMBED_ERR_MAX];
	struct req *next;
};

struct http_emb {
	struct embedder base;
	char *url, *model, *auth;  /* auth: "Authorization: Bearer ..." or NULL */
	int dims;                  /* requested; 0 = the model's own */
	int64_t timeout_ms;
	int retries, batch;
	/*
	 * The queue. mu guards head, tail, queued and collecting; cv is
	 * broadcast whenever one of them changes or a batch completes. Lock
	 * order: mu only (never held across a request).
	 */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct req *head, *tail;
	int queued;
	bool collecting;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- one request ----------------------------------------------------- */

struct answer {
	char *p;
	size_t len, cap;     /* cap: bytes allocated at p */
	bool too_big;
};

/* Append a chunk; the buffer grows by doubling, so a large answer costs
 * linear copying, not one reallocation per chunk. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;

	if (a->len + n > MAX_ANSWER) {
		a->too_big = true;
		return 0;
	}
	if (a->len + n + 1 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16384;
		char *np;

		while (cap < a->len + n + 1)
			cap *= 2;
		if (cap > (size_t)MAX_ANSWER + 1)
			cap = (size_t)MAX_ANSWER + 1;
		np = realloc(a->p, cap);
		if (!np)
			return 0;
		a->p = np;
		a->cap = cap;
	}
	memcpy(a->p + a->len, ptr, n);
	a->len += n;
	a->p[a->len] = '\0';
	return n;
}

/* Valid UTF-8 for JSON: invalid bytes become U+FFFD. Caller frees. */
static char *utf8_clean(const char *s, size_t len)
{
	char *o = malloc(len * 3 + 1), *w = o;
	size_t i = 0;

	if (!o)
		return NULL;
	/* a valid sequence re-encodes to its own bytes (no overlong forms) */
	while (i < len)
		w += embed_utf8_put(w, embed_utf8_next((const unsigned char *)s,
						       len, &i));
	*w = '\0';
	return o;
}

static char *request_body(const struct http_emb *h, struct req **reqs, int n)
{
	struct json_object *root = json_object_new_object(), *in;
	char *body = NULL;
	int i;

	if (!root)
		return NULL;
	in = json_object_new_array();
	if (!in)
		goto out;
	json_object_object_add(root, "model", json_object_new_string(h->model));
	json_object_object_add(root, "input", in);
	json_object_object_add(root, "encoding_format",
			       json_object_new_string("float"));
	if (h->dims)
		json_object_object_add(root, "dimensions",
				       json_object_new_int(h->dims));
	for (i = 0; i < n; i++) {
		char *t = utf8_clean(reqs[i]->text, reqs[i]->len);

		if (!t)
			goto out;
		json_object_array_add(in, json_object_new_string(t));
		free(t);
	}
	body = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
out:
	json_object_put(root);
	return body;
}

/* Parse the answer into the n outputs. dim_io: expected dim, or 0 to learn
 * it (then set). 0 or -EPROTO with a message. */
static int parse_answer(const struct http_emb *h, const char *body, size_t len,
			struct req **reqs, int n, int *dim_io, char *err,
			size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL, *data, *item, *vec, *idx;
	bool *seen = calloc((size_t)n, sizeof(*seen));
	size_t i, k, count;
	int ret = -EPROTO;

	if (!tok || !seen) {
		snprintf(err, errlen, "http embedder: out of memory");
		ret = -ENOMEM;
		goto out;
	}
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success) {
		snprintf(err, errlen, "http embedder: '%s' answered malformed "
			 "json", h->url);
		goto out;
	}
	if (!json_object_object_get_ex(root, "data", &data) ||
	    !json_object_is_type(data, json_type_array) ||
	    json_object_array_length(data) != (size_t)n) {
		snprintf(err, errlen, "http embedder: '%s' answered without "
			 "'data' holding %d embeddings", h->url, n);
		goto out;
	}
	count = json_object_array_length(data);
	for (i = 0; i < count; i++) {
		int64_t at = (int64_t)i;
		size_t d;
		double sum = 0;
		float *out;

		item = json_object_array_get_idx(data, i);
		if (json_object_object_get_ex(item, "index", &idx)) {
			if (!json_object_is_type(idx, json_type_int))
				goto bad_item;
			at = json_object_get_int64(idx);
		}
		if (at < 0 || at >= n || seen[at] ||
		    !json_object_object_get_ex(item, "embedding", &vec) ||
		    !json_object_is_type(vec, json_type_array))
			goto bad_item;
		seen[at] = true;
		d = json_object_array_length(vec);
		if (*dim_io == 0 && d > 0 && d <= MAX_DIM)
			*dim_io = (int)d;
		if (d != (size_t)*dim_io) {
			snprintf(err, errlen, "http embedder: '%s' answered a "
				 "vector of %zu dimensions, expected %d (check "
				 "http.dimensions and http.model)", h->url, d,
				 *dim_io);
			goto out;
		}
		out = reqs[at]->out;
		for (k = 0; k < d; k++) {
			struct json_object *x = json_object_array_get_idx(vec, k);

			if (!json_object_is_type(x, json_type_double) &&
			    !json_object_is_type(x, json_type_int))
				goto bad_item;
			out[k] = (float)json_object_get_double(x);
			if (!isfinite(out[k]))
				goto bad_item;
			sum += (double)out[k] * out[k];
		}
		if (sum > 0)
			for (k = 0; k < d; k++)
				out[k] = (float)(out[k] / sqrt(sum));
	}
	ret = 0;
	goto out;
bad_item:
	snprintf(err, errlen, "http embedder: '%s' answered a malformed "
		 "embedding", h->url);
out:
	free(seen);
	json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	return ret;
}

static bool retryable(int ret, long status)
{
	if (ret == -ETIMEDOUT || ret == -ECONNREFUSED || ret == -EHOSTUNREACH ||
	    ret == -ECONNRESET)
		return true;
	return ret == -EIO && (status == 429 || status >= 500);
}

/*
 * Send n texts, retrying within the deadline. Fills every reqs[i]->out on
 * success. dim_io as in parse_answer.
 */
static int send_batch(const struct http_emb *h, struct req **reqs, int n,
		      int64_t deadline, int *dim_io, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL, *nh;
	char *body = request_body(h, reqs, n);
	int attempt, ret = -ENOMEM;
	long status = 0;

	if (!body) {
		snprintf(err, errlen, "http embedder: out of memory");
		return -ENOMEM;
	}
	nh = curl_slist_append(hdrs, "Content-Type: application/json");
	if (nh)
		hdrs = nh;
	if (nh && h->auth) {
		nh = curl_slist_append(hdrs, h->auth);
		if (nh)
			hdrs = nh;
	}
	if (!nh) {
		snprintf(err, errlen, "http embedder: out of memory");
		goto out;
	}
	for (attempt = 0; attempt <= h->retries; attempt++) {
		struct answer a = { 0 };
		int64_t left = deadline - clock_mono_ms();
		CURLcode rc;
		CURL *c;

		if (left <= 0 && attempt > 0) {
			/* out of time to retry: the last attempt's error stands */
			size_t used = strlen(err);

			snprintf(err + used, errlen - used, " (after %d attempts "
				 "within %lld ms, http.timeout)", attempt,
				 (long long)h->timeout_ms);
			break;
		}
		if (left <= 0) {
			ret = -ETIMEDOUT;
			snprintf(err, errlen, "http embedder: '%s' gave no answer "
				 "within %lld ms (http.timeout)", h->url,
				 (long long)h->timeout_ms);
			break;
		}
		c = curl_easy_init();
		if (!c) {
			snprintf(err, errlen, "http embedder: cannot create a curl handle");
			ret = -ENOMEM;
			break;
		}
		curl_easy_setopt(c, CURLOPT_URL, h->url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_USERAGENT, "semcachefs/" "1");
		rc = curl_easy_perform(c);
		status = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
		if (rc == CURLE_OK && status == 200) {
			ret = parse_answer(h, a.p ? a.p : "", a.len, reqs, n,
					   dim_io, err, errlen);
		} else if (rc == CURLE_OK) {
			ret = status == 401 || status == 403 ? -EACCES : -EIO;
			snprintf(err, errlen, "http embedder: '%s' answered HTTP "
				 "%ld%s", h->url, status, ret == -EACCES ?
				 " (check the key in the variable http.api_key_env names)" : "");
		} else {
			ret = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT :
			      rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED :
			      rc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH :
			      rc == CURLE_WRITE_ERROR && a.too_big ? -EPROTO :
			      rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ?
			      -ECONNRESET : -EIO;
			snprintf(err, errlen, "http embedder: '%s': %s", h->url,
				 a.too_big ? "answer too large" :
				 curl_easy_strerror(rc));
		}
		free(a.p);
		if (ret == 0 || !retryable(ret, status))
			break;
		/* short backoff, never past the deadline */
		if (attempt < h->retries) {
			int64_t pause = 20 * (attempt + 1);
			struct timespec ts;

			left = deadline - clock_mono_ms();
			if (pause > left)
				pause = left > 0 ? left : 0;
			ts.tv_sec = pause / 1000;
			ts.tv_nsec = (pause % 1000) * 1000000;
			nanosleep(&ts, NULL);
		}
	}
out:
	curl_slist_free_all(hdrs);
	free(body);
	return ret;
}

/* ---- batching -------------------------------------------------------- */

static void abs_after_us(struct timespec *ts, long us)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += us * 1000;
	ts->tv_sec += ts->tv_nsec / 1000000000;
	ts->tv_nsec %= 1000000000;
}

static int http_embed(const struct embedder *e, const char *text, size_t len,
		      float *out)
{
	struct http_emb *h = (struct http_emb *)e;
	struct req me = { .text = text ? text : "", .len = text ? len : 0,
			  .out = out };
	struct req *batch[2048];
	int64_t deadline = clock_mono_ms() + h->timeout_ms;
	int n = 0, i, dim;
	struct timespec until;

	pthread_mutex_lock(&h->mu);
	if (h->tail)
		h->tail->next = &me;
	else
		h->head = &me;
	h->tail = &me;
	h->queued++;
	pthread_cond_broadcast(&h->cv);
	while (!me.done) {
		if (h->collecting || h->head != &me) {
			pthread_cond_wait(&h->cv, &h->mu);
			continue;
		}
		/* the leader: linger for company, then take a batch */
		h->collecting = true;
		abs_after_us(&until, LINGER_US);
		while (h->queued < h->batch &&
		       pthread_cond_timedwait(&h->cv, &h->mu, &until) != ETIMEDOUT)
			;
		for (n = 0; n < h->batch && h->head; n++) {
			batch[n] = h->head;
			h->head = h->head->next;
			batch[n]->next = NULL;
			h->queued--;
		}
		if (!h->head)
			h->tail = NULL;
		h->collecting = false;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);

		dim = e->dim;
		me.ret = send_batch(h, batch, n, deadline, &dim, me.err,
				    sizeof(me.err));

		pthread_mutex_lock(&h->mu);
		for (i = 0; i < n; i++) {
			if (batch[i] != &me) {
				batch[i]->ret = me.ret;
				memcpy(batch[i]->err, me.err, sizeof(me.err));
			}
			batch[i]->done = true;
		}
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	if (me.ret < 0) {
		memset(out, 0, (size_t)e->dim * sizeof(*out));
		embed_set_error("%s", me.err);
	}
	return me.ret;
}

static void http_free(struct embedder *e)
{
	struct http_emb *h = (struct http_emb *)e;

	if (!h)
		return;
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h->url);
	free(h->model);
	if (h->auth) {
		explicit_bzero(h->auth, strlen(h->auth));
		free(h->auth);
	}
	free(h);
}

static const struct embedder_ops http_ops = {
	.embed = http_embed,
	.free = http_free,
};

/* FNV-1a of a string, then a terminator byte's worth of mixing. */
static uint64_t fnv1a_str(uint64_t h, const char *s)
{
	return embed_fnv1a(h, s, strlen(s)) ^ 0xff;
}

int embed_http_new(const struct policy *p, struct embedder **out, char *err,
		   size_t errlen)
{
	pthread_condattr_t ca;
	struct http_emb *h;
	const char *key = NULL;
	uint64_t hash;
	int ret;

	*out = NULL;
	if ((ret = policy_check(p, err, errlen)) < 0)
		return ret;
	if (p->http_api_key_env[0]) {
		key = getenv(p->http_api_key_env);
		if (!key || !key[0]) {
			snprintf(err, errlen, "http embedder: the environment "
				 "variable '%s' (http.api_key_env) is not set in "
				 "the daemon's environment", p->http_api_key_env);
			return -EINVAL;
		}
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		snprintf(err, errlen, "http embedder: cannot initialise libcurl: %s",
			 curl_easy_strerror(curl_init_rc));
		return -EIO;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		goto nomem;
	h->base.ops = &http_ops;
	h->base.remote = true;
	h->url = strdup(p->http_url);
	h->model = strdup(p->http_model);
	if (!h->url || !h->model)
		goto nomem_h;
	if (key) {
		size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;

		h->auth = malloc(n);
		if (!h->auth)
			goto nomem_h;
		snprintf(h->auth, n, "Authorization: Bearer %s", key);
	}
	h->dims = p->http_dimensions;
	h->timeout_ms = p->http_timeout_ms;
	h->retries = p->http_retries;
	h->batch = p->http_batch > 2048 ? 2048 : p->http_batch;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);

	h->base.dim = h->dims;
	if (!h->dims) {
		/* learn the dimension with one probe */
		float *probe_out = calloc(MAX_DIM, sizeof(float));
		struct req probe = { .text = "dimension probe", .len = 15,
				     .out = probe_out };
		struct req *one = &probe;
		int dim = 0;

		if (!probe_out) {
			http_free(&h->base);
			goto nomem;
		}
		ret = send_batch(h, &one, 1, clock_mono_ms() + h->timeout_ms, &dim,
				 err, errlen);
		free(probe_out);
		if (ret < 0) {
			size_t l = strlen(err);

			snprintf(err + l, errlen - l, "; set http.dimensions to "
				 "create the embedder without contacting it");
			http_free(&h->base);
			return ret;
		}
		h->base.dim = dim;
	}
	hash = fnv1a_str(fnv1a_str(EMBED_FNV_INIT, h->url), h->model);
	snprintf(h->base.name, sizeof(h->base.name), "http-%d-%016llx",
		 h->base.dim, (unsigned long long)hash);
	*out = &h->base;
	return 0;

nomem_h:
	free(h->url);
	free(h->model);
	free(h->auth);
	free(h);
nomem:
	snprintf(err, errlen, "http embedder: out of memory");
	return -ENOMEM;
}
