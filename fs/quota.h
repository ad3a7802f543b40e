/*
 * quota.h - the byte caps of scratch files: one for the whole mount
 * (-o scratch_max) and one for each user (-o scratch_user_max).
 *
 * Scratch files live in memory (node.h), so without caps any writer could
 * make the daemon's memory grow without bound. Every change of a scratch
 * file's length is charged to the uid that created it (editor.c) and
 * credited back when the file is freed (node.c). The bytes counted are
 * the files' lengths, not the allocator's capacity.
 *
 * Lock: quota.lock guards the counters; it is a leaf (taken under a
 * node's lock, never the other way round).
 */
#ifndef SEMCACHE_FS_QUOTA_H
#define SEMCACHE_FS_QUOTA_H

#include <stdint.h>
#include <sys/types.h>

#define QUOTA_DEFAULT_MOUNT_MAX (64LL << 20)
#define QUOTA_DEFAULT_USER_MAX (16LL << 20)

/* Set the caps (bytes, > 0); before the mount serves requests. */
void quota_set_limits(int64_t mount_max, int64_t user_max);
/* Charge delta bytes to uid (delta <= 0 credits and always succeeds).
 * 0, -ENOSPC over the mount's cap, -EDQUOT over the user's (nothing
 * charged then; the refusal is logged). */
int quota_charge(uid_t uid, int64_t delta);
/* Bytes charged to uid, or to the mount for uid (uid_t)-1. */
int64_t quota_used(uid_t uid);

#endif
