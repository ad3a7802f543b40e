/*
 * fuzz_policy.c - libFuzzer harness for the policy parser and printer.
 *
 * Any bytes go to policy_file_parse(); a parse either fails with -EINVAL
 * (-EFBIG past POLICY_FILE_MAX) and a message (line/column sane) or yields
 * a file that policy_apply() applies over the defaults, policy_check()
 * judges and policy_format() prints without overflowing; the printed
 * policy reads back as the same policy. Never a crash, leak, undefined
 * behaviour or a slow input (libFuzzer's -timeout).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_readback.h"

#define FUZZ_NAME "fuzz_policy"
#include "fuzz_check.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_file *f = NULL;
	struct policy_error err;
	struct policy p;
	char buf[8192], msg[256], why[4096];
	int rc, n;

	memset(&err, 0, sizeof(err));
	rc = policy_file_parse((const char *)data, size, "/fuzz", &f, &err);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM ||
		   (rc == -EFBIG && size > POLICY_FILE_MAX));
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
	if (policy_reads_back(&p, why, sizeof(why))) {
		fprintf(stderr, "fuzz_policy: %s\n", why);
		FUZZ_CHECK(!"the printed policy reads back as itself");
	}
	policy_file_free(f);
	return 0;
}
