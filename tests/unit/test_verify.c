/*
 * test_verify.c - unit tests for index/verify/ (the verifier).
 *
 * Features of hand-computable pairs, read with a flat IDF table (every key
 * weighs the same, so the weighted overlap is a plain count ratio):
 * numbers that differ, "5,000" == "5000", a negation on one side, other
 * question words, swapped word order, Chinese text (use-lite's cosine is
 * replaced by the builtin one), empty and stop-word-only texts; the cosine
 * slots; the shipped model's score range and symmetry; the Wilson interval
 * and the prior reweighting; the calibration's support rule, its per-set
 * rule and -ERANGE, on hand-made counts and on the shipped model.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "verify_i.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

static uint8_t flat[VERIFY_IDF_BUCKETS];

/* Features of (a, b) with the flat table; returns verify_features_idf's. */
static int feats(const char *a, const char *b, const float *cos, int ncos,
		 double f[VERIFY_NFEAT])
{
	struct verify_side x, y;
	int r;

	CHECK_EQ_INT(verify_side_init_idf(&x, a, strlen(a), flat), 0);
	CHECK_EQ_INT(verify_side_init_idf(&y, b, strlen(b), flat), 0);
	r = verify_features_idf(&x, &y, cos, ncos, flat, f);
	verify_side_release(&x);
	verify_side_release(&y);
	return r;
}

static void test_sides(void)
{
	struct verify_side s;
	static const char t[] = "Don't buy 5,000 shares of IBM in 2024, "
				"or 3.5 of Apple's? Why not!";

	CHECK_EQ_INT(verify_side_init_idf(&s, t, strlen(t), flat), 0);
	/* content: buy share ibm apple (stop: of in or) */
	CHECK_EQ_INT(s.n, 4);
	CHECK_EQ_INT(s.nu, 4);
	/* numbers 5000 2024 3.5 */
	CHECK_EQ_INT(s.nnum, 3);
	/* dont, not */
	CHECK_EQ_INT(s.neg, 2);
	CHECK_EQ_INT(s.wh, 1u << 2);    /* why */
	CHECK_EQ_INT(s.idf_sum, 7u * flat[0]);
	CHECK(s.nonascii == 0);
	verify_side_release(&s);
	/* release twice is harmless */
	verify_side_release(&s);
	CHECK(s.key == NULL && s.n == 0);
	/* no words: nothing allocated, a zero vector */
	CHECK_EQ_INT(verify_side_init(&s, "?!", 2), 0);
	CHECK(s.key == NULL && s.nu == 0 && s.nnum == 0 && s.vec[0] == 0);
	verify_side_release(&s);
	/* binary bytes and a long text: words past the limit are not read */
	{
		static char big[8 * VERIFY_MAX_WORDS * 4];
		size_t i;

		for (i = 0; i + 4 <= sizeof(big); i += 4)
			memcpy(big + i, i / 4 % 2 ? "ab " : "\xff\x01 ", 4);
		CHECK_EQ_INT(verify_side_init(&s, big, sizeof(big)), 0);
		CHECK(s.n <= VERIFY_MAX_WORDS && s.nu == 2);
		CHECK(s.whash == 0);    /* words left unread: never the same */
		verify_side_release(&s);
	}
}

static void test_pairs(void)
{
	double f[VERIFY_NFEAT];
	const float none[VERIFY_NCOS] = { NAN, NAN };
	const float use1[VERIFY_NCOS] = { NAN, 1.0f };
	const float given[VERIFY_NCOS] = { 0.25f, 0.5f };

	/* numbers differ: {rs} shared, {5000} / {4000}: 2 of 4 keys */
	CHECK_EQ_INT(feats("I have Rs. 5000", "I have Rs. 4000", none, 0, f),
		     VERIFY_LEXICAL);
	CHECK(NEAR(f[VF_NUM_DIFF], 2) && NEAR(f[VF_WJACC], 0.5));
	CHECK(f[VF_NEG_DIFF] == 0 && f[VF_WH_DIFF] == 0);
	/* "5,000" is "5000" */
	feats("It costs 5,000 dollars", "it costs 5000 dollars", none, 0, f);
	CHECK(NEAR(f[VF_NUM_DIFF], 0) && NEAR(f[VF_WJACC], 1));
	/* at most 5 */
	feats("1 2 3 4", "5 6 7 8", none, 0, f);
	CHECK(NEAR(f[VF_NUM_DIFF], 5));
	/* a negation on one side; the words are the same */
	feats("Is it safe to swim after eating?",
	      "Is it not safe to swim after eating?", none, 0, f);
	CHECK(f[VF_NEG_DIFF] == 1 && NEAR(f[VF_WJACC], 1));
	feats("Why don't cats swim?", "Why do cats never swim?", none, 0, f);
	CHECK(f[VF_NEG_DIFF] == 0);
	/* other question words; none on one side is not a difference */
	feats("What is Python?", "Why is Python?", none, 0, f);
	CHECK(f[VF_WH_DIFF] == 1);
	feats("What is Python?", "Python?", none, 0, f);
	CHECK(f[VF_WH_DIFF] == 0);
	/* order: convert ethanol ethanoic acid -> B positions 0 3 1 2:
	 * 2 of 6 pairs inverted */
	feats("How to convert ethanol to ethanoic acid?",
	      "How to convert ethanoic acid to ethanol?", none, 0, f);
	CHECK(NEAR(f[VF_DISC], 2.0 / 6) && NEAR(f[VF_WJACC], 1));
	feats("drive from Texas to California", "drive from Texas to California",
	      none, 0, f);
	CHECK(f[VF_DISC] == 0);
	/* nothing to compare: empty, or only stop and question words */
	CHECK_EQ_INT(feats("", "hello world", none, 0, f), -ENODATA);
	CHECK(f[VF_COS_B] == 0 && f[VF_WJACC] == 0);
	CHECK_EQ_INT(feats("what is it?", "what is it?", none, 0, f), -ENODATA);
	/* cosine slots: given values are used, NAN or missing computed */
	CHECK_EQ_INT(feats("learn python", "learn python fast", given, 2, f),
		     VERIFY_USE_LITE);
	CHECK(NEAR(f[VF_COS_B], 0.25) && NEAR(f[VF_COS_U], 0.5));
	CHECK_EQ_INT(feats("learn python", "learn python fast", given, 1, f),
		     VERIFY_LEXICAL);
	CHECK(NEAR(f[VF_COS_B], 0.25) && f[VF_COS_U] == 0);
	feats("learn python", "learn python", none, VERIFY_NCOS, f);
	CHECK(fabs(f[VF_COS_B] - 1) < 1e-5);
	/* two different Chinese questions: one unknown-token text each for
	 * use-lite, whose cosine 1 is replaced by the builtin one */
	CHECK_EQ_INT(feats("\xe4\xbb\x80\xe4\xb9\x88\xe6\x98\xaf\xe7\x88\xb1",
			   "\xe5\xa6\x82\xe4\xbd\x95\xe5\xad\xa6\xe4\xb9\xa0",
			   use1, 2, f), VERIFY_USE_LITE);
	CHECK(f[VF_COS_U] == f[VF_COS_B] && f[VF_COS_B] < 0.5);
	CHECK(NEAR(f[VF_WJACC], 0));
	/* mostly ASCII keeps the use-lite cosine */
	feats("learn python", "learn python", use1, 2, f);
	CHECK(NEAR(f[VF_COS_U], 1));
	CHECK(f[VF_NONASCII] == 0);
}

/* The features of the tree models: words on one side only, lengths,
 * first and last words, question words, deixis, swaps (flat IDF 20 = 1.0
 * per key). */
static void test_more_pairs(void)
{
	double f[VERIFY_NFEAT];
	const float none[VERIFY_NCOS] = { NAN, NAN };
	struct verify_side s;

	/* {learn python} / {learn python fast}: "fast" on one side only */
	feats("learn python", "learn python fast", none, 0, f);
	CHECK(NEAR(f[VF_NMIN], 2) && NEAR(f[VF_NMAX], 3));
	CHECK(NEAR(f[VF_UMAX], 1) && NEAR(f[VF_UMIN], 0));
	CHECK(NEAR(f[VF_USUM_MAX], 1) && NEAR(f[VF_USUM_MIN], 0));
	CHECK(NEAR(f[VF_UCNT_MAX], 1) && NEAR(f[VF_UCNT_MIN], 0));
	CHECK(NEAR(f[VF_LEN_RATIO], 12.0 / 17));
	CHECK(f[VF_FIRST] == 1 && f[VF_LAST] == 0 && f[VF_UNUM] == 0);
	/* a word each side lacks: both sides have one */
	feats("learn java well", "learn python well", none, 0, f);
	CHECK(NEAR(f[VF_UMIN], 1) && NEAR(f[VF_UCNT_MIN], 1));
	CHECK(f[VF_FIRST] == 1 && f[VF_LAST] == 1);
	/* numbers on one side only */
	feats("I have Rs. 5000", "I have Rs. 4000", none, 0, f);
	CHECK(NEAR(f[VF_UNUM], 1) && NEAR(f[VF_UMAX], 0));
	/* the same question words, none on both, or different ones */
	feats("What is Python?", "what is python", none, 0, f);
	CHECK(f[VF_WH_SAME] == 1 && NEAR(f[VF_LEN_RATIO], 14.0 / 15));
	feats("Python?", "python", none, 0, f);
	CHECK(f[VF_WH_SAME] == 1);
	feats("What is Python?", "Why is Python?", none, 0, f);
	CHECK(f[VF_WH_SAME] == 0);
	/* a question about "this photo" needs what came with it */
	CHECK_EQ_INT(verify_side_init_idf(&s, "Is THIS photo real? See below.", 30,
					  flat), 0);
	CHECK_EQ_INT(s.deixis, 2);
	CHECK_EQ_INT(s.nu, 3);      /* photo real see ("this", "below": stop words) */
	CHECK_EQ_INT(s.bytes, 30);
	verify_side_release(&s);
	feats("What is this photo?", "What is the photo?", none, 0, f);
	CHECK(f[VF_DEIXIS_MAX] == 1 && f[VF_DEIXIS_MIN] == 0);
	feats("What is this photo?", "What are these photos?", none, 0, f);
	CHECK(f[VF_DEIXIS_MAX] == 1 && f[VF_DEIXIS_MIN] == 1);
	feats("What is a photo?", "What are photos?", none, 0, f);
	CHECK(f[VF_DEIXIS_MAX] == 0);
	/* swapped pairs counted: 2 of 6 (the share is VF_DISC) */
	feats("How to convert ethanol to ethanoic acid?",
	      "How to convert ethanoic acid to ethanol?", none, 0, f);
	CHECK(NEAR(f[VF_SWAPS], 2));
	feats("alpha beta gamma delta epsilon zeta theta",
	      "theta zeta epsilon delta gamma beta alpha", none, 0, f);
	CHECK(NEAR(f[VF_SWAPS], 5) && NEAR(f[VF_DISC], 1));
	/* Chinese on one side */
	feats("\xe4\xbb\x80\xe4\xb9\x88", "python", none, 0, f);
	CHECK(f[VF_NONASCII] == 1);
}

static void test_slots(void)
{
	const float cu[VERIFY_NCOS] = { NAN, 0.9f };

	CHECK_EQ_INT(verify_cos_slot("builtin-v1"), VERIFY_COS_BUILTIN);
	CHECK_EQ_INT(verify_cos_slot("model2vec-64-0123456789abcdef"), -1);
	CHECK_EQ_INT(verify_cos_slot(NULL), -1);
	CHECK_EQ_INT(verify_cos_slot("use-lite-512-not-the-trained-model"), -1);
	if (verify_use_lite_embedder[0])
		CHECK_EQ_INT(verify_cos_slot(verify_use_lite_embedder),
			     VERIFY_COS_USE_LITE);
	CHECK_EQ_INT(verify_model_for(cu, 2), VERIFY_USE_LITE);
	CHECK_EQ_INT(verify_model_for(cu, 1), VERIFY_LEXICAL);
	CHECK_EQ_INT(verify_model_for(NULL, 2), VERIFY_LEXICAL);
	CHECK(verify_model_name(VERIFY_NMODELS) == NULL);
	CHECK(verify_training_prior(VERIFY_NMODELS) == -1);
}

static double score(const char *a, const char *b)
{
	struct verify_side x, y;
	double s;

	verify_side_init(&x, a, strlen(a));
	verify_side_init(&y, b, strlen(b));
	s = verify_score(&x, &y, NULL, 0);
	verify_side_release(&x);
	verify_side_release(&y);
	return s;
}

static void test_shipped_score(void)
{
	double same = score("How do I learn Python quickly?",
			    "How can I learn Python quickly?");
	double other = score("How do I learn Python quickly?",
			     "What is the capital of France?");

	CHECK(same > 0 && same < 1 && other >= 0 && other < 1);
	if (strcmp(verify_models[VERIFY_LEXICAL].name, "bootstrap"))
		CHECK(same > other);
	/* the same words in the same order: the question asked again */
	CHECK(score("What is love?", "what is LOVE") == 1);
	CHECK(score("How old is he?", "how old is he") == 1);
	CHECK(score("How old is he?", "How old was he?") < 1);
	CHECK(score("How old is he?", "How is he old?") < 1);
	CHECK(score("", "anything") == 0);
	CHECK(score("what is it?", "What is it") == 1);
	CHECK(score("what is it?", "what was it?") == 0);
	CHECK(NEAR(score("Rs 5000 loan", "a loan of Rs 4000"),
		   score("Rs 5000 loan", "a loan of Rs 4000")));
}

static void test_wilson(void)
{
	double lo, hi, p;

	verify_wilson(0.5, 100, &lo, &hi);
	CHECK(fabs(lo - 0.4038) < 1e-4 && fabs(hi - 0.5962) < 1e-4);
	verify_wilson(1.0, 30, &lo, &hi);
	CHECK(fabs(lo - 0.8865) < 1e-4 && hi > 1 - 1e-12);
	verify_wilson(0.7, 0, &lo, &hi);
	CHECK(lo == 0 && hi == 1);
	/* at the data's own balance the prior changes nothing */
	verify_precision_at_prior(45, 5, 100, 100, 0.5, &p, &lo, NULL);
	CHECK(NEAR(p, 0.9));
	verify_wilson(0.9, 50, &hi, NULL);
	CHECK(NEAR(lo, hi));
	/* duplicates four times rarer: 45/(45 + 4*5) */
	verify_precision_at_prior(45, 5, 100, 100, 0.2, &p, NULL, NULL);
	CHECK(NEAR(p, 45.0 / 65));
	/* out of (0, 1): the data's balance */
	verify_precision_at_prior(45, 5, 100, 100, -1, &p, NULL, NULL);
	CHECK(NEAR(p, 0.9));
}

/* One set: from threshold 0: 100/100; from 0.5: 38 of 40 right; from
 * 0.75: 25 of 25 right; nothing at 1. */
static void fill(struct verify_calib_set *c, int tp_hi, int fp_hi)
{
	int k;

	memset(c, 0, sizeof(*c));
	c->name = "t";
	c->pos = 100;
	c->neg = 100;
	for (k = 0; k < VERIFY_CAL_STEPS; k++) {
		c->tp[k] = k < 200 ? 100 : k < 300 ? 38 : (uint16_t)tp_hi;
		c->fp[k] = k < 200 ? 100 : k < 300 ? 2 : (uint16_t)fp_hi;
	}
}

/* A tree walks to one leaf: f[feat] < thr goes left; a node that was not
 * split sends everything left; the trees' leaves add to the base. */
static void test_trees(void)
{
	static struct verify_tree t[VERIFY_TREES];
	double f[VERIFY_NFEAT] = { 0 };
	int k;

	/* tree 0: wjacc < 0.5 ends at node 7 (leaf 0), else at node 11 */
	t[0].feat[0] = VF_WJACC;
	t[0].thr[0] = 0.5;
	for (k = 1; k < VERIFY_TREE_NODES; k++)
		t[0].thr[k] = VERIFY_NO_SPLIT;
	t[0].leaf[0] = -1;
	t[0].leaf[4] = 2;
	/* tree 1: no number differs: node 7; else a negation: node 13; else
	 * other question words: node 12, or not: node 11 */
	t[1].feat[0] = VF_NUM_DIFF;
	t[1].thr[0] = 0.5;
	t[1].feat[2] = VF_NEG_DIFF;
	t[1].thr[2] = 0.5;
	t[1].feat[5] = VF_WH_DIFF;
	t[1].thr[5] = 0.5;
	t[1].thr[1] = t[1].thr[3] = t[1].thr[4] = VERIFY_NO_SPLIT;
	t[1].thr[6] = VERIFY_NO_SPLIT;
	t[1].leaf[0] = 0.25;
	t[1].leaf[4] = -4;
	t[1].leaf[5] = -8;
	t[1].leaf[6] = -16;
	f[VF_WJACC] = 0.2;
	CHECK(NEAR(verify_trees_logit(0.5, t, f), 0.5 - 1 + 0.25));
	f[VF_WJACC] = 0.5;
	CHECK(NEAR(verify_trees_logit(0.5, t, f), 0.5 + 2 + 0.25));
	f[VF_NUM_DIFF] = 1;
	CHECK(NEAR(verify_trees_logit(0.5, t, f), 0.5 + 2 - 4));
	f[VF_WH_DIFF] = 1;
	CHECK(NEAR(verify_trees_logit(0.5, t, f), 0.5 + 2 - 8));
	f[VF_NEG_DIFF] = 1;
	CHECK(NEAR(verify_trees_logit(0.5, t, f), 0.5 + 2 - 16));
	/* the shipped trees name only features there are (the walk does not
	 * check) and have finite thresholds and leaves */
	for (int m = 0; m < VERIFY_NMODELS; m++)
		for (int i = 0; i < VERIFY_TREES; i++) {
			const struct verify_tree *tr = &verify_models[m].tree[i];

			for (k = 0; k < VERIFY_TREE_NODES; k++)
				CHECK(tr->feat[k] < VERIFY_NFEAT && isfinite(tr->thr[k]));
			for (k = 0; k < VERIFY_TREE_LEAVES; k++)
				CHECK(isfinite(tr->leaf[k]));
		}
}

static void test_calibration(void)
{
	static struct verify_model_data d;
	double thr, low;
	int sup, s;

	memset(&d, 0, sizeof(d));
	d.prior = 0.5;
	for (s = 0; s < VERIFY_CAL_SETS; s++)
		fill(&d.cal[s], 25, 0);
	/* 38/40: Wilson lower bound 0.835 */
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.8, 0, &thr, &low, &sup), 0);
	CHECK(NEAR(thr, 0.5) && sup == 40 && fabs(low - 0.8352) < 1e-3);
	/* 25/25 has a lower bound of 0.867 but only 25 hits: not enough */
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.85, 0, &thr, &low, &sup),
		     -ERANGE);
	CHECK(NEAR(thr, 0.5) && sup == 40 && low < 0.85);
	/* with 30 of 30 the support is there (lower bound 0.886) */
	for (s = 0; s < VERIFY_CAL_SETS; s++)
		fill(&d.cal[s], 30, 0);
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.85, 0, &thr, &low, &sup), 0);
	CHECK(NEAR(thr, 0.75) && sup == 30 && low >= 0.85);
	/* one set where the top is wrong blocks every set */
	fill(&d.cal[1], 15, 15);
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.85, 0, &thr, &low, &sup),
		     -ERANGE);
	/* a rarer share of duplicates lowers precision: 0.8 is out of reach */
	for (s = 0; s < VERIFY_CAL_SETS; s++)
		fill(&d.cal[s], 25, 0);
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.8, 0.1, &thr, &low, &sup),
		     -ERANGE);
	/* bad arguments */
	CHECK_EQ_INT(verify_operating_point_of(&d, 0, 0, NULL, NULL, NULL), -EINVAL);
	CHECK_EQ_INT(verify_operating_point_of(&d, 1.5, 0, NULL, NULL, NULL), -EINVAL);
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.8, 1, NULL, NULL, NULL), -EINVAL);
	CHECK_EQ_INT(verify_operating_point_of(&d, 0.8, NAN, NULL, NULL, NULL), -EINVAL);
	CHECK_EQ_INT(verify_operating_point(VERIFY_NMODELS, 0.8, 0, NULL, NULL, NULL),
		     -EINVAL);
	/* the shipped models never promise 0.999 */
	for (s = 0; s < VERIFY_NMODELS; s++)
		CHECK_EQ_INT(verify_operating_point((enum verify_model)s, 0.999, 0,
						    &thr, &low, &sup), -ERANGE);
}

static void test_shipped_calibration(void)
{
	double thr, low;
	int sup;

	if (!strcmp(verify_models[VERIFY_LEXICAL].name, "bootstrap"))
		return;
	/* a modest target is reachable, with support on every set */
	CHECK_EQ_INT(verify_operating_point(VERIFY_LEXICAL, 0.6, 0, &thr, &low,
					    &sup), 0);
	CHECK(thr > 0 && thr < 1 && low >= 0.6 && sup >= VERIFY_MIN_SUPPORT);
}

int main(void)
{
	memset(flat, 20, sizeof(flat));
	test_sides();
	test_pairs();
	test_more_pairs();
	test_trees();
	test_slots();
	test_shipped_score();
	test_wilson();
	test_calibration();
	test_shipped_calibration();
	return check_done("verify");
}
