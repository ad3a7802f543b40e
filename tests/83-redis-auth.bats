#!/usr/bin/env bats
# A Redis store that wants a password: requirepass and an ACL user limited
# to semcachefs's keys and commands (the ACL line the README documents).
# The password comes only from a variable or a file the mount names; a
# wrong or missing one fails the mount with the server's reason, exit 1,
# and nothing is created; the password never reaches the log or argv.

load helpers

# the README's ACL line (keep them the same)
ACL_RULES='resetkeys ~{semcache}* ~{c* resetchannels &semcache:ev -@all +@connection +@read +@write +@stream +@scripting +@pubsub -@dangerous +cluster|slots +config|get'

setup() {
	command -v redis-server >/dev/null || skip "needs redis-server (package redis-server)"
	setup_work
	mkdir -p "$WORK/redis" "$WORK/state"
	export XDG_DATA_HOME=$WORK/state
	RPORT=$((23000 + RANDOM % 9000))
	STORE=redis://127.0.0.1:$RPORT/0
}

teardown() {
	# the two-host test's first daemon, if it is still up
	if [ -n "${A_PID:-}" ] && [ "${A_PID}" != "${DAEMON_PID:-}" ]; then
		fusermount3 -u "$MNT_A" 2>/dev/null || true
		wait "$A_PID" 2>/dev/null || true
	fi
	# the server's pid is read first: teardown_mount removes $WORK, and a
	# failing test's teardown_mount fails
	local rpid status=0
	rpid=$(cat "$WORK/redis.pid" 2>/dev/null || true)
	teardown_mount || status=$?
	if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; fi
	return "$status"
}

# start_redis ARGS...: a private redis-server on $RPORT with ARGS
start_redis() {
	redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly yes \
		--dir "$WORK/redis" --daemonize yes --logfile "$WORK/redis.log" \
		--pidfile "$WORK/redis.pid" "$@" >/dev/null
	redis_pinged() { redis-cli -p "$RPORT" ping 2>&1 | grep -qE 'PONG|NOAUTH'; }
	wait_until 10 redis_pinged
	TEST_REDIS_PORT= # teardown_mount: shut down below instead
}

stop_redis() {
	[ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
}

# mount_fails ARGS...: the daemon exits 1 without mounting; its stderr in
# $output
mount_fails() {
	run "$SEMCACHEFS" -f "$@" "$MNT"
	[ "$status" -eq 1 ]
	! is_mounted
}

@test "requirepass: the password from a variable the mount names; fill and hit work; it is never logged" {
	start_redis --requirepass 'pw with spaces & $ymbols'
	SEMCACHEFS_REDIS_PW='pw with spaces & $ymbols' start_daemon -o redis_password_env=SEMCACHEFS_REDIS_PW
	mkdir "$MNT/code"
	run ask code q1 "how do I sort a list in python"
	assert_output "miss"
	fill code q1 "sorted(xs)"
	run ask code q2 "how do I sort a list in python"
	assert_output --regexp '^hit score=1\.000 entry=[0-9]+ '
	run cat "$MNT/code/q2.response"
	assert_output "sorted(xs)"
	run grep -c 'ymbols' "$LOG"
	assert_output 0
	run grep -rl 'ymbols' "$WORK/state"
	[ "$status" -ne 0 ]
	! tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline" | grep -q ymbols
	stop_daemon
	stop_redis
}

@test "a missing password is NOAUTH and a wrong one WRONGPASS: exit 1, nothing created" {
	start_redis --requirepass right-password
	mount_fails -o store="$STORE"
	assert_output --partial "NOAUTH Authentication required"
	assert_output --partial "-o redis_password_env=NAME"
	SEMCACHEFS_REDIS_PW=wrong-password mount_fails -o store="$STORE",redis_password_env=SEMCACHEFS_REDIS_PW
	assert_output --partial "WRONGPASS"
	refute_output --partial "wrong-password"
	# nothing was created: no local state directory
	run find "$WORK/state" -mindepth 1
	assert_output ""
	stop_redis
}

@test "an ACL user limited to semcachefs's keys and commands: two hosts share the cache" {
	printf 'user default off\nuser semcache on >acl-password %s\n' "$ACL_RULES" >"$WORK/users.acl"
	start_redis --aclfile "$WORK/users.acl"
	printf 'acl-password\n' >"$WORK/pw"
	chmod 600 "$WORK/pw"
	STORE=redis://semcache@127.0.0.1:$RPORT/0
	start_daemon -o redis_password_file="$WORK/pw"
	mkdir "$MNT/code"
	printf 'threshold: 0.8\n' >"$MNT/code/policy.yaml"
	run ask code q1 "how do I reverse a string in python"
	assert_output "miss"
	fill code q1 "s[::-1]"
	# a second host with the same user sees the category, policy and entry
	MNT_A=$MNT
	MNT=$WORK/mnt-b
	mkdir -p "$MNT"
	A_PID=$DAEMON_PID
	XDG_DATA_HOME=$WORK/state-b start_daemon -o redis_password_file="$WORK/pw"
	run ask code q2 "how do I reverse a string in python"
	assert_output --regexp '^hit '
	run cat "$MNT/code/q2.response"
	assert_output "s[::-1]"
	run cat "$MNT/code/.policy"
	assert_line --regexp '^threshold: +0\.8'
	# removal and purge work under the ACL too
	id=$(ls "$MNT/code/entries")
	rm -r "$MNT/code/entries/$id"
	run ls "$MNT/code/entries"
	assert_output ""
	stop_daemon
	MNT=$MNT_A
	DAEMON_PID=$A_PID
	run grep -c "NOPERM" "$LOG"
	assert_output 0
	stop_daemon
	stop_redis
}

@test "an ACL user without access to the store's keys fails the mount with NOPERM" {
	printf 'user default off\nuser other on >pw2 resetkeys ~elsewhere:* -@all +@connection +@read +@write\n' >"$WORK/users.acl"
	start_redis --aclfile "$WORK/users.acl"
	SEMCACHEFS_PW=pw2 mount_fails -o store=redis://other@127.0.0.1:$RPORT/0,redis_password_env=SEMCACHEFS_PW
	assert_output --partial "NOPERM"
	stop_redis
}

@test "password files must be private; passwords never go in the URL; the options need a redis store" {
	start_redis --requirepass filepw
	printf 'filepw\n' >"$WORK/pw"
	chmod 644 "$WORK/pw"
	mount_fails -o store="$STORE",redis_password_file="$WORK/pw"
	assert_output --partial "readable by no one else (chmod 600"
	ln -s "$WORK/pw" "$WORK/pw-link"
	chmod 600 "$WORK/pw"
	mount_fails -o store="$STORE",redis_password_file="$WORK/pw-link"
	assert_output --partial "redis_password_file='$WORK/pw-link'"
	: >"$WORK/empty"
	chmod 600 "$WORK/empty"
	mount_fails -o store="$STORE",redis_password_file="$WORK/empty"
	assert_output --partial "holds no password"
	mount_fails -o store=redis://user:filepw@127.0.0.1:$RPORT/0
	assert_output --partial "a password does not belong in the redis:// URL"
	refute_output --partial "filepw"
	mount_fails -o store="$STORE",redis_password_env=SEMCACHEFS_NOT_SET_ANYWHERE
	assert_output --partial "the variable is not set or empty"
	SEMCACHEFS_PW=filepw mount_fails -o store="$STORE",redis_password_env=SEMCACHEFS_PW,redis_password_file="$WORK/pw"
	assert_output --partial "not both"
	mount_fails -o store="$STORE"
	assert_output --partial "NOAUTH"
	# a redis user without a password is refused before connecting
	mount_fails -o store=redis://someone@127.0.0.1:$RPORT/0
	assert_output --partial "needs a password"
	# the right file works
	start_daemon -o redis_password_file="$WORK/pw"
	run ask . q "a question"
	assert_output "miss"
	stop_daemon
	stop_redis
}

@test "the password options without a redis:// store are a usage error (exit 2)" {
	run "$SEMCACHEFS" -f -o store="$WORK/local",redis_password_env=SEMCACHEFS_PW "$MNT"
	[ "$status" -eq 2 ]
	assert_output --partial "need a redis:// store"
	[ ! -e "$WORK/local" ]
}
