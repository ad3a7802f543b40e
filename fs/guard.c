/*
 * guard.c - answer the requests libfuse's high-level API would hang on
 * before it sees them.
 *
 * libfuse locks both paths of a rename (get_path2: a write lock on each
 * name's node) without checking that they are one: a rename of a name onto
 * the same name waits forever for the lock it holds itself, and every
 * later request on that path (then the directory, then the mount) waits
 * behind it. The kernel sends such a rename when the name went away on
 * the daemon's side during the rename's lookups (a failed policy.yaml
 * write released, an idle file collected, an entry evicted: its old
 * dentry is stale, the new one negative), which any writer can bring
 * about. So the session reads the device through guard_read()
 * (fuse_session_custom_io): a RENAME or RENAME2 of a name onto the same
 * name in the same directory is answered ENOENT there (the file the
 * caller meant is gone) and never handed on; everything else is.
 *
 * Not here: anything else of the protocol (libfuse parses it), splice
 * (without a splice callback libfuse reads into memory, as our write()
 * would copy anyway).
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs_i.h"
#include "fuse_lowlevel.h"

/* Is request buf (n bytes) a rename of a name onto itself? Its name into
 * name. */
static bool self_rename(const char *buf, size_t n, char *name, size_t size)
{
	struct fuse_in_header in;
	uint64_t newdir;
	const char *a, *b;
	size_t arg, left, al, bl;

	if (n < sizeof(in))
		return false;
	memcpy(&in, buf, sizeof(in));
	if (in.opcode == FUSE_RENAME)
		arg = sizeof(struct fuse_rename_in);
	else if (in.opcode == FUSE_RENAME2)
		arg = sizeof(struct fuse_rename2_in);
	else
		return false;
	if (in.len != n || n < sizeof(in) + arg + (size_t)in.total_extlen * 8)
		return false;
	memcpy(&newdir, buf + sizeof(in), sizeof(newdir));
	if (newdir != in.nodeid)
		return false;
	a = buf + sizeof(in) + arg;
	left = n - sizeof(in) - arg - (size_t)in.total_extlen * 8;
	al = strnlen(a, left);
	if (al == left)
		return false;
	b = a + al + 1;
	bl = strnlen(b, left - al - 1);
	if (bl == left - al - 1 || al != bl || memcmp(a, b, al))
		return false;
	snprintf(name, size, "%.*s", (int)al, a);
	return true;
}

static ssize_t guard_read(int fd, void *buf, size_t len, void *userdata)
{
	char name[256];

	for (;;) {
		ssize_t n = read(fd, buf, len);
		struct fuse_out_header out = { .len = sizeof(out), .error = -ENOENT };

		if (n <= 0 || !self_rename(buf, (size_t)n, name, sizeof(name)))
			return n;
		memcpy(&out.unique, (char *)buf + offsetof(struct fuse_in_header, unique),
		       sizeof(out.unique));
		if (write(fd, &out, sizeof(out)) != sizeof(out)) {
			/* interrupted meanwhile: the kernel forgot it */
		}
		fs_warn("rename of '%s' onto itself answered ENOENT: the name went away "
			"while it was renamed", name);
	}
}

static ssize_t guard_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	return writev(fd, iov, count);
}

int fs_guard_install(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = guard_read,
		.writev = guard_writev,
	};

	return fuse_session_custom_io(se, &io, fuse_session_fd(se)) ? -EIO : 0;
}
