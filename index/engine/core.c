/*
 * core.c - a category's core: the embedder and the vector index it
 * searches with, made together, shared by reference, replaced whole.
 *
 * A core is immutable once a category publishes it (cat->core, under
 * cache.tree); operations hold a reference while they work, so a policy
 * change that gives an empty category another embedder or HNSW structure
 * never pulls the index from under a lookup, and a lookup never embeds
 * with one embedder and searches an index of another. Making a core may
 * load a model (slow): it is done with no lock held. Embeddings are
 * L2-normalised here, whatever the embedder returns, so cosine similarity
 * is the inner product the index computes.
 *
 * Also here: the bound on requests waiting on slow work (remote
 * embeddings, pending fills), so that one slow category cannot occupy
 * every FUSE worker thread.
 *
 * Not here: when cores are made or replaced (cat.c, open.c, policy_ops.c,
 * remote.c), the embedders themselves (index/embed/).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "engine_i.h"
#include "semlog.h"

static struct catcore *core_alloc(void)
{
	struct catcore *core = calloc(1, sizeof(*core));

	if (core)
		core->refs = 1;
	return core;
}

/* core's index for p (with core's embedder's dimension): from snap when it
 * matches, else a new empty one. */
static int core_index(struct catcore *core, const struct policy *p,
		      const char *snap)
{
	struct vindex_params vp = { .dim = core->emb ? core->emb->dim : 1,
				    .m = p->hnsw_m,
				    .ef_construction = p->hnsw_ef_construction,
				    .ef_search = p->hnsw_ef_search };
	int rc = -ENOENT;

	if (snap)
		rc = vindex_load(snap, &vp, &core->vi);
	if (rc) {
		if (rc != -ENOENT)
			semlog(SEMLOG_WARN, "index snapshot '%s' unusable (%s): rebuilding from the store",
			       snap, strerror(-rc));
		rc = vindex_new(&vp, &core->vi);
		if (rc)
			return rc;
	}
	core->vp = vp;
	core->ef_search = vp.ef_search;
	return 0;
}

int engine_core_make(struct cache *c, const struct policy *p,
		     const char *path, const char *snap, bool strict,
		     struct catcore **out, char *err, size_t errlen)
{
	struct catcore *core = core_alloc();
	char why[512] = "";
	int rc = -ENOMEM;

	*out = NULL;
	if (!core)
		return rc;
	core->emb_key = engine_embref_key(p);
	if (!core->emb_key)
		goto fail;
	rc = engine_embref_acquire(c, p, &core->emb, why, sizeof(why));
	if (rc) {
		if (!why[0])
			snprintf(why, sizeof(why), "%s", strerror(-rc));
		if (strict) {
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
		core->emb = NULL;
		core->emb_error = strdup(why);
		if (!core->emb_error) {
			rc = -ENOMEM;
			goto fail;
		}
		semlog(SEMLOG_ERR, "category '%s': embedder '%s' unavailable: %s (exact matches still served)",
		       path, p->embedder, why);
	}
	rc = core_index(core, p, snap);
	if (rc)
		goto fail;
	*out = core;
	return 0;
fail:
	engine_core_put(c, core);
	return rc;
}

struct catcore *engine_core_reindex(struct cache *c, const struct catcore *base,
				    const struct policy *p)
{
	struct catcore *core = core_alloc();

	if (!core)
		return NULL;
	core->emb_key = strdup(base->emb_key);
	core->emb_error = base->emb_error ? strdup(base->emb_error) : NULL;
	if (base->emb)
		core->emb = engine_embref_hold(c, base->emb);
	if (!core->emb_key || (base->emb_error && !core->emb_error) ||
	    core_index(core, p, NULL)) {
		engine_core_put(c, core);
		return NULL;
	}
	return core;
}

void engine_core_hold(struct catcore *core)
{
	if (core)
		core->refs++;
}

void engine_core_put(struct cache *c, struct catcore *core)
{
	if (!core || --core->refs > 0)
		return;
	vindex_free(core->vi);
	if (core->emb)
		engine_embref_release(c, core->emb);
	free(core->emb_key);
	free(core->emb_error);
	free(core);
}

int engine_core_embed(const struct catcore *core, const char *text,
		      size_t len, float *out)
{
	int dim = core->emb->dim;
	int rc = embedder_embed(core->emb, text, len, out);
	double ss = 0;

	if (rc)
		return rc;
	for (int i = 0; i < dim; i++)
		ss += (double)out[i] * out[i];
	if (ss > 0 && fabs(ss - 1.0) > 1e-6) {
		float inv = (float)(1.0 / sqrt(ss));

		for (int i = 0; i < dim; i++)
			out[i] *= inv;
	}
	return 0;
}

bool engine_slow_enter(struct cache *c, struct cat *cat)
{
	unsigned all = ++c->slow, mine = ++cat->slow;

	if (all <= c->max_slow && mine <= c->max_slow_cat)
		return true;
	--c->slow;
	--cat->slow;
	if (cat->busy++ % 1000 == 0)
		semlog(SEMLOG_WARN, "category '%s': %u requests already wait on slow work (%u in all): answering miss (busy)",
		       cat->path, mine - 1, all - 1);
	return false;
}

void engine_slow_exit(struct cache *c, struct cat *cat)
{
	--c->slow;
	--cat->slow;
}
