/*
 * fsop.c - one file-system operation, reported as "ok" or an errno name.
 *
 * The bats tests use it to assert exact errno names at the exact step
 * (open, write, close) instead of a shell's translated message:
 *   fsop write PATH DATA      open(O_WRONLY|O_CREAT|O_TRUNC), write, close
 *   fsop writen PATH N [C]    the same with N bytes of 'x' (or of C)
 *   fsop pwrite PATH OFF DATA open(O_WRONLY|O_CREAT) without truncating
 *   fsop read PATH            print the content
 *   fsop mkdir PATH | rmdir PATH | unlink PATH | rename FROM TO
 *   fsop rename2 FROM TO noreplace|exchange   renameat2(2) with that flag
 * Exit status 0 on success, 1 with "ERRNAME at STEP" on failure, 2 on usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *step)
{
	const char *name = strerrorname_np(errno);

	printf("%s at %s\n", name ? name : "E?", step);
	return 1;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int do_write(const char *path, const char *data, size_t len, off_t off,
		    int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);

	if (fd < 0)
		return fail("open");
	if (off >= 0 && lseek(fd, off, SEEK_SET) < 0)
		return fail("lseek");
	if (len && write_all(fd, data, len))
		return fail("write");
	if (close(fd))
		return fail("close");
	puts("ok");
	return 0;
}

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";

	if (!strcmp(op, "write") && argc >= 3)
		return do_write(argv[2], argc > 3 ? argv[3] : "",
				argc > 3 ? strlen(argv[3]) : 0, -1, O_TRUNC);
	if (!strcmp(op, "writen") && (argc == 4 || argc == 5)) {
		size_t n = strtoull(argv[3], NULL, 10);
		char *buf = malloc(n ? n : 1);
		int rc;

		if (!buf)
			return fail("malloc");
		memset(buf, argc == 5 ? argv[4][0] : 'x', n);
		rc = do_write(argv[2], buf, n, -1, O_TRUNC);
		free(buf);
		return rc;
	}
	if (!strcmp(op, "pwrite") && argc == 5)
		return do_write(argv[2], argv[4], strlen(argv[4]),
				strtoll(argv[3], NULL, 10), 0);
	if (!strcmp(op, "read") && argc == 3) {
		char buf[65536];
		ssize_t n;
		int fd = open(argv[2], O_RDONLY);

		if (fd < 0)
			return fail("open");
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		if (n < 0)
			return fail("read");
		if (close(fd))
			return fail("close");
		return 0;
	}
	if (!strcmp(op, "mkdir") && argc == 3)
		return mkdir(argv[2], 0755) ? fail("mkdir") : (puts("ok"), 0);
	if (!strcmp(op, "rmdir") && argc == 3)
		return rmdir(argv[2]) ? fail("rmdir") : (puts("ok"), 0);
	if (!strcmp(op, "unlink") && argc == 3)
		return unlink(argv[2]) ? fail("unlink") : (puts("ok"), 0);
	if (!strcmp(op, "rename") && argc == 4)
		return rename(argv[2], argv[3]) ? fail("rename") : (puts("ok"), 0);
	if (!strcmp(op, "rename2") && argc == 5) {
		unsigned flags = !strcmp(argv[4], "noreplace") ? RENAME_NOREPLACE :
				 !strcmp(argv[4], "exchange") ? RENAME_EXCHANGE : 0;

		if (!flags)
			return 2;
		return renameat2(AT_FDCWD, argv[2], AT_FDCWD, argv[3], flags) ?
		       fail("rename") : (puts("ok"), 0);
	}
	fprintf(stderr, "usage: fsop write|writen|pwrite|read|mkdir|rmdir|unlink|rename|rename2 ...\n");
	return 2;
}
