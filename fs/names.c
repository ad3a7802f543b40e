/*
 * names.c - what a path of the mount is: the table of reserved names,
 * name validation, resolution of a path into a view (struct fs_path), and
 * the text of generated files.
 *
 * One table (fs_reserved; fs_i.h says what follows it) lists the reserved
 * names of a category, another the session file suffixes. Resolution
 * asks the engine only whether categories exist; it never checks that a
 * file exists (getattr and open do, for their kind), so the same fs_path
 * serves lookups, creation and refusals. ".." and "/" never
 * reach here: the kernel resolves them.
 *
 * Not here: what a view's operations do (attr.c, dir.c, io.c, editor.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

const char *const fs_entry_part_name[4] = {
	[CACHE_PART_QUERY] = "query", [CACHE_PART_CONTEXT] = "context",
	[CACHE_PART_RESPONSE] = "response", [CACHE_PART_META] = "meta",
};

/* ---- the reserved names ---- */

/* head (len bytes, malloc'd) followed by tail (n bytes, malloc'd, freed
 * here) in one NUL-terminated buffer, or NULL (head then still owned by the
 * caller). */
static char *realloc_join(char *head, size_t len, char *tail, size_t n)
{
	char *j = realloc(head, len + n + 1);

	if (j)
		memcpy(j + len, tail, n + 1);
	free(tail);
	return j;
}

static int text_policy_yaml(const char *dir, char **text, size_t *len,
			    int64_t *mtime)
{
	int64_t stamp;
	int rc = cache_policy_get(fs_st()->cache, dir, text, len, &stamp);

	if (!rc && fs_hold_hides(dir, stamp)) {
		free(*text);
		*text = NULL;
		return -ENOENT; /* renamed away, the removal held back (hold.c) */
	}
	if (!rc && mtime)
		*mtime = stamp;
	return rc;
}

static int text_policy(const char *dir, char **text, size_t *len,
		       int64_t *mtime)
{
	return cache_policy_text(fs_st()->cache, dir, text, len);
}

/* Append to a generated text (*text malloc'd, *len bytes); on failure
 * *text is freed and NULL. */
static int text_append(char **text, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int text_append(char **text, size_t *len, const char *fmt, ...)
{
	char *more = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&more, fmt, ap);
	va_end(ap);
	if (n < 0 || !(more = realloc_join(*text, *len, more, (size_t)n))) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	*text = more;
	*len += (size_t)n;
	return 0;
}

#ifdef __SANITIZE_ADDRESS__
size_t __sanitizer_get_current_allocated_bytes(void); /* libasan's */
#endif

/* The bytes the daemon has allocated and not freed: what it keeps, unlike
 * VmRSS, which also holds what the allocator retains (freed chunks, the
 * arenas glibc adds per contended thread). Under ASan, ASan's allocator
 * answers (glibc's mallinfo2 sees none of it). */
static uint64_t heap_in_use(void)
{
#ifdef __SANITIZE_ADDRESS__
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
}

/* The root's .stats also counts the FUSE requests served and the heap. */
static int text_stats(const char *dir, char **text, size_t *len,
		      int64_t *mtime)
{
	int rc = cache_stats_text(fs_st()->cache, dir, text, len);

	if (rc || strcmp(dir, "/"))
		return rc;
	return text_append(text, len, "fuse_requests: %" PRIu64 "\n"
			   "heap_bytes: %" PRIu64 "\n",
			   fs_requests_total(), heap_in_use());
}

static int text_errors(const char *dir, char **text, size_t *len,
		       int64_t *mtime)
{
	return cache_policy_errors(fs_st()->cache, dir, text, len);
}

/* The engine's families, the FUSE requests served and the heap. */
static int text_metrics(const char *dir, char **text, size_t *len,
			int64_t *mtime)
{
	int rc = cache_metrics_text(fs_st()->cache, text, len);

	if (rc)
		return rc;
	return text_append(text, len, "# HELP semcache_fuse_requests_total FUSE requests served.\n"
			   "# TYPE semcache_fuse_requests_total counter\n"
			   "semcache_fuse_requests_total %" PRIu64 "\n"
			   "# HELP semcache_heap_bytes Bytes the daemon has allocated and not freed.\n"
			   "# TYPE semcache_heap_bytes gauge\n"
			   "semcache_heap_bytes %" PRIu64 "\n",
			   fs_requests_total(), heap_in_use());
}

static int text_empty(const char *dir, char **text, size_t *len,
		      int64_t *mtime)
{
	*text = strdup("");
	return *text ? 0 : -ENOMEM;
}

/* In listing order. README.md's file table and its list of reserved names
 * say the same. */
const struct fs_reserved fs_reserved[] = {
	/* one directory per cached entry: query, response, context, meta;
	 * readable by who may read the category; its write and sticky bits
	 * are the category's, so who may remove entries/ID is the kernel's
	 * usual rule (with the engine's check behind it) */
	{ .name = "entries", .kind = FS_ENTRIES, .mode = S_IFDIR | 01777,
	  .category_mode = true },
	/* written (any content, even none): every entry of the category is
	 * removed; by the category's owner */
	{ .name = ".purge", .kind = FS_PURGE, .mode = S_IFREG | 0200,
	  .category_mode = true, .text = text_empty },
	/* every category's counters in Prometheus text format (names of
	 * categories others may not see): the mount owner's and root's */
	{ .name = ".metrics", .kind = FS_VIEW_METRICS, .root_only = true,
	  .mode = S_IFREG | 0400, .mount_owner = true, .text = text_metrics },
	/* .load/MODEL: a model's utilisation (0..1), written by whoever
	 * knows it (io.c, attr.c) */
	{ .name = FS_LOAD_PATH + 1, .kind = FS_LOAD_DIR, .root_only = true,
	  .mode = S_IFDIR | 0755 },
	/* the effective policy, each value with where it came from */
	{ .name = ".policy", .kind = FS_VIEW_POLICY, .mode = S_IFREG | 0444,
	  .text = text_policy },
	/* key: value counters (the root's: of every category) */
	{ .name = ".stats", .kind = FS_VIEW_STATS, .mode = S_IFREG | 0444,
	  .text = text_stats },
	/* why the last policy.yaml was refused; empty otherwise */
	{ .name = ".errors", .kind = FS_VIEW_ERRORS, .mode = S_IFREG | 0444,
	  .text = text_errors },
	/* the category's own policy, validated when its writer closes; by
	 * the category's owner */
	{ .name = "policy.yaml", .kind = FS_POLICY, .if_present = true,
	  .mode = S_IFREG | 0644, .text = text_policy_yaml },
};
const size_t fs_reserved_n = sizeof(fs_reserved) / sizeof(*fs_reserved);

/* A session is its creator's alone (the kernel checks these bits against
 * the creator's uid, shown as the owner). */
const struct fs_session_file fs_session_files[SF_N] = {
	[SF_QUERY] = { ".query", 0600 },
	[SF_RESPONSE] = { ".response", 0600 },
	[SF_STATUS] = { ".status", 0400 },
	[SF_CONTEXT] = { ".context", 0600 },
	[SF_FEEDBACK] = { ".feedback", 0600 },
	[SF_NEIGHBORS] = { ".neighbors", 0400 },
};

mode_t fs_reserved_mode(const struct fs_reserved *r, mode_t category_mode)
{
	mode_t perm = r->mode & 07777;

	return (r->mode & S_IFMT) | (r->category_mode ? perm & category_mode : perm);
}

/* The row of name in category dir, or NULL. */
static const struct fs_reserved *reserved_row(const char *dir, const char *name)
{
	for (size_t i = 0; i < fs_reserved_n; i++)
		if (!strcmp(name, fs_reserved[i].name))
			return fs_reserved[i].root_only && strcmp(dir, "/") ?
			       NULL : &fs_reserved[i];
	return NULL;
}

/* Which session file name is (NAME + its suffix), or SF_N. A bare suffix
 * (".query") has no NAME: it is a scratch name, though no category. */
static enum sfile session_suffix(const char *name, bool bare_ok)
{
	size_t len = strlen(name);

	for (int i = 0; i < SF_N; i++) {
		size_t sl = strlen(fs_session_files[i].suffix);

		if ((bare_ok ? len >= sl : len > sl) &&
		    !strcmp(name + len - sl, fs_session_files[i].suffix))
			return i;
	}
	return SF_N;
}

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

bool fs_reserved_name(const char *name)
{
	for (size_t i = 0; i < fs_reserved_n; i++)
		if (!strcmp(name, fs_reserved[i].name))
			return true;
	return session_suffix(name, true) != SF_N;
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
	enum sfile sf;

	snprintf(fp->name, sizeof(fp->name), "%s", base);
	fp->res = reserved_row(fp->dir, base);
	if (fp->res) {
		fp->kind = fp->res->kind;
		return;
	}
	sf = session_suffix(base, false);
	if (sf != SF_N) {
		fp->kind = FS_SESSION;
		fp->sf = sf;
		fp->name[strlen(base) - strlen(fs_session_files[sf].suffix)] = '\0';
		return;
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
	for (size_t i = 0; i < sizeof(fs_entry_part_name) / sizeof(*fs_entry_part_name); i++) {
		if (!strcmp(end + 1, fs_entry_part_name[i])) {
			fp->kind = FS_ENTRY_FILE;
			fp->part = i;
			return 0;
		}
	}
	return -ENOENT;
}

int fs_resolve(const char *path, struct fs_path *fp)
{
	const size_t ll = strlen(FS_LOAD_PATH);
	char base[256];
	const char *ent;

	memset(fp, 0, sizeof(*fp));
	if (!path)
		return -ESTALE; /* an open file that is gone: see fs_i.h */
	if (strlen(path) >= sizeof(fp->dir))
		return -ENAMETOOLONG;
	if (!strncmp(path, FS_LOAD_PATH, ll) && (path[ll] == '\0' || path[ll] == '/')) {
		strcpy(fp->dir, FS_LOAD_PATH);
		if (!path[ll] || !path[ll + 1]) {
			fp->kind = FS_LOAD_DIR;
			fp->res = reserved_row("/", FS_LOAD_PATH + 1);
			return 0;
		}
		if (strchr(path + ll + 1, '/') || strlen(path + ll + 1) >= sizeof(fp->name))
			return -ENOENT;
		fp->kind = FS_LOAD_FILE;
		strcpy(fp->name, path + ll + 1);
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

/* out takes text (malloc'd, len bytes) in place of what it held. */
static void buf_take(struct buf *out, char *text, size_t len)
{
	free(out->data);
	out->data = text;
	out->len = out->cap = len;
}

int fs_res_text(const struct fs_reserved *res, const char *dir, struct buf *out,
		int64_t *mtime)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!res || !res->text)
		return -EINVAL;
	rc = res->text(dir, &text, &len, mtime);
	if (!rc)
		buf_take(out, text, len);
	return rc;
}

int fs_view_text(const struct fs_path *fp, struct buf *out, int64_t *mtime)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (fp->kind != FS_ENTRY_FILE)
		return fs_res_text(fp->res, fp->dir, out, mtime);
	rc = cache_entry_read(fs_st()->cache, fp->dir, fp->entry, fp->part, &text, &len);
	if (!rc)
		buf_take(out, text, len);
	return rc;
}

bool fs_pending(const char *dir, const char *name)
{
	struct node *n = node_get(NODE_PENDING, dir, name, 0);

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
