#!/usr/bin/env bats
# 90-clients.bats - the client libraries of examples/ against a real mount:
# the Python module (python3 -m unittest), the Node.js module and the
# LangChain.js cache (node --test, with @langchain/core from npm), and the
# OpenAI-compatible caching proxy (Python urllib and the official openai npm
# client) in front of tests/tools/fake_openai_upstream.py on loopback. Every
# test mounts a fresh daemon; the node modules are installed once per run
# into examples/node_modules by tests/tools/npm-deps.sh (exact versions).
# Node tests skip with a message when node or npm is missing.

bats_require_minimum_version 1.5.0

load helpers

EXAMPLES=$TESTS_DIR/../examples
PY=$EXAMPLES/python
PROXY=$EXAMPLES/openai-proxy/semcache-proxy

setup_file() {
	export NPM_STATUS_FILE=$BATS_FILE_TMPDIR/npm-status
	local rc=0
	"$TESTS_DIR/tools/npm-deps.sh" >"$BATS_FILE_TMPDIR/npm.log" 2>&1 || rc=$?
	echo "$rc" >"$NPM_STATUS_FILE"
}

setup() { setup_mount; }

teardown() {
	stop_proxy
	teardown_mount
}

# require_node [npm]: skip without node; with npm, also fail unless the
# node modules installed
require_node() {
	command -v node >/dev/null || skip "needs node (Debian package nodejs)"
	[ "${1:-}" = npm ] || return 0
	local rc
	rc=$(cat "$NPM_STATUS_FILE")
	[ "$rc" != 3 ] || skip "needs npm (Debian package npm)"
	if [ "$rc" != 0 ]; then
		cat "$BATS_FILE_TMPDIR/npm.log" >&3
		echo "tests/tools/npm-deps.sh failed with status $rc" >&3
		return 1
	fi
}

# unittest_ok: the unittest run in $output ran tests and skipped none
unittest_ok() {
	assert_line --regexp '^Ran [1-9][0-9]* tests? in '
	assert_line "OK"
}

# node_test_ok: the node --test run in $output passed every test, skipped none
node_test_ok() {
	assert_line --regexp '^# pass [1-9][0-9]*$'
	assert_line "# fail 0"
	assert_line "# skipped 0"
	assert_line "# cancelled 0"
}

# start_proxy [proxy options]: the fake upstream and semcache-proxy on
# loopback ports, category root $MNT/proxy
start_proxy() {
	mkdir -p "$MNT/proxy"
	python3 "$TESTS_DIR/tools/fake_openai_upstream.py" --port-file "$WORK/up.port" \
		--log "$WORK/up.log" 2>>"$WORK/up.err" &
	UP_PID=$!
	wait_until 10 test -s "$WORK/up.port"
	"$PROXY" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$(cat "$WORK/up.port")/v1" \
		--category "$MNT/proxy" --timeout 1 "$@" >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
	PROXY_PID=$!
	listening() { grep -q "listening on" "$WORK/proxy.out" || ! kill -0 "$PROXY_PID"; }
	wait_until 10 listening
	PROXY_URL=$(sed -n 's/^semcache-proxy: listening on \(http:[^ ]*\) .*/\1/p' "$WORK/proxy.out")
	[ -n "$PROXY_URL" ] || { cat "$WORK/proxy.err" >&2; return 1; }
	export SEMCACHE_PROXY_URL=$PROXY_URL SEMCACHE_PROXY_ROOT=$MNT/proxy \
		SEMCACHE_UPSTREAM_LOG=$WORK/up.log SEMCACHE_TEST_STORE=$STORE
}

stop_proxy() {
	local pid
	for pid in ${PROXY_PID:-} ${UP_PID:-}; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PROXY_PID= UP_PID=
	if [ -s "${WORK:-/nonexistent}/proxy.err" ] && [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		echo "--- proxy log ---" >&3
		tail -n 30 "$WORK/proxy.err" >&3
	fi
}

# ---- Python: examples/python/semcachefs.py ----

@test "python: lookup, fill, exact and semantic hits, contexts, bytes, session files" {
	cd "$PY"
	SEMCACHE_TEST_MNT=$MNT run -0 python3 -B -m unittest -v test_semcachefs.Protocol
	unittest_ok
}

@test "python: ask() calls the llm only on a miss; wrong-hit feedback invalidates" {
	cd "$PY"
	SEMCACHE_TEST_MNT=$MNT run -0 python3 -B -m unittest -v test_semcachefs.Ask test_semcachefs.Feedback
	unittest_ok
}

@test "python: persistent sessions: one session for many lookups, 2 FUSE requests a lookup, removed files, forks" {
	cd "$PY"
	SEMCACHE_TEST_MNT=$MNT run -0 python3 -B -m unittest -v test_semcachefs.Persistent
	unittest_ok
}

@test "python: 8 threads and 4 forked processes keep their sessions apart" {
	cd "$PY"
	SEMCACHE_TEST_MNT=$MNT run -0 python3 -B -m unittest -v test_semcachefs.Threads test_semcachefs.Processes
	unittest_ok
}

@test "python: empty and oversize queries and answers, missing categories, plain directories" {
	cd "$PY"
	SEMCACHE_TEST_MNT=$MNT run -0 python3 -B -m unittest -v test_semcachefs.BadInput
	unittest_ok
}

@test "python: a killed daemon is ENOTCONN with a message saying so" {
	cd "$PY"
	SEMCACHE_TEST_MNT=$MNT SEMCACHE_TEST_DAEMON_PID=$DAEMON_PID \
		run -0 python3 -B -m unittest -v test_semcachefs.MountGone
	unittest_ok
	kill_daemon
}

# mount_shared_readonly: remount with -o allow_other and make $MNT/shared,
# a category other users may read but not write (0755, owned by root)
mount_shared_readonly() {
	[ "$(id -u)" = 0 ] || skip "needs root to run a command as another uid (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	start_daemon -o allow_other
	chmod 0755 "$WORK"
	mkdir -m 0755 "$MNT/shared"
}

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

@test "python: a category the user may not write is EACCES with a message saying so" {
	[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3 (package python3) for another user"
	mount_shared_readonly
	run -0 as_nobody /usr/bin/python3 -B -c '
import sys
sys.path.insert(0, sys.argv[1])
from semcachefs import Cache, SemcacheError
try:
    Cache(sys.argv[2]).lookup("how do I reverse a list in python")
except SemcacheError as e:
    print(e.code, e.strerror)
' "$PY" "$MNT/shared"
	assert_output --regexp "^EACCES permission denied on '$MNT/shared/py-[0-9a-f-]+\.query': ask the owner of category '$MNT/shared' for read and write access\$"
}

# ---- Node.js: examples/node ----

@test "node: the client's lookup, fill, ask, feedback, concurrency and bad input" {
	require_node npm
	SEMCACHE_TEST_MNT=$MNT run -0 node --test "$EXAMPLES/node/test/semcachefs.test.js"
	assert_line "# pass 16"
	assert_line "# fail 0"
	assert_line --regexp '^ok [0-9]+ - mount gone # SKIP needs SEMCACHE_TEST_DAEMON_PID' # next test
}

@test "node: a killed daemon is ENOTCONN" {
	require_node npm
	SEMCACHE_TEST_MNT=$MNT SEMCACHE_TEST_DAEMON_PID=$DAEMON_PID \
		run -0 node --test --test-name-pattern "killed daemon" "$EXAMPLES/node/test/semcachefs.test.js"
	assert_line "# pass 1"
	assert_line "# fail 0"
	kill_daemon
}

@test "node: the package's exports name the module" {
	require_node
	run -0 node --input-type=module -e '
		const m = await import(process.argv[1]);
		console.log(Object.keys(m).sort().join(" "));' "$EXAMPLES/node/semcachefs.js"
	assert_output "Cache Result SemcacheError"
	run -0 node -e 'const p = require(process.argv[1]); console.log(p.main, p.exports, Object.keys(p.dependencies ?? {}).length)' \
		"$EXAMPLES/node/package.json"
	assert_output "./semcachefs.js ./semcachefs.js 0"
}

@test "node: a category the user may not write is EACCES" {
	require_node
	mount_shared_readonly
	run -0 as_nobody node --input-type=module -e '
		const { Cache } = await import(process.argv[1]);
		try { await new Cache(process.argv[2]).lookup("how do I reverse a list in python"); }
		catch (e) { console.log(e.code, e.message); }' "$EXAMPLES/node/semcachefs.js" "$MNT/shared"
	assert_output --regexp "^EACCES permission denied on '$MNT/shared/js-[0-9a-f-]+\.query': ask the owner of category '$MNT/shared' for read and write access\$"
}

# ---- LangChain.js: examples/langchain ----

@test "langchain: a paraphrase is served from the cache, other llmStrings never share" {
	require_node npm
	(($(node -p 'process.versions.node.split(".")[0]') >= 20)) ||
		skip "needs node 20 or later for @langchain/core 1.4.0 (this is $(node --version))"
	SEMCACHE_TEST_MNT=$MNT run -0 node --test "$EXAMPLES/langchain/test/semcache-langchain.test.js"
	node_test_ok
}

# ---- the OpenAI-compatible proxy: examples/openai-proxy ----

@test "proxy: misses, hits, streams, errors, timeouts, bad bodies and categories (urllib)" {
	start_proxy
	cd "$EXAMPLES/openai-proxy"
	run -0 python3 -B -m unittest -v test_proxy.Proxy
	unittest_ok
	refute_output --partial "Traceback"
}

@test "proxy: the official openai client sees hits, streams and upstream errors" {
	require_node npm
	start_proxy
	run -0 node --test "$EXAMPLES/openai-proxy/test/openai-client.test.js"
	node_test_ok
}

@test "proxy: with the mount gone, requests bypass the cache and are answered by upstream" {
	start_proxy
	mkdir "$MNT/proxy/code"
	kill -9 "$DAEMON_PID"
	gone() { ! stat "$MNT/proxy" 2>/dev/null; }
	wait_until 10 gone
	cd "$EXAMPLES/openai-proxy"
	SEMCACHE_PROXY_MOUNT_GONE=1 run -0 python3 -B -m unittest -v test_proxy.MountGone
	unittest_ok
	grep -q "semcache-proxy: category 'code': the semcachefs mount of '$MNT/proxy/code' is gone" "$WORK/proxy.err"
	kill_daemon
}

@test "proxy: --help, a non-loopback --listen and a --category outside semcachefs" {
	run -0 "$PROXY" --help
	assert_line --partial "usage: semcache-proxy [-h] --listen HOST:PORT --upstream BASE_URL"
	mkdir "$MNT/proxy"
	run -2 --separate-stderr "$PROXY" --listen 0.0.0.0:8080 --upstream http://127.0.0.1:1/v1 --category "$MNT/proxy"
	[[ $stderr == *"'0.0.0.0' is not a loopback address"* ]]
	run -2 --separate-stderr "$PROXY" --listen 127.0.0.1:0 --upstream ftp://x/v1 --category "$MNT/proxy"
	[[ $stderr == *"'ftp://x/v1' is not an http:// or https:// base URL"* ]]
	mkdir "$WORK/plain"
	run -2 --separate-stderr "$PROXY" --listen 127.0.0.1:0 --upstream http://127.0.0.1:1/v1 --category "$WORK/plain"
	[[ $stderr == *"'$WORK/plain' is not a semcachefs category"* ]]
	run -2 --separate-stderr "$PROXY" --listen 127.0.0.1:0 --upstream http://127.0.0.1:1/v1 \
		--category "$MNT/proxy" --default-category ../etc
	[[ $stderr == *"--default-category '../etc' is not a valid category name"* ]]
}
