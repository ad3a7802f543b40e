/*
 * eval.h - measure an embedder on labelled pairs and calibrate a threshold.
 *
 * The core of `semcachefs-eval` (index/eval_main.c), kept callable so the
 * daemon's command line can expose it later. Load pairs, score them with an
 * embedder (cosine of the two vectors), then compute ROC-AUC, precision,
 * recall and F1 at thresholds, and the lowest threshold whose precision
 * reaches a target (the most recall at that precision).
 *
 * Formats (eval_load):
 *  - EVAL_CSV: CSV with a header naming text_a,text_b,label (RFC 4180
 *    quoting: "..", "" inside quotes, newlines inside quotes); label 1/0.
 *  - EVAL_QQP: the same CSV reader with columns question1,question2,
 *    is_duplicate (Quora Question Pairs).
 *  - EVAL_PARAPHRASE_JSON: [{"origin": A, "similar": B}, ...], all
 *    paraphrases. To have negatives for the AUC, each origin i is also
 *    paired with similar i+1 (mod n) as a negative: n positives, n negatives.
 *  - EVAL_STS: STS Benchmark tab-separated lines (genre, file, year, id,
 *    score 0..5, sentence 1, sentence 2). Score >= 4 is a positive (same
 *    meaning: a cached answer would do), <= 2 a negative; pairs in between
 *    are ambiguous for a cache and skipped.
 *  - EVAL_MRPC: the Microsoft Research Paraphrase Corpus's tab-separated
 *    file: a header 'Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2
 *    String' (a UTF-8 BOM allowed), then quality 1/0, two ids, two
 *    sentences per line. Not CSV: quotes are text.
 *  - EVAL_AUTO: by name and header (.json -> paraphrase, .tsv -> sts, a
 *    first line starting 'Quality<TAB>' -> mrpc, a line with 6+ tabs ->
 *    sts, else the CSV header decides).
 *
 * Scores are in [-1, 1]; AUC counts ties as one half. Nothing here prints:
 * eval_main.c formats the results.
 */
#ifndef SEMCACHE_EVAL_H
#define SEMCACHE_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "embed.h"

enum eval_format { EVAL_AUTO, EVAL_CSV, EVAL_QQP, EVAL_PARAPHRASE_JSON, EVAL_STS,
		   EVAL_MRPC };

struct eval_pair {
	char *a, *b;        /* NUL-terminated; owned by the set */
	int label;          /* 1 same meaning, 0 not */
	float grade;        /* STS: the score 0..5; -1 for the other formats */
};

struct eval_set {
	struct eval_pair *v;
	size_t n, cap;
	size_t skipped;     /* rows without a usable label (STS middle scores) */
};

/* "csv", "qqp", "paraphrase-json", "sts", "mrpc", "auto" -> format;
 * -EINVAL. */
int eval_format_parse(const char *name, enum eval_format *out);

/* Read path into set (initialised here; release with eval_set_release).
 * 0, or a negative errno with a message naming the file and line. */
int eval_load(const char *path, enum eval_format fmt, struct eval_set *set,
	      char *err, size_t errlen);
/* The same with flags: EVAL_KEEP_AMBIGUOUS keeps the STS pairs scored
 * between 2 and 4 as negatives (a score below 4 is not the same meaning),
 * for training on every pair (index/verify/train.c). */
#define EVAL_KEEP_AMBIGUOUS 1u
int eval_load_flags(const char *path, enum eval_format fmt, unsigned flags,
		    struct eval_set *set, char *err, size_t errlen);
/* Parse CSV text (any of the CSV formats) from memory; for tests. */
int eval_parse_csv(const char *text, size_t len, enum eval_format fmt,
		   struct eval_set *set, char *err, size_t errlen);
void eval_set_release(struct eval_set *set);
/* Read path whole into *data (NUL-terminated, the caller frees it); for
 * the readers and the verifier's trainer. 0, or a negative errno with a
 * message naming the file. */
int eval_slurp(const char *path, char **data, size_t *len, char *err,
	       size_t errlen);

/* Cosine of every pair into scores[set->n]; mean microseconds per embedded
 * text into *us (may be NULL). An embedding failure (remote embedders)
 * stops with its errno and message. */
int eval_score(const struct embedder *e, const struct eval_set *set,
	       double *scores, double *us, char *err, size_t errlen);

/*
 * What a lookup decides for each pair, text a stored and text b asked:
 * scores[i] = 1 when the two are equal after textnorm (the exact path),
 * 0 when cosines[i] (eval_score()'s, the category embedder's) is below
 * floor (the index does not propose the entry), else the verifier's score
 * (verify.h; the embedder's cosine fills its slot when it has one). A hit
 * is a score at or above the category's operating point. 0 or -ENOMEM.
 */
int eval_pipeline(const struct embedder *e, const struct eval_set *set,
		  const double *cosines, double floor, double *scores,
		  char *err, size_t errlen);

struct eval_point {
	double threshold;
	size_t tp, fp, fn, tn;
	double precision, recall, f1;   /* precision 1 when nothing is predicted */
	double prec_low, prec_high;     /* its 95 % Wilson interval ([0, 1]
					 * when nothing is predicted) */
};

/* ROC-AUC (Mann-Whitney, ties count 1/2); -1 without both classes. */
double eval_auc(const double *scores, const int *labels, size_t n);
/* Counts and rates when a pair is a hit at score >= t. */
void eval_at(const double *scores, const int *labels, size_t n, double t,
	     struct eval_point *pt);
/* The lowest threshold (one of the scores) whose precision is >= target:
 * the most recall at that precision. 0, or -ENOENT when no threshold
 * reaches it. */
int eval_for_precision(const double *scores, const int *labels, size_t n,
		       double target, struct eval_point *pt);
/*
 * The honest form: the lowest threshold (one of the scores) with at least
 * min_hits hits whose precision's 95 % Wilson lower bound reaches target;
 * the precision is taken at prior (share of duplicates) when prior is in
 * (0, 1), else at the data's own balance. 0 with *pt; -ENOENT when none
 * qualifies, *pt then holding the point with the highest lower bound
 * among those with min_hits hits (all counts 0, threshold 1 when no
 * threshold has that many). -ENOMEM.
 */
int eval_for_precision_ci(const double *scores, const int *labels, size_t n,
			  double target, size_t min_hits, double prior,
			  struct eval_point *pt);
/* Precision of pt at prior (as above) and its Wilson interval. */
void eval_at_prior(const struct eval_point *pt, double prior, double *prec,
		   double *low, double *high);
/* The threshold with the best F1. */
void eval_best_f1(const double *scores, const int *labels, size_t n,
		  struct eval_point *pt);

/*
 * Context-dependent follow-ups (contextual_followups_128.json: objects with
 * "Main Query", "Main Query Response", "Follow-Up Query"). Each main query
 * is stored without a context; its follow-up is asked in the conversation
 * (context = main query and response). A follow-up scoring >= threshold
 * against its own main query is a false hit unless context matching keeps
 * it out (the engine's rule: a query with a context never hits an entry
 * stored with another or none).
 */
struct eval_followups {
	size_t n;
	size_t false_hits_ignore;   /* context: ignore */
	size_t false_hits_match;    /* context: match */
	double mean_score, max_score;
};
int eval_followups(const struct embedder *e, const char *path, double threshold,
		   struct eval_followups *out, char *err, size_t errlen);

#endif
