/*
 * eval.c - scored pairs in, ROC-AUC and calibrated thresholds out.
 *
 * Scoring with any embedder (the cosine) or with the whole lookup pipeline
 * (exact path, cosine floor, verifier), and the statistics: AUC by average
 * ranks, and one sorted sweep for the precision/recall of every candidate
 * threshold, with the point or the Wilson lower bound as the rule. The
 * pair readers are in eval_load.c.
 *
 * It does not print, choose embedders or read policies: eval_main.c does.
 * Memory is the pairs plus two vectors (and two verifier sides).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "eval.h"
#include "textnorm.h"
#include "verify.h"

/* ---- scoring and statistics ------------------------------------------ */

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double dot(const float *a, const float *b, int dim)
{
	double s = 0;
	int i;

	for (i = 0; i < dim; i++)
		s += (double)a[i] * b[i];
	return s;
}

int eval_score(const struct embedder *e, const struct eval_set *set,
	       double *scores, double *us, char *err, size_t errlen)
{
	float *a = malloc((size_t)e->dim * sizeof(*a));
	float *b = malloc((size_t)e->dim * sizeof(*b));
	double t = 0, t0;
	size_t i;
	int ret = 0;

	if (!a || !b) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < set->n; i++) {
		t0 = seconds();
		ret = embedder_embed(e, set->v[i].a, strlen(set->v[i].a), a);
		if (!ret)
			ret = embedder_embed(e, set->v[i].b, strlen(set->v[i].b), b);
		t += seconds() - t0;
		if (ret) {
			snprintf(err, errlen, "pair %zu: %s", i + 1,
				 embedder_last_error());
			goto out;
		}
		scores[i] = dot(a, b, e->dim);
	}
	if (us)
		*us = set->n ? t * 1e6 / (2.0 * (double)set->n) : 0;
out:
	free(a);
	free(b);
	return ret;
}

int eval_pipeline(const struct embedder *e, const struct eval_set *set,
		  const double *cosines, double floor, double *scores,
		  char *err, size_t errlen)
{
	int slot = verify_cos_slot(e->name);
	struct verify_side q, c;
	char *na = NULL, *nb = NULL;
	size_t i, la, lb, cap = 0;
	int ret = 0;

	for (i = 0; i < set->n; i++) {
		const struct eval_pair *p = &set->v[i];
		float cos[VERIFY_NCOS] = { NAN, NAN };

		la = strlen(p->a);
		lb = strlen(p->b);
		if (la + lb + 2 > cap) {
			char *nn = realloc(na, 2 * (la + lb + 2));

			if (!nn) {
				ret = -ENOMEM;
				goto oom;
			}
			na = nn;
			nb = nn + la + lb + 2;
			cap = la + lb + 2;
		}
		la = textnorm(p->a, la, na);
		lb = textnorm(p->b, lb, nb);
		if (la == lb && memcmp(na, nb, la) == 0) {
			scores[i] = 1;  /* the exact path serves it */
			continue;
		}
		if (cosines[i] < floor) {
			scores[i] = 0;  /* the index does not propose it */
			continue;
		}
		if (slot >= 0)
			cos[slot] = (float)cosines[i];
		if ((ret = verify_side_init(&q, p->a, strlen(p->a))))
			goto oom;
		if ((ret = verify_side_init(&c, p->b, strlen(p->b)))) {
			verify_side_release(&q);
			goto oom;
		}
		scores[i] = verify_score(&q, &c, cos, VERIFY_NCOS);
		verify_side_release(&q);
		verify_side_release(&c);
	}
	free(na);
	return 0;
oom:
	free(na);
	snprintf(err, errlen, "out of memory verifying pair %zu", i + 1);
	return ret;
}

struct scored {
	double s;
	int label;
};

static int by_score_desc(const void *x, const void *y)
{
	const struct scored *a = x, *b = y;

	return a->s < b->s ? 1 : a->s > b->s ? -1 : 0;
}

static struct scored *sorted(const double *scores, const int *labels, size_t n)
{
	struct scored *v = malloc((n ? n : 1) * sizeof(*v));
	size_t i;

	if (!v)
		return NULL;
	for (i = 0; i < n; i++) {
		v[i].s = scores[i];
		v[i].label = labels[i] ? 1 : 0;
	}
	qsort(v, n, sizeof(*v), by_score_desc);
	return v;
}

double eval_auc(const double *scores, const int *labels, size_t n)
{
	struct scored *v = sorted(scores, labels, n);
	double rank_sum = 0, npos = 0, nneg;
	size_t i = 0, j, k;

	if (!v)
		return -1;
	/* ascending ranks 1..n over the descending list; ties averaged */
	while (i < n) {
		double avg;

		for (j = i; j < n && v[j].s == v[i].s; j++)
			;
		/* positions i..j-1 descending -> ascending ranks n-j+1..n-i */
		avg = ((double)(n - j + 1) + (double)(n - i)) / 2.0;
		for (k = i; k < j; k++)
			if (v[k].label) {
				rank_sum += avg;
				npos++;
			}
		i = j;
	}
	free(v);
	nneg = (double)n - npos;
	if (npos == 0 || nneg == 0)
		return -1;
	return (rank_sum - npos * (npos + 1) / 2.0) / (npos * nneg);
}

static void fill_rates(struct eval_point *pt)
{
	pt->precision = pt->tp + pt->fp ? (double)pt->tp / (double)(pt->tp + pt->fp) : 1.0;
	pt->recall = pt->tp + pt->fn ? (double)pt->tp / (double)(pt->tp + pt->fn) : 0.0;
	pt->f1 = pt->precision + pt->recall > 0 ?
		2 * pt->precision * pt->recall / (pt->precision + pt->recall) : 0;
	verify_wilson(pt->precision, (double)(pt->tp + pt->fp), &pt->prec_low,
		      &pt->prec_high);
}

void eval_at_prior(const struct eval_point *pt, double prior, double *prec,
		   double *low, double *high)
{
	verify_precision_at_prior((double)pt->tp, (double)pt->fp,
				  (double)(pt->tp + pt->fn),
				  (double)(pt->fp + pt->tn), prior, prec, low, high);
}

void eval_at(const double *scores, const int *labels, size_t n, double t,
	     struct eval_point *pt)
{
	size_t i;

	memset(pt, 0, sizeof(*pt));
	pt->threshold = t;
	for (i = 0; i < n; i++) {
		bool hit = scores[i] >= t;

		if (labels[i])
			hit ? pt->tp++ : pt->fn++;
		else
			hit ? pt->fp++ : pt->tn++;
	}
	fill_rates(pt);
}

enum sweep_rule { SWEEP_POINT, SWEEP_CI, SWEEP_F1 };

struct sweep_arg {
	enum sweep_rule rule;
	double target, prior;
	size_t min_hits;
};

/* Does cur beat *pt under rule a (found: *pt holds an earlier point)?
 * For SWEEP_CI *ok says whether cur reaches the target. */
static bool better(const struct sweep_arg *a, const struct eval_point *cur,
		   const struct eval_point *pt, bool found, bool *ok)
{
	double low, best_low;

	switch (a->rule) {
	case SWEEP_F1:
		return !found || cur->f1 > pt->f1;
	case SWEEP_POINT:
		return cur->precision >= a->target;
	case SWEEP_CI:
		break;
	}
	if (cur->tp + cur->fp < a->min_hits)
		return false;
	eval_at_prior(cur, a->prior, NULL, &low, NULL);
	*ok = low >= a->target;
	if (*ok)
		return true;
	eval_at_prior(pt, a->prior, NULL, &best_low, NULL);
	return !found || low > best_low;
}

/* Walk thresholds from high to low, keeping the point rule a prefers. */
static int sweep(const double *scores, const int *labels, size_t n,
		 const struct sweep_arg *a, struct eval_point *pt)
{
	struct scored *v = sorted(scores, labels, n);
	size_t i = 0, j, pos = 0, tp = 0, fp = 0;
	struct eval_point cur, best_miss;
	bool found = false, reached = false, ok, have_miss = false;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		pos += v[i].label;
	memset(pt, 0, sizeof(*pt));
	memset(&best_miss, 0, sizeof(best_miss));
	i = 0;
	while (i < n) {
		for (j = i; j < n && v[j].s == v[i].s; j++) {
			tp += v[j].label;
			fp += !v[j].label;
		}
		memset(&cur, 0, sizeof(cur));
		cur.threshold = v[i].s;
		cur.tp = tp;
		cur.fp = fp;
		cur.fn = pos - tp;
		cur.tn = n - pos - fp;
		fill_rates(&cur);
		ok = false;
		if (a->rule != SWEEP_CI) {
			if (better(a, &cur, pt, found, &ok)) {
				*pt = cur;
				found = true;
			}
		} else if (better(a, &cur, reached ? pt : &best_miss,
				  reached || have_miss, &ok)) {
			if (ok) {
				*pt = cur;
				found = reached = true;
			} else if (!reached) {
				best_miss = cur;
				have_miss = true;
			}
		}
		i = j;
	}
	free(v);
	if (a->rule == SWEEP_CI && !reached) {
		*pt = best_miss;
		if (!have_miss) {
			pt->threshold = 1;
			pt->fn = pos;
			pt->tn = n - pos;
			fill_rates(pt);
		}
	}
	return found ? 0 : -ENOENT;
}

int eval_for_precision(const double *scores, const int *labels, size_t n,
		       double target, struct eval_point *pt)
{
	struct sweep_arg a = { .rule = SWEEP_POINT, .target = target };

	return sweep(scores, labels, n, &a, pt);
}

int eval_for_precision_ci(const double *scores, const int *labels, size_t n,
			  double target, size_t min_hits, double prior,
			  struct eval_point *pt)
{
	struct sweep_arg a = { .rule = SWEEP_CI, .target = target,
			       .prior = prior, .min_hits = min_hits };

	return sweep(scores, labels, n, &a, pt);
}

void eval_best_f1(const double *scores, const int *labels, size_t n,
		  struct eval_point *pt)
{
	struct sweep_arg a = { .rule = SWEEP_F1 };

	sweep(scores, labels, n, &a, pt);
}

/* ---- follow-ups ------------------------------------------------------ */

static const char *field(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The engine's context rule: an entry hits a query only with the same
 * context (both none counts as the same). */
static bool context_allows(const char *stored, const char *asked, bool match)
{
	if (!match)
		return true;
	if (!stored || !asked)
		return stored == asked;
	return strcmp(stored, asked) == 0;
}

int eval_followups(const struct embedder *e, const char *path, double threshold,
		   struct eval_followups *out, char *err, size_t errlen)
{
	struct json_object *root = NULL;
	float *a = NULL, *b = NULL;
	char *data = NULL, *ctx = NULL;
	size_t len, n, i;
	double sum = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	out->max_score = -1;
	if ((ret = eval_slurp(path, &data, &len, err, errlen)))
		return ret;
	root = json_tokener_parse(data);
	ret = -EINVAL;
	if (!root || !json_object_is_type(root, json_type_array)) {
		snprintf(err, errlen, "'%s': expected a json array of follow-up "
			 "objects", path);
		goto out;
	}
	a = malloc((size_t)e->dim * sizeof(*a));
	b = malloc((size_t)e->dim * sizeof(*b));
	if (!a || !b) {
		ret = -ENOMEM;
		goto out;
	}
	n = json_object_array_length(root);
	for (i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(root, i);
		const char *main_q = field(o, "Main Query");
		const char *main_r = field(o, "Main Query Response");
		const char *fup = field(o, "Follow-Up Query");
		double s;
		bool hit;

		if (!main_q || !fup) {
			snprintf(err, errlen, "'%s': item %zu lacks \"Main Query\" "
				 "or \"Follow-Up Query\"", path, i);
			ret = -EINVAL;
			goto out;
		}
		free(ctx);
		if (asprintf(&ctx, "%s\n%s", main_q, main_r ? main_r : "") < 0) {
			ctx = NULL;
			ret = -ENOMEM;
			goto out;
		}
		if ((ret = embedder_embed(e, main_q, strlen(main_q), a)) ||
		    (ret = embedder_embed(e, fup, strlen(fup), b))) {
			snprintf(err, errlen, "item %zu: %s", i,
				 embedder_last_error());
			goto out;
		}
		s = dot(a, b, e->dim);
		sum += s;
		if (s > out->max_score)
			out->max_score = s;
		hit = s >= threshold;
		/* the main query was stored without a context, the follow-up
		 * is asked inside its conversation */
		out->false_hits_ignore += hit && context_allows(NULL, ctx, false);
		out->false_hits_match += hit && context_allows(NULL, ctx, true);
		out->n++;
	}
	out->mean_score = out->n ? sum / (double)out->n : 0;
	ret = 0;
out:
	free(ctx);
	free(a);
	free(b);
	free(data);
	json_object_put(root);
	return ret;
}
