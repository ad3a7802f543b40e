/*
 * values.c - the text forms of policy values: whole and decimal numbers,
 * durations ("30s" "5m" "2h" "7d"), milliseconds ("500ms"), sizes ("512KiB"
 * "64MB" "1000"), booleans, both ways.
 *
 * Design: readers take a pointer and a length (libyaml's scalars are not
 * NUL-terminated) and tell "not such a value" (-EINVAL) from "such a value
 * that does not fit" (-ERANGE), so that messages can say which; the public
 * policy_parse_*() wrappers fold both into -EINVAL. Writers print
 * durations and sizes in their shortest exact form, which reads back to
 * the same value, and decimals rounded to 4 places (0.12345 prints 0.1235).
 * Numbers are plain decimals without exponents, hex, .inf or .nan;
 * booleans are YAML 1.2's true/false, never yes/no/on/off.
 *
 * It knows nothing of YAML or of keys beyond their value type; bounds are
 * checked by the caller (parse.c) against the key table.
 */
#include "policy_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool policy_text_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

const char *policy_show(const char *s, size_t len, char *buf, size_t size)
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

struct unit {
	const char *suffix;
	int64_t mult;
};

static const struct unit size_units[] = {
	/* formatting prefers earlier rows when lengths tie */
	{ "EiB", (int64_t)1 << 60 }, { "PiB", (int64_t)1 << 50 },
	{ "TiB", (int64_t)1 << 40 }, { "GiB", GIB }, { "MiB", MIB },
	{ "KiB", KIB },
	{ "EB", INT64_C(1000000000000000000) },
	{ "PB", INT64_C(1000000000000000) }, { "TB", INT64_C(1000000000000) },
	{ "GB", 1000000000 }, { "MB", 1000000 }, { "KB", 1000 },
	{ "kB", 1000 }, { "B", 1 },
};

/* formatting takes the first that divides: the largest */
static const struct unit duration_units[] = {
	{ "d", DAY }, { "h", 3600 }, { "m", 60 }, { "s", 1 },
};

#define NUNITS(units) (sizeof(units) / sizeof(units[0]))

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
int policy_parse_whole_n(const char *s, size_t len, int64_t *out)
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

/*
 * An optional '-', digits, then nothing or one of the n units' suffixes
 * (nothing counts 1) -> the number times the unit. -ERANGE when negative
 * or past INT64_MAX.
 */
static int parse_in_units(const char *s, size_t len, const struct unit *units,
			  size_t n, int64_t *out)
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
		for (u = 0; u < n; u++)
			if (policy_text_is(s + i, len - i, units[u].suffix))
				break;
		if (u == n)
			return -EINVAL;
		mult = units[u].mult;
	}
	if (r < 0 || neg || v > INT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int policy_parse_duration_n(const char *s, size_t len, int64_t *out)
{
	return parse_in_units(s, len, duration_units, NUNITS(duration_units),
			      out);
}

int policy_parse_size_n(const char *s, size_t len, int64_t *out)
{
	return parse_in_units(s, len, size_units, NUNITS(size_units), out);
}

/*
 * [+-]digits[.digits] or [+-].digits -> double. Up to 17 significant
 * digits count; further fraction digits are dropped. -ERANGE for a huge
 * integer part, -EINVAL for anything else that is not such a number.
 */
int policy_parse_decimal_n(const char *s, size_t len, double *out)
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

/* "500ms", or a duration in seconds as policy_parse_duration_n, -> ms. */
int policy_parse_millis_n(const char *s, size_t len, int64_t *out)
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
	r = policy_parse_duration_n(s, len, &v);
	if (r < 0)
		return r;
	if (v > INT64_MAX / 1000)
		return -ERANGE;
	*out = v * 1000;
	return 0;
}

int policy_parse_bool_n(const char *s, size_t len, bool *out)
{
	if (policy_text_is(s, len, "true") || policy_text_is(s, len, "True") ||
	    policy_text_is(s, len, "TRUE"))
		*out = true;
	else if (policy_text_is(s, len, "false") ||
		 policy_text_is(s, len, "False") ||
		 policy_text_is(s, len, "FALSE"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

int policy_parse_millis(const char *s, int64_t *out)
{
	return policy_parse_millis_n(s, strlen(s), out) < 0 ? -EINVAL : 0;
}

int policy_parse_duration(const char *s, int64_t *out)
{
	return policy_parse_duration_n(s, strlen(s), out) < 0 ? -EINVAL : 0;
}

int policy_parse_size(const char *s, int64_t *out)
{
	return policy_parse_size_n(s, strlen(s), out) < 0 ? -EINVAL : 0;
}

void policy_format_duration(int64_t secs, char *buf, size_t size)
{
	size_t u;

	if (secs == 0) {
		snprintf(buf, size, "0");
		return;
	}
	for (u = 0; u < NUNITS(duration_units); u++)
		if (secs % duration_units[u].mult == 0)
			break;
	snprintf(buf, size, "%" PRId64 "%s", secs / duration_units[u].mult,
		 duration_units[u].suffix);
}

void policy_format_size(int64_t bytes, char *buf, size_t size)
{
	char best[32], cand[32];
	size_t u;

	snprintf(best, sizeof(best), "%" PRId64, bytes);
	for (u = 0; bytes > 0 && u < NUNITS(size_units); u++) {
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
void policy_format_float(double d, char *buf, size_t size)
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

void policy_format_int(const struct policy_key_spec *ks, int64_t v,
		       char *buf, size_t size)
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
