/*
 * cmdline.c - mount(8)'s helper command line and the SOURCE argument.
 *
 * mount(8) runs "/sbin/mount.fuse.semcachefs SOURCE MOUNTPOINT -o OPTS"
 * for "mount -t fuse.semcachefs" and fstab lines (mount.semcachefs for
 * "-t semcachefs"); both names are symlinks to the semcachefs binary, which
 * sees its name in argv[0]. The helper form is rewritten into the daemon's
 * own "semcachefs -o OPTS SOURCE MOUNTPOINT", so that one parser (main.c)
 * checks every option either way. Options only mount(8) reads are dropped
 * here, the way mount.fuse3 drops them, because libfuse refuses them.
 *
 * It does not switch users (mount.fuse3's setuid=): a mount from fstab
 * runs the daemon as whoever runs mount(8).
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fuse_opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

bool cmdline_is_mount_helper(const char *argv0)
{
	const char *base = argv0 ? strrchr(argv0, '/') : NULL;

	base = base ? base + 1 : argv0;
	return base && (!strcmp(base, "mount.semcachefs") ||
			!strcmp(base, "mount.fuse.semcachefs"));
}

/* options of fstab and mount(8) that are not the file system's */
static bool mount_only(const char *o)
{
	static const char *const names[] = {
		"defaults", "auto", "noauto", "user", "users", "nouser", "owner",
		"group", "nofail", "_netdev",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(o, names[i]))
			return true;
	return !strncmp(o, "comment=", 8) || !strncmp(o, "x-", 2);
}

/* the comma-separated list in into *kept, without mount(8)'s own */
static int filter_opts(const char *in, char **kept)
{
	char *copy = strdup(in), *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
		if (!mount_only(o) && fuse_opt_add_opt(kept, o)) {
			free(copy);
			return -ENOMEM;
		}
	free(copy);
	return 0;
}

/* one cluster of single-letter flags ("-sv"); -1 for a letter unknown */
static int mount_flags(const char *arg, char **kept, bool *fake)
{
	for (const char *c = arg + 1; *c; c++) {
		switch (*c) {
		case 's': case 'n': case 'v':
			break; /* sloppy, no mtab, verbose: nothing to do */
		case 'f':
			*fake = true;
			break;
		case 'r':
			if (fuse_opt_add_opt(kept, "ro"))
				return -ENOMEM;
			break;
		case 'w':
			if (fuse_opt_add_opt(kept, "rw"))
				return -ENOMEM;
			break;
		default:
			fprintf(stderr, "semcachefs: mount helper: option '-%c' is not supported\n", *c);
			return -EINVAL;
		}
	}
	return 0;
}

int cmdline_from_mount(int argc, char **argv, struct fuse_args *out, bool *fake)
{
	const char *pos[2] = { NULL, NULL };
	char *kept = NULL;
	int npos = 0, rc = 0;

	*fake = false;
	*out = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	for (int i = 1; i < argc && !rc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-o") || !strcmp(a, "-t")) {
			if (i + 1 == argc) {
				fprintf(stderr, "semcachefs: mount helper: '%s' needs a value\n", a);
				rc = -EINVAL;
			} else if (a[1] == 'o') {
				rc = filter_opts(argv[++i], &kept);
			} else {
				i++; /* the type: we are its only file system */
			}
		} else if (!strncmp(a, "-o", 2)) {
			rc = filter_opts(a + 2, &kept);
		} else if (a[0] == '-' && a[1]) {
			rc = mount_flags(a, &kept, fake);
		} else if (npos == 2) {
			fprintf(stderr, "semcachefs: mount helper: unexpected argument '%s' "
				"(usage: mount.semcachefs SOURCE MOUNTPOINT [-o OPTIONS])\n", a);
			rc = -EINVAL;
		} else {
			pos[npos++] = a;
		}
	}
	if (!rc && npos != 2) {
		fprintf(stderr, "semcachefs: mount helper: usage: mount.semcachefs SOURCE MOUNTPOINT [-o OPTIONS]\n");
		rc = -EINVAL;
	}
	if (!rc && (fuse_opt_add_arg(out, "semcachefs") ||
		    (kept && (fuse_opt_add_arg(out, "-o") || fuse_opt_add_arg(out, kept))) ||
		    fuse_opt_add_arg(out, pos[0]) || fuse_opt_add_arg(out, pos[1])))
		rc = -ENOMEM;
	free(kept);
	if (rc)
		fuse_opt_free_args(out);
	return rc;
}

const char *cmdline_source_store(const char *source)
{
	if (!source || !strcmp(source, "none") || !strcmp(source, "semcachefs"))
		return NULL;
	return source;
}

int cmdline_add_fsname(struct fuse_args *args, const char *source)
{
	char *opt = malloc(2 * strlen(source) + sizeof("-ofsname="));
	char *p;
	int rc;

	if (!opt)
		return -ENOMEM;
	p = opt + sprintf(opt, "-ofsname=");
	if (strchr(source, '@'))
		source = "semcachefs";
	for (; *source; source++) {
		if (*source == ',' || *source == '\\')
			*p++ = '\\';
		*p++ = *source;
	}
	*p = 0;
	/* libfuse names the type fuse.PROGRAM only when no fsname is given */
	rc = fuse_opt_add_arg(args, opt) || fuse_opt_add_arg(args, "-osubtype=semcachefs") ?
	     -ENOMEM : 0;
	free(opt);
	return rc;
}
