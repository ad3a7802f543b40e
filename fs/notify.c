/*
 * notify.c - sd_notify(3) READY=1 and STOPPING=1 for a Type=notify unit
 * (fs/systemd/semcachefs@.service.in).
 *
 * Built with libsystemd (meson finds it through pkg-config) the calls send
 * one datagram each to $NOTIFY_SOCKET; sd_notify() does nothing when that
 * variable is unset, so a mount from a shell is unaffected. Without
 * libsystemd both functions compile to nothing and the unit is installed
 * as Type=exec instead. The environment is left as it is (unsetting it
 * from a threaded daemon would race getenv() elsewhere); a failure to
 * notify is logged, never fatal: the mount works either way.
 */
#include "notify.h"

#ifdef SEMCACHE_SD_NOTIFY
#include <string.h>
#include <systemd/sd-daemon.h>

#include "semlog.h"

static void notify(const char *state)
{
	int rc = sd_notify(0, state);

	if (rc < 0) /* the log names the first line, e.g. 'READY=1' */
		semlog(SEMLOG_WARN, "cannot tell the service manager '%.*s': %s "
		       "(is NOTIFY_SOCKET right?)", (int)strcspn(state, "\n"), state,
		       strerror(-rc));
}

void fs_notify_ready(void)
{
	notify("READY=1\nSTATUS=mounted");
}

void fs_notify_stopping(void)
{
	notify("STOPPING=1\nSTATUS=unmounting");
}
#else
void fs_notify_ready(void)
{
}

void fs_notify_stopping(void)
{
}
#endif
