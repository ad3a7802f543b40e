#!/usr/bin/env bats
# Many mounts, one cache: two semcachefs daemons ("hosts" A and B, each with
# its own mountpoint and local state) share a real redis-server started on a
# loopback port by the test.

load helpers

setup() {
	require_fuse
	command -v redis-server >/dev/null || skip "needs redis-server (package redis-server)"
	WORK=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache.XXXXXX")
	MNT=$WORK/a
	MNT_B=$WORK/b
	LOG=$WORK/a.log
	LOG_B=$WORK/b.log
	mkdir -p "$MNT" "$MNT_B" "$WORK/redis" "$WORK/state-a" "$WORK/state-b"
	PORT=$((23000 + RANDOM % 9000)) # below the kernel's ephemeral ports (32768+)
	start_redis
	URL=redis://127.0.0.1:$PORT/0
	STORE=$URL
	XDG_DATA_HOME=$WORK/state-a start_daemon
	start_b
}

teardown() {
	stop_b || true
	teardown_mount || status=$?
	redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
	return "${status:-0}"
}

start_redis() {
	redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly yes \
		--appendfsync always --dir "$WORK/redis" --daemonize yes \
		--logfile "$WORK/redis.log" >/dev/null
	up() { redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; }
	wait_until 10 up
}

start_b() {
	XDG_DATA_HOME=$WORK/state-b "$SEMCACHEFS" -f -o store="$URL" "$MNT_B" 2>>"$LOG_B" &
	PID_B=$!
	mounted_b() { grep -qs " $MNT_B fuse" /proc/self/mounts; }
	wait_until 20 mounted_b
}

stop_b() {
	[ -n "${PID_B:-}" ] || return 0
	fusermount3 -u "$MNT_B" 2>/dev/null || umount -l "$MNT_B" 2>/dev/null || true
	local s=0
	wait "$PID_B" || s=$?
	PID_B=
	if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOG_B"; then
		grep -A 20 -E "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOG_B" >&3
		return 99
	fi
	return "$s"
}

# ask_b DIR NAME QUERY: the lookup on host B
ask_b() {
	printf '%s\n' "$3" >"$MNT_B/$1/$2.query" && cat "$MNT_B/$1/$2.status"
}

@test "a fill on one host is a hit on the other, with the same bytes" {
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	ask code q1 "how do I reverse a list in python"
	printf 'reversed(xs)\n\x00binary' >"$WORK/answer"
	cp "$WORK/answer" "$MNT/code/q1.response"
	t0=$(date +%s%N)
	hit_b() { [ "$(status_b)" = hit ]; }
	status_b() { s=$(ask_b code "p$RANDOM" "python: reverse a list"); echo "${s%% *}"; }
	wait_until 5 hit_b
	t1=$(date +%s%N)
	echo "# propagation (fill acknowledged on A to hit on B, polled): $(((t1 - t0) / 1000000)) ms" >&3
	ask_b code same "how do I reverse a list in python" >/dev/null
	cmp "$WORK/answer" "$MNT_B/code/same.response"
}

@test "categories, policies and permissions made on one host apply on the other" {
	mkdir -p "$MNT/chat/fr"
	chmod 0750 "$MNT/chat"
	echo "threshold: 0.97" >"$MNT/chat/policy.yaml"
	synced() { [ -d "$MNT_B/chat/fr" ] && grep -q '^threshold: 0.97' "$MNT_B/chat/.policy" &&
		[ "$(stat -c %a "$MNT_B/chat")" = 750 ]; }
	wait_until 5 synced
	rm "$MNT/chat/policy.yaml"
	rmdir "$MNT/chat/fr"
	gone() { [ ! -d "$MNT_B/chat/fr" ] && grep -q '^threshold: 0.9 .*# default' "$MNT_B/chat/.policy"; }
	wait_until 5 gone
}

@test "an invalidation on one host is never served on the other" {
	mkdir "$MNT/code"
	ask code q1 "what is the capital of france"
	fill code q1 "Paris"
	id=$(sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/code/q1.status")
	known_b() { [ -d "$MNT_B/code/entries/$id" ]; }
	wait_until 5 known_b
	rm -r "$MNT/code/entries/$id"
	miss_b() { [ "$(ask_b code "m$RANDOM" "what is the capital of france")" = miss ]; }
	wait_until 5 miss_b
}

@test "a host that was down catches up at restart" {
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	stop_b
	for i in 1 2 3 4 5; do
		ask code "q$i" "catch-up question number $i about topic $i"
		fill code "q$i" "answer $i"
	done
	start_b
	for i in 1 2 3 4 5; do
		run ask_b code "r$i" "catch-up question number $i about topic $i"
		assert_output --regexp '^hit score=1\.000'
		run cat "$MNT_B/code/r$i.response"
		assert_output "answer $i"
	done
}

@test "Redis stopped: lookups answer quickly, fills fail with a clear errno; restarted: acknowledged fills are there" {
	mkdir "$MNT/code"
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	redis-cli -p "$PORT" shutdown >/dev/null 2>&1 || true # AOF is flushed (appendfsync always)
	t0=$(date +%s%N)
	run ask code q2 "how do I reverse a list in python"
	t1=$(date +%s%N)
	assert_output --regexp '^miss reason=store unavailable: '
	(((t1 - t0) / 1000000 < 3000))
	ask code q3 "a new question while redis is down" >/dev/null
	run "$FSOP" write "$MNT/code/q3.response" "an answer"
	assert_output --regexp '^(ECONNREFUSED|EIO|ETIMEDOUT) at close$'
	start_redis
	back() { [ "$(ask code "b$RANDOM" "how do I reverse a list in python" | cut -d' ' -f1)" = hit ]; }
	wait_until 10 back
	run cat "$MNT/.stats"
	assert_line "entries: 1"
}
