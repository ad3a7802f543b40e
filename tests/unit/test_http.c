/*
 * test_http.c - unit tests for index/embed/http.c against a real server.
 *
 * The server is the tests' own tests/tools/fake_embed_server.py (python3's
 * http.server on 127.0.0.1, deterministic hash vectors; not a real model),
 * started here and stopped at the end. Covers: vectors and normalisation,
 * learning the dimension by probe, an API key from an environment variable
 * (and never in a message), concurrent callers sharing requests (batching),
 * retries, and the outage cases, each answered with an errno within the
 * timeout: HTTP 500, malformed JSON, a slow endpoint, nothing listening.
 * Skips, saying why, without python3.
 */
#include "embed.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "sk-test-0123456789-secret"

static pid_t server_pid;
static int port;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int start_server(void)
{
	const char *root = getenv("SEMCACHE_SOURCE_ROOT");
	char script[2048], line[32];
	int fds[2];
	FILE *f;

	snprintf(script, sizeof(script), "%s/tests/tools/fake_embed_server.py",
		 root ? root : "..");
	if (access(script, R_OK) != 0 || pipe(fds) != 0)
		return -1;
	server_pid = fork();
	if (server_pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setenv("FAKE_EMBED_KEY", KEY, 1);
		execlp("python3", "python3", script, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	if (!f || !fgets(line, sizeof(line), f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	port = atoi(line);
	return port > 0 ? 0 : -1;
}

static void stop_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
}

/* A port with nothing listening: bind, read the port, close. */
static int dead_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), p;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &l);
	p = ntohs(a.sin_port);
	close(s);
	return p;
}

static void policy_for(struct policy *p, const char *model, int dims,
		       int64_t timeout_ms, int retries, int port_)
{
	policy_defaults(p);
	snprintf(p->embedder, sizeof(p->embedder), "http");
	snprintf(p->http_url, sizeof(p->http_url),
		 "http://127.0.0.1:%d/v1/embeddings", port_);
	snprintf(p->http_model, sizeof(p->http_model), "%s", model);
	snprintf(p->http_api_key_env, sizeof(p->http_api_key_env),
		 "SEMCACHE_TEST_KEY");
	p->http_dimensions = dims;
	p->http_timeout_ms = timeout_ms;
	p->http_retries = retries;
}

/* requests, inputs, max_batch from /stats */
static void stats(int *req, int *inputs, int *max_batch)
{
	char cmd[256], buf[256];
	FILE *f;

	*req = *inputs = *max_batch = -1;
	snprintf(cmd, sizeof(cmd), "python3 -c 'import urllib.request; "
		 "print(urllib.request.urlopen(\"http://127.0.0.1:%d/stats\").read().decode())'",
		 port);
	f = popen(cmd, "r");
	if (f && fgets(buf, sizeof(buf), f))
		sscanf(buf, "{\"requests\": %d, \"inputs\": %d, \"max_batch\": %d",
		       req, inputs, max_batch);
	if (f)
		pclose(f);
}

static void test_ok(void)
{
	struct embedder *e = NULL;
	struct policy p;
	char err[512];
	float a[16], b[16], c[16];
	double n = 0;
	int k;

	policy_for(&p, "ok", 16, 2000, 0, port);
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), 0);
	if (!e) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK(e->remote);
	CHECK_EQ_INT(e->dim, 16);
	CHECK(strncmp(e->name, "http-16-", 8) == 0);
	CHECK_EQ_INT(embedder_embed(e, "hello world", 11, a), 0);
	CHECK_EQ_INT(embedder_embed(e, "hello world", 11, b), 0);
	CHECK_EQ_INT(embedder_embed(e, "something else", 14, c), 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(memcmp(a, c, sizeof(a)) != 0);
	for (k = 0; k < 16; k++)
		n += (double)a[k] * a[k];
	CHECK(fabs(n - 1) < 1e-5);
	/* invalid UTF-8 is sent as U+FFFD, not refused */
	CHECK_EQ_INT(embedder_embed(e, "\xff\xfe bad", 6, c), 0);
	embedder_free(e);

	/* no dimensions: learnt by one probe at creation */
	policy_for(&p, "ok", 0, 2000, 0, port);
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), 0);
	if (e) {
		CHECK_EQ_INT(e->dim, 8);
		embedder_free(e);
	}
}

static void test_key(void)
{
	struct embedder *e = NULL;
	struct policy p;
	char err[512];
	float v[8];
	int r;

	/* the variable is not set: refused at creation, by name */
	unsetenv("SEMCACHE_TEST_KEY");
	policy_for(&p, "ok", 8, 2000, 0, port);
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "'SEMCACHE_TEST_KEY'") != NULL);
	/* a wrong key: EACCES, and neither key appears in the message */
	setenv("SEMCACHE_TEST_KEY", "sk-wrong-key-value", 1);
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), 0);
	if (e) {
		r = embedder_embed(e, "hi", 2, v);
		CHECK_EQ_INT(r, -EACCES);
		CHECK(strstr(embedder_last_error(), "HTTP 401") != NULL);
		CHECK(strstr(embedder_last_error(), "sk-wrong") == NULL);
		CHECK(strstr(embedder_last_error(), KEY) == NULL);
		embedder_free(e);
	}
	setenv("SEMCACHE_TEST_KEY", KEY, 1);
	/* an http policy without url or model is refused */
	policy_for(&p, "ok", 8, 2000, 0, port);
	p.http_model[0] = '\0';
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "needs http.model") != NULL);
}

struct th {
	const struct embedder *e;
	int i, ret;
	float v[8];
};

static void *embed_one(void *arg)
{
	struct th *t = arg;
	char text[32];

	snprintf(text, sizeof(text), "query number %d", t->i);
	t->ret = embedder_embed(t->e, text, strlen(text), t->v);
	return NULL;
}

static void test_batching(void)
{
	struct embedder *e = NULL;
	struct policy p;
	struct th t[32];
	pthread_t th[32];
	char err[512];
	int r0, i0, m0, r1, i1, m1, i, same = 0;
	float solo[8];

	policy_for(&p, "ok", 8, 3000, 0, port);
	p.http_batch = 16;
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), 0);
	if (!e)
		return;
	stats(&r0, &i0, &m0);
	for (i = 0; i < 32; i++) {
		t[i] = (struct th){ .e = e, .i = i };
		pthread_create(&th[i], NULL, embed_one, &t[i]);
	}
	for (i = 0; i < 32; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(t[i].ret, 0);
	}
	stats(&r1, &i1, &m1);
	printf("batching: 32 concurrent queries in %d requests, largest batch %d\n",
	       r1 - r0, m1);
	CHECK_EQ_INT(i1 - i0, 32);
	CHECK(r1 - r0 < 32);
	CHECK(m1 >= 2 && m1 <= 16);
	/* each caller got its own vector */
	for (i = 0; i < 32; i++) {
		char text[32];

		snprintf(text, sizeof(text), "query number %d", i);
		embedder_embed(e, text, strlen(text), solo);
		same += memcmp(solo, t[i].v, sizeof(solo)) == 0;
	}
	CHECK_EQ_INT(same, 32);
	embedder_free(e);
}

/*
 * Expect err, and within the timeout: a generous bound (3 s over it, for a
 * loaded machine) that still tells a timeout from the slow endpoint's 5 s
 * or a hang. Returns the elapsed time.
 */
static double expect_fail(const char *model, int port_, int64_t timeout_ms,
			  int retries, int want, const char *msg)
{
	struct embedder *e = NULL;
	struct policy p;
	char err[512];
	float v[8];
	double t0, dt;
	int r;

	policy_for(&p, model, 8, timeout_ms, retries, port_);
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), 0);
	if (!e)
		return 0;
	t0 = now();
	r = embedder_embed(e, "hello", 5, v);
	dt = now() - t0;
	CHECK_EQ_INT(r, want);
	CHECK(strstr(embedder_last_error(), msg) != NULL);
	if (!strstr(embedder_last_error(), msg))
		fprintf(stderr, "  got '%s', want '%s'\n", embedder_last_error(), msg);
	CHECK(dt < timeout_ms / 1000.0 + 3.0);
	printf("%-9s -> %s in %.0f ms (timeout %lld ms)\n", model,
	       strerror(-r), dt * 1000, (long long)timeout_ms);
	embedder_free(e);
	return dt;
}

static void test_outages(void)
{
	int r0, i0, m0, r1, i1, m1;
	struct embedder *e = NULL;
	struct policy p;
	char err[512];
	float v[8];

	stats(&r0, &i0, &m0);
	expect_fail("error500", port, 2000, 2, -EIO, "HTTP 500");
	stats(&r1, &i1, &m1);
	CHECK_EQ_INT(r1 - r0, 3);    /* one try and two retries */
	expect_fail("malformed", port, 2000, 2, -EPROTO, "malformed json");
	expect_fail("slow", port, 300, 3, -ETIMEDOUT, "");
	expect_fail("ok", dead_port(), 500, 1, -ECONNREFUSED, "127.0.0.1");
	/* retries until the timeout runs out (backoff 20, 40, 60, 80 ms):
	 * the last attempt's error is the answer, not a timeout */
	expect_fail("ok", dead_port(), 200, 10, -ECONNREFUSED,
		    "Couldn't connect to server (after ");

	/* a flaky endpoint succeeds on the retry */
	policy_for(&p, "flaky", 8, 2000, 1, port);
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), 0);
	if (e) {
		int ok = 0, i;

		for (i = 0; i < 4; i++)
			ok += embedder_embed(e, "x", 1, v) == 0;
		CHECK_EQ_INT(ok, 4);
		embedder_free(e);
	}
	/* no dimensions and the endpoint down: creation fails, with advice */
	policy_for(&p, "ok", 0, 300, 0, dead_port());
	CHECK_EQ_INT(embedder_new(&p, &e, err, sizeof(err)), -ECONNREFUSED);
	CHECK(strstr(err, "set http.dimensions") != NULL);
}

int main(void)
{
	if (system("python3 -c 'import http.server' >/dev/null 2>&1") != 0) {
		printf("skip: python3 absent, cannot run the fake embeddings server\n");
		return 77;
	}
	if (start_server() < 0) {
		printf("skip: cannot start tests/tools/fake_embed_server.py "
		       "(set SEMCACHE_SOURCE_ROOT)\n");
		stop_server();
		return 77;
	}
	setenv("SEMCACHE_TEST_KEY", KEY, 1);
	test_ok();
	test_key();
	test_batching();
	test_outages();
	stop_server();
	return check_done("http");
}
