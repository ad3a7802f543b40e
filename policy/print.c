/*
 * print.c - policies and keys as text: the effective policy that .policy
 * shows, with where each value came from, the Markdown table of every key
 * (semcachefs --policy-keys, the README), the same keys as roff for the
 * semcachefs-policy(5) manual page (--policy-keys=man), and the phrases
 * parse errors use to say what a key accepts.
 *
 * Design: everything is generated from the key table (keys.c) and the
 * value writers (values.c), so the documentation cannot drift from the
 * parser, and numbers, durations and sizes print in forms the parser
 * reads (decimals rounded to 4 places). Output goes through struct
 * policy_out, an appender with snprintf's contract: it never writes past
 * size and returns the length the whole text needs.
 *
 * Every printed line "key: value # source" is YAML, and its value reads
 * back as the same value: a string prints plain when YAML reads it back
 * unchanged (printable ASCII without spaces, not starting with an
 * indicator such as '[' or '&', not ending in ':'), else double-quoted
 * with '"', '\\', control bytes and the YAML 1.1 line breaks NEL, LS and
 * PS escaped; the empty string prints as "".
 *
 * It does not allocate or hold state.
 */
#include "policy_i.h"
#include "semlog.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void policy_out_printf(struct policy_out *o, const char *fmt, ...)
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

int policy_out_result(const struct policy_out *o)
{
	if (o->size > 0 && o->len == 0)
		o->buf[0] = '\0';
	return o->len > INT_MAX ? INT_MAX : (int)o->len;
}

/* "0..1", "1..16MiB", "0 or more", "absolute, sliding". */
void policy_format_range(const struct policy_key_spec *ks, char *buf,
			 size_t size)
{
	struct policy_out o = { buf, size, 0 };
	char lo[32], hi[32];
	size_t i;

	switch (ks->type) {
	case VT_FLOAT:
		policy_format_float(ks->fmin, lo, sizeof(lo));
		policy_format_float(ks->fmax, hi, sizeof(hi));
		policy_out_printf(&o, "%s..%s", lo, hi);
		break;
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
	case VT_INT:
		policy_format_int(ks, ks->min, lo, sizeof(lo));
		policy_format_int(ks, ks->max, hi, sizeof(hi));
		if (ks->max == INT64_MAX)
			policy_out_printf(&o, "%s or more", lo);
		else
			policy_out_printf(&o, "%s..%s", lo, hi);
		break;
	case VT_ENUM:
		for (i = 0; ks->choices && ks->choices[i]; i++)
			policy_out_printf(&o, "%s%s", i ? ", " : "", ks->choices[i]);
		break;
	case VT_STRING:
		policy_out_printf(&o, "%s", ks->allowed ? ks->allowed : "text");
		break;
	case VT_BOOL:
		policy_out_printf(&o, "true, false");
		break;
	}
	policy_out_result(&o);
}

/* What each value type is called in words, one row per type. */
static const struct {
	const char *doc;          /* the Markdown table's type column */
	const char *placeholder;  /* in a group's form: "{entries: N}" */
	const char *form;         /* "expected ..."; NULL: made from the key */
} vtype_words[] = {
	[VT_FLOAT] = { "number", "NUMBER", NULL },
	[VT_DURATION] = { "duration", "DURATION",
			  "a duration like 30s, 5m, 2h, 7d or 0" },
	[VT_MILLIS] = { "duration", "DURATION",
			"a duration like 500ms, 2s or 1m" },
	[VT_SIZE] = { "size", "SIZE",
		      "a size like 512KiB, 64MiB, 2GiB or a number of bytes" },
	[VT_COUNT] = { "integer", "N", "a whole number" },
	[VT_INT] = { "integer", "N", "a whole number" },
	[VT_ENUM] = { "choice", "NAME", NULL },
	[VT_BOOL] = { "boolean", "true|false", "true or false" },
	[VT_STRING] = { "string", "NAME", "a name" },
};

void policy_format_form(const struct policy_key_spec *ks, char *buf,
			size_t size)
{
	struct policy_out o = { buf, size, 0 };
	char lo[32], hi[32];
	size_t i;

	if (vtype_words[ks->type].form) {
		policy_out_printf(&o, "%s", vtype_words[ks->type].form);
	} else if (ks->type == VT_FLOAT) {
		policy_format_float(ks->fmin, lo, sizeof(lo));
		policy_format_float(ks->fmax, hi, sizeof(hi));
		policy_out_printf(&o, "a number from %s to %s", lo, hi);
	} else {
		policy_out_printf(&o, "one of");
		for (i = 0; ks->choices[i]; i++)
			policy_out_printf(&o, "%s %s", i ? "," : "",
					  ks->choices[i]);
	}
	policy_out_result(&o);
}

const char *policy_placeholder(const struct policy_key_spec *ks)
{
	return vtype_words[ks->type].placeholder;
}

/* Does s read back as itself written plain after "key: " (block context,
 * a comment may follow)? */
static bool plain_ok(const char *s)
{
	const char *c;

	if (!*s || strchr("-?:,[]{}#&*!|>'\"%@`", *s))
		return false;
	for (c = s; *c; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
			return false;
	return c[-1] != ':';
}

static void format_string(const char *s, char *buf, size_t size)
{
	struct policy_out o = { buf, size, 0 };
	const unsigned char *c;

	if (plain_ok(s)) {
		policy_out_printf(&o, "%s", s);
		policy_out_result(&o);
		return;
	}
	policy_out_printf(&o, "\"");
	for (c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			policy_out_printf(&o, "\\%c", *c);
		else if (*c < ' ' || *c == 0x7f)
			policy_out_printf(&o, "\\x%02x", *c);
		else if (c[0] == 0xc2 && c[1] == 0x85) {
			policy_out_printf(&o, "\\N"); /* NEL */
			c++;
		} else if (c[0] == 0xe2 && c[1] == 0x80 &&
			   (c[2] == 0xa8 || c[2] == 0xa9)) {
			policy_out_printf(&o, "\\%c", c[2] == 0xa8 ? 'L' : 'P');
			c += 2;
		} else {
			policy_out_printf(&o, "%c", *c);
		}
	}
	policy_out_printf(&o, "\"");
	policy_out_result(&o);
}

void policy_format_value(const struct policy_key_spec *ks,
			 const struct policy *p, char *buf, size_t size)
{
	const void *field = policy_cfield(ks, p);
	int64_t i64;
	double d;
	int i;
	bool b;

	switch (ks->type) {
	case VT_FLOAT:
		memcpy(&d, field, sizeof(d));
		policy_format_float(d, buf, size);
		return;
	case VT_DURATION:
	case VT_MILLIS:
	case VT_SIZE:
	case VT_COUNT:
		memcpy(&i64, field, sizeof(i64));
		policy_format_int(ks, i64, buf, size);
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
		format_string(field, buf, size);
		return;
	}
	BUG("unknown value type");
}

int policy_format(const struct policy *p, char *buf, size_t size)
{
	struct policy_out o = { buf, size, 0 };
	char value[POLICY_VALUE_MAX + 4], line[POLICY_VALUE_MAX + 64];
	size_t k;

	for (k = 0; k < POLICY_NKEYS; k++) {
		const struct policy_key_spec *ks = &policy_key_specs[k];

		policy_format_value(ks, p, value, sizeof(value));
		snprintf(line, sizeof(line), "%s: %s", ks->name, value);
		policy_out_printf(&o, "%-31s # %s\n", line,
				  p->source[k] ? p->source[k] : "default");
	}
	return policy_out_result(&o);
}

/* s as roff text: backslashes and hyphens escaped, a leading '.' or '\''
 * (a request) neutralised */
static void out_roff(struct policy_out *o, const char *s)
{
	if (*s == '.' || *s == '\'')
		policy_out_printf(o, "\\&");
	for (; *s; s++) {
		if (*s == '\\')
			policy_out_printf(o, "\\e");
		else if (*s == '-')
			policy_out_printf(o, "\\-");
		else
			policy_out_printf(o, "%c", *s);
	}
}

/* one line or paragraph per key: its spec, its default and what it allows
 * as text */
typedef void key_row_fn(struct policy_out *o, const struct policy_key_spec *ks,
			const char *value, const char *range);

static void each_key(struct policy_out *o, key_row_fn *row)
{
	struct policy def;
	char value[POLICY_VALUE_MAX + 4], range[128];

	policy_defaults(&def);
	for (size_t k = 0; k < POLICY_NKEYS; k++) {
		const struct policy_key_spec *ks = &policy_key_specs[k];

		policy_format_value(ks, &def, value, sizeof(value));
		policy_format_range(ks, range, sizeof(range));
		row(o, ks, value, range);
	}
}

static void markdown_row(struct policy_out *o, const struct policy_key_spec *ks,
			 const char *value, const char *range)
{
	policy_out_printf(o, "| `%s` | %s | `%s` | %s | %s |\n", ks->name,
			  vtype_words[ks->type].doc, value, range, ks->doc);
}

int policy_keys_markdown(char *buf, size_t size)
{
	struct policy_out o = { buf, size, 0 };

	policy_out_printf(&o, "| key | type | default | allowed | meaning |\n");
	policy_out_printf(&o, "|---|---|---|---|---|\n");
	each_key(&o, markdown_row);
	return policy_out_result(&o);
}

static void man_row(struct policy_out *o, const struct policy_key_spec *ks,
		    const char *value, const char *range)
{
	policy_out_printf(o, ".TP\n.B ");
	out_roff(o, ks->name);
	policy_out_printf(o, "\n");
	out_roff(o, vtype_words[ks->type].doc);
	policy_out_printf(o, ", default \\fB");
	out_roff(o, value);
	policy_out_printf(o, "\\fR; allowed: ");
	out_roff(o, range);
	policy_out_printf(o, ".\n");
	out_roff(o, ks->doc);
	policy_out_printf(o, ".\n");
}

int policy_keys_man(char *buf, size_t size)
{
	struct policy_out o = { buf, size, 0 };

	each_key(&o, man_row);
	return policy_out_result(&o);
}
