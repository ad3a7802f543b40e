/*
 * policy.c - parse, validate, inherit and print per-directory policies.
 *
 * Design: one typed table, key_specs[], indexed by enum policy_key, gives
 * each key its dotted name, value type, field in struct policy, bounds,
 * default, optional validator and a one-line description. Everything else
 * walks that table: policy_defaults() fills the defaults from it, the parser
 * looks keys up in it (the dotted name "quota.entries" is the key "entries"
 * inside the mapping "quota"), policy_apply() copies the keys a file sets,
 * policy_format() prints every key and policy_keys_markdown() documents
 * them. Adding a key is one enum value, one struct field and one table row.
 *
 * YAML is read with libyaml's document API (yaml_parser_load); this file
 * only walks the node tree. A scalar is read by its key's type, not by YAML
 * tag resolution: plain and quoted scalars mean the same (threshold: "0.9"
 * is accepted) and tags are ignored. Booleans are YAML 1.2's true/false
 * (true, True, TRUE, ...), never yes/no/on/off. Numbers are plain decimals
 * (0.85, .5, 1), without exponents, hex, .inf or .nan. Every error is
 * -EINVAL with a 1-based line and column taken from libyaml's marks.
 *
 * It does not read files, walk directories or cache parsed policies: the
 * caller hands in bytes and owns the struct policy_file. There is no global
 * mutable state; every function may be called from any thread.
 */
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define POLICY_BUG(msg) policy_bug(__FILE__, __LINE__, (msg))

static _Noreturn void policy_bug(const char *file, int line, const char *msg)
{
	fprintf(stderr, "%s:%d: bug: %s\n", file, line, msg);
	abort();
}

/* ---- the table ------------------------------------------------------- */

enum value_type {
	VT_FLOAT,    /* double */
	VT_DURATION, /* int64_t seconds */
	VT_MILLIS,   /* int64_t milliseconds ("500ms", "2s") */
	VT_SIZE,     /* int64_t bytes */
	VT_COUNT,    /* int64_t */
	VT_INT,      /* int */
	VT_ENUM,     /* an enum, stored as int; the index into choices */
	VT_BOOL,     /* bool */
	VT_STRING,   /* char[max + 1] */
};

struct key_spec {
	const char *name;            /* dotted: "quota.entries" */
	enum value_type type;
	size_t offset;               /* of the field in struct policy */
	double fmin, fmax, fdef;     /* VT_FLOAT */
	int64_t min, max, def;       /* integer types; VT_ENUM/VT_BOOL default;
				      * VT_STRING: max is the longest length */
	const char *sdef;            /* VT_STRING */
	const char *const *choices;  /* VT_ENUM names */
	const char *allowed;         /* VT_STRING: the allowed values, for docs */
	/* Extra check after parsing: 0, or -EINVAL with the whole message. */
	int (*validate)(const void *value, char *msg, size_t size);
	const char *doc;
};

_Static_assert(sizeof(enum policy_ttl_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum policy_eviction) == sizeof(int), "enum size");
_Static_assert(sizeof(enum policy_context) == sizeof(int), "enum size");

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define DAY ((int64_t)86400)

static const char *const ttl_modes[] = { "absolute", "sliding", NULL };
static const char *const evictions[] = { "lru", "lfu", "fifo", NULL };
static const char *const contexts[] = { "match", "ignore", NULL };
static int validate_embedder(const void *value, char *msg, size_t size);
static int validate_url(const void *value, char *msg, size_t size);
static int validate_model(const void *value, char *msg, size_t size);
static int validate_env_name(const void *value, char *msg, size_t size);
static int validate_load_name(const void *value, char *msg, size_t size);

#define FIELD(f) .offset = offsetof(struct policy, f)

static const struct key_spec key_specs[POLICY_NKEYS] = {
	[POLICY_THRESHOLD] = { "threshold", VT_FLOAT, FIELD(threshold),
		.fmin = 0, .fmax = 1, .fdef = 0.90,
		.doc = "cosine similarity a stored query needs to be a hit" },
	[POLICY_TTL] = { "ttl", VT_DURATION, FIELD(ttl),
		.min = 0, .max = 36500 * DAY, .def = 7 * DAY,
		.doc = "how long an entry lives; 0 = never expires" },
	[POLICY_TTL_MODE] = { "ttl_mode", VT_ENUM, FIELD(ttl_mode),
		.choices = ttl_modes, .def = POLICY_TTL_ABSOLUTE,
		.doc = "absolute: counted from the store; sliding: from the last hit" },
	[POLICY_QUOTA_ENTRIES] = { "quota.entries", VT_COUNT,
		FIELD(quota_entries), .min = 0, .max = INT64_MAX, .def = 0,
		.doc = "most entries kept; 0 = unlimited" },
	[POLICY_QUOTA_BYTES] = { "quota.bytes", VT_SIZE, FIELD(quota_bytes),
		.min = 0, .max = INT64_MAX, .def = 0,
		.doc = "most bytes of entries kept; 0 = unlimited" },
	[POLICY_EVICTION] = { "eviction", VT_ENUM, FIELD(eviction),
		.choices = evictions, .def = POLICY_EVICT_LRU,
		.doc = "which entry goes first when a quota is reached" },
	[POLICY_CACHE] = { "cache", VT_BOOL, FIELD(cache), .def = 1,
		.doc = "false: never store or serve responses here" },
	[POLICY_CONTEXT] = { "context", VT_ENUM, FIELD(context),
		.choices = contexts, .def = POLICY_CONTEXT_MATCH,
		.doc = "match: a hit needs the same context too; ignore: the query alone decides" },
	[POLICY_LIMITS_QUERY_BYTES] = { "limits.query_bytes", VT_SIZE,
		FIELD(query_bytes), .min = 1, .max = 16 * MIB, .def = 64 * KIB,
		.doc = "largest query accepted" },
	[POLICY_LIMITS_RESPONSE_BYTES] = { "limits.response_bytes", VT_SIZE,
		FIELD(response_bytes), .min = 1, .max = GIB, .def = 16 * MIB,
		.doc = "largest response stored" },
	[POLICY_HNSW_M] = { "hnsw.m", VT_INT, FIELD(hnsw_m),
		.min = 4, .max = 128, .def = 32,
		.doc = "HNSW links per node (fixed when the index is built)" },
	[POLICY_HNSW_EF_CONSTRUCTION] = { "hnsw.ef_construction", VT_INT,
		FIELD(hnsw_ef_construction), .min = 8, .max = 2048, .def = 128,
		.doc = "HNSW candidate list size while inserting" },
	[POLICY_HNSW_EF_SEARCH] = { "hnsw.ef_search", VT_INT,
		FIELD(hnsw_ef_search), .min = 1, .max = 4096, .def = 32,
		.doc = "HNSW candidate list size while searching" },
	[POLICY_EMBEDDER] = { "embedder", VT_STRING, FIELD(embedder),
		.max = POLICY_EMBEDDER_MAX - 1, .sdef = "builtin",
		.allowed = "builtin, model2vec:/ABSOLUTE/DIR, http, use-lite, "
			   "use-lite:/ABSOLUTE/DIR",
		.validate = validate_embedder,
		.doc = "how text becomes a vector: the built-in lexical embedder, "
		       "a Model2Vec model directory, the http.* endpoint, or the "
		       "Universal Sentence Encoder lite (its installed model, or "
		       "a copy in another directory)" },
	[POLICY_HTTP_URL] = { "http.url", VT_STRING, FIELD(http_url),
		.max = POLICY_URL_MAX - 1, .sdef = "",
		.allowed = "http://... or https://...",
		.validate = validate_url,
		.doc = "embedder http: the OpenAI-compatible endpoint, e.g. "
		       "http://127.0.0.1:11434/v1/embeddings" },
	[POLICY_HTTP_MODEL] = { "http.model", VT_STRING, FIELD(http_model),
		.max = POLICY_NAME_MAX - 1, .sdef = "",
		.allowed = "a model name", .validate = validate_model,
		.doc = "embedder http: the model the endpoint runs" },
	[POLICY_HTTP_DIMENSIONS] = { "http.dimensions", VT_INT,
		FIELD(http_dimensions), .min = 0, .max = 65536, .def = 0,
		.doc = "embedder http: vector size to request; 0 = the model's own "
		       "(learnt from the first answer)" },
	[POLICY_HTTP_API_KEY_ENV] = { "http.api_key_env", VT_STRING,
		FIELD(http_api_key_env), .max = POLICY_NAME_MAX - 1, .sdef = "",
		.allowed = "an environment variable name",
		.validate = validate_env_name,
		.doc = "embedder http: the NAME of the environment variable "
		       "holding the API key (never the key itself); \"\" = none" },
	[POLICY_HTTP_TIMEOUT] = { "http.timeout", VT_MILLIS,
		FIELD(http_timeout_ms), .min = 1, .max = 600000, .def = 2000,
		.doc = "embedder http: longest wait for one request; after it the "
		       "lookup is a miss" },
	[POLICY_HTTP_RETRIES] = { "http.retries", VT_INT, FIELD(http_retries),
		.min = 0, .max = 10, .def = 1,
		.doc = "embedder http: extra attempts after a failed request" },
	[POLICY_HTTP_BATCH] = { "http.batch", VT_INT, FIELD(http_batch),
		.min = 1, .max = 2048, .def = 16,
		.doc = "embedder http: most concurrent queries sent in one request" },
	[POLICY_MODEL] = { "model", VT_STRING, FIELD(model),
		.max = POLICY_NAME_MAX - 1, .sdef = "",
		.allowed = "a name of letters, digits, '.', '_', '-'",
		.validate = validate_load_name,
		.doc = "the downstream model this category fronts; its load is "
		       "reported in MOUNTPOINT/.load/NAME" },
	[POLICY_ADAPTIVE_ENABLED] = { "adaptive.enabled", VT_BOOL,
		FIELD(adaptive_enabled), .def = 0,
		.doc = "follow the model's load: loosen threshold and lengthen ttl "
		       "while it is overloaded" },
	[POLICY_ADAPTIVE_THRESHOLD_MIN] = { "adaptive.threshold_min", VT_FLOAT,
		FIELD(adaptive_threshold_min), .fmin = 0, .fmax = 1, .fdef = 0.80,
		.doc = "the threshold under sustained high load (never above threshold)" },
	[POLICY_ADAPTIVE_TTL_MAX] = { "adaptive.ttl_max", VT_DURATION,
		FIELD(adaptive_ttl_max), .min = 0, .max = 36500 * DAY, .def = 30 * DAY,
		.doc = "the ttl under sustained high load (never below ttl; 0 = never expires)" },
	[POLICY_ADAPTIVE_HIGH] = { "adaptive.high", VT_FLOAT,
		FIELD(adaptive_high), .fmin = 0, .fmax = 1, .fdef = 0.80,
		.doc = "load (0..1) at or above which the category adapts" },
	[POLICY_ADAPTIVE_LOW] = { "adaptive.low", VT_FLOAT,
		FIELD(adaptive_low), .fmin = 0, .fmax = 1, .fdef = 0.50,
		.doc = "load at or below which it returns to normal (hysteresis)" },
	[POLICY_ADAPTIVE_RATE] = { "adaptive.rate", VT_FLOAT,
		FIELD(adaptive_rate), .fmin = 0.001, .fmax = 1000, .fdef = 0.2,
		.doc = "how fast to move: share of the way between normal and full "
		       "adaptation per second" },
	[POLICY_ADAPTIVE_STALE_AFTER] = { "adaptive.stale_after", VT_DURATION,
		FIELD(adaptive_stale_after), .min = 1, .max = 36500 * DAY, .def = 30,
		.doc = "a load report older than this counts as normal load" },
	[POLICY_ADAPTIVE_LEARN_THRESHOLD] = { "adaptive.learn_threshold", VT_BOOL,
		FIELD(adaptive_learn_threshold), .def = 0,
		.doc = "a wrong hit reported in NAME.feedback raises the threshold "
		       "just above its score (bounded, decaying back)" },
	[POLICY_ADAPTIVE_LEARN_DECAY] = { "adaptive.learn_decay", VT_DURATION,
		FIELD(adaptive_learn_decay), .min = 1, .max = 36500 * DAY, .def = 3600,
		.doc = "how long a learnt threshold takes to decay back" },
	[POLICY_LLM_COST_MS] = { "llm_cost_ms", VT_INT, FIELD(llm_cost_ms),
		.min = 0, .max = 86400000, .def = 0,
		.doc = "what a miss costs downstream, in milliseconds (for break-even "
		       "accounting in .stats); 0 = unknown" },
	[POLICY_AUTO_DISABLE] = { "auto_disable", VT_DURATION,
		FIELD(auto_disable), .min = 0, .max = 36500 * DAY, .def = 0,
		.doc = "stop storing after the hit rate stayed below break-even for "
		       "this long (needs llm_cost_ms); 0 = never" },
	[POLICY_FILL_TIMEOUT] = { "fill_timeout", VT_MILLIS,
		FIELD(fill_timeout_ms), .min = 0, .max = 600000, .def = 0,
		.doc = "coalesce misses: a query matching one whose fill is pending "
		       "waits up to this long for it; 0 = off" },
};

/* ---- small helpers --------------------------------------------------- */

/* An snprintf-style appender: counts what it would write past the end. */
struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void out_printf(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	char *dst = o->len < o->size ? o->buf + o->len : NULL;
	size_t room = o->len < o->size ? o->size - o->len : 0;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

static int out_result(const struct out *o)
{
	if (o->size > 0 && o->len == 0)
		o->buf[0] = '\0';
	return o->len > INT_MAX ? INT_MAX : (int)o->len;
}

/* Copy user text for a message: at most 40 bytes, control bytes as '?'. */
static const char *show(const char *s, size_t len, char *buf, size_t size)
{
	const size_t most = 40;
	size_t i, n = len > most ? most : len;

	if (n + 4 > size)
		n = size > 4 ? size - 4 : 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (n < len && size >= 4)
		memcpy(buf + i, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

static bool text_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

static void *field_of(const struct key_spec *ks, struct policy *p)
{
	return (char *)p + ks->offset;
}

static const void *cfield_of(const struct key_spec *ks, const struct policy *p)
{
	return (const char *)p + ks->offset;
}

static size_t field_size(const struct key_spec *ks)
{
	switch (ks->type) {
	case VT_FLOAT:
		return sizeof(double);
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
		return sizeof(int64_t);
	case VT_INT:
	case VT_ENUM:
		return sizeof(int);
	case VT_BOOL:
		return sizeof(bool);
	case VT_STRING:
		return (size_t)ks->max + 1;
	}
	POLICY_BUG("unknown value type");
}

/* builtin, http, use-lite, model2vec:/ABSOLUTE/PATH, use-lite:/ABSOLUTE/PATH
 * (the directory is checked when the embedder is created, not here: the
 * parser reads no files). */
static int validate_embedder(const void *value, char *msg, size_t size)
{
	const char *name = value, *path;
	char shown[48];
	size_t i;

	if (strcmp(name, "builtin") == 0 || strcmp(name, "http") == 0 ||
	    strcmp(name, "use-lite") == 0)
		return 0;
	if (strncmp(name, "model2vec:", 10) == 0 ||
	    strncmp(name, "use-lite:", 9) == 0) {
		path = strchr(name, ':') + 1;
		for (i = 0; path[i]; i++)
			if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
				break;
		if (path[0] == '/' && !path[i])
			return 0;
		snprintf(msg, size, "embedder: '%s' needs an absolute model "
			 "directory, like '%.*s:/srv/models/%s'",
			 show(name, strlen(name), shown, sizeof(shown)),
			 (int)(path - 1 - name), name,
			 name[0] == 'm' ? "potion-base-8M" : "use-lite");
		return -EINVAL;
	}
	snprintf(msg, size, "unknown embedder '%s' (known: builtin, "
		 "model2vec:/ABSOLUTE/DIR, http, use-lite, use-lite:/ABSOLUTE/DIR)",
		 show(name, strlen(name), shown, sizeof(shown)));
	return -EINVAL;
}

static bool has_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int validate_url(const void *value, char *msg, size_t size)
{
	const char *url = value;
	char shown[48];

	if ((strncmp(url, "http://", 7) == 0 && url[7]) ||
	    (strncmp(url, "https://", 8) == 0 && url[8])) {
		if (!has_space_or_control(url))
			return 0;
	}
	snprintf(msg, size, "http.url: '%s' is not an http:// or https:// url "
		 "(like 'http://127.0.0.1:11434/v1/embeddings')",
		 show(url, strlen(url), shown, sizeof(shown)));
	return -EINVAL;
}

static int validate_model(const void *value, char *msg, size_t size)
{
	const char *model = value;
	const char *s;
	char shown[48];

	for (s = model; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			break;
	if (model[0] && !*s)
		return 0;
	snprintf(msg, size, "http.model: '%s' is not a model name",
		 show(model, strlen(model), shown, sizeof(shown)));
	return -EINVAL;
}

/* [A-Za-z_][A-Za-z0-9_]*, or "" for no key. A value that looks like a key
 * itself ("sk-...") is refused with a hint, without echoing it. */
static int validate_env_name(const void *value, char *msg, size_t size)
{
	const char *name = value;
	size_t i;

	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      c == '_' || (i && c >= '0' && c <= '9')))
			break;
	}
	if (!name[i])
		return 0;
	snprintf(msg, size, "http.api_key_env: expected the name of an "
		 "environment variable holding the key (like OPENAI_API_KEY), "
		 "not the key itself; the value is not shown");
	return -EINVAL;
}

/* A model name doubles as a file name under .load/: keep it plain. */
static int validate_load_name(const void *value, char *msg, size_t size)
{
	const char *s = value;

	for (const char *c = s; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-')
			continue;
		snprintf(msg, size, "model: '%.40s' may only use letters, digits, "
			 "'.', '_' and '-'", s);
		return -EINVAL;
	}
	if (!strcmp(s, ".") || !strcmp(s, "..")) {
		snprintf(msg, size, "model: '%s' is not a name", s);
		return -EINVAL;
	}
	return 0;
}

int policy_check(const struct policy *p, char *msg, size_t size)
{
	if (p->adaptive_low > p->adaptive_high) {
		snprintf(msg, size, "adaptive.low (%g) must not be above adaptive.high (%g)",
			 p->adaptive_low, p->adaptive_high);
		return -EINVAL;
	}
	if (p->adaptive_enabled && !p->model[0]) {
		snprintf(msg, size, "adaptive.enabled needs model: NAME (the model "
			 "whose load is reported in .load/NAME)");
		return -EINVAL;
	}
	if (p->auto_disable && !p->llm_cost_ms) {
		snprintf(msg, size, "auto_disable needs llm_cost_ms (what a miss costs)");
		return -EINVAL;
	}
	if (strcmp(p->embedder, "http") != 0)
		return 0;
	if (!p->http_url[0]) {
		snprintf(msg, size, "embedder 'http' needs http.url (like "
			 "'http: {url: http://127.0.0.1:11434/v1/embeddings, "
			 "model: nomic-embed-text}')");
		return -EINVAL;
	}
	if (!p->http_model[0]) {
		snprintf(msg, size, "embedder 'http' needs http.model (the "
			 "model name the endpoint '%s' runs)", p->http_url);
		return -EINVAL;
	}
	return 0;
}

/* ---- numbers, durations, sizes --------------------------------------- */

static const struct {
	const char *suffix;
	int64_t mult;
} size_units[] = {
	/* formatting prefers earlier rows when lengths tie */
	{ "EiB", (int64_t)1 << 60 }, { "PiB", (int64_t)1 << 50 },
	{ "TiB", (int64_t)1 << 40 }, { "GiB", GIB }, { "MiB", MIB },
	{ "KiB", KIB },
	{ "EB", INT64_C(1000000000000000000) },
	{ "PB", INT64_C(1000000000000000) }, { "TB", INT64_C(1000000000000) },
	{ "GB", 1000000000 }, { "MB", 1000000 }, { "KB", 1000 },
	{ "kB", 1000 }, { "B", 1 },
};

static const struct {
	char suffix;
	int64_t mult;
} duration_units[] = {
	{ 'd', DAY }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};

/*
 * Leading decimal digits of s[*i..len) -> *v. 0, -EINVAL when there is no
 * digit, -ERANGE past INT64_MAX.
 */
static int parse_digits(const char *s, size_t len, size_t *i, int64_t *v)
{
	size_t start = *i;
	int64_t acc = 0;
	bool overflow = false;

	for (; *i < len && s[*i] >= '0' && s[*i] <= '9'; (*i)++) {
		int d = s[*i] - '0';

		if (acc > (INT64_MAX - d) / 10)
			overflow = true;
		else
			acc = acc * 10 + d;
	}
	if (*i == start)
		return -EINVAL;
	*v = acc;
	return overflow ? -ERANGE : 0;
}

/* Optional sign, then digits. -ERANGE when negative or too large. */
static int parse_whole(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	int64_t v;
	int r;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	r = parse_digits(s, len, &i, &v);
	if (r == -EINVAL || i != len)
		return -EINVAL;
	if (r < 0)
		return r;
	*out = neg ? -v : v;
	return 0;
}

static int parse_duration_n(const char *s, size_t len, int64_t *out)
{
	size_t i = 0, u;
	bool neg = false;
	int64_t v;
	int r;

	if (i < len && s[i] == '-') {
		neg = true;
		i++;
	}
	r = parse_digits(s, len, &i, &v);
	if (r == -EINVAL)
		return r;
	if (i == len) {
		u = sizeof(duration_units) / sizeof(duration_units[0]) - 1;
	} else {
		for (u = 0; u < sizeof(duration_units) / sizeof(duration_units[0]); u++)
			if (s[i] == duration_units[u].suffix)
				break;
		if (u == sizeof(duration_units) / sizeof(duration_units[0]) ||
		    i + 1 != len)
			return -EINVAL;
	}
	if (r < 0 || neg || v > INT64_MAX / duration_units[u].mult)
		return -ERANGE;
	*out = v * duration_units[u].mult;
	return 0;
}

static int parse_size_n(const char *s, size_t len, int64_t *out)
{
	size_t i = 0, u;
	bool neg = false;
	int64_t v, mult = 1;
	int r;

	if (i < len && s[i] == '-') {
		neg = true;
		i++;
	}
	r = parse_digits(s, len, &i, &v);
	if (r == -EINVAL)
		return r;
	if (i < len) {
		for (u = 0; u < sizeof(size_units) / sizeof(size_units[0]); u++)
			if (text_is(s + i, len - i, size_units[u].suffix))
				break;
		if (u == sizeof(size_units) / sizeof(size_units[0]))
			return -EINVAL;
		mult = size_units[u].mult;
	}
	if (r < 0 || neg || v > INT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

/*
 * [+-]digits[.digits] or [+-].digits -> double. Up to 17 significant
 * digits count; further fraction digits are dropped. -ERANGE for a huge
 * integer part, -EINVAL for anything else that is not such a number.
 */
static int parse_decimal(const char *s, size_t len, double *out)
{
	static const double pow10[] = {
		1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
		1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
	};
	const uint64_t cap = UINT64_C(10000000000000000); /* 1e16 */
	size_t i = 0;
	bool neg = false, any = false, huge = false;
	uint64_t mant = 0;
	int frac = 0;
	double d;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		any = true;
		if (mant >= cap)
			huge = true;
		else
			mant = mant * 10 + (uint64_t)(s[i] - '0');
	}
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			any = true;
			if (mant < cap && frac < 17) {
				mant = mant * 10 + (uint64_t)(s[i] - '0');
				frac++;
			}
		}
	}
	if (!any || i != len)
		return -EINVAL;
	if (huge)
		return -ERANGE;
	d = (double)mant / pow10[frac];
	*out = neg ? -d : d;
	return 0;
}

/* "500ms", or a duration in seconds as parse_duration_n, -> milliseconds. */
static int parse_millis_n(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	int64_t v;
	int r;

	if (len > 2 && s[len - 2] == 'm' && s[len - 1] == 's') {
		if (len > 0 && s[0] == '-')
			return -ERANGE;
		r = parse_digits(s, len - 2, &i, &v);
		if (r == -EINVAL || i != len - 2)
			return -EINVAL;
		if (r < 0)
			return r;
		*out = v;
		return 0;
	}
	r = parse_duration_n(s, len, &v);
	if (r < 0)
		return r;
	if (v > INT64_MAX / 1000)
		return -ERANGE;
	*out = v * 1000;
	return 0;
}

int policy_parse_millis(const char *s, int64_t *out)
{
	return parse_millis_n(s, strlen(s), out) < 0 ? -EINVAL : 0;
}

int policy_parse_duration(const char *s, int64_t *out)
{
	return parse_duration_n(s, strlen(s), out) < 0 ? -EINVAL : 0;
}

int policy_parse_size(const char *s, int64_t *out)
{
	return parse_size_n(s, strlen(s), out) < 0 ? -EINVAL : 0;
}

void policy_format_duration(int64_t secs, char *buf, size_t size)
{
	size_t u;

	if (secs == 0) {
		snprintf(buf, size, "0");
		return;
	}
	for (u = 0; u < sizeof(duration_units) / sizeof(duration_units[0]); u++)
		if (secs % duration_units[u].mult == 0)
			break;
	snprintf(buf, size, "%" PRId64 "%c", secs / duration_units[u].mult,
		 duration_units[u].suffix);
}

void policy_format_size(int64_t bytes, char *buf, size_t size)
{
	char best[32], cand[32];
	size_t u;

	snprintf(best, sizeof(best), "%" PRId64, bytes);
	for (u = 0; bytes > 0 && u < sizeof(size_units) / sizeof(size_units[0]); u++) {
		if (size_units[u].mult == 1 || bytes % size_units[u].mult)
			continue;
		snprintf(cand, sizeof(cand), "%" PRId64 "%s",
			 bytes / size_units[u].mult, size_units[u].suffix);
		/* binary units win ties with the plain number, decimal lose */
		if (strlen(cand) < strlen(best) ||
		    (strlen(cand) == strlen(best) && cand[strlen(cand) - 2] == 'i'))
			memcpy(best, cand, sizeof(best));
	}
	snprintf(buf, size, "%s", best);
}

/* Up to 4 decimals, no trailing zeros: 0.8, 0.85, 1. */
static void format_float(double d, char *buf, size_t size)
{
	char tmp[64];
	size_t n;

	snprintf(tmp, sizeof(tmp), "%.4f", d);
	if (strchr(tmp, '.')) {
		n = strlen(tmp);
		while (tmp[n - 1] == '0')
			tmp[--n] = '\0';
		if (tmp[n - 1] == '.')
			tmp[--n] = '\0';
	}
	if (strcmp(tmp, "-0") == 0)
		snprintf(tmp, sizeof(tmp), "0");
	snprintf(buf, size, "%s", tmp);
}

static void format_int(const struct key_spec *ks, int64_t v, char *buf, size_t size)
{
	if (ks->type == VT_MILLIS && v % 1000)
		snprintf(buf, size, "%" PRId64 "ms", v);
	else if (ks->type == VT_MILLIS)
		policy_format_duration(v / 1000, buf, size);
	else if (ks->type == VT_DURATION)
		policy_format_duration(v, buf, size);
	else if (ks->type == VT_SIZE)
		policy_format_size(v, buf, size);
	else
		snprintf(buf, size, "%" PRId64, v);
}

/* "0..1", "1..16MiB", "0 or more", "absolute, sliding". */
static void format_range(const struct key_spec *ks, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	char lo[32], hi[32];
	size_t i;

	switch (ks->type) {
	case VT_FLOAT:
		format_float(ks->fmin, lo, sizeof(lo));
		format_float(ks->fmax, hi, sizeof(hi));
		out_printf(&o, "%s..%s", lo, hi);
		break;
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
	case VT_INT:
		format_int(ks, ks->min, lo, sizeof(lo));
		format_int(ks, ks->max, hi, sizeof(hi));
		if (ks->max == INT64_MAX)
			out_printf(&o, "%s or more", lo);
		else
			out_printf(&o, "%s..%s", lo, hi);
		break;
	case VT_ENUM:
		for (i = 0; ks->choices && ks->choices[i]; i++)
			out_printf(&o, "%s%s", i ? ", " : "", ks->choices[i]);
		break;
	case VT_STRING:
		out_printf(&o, "%s", ks->allowed ? ks->allowed : "text");
		break;
	case VT_BOOL:
		out_printf(&o, "true, false");
		break;
	}
	out_result(&o);
}

/* What a value of this key looks like, for "expected ..." messages. */
static void format_form(const struct key_spec *ks, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	char range[128];
	size_t i;

	switch (ks->type) {
	case VT_FLOAT:
		format_float(ks->fmin, range, sizeof(range));
		out_printf(&o, "a number from %s", range);
		format_float(ks->fmax, range, sizeof(range));
		out_printf(&o, " to %s", range);
		break;
	case VT_DURATION:
		out_printf(&o, "a duration like 30s, 5m, 2h, 7d or 0");
		break;
	case VT_MILLIS:
		out_printf(&o, "a duration like 500ms, 2s or 1m");
		break;
	case VT_SIZE:
		out_printf(&o, "a size like 512KiB, 64MiB, 2GiB or a number of bytes");
		break;
	case VT_COUNT:
	case VT_INT:
		out_printf(&o, "a whole number");
		break;
	case VT_ENUM:
		out_printf(&o, "one of");
		for (i = 0; ks->choices[i]; i++)
			out_printf(&o, "%s %s", i ? "," : "", ks->choices[i]);
		break;
	case VT_BOOL:
		out_printf(&o, "true or false");
		break;
	case VT_STRING:
		out_printf(&o, "a name");
		break;
	}
	out_result(&o);
}

static const char *placeholder(const struct key_spec *ks)
{
	switch (ks->type) {
	case VT_FLOAT:
		return "NUMBER";
	case VT_DURATION:
	case VT_MILLIS:
		return "DURATION";
	case VT_SIZE:
		return "SIZE";
	case VT_COUNT:
	case VT_INT:
		return "N";
	case VT_ENUM:
		return "NAME";
	case VT_BOOL:
		return "true|false";
	case VT_STRING:
		return "NAME";
	}
	POLICY_BUG("unknown value type");
}

/* ---- defaults, apply, print ------------------------------------------ */

static void value_string(const struct key_spec *ks, const struct policy *p,
			 char *buf, size_t size)
{
	const void *field = cfield_of(ks, p);
	int64_t i64;
	double d;
	int i;
	bool b;

	switch (ks->type) {
	case VT_FLOAT:
		memcpy(&d, field, sizeof(d));
		format_float(d, buf, size);
		return;
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
		memcpy(&i64, field, sizeof(i64));
		format_int(ks, i64, buf, size);
		return;
	case VT_INT:
		memcpy(&i, field, sizeof(i));
		snprintf(buf, size, "%d", i);
		return;
	case VT_ENUM:
		memcpy(&i, field, sizeof(i));
		for (int k = 0; ks->choices[k]; k++)
			if (k == i) {
				snprintf(buf, size, "%s", ks->choices[k]);
				return;
			}
		snprintf(buf, size, "?%d", i);
		return;
	case VT_BOOL:
		memcpy(&b, field, sizeof(b));
		snprintf(buf, size, "%s", b ? "true" : "false");
		return;
	case VT_STRING:
		/* an empty string prints as "" so the line still parses */
		snprintf(buf, size, "%s", *(const char *)field ?
			 (const char *)field : "\"\"");
		return;
	}
	POLICY_BUG("unknown value type");
}

void policy_defaults(struct policy *p)
{
	size_t k;

	memset(p, 0, sizeof(*p));
	for (k = 0; k < POLICY_NKEYS; k++) {
		const struct key_spec *ks = &key_specs[k];
		void *field = field_of(ks, p);
		int i = (int)ks->def;
		bool b = ks->def != 0;

		switch (ks->type) {
		case VT_FLOAT:
			memcpy(field, &ks->fdef, sizeof(double));
			break;
		case VT_DURATION:
		case VT_MILLIS:
		case VT_SIZE:
		case VT_COUNT:
			memcpy(field, &ks->def, sizeof(int64_t));
			break;
		case VT_INT:
		case VT_ENUM:
			memcpy(field, &i, sizeof(i));
			break;
		case VT_BOOL:
			memcpy(field, &b, sizeof(b));
			break;
		case VT_STRING:
			snprintf(field, field_size(ks), "%s", ks->sdef);
			break;
		}
		p->source[k] = NULL;
	}
}

const char *policy_key_name(enum policy_key k)
{
	if ((unsigned)k >= POLICY_NKEYS)
		POLICY_BUG("policy key out of range");
	return key_specs[k].name;
}

int policy_format(const struct policy *p, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	char value[POLICY_VALUE_MAX + 4], line[POLICY_VALUE_MAX + 64];
	size_t k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		value_string(&key_specs[k], p, value, sizeof(value));
		snprintf(line, sizeof(line), "%s: %s", key_specs[k].name, value);
		out_printf(&o, "%-31s # %s\n", line,
			   p->source[k] ? p->source[k] : "default");
	}
	return out_result(&o);
}

int policy_keys_markdown(char *buf, size_t size)
{
	static const char *const type_names[] = {
		[VT_FLOAT] = "number", [VT_DURATION] = "duration",
		[VT_MILLIS] = "duration",
		[VT_SIZE] = "size", [VT_COUNT] = "integer",
		[VT_INT] = "integer", [VT_ENUM] = "choice",
		[VT_BOOL] = "boolean", [VT_STRING] = "string",
	};
	struct out o = { buf, size, 0 };
	struct policy def;
	char value[POLICY_VALUE_MAX + 4], range[128];
	size_t k;

	policy_defaults(&def);
	out_printf(&o, "| key | type | default | allowed | meaning |\n");
	out_printf(&o, "|---|---|---|---|---|\n");
	for (k = 0; k < POLICY_NKEYS; k++) {
		const struct key_spec *ks = &key_specs[k];

		value_string(ks, &def, value, sizeof(value));
		format_range(ks, range, sizeof(range));
		out_printf(&o, "| `%s` | %s | `%s` | %s | %s |\n", ks->name,
			   type_names[ks->type], value, range, ks->doc);
	}
	return out_result(&o);
}

/* ---- policy files ---------------------------------------------------- */

struct policy_file {
	char *source;
	bool set[POLICY_NKEYS];
	struct policy values;   /* only keys with set[k] are meaningful */
};

void policy_file_free(struct policy_file *f)
{
	if (!f)
		return;
	free(f->source);
	free(f);
}

bool policy_file_sets(const struct policy_file *f, enum policy_key k)
{
	if ((unsigned)k >= POLICY_NKEYS)
		POLICY_BUG("policy key out of range");
	return f->set[k];
}

void policy_apply(struct policy *p, const struct policy_file *f)
{
	size_t k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		const struct key_spec *ks = &key_specs[k];

		if (!f->set[k])
			continue;
		memcpy(field_of(ks, p), cfield_of(ks, &f->values), field_size(ks));
		p->source[k] = f->source;
	}
}

struct parse_ctx {
	yaml_document_t *doc;
	struct policy_file *f;
	struct policy_error *err;
};

static int fail(struct policy_error *err, yaml_mark_t mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct policy_error *err, yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;

	err->line = mark.line >= INT_MAX ? INT_MAX : (int)mark.line + 1;
	err->column = mark.column >= INT_MAX ? INT_MAX : (int)mark.column + 1;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "a mapping", "a sequence", "an empty value" or the quoted scalar. */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
	char shown[48];

	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a sequence";
	if (n->type != YAML_SCALAR_NODE)
		return "nothing";
	if (n->data.scalar.length == 0 &&
	    n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		return "an empty value";
	snprintf(buf, size, "'%s'", show((const char *)n->data.scalar.value,
					 n->data.scalar.length, shown,
					 sizeof(shown)));
	return buf;
}

static int parse_leaf(struct parse_ctx *c, size_t k, const yaml_node_t *node)
{
	const struct key_spec *ks = &key_specs[k];
	void *field = field_of(ks, &c->f->values);
	char form[160], range[64], what[64], shown[48];
	const char *s;
	size_t len, i;
	int64_t v;
	double d;
	int r;

	format_form(ks, form, sizeof(form));
	if (node->type != YAML_SCALAR_NODE ||
	    (node->data.scalar.length == 0 &&
	     node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
		return fail(c->err, node->start_mark, "%s: expected %s, got %s",
			    ks->name, form, describe(node, what, sizeof(what)));
	s = (const char *)node->data.scalar.value;
	len = node->data.scalar.length;
	show(s, len, shown, sizeof(shown));
	format_range(ks, range, sizeof(range));

	switch (ks->type) {
	case VT_FLOAT:
		r = parse_decimal(s, len, &d);
		if (r == -EINVAL)
			break;
		if (r < 0 || !(d >= ks->fmin && d <= ks->fmax))
			return fail(c->err, node->start_mark,
				    "%s: '%s' is out of range (%s)", ks->name,
				    shown, range);
		memcpy(field, &d, sizeof(d));
		c->f->set[k] = true;
		return 0;
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
	case VT_INT:
		if (ks->type == VT_DURATION)
			r = parse_duration_n(s, len, &v);
		else if (ks->type == VT_MILLIS)
			r = parse_millis_n(s, len, &v);
		else if (ks->type == VT_SIZE)
			r = parse_size_n(s, len, &v);
		else
			r = parse_whole(s, len, &v);
		if (r == -EINVAL)
			break;
		if (r < 0 || v < ks->min || v > ks->max)
			return fail(c->err, node->start_mark,
				    "%s: '%s' is out of range (%s)", ks->name,
				    shown, range);
		if (ks->type == VT_INT) {
			int n = (int)v;

			memcpy(field, &n, sizeof(n));
		} else {
			memcpy(field, &v, sizeof(v));
		}
		c->f->set[k] = true;
		return 0;
	case VT_ENUM:
		for (i = 0; ks->choices[i]; i++) {
			if (text_is(s, len, ks->choices[i])) {
				int n = (int)i;

				memcpy(field, &n, sizeof(n));
				c->f->set[k] = true;
				return 0;
			}
		}
		break;
	case VT_BOOL: {
		bool b;

		if (text_is(s, len, "true") || text_is(s, len, "True") ||
		    text_is(s, len, "TRUE"))
			b = true;
		else if (text_is(s, len, "false") || text_is(s, len, "False") ||
			 text_is(s, len, "FALSE"))
			b = false;
		else
			break;
		memcpy(field, &b, sizeof(b));
		c->f->set[k] = true;
		return 0;
	}
	case VT_STRING:
		if (len > (size_t)ks->max)
			return fail(c->err, node->start_mark,
				    "%s: '%s' is longer than %" PRId64 " bytes",
				    ks->name, shown, ks->max);
		if (memchr(s, '\0', len))
			return fail(c->err, node->start_mark,
				    "%s: '%s' contains a nul byte", ks->name,
				    shown);
		memcpy(field, s, len);
		((char *)field)[len] = '\0';
		if (ks->validate) {
			char msg[sizeof(c->err->message)];

			if (ks->validate(field, msg, sizeof(msg)) < 0)
				return fail(c->err, node->start_mark, "%s", msg);
		}
		c->f->set[k] = true;
		return 0;
	}
	return fail(c->err, node->start_mark, "%s: expected %s, got '%s'",
		    ks->name, form, shown);
}

/* The direct children of prefix ("" or "quota."): "entries, bytes". */
static void list_children(const char *prefix, size_t plen, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	const char *last = NULL;
	size_t last_len = 0, k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		const char *name = key_specs[k].name, *seg, *dot;
		size_t seg_len;

		if (strncmp(name, prefix, plen) != 0)
			continue;
		seg = name + plen;
		dot = strchr(seg, '.');
		seg_len = dot ? (size_t)(dot - seg) : strlen(seg);
		if (last && last_len == seg_len && memcmp(last, seg, seg_len) == 0)
			continue;
		out_printf(&o, "%s%.*s", last ? ", " : "", (int)seg_len, seg);
		last = seg;
		last_len = seg_len;
	}
	out_result(&o);
}

/* "{entries: N, bytes: SIZE}" for the group prefix ("quota."). */
static void group_form(const char *prefix, size_t plen, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	size_t k;
	bool first = true;

	out_printf(&o, "{");
	for (k = 0; k < POLICY_NKEYS; k++) {
		const char *name = key_specs[k].name;

		if (strncmp(name, prefix, plen) != 0 || strchr(name + plen, '.'))
			continue;
		out_printf(&o, "%s%s: %s", first ? "" : ", ", name + plen,
			   placeholder(&key_specs[k]));
		first = false;
	}
	out_printf(&o, "}");
	out_result(&o);
}

/*
 * Walk one mapping whose keys live under prefix ("" at the root, "quota."
 * inside quota). Groups recurse; the depth is bounded by the table's names.
 */
static int parse_mapping(struct parse_ctx *c, const yaml_node_t *map,
			 const char *prefix, size_t plen)
{
	bool seen[POLICY_NKEYS] = { false };
	const yaml_node_pair_t *pair;
	char full[128], what[64], shown[48], known[160], form[160];

	for (pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *key = yaml_document_get_node(c->doc, pair->key);
		yaml_node_t *val = yaml_document_get_node(c->doc, pair->value);
		size_t klen, k, flen;
		bool group = false;
		int r;

		if (!key || !val)
			POLICY_BUG("libyaml returned a pair without nodes");
		if (key->type != YAML_SCALAR_NODE && plen)
			return fail(c->err, key->start_mark,
				    "%.*s: keys must be names, got %s",
				    (int)plen - 1, prefix,
				    describe(key, what, sizeof(what)));
		if (key->type != YAML_SCALAR_NODE)
			return fail(c->err, key->start_mark,
				    "keys must be names, got %s",
				    describe(key, what, sizeof(what)));
		klen = key->data.scalar.length;
		show((const char *)key->data.scalar.value, klen, shown,
		     sizeof(shown));
		k = POLICY_NKEYS;
		if (plen + klen + 2 <= sizeof(full) &&
		    !memchr(key->data.scalar.value, '\0', klen) &&
		    !memchr(key->data.scalar.value, '.', klen)) {
			memcpy(full, prefix, plen);
			memcpy(full + plen, key->data.scalar.value, klen);
			full[plen + klen] = '\0';
			flen = plen + klen;
			for (k = 0; k < POLICY_NKEYS; k++) {
				const char *name = key_specs[k].name;

				if (strcmp(name, full) == 0)
					break;
				if (strncmp(name, full, flen) == 0 &&
				    name[flen] == '.') {
					group = true;
					break;
				}
			}
		}
		if (k == POLICY_NKEYS && memchr(key->data.scalar.value, '.', klen))
			return fail(c->err, key->start_mark,
				    "unknown key '%.*s%s' (write nested keys as "
				    "mappings, like 'quota: {entries: 3}')",
				    (int)plen, prefix, shown);
		if (k == POLICY_NKEYS) {
			list_children(prefix, plen, known, sizeof(known));
			return fail(c->err, key->start_mark,
				    "unknown key '%.*s%s' (known: %s)",
				    (int)plen, prefix, shown, known);
		}
		if (seen[k])
			return fail(c->err, key->start_mark,
				    "duplicate key '%.*s%s'", (int)plen, prefix,
				    shown);
		seen[k] = true;
		if (!group) {
			r = parse_leaf(c, k, val);
		} else if (val->type != YAML_MAPPING_NODE) {
			full[flen] = '.';
			full[flen + 1] = '\0';
			group_form(full, flen + 1, form, sizeof(form));
			return fail(c->err, val->start_mark,
				    "%.*s: expected a mapping like %s, got %s",
				    (int)flen, full, form,
				    describe(val, what, sizeof(what)));
		} else {
			full[flen] = '.';
			full[flen + 1] = '\0';
			r = parse_mapping(c, val, full, flen + 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_root(struct parse_ctx *c, const yaml_node_t *root)
{
	char what[64];

	if (root->type == YAML_MAPPING_NODE)
		return parse_mapping(c, root, "", 0);
	/* "---" alone, "~" or "null": an empty document */
	if (root->type == YAML_SCALAR_NODE &&
	    root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (root->data.scalar.length == 0 ||
	     text_is((const char *)root->data.scalar.value,
		     root->data.scalar.length, "~") ||
	     text_is((const char *)root->data.scalar.value,
		     root->data.scalar.length, "null")))
		return 0;
	return fail(c->err, root->start_mark,
		    "a policy must be a mapping of keys to values like "
		    "'ttl: 5m', got %s", describe(root, what, sizeof(what)));
}

static int syntax_error(const yaml_parser_t *parser, const char *yaml,
			size_t len, struct policy_error *err)
{
	yaml_mark_t mark = parser->problem_mark;
	const char *problem = parser->problem ? parser->problem : "unknown error";
	size_t i;

	if (parser->error == YAML_MEMORY_ERROR) {
		err->line = err->column = 0;
		snprintf(err->message, sizeof(err->message),
			 "out of memory while parsing yaml");
		return -ENOMEM;
	}
	if (parser->error == YAML_READER_ERROR) {
		/* reader errors carry a byte offset, not a mark */
		memset(&mark, 0, sizeof(mark));
		for (i = 0; i < parser->problem_offset && i < len; i++) {
			if (yaml[i] == '\n') {
				mark.line++;
				mark.column = 0;
			} else {
				mark.column++;
			}
		}
		return fail(err, mark, "invalid yaml: %s at byte %zu", problem,
			    parser->problem_offset);
	}
	if (parser->context)
		return fail(err, mark, "invalid yaml: %s (%s at line %zu, column %zu)",
			    problem, parser->context,
			    parser->context_mark.line + 1,
			    parser->context_mark.column + 1);
	return fail(err, mark, "invalid yaml: %s", problem);
}

int policy_file_parse(const char *yaml, size_t len, const char *source,
		      struct policy_file **out, struct policy_error *err)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *root;
	struct policy_file *f;
	struct parse_ctx c;
	int r;

	if (!source || !out || !err || (!yaml && len))
		POLICY_BUG("policy_file_parse: null argument");
	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (!yaml)
		yaml = "";

	f = calloc(1, sizeof(*f));
	if (!f)
		goto nomem;
	f->source = strdup(source);
	if (!f->source)
		goto nomem_file;
	policy_defaults(&f->values);
	if (!yaml_parser_initialize(&parser))
		goto nomem_file;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);

	if (!yaml_parser_load(&parser, &doc)) {
		r = syntax_error(&parser, yaml, len, err);
		goto out_parser;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		/* no document at all: only comments or nothing */
		r = 0;
		goto out_doc;
	}
	c.doc = &doc;
	c.f = f;
	c.err = err;
	r = parse_root(&c, root);
	if (r < 0)
		goto out_doc;
	if (!yaml_parser_load(&parser, &extra)) {
		r = syntax_error(&parser, yaml, len, err);
		goto out_doc;
	}
	if (yaml_document_get_root_node(&extra))
		r = fail(err, extra.start_mark,
			 "more than one yaml document; a policy is a single "
			 "mapping, remove the '---' separator");
	yaml_document_delete(&extra);

out_doc:
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&parser);
	if (r < 0) {
		policy_file_free(f);
		return r;
	}
	*out = f;
	return 0;

nomem_file:
	policy_file_free(f);
nomem:
	snprintf(err->message, sizeof(err->message), "out of memory");
	return -ENOMEM;
}
