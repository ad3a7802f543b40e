/*
 * fuzz_check.h - the harnesses' one assertion: FUZZ_CHECK(cond) prints
 * "FUZZ_NAME: file:line: cond" (the line tests/fuzz/run.sh shows) and
 * aborts, so libFuzzer keeps the input. Define FUZZ_NAME first.
 */
#ifndef SEMCACHE_FUZZ_CHECK_H
#define SEMCACHE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, FUZZ_NAME ": %s:%d: %s\n", __FILE__, \
				__LINE__, #cond);                          \
			abort();                                           \
		}                                                          \
	} while (0)

#endif
