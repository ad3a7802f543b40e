/*
 * test_eval.c - unit tests for index/eval.c.
 *
 * Hand-computable statistics (AUC with ties, precision/recall at a
 * threshold, the threshold for a target precision, best F1), the CSV reader
 * (quotes, doubled quotes, newlines in quotes, CRLF, both header styles,
 * errors with line numbers), and scoring with the built-in embedder. The
 * runs on the real data sets are in tests/60-eval.bats.
 */
#include "eval.h"
#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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
	embedder_free(e);
}

int main(void)
{
	test_stats();
	test_csv();
	test_score();
	return check_done("eval");
}
