#!/usr/bin/env bash
# tools/build-faiss.sh - build FAISS with AVX2 and the C API, cached.
#
#   tools/build-faiss.sh            build into the prefix (or reuse it) and print the prefix
#   tools/build-faiss.sh --prefix   print the prefix only; build nothing
#
# Debian 12's libfaiss computes distances with scalar code and ships no
# libfaiss_c. This builds the same FAISS version from Debian's source package
# (fetched with apt-get source) with -DFAISS_OPT_LEVEL=avx2 and the C API, and
# installs libfaiss_avx2.so, libfaiss_c.so (RUNPATH $ORIGIN) and the headers
# into a prefix for `meson setup -Dfaiss_prefix=PREFIX`.
#
# Environment:
#   SEMCACHE_FAISS_CACHE=DIR      install prefix (default: .faiss/VERSION-avx2 in the repo)
#   SEMCACHE_FAISS_VERSION=V      Debian source version (default: that of the installed
#                                 libfaiss-dev, else the newest one apt knows)
#   SEMCACHE_FAISS_JOBS=N         parallel compile jobs (default: nproc)
#   SEMCACHE_FAISS_PATCHES=0      build FAISS as Debian ships it, without the
#                                 project's patches (to measure them side by side)
#
# Patches: tools/faiss-patches/VERSION-*.patch (our own, applied with
# patch -p1 in name order) make the HNSW search cheaper: a visited table kept
# per thread instead of one allocated and cleared per search, and an inner
# product with four accumulators and FMA. The prefix name carries a digest
# of the patches (.faiss/VERSION-avx2-pXXXXXXXX), so changing a patch builds
# anew and an unpatched build never passes for a patched one.
#
# Design: a prefix counts as installed only when it holds the ".complete"
# marker, written last; the install goes to PREFIX.partial and is renamed
# into place, so an interrupted build never looks cached. A cached prefix
# is a no-op that touches neither apt nor the network. The source and build
# tree live in a temporary directory outside the repo and are removed at exit.
#
# Not done here: other CPU levels (avx512, generic), GPU, Python. The generic
# libfaiss is not built: libfaiss_c is linked to libfaiss_avx2 instead (the
# one-line change to c_api/CMakeLists.txt that later FAISS versions make).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/debian-source.sh"

grep -qw avx2 /proc/cpuinfo ||
	die "this CPU has no AVX2 (no 'avx2' flag in /proc/cpuinfo): keep Debian's FAISS (the default build)"

# Debian source version: explicit, else the installed libfaiss-dev's source
# (so headers and behaviour match the default build), else apt's newest.
version=${SEMCACHE_FAISS_VERSION:-}
if [ -z "$version" ]; then
	version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null || true)
fi
upstream=${version#*:}
upstream=${upstream%-*}

patches_for() {
	[ "${SEMCACHE_FAISS_PATCHES:-1}" = 0 ] && return 0
	compgen -G "$repo/tools/faiss-patches/$1-*.patch" | sort || true
}

prefix_for() {
	local tag= list
	list=$(patches_for "$1")
	[ -n "$list" ] && tag=-p$(cat $list | sha256sum | cut -c1-8)
	echo "${SEMCACHE_FAISS_CACHE:-$repo/.faiss/$1-avx2$tag}"
}

is_complete() {
	[ -f "$1/.complete" ] && [ -e "$1/lib/libfaiss_c.so" ] &&
		[ -e "$1/lib/libfaiss_avx2.so" ] && [ -f "$1/include/faiss/c_api/faiss_c.h" ]
}

if [ -n "$upstream" ] && is_complete "$(prefix_for "$upstream")"; then
	[ "${1:-}" = --prefix ] || say "cached: $(prefix_for "$upstream")"
	prefix_for "$upstream"
	exit 0
fi
if [ "${1:-}" = --prefix ] && [ -n "$upstream" ]; then
	prefix_for "$upstream"
	exit 0
fi

# Build tools (apt-get source needs dpkg-dev) and a deb-src entry of our
# own for the source package (tools/debian-source.sh).
deb_need dpkg-dev cmake g++ make patch libopenblas-dev liblapack-dev
deb_src_enable faiss "$version" "$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")" faiss
if [ -z "$version" ]; then
	version=$(apt-cache showsrc faiss | sed -n 's/^Version: *//p' | sort -V | tail -n1)
	upstream=${version#*:}
	upstream=${upstream%-*}
fi
prefix=$(prefix_for "$upstream")
if is_complete "$prefix"; then
	say "cached: $prefix"
	echo "$prefix"
	exit 0
fi
[ "${1:-}" = --prefix ] && { echo "$prefix"; exit 0; }

work=$(mktemp -d "${TMPDIR:-/tmp}/semcache-faiss.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

say "fetching Debian source faiss=$version"
deb_src_fetch faiss "$version" "$work"
src=$work/src

applied=
for p in $(patches_for "$upstream"); do
	say "applying $(basename "$p")"
	patch -d "$src" -p1 --forward --quiet <"$p" >&2 ||
		die "patch $(basename "$p") does not apply to faiss $version"
	applied="$applied $(basename "$p")"
done

# libfaiss_c links the generic libfaiss; point it at libfaiss_avx2 so the
# C API gets the SIMD code and the generic library need not be built.
if ! grep -q 'faiss_avx2' "$src/c_api/CMakeLists.txt"; then
	sed -i 's/target_link_libraries(faiss_c PRIVATE faiss)/target_link_libraries(faiss_c PRIVATE faiss_avx2)/' \
		"$src/c_api/CMakeLists.txt"
	grep -q 'target_link_libraries(faiss_c PRIVATE faiss_avx2)' "$src/c_api/CMakeLists.txt" ||
		die "could not link faiss_c to faiss_avx2: c_api/CMakeLists.txt of faiss $version has changed"
fi

say "configuring (AVX2, C API, shared, Release)"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
	-DFAISS_OPT_LEVEL=avx2 -DFAISS_ENABLE_C_API=ON -DFAISS_ENABLE_GPU=OFF \
	-DFAISS_ENABLE_PYTHON=OFF -DBUILD_TESTING=OFF -DBUILD_SHARED_LIBS=ON \
	-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN' >&2 ||
	die "cmake configure failed (log above)"

jobs=${SEMCACHE_FAISS_JOBS:-$(nproc)}
say "compiling libfaiss_avx2 and libfaiss_c with $jobs jobs (minutes)"
cmake --build "$work/build" --target faiss_avx2 faiss_c -j "$jobs" >&2 ||
	die "compile failed (log above)"

# Install by hand: upstream's install() wants the generic libfaiss too and
# does not install libfaiss_c.
part=$prefix.partial
rm -rf "$part"
mkdir -p "$part/lib" "$part/include/faiss/c_api"
cp -P "$work"/build/faiss/libfaiss_avx2.so* "$work"/build/c_api/libfaiss_c.so* "$part/lib/"
(cd "$src" && find faiss -name '*.h' ! -path 'faiss/gpu/*' ! -path 'faiss/python/*' \
	-exec cp --parents {} "$part/include/" \;)
(cd "$src/c_api" && find . -name '*.h' ! -path './gpu/*' \
	-exec cp --parents {} "$part/include/faiss/c_api/" \;)
cat >"$part/BUILD-INFO" <<EOF
faiss $version (Debian source package), built by semcachefs tools/build-faiss.sh
cmake -DCMAKE_BUILD_TYPE=Release -DFAISS_OPT_LEVEL=avx2 -DFAISS_ENABLE_C_API=ON -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DBUILD_TESTING=OFF -DBUILD_SHARED_LIBS=ON
libfaiss_c linked to libfaiss_avx2; RUNPATH \$ORIGIN
patches:${applied:- none}
built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) in $((SECONDS - start)) s
EOF
touch "$part/.complete"
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$part" "$prefix"
say "installed in $prefix ($((SECONDS - start)) s)"
echo "$prefix"
