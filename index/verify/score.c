/*
 * score.c - the pair features of two sides and the tree ensembles over
 * them (verify.h).
 *
 * Features, all symmetric up to the order rule: the two cosines (slot
 * rules in verify.h), wjacc = 2 * IDF of the keys both sides hold / (IDF
 * of side A + IDF of side B) over distinct content keys and numbers (1
 * when neither has any), the count of numbers on one side only (at most
 * 5), a negation on exactly one side, two different non-empty question
 * word masks, and over the content keys both sides hold (distinct, in A's
 * order of first occurrence, at most 16) the share of pairs whose first
 * occurrences in B are in the other order (and how many, at most 5); then
 * the rest of enum verify_feature (verify.h), each symmetric. Sums of IDF
 * are integers (the quantised table), so features are exact and
 * repeatable.
 *
 * The score is the logistic function of the model's base log-odds plus one
 * leaf of each of its trees (model_data.c): at most VERIFY_TREES *
 * VERIFY_TREE_DEPTH comparisons. It does not pick candidates or
 * thresholds.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "verify_i.h"

/* A text with at least this share of non-ASCII word bytes is mostly
 * unknown tokens to use-lite: its cosine then says nothing. */
#define NONASCII_GUARD 0.3f
#define DISC_MAX 16

const char *const verify_feature_names[VERIFY_NFEAT] = {
	"cos_b", "cos_u", "wjacc", "num_diff", "neg_diff", "wh_diff", "disc",
	"nmin", "nmax", "umax", "umin", "usum_max", "usum_min", "ucnt_max",
	"ucnt_min", "unum", "len_ratio", "wh_same", "first", "last",
	"nonascii", "deixis_max", "deixis_min", "swaps",
};

int verify_cos_slot(const char *embedder_name)
{
	if (!embedder_name)
		return -1;
	if (strcmp(embedder_name, "builtin-v1") == 0)
		return VERIFY_COS_BUILTIN;
	if (strcmp(embedder_name, verify_use_lite_embedder) == 0)
		return VERIFY_COS_USE_LITE;
	return -1;
}

static bool have(const float cos[], int ncos, int slot)
{
	return cos && ncos > slot && isfinite(cos[slot]);
}

enum verify_model verify_model_for(const float cos[], int ncos)
{
	return have(cos, ncos, VERIFY_COS_USE_LITE) ? VERIFY_USE_LITE :
						      VERIFY_LEXICAL;
}

const char *verify_model_name(enum verify_model m)
{
	return (unsigned)m < VERIFY_NMODELS ? verify_models[m].name : NULL;
}

double verify_training_prior(enum verify_model m)
{
	return (unsigned)m < VERIFY_NMODELS ? verify_models[m].prior : -1;
}

/* Sum of idf over the keys both sorted sets hold, and how many. */
static uint32_t common(const uint64_t *a, uint32_t na, const uint64_t *b,
		       uint32_t nb, const uint8_t *idf, uint32_t *count)
{
	uint32_t i = 0, j = 0, sum = 0, c = 0;

	while (i < na && j < nb) {
		if (a[i] == b[j]) {
			sum += idf[a[i] % VERIFY_IDF_BUCKETS];
			c++;
			i++;
			j++;
		} else if (a[i] < b[j]) {
			i++;
		} else {
			j++;
		}
	}
	*count = c;
	return sum;
}

/* Over the keys of sorted set a that sorted set b lacks: the highest idf
 * (returned), their idf sum and count. */
static uint32_t only_in(const uint64_t *a, uint32_t na, const uint64_t *b,
			uint32_t nb, const uint8_t *idf, uint32_t *sum,
			uint32_t *count)
{
	uint32_t i, j = 0, mx = 0, v;

	*sum = *count = 0;
	for (i = 0; i < na; i++) {
		while (j < nb && b[j] < a[i])
			j++;
		if (j < nb && b[j] == a[i])
			continue;
		v = idf[a[i] % VERIFY_IDF_BUCKETS];
		*sum += v;
		(*count)++;
		mx = v > mx ? v : mx;
	}
	return mx;
}

static int first_pos(const struct verify_side *s, uint64_t k)
{
	uint32_t i;

	for (i = 0; i < s->n; i++)
		if (s->key[i] == k)
			return (int)i;
	return -1;
}

/* The share of shared-key pairs in the other order; *swaps their count. */
static double discordance(const struct verify_side *a,
			  const struct verify_side *b, int *swaps)
{
	uint64_t sh[DISC_MAX];
	int pb[DISC_MAX], nsh = 0, tot = 0, dis = 0, i, j, p;
	uint32_t k;

	for (k = 0; k < a->n && nsh < DISC_MAX; k++) {
		bool dup = false;

		for (j = 0; j < nsh; j++)
			dup |= sh[j] == a->key[k];
		if (dup || (p = first_pos(b, a->key[k])) < 0)
			continue;
		sh[nsh] = a->key[k];
		pb[nsh++] = p;
	}
	for (i = 0; i < nsh; i++)
		for (j = i + 1; j < nsh; j++) {
			tot++;
			dis += pb[i] > pb[j];
		}
	*swaps = dis;
	return tot ? (double)dis / tot : 0.0;
}

static double dot(const float *a, const float *b)
{
	double s = 0;
	int i;

	for (i = 0; i < EMBED_BUILTIN_DIM; i++)
		s += (double)a[i] * b[i];
	return s;
}

int verify_features_idf(const struct verify_side *q,
			const struct verify_side *c, const float cos[],
			int ncos, const uint8_t *idf, double f[VERIFY_NFEAT])
{
	enum verify_model m = verify_model_for(cos, ncos);
	uint32_t shared, nk, nn, tot = q->idf_sum + c->idf_sum;
	uint32_t mq, mc, sq, scn, cq, cc, t1, t2;
	int nd, swaps;

	memset(f, 0, VERIFY_NFEAT * sizeof(*f));
	if (q->nu + q->nnum == 0 || c->nu + c->nnum == 0)
		return -ENODATA;
	f[VF_COS_B] = have(cos, ncos, VERIFY_COS_BUILTIN) ?
		cos[VERIFY_COS_BUILTIN] : dot(q->vec, c->vec);
	if (m == VERIFY_USE_LITE)
		f[VF_COS_U] = q->nonascii >= NONASCII_GUARD ||
			      c->nonascii >= NONASCII_GUARD ?
			      f[VF_COS_B] : cos[VERIFY_COS_USE_LITE];
	shared = common(q->ukey, q->nu, c->ukey, c->nu, idf, &nk);
	shared += common(q->num, q->nnum, c->num, c->nnum, idf, &nn);
	f[VF_WJACC] = tot ? 2.0 * shared / tot : 1.0;
	nd = (int)(q->nnum + c->nnum - 2 * nn);
	f[VF_NUM_DIFF] = nd < 5 ? nd : 5;
	f[VF_NEG_DIFF] = (q->neg > 0) != (c->neg > 0);
	f[VF_WH_DIFF] = q->wh && c->wh && q->wh != c->wh;
	f[VF_DISC] = discordance(q, c, &swaps);
	f[VF_SWAPS] = swaps < 5 ? swaps : 5;
	f[VF_NMIN] = q->nu < c->nu ? q->nu : c->nu;
	f[VF_NMAX] = q->nu < c->nu ? c->nu : q->nu;
	mq = only_in(q->ukey, q->nu, c->ukey, c->nu, idf, &sq, &cq);
	mc = only_in(c->ukey, c->nu, q->ukey, q->nu, idf, &scn, &cc);
	f[VF_UMAX] = (double)(mq > mc ? mq : mc) / VERIFY_IDF_SCALE;
	f[VF_UMIN] = (double)(mq > mc ? mc : mq) / VERIFY_IDF_SCALE;
	f[VF_USUM_MAX] = (double)(sq > scn ? sq : scn) / VERIFY_IDF_SCALE;
	f[VF_USUM_MIN] = (double)(sq > scn ? scn : sq) / VERIFY_IDF_SCALE;
	f[VF_UCNT_MAX] = cq > cc ? cq : cc;
	f[VF_UCNT_MIN] = cq > cc ? cc : cq;
	mq = only_in(q->num, q->nnum, c->num, c->nnum, idf, &t1, &t2);
	mc = only_in(c->num, c->nnum, q->num, q->nnum, idf, &t1, &t2);
	f[VF_UNUM] = (double)(mq > mc ? mq : mc) / VERIFY_IDF_SCALE;
	f[VF_LEN_RATIO] = q->bytes < c->bytes ? (double)q->bytes / c->bytes :
			  c->bytes ? (double)c->bytes / q->bytes : 1.0;
	f[VF_WH_SAME] = q->wh == c->wh;
	f[VF_FIRST] = q->n && c->n && q->key[0] == c->key[0];
	f[VF_LAST] = q->n && c->n && q->key[q->n - 1] == c->key[c->n - 1];
	f[VF_NONASCII] = q->nonascii > c->nonascii ? q->nonascii : c->nonascii;
	f[VF_DEIXIS_MAX] = q->deixis || c->deixis;
	f[VF_DEIXIS_MIN] = q->deixis && c->deixis;
	return m;
}

int verify_features(const struct verify_side *q, const struct verify_side *c,
		    const float cos[], int ncos, double f[VERIFY_NFEAT])
{
	return verify_features_idf(q, c, cos, ncos, verify_idf, f);
}

double verify_trees_logit(double base, const struct verify_tree *tree,
			  const double f[VERIFY_NFEAT])
{
	double z = base;
	int t, k;

	for (t = 0; t < VERIFY_TREES; t++) {
		const struct verify_tree *tr = &tree[t];

		for (k = 0; k < VERIFY_TREE_NODES;)   /* feat < VERIFY_NFEAT */
			k = f[tr->feat[k]] < tr->thr[k] ? 2 * k + 1 : 2 * k + 2;
		z += tr->leaf[k - VERIFY_TREE_NODES];
	}
	return z;
}

double verify_logit(enum verify_model m, const double f[VERIFY_NFEAT])
{
	return verify_trees_logit(verify_models[m].base, verify_models[m].tree, f);
}

bool verify_same_words(const struct verify_side *a,
		       const struct verify_side *b)
{
	return a->whash && a->whash == b->whash;
}

double verify_score(const struct verify_side *q, const struct verify_side *c,
		    const float cos[], int ncos)
{
	double f[VERIFY_NFEAT];
	int m;

	if (verify_same_words(q, c))
		return 1;
	if ((m = verify_features(q, c, cos, ncos, f)) < 0)
		return 0;
	return 1.0 / (1.0 + exp(-verify_logit((enum verify_model)m, f)));
}
