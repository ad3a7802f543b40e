#!/usr/bin/env bats
# The kernel's attribute cache (fs/kcache.c): the three-file protocol costs
# fewer requests, and nothing the kernel caches is ever stale. The daemon
# changes files by itself (a lookup rewrites NAME.status and NAME.response,
# a fill changes the category's byte count, idle sessions are collected,
# entries evicted, categories removed on another host): each test reads
# such a file the way that bypasses a fresh lookup (a held descriptor, a
# working directory) or right after the daemon removed it.

load helpers
load redis_hosts

setup() { HOSTS=; }
teardown() { if [ -n "$HOSTS" ]; then teardown_hosts; else teardown_mount; fi; }

Q1="how do I reverse a list in python"
A1=$'Use reversed(xs), or xs[::-1] for a copy.\nNo trailing newline here'

reqs() { sed -n 's/^fuse_requests: //p' "$MNT/.stats"; }

@test "the three-file sequence costs at most 22 FUSE requests from bash (31 without an attribute cache)" {
	setup_mount
	mkdir "$MNT/c"
	ask c w "warm up the category" >/dev/null
	a=$(reqs)
	b=$(reqs)
	cost=$((b - a)) # one read of .stats
	a=$(reqs)
	printf '%s\n' "$Q1" >"$MNT/c/r.query"
	s=$(<"$MNT/c/r.status")
	r=$(<"$MNT/c/r.response")
	b=$(reqs)
	n=$((b - a - cost))
	echo "# three-file sequence (bash: > query, \$(<status), \$(<response)): $n requests" >&3
	is_miss "$s" || fail "not a miss: '$s'"
	[ -z "$r" ] || fail "a miss with a response: '$r'"
	[ "$n" -le 22 ] || fail "$n requests"
}

@test "a held NAME.status and NAME.response descriptor see the size of each new lookup's answer" {
	setup_mount
	mkdir "$MNT/c"
	ask c s "$Q1" >/dev/null
	fill c s "$A1"
	run ask c s "$Q1"
	assert_output --regexp '^hit '
	exec 5<"$MNT/c/s.status" 6<"$MNT/c/s.response"
	[ "$(stat -L -c %s /dev/fd/6)" = "${#A1}" ] || fail "response size before"
	# a new lookup that walks only to NAME.query: the status line and the
	# (now empty) response change under the open descriptors
	printf '%s\n' "what is the capital of france" >"$MNT/c/s.query"
	run stat -L -c %s /dev/fd/5 /dev/fd/6
	exec 5<&- 6<&-
	assert_success
	st=$(<"$MNT/c/s.status")
	is_miss "$st" || fail "not a miss: '$st'"
	assert_output "$(($(wc -c <"$MNT/c/s.status")))"$'\n0'
}

@test "a held NAME.status and NAME.response descriptor see the size of a fast-path lookup's answer" {
	setup_mount
	mkdir "$MNT/c"
	ask c f "$Q1" >/dev/null
	fill c f "$A1"
	# one read-write NAME.query asks another question (a miss: the
	# response empties); the held descriptors are never looked up again
	run python3 - "$MNT/c/f" "what is the capital of france" <<-'EOF'
	import os, sys
	base, q = sys.argv[1], sys.argv[2].encode()
	st = os.open(base + '.status', os.O_RDONLY)
	rs = os.open(base + '.response', os.O_RDONLY)
	print(os.fstat(st).st_size, os.fstat(rs).st_size)
	fd = os.open(base + '.query', os.O_RDWR)
	os.pwrite(fd, q, 0)
	print(os.pread(fd, 1 << 16, 0).split(b' ')[0].split(b'\n')[0].decode())
	print(os.fstat(st).st_size, os.fstat(rs).st_size)
	EOF
	assert_success
	st=$(<"$MNT/c/f.status")
	is_miss "$st" || fail "not a miss: '$st'"
	assert_output "15 ${#A1}"$'\n'"miss"$'\n'"$(($(wc -c <"$MNT/c/f.status"))) 0"
}

@test "a held NAME.status of a coalesced miss sees the size of the hit its wait ends in" {
	setup_mount
	mkdir "$MNT/c"
	printf 'fill_timeout: 10s\n' >"$MNT/c/policy.yaml"
	ask c leader "$Q1" >/dev/null
	run ask c w "$Q1"
	assert_output --regexp '^pending '
	exec 5<"$MNT/c/w.status"
	[ "$(stat -L -c %s /dev/fd/5)" = "$((${#output} + 1))" ] || fail "status size before"
	# the wait ends in the read of w.response; nothing walks to w.status
	cat "$MNT/c/w.response" >"$WORK/got" &
	reader=$!
	fill c leader "$A1"
	wait "$reader"
	run stat -L -c %s /dev/fd/5
	exec 5<&-
	assert_success
	[ "$(cat "$WORK/got")" = "$A1" ] || fail "the wait did not end in the answer"
	st=$(<"$MNT/c/w.status")
	[[ $st =~ ^hit\  ]] || fail "not a hit: '$st'"
	assert_output "$(($(wc -c <"$MNT/c/w.status")))"
}

@test "the size of a category seen from inside it follows its fills at once" {
	setup_mount
	mkdir "$MNT/c"
	cd "$MNT/c"
	s0=$(stat -c %s .)
	# every path is relative: nothing looks the category up again
	printf '%s\n' "$Q1" >s.query
	printf '%s' "$A1" >s.response
	run stat -c %s .
	cd /
	assert_success
	word=$(status_word c s)
	[ "$word" = stored ] || fail "not stored: $word"
	[ "$output" != "$s0" ] || fail "the size stayed $s0"
	assert_output "$(stat -c %s "$MNT/c")"
}

@test "after a policy write .policy and its size are the new ones at once" {
	setup_mount
	mkdir "$MNT/p"
	[ "$(stat -c %s "$MNT/p/.policy")" -gt 0 ]
	grep -q '^threshold: 0.9 ' "$MNT/p/.policy"
	echo "threshold: 0.97" >"$MNT/p/policy.yaml"
	run stat -c %s "$MNT/p/.policy" "$MNT/p/policy.yaml"
	assert_success
	assert_output "$(($(wc -c <"$MNT/p/.policy")))"$'\n'"$(($(wc -c <"$MNT/p/policy.yaml")))"
	grep -q '^threshold: 0.97' "$MNT/p/.policy"
	[ "$(cat "$MNT/p/policy.yaml")" = "threshold: 0.97" ]
}

@test "a session collected as idle is gone from ls and stat at once, and can be asked again" {
	setup_mount -o session_ttl=1
	ask / q1 "$Q1" >/dev/null
	# keep the kernel looking at q1.status while ls (never cached) says
	# whether the daemon still has it
	listed() { stat "$MNT/q1.status" >/dev/null 2>&1 || true; ls "$MNT" | grep -qx 'q1\.status'; }
	unlisted() { ! listed; }
	wait_until 10 unlisted
	run stat -c %s "$MNT/q1.status"
	assert_failure 1
	assert_output --partial "No such file or directory"
	run ask / q1 "$Q1"
	assert_success
	assert_miss
}

@test "an entry evicted by a quota is gone from entries/ at once" {
	setup_mount
	mkdir "$MNT/p"
	printf 'quota: {entries: 1}\neviction: fifo\n' >"$MNT/p/policy.yaml"
	ask p a "$Q1" >/dev/null
	fill p a "$A1"
	id=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/p/a.status")
	[ -n "$id" ]
	stat "$MNT/p/entries/$id/response" >/dev/null
	ask p b "what is the capital of france" >/dev/null
	fill p b "Paris"
	one() { [ "$(ls "$MNT/p/entries" | wc -l)" = 1 ]; }
	wait_until 10 one
	run stat "$MNT/p/entries/$id"
	assert_failure 1
	assert_output --partial "No such file or directory"
	run stat "$MNT/p/entries/$id/response"
	assert_failure 1
}

@test "a category removed and made again on another host is seen gone, then back, at once on both" {
	HOSTS=1
	setup_hosts
	mkdir "$MNT/x"
	on_b() { [ -d "$MNT_B/x" ]; }
	wait_until 5 on_b
	rmdir "$MNT/x"
	run stat "$MNT/x"
	assert_failure 1
	# B keeps looking at x while ls (never cached) says whether B's daemon
	# still has it
	listed_b() { stat "$MNT_B/x" >/dev/null 2>&1 || true; ls "$MNT_B" | grep -qx x; }
	unlisted_b() { ! listed_b; }
	wait_until 5 unlisted_b
	run stat "$MNT_B/x"
	assert_failure 1
	assert_output --partial "No such file or directory"
	run mkdir "$MNT_B/x"
	assert_success
	run ask_b x q "$Q1"
	assert_success
	assert_miss
	# and A, which looked x up while it was gone, sees the new one as soon
	# as its daemon lists it
	listed_a() { stat "$MNT/x" >/dev/null 2>&1 || true; ls "$MNT" | grep -qx x; }
	wait_until 5 listed_a
	run stat -c %F "$MNT/x"
	assert_success
	assert_output directory
}

@test "a chmod on another host reaches a descriptor held on the category here before its cached attributes would expire" {
	HOSTS=1
	setup_hosts
	mkdir -m 0755 "$MNT/x"
	on_b() { [ -d "$MNT_B/x" ]; }
	wait_until 5 on_b
	exec 7<"$MNT/x" # held: its fstat uses the kernel's cached attributes
	mode_held() { stat -L -c %a /proc/$$/fd/7; }
	[ "$(mode_held)" = 755 ]
	local t0 t1
	stat "$MNT/x" >/dev/null # the attributes just cached (a LOOKUP)
	t0=$(date +%s%N)
	chmod 0700 "$MNT_B/x"
	is_700() { [ "$(mode_held)" = 700 ]; }
	wait_until 5 is_700
	t1=$(date +%s%N)
	exec 7<&-
	echo "# the held descriptor saw 700 $(((t1 - t0) / 1000000)) ms after the cached lookup" >&3
	# without the notice from the change stream it stays 755 until the
	# attribute timeout (1 s) runs out
	(((t1 - t0) / 1000000 < 900))
}

@test "a purge and an entry's rmdir: the category's size from inside it, and a held entry file, at once" {
	setup_mount
	mkdir "$MNT/c"
	ask c a "$Q1" >/dev/null
	fill c a "$A1"
	ask c b "what is the capital of france" >/dev/null
	fill c b "Paris"
	id=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/c/b.status")
	[ -n "$id" ]
	cd "$MNT/c"
	s0=$(stat -c %s .)
	exec 5<"entries/$id/response"
	rmdir "entries/$id"
	s1=$(stat -c %s .)
	run python3 -c 'import os, errno
try:
    os.fstat(5); print("fstat ok")
except OSError as e:
    print("fstat " + errno.errorcode[e.errno])'
	exec 5<&-
	assert_output "fstat ESTALE"
	printf 'x' >.purge
	s2=$(stat -c %s .)
	cd /
	[ "$s1" = $((s0 - 5)) ] || fail "after the rmdir: $s0 -> $s1"
	[ "$s2" = 0 ] || fail "after the purge: $s2"
	assert_equal "$(stat -c %s "$MNT/c")" 0
}
