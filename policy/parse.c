/*
 * parse.c - one policy.yaml's bytes to a struct policy_file: the YAML walk.
 *
 * Design: libyaml's document API (yaml_parser_load) builds the node tree;
 * this file only walks it. The root must be a mapping (or an empty
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
 * It does not read files, walk directories or cache parsed policies: the
 * caller hands in bytes and owns the struct policy_file. It does not bound
 * the input's size or nesting: libyaml builds the whole tree before the
 * walk starts (and its scanner takes time quadratic in the depth of nested
 * flow collections). There is no global mutable state; every function may
 * be called from any thread.
 */
#include "policy_i.h"
#include "semlog.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

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
	snprintf(buf, size, "'%s'",
		 policy_show((const char *)n->data.scalar.value,
			     n->data.scalar.length, shown, sizeof(shown)));
	return buf;
}

static int parse_leaf(struct parse_ctx *c, size_t k, const yaml_node_t *node)
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
	    (node->data.scalar.length == 0 &&
	     node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
		return fail(c->err, node->start_mark, "%s: expected %s, got %s",
			    ks->name, form, describe(node, what, sizeof(what)));
	s = (const char *)node->data.scalar.value;
	len = node->data.scalar.length;
	policy_show(s, len, shown, sizeof(shown));
	policy_format_range(ks, range, sizeof(range));

	switch (ks->type) {
	case VT_FLOAT:
		r = policy_parse_decimal_n(s, len, &d);
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
			BUG("libyaml returned a pair without nodes");
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
		policy_show((const char *)key->data.scalar.value, klen, shown,
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
	     policy_text_is((const char *)root->data.scalar.value,
			    root->data.scalar.length, "~") ||
	     policy_text_is((const char *)root->data.scalar.value,
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
		BUG("policy_file_parse: null argument");
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
