/*
 * embref.c - embedders shared by every category whose policy asks for the
 * same one.
 *
 * Loading a model is slow and its memory large, so embedders are kept in
 * a reference-counted list keyed by their identity (the embedder spec, and
 * for "http" every setting that changes its vectors), under cache.emb_mu.
 * The list is only looked at under that lock; an embedder is made with no
 * lock held, then the list is looked at again: if another thread made the
 * same one meanwhile, that one is used and this one freed.
 *
 * Not here: the embedders themselves (index/embed/), whether the mount
 * owner allows one (trust.c), when a category's embedder may change
 * (policy_ops.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

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

/* The listed embedder with identity key, one reference taken, or NULL.
 * cache.emb_mu held. */
static struct embedder *listed(struct cache *c, const char *key)
{
	for (struct embref *r = c->embs; r; r = r->next)
		if (!strcmp(r->key, key)) {
			r->refs++;
			return r->e;
		}
	return NULL;
}

int engine_embref_acquire(struct cache *c, const struct policy *p,
			  struct embedder **out, char *err, size_t errlen)
{
	char *key = engine_embref_key(p);
	struct embedder *e = NULL, *have;
	struct embref *r;
	int rc;

	*out = NULL;
	if (!key)
		return -ENOMEM;
	rc = engine_trust_embedder(c, p, err, errlen);
	if (rc)
		goto out;
	pthread_mutex_lock(&c->emb_mu);
	have = listed(c, key);
	pthread_mutex_unlock(&c->emb_mu);
	if (have) {
		*out = have;
		goto out;
	}
	rc = embedder_new(p, &e, err, errlen); /* slow: no lock held */
	if (rc)
		goto out;
	r = calloc(1, sizeof(*r));
	pthread_mutex_lock(&c->emb_mu);
	have = listed(c, key);
	if (!have && r) {
		r->key = key;
		r->e = e;
		r->refs = 1;
		r->next = c->embs;
		c->embs = r;
		key = NULL;
		*out = e;
		e = NULL;
		r = NULL;
	}
	pthread_mutex_unlock(&c->emb_mu);
	if (have) {
		*out = have; /* another thread made it first */
	} else if (*out) {
		semlog(SEMLOG_INFO, "embedder '%s' ready (%d dimensions)",
		       (*out)->name, (*out)->dim);
	} else {
		rc = -ENOMEM;
	}
	embedder_free(e);
	free(r);
out:
	free(key);
	return rc;
}

struct embedder *engine_embref_hold(struct cache *c, struct embedder *e)
{
	pthread_mutex_lock(&c->emb_mu);
	for (struct embref *r = c->embs; r; r = r->next)
		if (r->e == e)
			r->refs++;
	pthread_mutex_unlock(&c->emb_mu);
	return e;
}

void engine_embref_release(struct cache *c, struct embedder *e)
{
	struct embref *gone = NULL;

	pthread_mutex_lock(&c->emb_mu);
	for (struct embref **pp = &c->embs; *pp; pp = &(*pp)->next) {
		struct embref *r = *pp;

		if (r->e != e)
			continue;
		if (--r->refs == 0) {
			*pp = r->next;
			gone = r;
		}
		break;
	}
	pthread_mutex_unlock(&c->emb_mu);
	if (gone) {
		embedder_free(gone->e);
		free(gone->key);
		free(gone);
	}
}

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
