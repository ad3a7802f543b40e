/*
 * ctxsim.c - context: similar: contexts compared by the cosine of their
 * embeddings instead of by their normalised text.
 *
 * A lookup under context: similar embeds its context with the category's
 * embedder (the one queries use), with no lock held, and the index's
 * accept callback (lookup.c) takes a candidate only when its entry's
 * context vector reaches context_threshold (engine_ctx_similar, under
 * cat.lock: a dot product, nothing slow). A fill under similar embeds its
 * context and keeps the vector in the entry's in-memory record; entries
 * loaded from the store (at open, from other hosts, or filled under
 * another value of context) get theirs from their stored context text,
 * a batch per lookup (engine_ctx_backfill), read and embedded with no lock
 * held. Until it has one, such an entry never hits under similar: a miss,
 * never a hit on an unchecked context. Both contexts empty match; one
 * empty never matches the other.
 *
 * Not here: the exact key, which includes the normalised context's hash
 * under similar as under match (lookup.c), so that the same query and the
 * same context still replace each other at fill and hit exactly.
 * The context vectors are not written to the store: they are remade from
 * its context text after a restart.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

#define CTX_EMB_SEED 0xc7a5e3b1d2f40917ULL
#define CTX_BACKFILL_BATCH 256   /* contexts embedded per lookup, at most */

uint64_t engine_ctx_emb_id(const struct catcore *core)
{
	const char *k = core->emb_key ? core->emb_key : core->emb->name;

	return hash64(k, strlen(k), CTX_EMB_SEED) | 1;
}

int engine_ctx_embed(struct cache *c, struct catref *ref, const char *ctx,
		     size_t len, float **out)
{
	const struct catcore *core = ref->core;
	float *v = malloc(sizeof(float) * (size_t)core->emb->dim);
	int rc;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	if (core->emb->remote && !engine_slow_enter(c, ref->cat)) {
		free(v);
		return -EBUSY;
	}
	rc = engine_core_embed(core, ctx, len, v);
	if (core->emb->remote)
		engine_slow_exit(c, ref->cat);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* Ids of up to max entries with a context but no vector of emb. Sets
 * *gen to the count they were collected at. cat.lock held. */
static size_t missing_ids(struct cat *cat, uint64_t emb, int64_t *ids,
			  size_t max, uint64_t *gen)
{
	size_t n = 0;

	*gen = cat->ctx_gen;
	for (struct centry *e = cat->fifo.head; e && n < max; e = e->fifo_next)
		if (e->ctx_hash && e->ctx_emb != emb)
			ids[n++] = e->id;
	return n;
}

/* Give entry id the vector v of emb (NULL: its context cannot be had). */
static void install(struct cat *cat, int64_t id, uint64_t emb, float *v)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e && e->ctx_emb != emb) {
		free(e->ctx_vec);
		e->ctx_vec = v;
		e->ctx_emb = emb;
		v = NULL;
	}
	pthread_mutex_unlock(&cat->lock);
	free(v);
}

void engine_ctx_backfill(struct cache *c, struct catref *ref)
{
	struct cat *cat = ref->cat;
	uint64_t emb = engine_ctx_emb_id(ref->core), gen;
	int64_t ids[CTX_BACKFILL_BATCH];
	bool all = true;
	size_t n;

	pthread_mutex_lock(&cat->lock);
	if (cat->ctx_done_emb == emb && cat->ctx_done_gen == cat->ctx_gen) {
		pthread_mutex_unlock(&cat->lock);
		return;
	}
	n = missing_ids(cat, emb, ids, CTX_BACKFILL_BATCH, &gen);
	pthread_mutex_unlock(&cat->lock);
	for (size_t i = 0; i < n; i++) {
		char *ctx = NULL;
		size_t len = 0;
		float *v = NULL;
		int rc = store_entry_text(c->store, ids[i], NULL, NULL, &ctx, &len);

		if (rc == -ENOENT || rc == -EBADMSG || (!rc && !ctx)) {
			/* gone or damaged: never matches a context */
			install(cat, ids[i], emb, NULL);
			free(ctx);
			continue;
		}
		if (!rc)
			rc = engine_ctx_embed(c, ref, ctx, len, &v);
		free(ctx);
		if (rc) {
			/* the store or a remote embedder is down: next time */
			all = false;
			break;
		}
		install(cat, ids[i], emb, v);
	}
	if (!all || n == CTX_BACKFILL_BATCH)
		return;
	pthread_mutex_lock(&cat->lock);
	if (cat->ctx_gen == gen) {
		cat->ctx_done_gen = gen;
		cat->ctx_done_emb = emb;
	}
	pthread_mutex_unlock(&cat->lock);
}

float engine_ctx_score(const struct centry *e, const float *qv, int dim,
		       uint64_t emb)
{
	float s = 0;

	if (!qv || !e->ctx_hash)
		return !qv && !e->ctx_hash ? 1.0f : -2.0f;
	if (e->ctx_emb != emb || !e->ctx_vec)
		return -2.0f;
	for (int i = 0; i < dim; i++)
		s += qv[i] * e->ctx_vec[i];
	return s;
}

bool engine_ctx_similar(const struct centry *e, const float *qv, int dim,
			uint64_t emb, double thr)
{
	return engine_ctx_score(e, qv, dim, emb) + 1e-6f >= (float)thr;
}
