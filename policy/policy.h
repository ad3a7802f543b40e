/*
 * policy.h - per-directory YAML policies: parse, validate, inherit, print.
 *
 * A directory's policy.yaml sets some keys; the effective policy of a
 * directory is the built-in defaults, overridden by the root's file, then by
 * each directory's file down to it. One typed table (keys.c) drives
 * parsing, validation, the defaults, the printing of the effective policy
 * and the README's key list.
 *
 * No global mutable state and no locks: every function may be called from
 * any thread, and a struct policy_file is never changed after it is parsed,
 * so threads may share one. This module knows nothing of FUSE or FAISS; it
 * works on bytes and structs and reads no files.
 */
#ifndef SEMCACHE_POLICY_H
#define SEMCACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_ttl_mode { POLICY_TTL_ABSOLUTE, POLICY_TTL_SLIDING };
enum policy_eviction { POLICY_EVICT_LRU, POLICY_EVICT_LFU, POLICY_EVICT_FIFO };
enum policy_context {
	POLICY_CONTEXT_MATCH,     /* the same normalised context */
	POLICY_CONTEXT_IGNORE,    /* the query alone decides */
	POLICY_CONTEXT_SIMILAR,   /* contexts' cosine >= context_threshold */
};

/* Keys, in the order .policy prints them. Nested keys are "quota.entries". */
enum policy_key {
	POLICY_THRESHOLD,
	POLICY_PRECISION,
	POLICY_TTL,
	POLICY_TTL_MODE,
	POLICY_QUOTA_ENTRIES,
	POLICY_QUOTA_BYTES,
	POLICY_EVICTION,
	POLICY_CACHE,
	POLICY_CONTEXT,
	POLICY_CONTEXT_THRESHOLD,
	POLICY_LIMITS_QUERY_BYTES,
	POLICY_LIMITS_RESPONSE_BYTES,
	POLICY_HNSW_M,
	POLICY_HNSW_EF_CONSTRUCTION,
	POLICY_HNSW_EF_SEARCH,
	POLICY_EMBEDDER,
	POLICY_HTTP_URL,
	POLICY_HTTP_MODEL,
	POLICY_HTTP_DIMENSIONS,
	POLICY_HTTP_API_KEY_ENV,
	POLICY_HTTP_TIMEOUT,
	POLICY_HTTP_RETRIES,
	POLICY_HTTP_BATCH,
	POLICY_MODEL,
	POLICY_ADAPTIVE_ENABLED,
	POLICY_ADAPTIVE_THRESHOLD_MIN,
	POLICY_ADAPTIVE_TTL_MAX,
	POLICY_ADAPTIVE_HIGH,
	POLICY_ADAPTIVE_LOW,
	POLICY_ADAPTIVE_RATE,
	POLICY_ADAPTIVE_STALE_AFTER,
	POLICY_ADAPTIVE_LEARN_THRESHOLD,
	POLICY_ADAPTIVE_LEARN_DECAY,
	POLICY_LLM_COST_MS,
	POLICY_AUTO_DISABLE,
	POLICY_FILL_TIMEOUT,
	POLICY_NKEYS
};

#define POLICY_EMBEDDER_MAX 256
#define POLICY_URL_MAX 512
#define POLICY_NAME_MAX 128
/* Largest policy.yaml parsed, in bytes: a policy sets each of its few
 * dozen keys once, so real ones are far smaller. */
#define POLICY_FILE_MAX (64 * 1024)
/* Longest printed value of any key: the longest string, quoted, with
 * every byte escaped (a buffer size for policy_format). */
#define POLICY_VALUE_MAX (4 * POLICY_URL_MAX + 2)

/* The effective values of every key. Plain data: copy it freely. */
struct policy {
	double threshold;          /* cosine similarity 0..1 for a hit */
	double precision;          /* target share of right hits; 0 = unset:
				    * threshold decides */
	int64_t ttl;               /* seconds; 0 = never expires */
	enum policy_ttl_mode ttl_mode;
	int64_t quota_entries;     /* 0 = unlimited */
	int64_t quota_bytes;       /* 0 = unlimited */
	enum policy_eviction eviction;
	bool cache;                /* false: never store or serve */
	enum policy_context context;
	double context_threshold;  /* context: similar: cosine 0..1 of the
				    * contexts' embeddings for a hit */
	int64_t query_bytes;       /* limits.query_bytes */
	int64_t response_bytes;    /* limits.response_bytes */
	int hnsw_m;
	int hnsw_ef_construction;
	int hnsw_ef_search;
	char embedder[POLICY_EMBEDDER_MAX]; /* builtin, model2vec:/DIR, http */
	/* The http embedder (embedder: http). Never holds a secret: the API
	 * key is read from the environment variable http_api_key_env names. */
	char http_url[POLICY_URL_MAX];      /* "" or http(s)://... */
	char http_model[POLICY_NAME_MAX];   /* "" or the model name */
	int http_dimensions;                /* 0 = the model's own */
	char http_api_key_env[POLICY_NAME_MAX]; /* "" = no key */
	int64_t http_timeout_ms;            /* per request, milliseconds */
	int http_retries;                   /* extra attempts after a failure */
	int http_batch;                     /* most inputs in one request */
	/* Load-adaptive policy: the model this category fronts, and how its
	 * threshold and ttl follow that model's reported load. */
	char model[POLICY_NAME_MAX];        /* "" = none */
	bool adaptive_enabled;
	double adaptive_threshold_min;      /* threshold under full load */
	int64_t adaptive_ttl_max;           /* ttl under full load, seconds */
	double adaptive_high;               /* load at or above: adapt */
	double adaptive_low;                /* load at or below: return */
	double adaptive_rate;               /* share of the way per second */
	int64_t adaptive_stale_after;       /* older reports count as normal */
	bool adaptive_learn_threshold;      /* wrong-hit feedback raises it */
	int64_t adaptive_learn_decay;       /* seconds to decay back */
	int llm_cost_ms;                    /* what a miss costs downstream */
	int64_t auto_disable;               /* window below break-even; 0 off */
	int64_t fill_timeout_ms;            /* coalesce misses; 0 = off */
	/* Where each value came from: a directory path such as "/" or
	 * "/code/python", or NULL for the built-in default. The strings are
	 * owned by whoever owns the struct policy_file that set them. */
	const char *source[POLICY_NKEYS];
};

/* One parsed policy.yaml: the keys it sets and their values. Opaque. */
struct policy_file;

struct policy_error {
	int line;      /* 1-based; 0 when not tied to a position */
	int column;    /* 1-based */
	char message[256];
};

/* Fill p with the built-in defaults (every source NULL). */
void policy_defaults(struct policy *p);

/*
 * Parse and validate len bytes of YAML. An empty document (or only
 * comments) is valid and sets nothing. source is the directory path recorded
 * as provenance (copied). On success returns 0 and *out (caller frees with
 * policy_file_free). On invalid YAML, a wrong type, a value out of range,
 * an unknown key or nesting deeper than a policy needs (a few levels)
 * returns -EINVAL and fills err (line, column, message such as "unknown
 * key 'treshold' (known: ...)"); nothing is allocated. More than
 * POLICY_FILE_MAX bytes returns -EFBIG before parsing (line 0). Out of
 * memory returns -ENOMEM (line 0). Time and memory are linear in len.
 */
int policy_file_parse(const char *yaml, size_t len, const char *source,
		      struct policy_file **out, struct policy_error *err);
void policy_file_free(struct policy_file *f);

/*
 * Checks across keys of an effective policy, after every file is applied:
 * embedder http needs http.url and http.model. 0, or -EINVAL with the
 * message in msg. Callers run it when a policy.yaml is written (against the
 * directory's new effective policy) and embedder_new() runs it again.
 */
int policy_check(const struct policy *p, char *msg, size_t size);

/* Override in p every key f sets, recording f's source as provenance. */
void policy_apply(struct policy *p, const struct policy_file *f);

/* Does f set key k? */
bool policy_file_sets(const struct policy_file *f, enum policy_key k);

/*
 * Print the effective policy, one key per line:
 *   threshold: 0.85                 # default
 *   ttl: 2h                         # /code
 * Nested keys use their dotted name ("quota.entries: 0"); durations and
 * sizes print in their shortest exact form, numbers with up to 4 decimals,
 * strings plain or double-quoted so that each line is YAML whose value
 * reads back as the same value.
 * Returns the length written (as snprintf: may exceed size).
 */
int policy_format(const struct policy *p, char *buf, size_t size);

/*
 * Document every key as a Markdown table (key, type, default, allowed
 * values, meaning), generated from the same table that parses them.
 * Returns the length written (as snprintf: may exceed size).
 */
int policy_keys_markdown(char *buf, size_t size);

/*
 * The same keys as roff for a manual page: one ".TP" paragraph per key
 * (name, type, default, allowed values, meaning), every text escaped.
 * Returns the length written (as snprintf: may exceed size).
 */
int policy_keys_man(char *buf, size_t size);

/* Name of key k as written in YAML ("quota.entries"). */
const char *policy_key_name(enum policy_key k);

/* "30s" "5m" "2h" "7d" "0" "90" (seconds) -> seconds. 0 or -EINVAL. */
int policy_parse_duration(const char *s, int64_t *out);
/* Durations of http.timeout also take milliseconds: "500ms" "2s" "90"
 * (seconds) -> milliseconds. 0 or -EINVAL. */
int policy_parse_millis(const char *s, int64_t *out);
/* "512KiB" "64MiB" "2GiB" "1000" (bytes) "10KB"... -> bytes. 0 or -EINVAL. */
int policy_parse_size(const char *s, int64_t *out);
/* Seconds -> shortest exact form ("7d", "90s", "0"). */
void policy_format_duration(int64_t secs, char *buf, size_t size);
/* Bytes -> shortest exact form ("64MiB", "1KB", "1500"); binary units win
 * ties with the plain number, decimal units lose them. */
void policy_format_size(int64_t bytes, char *buf, size_t size);

#endif
