/*
 * xattr.c - extended attributes: user.semcache.* on NAME.response (from
 * its status line) and on entries/ID (from the entry's metadata).
 *
 * Design: read-only and computed on each call; the list holds only the
 * names that have a value now. Setting any attribute is ENOTSUP.
 *
 * Not here: the status line's format (protocol.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "fs_i.h"

/* user.semcache.{status,score,entry,age} mirror NAME.status on
 * NAME.response; entry directories carry status, entry, age and hits. */
static const char *const xattr_names[] = {
	"user.semcache.status", "user.semcache.score", "user.semcache.entry",
	"user.semcache.age", "user.semcache.hits",
};
#define XATTR_N_RESPONSE 4
#define XATTR_N_ENTRY 5

static int xattr_value(const char *path, const char *name, char *out,
		       size_t size)
{
	const char *field;
	struct fs_path fp;
	struct node *n;
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	if (strncmp(name, "user.semcache.", 14))
		return -ENODATA;
	field = name + 14;
	if (fp.kind == FS_SESSION && fp.sf == SF_RESPONSE) {
		char status[256];

		n = node_get(NODE_SESSION, fp.dir, fp.name, 0);
		if (!n)
			return -ENOENT;
		pthread_mutex_lock(&n->lock);
		snprintf(status, sizeof(status), "%s", n->status);
		pthread_mutex_unlock(&n->lock);
		node_put(n, false);
		if (!strcmp(field, "hits"))
			return -ENODATA;
		return fs_status_field(status, field, out, size);
	}
	if (fp.kind == FS_ENTRY) {
		struct cache_entry_info ei;

		rc = cache_entry_stat(fs_st()->cache, fp.dir, fp.entry, &ei);
		if (rc)
			return rc;
		if (!strcmp(field, "status"))
			snprintf(out, size, "%s", ei.expired ? "expired" : "live");
		else if (!strcmp(field, "entry"))
			snprintf(out, size, "%" PRId64, ei.id);
		else if (!strcmp(field, "age"))
			snprintf(out, size, "%" PRId64, (clock_wall_ms() - ei.created_ms) / 1000);
		else if (!strcmp(field, "hits"))
			snprintf(out, size, "%" PRId64, ei.hits);
		else
			return -ENODATA;
		return 0;
	}
	return -ENODATA;
}

int fs_getxattr(const char *path, const char *name, char *value,
		size_t size)
{
	fs_count_request();
	char buf[128];
	size_t len;
	int rc = xattr_value(path, name, buf, sizeof(buf));

	if (rc)
		return rc;
	len = strlen(buf);
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(value, buf, len);
	return (int)len;
}

int fs_listxattr(const char *path, char *list, size_t size)
{
	fs_count_request();
	struct fs_path fp;
	size_t need = 0, n = 0;
	char buf[128];
	int rc = fs_resolve(path, &fp);

	if (rc)
		return rc;
	if (fp.kind == FS_SESSION && fp.sf == SF_RESPONSE)
		n = XATTR_N_RESPONSE;
	else if (fp.kind == FS_ENTRY)
		n = XATTR_N_ENTRY;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(xattr_names[i]) + 1;

		if (xattr_value(path, xattr_names[i], buf, sizeof(buf)))
			continue;
		if (size && need + l <= size)
			memcpy(list + need, xattr_names[i], l);
		else if (size)
			return -ERANGE;
		need += l;
	}
	return (int)need;
}

int fs_setxattr(const char *path, const char *name, const char *value,
		size_t size, int flags)
{
	fs_count_request();
	struct fs_path fp;
	int rc = fs_resolve(path, &fp);

	return rc ? rc : -ENOTSUP;
}
