#!/usr/bin/env bats
# The file protocol under hostile input: random names (any byte, control
# characters, long), huge writes, writes at odd offsets, truncate, partial
# writes, 200 open handles on one name, concurrent writers to one
# NAME.query. Every failure must be an errno from an allowed set, and the
# daemon must be alive and answering afterwards.
#
# CI profile: 400 random operations per test; SEMCACHE_LONG=1: 5000.

load helpers

setup() {
	setup_mount
	mkdir "$MNT/code"
	OPS=400
	[ "${SEMCACHE_LONG:-0}" = 1 ] && OPS=5000
	SEED=${SEMCACHE_SEED:-$RANDOM}
	echo "# seed $SEED" >&3
}

teardown() { teardown_alive; }

ALLOWED="EINVAL ENAMETOOLONG ENOENT EACCES EFBIG EPERM EISDIR ENOTDIR EEXIST ENOTEMPTY EXDEV"

answers_with_stats() {
	still_answers code
	run cat "$MNT/.stats"
	assert_success
	assert_line --regexp '^entries: [0-9]+$'
}

# pyfuzz MODE: run the python driver; it prints "errno-name count" lines
pyfuzz() {
	python3 - "$MNT" "$1" "$OPS" "$SEED" <<'EOF'
import errno, os, random, sys, threading
mnt, mode, ops, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
seen = {}
def note(e):
    n = errno.errorcode.get(e.errno, str(e.errno))
    seen[n] = seen.get(n, 0) + 1
def rname():
    k = rnd.choice([1, 5, 20, 199, 200, 201, 255, 300])
    b = bytes(rnd.choice([rnd.randrange(1, 256), rnd.randrange(1, 32), 0x2e, 0x61])
              for _ in range(k)).replace(b'/', b'_')
    if b in (b'.', b'..'):
        b += b'x'
    return b + rnd.choice([b'', b'.query', b'.response', b'.status', b'.context', b'.stats', b'.policy', b'policy.yaml'])
def attempt(fn):
    try:
        fn()
    except OSError as e:
        note(e)
base = os.fsencode(mnt) + b'/code/'
if mode == 'names':
    for i in range(ops):
        p = base + rname()
        op = rnd.randrange(6)
        if op == 0:
            def f():
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, b'what is ' + bytes(rnd.randrange(256) for _ in range(20)))
                finally:
                    os.close(fd)
            attempt(f)
        elif op == 1:
            attempt(lambda: os.stat(p))
        elif op == 2:
            attempt(lambda: os.mkdir(p))
        elif op == 3:
            attempt(lambda: os.unlink(p))
        elif op == 4:
            attempt(lambda: os.rename(p, base + rname()))
        else:
            def f():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.read(fd, 65536)
                finally:
                    os.close(fd)
            attempt(f)
elif mode == 'writes':
    for i in range(ops):
        name = base + b'w%d' % rnd.randrange(8)
        p = name + rnd.choice([b'.query', b'.response', b'.context', b'.scratch'])
        op = rnd.randrange(5)
        def f():
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | rnd.choice([0, os.O_TRUNC, os.O_APPEND]), 0o644)
            try:
                if op == 0:      # huge write
                    os.write(fd, b'q' * rnd.choice([65535, 65537, 1 << 20, (16 << 20) + 1]))
                elif op == 1:    # odd offsets, possibly far beyond the end
                    os.pwrite(fd, b'odd offset question', rnd.choice([1, 3, 4095, 65533, 1 << 30, (1 << 40) + 7]))
                elif op == 2:    # truncate up and down
                    os.ftruncate(fd, rnd.choice([0, 1, 7, 65536, 65537, 1 << 30]))
                elif op == 3:    # partial writes in small pieces
                    for k in range(rnd.randrange(1, 20)):
                        os.write(fd, bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 50))))
                else:
                    os.write(fd, b'question %d about odd writes' % i)
            finally:
                os.close(fd)
        attempt(f)
        if rnd.randrange(4) == 0:
            attempt(lambda: os.truncate(p, rnd.choice([0, 5, 70000])))
elif mode == 'handles':
    p = base + b'many.query'
    fds = []
    for i in range(200):
        try:
            fds.append(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as e:
            note(e)
    for i, fd in enumerate(fds):
        try:
            os.pwrite(fd, b'handle %03d asks the same question' % i, 0)
        except OSError as e:
            note(e)
    for fd in fds:
        try:
            os.close(fd)
        except OSError as e:
            note(e)
    seen['opened'] = len(fds)
elif mode == 'concurrent':
    p = base + b'same.query'
    def writer(t):
        r = random.Random(seed + t)
        for i in range(ops // 8):
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, b'writer %d question %d about concurrency' % (t, r.randrange(3)))
                finally:
                    os.close(fd)
                with open(base + b'same.status', 'rb') as s:
                    s.read()
            except OSError as e:
                note(e)
    ts = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in ts: t.start()
    for t in ts: t.join()
for k in sorted(seen):
    print(k, seen[k])
EOF
}

# errnos_allowed: every line of $output names an allowed errno (or a count)
errnos_allowed() {
	local name n
	while read -r name n; do
		[ -n "$name" ] || continue
		[ "$name" = opened ] && continue
		if [[ " $ALLOWED " != *" $name "* ]]; then
			echo "errno $name ($n times) is not among: $ALLOWED" >&2
			return 1
		fi
	done <<<"$output"
}

@test "random names (any byte, control characters, long) get allowed errnos only" {
	run pyfuzz names
	assert_success
	echo "$output" | sed 's/^/# /' >&3
	errnos_allowed
	answers_with_stats
}

@test "huge writes, odd offsets, truncate and partial writes get allowed errnos only" {
	run pyfuzz writes
	assert_success
	echo "$output" | sed 's/^/# /' >&3
	errnos_allowed
	answers_with_stats
}

@test "200 open handles on one NAME.query all close and the lookup is done" {
	run pyfuzz handles
	assert_success
	assert_line "opened 200"
	errnos_allowed
	run cat "$MNT/code/many.status"
	assert_output --regexp '^(hit|miss)'
	answers_with_stats
}

@test "8 concurrent writers of one NAME.query leave one whole question and status" {
	run pyfuzz concurrent
	assert_success
	errnos_allowed
	run cat "$MNT/code/same.query"
	assert_output --regexp '^writer [0-7] question [0-2] about concurrency$'
	run cat "$MNT/code/same.status"
	assert_output --regexp '^(hit|miss)'
	answers_with_stats
}

@test "control characters and over-long names are refused with EINVAL or ENAMETOOLONG" {
	run "$FSOP" write "$MNT/code/a"$'\x01'"b.query" "question"
	assert_output "EINVAL at open"
	run "$FSOP" write "$MNT/code/$(printf 'n%.0s' $(seq 1 201)).query" "question"
	assert_output --regexp '^(EINVAL|ENAMETOOLONG) at open$'
	run "$FSOP" mkdir "$MNT/code/tab"$'\t'"dir"
	assert_output "EINVAL at mkdir"
	answers_with_stats
}
