/*
 * eval_load.c - the labelled pair readers of eval.h.
 *
 * A small RFC 4180 CSV reader (CSV and QQP), tab splitters for STS and
 * MRPC, json-c for the paraphrase JSON; eval_load() guesses the format
 * from the name and the first line. Files are read whole.
 *
 * It does not score or count: eval.c does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int set_add_graded(struct eval_set *set, const char *a, size_t alen,
			  const char *b, size_t blen, int label, float grade)
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
	p->grade = grade;
	set->n++;
	return 0;
}

static int set_add(struct eval_set *set, const char *a, size_t alen,
		   const char *b, size_t blen, int label)
{
	return set_add_graded(set, a, alen, b, blen, label, -1);
}

int eval_format_parse(const char *name, enum eval_format *out)
{
	static const struct { const char *name; enum eval_format f; } t[] = {
		{ "auto", EVAL_AUTO }, { "csv", EVAL_CSV }, { "qqp", EVAL_QQP },
		{ "paraphrase-json", EVAL_PARAPHRASE_JSON }, { "sts", EVAL_STS },
		{ "mrpc", EVAL_MRPC },
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

/* The tab-separated lines of the tab splitters: f[] and fl[] get up to max
 * fields of the line ln[0..ll) (the last one runs to the next tab). */
static size_t split_tabs(const char *ln, size_t ll, const char **f, size_t *fl,
			 size_t max)
{
	size_t nf = 0, i, st = 0;

	for (i = 0; i <= ll && nf < max; i++) {
		if (i == ll || ln[i] == '\t') {
			f[nf] = ln + st;
			fl[nf++] = i - st;
			st = i + 1;
		}
	}
	return nf;
}

static int parse_sts(const char *s, size_t len, unsigned flags,
		     struct eval_set *set, char *err, size_t errlen)
{
	size_t pos = 0, line = 0;
	int ret;

	memset(set, 0, sizeof(*set));
	while (pos < len) {
		const char *ln = s + pos, *nl = memchr(ln, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - ln) : len - pos;
		const char *f[7];
		size_t fl[7], nf;
		double score;
		char num[32], *end;

		pos += ll + (nl ? 1 : 0);
		line++;
		if (ll && ln[ll - 1] == '\r')
			ll--;
		if (!ll)
			continue;
		nf = split_tabs(ln, ll, f, fl, 7);
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
		if (score > 2 && score < 4 && !(flags & EVAL_KEEP_AMBIGUOUS)) {
			set->skipped++;
			continue;
		}
		ret = set_add_graded(set, f[5], fl[5], f[6], fl[6], score >= 4,
				     (float)score);
		if (ret) {
			eval_set_release(set);
			return ret;
		}
	}
	return 0;
}

static bool mrpc_header(const char *s, size_t len)
{
	if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		len -= 3;
	}
	return len >= 8 && memcmp(s, "Quality\t", 8) == 0;
}

static int parse_mrpc(const char *s, size_t len, struct eval_set *set,
		      char *err, size_t errlen)
{
	size_t pos = 0, line = 0;
	int ret;

	memset(set, 0, sizeof(*set));
	if (!mrpc_header(s, len)) {
		snprintf(err, errlen, "line 1: expected the header 'Quality<TAB>#1 ID"
			 "<TAB>#2 ID<TAB>#1 String<TAB>#2 String'");
		return -EINVAL;
	}
	while (pos < len) {
		const char *ln = s + pos, *nl = memchr(ln, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - ln) : len - pos, fl[5];
		const char *f[5];

		pos += ll + (nl ? 1 : 0);
		if (line++ == 0)
			continue;   /* the header */
		if (ll && ln[ll - 1] == '\r')
			ll--;
		if (!ll)
			continue;
		if (split_tabs(ln, ll, f, fl, 5) < 5) {
			snprintf(err, errlen, "line %zu: expected 5 tab-separated "
				 "fields (quality, id 1, id 2, string 1, string 2)",
				 line);
			eval_set_release(set);
			return -EINVAL;
		}
		if (fl[0] != 1 || (f[0][0] != '0' && f[0][0] != '1')) {
			snprintf(err, errlen, "line %zu: quality '%.*s' is not 0 "
				 "or 1", line, (int)(fl[0] < 16 ? fl[0] : 16), f[0]);
			eval_set_release(set);
			return -EINVAL;
		}
		ret = set_add(set, f[3], fl[3], f[4], fl[4], f[0][0] == '1');
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

int eval_slurp(const char *path, char **data, size_t *len, char *err,
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
	if (mrpc_header(s, len))
		return EVAL_MRPC;
	for (i = 0; i < ll; i++)
		tabs += s[i] == '\t';
	return tabs >= 6 ? EVAL_STS : EVAL_AUTO;
}

int eval_load(const char *path, enum eval_format fmt, struct eval_set *set,
	      char *err, size_t errlen)
{
	return eval_load_flags(path, fmt, 0, set, err, errlen);
}

int eval_load_flags(const char *path, enum eval_format fmt, unsigned flags,
		    struct eval_set *set, char *err, size_t errlen)
{
	char *data, msg[256];
	size_t len;
	int ret;

	memset(set, 0, sizeof(*set));
	if ((ret = eval_slurp(path, &data, &len, err, errlen)))
		return ret;
	if (fmt == EVAL_AUTO)
		fmt = guess(path, data, len);
	msg[0] = '\0';
	switch (fmt) {
	case EVAL_PARAPHRASE_JSON:
		ret = parse_paraphrases(data, len, set, msg, sizeof(msg));
		break;
	case EVAL_STS:
		ret = parse_sts(data, len, flags, set, msg, sizeof(msg));
		break;
	case EVAL_MRPC:
		ret = parse_mrpc(data, len, set, msg, sizeof(msg));
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
