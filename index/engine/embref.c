/*
 * embref.c - embedders shared by every category whose policy asks for the
 * same one.
 *
 * Loading a model is slow and its memory large, so embedders are kept in
 * a reference-counted list keyed by their identity (the embedder name, and
 * for "http" every setting that changes its vectors). All of it is meant
 * to run under cache.lock held for writing (or before other threads exist),
 * creating an embedder included; cache_policy_put() still releases the
 * embedders of a rejected write after dropping the lock.
 *
 * Not here: the embedders themselves (index/embed/), choosing when a
 * category's embedder may change (policy_ops.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

/* The identity of the embedder a policy asks for (settings included). */
char *engine_embref_key(const struct policy *p)
{
	char *key = NULL;
	int n;

	if (strcmp(p->embedder, "http"))
		return strdup(p->embedder);
	n = asprintf(&key, "http\x1f%s\x1f%s\x1f%d\x1f%s\x1f%" PRId64 "\x1f%d\x1f%d",
		     p->http_url, p->http_model, p->http_dimensions,
		     p->http_api_key_env, p->http_timeout_ms, p->http_retries,
		     p->http_batch);
	return n < 0 ? NULL : key;
}

/* Find or create the embedder for policy p. cache.lock held for writing
 * (or no other thread running yet). */
int engine_embref_acquire(struct cache *c, const struct policy *p,
			  struct embedder **out, char **key_out, char *err,
			  size_t errlen)
{
	char *key = engine_embref_key(p);
	struct embref *r;
	int rc;

	if (!key)
		return -ENOMEM;
	for (r = c->embs; r; r = r->next)
		if (!strcmp(r->key, key))
			break;
	if (!r) {
		struct embedder *e = NULL;

		rc = embedder_new(p, &e, err, errlen);
		if (rc) {
			free(key);
			return rc;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			embedder_free(e);
			free(key);
			return -ENOMEM;
		}
		r->key = strdup(key);
		r->e = e;
		r->next = c->embs;
		c->embs = r;
		if (!r->key) {
			free(key);
			return -ENOMEM; /* r stays listed, unreferenced: freed at close */
		}
		semlog(SEMLOG_INFO, "embedder '%s' ready (%d dimensions)", e->name, e->dim);
	}
	r->refs++;
	*out = r->e;
	*key_out = key;
	return 0;
}

void engine_embref_release(struct cache *c, struct embedder *e)
{
	for (struct embref **pp = &c->embs; *pp; pp = &(*pp)->next) {
		struct embref *r = *pp;

		if (r->e != e)
			continue;
		if (--r->refs == 0) {
			*pp = r->next;
			embedder_free(r->e);
			free(r->key);
			free(r);
		}
		return;
	}
}

/* Free every embedder, referenced or not (at close). */
void engine_embref_free_all(struct cache *c)
{
	while (c->embs) {
		struct embref *r = c->embs;

		c->embs = r->next;
		embedder_free(r->e);
		free(r->key);
		free(r);
	}
}

void engine_embref_install(struct cache *c, struct cat *cat,
			   struct embedder *e, char *key)
{
	if (cat->emb)
		engine_embref_release(c, cat->emb);
	free(cat->emb_key);
	free(cat->emb_error);
	cat->emb = e;
	cat->emb_key = key;
	cat->emb_error = NULL;
}

/* Give cat the embedder its effective policy names (or a reason why not). */
void engine_embref_assign(struct cache *c, struct cat *cat,
			  const struct policy *p)
{
	char err[512] = "";
	struct embedder *e = NULL;
	char *key = NULL;
	int rc = engine_embref_acquire(c, p, &e, &key, err, sizeof(err));

	engine_embref_install(c, cat, e, key);
	if (rc) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-rc));
		cat->emb_error = strdup(err);
		semlog(SEMLOG_ERR, "category '%s': embedder '%s' unavailable: %s (exact matches still served)",
		       cat->path, p->embedder, err);
	}
}
