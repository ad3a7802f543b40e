/*
 * fuzz_policy.c - libFuzzer harness for the policy parser and printer.
 *
 * Any bytes go to policy_file_parse(); a parse either fails with -EINVAL
 * and a message (line/column sane) or yields a file that policy_apply()
 * applies over the defaults, policy_check() judges and policy_format()
 * prints without overflowing. Never a crash, leak or undefined behaviour.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define FUZZ_NAME "fuzz_policy"
#include "fuzz_check.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_file *f = NULL;
	struct policy_error err;
	struct policy p;
	char buf[8192], msg[256];
	int rc, n;

	memset(&err, 0, sizeof(err));
	rc = policy_file_parse((const char *)data, size, "/fuzz", &f, &err);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc) {
		FUZZ_CHECK(f == NULL || rc != 0);
		FUZZ_CHECK(err.line >= 0 && err.column >= 0);
		FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)));
		return 0;
	}
	FUZZ_CHECK(f != NULL);
	policy_defaults(&p);
	policy_apply(&p, f);
	(void)policy_check(&p, msg, sizeof(msg));
	n = policy_format(&p, buf, sizeof(buf));
	FUZZ_CHECK(n >= 0 && (size_t)n < sizeof(buf));
	FUZZ_CHECK(strlen(buf) == (size_t)n);
	/* a tiny buffer is truncated, never overrun */
	n = policy_format(&p, buf, 7);
	FUZZ_CHECK(n >= 0 && strlen(buf) < 7);
	policy_file_free(f);
	return 0;
}
