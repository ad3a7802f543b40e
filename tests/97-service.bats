#!/usr/bin/env bats
# Running as a service: the systemd units meson installs pass
# systemd-analyze verify, and the daemon tells a Type=notify service
# manager READY=1 once the mount answers and STOPPING=1 at unmount (through
# a NOTIFY_SOCKET this test listens on, as systemd does).

load helpers

setup() { setup_work; }
teardown() {
	[ -z "${LISTENER_PID:-}" ] || kill "$LISTENER_PID" 2>/dev/null || true
	# a test that failed between its SIGKILL and the restart leaves a dead mount
	if [ -z "${DAEMON_PID:-}" ] && is_mounted; then fusermount3 -u -z "$MNT" || true; fi
	teardown_mount
}

require_analyze() {
	command -v systemd-analyze >/dev/null ||
		skip "needs systemd-analyze (package systemd) to verify the units"
}

# links_libsystemd: the daemon was built with sd_notify
links_libsystemd() {
	ldd "$SEMCACHEFS" | grep -q 'libsystemd\.so'
}

# install_path FILE: where meson install puts build file FILE
install_path() {
	meson introspect "$BUILD" --installed | python3 -c '
import json, sys
for src, dst in json.load(sys.stdin).items():
    if src.endswith("/" + sys.argv[1]):
        print(dst)' "$1"
}

# verify_unit UNIT INSTANCE [--user]: systemd-analyze verify of the unit
# as built for installation, as instance INSTANCE, with its ExecStart
# pointed at this build's binary (the installed path need not exist here)
verify_unit() {
	local unit=$1 instance=$2 bindir
	shift 2
	bindir=$(meson introspect "$BUILD" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"].rstrip("/") + "/" + o["bindir"])')
	mkdir -p "$WORK/units" "$WORK/run"
	chmod 700 "$WORK/run"
	grep -q "^ExecStart=$bindir/semcachefs " "$BUILD/fs/$unit"
	sed "s#^ExecStart=$bindir/semcachefs #ExecStart=$SEMCACHEFS #" "$BUILD/fs/$unit" \
		>"$WORK/units/semcachefs@$instance.service"
	XDG_RUNTIME_DIR=$WORK/run run systemd-analyze verify --man=no "$@" \
		"$WORK/units/semcachefs@$instance.service"
}

@test "service: the user unit is installed into the user unit directory" {
	run install_path "semcachefs@.service"
	assert_success
	assert_output --regexp '/lib/systemd/user/semcachefs@\.service$'
}

@test "service: the user unit passes systemd-analyze verify without a warning" {
	require_analyze
	verify_unit "semcachefs@.service" "home-u-semcache" --user
	assert_success
	assert_output ""
	run grep -x 'ExecStop=/.*/fusermount3 -u %f' "$BUILD/fs/semcachefs@.service"
	assert_success
}

@test "service: the system unit example passes systemd-analyze verify without a warning" {
	require_analyze
	verify_unit "semcachefs-system@.service" "srv-semcache"
	assert_success
	assert_output ""
	run install_path "semcachefs-system@.service"
	assert_output --regexp '/share/doc/semcachefs/examples/systemd/system/semcachefs@\.service$'
}

@test "service: the unit is Type=notify exactly when the daemon has sd_notify" {
	if links_libsystemd; then
		run grep -c '^Type=notify$' "$BUILD/fs/semcachefs@.service" "$BUILD/fs/semcachefs-system@.service"
	else
		run grep -c '^Type=exec$' "$BUILD/fs/semcachefs@.service" "$BUILD/fs/semcachefs-system@.service"
	fi
	assert_success
	assert_line --index 0 --regexp '/semcachefs@\.service:1$'
	assert_line --index 1 --regexp '/semcachefs-system@\.service:1$'
}

@test "service: READY=1 arrives once the mount answers, STOPPING=1 at unmount" {
	links_libsystemd || skip "built without libsystemd (package libsystemd-dev): no sd_notify"
	# each datagram as one line, with whether MNT was mounted when it came
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[3], "w").close()
while True:
    msg = s.recv(4096).decode()
    up = any(l.split()[1] == sys.argv[2] for l in open("/proc/self/mounts"))
    with open(sys.argv[3], "a") as f:
        f.write(msg.replace("\n", " ") + (" [mounted]" if up else " [not mounted]") + "\n")
' "$WORK/notify" "$MNT" "$WORK/got" &
	LISTENER_PID=$!
	listening() { [ -S "$WORK/notify" ] && [ -e "$WORK/got" ]; }
	wait_until 10 listening
	NOTIFY_SOCKET=$WORK/notify start_daemon
	ready() { grep -q READY=1 "$WORK/got"; }
	wait_until 20 ready
	mkdir "$MNT/code"
	run ask code q1 "how do I reverse a list in python"
	assert_success
	assert_output "miss"
	run cat "$WORK/got"
	assert_output "READY=1 STATUS=mounted [mounted]"
	stop_daemon # fails the test unless the daemon exits 0
	stopping() { grep -q STOPPING=1 "$WORK/got"; }
	wait_until 10 stopping
	run cat "$WORK/got"
	assert_line --index 1 "STOPPING=1 STATUS=unmounting [not mounted]"
}

@test "service: a NOTIFY_SOCKET nobody listens on is logged and the mount works" {
	links_libsystemd || skip "built without libsystemd (package libsystemd-dev): no sd_notify"
	NOTIFY_SOCKET=$WORK/nobody start_daemon
	mkdir "$MNT/code"
	run ask code q1 "how do I reverse a list in python"
	assert_output "miss"
	run grep -c "cannot tell the service manager 'READY=1" "$LOG"
	assert_output "1"
}

# unit_cmds KEY: the unit's KEY= lines with the specifiers this unit uses
# replaced as systemd would for instance $INSTANCE (%f the mount point, %i
# the instance, %E the user's config directory) and ${MAINPID}, and
# ExecStart pointed at this build's binary
unit_cmds() {
	sed -n "s/^$1=//p" "$BUILD/fs/semcachefs@.service" |
		sed -e "s#%f#$MNT#g" -e "s#%i#$INSTANCE#g" -e "s#%E#$WORK/config#g" \
			-e "s#\${MAINPID}#${DAEMON_PID:-}#g" -e "s#^/[^ ]*/semcachefs #$SEMCACHEFS #"
}

# run_unit_cmd [--exec] LINE: one Exec line, split on blanks as systemd
# does, with $SEMCACHEFS_OPTIONS from the environment file; a leading '-'
# ignores failure; --exec replaces the shell (the daemon keeps its PID)
run_unit_cmd() {
	local ex=
	[ "$1" != --exec ] || { ex=1; shift; }
	local line=$1 ignore= argv=() w opts=()
	[[ $line == -* ]] && { ignore=1; line=${line#-}; }
	# the file is KEY=VALUE lines; only SEMCACHEFS_OPTIONS is set here
	read -r -a opts <<<"$(sed -n 's/^SEMCACHEFS_OPTIONS=//p' "$WORK/config/semcachefs/$INSTANCE.env")"
	for w in $line; do
		if [ "$w" = '$SEMCACHEFS_OPTIONS' ]; then argv+=("${opts[@]}"); else argv+=("$w"); fi
	done
	[ -z "$ex" ] || exec "${argv[@]}"
	"${argv[@]}" || [ -n "$ignore" ]
}

@test "service: the unit's own commands start, notify, stop and leave the store free for a new mount" {
	links_libsystemd || skip "built without libsystemd (package libsystemd-dev): no sd_notify"
	command -v systemd-escape >/dev/null || skip "needs systemd-escape (package systemd)"
	MNT=$WORK/my-cache/mnt
	INSTANCE=$(systemd-escape --path "$MNT")
	mkdir -p "$WORK/config/semcachefs"
	echo "SEMCACHEFS_OPTIONS=-o store=$STORE -o session_ttl=60" >"$WORK/config/semcachefs/$INSTANCE.env"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
while True:
    with open(sys.argv[2], "a") as f:
        f.write(s.recv(4096).decode().replace("\n", " ") + "\n")
' "$WORK/notify" "$WORK/got" &
	LISTENER_PID=$!
	listening() { [ -S "$WORK/notify" ] && [ -e "$WORK/got" ]; }
	wait_until 10 listening
	while read -r line; do run_unit_cmd "$line"; done < <(unit_cmds ExecStartPre)
	[ -d "$MNT" ] # ExecStartPre made the mount point
	NOTIFY_SOCKET=$WORK/notify run_unit_cmd --exec "$(unit_cmds ExecStart)" 2>>"$LOG" &
	DAEMON_PID=$!
	ready() { grep -q READY=1 "$WORK/got"; }
	wait_until 20 ready
	run ps -o comm= -p "$DAEMON_PID"
	assert_output semcachefs
	mkdir "$MNT/code"
	run ask code q1 "how do I reverse a list in python"
	assert_output "miss"
	fill code q1 "reversed(xs)"
	# ExecStop, line by line, as systemd runs it; what runs after is SIGTERM
	while read -r line; do run_unit_cmd "$line"; done < <(unit_cmds ExecStop)
	run kill -0 "$DAEMON_PID"
	assert_failure # the daemon is gone when ExecStop returns
	while read -r line; do run_unit_cmd "$line"; done < <(unit_cmds ExecStopPost)
	wait "$DAEMON_PID"
	DAEMON_PID=
	run tail -n 1 "$LOG"
	assert_output --regexp "info: store '.*' closed cleanly$"
	# the same store mounts again at once, with the fill kept
	start_daemon
	run ask code q2 "how do I reverse a list in python"
	assert_output --regexp '^hit score=1\.000 '
}

@test "service: after a crash the unit's ExecStopPost clears the dead mount and a restart mounts again" {
	command -v systemd-escape >/dev/null || skip "needs systemd-escape (package systemd)"
	MNT=$WORK/crashed/mnt
	INSTANCE=$(systemd-escape --path "$MNT")
	mkdir -p "$WORK/config/semcachefs"
	echo "SEMCACHEFS_OPTIONS=-o store=$STORE" >"$WORK/config/semcachefs/$INSTANCE.env"
	start_unit() {
		while read -r line; do run_unit_cmd "$line"; done < <(unit_cmds ExecStartPre)
		run_unit_cmd --exec "$(unit_cmds ExecStart)" 2>>"$LOG" &
		DAEMON_PID=$!
		wait_until 20 is_mounted
	}
	start_unit
	mkdir "$MNT/code"
	ask code q1 "how do I reverse a list in python" >/dev/null
	fill code q1 "reversed(xs)"
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" || true
	DAEMON_PID=
	run stat "$MNT"
	assert_failure
	assert_output --partial "Transport endpoint is not connected"
	# systemd runs ExecStopPost when the main process died (not ExecStop)
	while read -r line; do run_unit_cmd "$line"; done < <(unit_cmds ExecStopPost)
	run is_mounted
	assert_failure
	start_unit # Restart=on-failure
	run ask code q2 "how do I reverse a list in python"
	assert_output --regexp '^hit score=1\.000 '
}
