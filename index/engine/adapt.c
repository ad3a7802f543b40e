/*
 * adapt.c - adapting to the downstream model's load, learnt thresholds
 * and auto_disable's break-even windows.
 *
 * Load reports (0..1 per model name) are kept under cache.load_mu. A
 * category whose policy enables adaptive: moves an adaptation level toward
 * 1 while its model's load is high and back toward 0 when it is low or the
 * report is stale (hysteresis between adaptive.low and .high), loosening
 * the threshold and lengthening the ttl in proportion. A wrong-hit report
 * invalidates the entry and, with learn_threshold, sets a threshold floor
 * just above its score that decays back over learn_decay. auto_disable
 * compares each window's hit rate with the break-even rate. Per-category
 * state is under cat.lock.
 *
 * Not here: the policy keys and their validation (policy/).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_i.h"
#include "semlog.h"

/* The latest report of model name: 0 and *load, or -ENOENT. */
static int load_get(struct cache *c, const char *name, double *load,
		    int64_t *at_ms)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&c->load_mu);
	for (struct load_rep *r = c->loads; r; r = r->next) {
		if (!strcmp(r->name, name)) {
			*load = r->load;
			*at_ms = r->at_ms;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->load_mu);
	return rc;
}

/*
 * Move cat's adaptation level for the load its model reports, and apply it
 * (with any learnt floor) to p's threshold and ttl. Under load at or above
 * adaptive.high the level climbs toward 1 at adaptive.rate per second; at or
 * below adaptive.low (or with no report, or one older than stale_after) it
 * falls back toward 0; in between it holds (hysteresis). Threshold and ttl
 * move linearly between their policy values and threshold_min / ttl_max.
 * why (may be NULL) says what happened, for .policy and .stats.
 */
void engine_adapt_policy(struct cache *c, struct cat *cat, struct policy *p,
			 int64_t now, char *why, size_t whysize)
{
	double load = 0, level, tmin;
	int64_t at = 0, age_ms = -1;
	bool have = false, was_high, high, changed_state = false;
	double base_thr = p->threshold;

	if (p->adaptive_enabled && p->model[0] &&
	    load_get(c, p->model, &load, &at) == 0) {
		age_ms = now - at;
		have = age_ms <= p->adaptive_stale_after * 1000;
	}
	pthread_mutex_lock(&cat->lock);
	if (p->adaptive_enabled) {
		double dt = cat->adapt_ms ? (double)(now - cat->adapt_ms) / 1000.0 : 0;
		double before = cat->adapt_level;

		if (dt < 0)
			dt = 0;
		was_high = cat->adapt_high;
		if (have && load >= p->adaptive_high)
			cat->adapt_high = true;
		else if (!have || load <= p->adaptive_low)
			cat->adapt_high = false;
		changed_state = was_high != cat->adapt_high;
		cat->adapt_level += (cat->adapt_high ? 1 : -1) * p->adaptive_rate * dt;
		if (cat->adapt_level > 1)
			cat->adapt_level = 1;
		if (cat->adapt_level < 0)
			cat->adapt_level = 0;
		cat->adapt_ms = now;
		if (!changed_state && before != cat->adapt_level &&
		    (cat->adapt_level == 1 || cat->adapt_level == 0))
			semlog(SEMLOG_INFO, "category '%s': adaptation %s (model '%s')",
			       cat->path, cat->adapt_level == 1 ? "complete" :
			       "ended, back to the policy's values", p->model);
	} else {
		cat->adapt_level = 0;
		cat->adapt_high = false;
	}
	level = cat->adapt_level;
	high = cat->adapt_high;
	if (level > 0) {
		tmin = p->adaptive_threshold_min < p->threshold ?
		       p->adaptive_threshold_min : p->threshold;
		p->threshold -= level * (p->threshold - tmin);
		if (p->ttl > 0) {
			if (p->adaptive_ttl_max == 0)
				p->ttl = 0; /* never expires while adapted */
			else if (p->adaptive_ttl_max > p->ttl)
				p->ttl += (int64_t)(level * (double)(p->adaptive_ttl_max - p->ttl));
		}
	}
	if (cat->learned_ms && p->adaptive_learn_threshold) {
		double age = (double)(now - cat->learned_ms) / 1000.0;
		double decay = (double)p->adaptive_learn_decay;

		if (age >= decay) {
			cat->learned_ms = 0;
		} else {
			double floor = cat->learned_floor -
				       (cat->learned_floor - p->threshold) * age / decay;

			if (floor > p->threshold)
				p->threshold = floor;
		}
	}
	pthread_mutex_unlock(&cat->lock);
	if (changed_state)
		semlog(SEMLOG_INFO, "category '%s': model '%s' load %.2f %s: %s (level %.2f, threshold %.4f, ttl %" PRId64 "s)",
		       cat->path, p->model, load,
		       high ? "at or above adaptive.high" :
		       have ? "at or below adaptive.low" : "report missing or stale",
		       high ? "adapting" : "returning to normal",
		       level, p->threshold, p->ttl);
	if (why) {
		if (!p->adaptive_enabled)
			snprintf(why, whysize, "off");
		else if (age_ms < 0)
			snprintf(why, whysize, "level %.2f, no load report for model '%s' (normal)",
				 level, p->model);
		else
			snprintf(why, whysize, "level %.2f, model '%s' load %.2f reported %" PRId64 "s ago%s: %s",
				 level, p->model, load, age_ms / 1000,
				 have ? "" : " (stale, counts as normal)",
				 level > 0 ? (p->threshold < base_thr ? "threshold loosened, ttl lengthened" :
					      "adapting") : "normal");
	}
}

int cache_load_report(struct cache *c, const char *name, double load)
{
	struct load_rep *r;

	if (!(load >= 0 && load <= 1) || !name[0] || strlen(name) >= POLICY_NAME_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->load_mu);
	for (r = c->loads; r; r = r->next)
		if (!strcmp(r->name, name))
			break;
	if (!r) {
		if (c->nloads >= ENGINE_MAX_MODELS) {
			pthread_mutex_unlock(&c->load_mu);
			semlog(SEMLOG_WARN, "load report for model '%.64s' refused: %d models already report load",
			       name, ENGINE_MAX_MODELS);
			return -ENOSPC;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			pthread_mutex_unlock(&c->load_mu);
			return -ENOMEM;
		}
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->next = c->loads;
		c->loads = r;
		c->nloads++;
	}
	r->load = load;
	r->at_ms = clock_wall_ms();
	pthread_mutex_unlock(&c->load_mu);
	semlog(SEMLOG_DEBUG, "model '%s' load %.3f", name, load);
	return 0;
}

int cache_load_text(struct cache *c, const char *name, char **text,
		    size_t *len)
{
	double load;
	int64_t at;
	char buf[128];
	int n;

	if (load_get(c, name, &load, &at))
		return -ENOENT;
	n = snprintf(buf, sizeof(buf), "load: %.4g\nage_s: %" PRId64 "\n", load,
		     (clock_wall_ms() - at) / 1000);
	return engine_text_dup(buf, n, text, len);
}

int cache_load_list(struct cache *c, int (*cb)(void *arg, const char *name),
		    void *arg)
{
	char (*names)[POLICY_NAME_MAX];
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&c->load_mu);
	names = malloc((c->nloads + 1) * sizeof(*names));
	for (struct load_rep *r = c->loads; names && r; r = r->next)
		snprintf(names[n++], POLICY_NAME_MAX, "%s", r->name);
	pthread_mutex_unlock(&c->load_mu);
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++)
		rc = cb(arg, names[i]);
	free(names);
	return rc;
}

/* Mean lookup cost in microseconds so far. */
static double mean_lookup_us(struct cat *cat)
{
	uint64_t n = cat->lookups;

	return n ? (double)cat->lat_sum_us / (double)n : 0;
}

/*
 * auto_disable: every window, compare the window's hit rate with the
 * break-even hit rate (lookup cost / llm cost); below it, stop storing
 * (and say so), above it, store again.
 */
void engine_adapt_break_even(struct cat *cat, const struct policy *p)
{
	int64_t now = clock_wall_ms();
	uint64_t lookups = cat->lookups, hits = cat->hits;

	pthread_mutex_lock(&cat->lock);
	if (!p->auto_disable || !p->llm_cost_ms) {
		if (cat->disabled)
			semlog(SEMLOG_INFO, "category '%s': storing again (auto_disable off)", cat->path);
		cat->disabled = false;
		cat->ad_start_ms = 0;
	} else if (!cat->ad_start_ms) {
		cat->ad_start_ms = now;
		cat->ad_lookups0 = lookups;
		cat->ad_hits0 = hits;
	} else if (now - cat->ad_start_ms >= p->auto_disable * 1000) {
		uint64_t dl = lookups - cat->ad_lookups0, dh = hits - cat->ad_hits0;
		double be = mean_lookup_us(cat) / 1000.0 / p->llm_cost_ms;
		double rate = dl ? (double)dh / (double)dl : 0;
		bool below = dl > 0 && rate < be;

		if (dl > 0 && below != cat->disabled) {
			cat->disabled = below;
			semlog(SEMLOG_WARN, "category '%s': hit rate %.4f %s break-even %.4f over the last %" PRId64 "s: %s",
			       cat->path, rate, below ? "below" : "at or above", be,
			       p->auto_disable, below ? "stops storing (auto_disable)" : "stores again");
		}
		cat->ad_start_ms = now;
		cat->ad_lookups0 = lookups;
		cat->ad_hits0 = hits;
	}
	pthread_mutex_unlock(&cat->lock);
}

int cache_feedback_wrong(struct cache *c, const char *path, int64_t entry_id,
			 float score, const struct cache_caller *who)
{
	struct catref ref;
	struct policy *pol = &ref.pol;
	struct centry *e;
	struct cat *cat;
	bool may = false;
	int rc = engine_cat_get(c, path, &ref);

	if (rc)
		return rc;
	cat = ref.cat;
	pthread_mutex_lock(&cat->lock);
	e = u64map_get(&cat->by_id, (uint64_t)entry_id);
	if (e)
		may = engine_entry_may_change(c, ref.owner, e, who);
	if (may && pol->adaptive_learn_threshold) {
		double floor = score + 0.001;
		double cap = pol->threshold + 0.1;

		if (cap > 1.0)
			cap = 1.0;
		if (floor > cap)
			floor = cap;
		if (floor > pol->threshold) {
			cat->learned_floor = floor;
			cat->learned_ms = clock_wall_ms();
		}
	}
	pthread_mutex_unlock(&cat->lock);
	cat->false_hits++;
	if (!e) { /* gone already: nothing left to invalidate */
		engine_cat_put(c, &ref);
		return 0;
	}
	if (!may) {
		/* counted; only the filler, the owner or trusted invalidate */
		semlog(SEMLOG_INFO, "category '%s': entry %" PRId64 " (score %.4f) reported wrong by uid %u: counted, kept (filled by another user)",
		       cat->path, entry_id, score, who ? (unsigned)who->uid : 0);
		engine_cat_put(c, &ref);
		return 0;
	}
	rc = engine_entry_delete(c, cat, ref.core, entry_id, "reported wrong");
	if (rc == -ENOENT)
		rc = 0; /* gone already: nothing left to invalidate */
	semlog(SEMLOG_INFO, "category '%s': entry %" PRId64 " (score %.4f) reported wrong: %s%s",
	       cat->path, entry_id, score, rc ? "invalidation failed" : "invalidated",
	       pol->adaptive_learn_threshold ? ", threshold raised above its score" : "");
	engine_cat_put(c, &ref);
	return rc;
}
