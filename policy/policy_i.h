/*
 * policy_i.h - what the files of policy/ share; nothing outside policy/
 * includes it.
 *
 * The parts, each in its own file:
 *   keys.c    the key table (name, type, field, bounds, default, validator,
 *             doc) and the checks across keys (policy_check);
 *   values.c  the text forms of values: numbers, durations, sizes,
 *             booleans, read from and written to bytes;
 *   stream.c  libyaml's events one at a time, with the depth bound and
 *             anchors checked as they arrive;
 *   parse.c   the walk over those events into a policy_file;
 *   print.c   the effective policy as text with provenance, the Markdown
 *             key table, and the phrases messages use for a key's range;
 *   policy.c  defaults, applying a file over a policy (inheritance), and
 *             freeing a file.
 *
 * Invariants: policy_key_specs[] has one row per enum policy_key, in that
 * order; a row's offset names a field of struct policy whose C type is the
 * one its value type stores (see enum policy_vtype), checked when the
 * table compiles. All of it is constant: no mutable state, no locks.
 */
#ifndef SEMCACHE_POLICY_I_H
#define SEMCACHE_POLICY_I_H

#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

/* ---- the key table (keys.c) ------------------------------------------ */

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define DAY ((int64_t)86400)

enum policy_vtype {
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

struct policy_key_spec {
	const char *name;            /* dotted: "quota.entries" */
	enum policy_vtype type;
	size_t offset;               /* of the field in struct policy */
	double fmin, fmax, fdef;     /* VT_FLOAT */
	int64_t min, max, def;       /* integer types; VT_ENUM/VT_BOOL default;
				      * VT_STRING: max is the longest length */
	const char *sdef;            /* VT_STRING */
	const char *const *choices;  /* VT_ENUM names, NULL-terminated */
	const char *allowed;         /* VT_STRING: the allowed values, for docs */
	/* Extra check after parsing: 0, or -EINVAL with the whole message. */
	int (*validate)(const void *value, char *msg, size_t size);
	const char *doc;
};

/* Indexed by enum policy_key. */
extern const struct policy_key_spec policy_key_specs[POLICY_NKEYS];

/* ---- parsed files (policy.c, parse.c) -------------------------------- */

struct policy_file {
	char *source;           /* owned; what policy_apply records */
	bool set[POLICY_NKEYS];
	struct policy values;   /* only keys with set[k] are meaningful */
};

/* The field of struct policy a key stores its value in, and its size. */
void *policy_field(const struct policy_key_spec *ks, struct policy *p);
const void *policy_cfield(const struct policy_key_spec *ks,
			  const struct policy *p);
size_t policy_field_size(const struct policy_key_spec *ks);

/* ---- the event stream (stream.c) ------------------------------------ */

/* Deepest nesting read: the key table needs 2 (the root mapping and a
 * group like quota); 2 more let a wrong value such as 'ttl: [1, 2]' or
 * 'quota: {[a]: 1}' get its own message. */
#define POLICY_DEPTH_MAX 4
/* Most anchors in one document (a policy needs none). */
#define POLICY_ANCHORS_MAX 32

/* What an anchor marked: its node's type and start, a scalar's text. */
struct policy_anchor {
	char *name;                /* owned */
	yaml_node_type_t type;
	yaml_mark_t mark;
	char *value;               /* owned; scalars only, NUL-terminated */
	size_t length;
	yaml_scalar_style_t style;
};

struct policy_stream {
	yaml_parser_t parser;
	yaml_event_t ev;           /* the current event, when have_ev */
	bool have_ev;
	bool fatal;                /* err holds an error that ends the parse */
	int depth;                 /* open mappings and sequences */
	struct policy_anchor anchors[POLICY_ANCHORS_MAX]; /* this document's */
	size_t nanchors;
	const char *yaml;          /* the input (for reader error positions) */
	size_t len;
	struct policy_error *err;
};

/* One node as the walk sees it: from its first event, or for an alias
 * from the anchor it names (mark: where that node starts). value and
 * length are set for scalars; valid until the next policy_stream_next. */
struct policy_node {
	yaml_node_type_t type;     /* SCALAR, SEQUENCE or MAPPING */
	const char *value;
	size_t length;
	yaml_scalar_style_t style;
	yaml_mark_t mark;
	bool alias;
};

/* Fill err (1-based line and column from mark) and return -EINVAL. */
int policy_fail(struct policy_error *err, yaml_mark_t mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 0, or -ENOMEM with err filled (fatal). */
int policy_stream_init(struct policy_stream *s, const char *yaml, size_t len,
		       struct policy_error *err);
void policy_stream_release(struct policy_stream *s);
/* Advance to the next event (s->ev). 0, or -EINVAL/-ENOMEM with err
 * filled and s->fatal set: invalid yaml, too deep, a bad alias or anchor.
 * Never called again after a fatal error. */
int policy_stream_next(struct policy_stream *s);
/* The current event as a node; it must be a scalar, alias or start of a
 * collection. */
void policy_stream_node(const struct policy_stream *s, struct policy_node *n);

/* ---- values (values.c) ----------------------------------------------- */

/*
 * Read len bytes (not NUL-terminated) as one value. Each returns 0, or
 * -EINVAL when the text is not such a value and -ERANGE when it is one but
 * does not fit (negative, or past INT64_MAX; a huge number).
 *   whole     [+-]digits
 *   decimal   [+-]digits[.digits] or [+-].digits (up to 17 digits count)
 *   duration  digits with an optional d/h/m/s suffix -> seconds
 *   millis    digits "ms", or a duration -> milliseconds
 *   size      digits with an optional unit (KiB, MB, B, ...) -> bytes
 *   bool      true/True/TRUE, false/False/FALSE (never -ERANGE)
 */
int policy_parse_whole_n(const char *s, size_t len, int64_t *out);
int policy_parse_decimal_n(const char *s, size_t len, double *out);
int policy_parse_duration_n(const char *s, size_t len, int64_t *out);
int policy_parse_millis_n(const char *s, size_t len, int64_t *out);
int policy_parse_size_n(const char *s, size_t len, int64_t *out);
int policy_parse_bool_n(const char *s, size_t len, bool *out);

/* Up to 4 decimals, no trailing zeros: 0.8, 0.85, 1. */
void policy_format_float(double d, char *buf, size_t size);
/* An integer value of key ks in its unit: "2h", "64MiB", "500ms", "3". */
void policy_format_int(const struct policy_key_spec *ks, int64_t v,
		       char *buf, size_t size);

/* Is s[0..len) exactly word? */
bool policy_text_is(const char *s, size_t len, const char *word);
/* User text for a message: at most 40 bytes (then "..."), control bytes
 * as '?'. Writes buf (size >= 4) and returns it. */
const char *policy_show(const char *s, size_t len, char *buf, size_t size);

/* ---- printing (print.c) ---------------------------------------------- */

/* An snprintf-style appender: counts what it would write past the end. */
struct policy_out {
	char *buf;
	size_t size;
	size_t len;
};

void policy_out_printf(struct policy_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* NUL-terminates an empty result; the length as snprintf returns it. */
int policy_out_result(const struct policy_out *o);

/* Key ks's value in p as .policy prints it ("" prints as ""). */
void policy_format_value(const struct policy_key_spec *ks,
			 const struct policy *p, char *buf, size_t size);
/* The allowed values: "0..1", "1..16MiB", "0 or more", "lru, lfu, fifo". */
void policy_format_range(const struct policy_key_spec *ks, char *buf,
			 size_t size);
/* What a value looks like, for "expected ..." messages. */
void policy_format_form(const struct policy_key_spec *ks, char *buf,
			size_t size);
/* A one-word stand-in for a value: "DURATION", "N", "true|false". */
const char *policy_placeholder(const struct policy_key_spec *ks);

#endif
