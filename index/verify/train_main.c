/*
 * train_main.c - semcachefs-train-verifier: train the verifier on the
 * shared data and write index/verify/model_data.c.
 *
 *   semcachefs-train-verifier [--shared DIR] [--out FILE] [--models all|lexical]
 *                             [--use-lite SPEC] [--jobs N] [--no-report]
 *                             [--dump FILE]
 *
 * Reads DIR/data/pairs/{qqp_val.csv, mrpc_train.txt, stsb/sts-train.csv,
 * stsb/sts-dev.csv, paraphrases_999.json} and DIR/data/corpus/
 * qqp_questions.txt (DIR defaults to ../shared), trains VERIFY_LEXICAL and
 * (unless --models lexical) VERIFY_USE_LITE, whose use-lite embeddings come
 * from SPEC (default "use-lite", the configured model directory), writes
 * the generated C file to FILE ("-" or no --out: standard output) and the
 * quality report (markdown tables) to standard output, or to standard
 * error when the C file goes there. Exit status 0, 1 on a failure, 2 on
 * bad usage. A lexical-only file ships an untrained use-lite model that
 * never qualifies (for tests and for machines without the model).
 * --dump FILE also writes every pair's features (of the use-lite model,
 * or the lexical one with --models lexical) as tab-separated rows with a
 * header, then one "#text<TAB>ID<TAB>TEXT" line per text (tabs and line
 * breaks in it as spaces), for looking into what the models see.
 *
 * Nothing in the output depends on time, paths or threads.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_i.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: semcachefs-train-verifier [--shared DIR] [--out FILE] "
		"[--models all|lexical]\n"
		"                                 [--use-lite SPEC] [--jobs N] "
		"[--no-report]\n"
		"                                 [--dump FILE]\n");
}

static void emit_counts(FILE *f, const uint16_t *v)
{
	int k;

	for (k = 0; k <= VERIFY_CAL_STEPS; k++)
		fprintf(f, "%s%u,%s", k % 16 ? " " : "\t\t\t", v[k],
			k % 16 == 15 || k == VERIFY_CAL_STEPS ? "\n" : "");
}

static void emit_model(FILE *f, const struct tmodel *t, bool trained)
{
	int i, s, k;

	fprintf(f, "\t{\n\t\t.name = \"%s\",\n", trained ? t->name :
		"verify-use-lite-untrained");
	fprintf(f, "\t\t.base = %.17g,\n", trained ? t->base : -30.0);
	fprintf(f, "\t\t/* feat, thr: f[feat] < thr goes left; leaf log-odds "
		"*/\n\t\t.tree = {\n");
	for (i = 0; trained && i < VERIFY_TREES; i++) {
		const struct verify_tree *tr = &t->tree[i];

		fprintf(f, "\t\t\t{ .feat = {");
		for (k = 0; k < VERIFY_TREE_NODES; k++)
			fprintf(f, " %u,", tr->feat[k]);
		fprintf(f, " },\n\t\t\t  .thr = {");
		for (k = 0; k < VERIFY_TREE_NODES; k++)
			fprintf(f, " %.17g,", tr->thr[k]);
		fprintf(f, " },\n\t\t\t  .leaf = {");
		for (k = 0; k < VERIFY_TREE_LEAVES; k++)
			fprintf(f, " %.17g,", tr->leaf[k]);
		fprintf(f, " } },\n");
	}
	fprintf(f, "\t\t},\n");
	fprintf(f, "\t\t.prior = %.17g,\n\t\t.cal = {\n", trained ? t->prior : 0.5);
	for (s = 0; s < VERIFY_CAL_SETS; s++) {
		const struct verify_calib_set *c = &t->cal[s];
		static const uint16_t none[VERIFY_CAL_STEPS + 1];

		fprintf(f, "\t\t{ .name = \"%s\", .pos = %u, .neg = %u,\n",
			tset_names[s], trained ? c->pos : 0, trained ? c->neg : 0);
		fprintf(f, "\t\t  .tp = {\n");
		emit_counts(f, trained ? c->tp : none);
		fprintf(f, "\t\t  },\n\t\t  .fp = {\n");
		emit_counts(f, trained ? c->fp : none);
		fprintf(f, "\t\t  } },\n");
	}
	fprintf(f, "\t\t},\n\t},\n");
}

static void emit(FILE *f, const struct tdata *d, const struct tmodel *m,
		 int nmodels)
{
	size_t cnt[TS_N][SP_N] = { { 0 } }, k;
	int i, s;

	for (k = 0; k < d->npair; k++)
		cnt[d->pair[k].set][d->pair[k].split]++;
	fprintf(f, "/*\n * model_data.c - the verifier's shipped model. GENERATED "
		"by semcachefs-train-verifier\n * (index/verify/train_*.c): do not "
		"edit; re-train instead.\n *\n * Command (from the checkout, with "
		"the shared data at ../shared):\n *   build/index/"
		"semcachefs-train-verifier --shared ../shared --out "
		"index/verify/model_data.c%s\n *\n", nmodels < VERIFY_NMODELS ?
		" --models lexical" : "");
	fprintf(f, " * Data (path under ../shared, bytes, FNV-1a 64 of the bytes, "
		"rows read):\n");
	for (i = 0; i < TFILES; i++)
		fprintf(f, " *   %s %zu 0x%016llx %zu\n", d->file[i].rel,
			d->file[i].bytes, (unsigned long long)d->file[i].fnv,
			d->file[i].rows);
	fprintf(f, " *\n * Split (train_data.c): per set, texts joined into "
		"components by the pairs\n * (compared after textnorm); FNV-1a 64 "
		"of a component's smallest normalised\n * text mod 10: 0-5 train, "
		"6-7 val, 8-9 test. STS-B: every pair, a score >= 4\n * is a "
		"duplicate. Paraphrases: reported only. Pairs train/val/test:\n");
	for (s = 0; s < TS_TRAINED; s++)
		fprintf(f, " *   %s %zu/%zu/%zu\n", tset_names[s], cnt[s][SP_TRAIN],
			cnt[s][SP_VAL], cnt[s][SP_TEST]);
	fprintf(f, " *\n * Models (train_fit.c): %d gradient-boosted trees of depth "
		"%d over the\n * features of verify.h, every pair weighing the same; "
		"calibration counts on\n * the val splits. IDF: %zu lines of the "
		"corpus.\n", VERIFY_TREES, VERIFY_TREE_DEPTH, d->corpus_lines);
	for (i = 0; i < nmodels; i++)
		fprintf(f, " *   %s: %zu training pairs, duplicates in the mix "
			"%.4f\n", m[i].name, m[i].ntrain, m[i].prior);
	fprintf(f, " */\n#include \"verify_i.h\"\n\n");
	fprintf(f, "const char verify_use_lite_embedder[] = \"%s\";\n\n",
		nmodels == VERIFY_NMODELS ? d->use_name : "");
	fprintf(f, "const struct verify_model_data verify_models[VERIFY_NMODELS] "
		"= {\n");
	for (i = 0; i < VERIFY_NMODELS; i++)
		emit_model(f, &m[i < nmodels ? i : 0], i < nmodels);
	fprintf(f, "};\n\nconst uint8_t verify_idf[VERIFY_IDF_BUCKETS] = {\n");
	for (i = 0; i < VERIFY_IDF_BUCKETS; i++)
		fprintf(f, "%s%u,%s", i % 32 ? " " : "\t", d->idf[i],
			i % 32 == 31 ? "\n" : "");
	fprintf(f, "};\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "shared", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "models", required_argument, NULL, 'm' },
		{ "use-lite", required_argument, NULL, 'u' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "no-report", no_argument, NULL, 'q' },
		{ "dump", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *shared = "../shared", *out = "-", *use = "use-lite", *dump = NULL;
	struct tmodel models[VERIFY_NMODELS];
	int c, nmodels = VERIFY_NMODELS, jobs = 2, i, ret = 1;
	bool report = true;
	struct tdata d;
	char err[512] = "", *end;
	FILE *f;

	while ((c = getopt_long(argc, argv, "s:o:m:u:j:qd:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': shared = optarg; break;
		case 'o': out = optarg; break;
		case 'u': use = optarg; break;
		case 'q': report = false; break;
		case 'd': dump = optarg; break;
		case 'm':
			if (strcmp(optarg, "all") && strcmp(optarg, "lexical")) {
				fprintf(stderr, "semcachefs-train-verifier: --models "
					"'%s' must be all or lexical\n", optarg);
				return 2;
			}
			nmodels = strcmp(optarg, "all") ? 1 : VERIFY_NMODELS;
			break;
		case 'j':
			jobs = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || jobs < 1 || jobs > 16) {
				fprintf(stderr, "semcachefs-train-verifier: --jobs "
					"'%s' must be 1 to 16\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (train_load(&d, shared, nmodels > 1 ? use : NULL, jobs, err,
		       sizeof(err))) {
		fprintf(stderr, "semcachefs-train-verifier: %s\n", err[0] ? err :
			"out of memory");
		train_release(&d);
		return 1;
	}
	if (dump) {
		FILE *df = fopen(dump, "w");

		if (!df) {
			fprintf(stderr, "semcachefs-train-verifier: cannot write '%s': "
				"%s\n", dump, strerror(errno));
			goto done;
		}
		train_dump(&d, df);
		if (fclose(df)) {
			fprintf(stderr, "semcachefs-train-verifier: cannot write '%s': "
				"%s\n", dump, strerror(errno));
			goto done;
		}
	}
	for (i = 0; i < nmodels; i++)
		if (train_fit(&d, (enum verify_model)i, (1u << TS_TRAINED) - 1,
			      &models[i])) {
			fprintf(stderr, "semcachefs-train-verifier: the fit of "
				"model %d failed (no training pairs, or a singular "
				"system)\n", i);
			goto done;
		}
	f = strcmp(out, "-") ? fopen(out, "w") : stdout;
	if (!f) {
		fprintf(stderr, "semcachefs-train-verifier: cannot write '%s': %s\n",
			out, strerror(errno));
		goto done;
	}
	emit(f, &d, models, nmodels);
	if (f != stdout && fclose(f)) {
		fprintf(stderr, "semcachefs-train-verifier: cannot write '%s': %s\n",
			out, strerror(errno));
		goto done;
	}
	if (report)
		train_report(&d, models, nmodels, f == stdout ? stderr : stdout);
	ret = 0;
done:
	train_release(&d);
	return ret;
}
