/*
 * stats.c - statistics: the lookup latency and best-score histograms,
 * .stats text (one category, or the root summing all) and .metrics
 * (Prometheus text exposition format, every category labelled).
 *
 * Counters are atomics in struct cat, read without locks (each value is
 * exact, the set of them is not one instant); entry counts, bytes and
 * entry_hits (the hit counts of the entries, on a shared store summed
 * over the hosts, against hits: this host's lookups that hit) are read
 * under cat.lock. Latencies go into a log-linear histogram: exact
 * microseconds below 64, then 8 buckets per power of two, so quantiles
 * are within 1/8 of the true value; .metrics shows it as a Prometheus
 * histogram in seconds with one bucket per power of two (exact: those
 * edges are edges of the log-linear buckets). Best scores go into fixed
 * buckets (SCORE_BUCKETS, engine_i.h), upper edge included.
 *
 * Not here: updating the counters (where the events happen).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_i.h"

static int lat_bucket(uint64_t us)
{
	int k, b;

	if (us < LAT_LINEAR)
		return (int)us;
	k = 63 - __builtin_clzll(us);             /* 2^k <= us, k >= 6 */
	b = LAT_LINEAR + (k - 6) * LAT_SUB +
	    (int)((us - (1ULL << k)) >> (k - 3)); /* 8 sub-buckets */
	return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

/* Upper bound (µs) of bucket b. */
static uint64_t lat_upper(int b)
{
	int k, sub;

	if (b < LAT_LINEAR)
		return (uint64_t)b;
	k = 6 + (b - LAT_LINEAR) / LAT_SUB;
	sub = (b - LAT_LINEAR) % LAT_SUB;
	return (1ULL << k) + ((uint64_t)(sub + 1) << (k - 3)) - 1;
}

void engine_lat_record(struct cat *cat, uint64_t us)
{
	cat->lat[lat_bucket(us)]++;
	cat->lat_sum_us += us;
}

/* Upper edges of the best-score buckets 1 .. SCORE_BUCKETS - 2 (the last
 * has none: above 0.95, 1.0 and a float's rounding above it). */
static const double score_edge[SCORE_BUCKETS - 2] = {
	0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95,
};

void engine_best_record(struct cat *cat, const struct cache_result *r)
{
	int kind = r->outcome == CACHE_HIT ? SCORE_HIT : SCORE_MISS;
	bool scored = kind == SCORE_HIT || r->ncand > 0;
	float s = kind == SCORE_HIT ? r->score : r->ncand > 0 ? r->cand_score[0] : 0;
	int b = 0;

	if (scored) {
		for (b = 1; b < SCORE_BUCKETS - 1 && s > score_edge[b - 1]; b++)
			;
		cat->best_sum_micro[kind] += (int64_t)((double)s * 1e6);
	}
	cat->best[kind][b]++;
}

/* q-quantile (0..1) of summed histograms h, or 0 when empty. */
static uint64_t lat_quantile(const uint64_t *h, double q)
{
	uint64_t total = 0, seen = 0, want;

	for (int b = 0; b < LAT_BUCKETS; b++)
		total += h[b];
	if (!total)
		return 0;
	want = (uint64_t)(q * (double)total);
	if (want >= total)
		want = total - 1;
	for (int b = 0; b < LAT_BUCKETS; b++) {
		seen += h[b];
		if (seen > want)
			return lat_upper(b);
	}
	return lat_upper(LAT_BUCKETS - 1);
}

int engine_text_dup(const char *s, size_t len, char **text, size_t *out_len)
{
	*text = malloc(len + 1);
	if (!*text)
		return -ENOMEM;
	memcpy(*text, s, len);
	(*text)[len] = '\0';
	*out_len = len;
	return 0;
}

/* Append to buf (size bytes, *n used) like snprintf, never past its end:
 * *n stays at most size - 1. */
static void buf_add(char *buf, size_t size, int *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void buf_add(char *buf, size_t size, int *n, const char *fmt, ...)
{
	va_list ap;
	int m;

	if (*n < 0 || (size_t)*n >= size)
		return;
	va_start(ap, fmt);
	m = vsnprintf(buf + *n, size - (size_t)*n, fmt, ap);
	va_end(ap);
	if (m > 0)
		*n = (size_t)(*n + m) >= size ? (int)size - 1 : *n + m;
}

struct counters {
	uint64_t entries, bytes, lookups, hits, exact_hits, semantic_hits;
	uint64_t misses, fills, expired, evicted, dropped;
	uint64_t false_hits, coalesced, not_stored, busy, entry_hits;
	uint64_t lat[LAT_BUCKETS];
	uint64_t lat_sum;
	uint64_t best[2][SCORE_BUCKETS];
	int64_t best_sum[2];      /* x 1e6 */
};

static void counters_add(struct counters *t, struct cat *cat)
{
	pthread_mutex_lock(&cat->lock);
	t->entries += cat->by_id.len;
	t->bytes += (uint64_t)cat->bytes;
	t->entry_hits += (uint64_t)cat->entry_hits;
	pthread_mutex_unlock(&cat->lock);
	t->lookups += cat->lookups;
	t->hits += cat->hits;
	t->exact_hits += cat->exact_hits;
	t->semantic_hits += cat->semantic_hits;
	t->misses += cat->misses;
	t->fills += cat->fills;
	t->expired += cat->expired;
	t->evicted += cat->evicted;
	t->dropped += cat->dropped;
	t->false_hits += cat->false_hits;
	t->coalesced += cat->coalesced;
	t->not_stored += cat->not_stored;
	t->busy += cat->busy;
	for (int b = 0; b < LAT_BUCKETS; b++)
		t->lat[b] += cat->lat[b];
	t->lat_sum += cat->lat_sum_us;
	for (int k = 0; k < 2; k++) {
		for (int b = 0; b < SCORE_BUCKETS; b++)
			t->best[k][b] += cat->best[k][b];
		t->best_sum[k] += cat->best_sum_micro[k];
	}
}

/* One best-score histogram as .stats shows it:
 * "none:N <=0.50:N 0.50-0.60:N ... 0.90-0.95:N >0.95:N". */
static void best_line(char *buf, size_t size, int *n, const char *key,
		      const uint64_t *h)
{
	buf_add(buf, size, n, "%s: none:%" PRIu64 " <=0.50:%" PRIu64, key, h[0], h[1]);
	for (int b = 2; b < SCORE_BUCKETS - 1; b++)
		buf_add(buf, size, n, " %.2f-%.2f:%" PRIu64, score_edge[b - 2],
			score_edge[b - 1], h[b]);
	buf_add(buf, size, n, " >0.95:%" PRIu64 "\n", h[SCORE_BUCKETS - 1]);
}

/* What one category's .stats and .metrics derive from its counters t
 * and its policy. */
struct derived {
	double mean_us;           /* lookup time */
	size_t unmerged, tombstones;
	double break_even, saved_ms; /* with llm_cost_ms */
	bool disabled;            /* auto_disable stopped storing */
	int64_t learned_ms;
	struct policy eff;        /* adapted */
	char why[256];
};

static void derive(struct cache *c, struct catref *ref,
		   const struct counters *t, struct derived *d)
{
	const struct policy *pol = &ref->pol;
	struct cat *cat = ref->cat;

	d->mean_us = t->lookups ? (double)t->lat_sum / t->lookups : 0;
	d->unmerged = vindex_buffered(ref->core->vi);
	d->tombstones = vindex_tombstones(ref->core->vi);
	d->break_even = d->saved_ms = 0;
	if (pol->llm_cost_ms > 0) {
		d->break_even = d->mean_us / 1000.0 / pol->llm_cost_ms;
		d->saved_ms = (double)t->hits * pol->llm_cost_ms -
			      t->lookups * d->mean_us / 1000.0;
	}
	pthread_mutex_lock(&cat->lock);
	d->disabled = cat->disabled;
	d->learned_ms = cat->learned_ms;
	pthread_mutex_unlock(&cat->lock);
	d->eff = *pol;
	engine_adapt_policy(c, cat, &d->eff, clock_wall_ms(), d->why, sizeof(d->why));
}

/* The lines only one category's .stats has. */
static int cat_lines(struct cache *c, struct catref *ref,
		     const struct counters *t, char *buf, size_t size)
{
	const struct policy *pol = &ref->pol;
	struct derived d;
	char ttl[32];
	int n = 0;

	derive(c, ref, t, &d);
	buf_add(buf, size, &n,
		     "lookup_cost_us: %.1f\nindex_unmerged: %zu\nindex_tombstones: %zu\n",
		     d.mean_us, d.unmerged, d.tombstones);
	if (pol->llm_cost_ms > 0)
		buf_add(buf, size, &n,
			      "llm_cost_ms: %d\nbreak_even_hit_rate: %.6f\n"
			      "time_saved_ms: %.0f\nabove_break_even: %s\n",
			      pol->llm_cost_ms, d.break_even, d.saved_ms,
			      (t->lookups ? (double)t->hits / t->lookups : 0) >= d.break_even ?
			      "yes" : "no");
	if (pol->auto_disable)
		buf_add(buf, size, &n, "auto_disabled: %s\n",
			      d.disabled ? "yes (stopped storing: hit rate below break-even)" : "no");
	if (pol->adaptive_enabled || d.learned_ms) {
		policy_format_duration(d.eff.ttl, ttl, sizeof(ttl));
		buf_add(buf, size, &n,
			      "effective_threshold: %.4f\neffective_ttl: %s\nadaptive: %s\n",
			      d.eff.threshold, ttl, d.why);
	}
	return n;
}

int cache_stats_text(struct cache *c, const char *path, char **text,
		     size_t *len)
{
	struct counters *t = calloc(1, sizeof(*t));
	struct cat **all = NULL;
	struct catref ref;
	size_t nall = 0;
	char buf[4096];
	int n, rc;
	bool root = !strcmp(path, "/");

	if (!t)
		return -ENOMEM;
	rc = engine_cat_get(c, path, &ref);
	if (rc) {
		free(t);
		return rc;
	}
	if (root)
		all = engine_cat_all(c, &nall);
	if (root && !all) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < (root ? nall : 1); i++)
		counters_add(t, root ? all[i] : ref.cat);
	n = snprintf(buf, sizeof(buf),
		     "entries: %" PRIu64 "\nbytes: %" PRIu64 "\nlookups: %" PRIu64
		     "\nhits: %" PRIu64 "\nexact_hits: %" PRIu64
		     "\nsemantic_hits: %" PRIu64 "\nmisses: %" PRIu64
		     "\nfills: %" PRIu64 "\nexpired: %" PRIu64 "\nevicted: %" PRIu64
		     "\ndamaged_dropped: %" PRIu64 "\nhit_rate: %.4f"
		     "\nlookup_us_p50: %" PRIu64 "\nlookup_us_p99: %" PRIu64 "\n"
		     "false_hits: %" PRIu64 "\ncoalesced_hits: %" PRIu64
		     "\nnot_stored: %" PRIu64 "\nbusy: %" PRIu64
		     "\nentry_hits: %" PRIu64 "\n",
		     t->entries, t->bytes, t->lookups, t->hits, t->exact_hits,
		     t->semantic_hits, t->misses, t->fills, t->expired, t->evicted,
		     t->dropped, t->lookups ? (double)t->hits / t->lookups : 0.0,
		     lat_quantile(t->lat, 0.5), lat_quantile(t->lat, 0.99),
		     t->false_hits, t->coalesced, t->not_stored, t->busy,
		     t->entry_hits);
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	best_line(buf, sizeof(buf), &n, "best_score_hist_miss", t->best[SCORE_MISS]);
	best_line(buf, sizeof(buf), &n, "best_score_hist_hit", t->best[SCORE_HIT]);
	if (!root)
		n += cat_lines(c, &ref, t, buf + n, sizeof(buf) - n);
	else
		buf_add(buf, sizeof(buf), &n,
			      "categories: %zu\nstore_dropped_at_start: %" PRId64
			      "\nstore_orphans_removed_at_start: %" PRId64
			      "\nstore_db_repaired: %d\nstore_db_salvaged: %" PRId64
			      "\nstore_db_lost: %" PRId64
			      "\nstore_db_categories_recreated: %" PRId64 "\n",
			      nall, c->report.dropped_entries,
			      c->report.orphan_blobs, c->report.db_repaired ? 1 : 0,
			      (int64_t)c->report.db_salvaged, (int64_t)c->report.db_lost,
			      (int64_t)c->report.db_cats_recreated);
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	rc = engine_text_dup(buf, n, text, len);
out:
	if (all)
		engine_cat_release_all(c, all, nall);
	engine_cat_put(c, &ref);
	free(t);
	return rc;
}

struct sbuf {
	char *data;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
		char *nd = realloc(b->data, ncap);

		if (!nd) {
			b->oom = true;
			return;
		}
		b->data = nd;
		b->cap = ncap;
	}
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void label_escape(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in && o + 3 < size; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

/* HELP and TYPE of one family. */
static void family(struct sbuf *b, const char *name, const char *type,
		   const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One Prometheus number: integers as such, others with 9 digits. */
static void sb_num(struct sbuf *b, double v)
{
	if (v == (double)(int64_t)v && v > -1e15 && v < 1e15)
		sb_printf(b, "%" PRId64 "\n", (int64_t)v);
	else
		sb_printf(b, "%.9g\n", v);
}

/* The lookup time histogram of one category in seconds: one bucket per
 * power of two of microseconds from 64 us (edges of the log-linear
 * buckets, so each count is exact), the last group (clamped) in +Inf. */
static void lat_family(struct sbuf *b, const uint64_t *h, uint64_t sum_us,
		       const char *lbl)
{
	uint64_t cum = 0;

	for (int bk = 0; bk < LAT_BUCKETS; bk++) {
		cum += h[bk];
		if (bk >= LAT_BUCKETS - LAT_SUB)
			continue;
		if (bk == LAT_LINEAR - 1 ||
		    (bk >= LAT_LINEAR && (bk - LAT_LINEAR) % LAT_SUB == LAT_SUB - 1))
			sb_printf(b, "semcache_lookup_duration_seconds_bucket{category=\"%s\","
				  "le=\"%.6f\"} %" PRIu64 "\n", lbl,
				  (double)(lat_upper(bk) + 1) / 1e6, cum);
	}
	sb_printf(b, "semcache_lookup_duration_seconds_bucket{category=\"%s\",le=\"+Inf\"} %"
		  PRIu64 "\nsemcache_lookup_duration_seconds_sum{category=\"%s\"} %.6f\n"
		  "semcache_lookup_duration_seconds_count{category=\"%s\"} %" PRIu64 "\n",
		  lbl, cum, lbl, (double)sum_us / 1e6, lbl, cum);
}

/* One best-score histogram (no-candidate lookups left out: they have no
 * score; semcache_lookups_without_candidate_total counts them). */
static void best_family(struct sbuf *b, const struct counters *t, int kind,
			const char *lbl)
{
	const char *outcome = kind == SCORE_HIT ? "hit" : "miss";
	uint64_t cum = 0;

	for (int bk = 1; bk < SCORE_BUCKETS - 1; bk++) {
		cum += t->best[kind][bk];
		sb_printf(b, "semcache_lookup_best_score_bucket{category=\"%s\",outcome=\"%s\","
			  "le=\"%.2f\"} %" PRIu64 "\n", lbl, outcome, score_edge[bk - 1], cum);
	}
	cum += t->best[kind][SCORE_BUCKETS - 1];
	sb_printf(b, "semcache_lookup_best_score_bucket{category=\"%s\",outcome=\"%s\","
		  "le=\"+Inf\"} %" PRIu64 "\n", lbl, outcome, cum);
	sb_printf(b, "semcache_lookup_best_score_sum{category=\"%s\",outcome=\"%s\"} %.6f\n",
		  lbl, outcome, (double)t->best_sum[kind] / 1e6);
	sb_printf(b, "semcache_lookup_best_score_count{category=\"%s\",outcome=\"%s\"} %"
		  PRIu64 "\n", lbl, outcome, cum);
}

/* What .metrics shows of one category. */
struct catm {
	struct counters t;
	struct derived d;
	bool llm, ad;
	char *lbl;                /* its path as a label value, malloc'd */
};

/* Per-category gauges that are not plain counters, by index. */
enum { G_HIT_RATIO, G_UNMERGED, G_TOMBS, G_THRESHOLD, G_TTL, G_BREAK_EVEN,
       G_SAVED, G_DISABLED, G_N };

static bool gauge_of(const struct catm *m, int g, double *v)
{
	switch (g) {
	case G_HIT_RATIO:
		*v = m->t.lookups ? (double)m->t.hits / m->t.lookups : 0;
		return true;
	case G_UNMERGED:
		*v = (double)m->d.unmerged;
		return true;
	case G_TOMBS:
		*v = (double)m->d.tombstones;
		return true;
	case G_THRESHOLD:
		*v = m->d.eff.threshold;
		return true;
	case G_TTL:
		*v = (double)m->d.eff.ttl;
		return true;
	case G_BREAK_EVEN:
		*v = m->d.break_even;
		return m->llm;
	case G_SAVED:
		*v = m->d.saved_ms / 1000.0;
		return m->llm;
	default:
		*v = m->d.disabled ? 1 : 0;
		return m->ad;
	}
}

int cache_metrics_text(struct cache *c, char **text, size_t *len)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} m[] = {
#define M(n, t, h, f) { n, t, h, offsetof(struct counters, f) }
		M("semcache_entries", "gauge", "Entries stored.", entries),
		M("semcache_bytes", "gauge", "Bytes of responses stored.", bytes),
		M("semcache_entry_hits", "gauge", "Hits of the stored entries (on a shared store summed over the hosts).", entry_hits),
		M("semcache_lookups_total", "counter", "Lookups.", lookups),
		M("semcache_hits_total", "counter", "Lookups answered from the cache.", hits),
		M("semcache_exact_hits_total", "counter", "Hits through the exact fast path.", exact_hits),
		M("semcache_semantic_hits_total", "counter", "Hits through the vector index.", semantic_hits),
		M("semcache_misses_total", "counter", "Lookups not answered.", misses),
		M("semcache_fills_total", "counter", "Responses stored.", fills),
		M("semcache_expired_total", "counter", "Entries removed after their ttl.", expired),
		M("semcache_evicted_total", "counter", "Entries removed by a quota.", evicted),
		M("semcache_damaged_dropped_total", "counter", "Entries dropped for a damaged response.", dropped),
		M("semcache_false_hits_total", "counter", "Hits reported wrong through NAME.feedback.", false_hits),
		M("semcache_coalesced_hits_total", "counter", "Hits served from the fill of an earlier miss they waited for.", coalesced),
		M("semcache_not_stored_total", "counter", "Fills the policy did not store.", not_stored),
		M("semcache_busy_total", "counter", "Requests refused: too many waited on slow work.", busy),
		M("semcache_lookups_without_candidate_total", "counter", "Lookups whose index search had no candidate (or that did not search).", best[SCORE_MISS][0]),
#undef M
	};
	static const struct {
		const char *name, *help;
	} g[G_N] = {
		[G_HIT_RATIO] = { "semcache_hit_ratio", "Hits per lookup (0 before any lookup)." },
		[G_UNMERGED] = { "semcache_index_unmerged_vectors", "Vectors not yet merged into the HNSW graph." },
		[G_TOMBS] = { "semcache_index_tombstones", "Removed vectors still in the HNSW graph." },
		[G_THRESHOLD] = { "semcache_effective_threshold", "The similarity threshold lookups apply now (after adaptation)." },
		[G_TTL] = { "semcache_effective_ttl_seconds", "The ttl lookups apply now (after adaptation); 0 = entries never expire." },
		[G_BREAK_EVEN] = { "semcache_break_even_hit_ratio", "Hit ratio at which the cache saves time (categories with llm_cost_ms)." },
		[G_SAVED] = { "semcache_time_saved_seconds", "LLM time saved by hits minus the time lookups cost (categories with llm_cost_ms)." },
		[G_DISABLED] = { "semcache_auto_disabled", "1 when auto_disable stopped storing (categories with auto_disable)." },
	};
	struct sbuf b = { 0 };
	struct catm *cm;
	char lbl[2 * 4096 + 1];   /* a path escaped: at most twice its bytes */
	size_t ncats;
	struct cat **all = engine_cat_all(c, &ncats);

	cm = all ? calloc(ncats ? ncats : 1, sizeof(*cm)) : NULL;
	if (!cm) {
		if (all)
			engine_cat_release_all(c, all, ncats);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ncats; i++) {
		struct catref ref;

		engine_cat_ref(c, all[i], &ref);
		counters_add(&cm[i].t, all[i]);
		derive(c, &ref, &cm[i].t, &cm[i].d);
		cm[i].llm = ref.pol.llm_cost_ms > 0;
		cm[i].ad = ref.pol.auto_disable;
		engine_cat_put(c, &ref);
		label_escape(all[i]->path, lbl, sizeof(lbl));
		cm[i].lbl = strdup(lbl);
		b.oom |= !cm[i].lbl;
	}
	/* with b.oom nothing more is formatted: a NULL lbl is never read */
	for (size_t k = 0; k < sizeof(m) / sizeof(*m); k++) {
		family(&b, m[k].name, m[k].type, m[k].help);
		for (size_t i = 0; i < ncats; i++)
			sb_printf(&b, "%s{category=\"%s\"} %" PRIu64 "\n", m[k].name, cm[i].lbl,
				  *(const uint64_t *)((const char *)&cm[i].t + m[k].off));
	}
	for (int k = 0; k < G_N; k++) {
		family(&b, g[k].name, "gauge", g[k].help);
		for (size_t i = 0; i < ncats; i++) {
			double v;

			if (!gauge_of(&cm[i], k, &v))
				continue;
			sb_printf(&b, "%s{category=\"%s\"} ", g[k].name, cm[i].lbl);
			sb_num(&b, v);
		}
	}
	family(&b, "semcache_lookup_duration_seconds", "histogram",
	       "Lookup time inside the daemon.");
	for (size_t i = 0; i < ncats; i++)
		lat_family(&b, cm[i].t.lat, cm[i].t.lat_sum, cm[i].lbl);
	family(&b, "semcache_lookup_best_score", "histogram",
	       "Best candidate score of each lookup: a hit's score, a miss's closest entry.");
	for (size_t i = 0; i < ncats; i++) {
		best_family(&b, &cm[i].t, SCORE_MISS, cm[i].lbl);
		best_family(&b, &cm[i].t, SCORE_HIT, cm[i].lbl);
	}
	family(&b, "semcache_categories", "gauge", "Categories.");
	sb_printf(&b, "semcache_categories %zu\n", ncats);
	family(&b, "semcache_store_dropped_entries_at_start", "gauge",
	       "Entries removed at start: their response blob was missing.");
	sb_printf(&b, "semcache_store_dropped_entries_at_start %" PRId64 "\n",
		  c->report.dropped_entries);
	family(&b, "semcache_store_orphans_removed_at_start", "gauge",
	       "Response blobs without an entry, removed at start.");
	sb_printf(&b, "semcache_store_orphans_removed_at_start %" PRId64 "\n",
		  c->report.orphan_blobs);
	family(&b, "semcache_store_db_repaired", "gauge",
	       "1 when the store's damaged database was rebuilt at start.");
	sb_printf(&b, "semcache_store_db_repaired %d\n", c->report.db_repaired ? 1 : 0);
	family(&b, "semcache_store_db_salvaged_at_start", "gauge",
	       "Entry rows copied from the damaged database at start.");
	sb_printf(&b, "semcache_store_db_salvaged_at_start %" PRId64 "\n",
		  (int64_t)c->report.db_salvaged);
	family(&b, "semcache_store_db_lost_at_start", "gauge",
	       "Entries whose row was unreadable at start (blobs moved to lost+found/).");
	sb_printf(&b, "semcache_store_db_lost_at_start %" PRId64 "\n",
		  (int64_t)c->report.db_lost);
	family(&b, "semcache_store_db_categories_recreated_at_start", "gauge",
	       "Categories whose row was lost at start, recreated as /recovered-ID.");
	sb_printf(&b, "semcache_store_db_categories_recreated_at_start %" PRId64 "\n",
		  (int64_t)c->report.db_cats_recreated);
	engine_cat_release_all(c, all, ncats);
	for (size_t i = 0; i < ncats; i++)
		free(cm[i].lbl);
	free(cm);
	if (b.oom) {
		free(b.data);
		return -ENOMEM;
	}
	*text = b.data ? b.data : strdup("");
	*len = b.len;
	return *text ? 0 : -ENOMEM;
}
