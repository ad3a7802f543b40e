#!/usr/bin/env bats
# The file protocol end to end: ask, miss, fill, hit, paraphrase, isolation,
# expiry, persistence — everything through the real mount.

load helpers

setup() { setup_mount; }
teardown() { teardown_mount; }

Q1="how do I reverse a list in python"
A1=$'Use reversed(xs), or xs[::-1] for a copy.\nNo trailing newline here'

@test "a first query misses and its response is empty" {
	mkdir "$MNT/code"
	run ask code q1 "$Q1"
	assert_success
	assert_miss
	run cat "$MNT/code/q1.response"
	assert_success
	assert_output ""
	assert_file_size_equals "$MNT/code/q1.response" 0
}

@test "a fill is acknowledged and the same query then hits byte for byte" {
	mkdir "$MNT/code"
	ask code q1 "$Q1"
	run fill code q1 "$A1"
	assert_success
	run cat "$MNT/code/q1.status"
	assert_output --regexp '^stored entry=[0-9]+$'
	run ask code q1b "$Q1"
	assert_output --regexp '^hit score=1\.000 entry=[0-9]+ age=[0-9]+ match=exact$'
	printf '%s' "$A1" >"$WORK/expected"
	cmp "$WORK/expected" "$MNT/code/q1b.response"
}

@test "case and white space differences hit through the exact path" {
	mkdir "$MNT/code"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	run ask code q2 "  HOW do I   reverse a list in Python  "
	assert_output --regexp '^hit score=1\.000 .* match=exact$'
}

@test "a paraphrase hits the cached answer through the index" {
	mkdir "$MNT/code"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	run ask code q2 "python: reverse a list"
	assert_output --regexp '^hit score=0\.9[0-9]+ entry=[0-9]+ age=[0-9]+ match=semantic$'
	printf '%s' "$A1" >"$WORK/expected"
	cmp "$WORK/expected" "$MNT/code/q2.response"
}

@test "an unrelated query misses" {
	mkdir "$MNT/code"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	run ask code q2 "what is the capital of france"
	assert_miss
	run cat "$MNT/code/q2.response"
	assert_output ""
}

@test "categories are separate: nothing in code hits a query in chat" {
	mkdir "$MNT/code" "$MNT/chat"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	run ask chat q1 "$Q1"
	assert_miss
}

@test "categories nest and a nested category is its own index" {
	mkdir -p "$MNT/code/python"
	assert_dir_exists "$MNT/code/python"
	ask code/python q1 "$Q1"
	fill code/python q1 "$A1"
	run ask code/python q2 "python: reverse a list"
	assert_output --regexp '^hit '
	run ask code q2 "python: reverse a list"
	assert_miss
}

@test "an entry stored with a context only hits the same context" {
	mkdir "$MNT/chat"
	printf 'talking about Barack Obama' >"$MNT/chat/f1.context"
	ask chat f1 "how old is he?"
	fill chat f1 "He was born in 1961."
	printf 'talking about Barack Obama' >"$MNT/chat/f2.context"
	run ask chat f2 "how old is he?"
	assert_output --regexp '^hit '
	printf 'talking about Joe Biden' >"$MNT/chat/f3.context"
	run ask chat f3 "how old is he?"
	assert_miss
}

@test "a query without context does not hit an entry stored with one, nor the reverse" {
	mkdir "$MNT/chat"
	printf 'talking about Barack Obama' >"$MNT/chat/f1.context"
	ask chat f1 "how old is he?"
	fill chat f1 "He was born in 1961."
	run ask chat plain "how old is he?"
	assert_miss
	fill chat plain "Who do you mean?"
	printf 'talking about the Eiffel tower' >"$MNT/chat/f4.context"
	run ask chat f4 "how old is he?"
	assert_miss
}

@test "expired entries are never served" {
	mkdir "$MNT/news"
	echo "ttl: 1s" >"$MNT/news/policy.yaml"
	ask news q1 "price of bitcoin today"
	fill news q1 "42"
	run ask news q2 "price of bitcoin today"
	assert_output --regexp '^hit '
	expired() { is_miss "$(ask news q3 'price of bitcoin today')"; }
	wait_until 10 expired
	run cat "$MNT/news/q3.response"
	assert_output ""
}

@test "everything filled is served after a clean remount" {
	mkdir -p "$MNT/code/python"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	ask code/python q1 "how do I sort a dict by value"
	fill code/python q1 "sorted(d.items(), key=lambda kv: kv[1])"
	stop_daemon
	start_daemon
	assert_dir_exists "$MNT/code/python"
	run ask code q2 "python: reverse a list"
	assert_output --regexp '^hit '
	printf '%s' "$A1" >"$WORK/expected"
	cmp "$WORK/expected" "$MNT/code/q2.response"
	run ask code/python q2 "how do I sort a dict by value"
	assert_output --regexp '^hit score=1\.000'
	run cat "$MNT/code/python/q2.response"
	assert_output "sorted(d.items(), key=lambda kv: kv[1])"
}

@test "acknowledged fills survive kill -9 and the index is rebuilt" {
	mkdir "$MNT/code"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	kill_daemon
	start_daemon
	run ask code q2 "python: reverse a list"
	assert_output --regexp '^hit '
	# the local store notices and repairs; a Redis store has nothing to repair
	if [ -z "${TEST_REDIS_PORT:-}" ]; then
		grep -q "did not close cleanly" "$LOG"
	fi
}

@test "session files can be listed and deleted by the client" {
	mkdir "$MNT/code"
	ask code q1 "$Q1"
	run ls "$MNT/code"
	assert_output $'entries\nq1.neighbors\nq1.query\nq1.response\nq1.status'
	rm "$MNT/code/q1."*
	run ls "$MNT/code"
	assert_output "entries"
	assert_file_not_exists "$MNT/code/q1.status"
}

@test "idle session files are removed by the daemon" {
	stop_daemon
	start_daemon -o session_ttl=1
	ask / q1 "$Q1"
	assert_file_exists "$MNT/q1.status"
	gone() { [ ! -e "$MNT/q1.status" ]; }
	wait_until 10 gone
	assert_file_not_exists "$MNT/q1.query"
}

@test "the mount root is a category too" {
	ask / q1 "$Q1"
	fill / q1 "$A1"
	run ask / q2 "python: reverse a list"
	assert_output --regexp '^hit '
}

@test ".stats counts lookups, hits, misses and entries" {
	mkdir "$MNT/code" "$MNT/chat"
	ask code q1 "$Q1"
	fill code q1 "$A1"
	ask code q2 "python: reverse a list"
	ask code q3 "what is the capital of france"
	ask chat q1 "hello there"
	run cat "$MNT/code/.stats"
	assert_line "entries: 1"
	assert_line "lookups: 3"
	assert_line "hits: 1"
	assert_line "misses: 2"
	assert_line "fills: 1"
	run cat "$MNT/.stats"
	assert_line "entries: 1"
	assert_line "lookups: 4"
	assert_line "hits: 1"
	assert_line "misses: 3"
}

@test "a policy.yaml threshold and ttl are inherited by subdirectories" {
	mkdir -p "$MNT/code/python"
	printf 'threshold: 0.99\nttl: 2h\n' >"$MNT/code/policy.yaml"
	run cat "$MNT/code/python/.policy"
	assert_line --regexp '^threshold: 0\.99 +# /code$'
	assert_line --regexp '^ttl: 2h +# /code$'
	ask code/python q1 "$Q1"
	fill code/python q1 "$A1"
	run ask code/python q2 "python: reverse a list"
	assert_miss
	printf 'threshold: 0.9\n' >"$MNT/code/python/policy.yaml"
	run ask code/python q3 "python: reverse a list"
	assert_output --regexp '^hit '
}

@test "the root has sensible defaults shown in .policy" {
	run cat "$MNT/.policy"
	assert_line --regexp '^threshold: 0\.9 +# default$'
	assert_line --regexp '^ttl: 7d +# default$'
}

@test "concurrent clients on one category all get correct answers" {
	mkdir "$MNT/code"
	for i in $(seq 1 20); do
		ask code "seed$i" "question number $i about topic $i"
		fill code "seed$i" "answer $i"
	done
	for w in 1 2 3 4; do
		(
			for i in $(seq 1 20); do
				s=$(ask code "w$w-$i" "question number $i about topic $i")
				[ "${s%% *}" = hit ] || exit 1
				[ "$(cat "$MNT/code/w$w-$i.response")" = "answer $i" ] || exit 1
			done
		) &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
}

# fast_ask DIR NAME QUERY: the one-descriptor fast path (O_RDWR on
# NAME.query: write, then pread at offset 0 returns status, newline, answer).
fast_ask() {
	python3 - "$MNT/$1/$2.query" "$3" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode())
out = b""
while True:
    chunk = os.pread(fd, 65536, len(out))
    if not chunk:
        break
    out += chunk
os.close(fd)
sys.stdout.buffer.write(out)
PY
}

@test "fast path: one read-write descriptor on NAME.query returns status and answer" {
	mkdir "$MNT/code"
	run fast_ask code f1 "$Q1"
	assert_miss
	fill code f1 "$A1"
	run fast_ask code f2 "python: reverse a list"
	assert_line --index 0 --regexp '^hit score=0\.9[0-9]+ entry=[0-9]+ age=[0-9]+ match=semantic$'
	printf 'hit\n%s' "$A1" >"$WORK/expected"
	fast_ask code f3 "$Q1" >"$WORK/raw"
	sed '1s/^hit .*/hit/' "$WORK/raw" >"$WORK/got"
	cmp "$WORK/expected" "$WORK/got"
	run cat "$MNT/code/f3.status"
	assert_output --regexp '^hit score=1\.000 '
}

@test "fast path: an empty query fails the read with EINVAL" {
	run python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"   ")
try:
    os.pread(fd, 100, 0)
except OSError as e:
    print(os.strerror(e.errno))
' "$MNT/e.query"
	assert_output "Invalid argument"
}
