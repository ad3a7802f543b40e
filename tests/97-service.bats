#!/usr/bin/env bats
# Running as a service: the systemd units meson installs pass
# systemd-analyze verify, and the daemon tells a Type=notify service
# manager READY=1 once the mount answers and STOPPING=1 at unmount (through
# a NOTIFY_SOCKET this test listens on, as systemd does).

load helpers

setup() { setup_work; }
teardown() {
	[ -z "${LISTENER_PID:-}" ] || kill "$LISTENER_PID" 2>/dev/null || true
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
