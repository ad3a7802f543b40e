/*
 * eval_main.c - semcachefs-eval: measure an embedder or the whole lookup
 * pipeline, calibrate a threshold honestly.
 *
 *   semcachefs-eval [--embedder SPEC] [--policy FILE] [--target-precision P]
 *                   [--min-hits N] [--prior PI] [--scores]
 *                   [--pipeline [--floor F] [--precision P]]
 *                   [--format auto|csv|qqp|paraphrase-json|sts|mrpc] FILE
 *   semcachefs-eval [--embedder SPEC] [--policy FILE] [--threshold T]
 *                   --followups FILE
 *
 * A pair's score is the embedder's cosine, or with --pipeline what a
 * lookup decides (eval_pipeline(): the exact path, the cosine floor F,
 * then the verifier's score). Prints the pair counts, ROC-AUC, a
 * precision/recall/F1 table, the best-F1 threshold and the lowest
 * threshold whose precision's 95 % Wilson lower bound reaches the target
 * with at least N hits (default 30), with its interval, as a "threshold: X"
 * line ready for policy.yaml (rounded up to the 4 decimals .policy
 * prints). --prior PI also reports precision at a share PI of duplicates
 * and judges the target there. With --pipeline, --precision P is the
 * category's precision target, mapped through the verifier's shipped
 * calibration to its operating point, and what that point gives on FILE is
 * printed. --scores prints only "SCORE<TAB>LABEL" per pair. --policy reads
 * a policy.yaml for the embedder keys (embedder, http.*); --embedder
 * overrides its embedder. Exit status: 0, 1 on bad input or an embedder
 * failure, 2 on bad usage, 3 when no threshold reaches the target
 * precision. All the work is in eval.c.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "policy.h"
#include "verify.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: semcachefs-eval [--embedder SPEC] [--policy FILE] "
		"[--target-precision P]\n"
		"                       [--min-hits N] [--prior PI] [--scores]\n"
		"                       [--pipeline [--floor F] [--precision P]]\n"
		"                       [--format auto|csv|qqp|paraphrase-json|sts|mrpc] FILE\n"
		"       semcachefs-eval [--embedder SPEC] [--policy FILE] "
		"[--threshold T] --followups FILE\n"
		"  SPEC: builtin (default), model2vec:/ABSOLUTE/DIR, http "
		"(with http.* keys from --policy),\n"
		"        use-lite, use-lite:/ABSOLUTE/DIR\n");
}

static int load_policy(const char *path, struct policy *p)
{
	struct policy_file *f = NULL;
	struct policy_error perr;
	char buf[1 << 16];
	size_t n;
	FILE *in = fopen(path, "r");
	int r;

	if (!in) {
		fprintf(stderr, "semcachefs-eval: cannot open '%s': %s\n", path,
			strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), in);
	fclose(in);
	r = policy_file_parse(buf, n, path, &f, &perr);
	if (r < 0) {
		fprintf(stderr, "semcachefs-eval: '%s' line %d column %d: %s\n",
			path, perr.line, perr.column, perr.message);
		return -1;
	}
	policy_apply(p, f);
	policy_file_free(f);
	return 0;
}

static double parse_unit(const char *s, const char *what)
{
	char *end;
	double d = strtod(s, &end);

	if (end == s || *end || !(d >= 0 && d <= 1)) {
		fprintf(stderr, "semcachefs-eval: %s '%s' must be a number from "
			"0 to 1\n", what, s);
		exit(2);
	}
	return d;
}

struct run {
	const char *path;
	enum eval_format fmt;
	double target;          /* --target-precision */
	size_t min_hits;
	double prior;           /* --prior, or -1 */
	bool scores_only;
	bool pipeline;
	double floor;
	double precision;       /* --precision: the category's target */
};

/* ", precision_at_prior_PI X [lo, hi]" when a prior was given */
static void print_prior(const struct run *o, const struct eval_point *pt)
{
	double p, lo, hi;

	if (o->prior <= 0)
		return;
	eval_at_prior(pt, o->prior, &p, &lo, &hi);
	printf(", precision_at_prior_%.4f %.4f [%.4f, %.4f]", o->prior, p, lo, hi);
}

static void print_table(const struct run *o, const double *scores,
			const int *labels, size_t n)
{
	static const double table[] = { 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9,
					0.95, 0.98 };
	struct eval_point pt;
	double p;
	size_t i;

	printf("%9s %9s %9s %9s %7s %7s", "threshold", "precision", "recall",
	       "f1", "hits", "false");
	if (o->prior > 0)
		printf(" %9s", "prec@pi");
	printf("\n");
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		eval_at(scores, labels, n, table[i], &pt);
		printf("%9.2f %9.4f %9.4f %9.4f %7zu %7zu", table[i],
		       pt.precision, pt.recall, pt.f1, pt.tp + pt.fp, pt.fp);
		if (o->prior > 0) {
			eval_at_prior(&pt, o->prior, &p, NULL, NULL);
			printf(" %9.4f", p);
		}
		printf("\n");
	}
}

/* The category's operating point (verify_operating_point) on this data. */
static void print_operating_point(const struct run *o, const struct embedder *e,
				  const double *scores, const int *labels,
				  size_t n)
{
	float cos[VERIFY_NCOS] = { NAN, NAN };
	int slot = verify_cos_slot(e->name), sup, r;
	enum verify_model m;
	struct eval_point pt;
	double thr, low, prior;

	if (slot >= 0)
		cos[slot] = 0;
	m = verify_model_for(cos, VERIFY_NCOS);
	prior = o->prior > 0 ? o->prior : verify_training_prior(m);
	r = verify_operating_point(m, o->precision, prior, &thr, &low, &sup);
	if (r == 0) {
		printf("operating_point: precision %.4f at prior %.4f -> score "
		       "threshold %.4f (%s; validation lower bound %.4f, support "
		       "%d)\n", o->precision, prior, thr, verify_model_name(m),
		       low, sup);
	} else {
		printf("operating_point: precision %.4f at prior %.4f unreachable "
		       "with %s (best validation lower bound %.4f at threshold "
		       "%.4f, support %d): only exact matches hit\n", o->precision,
		       prior, verify_model_name(m), low, thr, sup);
		thr = 1;    /* the exact path's score */
	}
	eval_at(scores, labels, n, thr, &pt);
	printf("at_operating_point: precision %.4f, recall %.4f, hits %zu, "
	       "precision_95ci [%.4f, %.4f]", pt.precision, pt.recall,
	       pt.tp + pt.fp, pt.prec_low, pt.prec_high);
	print_prior(o, &pt);
	printf("\n");
}

/* Honest calibration on this data; 0, or 3 when the target is not met. */
static int print_target(const struct run *o, const double *scores,
			const int *labels, size_t n)
{
	struct eval_point pt;
	double thr, low;
	int r;

	r = eval_for_precision_ci(scores, labels, n, o->target, o->min_hits,
				  o->prior, &pt);
	printf("target_rule: 95%% Wilson lower bound >= %.4f with at least %zu "
	       "hits, at %s\n", o->target, o->min_hits, o->prior > 0 ?
	       "the stated prior" : "this data's balance");
	if (r < 0) {
		printf("no threshold reaches precision %.4f on this data\n",
		       o->target);
		if (pt.tp + pt.fp)
			printf("best: threshold %.6f, precision %.4f [%.4f, %.4f], "
			       "recall %.4f, %zu hits\n", pt.threshold,
			       pt.precision, pt.prec_low, pt.prec_high, pt.recall,
			       pt.tp + pt.fp);
		else
			printf("best: no threshold has %zu hits\n", o->min_hits);
		return 3;
	}
	printf("threshold_exact: %.6f (precision %.4f [%.4f, %.4f], recall "
	       "%.4f, %zu hits)\n", pt.threshold, pt.precision, pt.prec_low,
	       pt.prec_high, pt.recall, pt.tp + pt.fp);
	/* round up to what .policy prints, then report what that gives */
	thr = ceil(pt.threshold * 10000.0 - 1e-9) / 10000.0;
	if (thr > 1)
		thr = 1;
	eval_at(scores, labels, n, thr, &pt);
	printf("target_precision: %.4f -> precision %.4f, recall %.4f, f1 %.4f, "
	       "hits %zu, precision_95ci [%.4f, %.4f]", o->target, pt.precision,
	       pt.recall, pt.f1, pt.tp + pt.fp, pt.prec_low, pt.prec_high);
	print_prior(o, &pt);
	printf("\n");
	eval_at_prior(&pt, o->prior, NULL, &low, NULL);
	if (low < o->target || pt.tp + pt.fp < o->min_hits) {
		printf("note: rounded to 4 decimals the threshold no longer "
		       "reaches the target (too few pairs score that high)\n");
		printf("threshold: %.4f\n", thr);
		return 3;
	}
	printf("threshold: %.4f\n", thr);
	return 0;
}

static int run_pairs(const struct embedder *e, const struct run *o)
{
	struct eval_set set;
	struct eval_point best;
	double *scores = NULL, *cosines = NULL, us = 0, auc;
	int *labels = NULL, ret = 1;
	char err[512];
	size_t i, pos = 0;

	if (eval_load(o->path, o->fmt, &set, err, sizeof(err)) < 0) {
		fprintf(stderr, "semcachefs-eval: %s\n", err);
		return 1;
	}
	scores = malloc((set.n ? set.n : 1) * sizeof(*scores));
	cosines = malloc((set.n ? set.n : 1) * sizeof(*cosines));
	labels = malloc((set.n ? set.n : 1) * sizeof(*labels));
	if (!scores || !cosines || !labels) {
		fprintf(stderr, "semcachefs-eval: out of memory\n");
		goto out;
	}
	for (i = 0; i < set.n; i++) {
		labels[i] = set.v[i].label;
		pos += (size_t)labels[i];
	}
	if (eval_score(e, &set, cosines, &us, err, sizeof(err)) < 0) {
		fprintf(stderr, "semcachefs-eval: embedder '%s': %s\n", e->name, err);
		goto out;
	}
	if (!o->pipeline)
		memcpy(scores, cosines, set.n * sizeof(*scores));
	else if (eval_pipeline(e, &set, cosines, o->floor, scores, err,
			       sizeof(err)) < 0) {
		fprintf(stderr, "semcachefs-eval: %s\n", err);
		goto out;
	}
	if (o->scores_only) {
		for (i = 0; i < set.n; i++)
			printf("%.6f\t%d\n", scores[i], labels[i]);
		ret = 0;
		goto out;
	}
	auc = eval_auc(scores, labels, set.n);
	printf("file: %s\n", o->path);
	printf("embedder: %s (%d dimensions)\n", e->name, e->dim);
	if (o->pipeline)
		printf("pipeline: exact path, cosine >= %.2f, verifier\n", o->floor);
	printf("pairs: %zu (%zu positive, %zu negative", set.n, pos, set.n - pos);
	if (set.skipped)
		printf(", %zu ambiguous skipped", set.skipped);
	printf(")\n");
	if (auc < 0)
		printf("roc_auc: n/a (needs positive and negative pairs)\n");
	else
		printf("roc_auc: %.4f\n", auc);
	printf("embed_us_per_text: %.1f\n\n", us);
	print_table(o, scores, labels, set.n);
	eval_best_f1(scores, labels, set.n, &best);
	printf("\nbest_f1: %.4f at threshold %.4f (precision %.4f, recall %.4f)\n",
	       best.f1, best.threshold, best.precision, best.recall);
	if (o->pipeline)
		print_operating_point(o, e, scores, labels, set.n);
	ret = print_target(o, scores, labels, set.n);
out:
	free(scores);
	free(cosines);
	free(labels);
	eval_set_release(&set);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "embedder", required_argument, NULL, 'e' },
		{ "policy", required_argument, NULL, 'p' },
		{ "target-precision", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'f' },
		{ "followups", required_argument, NULL, 'u' },
		{ "threshold", required_argument, NULL, 'T' },
		{ "min-hits", required_argument, NULL, 'm' },
		{ "prior", required_argument, NULL, 'P' },
		{ "scores", no_argument, NULL, 'S' },
		{ "pipeline", no_argument, NULL, 'V' },
		{ "floor", required_argument, NULL, 'F' },
		{ "precision", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *spec = NULL, *followups = NULL;
	struct run o = { .fmt = EVAL_AUTO, .target = 0.95, .min_hits = 30,
			 .prior = -1, .floor = 0.5, .precision = 0.75 };
	double threshold = -1;
	char *end;
	long v;
	struct embedder *e = NULL;
	struct policy p;
	char err[512];
	int c, ret;

	policy_defaults(&p);
	while ((c = getopt_long(argc, argv, "e:p:t:f:u:T:m:P:SVF:R:h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			spec = optarg;
			break;
		case 'p':
			if (load_policy(optarg, &p) < 0)
				return 1;
			break;
		case 't':
			o.target = parse_unit(optarg, "--target-precision");
			break;
		case 'f':
			if (eval_format_parse(optarg, &o.fmt) < 0) {
				fprintf(stderr, "semcachefs-eval: unknown format "
					"'%s' (known: auto, csv, qqp, "
					"paraphrase-json, sts, mrpc)\n", optarg);
				return 2;
			}
			break;
		case 'u':
			followups = optarg;
			break;
		case 'T':
			threshold = parse_unit(optarg, "--threshold");
			break;
		case 'm':
			v = strtol(optarg, &end, 10);
			if (end == optarg || *end || v < 1 || v > 1000000) {
				fprintf(stderr, "semcachefs-eval: --min-hits '%s' "
					"must be a whole number from 1 to 1000000\n",
					optarg);
				return 2;
			}
			o.min_hits = (size_t)v;
			break;
		case 'P':
			o.prior = parse_unit(optarg, "--prior");
			if (o.prior <= 0 || o.prior >= 1) {
				fprintf(stderr, "semcachefs-eval: --prior '%s' "
					"must be above 0 and below 1\n", optarg);
				return 2;
			}
			break;
		case 'S':
			o.scores_only = true;
			break;
		case 'V':
			o.pipeline = true;
			break;
		case 'F':
			o.floor = parse_unit(optarg, "--floor");
			break;
		case 'R':
			o.precision = parse_unit(optarg, "--precision");
			if (o.precision <= 0) {
				fprintf(stderr, "semcachefs-eval: --precision '%s' "
					"must be above 0\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if ((followups && optind != argc) || (!followups && optind != argc - 1)) {
		usage(stderr);
		return 2;
	}
	if (spec && snprintf(p.embedder, sizeof(p.embedder), "%s", spec) >=
		    (int)sizeof(p.embedder)) {
		fprintf(stderr, "semcachefs-eval: embedder '%.40s...' is too long\n",
			spec);
		return 2;
	}
	if (embedder_new(&p, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "semcachefs-eval: %s\n", err);
		return 1;
	}
	if (followups) {
		struct eval_followups fu;

		if (threshold < 0)
			threshold = p.threshold;
		ret = eval_followups(e, followups, threshold, &fu, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "semcachefs-eval: %s\n", err);
			ret = 1;
		} else {
			printf("file: %s\nembedder: %s\nfollowups: %zu\n"
			       "threshold: %.4f\n"
			       "score_vs_main_query: mean %.4f, max %.4f\n"
			       "false_hits_context_ignore: %zu\n"
			       "false_hits_context_match: %zu\n",
			       followups, e->name, fu.n, threshold, fu.mean_score,
			       fu.max_score, fu.false_hits_ignore,
			       fu.false_hits_match);
			ret = 0;
		}
	} else {
		o.path = argv[optind];
		ret = run_pairs(e, &o);
	}
	embedder_free(e);
	return ret;
}
