#!/usr/bin/env bats
# 40-examples.bats - the client examples (examples/semcache-ask and
# examples/semcache_ask.py) against a real mount. The "LLM" is a small
# script written into $WORK that logs each call to $CALLS, so every test
# asserts exactly how many times the LLM ran.

bats_require_minimum_version 1.5.0

load helpers
setup() { setup_mount; }
teardown() { teardown_mount; }

EXAMPLES=$TESTS_DIR/../examples
ASK=$EXAMPLES/semcache-ask
PYASK=$EXAMPLES/semcache_ask.py

# make_llm: $LLM answers "answer to [QUESTION]\n"; $FAIL_LLM prints a partial
# answer and exits 3; both append a line to $CALLS per call.
make_llm() {
	CALLS=$WORK/calls
	LLM=$WORK/llm
	FAIL_LLM=$WORK/failing-llm
	cat >"$LLM" <<-EOF
		#!/usr/bin/env bash
		echo call >>"$CALLS"
		q=\$(cat)
		printf 'answer to [%s]\n' "\$q"
	EOF
	cat >"$FAIL_LLM" <<-EOF
		#!/usr/bin/env bash
		echo call >>"$CALLS"
		cat >/dev/null
		printf 'partial'
		exit 3
	EOF
	chmod +x "$LLM" "$FAIL_LLM"
}

# calls: how many times an LLM script ran.
calls() {
	if [ -f "$CALLS" ]; then
		wc -l <"$CALLS"
	else
		echo 0
	fi
}

# session_files DIR: the session files left in DIR (the views are dot
# files; entries/ is the cache's own listing).
session_files() {
	ls -I entries "$MNT/$1"
}

setup_category() {
	mkdir "$MNT/code"
	make_llm
}

# ---- semcache-ask ----

@test "semcache-ask: a miss runs the LLM once and prints its answer" {
	setup_category
	run -0 "$ASK" "$MNT/code" -- "$LLM" <<<"how do I reverse a list in python"
	assert_output "answer to [how do I reverse a list in python]"
	assert_equal "$(calls)" 1
}

@test "semcache-ask: the same question again is a hit with identical bytes and no LLM call" {
	setup_category
	"$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM" >"$WORK/first"
	"$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM" >"$WORK/second"
	assert_equal "$(calls)" 1
	printf 'answer to [how do I reverse a list in python]\n' >"$WORK/expected"
	cmp "$WORK/expected" "$WORK/first"
	cmp "$WORK/expected" "$WORK/second"
}

@test "semcache-ask: a paraphrase is a hit without calling the LLM" {
	setup_category
	run -0 "$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	run -0 "$ASK" -q "python: reverse a list" "$MNT/code" -- "$LLM"
	assert_output "answer to [how do I reverse a list in python]"
	assert_equal "$(calls)" 1
}

@test "semcache-ask: an unrelated question calls the LLM" {
	setup_category
	run -0 "$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	run -0 "$ASK" -q "what is the boiling point of water at sea level" "$MNT/code" -- "$LLM"
	assert_output "answer to [what is the boiling point of water at sea level]"
	assert_equal "$(calls)" 2
}

@test "semcache-ask: a failing LLM passes its exit status through and nothing is cached" {
	setup_category
	run -3 --separate-stderr "$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$FAIL_LLM"
	assert_output "partial"
	assert_equal "$stderr" "semcache-ask: $FAIL_LLM exited with status 3; answer not cached"
	run -3 "$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$FAIL_LLM"
	assert_equal "$(calls)" 2
	run -0 "$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	assert_output "answer to [how do I reverse a list in python]"
	assert_equal "$(calls)" 3
}

@test "semcache-ask: an empty LLM answer is printed as nothing and not cached" {
	setup_category
	printf '#!/bin/sh\necho call >>"%s"\n' "$CALLS" >"$WORK/silent"
	chmod +x "$WORK/silent"
	run -0 --separate-stderr "$ASK" -q "what is a monad" "$MNT/code" -- "$WORK/silent"
	assert_output ""
	assert_equal "$stderr" "semcache-ask: $WORK/silent printed nothing; answer not cached"
	run -0 "$ASK" -q "what is a monad" "$MNT/code" -- "$WORK/silent"
	assert_equal "$(calls)" 2
}

@test "semcache-ask: binary bytes and a missing trailing newline survive the miss and the hit" {
	setup_category
	printf 'line one\n\000\001\376\377\r\n\n\nno newline at the end' >"$WORK/expected"
	printf '#!/bin/sh\necho call >>"%s"\ncat >/dev/null\ncat "%s"\n' \
		"$CALLS" "$WORK/expected" >"$WORK/binary-llm"
	chmod +x "$WORK/binary-llm"
	"$ASK" -q "dump the test bytes" "$MNT/code" -- "$WORK/binary-llm" >"$WORK/miss"
	"$ASK" -q "dump the test bytes" "$MNT/code" -- "$WORK/binary-llm" >"$WORK/hit"
	cmp "$WORK/expected" "$WORK/miss"
	cmp "$WORK/expected" "$WORK/hit"
	assert_equal "$(calls)" 1
}

@test "semcache-ask: an answer ending in several newlines keeps them all" {
	setup_category
	printf 'answer\n\n\n' >"$WORK/expected"
	printf '#!/bin/sh\ncat >/dev/null\ncat "%s"\n' "$WORK/expected" >"$WORK/nl-llm"
	chmod +x "$WORK/nl-llm"
	"$ASK" -q "what ends in newlines" "$MNT/code" -- "$WORK/nl-llm" >"$WORK/miss"
	"$ASK" -q "what ends in newlines" "$MNT/code" -- "$WORK/nl-llm" >"$WORK/hit"
	cmp "$WORK/expected" "$WORK/miss"
	cmp "$WORK/expected" "$WORK/hit"
}

@test "semcache-ask: the LLM gets the question from stdin byte for byte" {
	setup_category
	printf '#!/bin/sh\ncat >"%s"\necho ok\n' "$WORK/seen" >"$WORK/record-llm"
	chmod +x "$WORK/record-llm"
	printf 'line one\nline two without newline' >"$WORK/question"
	run -0 "$ASK" "$MNT/code" -- "$WORK/record-llm" <"$WORK/question"
	assert_output "ok"
	cmp "$WORK/question" "$WORK/seen"
}

@test "semcache-ask: contexts keep answers apart" {
	setup_category
	run -0 "$ASK" -c "conversation A" -q "what did I just say" "$MNT/code" -- "$LLM"
	run -0 "$ASK" -c "conversation B" -q "what did I just say" "$MNT/code" -- "$LLM"
	assert_equal "$(calls)" 2
	run -0 "$ASK" -q "what did I just say" "$MNT/code" -- "$LLM"
	assert_equal "$(calls)" 3
	run -0 "$ASK" -c "conversation A" -q "what did I just say" "$MNT/code" -- "$LLM"
	assert_output "answer to [what did I just say]"
	assert_equal "$(calls)" 3
}

@test "semcache-ask: -v prints the lookup and fill status lines on stderr" {
	setup_category
	run -0 --separate-stderr "$ASK" -v -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	assert_output "answer to [how do I reverse a list in python]"
	assert_equal "$stderr" "semcache-ask: miss
semcache-ask: stored entry=1"
	run -0 --separate-stderr "$ASK" -v -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	assert_equal "$stderr" "semcache-ask: hit score=1.000 entry=1 age=0 match=exact"
}

@test "semcache-ask: session files are removed after a miss and after a hit" {
	setup_category
	run -0 "$ASK" -c "ctx" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	run -0 session_files code
	assert_output ""
	run -0 "$ASK" -c "ctx" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	run -0 session_files code
	assert_output ""
}

@test "semcache-ask: a directory outside semcachefs is refused with exit 2" {
	make_llm
	mkdir "$WORK/plain"
	run -2 --separate-stderr "$ASK" -q "anything" "$WORK/plain" -- "$LLM"
	assert_output ""
	assert_equal "$stderr" "semcache-ask: '$WORK/plain' is not a semcachefs category (mount semcachefs and mkdir the category first)"
	assert_equal "$(calls)" 0
}

@test "semcache-ask: an empty question is a lookup error with exit 1 and no LLM call" {
	setup_category
	run -1 --separate-stderr "$ASK" "$MNT/code" -- "$LLM" </dev/null
	assert_equal "$stderr" "semcache-ask: lookup failed: error empty query"
	assert_equal "$(calls)" 0
}

@test "semcache-ask: -h prints the usage and exits 0; a missing command exits 2" {
	run -0 "$ASK" -h
	assert_line --index 0 "usage: semcache-ask [-v] [-c CONTEXT] [-q QUESTION] CATEGORY_DIR -- LLM_COMMAND [ARGS...]"
	run -2 --separate-stderr "$ASK" "$MNT"
	assert_equal "$stderr" "semcache-ask: missing LLM_COMMAND after '--' (see semcache-ask -h)"
}

@test "semcache-ask: concurrent calls with different questions get their own answers" {
	setup_category
	local qs=("how do I reverse a list in python" "what is the capital of france"
		"how many legs does a spider have" "explain tcp slow start")
	local i pids=()
	for i in "${!qs[@]}"; do
		"$ASK" -q "${qs[i]}" "$MNT/code" -- "$LLM" >"$WORK/out$i" &
		pids+=($!)
	done
	wait "${pids[@]}" # not a bare wait: the daemon is a child too
	for i in "${!qs[@]}"; do
		assert_equal "$(cat "$WORK/out$i")" "answer to [${qs[i]}]"
	done
	run -0 session_files code
	assert_output ""
}

# ---- semcache_ask.py ----

@test "semcache_ask.py: the CLI misses, then hits with identical bytes" {
	setup_category
	printf 'py line\n\000\377no newline' >"$WORK/expected"
	printf '#!/bin/sh\necho call >>"%s"\ncat >/dev/null\ncat "%s"\n' \
		"$CALLS" "$WORK/expected" >"$WORK/binary-llm"
	chmod +x "$WORK/binary-llm"
	python3 "$PYASK" "$MNT/code" -- "$WORK/binary-llm" <<<"dump the python bytes" >"$WORK/miss"
	python3 "$PYASK" "$MNT/code" -- "$WORK/binary-llm" <<<"dump the python bytes" >"$WORK/hit"
	cmp "$WORK/expected" "$WORK/miss"
	cmp "$WORK/expected" "$WORK/hit"
	assert_equal "$(calls)" 1
	run -0 session_files code
	assert_output ""
}

@test "semcache_ask.py: the CLI hits on a paraphrase stored by semcache-ask" {
	setup_category
	run -0 "$ASK" -q "how do I reverse a list in python" "$MNT/code" -- "$LLM"
	run -0 --separate-stderr python3 "$PYASK" -v -q "python: reverse a list" "$MNT/code" -- "$LLM"
	assert_output "answer to [how do I reverse a list in python]"
	assert_regex "$stderr" '^semcache_ask\.py: hit score=[0-9.]+ entry=1 age=[0-9]+ match=semantic$'
	assert_equal "$(calls)" 1
}

@test "semcache_ask.py: a failing command passes exit 3 through and nothing is cached" {
	setup_category
	run -3 --separate-stderr python3 "$PYASK" -q "how do I reverse a list in python" "$MNT/code" -- "$FAIL_LLM"
	assert_output "partial"
	assert_equal "$stderr" "semcache_ask.py: $FAIL_LLM exited with status 3; answer not cached"
	run -3 python3 "$PYASK" -q "how do I reverse a list in python" "$MNT/code" -- "$FAIL_LLM"
	assert_equal "$(calls)" 2
}

@test "semcache_ask.py: the CLI keeps contexts apart" {
	setup_category
	run -0 python3 "$PYASK" -c "conversation A" -q "what did I just say" "$MNT/code" -- "$LLM"
	run -0 python3 "$PYASK" -c "conversation B" -q "what did I just say" "$MNT/code" -- "$LLM"
	run -0 python3 "$PYASK" -c "conversation A" -q "what did I just say" "$MNT/code" -- "$LLM"
	assert_output "answer to [what did I just say]"
	assert_equal "$(calls)" 2
}

@test "semcache_ask.py: ask() calls a Python callable only on a miss" {
	mkdir "$MNT/code"
	run -0 python3 -B -c '
import sys
sys.path.insert(0, sys.argv[1])
from semcache_ask import ask
calls = []
def llm(q):
    calls.append(q)
    return "answer: " + q.strip()
d = sys.argv[2]
a, hit, st = ask(d, "how do I reverse a list in python\n", llm)
print(repr(a), hit, st, len(calls))
a, hit, st = ask(d, "python: reverse a list", llm)
print(repr(a), hit, st.split()[0], st.split()[-1], len(calls))
a, hit, st = ask(d, b"python: reverse a list", llm)
print(repr(a), hit, len(calls))
' "$EXAMPLES" "$MNT/code"
	assert_line --index 0 "'answer: how do I reverse a list in python' False stored entry=1 1"
	assert_line --index 1 "'answer: how do I reverse a list in python' True hit match=semantic 1"
	assert_line --index 2 "b'answer: how do I reverse a list in python' True 1"
	run -0 session_files code
	assert_output ""
}

@test "semcache_ask.py: ask() without a context reuses one persistent session, removed at exit" {
	mkdir "$MNT/code"
	run -0 python3 -B -c '
import os, sys
sys.path.insert(0, sys.argv[1])
from semcache_ask import ask
d = sys.argv[2]
for q in ("how do I reverse a list in python", "what is the capital of france"):
    print(ask(d, q, lambda q: "answer to " + q)[1:])
for q in ("python: reverse a list", "what is the capital of france"):
    a, hit, st = ask(d, q, lambda q: "never")
    print(a, hit, st.split()[-1])
print(sorted(n.rsplit(".", 1)[1] for n in os.listdir(d) if n.startswith("py-")))
' "$EXAMPLES" "$MNT/code"
	assert_line --index 0 "(False, 'stored entry=1')"
	assert_line --index 1 "(False, 'stored entry=2')"
	assert_line --index 2 "answer to how do I reverse a list in python True match=semantic"
	assert_line --index 3 "answer to what is the capital of france True match=exact"
	assert_line --index 4 "['neighbors', 'query', 'response', 'status']"
	run -0 session_files code
	assert_output ""
}

@test "semcache_ask.py: ask() with a context only hits the same context" {
	mkdir "$MNT/code"
	run -0 python3 -B -c '
import sys
sys.path.insert(0, sys.argv[1])
from semcache_ask import ask
calls = []
def llm(q):
    calls.append(q)
    return "answer %d" % len(calls)
d = sys.argv[2]
print(ask(d, "what did I just say", llm, context="A")[:2])
print(ask(d, "what did I just say", llm, context="B")[:2])
print(ask(d, "what did I just say", llm, context=b"A")[:2])
' "$EXAMPLES" "$MNT/code"
	assert_output "('answer 1', False)
('answer 2', False)
('answer 1', True)"
}

@test "semcache_ask.py: ask() raises OSError EINVAL for an empty question and cleans up" {
	mkdir "$MNT/code"
	run -0 python3 -B -c '
import errno, sys
sys.path.insert(0, sys.argv[1])
from semcache_ask import ask
def llm(q):
    raise AssertionError("llm called")
try:
    ask(sys.argv[2], "", llm)
except OSError as e:
    print(type(e).__name__, errno.errorcode[e.errno])
' "$EXAMPLES" "$MNT/code"
	assert_output "SemcacheError EINVAL"
	run -0 session_files code
	assert_output ""
}

@test "semcache_ask.py: ask() refuses a directory outside semcachefs" {
	mkdir "$WORK/plain"
	run -0 python3 -B -c '
import errno, sys
sys.path.insert(0, sys.argv[1])
from semcache_ask import ask, SemcacheError
try:
    ask(sys.argv[2], "anything", lambda q: "x")
except SemcacheError as e:
    print(errno.errorcode[e.errno], e.strerror)
' "$EXAMPLES" "$WORK/plain"
	assert_output "ENOTDIR '$WORK/plain' is not a semcachefs category (mount semcachefs and mkdir the category first)"
}

@test "semcache_ask.py: ask() from several threads keeps sessions apart" {
	mkdir "$MNT/code"
	run -0 python3 -B -c '
import sys, threading
sys.path.insert(0, sys.argv[1])
from semcache_ask import ask
qs = ["how do I reverse a list in python", "what is the capital of france",
      "how many legs does a spider have", "explain tcp slow start"]
got = {}
def worker(q):
    got[q] = ask(sys.argv[2], q, lambda x: "answer to [%s]" % x)[0]
ts = [threading.Thread(target=worker, args=(q,)) for q in qs]
for t in ts: t.start()
for t in ts: t.join()
print(all(got[q] == "answer to [%s]" % q for q in qs), len(got))
' "$EXAMPLES" "$MNT/code"
	assert_output "True 4"
	run -0 session_files code
	assert_output ""
}
