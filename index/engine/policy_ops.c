/*
 * policy_ops.c - policy files: reading them at open, the effective policy,
 * and the policy operations of cache.h (get, put, .policy, .errors).
 *
 * A write is parsed before any lock is taken, then planned for every
 * category of the subtree it affects under a short hold of cache.tree
 * (read); new embedders and indexes are made and the store is written with
 * no lock but the category's admin_mu (which only another writer of the
 * same policy waits for); then everything is installed under cache.tree
 * (write) if nothing changed meanwhile, else planned again. A rejected
 * write leaves the previous policy (in memory and in the store) and keeps
 * the reason (with line and column) for .errors. Only the category's owner
 * or a trusted caller may write; untrusted writers are held to what the
 * mount owner grants (trust.c). The embedder and the index structure
 * (hnsw.m, hnsw.ef_construction) are fixed while a category has entries;
 * an empty category gets a new core (embedder and index).
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
#include "verify.h"

/* Keep msg (NULL: none) as cat's .errors text. Takes cat.lock. */
static void cat_set_policy_error(struct cat *cat, const char *msg)
{
	char *copy = msg ? strdup(msg) : NULL;

	pthread_mutex_lock(&cat->lock);
	free(cat->perrors);
	cat->perrors = copy;
	pthread_mutex_unlock(&cat->lock);
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

/* pf (parsed from yaml, len bytes, malloc'd; NULL: no policy file)
 * becomes cat's policy file, both now owned by cat; the previous ones are
 * freed. cache.tree held for writing (or no other thread). */
static void policy_install(struct cache *c, struct cat *cat,
			   struct policy_file *pf, char *yaml, size_t len)
{
	int64_t now = clock_wall_ms();

	policy_file_free(cat->pfile);
	free(cat->pyaml);
	cat->pfile = pf;
	cat->pyaml = yaml;
	cat->pyaml_len = yaml ? len : 0;
	/* strictly increasing, so that it names one install
	 * (cache_policy_remove_if), even within a millisecond */
	cat->pyaml_mtime_ms = now > cat->pyaml_mtime_ms ? now : cat->pyaml_mtime_ms + 1;
	c->tree_gen++;
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
	policy_install(c, cat, pf, yaml, len);
	return 0;
}

int cache_policy(struct cache *c, const char *path, struct policy *out)
{
	struct catref ref;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	*out = ref.pol;
	engine_cat_put(c, &ref);
	return 0;
}

int cache_policy_get(struct cache *c, const char *path, char **yaml,
		     size_t *len, int64_t *mtime_ms)
{
	struct cat *cat;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&c->tree);
	cat = engine_cat_find(c, path);
	if (cat && cat->pyaml) {
		rc = engine_text_dup(cat->pyaml, cat->pyaml_len, yaml, len);
		if (mtime_ms)
			*mtime_ms = cat->pyaml_mtime_ms;
	}
	pthread_rwlock_unlock(&c->tree);
	return rc;
}

/*
 * A policy write, planned: for every category of the subtree it affects,
 * the new effective policy, and a new core where the embedder or the HNSW
 * structure changes. The embedder and the structure are fixed while a
 * category has entries: a local write that would change them is refused
 * (purge first), so a mixed index is never built; a change another host
 * made to the store is followed (old entries are then served on exact
 * matches only).
 */
struct change {
	struct cat *cat;          /* referenced */
	struct policy np;         /* its new effective policy (no sources) */
	int kind;                 /* 0: same core; 1: new embedder; 2: new index */
	struct catcore *core;     /* the new core, made outside every lock */
};

struct plan {
	struct change *ch;
	size_t n;
	uint64_t gen;             /* tree_gen the plan was made at */
};

static void plan_release(struct cache *c, struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++) {
		engine_core_put(c, pl->ch[i].core);
		engine_cat_release(c, pl->ch[i].cat);
	}
	free(pl->ch);
	memset(pl, 0, sizeof(*pl));
}

/* What x's change is, with its entries n (local writes refuse a change of
 * structure while there are any). cache.tree held. -EINVAL with msg. */
static int change_of(const struct cat *x, const char *where, bool remote,
		     struct change *ch, char *msg, size_t msize)
{
	const struct catcore *core = x->core;
	char *key = engine_embref_key(&ch->np);
	bool emb, hnsw;
	size_t n;

	if (!key)
		return -ENOMEM;
	emb = !core->emb_key || strcmp(key, core->emb_key);
	hnsw = ch->np.hnsw_m != core->vp.m ||
	       ch->np.hnsw_ef_construction != core->vp.ef_construction;
	free(key);
	ch->kind = emb ? 1 : hnsw ? 2 : 0;
	if (!ch->kind || remote)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&x->lock);
	n = x->by_id.len + x->fills_inflight;
	pthread_mutex_unlock((pthread_mutex_t *)&x->lock);
	if (!n)
		return 0;
	snprintf(msg, msize,
		 "%s/policy.yaml: %s cannot change while '%s' has entries (it has %zu; purge it first)\n",
		 where, emb ? "embedder" : "hnsw.m and hnsw.ef_construction",
		 x->path, n);
	return -EINVAL;
}

/* Plan installing pf as cat's policy file. cache.tree held for reading.
 * -EINVAL / -EPERM with msg filled. */
static int plan_make(struct cache *c, struct cat *cat, struct policy_file *pf,
		     const struct cache_caller *who, bool remote,
		     struct plan *pl, char *msg, size_t msize)
{
	const char *where = strcmp(cat->path, "/") ? cat->path : "";
	char why[600];
	int rc = 0;

	pl->gen = c->tree_gen;
	pl->n = 0;
	pl->ch = calloc(c->ncats + 1, sizeof(*pl->ch));
	if (!pl->ch)
		return -ENOMEM;
	for (size_t i = 0; i < c->ncats && !rc; i++) {
		struct cat *x = c->cats[i];
		struct change *ch = &pl->ch[pl->n];

		if (x->state != CAT_LIVE || !engine_cat_in_subtree(x, cat))
			continue;
		engine_cat_policy(x, cat, pf, &ch->np);
		if (policy_check(&ch->np, why, sizeof(why)) ||
		    engine_precision_point(&ch->np, NULL, NULL, why, sizeof(why))) {
			snprintf(msg, msize, "%s/policy.yaml: %s\n", where, why);
			rc = -EINVAL;
		} else if (x == cat && pf && !remote && !engine_trust_caller(c, who) &&
			   engine_trust_policy(c, pf, &ch->np, why, sizeof(why))) {
			snprintf(msg, msize, "%s/policy.yaml: %s\n", where, why);
			rc = -EPERM;
		} else {
			rc = change_of(x, where, remote, ch, msg, msize);
		}
		for (int k = 0; k < POLICY_NKEYS; k++)
			ch->np.source[k] = NULL;
		engine_cat_hold(x);
		ch->cat = x;
		pl->n++;
	}
	return rc;
}

/* Make the new cores a plan needs, with no lock held. A local write is
 * refused (-EINVAL, msg) when an embedder cannot be made. */
static int plan_cores(struct cache *c, struct cat *cat, struct plan *pl,
		      bool remote, char *msg, size_t msize)
{
	const char *where = strcmp(cat->path, "/") ? cat->path : "";

	for (size_t i = 0; i < pl->n; i++) {
		struct change *ch = &pl->ch[i];
		char err[512] = "";
		struct catref ref;
		int rc = 0;

		if (!ch->kind)
			continue;
		if (ch->kind == 2) {
			engine_cat_ref(c, ch->cat, &ref);
			ch->core = engine_core_reindex(c, ref.core, &ch->np);
			engine_cat_put(c, &ref);
			if (!ch->core)
				rc = -ENOMEM;
		} else {
			rc = engine_core_make(c, &ch->np, ch->cat->path, NULL, !remote,
					      &ch->core, err, sizeof(err));
		}
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			snprintf(msg, msize, "%s/policy.yaml: embedder '%s' unusable: %s\n",
				 where, ch->np.embedder, err[0] ? err : strerror(-rc));
			return -EINVAL;
		}
	}
	return 0;
}

/* Install pf and the plan's cores, if nothing changed since the plan was
 * made (else -EAGAIN: plan again). cache.tree held for writing. The
 * replaced cores go to old (given back by the caller, unlocked). */
static int plan_install(struct cache *c, struct cat *cat, struct plan *pl,
			struct policy_file *pf, char *yaml, size_t len,
			bool remote, struct catcore **old)
{
	if (pl->gen != c->tree_gen || cat->state != CAT_LIVE)
		return -EAGAIN;
	for (size_t i = 0; !remote && i < pl->n; i++) {
		struct cat *x = pl->ch[i].cat;
		bool busy;

		if (!pl->ch[i].kind)
			continue;
		pthread_mutex_lock(&x->lock);
		busy = x->by_id.len || x->fills_inflight;
		pthread_mutex_unlock(&x->lock);
		if (busy)
			return -EAGAIN; /* filled meanwhile: the plan says why */
	}
	policy_install(c, cat, pf, yaml, len);
	for (size_t i = 0; i < pl->n; i++) {
		struct change *ch = &pl->ch[i];

		if (!ch->core)
			continue;
		old[i] = ch->cat->core;
		ch->cat->core = ch->core;
		ch->core = NULL;
	}
	return 0;
}

/* Write the store (a local write), or put back what it had. */
static int store_write(struct cache *c, struct cat *cat, const char *yaml,
		       size_t len)
{
	int rc = store_policy_put(c->store, cat->id, yaml, len);

	return rc == -ENOENT && !yaml ? 0 : rc; /* removing one never stored */
}

/* engine_policy_set; with expect, only while the installed policy.yaml is
 * still the one installed at *expect (ms), else -ESTALE: checked under
 * cat.admin_mu, which every policy change holds, so nothing installed in
 * between is undone. */
static int policy_set(struct cache *c, struct cat *cat, const char *yaml,
		      size_t len, const struct cache_caller *who, bool remote,
		      const int64_t *expect)
{
	struct catcore **old = NULL;
	struct policy_file *pf = NULL;
	struct policy_error perr;
	struct plan pl = { 0 };
	char *copy = NULL, *before = NULL;
	size_t copy_len, before_len = 0;
	bool stored = false;
	char msg[1024] = "";
	int rc = 0;

	/* Parsed before any lock is taken. */
	if (yaml) {
		rc = policy_file_parse(yaml, len, cat->path, &pf, &perr);
		if (rc) {
			parse_error_text(cat, &perr, remote ? " (from another host; kept the previous one)" : "",
					 msg, sizeof(msg));
			goto out;
		}
		rc = engine_text_dup(yaml, len, &copy, &copy_len);
		if (rc)
			goto out;
	}
	pthread_mutex_lock(&cat->admin_mu);
	if (expect) {
		bool same;

		pthread_rwlock_rdlock(&c->tree);
		same = cat->pyaml && cat->pyaml_mtime_ms == *expect;
		pthread_rwlock_unlock(&c->tree);
		if (!same) {
			pthread_mutex_unlock(&cat->admin_mu);
			rc = -ESTALE;
			goto out;
		}
	}
	for (int attempt = 0; ; attempt++) {
		plan_release(c, &pl);
		pthread_rwlock_rdlock(&c->tree);
		if (!remote && !before && cat->pyaml)
			engine_text_dup(cat->pyaml, cat->pyaml_len, &before, &before_len);
		rc = cat->state == CAT_LIVE ? plan_make(c, cat, pf, who, remote, &pl, msg, sizeof(msg)) : -ENOENT;
		pthread_rwlock_unlock(&c->tree);
		if (!rc)
			rc = plan_cores(c, cat, &pl, remote, msg, sizeof(msg));
		if (!rc && !remote && !stored) {
			rc = store_write(c, cat, yaml, len);
			stored = !rc;
		}
		if (!rc && !(old = calloc(pl.n + 1, sizeof(*old))))
			rc = -ENOMEM;
		if (!rc) {
			pthread_rwlock_wrlock(&c->tree);
			rc = plan_install(c, cat, &pl, pf, copy, len, remote, old);
			pthread_rwlock_unlock(&c->tree);
		}
		if (rc != -EAGAIN || attempt == 5)
			break;
		free(old);
		old = NULL;
	}
	if (rc == -EAGAIN)
		snprintf(msg, sizeof(msg), "%s/policy.yaml: the category kept changing while the policy was installed; try again\n",
			 strcmp(cat->path, "/") ? cat->path : "");
	if (rc && stored)
		store_write(c, cat, before, before_len); /* the store keeps the old one */
	pthread_mutex_unlock(&cat->admin_mu);
	if (!rc) {
		pf = NULL;
		copy = NULL;
		if (!remote)
			cat_set_policy_error(cat, NULL);
		semlog(SEMLOG_INFO, "policy of '%s' %s%s", cat->path,
		       yaml ? "updated" : "removed", remote ? " by another host" : "");
		for (size_t i = 0; i < pl.n; i++)
			if (remote && pl.ch[i].kind)
				semlog(SEMLOG_WARN, "category '%s': embedder or index structure changed by another host: entries stored before are served on exact matches only",
				       pl.ch[i].cat->path);
	}
out:
	if (rc && msg[0]) {
		if (remote)
			semlog(SEMLOG_WARN, "category '%s': policy from another host refused here: %.*s",
			       cat->path, (int)strlen(msg) - 1, msg);
		else
			reject(cat, msg);
	}
	for (size_t i = 0; old && i < pl.n; i++)
		engine_core_put(c, old[i]);
	free(old);
	plan_release(c, &pl);
	policy_file_free(pf);
	free(copy);
	free(before);
	return rc == -EAGAIN ? -EBUSY : rc;
}

int engine_policy_set(struct cache *c, struct cat *cat, const char *yaml,
		      size_t len, const struct cache_caller *who, bool remote)
{
	return policy_set(c, cat, yaml, len, who, remote, NULL);
}

int cache_policy_remove_if(struct cache *c, const char *path, int64_t mtime_ms,
			   const struct cache_caller *who)
{
	struct catref ref;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	if (!engine_trust_caller(c, who) && who->uid != ref.owner)
		rc = -EACCES;
	else
		rc = policy_set(c, ref.cat, NULL, 0, who, false, &mtime_ms);
	engine_cat_put(c, &ref);
	return rc;
}

int cache_policy_put(struct cache *c, const char *path, const char *yaml,
		     size_t len, const struct cache_caller *who)
{
	struct catref ref;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	if (!engine_trust_caller(c, who) && who->uid != ref.owner) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s/policy.yaml: only the category's owner (uid %u) or the mount owner may change it (uid %u asked)\n",
			 strcmp(path, "/") ? path : "", (unsigned)ref.owner,
			 (unsigned)who->uid);
		reject(ref.cat, msg);
		rc = -EACCES;
	} else {
		rc = engine_policy_set(c, ref.cat, yaml, len, who, false);
	}
	engine_cat_put(c, &ref);
	return rc;
}

/* After the "precision:" line of a .policy text of n bytes in buf (of
 * size bytes), a comment with the operating point it maps to. The new
 * length (n when there is no room). */
static int precision_comment(const struct policy *p, char *buf, size_t n,
			     size_t size)
{
	const char *model, *at = strstr(buf, "\nprecision:");
	char line[200], why[400];
	double thr;
	size_t k, off;

	if (!(p->precision > 0) || !at || !(at = strchr(at + 1, '\n')))
		return (int)n;
	off = (size_t)(at + 1 - buf);
	if (engine_precision_point(p, &model, &thr, why, sizeof(why)) == 0)
		k = (size_t)snprintf(line, sizeof(line), "# precision %.4g -> "
				     "verifier '%s' score >= %.4f, candidates "
				     "with cosine >= %.2f (threshold not used)\n",
				     p->precision, model, thr, VERIFY_COS_FLOOR);
	else
		k = (size_t)snprintf(line, sizeof(line), "# precision %.4g "
				     "unsupported: only exact matches hit\n",
				     p->precision);
	if (k >= sizeof(line) || n + k >= size)
		return (int)n;
	memmove(buf + off + k, buf + off, n - off + 1);
	memcpy(buf + off, line, k);
	return (int)(n + k);
}

int cache_policy_text(struct cache *c, const char *path, char **text,
		      size_t *len)
{
	struct policy pol, eff;
	struct cat *cat;
	char buf[8192], why[256], ttl[32];
	int n;

	pthread_rwlock_rdlock(&c->tree);
	cat = engine_cat_find(c, path);
	if (!cat) {
		pthread_rwlock_unlock(&c->tree);
		return -ENOENT;
	}
	engine_cat_hold(cat);
	engine_cat_policy(cat, NULL, NULL, &pol);
	n = policy_format(&pol, buf, sizeof(buf)); /* sources: under the lock */
	pthread_rwlock_unlock(&c->tree);
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	if (n >= 0)
		n = precision_comment(&pol, buf, (size_t)n, sizeof(buf));
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
	engine_cat_release(c, cat);
	return engine_text_dup(buf, n < 0 ? 0 : n, text, len);
}

int cache_policy_errors(struct cache *c, const char *path, char **text,
			size_t *len)
{
	struct catref ref;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	pthread_mutex_lock(&ref.cat->lock);
	rc = engine_text_dup(ref.cat->perrors ? ref.cat->perrors : "",
			     ref.cat->perrors ? strlen(ref.cat->perrors) : 0, text, len);
	pthread_mutex_unlock(&ref.cat->lock);
	engine_cat_put(c, &ref);
	return rc;
}
