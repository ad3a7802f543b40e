/*
 * train_fit.c - the trainer's models: features of every pair, gradient-
 * boosted trees, the calibration counts, the quality report and the
 * feature dump.
 *
 * Fit (Newton boosting of the log-loss, as in XGBoost): each feature's
 * training values are cut into at most BINS bins at midpoints between
 * distinct values (at quantiles when there are more); the base log-odds is
 * the training share of duplicates; each of VERIFY_TREES trees is grown
 * level by level to VERIFY_TREE_DEPTH, a node split where the gain
 * GL^2/(HL+L2) + GR^2/(HR+L2) - G^2/(H+L2) of the gradients G and
 * Hessians H of its rows is largest, with at least MIN_LEAF rows on each
 * side (a node without such a split sends everything left); a leaf holds
 * -RATE * G / (H + L2). Every pair weighs the same (the sets in their
 * natural mix). The lexical model never splits on the use-lite cosine.
 * Pairs with nothing to compare (verify_features() -ENODATA) are left out:
 * they score 0. Sums run in row order, ties go to the first feature and
 * bin: the same rows give the same trees.
 *
 * The report prints markdown rows per set and split: ROC-AUC, recall at
 * precision 0.90 and 0.95 both at the oracle point (the most recall whose
 * precision reaches it, with the Wilson bound and the hits) and by the
 * honest rule (at least 30 hits and a Wilson lower bound at the target).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "train_i.h"
#include "use_lite.h"

#define BINS 64
#define RATE 0.05
#define L2 1.0
#define MIN_LEAF 40

static const char *const model_names[VERIFY_NMODELS] = {
	"verify-lexical-v2", "verify-use-lite-v2",
};

static bool uses(enum verify_model m, int f)
{
	return f != VF_COS_U || m == VERIFY_USE_LITE;
}

/* Features of pair p for model m; -ENODATA when there is nothing to
 * compare. */
static int features(const struct tdata *d, const struct tpair *p,
		    enum verify_model m, double f[VERIFY_NFEAT])
{
	float cos[VERIFY_NCOS] = { NAN, NAN };

	if (m == VERIFY_USE_LITE) {
		const float *a = d->use + (size_t)p->a * USE_LITE_DIM;
		const float *b = d->use + (size_t)p->b * USE_LITE_DIM;
		double s = 0;
		int i;

		for (i = 0; i < USE_LITE_DIM; i++)
			s += (double)a[i] * b[i];
		cos[VERIFY_COS_USE_LITE] = (float)s;
	}
	return verify_features_idf(&d->side[p->a], &d->side[p->b], cos,
				   VERIFY_NCOS, d->idf, f);
}

/* verify_score() of pair p, whose features (for t) are f and ok. */
static double model_score(const struct tdata *d, const struct tpair *p,
			  const struct tmodel *t, const double *f, int ok)
{
	if (verify_same_words(&d->side[p->a], &d->side[p->b]))
		return 1;
	if (ok < 0)
		return 0;
	return 1.0 / (1.0 + exp(-verify_trees_logit(t->base, t->tree, f)));
}

struct rows {
	double *x;              /* n * VERIFY_NFEAT raw features */
	uint8_t *bin;           /* n * VERIFY_NFEAT bin numbers */
	double *y, *score, *g, *h;
	uint8_t *node;          /* the node a row is at in the current tree */
	size_t n;
	double cut[VERIFY_NFEAT][BINS - 1];  /* bin b holds cut[b-1] <= v < cut[b] */
	int ncut[VERIFY_NFEAT];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The cuts of feature j from its sorted values v[0..n). */
static void make_cuts(struct rows *r, int j, const double *v, size_t n)
{
	size_t distinct = 0, i, q;
	int c = 0;

	for (i = 0; i < n; i++)
		distinct += !i || v[i] != v[i - 1];
	for (i = 1; i < n && distinct <= BINS; i++)
		if (v[i] != v[i - 1])
			r->cut[j][c++] = (v[i] + v[i - 1]) / 2;
	for (q = 1; distinct > BINS && q < BINS; q++) {
		size_t k = q * n / BINS;
		double mid;

		while (k > 0 && v[k] == v[k - 1])   /* the first of its value */
			k--;
		if (k == 0)
			continue;
		mid = (v[k] + v[k - 1]) / 2;
		if (!c || mid > r->cut[j][c - 1])
			r->cut[j][c++] = mid;
	}
	r->ncut[j] = c;
}

static uint8_t bin_of(const struct rows *r, int j, double v)
{
	int lo = 0, hi = r->ncut[j];    /* the number of cuts <= v */

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (r->cut[j][mid] <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (uint8_t)lo;
}

struct hist {
	double g[VERIFY_NFEAT][BINS], h[VERIFY_NFEAT][BINS];
	uint32_t n[VERIFY_NFEAT][BINS];
};

/* Grow one tree on the rows' g and h into tr; each row's node ends at its
 * leaf (as a node number). */
static int grow(struct rows *r, enum verify_model m, struct verify_tree *tr)
{
	int level, first, nn, k, j, b;
	struct hist *hs = calloc((size_t)1 << (VERIFY_TREE_DEPTH - 1),
				 sizeof(*hs));
	double lg[VERIFY_TREE_LEAVES] = { 0 }, lh[VERIFY_TREE_LEAVES] = { 0 };
	size_t i;

	if (!hs)
		return -ENOMEM;
	memset(r->node, 0, r->n);
	for (level = 0, first = 0; level < VERIFY_TREE_DEPTH; level++) {
		nn = 1 << level;
		memset(hs, 0, (size_t)nn * sizeof(*hs));
		for (i = 0; i < r->n; i++) {
			struct hist *hk = &hs[r->node[i] - first];
			const uint8_t *bi = r->bin + i * VERIFY_NFEAT;

			for (j = 0; j < VERIFY_NFEAT; j++) {
				hk->g[j][bi[j]] += r->g[i];
				hk->h[j][bi[j]] += r->h[i];
				hk->n[j][bi[j]]++;
			}
		}
		for (k = 0; k < nn; k++) {
			const struct hist *hk = &hs[k];
			double G = 0, H = 0, best = 1e-9;
			uint32_t N = 0;
			int bf = -1, bb = 0;

			for (b = 0; b < BINS; b++) {
				G += hk->g[0][b];
				H += hk->h[0][b];
				N += hk->n[0][b];
			}
			for (j = 0; j < VERIFY_NFEAT; j++) {
				double gl = 0, hl = 0, gain;
				uint32_t nl = 0;

				if (!uses(m, j))
					continue;
				for (b = 0; b < r->ncut[j]; b++) {
					gl += hk->g[j][b];
					hl += hk->h[j][b];
					nl += hk->n[j][b];
					if (nl < MIN_LEAF || N - nl < MIN_LEAF)
						continue;
					gain = gl * gl / (hl + L2) +
					       (G - gl) * (G - gl) / (H - hl + L2) -
					       G * G / (H + L2);
					if (gain > best) {
						best = gain;
						bf = j;
						bb = b;
					}
				}
			}
			tr->feat[first + k] = (uint8_t)(bf < 0 ? 0 : bf);
			tr->thr[first + k] = bf < 0 ? VERIFY_NO_SPLIT : r->cut[bf][bb];
		}
		for (i = 0; i < r->n; i++) {
			int at = r->node[i];

			r->node[i] = (uint8_t)(r->x[i * VERIFY_NFEAT + tr->feat[at]] <
					       tr->thr[at] ? 2 * at + 1 : 2 * at + 2);
		}
		first += nn;
	}
	for (i = 0; i < r->n; i++) {
		lg[r->node[i] - VERIFY_TREE_NODES] += r->g[i];
		lh[r->node[i] - VERIFY_TREE_NODES] += r->h[i];
	}
	for (k = 0; k < VERIFY_TREE_LEAVES; k++)
		tr->leaf[k] = -RATE * lg[k] / (lh[k] + L2);
	free(hs);
	return 0;
}

static void calibrate(const struct tdata *d, struct tmodel *t)
{
	double f[VERIFY_NFEAT];
	size_t k;
	int s, q, ok;

	memset(t->cal, 0, sizeof(t->cal));
	for (s = 0; s < VERIFY_CAL_SETS; s++)
		t->cal[s].name = tset_names[s];
	for (k = 0; k < d->npair; k++) {
		const struct tpair *p = &d->pair[k];
		struct verify_calib_set *c;
		double sc;

		if (p->set >= VERIFY_CAL_SETS || p->split != SP_VAL)
			continue;
		c = &t->cal[p->set];
		ok = features(d, p, t->id, f);
		sc = model_score(d, p, t, f, ok);
		p->label ? c->pos++ : c->neg++;
		for (q = 0; q <= VERIFY_CAL_STEPS; q++) {
			if (!(sc >= (double)q / VERIFY_CAL_STEPS))
				break;
			p->label ? c->tp[q]++ : c->fp[q]++;
		}
	}
}

static void rows_free(struct rows *r)
{
	free(r->x);
	free(r->bin);
	free(r->y);
	free(r->score);
	free(r->g);
	free(r->h);
	free(r->node);
	free(r);
}

int train_fit(const struct tdata *d, enum verify_model id, unsigned mask,
	      struct tmodel *t)
{
	struct rows *r = calloc(1, sizeof(*r));
	size_t m = d->npair ? d->npair : 1, k, n = 0;
	double f[VERIFY_NFEAT], *col = NULL, sy = 0;
	int j, tr, ret = -ENOMEM;

	memset(t, 0, sizeof(*t));
	t->id = id;
	t->name = model_names[id];
	if (!r)
		return -ENOMEM;
	r->x = malloc(m * VERIFY_NFEAT * sizeof(*r->x));
	r->bin = malloc(m * VERIFY_NFEAT);
	r->y = malloc(m * sizeof(*r->y));
	r->score = malloc(m * sizeof(*r->score));
	r->g = malloc(m * sizeof(*r->g));
	r->h = malloc(m * sizeof(*r->h));
	r->node = malloc(m);
	col = malloc(m * sizeof(*col));
	if (!r->x || !r->bin || !r->y || !r->score || !r->g || !r->h ||
	    !r->node || !col)
		goto out;
	for (k = 0; k < d->npair; k++) {
		const struct tpair *p = &d->pair[k];

		if (!(mask & (1u << p->set)) || p->split != SP_TRAIN ||
		    features(d, p, id, f) < 0)
			continue;
		memcpy(r->x + n * VERIFY_NFEAT, f, sizeof(f));
		r->y[n] = p->label;
		sy += p->label;
		n++;
	}
	r->n = t->ntrain = n;
	ret = -EDOM;
	if (!n || sy == 0 || sy == (double)n)
		goto out;
	for (j = 0; j < VERIFY_NFEAT; j++) {
		for (k = 0; k < n; k++)
			col[k] = r->x[k * VERIFY_NFEAT + j];
		qsort(col, n, sizeof(*col), cmp_double);
		make_cuts(r, j, col, n);
		for (k = 0; k < n; k++)
			r->bin[k * VERIFY_NFEAT + j] =
				bin_of(r, j, r->x[k * VERIFY_NFEAT + j]);
	}
	t->prior = sy / (double)n;
	t->base = log(t->prior / (1 - t->prior));
	for (k = 0; k < n; k++)
		r->score[k] = t->base;
	for (tr = 0; tr < VERIFY_TREES; tr++) {
		for (k = 0; k < n; k++) {
			double p = 1.0 / (1.0 + exp(-r->score[k]));

			r->g[k] = p - r->y[k];
			r->h[k] = p * (1 - p);
		}
		if ((ret = grow(r, id, &t->tree[tr])))
			goto out;
		for (k = 0; k < n; k++)
			r->score[k] += t->tree[tr].leaf[r->node[k] -
							VERIFY_TREE_NODES];
	}
	calibrate(d, t);
	ret = 0;
out:
	free(col);
	rows_free(r);
	return ret;
}

/* ---- report ---------------------------------------------------------- */

enum { SIG_BUILTIN, SIG_USE, SIG_MODEL0 };

/* Scores of signal sig on the pairs of set and split (-1: all), without
 * STS's middle scores when proj (semcachefs-eval's convention). */
static size_t collect(const struct tdata *d, const struct tmodel *models,
		      int sig, int set, int split, bool proj, double *sc,
		      int *lab)
{
	double f[VERIFY_NFEAT];
	size_t k, n = 0;

	for (k = 0; k < d->npair; k++) {
		const struct tpair *p = &d->pair[k];
		int ok;

		if (p->set != set || (split >= 0 && p->split != split))
			continue;
		if (proj && p->grade > 2 && p->grade < 4)
			continue;
		if (sig == SIG_BUILTIN) {
			const float *a = d->side[p->a].vec, *b = d->side[p->b].vec;
			int i;

			sc[n] = 0;
			for (i = 0; i < EMBED_BUILTIN_DIM; i++)
				sc[n] += (double)a[i] * b[i];
		} else if (sig == SIG_USE) {
			features(d, p, VERIFY_USE_LITE, f);
			sc[n] = f[VF_COS_U];
		} else {
			const struct tmodel *t = &models[sig - SIG_MODEL0];

			ok = features(d, p, t->id, f);
			sc[n] = model_score(d, p, t, f, ok);
		}
		lab[n++] = p->label;
	}
	return n;
}

static void recall_cols(const double *sc, const int *lab, size_t n, double P,
			FILE *f)
{
	struct eval_point pt;

	if (eval_for_precision(sc, lab, n, P, &pt) == 0 && pt.tp)
		fprintf(f, " %.3f (P %.3f [%.3f], %zu) |", pt.recall, pt.precision,
			pt.prec_low, pt.tp + pt.fp);
	else
		fprintf(f, " none |");
	if (eval_for_precision_ci(sc, lab, n, P, 30, 0, &pt) == 0)
		fprintf(f, " %.3f (%zu) |", pt.recall, pt.tp + pt.fp);
	else
		fprintf(f, " none |");
}

static void row(const struct tdata *d, const struct tmodel *models,
		int nmodels, int set, int split, bool proj, FILE *f)
{
	static const char *const sig_names[] = { "builtin cosine", "use-lite cosine" };
	double *sc = malloc((d->npair ? d->npair : 1) * sizeof(*sc));
	int *lab = malloc((d->npair ? d->npair : 1) * sizeof(*lab)), sig;
	size_t n, i, pos;

	for (sig = 0; sc && lab && sig < SIG_MODEL0 + nmodels; sig++) {
		if (sig == SIG_USE && !d->use)
			continue;
		n = collect(d, models, sig, set, split, proj, sc, lab);
		for (i = 0, pos = 0; i < n; i++)
			pos += (size_t)lab[i];
		fprintf(f, "| %s%s | %s | %zu (%.2f) | %s | %.3f |", tset_names[set],
			proj ? "(proj)" : "", split >= 0 ? tsplit_names[split] : "all",
			n, n ? (double)pos / n : 0,
			sig < SIG_MODEL0 ? sig_names[sig] : models[sig - SIG_MODEL0].name,
			eval_auc(sc, lab, n));
		recall_cols(sc, lab, n, 0.90, f);
		recall_cols(sc, lab, n, 0.95, f);
		fputc('\n', f);
	}
	free(sc);
	free(lab);
}

void train_report(const struct tdata *d, const struct tmodel *models,
		  int nmodels, FILE *f)
{
	static const char hdr[] =
		"| set | split | pairs (dup) | signal | AUC | R@0.90 point (P [lo], hits) |"
		" R@0.90 lo>=0.90, >=30 hits (hits) | R@0.95 point | R@0.95 honest |\n"
		"|---|---|---|---|---|---|---|---|---|\n";
	int split, set, m;

	for (split = SP_VAL; split <= SP_TEST; split++) {
		fprintf(f, "\n## %s splits\n\n%s", tsplit_names[split], hdr);
		for (set = 0; set < TS_TRAINED; set++)
			row(d, models, nmodels, set, split, false, f);
		row(d, models, nmodels, TS_STSB, split, true, f);
	}
	fprintf(f, "\n## paraphrases (never trained on)\n\n%s", hdr);
	row(d, models, nmodels, TS_PARA, -1, false, f);
	fprintf(f, "\n## leave one set out (trained on the other two; the whole "
		"left-out file)\n\n%s", hdr);
	for (set = 0; set < TS_TRAINED; set++) {
		struct tmodel lo[VERIFY_NMODELS];

		for (m = 0; m < nmodels; m++)
			if (train_fit(d, models[m].id, ((1u << TS_TRAINED) - 1) &
				      ~(1u << set), &lo[m]))
				return;
		row(d, lo, nmodels, set, -1, false, f);
	}
}


/* ---- dump ------------------------------------------------------------ */

void train_dump(const struct tdata *d, FILE *f)
{
	enum verify_model m = d->use ? VERIFY_USE_LITE : VERIFY_LEXICAL;
	double x[VERIFY_NFEAT];
	size_t k;
	int j, ok;

	fprintf(f, "set\tsplit\tlabel\tgrade\ta\tb\tok");
	for (j = 0; j < VERIFY_NFEAT; j++)
		fprintf(f, "\t%s", verify_feature_names[j]);
	fputc('\n', f);
	for (k = 0; k < d->npair; k++) {
		const struct tpair *p = &d->pair[k];

		ok = features(d, p, m, x);
		fprintf(f, "%s\t%s\t%d\t%.2f\t%u\t%u\t%d", tset_names[p->set],
			tsplit_names[p->split], p->label, p->grade, p->a, p->b,
			ok >= 0);
		for (j = 0; j < VERIFY_NFEAT; j++)
			fprintf(f, "\t%.9g", x[j]);
		fputc('\n', f);
	}
	for (k = 0; k < d->ntext; k++) {
		const char *c;

		fprintf(f, "#text\t%zu\t", k);
		for (c = d->text[k]; *c; c++)
			fputc(*c == '\t' || *c == '\n' || *c == '\r' ? ' ' : *c, f);
		fputc('\n', f);
	}
}
