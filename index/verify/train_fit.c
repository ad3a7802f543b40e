/*
 * train_fit.c - the trainer's models: features of every pair, an L2
 * logistic regression fitted by Newton steps, the calibration counts and
 * the quality report.
 *
 * Fit: the model's features standardised by the training rows' mean and
 * population standard deviation (+1e-9); weights n / (sets * n_set), so
 * each trained set weighs the same; L2 penalty LAMBDA on the standardised
 * weights, the bias free; ITERS Newton steps from 0, each solving the
 * (features + 1)^2 system by Cholesky, in doubles with sums in row order;
 * then folded back into weights on the raw features. Pairs with nothing to
 * compare (verify_features() -ENODATA) are left out: they score 0.
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

#define LAMBDA 1.0
#define ITERS 30
#define NPAR (VERIFY_NFEAT + 1)

static const char *const model_names[VERIFY_NMODELS] = {
	"verify-lexical-v1", "verify-use-lite-v1",
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

static double model_score(const struct tmodel *t, const double *f, int ok)
{
	double z = t->bias;
	int i;

	if (ok < 0)
		return 0;
	for (i = 0; i < VERIFY_NFEAT; i++)
		z += t->w[i] * f[i];
	return 1.0 / (1.0 + exp(-z));
}

/* Solve H x = g for symmetric positive definite H (n x n) in place. */
static int cholesky_solve(double *h, double *g, int n)
{
	int i, j, k;

	for (j = 0; j < n; j++) {
		double s = h[j * n + j];

		for (k = 0; k < j; k++)
			s -= h[j * n + k] * h[j * n + k];
		if (!(s > 0))
			return -EDOM;
		h[j * n + j] = sqrt(s);
		for (i = j + 1; i < n; i++) {
			double t = h[i * n + j];

			for (k = 0; k < j; k++)
				t -= h[i * n + k] * h[j * n + k];
			h[i * n + j] = t / h[j * n + j];
		}
	}
	for (i = 0; i < n; i++) {          /* L y = g */
		for (k = 0; k < i; k++)
			g[i] -= h[i * n + k] * g[k];
		g[i] /= h[i * n + i];
	}
	for (i = n - 1; i >= 0; i--) {     /* L^T x = y */
		for (k = i + 1; k < n; k++)
			g[i] -= h[k * n + i] * g[k];
		g[i] /= h[i * n + i];
	}
	return 0;
}

struct rows {
	double *x;      /* n * NPAR: 1 then the standardised features */
	double *y, *w;
	size_t n;
	int cols[VERIFY_NFEAT], ncol;
	double mu[VERIFY_NFEAT], sd[VERIFY_NFEAT];
};

static int irls(const struct rows *r, double *b)
{
	int np = r->ncol + 1, it, i, j;
	double h[NPAR * NPAR], g[NPAR];
	size_t k;

	memset(b, 0, NPAR * sizeof(*b));
	for (it = 0; it < ITERS; it++) {
		memset(h, 0, sizeof(h));
		memset(g, 0, sizeof(g));
		for (k = 0; k < r->n; k++) {
			const double *x = r->x + k * NPAR;
			double z = 0, p, a;

			for (i = 0; i < np; i++)
				z += b[i] * x[i];
			p = 1.0 / (1.0 + exp(-z));
			a = r->w[k] * p * (1 - p);
			for (i = 0; i < np; i++) {
				g[i] += r->w[k] * (p - r->y[k]) * x[i];
				for (j = 0; j <= i; j++)
					h[i * np + j] += a * x[i] * x[j];
			}
		}
		for (i = 1; i < np; i++) {
			g[i] += LAMBDA * b[i];
			h[i * np + i] += LAMBDA;
		}
		for (i = 0; i < np; i++)
			for (j = i + 1; j < np; j++)
				h[i * np + j] = h[j * np + i];
		if (cholesky_solve(h, g, np))
			return -EDOM;
		for (i = 0; i < np; i++)
			b[i] -= g[i];
	}
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
		sc = model_score(t, f, ok);
		p->label ? c->pos++ : c->neg++;
		for (q = 0; q <= VERIFY_CAL_STEPS; q++) {
			if (!(sc >= (double)q / VERIFY_CAL_STEPS))
				break;
			p->label ? c->tp[q]++ : c->fp[q]++;
		}
	}
}

int train_fit(const struct tdata *d, enum verify_model id, unsigned mask,
	      struct tmodel *t)
{
	size_t nset[TS_N] = { 0 }, k, n = 0;
	double f[VERIFY_NFEAT], b[NPAR], sy = 0, sw = 0;
	struct rows r = { 0 };
	int i, nsets = 0, ret = -ENOMEM;

	memset(t, 0, sizeof(*t));
	t->id = id;
	t->name = model_names[id];
	for (i = 0; i < VERIFY_NFEAT; i++)
		if (uses(id, i))
			r.cols[r.ncol++] = i;
	r.x = malloc((d->npair ? d->npair : 1) * NPAR * sizeof(*r.x));
	r.y = malloc((d->npair ? d->npair : 1) * sizeof(*r.y));
	r.w = malloc((d->npair ? d->npair : 1) * sizeof(*r.w));
	if (!r.x || !r.y || !r.w)
		goto out;
	for (k = 0; k < d->npair; k++) {
		const struct tpair *p = &d->pair[k];

		if (!(mask & (1u << p->set)) || p->split != SP_TRAIN ||
		    features(d, p, id, f) < 0)
			continue;
		r.x[n * NPAR] = 1;
		for (i = 0; i < r.ncol; i++)
			r.x[n * NPAR + 1 + i] = f[r.cols[i]];
		r.y[n] = p->label;
		r.w[n] = p->set;        /* the set, until weights are known */
		nset[p->set]++;
		n++;
	}
	r.n = t->ntrain = n;
	for (i = 0; i < TS_N; i++)
		nsets += nset[i] > 0;
	for (k = 0; k < n; k++)
		r.w[k] = (double)n / ((double)nsets * nset[(int)r.w[k]]);
	for (i = 0; i < r.ncol; i++) {
		double s = 0, v = 0;

		for (k = 0; k < n; k++)
			s += r.x[k * NPAR + 1 + i];
		r.mu[i] = n ? s / n : 0;
		for (k = 0; k < n; k++)
			v += (r.x[k * NPAR + 1 + i] - r.mu[i]) *
			     (r.x[k * NPAR + 1 + i] - r.mu[i]);
		r.sd[i] = (n ? sqrt(v / n) : 0) + 1e-9;
		for (k = 0; k < n; k++)
			r.x[k * NPAR + 1 + i] = (r.x[k * NPAR + 1 + i] - r.mu[i]) /
						r.sd[i];
	}
	if (!n || (ret = irls(&r, b)))
		goto out;
	t->bias = b[0];
	for (i = 0; i < r.ncol; i++) {
		t->w[r.cols[i]] = b[1 + i] / r.sd[i];
		t->bias -= r.mu[i] * t->w[r.cols[i]];
	}
	for (k = 0; k < n; k++) {
		sy += r.w[k] * r.y[k];
		sw += r.w[k];
	}
	t->prior = sy / sw;
	calibrate(d, t);
	ret = 0;
out:
	free(r.x);
	free(r.y);
	free(r.w);
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
			sc[n] = model_score(t, f, ok);
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
