/*
 * embed_eval.c - measure the built-in embedder on labelled question pairs.
 *
 *   embed_eval FILE.csv          evaluate question1,question2,is_duplicate
 *   embed_eval --pair A B...     print the cosine of A with each B
 *
 * The CSV is read whole and parsed as RFC 4180 (a header line; quoted
 * fields may hold commas, newlines and doubled quotes). Both questions of
 * every pair are embedded, cosine is the inner product of the normalised
 * vectors, and it prints ROC-AUC (ties ranked by their mean), precision,
 * recall and F1 at thresholds 0.50..0.95, the lowest threshold reaching 90%
 * and 95% precision with the recall there, and the mean embed time per
 * query. It is a benchmark, not a test: it never fails on scores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embed.h"

struct pair {
	char *q[2];
	size_t len[2];
	int label;
	float score;
};

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *tmp;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 65536 + 1 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			tmp = realloc(buf, cap);
			if (!tmp) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = tmp;
		}
		got = fread(buf + n, 1, 65536, f);
		n += got;
		if (got < 65536)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/*
 * Parse one field at *pos, unquoting in place. Sets *end_rec when the field
 * ends its record (newline or end of data).
 */
static void csv_field(char *buf, size_t len, size_t *pos, char **field,
		      size_t *flen, int *end_rec)
{
	size_t i = *pos, w;

	*field = buf + i;
	*end_rec = 0;
	if (i < len && buf[i] == '"') {
		w = i;
		*field = buf + w;
		for (i++; i < len; i++) {
			if (buf[i] == '"') {
				if (i + 1 < len && buf[i + 1] == '"') {
					buf[w++] = '"';
					i++;
					continue;
				}
				i++;
				break;
			}
			buf[w++] = buf[i];
		}
		*flen = w - (size_t)(*field - buf);
		/* skip anything up to the separator */
		while (i < len && buf[i] != ',' && buf[i] != '\n')
			i++;
	} else {
		while (i < len && buf[i] != ',' && buf[i] != '\n')
			i++;
		*flen = i - *pos;
		if (*flen && buf[i - 1] == '\r' && (i == len || buf[i] == '\n'))
			(*flen)--;
	}
	if (i >= len || buf[i] == '\n')
		*end_rec = 1;
	*pos = i < len ? i + 1 : len;
}

static int parse_csv(char *buf, size_t len, struct pair **out, size_t *np)
{
	struct pair *v = NULL, *tmp;
	size_t cap = 0, n = 0, pos = 0, flen;
	char *f[3];
	size_t fl[3];
	int end, k, line = 0;

	while (pos < len) {
		k = 0;
		do {
			char *field;

			csv_field(buf, len, &pos, &field, &flen, &end);
			if (k < 3) {
				f[k] = field;
				fl[k] = flen;
			}
			k++;
		} while (!end);
		if (line++ == 0)
			continue;	/* header */
		if (k < 3)
			continue;	/* blank or short line */
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			tmp = realloc(v, cap * sizeof(*v));
			if (!tmp) {
				free(v);
				return -ENOMEM;
			}
			v = tmp;
		}
		v[n].q[0] = f[0];
		v[n].len[0] = fl[0];
		v[n].q[1] = f[1];
		v[n].len[1] = fl[1];
		v[n].label = fl[2] > 0 && f[2][0] == '1';
		n++;
	}
	*out = v;
	*np = n;
	return 0;
}

static float dot(const float *a, const float *b, int dim)
{
	float s = 0;
	int i;

	for (i = 0; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

static int cmp_score_desc(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	return (x->score < y->score) - (x->score > y->score);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void report(struct pair *p, size_t n)
{
	size_t i, j, npos = 0, nneg = 0, tp, fp;
	double auc = 0, rank_sum = 0, possum = 0, negsum = 0;
	float posmin = 2;
	double targets[] = { 0.90, 0.95 };
	int t;

	for (i = 0; i < n; i++) {
		if (p[i].label) {
			npos++;
			possum += p[i].score;
			if (p[i].score < posmin)
				posmin = p[i].score;
		} else {
			nneg++;
			negsum += p[i].score;
		}
	}
	printf("pairs %zu (positives %zu, negatives %zu)\n", n, npos, nneg);
	if (npos)
		printf("positive score mean %.4f min %.4f\n", possum / npos,
		       posmin);
	if (nneg)
		printf("negative score mean %.4f\n", negsum / nneg);

	qsort(p, n, sizeof(*p), cmp_score_desc);
	/* ascending rank r (1 = lowest); ties get their mean rank */
	for (i = 0; i < n; i = j) {
		size_t cnt_pos = 0;
		double mean_rank;

		for (j = i; j < n && p[j].score == p[i].score; j++)
			cnt_pos += p[j].label;
		mean_rank = (double)(n - j + 1 + n - i) / 2;
		rank_sum += mean_rank * cnt_pos;
	}
	if (npos && nneg) {
		auc = (rank_sum - (double)npos * (npos + 1) / 2) /
		      ((double)npos * nneg);
		printf("roc-auc %.4f\n", auc);
	} else {
		printf("roc-auc n/a (needs both classes)\n");
	}

	printf("thresh precision recall   f1\n");
	for (t = 50; t <= 95; t += 5) {
		double th = t / 100.0, prec, rec, f1;

		tp = fp = 0;
		for (i = 0; i < n && p[i].score >= th; i++) {
			if (p[i].label)
				tp++;
			else
				fp++;
		}
		prec = tp + fp ? (double)tp / (tp + fp) : 0;
		rec = npos ? (double)tp / npos : 0;
		f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
		printf("  %.2f   %.4f   %.4f  %.4f\n", th, prec, rec, f1);
	}

	for (t = 0; t < 2; t++) {
		double best_th = -1, best_rec = 0, best_prec = 0;

		tp = fp = 0;
		for (i = 0; i < n; i = j) {
			for (j = i; j < n && p[j].score == p[i].score; j++) {
				if (p[j].label)
					tp++;
				else
					fp++;
			}
			if ((double)tp / (tp + fp) >= targets[t]) {
				best_th = p[i].score;
				best_rec = npos ? (double)tp / npos : 0;
				best_prec = (double)tp / (tp + fp);
			}
		}
		if (best_th < 0)
			printf("precision >= %.2f: never reached\n", targets[t]);
		else
			printf("precision >= %.2f: threshold %.4f precision "
			       "%.4f recall %.4f\n", targets[t], best_th,
			       best_prec, best_rec);
	}
}

static int eval_csv(struct embedder *e, const char *path)
{
	struct pair *p;
	size_t len, n, i;
	char *buf = read_file(path, &len);
	float *a, *b;
	double t0, total = 0;
	int ret;

	if (!buf) {
		fprintf(stderr, "embed_eval: cannot read '%s': %s\n", path,
			strerror(errno));
		return -errno;
	}
	ret = parse_csv(buf, len, &p, &n);
	if (ret < 0) {
		fprintf(stderr, "embed_eval: cannot parse '%s': %s\n", path,
			strerror(-ret));
		free(buf);
		return ret;
	}
	a = malloc(e->dim * sizeof(*a));
	b = malloc(e->dim * sizeof(*b));
	if (!a || !b) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		t0 = now_us();
		embedder_embed(e, p[i].q[0], p[i].len[0], a);
		embedder_embed(e, p[i].q[1], p[i].len[1], b);
		total += now_us() - t0;
		p[i].score = dot(a, b, e->dim);
	}
	printf("embedder %s dim %d file '%s'\n", e->name, e->dim, path);
	printf("embed mean %.3f us/query\n", n ? total / (2.0 * n) : 0);
	report(p, n);
out:
	free(a);
	free(b);
	free(p);
	free(buf);
	return ret;
}

static int eval_pairs(struct embedder *e, int argc, char **argv)
{
	float *a = malloc(e->dim * sizeof(*a));
	float *b = malloc(e->dim * sizeof(*b));
	int i;

	if (!a || !b) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	embedder_embed(e, argv[0], strlen(argv[0]), a);
	for (i = 1; i < argc; i++) {
		embedder_embed(e, argv[i], strlen(argv[i]), b);
		printf("%.4f  \"%s\" vs \"%s\"\n", dot(a, b, e->dim), argv[0],
		       argv[i]);
	}
	free(a);
	free(b);
	return 0;
}

int main(int argc, char **argv)
{
	struct embedder *e;
	char err[256];
	int ret;

	if (argc < 2 || (!strcmp(argv[1], "--pair") && argc < 4)) {
		fprintf(stderr, "usage: embed_eval FILE.csv\n"
				"       embed_eval --pair TEXT OTHER...\n");
		return 2;
	}
	ret = embedder_new_spec("builtin", &e, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "embed_eval: %s\n", err);
		return 1;
	}
	if (!strcmp(argv[1], "--pair"))
		ret = eval_pairs(e, argc - 2, argv + 2);
	else
		ret = eval_csv(e, argv[1]);
	embedder_free(e);
	return ret < 0 ? 1 : 0;
}
