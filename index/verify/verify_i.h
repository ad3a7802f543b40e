/*
 * verify_i.h - what the verifier's files share (private to index/verify/;
 * callers use verify.h): the shipped tables of model_data.c and the
 * table-taking forms of the feature functions the trainer needs, since it
 * computes features with the IDF table it is building.
 */
#ifndef SEMCACHE_VERIFY_I_H
#define SEMCACHE_VERIFY_I_H

#include <stdint.h>

#include "verify.h"

/* IDF of a key (content word or number) is idf[key % VERIFY_IDF_BUCKETS]
 * / VERIFY_IDF_SCALE: ln((N + 1) / (df + 1)) over the lines of the corpus,
 * rounded to 1/VERIFY_IDF_SCALE (a bucket never seen holds ln(N + 1)). */
#define VERIFY_IDF_BUCKETS 65536
#define VERIFY_IDF_SCALE 20

/* Calibration: per validation set, the pairs scoring at or above each
 * threshold k / VERIFY_CAL_STEPS (k = 0..VERIFY_CAL_STEPS). */
#define VERIFY_CAL_STEPS 400
#define VERIFY_CAL_SETS 3

struct verify_calib_set {
	const char *name;                   /* "qqp", "mrpc", "stsb" */
	uint32_t pos, neg;                  /* its validation pairs */
	uint16_t tp[VERIFY_CAL_STEPS + 1];  /* duplicates at or above k */
	uint16_t fp[VERIFY_CAL_STEPS + 1];  /* non-duplicates at or above k */
};

struct verify_model_data {
	const char *name;
	double bias, w[VERIFY_NFEAT];       /* log-odds on raw features */
	double prior;                       /* duplicates in the training mix */
	struct verify_calib_set cal[VERIFY_CAL_SETS];
};

extern const uint8_t verify_idf[VERIFY_IDF_BUCKETS];
/* The use-lite embedder (its name, with the hash of its model files) whose
 * cosines VERIFY_USE_LITE was trained on. */
extern const char verify_use_lite_embedder[];
extern const struct verify_model_data verify_models[VERIFY_NMODELS];

/* verify_operating_point() for the model data d (tests build their own). */
int verify_operating_point_of(const struct verify_model_data *d,
			      double precision, double prior, double *threshold,
			      double *ci_low, int *support);
/* verify_side_init() and verify_features() with an explicit IDF table. */
int verify_side_init_idf(struct verify_side *s, const char *text, size_t len,
			 const uint8_t *idf);
int verify_features_idf(const struct verify_side *q,
			const struct verify_side *cand, const float cos[],
			int ncos, const uint8_t *idf, double f[VERIFY_NFEAT]);

#endif
