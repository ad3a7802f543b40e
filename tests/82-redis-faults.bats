#!/usr/bin/env bats
# A shared Redis store that misbehaves, seen through real mounts: a paused
# server (kill -STOP), a server emptied behind the daemons' backs
# (FLUSHALL), and tests/tools/redis_chaos.py between a daemon and a real
# redis-server, answering garbage, losing replies, claiming to be loading
# or a cluster that redirects out of range. Two daemons ("hosts" A and B)
# share the server as in 80-redis.bats.

load helpers
load redis_hosts

setup() { setup_hosts; }
teardown() {
	[ -z "${CHAOS_PID:-}" ] || kill "$CHAOS_PID" 2>/dev/null || true
	teardown_hosts
}

# start_chaos: the fault proxy on $CPORT in front of the server
start_chaos() {
	command -v python3 >/dev/null || skip "needs python3 (the fault proxy)"
	CPORT=$((PORT + 1))
	python3 "$TESTS_DIR/tools/redis_chaos.py" "$CPORT" "$PORT" >/dev/null 2>"$WORK/chaos.log" &
	CHAOS_PID=$!
	chaos_up() { redis-cli -p "$CPORT" ping 2>/dev/null | grep -q PONG; }
	wait_until 10 chaos_up
}

chaos() { redis-cli -p "$CPORT" chaos "$@" >/dev/null; }

# remount_a_via_proxy: host A again, through the proxy
remount_a_via_proxy() {
	stop_daemon
	STORE=redis://127.0.0.1:$CPORT/0
	XDG_DATA_HOME=$WORK/state-a start_daemon
}

# stored_with RESPONSE_FILE: how many entries in the real server hold
# exactly these response bytes
stored_with() {
	local k n=0
	for k in $(redis-cli -p "$PORT" --scan --pattern '{c*}:e:*'); do
		redis-cli -p "$PORT" hget "$k" r | head -c -1 | cmp -s - "$1" && n=$((n + 1))
	done
	echo "$n"
}

@test "Redis paused: hits from 6 clients at once each answer within 2x the 2 s command timeout" {
	mkdir "$MNT/code"
	for i in 1 2 3 4 5 6; do
		ask code "f$i" "paused question number $i" >/dev/null
		fill code "f$i" "answer $i"
	done
	kill -STOP "$(cat "$WORK/redis.pid")"
	pids=()
	for i in 1 2 3 4 5 6; do
		(
			t0=$(date +%s%N)
			printf 'paused question number %s\n' "$i" >"$MNT/code/h$i.query"
			echo "$? $(((($(date +%s%N) - t0)) / 1000000))" >"$WORK/ms.$i"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	kill -CONT "$(cat "$WORK/redis.pid")"
	for i in 1 2 3 4 5 6; do
		read -r rc ms <"$WORK/ms.$i"
		echo "# hit $i on a paused server: exit $rc after $ms ms: $(cat "$MNT/code/h$i.status" 2>&1)" >&3
		((ms < 5000))
	done
	# and hits work again once the server does
	back() { [ "$(ask code again "paused question number 1" | cut -d' ' -f1)" = hit ]; }
	wait_until 10 back
}

@test "a proxy that starts answering garbage: every fill either is stored with its bytes or fails, and a failed one does not stay" {
	start_chaos
	remount_a_via_proxy
	mkdir -p "$MNT/q" "$WORK/resp"
	ask q warm "a question before the garbage" >/dev/null
	fill q warm "an answer before the garbage"
	: >"$WORK/acked"
	: >"$WORK/failed"
	# garbage for whatever comes after the next 15 commands; before that,
	# ten puts answered ":7" without running (a plausible sequence)
	chaos rule "'em', ARGV[7]" fake 10 0 ':7\r\n'
	chaos after 15
	chaos rule '*' mixed
	for i in $(seq 1 60); do
		printf 'garbage question %d about %d things\n' "$i" "$i" >"$MNT/q/g$i.query" 2>/dev/null || true
		printf 'garbage answer %d %s' "$i" "$RANDOM$RANDOM" >"$WORK/resp/$i"
		if cp "$WORK/resp/$i" "$MNT/q/g$i.response" 2>/dev/null; then
			echo "$i" >>"$WORK/acked"
		else
			echo "$i" >>"$WORK/failed"
		fi
	done
	chaos clear
	echo "# through garbage: $(wc -l <"$WORK/acked") fills acknowledged, $(wc -l <"$WORK/failed") failed" >&3
	(($(wc -l <"$WORK/failed") > 0))
	# acknowledged: stored, once, with its exact bytes
	while read -r i; do
		[ "$(stored_with "$WORK/resp/$i")" = 1 ]
	done <"$WORK/acked"
	# failed: never left stored (a put that ran is cancelled)
	none_left() {
		local i
		while read -r i; do
			[ "$(stored_with "$WORK/resp/$i")" = 0 ] || return 1
		done <"$WORK/failed"
	}
	wait_until 20 none_left
	# the daemon is whole and fills work again
	ask q after "a question after the garbage" >/dev/null
	run "$FSOP" write "$MNT/q/after.response" "fine again"
	assert_output "ok"
}

@test "FLUSHALL behind the daemons' backs: categories come back, fills into them work again and reach the other host, a new category is seen everywhere" {
	mkdir "$MNT/code"
	ask code q1 "how tall is the eiffel tower in paris"
	fill code q1 "the old answer"
	known_b() { [ "$(ask_b code "k$RANDOM" "how tall is the eiffel tower in paris" | cut -d' ' -f1)" = hit ]; }
	wait_until 5 known_b
	redis-cli -p "$PORT" flushall >/dev/null
	# fills into the category that existed work again once each host
	# noticed (within a second or so; until then they fail with ENOENT)
	fill_works() {
		local n=w$RANDOM
		ask code "$n" "which river flows through the city of cairo" >/dev/null &&
			[ "$("$FSOP" write "$MNT/code/$n.response" "the new answer")" = ok ]
	}
	wait_until 10 fill_works
	noticed() { grep -q "the store was reset behind this host's back" "$LOG_B"; }
	wait_until 10 noticed
	# the old entry is gone everywhere
	gone() {
		is_miss "$(ask code "o$RANDOM" "how tall is the eiffel tower in paris" | cut -d' ' -f1)" &&
			is_miss "$(ask_b code "o$RANDOM" "how tall is the eiffel tower in paris" | cut -d' ' -f1)"
	}
	wait_until 10 gone
	# the fill is heard of on the other host
	new_b() { [ "$(ask_b code "n$RANDOM" "which river flows through the city of cairo" | cut -d' ' -f1)" = hit ]; }
	wait_until 5 new_b
	run cat "$MNT_B/code/.stats"
	assert_line "entries: 1"
	# and so does a category made now, on both sides
	mkdir "$MNT/after"
	has_after() { [ -d "$MNT_B/after" ]; }
	wait_until 5 has_after
	mkdir "$MNT_B/fromb"
	has_fromb() { [ -d "$MNT/fromb" ]; }
	wait_until 5 has_fromb
}

@test "a fill whose put ran but whose reply was lost, then answered LOADING: it fails with EIO and is not left for the other host" {
	start_chaos
	remount_a_via_proxy
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	ask code q "a question asked while redis was loading" >/dev/null
	chaos rule "'em', ARGV[7]" drop 1
	chaos rule "'em', ARGV[7]" fake 1 0 '-LOADING Redis is loading the dataset in memory\r\n'
	run "$FSOP" write "$MNT/code/q.response" "an answer that must not stay"
	assert_output "EIO at close"
	printf 'an answer that must not stay' >"$WORK/resp"
	not_stored() { [ "$(stored_with "$WORK/resp")" = 0 ]; }
	wait_until 10 not_stored
	run ask_b code b "a question asked while redis was loading"
	assert_miss
	run ask code a "a question asked while redis was loading"
	assert_miss
}

@test "a cluster that redirects to a slot or port out of range: the fill fails with EPROTO, the daemon stays up" {
	start_chaos
	chaos rule "CLUSTER SLOTS" fake -1 0 "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n\$9\r\n127.0.0.1\r\n:$CPORT\r\n"
	remount_a_via_proxy
	grep -q "(cluster)" "$LOG"
	mkdir "$MNT/code"
	for bad in "-MOVED 99999 127.0.0.1:$CPORT" "-MOVED -7 127.0.0.1:$CPORT" \
		"-ASK 16384 127.0.0.1:$CPORT" "-MOVED 5 127.0.0.1:70000"; do
		ask code q "a question redirected far away" >/dev/null
		chaos rule "'em', ARGV[7]" fake 1 0 "$bad\r\n"
		run "$FSOP" write "$MNT/code/q.response" "redirected"
		assert_output "EPROTO at close"
	done
	# a malformed slot map is refused, the one before kept
	chaos clear
	chaos rule "CLUSTER SLOTS" fake -1 0 "*1\r\n*3\r\n:-100\r\n:5\r\n*2\r\n\$9\r\n127.0.0.1\r\n:$CPORT\r\n"
	chaos rule "'em', ARGV[7]" fake 1 0 "-MOVED 12 127.0.0.1:$CPORT\r\n"
	ask code q2 "a question after the bad map" >/dev/null
	run "$FSOP" write "$MNT/code/q2.response" "moved home"
	assert_output "ok"
	run ask code q3 "a question after the bad map"
	assert_output --regexp '^hit score=1\.000'
	grep -q "CLUSTER SLOTS reply is malformed" "$LOG"
}

@test "two daemons on one redis:// URL with one XDG_DATA_HOME keep their local state apart" {
	ln -s state-a "$WORK/state-c"
	start_host c
	for d in a b c d e f g h i; do
		mkdir "$MNT/$d"
		for i in 1 2; do
			ask "$d" "q$i" "question $i in $d" >/dev/null
			fill "$d" "q$i" "answer $i in $d"
		done
	done
	seen_c() { [ "$(ls "$WORK/c/i/entries" 2>/dev/null | wc -l)" = 2 ]; }
	wait_until 10 seen_c
	# both save their snapshots at the same moment
	fusermount3 -u "$MNT" & u1=$!
	fusermount3 -u "$WORK/c" & u2=$!
	wait $u1 $u2
	wait "$DAEMON_PID"
	DAEMON_PID=
	stop_host c
	[ "$(ls "$WORK"/state-a/semcachefs/ | wc -l)" = 2 ]
	grep -q "this one keeps its own in '.*-0-1'" "$WORK/c.log"
	run grep -h "saving index snapshot" "$LOG" "$WORK/c.log"
	assert_output ""
}
