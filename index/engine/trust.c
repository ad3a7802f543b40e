/*
 * trust.c - what the mount owner allows a policy to make the daemon do.
 *
 * A policy is data written by whoever may write a category's policy.yaml;
 * with -o allow_other that may be another user. Two things in a policy
 * reach outside the mount: an http embedder (the daemon sends query text,
 * and with http.api_key_env a secret from its environment, to a URL) and
 * a model directory (the daemon reads files there). The owner grants them
 * at mount time, never a policy (the OpenSSH SendEnv/AcceptEnv pairing):
 *   -o embed_env=NAME:NAME   variables an API key may be read from; each
 *                            must start with SEMCACHEFS_
 *   -o embed_urls=P,P        URL prefixes a key may be sent to, and the
 *                            only URLs an untrusted writer may name
 *   -o model_dirs=D:D        the only model directories an untrusted writer
 *                            may name
 * Trusted writers are root and the mount owner. A URL prefix without a path
 * is taken to end at the authority ("http://h:1" allows "http://h:1/..."
 * but not "http://h:10" or "http://h:1@other"); a model path with "." or
 * ".." components is never under a granted directory.
 *
 * Not here: who may write which policy.yaml (policy_ops.c), the embedders.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

#define ENV_PREFIX "SEMCACHEFS_"

static void list_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Split s at sep into *out (malloc'd strings), skipping empty items. */
static int list_split(const char *s, char sep, char ***out, size_t *n)
{
	char **v = NULL;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!s)
		return 0;
	while (*s) {
		const char *e = strchr(s, sep);
		size_t len = e ? (size_t)(e - s) : strlen(s);

		if (len) {
			char **nv = realloc(v, (k + 1) * sizeof(*v));

			if (!nv || !(nv[k] = strndup(s, len))) {
				list_free(nv ? nv : v, k);
				return -ENOMEM;
			}
			v = nv;
			k++;
		}
		s += len;
		if (*s)
			s++;
	}
	*out = v;
	*n = k;
	return 0;
}

static bool env_name_ok(const char *n)
{
	if (strncmp(n, ENV_PREFIX, strlen(ENV_PREFIX)) || !n[strlen(ENV_PREFIX)])
		return false;
	for (; *n; n++)
		if (!isupper((unsigned char)*n) && !isdigit((unsigned char)*n) && *n != '_')
			return false;
	return true;
}

/* A URL prefix as granted: http(s)://authority, with "/" added when it
 * names no path. NULL when it is not one. */
static char *url_prefix(const char *u)
{
	const char *auth;
	char *out;

	if (!strncmp(u, "http://", 7))
		auth = u + 7;
	else if (!strncmp(u, "https://", 8))
		auth = u + 8;
	else
		return NULL;
	if (!*auth || *auth == '/')
		return NULL;
	if (strchr(auth, '/'))
		return strdup(u);
	if (asprintf(&out, "%s/", u) < 0)
		return NULL;
	return out;
}

int engine_trust_init(const struct cache_options *o, struct trust *t,
		      char *err, size_t errlen)
{
	int rc;

	t->owner = o->owner_uid;
	rc = list_split(o->embed_env, ':', &t->env, &t->nenv);
	if (!rc)
		rc = list_split(o->embed_urls, ',', &t->urls, &t->nurls);
	if (!rc)
		rc = list_split(o->model_dirs, ':', &t->dirs, &t->ndirs);
	if (rc)
		return rc;
	for (size_t i = 0; i < t->nenv; i++)
		if (!env_name_ok(t->env[i])) {
			snprintf(err, errlen, "embed_env: '%.64s' is not a variable name starting with %s (only such variables may hold API keys)",
				 t->env[i], ENV_PREFIX);
			return -EINVAL;
		}
	for (size_t i = 0; i < t->nurls; i++) {
		char *p = url_prefix(t->urls[i]);

		if (!p) {
			snprintf(err, errlen, "embed_urls: '%.200s' is not an http:// or https:// URL prefix with a host",
				 t->urls[i]);
			return -EINVAL;
		}
		free(t->urls[i]);
		t->urls[i] = p;
	}
	for (size_t i = 0; i < t->ndirs; i++) {
		size_t n = strlen(t->dirs[i]);

		if (t->dirs[i][0] != '/') {
			snprintf(err, errlen, "model_dirs: '%.200s' is not an absolute directory",
				 t->dirs[i]);
			return -EINVAL;
		}
		while (n > 1 && t->dirs[i][n - 1] == '/')
			t->dirs[i][--n] = '\0';
	}
	return 0;
}

int cache_check_options(const struct cache_options *o, char *err,
			size_t errlen)
{
	struct store_options so = { .redis_tls_ca = o->redis_tls_ca,
				    .redis_tls_cert = o->redis_tls_cert,
				    .redis_tls_key = o->redis_tls_key,
				    .redis_tls_sni = o->redis_tls_sni };
	struct trust t = { 0 };
	int rc = engine_trust_init(o, &t, err, errlen);

	engine_trust_release(&t);
	/* the store's TLS files load (store_dir: the store as given) */
	if (!rc)
		rc = store_check_options(o->store_dir, &so, err, errlen);
	return rc;
}

void engine_trust_release(struct trust *t)
{
	list_free(t->env, t->nenv);
	list_free(t->urls, t->nurls);
	list_free(t->dirs, t->ndirs);
	memset(t, 0, sizeof(*t));
}

bool engine_trust_caller(const struct cache *c, const struct cache_caller *who)
{
	return !who || who->uid == 0 || who->uid == c->trust.owner;
}

static bool url_granted(const struct trust *t, const char *url)
{
	for (size_t i = 0; i < t->nurls; i++) {
		size_t n = strlen(t->urls[i]);

		if (!strncmp(url, t->urls[i], n))
			return true;
		/* "http://h:1" itself, granted as "http://h:1/" */
		if (t->urls[i][n - 1] == '/' && strlen(url) == n - 1 &&
		    !strncmp(url, t->urls[i], n - 1))
			return true;
	}
	return false;
}

static bool dir_granted(const struct trust *t, const char *dir)
{
	if (strstr(dir, "/../") || strstr(dir, "/./") ||
	    (strlen(dir) >= 3 && !strcmp(dir + strlen(dir) - 3, "/..")) ||
	    (strlen(dir) >= 2 && !strcmp(dir + strlen(dir) - 2, "/.")))
		return false;
	for (size_t i = 0; i < t->ndirs; i++) {
		size_t n = strlen(t->dirs[i]);

		if (!strncmp(dir, t->dirs[i], n) && (dir[n] == '/' || !dir[n] ||
						     !strcmp(t->dirs[i], "/")))
			return true;
	}
	return false;
}

static bool env_granted(const struct trust *t, const char *name)
{
	for (size_t i = 0; i < t->nenv; i++)
		if (!strcmp(t->env[i], name))
			return true;
	return false;
}

int engine_trust_embedder(const struct cache *c, const struct policy *p,
			  char *err, size_t errlen)
{
	const struct trust *t = &c->trust;

	if (strcmp(p->embedder, "http") || !p->http_api_key_env[0])
		return 0;
	if (!env_granted(t, p->http_api_key_env)) {
		snprintf(err, errlen, "http.api_key_env '%.64s' is not allowed by the mount owner (only variables named by -o embed_env, which start with %s, may hold keys)",
			 p->http_api_key_env, ENV_PREFIX);
		return -EPERM;
	}
	if (!url_granted(t, p->http_url)) {
		snprintf(err, errlen, "http.url '%.200s' is not under -o embed_urls: an API key is sent only to URLs the mount owner allows",
			 p->http_url);
		return -EPERM;
	}
	return 0;
}

/* The directory a model spec names ("model2vec:/DIR", "use-lite:/DIR"),
 * or NULL for specs that name none. */
static const char *spec_dir(const char *spec)
{
	const char *colon = strchr(spec, ':');

	return colon && colon[1] == '/' ? colon + 1 : NULL;
}

int engine_trust_policy(const struct cache *c, const struct policy_file *pf,
			const struct policy *eff, char *err, size_t errlen)
{
	const struct trust *t = &c->trust;
	bool sets = false;
	const char *dir;

	for (int k = POLICY_EMBEDDER; k <= POLICY_HTTP_BATCH; k++)
		sets |= policy_file_sets(pf, (enum policy_key)k);
	if (!sets)
		return 0;
	if (!strcmp(eff->embedder, "http") && !url_granted(t, eff->http_url)) {
		snprintf(err, errlen, "only the mount owner may point an http embedder at '%.200s' (allowed to others: URLs under -o embed_urls)",
			 eff->http_url);
		return -EPERM;
	}
	dir = spec_dir(eff->embedder);
	if (dir && !dir_granted(t, dir)) {
		snprintf(err, errlen, "only the mount owner may name the model directory '%.200s' (allowed to others: directories under -o model_dirs)",
			 dir);
		return -EPERM;
	}
	return 0;
}
