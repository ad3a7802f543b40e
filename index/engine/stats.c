/*
 * stats.c - statistics: the lookup latency and best-score histograms,
 * .stats text (one category, or the root summing all) and .metrics
 * (Prometheus text exposition format, every category labelled).
 *
 * Counters are atomics in struct cat, read without locks (each value is
 * exact, the set of them is not one instant); entry counts and bytes are
 * read under cat.lock. Latencies go into a log-linear histogram: exact
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
	uint64_t false_hits, coalesced, not_stored, busy;
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

/* The lines only one category's .stats has. */
static int cat_lines(struct cache *c, struct catref *ref,
		     const struct counters *t, char *buf, size_t size)
{
	struct policy *pol = &ref->pol;
	struct cat *cat = ref->cat;
	char why[256], ttl[32];
	double mean = t->lookups ? (double)t->lat_sum / t->lookups : 0;
	bool disabled;
	int64_t learned;
	int n;

	pthread_mutex_lock(&cat->lock);
	disabled = cat->disabled;
	learned = cat->learned_ms;
	pthread_mutex_unlock(&cat->lock);
	n = 0;
	buf_add(buf, size, &n,
		     "lookup_cost_us: %.1f\nindex_unmerged: %zu\nindex_tombstones: %zu\n",
		     mean, vindex_buffered(ref->core->vi), vindex_tombstones(ref->core->vi));
	if (pol->llm_cost_ms > 0) {
		double be = mean / 1000.0 / pol->llm_cost_ms;
		double saved = (double)t->hits * pol->llm_cost_ms - t->lookups * mean / 1000.0;

		buf_add(buf, size, &n,
			      "llm_cost_ms: %d\nbreak_even_hit_rate: %.6f\n"
			      "time_saved_ms: %.0f\nabove_break_even: %s\n",
			      pol->llm_cost_ms, be, saved,
			      (t->lookups ? (double)t->hits / t->lookups : 0) >= be ? "yes" : "no");
	}
	if (pol->auto_disable)
		buf_add(buf, size, &n, "auto_disabled: %s\n",
			      disabled ? "yes (stopped storing: hit rate below break-even)" : "no");
	if (pol->adaptive_enabled || learned) {
		struct policy eff = *pol;

		engine_adapt_policy(c, cat, &eff, clock_wall_ms(), why, sizeof(why));
		policy_format_duration(eff.ttl, ttl, sizeof(ttl));
		buf_add(buf, size, &n,
			      "effective_threshold: %.4f\neffective_ttl: %s\nadaptive: %s\n",
			      eff.threshold, ttl, why);
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
		     "\nnot_stored: %" PRIu64 "\nbusy: %" PRIu64 "\n",
		     t->entries, t->bytes, t->lookups, t->hits, t->exact_hits,
		     t->semantic_hits, t->misses, t->fills, t->expired, t->evicted,
		     t->dropped, t->lookups ? (double)t->hits / t->lookups : 0.0,
		     lat_quantile(t->lat, 0.5), lat_quantile(t->lat, 0.99),
		     t->false_hits, t->coalesced, t->not_stored, t->busy);
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

int cache_metrics_text(struct cache *c, char **text, size_t *len)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} m[] = {
#define M(n, t, h, f) { n, t, h, offsetof(struct counters, f) }
		M("semcache_entries", "gauge", "Entries stored.", entries),
		M("semcache_bytes", "gauge", "Bytes of responses stored.", bytes),
		M("semcache_lookups_total", "counter", "Lookups.", lookups),
		M("semcache_hits_total", "counter", "Lookups answered from the cache.", hits),
		M("semcache_exact_hits_total", "counter", "Hits through the exact fast path.", exact_hits),
		M("semcache_semantic_hits_total", "counter", "Hits through the vector index.", semantic_hits),
		M("semcache_misses_total", "counter", "Lookups not answered.", misses),
		M("semcache_fills_total", "counter", "Responses stored.", fills),
		M("semcache_expired_total", "counter", "Entries removed after their ttl.", expired),
		M("semcache_evicted_total", "counter", "Entries removed by a quota.", evicted),
		M("semcache_damaged_dropped_total", "counter", "Entries dropped for a damaged response.", dropped),
#undef M
	};
	struct sbuf b = { 0 };
	struct counters *t;
	size_t ncats;
	char lbl[1024];
	struct cat **all = engine_cat_all(c, &ncats);

	t = all ? calloc(ncats ? ncats : 1, sizeof(*t)) : NULL;
	if (!t) {
		if (all)
			engine_cat_release_all(c, all, ncats);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ncats; i++)
		counters_add(&t[i], all[i]);
	for (size_t k = 0; k < sizeof(m) / sizeof(*m); k++) {
		sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help,
			  m[k].name, m[k].type);
		for (size_t i = 0; i < ncats; i++) {
			label_escape(all[i]->path, lbl, sizeof(lbl));
			sb_printf(&b, "%s{category=\"%s\"} %" PRIu64 "\n", m[k].name, lbl,
				  *(const uint64_t *)((const char *)&t[i] + m[k].off));
		}
	}
	sb_printf(&b, "# HELP semcache_lookup_microseconds Lookup time inside the daemon.\n"
		  "# TYPE semcache_lookup_microseconds gauge\n");
	for (size_t i = 0; i < ncats; i++) {
		label_escape(all[i]->path, lbl, sizeof(lbl));
		sb_printf(&b, "semcache_lookup_microseconds{category=\"%s\",quantile=\"0.5\"} %" PRIu64 "\n",
			  lbl, lat_quantile(t[i].lat, 0.5));
		sb_printf(&b, "semcache_lookup_microseconds{category=\"%s\",quantile=\"0.99\"} %" PRIu64 "\n",
			  lbl, lat_quantile(t[i].lat, 0.99));
	}
	engine_cat_release_all(c, all, ncats);
	free(t);
	if (b.oom) {
		free(b.data);
		return -ENOMEM;
	}
	*text = b.data ? b.data : strdup("");
	*len = b.len;
	return *text ? 0 : -ENOMEM;
}
