/*
 * quota.c - the byte caps of scratch files per mount and per user
 * (quota.h).
 *
 * Design: one total and a small table of (uid, bytes) rows, a row per
 * user that holds scratch bytes now (rows are dropped when they reach
 * zero, so the table is as long as the number of users writing scratch
 * files at once; a linear search is enough). A charge checks both caps
 * before changing anything. Refusals are logged through fs_warn()
 * (rate-limited).
 *
 * Not here: what a scratch file is (node.h, editor.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "fs_i.h"
#include "quota.h"

struct quota_row {
	uid_t uid;
	int64_t bytes;
};

static pthread_mutex_t quota_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t mount_max = QUOTA_DEFAULT_MOUNT_MAX; /* set before serving */
static int64_t user_max = QUOTA_DEFAULT_USER_MAX;
static int64_t total;                               /* quota_lock */
static struct quota_row *rows;                      /* quota_lock */
static size_t nrows, caprows;                       /* quota_lock */

void quota_set_limits(int64_t mmax, int64_t umax)
{
	mount_max = mmax;
	user_max = umax;
}

/* The row of uid, created (with 0 bytes) if create; NULL if absent or out
 * of memory. quota_lock held. */
static struct quota_row *row_of(uid_t uid, bool create)
{
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].uid == uid)
			return &rows[i];
	if (!create)
		return NULL;
	if (nrows == caprows) {
		size_t ncap = caprows ? caprows * 2 : 8;
		struct quota_row *n = realloc(rows, ncap * sizeof(*n));

		if (!n)
			return NULL;
		rows = n;
		caprows = ncap;
	}
	rows[nrows] = (struct quota_row){ .uid = uid };
	return &rows[nrows++];
}

int quota_charge(uid_t uid, int64_t delta)
{
	struct quota_row *r;
	int64_t mine, all;
	int rc = 0;

	if (delta == 0)
		return 0;
	pthread_mutex_lock(&quota_lock);
	r = row_of(uid, delta > 0);
	mine = r ? r->bytes : 0;
	all = total;
	if (delta > 0 && !r) {
		rc = -ENOMEM;
	} else if (delta > 0 && all + delta > mount_max) {
		rc = -ENOSPC;
	} else if (delta > 0 && mine + delta > user_max) {
		rc = -EDQUOT;
	} else if (r) {
		/* a credit never goes below zero */
		r->bytes = mine + delta > 0 ? mine + delta : 0;
		total = all + delta > 0 ? all + delta : 0;
		if (!r->bytes)
			*r = rows[--nrows];
	}
	pthread_mutex_unlock(&quota_lock);
	if (rc == -ENOSPC)
		fs_warn("scratch files would hold %lld bytes, over -o scratch_max=%lld: "
			"write by uid %u refused (ENOSPC); remove scratch files or raise "
			"scratch_max", (long long)(all + delta), (long long)mount_max,
			(unsigned)uid);
	else if (rc == -EDQUOT)
		fs_warn("scratch files of uid %u would hold %lld bytes, over -o "
			"scratch_user_max=%lld: write refused (EDQUOT); remove them or "
			"raise scratch_user_max", (unsigned)uid, (long long)(mine + delta),
			(long long)user_max);
	return rc;
}

int64_t quota_used(uid_t uid)
{
	struct quota_row *r;
	int64_t n;

	pthread_mutex_lock(&quota_lock);
	r = uid == (uid_t)-1 ? NULL : row_of(uid, false);
	n = uid == (uid_t)-1 ? total : (r ? r->bytes : 0);
	pthread_mutex_unlock(&quota_lock);
	return n;
}
