/*
 * check.h - the unit tests' tiny harness: CHECK() records a failure with
 * file:line and goes on; CHECK_SKIP() says why a part cannot run here;
 * check_done() prints "N passed, N failed" and gives the exit status: 1
 * when a check failed, else 77 (meson's SKIP) when a part was skipped,
 * else 0. A part that may skip runs as its own meson test (the program's
 * argument names it, see tests/meson.build), so a skip hides no passes.
 * Header-only; each test program includes it once.
 */
#ifndef SEMCACHE_CHECK_H
#define SEMCACHE_CHECK_H

#include <stdio.h>

static int check_passed, check_failed, check_skipped;

#define CHECK_SKIP(...)                                                    \
	do {                                                               \
		check_skipped++;                                           \
		printf("SKIP: ");                                          \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
	} while (0)

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			check_passed++;                                    \
		} else {                                                   \
			check_failed++;                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
		}                                                          \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                 \
	do {                                                               \
		long long check_a_ = (long long)(a);                       \
		long long check_b_ = (long long)(b);                       \
		if (check_a_ == check_b_) {                                \
			check_passed++;                                    \
		} else {                                                   \
			check_failed++;                                    \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, check_a_,      \
				check_b_);                                 \
		}                                                          \
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
	if (check_failed)
		return 1;
	return check_skipped ? 77 : 0;
}

#endif
