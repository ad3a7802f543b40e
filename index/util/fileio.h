/*
 * fileio.h - the few file-system steps that persistent files need.
 *
 * Persistent files are written temp -> fsync -> rename -> fsync(dir); these
 * are the shared pieces. errbuf_set() fills a caller's message buffer.
 * All return 0 or a negative errno and keep errno-style errors exact.
 */
#ifndef SEMCACHE_FILEIO_H
#define SEMCACHE_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* write(2) all of buf, retrying on EINTR and short writes. */
int fileio_write_all(int fd, const void *buf, size_t len);
/* fsync the directory dir. */
int fileio_fsync_dir(const char *dir);
/* fsync the directory that holds the file path. */
int fileio_fsync_parent(const char *path);
/* mkdir -p: missing parents are made 0700, the last one mode. */
int fileio_mkdir_p(const char *path, mode_t mode);
/* The default data directory: $XDG_DATA_HOME/semcachefs when that is an
 * absolute path, else $HOME/.local/share/semcachefs, else
 * /tmp/semcachefs-UID. -ENAMETOOLONG if it does not fit. Not created. */
int fileio_default_data_dir(char *buf, size_t size);

/* snprintf into a caller's error buffer (err may be NULL or errlen 0). */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
