# helpers.bash - shared by every bats file: mounts semcachefs into a fresh
# temporary directory with its own store, runs the daemon in the foreground
# with its log captured, polls to deadlines instead of sleeping, and always
# unmounts in teardown.
#
# Environment:
#   SEMCACHE_BUILD   build directory (default: ../build next to tests/)
#   SEMCACHE_SHARED  the shared data folder (default: ../../shared)
#   SEMCACHE_TEST_STORE=redis  setup_mount stores in a private redis-server
#                    on a loopback port instead of a directory, to run a
#                    behaviour test against the Redis backend, e.g.
#                    SEMCACHE_TEST_STORE=redis bats -f quota tests/20-policy.bats

bats_load_library bats-support
bats_load_library bats-assert
bats_load_library bats-file

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${SEMCACHE_BUILD:-$TESTS_DIR/../build}
SEMCACHEFS=$BUILD/fs/semcachefs
FSOP=$BUILD/tests/fsop
SHARED=${SEMCACHE_SHARED:-$TESTS_DIR/../../shared}

require_fuse() {
	[ -c /dev/fuse ] || skip "needs /dev/fuse (FUSE is not available here)"
	command -v fusermount3 >/dev/null || skip "needs fusermount3 (package fuse3)"
}

require_shared() {
	[ -d "$SHARED/data" ] || skip "needs the shared data folder at $SHARED (absent here)"
}

# wait_until SECONDS COMMAND...: poll COMMAND until it succeeds or time runs out.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		if ((SECONDS >= deadline)); then
			echo "timed out waiting for: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

is_mounted() {
	grep -qs " $MNT fuse" /proc/self/mounts
}

# start_daemon [semcachefs options...]: mount $MNT on $STORE in the foreground.
start_daemon() {
	"$SEMCACHEFS" -f -o store="$STORE" "$@" "$MNT" 2>>"$LOG" &
	DAEMON_PID=$!
	mounted_or_dead() { is_mounted || ! kill -0 "$DAEMON_PID" 2>/dev/null; }
	if ! wait_until 20 mounted_or_dead || ! is_mounted; then
		echo "--- daemon log ---" >&2
		cat "$LOG" >&2
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=
		return 1
	fi
}

# stop_daemon: unmount and wait for the daemon to exit cleanly.
stop_daemon() {
	[ -n "${DAEMON_PID:-}" ] || return 0
	if is_mounted; then
		fusermount3 -u "$MNT" || umount -l "$MNT"
	fi
	local status=0
	wait "$DAEMON_PID" || status=$?
	DAEMON_PID=
	return "$status"
}

# kill_daemon: SIGKILL, then clean up the dead mount.
kill_daemon() {
	kill -9 "$DAEMON_PID" 2>/dev/null || true
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
}

# setup_work: a fresh WORK with MNT, STORE and LOG in it, nothing mounted
setup_work() {
	require_fuse
	WORK=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache.XXXXXX")
	MNT=$WORK/mnt
	STORE=$WORK/store
	LOG=$WORK/daemon.log
	mkdir -p "$MNT"
}

setup_mount() {
	setup_work
	if [ "${SEMCACHE_TEST_STORE:-}" = redis ]; then
		start_test_redis
	fi
	start_daemon "$@"
}

# start_embed_server [ENV=VALUE...]: the tests' OpenAI-compatible
# embeddings server (tests/tools/fake_embed_server.py) on a loopback port;
# sets PORT and SERVER_PID (kill it in teardown)
start_embed_server() {
	env "$@" python3 "$TESTS_DIR/tools/fake_embed_server.py" >"$WORK/server.out" 2>&1 &
	SERVER_PID=$!
	has_port() { [ -s "$WORK/server.out" ]; }
	wait_until 10 has_port
	PORT=$(head -n 1 "$WORK/server.out")
}

# stored_responses: how many response bodies the store holds (blob files
# of the local store; entry hashes {cC}:e:SEQ in Redis)
stored_responses() {
	if [ -n "${TEST_REDIS_PORT:-}" ]; then
		redis-cli -p "$TEST_REDIS_PORT" --scan --pattern '{c*}:e:*' | wc -l
	else
		find "$STORE/blobs" -type f | wc -l
	fi
}

# start_test_redis: a private redis-server for SEMCACHE_TEST_STORE=redis
start_test_redis() {
	command -v redis-server >/dev/null || skip "needs redis-server (package redis-server)"
	TEST_REDIS_PORT=$((23000 + RANDOM % 9000)) # below the ephemeral ports
	mkdir -p "$WORK/redis" "$WORK/state"
	redis-server --port "$TEST_REDIS_PORT" --bind 127.0.0.1 --save '' \
		--appendonly yes --dir "$WORK/redis" --daemonize yes \
		--logfile "$WORK/redis.log" >/dev/null
	redis_up() { redis-cli -p "$TEST_REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
	wait_until 10 redis_up
	STORE=redis://127.0.0.1:$TEST_REDIS_PORT/0
	export XDG_DATA_HOME=$WORK/state
}

# teardown_mount: unmount; the test fails if the daemon did not exit 0 or
# if a sanitizer (ASan, UBSan, LSan) reported anything in its log.
teardown_mount() {
	local status=0
	if [ -n "${DAEMON_PID:-}" ]; then
		stop_daemon || status=$?
	fi
	if [ -n "${WORK:-}" ]; then
		if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOG" 2>/dev/null; then
			echo "--- sanitizer report in the daemon log ---" >&3
			grep -A 30 -E "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOG" | head -n 60 >&3
			status=99
		elif [ "$status" != 0 ] || [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
			echo "--- daemon log (exit status $status) ---" >&3
			tail -n 30 "$LOG" >&3
		fi
		if [ -n "${TEST_REDIS_PORT:-}" ]; then
			redis-cli -p "$TEST_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
		fi
		rm -rf "$WORK"
	fi
	return "$status"
}

# teardown_alive: teardown_mount, failing first if the daemon died during
# the test (for the files that throw bad input at it)
teardown_alive() {
	if [ -n "${DAEMON_PID:-}" ]; then
		kill -0 "$DAEMON_PID" # the daemon survived the test
	fi
	teardown_mount
}

# still_answers DIR: a lookup, a fill and an exact hit in category DIR
# work (the daemon is alive and serving)
still_answers() {
	ask "$1" alive "how do I reverse a list in python" >/dev/null
	printf 'reversed(xs)' >"$MNT/$1/alive.response"
	run ask "$1" alive2 "how do I reverse a list in python"
	assert_success
	assert_output --regexp '^hit score=1\.000 '
	run cat "$MNT/$1/alive2.response"
	assert_output "reversed(xs)"
}

# as_user UID CMD...: run CMD as uid and gid UID, without groups
as_user() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }

# need_users [OPTION...]: remount with -o allow_other (and OPTIONs) so that
# other uids reach the mount; skips where commands cannot run as them
need_users() {
	[ "$(id -u)" = 0 ] || skip "needs root to run commands as other uids (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	start_daemon -o allow_other "$@"
	chmod 0755 "$WORK"
}

# is_miss STATUS: a miss decided by the score: "miss", or "miss best=S
# entry=ID" when the search had a candidate below the threshold
is_miss() { [[ $1 =~ ^miss(\ best=-?[0-9]+\.[0-9]{3}\ entry=[0-9]+)?$ ]]; }

# assert_miss: $output (of run ask ...) is such a miss
assert_miss() { is_miss "$output" || fail "not a plain miss: '$output'"; }

# ask DIR NAME QUERY: the shell protocol's lookup; prints NAME.status.
ask() {
	printf '%s\n' "$3" >"$MNT/$1/$2.query" && cat "$MNT/$1/$2.status"
}

# fill DIR NAME ANSWER
fill() {
	printf '%s' "$3" >"$MNT/$1/$2.response"
}

# status_word DIR NAME: first word of NAME.status (hit | miss | ...)
status_word() {
	local s
	s=$(cat "$MNT/$1/$2.status") || return 1
	echo "${s%% *}"
}

# ---- quotas on a shared store (80-redis, 81-redis-cluster) ----

# fill_loop MNT TAG FROM TO: on the host mounted at MNT, fill category q
# with distinct questions FROM..TO, each with a response of its own (bytes
# kept in $WORK/filled/ENTRY_ID); a failed fill is noted in $WORK/failed.
fill_loop() {
	local m=$1 tag=$2 i id
	for ((i = $3; i <= $4; i++)); do
		printf 'question %s-%d: how many %s can a %d fit\n' "$tag" "$i" "$tag" "$i" \
			>"$m/q/$tag$i.query" || { echo "$tag$i lookup" >>"$WORK/failed"; continue; }
		printf 'answer %s-%d\n\x00\x01 %s' "$tag" "$i" "$RANDOM$RANDOM" >"$WORK/resp/$tag$i"
		if ! cp "$WORK/resp/$tag$i" "$m/q/$tag$i.response"; then
			echo "$tag$i fill" >>"$WORK/failed"
			continue
		fi
		id=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$m/q/$tag$i.status")
		if [ -n "$id" ]; then mv "$WORK/resp/$tag$i" "$WORK/filled/$id"; else echo "$tag$i not stored" >>"$WORK/failed"; fi
	done
}

# stat_sum KEY MNT...: the sum of KEY in q/.stats over the hosts
stat_sum() {
	local key=$1 sum=0 v m
	shift
	for m in "$@"; do
		v=$(sed -n "s/^$key: //p" "$m/q/.stats") || return 1
		sum=$((sum + v))
	done
	echo "$sum"
}

# count_is N MNT...: every host lists exactly N entries in q
# views_are FILE MNT...: every host lists exactly the entries of q whose
# ids FILE holds (one per line, sorted numerically). A host may briefly
# still show an entry another host just evicted (its put event arrived
# before the eviction's), so callers wait for this rather than check once.
views_are() {
	local f=$1 m
	shift
	for m in "$@"; do
		ls "$m/q/entries" | sort -n | cmp -s "$f" - || return 1
	done
}

count_is() {
	local n=$1 m
	shift
	for m in "$@"; do
		[ "$(ls "$m/q/entries" | wc -l)" = "$n" ] || return 1
	done
}
