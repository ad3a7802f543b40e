#!/usr/bin/env bats
# The Debian package: `dpkg-buildpackage -us -uc -b` on a copy of the
# tracked tree (git ls-files, so nothing of this checkout's builds or
# caches goes in) makes a .deb that lintian finds no error in and whose
# dependencies apt resolves here; installed by dpkg -i into a clean root,
# its own binary mounts and answers, its semcachefs-top and completion work
# and its unit passes systemd-analyze.
#
# About 35 s on 2 cores (the package build is a full meson build against
# Debian's FAISS, without the unit tests). Runs when debhelper is installed
# (./setup.sh test installs it); SEMCACHE_DEB_TESTS=1 makes a missing
# debhelper a failure, SEMCACHE_DEB_TESTS=0 skips the file. The pass
# against the ASan build skips it: the package builds its own binaries.

load helpers

ROOT=$TESTS_DIR/..

# deb_skip_reason: why this file skips here (nothing when it runs); fails
# when SEMCACHE_DEB_TESTS=1 and a tool is missing. (bats cannot skip from
# setup_file, so setup skips each test with the reason.)
deb_skip_reason() {
	if [ "${SEMCACHE_DEB_TESTS:-}" = 0 ]; then
		echo "SEMCACHE_DEB_TESTS=0"
		return 0
	fi
	if ldd "$SEMCACHEFS" 2>/dev/null | grep -q libasan; then
		echo "the package test builds its own binaries: it runs in the plain pass only"
		return 0
	fi
	local need
	for need in dpkg-buildpackage dh lintian git; do
		command -v "$need" >/dev/null && continue
		if [ "${SEMCACHE_DEB_TESTS:-}" = 1 ]; then
			echo "SEMCACHE_DEB_TESTS=1 but '$need' is missing (packages dpkg-dev debhelper lintian git)" >&2
			return 1
		fi
		echo "needs $need (packages dpkg-dev debhelper lintian git) to build the .deb"
		return 0
	done
	git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
		echo "needs a git checkout (the package is built from the tracked files)"
}

setup_file() {
	DEB_SKIP=$(deb_skip_reason) || return 1
	export DEB_SKIP
	[ -z "$DEB_SKIP" ] || return 0
	DEB_WORK=$BATS_FILE_TMPDIR/deb
	mkdir -p "$DEB_WORK/src"
	git -C "$ROOT" ls-files -z | tar -C "$ROOT" --null -T - -cf - | tar -C "$DEB_WORK/src" -xf -
	(cd "$DEB_WORK/src" && dpkg-buildpackage -us -uc -b -j2) >"$DEB_WORK/build.log" 2>&1 || {
		tail -n 40 "$DEB_WORK/build.log" >&3
		return 1
	}
	DEB=$(ls "$DEB_WORK"/semcachefs_*_*.deb)
	# a clean root: an empty dpkg database, nothing else (the package has no
	# maintainer scripts, so nothing needs to run inside it); its
	# dependencies are this machine's, checked by apt below
	mkdir -p "$DEB_WORK/root/var/lib/dpkg/info" "$DEB_WORK/root/var/lib/dpkg/updates"
	: >"$DEB_WORK/root/var/lib/dpkg/status"
	dpkg --root="$DEB_WORK/root" --force-depends --force-not-root --log=/dev/null \
		-i "$DEB" >"$DEB_WORK/install.log" 2>&1 || {
		cat "$DEB_WORK/install.log" >&3
		return 1
	}
	export DEB_WORK DEB
}

setup() {
	[ -z "$DEB_SKIP" ] || skip "$DEB_SKIP"
	X=$DEB_WORK/root
}
teardown() {
	[ -z "${WORK:-}" ] || teardown_mount
}

@test "deb: lintian finds no error in the package" {
	run lintian --no-tag-display-limit "$DEB"
	assert_success
	refute_line --regexp '^E: '
}

@test "deb: it installs the binaries, the units, the completion, the examples and the docs" {
	run dpkg-deb -c "$DEB"
	assert_success
	local f
	for f in usr/bin/semcachefs usr/bin/semcachefs-eval usr/bin/semcachefs-top \
		usr/lib/systemd/user/semcachefs@.service \
		usr/share/bash-completion/completions/semcachefs \
		usr/share/bash-completion/completions/semcachefs-top \
		usr/share/doc/semcachefs/examples/systemd/system/semcachefs@.service \
		usr/share/doc/semcachefs/examples/python/semcachefs.py \
		usr/share/doc/semcachefs/README.md.gz usr/share/doc/semcachefs/copyright; do
		assert_line --regexp " \./$f( -> semcachefs)?$"
	done
	# every man page meson installs is in the package too
	local page
	for page in $(meson introspect "$BUILD" --installed | python3 -c '
import json, sys
for dst in json.load(sys.stdin).values():
    if "/share/man/" in dst:
        print(dst.split("/share/man/")[1])'); do
		assert_line --regexp " \./usr/share/man/${page//./\\.}(\.gz)?$"
	done
	run dpkg-deb -f "$DEB" Depends
	assert_output --regexp '(^|, )fuse3(,|$)'
	assert_output --regexp '(^|, )python3(,|$)'
	assert_output --regexp '(^|, )libfuse3-3 '
}

@test "deb: dpkg installed it into the clean root and apt resolves its dependencies here" {
	run dpkg-query --admindir="$X/var/lib/dpkg" -W -f '${Package} ${Status}\n' semcachefs
	assert_success
	assert_output "semcachefs install ok installed"
	run dpkg-query --admindir="$X/var/lib/dpkg" -L semcachefs
	assert_line /usr/bin/semcachefs
	assert_line /usr/lib/systemd/user/semcachefs@.service
	run apt-get -s -q install "$DEB"
	assert_success
	assert_line --regexp '^Inst semcachefs |^semcachefs is already the newest version'
}

@test "deb: the packaged binary mounts and answers; its semcachefs-top reads the mount" {
	run "$X/usr/bin/semcachefs" --version
	assert_success
	assert_output --regexp '^semcachefs [0-9.]+'
	SEMCACHEFS=$X/usr/bin/semcachefs setup_mount
	mkdir "$MNT/code"
	run ask code q1 "how do I reverse a list in python"
	assert_output "miss"
	fill code q1 "reversed(xs)"
	run ask code q2 "python: reverse a list"
	assert_output --regexp '^hit score=0\.[0-9]+ entry=1 age=[0-9]+ match=semantic$'
	run cat "$MNT/code/q2.response"
	assert_output "reversed(xs)"
	run "$X/usr/bin/semcachefs-top" -1 "$MNT"
	assert_success
	assert_line --regexp '^/code +1 +2 +- +50\.0 +0 +1 '
}

@test "deb: the packaged completion completes from the packaged binary" {
	source "$X/usr/share/bash-completion/completions/semcachefs"
	COMP_WORDS=("$X/usr/bin/semcachefs-top" -k thresh)
	COMP_CWORD=2
	_semcachefs_top
	assert_equal "${COMPREPLY[*]}" "threshold"
}

@test "deb: the packaged user unit passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "needs systemd-analyze (package systemd)"
	local unit=$X/usr/lib/systemd/user/semcachefs@.service
	run grep -x 'ExecStart=/usr/bin/semcachefs -f $SEMCACHEFS_OPTIONS %f' "$unit"
	assert_success
	mkdir -p "$BATS_TEST_TMPDIR/units" "$BATS_TEST_TMPDIR/run"
	chmod 700 "$BATS_TEST_TMPDIR/run"
	# pointed at the unpacked binary: /usr/bin/semcachefs is not installed here
	sed "s#^ExecStart=/usr/bin/semcachefs #ExecStart=$X/usr/bin/semcachefs #" "$unit" \
		>"$BATS_TEST_TMPDIR/units/semcachefs@home-u-semcache.service"
	XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/run run systemd-analyze verify --man=no --user \
		"$BATS_TEST_TMPDIR/units/semcachefs@home-u-semcache.service"
	assert_success
	assert_output ""
}
