/*
 * eval.c - labelled pairs in, ROC-AUC and calibrated thresholds out.
 *
 * Readers for the pair formats of eval.h (a small RFC 4180 CSV reader, a
 * tab splitter for STS, json-c for the JSON files), scoring with any
 * embedder, and the statistics: AUC by average ranks, and one sorted sweep
 * for the precision/recall of every candidate threshold.
 *
 * It does not print, choose embedders or read policies: eval_main.c does.
 * Memory is the pairs plus two vectors; files are read whole.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "eval.h"

/* ---- sets ------------------------------------------------------------ */

void eval_set_release(struct eval_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		free(set->v[i].a);
		free(set->v[i].b);
	}
	free(set->v);
	memset(set, 0, sizeof(*set));
}

static int set_add(struct eval_set *set, const char *a, size_t alen,
		   const char *b, size_t blen, int label)
{
	struct eval_pair *nv, *p;

	if (set->n == set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 256;

		nv = realloc(set->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		set->v = nv;
		set->cap = ncap;
	}
	p = &set->v[set->n];
	p->a = strndup(a, alen);
	p->b = strndup(b, blen);
	if (!p->a || !p->b) {
		free(p->a);
		free(p->b);
		return -ENOMEM;
	}
	p->label = label;
	set->n++;
	return 0;
}

int eval_format_parse(const char *name, enum eval_format *out)
{
	static const struct { const char *name; enum eval_format f; } t[] = {
		{ "auto", EVAL_AUTO }, { "csv", EVAL_CSV }, { "qqp", EVAL_QQP },
		{ "paraphrase-json", EVAL_PARAPHRASE_JSON }, { "sts", EVAL_STS },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(name, t[i].name) == 0) {
			*out = t[i].f;
			return 0;
		}
	return -EINVAL;
}

/* ---- CSV ------------------------------------------------------------- */

/* One record of fields; each field unquoted into its own buffer. */
struct record {
	char **f;
	size_t *len;
	size_t n, cap;
};

static void record_clear(struct record *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->f[i]);
	r->n = 0;
}

static int record_push(struct record *r, const char *s, size_t len)
{
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;
		char **nf = realloc(r->f, ncap * sizeof(*nf));
		size_t *nl;

		if (!nf)
			return -ENOMEM;
		r->f = nf;
		nl = realloc(r->len, ncap * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		r->len = nl;
		r->cap = ncap;
	}
	r->f[r->n] = malloc(len + 1);
	if (!r->f[r->n])
		return -ENOMEM;
	memcpy(r->f[r->n], s, len);
	r->f[r->n][len] = '\0';
	r->len[r->n++] = len;
	return 0;
}

/*
 * Read one CSV record at *pos. Returns 1 with a record, 0 at the end,
 * -EINVAL on a quote error (unterminated, or text after a closing quote).
 */
static int csv_record(const char *s, size_t len, size_t *pos, size_t *line,
		      struct record *r, char **tmp, size_t *tmpcap)
{
	size_t i = *pos, n;
	int ret;

	record_clear(r);
	if (i >= len)
		return 0;
	for (;;) {
		n = 0;
		if (i < len && s[i] == '"') {
			for (i++;; i++) {
				if (i >= len)
					return -EINVAL;
				if (s[i] == '"') {
					if (i + 1 < len && s[i + 1] == '"')
						i++;
					else
						break;
				}
				if (s[i] == '\n')
					(*line)++;
				if (n + 1 >= *tmpcap) {
					char *nt = realloc(*tmp, *tmpcap * 2 + 64);

					if (!nt)
						return -ENOMEM;
					*tmp = nt;
					*tmpcap = *tmpcap * 2 + 64;
				}
				(*tmp)[n++] = s[i];
			}
			i++;    /* the closing quote */
			if (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r')
				return -EINVAL;
			ret = record_push(r, *tmp, n);
		} else {
			size_t start = i;

			while (i < len && s[i] != ',' && s[i] != '\n')
				i++;
			n = i - start;
			if (n && s[start + n - 1] == '\r' && (i >= len || s[i] == '\n'))
				n--;
			ret = record_push(r, s + start, n);
		}
		if (ret)
			return ret;
		if (i < len && s[i] == '\r')
			i++;
		if (i < len && s[i] == ',') {
			i++;
			continue;
		}
		if (i < len && s[i] == '\n')
			i++;
		(*line)++;
		*pos = i;
		return 1;
	}
}

static int column(const struct record *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->f[i], name) == 0 ||
		    (i == 0 && strncmp(r->f[i], "\xef\xbb\xbf", 3) == 0 &&
		     strcmp(r->f[i] + 3, name) == 0))
			return (int)i;
	return -1;
}

int eval_parse_csv(const char *text, size_t len, enum eval_format fmt,
		   struct eval_set *set, char *err, size_t errlen)
{
	static const char *const names[][3] = {
		{ "text_a", "text_b", "label" },
		{ "question1", "question2", "is_duplicate" },
	};
	struct record r = { 0 };
	size_t pos = 0, line = 1, tmpcap = 256, at;
	char *tmp = malloc(tmpcap), *end;
	int ca = -1, cb = -1, cl = -1, ret;
	size_t k;
	long v;

	memset(set, 0, sizeof(*set));
	if (!tmp)
		return -ENOMEM;
	ret = csv_record(text, len, &pos, &line, &r, &tmp, &tmpcap);
	if (ret <= 0) {
		snprintf(err, errlen, "empty csv: expected a header like "
			 "'text_a,text_b,label'");
		ret = -EINVAL;
		goto out;
	}
	for (k = 0; k < 2 && ca < 0; k++) {
		if (fmt == EVAL_CSV && k == 1)
			break;
		if (fmt == EVAL_QQP && k == 0)
			continue;
		ca = column(&r, names[k][0]);
		cb = column(&r, names[k][1]);
		cl = column(&r, names[k][2]);
		if (ca < 0 || cb < 0 || cl < 0)
			ca = -1;
	}
	if (ca < 0) {
		snprintf(err, errlen, "the csv header must name the columns "
			 "text_a,text_b,label (or question1,question2,"
			 "is_duplicate)");
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		at = line;
		ret = csv_record(text, len, &pos, &line, &r, &tmp, &tmpcap);
		if (ret == 0)
			break;
		if (ret < 0) {
			if (ret == -EINVAL)
				snprintf(err, errlen, "line %zu: bad csv quoting", at);
			goto out;
		}
		if (r.n == 1 && r.len[0] == 0)
			continue;   /* a blank line */
		if ((int)r.n <= ca || (int)r.n <= cb || (int)r.n <= cl) {
			snprintf(err, errlen, "line %zu: %zu fields, expected at "
				 "least %d", at, r.n, (ca > cb ? (ca > cl ? ca : cl) :
						   (cb > cl ? cb : cl)) + 1);
			ret = -EINVAL;
			goto out;
		}
		v = strtol(r.f[cl], &end, 10);
		if (end == r.f[cl] || *end || (v != 0 && v != 1)) {
			snprintf(err, errlen, "line %zu: label '%s' is not 0 or 1",
				 at, r.f[cl]);
			ret = -EINVAL;
			goto out;
		}
		ret = set_add(set, r.f[ca], r.len[ca], r.f[cb], r.len[cb], (int)v);
		if (ret)
			goto out;
	}
	ret = 0;
out:
	record_clear(&r);
	free(r.f);
	free(r.len);
	free(tmp);
	if (ret)
		eval_set_release(set);
	return ret;
}

/* ---- other formats --------------------------------------------------- */

static int parse_sts(const char *s, size_t len, struct eval_set *set,
		     char *err, size_t errlen)
{
	size_t pos = 0, line = 0;
	int ret;

	memset(set, 0, sizeof(*set));
	while (pos < len) {
		const char *ln = s + pos, *nl = memchr(ln, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - ln) : len - pos;
		const char *f[7];
		size_t fl[7], nf = 0, i, st = 0;
		double score;
		char num[32], *end;

		pos += ll + (nl ? 1 : 0);
		line++;
		if (ll && ln[ll - 1] == '\r')
			ll--;
		if (!ll)
			continue;
		for (i = 0; i <= ll && nf < 7; i++) {
			if (i == ll || ln[i] == '\t') {
				f[nf] = ln + st;
				fl[nf++] = i - st;
				st = i + 1;
			}
		}
		if (nf < 7 || fl[4] >= sizeof(num)) {
			snprintf(err, errlen, "line %zu: expected 7 tab-separated "
				 "fields (genre, file, year, id, score, sentence 1, "
				 "sentence 2)", line);
			eval_set_release(set);
			return -EINVAL;
		}
		/* sentence 2 ends at the next tab (extra source columns follow) */
		memcpy(num, f[4], fl[4]);
		num[fl[4]] = '\0';
		score = strtod(num, &end);
		if (end == num || *end || score < 0 || score > 5) {
			snprintf(err, errlen, "line %zu: score '%s' is not 0..5",
				 line, num);
			eval_set_release(set);
			return -EINVAL;
		}
		if (score > 2 && score < 4) {
			set->skipped++;
			continue;
		}
		ret = set_add(set, f[5], fl[5], f[6], fl[6], score >= 4);
		if (ret) {
			eval_set_release(set);
			return ret;
		}
	}
	return 0;
}

static int parse_paraphrases(const char *s, size_t len, struct eval_set *set,
			     char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL, *o, *a, *b, *b2;
	size_t n, i;
	int ret = -EINVAL;

	memset(set, 0, sizeof(*set));
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, s, (int)len);
	if (!root || !json_object_is_type(root, json_type_array)) {
		snprintf(err, errlen, "expected a json array of {\"origin\", "
			 "\"similar\"} objects");
		goto out;
	}
	n = json_object_array_length(root);
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(root, i);
		if (!json_object_object_get_ex(o, "origin", &a) ||
		    !json_object_object_get_ex(o, "similar", &b) ||
		    !json_object_is_type(a, json_type_string) ||
		    !json_object_is_type(b, json_type_string)) {
			snprintf(err, errlen, "item %zu: expected string fields "
				 "\"origin\" and \"similar\"", i);
			goto fail;
		}
	}
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(root, i);
		json_object_object_get_ex(o, "origin", &a);
		json_object_object_get_ex(o, "similar", &b);
		json_object_object_get_ex(json_object_array_get_idx(root, (i + 1) % n),
					  "similar", &b2);
		if ((ret = set_add(set, json_object_get_string(a),
				   (size_t)json_object_get_string_len(a),
				   json_object_get_string(b),
				   (size_t)json_object_get_string_len(b), 1)))
			goto fail;
		if (n > 1 && (ret = set_add(set, json_object_get_string(a),
					    (size_t)json_object_get_string_len(a),
					    json_object_get_string(b2),
					    (size_t)json_object_get_string_len(b2), 0)))
			goto fail;
	}
	ret = 0;
	goto out;
fail:
	if (!ret)
		ret = -EINVAL;
	eval_set_release(set);
out:
	json_object_put(root);
	json_tokener_free(tok);
	return ret;
}

static int slurp(const char *path, char **data, size_t *len, char *err,
		 size_t errlen)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 16, n = 0, got;
	char *p = NULL, *np;
	int ret;

	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(-ret));
		return ret;
	}
	for (;;) {
		np = realloc(p, cap + 1);
		if (!np) {
			free(p);
			fclose(f);
			snprintf(err, errlen, "out of memory reading '%s'", path);
			return -ENOMEM;
		}
		p = np;
		got = fread(p + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		cap *= 2;
	}
	ret = ferror(f) ? -EIO : 0;
	fclose(f);
	if (ret) {
		free(p);
		snprintf(err, errlen, "cannot read '%s'", path);
		return ret;
	}
	p[n] = '\0';
	*data = p;
	*len = n;
	return 0;
}

static enum eval_format guess(const char *path, const char *s, size_t len)
{
	const char *dot = strrchr(path, '.'), *nl = memchr(s, '\n', len);
	size_t i, tabs = 0, ll = nl ? (size_t)(nl - s) : len;

	if (dot && strcmp(dot, ".json") == 0)
		return EVAL_PARAPHRASE_JSON;
	if (dot && strcmp(dot, ".tsv") == 0)
		return EVAL_STS;
	for (i = 0; i < ll; i++)
		tabs += s[i] == '\t';
	return tabs >= 6 ? EVAL_STS : EVAL_AUTO;
}

int eval_load(const char *path, enum eval_format fmt, struct eval_set *set,
	      char *err, size_t errlen)
{
	char *data, msg[256];
	size_t len;
	int ret;

	memset(set, 0, sizeof(*set));
	if ((ret = slurp(path, &data, &len, err, errlen)))
		return ret;
	if (fmt == EVAL_AUTO)
		fmt = guess(path, data, len);
	msg[0] = '\0';
	switch (fmt) {
	case EVAL_PARAPHRASE_JSON:
		ret = parse_paraphrases(data, len, set, msg, sizeof(msg));
		break;
	case EVAL_STS:
		ret = parse_sts(data, len, set, msg, sizeof(msg));
		break;
	default:
		ret = eval_parse_csv(data, len, fmt, set, msg, sizeof(msg));
		break;
	}
	if (ret)
		snprintf(err, errlen, "'%s': %s", path, msg[0] ? msg : strerror(-ret));
	free(data);
	return ret;
}

/* ---- scoring and statistics ------------------------------------------ */

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double dot(const float *a, const float *b, int dim)
{
	double s = 0;
	int i;

	for (i = 0; i < dim; i++)
		s += (double)a[i] * b[i];
	return s;
}

int eval_score(const struct embedder *e, const struct eval_set *set,
	       double *scores, double *us, char *err, size_t errlen)
{
	float *a = malloc((size_t)e->dim * sizeof(*a));
	float *b = malloc((size_t)e->dim * sizeof(*b));
	double t = 0, t0;
	size_t i;
	int ret = 0;

	if (!a || !b) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < set->n; i++) {
		t0 = seconds();
		ret = embedder_embed(e, set->v[i].a, strlen(set->v[i].a), a);
		if (!ret)
			ret = embedder_embed(e, set->v[i].b, strlen(set->v[i].b), b);
		t += seconds() - t0;
		if (ret) {
			snprintf(err, errlen, "pair %zu: %s", i + 1,
				 embedder_last_error());
			goto out;
		}
		scores[i] = dot(a, b, e->dim);
	}
	if (us)
		*us = set->n ? t * 1e6 / (2.0 * (double)set->n) : 0;
out:
	free(a);
	free(b);
	return ret;
}

struct scored {
	double s;
	int label;
};

static int by_score_desc(const void *x, const void *y)
{
	const struct scored *a = x, *b = y;

	return a->s < b->s ? 1 : a->s > b->s ? -1 : 0;
}

static struct scored *sorted(const double *scores, const int *labels, size_t n)
{
	struct scored *v = malloc((n ? n : 1) * sizeof(*v));
	size_t i;

	if (!v)
		return NULL;
	for (i = 0; i < n; i++) {
		v[i].s = scores[i];
		v[i].label = labels[i] ? 1 : 0;
	}
	qsort(v, n, sizeof(*v), by_score_desc);
	return v;
}

double eval_auc(const double *scores, const int *labels, size_t n)
{
	struct scored *v = sorted(scores, labels, n);
	double rank_sum = 0, npos = 0, nneg;
	size_t i = 0, j, k;

	if (!v)
		return -1;
	/* ascending ranks 1..n over the descending list; ties averaged */
	while (i < n) {
		double avg;

		for (j = i; j < n && v[j].s == v[i].s; j++)
			;
		/* positions i..j-1 descending -> ascending ranks n-j+1..n-i */
		avg = ((double)(n - j + 1) + (double)(n - i)) / 2.0;
		for (k = i; k < j; k++)
			if (v[k].label) {
				rank_sum += avg;
				npos++;
			}
		i = j;
	}
	free(v);
	nneg = (double)n - npos;
	if (npos == 0 || nneg == 0)
		return -1;
	return (rank_sum - npos * (npos + 1) / 2.0) / (npos * nneg);
}

static void fill_rates(struct eval_point *pt)
{
	pt->precision = pt->tp + pt->fp ? (double)pt->tp / (double)(pt->tp + pt->fp) : 1.0;
	pt->recall = pt->tp + pt->fn ? (double)pt->tp / (double)(pt->tp + pt->fn) : 0.0;
	pt->f1 = pt->precision + pt->recall > 0 ?
		2 * pt->precision * pt->recall / (pt->precision + pt->recall) : 0;
}

void eval_at(const double *scores, const int *labels, size_t n, double t,
	     struct eval_point *pt)
{
	size_t i;

	memset(pt, 0, sizeof(*pt));
	pt->threshold = t;
	for (i = 0; i < n; i++) {
		bool hit = scores[i] >= t;

		if (labels[i])
			hit ? pt->tp++ : pt->fn++;
		else
			hit ? pt->fp++ : pt->tn++;
	}
	fill_rates(pt);
}

/* Walk thresholds from high to low; call f at every distinct score. */
static int sweep(const double *scores, const int *labels, size_t n,
		 double target, struct eval_point *pt, bool best_f1)
{
	struct scored *v = sorted(scores, labels, n);
	size_t i = 0, j, pos = 0, tp = 0, fp = 0;
	struct eval_point cur;
	bool found = false;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		pos += v[i].label;
	memset(pt, 0, sizeof(*pt));
	i = 0;
	while (i < n) {
		for (j = i; j < n && v[j].s == v[i].s; j++) {
			tp += v[j].label;
			fp += !v[j].label;
		}
		memset(&cur, 0, sizeof(cur));
		cur.threshold = v[i].s;
		cur.tp = tp;
		cur.fp = fp;
		cur.fn = pos - tp;
		cur.tn = n - pos - fp;
		fill_rates(&cur);
		if (best_f1 ? (!found || cur.f1 > pt->f1) : cur.precision >= target) {
			*pt = cur;
			found = true;
		}
		i = j;
	}
	free(v);
	return found ? 0 : -ENOENT;
}

int eval_for_precision(const double *scores, const int *labels, size_t n,
		       double target, struct eval_point *pt)
{
	return sweep(scores, labels, n, target, pt, false);
}

void eval_best_f1(const double *scores, const int *labels, size_t n,
		  struct eval_point *pt)
{
	sweep(scores, labels, n, 0, pt, true);
}

/* ---- follow-ups ------------------------------------------------------ */

static const char *field(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The engine's context rule: an entry hits a query only with the same
 * context (both none counts as the same). */
static bool context_allows(const char *stored, const char *asked, bool match)
{
	if (!match)
		return true;
	if (!stored || !asked)
		return stored == asked;
	return strcmp(stored, asked) == 0;
}

int eval_followups(const struct embedder *e, const char *path, double threshold,
		   struct eval_followups *out, char *err, size_t errlen)
{
	struct json_object *root = NULL;
	float *a = NULL, *b = NULL;
	char *data = NULL, *ctx = NULL;
	size_t len, n, i;
	double sum = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	out->max_score = -1;
	if ((ret = slurp(path, &data, &len, err, errlen)))
		return ret;
	root = json_tokener_parse(data);
	ret = -EINVAL;
	if (!root || !json_object_is_type(root, json_type_array)) {
		snprintf(err, errlen, "'%s': expected a json array of follow-up "
			 "objects", path);
		goto out;
	}
	a = malloc((size_t)e->dim * sizeof(*a));
	b = malloc((size_t)e->dim * sizeof(*b));
	if (!a || !b) {
		ret = -ENOMEM;
		goto out;
	}
	n = json_object_array_length(root);
	for (i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(root, i);
		const char *main_q = field(o, "Main Query");
		const char *main_r = field(o, "Main Query Response");
		const char *fup = field(o, "Follow-Up Query");
		double s;
		bool hit;

		if (!main_q || !fup) {
			snprintf(err, errlen, "'%s': item %zu lacks \"Main Query\" "
				 "or \"Follow-Up Query\"", path, i);
			ret = -EINVAL;
			goto out;
		}
		free(ctx);
		if (asprintf(&ctx, "%s\n%s", main_q, main_r ? main_r : "") < 0) {
			ctx = NULL;
			ret = -ENOMEM;
			goto out;
		}
		if ((ret = embedder_embed(e, main_q, strlen(main_q), a)) ||
		    (ret = embedder_embed(e, fup, strlen(fup), b))) {
			snprintf(err, errlen, "item %zu: %s", i,
				 embedder_last_error());
			goto out;
		}
		s = dot(a, b, e->dim);
		sum += s;
		if (s > out->max_score)
			out->max_score = s;
		hit = s >= threshold;
		/* the main query was stored without a context, the follow-up
		 * is asked inside its conversation */
		out->false_hits_ignore += hit && context_allows(NULL, ctx, false);
		out->false_hits_match += hit && context_allows(NULL, ctx, true);
		out->n++;
	}
	out->mean_score = out->n ? sum / (double)out->n : 0;
	ret = 0;
out:
	free(ctx);
	free(a);
	free(b);
	free(data);
	json_object_put(root);
	return ret;
}
