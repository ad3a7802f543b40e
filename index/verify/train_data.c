/*
 * train_data.c - the trainer's data: the labelled sets under ../shared,
 * their split, the distinct texts, the IDF table and the embeddings.
 *
 * Sets (eval.h readers): qqp_val.csv (is_duplicate), mrpc_train.txt
 * (Quality), STS-B sts-train.csv + sts-dev.csv with every pair kept (a
 * score >= 4 is a duplicate, anything lower is not), paraphrases_999.json
 * (reported, never trained on).
 *
 * Split rule: within a set, texts are joined into components (two texts
 * are joined when a pair links them, compared after textnorm), so a text
 * in several pairs keeps all of them on one side. A component goes by
 * FNV-1a 64 of its smallest normalised text (bytewise), modulo 10: 0-5
 * train, 6-7 val, 8-9 test. Paraphrases are all "ext".
 *
 * IDF: df of a bucket = lines of corpus/qqp_questions.txt whose content
 * keys or numbers (side.c) fall in it; idf = ln((N + 1) / (df + 1)),
 * quantised to 1/VERIFY_IDF_SCALE and capped at 255.
 *
 * Texts are embedded by use-lite one at a time, as a lookup does, on
 * worker threads that each own a fixed share of the texts, so the result
 * does not depend on timing.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "hash.h"
#include "textnorm.h"
#include "train_i.h"
#include "use_lite.h"

const char *const tset_names[TS_N] = { "qqp", "mrpc", "stsb", "para" };
const char *const tsplit_names[SP_N] = { "train", "val", "test", "ext" };

static const struct source {
	enum tset set;
	const char *rel;
	enum eval_format fmt;
	unsigned flags;
} sources[] = {
	{ TS_QQP, "data/pairs/qqp_val.csv", EVAL_QQP, 0 },
	{ TS_MRPC, "data/pairs/mrpc_train.txt", EVAL_MRPC, 0 },
	{ TS_STSB, "data/pairs/stsb/sts-train.csv", EVAL_STS, EVAL_KEEP_AMBIGUOUS },
	{ TS_STSB, "data/pairs/stsb/sts-dev.csv", EVAL_STS, EVAL_KEEP_AMBIGUOUS },
	{ TS_PARA, "data/pairs/paraphrases_999.json", EVAL_PARAPHRASE_JSON, 0 },
};
#define NSOURCES (sizeof(sources) / sizeof(sources[0]))
#define CORPUS "data/corpus/qqp_questions.txt"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint32_t text_id(const struct tdata *d, const char *t)
{
	char *const *p = bsearch(&t, d->text, d->ntext, sizeof(*d->text), cmp_str);

	return (uint32_t)(p - d->text);
}

static int fingerprint(struct tfile *f, const char *shared, const char *rel,
		       char *err, size_t errlen)
{
	char path[4096], *data;
	size_t len;
	int ret;

	snprintf(f->rel, sizeof(f->rel), "%s", rel);
	snprintf(path, sizeof(path), "%s/%s", shared, rel);
	if ((ret = eval_slurp(path, &data, &len, err, errlen)))
		return ret;
	f->bytes = len;
	f->fnv = hash_fnv1a(HASH_FNV_INIT, data, len);
	free(data);
	return 0;
}

/* Read the sets; texts are collected, sorted and made distinct. */
static int load_sets(struct tdata *d, const char *shared, char *err,
		     size_t errlen)
{
	struct eval_set sets[NSOURCES];
	size_t i, j, k, total = 0;
	char path[4096];
	int ret = 0;

	memset(sets, 0, sizeof(sets));
	for (i = 0; i < NSOURCES && !ret; i++) {
		snprintf(path, sizeof(path), "%s/%s", shared, sources[i].rel);
		ret = eval_load_flags(path, sources[i].fmt, sources[i].flags,
				      &sets[i], err, errlen);
		if (!ret)
			ret = fingerprint(&d->file[i], shared, sources[i].rel,
					  err, errlen);
		d->file[i].rows = sets[i].n;
		total += sets[i].n;
	}
	if (!ret && !(d->text = malloc(2 * total * sizeof(*d->text))))
		ret = -ENOMEM;
	if (!ret && !(d->pair = calloc(total, sizeof(*d->pair))))
		ret = -ENOMEM;
	for (i = 0, k = 0; !ret && i < NSOURCES; i++)
		for (j = 0; j < sets[i].n; j++) {
			d->text[k++] = sets[i].v[j].a;
			d->text[k++] = sets[i].v[j].b;
		}
	if (!ret) {
		qsort(d->text, 2 * total, sizeof(*d->text), cmp_str);
		for (i = 0, k = 0; i < 2 * total; i++)
			if (!k || strcmp(d->text[k - 1], d->text[i]))
				d->text[k++] = d->text[i];
		d->ntext = k;
		for (i = 0; i < k && !ret; i++)
			if (!(d->text[i] = strdup(d->text[i])))
				ret = -ENOMEM;
		if (ret)
			d->ntext = i - 1;
	}
	for (i = 0; !ret && i < NSOURCES; i++)
		for (j = 0; j < sets[i].n; j++) {
			struct tpair *p = &d->pair[d->npair++];

			p->a = text_id(d, sets[i].v[j].a);
			p->b = text_id(d, sets[i].v[j].b);
			p->set = (uint8_t)sources[i].set;
			p->label = (uint8_t)sets[i].v[j].label;
			p->grade = sets[i].v[j].grade;
		}
	for (i = 0; i < NSOURCES; i++)
		eval_set_release(&sets[i]);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory loading the data sets");
	return ret;
}

/* ---- split ----------------------------------------------------------- */

struct normtext {
	char *s;
	size_t len;
	uint32_t text;
};

static int cmp_norm(const void *a, const void *b)
{
	const struct normtext *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static uint32_t find(uint32_t *parent, uint32_t x)
{
	while (parent[x] != x) {
		parent[x] = parent[parent[x]];
		x = parent[x];
	}
	return x;
}

static int split(struct tdata *d)
{
	size_t n = d->ntext ? d->ntext : 1, k;
	struct normtext *nt = calloc(n, sizeof(*nt)), **rep = calloc(n, sizeof(*rep));
	uint32_t *nid = malloc(n * sizeof(*nid)), *parent = malloc(n * sizeof(*parent));
	uint32_t i, nn = 0, ra, rb;
	int set, ret = -ENOMEM;

	if (!nt || !rep || !nid || !parent)
		goto out;
	for (i = 0; i < d->ntext; i++) {
		size_t len = strlen(d->text[i]);

		if (!(nt[i].s = malloc(len + 1)))
			goto out;
		nt[i].len = textnorm(d->text[i], len, nt[i].s);
		nt[i].text = i;
	}
	/* ids in the order of the normalised texts: a component's smallest
	 * text is its least id, which union keeps as the root */
	qsort(nt, d->ntext, sizeof(*nt), cmp_norm);
	for (i = 0; i < d->ntext; i++) {
		if (i && cmp_norm(&nt[i - 1], &nt[i]))
			nn++;
		nid[nt[i].text] = nn;
		rep[nn] = &nt[i];
	}
	for (set = 0; set < TS_N; set++) {
		for (i = 0; i < d->ntext; i++)
			parent[i] = i;
		for (k = 0; k < d->npair; k++) {
			if (d->pair[k].set != set)
				continue;
			ra = find(parent, nid[d->pair[k].a]);
			rb = find(parent, nid[d->pair[k].b]);
			if (ra != rb)
				parent[ra > rb ? ra : rb] = ra < rb ? ra : rb;
		}
		for (k = 0; k < d->npair; k++) {
			struct tpair *p = &d->pair[k];
			uint64_t h;

			if (p->set != set)
				continue;
			if (set == TS_PARA) {
				p->split = SP_EXT;
				continue;
			}
			ra = find(parent, nid[p->a]);
			h = hash_fnv1a(HASH_FNV_INIT, rep[ra]->s, rep[ra]->len) % 10;
			p->split = h < 6 ? SP_TRAIN : h < 8 ? SP_VAL : SP_TEST;
		}
	}
	ret = 0;
out:
	for (i = 0; nt && i < d->ntext; i++)
		free(nt[i].s);
	free(nt);
	free(rep);
	free(nid);
	free(parent);
	return ret;
}

/* ---- IDF ------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int build_idf(struct tdata *d, const char *shared, char *err,
		     size_t errlen)
{
	static const uint8_t zero[VERIFY_IDF_BUCKETS];
	uint32_t *df = calloc(VERIFY_IDF_BUCKETS, sizeof(*df));
	uint32_t bk[2 * VERIFY_MAX_WORDS];
	char *data = NULL, *p, *end, *nl;
	size_t len, i;
	int ret;

	if (!df)
		return -ENOMEM;
	ret = fingerprint(&d->file[TFILES - 1], shared, CORPUS, err, errlen);
	if (!ret) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", shared, CORPUS);
		ret = eval_slurp(path, &data, &len, err, errlen);
	}
	for (p = data, end = data ? data + len : NULL; !ret && p < end; p = nl + 1) {
		struct verify_side s;
		uint32_t n = 0, m = 0, j;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if ((ret = verify_side_init_idf(&s, p, (size_t)(nl - p), zero)))
			break;
		for (j = 0; j < s.nu; j++)
			bk[n++] = (uint32_t)(s.ukey[j] % VERIFY_IDF_BUCKETS);
		for (j = 0; j < s.nnum; j++)
			bk[n++] = (uint32_t)(s.num[j] % VERIFY_IDF_BUCKETS);
		verify_side_release(&s);
		qsort(bk, n, sizeof(*bk), cmp_u32);
		for (j = 0; j < n; j++)
			if (!m++ || bk[j] != bk[j - 1])
				df[bk[j]]++;
		d->corpus_lines++;
	}
	d->file[TFILES - 1].rows = d->corpus_lines;
	for (i = 0; !ret && i < VERIFY_IDF_BUCKETS; i++) {
		double v = log(((double)d->corpus_lines + 1) / ((double)df[i] + 1));
		long q = lround(v * VERIFY_IDF_SCALE);

		d->idf[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
	}
	free(data);
	free(df);
	return ret;
}

/* ---- use-lite -------------------------------------------------------- */

struct worker {
	const struct tdata *d;
	const struct embedder *e;
	float *out;
	size_t from, to;
	int ret;
};

static void *embed_range(void *arg)
{
	struct worker *w = arg;
	size_t i;

	for (i = w->from; i < w->to && !w->ret; i++)
		w->ret = embedder_embed(w->e, w->d->text[i], strlen(w->d->text[i]),
					w->out + i * USE_LITE_DIM);
	return NULL;
}

static int embed_use(struct tdata *d, const char *spec, int jobs, char *err,
		     size_t errlen)
{
	struct embedder *e = NULL;
	struct worker w[16];
	pthread_t th[16];
	int i, ret;

	if ((ret = embedder_new_spec(spec, &e, err, errlen)))
		return ret;
	if (strncmp(e->name, "use-lite-", 9) || e->dim != USE_LITE_DIM) {
		snprintf(err, errlen, "embedder '%s' is not use-lite", spec);
		embedder_free(e);
		return -EINVAL;
	}
	snprintf(d->use_name, sizeof(d->use_name), "%s", e->name);
	if (!(d->use = malloc(d->ntext * USE_LITE_DIM * sizeof(*d->use)))) {
		embedder_free(e);
		return -ENOMEM;
	}
	jobs = jobs < 1 ? 1 : jobs > 16 ? 16 : jobs;
	for (i = 0; i < jobs; i++) {
		w[i] = (struct worker){ d, e, d->use, d->ntext * i / jobs,
					d->ntext * (i + 1) / jobs, 0 };
		if (pthread_create(&th[i], NULL, embed_range, &w[i])) {
			embed_range(&w[i]);
			th[i] = 0;
		}
	}
	for (i = 0; i < jobs; i++) {
		if (th[i])
			pthread_join(th[i], NULL);
		if (w[i].ret && !ret) {
			ret = w[i].ret;
			snprintf(err, errlen, "use-lite: %s", embedder_last_error());
		}
	}
	embedder_free(e);
	return ret;
}

int train_load(struct tdata *d, const char *shared, const char *use_spec,
	       int jobs, char *err, size_t errlen)
{
	size_t i;
	int ret;

	memset(d, 0, sizeof(*d));
	if ((ret = load_sets(d, shared, err, errlen)) ||
	    (ret = build_idf(d, shared, err, errlen)))
		return ret;
	if ((ret = split(d))) {
		snprintf(err, errlen, "out of memory splitting the data");
		return ret;
	}
	if (!(d->side = calloc(d->ntext ? d->ntext : 1, sizeof(*d->side))))
		return -ENOMEM;
	for (i = 0; i < d->ntext; i++)
		if ((ret = verify_side_init_idf(&d->side[i], d->text[i],
						strlen(d->text[i]), d->idf))) {
			snprintf(err, errlen, "out of memory reading the texts");
			return ret;
		}
	if (use_spec)
		return embed_use(d, use_spec, jobs, err, errlen);
	return 0;
}

void train_release(struct tdata *d)
{
	size_t i;

	for (i = 0; i < d->ntext; i++) {
		free(d->text[i]);
		if (d->side)
			verify_side_release(&d->side[i]);
	}
	free(d->text);
	free(d->side);
	free(d->pair);
	free(d->use);
	memset(d, 0, sizeof(*d));
}
