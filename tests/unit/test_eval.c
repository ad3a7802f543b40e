/*
 * test_eval.c - unit tests for index/eval.c.
 *
 * Hand-computable statistics (AUC with ties, precision/recall at a
 * threshold, the threshold for a target precision, best F1, the honest
 * rule with its support and Wilson bound, precision at a prior), the CSV
 * reader (quotes, doubled quotes, newlines in quotes, CRLF, both header
 * styles, errors with line numbers), the MRPC and STS files (every STS
 * pair kept on request, with its score), scoring with the built-in
 * embedder and the pipeline's exact path and floor. The runs on the real
 * data sets are in tests/60-eval.bats and tests/63-verifier.bats.
 */
#include "eval.h"
#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

static void test_stats(void)
{
	/* pos 0.9, 0.7; neg 0.8, 0.1: 3 of 4 pairs ordered -> 0.75 */
	const double s[] = { 0.9, 0.8, 0.7, 0.1 };
	const int l[] = { 1, 0, 1, 0 };
	/* ties count one half: pos {1, 1}, neg {1, 0} -> (0.5+0.5+1+1)/4 */
	const double st[] = { 1, 1, 1, 0 };
	const int lt[] = { 1, 1, 0, 0 };
	const int all[] = { 1, 1, 1, 1 };
	struct eval_point pt;

	CHECK(NEAR(eval_auc(s, l, 4), 0.75));
	CHECK(NEAR(eval_auc(st, lt, 4), 0.75));
	CHECK(eval_auc(s, all, 4) < 0);
	eval_at(s, l, 4, 0.75, &pt);
	CHECK_EQ_INT(pt.tp, 1);
	CHECK_EQ_INT(pt.fp, 1);
	CHECK_EQ_INT(pt.fn, 1);
	CHECK_EQ_INT(pt.tn, 1);
	CHECK(NEAR(pt.precision, 0.5) && NEAR(pt.recall, 0.5) && NEAR(pt.f1, 0.5));
	/* precision 1 only at 0.9 (recall 0.5) */
	CHECK_EQ_INT(eval_for_precision(s, l, 4, 0.95, &pt), 0);
	CHECK(NEAR(pt.threshold, 0.9) && NEAR(pt.recall, 0.5));
	/* precision >= 2/3 first reached lowest at 0.7 (2 of 3) */
	CHECK_EQ_INT(eval_for_precision(s, l, 4, 0.66, &pt), 0);
	CHECK(NEAR(pt.threshold, 0.7) && NEAR(pt.recall, 1.0));
	/* never reached */
	{
		const double s2[] = { 0.9, 0.1 };
		const int l2[] = { 0, 1 };

		CHECK_EQ_INT(eval_for_precision(s2, l2, 2, 0.9, &pt), -ENOENT);
	}
	eval_best_f1(s, l, 4, &pt);
	CHECK(NEAR(pt.threshold, 0.7) && NEAR(pt.f1, 0.8));
}

static void test_honest(void)
{
	double s[60], p, lo;
	int l[60], i;
	struct eval_point pt;

	/* 0.9: 25 right; 0.8: 10 more right and 5 wrong; 0.1: 20 wrong */
	for (i = 0; i < 60; i++) {
		s[i] = i < 25 ? 0.9 : i < 40 ? 0.8 : 0.1;
		l[i] = i < 35;
	}
	/* the point rule takes 25 of 25 */
	CHECK_EQ_INT(eval_for_precision(s, l, 60, 0.95, &pt), 0);
	CHECK(NEAR(pt.threshold, 0.9));
	/* 25 hits are below the support of 30; 35/40 has bound 0.739 */
	CHECK_EQ_INT(eval_for_precision_ci(s, l, 60, 0.85, 30, 0, &pt), -ENOENT);
	CHECK(NEAR(pt.threshold, 0.8) && pt.tp == 35 && pt.fp == 5);
	CHECK(fabs(pt.prec_low - 0.7395) < 1e-3);
	CHECK_EQ_INT(eval_for_precision_ci(s, l, 60, 0.7, 30, 0, &pt), 0);
	CHECK(NEAR(pt.threshold, 0.8) && NEAR(pt.recall, 1));
	/* with a support of 20 the 25/25 point (bound 0.867) qualifies */
	CHECK_EQ_INT(eval_for_precision_ci(s, l, 60, 0.85, 20, 0, &pt), 0);
	CHECK(NEAR(pt.threshold, 0.9) && pt.tp == 25);
	/* no threshold with 61 hits */
	CHECK_EQ_INT(eval_for_precision_ci(s, l, 60, 0.5, 61, 0, &pt), -ENOENT);
	CHECK(pt.tp + pt.fp == 0 && NEAR(pt.threshold, 1));
	/* at the data's balance (35/60) a prior changes nothing; at a rarer
	 * share the 5 wrong hits weigh more: 35/(35 + 5 w) with w the ratio */
	eval_at(s, l, 60, 0.8, &pt);
	eval_at_prior(&pt, 35.0 / 60, &p, &lo, NULL);
	CHECK(NEAR(p, 35.0 / 40) && NEAR(lo, pt.prec_low));
	eval_at_prior(&pt, 0.2, &p, NULL, NULL);
	CHECK(NEAR(p, 0.2 * 1 / (0.2 * 1 + 0.8 * 5.0 / 25)));
	/* a rarer share can make the target unreachable */
	CHECK_EQ_INT(eval_for_precision_ci(s, l, 60, 0.7, 30, 0.2, &pt), -ENOENT);
}

static void test_files(void)
{
	static const char mrpc[] =
		"\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
		"1\t1\t2\t\"A\" b\tc, \"d\"\r\n0\t3\t4\te\tf\n";
	static const char sts[] =
		"g\tf\t2012\t1\t4.2\tA man runs.\tA man is running.\n"
		"g\tf\t2012\t2\t3.0\tA dog.\tA cat.\n"
		"g\tf\t2012\t3\t1.0\tRain.\tSun.\textra\n";
	char path[] = "/tmp/test_eval_XXXXXX", err[256];
	struct eval_set set;
	FILE *f;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	f = fdopen(fd, "w");
	fwrite(mrpc, 1, sizeof(mrpc) - 1, f);
	fclose(f);
	CHECK_EQ_INT(eval_load(path, EVAL_AUTO, &set, err, sizeof(err)), 0);
	CHECK_EQ_INT(set.n, 2);
	if (set.n == 2) {
		CHECK(strcmp(set.v[0].a, "\"A\" b") == 0);
		CHECK(strcmp(set.v[0].b, "c, \"d\"") == 0);
		CHECK(set.v[0].label == 1 && set.v[1].label == 0);
		CHECK(strcmp(set.v[1].b, "f") == 0 && set.v[1].grade == -1);
	}
	eval_set_release(&set);
	f = fopen(path, "w");
	fwrite(sts, 1, sizeof(sts) - 1, f);
	fclose(f);
	CHECK_EQ_INT(eval_load(path, EVAL_STS, &set, err, sizeof(err)), 0);
	CHECK(set.n == 2 && set.skipped == 1);
	eval_set_release(&set);
	CHECK_EQ_INT(eval_load_flags(path, EVAL_STS, EVAL_KEEP_AMBIGUOUS, &set, err,
				     sizeof(err)), 0);
	CHECK(set.n == 3 && set.skipped == 0);
	if (set.n == 3) {
		CHECK(set.v[0].label == 1 && set.v[1].label == 0 && set.v[2].label == 0);
		CHECK(set.v[1].grade == 3.0f && set.v[0].grade == 4.2f);
		CHECK(strcmp(set.v[2].b, "Sun.") == 0);
	}
	eval_set_release(&set);
	/* a CSV is not an MRPC file */
	f = fopen(path, "w");
	fputs("text_a,text_b,label\na,b,1\n", f);
	fclose(f);
	CHECK_EQ_INT(eval_load(path, EVAL_MRPC, &set, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "expected the header") != NULL);
	unlink(path);
}

static void test_csv(void)
{
	static const char csv[] =
		"text_a,text_b,label\r\n"
		"plain,text,1\r\n"
		"\"with, comma\",\"with \"\"quotes\"\"\",0\n"
		"\"multi\nline\",b,1\n"
		"\n"
		",empty a,0";
	static const char qqp[] =
		"id,question1,question2,is_duplicate\n"
		"7,\"How do I learn Python?\",What is the best way to learn Python?,1\n";
	struct eval_set set;
	char err[256];
	enum eval_format f;

	CHECK_EQ_INT(eval_parse_csv(csv, sizeof(csv) - 1, EVAL_AUTO, &set, err,
				    sizeof(err)), 0);
	CHECK_EQ_INT(set.n, 4);
	if (set.n == 4) {
		CHECK(strcmp(set.v[0].a, "plain") == 0 && strcmp(set.v[0].b, "text") == 0);
		CHECK_EQ_INT(set.v[0].label, 1);
		CHECK(strcmp(set.v[1].a, "with, comma") == 0);
		CHECK(strcmp(set.v[1].b, "with \"quotes\"") == 0);
		CHECK_EQ_INT(set.v[1].label, 0);
		CHECK(strcmp(set.v[2].a, "multi\nline") == 0);
		CHECK(strcmp(set.v[3].a, "") == 0 && strcmp(set.v[3].b, "empty a") == 0);
	}
	eval_set_release(&set);
	CHECK_EQ_INT(eval_parse_csv(qqp, sizeof(qqp) - 1, EVAL_QQP, &set, err,
				    sizeof(err)), 0);
	CHECK_EQ_INT(set.n, 1);
	eval_set_release(&set);
	/* a qqp header is not a csv header when the format says csv */
	CHECK_EQ_INT(eval_parse_csv(qqp, sizeof(qqp) - 1, EVAL_CSV, &set, err,
				    sizeof(err)), -EINVAL);
	CHECK(strstr(err, "text_a,text_b,label") != NULL);
	CHECK_EQ_INT(eval_parse_csv("text_a,text_b,label\na,b,2\n", 26, EVAL_AUTO,
				    &set, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 2: label '2' is not 0 or 1") != NULL);
	CHECK_EQ_INT(eval_parse_csv("text_a,text_b,label\n\"open,b,1\n", 30,
				    EVAL_AUTO, &set, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 2: bad csv quoting") != NULL);
	CHECK_EQ_INT(eval_format_parse("sts", &f), 0);
	CHECK_EQ_INT(f, EVAL_STS);
	CHECK_EQ_INT(eval_format_parse("tsv", &f), -EINVAL);
}

static void test_score(void)
{
	static const char csv[] =
		"text_a,text_b,label\n"
		"hello world,hello world,1\n"
		"hello world,hello world,1\n"
		"hello world,hello world,0\n"
		"?,hello world,0\n";
	struct embedder *e = NULL;
	struct eval_set set;
	double scores[4], us = -1;
	int labels[4], i;
	char err[256];

	CHECK_EQ_INT(embedder_new_spec("builtin", &e, err, sizeof(err)), 0);
	CHECK_EQ_INT(eval_parse_csv(csv, sizeof(csv) - 1, EVAL_CSV, &set, err,
				    sizeof(err)), 0);
	CHECK_EQ_INT(eval_score(e, &set, scores, &us, err, sizeof(err)), 0);
	for (i = 0; i < 4; i++)
		labels[i] = set.v[i].label;
	CHECK(fabs(scores[0] - 1) < 1e-5 && scores[0] == scores[2]);
	CHECK(scores[3] == 0);
	CHECK(us >= 0);
	CHECK(NEAR(eval_auc(scores, labels, 4), 0.75));
	eval_set_release(&set);
	/* the pipeline: equal after textnorm -> 1, below the floor -> 0 */
	{
		static const char p[] =
			"text_a,text_b,label\n"
			"Hello  World,hello world,1\n"
			"?,hello world,0\n"
			"how do I learn python,how can I learn python fast,1\n";
		double cos[3], pipe[3];

		CHECK_EQ_INT(eval_parse_csv(p, sizeof(p) - 1, EVAL_CSV, &set, err,
					    sizeof(err)), 0);
		CHECK_EQ_INT(eval_score(e, &set, cos, NULL, err, sizeof(err)), 0);
		CHECK_EQ_INT(eval_pipeline(e, &set, cos, 0.5, pipe, err,
					   sizeof(err)), 0);
		CHECK(pipe[0] == 1 && pipe[1] == 0 && pipe[2] > 0 && pipe[2] < 1);
		CHECK(cos[2] >= 0.5);
		CHECK_EQ_INT(eval_pipeline(e, &set, cos, 1.0, pipe, err,
					   sizeof(err)), 0);
		CHECK(pipe[0] == 1 && pipe[2] == 0);
		eval_set_release(&set);
	}
	embedder_free(e);
}

int main(void)
{
	test_stats();
	test_honest();
	test_files();
	test_csv();
	test_score();
	return check_done("eval");
}
