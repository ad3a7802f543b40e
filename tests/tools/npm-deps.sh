#!/usr/bin/env bash
# npm-deps.sh - install the client examples' test dependencies (the exact
# versions of examples/package-lock.json: @langchain/core, openai) into
# examples/node_modules, which git ignores, with `npm ci`. Does nothing when
# they are installed from the same lockfile already (a stamp file holds its
# checksum). Install scripts never run. Exit 3 when node or npm is missing.
set -euo pipefail

cd "$(dirname "$0")/../../examples"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "npm-deps.sh: needs node and npm (Debian packages nodejs and npm)" >&2
	exit 3
fi
stamp=node_modules/.semcache-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
