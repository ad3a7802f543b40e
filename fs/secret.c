/*
 * secret.c - the Redis password, from where the mount owner says it is:
 * an environment variable (-o redis_password_env=NAME) or a file
 * (-o redis_password_file=PATH). Never from the command line, so it never
 * shows in the process list.
 *
 * A file must be a regular file (no symlink is followed) owned by the
 * mounting user or root and readable by nobody else (mode & 077 == 0, as
 * ssh demands of private keys); its first line is the password (a final
 * "\n" or "\r\n" is not part of it). Messages name the variable or the
 * file, never the password.
 *
 * What not: no keyring or systemd credentials (a file under
 * $CREDENTIALS_DIRECTORY works as a file); the caller wipes the buffer.
 */
#include "fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int from_file(const char *path, char *out, size_t len, char *err,
		     size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "-o redis_password_file='%s': %s", path,
			 strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "-o redis_password_file='%s' is not a regular file",
			 path);
		close(fd);
		return -EINVAL;
	}
	if ((st.st_uid != getuid() && st.st_uid != 0) || (st.st_mode & 077)) {
		snprintf(err, errlen, "-o redis_password_file='%s' has owner %u and mode %04o: "
			 "it must be yours (or root's) and readable by no one else (chmod 600 '%s')",
			 path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	n = read(fd, out, len);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "-o redis_password_file='%s': %s", path,
			 strerror(errno));
		return -EIO;
	}
	if ((size_t)n == len) {
		snprintf(err, errlen, "-o redis_password_file='%s' is longer than %zu bytes",
			 path, len - 1);
		return -EFBIG;
	}
	out[n] = 0;
	out[strcspn(out, "\r\n")] = 0;
	return 0;
}

int fs_redis_password(const char *env, const char *file, char *out, size_t len,
		      char *err, size_t errlen)
{
	const char *v;
	int rc;

	out[0] = 0;
	if (env && file) {
		snprintf(err, errlen, "give -o redis_password_env or -o redis_password_file, not both");
		return -EINVAL;
	}
	if (file) {
		rc = from_file(file, out, len, err, errlen);
		if (!rc && !out[0]) {
			snprintf(err, errlen, "-o redis_password_file='%s' holds no password on its first line",
				 file);
			rc = -EINVAL;
		}
		return rc;
	}
	if (!env)
		return 0;
	v = *env ? getenv(env) : NULL;
	if (!v || !*v) {
		snprintf(err, errlen, "-o redis_password_env='%.64s': the variable is not set or empty",
			 env);
		return -EINVAL;
	}
	if (strlen(v) >= len) {
		snprintf(err, errlen, "-o redis_password_env='%.64s': the password is longer than %zu bytes",
			 env, len - 1);
		return -EFBIG;
	}
	memcpy(out, v, strlen(v) + 1);
	return 0;
}
