/*
 * eval_main.c - semcachefs-eval: measure an embedder, calibrate a threshold.
 *
 *   semcachefs-eval [--embedder SPEC] [--policy FILE] [--target-precision P]
 *                   [--format auto|csv|qqp|paraphrase-json|sts|mrpc] FILE
 *   semcachefs-eval [--embedder SPEC] [--policy FILE] [--threshold T]
 *                   --followups FILE
 *
 * Prints the pair counts, ROC-AUC, a precision/recall/F1 table, the best-F1
 * threshold and the lowest threshold reaching the target precision as a
 * "threshold: X" line ready for policy.yaml (rounded up to the 4 decimals
 * .policy prints). --policy reads a policy.yaml for the embedder keys
 * (embedder, http.*); --embedder overrides its embedder. Exit status: 0,
 * 1 on bad input or an embedder failure, 2 on bad usage, 3 when no
 * threshold reaches the target precision. All the work is in eval.c.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "policy.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: semcachefs-eval [--embedder SPEC] [--policy FILE] "
		"[--target-precision P]\n"
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

static int run_pairs(const struct embedder *e, const char *path,
		     enum eval_format fmt, double target)
{
	static const double table[] = { 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9,
					0.95, 0.98 };
	struct eval_set set;
	struct eval_point pt, best;
	double *scores = NULL, us = 0, auc, thr;
	int *labels = NULL, ret = 1, r;
	char err[512];
	size_t i, pos = 0;

	if (eval_load(path, fmt, &set, err, sizeof(err)) < 0) {
		fprintf(stderr, "semcachefs-eval: %s\n", err);
		return 1;
	}
	scores = malloc((set.n ? set.n : 1) * sizeof(*scores));
	labels = malloc((set.n ? set.n : 1) * sizeof(*labels));
	if (!scores || !labels) {
		fprintf(stderr, "semcachefs-eval: out of memory\n");
		goto out;
	}
	for (i = 0; i < set.n; i++) {
		labels[i] = set.v[i].label;
		pos += (size_t)labels[i];
	}
	if (eval_score(e, &set, scores, &us, err, sizeof(err)) < 0) {
		fprintf(stderr, "semcachefs-eval: embedder '%s': %s\n", e->name, err);
		goto out;
	}
	auc = eval_auc(scores, labels, set.n);
	printf("file: %s\n", path);
	printf("embedder: %s (%d dimensions)\n", e->name, e->dim);
	printf("pairs: %zu (%zu positive, %zu negative", set.n, pos, set.n - pos);
	if (set.skipped)
		printf(", %zu ambiguous skipped", set.skipped);
	printf(")\n");
	if (auc < 0)
		printf("roc_auc: n/a (needs positive and negative pairs)\n");
	else
		printf("roc_auc: %.4f\n", auc);
	printf("embed_us_per_text: %.1f\n\n", us);
	printf("%9s %9s %9s %9s %7s %7s\n", "threshold", "precision", "recall",
	       "f1", "hits", "false");
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		eval_at(scores, labels, set.n, table[i], &pt);
		printf("%9.2f %9.4f %9.4f %9.4f %7zu %7zu\n", table[i],
		       pt.precision, pt.recall, pt.f1, pt.tp + pt.fp, pt.fp);
	}
	eval_best_f1(scores, labels, set.n, &best);
	printf("\nbest_f1: %.4f at threshold %.4f (precision %.4f, recall %.4f)\n",
	       best.f1, best.threshold, best.precision, best.recall);
	r = eval_for_precision(scores, labels, set.n, target, &pt);
	if (r < 0) {
		printf("no threshold reaches precision %.4f on this data\n", target);
		ret = 3;
		goto out;
	}
	printf("threshold_exact: %.6f (precision %.4f, recall %.4f, %zu hits)\n",
	       pt.threshold, pt.precision, pt.recall, pt.tp + pt.fp);
	/* round up to what .policy prints, then report what that gives */
	thr = ceil(pt.threshold * 10000.0 - 1e-9) / 10000.0;
	if (thr > 1)
		thr = 1;
	eval_at(scores, labels, set.n, thr, &pt);
	printf("target_precision: %.4f -> precision %.4f, recall %.4f, f1 %.4f\n",
	       target, pt.precision, pt.recall, pt.f1);
	if (pt.precision < target)
		printf("note: rounded to 4 decimals the threshold no longer "
		       "reaches the target (too few pairs score that high)\n");
	printf("threshold: %.4f\n", thr);
	ret = 0;
out:
	free(scores);
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *spec = NULL, *followups = NULL;
	enum eval_format fmt = EVAL_AUTO;
	double target = 0.95, threshold = -1;
	struct embedder *e = NULL;
	struct policy p;
	char err[512];
	int c, ret;

	policy_defaults(&p);
	while ((c = getopt_long(argc, argv, "e:p:t:f:u:T:h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			spec = optarg;
			break;
		case 'p':
			if (load_policy(optarg, &p) < 0)
				return 1;
			break;
		case 't':
			target = parse_unit(optarg, "--target-precision");
			break;
		case 'f':
			if (eval_format_parse(optarg, &fmt) < 0) {
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
		ret = run_pairs(e, argv[optind], fmt, target);
	}
	embedder_free(e);
	return ret;
}
