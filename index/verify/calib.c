/*
 * calib.c - from a precision target to a score threshold (verify.h).
 *
 * model_data.c ships, per model and per validation set, how many of its
 * duplicates and non-duplicates score at or above each threshold
 * k / VERIFY_CAL_STEPS. At a prior pi the set's pairs are reweighted so
 * that duplicates weigh pi and non-duplicates 1 - pi; the precision there
 * is a weighted share, and its 95 % Wilson interval uses Kish's effective
 * count (sum w)^2 / sum w^2, which is the plain count at the set's own
 * balance. A threshold qualifies when on every set it has at least
 * VERIFY_MIN_SUPPORT hits and a lower bound at or above the target: the
 * kind of traffic is unknown, so the promise must hold on each kind.
 *
 * It does not look at live traffic: a category whose duplicates are rarer
 * or harder than these sets' sees less precision than promised.
 */
#include <errno.h>
#include <math.h>

#include "verify_i.h"

#define Z95 1.959963984540054

void verify_wilson(double p, double n, double *low, double *high)
{
	double d, c, h;

	if (!(n > 0)) {
		if (low)
			*low = 0;
		if (high)
			*high = 1;
		return;
	}
	d = 1 + Z95 * Z95 / n;
	c = (p + Z95 * Z95 / (2 * n)) / d;
	h = Z95 * sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / d;
	if (low)
		*low = c - h > 0 ? c - h : 0;
	if (high)
		*high = c + h < 1 ? c + h : 1;
}

void verify_precision_at_prior(double tp, double fp, double pos, double neg,
			       double prior, double *prec, double *low,
			       double *high)
{
	double wp = 1, wn = 1, hw, p;

	if (prior > 0 && prior < 1 && pos > 0 && neg > 0) {
		wp = prior * (pos + neg) / pos;
		wn = (1 - prior) * (pos + neg) / neg;
	}
	hw = wp * tp + wn * fp;
	p = hw > 0 ? wp * tp / hw : 1;
	if (prec)
		*prec = p;
	verify_wilson(p, hw > 0 ? hw * hw / (wp * wp * tp + wn * wn * fp) : 0,
		      low, high);
}

/* The lower bound of set cs's precision at grid point k and prior pi;
 * *hits gets its raw hits. */
static double set_low(const struct verify_calib_set *cs, int k, double pi,
		      int *hits)
{
	double low;

	*hits = (int)(cs->tp[k] + cs->fp[k]);
	if (!*hits)
		return 0;
	verify_precision_at_prior(cs->tp[k], cs->fp[k], cs->pos, cs->neg, pi,
				  NULL, &low, NULL);
	return low;
}

int verify_operating_point_of(const struct verify_model_data *d,
			      double precision, double prior, double *threshold,
			      double *ci_low, int *support)
{
	double best_low = -1, best_t = 1;
	int best_sup = 0, k, s;

	if (!(precision > 0 && precision <= 1) || isnan(prior) || prior >= 1)
		return -EINVAL;
	if (prior <= 0)
		prior = d->prior;
	for (k = 0; k <= VERIFY_CAL_STEPS; k++) {
		double low = 1;
		int sup = -1, used = 0;

		for (s = 0; s < VERIFY_CAL_SETS; s++) {
			const struct verify_calib_set *cs = &d->cal[s];
			int hits;
			double l;

			if (!cs->pos || !cs->neg)
				continue;   /* one class only: no precision to bound */
			l = set_low(cs, k, prior, &hits);
			low = l < low ? l : low;
			sup = sup < 0 || hits < sup ? hits : sup;
			used++;
		}
		if (!used || sup < VERIFY_MIN_SUPPORT)
			continue;
		if (low > best_low) {
			best_low = low;
			best_t = (double)k / VERIFY_CAL_STEPS;
			best_sup = sup;
		}
		if (low >= precision) {
			best_low = low;
			best_t = (double)k / VERIFY_CAL_STEPS;
			best_sup = sup;
			break;
		}
	}
	if (threshold)
		*threshold = best_t;
	if (ci_low)
		*ci_low = best_low < 0 ? 0 : best_low;
	if (support)
		*support = best_sup;
	return k <= VERIFY_CAL_STEPS ? 0 : -ERANGE;
}

int verify_operating_point(enum verify_model m, double precision, double prior,
			   double *threshold, double *ci_low, int *support)
{
	if ((unsigned)m >= VERIFY_NMODELS)
		return -EINVAL;
	return verify_operating_point_of(&verify_models[m], precision, prior,
					 threshold, ci_low, support);
}
