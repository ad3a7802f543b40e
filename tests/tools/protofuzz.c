/*
 * protofuzz.c - a seeded protocol fuzzer through a mounted semcachefs.
 *
 *   protofuzz MOUNT SECONDS SEED [THREADS]
 *
 * Several threads run random system calls, for a bounded time, on a small
 * set of names in a few categories under MOUNT/fz: open with random flags,
 * write/pwrite (odd offsets, huge sizes), pread, ftruncate/truncate,
 * fsync, fstat/stat, fchmod/futimens, xattrs (by path and descriptor),
 * unlink, rename (onto and away from policy.yaml, RENAME_NOREPLACE,
 * RENAME_EXCHANGE), readdir, close, mkdir/rmdir of categories (some too
 * deep), writes of good and bad policies and of .purge. Descriptors live in
 * shared slots: any thread may use any slot, so requests on one open file
 * overlap, and a slot's file is often unlinked, renamed or its category
 * removed while it is open (stale descriptors).
 *
 * Every failure must be an errno of ALLOWED (README.md's errors table);
 * anything else (ENOTCONN: the daemon died; EIO, ENOMEM, ...) is printed
 * with the call that got it. Output: one line per errno seen ("errno
 * ENOENT 1234"), then "ops N". Exit 0 if every errno was allowed, 1 if
 * not, 2 on usage, 3 if a call did not return within SECONDS + 60 s.
 *
 * Not a coverage-guided fuzzer: random but seeded, so a failing seed can
 * be replayed (interleavings between threads still differ).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define NSLOTS 48
#define MAXTHREADS 16

/* The errnos README.md documents for the mount. */
static const int allowed[] = {
	ENOENT, EACCES, EPERM, EINVAL, EFBIG, EEXIST, EISDIR, ENOTDIR,
	ENOTEMPTY, EXDEV, ENAMETOOLONG, ENODATA, ENOTSUP, ERANGE, EBADF,
	ESTALE, ENOSPC, EDQUOT, EMLINK,
};

static const char *const cats[] = {
	"fz", "fz/a", "fz/b", "fz/a/x", "fz/b/y", "fz/a/x/deep",
};
#define NCATS (sizeof(cats) / sizeof(*cats))

static const char *const bases[] = {
	"s0.query", "s0.response", "s0.status", "s0.context", "s0.feedback",
	"s1.query", "s1.response", "s1.status", "s1.context",
	"s2.query", "s2.response", "t0", "t1", "t2.swp", "t3~", "policy.yaml",
	".purge", ".stats", ".policy", ".errors", "entries", "entries/1",
	"entries/1/query", "entries/2/meta", "x", "y", "a", "b",
};
#define NBASES (sizeof(bases) / sizeof(*bases))

static const char *const texts[] = {
	"how do I reverse a list in python", "what is the capital of france",
	"how do I sort a dict by value", "   ", "", "wrong\n", "wrong",
	"threshold: 0.5\n", "ttl: 1h\nthreshold: 0.92\n", "cache: false\n",
	"{{{ not: yaml", "threshold: 7\n", "embedder: http\n",
	"limits: {query_bytes: 100}\n", "0.5\n", "reversed(xs)",
};
#define NTEXTS (sizeof(texts) / sizeof(*texts))

struct slot {
	pthread_rwlock_t lock; /* readers use fd; the writer replaces it */
	int fd;                /* -1: empty */
};

static const char *mnt;
static struct slot slots[NSLOTS];
static atomic_bool stop;
static atomic_uint_fast64_t ops;
static atomic_int bad;
static atomic_uint_fast64_t counts[4096];
static atomic_int_fast64_t last_progress_ms;
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static unsigned pick(uint64_t *s, unsigned n)
{
	return (unsigned)(next(s) % n);
}

/* Each thread's call in flight, printed if the daemon hangs. */
static char in_flight[MAXTHREADS][2100];
static _Thread_local char *my_call;

static void begin(const char *what, const char *path, const char *to)
{
	if (my_call)
		snprintf(my_call, sizeof(in_flight[0]), "%s(%.1000s%s%.1000s)", what, path,
			 to ? ", " : "", to ? to : "");
}

/* Note the outcome of call what (rc < 0: errno says why). */
static void note(const char *what, const char *path, long rc)
{
	int e = errno;

	if (my_call)
		my_call[0] = '\0';
	atomic_fetch_add(&ops, 1);
	atomic_store(&last_progress_ms, now_ms());
	if (rc >= 0)
		return;
	if (e > 0 && e < 4096)
		atomic_fetch_add(&counts[e], 1);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++)
		if (allowed[i] == e)
			return;
	if (e == ENOTCONN || e == ECONNABORTED)
		atomic_store(&stop, true); /* the daemon is gone: nothing more to learn */
	if (atomic_fetch_add(&bad, 1) >= 20)
		return; /* the first ones say enough */
	pthread_mutex_lock(&print_mu);
	printf("unexpected %s from %s(%s)\n", strerrorname_np(e) ? strerrorname_np(e) : "E?",
	       what, path ? path : "");
	fflush(stdout);
	pthread_mutex_unlock(&print_mu);
}

/* Run call, recording it as in flight first. */
#define DO(what, path, call) (begin((what), (path), NULL), note((what), (path), (call)))

static void random_path(uint64_t *s, char *out, size_t size)
{
	snprintf(out, size, "%s/%s/%s", mnt, cats[pick(s, NCATS)], bases[pick(s, NBASES)]);
}

/* Data to write: a text of the table, random bytes, or a big block. */
static size_t random_data(uint64_t *s, char *buf, size_t cap)
{
	size_t n;

	switch (pick(s, 6)) {
	case 0:
		n = pick(s, 512);
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)next(s);
		return n;
	case 1:
		n = pick(s, 4) == 0 ? cap : 70000;
		memset(buf, 'q', n);
		return n;
	default: {
		const char *t = texts[pick(s, NTEXTS)];

		n = strlen(t);
		memcpy(buf, t, n);
		return n;
	}
	}
}

static off_t random_off(uint64_t *s)
{
	static const off_t offs[] = { 0, 0, 0, 1, 7, 4095, 65533, 1 << 20,
				      (off_t)1 << 30, ((off_t)1 << 40) + 7 };

	return offs[pick(s, sizeof(offs) / sizeof(*offs))];
}

static void op_open(uint64_t *s)
{
	static const int acc[] = { O_RDONLY, O_WRONLY, O_RDWR };
	static const int more[] = { 0, O_CREAT, O_CREAT | O_TRUNC, O_TRUNC,
				    O_CREAT | O_EXCL, O_APPEND | O_CREAT };
	struct slot *sl = &slots[pick(s, NSLOTS)];
	char path[512];
	int fd;

	random_path(s, path, sizeof(path));
	begin("open", path, NULL);
	fd = open(path, acc[pick(s, 3)] | more[pick(s, 6)], 0600);
	note("open", path, fd);
	pthread_rwlock_wrlock(&sl->lock);
	if (sl->fd >= 0)
		DO("close", "slot", close(sl->fd));
	sl->fd = fd;
	pthread_rwlock_unlock(&sl->lock);
}

static void op_close(uint64_t *s)
{
	struct slot *sl = &slots[pick(s, NSLOTS)];

	pthread_rwlock_wrlock(&sl->lock);
	if (sl->fd >= 0)
		DO("close", "slot", close(sl->fd));
	sl->fd = -1;
	pthread_rwlock_unlock(&sl->lock);
}

/* A call on a descriptor of a slot (shared with other threads). */
static void op_fd(uint64_t *s, char *buf, size_t cap)
{
	struct slot *sl = &slots[pick(s, NSLOTS)];
	struct timespec ts[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
	struct stat st;
	char small[256];
	size_t n;
	int fd;

	pthread_rwlock_rdlock(&sl->lock);
	fd = sl->fd;
	if (fd < 0) {
		pthread_rwlock_unlock(&sl->lock);
		return;
	}
	switch (pick(s, 12)) {
	case 0:
	case 1:
		n = random_data(s, buf, cap);
		DO("pwrite", "fd", pwrite(fd, buf, n, pick(s, 3) ? 0 : random_off(s)));
		break;
	case 2:
		n = random_data(s, buf, cap);
		DO("write", "fd", write(fd, buf, n));
		break;
	case 3:
	case 4:
		DO("pread", "fd", pread(fd, buf, cap, pick(s, 3) ? 0 : random_off(s)));
		break;
	case 5:
		DO("ftruncate", "fd", ftruncate(fd, pick(s, 2) ? (off_t)pick(s, 64) : random_off(s)));
		break;
	case 6:
		if (pick(s, 2))
			DO("fsync", "fd", fsync(fd));
		else
			DO("fdatasync", "fd", fdatasync(fd));
		break;
	case 7:
		DO("fstat", "fd", fstat(fd, &st));
		break;
	case 8:
		DO("fchmod", "fd", fchmod(fd, pick(s, 2) ? 0600 : 0644));
		break;
	case 9:
		DO("futimens", "fd", futimens(fd, ts));
		break;
	case 10:
		DO("fgetxattr", "fd", fgetxattr(fd, "user.semcache.status", small, sizeof(small)));
		break;
	default:
		DO("flistxattr", "fd", flistxattr(fd, small, pick(s, 2) ? sizeof(small) : 8));
		break;
	}
	pthread_rwlock_unlock(&sl->lock);
}

static void op_dir(uint64_t *s)
{
	char path[512];
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", mnt, cats[pick(s, NCATS)]);
	switch (pick(s, 4)) {
	case 0:
		DO("mkdir", path, mkdir(path, pick(s, 2) ? 0755 : 01777));
		break;
	case 1:
		DO("rmdir", path, rmdir(path));
		break;
	case 2: {
		/* a chain below the depth cap and one level past it (rarely:
		 * 33 calls) */
		if (pick(s, 8))
			break;
		char deep[4096];
		int len = snprintf(deep, sizeof(deep), "%s/fz", mnt);

		for (int i = 0; i < 33 && len < (int)sizeof(deep) - 4; i++) {
			len += snprintf(deep + len, sizeof(deep) - len, "/d");
			begin("mkdir", deep, NULL);
			if (mkdir(deep, 0755) && errno != EEXIST) {
				note("mkdir", "deep", -1);
				break;
			}
			note("mkdir", "deep", 0);
		}
		break;
	}
	default:
		begin("opendir", path, NULL);
		d = opendir(path);
		note("opendir", path, d ? 0 : -1);
		if (d) {
			errno = 0;
			begin("readdir", path, NULL);
			while (readdir(d))
				;
			note("readdir", path, errno ? -1 : 0);
			closedir(d);
		}
		break;
	}
}

static void op_path(uint64_t *s, char *buf, size_t cap)
{
	static const unsigned flags[] = { 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE };
	char path[512], to[512], small[256];
	struct stat st;
	size_t n;
	int fd;

	random_path(s, path, sizeof(path));
	switch (pick(s, 10)) {
	case 0:
		DO("unlink", path, unlink(path));
		break;
	case 1:
	case 2: {
		const char *dir = cats[pick(s, NCATS)];
		const char *a = pick(s, 3) ? bases[pick(s, NBASES)] : "policy.yaml";
		const char *b = pick(s, 3) ? bases[pick(s, NBASES)] : "policy.yaml";

		snprintf(path, sizeof(path), "%s/%s/%s", mnt, dir, a);
		snprintf(to, sizeof(to), "%s/%s/%s", mnt, pick(s, 8) ? dir : cats[pick(s, NCATS)], b);
		begin("renameat2", path, to);
		note("renameat2", path, renameat2(AT_FDCWD, path, AT_FDCWD, to, flags[pick(s, 4)]));
		break;
	}
	case 3:
		DO("truncate", path, truncate(path, pick(s, 2) ? (off_t)pick(s, 64) : random_off(s)));
		break;
	case 4:
		DO("stat", path, stat(path, &st));
		break;
	case 5:
		DO("getxattr", path, getxattr(path, pick(s, 2) ? "user.semcache.status" :
						"user.semcache.hits", small, pick(s, 2) ? sizeof(small) : 2));
		break;
	case 6:
		if (pick(s, 2))
			DO("listxattr", path, listxattr(path, small, sizeof(small)));
		else
			DO("setxattr", path, setxattr(path, "user.semcache.status", "hit", 3, 0));
		break;
	case 7:
		DO("chmod", path, chmod(path, pick(s, 2) ? 0600 : 0755));
		break;
	default:
		/* a whole write: a query, a fill, a policy, a purge */
		begin("open", path, NULL);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		note("open", path, fd);
		if (fd < 0)
			break;
		n = random_data(s, buf, cap);
		DO("write", path, write(fd, buf, n));
		DO("close", path, close(fd));
		break;
	}
}

struct worker_arg {
	uint64_t seed;
	int index;
};

static void *worker(void *varg)
{
	const struct worker_arg *arg = varg;
	uint64_t s = arg->seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t cap = 1 << 20;
	char *buf = malloc(cap);

	my_call = in_flight[arg->index];
	if (!buf)
		return NULL;
	while (!atomic_load(&stop)) {
		switch (pick(&s, 10)) {
		case 0:
		case 1:
			op_open(&s);
			break;
		case 2:
			op_close(&s);
			break;
		case 3:
		case 4:
		case 5:
			op_fd(&s, buf, cap);
			break;
		case 6:
			op_dir(&s);
			break;
		default:
			op_path(&s, buf, cap);
			break;
		}
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[MAXTHREADS];
	struct worker_arg args[MAXTHREADS];
	int secs, nthreads = 4;
	uint64_t seed;
	char path[512];
	int64_t end;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: protofuzz MOUNT SECONDS SEED [THREADS]\n");
		return 2;
	}
	mnt = argv[1];
	secs = atoi(argv[2]);
	seed = strtoull(argv[3], NULL, 10);
	if (argc == 5)
		nthreads = atoi(argv[4]);
	if (secs < 1 || nthreads < 1 || nthreads > MAXTHREADS) {
		fprintf(stderr, "protofuzz: SECONDS >= 1, 1 <= THREADS <= %d\n", MAXTHREADS);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/fz", mnt);
	if (mkdir(path, 01777) && errno != EEXIST) {
		perror("protofuzz: mkdir MOUNT/fz");
		return 2;
	}
	for (int i = 0; i < NSLOTS; i++) {
		pthread_rwlock_init(&slots[i].lock, NULL);
		slots[i].fd = -1;
	}
	atomic_store(&last_progress_ms, now_ms());
	for (int i = 0; i < nthreads; i++) {
		args[i] = (struct worker_arg){ seed * 31 + i + 1, i };
		pthread_create(&th[i], NULL, worker, &args[i]);
	}
	end = now_ms() + (int64_t)secs * 1000;
	while (now_ms() < end)
		usleep(100000);
	atomic_store(&stop, true);
	/* a call that never returns is a hang of the daemon */
	for (int joined = 0; joined < nthreads;) {
		if (pthread_tryjoin_np(th[joined], NULL) == 0) {
			joined++;
			continue;
		}
		if (now_ms() - atomic_load(&last_progress_ms) > 60000) {
			printf("hang: no call returned for 60 s\n");
			for (int i = 0; i < nthreads; i++)
				if (in_flight[i][0])
					printf("thread %d in %s\n", i, in_flight[i]);
			fflush(stdout);
			_exit(3);
		}
		usleep(100000);
	}
	for (int i = 0; i < NSLOTS; i++)
		if (slots[i].fd >= 0)
			note("close", "slot", close(slots[i].fd));
	for (int e = 1; e < 4096; e++)
		if (atomic_load(&counts[e]))
			printf("errno %s %llu\n", strerrorname_np(e) ? strerrorname_np(e) : "E?",
			       (unsigned long long)atomic_load(&counts[e]));
	printf("ops %llu\n", (unsigned long long)atomic_load(&ops));
	return atomic_load(&bad) ? 1 : 0;
}
