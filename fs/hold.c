/*
 * hold.c - a rename of policy.yaml away, held back while an editor saves.
 *
 * vim (backupcopy=no, or "auto" where it can rename) saves policy.yaml by
 * renaming it to its backup, writing a new policy.yaml, and, when the
 * daemon refuses that one, renaming the backup back. Carried out at once,
 * the first rename would leave the category without its policy until the
 * last one, and the restore would clear .errors. So the rename moves the
 * text to the scratch backup and hides the name policy.yaml (it is vacant
 * for every request: getattr, readdir, open, unlink, a second rename), but
 * the policy stays in force. What ends the hold:
 *   - a policy installed in the category (any write or rename onto it):
 *     the install replaced it; the hold sees the new install stamp and
 *     is void;
 *   - the backup renamed back unchanged (fs_hold_restore): nothing to do,
 *     the policy never left, .errors keeps the refusal;
 *   - FS_HOLD_MS with no new policy.yaml being written: the removal is
 *     carried out (cache_policy_remove_if, as the caller of the rename),
 *     unless another install came first.
 * A clean stop carries out the holds still pending (the rename was
 * acknowledged); a crash forgets them, and the policy is still in place
 * after it.
 *
 * Locks: hold.lock is a leaf, held only to copy the table; the engine is
 * called without it (the removal writes the store).
 *
 * Not here: the rename itself (editor.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "clock.h"
#include "fs_i.h"
#include "semlog.h"

/* Editors rename back within milliseconds; a plain `mv policy.yaml x`
 * takes effect after this. */
#define FS_HOLD_MS 2000
#define FS_HOLD_MAX 64

struct hold {
	char dir[4096];            /* category path (struct fs_path.dir) */
	int64_t stamp;            /* cache_policy_get's mtime of the held one */
	int64_t due_ms;           /* monotonic: when the removal is carried out */
	struct cache_caller who;  /* who renamed it */
	char *text;               /* the held policy.yaml */
	size_t len;
};

static struct {
	pthread_mutex_t lock;     /* guards everything below */
	pthread_cond_t cv;
	struct hold h[FS_HOLD_MAX];
	size_t n;
	bool stop, started;
	pthread_t thread;
	struct cache *cache;
} hold = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void drop(size_t i)
{
	free(hold.h[i].text);
	hold.h[i] = hold.h[--hold.n];
}

static ssize_t find(const char *dir)
{
	for (size_t i = 0; i < hold.n; i++)
		if (!strcmp(hold.h[i].dir, dir))
			return (ssize_t)i;
	return -1;
}

int fs_hold_begin(const char *dir, const char *text, size_t len, int64_t stamp,
		  const struct cache_caller *who)
{
	char *copy = malloc(len + 1);
	ssize_t i;

	if (!copy || strlen(dir) >= sizeof(hold.h[0].dir)) {
		free(copy);
		return -ENOMEM;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	pthread_mutex_lock(&hold.lock);
	i = find(dir);
	if (!hold.started || (i < 0 && hold.n == FS_HOLD_MAX)) {
		pthread_mutex_unlock(&hold.lock);
		free(copy);
		return -EAGAIN; /* the caller removes it at once */
	}
	if (i < 0)
		i = (ssize_t)hold.n++;
	else
		free(hold.h[i].text);
	strcpy(hold.h[i].dir, dir);
	hold.h[i].stamp = stamp;
	hold.h[i].due_ms = clock_mono_ms() + FS_HOLD_MS;
	hold.h[i].who = *who;
	hold.h[i].text = copy;
	hold.h[i].len = len;
	pthread_cond_signal(&hold.cv);
	pthread_mutex_unlock(&hold.lock);
	return 0;
}

bool fs_hold_hides(const char *dir, int64_t stamp)
{
	bool hidden = false;
	ssize_t i;

	pthread_mutex_lock(&hold.lock);
	i = find(dir);
	if (i >= 0) {
		hidden = hold.h[i].stamp == stamp;
		if (!hidden)
			drop((size_t)i); /* replaced since */
	}
	pthread_mutex_unlock(&hold.lock);
	return hidden;
}

bool fs_hold_restore(const char *dir, const char *text, size_t len, int64_t stamp)
{
	bool same = false;
	ssize_t i;

	pthread_mutex_lock(&hold.lock);
	i = find(dir);
	if (i >= 0 && hold.h[i].stamp == stamp) {
		same = hold.h[i].len == len && !memcmp(hold.h[i].text, text, len);
		if (same)
			drop((size_t)i);
	}
	pthread_mutex_unlock(&hold.lock);
	return same;
}

/* Carry out the holds that are due (all of them when final); called
 * without hold.lock. */
static void carry_out(bool final)
{
	struct hold due[FS_HOLD_MAX];
	size_t n = 0;
	int64_t now = clock_mono_ms();

	pthread_mutex_lock(&hold.lock);
	for (size_t i = 0; i < hold.n;) {
		if (hold.h[i].due_ms > now) {
			i++;
			continue;
		}
		due[n] = hold.h[i];
		due[n++].text = NULL;
		drop(i);
	}
	pthread_mutex_unlock(&hold.lock);
	for (size_t i = 0; i < n; i++) {
		int rc;

		if (!final && fs_pending(due[i].dir, "policy.yaml")) {
			/* a new one is being written: its close decides; if it
			 * is refused the hold goes on */
			char *t = NULL;
			size_t len = 0;

			if (cache_policy_get(hold.cache, due[i].dir, &t, &len, NULL) == 0 &&
			    fs_hold_begin(due[i].dir, t, len, due[i].stamp, &due[i].who) == 0) {
				free(t);
				continue;
			}
			free(t);
		}
		rc = cache_policy_remove_if(hold.cache, due[i].dir, due[i].stamp, &due[i].who);
		if (rc == -ESTALE)
			semlog(SEMLOG_INFO, "policy of '%s': the rename of policy.yaml away is not carried out: another one was installed since",
			       due[i].dir);
		else if (rc && rc != -ENOENT)
			semlog(SEMLOG_WARN, "%s/policy.yaml: renamed away, but removing it failed (%s); it stays in force",
			       strcmp(due[i].dir, "/") ? due[i].dir : "", strerror(-rc));
	}
}

static void *hold_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hold.lock);
	while (!hold.stop) {
		int64_t next = INT64_MAX;
		struct timespec ts;

		for (size_t i = 0; i < hold.n; i++)
			if (hold.h[i].due_ms < next)
				next = hold.h[i].due_ms;
		if (next == INT64_MAX) {
			pthread_cond_wait(&hold.cv, &hold.lock);
			continue;
		}
		if (next > clock_mono_ms()) {
			ts = clock_abstime(next - clock_mono_ms());
			pthread_cond_timedwait(&hold.cv, &hold.lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&hold.lock);
		carry_out(false);
		pthread_mutex_lock(&hold.lock);
	}
	pthread_mutex_unlock(&hold.lock);
	return NULL;
}

int fs_hold_start(struct cache *c)
{
	hold.cache = c;
	hold.stop = false;
	if (clock_cond_init(&hold.cv))
		return -ENOMEM;
	if (pthread_create(&hold.thread, NULL, hold_main, NULL))
		return -EAGAIN;
	hold.started = true;
	return 0;
}

void fs_hold_stop(void)
{
	if (!hold.started)
		return;
	pthread_mutex_lock(&hold.lock);
	hold.stop = true;
	pthread_cond_signal(&hold.cv);
	pthread_mutex_unlock(&hold.lock);
	pthread_join(hold.thread, NULL);
	hold.started = false;
	for (size_t i = 0; i < hold.n; i++)
		hold.h[i].due_ms = 0;
	carry_out(true);
	pthread_cond_destroy(&hold.cv);
}
