/*
 * main.c - semcachefs: parse options, open the cache, mount, serve, clean up.
 *
 * Our options (-o store=, sync=, session_ttl=, scratch_max=,
 * scratch_user_max=, embed_env=, embed_urls=, model_dirs=, log=,
 * transport=, lock_wait=) are taken out of the argument list; everything
 * else is standard FUSE and passes through. An optional SOURCE before the
 * mountpoint is the store (mount(8) and fstab give one; "none" means the
 * default), and started as mount.semcachefs the program first rewrites
 * mount(8)'s command line (cmdline.c).
 *
 * Exit status: 0 after a clean stop (unmount, SIGTERM, SIGINT, SIGHUP),
 * 1 on a failure at run time, 2 on a usage error. Every option, libfuse's
 * included (fuse_new), is checked before /dev/fuse is tried or a store is
 * created or opened. The cache is opened before mounting so that a bad
 * store is reported on the terminal; in the background its log lines are
 * held until the log file is open (startup.c). Background threads start
 * only after daemonising (fs_init).
 *
 * FUSE transport: requests come by read/write on /dev/fuse through the
 * multi-threaded loop (as many workers as requests in flight, up to
 * max_threads), unless -o transport=io_uring asks for libfuse's io_uring
 * queues (libfuse 3.18+ built with it, tools/build-fuse.sh; Linux 6.14+
 * with /sys/module/fuse/parameters/enable_uring Y). Not the default: libfuse
 * serves each CPU's queue with one thread, so a request that waits (a
 * coalesced miss waiting for its fill, a remote embedder, Redis) holds up
 * every request from that CPU. The first log line names the FAISS, the
 * libfuse and the transport; when the kernel does not offer io_uring at
 * INIT or libfuse cannot set its rings up, libfuse serves through /dev/fuse
 * and one line says so. libfuse's own messages go to the same log.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_log.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmdline.h"
#include "config.h"
#include "fileio.h"
#include "fs.h"
#include "fs_i.h"
#include "quota.h"
#include "semlog.h"
#include "policy.h"
#include "startup.h"

struct options {
	char *store;
	char *sync;
	char *log;
	char *scratch_max;
	char *scratch_user_max;
	char *transport;
	int session_ttl;
	int show_help;
	int show_version;
	int debug_log;
	int show_keys;
	char *keys_form;
	int lock_wait;
	char *pos[2]; /* SOURCE and MOUNTPOINT, or MOUNTPOINT alone */
	int npos;
	bool too_many;
	char *embed_env;
	char *embed_urls;
	char *model_dirs;
	char *redis_password_env;
	char *redis_password_file;
	char *redis_tls_ca;
	char *redis_tls_cert;
	char *redis_tls_key;
	char *redis_tls_sni;
	int redis_pool;       /* -1: the store's default */
	int redis_timeout_ms; /* -1: the store's default */
};

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("store=%s", store),
	OPT("sync=%s", sync),
	OPT("log=%s", log),
	OPT("transport=%s", transport),
	OPT("session_ttl=%d", session_ttl),
	OPT("lock_wait=%d", lock_wait),
	OPT("embed_env=%s", embed_env),
	OPT("embed_urls=%s", embed_urls),
	OPT("model_dirs=%s", model_dirs),
	OPT("redis_password_env=%s", redis_password_env),
	OPT("redis_password_file=%s", redis_password_file),
	OPT("redis_tls_ca=%s", redis_tls_ca),
	OPT("redis_tls_cert=%s", redis_tls_cert),
	OPT("redis_tls_key=%s", redis_tls_key),
	OPT("redis_tls_sni=%s", redis_tls_sni),
	OPT("redis_pool=%d", redis_pool),
	OPT("redis_timeout_ms=%d", redis_timeout_ms),
	OPT("scratch_max=%s", scratch_max),
	OPT("scratch_user_max=%s", scratch_user_max),
	OPT("verbose", debug_log),
	OPT("-h", show_help),
	OPT("--help", show_help),
	OPT("-V", show_version),
	OPT("--version", show_version),
	OPT("--policy-keys", show_keys),
	OPT("--policy-keys=%s", keys_form),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [options] [SOURCE] MOUNTPOINT\n\n"
	       "A semantic cache for LLM responses, mounted as a file system.\n"
	       "Categories are directories; write NAME.query, read NAME.status and\n"
	       "NAME.response; after a miss write the answer to NAME.response.\n"
	       "SOURCE, if given, is the store (as -o store=; 'none' means the default).\n\n"
	       "semcachefs options:\n"
	       "    -o store=DIR         where the cache lives (default\n"
	       "                         $XDG_DATA_HOME/semcachefs or ~/.local/share/semcachefs)\n"
	       "    -o sync=normal|full  normal: a fill survives a crash of the daemon;\n"
	       "                         full: also of the machine (fsync per fill)\n"
	       "    -o session_ttl=SECS  remove idle session and scratch files after\n"
	       "                         SECS seconds (default 600)\n"
	       "    -o scratch_max=SIZE  bytes all scratch files may hold (default 64MiB;\n"
	       "                         over it writes fail with ENOSPC)\n"
	       "    -o scratch_user_max=SIZE  bytes one user's scratch files may hold\n"
	       "                         (default 16MiB; over it EDQUOT)\n"
	       "    -o log=FILE          log file (default: stderr with -f, else\n"
	       "                         STORE/semcachefs.log)\n"
	       "    -o embed_env=NAME[:NAME...]  environment variables a policy's\n"
	       "                         http.api_key_env may name (each must start\n"
	       "                         with SEMCACHEFS_; default: none)\n"
	       "    -o embed_urls=PREFIX[,PREFIX...]  URLs an http embedder may send\n"
	       "                         a key to, and the only URLs a policy written\n"
	       "                         by another user than the mount owner may name\n"
	       "    -o model_dirs=DIR[:DIR...]  the only model directories a policy\n"
	       "                         written by another user may name\n"
	       "    -o redis_password_env=NAME  a redis:// store's password is in the\n"
	       "                         environment variable NAME (the ACL user, if\n"
	       "                         any, in the URL: redis://USER@HOST:PORT/DB)\n"
	       "    -o redis_password_file=PATH  ... or on the first line of PATH (yours,\n"
	       "                         mode 0600 or stricter)\n"
	       "    -o redis_tls_ca=FILE  a rediss:// (TLS) store's servers have\n"
	       "                         certificates signed by a CA in FILE (PEM;\n"
	       "                         default: the system's CAs)\n"
	       "    -o redis_tls_cert=FILE  the client certificate (PEM) for servers\n"
	       "                         that want one (tls-auth-clients)\n"
	       "    -o redis_tls_key=FILE  its key (unencrypted PEM; yours, mode 0600\n"
	       "                         or stricter)\n"
	       "    -o redis_tls_sni=NAME  the name the servers' certificates must\n"
	       "                         carry, sent as SNI (default: the URL's host)\n"
	       "    -o redis_pool=N      connections to each Redis node, 1..64\n"
	       "                         (default 4): commands in flight at once\n"
	       "    -o redis_timeout_ms=MS  the limit of one Redis command end to end,\n"
	       "                         100..60000 ms (default 2000)\n"
	       "    -o transport=dev_fuse|io_uring\n"
	       "                         how FUSE requests arrive (default dev_fuse);\n"
	       "                         io_uring needs libfuse 3.18 built with it and\n"
	       "                         the kernel's enable_uring, serves each CPU with\n"
	       "                         one thread (requests that wait hold up others)\n"
	       "    -o lock_wait=SECS    wait up to SECS seconds for a store another\n"
	       "                         semcachefs still holds (default 10; 0: fail at once)\n"
	       "    -o verbose           debug logging\n"
	       "    -h, --help           this help\n"
	       "    -V, --version        version\n"
	       "    --policy-keys[=markdown|man]  print the policy.yaml keys as a\n"
	       "                         Markdown table, or as roff for the manual page\n\n"
	       "Exit status: 0 after unmount or SIGTERM/SIGINT, 1 on a failure, 2 on a\n"
	       "usage error. See semcachefs(1) and semcachefs-policy(5).\n\n", prog);
}

/*
 * Leave the terminal before anything opens files or starts threads: the
 * parent waits until the child reports that the mount is ready (one zero
 * byte on the pipe) and exits 0, or 1 if the child died first. The child's
 * errors still reach the terminal because it keeps stderr until ready.
 */
static int daemon_start(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe(pfd)) {
		perror("semcachefs: pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		perror("semcachefs: fork");
		return -1;
	}
	if (pid > 0) {
		close(pfd[1]);
		_exit(read(pfd[0], &c, 1) == 1 && c == 0 ? 0 : 1);
	}
	close(pfd[0]);
	setsid();
	return pfd[1];
}

static void daemon_ready(int fd)
{
	int null = open("/dev/null", O_RDWR);
	char c = 0;

	if (chdir("/")) {
		/* not fatal: only keeps a directory busy */
	}
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (write(fd, &c, 1) != 1) {
		/* the parent is gone; nothing to tell */
	}
	close(fd);
}

/* -o NAME=SIZE ("64MiB", "1000") into *out if given; 0, or -1 after
 * saying why. */
static int size_option(const char *name, const char *text, int64_t *out)
{
	if (!text)
		return 0;
	if (policy_parse_size(text, out) || *out < 1) {
		fprintf(stderr, "semcachefs: -o %s='%s' is not a size of at least 1 byte "
			"(e.g. 64MiB)\n", name, text);
		return -1;
	}
	return 0;
}

#define URING_PARAM "/sys/module/fuse/parameters/enable_uring"

/* true when a mount can take requests through io_uring; else why not */
static bool uring_available(char *why, size_t size)
{
	if (fuse_version() < 318) {
		snprintf(why, size, "libfuse %s is older than 3.18; tools/build-fuse.sh builds 3.18 with it",
			 fuse_pkgversion());
		return false;
	}
#if !SEMCACHE_FUSE_URING || !defined(FUSE_CAP_OVER_IO_URING)
	snprintf(why, size, "libfuse %s is built without io_uring", fuse_pkgversion());
	return false;
#else
	char c = 0;
	int fd = open(URING_PARAM, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, size, "this kernel has no FUSE io_uring: no %s", URING_PARAM);
		return false;
	}
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	if (c != 'Y') {
		snprintf(why, size, "the kernel has it off: %s is not Y, root can set it",
			 URING_PARAM);
		return false;
	}
	return true;
#endif
}

/* The transport in use, for --version and the first log line. */
static const char *transport_text(bool uring, bool available, const char *why,
				  char *buf, size_t size)
{
	if (uring)
		return "io_uring";
	if (available)
		return "/dev/fuse (io_uring is available with -o transport=io_uring)";
	snprintf(buf, size, "/dev/fuse (no io_uring: %s)", why);
	return buf;
}

static bool uring_wanted;

/* The first line of a mount's log: what it runs on. */
static void log_first_line(const char *transport)
{
	semlog(SEMLOG_INFO, "semcachefs %s: FAISS %s, libfuse %s, FUSE transport %s",
	       SEMCACHE_VERSION, SEMCACHE_FAISS_KIND, fuse_pkgversion(), transport);
}

/* libfuse's messages into our log (its debug trace, -d, stays on stderr);
 * it logs the failure of its io_uring set-up and then serves through
 * /dev/fuse. */
static void fuse_log_to_semlog(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[768];
	size_t n;

	if (level >= FUSE_LOG_DEBUG) {
		vfprintf(stderr, fmt, ap);
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	if (uring_wanted && strstr(msg, "failed to start io-uring")) {
		semlog(SEMLOG_WARN, "io_uring set-up failed (libfuse: '%s'): serving through /dev/fuse", msg);
		return;
	}
	semlog(level <= FUSE_LOG_ERR ? SEMLOG_ERR : level <= FUSE_LOG_NOTICE ? SEMLOG_WARN :
	       SEMLOG_INFO, "libfuse: %s", msg);
}

static void *main_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
#ifdef FUSE_CAP_OVER_IO_URING
	if (uring_wanted && !(conn->capable_ext & FUSE_CAP_OVER_IO_URING))
		semlog(SEMLOG_WARN, "the kernel did not offer io_uring at mount: serving through /dev/fuse");
#endif
	return semcache_ops.init(conn, cfg);
}

/* A shared store: redis://... or rediss://... (TLS), a URL, not a path. */
static bool redis_url(const char *store)
{
	return store && (!strncmp(store, "redis://", 8) || !strncmp(store, "rediss://", 9));
}

static char *default_store(void)
{
	char buf[PATH_MAX];

	return fileio_default_data_dir(buf, sizeof(buf)) ? NULL : strdup(buf);
}

/* positional arguments: SOURCE and MOUNTPOINT are taken out (main puts the
 * mountpoint back for fuse_parse_cmdline); everything else stays */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->npos == 2) {
		o->too_many = true;
		return 0;
	}
	o->pos[o->npos] = strdup(arg);
	return o->pos[o->npos++] ? 0 : -1;
}

/* --policy-keys[=FORM]: the exit status */
static int print_keys(const char *form)
{
	char buf[16384];
	int n;

	if (!form || !strcmp(form, "markdown")) {
		n = policy_keys_markdown(buf, sizeof(buf));
	} else if (!strcmp(form, "man")) {
		n = policy_keys_man(buf, sizeof(buf));
	} else {
		fprintf(stderr, "semcachefs: --policy-keys='%s' is not 'markdown' or 'man'\n", form);
		return 2;
	}
	if (n >= (int)sizeof(buf))
		BUG("the key table needs %d bytes", n);
	fwrite(buf, 1, (size_t)n, stdout);
	return fflush(stdout) ? 1 : 0;
}

/* SOURCE MOUNTPOINT or MOUNTPOINT into the store and libfuse's arguments;
 * 0, or -EINVAL after a message (a usage error), or -ENOMEM */
static int take_positionals(struct options *o, struct fuse_args *args)
{
	const char *store;

	if (o->too_many) {
		fprintf(stderr, "semcachefs: too many arguments (usage: semcachefs [options] "
			"[SOURCE] MOUNTPOINT)\n");
		return -EINVAL;
	}
	if (o->npos == 0)
		return 0; /* fuse_parse_cmdline finds no mountpoint: said below */
	if (fuse_opt_add_arg(args, o->pos[o->npos - 1]))
		return -ENOMEM;
	if (o->npos == 1)
		return 0;
	store = cmdline_source_store(o->pos[0]);
	if (!store)
		return 0;
	if (o->store && strcmp(o->store, store)) {
		fprintf(stderr, "semcachefs: SOURCE '%s' and -o store='%s' name different stores; "
			"give one\n", store, o->store);
		return -EINVAL;
	}
	if (!o->store && !(o->store = strdup(store)))
		return -ENOMEM;
	return cmdline_add_fsname(args, store);
}

int main(int argc, char *argv[])
{
	struct fuse_args margs = FUSE_ARGS_INIT(0, NULL);
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options opts = { .session_ttl = 600, .lock_wait = 10,
				.redis_pool = -1, .redis_timeout_ms = -1 };
	struct fuse_cmdline_opts cl = { 0 };
	struct fs_state state = { 0 };
	struct cache_options co = { 0 };
	int64_t scratch_max = QUOTA_DEFAULT_MOUNT_MAX;
	int64_t scratch_user_max = QUOTA_DEFAULT_USER_MAX;
	struct fuse_loop_config *lc = NULL;
	struct fuse_operations ops = semcache_ops;
	struct fuse *fuse = NULL;
	char err[512] = "", why[256] = "", tbuf[320];
	static char redis_pw[512]; /* wiped once the store has its copy */
	int opened;
	const char *transport;
	bool uring_ok, hold_log = false;
	char *store = NULL;
	int notify_fd = -1;
	int rc = 1;

	if (cmdline_is_mount_helper(argv[0])) {
		bool fake;
		int r = cmdline_from_mount(argc, argv, &margs, &fake);

		if (r)
			return r == -ENOMEM ? 1 : 2;
		if (fake) {
			fuse_opt_free_args(&margs);
			return 0;
		}
		args = margs; /* fuse_opt_parse frees it */
	}
	/* usage errors exit 2, through usage: or out: (everything is freed) */
	if (fuse_opt_parse(&args, &opts, option_spec, opt_proc) == -1)
		goto usage;
	if (opts.transport && strcmp(opts.transport, "io_uring") &&
	    strcmp(opts.transport, "dev_fuse")) {
		fprintf(stderr, "semcachefs: -o transport='%s' is not 'dev_fuse' or 'io_uring'\n",
			opts.transport);
		goto usage;
	}
	uring_ok = uring_available(why, sizeof(why));
	uring_wanted = uring_ok && opts.transport && !strcmp(opts.transport, "io_uring");
	transport = transport_text(uring_wanted, uring_ok, why, tbuf, sizeof(tbuf));
	if (opts.show_version) {
		printf("semcachefs %s (FAISS: %s, libfuse %s, FUSE transport: %s)\n",
		       SEMCACHE_VERSION, SEMCACHE_FAISS_KIND, fuse_pkgversion(), transport);
		rc = 0;
		goto out;
	}
	if (opts.show_keys || opts.keys_form) {
		rc = print_keys(opts.keys_form);
		goto out;
	}
	if (opts.show_help) {
		usage(argv[0]);
		printf("FUSE options:\n");
		fuse_lib_help(&args);
		rc = 0;
		goto out;
	}
	if (take_positionals(&opts, &args))
		goto usage;
	if (fuse_parse_cmdline(&args, &cl) != 0)
		goto usage;
	/* Modes, owners and groups of categories are enforced by the kernel,
	 * so that with -o allow_other each tenant sees only what it may. */
	if (fuse_opt_add_arg(&args, "-odefault_permissions") != 0)
		goto usage;
	if (!cl.mountpoint) {
		fprintf(stderr, "semcachefs: no mountpoint given (see 'semcachefs --help')\n");
		goto usage;
	}
	if (opts.sync && strcmp(opts.sync, "normal") && strcmp(opts.sync, "full")) {
		fprintf(stderr, "semcachefs: -o sync='%s' is not 'normal' or 'full'\n", opts.sync);
		goto usage;
	}
	if (opts.session_ttl < 1) {
		fprintf(stderr, "semcachefs: -o session_ttl must be at least 1 second\n");
		goto usage;
	}
	if (opts.lock_wait < 0 || opts.lock_wait > 3600) {
		fprintf(stderr, "semcachefs: -o lock_wait must be 0..3600 seconds\n");
		goto usage;
	}
	if (size_option("scratch_max", opts.scratch_max, &scratch_max) ||
	    size_option("scratch_user_max", opts.scratch_user_max, &scratch_user_max))
		goto usage;
	quota_set_limits(scratch_max, scratch_user_max);
	if ((opts.redis_password_env || opts.redis_password_file) && !redis_url(opts.store)) {
		fprintf(stderr, "semcachefs: -o redis_password_env/redis_password_file need a redis:// store\n");
		goto usage;
	}
	if ((opts.redis_pool != -1 || opts.redis_timeout_ms != -1) && !redis_url(opts.store)) {
		fprintf(stderr, "semcachefs: -o redis_pool/redis_timeout_ms need a redis:// store\n");
		goto usage;
	}
	if (opts.redis_pool != -1 && (opts.redis_pool < 1 || opts.redis_pool > 64)) {
		fprintf(stderr, "semcachefs: -o redis_pool must be 1..64 connections\n");
		goto usage;
	}
	if (opts.redis_timeout_ms != -1 &&
	    (opts.redis_timeout_ms < 100 || opts.redis_timeout_ms > 60000)) {
		fprintf(stderr, "semcachefs: -o redis_timeout_ms must be 100..60000 ms\n");
		goto usage;
	}
	/* read before daemonising, so that a refusal reaches the terminal */
	if (fs_redis_password(opts.redis_password_env, opts.redis_password_file,
			      redis_pw, sizeof(redis_pw), err, sizeof(err))) {
		fprintf(stderr, "semcachefs: %s\n", err);
		goto out;
	}
	if (opts.transport && !strcmp(opts.transport, "io_uring") && !uring_wanted) {
		fprintf(stderr, "semcachefs: -o transport=io_uring: %s\n", why);
		goto out;
	}
	if (uring_wanted && fuse_opt_add_arg(&args, "-oio_uring") != 0)
		goto out;
	fuse_set_log_func(fuse_log_to_semlog);
	if (opts.debug_log)
		semlog_set_level(SEMLOG_DEBUG);
	/* libfuse checks its options here (an unknown one is a usage error);
	 * it opens nothing until fuse_mount, and calls init only then */
	ops.init = main_init;
	fuse = fuse_new(&args, &ops, sizeof(ops), &state);
	if (!fuse)
		goto usage;
	co.owner_uid = getuid();
	co.embed_env = opts.embed_env;
	co.embed_urls = opts.embed_urls;
	co.model_dirs = opts.model_dirs;
	co.redis_tls_ca = opts.redis_tls_ca;
	co.redis_tls_cert = opts.redis_tls_cert;
	co.redis_tls_key = opts.redis_tls_key;
	co.redis_tls_sni = opts.redis_tls_sni;
	co.redis_pool = opts.redis_pool > 0 ? (unsigned)opts.redis_pool : 0;
	co.changed = fs_kcache_changed;
	co.redis_timeout_ms = opts.redis_timeout_ms > 0 ? opts.redis_timeout_ms : 0;
	co.store_dir = opts.store; /* as given: the check reads its scheme only */
	if (cache_check_options(&co, err, sizeof(err))) {
		fprintf(stderr, "semcachefs: -o %s\n", err);
		rc = 2; /* a usage error: nothing was touched */
		goto out_fuse;
	}
	if (startup_check_fuse_dev(err, sizeof(err))) {
		fprintf(stderr, "semcachefs: %s\n", err);
		goto out_fuse;
	}
	if (!cl.foreground) {
		notify_fd = daemon_start();
		if (notify_fd < 0)
			goto out_fuse;
		/* info lines go to the log file, not the terminal */
		hold_log = !opts.log && startup_log_hold() == 0;
	}
	if (redis_url(opts.store))
		store = strdup(opts.store); /* a shared store: a URL, not a path */
	else
		store = opts.store ? realpath(opts.store, NULL) : NULL;
	if (opts.store && !store) {
		if (fileio_mkdir_p(opts.store, 0700) == 0)
			store = realpath(opts.store, NULL);
		if (!store) {
			fprintf(stderr, "semcachefs: cannot use store '%s': %s\n",
				opts.store, strerror(errno));
			goto out_fuse;
		}
	}
	if (!store) {
		store = default_store();
		if (!store || fileio_mkdir_p(store, 0700)) {
			fprintf(stderr, "semcachefs: cannot create the default store (set -o store=DIR)\n");
			goto out_fuse;
		}
	}
	if (opts.log && semlog_open_file(opts.log)) {
		fprintf(stderr, "semcachefs: cannot open log '%s': %s\n", opts.log,
			strerror(errno));
		goto out_fuse;
	}
	log_first_line(transport);
	co.store_dir = store;
	co.sync_full = opts.sync && !strcmp(opts.sync, "full");
	co.owner_uid = getuid();
	co.embed_env = opts.embed_env;
	co.embed_urls = opts.embed_urls;
	co.model_dirs = opts.model_dirs;
	co.redis_password = redis_pw[0] ? redis_pw : NULL;
	/* at most 5/8 of the FUSE workers may wait on slow work (a remote
	 * embedder, a pending fill): the rest serve everyone else */
	co.max_slow = (cl.max_threads < 64 ? 64 : cl.max_threads) * 5 / 8;
	opened = startup_cache_open(&co, opts.lock_wait, notify_fd >= 0, &state.cache, err,
				    sizeof(err));
	explicit_bzero(redis_pw, sizeof(redis_pw)); /* the store has its copy */
	if (opened) {
		fprintf(stderr, "semcachefs: %s\n", err);
		goto out_fuse;
	}
	state.store_dir = cache_state_dir(state.cache);
	state.session_ttl_ms = (int64_t)opts.session_ttl * 1000;
	state.owner_uid = getuid();
	state.owner_gid = getgid();

	if (fuse_mount(fuse, cl.mountpoint) != 0)
		goto out_cache;
	if (uring_wanted) {
		/* requests come through the rings, not read(): nothing to guard */
		semlog(SEMLOG_INFO, "io_uring: renames of a name onto itself are not guarded (libfuse may wait on them)");
	} else if (fs_guard_install(fuse_get_session(fuse))) {
		/* a libfuse built without custom io (3.18's enable-custom-io) */
		semlog(SEMLOG_WARN, "libfuse %s offers no custom io: renames of a name onto itself are not guarded (libfuse may wait on them)",
		       fuse_pkgversion());
	}
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;
	if (notify_fd >= 0) {
		if (hold_log) {
			char path[PATH_MAX];

			snprintf(path, sizeof(path), "%s/semcachefs.log", state.store_dir);
			startup_log_release(path);
			hold_log = false;
		}
		daemon_ready(notify_fd);
		notify_fd = -1;
	}
	if (cl.singlethread) {
		rc = fuse_loop(fuse);
	} else {
		lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, cl.clone_fd);
		/* Readers waiting on a coalesced miss hold a worker each: keep
		 * enough workers for the fills that release them. */
		fuse_loop_cfg_set_max_threads(lc, cl.max_threads < 64 ? 64 : cl.max_threads);
		rc = fuse_loop_mt(fuse, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* libfuse's loops return the number of the signal that stopped them
	 * (SIGTERM, SIGINT, SIGHUP: a clean stop), 0 after an unmount, or a
	 * negative errno when reading requests failed */
	/* no more notices to the kernel from the engine's threads: libfuse
	 * frees its node table in fuse_destroy before it calls destroy */
	fs_kcache_stop();
	if (rc > 0)
		semlog(SEMLOG_INFO, "stopping: signal %d (%s)", rc, strsignal(rc));
	else if (rc < 0)
		semlog(SEMLOG_ERR, "stopping: reading FUSE requests failed: %s", strerror(-rc));
	rc = rc < 0 ? 1 : 0;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_cache:
	fuse_destroy(fuse);
	fuse = NULL;
	cache_close(state.cache);
out_fuse:
	if (fuse)
		fuse_destroy(fuse);
	goto out;
usage:
	rc = 2;
out:
	if (hold_log)
		startup_log_release(NULL);
	free(store);
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	free(opts.store);
	free(opts.sync);
	free(opts.log);
	free(opts.embed_env);
	free(opts.embed_urls);
	free(opts.model_dirs);
	free(opts.redis_password_env);
	free(opts.redis_password_file);
	free(opts.redis_tls_ca);
	free(opts.redis_tls_cert);
	free(opts.redis_tls_key);
	free(opts.redis_tls_sni);
	free(opts.scratch_max);
	free(opts.scratch_user_max);
	free(opts.transport);
	free(opts.keys_form);
	free(opts.pos[0]);
	free(opts.pos[1]);
	return rc;
}
