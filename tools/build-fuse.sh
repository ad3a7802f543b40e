#!/usr/bin/env bash
# tools/build-fuse.sh - build libfuse 3.18 with FUSE-over-io_uring, cached.
#
#   tools/build-fuse.sh            build into the prefix (or reuse it) and print the prefix
#   tools/build-fuse.sh --prefix   print the prefix only; build nothing
#
# Debian 12 ships libfuse 3.14, which talks to the kernel only by read(2)
# and write(2) on /dev/fuse. libfuse 3.18 can also take requests from the
# kernel through io_uring (Linux 6.14+, one queue per CPU; the kernel
# offers it when /sys/module/fuse/parameters/enable_uring is Y). This
# builds Debian's source package fuse3 (from sid's deb-src, fetched with
# apt-get source and checked against the signed index) with meson against
# bookworm's liburing-dev and libnuma-dev, and installs the library only
# (libfuse3.so.4, a soname of its own next to the system's libfuse3.so.3),
# its headers and fuse3.pc into a prefix for
# `meson setup -Dfuse_prefix=PREFIX`. The build fails unless libfuse's
# meson found io_uring support, so a prefix without it never passes for one.
#
# Environment:
#   SEMCACHE_FUSE_CACHE=DIR      install prefix (default: .fuse/VERSION-DIGEST in the repo)
#   SEMCACHE_FUSE_VERSION=V      Debian source version (default 3.18.3-1, else
#                                the newest 3.18 or later that apt knows)
#   SEMCACHE_FUSE_SUITE=S        suite of the deb-src entry (default sid)
#
# Design: as tools/build-faiss.sh. The prefix name carries a digest of the
# meson options and the liburing version it is built against, so a change
# of either builds anew. A prefix counts as installed only when it holds
# the ".complete" marker, written last; the install goes to a staging
# root, is copied to PREFIX.partial and renamed into place, so an
# interrupted build never looks cached.
# A cached prefix is a no-op that touches neither apt nor the network.
#
# Not done here: fusermount3 and the other utilities (the system's
# fusermount3 from Debian's fuse3 mounts for non-root users; the protocol
# between library and helper has not changed), examples, the static library.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/debian-source.sh"

version=${SEMCACHE_FUSE_VERSION:-3.18.3-1}
suite=${SEMCACHE_FUSE_SUITE:-sid}
# enable-custom-io: fs/guard.c reads /dev/fuse itself (the peer is the kernel)
MESON_OPTS=(--buildtype=release --libdir=lib -Denable-io-uring=true -Denable-custom-io=true -Dutils=false
	-Dexamples=false -Dtests=false -Duseroot=false -Dinitscriptdir=)

prefix_for() {
	local uring tag
	uring=$(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo none)
	tag=$(printf '%s\n' "${MESON_OPTS[*]}" "liburing $uring" | sha256sum | cut -c1-8)
	echo "${SEMCACHE_FUSE_CACHE:-$repo/.fuse/${1%-*}-$tag}"
}

is_complete() {
	[ -f "$1/.complete" ] && [ -e "$1/lib/libfuse3.so" ] &&
		[ -f "$1/lib/pkgconfig/fuse3.pc" ] && [ -f "$1/include/fuse3/fuse_lowlevel.h" ]
}

prefix=$(prefix_for "$version")
if is_complete "$prefix" || [ "${1:-}" = --prefix ]; then
	[ "${1:-}" = --prefix ] || say "cached: $prefix"
	echo "$prefix"
	exit 0
fi

deb_need dpkg-dev meson ninja-build pkg-config gcc liburing-dev libnuma-dev
version=$(deb_src_pick fuse3 "$version" "$suite" fuse 3.18 "${SEMCACHE_FUSE_VERSION:-}")
# liburing-dev may just have been installed: the digest names its version
prefix=$(prefix_for "$version")
if is_complete "$prefix"; then
	say "cached: $prefix"
	echo "$prefix"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/semcache-fuse.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

say "fetching Debian source fuse3=$version"
deb_src_fetch fuse3 "$version" "$work"

say "configuring (meson ${MESON_OPTS[*]})"
meson setup "$work/build" "$work/src" --prefix="$prefix" "${MESON_OPTS[@]}" >"$work/setup.log" 2>&1 ||
	{ tail -n 30 "$work/setup.log" >&2; die "meson setup of libfuse failed (log above)"; }
grep -q 'liburing linking and SQE128 support.*YES' "$work/setup.log" ||
	{ grep -i -E 'uring|numa' "$work/setup.log" >&2 || true
	  die "libfuse's meson found no usable liburing: io_uring would be off (lines above)"; }

say "compiling"
ninja -C "$work/build" >"$work/build.log" 2>&1 ||
	{ tail -n 30 "$work/build.log" >&2; die "compile failed (log above)"; }

# Install into a staging root, then move the prefix into place: fuse3.pc
# names the final prefix, not the staging one.
DESTDIR=$work/stage ninja -C "$work/build" install >"$work/install.log" 2>&1 ||
	{ tail -n 30 "$work/install.log" >&2; die "install failed (log above)"; }
stage=$work/stage$prefix
[ -f "$stage/lib/pkgconfig/fuse3.pc" ] || die "the install put no fuse3.pc in $stage/lib/pkgconfig"
grep -q '^Requires.private:.*liburing' "$stage/lib/pkgconfig/fuse3.pc" ||
	die "the installed fuse3.pc does not require liburing: io_uring is not built in"
deb_prefix_commit "$stage" "$prefix" "fuse3 $version (Debian source package), built by semcachefs tools/build-fuse.sh
meson ${MESON_OPTS[*]}
liburing-dev $(dpkg-query -W -f='${Version}' liburing-dev), libnuma-dev $(dpkg-query -W -f='${Version}' libnuma-dev)
built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) in $((SECONDS - start)) s"
say "installed in $prefix ($((SECONDS - start)) s)"
echo "$prefix"
