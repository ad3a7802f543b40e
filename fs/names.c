/*
 * names.c - what a path of the mount is: name validation, resolution of a
 * path into a view (struct fs_path), and the text of generated files.
 *
 * Resolution asks the engine only whether categories exist; it never
 * checks that a file exists (getattr and open do, for their kind), so the
 * same fs_path serves lookups, creation and refusals. ".." and "/" never
 * reach here: the kernel resolves them.
 *
 * Not here: what a view's operations do (attr.c, dir.c, io.c, editor.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

static const char *const entry_part_name[] = {
	[CACHE_PART_QUERY] = "query", [CACHE_PART_CONTEXT] = "context",
	[CACHE_PART_RESPONSE] = "response", [CACHE_PART_META] = "meta",
};

const char *const fs_sfile_suffix[SF_N] = {
	[SF_QUERY] = ".query", [SF_RESPONSE] = ".response",
	[SF_STATUS] = ".status", [SF_CONTEXT] = ".context",
	[SF_FEEDBACK] = ".feedback",
};

/* ---- paths ---- */

bool fs_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > FS_NAME_MAX_BYTES)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return strcmp(name, ".") && strcmp(name, "..");
}

bool fs_is_reserved_dir_name(const char *name)
{
	static const char *const reserved[] = { "entries", "policy.yaml",
		".policy", ".stats", ".errors", ".metrics", ".load" };
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
		if (!strcmp(name, reserved[i]))
			return true;
	for (int i = 0; i < SF_N; i++) {
		size_t sl = strlen(fs_sfile_suffix[i]);

		if (len >= sl && !strcmp(name + len - sl, fs_sfile_suffix[i]))
			return true;
	}
	return false;
}

int fs_split(const char *path, char *dir, size_t dsize, char *base,
	     size_t bsize)
{
	const char *slash = strrchr(path, '/');
	size_t dl = slash == path ? 1 : (size_t)(slash - path);

	if (!slash || dl >= dsize || strlen(slash + 1) >= bsize)
		return -ENAMETOOLONG;
	memcpy(dir, path, dl);
	dir[dl] = '\0';
	strcpy(base, slash + 1);
	return 0;
}

/* Classify a name inside a category directory (not checking existence). */
static void classify_name(struct fs_path *fp, const char *base)
{
	size_t len = strlen(base);

	snprintf(fp->name, sizeof(fp->name), "%s", base);
	if (!strcmp(base, "policy.yaml")) {
		fp->kind = FS_POLICY;
		return;
	}
	if (!strcmp(base, ".policy")) {
		fp->kind = FS_VIEW_POLICY;
		return;
	}
	if (!strcmp(base, ".stats")) {
		fp->kind = FS_VIEW_STATS;
		return;
	}
	if (!strcmp(base, ".errors")) {
		fp->kind = FS_VIEW_ERRORS;
		return;
	}
	if (!strcmp(base, ".metrics") && !strcmp(fp->dir, "/")) {
		fp->kind = FS_VIEW_METRICS;
		return;
	}
	if (!strcmp(base, ".purge")) {
		fp->kind = FS_PURGE;
		return;
	}
	if (!strcmp(base, "entries")) {
		fp->kind = FS_ENTRIES;
		return;
	}
	for (int i = 0; i < SF_N; i++) {
		size_t sl = strlen(fs_sfile_suffix[i]);

		if (len > sl && !strcmp(base + len - sl, fs_sfile_suffix[i])) {
			fp->kind = FS_SESSION;
			fp->sf = i;
			fp->name[len - sl] = '\0';
			return;
		}
	}
	fp->kind = FS_SCRATCH;
}

/* "ID" or "ID/PART" below CATEGORY/entries/ */
static int resolve_entry(const char *rest, struct fs_path *fp)
{
	char *end;
	long long id;

	errno = 0;
	id = strtoll(rest, &end, 10);
	if (errno || id <= 0 || end == rest || (*end && *end != '/'))
		return -ENOENT;
	fp->entry = id;
	if (!*end) {
		fp->kind = FS_ENTRY;
		return 0;
	}
	for (size_t i = 0; i < sizeof(entry_part_name) / sizeof(*entry_part_name); i++) {
		if (!strcmp(end + 1, entry_part_name[i])) {
			fp->kind = FS_ENTRY_FILE;
			fp->part = i;
			return 0;
		}
	}
	return -ENOENT;
}

int fs_resolve(const char *path, struct fs_path *fp)
{
	char base[256];
	const char *ent;

	memset(fp, 0, sizeof(*fp));
	if (strlen(path) >= sizeof(fp->dir))
		return -ENAMETOOLONG;
	if (!strncmp(path, "/.load", 6) && (path[6] == '\0' || path[6] == '/')) {
		strcpy(fp->dir, "/.load");
		if (!path[6] || !path[7]) {
			fp->kind = FS_LOAD_DIR;
			return 0;
		}
		if (strchr(path + 7, '/') || strlen(path + 7) >= sizeof(fp->name))
			return -ENOENT;
		fp->kind = FS_LOAD_FILE;
		strcpy(fp->name, path + 7);
		return 0;
	}
	/* "entries" is never a category, so its first component is the one */
	for (ent = strstr(path, "/entries/"); ent; ent = strstr(ent + 1, "/entries/")) {
		size_t dl = ent == path ? 1 : (size_t)(ent - path);

		memcpy(fp->dir, path, dl);
		fp->dir[dl] = '\0';
		if (cache_category_stat(fs_st()->cache, fp->dir, NULL) == 0)
			return resolve_entry(ent + strlen("/entries/"), fp);
	}
	if (cache_category_stat(fs_st()->cache, path, NULL) == 0) {
		fp->kind = FS_DIR;
		strcpy(fp->dir, path);
		return 0;
	}
	if (fs_split(path, fp->dir, sizeof(fp->dir), base, sizeof(base)))
		return -ENAMETOOLONG;
	if (cache_category_stat(fs_st()->cache, fp->dir, NULL))
		return -ENOENT;
	classify_name(fp, base);
	return 0;
}

/* ---- generated views ---- */

int fs_view_text(const struct fs_path *fp, struct buf *out, int64_t *mtime)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	switch (fp->kind) {
	case FS_VIEW_POLICY:
		rc = cache_policy_text(fs_st()->cache, fp->dir, &text, &len);
		break;
	case FS_VIEW_STATS:
		rc = cache_stats_text(fs_st()->cache, fp->dir, &text, &len);
		if (!rc && !strcmp(fp->dir, "/")) {
			char *more = NULL;

			if (asprintf(&more, "%sfuse_requests: %" PRIu64 "\n", text,
				     (uint64_t)fs_requests) < 0) {
				rc = -ENOMEM;
			} else {
				free(text);
				text = more;
				len = strlen(text);
			}
		}
		break;
	case FS_VIEW_ERRORS:
		rc = cache_policy_errors(fs_st()->cache, fp->dir, &text, &len);
		break;
	case FS_VIEW_METRICS:
		rc = cache_metrics_text(fs_st()->cache, &text, &len);
		break;
	case FS_PURGE:
		text = strdup("");
		rc = text ? 0 : -ENOMEM;
		break;
	case FS_ENTRY_FILE:
		rc = cache_entry_read(fs_st()->cache, fp->dir, fp->entry, fp->part,
				      &text, &len);
		break;
	case FS_POLICY:
		rc = cache_policy_get(fs_st()->cache, fp->dir, &text, &len, mtime);
		break;
	default:
		return -EINVAL;
	}
	if (rc)
		return rc;
	free(out->data);
	out->data = text;
	out->len = out->cap = len;
	return 0;
}

bool fs_policy_pending(const char *dir)
{
	struct node *n = node_get(NODE_PENDING, dir, "policy.yaml", 0);

	if (n)
		node_put(n, false);
	return n != NULL;
}

bool fs_load_name_ok(const char *name)
{
	if (!name[0] || strlen(name) > 100 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return false;
	return true;
}
