/*
 * train_i.h - the verifier's training command (semcachefs-train-verifier),
 * private to its three files: train_data.c (data sets, splits, texts,
 * embeddings, the IDF table), train_fit.c (features, boosted trees,
 * calibration counts, the report) and train_main.c (options, the generated
 * model_data.c).
 *
 * Everything is deterministic: no random numbers, no clock, no thread
 * whose timing reaches the output; sums run in index order. The same data
 * (and the same use-lite model and BLAS) give the same bytes.
 */
#ifndef SEMCACHE_TRAIN_I_H
#define SEMCACHE_TRAIN_I_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "verify_i.h"

enum tset { TS_QQP, TS_MRPC, TS_STSB, TS_PARA, TS_N };
/* The sets the models are trained and calibrated on (TS_PARA is only
 * reported: it is never trained on). */
#define TS_TRAINED 3
enum tsplit { SP_TRAIN, SP_VAL, SP_TEST, SP_EXT, SP_N };

extern const char *const tset_names[TS_N];
extern const char *const tsplit_names[SP_N];

struct tpair {
	uint32_t a, b;          /* text ids */
	uint8_t set, split, label;
	float grade;            /* STS score, -1 otherwise */
};

struct tfile {
	char rel[64];           /* path under the shared folder */
	size_t bytes;
	uint64_t fnv;           /* FNV-1a 64 of the file's bytes */
	size_t rows;            /* pairs or lines read */
};

#define TFILES 6

struct tdata {
	char **text;            /* distinct texts, sorted by bytes */
	size_t ntext;
	struct tpair *pair;
	size_t npair;
	struct tfile file[TFILES];
	size_t corpus_lines;
	uint8_t idf[VERIFY_IDF_BUCKETS];
	struct verify_side *side;   /* per text, with idf */
	float *use;             /* per text USE_LITE_DIM floats, or NULL */
	char use_name[EMBED_NAME_MAX];
};

/* Load every file under shared (".../data/..."), split, build the IDF
 * table and the sides; with use_spec, embed every text with that use-lite
 * embedder on jobs threads. 0, or a negative errno with a message. */
int train_load(struct tdata *d, const char *shared, const char *use_spec,
	       int jobs, char *err, size_t errlen);
void train_release(struct tdata *d);

/* A fitted model: its trees and its calibration counts. */
struct tmodel {
	enum verify_model id;
	const char *name;
	double base;
	struct verify_tree tree[VERIFY_TREES];
	double prior;
	struct verify_calib_set cal[VERIFY_CAL_SETS];
	size_t ntrain;
};

/* Train model id (its feature set) on the train splits of the sets in
 * mask (bit = enum tset), calibrate on the val splits. */
int train_fit(const struct tdata *d, enum verify_model id, unsigned mask,
	      struct tmodel *out);
/* Print the quality report (val and test per set, baselines, leave one
 * set out) to f. */
void train_report(const struct tdata *d, const struct tmodel *models,
		  int nmodels, FILE *f);
/* Every pair's features, one tab-separated row each, with a header. */
void train_dump(const struct tdata *d, FILE *f);

#endif
