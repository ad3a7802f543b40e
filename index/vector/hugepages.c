/*
 * hugepages.c - the index's large arrays on transparent huge pages
 * (vindex_hugepages, see vindex.h).
 *
 * Under the read lock it copies where FAISS's arrays are; with the lock
 * released it advises each allocation it has not advised before:
 * MADV_HUGEPAGE over all of it (later growth in place faults in huge
 * pages), then MADV_COLLAPSE over the part in use (Linux 6.1+: the pages
 * are copied into huge ones now, instead of by khugepaged over many
 * minutes). Of an allocation advised before it collapses only what it
 * has grown by since (pages faulted in 4 KiB at a time while the 2 MiB
 * around them was partly in use).
 * Both work on the 2 MiB-aligned interior of a region, and neither changes
 * what the memory holds, so advising an array that a merge has meanwhile
 * moved and freed costs nothing but the call. A kernel without THP
 * refuses (EINVAL): then the index stops asking. MADV_COLLAPSE does not
 * follow the kernel's THP setting (it collapses even under "never"), so
 * before advising anything new a pass reads the setting itself and does
 * nothing under "never" or for a process with PR_SET_THP_DISABLE; what it
 * skipped is advised once the setting allows it again. A failed collapse
 * (no huge page free: EAGAIN, ENOMEM) leaves the 4 KiB pages; khugepaged
 * may still collapse the advised range later.
 *
 * Not here: any choice of what to put on huge pages beyond FAISS's arrays.
 */
#include "vindex_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; glibc 2.36's headers lack it */
#endif

#define HUGE_PAGE ((uintptr_t)2 << 20)

const char *vindex_thp_setting = "/sys/kernel/mm/transparent_hugepage/enabled";

/* Whether the kernel's THP setting lets this process have huge pages: not
 * "[never]" in vindex_thp_setting, no PR_SET_THP_DISABLE. An unreadable
 * setting (no THP in the kernel) leaves it to madvise's EINVAL. */
static bool thp_allowed(void)
{
	char buf[128];
	ssize_t got;
	int fd;

	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1)
		return false;
	fd = open(vindex_thp_setting, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return true;
	buf[got] = '\0';
	return !strstr(buf, "[never]");
}

/* Whether region r holds anything an earlier pass (was) did not advise. */
static bool region_new(const struct vindex_region *r, const struct vindex_region *was)
{
	uintptr_t start = ((uintptr_t)r->p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	uintptr_t used = ((uintptr_t)r->p + r->len) & ~(HUGE_PAGE - 1);

	if (used <= start)
		return false;
	if (!was)
		return true;
	return (((uintptr_t)was->p + was->len) & ~(HUGE_PAGE - 1)) < used;
}

/* What an earlier pass advised of the allocation r is in (NULL: none). */
static const struct vindex_region *region_seen(const struct vindex *vi,
					       const struct vindex_region *r)
{
	for (int i = 0; i < vi->nthp; i++)
		if (vi->thp[i].p == r->p && vi->thp[i].cap == r->cap)
			return &vi->thp[i];
	return NULL;
}

/* Advise one region (MADV_HUGEPAGE over all of it, unless was says an
 * earlier pass did) and collapse what of it is in use, from where that
 * pass stopped. Returns the bytes collapsed, or -EINVAL when the kernel
 * refuses huge pages altogether. */
static long region_advise(const struct vindex_region *r, const struct vindex_region *was)
{
	uintptr_t start = ((uintptr_t)r->p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	uintptr_t end = ((uintptr_t)r->p + r->cap) & ~(HUGE_PAGE - 1);
	uintptr_t used = ((uintptr_t)r->p + r->len) & ~(HUGE_PAGE - 1);
	uintptr_t from = start;

	if (end <= start)
		return 0; /* smaller than a huge page once aligned */
	if (was) {
		uintptr_t done = ((uintptr_t)was->p + was->len) & ~(HUGE_PAGE - 1);

		from = done > start ? done : start;
	} else if (madvise((void *)start, end - start, MADV_HUGEPAGE)) {
		return errno == EINVAL ? -EINVAL : 0; /* ENOMEM: freed meanwhile */
	}
	if (used <= from)
		return 0;
	if (madvise((void *)from, used - from, MADV_COLLAPSE))
		return 0; /* kept on 4 KiB pages for now (or a kernel before 6.1) */
	return (long)(used - from);
}

size_t vindex_hugepages(struct vindex *vi)
{
	struct vindex_region r[VINDEX_THP_REGIONS];
	size_t done = 0;
	bool fresh = false;
	int n = 0;

	if (!vi)
		return 0;
	pthread_mutex_lock(&vi->thp_mu);
	if (vi->thp_off) {
		pthread_mutex_unlock(&vi->thp_mu);
		return 0;
	}
	pthread_rwlock_rdlock(&vi->lock);
	if (vi->hnsw)
		n = vindex_hnsw_regions(vi->hnsw, r, VINDEX_THP_REGIONS);
	pthread_rwlock_unlock(&vi->lock);
	for (int i = 0; i < n && !fresh; i++)
		fresh = region_new(&r[i], region_seen(vi, &r[i]));
	if (fresh && !thp_allowed()) {
		pthread_mutex_unlock(&vi->thp_mu);
		return 0; /* kept unseen: advised once the setting allows it */
	}
	for (int i = 0; i < n; i++) {
		long got;

		got = region_advise(&r[i], region_seen(vi, &r[i]));
		if (got < 0) {
			vi->thp_off = true;
			break;
		}
		done += (size_t)got;
	}
	memcpy(vi->thp, r, sizeof(r[0]) * (size_t)n);
	vi->nthp = n;
	pthread_mutex_unlock(&vi->thp_mu);
	return done;
}
