#!/usr/bin/env bats
# Nothing a caller writes grows without bound: scratch files are capped per
# mount (-o scratch_max, ENOSPC) and per user (-o scratch_user_max, EDQUOT),
# each refusal logged; truncate(2) of policy.yaml and writes of .purge are
# refused with EFBIG before anything is allocated; categories nest at most
# 32 levels (EMLINK).

load helpers

setup() {
	setup_mount -o scratch_max=3MiB,scratch_user_max=2MiB
	mkdir "$MNT/c"
}

teardown() { teardown_mount; }

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# py CODE ARGS...: run Python statements (os imported; the ARGS are
# sys.argv[2:]); prints "ok", or the errno name of the OSError raised
py() {
	python3 -c 'import errno, os, sys
try:
    exec(sys.argv[1])
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$@"
}

@test "scratch files over -o scratch_user_max get EDQUOT, logged; removed files free their bytes" {
	run "$FSOP" writen "$MNT/c/big" 1048577
	assert_output "EFBIG at write" # one file's own limit, 1 MiB
	rm "$MNT/c/big"
	run "$FSOP" writen "$MNT/c/t1" 1048576
	assert_output "ok"
	run "$FSOP" writen "$MNT/c/t2" 1048576
	assert_output "ok"
	run "$FSOP" writen "$MNT/c/t3" 1
	assert_output "EDQUOT at write"
	run py 'os.truncate(sys.argv[2], 4096)' "$MNT/c/t3"
	assert_output "EDQUOT"
	run grep -c "over -o scratch_user_max=2097152: write refused (EDQUOT)" "$LOG"
	assert_success
	rm "$MNT/c/t1"
	run "$FSOP" writen "$MNT/c/t3" 1048576
	assert_output "ok"
}

@test "scratch files over -o scratch_max get ENOSPC whoever writes them, logged" {
	[ "$(id -u)" = 0 ] || skip "needs root to run a command as another uid (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	chmod 0755 "$WORK"
	start_daemon -o allow_other,scratch_max=3MiB,scratch_user_max=2MiB
	chmod 1777 "$MNT/c"
	run "$FSOP" writen "$MNT/c/t1" 1048576
	assert_output "ok"
	run "$FSOP" writen "$MNT/c/t2" 1048576
	assert_output "ok"
	run as_nobody "$FSOP" writen "$MNT/c/n1" 1048576
	assert_output "ok" # nobody's first MiB: within both caps
	run as_nobody "$FSOP" writen "$MNT/c/n2" 1
	assert_output "ENOSPC at write" # nobody has 1 MiB of 2, the mount 3 of 3
	run grep -c "over -o scratch_max=3145728: write by uid 65534 refused (ENOSPC)" "$LOG"
	assert_success
	rm "$MNT/c/t1"
	run as_nobody "$FSOP" writen "$MNT/c/n2" 1048576
	assert_output "ok"
}

@test "a policy.yaml renamed to a backup counts against the scratch caps" {
	stop_daemon
	start_daemon -o scratch_max=3MiB,scratch_user_max=40
	printf 'threshold: 0.9\nttl: 1h\nquota: {entries: 100}\n' >"$MNT/c/policy.yaml"
	run "$FSOP" rename "$MNT/c/policy.yaml" "$MNT/c/policy.yaml~"
	assert_output "EDQUOT at rename" # 40 bytes of text over a 40-byte cap
	run cat "$MNT/c/policy.yaml"
	assert_line "threshold: 0.9" # nothing changed
	assert_file_not_exists "$MNT/c/policy.yaml~"
}

@test "truncate(2) of policy.yaml beyond 1 MiB is EFBIG before anything is allocated" {
	echo "threshold: 0.9" >"$MNT/c/policy.yaml"
	run py 'os.truncate(sys.argv[2], (1 << 20) + 1)' "$MNT/c/policy.yaml"
	assert_output "EFBIG"
	run py 'os.truncate(sys.argv[2], 4 << 30)' "$MNT/c/policy.yaml"
	assert_output "EFBIG"
	run cat "$MNT/c/policy.yaml"
	assert_output "threshold: 0.9"
	run py 'os.truncate(sys.argv[2], 4 << 30)' "$MNT/c/newer.swp"
	assert_output "ENOENT"
}

@test "writes of .purge past a few bytes are EFBIG and purge nothing; a short one purges" {
	ask c q1 "how do I reverse a list in python" >/dev/null
	fill c q1 "reversed(xs)"
	run py 'fd = os.open(sys.argv[2], os.O_WRONLY); os.pwrite(fd, b"x", 512 << 20)' "$MNT/c/.purge"
	assert_output "EFBIG"
	run py 'fd = os.open(sys.argv[2], os.O_WRONLY); os.ftruncate(fd, 1 << 30)' "$MNT/c/.purge"
	assert_output "EFBIG"
	run py 'fd = os.open(sys.argv[2], os.O_WRONLY); os.write(fd, b"y" * 65); os.close(fd)' "$MNT/c/.purge"
	assert_output "EFBIG"
	run ls "$MNT/c/entries"
	assert_output "1"
	run "$FSOP" write "$MNT/c/.purge" "yes, purge"
	assert_output "ok"
	run ls "$MNT/c/entries"
	assert_output ""
}

@test "categories nest at most 32 levels deep: mkdir below is EMLINK, logged; the deepest works" {
	local p=$MNT i
	for i in $(seq 1 32); do
		p=$p/d$i
		run "$FSOP" mkdir "$p"
		assert_output "ok"
	done
	run "$FSOP" mkdir "$p/d33"
	assert_output "EMLINK at mkdir"
	run grep -c "mkdir 'd33' at depth 33 by uid $(id -u) refused (EMLINK): categories nest at most 32 levels deep" "$LOG"
	assert_success
	run "$FSOP" write "$p/q.query" "a question at the bottom"
	assert_output "ok"
	run cat "$p/q.status"
	assert_miss
}

@test "-o scratch_max and scratch_user_max: bad sizes are refused at mount; --help names them" {
	mkdir "$WORK/m2"
	run "$SEMCACHEFS" -f -o store="$WORK/s2",scratch_max=lots "$WORK/m2"
	assert_failure 2
	assert_output "semcachefs: -o scratch_max='lots' is not a size of at least 1 byte (e.g. 64MiB)"
	run "$SEMCACHEFS" -f -o store="$WORK/s2",scratch_user_max=0 "$WORK/m2"
	assert_failure 2
	assert_output --partial "-o scratch_user_max='0' is not a size"
	run "$SEMCACHEFS" --help
	assert_output --partial "-o scratch_max=SIZE"
	assert_output --partial "-o scratch_user_max=SIZE"
}
