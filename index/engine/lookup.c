/*
 * lookup.c - cache_lookup(): the exact fast path, then embedding and a
 * vector search; serving a hit; the exact key of a query.
 *
 * With references to the category and its core taken under a short hold
 * of cache.tree (and no engine lock held while the work is done): the
 * effective (and adapted) policy, the exact map (no embedding, no index),
 * then the query's embedding and a search of the core's index whose
 * candidates are accepted only when their entry is live, unexpired and of
 * the same context (checked under cat.lock from the index's accept
 * callback; under context: similar, a context whose embedding reaches
 * context_threshold, the query's context embedded first with no lock held,
 * and of the candidates reaching the threshold the one with the closest
 * context is served: ctxsim.c). The best CACHE_NEIGHBORS of them (ids and
 * scores) stay in the result, hit or miss, for NAME.neighbors and the
 * best-score histograms:
 * the same search, nothing copied but numbers; their query texts are read
 * only when a client asks (cache_entry_read, no lock held). With a
 * precision target (policy precision > 0) the threshold does not decide:
 * the candidates at or above the verifier's cosine floor have their query
 * texts read from the store (no lock held) and are scored by the verifier,
 * and the best one reaching the target's operating point is served
 * (lookup_verified). A hit's
 * response is read from the store before the hit is counted. A remote
 * embedder is asked only while the bound on slow work allows (else: miss,
 * busy). A miss under fill_timeout may become
 * pending on an earlier miss (pending.c). The vector computed is kept in
 * the result so that a fill of the same query does not embed again.
 *
 * Not here: storing (fill.c), waiting for a pending fill (pending.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "embed.h"
#include "engine_i.h"
#include "semlog.h"
#include "textnorm.h"
#include "verify.h"

#define KEY_SEED_A 0x5e3ac4cef5a11e01ULL
#define KEY_SEED_B 0x0b5e55edca7e9a72ULL
#define CTX_SEED 0xc0a7e47c0a7e47c1ULL

/* Normalise q and derive its exact key under policy p. */
int engine_lookup_key(const struct cache_query *q, const struct policy *p,
		      struct keyed *k)
{
	size_t cap = q->query_len > q->context_len ? q->query_len : q->context_len;

	k->norm = cap <= sizeof(k->stackbuf) ? k->stackbuf : malloc(cap ? cap : 1);
	if (!k->norm)
		return -ENOMEM;
	k->ctx_hash = 0;
	if (q->context && q->context_len && p->context != POLICY_CONTEXT_IGNORE) {
		size_t n = textnorm(q->context, q->context_len, k->norm);

		if (n)
			k->ctx_hash = hash64(k->norm, n, CTX_SEED) | 1;
	}
	k->norm_len = textnorm(q->query, q->query_len, k->norm);
	if (!k->norm_len)
		return -EINVAL;
	k->key[0] = hash64(k->norm, k->norm_len, KEY_SEED_A ^ k->ctx_hash);
	k->key[1] = hash64(k->norm, k->norm_len, KEY_SEED_B ^ k->ctx_hash);
	if (!k->key[0])
		k->key[0] = 1;
	return 0;
}

void engine_lookup_key_release(struct keyed *k)
{
	if (k->norm && k->norm != k->stackbuf)
		free(k->norm);
	k->norm = NULL;
}

struct accept_ctx {
	struct cat *cat;
	const struct policy *pol;
	uint64_t ctx_hash;
	int64_t now;
	/* context: similar, in the index search: the query's context vector
	 * (NULL: it has no context) and the embedder it came from. */
	bool by_vec;
	const float *ctx_vec;
	int dim;
	uint64_t emb;
};

static bool entry_matches(const struct accept_ctx *ac, const struct centry *e)
{
	enum policy_context mode = ac->pol->context;

	if (mode == POLICY_CONTEXT_SIMILAR && ac->by_vec) {
		if (!engine_ctx_similar(e, ac->ctx_vec, ac->dim, ac->emb,
					ac->pol->context_threshold))
			return false;
	} else if (mode != POLICY_CONTEXT_IGNORE && e->ctx_hash != ac->ctx_hash) {
		/* match, and similar's exact path: the same context */
		return false;
	}
	return !engine_entry_expired(ac->pol, e, ac->now);
}

static bool accept_entry(void *arg, int64_t id)
{
	struct accept_ctx *ac = arg;
	struct centry *e;
	bool ok;

	pthread_mutex_lock(&ac->cat->lock);
	e = u64map_get(&ac->cat->by_id, (uint64_t)id);
	ok = e && entry_matches(ac, e);
	pthread_mutex_unlock(&ac->cat->lock);
	return ok;
}

/* Count a hit on id; returns false if the entry is gone. */
static bool note_hit(struct cat *cat, int64_t id, int64_t now, int64_t *created)
{
	struct centry *e;

	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	if (e) {
		e->hits++;
		e->own++;
		cat->entry_hits++;
		e->last_hit_ms = now;
		*created = e->created_ms;
		ELIST_UNLINK(&cat->lru, e, lru_prev, lru_next);
		ELIST_LINK(&cat->lru, e, lru_prev, lru_next);
		if (!e->dirty && cat->ndirty < cat->dirty_cap) {
			cat->dirty[cat->ndirty++] = e->id;
			e->dirty = true;
		}
	}
	pthread_mutex_unlock(&cat->lock);
	return e != NULL;
}

/* Room in cat's hit write-back queue for one more (allocated with no
 * lock held, so that note_hit never allocates under cat.lock). */
static void dirty_reserve(struct cat *cat)
{
	size_t need, cap;
	int64_t *n;

	pthread_mutex_lock(&cat->lock);
	need = cat->ndirty + 1;
	cap = cat->dirty_cap;
	pthread_mutex_unlock(&cat->lock);
	if (need <= cap)
		return;
	cap = cap ? cap * 2 : 64;
	n = malloc(cap * sizeof(*n));
	if (!n)
		return; /* the hit is counted in memory, written back later */
	pthread_mutex_lock(&cat->lock);
	if (cap > cat->dirty_cap) {
		if (cat->ndirty)
			memcpy(n, cat->dirty, cat->ndirty * sizeof(*n));
		free(cat->dirty);
		cat->dirty = n;
		cat->dirty_cap = cap;
		n = NULL;
	}
	pthread_mutex_unlock(&cat->lock);
	free(n);
}

int engine_lookup_serve(struct cache *c, struct catref *ref, int64_t id,
			int64_t now, struct cache_result *r)
{
	struct cat *cat = ref->cat;
	int64_t created = now;
	uint64_t key[2];
	struct centry *e;
	bool known;
	int rc;

	/* the entry's key as known here: the store answers only for that
	 * question (a Redis that lost entries may give their ids out again) */
	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)id);
	known = e != NULL;
	if (e) {
		key[0] = e->key[0];
		key[1] = e->key[1];
	}
	pthread_mutex_unlock(&cat->lock);
	/* the response first (a store call, no lock held); the hit is
	 * counted only once it is in hand */
	rc = store_response_read(c->store, id, known ? key : NULL, &r->response,
				 &r->response_len);
	if (rc == -EBADMSG) {
		semlog(SEMLOG_ERR, "category '%s': entry %" PRId64 " response unreadable (%s): entry dropped",
		       cat->path, id, strerror(-rc));
		if (engine_entry_delete(c, cat, ref->core, id, "damaged") == 0)
			cat->dropped++;
		return rc;
	}
	if (rc == -ENOENT) {
		/* gone from the store (removed meanwhile, or by another host) */
		engine_entry_forget(cat, ref->core, id);
		return rc;
	}
	if (rc) {
		/* the store is unreachable: the entry stays, this is a miss */
		snprintf(r->note, sizeof(r->note), "store unavailable: %s",
			 strerror(-rc));
		return rc;
	}
	dirty_reserve(cat);
	if (!note_hit(cat, id, now, &created)) {
		/* removed while its response was read: never served again */
		free(r->response);
		r->response = NULL;
		r->response_len = 0;
		return -ENOENT;
	}
	r->outcome = CACHE_HIT;
	r->entry_id = id;
	r->age_s = (now - created) / 1000;
	return 0;
}

/* A store call failed because the store did not answer (not because the
 * entry is gone or damaged): asking it again in the same lookup would wait
 * another command timeout, so the lookup ends as a miss. */
static bool store_down(int rc)
{
	return rc < 0 && rc != -ENOENT && rc != -EBADMSG && rc != -ENOMEM;
}

/* Embed q into r->vec with ref's embedder; a remote embedder only while
 * the bound on slow work allows. A failure is a miss with a note. */
static bool lookup_embed(struct cache *c, struct catref *ref,
			 const struct cache_query *q, struct cache_result *r)
{
	const struct catcore *core = ref->core;
	bool remote = core->emb->remote;
	int rc;

	if (remote && !engine_slow_enter(c, ref->cat)) {
		snprintf(r->note, sizeof(r->note), "busy: too many requests wait on this category's embedder");
		return false;
	}
	rc = engine_core_embed(core, q->query, q->query_len, r->vec);
	if (remote)
		engine_slow_exit(c, ref->cat);
	if (rc) {
		/* a remote embedder is down or slow: answer miss, say why */
		snprintf(r->note, sizeof(r->note), "embedder unavailable: %s",
			 embedder_last_error());
		return false;
	}
	return true;
}

/* context: similar: the query's context vector into ac (with ac->by_vec)
 * and *vec (the caller frees it), and entries' context vectors made where
 * missing. A context that cannot be embedded is a miss with a note. */
static bool lookup_context(struct cache *c, struct catref *ref,
			   const struct cache_query *q, const struct keyed *k,
			   struct accept_ctx *ac, float **vec,
			   struct cache_result *r)
{
	*vec = NULL;
	if (k->ctx_hash) {
		int rc = engine_ctx_embed(c, ref, q->context, q->context_len, vec);

		if (rc) {
			snprintf(r->note, sizeof(r->note), "%s",
				 rc == -EBUSY ? "busy: too many requests wait on this category's embedder" :
				 "embedder unavailable for the context");
			return false;
		}
		engine_ctx_backfill(c, ref);
	}
	ac->by_vec = true;
	ac->ctx_vec = *vec;
	ac->dim = ref->core->emb->dim;
	ac->emb = engine_ctx_emb_id(ref->core);
	return true;
}

/* context: similar: of the candidates reaching the threshold, the one whose
 * context is closest to the query's (several conversations may hold the
 * same follow-up, all at one query score); 0 when none reaches it. */
static int pick_by_context(const struct accept_ctx *ac,
			   const struct cache_result *r)
{
	float best = -3;
	int pick = 0;

	pthread_mutex_lock(&ac->cat->lock);
	for (int i = 0; i < r->ncand; i++) {
		const struct centry *e = u64map_get(&ac->cat->by_id,
						    (uint64_t)r->cand_id[i]);
		float s;

		if (r->cand_score[i] + 1e-6f < (float)ac->pol->threshold)
			break;
		s = e ? engine_ctx_score(e, ac->ctx_vec, ac->dim, ac->emb) : -3;
		if (s > best) {
			best = s;
			pick = i;
		}
	}
	pthread_mutex_unlock(&ac->cat->lock);
	return pick;
}

/* Model m's operating point for a precision target (verify.h), at the
 * model's training prior as semcachefs-eval --pipeline --precision maps
 * it: 0 with *thr, or -ERANGE with msg naming the best supported target
 * (the best 95 % lower bound, rounded down, so that it qualifies). */
static int precision_point(enum verify_model m, double precision, double *thr,
			   char *msg, size_t size)
{
	double t, low;
	int sup, rc = verify_operating_point(m, precision, 0, &t, &low, &sup);

	if (rc == 0) {
		if (thr)
			*thr = t;
		return 0;
	}
	if (msg && low > 0)
		snprintf(msg, size, "precision: %.4g is more than the calibration "
			 "of verifier '%s' supports (best supported precision: "
			 "%.4f); set precision at or below it, or a raw cosine "
			 "with threshold", precision, verify_model_name(m),
			 floor(low * 1e4) / 1e4);
	else if (msg)
		snprintf(msg, size, "precision: verifier '%s' has no calibrated "
			 "operating point; use threshold", verify_model_name(m));
	return rc == -EINVAL ? -EINVAL : -ERANGE;
}

int engine_precision_point(const struct policy *p, const char **model_name,
			   double *thr, char *msg, size_t size)
{
	enum verify_model m = strncmp(p->embedder, "use-lite", 8) == 0 ?
			      VERIFY_USE_LITE : VERIFY_LEXICAL;

	if (model_name)
		*model_name = verify_model_name(m);
	if (!(p->precision > 0)) {
		if (thr)
			*thr = p->threshold;
		return 0;
	}
	return precision_point(m, p->precision, thr, msg, size);
}

/*
 * With a precision target: the verifier judges the candidates whose cosine
 * reaches VERIFY_COS_FLOOR on (query, candidate's query), with the index
 * cosine in the category's embedder slot (a use-lite category's cosine is
 * the use-lite one: verify-use-lite-v2; any other: verify-lexical-v2,
 * which computes the builtin cosine from the texts). The best one whose
 * score reaches the operating point is served. Candidate texts are read
 * from the store with no lock held; serving re-checks the entry lives.
 * True when r became a hit.
 */
static bool lookup_verified(struct cache *c, struct catref *ref,
			    const struct cache_query *q, double precision,
			    int64_t now, struct cache_result *r)
{
	float cos[VERIFY_NCOS] = { NAN, NAN };
	int slot = verify_cos_slot(ref->core->emb->name);
	int order[CACHE_NEIGHBORS], nv = 0, i, j;
	double p[CACHE_NEIGHBORS], thr = 2;
	struct verify_side qs, cs;
	enum verify_model m;
	bool qinit = false, down = false;

	if (slot >= 0)
		cos[slot] = 0;
	m = verify_model_for(cos, VERIFY_NCOS);
	for (i = 0; i < r->ncand && r->cand_score[i] + 1e-6f >= VERIFY_COS_FLOOR; i++) {
		char *text = NULL;
		size_t len = 0;
		int rc;

		rc = store_entry_text(c->store, r->cand_id[i], &text, &len, NULL, NULL);
		if (store_down(rc)) {
			snprintf(r->note, sizeof(r->note), "store unavailable: %s",
				 strerror(-rc));
			down = true;
			break;     /* not asked again in this lookup */
		}
		if (rc)
			continue;  /* gone or unreadable: not served */
		rc = qinit ? 0 : verify_side_init(&qs, q->query, q->query_len);
		qinit = qinit || rc == 0;
		if (!rc)
			rc = verify_side_init(&cs, text, len);
		free(text);
		if (rc)
			break;     /* out of memory: a miss */
		if (slot >= 0)
			cos[slot] = r->cand_score[i];
		p[i] = verify_score(&qs, &cs, cos, VERIFY_NCOS);
		verify_side_release(&cs);
		for (j = nv++; j > 0 && p[order[j - 1]] < p[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	if (qinit)
		verify_side_release(&qs);
	if (down)
		return false;
	if (nv && precision_point(m, precision, &thr, NULL, 0)) {
		/* refused at policy write; reachable only if calibration and
		 * embedder disagree later: never serve at an unsupported point */
		snprintf(r->note, sizeof(r->note), "precision %.4g unsupported by "
			 "verifier '%s': only exact matches hit", precision,
			 verify_model_name(m));
		return false;
	}
	for (j = 0; j < nv && p[order[j]] >= thr; j++) {
		int rc;

		i = order[j];
		rc = engine_lookup_serve(c, ref, r->cand_id[i], now, r);
		if (rc == 0) {
			r->score = r->cand_score[i];
			return true;
		}
		if (store_down(rc))
			break;     /* not asked again in this lookup */
	}
	return false;
}

int cache_lookup(struct cache *c, const char *path, const struct cache_query *q,
		 struct cache_result *r)
{
	struct accept_ctx ac;
	struct catref ref;
	struct catcore *core;
	struct keyed k = { 0 };
	struct cat *cat;
	struct centry *e;
	struct policy pol;
	float *ctx_vec = NULL;
	int64_t hit_id = 0, id;
	float score;
	bool down = false;
	int rc, n;

	int64_t t0 = clock_mono_us();

	memset(r, 0, sizeof(*r));
	r->outcome = CACHE_MISS;
	rc = engine_cat_get(c, path, &ref);
	if (rc)
		return rc;
	cat = ref.cat;
	core = ref.core;
	pol = ref.pol;
	engine_adapt_policy(c, cat, &pol, clock_wall_ms(), NULL, 0);
	r->threshold = (float)pol.threshold;
	rc = -EFBIG;
	if ((int64_t)q->query_len > pol.query_bytes)
		goto out;
	rc = engine_lookup_key(q, &pol, &k);
	if (rc)
		goto out;
	cat->lookups++;
	if (!pol.cache) {
		snprintf(r->note, sizeof(r->note), "cache disabled by policy");
		cat->misses++;
		goto out;
	}
	ac = (struct accept_ctx){ .cat = cat, .pol = &pol,
				  .ctx_hash = k.ctx_hash, .now = clock_wall_ms() };

	/* Exact fast path: no embedding, no index. The response is read with
	 * no lock held, so the entry found may be replaced (a refill of the
	 * same query) before it is served: then the one that replaced it is
	 * looked up again, a few times, rather than answered by the index. */
	for (int tries = 0; tries < 3; tries++) {
		int64_t found = 0;

		pthread_mutex_lock(&cat->lock);
		e = u64map_get(&cat->by_key, k.key[0]);
		if (e && e->key[1] == k.key[1] && entry_matches(&ac, e))
			found = e->id;
		pthread_mutex_unlock(&cat->lock);
		if (!found || found == hit_id)
			break; /* none, or the same one gone: not replaced */
		hit_id = found;
		rc = engine_lookup_serve(c, &ref, hit_id, ac.now, r);
		if (rc == 0) {
			r->exact = true;
			r->score = 1.0f;
			cat->hits++;
			cat->exact_hits++;
			goto out;
		}
		if (rc != -ENOENT) {
			down = store_down(rc);
			break;
		}
	}
	rc = 0;
	if (down) {
		/* the store did not answer for the exact match: the semantic
		 * path would ask it again (another timeout) for the same entry */
		cat->misses++;
		goto out;
	}

	if (!core->emb) {
		snprintf(r->note, sizeof(r->note), "embedder unavailable: %s",
			 core->emb_error ? core->emb_error : "unknown");
		cat->misses++;
		rc = 0;
		goto out;
	}
	r->dim = core->emb->dim;
	r->vec_by = core->emb;
	r->vec = malloc(sizeof(float) * r->dim);
	rc = -ENOMEM;
	if (!r->vec)
		goto out;
	rc = 0;
	if (!lookup_embed(c, &ref, q, r)) {
		free(r->vec);
		r->vec = NULL;
		cat->misses++;
		goto out;
	}
	if (pol.context == POLICY_CONTEXT_SIMILAR &&
	    !lookup_context(c, &ref, q, &k, &ac, &ctx_vec, r)) {
		cat->misses++;
		goto out;
	}
	if (pol.hnsw_ef_search != core->ef_search) {
		/* two lookups may both set the same value: harmless */
		core->ef_search = pol.hnsw_ef_search;
		vindex_set_ef_search(core->vi, pol.hnsw_ef_search);
	}
	/* the top candidates, kept for NAME.neighbors (no second search) */
	n = vindex_search(core->vi, r->vec, CACHE_NEIGHBORS, accept_entry, &ac,
			  r->cand_id, r->cand_score);
	if (n < 0) {
		rc = n;
		goto out;
	}
	r->ncand = n;
	if (n >= 1) {
		int i = ac.ctx_vec ? pick_by_context(&ac, r) : 0;

		id = r->cand_id[i];
		score = r->cand_score[i];
		r->score = score;
		if (pol.precision > 0 ?
		    lookup_verified(c, &ref, q, pol.precision, ac.now, r) :
		    score + 1e-6f >= (float)pol.threshold &&
		    engine_lookup_serve(c, &ref, id, ac.now, r) == 0) {
			cat->hits++;
			cat->semantic_hits++;
			goto out;
		}
	}
	if (pol.fill_timeout_ms > 0 && engine_pending_coalesce(c, cat, &pol, &k, r))
		goto out; /* pending: counted once resolved */
	cat->misses++;
out:
	if (!rc) {
		engine_lat_record(cat, (uint64_t)(clock_mono_us() - t0));
		engine_best_record(cat, r);
	}
	engine_cat_put(c, &ref);
	engine_lookup_key_release(&k);
	free(ctx_vec);
	if (rc)
		cache_result_release(r);
	return rc;
}

void cache_result_release(struct cache_result *r)
{
	free(r->response);
	free(r->vec);
	r->response = NULL;
	r->vec = NULL;
	r->response_len = 0;
}
