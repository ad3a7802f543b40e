#!/usr/bin/env bats
# meson install into a DESTDIR: the binaries, the mount(8) helpers and the
# three manual pages land where the build's prefix says; the pages are
# lint-clean, and semcachefs-policy(5) lists every key --policy-keys
# prints (the page is generated from the same table). Then mount(8) and
# fstab lines mount the installed binary: through /sbin/mount.fuse.semcachefs
# (a link into the DESTDIR, made only as root and removed in teardown), and
# through mount.fuse3's "semcachefs#SOURCE" form.

load helpers

# the install is done once for the file; its paths are exported to the tests
setup_file() {
	export DEST PREFIX BINDIR SBINDIR MANDIR
	DEST=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache-install.XXXXXX")
	eval "$(meson introspect "$BUILD" --buildoptions | python3 -c '
import json, sys
o = {b["name"]: b["value"] for b in json.load(sys.stdin)}
def under(k):
    return o[k] if o[k].startswith("/") else o["prefix"] + "/" + o[k]
print("PREFIX=%s BINDIR=%s SBINDIR=%s MANDIR=%s" % (o["prefix"], under("bindir"),
      under("sbindir"), under("mandir")))')"
	# a build made for some targets only (./setup.sh's build-asan) may
	# lack the generated page: make just that, not the whole tree
	{ ninja -C "$BUILD" fs/semcachefs-policy.5 &&
		meson install -C "$BUILD" --no-rebuild --destdir "$DEST"; } >"$DEST.log" 2>&1 ||
		{ cat "$DEST.log" >&2; return 1; }
}

teardown_file() {
	rm -rf "$DEST" "$DEST.log"
}

setup() {
	WORK=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache.XXXXXX")
	MNT=$WORK/mnt
	STORE=$WORK/store
	LOG=$WORK/daemon.log
	mkdir -p "$MNT"
	LINKS=()
}

teardown() {
	local l
	if is_mounted; then
		umount "$MNT" 2>/dev/null || fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	for l in "${LINKS[@]}"; do
		# only the links this test made, pointing into this DESTDIR
		[ "$(readlink "$l")" = "$DEST$SBINDIR/${l##*/}" ] && rm -f "$l"
	done
	# the daemon of a mount(8) mount is not ours to wait for: wait for it
	# to let go of the store before removing it
	store_free() { [ ! -d "$STORE" ] || flock -n "$STORE" true; }
	wait_until 20 store_free || true
	rm -rf "$WORK"
}

PAGES=(man1/semcachefs.1 man5/semcachefs-policy.5 man1/semcachefs-eval.1)

@test "meson install puts the binaries, the mount helpers and the manual pages in place" {
	local p
	[ -x "$DEST$BINDIR/semcachefs" ]
	[ -x "$DEST$BINDIR/semcachefs-eval" ]
	for p in mount.semcachefs mount.fuse.semcachefs; do
		[ -L "$DEST$SBINDIR/$p" ]
		[ "$(readlink -f "$DEST$SBINDIR/$p")" = "$(readlink -f "$DEST$BINDIR/semcachefs")" ]
	done
	for p in "${PAGES[@]}"; do
		[ -s "$DEST$MANDIR/$p" ]
	done
	run "$DEST$BINDIR/semcachefs" --version
	assert_success
	assert_output --regexp '^semcachefs [0-9.]+ \('
}

@test "every manual page is lint-clean (mandoc -Tlint, groff -wall)" {
	local p linted=0
	for p in "${PAGES[@]}"; do
		if command -v mandoc >/dev/null; then
			run mandoc -Tlint -Wwarning "$DEST$MANDIR/$p"
			assert_success
			assert_output ""
			linted=$((linted + 1))
		fi
		if command -v groff >/dev/null; then
			run groff -wall -mandoc -z "$DEST$MANDIR/$p"
			assert_success
			assert_output ""
			linted=$((linted + 1))
		fi
	done
	[ "$linted" -gt 0 ] || skip "needs mandoc (package mandoc) or groff (package groff-base)"
}

@test "man -l shows semcachefs-policy(5) with every key --policy-keys lists, and nothing else" {
	command -v man >/dev/null || skip "needs man (package man-db)"
	local keys k page
	keys=$("$SEMCACHEFS" --policy-keys | sed -n 's/^| `\([a-z_.]*\)` |.*/\1/p')
	[ "$(wc -l <<<"$keys")" -ge 30 ]
	MANWIDTH=120 run man -l "$DEST$MANDIR/man5/semcachefs-policy.5"
	assert_success
	page=$output
	for k in $keys; do
		# a key is a paragraph tag: first on its line (a short tag
		# shares it with the start of its paragraph)
		grep -qE "^ +${k//./\\.}( |\$)" <<<"$page" || fail "key '$k' is not in the page"
	done
	# the page's KEYS section has exactly those tags
	[ "$(grep -c '^\.TP$' <(sed -n '/^\.SH KEYS/,/^\.SH /p' "$DEST$MANDIR/man5/semcachefs-policy.5"))" = "$(wc -l <<<"$keys")" ]
	run man -l "$DEST$MANDIR/man1/semcachefs.1"
	assert_success
	assert_output --partial "EXIT STATUS"
}

# need_sbin NAME: as root, link /sbin/NAME (where mount(8) looks for
# helpers) to the DESTDIR's; skips when that is not possible or not ours
need_sbin() {
	local l=/sbin/$1
	[ "$(id -u)" = 0 ] || skip "needs root: mount(8) runs helpers from /sbin only"
	command -v mount >/dev/null || skip "needs mount (package mount)"
	if [ -e "$l" ] || [ -L "$l" ]; then
		[ "$(readlink "$l")" = "$DEST$SBINDIR/$1" ] ||
			skip "$l is installed already (not this build's): not replacing it"
	fi
	ln -sfn "$DEST$SBINDIR/$1" "$l" || skip "cannot write $l"
	LINKS+=("$l")
}

ask_here() {
	mkdir -p "$MNT/code"
	printf '%s\n' "$1" >"$MNT/code/q.query" && cat "$MNT/code/q.status"
}

@test "mount -t fuse.semcachefs SOURCE MOUNTPOINT: the source is the store" {
	require_fuse
	need_sbin mount.fuse.semcachefs
	run mount -t fuse.semcachefs "$STORE" "$MNT" -o session_ttl=30
	assert_success
	assert_output ""
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$STORE fuse.semcachefs"
	run ask_here "how do I reverse a list in python"
	assert_output "miss"
	[ -f "$STORE/semcachefs.log" ]
	run umount "$MNT"
	assert_success
}

@test "mount -t semcachefs runs /sbin/mount.semcachefs" {
	require_fuse
	need_sbin mount.semcachefs
	run mount -t semcachefs "$STORE" "$MNT"
	assert_success
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$STORE fuse.semcachefs"
	umount "$MNT"
}

@test "fstab lines mount: mount(8)'s own options are dropped, store= and 'none' work" {
	require_fuse
	need_sbin mount.fuse.semcachefs
	mkdir -p "$WORK/mnt2"
	cat >"$WORK/fstab" <<-EOT
	$STORE  $MNT  fuse.semcachefs  defaults,noauto,nofail,_netdev,x-systemd.automount,comment=x,session_ttl=30  0 0
	none  $WORK/mnt2  fuse.semcachefs  store=$WORK/store2,users,noexec  0 0
	EOT
	run mount -T "$WORK/fstab" "$MNT"
	assert_success
	run mount -T "$WORK/fstab" "$WORK/mnt2"
	assert_success
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$STORE fuse.semcachefs"
	run findmnt -n -o FSTYPE,OPTIONS "$WORK/mnt2"
	assert_output --regexp '^fuse\.semcachefs .*noexec'
	run ask_here "is the cache up"
	assert_output "miss"
	[ -f "$WORK/store2/semcachefs.log" ]
	umount "$WORK/mnt2"
	store2_free() { flock -n "$WORK/store2" true; }
	wait_until 20 store2_free
}

# mount(8) runs helpers with a fixed PATH, so outside the standard
# directories the program is named by its path
@test "mount.fuse3's PROGRAM#SOURCE form runs the installed binary with the source" {
	require_fuse
	[ "$(id -u)" = 0 ] || skip "needs root to run mount(8)"
	[ -x /sbin/mount.fuse3 ] || skip "needs /sbin/mount.fuse3 (package fuse3)"
	run mount -t fuse "$DEST$BINDIR/semcachefs#$STORE" "$MNT"
	assert_success
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$STORE fuse.semcachefs"
	run ask_here "is the cache up"
	assert_output "miss"
}

@test "the mount helper: -f mounts nothing, a bad option exits 2, both before the store is made" {
	local helper=$DEST$SBINDIR/mount.fuse.semcachefs
	run "$helper" "$STORE" "$MNT" -f -o session_ttl=30
	assert_success
	assert_output ""
	run "$helper" "$STORE" "$MNT" -o bogus_option
	assert_failure 2
	assert_output --partial "unknown option"
	run "$helper" "$STORE" "$MNT" -N 1234
	assert_failure 2
	assert_output "semcachefs: mount helper: option '-N' is not supported"
	run "$helper" "$STORE"
	assert_failure 2
	assert_output "semcachefs: mount helper: usage: mount.semcachefs SOURCE MOUNTPOINT [-o OPTIONS]"
	[ ! -e "$STORE" ]
	! is_mounted
}
