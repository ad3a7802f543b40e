#!/usr/bin/env bats
# Stale descriptors: every call on a descriptor whose file is gone (the
# file unlinked, its category removed) answers with an errno or works,
# for session files, scratch files, policy.yaml, .purge and views; the
# daemon never dies. Then the protocol fuzzer (tests/tools/protofuzz.c):
# random calls from several threads on shared descriptors, for a bounded
# time (SEMCACHE_PROTOFUZZ_SECS, default 15; SEMCACHE_LONG=1: 120).

load helpers

setup() {
	setup_mount
	mkdir "$MNT/c"
}

teardown() { teardown_alive; }

PROTOFUZZ=$BUILD/tests/protofuzz

# stale PATH FLAGS REMOVE...: open PATH (r, w or rw; w and rw create it),
# write a query if writable, make the file go away with each REMOVE
# (unlink:PATH or rmdir:PATH), then print "CALL RESULT" for each call on
# the descriptor (RESULT: ok [what it read], or the errno name).
stale() {
	python3 - "$@" <<'EOF'
import errno, os, sys
path, flags, removes = sys.argv[1], sys.argv[2], sys.argv[3:]
fl = {'r': os.O_RDONLY, 'w': os.O_WRONLY | os.O_CREAT, 'rw': os.O_RDWR | os.O_CREAT}[flags]
fd = os.open(path, fl, 0o600)
def call(name, f):
    try:
        r = f()
        out = ' ' + r.decode(errors='replace').split('\n')[0] if isinstance(r, bytes) else ''
        print(name + ' ok' + out)
    except OSError as e:
        print(name + ' ' + errno.errorcode[e.errno])
if flags != 'r':
    os.write(fd, b'what is a stale descriptor')
for r in removes:
    how, p = r.split(':', 1)
    (os.unlink if how == 'unlink' else os.rmdir)(p)
if flags != 'r':
    call('ftruncate', lambda: os.ftruncate(fd, 3))
    call('pwrite', lambda: os.pwrite(fd, b'how do I reverse a list', 0))
call('fstat', lambda: os.fstat(fd))
call('fchmod', lambda: os.fchmod(fd, 0o600))
call('futimens', lambda: os.utime(fd))
call('fgetxattr', lambda: os.getxattr(fd, 'user.semcache.status'))
call('flistxattr', lambda: os.listxattr(fd))
if flags != 'w':
    call('pread', lambda: os.pread(fd, 4096, 0))
call('fsync', lambda: os.fsync(fd))
if flags != 'r':
    call('ftruncate-big', lambda: os.ftruncate(fd, 1 << 40))
call('close', lambda: os.close(fd))
EOF
}

# The calls the kernel sends without a handle for a file that is gone:
# libfuse answers them ESTALE (fs_i.h).
assert_estale_without_handle() {
	assert_line "fstat ESTALE"
	assert_line "fchmod ESTALE"
	assert_line "futimens ESTALE"
	assert_line "fgetxattr ESTALE"
	assert_line "flistxattr ESTALE"
}

@test "stale NAME.query: ftruncate and pwrite work, the lookup is ESTALE, close works" {
	run stale "$MNT/c/q.query" rw "unlink:$MNT/c/q.query"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_estale_without_handle
	assert_line "pread ESTALE" # the fast path's lookup: the file is gone
	assert_line "fsync ok"
	assert_line "ftruncate-big EFBIG"
	assert_line "close EFBIG" # a handle written past its limit never commits
	run stale "$MNT/c/q2.query" w "unlink:$MNT/c/q2.query"
	assert_success
	assert_line "fsync ESTALE"
	assert_file_not_exists "$MNT/c/q2.status"
	still_answers c
}

@test "stale NAME.query whose category is removed answers an errno, nothing crashes" {
	mkdir "$MNT/gone"
	run stale "$MNT/gone/q.query" w "unlink:$MNT/gone/q.query" "rmdir:$MNT/gone"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_estale_without_handle
	assert_line "fsync ESTALE"
	assert_line "ftruncate-big EFBIG"
	still_answers c
}

@test "stale NAME.context and NAME.response commit nothing (ESTALE); the session goes on without them" {
	ask c s "what is a stale descriptor" >/dev/null
	run stale "$MNT/c/s.context" w "unlink:$MNT/c/s.context"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_estale_without_handle
	assert_line "fsync ESTALE"
	assert_file_not_exists "$MNT/c/s.context" # not brought back
	run stale "$MNT/c/s.response" rw "unlink:$MNT/c/s.response"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_line "pread ok how do I reverse a list"
	assert_estale_without_handle
	assert_line "fsync ESTALE"
	run stored_responses
	assert_output 0
	# the session itself still works
	fill c s "a fill after all"
	run cat "$MNT/c/s.status"
	assert_output --regexp '^stored entry=[0-9]+$'
	still_answers c
}

@test "stale scratch file: ftruncate cuts it, pwrite and pread work on the file as it was" {
	printf 'scratch text' >"$MNT/c/t.swp"
	run stale "$MNT/c/t.swp" rw "unlink:$MNT/c/t.swp"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_line "pread ok how do I reverse a list"
	assert_line "fsync ok"
	assert_line "ftruncate-big EFBIG"
	assert_line "close ok"
	assert_estale_without_handle
	run "$FSOP" read "$MNT/c/t.swp"
	assert_output "ENOENT at open"
	still_answers c
}

@test "stale policy.yaml: a write-back is validated (EINVAL), a snapshot reads as it was" {
	echo "threshold: 0.9" >"$MNT/c/policy.yaml"
	run stale "$MNT/c/policy.yaml" rw "unlink:$MNT/c/policy.yaml"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_line "pread ok how do I reverse a list"
	assert_estale_without_handle
	assert_line "fsync EINVAL" # not a policy: refused, nothing installed
	assert_line "ftruncate-big EFBIG"
	assert_file_not_exists "$MNT/c/policy.yaml"
	mkdir "$MNT/p"
	echo "threshold: 0.9" >"$MNT/p/policy.yaml"
	run stale "$MNT/p/policy.yaml" r "unlink:$MNT/p/policy.yaml" "rmdir:$MNT/p"
	assert_success
	assert_line "pread ok threshold: 0.9"
	assert_line "close ok"
	still_answers c
}

@test "stale .purge and views of a removed category answer an errno or work" {
	mkdir "$MNT/v"
	run stale "$MNT/v/.stats" r "rmdir:$MNT/v"
	assert_success
	assert_line --regexp '^pread ok [a-z_]+: '
	assert_line "close ok"
	assert_estale_without_handle
	mkdir "$MNT/v"
	run stale "$MNT/v/.purge" w "rmdir:$MNT/v"
	assert_success
	assert_line "ftruncate ok"
	assert_line "pwrite ok"
	assert_line "fsync ENOENT"
	assert_line "ftruncate-big EFBIG"
	assert_estale_without_handle
	still_answers c
}

@test "a listing of a category removed while open ends with ENOENT or nothing, never a crash" {
	mkdir "$MNT/l"
	run python3 -c '
import os, sys
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(sys.argv[1])
try:
    print(len(list(os.scandir(d))))
except OSError as e:
    print(os.strerror(e.errno))
' "$MNT/l"
	assert_success
	assert_output --regexp '^(0|No such file or directory|Stale file handle)$'
	still_answers c
}

@test "NAME.feedback without a session is ENOENT at open, not ENOMEM" {
	run "$FSOP" write "$MNT/c/nosession.feedback" "wrong"
	assert_output "ENOENT at open"
}

# fastpath_twice QUERY: the fast path's pread twice after one write
fastpath_twice() {
	python3 - "$MNT/c/fp.query" "$1" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, sys.argv[2].encode())
for i in range(2):
    try:
        print('read', os.pread(fd, 4096, 0).decode(errors='replace').split('\n')[0])
    except OSError as e:
        print('read', errno.errorcode[e.errno])
os.pwrite(fd, b'a new question after the refusal', 0)
print('read', os.pread(fd, 4096, 0).decode().split('\n')[0])
os.close(fd)
EOF
}

@test "fast path: after a refused lookup every read fails with its errno, never shows the query as an answer" {
	run fastpath_twice "   "
	assert_success
	assert_line --index 0 "read EINVAL"
	assert_line --index 1 "read EINVAL"
	assert_line --index 2 "read miss"
}

@test "concurrent pread and pwrite on one NAME.query descriptor never use a freed buffer" {
	# each round a fresh descriptor, whose buffers grow (and move) while
	# two readers run the fast path on it
	run python3 - "$MNT/c/race.query" <<'EOF'
import errno, os, sys, threading
seen = set()
def guard(f):
    try:
        f()
    except OSError as e:
        seen.add(errno.errorcode[e.errno])
for r in range(150):
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.pwrite(fd, b'how do I grow buffer %d' % r, 0) # never an empty query
    def writer():
        for k in range(8, 16):
            guard(lambda: os.pwrite(fd, b'how do I grow buffer %d ' % r + b'x' * (1 << k), 0))
    def reader():
        for k in range(6):
            guard(lambda: os.pread(fd, 1 << 17, 0))
    ts = [threading.Thread(target=f) for f in (writer, reader, reader)]
    for t in ts: t.start()
    for t in ts: t.join()
    guard(lambda: os.close(fd))
print('errnos', ' '.join(sorted(seen)) or 'none')
EOF
	assert_success
	assert_output "errnos none"
	still_answers c
}

@test "renames of a name onto itself while the name comes and goes never hang the mount" {
	# found by the protocol fuzzer: libfuse locks both names of such a
	# rename and waits for itself (fs/guard.c answers it first)
	cat >"$WORK/selfrename.py" <<'EOF'
import errno, os, sys, threading, time
d, stop = sys.argv[1], sys.argv[2]
deadline = time.time() + 60
def going(): return not os.path.exists(stop) and time.time() < deadline
def guard(f):
    try:
        f()
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EINVAL):
            print('unexpected', errno.errorcode[e.errno], flush=True)
def writer(text):
    while going():
        def w():
            with open(d + '/policy.yaml', 'w') as f:
                f.write(text)
        guard(w)
        guard(lambda: os.unlink(d + '/policy.yaml'))
def renamer():
    while going():
        guard(lambda: os.rename(d + '/policy.yaml', d + '/policy.yaml'))
ts = [threading.Thread(target=writer, args=(t,)) for t in ('threshold: 0.9\n', '{{not yaml')]
ts += [threading.Thread(target=renamer) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
print('done', flush=True)
EOF
	python3 "$WORK/selfrename.py" "$MNT/c" "$WORK/stop" >"$WORK/selfrename.out" 2>&1 &
	local pid=$! seen=0
	fired() { grep -q "rename of 'policy.yaml' onto itself answered ENOENT" "$LOG"; }
	wait_until 40 fired && seen=1
	touch "$WORK/stop"
	gone() { ! kill -0 "$pid" 2>/dev/null; }
	if ! wait_until 20 gone; then
		kill_daemon # frees the requests the hung mount holds
		wait "$pid" || true
		echo "the mount hung: renames still waiting" >&2
		return 1
	fi
	wait "$pid"
	run cat "$WORK/selfrename.out"
	assert_output "done"
	((seen == 1)) # the race happened and was answered
	still_answers c
}

@test "protocol fuzzer: random calls on shared and stale descriptors from 4 threads get documented errnos only" {
	[ -x "$PROTOFUZZ" ] || skip "needs $PROTOFUZZ (ninja -C build tests/protofuzz)"
	local secs=${SEMCACHE_PROTOFUZZ_SECS:-15} seed=${SEMCACHE_SEED:-$RANDOM}
	[ "${SEMCACHE_LONG:-0}" = 1 ] && secs=120
	echo "# protofuzz seed $seed, $secs s" >&3
	run "$PROTOFUZZ" "$MNT" "$secs" "$seed" 4
	echo "$output" | sed 's/^/# /' >&3
	assert_success
	assert_line --regexp '^ops [0-9]+$'
	refute_output --partial "unexpected"
	still_answers c
}
