#!/usr/bin/env bats
# How the daemon starts and stops, as a system tool: exit 0 after a clean
# stop (unmount, SIGTERM, SIGINT), 1 on a failure at run time, 2 on a usage
# error before any store is touched; an unmount followed at once by a new
# mount of the same store works (the new daemon waits for the store's lock,
# bounded by -o lock_wait, and says so once); a clear message when
# /dev/fuse cannot be opened, before the store is created; a background
# start prints nothing on success (its info lines go to the log).

load helpers

setup() {
	setup_work
	HOLDER=
}

teardown() {
	if [ -n "$HOLDER" ]; then
		: >"$WORK/release" & # opening the fifo lets the holder go
		wait "$HOLDER" || true
	fi
	# a background mount left by a failed test: its daemon is not ours
	# to wait for, but it lets go of the store after the unmount
	if [ -z "${DAEMON_PID:-}" ] && is_mounted; then
		fusermount3 -u "$MNT" || umount -l "$MNT"
		store_free() { [ ! -d "$STORE" ] || flock -n "$STORE" true; }
		wait_until 20 store_free || true
	fi
	teardown_mount
}

# stop_by SIGNAL|unmount: a foreground daemon stopped that way; prints its
# exit status. (A shell starts background jobs with SIGINT ignored, which
# libfuse leaves alone: env gives the daemon the default disposition.)
stop_by() {
	env --default-signal=INT "$SEMCACHEFS" -f -o store="$STORE" "$MNT" 2>>"$LOG" &
	DAEMON_PID=$!
	wait_until 20 is_mounted
	mkdir "$MNT/code"
	ask code q "is the cache up" >/dev/null
	if [ "$1" = unmount ]; then
		fusermount3 -u "$MNT"
	else
		kill -s "$1" "$DAEMON_PID"
	fi
	gone() { ! kill -0 "$DAEMON_PID" 2>/dev/null; }
	wait_until 20 gone || return 1
	local status=0
	wait "$DAEMON_PID" || status=$?
	DAEMON_PID=
	echo "$status"
}

@test "SIGTERM stops the daemon cleanly: exit 0, the store closed cleanly" {
	run stop_by TERM
	assert_output 0
	run grep -c "closed cleanly" "$LOG"
	assert_output 1
	! is_mounted
}

@test "SIGINT stops the daemon cleanly: exit 0" {
	run stop_by INT
	assert_output 0
	! is_mounted
}

@test "an unmount stops the daemon cleanly: exit 0" {
	run stop_by unmount
	assert_output 0
}

@test "a failure at run time exits 1: a store that is a file, in the foreground and the background" {
	touch "$WORK/file"
	run "$SEMCACHEFS" -f -o store="$WORK/file" "$MNT"
	assert_failure 1
	assert_line --regexp "^semcachefs: .*'$WORK/file'"
	run "$SEMCACHEFS" -o store="$WORK/file" "$MNT"
	assert_failure 1
	assert_line --regexp "^semcachefs: .*'$WORK/file'"
	refute_output --partial "info:"
	! is_mounted
}

@test "usage errors exit 2 before any store is created or opened" {
	local args
	while IFS= read -r args; do
		eval "run \"\$SEMCACHEFS\" $args"
		[ "$status" = 2 ] || fail "'semcachefs $args' exited $status, not 2: $output"
		[ ! -e "$STORE" ] || fail "'semcachefs $args' created the store"
	done <<-EOT
	--bogus -o store="\$STORE" "\$MNT"
	-f --bogus -o store="\$STORE" "\$MNT"
	-o bogus_option -o store="\$STORE" "\$MNT"
	-o sync=sometimes -o store="\$STORE" "\$MNT"
	-o session_ttl=0 -o store="\$STORE" "\$MNT"
	-o lock_wait=-1 -o store="\$STORE" "\$MNT"
	-o lock_wait=soon -o store="\$STORE" "\$MNT"
	-o scratch_max=lots -o store="\$STORE" "\$MNT"
	-o transport=fast -o store="\$STORE" "\$MNT"
	-o store="\$STORE" "\$WORK/absent"
	-o store="\$STORE"
	"\$STORE" "\$MNT" extra
	"\$STORE" -o store="\$WORK/other" "\$MNT"
	--policy-keys=html
	EOT
	run "$SEMCACHEFS" --bogus -o store="$STORE" "$MNT"
	assert_output --partial "unknown option"
	run "$SEMCACHEFS" "$STORE" -o store="$WORK/other" "$MNT"
	assert_output "semcachefs: SOURCE '$STORE' and -o store='$WORK/other' name different stores; give one"
}

@test "SOURCE before the mountpoint is the store; 'none' is the default store" {
	"$SEMCACHEFS" -f "$STORE" "$MNT" 2>>"$LOG" &
	DAEMON_PID=$!
	wait_until 20 is_mounted
	[ -f "$STORE/store.db" ] || [ -n "$(ls -A "$STORE")" ]
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$STORE fuse.semcachefs"
	stop_daemon
	XDG_DATA_HOME=$WORK/xdg "$SEMCACHEFS" -f none "$MNT" 2>>"$LOG" &
	DAEMON_PID=$!
	wait_until 20 is_mounted
	[ -d "$WORK/xdg/semcachefs" ]
	run findmnt -n -o FSTYPE "$MNT"
	assert_output "fuse.semcachefs"
}

# hold_store: lock the store directory the way a daemon still shutting
# down holds it, until teardown (or release_store) opens $WORK/release
hold_store() {
	mkdir -p "$STORE"
	mkfifo "$WORK/release"
	flock -x "$STORE" cat "$WORK/release" >/dev/null &
	HOLDER=$!
	held() { ! flock -n "$STORE" true; }
	wait_until 10 held
}

release_store() {
	: >"$WORK/release"
	wait "$HOLDER"
	HOLDER=
}

@test "a mount waits for a store another semcachefs still releases, saying so once" {
	hold_store
	"$SEMCACHEFS" -f -o store="$STORE" "$MNT" 2>>"$LOG" &
	DAEMON_PID=$!
	says_waiting() { grep -q "is in use by another semcachefs" "$LOG"; }
	wait_until 10 says_waiting
	kill -0 "$DAEMON_PID" # still waiting, not failed
	release_store
	wait_until 20 is_mounted
	run grep -c "is in use by another semcachefs" "$LOG"
	assert_output 1
	mkdir "$MNT/code"
	run ask code q "is the cache up"
	assert_output "miss"
}

@test "the wait is bounded by -o lock_wait: then exit 1 with the lock's message" {
	hold_store
	run "$SEMCACHEFS" -f -o store="$STORE" -o lock_wait=1 "$MNT"
	assert_failure 1
	assert_line --partial "waiting up to 1 s"
	assert_line --partial "is another semcachefs using it?"
	run "$SEMCACHEFS" -f -o store="$STORE" -o lock_wait=0 "$MNT"
	assert_failure 1
	refute_output --partial "waiting"
}

@test "fusermount3 -u and at once a new mount of the same store: it mounts" {
	local i
	for i in 1 2 3; do
		run "$SEMCACHEFS" -o store="$STORE" "$MNT"
		assert_success
		is_mounted
		mkdir -p "$MNT/code"
		ask code "q$i" "question number $i" >/dev/null
		printf 'answer %s' "$i" >"$MNT/code/q$i.response"
		fusermount3 -u "$MNT"
		start_daemon # at once, in the foreground
		run cat "$MNT/code/.stats"
		assert_line "entries: $i"
		stop_daemon
	done
}

@test "a background mount prints nothing; its info lines are in the log, first the version line" {
	run "$SEMCACHEFS" -o store="$STORE" "$MNT"
	assert_success
	assert_output ""
	run head -n 1 "$STORE/semcachefs.log"
	assert_output --regexp "^[0-9T:.-]+Z info: semcachefs [0-9.]+: FAISS "
	run grep -c "info: store '$STORE' open: " "$STORE/semcachefs.log"
	assert_output 1
	fusermount3 -u "$MNT"
	store_free() { flock -n "$STORE" true; }
	wait_until 20 store_free
}

@test "a background start puts its warnings on the terminal, not its info lines" {
	start_daemon
	kill_daemon # the next start finds an unclean store and warns
	run "$SEMCACHEFS" -o store="$STORE" "$MNT"
	assert_success
	assert_output --regexp "^[0-9T:.-]+Z warning: store '$STORE': previous run did not close cleanly"
	refute_output --partial "info:"
	run grep -c "warning: store '$STORE': previous run did not close cleanly" "$STORE/semcachefs.log"
	assert_output 1
	fusermount3 -u "$MNT"
	store_free() { flock -n "$STORE" true; }
	wait_until 20 store_free
}

# no_fuse_access COMMAND...: COMMAND as nobody, in a mount namespace where
# /dev/fuse is a root-only file (as on a system whose device is 0600)
no_fuse_access() {
	unshare -m --propagation private sh -c '
		mount --bind "$1" /dev/fuse && shift && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
	' sh "$WORK/rootonly" "$@"
}

@test "no access to /dev/fuse: a message naming its mode and group, exit 1, no store created" {
	getent group 0 >/dev/null || skip "needs a name for group 0"
	[ "$(id -u)" = 0 ] || skip "needs root to take /dev/fuse away from a user"
	command -v unshare >/dev/null && command -v setpriv >/dev/null ||
		skip "needs unshare and setpriv (package util-linux)"
	: >"$WORK/rootonly"
	chmod 0600 "$WORK/rootonly"
	chmod 0755 "$WORK"
	mkdir -m 1777 "$WORK/pub"
	run no_fuse_access "$SEMCACHEFS" -o store="$WORK/pub/store" "$MNT"
	assert_failure 1
	assert_output "semcachefs: cannot open /dev/fuse: Permission denied; it is mode 0600, group '$(getent group 0 | cut -d: -f1)': ask for read-write access (membership of group '$(getent group 0 | cut -d: -f1)' with mode 0660, or mode 0666 as most distributions ship it)"
	[ ! -e "$WORK/pub/store" ]
}

@test "no /dev/fuse at all: 'modprobe fuse', exit 1, no store created" {
	[ "$(id -u)" = 0 ] || skip "needs root for a mount namespace without /dev/fuse"
	command -v unshare >/dev/null || skip "needs unshare (package util-linux)"
	run unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /dev && exec "$@"' sh \
		"$SEMCACHEFS" -f -o store="$STORE" "$MNT"
	assert_failure 1
	assert_output "semcachefs: cannot open /dev/fuse: No such file or directory; the fuse kernel module is not loaded (as root: modprobe fuse)"
	[ ! -e "$STORE" ]
}
