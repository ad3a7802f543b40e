/*
 * cmdline.h - the command lines semcachefs is started with besides its own:
 * mount(8)'s helper form, and the optional SOURCE before the mountpoint.
 *
 * Invariants: nothing here opens a file or touches a store; every function
 * only rewrites argument lists (struct fuse_args, owned by the caller).
 */
#ifndef SEMCACHE_CMDLINE_H
#define SEMCACHE_CMDLINE_H

#include <stdbool.h>

struct fuse_args;

/* true when the program was started as mount.semcachefs or
 * mount.fuse.semcachefs (the name mount(8) gives a helper). */
bool cmdline_is_mount_helper(const char *argv0);

/*
 * mount(8)'s "mount.TYPE SOURCE MOUNTPOINT [-sfnvrw] [-o OPTS] [-t TYPE]"
 * into semcachefs's own argument list in *out (initialised here; the
 * caller frees it with fuse_opt_free_args): options only mount(8) reads
 * (defaults, auto, noauto, user, users, nouser, owner, group, nofail,
 * _netdev, comment=, x-*) are dropped, -r/-w become ro/rw, -s -n -v and
 * -t are ignored. *fake is set for -f (mount(8)'s "do everything but the
 * mount"). 0, -EINVAL after a message on stderr, or -ENOMEM.
 */
int cmdline_from_mount(int argc, char **argv, struct fuse_args *out, bool *fake);

/* SOURCE as the store: NULL for "none" or "semcachefs" (the default
 * store), else source itself. */
const char *cmdline_source_store(const char *source);

/* "-ofsname=SOURCE" (commas and backslashes escaped) into args, so that
 * mount(8), findmnt and umount name the mount by its store, and
 * "-osubtype=semcachefs" (the type stays fuse.semcachefs); a source with
 * '@' (a URL that may carry a password) is not shown. 0 or -ENOMEM. */
int cmdline_add_fsname(struct fuse_args *args, const char *source);

#endif
