#!/usr/bin/env bats
# How FUSE requests reach the daemon: read/write on /dev/fuse (the default)
# or libfuse 3.18's io_uring queues (-o transport=io_uring), what
# --version and the first log line say about it, and the fall-back to
# /dev/fuse. The io_uring tests need a build against libfuse 3.18 with
# io_uring (tools/build-fuse.sh; ./setup.sh test runs this file again
# against build-fuse) and the kernel's enable_uring; they skip otherwise.

load helpers

setup() {
	require_fuse
	WORK=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache.XXXXXX")
}
teardown() { teardown_mount; }

# version_field NAME: "FAISS", "libfuse" or "FUSE transport" from --version
version_field() {
	"$SEMCACHEFS" --version |
		sed -n "s/^semcachefs [^ ]* (FAISS: \(.*\), libfuse \([^,]*\), FUSE transport: \(.*\))\$/\1\t\2\t\3/p" |
		cut -f "$(case $1 in FAISS) echo 1 ;; libfuse) echo 2 ;; *) echo 3 ;; esac)"
}

require_uring() {
	local t
	t=$(version_field transport)
	[ "$t" = "/dev/fuse (io_uring is available with -o transport=io_uring)" ] ||
		skip "no FUSE io_uring here: semcachefs --version says '$t'"
}

# ring_threads: libfuse's io_uring queue threads in the daemon
ring_threads() {
	cat /proc/"$DAEMON_PID"/task/*/comm | grep -c '^fuse-ring-' || true
}

# ring_ns: the CPU time (ns) the daemon's io_uring queue threads have run
ring_ns() {
	local t sum=0 ns
	for t in /proc/"$DAEMON_PID"/task/*; do
		grep -q '^fuse-ring-' "$t/comm" || continue
		read -r ns _ <"$t/schedstat"
		sum=$((sum + ns))
	done
	echo "$sum"
}

@test "--version names the FAISS, the libfuse and the FUSE transport" {
	run "$SEMCACHEFS" --version
	assert_success
	assert_output --regexp '^semcachefs [0-9.]+ \(FAISS: .+, libfuse 3\.[0-9]+\.[0-9]+, FUSE transport: (io_uring|/dev/fuse \(.+\))\)$'
	run "$SEMCACHEFS" -o transport=io_uring --version
	assert_success
	if [ "$(version_field transport)" = "/dev/fuse (io_uring is available with -o transport=io_uring)" ]; then
		assert_output --regexp ', FUSE transport: io_uring\)$'
	else
		assert_output --regexp ', FUSE transport: /dev/fuse \(no io_uring: .+\)\)$'
	fi
}

@test "the first log line names the FAISS, the libfuse and the transport; the default is /dev/fuse" {
	local faiss lib t
	faiss=$(version_field FAISS)
	lib=$(version_field libfuse)
	t=$(version_field transport)
	[ -n "$faiss" ] && [ -n "$lib" ] && [[ "$t" == /dev/fuse* ]]
	setup_mount
	mkdir "$MNT/chat"
	run ask chat q "is the cache up"
	assert_miss
	run head -n 1 "$LOG"
	assert_output --regexp "^[0-9T:.-]+Z info: semcachefs [0-9.]+: FAISS .+, libfuse .+, FUSE transport .+\$"
	assert_output --partial ": FAISS $faiss, libfuse $lib, FUSE transport $t"
	[ "$(ring_threads)" = 0 ]
}

@test "-o transport with an unknown value: exit 2" {
	run "$SEMCACHEFS" -f -o store="$WORK/store" -o transport=fast "$WORK"
	assert_failure 2
	assert_output "semcachefs: -o transport='fast' is not 'dev_fuse' or 'io_uring'"
}

@test "-o transport=io_uring without io_uring here: exit 1 naming why, nothing mounted" {
	local t
	t=$(version_field transport)
	[[ "$t" == "/dev/fuse (no io_uring: "* ]] ||
		skip "io_uring is available here ('$t'): the other tests cover it"
	mkdir "$WORK/mnt"
	run "$SEMCACHEFS" -f -o store="$WORK/store" -o transport=io_uring "$WORK/mnt"
	assert_failure 1
	t=${t#/dev/fuse (no io_uring: }
	assert_output "semcachefs: -o transport=io_uring: ${t%)}"
	run grep -qs " $WORK/mnt fuse" /proc/self/mounts
	assert_failure 1
}

@test "-o transport=io_uring: libfuse's queue threads answer the requests" {
	require_uring
	setup_mount -o transport=io_uring
	mkdir "$MNT/chat"
	run ask chat q0 "is the cache up"
	assert_miss
	[ "$(ring_threads)" = "$(getconf _NPROCESSORS_CONF)" ]
	run head -n 1 "$LOG"
	assert_output --regexp ", FUSE transport io_uring\$"
	local before after i
	before=$(ring_ns)
	for ((i = 1; i <= 50; i++)); do
		ask chat "q$i" "question number $i" >/dev/null
	done
	after=$(ring_ns)
	((after > before))
	run ask chat q1b "question number 1"
	assert_miss
	fill chat q1b "answer one"
	run ask chat q1c "question number 1"
	assert_output --regexp '^hit score=1\.000 entry=[0-9]+ age=[0-9]+ match=exact$'
	run grep -c 'serving through /dev/fuse' "$LOG"
	assert_output 0
}

@test "io_uring set-up fails: libfuse serves through /dev/fuse, one log line says so" {
	require_uring
	# more entries than an io_uring queue can have: libfuse's ring set-up fails
	setup_mount -o transport=io_uring -o io_uring_q_depth=65536
	mkdir "$MNT/chat"
	run ask chat q "is the cache up"
	assert_miss
	[ "$(ring_threads)" = 0 ]
	run grep -c "warning: io_uring set-up failed (libfuse: '.*'): serving through /dev/fuse\$" "$LOG"
	assert_output 1
}
