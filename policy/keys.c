/*
 * keys.c - the key table: every policy key with its type, field, bounds,
 * default, validator and documentation, and the checks across keys.
 *
 * Design: policy_key_specs[], indexed by enum policy_key, is the one place
 * a key is described. Everything else walks it: policy_defaults() fills
 * the defaults from it, the parser (parse.c) looks keys up in it (the
 * dotted name "quota.entries" is the key "entries" inside the mapping
 * "quota"), policy_apply() copies the keys a file sets, policy_format()
 * prints every key and policy_keys_markdown() documents them (print.c).
 * Adding a key is one enum value, one struct field and one table row.
 *
 * A validator refines what the type allows (an embedder name, a url, an
 * environment variable's name); policy_check() judges keys together,
 * after inheritance. Neither reads files or the environment.
 */
#include "policy_i.h"
#include "semlog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(enum policy_ttl_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum policy_eviction) == sizeof(int), "enum size");
_Static_assert(sizeof(enum policy_context) == sizeof(int), "enum size");

static const char *const ttl_modes[] = { "absolute", "sliding", NULL };
static const char *const evictions[] = { "lru", "lfu", "fifo", NULL };
static const char *const contexts[] = { "match", "ignore", NULL };
static int validate_embedder(const void *value, char *msg, size_t size);
static int validate_url(const void *value, char *msg, size_t size);
static int validate_model(const void *value, char *msg, size_t size);
static int validate_env_name(const void *value, char *msg, size_t size);
static int validate_load_name(const void *value, char *msg, size_t size);

#define FIELD(f) .offset = offsetof(struct policy, f)

const struct policy_key_spec policy_key_specs[POLICY_NKEYS] = {
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
		.allowed = "builtin, model2vec:/ABSOLUTE/DIR, http",
		.validate = validate_embedder,
		.doc = "how text becomes a vector: the built-in lexical embedder, "
		       "a Model2Vec model directory, or the http.* endpoint" },
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

/* ---- validators ------------------------------------------------------ */

/* builtin, http, model2vec:/ABSOLUTE/PATH (the directory is checked when
 * the embedder is created, not here: the parser reads no files). */
static int validate_embedder(const void *value, char *msg, size_t size)
{
	const char *name = value, *path;
	char shown[48];
	size_t i;

	if (strcmp(name, "builtin") == 0 || strcmp(name, "http") == 0)
		return 0;
	if (strncmp(name, "model2vec:", 10) == 0) {
		path = name + 10;
		for (i = 0; path[i]; i++)
			if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
				break;
		if (path[0] == '/' && !path[i])
			return 0;
		snprintf(msg, size, "embedder: '%s' needs an absolute model "
			 "directory, like 'model2vec:/srv/models/potion-base-8M'",
			 policy_show(name, strlen(name), shown, sizeof(shown)));
		return -EINVAL;
	}
	snprintf(msg, size, "unknown embedder '%s' (known: builtin, "
		 "model2vec:/ABSOLUTE/DIR, http)",
		 policy_show(name, strlen(name), shown, sizeof(shown)));
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
		 policy_show(url, strlen(url), shown, sizeof(shown)));
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
		 policy_show(model, strlen(model), shown, sizeof(shown)));
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

const char *policy_key_name(enum policy_key k)
{
	if ((unsigned)k >= POLICY_NKEYS)
		BUG("policy key out of range");
	return policy_key_specs[k].name;
}
