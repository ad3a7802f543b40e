#!/usr/bin/env bash
# setup.sh - set semcachefs up on Debian 12 and mount it or test it.
#
#   ./setup.sh mount MOUNTPOINT [semcachefs options]   install, build, mount
#   ./setup.sh test                                    install, build, run every test
#   ./setup.sh build                                   install build deps, build
#   ./setup.sh faiss                                   build FAISS with AVX2 + C API (cached)
#   ./setup.sh fuse                                    build libfuse 3.18 with io_uring (cached)
#   ./setup.sh hiredis                                 build hiredis 1.x with TLS (cached)
#
# Installs missing Debian packages with apt-get (through sudo when not
# root), builds into ./build with meson, and for "test" runs the C unit
# tests (also against Debian's scalar FAISS in ./build-scalar when ./build
# uses the AVX2 one; SEMCACHE_SCALAR_TESTS=0 skips that), the bats suite
# through real mounts, the FUSE transport tests against libfuse 3.18 in
# ./build-fuse (SEMCACHE_FUSE_TESTS=0 skips them), and prints one closing
# line "N passed, N failed". Tests that need ../shared skip with a message
# when it is absent. The client tests (tests/90-clients.bats) need Node.js and
# npm (Debian's nodejs and npm are installed when no node/npm is on the
# PATH) and install their npm packages, exact versions from
# examples/package-lock.json, into examples/node_modules (git-ignored).
# FAISS: on CPUs with AVX2, ./build uses the patched AVX2 FAISS
# (tools/build-faiss.sh: built once, about 3 min on 2 cores, then cached in
# .faiss/); elsewhere, or when that build fails, Debian's scalar libfaiss.
# SEMCACHE_FAISS=debian forces Debian's, SEMCACHE_FAISS=avx2 fails rather
# than fall back. libfuse: Debian's 3.14 unless SEMCACHE_FUSE=3.18, which
# uses tools/build-fuse.sh's (cached in .fuse/; needed for
# -o transport=io_uring). hiredis: tools/build-hiredis.sh's 1.x with TLS
# (built once in a few seconds, cached in .hiredis/; needed for rediss://
# stores), or Debian's 0.14 without TLS when that build fails or
# SEMCACHE_HIREDIS=debian; SEMCACHE_HIREDIS=tls fails rather than fall
# back. test also runs the unit tests and tests/85-redis-tls.bats against
# Debian's hiredis 0.14 in ./build-scalar. mount prints the FAISS, libfuse
# and FUSE transport it runs with (semcachefs --version).
# mount and test also install the use-lite embedder's model with
# tools/fetch-model.sh (npm; test adds its JavaScript reference); without
# npm that embedder is unavailable and its tests skip.
set -euo pipefail

cd "$(dirname "$0")"

BUILD_DEPS=(build-essential meson ninja-build pkg-config fuse3 libfuse3-dev
	libfaiss-dev libyaml-dev libsqlite3-dev zlib1g-dev libopenblas-dev
	liblapack-dev libjson-c-dev libcurl4-openssl-dev libicu-dev libhiredis-dev
	libssl-dev)
TEST_DEPS=(clang libclang-rt-14-dev bats bats-assert bats-support bats-file attr python3 vim nano tmux curl util-linux redis-server redis-tools openssl sqlite3 python3-prometheus-client mandoc man-db)
# sd_notify and the completion directory; the package test (tests/97-deb.bats)
BUILD_DEPS+=(libsystemd-dev bash-completion)
TEST_DEPS+=(debhelper lintian systemd git)

# The behaviour tests that run against both stores (the others look at
# local files, number entries as the local store does, or test Redis itself)
REDIS_BEHAVIOUR=(tests/10-protocol.bats tests/20-policy.bats tests/25-inspect.bats
	tests/30-bad-input.bats tests/53-protocol-fuzz.bats tests/70-adaptive.bats)

die() { echo "setup.sh: $*" >&2; exit 1; }

# fetch_model [--reference]: the use-lite model into .models/ (cached)
fetch_model() {
	tools/fetch-model.sh "$@" >/dev/null ||
		echo "setup.sh: the use-lite model is not installed (embedder use-lite unavailable)" >&2
}

usage() {
	sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
}

SUDO=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || die "not root and no sudo: install the packages as root first"
	SUDO=sudo
fi

install_deps() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "setup.sh: installing ${missing[*]}"
	$SUDO apt-get update -q
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
}

# Node.js and npm for the client tests; a node and npm already on the PATH
# (from any source) are kept
install_node() {
	command -v node >/dev/null && command -v npm >/dev/null && return 0
	install_deps nodejs npm
}

# faiss_prefix: the FAISS prefix for ./build ("" for Debian's libfaiss)
faiss_prefix() {
	case "${SEMCACHE_FAISS:-auto}" in
	debian) ;;
	avx2) tools/build-faiss.sh || die "tools/build-faiss.sh failed (log above)" ;;
	auto)
		grep -qw avx2 /proc/cpuinfo || return 0
		tools/build-faiss.sh ||
			echo "setup.sh: the AVX2 FAISS build failed (log above): using Debian's scalar FAISS" >&2
		;;
	*) die "SEMCACHE_FAISS='$SEMCACHE_FAISS': use avx2 or debian" ;;
	esac
}

# fuse_prefix: the libfuse prefix for ./build ("" for Debian's libfuse)
fuse_prefix() {
	case "${SEMCACHE_FUSE:-debian}" in
	debian) ;;
	3.18) tools/build-fuse.sh || die "tools/build-fuse.sh failed (log above)" ;;
	*) die "SEMCACHE_FUSE='$SEMCACHE_FUSE': use 3.18 or debian" ;;
	esac
}

# hiredis_prefix: the hiredis prefix for ./build ("" for Debian's 0.14)
hiredis_prefix() {
	case "${SEMCACHE_HIREDIS:-auto}" in
	debian) ;;
	tls) tools/build-hiredis.sh || die "tools/build-hiredis.sh failed (log above)" ;;
	auto)
		tools/build-hiredis.sh ||
			echo "setup.sh: the hiredis 1.x build failed (log above): using Debian's hiredis 0.14, without TLS (no rediss://)" >&2
		;;
	*) die "SEMCACHE_HIREDIS='$SEMCACHE_HIREDIS': use tls or debian" ;;
	esac
}

# configure DIR -DNAME=VALUE...: set DIR up, or set the options that differ
configure() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@"
	elif [ "$(printf '%s\n' "$@" | sort)" != "$(meson introspect "$dir" --buildoptions |
		python3 -c 'import json, sys
have = {o["name"]: o["value"] for o in json.load(sys.stdin)}
for a in sorted(sys.argv[1:]):
    n = a[2:].split("=")[0]
    v = have.get(n)
    print("-D%s=%s" % (n, str(v).lower() if isinstance(v, bool) else v))' "$@" | sort)" ]; then
		# --reconfigure also knows options that meson.build gained since
		meson setup --reconfigure "$dir" "$@"
	fi
}

# build: ./build; BUILD_FAISS and BUILD_HIREDIS are the FAISS and hiredis
# prefixes it uses ("" for Debian's)
BUILD_FAISS=
BUILD_HIREDIS=
build() {
	local fuse
	BUILD_FAISS=$(faiss_prefix) || exit 1
	fuse=$(fuse_prefix) || exit 1
	BUILD_HIREDIS=$(hiredis_prefix) || exit 1
	configure build -Dfaiss_prefix="$BUILD_FAISS" -Dfuse_prefix="$fuse" \
		-Dhiredis_prefix="$BUILD_HIREDIS" >/dev/null ||
		die "meson could not configure ./build (messages above)"
	ninja -C build
}

# count_bats TAP_LOG: add a bats TAP log to passed/failed/skipped
count_bats() {
	local n
	n=$(grep -c '^ok .* # skip' "$1" || true); skipped=$((skipped + n))
	n=$(grep '^ok ' "$1" | grep -vc ' # skip' || true); passed=$((passed + n))
	n=$(grep -c '^not ok ' "$1" || true); failed=$((failed + n))
}

# build_asan: the same tree with AddressSanitizer + UBSan in ./build-asan
# (with ./build's hiredis, so that TLS is sanitized too)
build_asan() {
	configure build-asan -Db_sanitize=address,undefined -Db_lundef=false \
		-Dhiredis_prefix="$BUILD_HIREDIS" >/dev/null || return 1
	ninja -C build-asan fs/semcachefs tests/fsop tests/crashfill tests/loadgen tests/protofuzz \
		index/semcachefs-eval index/semcachefs-train-verifier
}

# Debian's scalar FAISS and hiredis 0.14 in build-scalar, so the fallbacks
# stay tested when ./build uses the AVX2 FAISS and hiredis 1.x.
build_scalar() {
	configure build-scalar -Dfaiss_prefix= -Dhiredis_prefix= >/dev/null || return 1
	ninja -C build-scalar
}

# libfuse 3.18 (tools/build-fuse.sh, cached) in build-fuse, for the FUSE
# transport tests; only the daemon is built there.
build_fuse() {
	local prefix
	prefix=$(tools/build-fuse.sh) || { echo "setup.sh: tools/build-fuse.sh failed" >&2; return 1; }
	configure build-fuse -Dfaiss_prefix="$BUILD_FAISS" -Dfuse_prefix="$prefix" \
		-Dhiredis_prefix="$BUILD_HIREDIS" -Dtests=false >/dev/null || return 1
	ninja -C build-fuse
}

# count_unit LOG: add a meson test log to passed/failed
count_unit() {
	local n
	n=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$1"); passed=$((passed + ${n:-0}))
	n=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$1"); failed=$((failed + ${n:-0}))
	n=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$1"); failed=$((failed + ${n:-0}))
}

# The FUSE transport tests against build-fuse. The kernel offers io_uring
# to FUSE only with the fuse module's enable_uring; as root, it is turned
# on for these tests and back off after.
transport_tests() {
	local param=/sys/module/fuse/parameters/enable_uring was=
	if [ -w "$param" ] && [ "$(cat "$param")" = N ]; then
		echo "setup.sh: turning on $param for these tests"
		was=N
		echo Y >"$param"
	fi
	SEMCACHE_BUILD=$PWD/build-fuse bats --formatter tap tests/15-transport.bats
	local rc=$?
	[ -z "$was" ] || echo "$was" >"$param"
	return $rc
}

run_tests() {
	local unit_log bats_log passed=0 failed=0 skipped=0 rc=0 n steps=
	# a step that exits non-zero fails the run, and the summary names it
	step_failed() { rc=1; steps="${steps:+$steps, }$1"; }
	unit_log=$(mktemp)
	bats_log=$(mktemp)
	echo "== C unit tests"
	meson test -C build --print-errorlogs 2>&1 | tee "$unit_log" || step_failed "C unit tests"
	count_unit "$unit_log"
	if [ "${SEMCACHE_SCALAR_TESTS:-1}" != 0 ] && [ -n "$BUILD_FAISS" ]; then
		echo "== C unit tests against Debian's scalar FAISS (build-scalar)"
		build_scalar 2>&1 | tail -n 5 || step_failed "scalar FAISS build"
		meson test -C build-scalar --print-errorlogs 2>&1 | tee "$unit_log" || step_failed "C unit tests (build-scalar)"
		count_unit "$unit_log"
	fi
	if [ "${SEMCACHE_SCALAR_TESTS:-1}" != 0 ] && [ -n "$BUILD_HIREDIS" ]; then
		echo "== rediss:// against Debian's hiredis 0.14, without TLS (build-scalar)"
		[ -n "$BUILD_FAISS" ] || build_scalar 2>&1 | tail -n 5 || step_failed "hiredis 0.14 build"
		SEMCACHE_BUILD=$PWD/build-scalar bats --formatter tap tests/85-redis-tls.bats 2>&1 |
			tee "$bats_log" || step_failed "TLS tests (build-scalar)"
		count_bats "$bats_log"
	fi
	echo "== bats suite (through real mounts)"
	bats --formatter tap tests/ 2>&1 | tee "$bats_log" || step_failed "bats suite"
	count_bats "$bats_log"
	echo "== behaviour tests again with a Redis store (SEMCACHE_TEST_STORE=redis)"
	SEMCACHE_TEST_STORE=redis bats --formatter tap "${REDIS_BEHAVIOUR[@]}" 2>&1 |
		tee "$bats_log" || step_failed "bats suite with a Redis store"
	count_bats "$bats_log"
	if [ "${SEMCACHE_SANITIZE:-1}" != 0 ]; then
		# the whole bats suite again against an ASan+UBSan build
		echo "== bats suite against the ASan+UBSan build (build-asan)"
		build_asan || step_failed "ASan+UBSan build"
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		SEMCACHE_BUILD=$PWD/build-asan bats --formatter tap tests/ 2>&1 |
			tee "$bats_log" || step_failed "bats suite (build-asan)"
		count_bats "$bats_log"
	fi
	if [ "${SEMCACHE_FUZZ_SECS:-30}" != 0 ] && command -v clang >/dev/null; then
		# libFuzzer harnesses, bounded; each harness is one test
		echo "== fuzz harnesses (${SEMCACHE_FUZZ_SECS:-30} s each, build-fuzz)"
		tests/fuzz/run.sh "${SEMCACHE_FUZZ_SECS:-30}" 2>&1 | tee "$bats_log" || step_failed "fuzz harnesses"
		n=$(grep -c '^fuzz_[a-z]*: .* 0 crashes (exit 0)$' "$bats_log" || true); passed=$((passed + n))
		n=$(grep '^fuzz_[a-z]*: ' "$bats_log" | grep -vc ' 0 crashes (exit 0)$' || true); failed=$((failed + n))
	fi
	if [ "${SEMCACHE_FUSE_TESTS:-1}" != 0 ]; then
		echo "== FUSE transport tests against libfuse 3.18 (build-fuse)"
		build_fuse 2>&1 | tail -n 5 || step_failed "libfuse 3.18 build"
		transport_tests 2>&1 | tee "$bats_log" || step_failed "FUSE transport tests"
		count_bats "$bats_log"
	fi
	rm -f "$unit_log" "$bats_log"
	echo
	echo "${passed} passed, ${failed} failed, ${skipped} skipped"
	[ -z "$steps" ] || echo "setup.sh: these steps exited non-zero: $steps"
	[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
}

case "${1:-}" in
mount)
	[ $# -ge 2 ] || die "usage: ./setup.sh mount MOUNTPOINT [semcachefs options]"
	install_deps "${BUILD_DEPS[@]}"
	build
	fetch_model
	mnt=$2
	shift 2
	mkdir -p "$mnt"
	echo "setup.sh: $(./build/fs/semcachefs "$@" --version)"
	./build/fs/semcachefs "$@" "$mnt"
	echo "setup.sh: semcachefs mounted on $mnt (unmount: fusermount3 -u $mnt)"
	;;
test)
	install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
	install_node
	# the tests test what mount runs: on an AVX2 CPU a failed AVX2 FAISS
	# build fails the run instead of falling back
	if [ -z "${SEMCACHE_FAISS:-}" ] && grep -qw avx2 /proc/cpuinfo; then
		SEMCACHE_FAISS=avx2
	fi
	# and a failed TLS hiredis build fails it too (rediss:// untested)
	SEMCACHE_HIREDIS=${SEMCACHE_HIREDIS:-tls}
	build
	fetch_model --reference
	run_tests
	;;
build)
	install_deps "${BUILD_DEPS[@]}"
	build
	;;
faiss)
	tools/build-faiss.sh
	;;
fuse)
	tools/build-fuse.sh
	;;
hiredis)
	tools/build-hiredis.sh
	;;
-h | --help | help)
	usage
	;;
*)
	usage >&2
	exit 2
	;;
esac
