/*
 * context_bench.c - context: match against context: similar, measured
 * through the engine (cache.h, in-process, on a fresh local store) on the
 * shared data, for one embedder and a list of context_threshold values.
 *
 * Two measurements:
 *  1. contextual_followups_128.json: each follow-up is filled under its own
 *     context (its main query) and asked under that context and under the
 *     next --others contexts (cyclically). Asked under context j, a hit
 *     on an entry filled under another context than j is a cross-context
 *     false hit (must be 0); a hit on entry j is a same-context hit of a
 *     similar follow-up, counted apart.
 *  2. paraphrases_999.json (first --pairs pairs) as contexts: one fixed
 *     follow-up is filled under each "origin" and asked under each
 *     "similar" (the same conversation reworded): serving the entry of the
 *     same pair is a hit kept, serving another pair's entry is a
 *     cross-context false hit, anything else a miss.
 * Each threshold rewrites the similar category's policy; entries stay.
 *
 *   context_bench [--embedder E] [--others N] [--pairs N]
 *                 [--thresholds T,T,...] [--verbose] [--skip-match]
 *                 PAIRS_DIR
 * PAIRS_DIR is ../shared/data/pairs. Not part of the test suite.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "cache.h"

#define MAX_THR 16
#define FOLLOWUP "Can you tell me more about that?"

struct item { const char *ctx, *query, *alt; int64_t id_m, id_s; };

struct counts { int own, cross, other, reworded, miss, n; };

/* Contexts of contextual_followups_128.json that are the same question
 * reworded (read from the data; every other pair of its main queries asks
 * something else): a hit across one of these pairs is a hit kept. */
static const char *const same_conversation[][2] = {
	{ "What is the significance of the Treaty of Versailles?",
	  "Can you explain the significance of the Treaty of Versailles?" },
	{ "What is the significance of Maslow's hierarchy of needs?",
	  "What is the significance of Maslow's hierarchy of needs in psychology?" },
	{ "What are the key principles of Keynesian economics?",
	  "What are the main principles of Keynesian economics?" },
};

/* The reworded form of context a the data gives, or NULL. */
static const char *partner(const char *a)
{
	for (size_t i = 0; i < sizeof(same_conversation) / sizeof(same_conversation[0]); i++)
		for (int k = 0; k < 2; k++)
			if (!strcmp(a, same_conversation[i][k]))
				return same_conversation[i][!k];
	return NULL;
}

static struct cache *cache;

static const char *field(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		bench_die("an item has no string '%s'", k);
	return json_object_get_string(v);
}

static void put_policy(const char *cat, const char *emb, const char *mode,
		       double thr)
{
	char yaml[512];
	int n = snprintf(yaml, sizeof(yaml), "embedder: %s\ncontext: %s\n"
			 "context_threshold: %.4f\n", emb, mode, thr);

	if (cache_policy_put(cache, cat, yaml, (size_t)n, NULL))
		bench_die("policy of '%s' refused", cat);
}

static int64_t fill(const char *cat, const char *q, const char *ctx, int i)
{
	struct cache_query cq = { q, strlen(q), ctx, strlen(ctx) };
	char resp[32];
	int64_t id = 0;
	bool stored;
	int n = snprintf(resp, sizeof(resp), "answer %d", i);

	if (cache_fill(cache, cat, &cq, NULL, resp, (size_t)n, NULL, &id, &stored) || !stored)
		bench_die("fill %d of '%s' failed", i, cat);
	return id;
}

/* Ask q under ctx in cat: the entry served, or 0 on a miss. */
static int64_t ask(const char *cat, const char *q, const char *ctx)
{
	struct cache_query cq = { q, strlen(q), ctx, strlen(ctx) };
	struct cache_result r;
	int64_t id;

	if (cache_lookup(cache, cat, &cq, &r))
		bench_die("lookup in '%s' failed", cat);
	id = r.outcome == CACHE_HIT ? r.entry_id : 0;
	cache_result_release(&r);
	return id;
}

/* Which item (0..n) entry id belongs to in the match (s = 0) or similar
 * category, or -1. */
static int owner(const struct item *it, size_t n, int64_t id, int s)
{
	for (size_t i = 0; i < n; i++)
		if ((s ? it[i].id_s : it[i].id_m) == id)
			return (int)i;
	return -1;
}

static int verbose;

/* Count one lookup of it[i].query under context ctx that served id: a hit
 * on an entry stored under the same context text (it[want]'s, or an equal
 * one) is the context's own; any other hit is a cross-context one. */
static void count(struct counts *c, const struct item *it, size_t n,
		  int64_t id, int s, size_t want, const char *ctx, size_t i)
{
	int o = id ? owner(it, n, id, s) : -1;

	c->n++;
	if (!id)
		c->miss++;
	else if (o == (int)want)
		c->own++;
	else if (o >= 0 && !strcmp(it[o].ctx, ctx))
		c->other++;
	else if (o >= 0 && partner(ctx) && !strcmp(partner(ctx), it[o].ctx))
		c->reworded++;
	else
		c->cross++;
	if (verbose && id && o != (int)want)
		printf("    hit: '%s' under '%s' served the entry of '%s' under '%s'\n",
		       it[i].query, ctx, o >= 0 ? it[o].query : "?",
		       o >= 0 ? it[o].ctx : "?");
}

static void load(const char *path, struct item **out, size_t *n, size_t max,
		 int followups)
{
	json_object *root = json_object_from_file(path);
	size_t len;

	if (!root || !json_object_is_type(root, json_type_array))
		bench_die("cannot read '%s' as a JSON array", path);
	len = json_object_array_length(root);
	if (len > max)
		len = max;
	*out = bench_xcalloc(len, sizeof(**out));
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(root, i);
		struct item *it = &(*out)[i];

		it->ctx = strdup(field(o, followups ? "Main Query" : "origin"));
		it->query = strdup(followups ? field(o, "Follow-Up Query") : FOLLOWUP);
		it->alt = followups ? NULL : strdup(field(o, "similar"));
	}
	*n = len;
	json_object_put(root);
}

/* Measurement 1 in cat, of mode s (0 match, 1 similar). */
static void followups(const struct item *it, size_t n, int others,
		      const char *cat, int s)
{
	struct counts own = { 0 }, cr = { 0 }, rw = { 0 };

	for (size_t i = 0; i < n; i++) {
		count(&own, it, n, ask(cat, it[i].query, it[i].ctx), s, i,
		      it[i].ctx, i);
		for (int d = 1; d <= others; d++) {
			size_t j = (i + (size_t)d) % n;

			/* a hit on j is a same-context hit of a similar follow-up */
			count(&cr, it, n, ask(cat, it[i].query, it[j].ctx), s, j,
			      it[j].ctx, i);
		}
	}
	/* the follow-ups of a reworded pair, asked under the other form */
	for (size_t i = 0; i < n; i++) {
		const char *p = partner(it[i].ctx);

		if (p)
			count(&rw, it, n, ask(cat, it[i].query, p), s, n, p, i);
	}
	printf("  own context: %d/%d hit   other contexts: %d lookups, "
	       "%d cross-context false hits, %d same-context hits of "
	       "another follow-up, %d hits across a reworded pair\n"
	       "  reworded pairs of the data: %d/%d kept\n",
	       own.own + own.other, own.n, cr.n, cr.cross + own.cross,
	       cr.own + cr.other, cr.reworded, rw.reworded, rw.n);
}

/* Measurement 2 in cat, of mode s. */
static void reworded(const struct item *it, size_t n, const char *cat, int s)
{
	struct counts c = { 0 };

	for (size_t i = 0; i < n; i++)
		count(&c, it, n, ask(cat, it[i].query, it[i].alt), s, i,
		      it[i].alt, i);
	printf("  reworded context: %d/%d kept (%.1f%%), %d hits on another "
	       "pair's entry, %d misses\n", c.own, c.n, 100.0 * c.own / c.n,
	       c.cross + c.other, c.miss);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "embedder", required_argument, NULL, 'e' },
		{ "others", required_argument, NULL, 'o' },
		{ "pairs", required_argument, NULL, 'p' },
		{ "thresholds", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "skip-match", no_argument, NULL, 's' },
		{ 0 } };
	const char *emb = "builtin", *thr_list = "0.5,0.6,0.7,0.8,0.9";
	double thr[MAX_THR];
	int others = 127, pairs = 999, nthr = 0, skip_match = 0, opt;
	char dir[] = "/tmp/context_bench.XXXXXX", path[4200], err[512];
	struct item *fu, *pp;
	size_t nfu, npp;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (opt == 'e')
			emb = optarg;
		else if (opt == 'o')
			others = atoi(optarg);
		else if (opt == 'p')
			pairs = atoi(optarg);
		else if (opt == 't')
			thr_list = optarg;
		else if (opt == 'v')
			verbose = 1;
		else if (opt == 's')
			skip_match = 1;
		else
			return 2;
	}
	if (optind != argc - 1 || others < 0 || pairs < 1) {
		fprintf(stderr, "usage: context_bench [--embedder E] [--others N] "
			"[--pairs N] [--thresholds T,T,...] [--verbose] [--skip-match] "
			"PAIRS_DIR\n");
		return 2;
	}
	for (char *s = strdup(thr_list), *t = strtok(s, ","); t && nthr < MAX_THR;
	     t = strtok(NULL, ","))
		thr[nthr++] = atof(t);
	snprintf(path, sizeof(path), "%s/contextual_followups_128.json", argv[optind]);
	load(path, &fu, &nfu, 128, 1);
	snprintf(path, sizeof(path), "%s/paraphrases_999.json", argv[optind]);
	load(path, &pp, &npp, (size_t)pairs, 0);
	if (others > (int)nfu - 1)
		others = (int)nfu - 1;
	if (!mkdtemp(dir))
		bench_die("mkdtemp: %s", strerror(errno));
	struct cache_options co = { .store_dir = dir, .quiet = true };

	if (cache_open(&co, &cache, err, sizeof(err)))
		bench_die("cache_open '%s': %s", dir, err);
	if (cache_category_create(cache, "/m", 0755, getuid(), getgid()) ||
	    cache_category_create(cache, "/s", 0755, getuid(), getgid()) ||
	    cache_category_create(cache, "/pm", 0755, getuid(), getgid()) ||
	    cache_category_create(cache, "/ps", 0755, getuid(), getgid()))
		bench_die("cannot create the categories");
	put_policy("/m", emb, "match", 0.5);
	put_policy("/s", emb, "similar", thr[0]);
	put_policy("/pm", emb, "match", 0.5);
	put_policy("/ps", emb, "similar", thr[0]);
	for (size_t i = 0; i < nfu; i++) {
		fu[i].id_m = fill("/m", fu[i].query, fu[i].ctx, (int)i);
		fu[i].id_s = fill("/s", fu[i].query, fu[i].ctx, (int)i);
	}
	for (size_t i = 0; i < npp; i++) {
		pp[i].id_m = fill("/pm", pp[i].query, pp[i].ctx, (int)i);
		pp[i].id_s = fill("/ps", pp[i].query, pp[i].ctx, (int)i);
	}
	printf("embedder: %s\nfollow-ups: %zu (each asked under its own context "
	       "and %d others)\nreworded contexts: %zu pairs of "
	       "paraphrases_999.json, follow-up '%s'\n", emb, nfu, others, npp,
	       FOLLOWUP);
	if (!skip_match) {
		printf("context: match\n");
		followups(fu, nfu, others, "/m", 0);
		reworded(pp, npp, "/pm", 0);
	}
	for (int t = 0; t < nthr; t++) {
		put_policy("/s", emb, "similar", thr[t]);
		put_policy("/ps", emb, "similar", thr[t]);
		printf("context: similar, context_threshold: %.2f\n", thr[t]);
		followups(fu, nfu, others, "/s", 1);
		reworded(pp, npp, "/ps", 1);
	}
	cache_close(cache);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	return system(path) == 0 ? 0 : 1;
}
