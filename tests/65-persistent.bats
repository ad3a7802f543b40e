#!/usr/bin/env bats
# Persistent descriptors: one NAME.query opened O_RDWR answers lookup after
# lookup (a pwrite at offset 0 starts the next query, the read from offset
# 0 runs it), one NAME.response opened once fills them (a pwrite at offset
# 0 starts the answer for the session's last lookup, fsync stores it).
# The sequences a buggy or hostile client sends get an errno and a log
# line; each lookup and each fill costs at most 2 FUSE requests, counted
# with the root's fuse_requests counter (requests, not time: deterministic).
# The driver is python3 (bash has no pwrite or pread).

load helpers

setup() {
	setup_mount
	mkdir "$MNT/c"
}

teardown() { teardown_alive; }

# py ARGS... <<'EOF' CODE EOF: run CODE after the helpers below, with
# sys.argv[1] the mount point and ARGS after it. ask(fd, q) is one lookup
# on a persistent descriptor (pwrite at 0, then pread from 0 until a short
# read);
# call(name, f) prints "NAME ok [what it read, newlines as ' | ']" or
# "NAME ERRNO".
py() {
	python3 -c "$(printf '%s\n%s' "$PY_HELPERS" "$(cat)")" "$MNT" "$@"
}

PY_HELPERS=$(cat <<'EOF'
import errno, os, sys
mnt = sys.argv[1]
def p(*a):
    print(*a, flush=True)
def call(name, f):
    try:
        r = f()
    except OSError as e:
        p(name, errno.errorcode[e.errno])
        return None
    p(name, 'ok' + (' ' + r.decode(errors='replace').replace('\n', ' | ') if isinstance(r, bytes) else ''))
    return r
def ask(fd, q):
    os.pwrite(fd, q, 0)
    out = chunk = os.pread(fd, 1 << 20, 0)
    while len(chunk) == 1 << 20:   # a short read is the end
        chunk = os.pread(fd, 1 << 20, len(out))
        out += chunk
    return out
def fill(rfd, answer):
    os.pwrite(rfd, answer, 0)
    os.fsync(rfd)
def query_fd(name, cat='c'):
    return os.open('%s/%s/%s.query' % (mnt, cat, name), os.O_RDWR | os.O_CREAT, 0o600)
def response_fd(name, cat='c'):
    return os.open('%s/%s/%s.response' % (mnt, cat, name), os.O_WRONLY)
_stats = None
def requests():
    # one held .stats read from offset 0: a single READ, no path walk
    # (a walk would add a GETATTR whenever a directory's 1 s attributes
    # expired in between, which a slow machine makes likely)
    global _stats
    if _stats is None:
        _stats = os.open(mnt + '/.stats', os.O_RDONLY)
        os.pread(_stats, 1 << 16, 0)  # the first read shows the open's figures
    for line in os.pread(_stats, 1 << 16, 0).decode().splitlines():
        if line.startswith('fuse_requests: '):
            return int(line.split()[1])
EOF
)

stat_of() { sed -n "s/^$1: //p" "$MNT/c/.stats"; }

@test "one NAME.query descriptor answers many lookups: miss, fill, hit, paraphrase, a shorter query that misses" {
	run py <<'EOF'
fd = query_fd('p')
call('miss', lambda: ask(fd, b'how do I reverse a list in python'))
rfd = response_fd('p')
call('fill', lambda: fill(rfd, b'use reversed(xs) or xs[::-1]'))
call('exact', lambda: ask(fd, b'how do I reverse a list in python'))
call('paraphrase', lambda: ask(fd, b'python: reverse a list'))
call('other', lambda: ask(fd, b'what is rust'))
EOF
	assert_success
	assert_line "miss ok miss | "
	assert_line "fill ok"
	assert_line --regexp '^exact ok hit score=1\.000 entry=[0-9]+ age=[0-9]+ match=exact \| use reversed\(xs\) or xs\[::-1\]$'
	assert_line --regexp '^paraphrase ok hit score=0\.9[0-9]+ entry=[0-9]+ age=[0-9]+ match=semantic \| use reversed\(xs\) or xs\[::-1\]$'
	assert_line --regexp '^other ok miss( best=[0-9.-]+ entry=[0-9]+)? \| $'
	# the session shows the last query, whole and alone
	run cat "$MNT/c/p.query"
	assert_output "what is rust"
	[ "$(stat_of lookups)" = 4 ]
	[ "$(stat_of fills)" = 1 ]
	[ "$(stat_of hits)" = 2 ]
}

@test "one NAME.response descriptor fills one lookup after another, each answer whole" {
	run py <<'EOF'
fd = query_fd('p')
ask(fd, b'how do I reverse a list in python')
rfd = response_fd('p')
call('fill1', lambda: fill(rfd, b'a long first answer: use reversed(xs) or xs[::-1]'))
call('miss2', lambda: ask(fd, b'what is the capital of france'))
call('fill2', lambda: fill(rfd, b'Paris'))
call('hit2', lambda: ask(fd, b'what is the capital of france'))
call('hit1', lambda: ask(fd, b'how do I reverse a list in python'))
EOF
	assert_success
	assert_line "fill1 ok"
	assert_line --regexp '^miss2 ok miss( best=[0-9.-]+ entry=[0-9]+)? \| $'
	assert_line "fill2 ok"
	assert_line --regexp '^hit2 ok hit score=1\.000 .* match=exact \| Paris$'
	assert_line --regexp '^hit1 ok hit score=1\.000 .* match=exact \| a long first answer: use reversed\(xs\) or xs\[::-1\]$'
	[ "$(stat_of fills)" = 2 ]
	run stored_responses
	assert_output 2
}

@test "a query longer than the kernel's largest write, split across offsets, is one query" {
	printf 'limits:\n  query_bytes: 4194304\n' >"$MNT/c/policy.yaml"
	run py <<'EOF'
import hashlib
# 1.5 MiB: more than one FUSE write (at most 1 MiB by default), so the
# kernel splits a single pwrite; words vary so that the tail matters
big = b''.join(b'word%d ' % i for i in range(200000))[:1536 * 1024]
fd = query_fd('b')
a = requests(); b = requests()
before = requests()
call('miss', lambda: ask(fd, big))
p('lookup requests', requests() - before - (b - a))
p('query', hashlib.sha256(open(mnt + '/c/b.query', 'rb').read()).hexdigest() == hashlib.sha256(big).hexdigest())
rfd = response_fd('b')
call('fill', lambda: fill(rfd, b'the big answer'))
# the same query written in three pieces at rising offsets, as a client
# or the kernel splits it
os.pwrite(fd, big[:700000], 0)
os.pwrite(fd, big[700000:1200000], 700000)
os.pwrite(fd, big[1200000:], 1200000)
call('pieces', lambda: os.pread(fd, 1 << 20, 0))
# only the last word differs: no exact hit
call('tail', lambda: ask(fd, big[:-8] + b'changed!'))
call('short', lambda: ask(fd, b'what is rust'))
EOF
	assert_success
	assert_line "query True"
	assert_line --regexp '^pieces ok hit score=1\.000 .* match=exact \| the big answer$'
	refute_line --regexp '^tail ok .*match=exact'
	assert_line --regexp '^tail ok (hit|miss)'
	assert_line --regexp '^short ok miss'
	# the single pwrite arrived in more than one request (one lookup:
	# writes plus one read)
	local reqs
	reqs=$(sed -n 's/^lookup requests //p' <<<"$output")
	echo "# a 1.5 MiB lookup: $reqs FUSE requests" >&3
	((reqs >= 3))
	run cat "$MNT/c/b.query"
	assert_output "what is rust"
}

@test "fsync of NAME.response with no answer written for the session's last lookup is ENODATA" {
	run py <<'EOF'
fd = query_fd('p')
ask(fd, b'how do I reverse a list in python')
rfd = response_fd('p')
call('fsync-nothing', lambda: os.fsync(rfd))
os.pwrite(rfd, b'reversed(xs)', 0)
call('fsync', lambda: os.fsync(rfd))
call('fsync-again', lambda: os.fsync(rfd))     # that answer is durable
ask(fd, b'how do I reverse a list in python')  # a new lookup (a hit)
call('fsync-after-lookup', lambda: os.fsync(rfd))
call('close', lambda: os.close(rfd))           # close has nothing to store
EOF
	assert_success
	assert_line "fsync-nothing ENODATA"
	assert_line "fsync ok"
	assert_line "fsync-again ok"
	assert_line "fsync-after-lookup ENODATA"
	assert_line "close ok"
	[ "$(stat_of fills)" = 1 ]
	grep -q "fsync of '/c/p.response' by uid $(id -u) refused (ENODATA)" "$LOG"
}

@test "a write at a gap offset is EINVAL and refuses that query or answer until a write at offset 0" {
	run py <<'EOF'
fd = query_fd('p')
os.pwrite(fd, b'how do I reverse', 0)
call('query-gap', lambda: os.pwrite(fd, b' a list in python', 17))
call('query-read', lambda: os.pread(fd, 4096, 0))
call('query-anew', lambda: ask(fd, b'how do I reverse a list in python'))
# an empty query: a write of nothing sends no request, a truncation does
call('query-empty', lambda: (os.ftruncate(fd, 0), os.pread(fd, 4096, 0))[1])
call('query-again', lambda: ask(fd, b'how do I reverse a list in python'))
fresh = os.open(mnt + '/c/p2.query', os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
call('fresh-empty', lambda: (os.ftruncate(fresh, 0), os.pread(fresh, 4096, 0))[1])
rfd = response_fd('p')
os.pwrite(rfd, b'reversed', 0)
call('answer-gap', lambda: os.pwrite(rfd, b'(xs)', 9))
call('answer-fsync', lambda: os.fsync(rfd))
call('answer-anew', lambda: fill(rfd, b'reversed(xs)'))
call('hit', lambda: ask(fd, b'how do I reverse a list in python'))
EOF
	assert_success
	assert_line "query-gap EINVAL"
	assert_line "query-read EINVAL"
	assert_line --regexp '^query-anew ok miss'
	assert_line "query-empty EINVAL"
	assert_line --regexp '^query-again ok miss'
	assert_line "fresh-empty EINVAL" # nothing held yet (under UBSan too)
	assert_line "answer-gap EINVAL"
	assert_line "answer-fsync EINVAL"
	assert_line "answer-anew ok"
	assert_line --regexp '^hit ok hit score=1\.000 .* match=exact \| reversed\(xs\)$'
	[ "$(stat_of fills)" = 1 ]
	grep -q "write of '/c/p.query' by uid $(id -u) refused (EINVAL): a write at offset 17 would leave a hole after byte 16" "$LOG"
	grep -q "write of '/c/p.response' by uid $(id -u) refused (EINVAL)" "$LOG"
}

@test "an answer written before a newer lookup of NAME is ESTALE: it never fills the newer query" {
	run py <<'EOF'
fd = query_fd('p')
ask(fd, b'how do I reverse a list in python')
rfd = response_fd('p')
os.pwrite(rfd, b'reversed(xs)', 0)
ask(fd, b'what is the capital of france')        # replaces the lookup answered
call('fsync', lambda: os.fsync(rfd))
call('newer', lambda: ask(fd, b'what is the capital of france'))
call('fill', lambda: fill(rfd, b'Paris'))
call('hit', lambda: ask(fd, b'what is the capital of france'))
call('older', lambda: ask(fd, b'how do I reverse a list in python'))
EOF
	assert_success
	assert_line "fsync ESTALE"
	assert_line --regexp '^newer ok miss'
	assert_line "fill ok"
	assert_line --regexp '^hit ok hit score=1\.000 .* match=exact \| Paris$'
	assert_line --regexp '^older ok miss'
	[ "$(stat_of fills)" = 1 ]
	grep -q "fill of '/c/p.response' by uid $(id -u) refused (ESTALE): a newer lookup of the session replaced" "$LOG"
}

@test "a fill after a hit replaces the entry, as a fill through the three-file protocol does" {
	run py <<'EOF'
fd = query_fd('p')
ask(fd, b'how do I reverse a list in python')
rfd = response_fd('p')
fill(rfd, b'reversed(xs)')
call('hit', lambda: ask(fd, b'how do I reverse a list in python'))
call('refill', lambda: fill(rfd, b'xs[::-1]'))
call('replaced', lambda: ask(fd, b'how do I reverse a list in python'))
EOF
	assert_success
	assert_line --regexp '^hit ok hit .* match=exact \| reversed\(xs\)$'
	assert_line "refill ok"
	assert_line --regexp '^replaced ok hit .* match=exact \| xs\[::-1\]$'
	[ "$(stat_of entries)" = 1 ]
}

@test "persistent descriptors of an unlinked file or a removed category answer ESTALE; a new category of that name is untouched" {
	mkdir "$MNT/gone"
	run py <<'EOF'
fd = query_fd('p')
ask(fd, b'how do I reverse a list in python')
rfd = response_fd('p')
os.unlink(mnt + '/c/p.query')
call('unlinked-lookup', lambda: ask(fd, b'what is the capital of france'))
os.unlink(mnt + '/c/p.response')
call('unlinked-fill', lambda: fill(rfd, b'Paris'))
gfd = query_fd('g', 'gone')
ask(gfd, b'how do I reverse a list in python')
grfd = response_fd('g', 'gone')
for f in ('query', 'status', 'response', 'neighbors'):
    os.unlink('%s/gone/g.%s' % (mnt, f))
os.rmdir(mnt + '/gone')
os.mkdir(mnt + '/gone')
nfd = query_fd('g', 'gone')
call('new-miss', lambda: ask(nfd, b'what is the capital of france'))
call('removed-lookup', lambda: ask(gfd, b'how do I reverse a list in python'))
call('removed-fill', lambda: fill(grfd, b'reversed(xs)'))
call('new-still-miss', lambda: ask(nfd, b'what is the capital of france'))
for d in (fd, rfd, gfd, grfd, nfd):
    call('close', lambda: os.close(d))
EOF
	assert_success
	assert_line "unlinked-lookup ESTALE"
	assert_line "unlinked-fill ESTALE"
	assert_line "removed-lookup ESTALE"
	assert_line "removed-fill ESTALE"
	assert_line "new-miss ok miss | "
	assert_line "new-still-miss ok miss | "
	refute_line --regexp '^close [A-Z]'
	run stored_responses
	assert_output 0
	grep -q "lookup of '/c/p.query' by uid $(id -u) refused (ESTALE)" "$LOG"
	grep -q "fill of '/gone/g.response' by uid $(id -u) refused (ESTALE)" "$LOG"
	still_answers c
}

@test "another user's descriptor cannot fill your miss" {
	need_users
	mkdir "$MNT/open"
	chmod 1777 "$MNT/open"
	run py <<'EOF'
r1, w1 = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    # nobody: a session s of its own, descriptors kept open, its files removed
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    fd = query_fd('s', 'open')
    call('nobody-miss', lambda: ask(fd, b'how do I reverse a list in python'))
    rfd = response_fd('s', 'open')
    for f in ('query', 'status', 'response', 'neighbors'):
        os.unlink('%s/open/s.%s' % (mnt, f))
    os.write(w1, b'1')
    os.read(r2, 1)
    # root's session s now: nobody's old descriptors, and a new open
    call('nobody-fill', lambda: fill(rfd, b'rm -rf /'))
    call('nobody-lookup', lambda: ask(fd, b'how do I reverse a list in python'))
    call('nobody-open', lambda: response_fd('s', 'open'))
    os._exit(0)
os.read(r1, 1)
fd = query_fd('s', 'open')
call('root-miss', lambda: ask(fd, b'how do I reverse a list in python'))
os.write(w2, b'1')
os.waitpid(pid, 0)
call('root-still-miss', lambda: ask(fd, b'how do I reverse a list in python'))
EOF
	assert_success
	assert_line "nobody-miss ok miss | "
	assert_line "root-miss ok miss | "
	assert_line "nobody-fill ESTALE"
	assert_line "nobody-lookup ESTALE"
	assert_line "nobody-open EACCES"
	assert_line "root-still-miss ok miss | "
	run cat "$MNT/open/s.query"
	assert_output "how do I reverse a list in python"
	[ "$(sed -n 's/^fills: //p' "$MNT/open/.stats")" = 0 ]
	grep -q "fill of '/open/s.response' by uid 65534 refused (ESTALE)" "$LOG"
}

@test "a lookup and a fill on persistent descriptors cost at most 2 FUSE requests each" {
	run py <<'EOF'
a = requests(); b = requests()
cost = b - a                      # what reading .stats itself costs
def counted(f):
    before = requests()
    f()
    return requests() - before - cost
fd = query_fd('p')
rfd = None
qs = [b'how do I reverse a list in python', b'what is the capital of france',
      b'python: reverse a list', b'how tall is mount everest', b'what is rust']
for i, q in enumerate(qs * 2):
    p('lookup', counted(lambda: ask(fd, q)))
    if rfd is None:
        rfd = response_fd('p')
    if i < len(qs):               # the first round misses: fill each
        p('fill', counted(lambda: fill(rfd, b'answer %d' % i)))
p('open', counted(lambda: os.close(query_fd('x'))))
EOF
	assert_success
	echo "$output" | sort | uniq -c | sed 's/^/# /' >&3
	local kind n lookups=0 fills=0
	while read -r kind n; do
		case $kind in
		lookup) ((n >= 1 && n <= 2)) || fail "a lookup cost $n requests"; lookups=$((lookups + 1)) ;;
		fill) ((n >= 1 && n <= 2)) || fail "a fill cost $n requests"; fills=$((fills + 1)) ;;
		open) ((n > 2)) || fail "an open and close cost $n requests: the counter does not count" ;;
		esac
	done <<<"$output"
	[ "$lookups" = 10 ]
	[ "$fills" = 5 ]
	# they were real: the second round hit every answer
	[ "$(stat_of hits)" -ge 5 ]
	[ "$(stat_of fills)" = 5 ]
}
