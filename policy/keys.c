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
static const char *const contexts[] = { "match", "ignore", "similar", NULL };
static int validate_embedder(const void *value, char *msg, size_t size);
static int validate_url(const void *value, char *msg, size_t size);
static int validate_model(const void *value, char *msg, size_t size);
static int validate_env_name(const void *value, char *msg, size_t size);
static int validate_load_name(const void *value, char *msg, size_t size);

/*
 * One row per key, by value type:
 *   KEY_FLOAT(name, field, min, max, default, doc), and the same for
 *   KEY_DURATION, KEY_MILLIS, KEY_SIZE, KEY_COUNT and KEY_INT;
 *   KEY_ENUM(name, field, choices, default, doc);
 *   KEY_BOOL(name, field, default, doc);
 *   KEY_STRING(name, field, default, allowed, validator, doc).
 * The field must have the C type its value type stores (a mismatch does not
 * compile); a string's longest length is its array's size minus one.
 */
#define FIELD(f, ctype) .offset = _Generic(((struct policy *)0)->f, \
					   ctype: offsetof(struct policy, f))
#define KEY_FLOAT(n, f, lo, hi, d, text) { .name = n, .type = VT_FLOAT, \
	FIELD(f, double), .fmin = lo, .fmax = hi, .fdef = d, .doc = text }
#define KEY_WHOLE(vt, ctype, n, f, lo, hi, d, text) { .name = n, .type = vt, \
	FIELD(f, ctype), .min = lo, .max = hi, .def = d, .doc = text }
#define KEY_DURATION(...) KEY_WHOLE(VT_DURATION, int64_t, __VA_ARGS__)
#define KEY_MILLIS(...) KEY_WHOLE(VT_MILLIS, int64_t, __VA_ARGS__)
#define KEY_SIZE(...) KEY_WHOLE(VT_SIZE, int64_t, __VA_ARGS__)
#define KEY_COUNT(...) KEY_WHOLE(VT_COUNT, int64_t, __VA_ARGS__)
#define KEY_INT(...) KEY_WHOLE(VT_INT, int, __VA_ARGS__)
#define KEY_ENUM(n, f, names, d, text) { .name = n, .type = VT_ENUM, \
	.offset = offsetof(struct policy, f), .choices = names, .def = d, \
	.doc = text }
#define KEY_BOOL(n, f, d, text) { .name = n, .type = VT_BOOL, \
	FIELD(f, bool), .def = d, .doc = text }
#define KEY_STRING(n, f, d, values, check, text) { .name = n, \
	.type = VT_STRING, FIELD(f, char *), \
	.max = sizeof(((struct policy *)0)->f) - 1, .sdef = d, \
	.allowed = values, .validate = check, .doc = text }

#define CENTURY (36500 * DAY)   /* the longest duration a key takes */

const struct policy_key_spec policy_key_specs[POLICY_NKEYS] = {
	[POLICY_THRESHOLD] = KEY_FLOAT("threshold", threshold, 0, 1, 0.90,
		"cosine similarity a stored query needs to be a hit (when "
		"precision is unset)"),
	[POLICY_PRECISION] = KEY_FLOAT("precision", precision, 0, 1, 0,
		"the share of served answers that should be right, e.g. 0.7: "
		"candidates with cosine >= 0.5 are judged by the verifier "
		"(verify-use-lite-v2 for use-lite, else verify-lexical-v2) at "
		"the operating point its calibration gives for this target, "
		"and threshold is not used; a target the calibration cannot "
		"support is refused (.errors names the best it supports); "
		"0 = unset"),
	[POLICY_TTL] = KEY_DURATION("ttl", ttl, 0, CENTURY, 7 * DAY,
		"how long an entry lives; 0 = never expires"),
	[POLICY_TTL_MODE] = KEY_ENUM("ttl_mode", ttl_mode, ttl_modes,
		POLICY_TTL_ABSOLUTE,
		"absolute: counted from the store; sliding: from the last hit"),
	[POLICY_QUOTA_ENTRIES] = KEY_COUNT("quota.entries", quota_entries,
		0, INT64_MAX, 0, "most entries kept; 0 = unlimited"),
	[POLICY_QUOTA_BYTES] = KEY_SIZE("quota.bytes", quota_bytes,
		0, INT64_MAX, 0, "most bytes of entries kept; 0 = unlimited"),
	[POLICY_EVICTION] = KEY_ENUM("eviction", eviction, evictions,
		POLICY_EVICT_LRU, "which entry goes first when a quota is reached"),
	[POLICY_CACHE] = KEY_BOOL("cache", cache, true,
		"false: never store or serve responses here"),
	[POLICY_CONTEXT] = KEY_ENUM("context", context, contexts,
		POLICY_CONTEXT_MATCH,
		"match: a hit needs the same context too (compared after "
		"normalisation); ignore: the query alone decides; similar: a "
		"hit needs a context whose embedding (the category's embedder) "
		"reaches context_threshold; with any but ignore, a query with "
		"a context never hits an entry without one, nor the reverse"),
	[POLICY_CONTEXT_THRESHOLD] = KEY_FLOAT("context_threshold",
		context_threshold, 0, 1, 0.97,
		"context: similar: cosine similarity the query's context needs "
		"with an entry's context for a hit (other values of context "
		"ignore it); the default is the lowest measured value that kept "
		"every cross-conversation lookup a miss with both builtin and "
		"use-lite (builtin alone: 0.85)"),
	[POLICY_LIMITS_QUERY_BYTES] = KEY_SIZE("limits.query_bytes", query_bytes,
		1, 16 * MIB, 64 * KIB, "largest query accepted"),
	[POLICY_LIMITS_RESPONSE_BYTES] = KEY_SIZE("limits.response_bytes",
		response_bytes, 1, GIB, 16 * MIB, "largest response stored"),
	[POLICY_HNSW_M] = KEY_INT("hnsw.m", hnsw_m, 4, 128, 32,
		"HNSW links per node (fixed when the index is built)"),
	[POLICY_HNSW_EF_CONSTRUCTION] = KEY_INT("hnsw.ef_construction",
		hnsw_ef_construction, 8, 2048, 128,
		"HNSW candidate list size while inserting"),
	[POLICY_HNSW_EF_SEARCH] = KEY_INT("hnsw.ef_search", hnsw_ef_search,
		1, 4096, 32, "HNSW candidate list size while searching"),
	[POLICY_EMBEDDER] = KEY_STRING("embedder", embedder, "builtin",
		"builtin, model2vec:/ABSOLUTE/DIR, http, use-lite, "
		"use-lite:/ABSOLUTE/DIR", validate_embedder,
		"how text becomes a vector: the built-in lexical embedder, "
		"a Model2Vec model directory, the http.* endpoint, or the "
		"Universal Sentence Encoder lite (its installed model, or "
		"a copy in another directory)"),
	[POLICY_HTTP_URL] = KEY_STRING("http.url", http_url, "",
		"http://... or https://...", validate_url,
		"embedder http: the OpenAI-compatible endpoint, e.g. "
		"http://127.0.0.1:11434/v1/embeddings"),
	[POLICY_HTTP_MODEL] = KEY_STRING("http.model", http_model, "",
		"a model name", validate_model,
		"embedder http: the model the endpoint runs"),
	[POLICY_HTTP_DIMENSIONS] = KEY_INT("http.dimensions", http_dimensions,
		0, 65536, 0,
		"embedder http: vector size to request; 0 = the model's own "
		"(learnt from the first answer)"),
	[POLICY_HTTP_API_KEY_ENV] = KEY_STRING("http.api_key_env",
		http_api_key_env, "", "an environment variable name",
		validate_env_name,
		"embedder http: the NAME of the environment variable "
		"holding the API key (never the key itself); \"\" = none"),
	[POLICY_HTTP_TIMEOUT] = KEY_MILLIS("http.timeout", http_timeout_ms,
		1, 600000, 2000,
		"embedder http: longest wait for one request; after it the "
		"lookup is a miss"),
	[POLICY_HTTP_RETRIES] = KEY_INT("http.retries", http_retries, 0, 10, 1,
		"embedder http: extra attempts after a failed request"),
	[POLICY_HTTP_BATCH] = KEY_INT("http.batch", http_batch, 1, 2048, 16,
		"embedder http: most concurrent queries sent in one request"),
	[POLICY_MODEL] = KEY_STRING("model", model, "",
		"a name of letters, digits, '.', '_', '-'", validate_load_name,
		"the downstream model this category fronts; its load is "
		"reported in MOUNTPOINT/.load/NAME"),
	[POLICY_ADAPTIVE_ENABLED] = KEY_BOOL("adaptive.enabled",
		adaptive_enabled, false,
		"follow the model's load: loosen threshold and lengthen ttl "
		"while it is overloaded"),
	[POLICY_ADAPTIVE_THRESHOLD_MIN] = KEY_FLOAT("adaptive.threshold_min",
		adaptive_threshold_min, 0, 1, 0.80,
		"the threshold under sustained high load (never above threshold)"),
	[POLICY_ADAPTIVE_TTL_MAX] = KEY_DURATION("adaptive.ttl_max",
		adaptive_ttl_max, 0, CENTURY, 30 * DAY,
		"the ttl under sustained high load (never below ttl; 0 = never expires)"),
	[POLICY_ADAPTIVE_HIGH] = KEY_FLOAT("adaptive.high", adaptive_high,
		0, 1, 0.80, "load (0..1) at or above which the category adapts"),
	[POLICY_ADAPTIVE_LOW] = KEY_FLOAT("adaptive.low", adaptive_low,
		0, 1, 0.50,
		"load at or below which it returns to normal (hysteresis)"),
	[POLICY_ADAPTIVE_RATE] = KEY_FLOAT("adaptive.rate", adaptive_rate,
		0.001, 1000, 0.2,
		"how fast to move: share of the way between normal and full "
		"adaptation per second"),
	[POLICY_ADAPTIVE_STALE_AFTER] = KEY_DURATION("adaptive.stale_after",
		adaptive_stale_after, 1, CENTURY, 30,
		"a load report older than this counts as normal load"),
	[POLICY_ADAPTIVE_LEARN_THRESHOLD] = KEY_BOOL("adaptive.learn_threshold",
		adaptive_learn_threshold, false,
		"a wrong hit reported in NAME.feedback raises the threshold "
		"just above its score (bounded, decaying back)"),
	[POLICY_ADAPTIVE_LEARN_DECAY] = KEY_DURATION("adaptive.learn_decay",
		adaptive_learn_decay, 1, CENTURY, 3600,
		"how long a learnt threshold takes to decay back"),
	[POLICY_LLM_COST_MS] = KEY_INT("llm_cost_ms", llm_cost_ms,
		0, 86400000, 0,
		"what a miss costs downstream, in milliseconds (for break-even "
		"accounting in .stats); 0 = unknown"),
	[POLICY_AUTO_DISABLE] = KEY_DURATION("auto_disable", auto_disable,
		0, CENTURY, 0,
		"stop storing after the hit rate stayed below break-even for "
		"this long (needs llm_cost_ms); 0 = never"),
	[POLICY_FILL_TIMEOUT] = KEY_MILLIS("fill_timeout", fill_timeout_ms,
		0, 600000, 0,
		"coalesce misses: a query matching one whose fill is pending "
		"waits up to this long for it; 0 = off"),
};

/* ---- validators ------------------------------------------------------ */

/* Control bytes (below 0x20, DEL); the second also counts spaces. */
static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool has_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* builtin, http, model2vec:/ABSOLUTE/PATH (the directory is checked when
 * the embedder is created, not here: the parser reads no files). */
static int validate_embedder(const void *value, char *msg, size_t size)
{
	const char *name = value;
	char shown[48];

	if (strcmp(name, "builtin") == 0 || strcmp(name, "http") == 0 ||
	    strcmp(name, "use-lite") == 0)
		return 0;
	if (strncmp(name, "model2vec:", 10) == 0 ||
	    strncmp(name, "use-lite:", 9) == 0) {
		const char *path = strchr(name, ':') + 1;

		if (path[0] == '/' && !has_control(path))
			return 0;
		snprintf(msg, size, "embedder: '%s' needs an absolute model "
			 "directory, like '%.*s:/srv/models/%s'",
			 policy_show(name, strlen(name), shown, sizeof(shown)),
			 (int)(path - 1 - name), name,
			 name[0] == 'm' ? "potion-base-8M" : "use-lite");
		return -EINVAL;
	}
	snprintf(msg, size, "unknown embedder '%s' (known: builtin, "
		 "model2vec:/ABSOLUTE/DIR, http, use-lite, use-lite:/ABSOLUTE/DIR)",
		 policy_show(name, strlen(name), shown, sizeof(shown)));
	return -EINVAL;
}

/* http(s)://..., or "" for none (the default, as .policy prints it). */
static int validate_url(const void *value, char *msg, size_t size)
{
	const char *url = value;
	char shown[48];

	if (!url[0])
		return 0;
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

/* A name without control bytes, or "" for none. */
static int validate_model(const void *value, char *msg, size_t size)
{
	const char *model = value;
	char shown[48];

	if (!has_control(model))
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
	char shown[48];

	for (const char *c = s; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-')
			continue;
		snprintf(msg, size, "model: '%s' may only use letters, digits, "
			 "'.', '_' and '-'",
			 policy_show(s, strlen(s), shown, sizeof(shown)));
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
	if (p->precision > 0 && p->fill_timeout_ms > 0) {
		snprintf(msg, size, "precision and fill_timeout cannot be combined: "
			 "miss coalescing matches pending queries by cosine, which "
			 "the verifier would not judge; set fill_timeout: 0 or "
			 "precision: 0");
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
