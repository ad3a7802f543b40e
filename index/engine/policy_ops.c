/*
 * policy_ops.c - policy files: reading them at open, the effective policy,
 * and the policy operations of cache.h (get, put, .policy, .errors).
 *
 * A write is parsed and validated for every category of the subtree it
 * affects before anything changes; a rejected one leaves the previous
 * policy and keeps the reason (with line and column) for .errors. The
 * embedder and the index structure (hnsw.m, hnsw.ef_construction) are
 * fixed while a category has entries; an empty category gets a new
 * embedder and index. A write runs under cache.lock held for writing
 * (parsing, validation, the store call and embedder creation included);
 * reads hold it for reading.
 *
 * Not here: parsing, inheritance and validation rules (policy/), other
 * hosts' policy changes (remote.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_i.h"
#include "semlog.h"

static void cat_set_policy_error(struct cat *cat, const char *msg)
{
	free(cat->perrors);
	cat->perrors = msg ? strdup(msg) : NULL;
}

/* The .errors line of a parse error: "PATH/policy.yaml:LINE:COL: MESSAGE",
 * then note, then a newline. */
static void parse_error_text(const struct cat *cat,
			     const struct policy_error *perr, const char *note,
			     char *msg, size_t size)
{
	snprintf(msg, size, "%s/policy.yaml:%d:%d: %s%s\n",
		 strcmp(cat->path, "/") ? cat->path : "", perr->line,
		 perr->column, perr->message, note);
}

/* A rejected write: log msg (one line ending in a newline) and keep it
 * for .errors. */
static void reject(struct cat *cat, const char *msg)
{
	semlog(SEMLOG_WARN, "rejected %.*s", (int)strlen(msg) - 1, msg);
	cat_set_policy_error(cat, msg);
}

void engine_policy_install(struct cat *cat, struct policy_file *pf,
			   char *yaml, size_t len)
{
	policy_file_free(cat->pfile);
	free(cat->pyaml);
	cat->pfile = pf;
	cat->pyaml = yaml;
	cat->pyaml_len = yaml ? len : 0;
	cat->pyaml_mtime_ms = clock_wall_ms();
}

int engine_policy_load(struct cache *c, struct cat *cat)
{
	struct policy_file *pf = NULL;
	struct policy_error perr;
	char *yaml = NULL;
	size_t len = 0;
	int rc = store_policy_get(c->store, cat->id, &yaml, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = policy_file_parse(yaml, len, cat->path, &pf, &perr);
	if (rc) {
		char msg[512];

		parse_error_text(cat, &perr, " (stored policy ignored)", msg,
				 sizeof(msg));
		semlog(SEMLOG_WARN, "%.*s", (int)strlen(msg) - 1, msg);
		cat_set_policy_error(cat, msg);
		pf = NULL;
	}
	engine_policy_install(cat, pf, yaml, len);
	return 0;
}

int cache_policy(struct cache *c, const char *path, struct policy *out)
{
	struct cat *cat;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat) {
		engine_cat_policy(cat, out);
		for (int i = 0; i < POLICY_NKEYS; i++)
			out->source[i] = NULL; /* not valid past the lock */
	}
	pthread_rwlock_unlock(&c->lock);
	return cat ? 0 : -ENOENT;
}

int cache_policy_get(struct cache *c, const char *path, char **yaml,
		     size_t *len, int64_t *mtime_ms)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat && cat->pyaml) {
		rc = engine_text_dup(cat->pyaml, cat->pyaml_len, yaml, len);
		if (mtime_ms)
			*mtime_ms = cat->pyaml_mtime_ms;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

static bool in_subtree(const struct cat *x, const struct cat *top)
{
	for (; x; x = x->parent)
		if (x == top)
			return true;
	return false;
}

/* What a policy write changes for c->cats[i] (one slot per category). */
struct restructure {
	bool rebuild;
	struct embedder *emb;      /* acquired when the embedder changes */
	char *emb_key;
};

static void restructure_release(struct cache *c, struct restructure *rs,
				size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (rs[i].emb)
			engine_embref_release(c, rs[i].emb);
		free(rs[i].emb_key);
		rs[i].emb = NULL;
		rs[i].emb_key = NULL;
	}
}

/*
 * What installing pf as cat's policy would change in cat's subtree. The
 * index structure (hnsw.m, hnsw.ef_construction) and the embedder are fixed
 * while a category has entries: such a change is refused (purge first), so a
 * mixed index is never built. An empty category gets a new embedder and index
 * (rs[i].rebuild; the new embedder is acquired here, in rs[i].emb, so that an
 * unusable one — a missing model — rejects the write). Called with
 * cache.lock held for writing. Returns -EINVAL with msg filled, or 0.
 */
static int check_structure(struct cache *c, struct cat *cat,
			   struct policy_file *pf, struct restructure *rs,
			   char *msg, size_t msize)
{
	struct policy_file *saved = cat->pfile;
	const char *where = strcmp(cat->path, "/") ? cat->path : "";
	int rc = 0;

	cat->pfile = pf;
	for (size_t i = 0; i < c->ncats && !rc; i++) {
		struct cat *x = c->cats[i];
		char why[400], err[400] = "";
		struct policy np;
		char *key;
		bool emb_changes, hnsw_changes;

		if (!in_subtree(x, cat))
			continue;
		engine_cat_policy(x, &np);
		if (policy_check(&np, why, sizeof(why))) {
			snprintf(msg, msize, "%s/policy.yaml: %s\n", where, why);
			rc = -EINVAL;
			break;
		}
		key = engine_embref_key(&np);
		if (!key) {
			rc = -ENOMEM;
			break;
		}
		emb_changes = !x->emb_key || strcmp(key, x->emb_key);
		hnsw_changes = np.hnsw_m != x->vp.m ||
			       np.hnsw_ef_construction != x->vp.ef_construction;
		free(key);
		if (!emb_changes && !hnsw_changes)
			continue;
		if (x->by_id.len) {
			snprintf(msg, msize,
				 "%s/policy.yaml: %s cannot change while '%s' has entries (it has %zu; purge it first)\n",
				 where, emb_changes ? "embedder" :
				 "hnsw.m and hnsw.ef_construction", x->path, x->by_id.len);
			rc = -EINVAL;
			break;
		}
		rs[i].rebuild = true;
		if (!emb_changes)
			continue;
		rc = engine_embref_acquire(c, &np, &rs[i].emb, &rs[i].emb_key, err, sizeof(err));
		if (rc) {
			snprintf(msg, msize, "%s/policy.yaml: embedder '%s' unusable: %s\n",
				 where, np.embedder, err[0] ? err : strerror(-rc));
			rc = -EINVAL;
		}
	}
	cat->pfile = saved;
	return rc;
}

static void rebuild_empty(struct cache *c, struct restructure *rs)
{
	for (size_t i = 0; i < c->ncats; i++) {
		struct cat *x = c->cats[i];
		struct policy np;

		if (!rs[i].rebuild)
			continue;
		if (rs[i].emb) {
			engine_embref_install(c, x, rs[i].emb, rs[i].emb_key);
			rs[i].emb = NULL;
			rs[i].emb_key = NULL;
		}
		engine_cat_policy(x, &np);
		engine_cat_index_new(x, &np, NULL); /* on error the old one stays */
	}
}

int cache_policy_put(struct cache *c, const char *path, const char *yaml,
		     size_t len, const struct cache_caller *who)
{
	struct restructure *rs = NULL;
	struct policy_file *pf = NULL;
	struct policy_error perr;
	struct cat *cat;
	char *copy = NULL;
	size_t copy_len;
	int rc;

	pthread_rwlock_wrlock(&c->lock);
	cat = engine_cat_find(c, path);
	rc = -ENOENT;
	if (!cat)
		goto out;
	if (yaml) {
		rc = policy_file_parse(yaml, len, cat->path, &pf, &perr);
		if (rc) {
			char msg[512];

			parse_error_text(cat, &perr, "", msg, sizeof(msg));
			reject(cat, msg);
			goto out;
		}
		rc = engine_text_dup(yaml, len, &copy, &copy_len);
		if (rc)
			goto out;
	}
	rc = -ENOMEM;
	rs = calloc(c->ncats, sizeof(*rs));
	if (!rs)
		goto out;
	{
		char msg[1024];

		rc = check_structure(c, cat, pf, rs, msg, sizeof(msg));
		if (rc) {
			reject(cat, msg);
			goto out;
		}
	}
	rc = store_policy_put(c->store, cat->id, yaml, len);
	if (rc == -ENOENT && !yaml)
		rc = 0; /* removing a policy that was never stored */
	if (rc)
		goto out;
	engine_policy_install(cat, pf, copy, len);
	cat_set_policy_error(cat, NULL);
	rebuild_empty(c, rs);
	pf = NULL;
	copy = NULL;
	semlog(SEMLOG_INFO, "policy of '%s' %s", cat->path, yaml ? "updated" : "removed");
out:
	pthread_rwlock_unlock(&c->lock);
	if (rs)
		restructure_release(c, rs, c->ncats);
	policy_file_free(pf);
	free(copy);
	free(rs);
	return rc;
}

int cache_policy_text(struct cache *c, const char *path, char **text,
		      size_t *len)
{
	struct policy pol;
	struct cat *cat;
	char buf[8192];
	int rc = -ENOENT, n;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat) {
		struct policy eff;
		char why[256], ttl[32];

		engine_cat_policy(cat, &pol);
		n = policy_format(&pol, buf, sizeof(buf));
		if (n >= (int)sizeof(buf))
			n = sizeof(buf) - 1;
		eff = pol;
		engine_adapt_policy(c, cat, &eff, clock_wall_ms(), why, sizeof(why));
		if (n >= 0 && (pol.adaptive_enabled || eff.threshold != pol.threshold)) {
			policy_format_duration(eff.ttl, ttl, sizeof(ttl));
			n += snprintf(buf + n, sizeof(buf) - n,
				      "effective.threshold: %-12.4g     # %s\n"
				      "effective.ttl: %-18s # %s\n",
				      eff.threshold, eff.threshold != pol.threshold &&
				      !pol.adaptive_enabled ? "learnt from wrong-hit feedback" : why,
				      ttl, pol.adaptive_enabled ? "adaptive" : "policy");
			if (n >= (int)sizeof(buf))
				n = sizeof(buf) - 1;
		}
		rc = engine_text_dup(buf, n < 0 ? 0 : n, text, len);
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int cache_policy_errors(struct cache *c, const char *path, char **text,
			size_t *len)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->lock);
	cat = engine_cat_find(c, path);
	if (cat) {
		const char *s = cat->perrors ? cat->perrors : "";

		rc = engine_text_dup(s, strlen(s), text, len);
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}
