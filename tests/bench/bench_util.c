/*
 * bench_util.c - the helpers the benchmarks and load tools share (see
 * bench_util.h for each one's contract).
 *
 * Design: small, blocking, Linux-only calls written once: processes are
 * fork/exec with their output redirected, mounts are polled with statfs
 * for the FUSE magic, /proc files are parsed line by line, and a session
 * does exactly the file calls a client of the mount does, so the benchmarks
 * time the same sequences.
 *
 * What not: no timing policy (warm-ups, runs, what is reported stay in
 * each benchmark), no corpus (bench_corpus.c), no engine calls.
 */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FUSE_MAGIC 0x65735546

/* ---- failing and telling ------------------------------------------- */

void bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

void bench_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "# ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

void *bench_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		bench_die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *bench_xrealloc(void *p, size_t n, size_t size)
{
	size_t bytes = n * size;
	void *q = size && n > SIZE_MAX / size ? NULL :
		  realloc(p, bytes ? bytes : 1);

	if (!q)
		bench_die("out of memory (%zu x %zu bytes)", n, size);
	return q;
}

/* ---- time, statistics, randomness ---------------------------------- */

double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_quantile(double *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), bench_cmp_double);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

struct bench_summary bench_summarise(const double *v, int n)
{
	struct bench_summary s = { NAN, NAN, NAN };
	double *t;

	if (n <= 0)
		return s;
	t = bench_xcalloc((size_t)n, sizeof(*t));
	memcpy(t, v, sizeof(*v) * (size_t)n);
	qsort(t, (size_t)n, sizeof(*t), bench_cmp_double);
	s.min = t[0];
	s.max = t[n - 1];
	s.med = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	free(t);
	return s;
}

uint64_t bench_rng(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

double bench_rng_unit(uint64_t *state)
{
	return (double)(bench_rng(state) >> 11) / 9007199254740992.0;
}

/* ---- CPUs and /proc ------------------------------------------------ */

int bench_set_cpu(pid_t tid, int cpu)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	CPU_ZERO(&set);
	if (cpu >= 0)
		CPU_SET(cpu, &set);
	else
		for (long i = 0; i < ncpu && i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	return sched_setaffinity(tid, sizeof(set), &set);
}

/* The thread's name (/proc/PID/task/TID/comm), "" when gone. */
static void task_comm(pid_t pid, const char *tid, char *buf, size_t size)
{
	char path[96];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, size - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

void bench_set_cpu_all(pid_t pid, int cpu)
{
	char path[64], comm[32];
	struct dirent *d;
	DIR *dir;
	int q;

	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		task_comm(pid, d->d_name, comm, sizeof(comm));
		/* libfuse binds io_uring queue thread q to CPU q: unpinned
		 * gives that back */
		if (cpu < 0 && sscanf(comm, "fuse-ring-%d", &q) == 1)
			bench_set_cpu((pid_t)atoi(d->d_name), q);
		else
			bench_set_cpu((pid_t)atoi(d->d_name), cpu);
	}
	closedir(dir);
}

int bench_count_threads(pid_t pid, const char *prefix)
{
	char path[64], comm[32];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = pid > 0 ? opendir(path) : NULL;
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.') {
			task_comm(pid, d->d_name, comm, sizeof(comm));
			n += !strncmp(comm, prefix, strlen(prefix));
		}
	closedir(dir);
	return n;
}

long bench_proc_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			kib = atol(line + kl + 1);
			break;
		}
	fclose(f);
	return kib;
}

double bench_proc_cpu_s(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = bench_get(path, buf, sizeof(buf));
	if (n <= 0)
		return -1;
	p = strrchr(buf, ')');  /* the command name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void bench_loadavg(char *buf, size_t size, int fields)
{
	FILE *f = fopen("/proc/loadavg", "r");
	char *sp = buf;

	snprintf(buf, size, "?");
	if (!f)
		return;
	if (fgets(buf, (int)size, f)) {
		for (int i = 0; i < fields && sp; i++)
			sp = strchr(i ? sp + 1 : sp, ' ');
		if (sp)
			*sp = '\0';
	}
	fclose(f);
}

/* ---- programs, files, mounts --------------------------------------- */

char *bench_sibling(const char *rel)
{
	char self[PATH_MAX], *slash, *out;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	if (asprintf(&out, "%s/%s", self, rel) < 0)
		return NULL;
	return out;
}

const char *bench_daemon(const char *path)
{
	if (!path)
		path = bench_sibling("../fs/semcachefs");
	if (!path || access(path, X_OK)) {
		printf("SKIP: daemon '%s' not found (build with meson, or pass --daemon)\n",
		       path ? path : "?");
		exit(77);
	}
	return path;
}

void bench_cmdline(int argc, char **argv, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < argc && o + 1 < size; i++) {
		int n = snprintf(buf + o, size - o, "%s%s", i ? " " : "", argv[i]);

		o += n > 0 ? (size_t)n : 0;
	}
}

void bench_mkdtemp(char *buf, size_t size, const char *dir, const char *prefix)
{
	if (!dir)
		dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(buf, size, "%s/%s-XXXXXX", dir, prefix);
	if (!mkdtemp(buf))
		bench_die("mkdtemp '%s': %s", buf, strerror(errno));
}

pid_t bench_spawn(char *const argv[], const char *log,
		  void (*child)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (child)
			child(arg);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int bench_run(char *const argv[], int out_fd)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(out_fd >= 0 ? out_fd : fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void bench_rm_rf(const char *path)
{
	char *argv[] = { "rm", "-rf", (char *)path, NULL };

	bench_run(argv, -1);
}

void bench_reap(pid_t pid, double secs)
{
	double t0 = bench_now_us();
	int st;

	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (bench_now_us() - t0 > secs * 1e6) {
			bench_note("process %d still running after %.0f s: killed (the "
				   "figures that timed its exit are void)", (int)pid, secs);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return;
		}
		usleep(10000);
	}
}

bool bench_is_fuse_mounted(const char *mnt)
{
	struct statfs sf;

	return statfs(mnt, &sf) == 0 && (unsigned long)sf.f_type == FUSE_MAGIC;
}

void bench_wait_mounted(pid_t *pid, const char *mnt, const char *log,
			double timeout_s)
{
	double t0 = bench_now_us();
	int st;

	while (!bench_is_fuse_mounted(mnt)) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			bench_die("'%s' exited before mounting (status %d); log: %s",
				  mnt, st, log);
		}
		if (bench_now_us() - t0 > timeout_s * 1e6)
			bench_die("'%s' not mounted after %.0f s; log: %s", mnt,
				  timeout_s, log);
		usleep(200);
	}
}

double bench_fs_stop(pid_t *pid, const char *mnt)
{
	char *um[] = { "fusermount3", "-u", (char *)mnt, NULL };
	char *lazy[] = { "umount", "-l", (char *)mnt, NULL };
	double t0 = bench_now_us();
	int st;

	if (*pid <= 0)
		return 0;
	for (int tries = 0; bench_is_fuse_mounted(mnt) && tries < 100; tries++) {
		bench_run(um, -1);
		if (bench_is_fuse_mounted(mnt))
			usleep(50000);
	}
	/* still busy (a client holds a file open, e.g. after a failure):
	 * SIGTERM makes the daemon unmount and exit cleanly */
	if (bench_is_fuse_mounted(mnt) && waitpid(*pid, &st, WNOHANG) == 0)
		kill(*pid, SIGTERM);
	/* a clean stop merges the vectors still buffered: minutes at 1M */
	bench_reap(*pid, 1800);
	if (bench_is_fuse_mounted(mnt))
		bench_run(lazy, -1);
	*pid = 0;
	return (bench_now_us() - t0) / 1e6;
}

int bench_put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		rc = errno ? -errno : -EIO;
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

ssize_t bench_get(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0;
	ssize_t n = 0;

	buf[0] = '\0';
	if (fd < 0)
		return -errno;
	while (got + 1 < size && (n = read(fd, buf + got, size - 1 - got)) > 0)
		got += (size_t)n;
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return n;
	buf[got] = '\0';
	return (ssize_t)got;
}

double bench_stat_num(const char *text, const char *key)
{
	size_t k = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, k) && p[k] == ':')
			return strtod(p + k + 1, NULL);
	return NAN;
}

double bench_stat(const char *dir, const char *key)
{
	char path[PATH_MAX], text[8192];

	snprintf(path, sizeof(path), "%s/.stats", dir);
	if (bench_get(path, text, sizeof(text)) <= 0)
		return NAN;
	return bench_stat_num(text, key);
}

/* ---- a lookup session ---------------------------------------------- */

void bench_sess_init(struct bench_sess *s, const char *dir, const char *name)
{
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(s->query, sizeof(s->query), "%s/%s.query", dir, name);
	snprintf(s->status, sizeof(s->status), "%s/%s.status", dir, name);
	snprintf(s->response, sizeof(s->response), "%s/%s.response", dir, name);
	snprintf(s->name_q, sizeof(s->name_q), "%s.query", name);
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	s->pfd = -1;
	s->buf = malloc(BENCH_BUF_BYTES);
	if (s->dirfd < 0 || !s->buf)
		bench_die("cannot open '%s': %s", dir, strerror(errno));
}

void bench_sess_release(struct bench_sess *s)
{
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
	if (s->pfd >= 0)
		close(s->pfd);
	s->pfd = -1;
	free(s->buf);
	s->buf = NULL;
}

int bench_lookup_3file(struct bench_sess *s, const char *q, size_t len)
{
	int fd, hit, rc = bench_put(s->query, q, len);
	ssize_t n, r;

	if (rc < 0)
		return rc;
	fd = open(s->status, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, s->buf, BENCH_BUF_BYTES);
	close(fd);
	if (n < 4)
		return n < 0 ? -errno : -EIO;
	hit = !memcmp(s->buf, "hit", 3);
	fd = open(s->response, O_RDONLY);
	if (fd < 0)
		return -errno;
	while ((r = read(fd, s->buf, BENCH_BUF_BYTES)) > 0)
		;
	close(fd);
	if (r < 0)
		return -EIO;
	return hit;
}

int bench_lookup_fast(struct bench_sess *s, const char *q, size_t len, bool at)
{
	int fd = at ? openat(s->dirfd, s->name_q, O_RDWR | O_CREAT | O_TRUNC, 0644)
		    : open(s->query, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ssize_t n;
	int rc;

	if (fd < 0)
		return -errno;
	if (write(fd, q, len) != (ssize_t)len) {
		rc = -errno;
		close(fd);
		return rc;
	}
	n = pread(fd, s->buf, BENCH_BUF_BYTES, 0);
	rc = n < 4 ? (n < 0 ? -errno : -EIO) : !memcmp(s->buf, "hit", 3);
	if (close(fd) && rc >= 0)
		rc = -errno;
	return rc;
}

int bench_lookup_persist(struct bench_sess *s, const char *q, size_t len)
{
	ssize_t n;

	if (s->pfd < 0 && (s->pfd = open(s->query, O_RDWR | O_CREAT, 0644)) < 0)
		return -errno;
	if (pwrite(s->pfd, q, len, 0) != (ssize_t)len)
		return -errno;
	n = pread(s->pfd, s->buf, BENCH_BUF_BYTES, 0);
	return n < 4 ? (n < 0 ? -errno : -EIO) : !memcmp(s->buf, "hit", 3);
}

int bench_fill(struct bench_sess *s, const char *q, size_t i, bool at)
{
	char ans[BENCH_RESP_BYTES];
	int n, rc = bench_lookup_fast(s, q, strlen(q), at);

	if (rc < 0)
		return rc;
	n = snprintf(ans, sizeof(ans), "answer %zu: ", i);
	for (int k = n; k < BENCH_RESP_BYTES; k++)
		ans[k] = (char)('a' + (k * 7 + i) % 26);
	return bench_put(s->response, ans, BENCH_RESP_BYTES);
}

struct filler {
	pthread_t th;
	struct bench_sess s;
	_Atomic size_t *next;
	size_t end;
	bool at;
	bench_question_fn *question;
	void *arg;
	int err;
};

static void *fill_main(void *p)
{
	struct filler *w = p;
	char qb[8400];
	size_t i;

	bench_set_cpu(0, -1);
	while ((i = atomic_fetch_add(w->next, 1)) < w->end) {
		int rc = bench_fill(&w->s, w->question(i, qb, sizeof(qb), w->arg),
				    i, w->at);

		if (rc < 0) {
			fprintf(stderr, "%s: fill %zu failed: %s\n",
				program_invocation_short_name, i, strerror(-rc));
			w->err = rc;
			break;
		}
	}
	return NULL;
}

double bench_fill_range(const char *dir, size_t from, size_t to, int k,
			bool at, bench_question_fn *question, void *arg)
{
	struct filler w[8];
	_Atomic size_t next = from;
	double t0;

	if (k < 1 || k > 8)
		bench_die("bench_fill_range: %d writers (1..8)", k);
	for (int i = 0; i < k; i++) {
		char name[32];

		memset(&w[i], 0, sizeof(w[i]));
		snprintf(name, sizeof(name), "fill%d", i);
		bench_sess_init(&w[i].s, dir, name);
		w[i].next = &next;
		w[i].end = to;
		w[i].at = at;
		w[i].question = question;
		w[i].arg = arg;
	}
	t0 = bench_now_us();
	for (int i = 0; i < k; i++)
		if (pthread_create(&w[i].th, NULL, fill_main, &w[i]))
			bench_die("pthread_create failed");
	for (int i = 0; i < k; i++)
		pthread_join(w[i].th, NULL);
	t0 = bench_now_us() - t0;
	for (int i = 0; i < k; i++) {
		bench_sess_release(&w[i].s);
		if (w[i].err)
			bench_die("filling '%s' failed", dir);
	}
	return (double)(to - from) / (t0 / 1e6);
}
