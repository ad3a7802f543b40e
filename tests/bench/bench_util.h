/*
 * bench_util.h - what the benchmarks and load tools share: failing loudly,
 * the clock, order statistics, a seeded generator, CPU pinning, /proc
 * readers, child processes and FUSE mounts, and the client side of a
 * lookup session through a mounted semcachefs.
 *
 * Plain libc and Linux calls, no engine code, so that every program under
 * tests/bench and tests/tools can link bench_util.c. Nothing here is
 * product code: a failure that leaves a benchmark without a meaningful
 * result calls bench_die(), which exits (atexit handlers run).
 *
 * Threads: the session helpers use only their struct bench_sess (one per
 * thread); bench_fill_range starts and joins its own writers; nothing
 * keeps state except bench_rng's caller-owned state.
 */
#ifndef SEMCACHE_BENCH_UTIL_H
#define SEMCACHE_BENCH_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- failing and telling ------------------------------------------- */

/* "PROGRAM: message" on stderr, then exit(1). */
void bench_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
/* "# message" on stderr: progress that is not a result. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* calloc / realloc of n * size bytes, or bench_die. */
void *bench_xcalloc(size_t n, size_t size);
void *bench_xrealloc(void *p, size_t n, size_t size);

/* ---- time, statistics, randomness ---------------------------------- */

/* Monotonic microseconds (arbitrary origin). */
double bench_now_us(void);

/* qsort comparison of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* The q quantile (0..1) of v[0..n), nearest rank on n - 1; sorts v. NAN
 * when n is 0. */
double bench_quantile(double *v, size_t n, double q);

/* Median, min and max of a few per-run figures (BENCH.md's method). */
struct bench_summary {
	double med, min, max;
};
/* v is not changed; NANs when n <= 0. */
struct bench_summary bench_summarise(const double *v, int n);

/* xorshift64*: the same sequence on every platform for a given state
 * (which must not be 0). */
uint64_t bench_rng(uint64_t *state);
/* Uniform in [0, 1), 53 bits. */
double bench_rng_unit(uint64_t *state);

/* ---- CPUs and /proc ------------------------------------------------ */

/* Pin thread tid (0: the caller) to cpu, or allow every CPU (cpu -1). */
int bench_set_cpu(pid_t tid, int cpu);
/* The same for every thread of process pid (ignored when pid <= 0); with
 * cpu -1, libfuse's io_uring queue threads ("fuse-ring-Q") go back to the
 * CPU Q that libfuse binds them to. */
void bench_set_cpu_all(pid_t pid, int cpu);
/* How many threads of pid have a name starting with prefix; -1 if none
 * can be read. */
int bench_count_threads(pid_t pid, const char *prefix);
/* A "Key:" line of /proc/PID/status in KiB ("VmRSS", "VmHWM"), -1 when
 * unknown. */
long bench_proc_kib(pid_t pid, const char *key);
/* User + system CPU seconds of pid (/proc/PID/stat), -1 when unknown. */
double bench_proc_cpu_s(pid_t pid);
/* The first fields (1..3) of /proc/loadavg, "?" when unreadable. */
void bench_loadavg(char *buf, size_t size, int fields);

/* ---- programs, files, mounts --------------------------------------- */

/* The program's directory joined with rel (malloc'd), NULL on failure. */
char *bench_sibling(const char *rel);
/* The semcachefs to start: path, else ../fs/semcachefs next to this
 * program. Without an executable one, prints SKIP and exits 77. */
const char *bench_daemon(const char *path);
/* argv joined by spaces into buf (truncated to size). */
void bench_cmdline(int argc, char **argv, char *buf, size_t size);
/* A fresh directory DIR/PREFIX-XXXXXX into buf; DIR is dir, else $TMPDIR,
 * else /tmp. bench_die on failure. */
void bench_mkdtemp(char *buf, size_t size, const char *dir, const char *prefix);

/*
 * Start argv (PATH lookup unless argv[0] has a '/') in a child: stdout and
 * stderr appended to log (NULL: inherited), then child(arg) when given
 * (runs in the child just before exec). Returns the pid; bench_die when
 * fork fails; exit status 127 when exec does.
 */
pid_t bench_spawn(char *const argv[], const char *log,
		  void (*child)(void *), void *arg);
/* Run argv to completion, stdout to out_fd (-1: /dev/null), stderr to
 * /dev/null; its exit status, -1 when it could not run or was killed. */
int bench_run(char *const argv[], int out_fd);
void bench_rm_rf(const char *path);
/* Wait up to secs for pid to exit, then SIGKILL it and wait. */
void bench_reap(pid_t pid, double secs);

bool bench_is_fuse_mounted(const char *mnt);
/*
 * Poll until mnt is a FUSE mount. bench_die when *pid exits first (*pid
 * becomes 0, it was reaped) or after timeout_s; both messages name log.
 */
void bench_wait_mounted(pid_t *pid, const char *mnt, const char *log,
			double timeout_s);
/*
 * Unmount mnt (fusermount3 -u, retried for 5 s while busy) and wait for
 * the daemon *pid to exit; if it stays mounted, SIGTERM, then SIGKILL after
 * 300 s and a lazy unmount. *pid becomes 0. Returns the seconds it took
 * (a clean stop of semcachefs writes its snapshots); 0 when *pid <= 0.
 */
double bench_fs_stop(pid_t *pid, const char *mnt);

/* Create/truncate path with len bytes: 0 once close() returned 0, or
 * -errno. */
int bench_put(const char *path, const void *data, size_t len);
/* Read path until EOF or size - 1 bytes, NUL-terminated: the length, or
 * -errno (buf is then ""). */
ssize_t bench_get(const char *path, char *buf, size_t size);
/* The number on the line "key: N" of a .stats text, NAN when absent. */
double bench_stat_num(const char *text, const char *key);
/* The same read from DIR/.stats, NAN when unreadable. */
double bench_stat(const char *dir, const char *key);

/* ---- a lookup session ---------------------------------------------- */

#define BENCH_BUF_BYTES (64 * 1024)  /* reads of status and answers */
#define BENCH_RESP_BYTES 512         /* the answer bench_fill stores */

/* One client's session files DIR/NAME.{query,status,response}. */
struct bench_sess {
	char dir[PATH_MAX];
	char query[PATH_MAX], status[PATH_MAX], response[PATH_MAX];
	char name_q[300];   /* NAME.query, for openat(dirfd) */
	int dirfd;          /* the category directory, or -1 */
	int pfd;            /* NAME.query O_RDWR, kept open (persist), or -1 */
	char *buf;          /* BENCH_BUF_BYTES, owned */
};

/* Set up s for dir and name; bench_die when dir cannot be opened. */
void bench_sess_init(struct bench_sess *s, const char *dir, const char *name);
void bench_sess_release(struct bench_sess *s);

/*
 * One lookup of q[0..len). Each returns 1 for a hit, 0 for a miss, or a
 * negative errno. 3file: create/write/close NAME.query, open/read/close
 * NAME.status (one read: the status is one line), open/read to EOF/close
 * NAME.response. fast: one descriptor O_RDWR|O_CREAT|O_TRUNC on
 * NAME.query (through openat on dirfd when at), write, pread from 0
 * (status line and answer), close.
 */
int bench_lookup_3file(struct bench_sess *s, const char *q, size_t len);
int bench_lookup_fast(struct bench_sess *s, const char *q, size_t len,
		      bool at);
/* persist: NAME.query opened O_RDWR once (at the first lookup) and kept;
 * each lookup is pwrite(q, 0) then pread from 0 (2 FUSE requests). */
int bench_lookup_persist(struct bench_sess *s, const char *q, size_t len);
/* A durable fill of question q numbered i: a fast lookup (at as above),
 * then BENCH_RESP_BYTES into NAME.response; 0 once close() returned 0. */
int bench_fill(struct bench_sess *s, const char *q, size_t i, bool at);

/* Question i for bench_fill_range (buf may hold it; size bytes). */
typedef const char *bench_question_fn(size_t i, char *buf, size_t size,
				      void *arg);
/*
 * Fill questions [from, to) into dir with k writer threads (1..8, each
 * unpinned, with its own session fill0..fill7) through bench_fill; they
 * take the next question from a shared counter. Returns fills per second;
 * bench_die after a failed fill.
 */
double bench_fill_range(const char *dir, size_t from, size_t to, int k,
			bool at, bench_question_fn *question, void *arg);

#endif
