/*
 * parse.c - one policy.yaml's bytes to a struct policy_file: the walk.
 *
 * Design: the walk reads libyaml's events one at a time from stream.c and
 * never builds a document. The root must be a mapping (or an empty
 * document); each key is looked up in the key table by its dotted name, a
 * group such as "quota" recurses into its mapping, and each leaf is read
 * by its key's type through values.c, bounds-checked and validated. A
 * scalar is read by its key's type, not by YAML tag resolution: plain and
 * quoted scalars mean the same (threshold: "0.9" is accepted) and tags are
 * ignored. Every error is -EINVAL (-ENOMEM when memory runs out) with a
 * 1-based line and column taken from libyaml's marks and a message that
 * says what is expected; the walk quotes user text through policy_show
 * (bounded, control bytes masked).
 *
 * Errors come in the order the document API gave them: an error of the
 * YAML itself anywhere in the first document (syntax, an undefined alias)
 * wins over an error of meaning (an unknown key) before it, so after the
 * first error of meaning the walk reads on to the end of the document,
 * only to let such an error replace it. Bounds: input over POLICY_FILE_MAX
 * bytes is refused before parsing (-EFBIG), nesting deeper than
 * POLICY_DEPTH_MAX stops the parse at once, so the time is linear in the
 * input. An alias of a scalar reads as the scalar; an alias of a mapping
 * cannot stand for a group's keys.
 *
 * It does not read files, walk directories or cache parsed policies: the
 * caller hands in bytes and owns the struct policy_file. There is no
 * global mutable state; every function may be called from any thread.
 */
#include "policy_i.h"
#include "semlog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parse_ctx {
	struct policy_stream s;
	struct policy_file *f;
	struct policy_error *err;
};

#define fail policy_fail

/* "a mapping", "a sequence", "an empty value" or the quoted scalar. */
static const char *describe(const struct policy_node *n, char *buf,
			    size_t size)
{
	char shown[48];

	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a sequence";
	if (n->length == 0 && n->style == YAML_PLAIN_SCALAR_STYLE)
		return "an empty value";
	snprintf(buf, size, "'%s'",
		 policy_show(n->value, n->length, shown, sizeof(shown)));
	return buf;
}

static int parse_leaf(struct parse_ctx *c, size_t k,
		      const struct policy_node *node)
{
	const struct policy_key_spec *ks = &policy_key_specs[k];
	void *field = policy_field(ks, &c->f->values);
	char form[160], range[64], what[64], shown[48];
	const char *s;
	size_t len, i;
	int64_t v;
	double d;
	int r;

	policy_format_form(ks, form, sizeof(form));
	if (node->type != YAML_SCALAR_NODE ||
	    (node->length == 0 && node->style == YAML_PLAIN_SCALAR_STYLE))
		return fail(c->err, node->mark, "%s: expected %s, got %s",
			    ks->name, form, describe(node, what, sizeof(what)));
	s = node->value;
	len = node->length;
	policy_show(s, len, shown, sizeof(shown));
	policy_format_range(ks, range, sizeof(range));

	switch (ks->type) {
	case VT_FLOAT:
		r = policy_parse_decimal_n(s, len, &d);
		if (r == -EINVAL)
			break;
		if (r < 0 || !(d >= ks->fmin && d <= ks->fmax))
			return fail(c->err, node->mark,
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
			r = policy_parse_duration_n(s, len, &v);
		else if (ks->type == VT_MILLIS)
			r = policy_parse_millis_n(s, len, &v);
		else if (ks->type == VT_SIZE)
			r = policy_parse_size_n(s, len, &v);
		else
			r = policy_parse_whole_n(s, len, &v);
		if (r == -EINVAL)
			break;
		if (r < 0 || v < ks->min || v > ks->max)
			return fail(c->err, node->mark,
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
			if (policy_text_is(s, len, ks->choices[i])) {
				int n = (int)i;

				memcpy(field, &n, sizeof(n));
				c->f->set[k] = true;
				return 0;
			}
		}
		break;
	case VT_BOOL: {
		bool b;

		if (policy_parse_bool_n(s, len, &b) < 0)
			break;
		memcpy(field, &b, sizeof(b));
		c->f->set[k] = true;
		return 0;
	}
	case VT_STRING:
		if (len > (size_t)ks->max)
			return fail(c->err, node->mark,
				    "%s: '%s' is longer than %" PRId64 " bytes",
				    ks->name, shown, ks->max);
		if (memchr(s, '\0', len))
			return fail(c->err, node->mark,
				    "%s: '%s' contains a nul byte", ks->name,
				    shown);
		memcpy(field, s, len);
		((char *)field)[len] = '\0';
		if (ks->validate) {
			char msg[sizeof(c->err->message)];

			if (ks->validate(field, msg, sizeof(msg)) < 0)
				return fail(c->err, node->mark, "%s", msg);
		}
		c->f->set[k] = true;
		return 0;
	}
	return fail(c->err, node->mark, "%s: expected %s, got '%s'",
		    ks->name, form, shown);
}

/* The direct children of prefix ("" or "quota."): "entries, bytes". */
static void list_children(const char *prefix, size_t plen, char *buf, size_t size)
{
	struct policy_out o = { buf, size, 0 };
	const char *last = NULL;
	size_t last_len = 0, k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		const char *name = policy_key_specs[k].name, *seg, *dot;
		size_t seg_len;

		if (strncmp(name, prefix, plen) != 0)
			continue;
		seg = name + plen;
		dot = strchr(seg, '.');
		seg_len = dot ? (size_t)(dot - seg) : strlen(seg);
		if (last && last_len == seg_len && memcmp(last, seg, seg_len) == 0)
			continue;
		policy_out_printf(&o, "%s%.*s", last ? ", " : "", (int)seg_len, seg);
		last = seg;
		last_len = seg_len;
	}
	policy_out_result(&o);
}

/* "{entries: N, bytes: SIZE}" for the group prefix ("quota."). */
static void group_form(const char *prefix, size_t plen, char *buf, size_t size)
{
	struct policy_out o = { buf, size, 0 };
	size_t k;
	bool first = true;

	policy_out_printf(&o, "{");
	for (k = 0; k < POLICY_NKEYS; k++) {
		const char *name = policy_key_specs[k].name;

		if (strncmp(name, prefix, plen) != 0 || strchr(name + plen, '.'))
			continue;
		policy_out_printf(&o, "%s%s: %s", first ? "" : ", ",
				  name + plen,
				  policy_placeholder(&policy_key_specs[k]));
		first = false;
	}
	policy_out_printf(&o, "}");
	policy_out_result(&o);
}

/*
 * Walk one mapping whose keys live under prefix ("" at the root, "quota."
 * inside quota), from its start event (the current one) to its end event.
 * Groups recurse; the depth is bounded by the table's names.
 */
static int parse_mapping(struct parse_ctx *c, const char *prefix, size_t plen)
{
	bool seen[POLICY_NKEYS] = { false };
	char full[128], what[64], shown[48], known[256], form[160];
	struct policy_node key, val;

	for (;;) {
		size_t k, flen = 0;
		bool group = false;
		int r = policy_stream_next(&c->s);

		if (r < 0)
			return r;
		if (c->s.ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		policy_stream_node(&c->s, &key);
		if (key.type != YAML_SCALAR_NODE && plen)
			return fail(c->err, key.mark,
				    "%.*s: keys must be names, got %s",
				    (int)plen - 1, prefix,
				    describe(&key, what, sizeof(what)));
		if (key.type != YAML_SCALAR_NODE)
			return fail(c->err, key.mark,
				    "keys must be names, got %s",
				    describe(&key, what, sizeof(what)));
		policy_show(key.value, key.length, shown, sizeof(shown));
		k = POLICY_NKEYS;
		if (plen + key.length + 2 <= sizeof(full) &&
		    !memchr(key.value, '\0', key.length) &&
		    !memchr(key.value, '.', key.length)) {
			memcpy(full, prefix, plen);
			memcpy(full + plen, key.value, key.length);
			flen = plen + key.length;
			full[flen] = '\0';
			for (k = 0; k < POLICY_NKEYS; k++) {
				const char *name = policy_key_specs[k].name;

				if (strcmp(name, full) == 0)
					break;
				if (strncmp(name, full, flen) == 0 &&
				    name[flen] == '.') {
					group = true;
					break;
				}
			}
		}
		if (k == POLICY_NKEYS && memchr(key.value, '.', key.length))
			return fail(c->err, key.mark,
				    "unknown key '%.*s%s' (write nested keys as "
				    "mappings, like 'quota: {entries: 3}')",
				    (int)plen, prefix, shown);
		if (k == POLICY_NKEYS) {
			list_children(prefix, plen, known, sizeof(known));
			return fail(c->err, key.mark,
				    "unknown key '%.*s%s' (known: %s)",
				    (int)plen, prefix, shown, known);
		}
		if (seen[k])
			return fail(c->err, key.mark,
				    "duplicate key '%.*s%s'", (int)plen, prefix,
				    shown);
		seen[k] = true;

		/* the key's text is gone from here on: full holds its name */
		r = policy_stream_next(&c->s);
		if (r < 0)
			return r;
		policy_stream_node(&c->s, &val);
		if (!group) {
			r = parse_leaf(c, k, &val);
		} else if (val.type != YAML_MAPPING_NODE) {
			full[flen] = '.';
			full[flen + 1] = '\0';
			group_form(full, flen + 1, form, sizeof(form));
			return fail(c->err, val.mark,
				    "%.*s: expected a mapping like %s, got %s",
				    (int)flen, full, form,
				    describe(&val, what, sizeof(what)));
		} else if (val.alias) {
			return fail(c->err, c->s.ev.start_mark,
				    "%.*s: an alias cannot stand for a group's "
				    "keys; write them out", (int)flen, full);
		} else {
			full[flen] = '.';
			full[flen + 1] = '\0';
			r = parse_mapping(c, full, flen + 1);
		}
		if (r < 0)
			return r;
	}
}

/* The root node, from its first event (the current one) to its last. */
static int parse_root(struct parse_ctx *c)
{
	struct policy_node root;
	char what[64];

	policy_stream_node(&c->s, &root);
	if (root.type == YAML_MAPPING_NODE && !root.alias)
		return parse_mapping(c, "", 0);
	/* "---" alone, "~" or "null": an empty document */
	if (root.type == YAML_SCALAR_NODE &&
	    root.style == YAML_PLAIN_SCALAR_STYLE &&
	    (root.length == 0 || policy_text_is(root.value, root.length, "~") ||
	     policy_text_is(root.value, root.length, "null")))
		return 0;
	return fail(c->err, root.mark,
		    "a policy must be a mapping of keys to values like "
		    "'ttl: 5m', got %s", describe(&root, what, sizeof(what)));
}

/* Read on to the current document's end: 0, or the stream's error. */
static int skip_document(struct parse_ctx *c)
{
	int r = 0;

	while (!r && c->s.ev.type != YAML_DOCUMENT_END_EVENT)
		r = policy_stream_next(&c->s);
	return r;
}

/* From the stream's first event to its last. */
static int parse_stream(struct parse_ctx *c)
{
	struct policy_error meaning;
	yaml_mark_t second;
	int r;

	if ((r = policy_stream_next(&c->s)) ||   /* STREAM-START */
	    (r = policy_stream_next(&c->s)))     /* DOCUMENT-START or STREAM-END */
		return r;
	if (c->s.ev.type == YAML_STREAM_END_EVENT)
		return 0; /* no document at all: only comments or nothing */
	if ((r = policy_stream_next(&c->s)))
		return r;
	r = parse_root(c);
	if (r < 0 && !c->s.fatal) {
		/* an error of the yaml later in the document wins */
		int later;

		meaning = *c->err;
		later = skip_document(c);
		if (later)
			return later;
		*c->err = meaning;
		return r;
	}
	if (r < 0 || (r = policy_stream_next(&c->s)))  /* DOCUMENT-END */
		return r;
	if ((r = policy_stream_next(&c->s)))
		return r;
	if (c->s.ev.type != YAML_DOCUMENT_START_EVENT)
		return 0;
	second = c->s.ev.start_mark;
	if ((r = skip_document(c)))
		return r;
	return fail(c->err, second,
		    "more than one yaml document; a policy is a single "
		    "mapping, remove the '---' separator");
}

int policy_file_parse(const char *yaml, size_t len, const char *source,
		      struct policy_file **out, struct policy_error *err)
{
	struct policy_file *f;
	struct parse_ctx c;
	int r;

	if (!source || !out || !err || (!yaml && len))
		BUG("policy_file_parse: null argument");
	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (!yaml)
		yaml = "";
	if (len > POLICY_FILE_MAX) {
		snprintf(err->message, sizeof(err->message),
			 "the policy is %zu bytes, more than the %d a policy "
			 "may have; a policy sets each key once, one per line",
			 len, POLICY_FILE_MAX);
		return -EFBIG;
	}

	f = calloc(1, sizeof(*f));
	if (!f)
		goto nomem;
	f->source = strdup(source);
	if (!f->source)
		goto nomem_file;
	policy_defaults(&f->values);
	c.f = f;
	c.err = err;
	r = policy_stream_init(&c.s, yaml, len, err);
	if (!r)
		r = parse_stream(&c);
	policy_stream_release(&c.s);
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
