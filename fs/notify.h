/*
 * notify.h - tells a service manager (systemd, Type=notify) that the mount
 * is up and, later, that it is going down. Both calls are no-ops unless the
 * daemon was built with libsystemd and runs with NOTIFY_SOCKET set.
 */
#ifndef SEMCACHE_NOTIFY_H
#define SEMCACHE_NOTIFY_H

/* READY=1: call once the file system answers requests (FUSE init). */
void fs_notify_ready(void);

/* STOPPING=1: call when the unmount begins (FUSE destroy). */
void fs_notify_stopping(void);

#endif
