#!/usr/bin/env bash
# tools/build-hiredis.sh - build hiredis 1.x with TLS (hiredis_ssl), cached.
#
#   tools/build-hiredis.sh            build into the prefix (or reuse it) and print the prefix
#   tools/build-hiredis.sh --prefix   print the prefix only; build nothing
#
# Debian 12 ships hiredis 0.14, which has no TLS. hiredis 1.x has
# libhiredis_ssl (OpenSSL) for rediss:// stores. This builds Debian's
# source package hiredis (from sid's deb-src, fetched with apt-get source
# and checked against the signed index) with its Makefile and USE_SSL=1
# against bookworm's libssl-dev, and installs the libraries
# (libhiredis.so.1.1.0 and libhiredis_ssl.so.1.1.0, sonames of their own
# next to the system's libhiredis.so.0.14), their headers and hiredis.pc /
# hiredis_ssl.pc into a prefix for `meson setup -Dhiredis_prefix=PREFIX`.
# A build takes a few seconds.
#
# Environment:
#   SEMCACHE_HIREDIS_CACHE=DIR    install prefix (default: .hiredis/VERSION-DIGEST in the repo)
#   SEMCACHE_HIREDIS_VERSION=V    Debian source version (default 1.2.0-6, else
#                                 the newest 1.x that apt knows)
#   SEMCACHE_HIREDIS_SUITE=S      suite of the deb-src entry (default sid)
#
# Design: as tools/build-fuse.sh. The prefix name carries a digest of the
# make options and the libssl-dev version it is built against, so a change
# of either builds anew. A prefix counts as installed only when it holds
# the ".complete" marker, written last; the install goes to a staging
# root, is copied to PREFIX.partial and renamed into place, so an
# interrupted build never looks cached. A cached prefix is a no-op that
# touches neither apt nor the network.
#
# Not done here: hiredis' tests and examples, the CMake files' users.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/debian-source.sh"

version=${SEMCACHE_HIREDIS_VERSION:-1.2.0-6}
suite=${SEMCACHE_HIREDIS_SUITE:-sid}
# LIBRARY_PATH and INCLUDE_PATH are also variables of the Makefile: an
# environment that sets them (for the compiler) must not move the install
MAKE_OPTS=(USE_SSL=1 OPTIMIZATION=-O2 LIBRARY_PATH=lib INCLUDE_PATH=include/hiredis
	PKGCONF_PATH=pkgconfig DEBUG_FLAGS=-g)

prefix_for() {
	local ssl tag
	ssl=$(dpkg-query -W -f='${Version}' libssl-dev 2>/dev/null || echo none)
	tag=$(printf '%s\n' "${MAKE_OPTS[*]}" "libssl-dev $ssl" | sha256sum | cut -c1-8)
	echo "${SEMCACHE_HIREDIS_CACHE:-$repo/.hiredis/${1%-*}-$tag}"
}

is_complete() {
	[ -f "$1/.complete" ] && [ -e "$1/lib/libhiredis.so" ] && [ -e "$1/lib/libhiredis_ssl.so" ] &&
		[ -f "$1/lib/pkgconfig/hiredis_ssl.pc" ] && [ -f "$1/include/hiredis/hiredis_ssl.h" ]
}

prefix=$(prefix_for "$version")
if is_complete "$prefix" || [ "${1:-}" = --prefix ]; then
	[ "${1:-}" = --prefix ] || say "cached: $prefix"
	echo "$prefix"
	exit 0
fi

deb_need dpkg-dev make gcc pkg-config libssl-dev
version=$(deb_src_pick hiredis "$version" "$suite" hiredis 1.0 "${SEMCACHE_HIREDIS_VERSION:-}")
# libssl-dev may just have been installed: the digest names its version
prefix=$(prefix_for "$version")
if is_complete "$prefix"; then
	say "cached: $prefix"
	echo "$prefix"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/semcache-hiredis.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

say "fetching Debian source hiredis=$version"
deb_src_fetch hiredis "$version" "$work"

# The .pc files name PREFIX; DESTDIR stages the install under $work.
say "compiling (make ${MAKE_OPTS[*]})"
make -C "$work/src" -j2 "${MAKE_OPTS[@]}" PREFIX="$prefix" dynamic static hiredis.pc hiredis_ssl.pc \
	>"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; die "compile failed (log above)"; }
make -C "$work/src" "${MAKE_OPTS[@]}" PREFIX="$prefix" DESTDIR="$work/stage" install \
	>"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; die "install failed (log above)"; }
stage=$work/stage$prefix
[ -f "$stage/lib/pkgconfig/hiredis_ssl.pc" ] ||
	die "the install put no hiredis_ssl.pc in $stage/lib/pkgconfig: TLS is not built in"
grep -q "^prefix=$prefix\$" "$stage/lib/pkgconfig/hiredis.pc" ||
	die "the installed hiredis.pc does not name $prefix"
deb_prefix_commit "$stage" "$prefix" "hiredis $version (Debian source package), built by semcachefs tools/build-hiredis.sh
make ${MAKE_OPTS[*]}
libssl-dev $(dpkg-query -W -f='${Version}' libssl-dev)
built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) in $((SECONDS - start)) s"
say "installed in $prefix ($((SECONDS - start)) s)"
echo "$prefix"
