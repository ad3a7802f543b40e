/*
 * policy_readback.h - does a printed policy read back as the same policy?
 * Shared by test_policy.c and tests/fuzz/fuzz_policy.c (header-only).
 *
 * policy_format() prints "quota.entries: 3     # /src" lines; rewritten
 * with each dotted key as a group ("quota:\n  entries: 3     # /src", the
 * comment kept), the text is a policy.yaml. policy_reads_back() parses
 * that, applies it over the defaults and compares the two printed
 * policies line by line without their "# source" comments, so a value that
 * YAML reads differently from what was printed (an unquoted " #", a
 * leading '[') shows as a difference. Sources must not hold " # ".
 */
#ifndef SEMCACHE_POLICY_READBACK_H
#define SEMCACHE_POLICY_READBACK_H

#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The printed text as a policy.yaml; the length, or -1 if out does not
 * fit it. */
static int readback_yaml(const char *text, char *out, size_t size)
{
	char group[64] = "";
	size_t n = 0;
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *colon = memchr(line, ':', len);
		const char *dot = colon ? memchr(line, '.', (size_t)(colon - line)) : NULL;
		int w;

		if (dot && (size_t)(dot - line) < sizeof(group)) {
			size_t glen = (size_t)(dot - line);

			if (strlen(group) != glen || strncmp(group, line, glen)) {
				memcpy(group, line, glen);
				group[glen] = '\0';
				w = snprintf(out + n, size - n, "%s:\n", group);
				if (w < 0 || (size_t)w >= size - n)
					return -1;
				n += (size_t)w;
			}
			w = snprintf(out + n, size - n, "  %.*s\n",
				     (int)(len - glen - 1), dot + 1);
		} else {
			group[0] = '\0';
			w = snprintf(out + n, size - n, "%.*s\n", (int)len, line);
		}
		if (w < 0 || (size_t)w >= size - n)
			return -1;
		n += (size_t)w;
		line = end ? end + 1 : line + len;
	}
	return (int)n;
}

/* text with the " # source" end of each line cut off. */
static void readback_strip(char *text)
{
	char *line = text, *w = text;

	while (*line) {
		char *end = strchr(line, '\n'), *hash = NULL, *h;
		size_t len;

		if (end)
			*end = '\0';
		for (h = strstr(line, " # "); h; h = strstr(h + 1, " # "))
			hash = h;
		len = hash ? (size_t)(hash - line) : strlen(line);
		while (len && line[len - 1] == ' ')
			len--;
		memmove(w, line, len);
		w += len;
		*w++ = '\n';
		if (!end)
			break;
		line = end + 1;
	}
	*w = '\0';
}

/* 0 when p printed reads back as p; else 1 with the reason in why. */
static int policy_reads_back(const struct policy *p, char *why, size_t size)
{
	enum { CAP = 1 << 15 };
	char *a = malloc(CAP), *b = malloc(CAP), *yaml = malloc(2 * CAP);
	struct policy_file *f = NULL;
	struct policy_error err;
	struct policy q;
	int n, bad = 1;

	if (!a || !b || !yaml) {
		snprintf(why, size, "out of memory");
		goto out;
	}
	n = policy_format(p, a, CAP);
	if (n < 0 || n >= CAP || (n = readback_yaml(a, yaml, 2 * CAP)) < 0) {
		snprintf(why, size, "the printed policy is too long");
		goto out;
	}
	if (policy_file_parse(yaml, (size_t)n, "/readback", &f, &err)) {
		snprintf(why, size, "%d:%d: %s in:\n%s", err.line, err.column,
			 err.message, yaml);
		goto out;
	}
	policy_defaults(&q);
	policy_apply(&q, f);
	policy_format(&q, b, CAP);
	readback_strip(a);
	readback_strip(b);
	if (strcmp(a, b)) {
		snprintf(why, size, "printed:\n%s\nread back:\n%s", a, b);
		goto out;
	}
	bad = 0;
out:
	policy_file_free(f);
	free(a);
	free(b);
	free(yaml);
	return bad;
}

#endif
