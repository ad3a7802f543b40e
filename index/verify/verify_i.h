/*
 * verify_i.h - what the verifier's files share (private to index/verify/;
 * callers use verify.h): the shipped tables of model_data.c and the
 * table-taking forms of the feature functions the trainer needs, since it
 * computes features with the IDF table it is building.
 */
#ifndef SEMCACHE_VERIFY_I_H
#define SEMCACHE_VERIFY_I_H

#include <stdbool.h>
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

/* A tree of depth VERIFY_TREE_DEPTH, complete, in heap order: internal
 * node i (0 is the root) sends features f to node 2i+1 when
 * f[feat[i]] < thr[i], else to 2i+2; nodes from VERIFY_TREE_NODES on are
 * leaves, leaf[node - VERIFY_TREE_NODES] their log-odds. Every feat is
 * below VERIFY_NFEAT (the trainer writes no other; test_verify checks the
 * shipped trees), so the walk does not check it. A node the fit
 * did not split has thr VERIFY_NO_SPLIT: everything goes left. */
#define VERIFY_TREES 200
#define VERIFY_TREE_DEPTH 3
#define VERIFY_TREE_NODES 7
#define VERIFY_TREE_LEAVES 8
#define VERIFY_NO_SPLIT 1e300

struct verify_tree {
	uint8_t feat[VERIFY_TREE_NODES];
	double thr[VERIFY_TREE_NODES];
	double leaf[VERIFY_TREE_LEAVES];
};

struct verify_model_data {
	const char *name;
	double base;                        /* log-odds before the trees */
	struct verify_tree tree[VERIFY_TREES];
	double prior;                       /* duplicates in the training mix */
	struct verify_calib_set cal[VERIFY_CAL_SETS];
};

extern const uint8_t verify_idf[VERIFY_IDF_BUCKETS];
/* The use-lite embedder (its name, with the hash of its model files) whose
 * cosines VERIFY_USE_LITE was trained on. */
extern const char verify_use_lite_embedder[];
extern const struct verify_model_data verify_models[VERIFY_NMODELS];

/* The log-odds of base plus the VERIFY_TREES trees (verify_logit() of a
 * model; the trainer scores its own). */
double verify_trees_logit(double base, const struct verify_tree *tree,
			  const double f[VERIFY_NFEAT]);
/* Both sides read all their words and they are the same words in order
 * (verify_score() is then 1). */
bool verify_same_words(const struct verify_side *a,
		       const struct verify_side *b);
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
