#!/usr/bin/env bats
# Bad input gets a clear errno, never a crash, never a damaged store. Every
# test ends by checking the daemon still answers (teardown unmounts cleanly).

load helpers

setup() {
	setup_mount
	mkdir "$MNT/code"
}

teardown() { teardown_alive; }

still_works() {
	run ask code ok "how do I reverse a list in python"
	assert_success
	assert_output --regexp '^(hit|miss)'
}

@test "a query over 64 KiB is refused with EFBIG at write" {
	run "$FSOP" writen "$MNT/code/big.query" 65537
	assert_failure 1
	assert_output "EFBIG at write"
	run "$FSOP" writen "$MNT/code/fits.query" 65536
	assert_success
	still_works
}

@test "a response over 16 MiB is refused with EFBIG and nothing is stored" {
	ask code q1 "what is a big answer"
	run "$FSOP" writen "$MNT/code/q1.response" $((16 * 1024 * 1024 + 1))
	assert_failure 1
	assert_output "EFBIG at write"
	run cat "$MNT/code/q1.status"
	assert_miss
	run ask code q2 "what is a big answer"
	assert_miss
	run cat "$MNT/code/.stats"
	assert_line "entries: 0"
}

@test "the limits follow the policy" {
	printf 'limits: {query_bytes: 100, response_bytes: 10}\n' >"$MNT/code/policy.yaml"
	run "$FSOP" writen "$MNT/code/q.query" 101
	assert_output "EFBIG at write"
	run "$FSOP" write "$MNT/code/q.query" "short question"
	assert_output "ok"
	run "$FSOP" write "$MNT/code/q.response" "an answer that is too long"
	assert_output "EFBIG at write"
}

@test "an empty query fails with EINVAL at close and says why" {
	run "$FSOP" write "$MNT/code/e.query" ""
	assert_failure 1
	assert_output "EINVAL at close"
	run cat "$MNT/code/e.status"
	assert_output "error empty query"
	run "$FSOP" write "$MNT/code/w.query" $'  \n\t '
	assert_output "EINVAL at close"
	still_works
}

@test "a fill without a prior query fails with ENOENT" {
	run "$FSOP" write "$MNT/code/nothing.response" "an answer"
	assert_failure 1
	assert_output "ENOENT at open"
	still_works
}

@test "an empty fill is refused with EINVAL" {
	ask code q1 "a question"
	run "$FSOP" write "$MNT/code/q1.response" ""
	assert_output "EINVAL at close"
}

@test "status files cannot be written" {
	ask code q1 "a question"
	run "$FSOP" write "$MNT/code/q1.status" "hit"
	assert_output "EACCES at open"
	run cat "$MNT/code/q1.status"
	assert_miss
}

@test "names with control characters are refused with EINVAL" {
	run "$FSOP" mkdir "$MNT/bad"$'\x01'"name"
	assert_output "EINVAL at mkdir"
	run "$FSOP" write "$MNT/code/q"$'\x7f'".query" "hello"
	assert_output "EINVAL at open"
	run "$FSOP" write "$MNT/code/tab"$'\t'"file" "x"
	assert_output "EINVAL at open"
	still_works
}

@test "names over 200 bytes are refused with EINVAL" {
	long=$(printf 'a%.0s' $(seq 1 201))
	run "$FSOP" mkdir "$MNT/$long"
	assert_output "EINVAL at mkdir"
	run "$FSOP" write "$MNT/code/$long.query" "hello"
	assert_output "EINVAL at open"
	ok=$(printf 'b%.0s' $(seq 1 194))
	run "$FSOP" write "$MNT/code/$ok.query" "hello"
	assert_output "ok"
}

@test "reserved names cannot become categories" {
	for name in policy.yaml x.query x.response x.status x.context .metrics .load; do
		run "$FSOP" mkdir "$MNT/code/$name"
		assert_output "EINVAL at mkdir"
	done
	for name in .stats entries .purge; do # these always exist
		run "$FSOP" mkdir "$MNT/code/$name"
		assert_output "EEXIST at mkdir"
	done
}

# README's "Reserved names:" sentence: whole names, then "names ending in"
# suffixes, each in backquotes, up to "cannot be categories".
readme_reserved() {
	sed -n '/^Reserved names:/,/^$/p' "$BATS_TEST_DIRNAME/../README.md" | tr '\n' ' ' |
		sed 's/cannot be categories.*//'
}

@test "README's reserved names are the ones the mount shows and refuses" {
	local text whole suffixes name
	text=$(readme_reserved)
	[ -n "$text" ] || fail "README.md has no 'Reserved names:' paragraph"
	whole=$(sed 's/names ending in.*//' <<<"$text" | grep -o '`[^`]*`' | tr -d '`')
	suffixes=$(sed -n 's/.*names ending in//p' <<<"$text" | grep -o '`[^`]*`' | tr -d '`')
	[ -n "$whole" ] && [ -n "$suffixes" ]
	printf 'threshold: 0.9\n' >"$MNT/policy.yaml"
	ask / q1 "a question" >/dev/null
	printf 'x' >"$MNT/scratch" # a scratch file: not reserved
	for name in $(ls -A "$MNT"); do
		case $name in
		code | scratch) ;;
		q1.*) grep -qxF -- "${name#q1}" <<<"$suffixes" ||
			fail "session file '$name' has a suffix README does not reserve" ;;
		*) grep -qxF -- "$name" <<<"$whole" ||
			fail "'$name' is in the mount root but not in README's reserved names" ;;
		esac
	done
	for name in $whole; do
		run "$FSOP" mkdir "$MNT/code/$name"
		[[ $output == "EINVAL at mkdir" || $output == "EEXIST at mkdir" ]] ||
			fail "mkdir '$name' (reserved in README): $output"
	done
	for name in $suffixes; do
		run "$FSOP" mkdir "$MNT/code/x$name"
		assert_output "EINVAL at mkdir"
	done
}

@test ".. in a path never leaves the mount" {
	run "$FSOP" mkdir "$MNT/code/../code/../escape"
	assert_output "ok"
	assert_dir_exists "$MNT/escape"
	assert_dir_not_exists "$WORK/escape"
	assert_dir_not_exists "$STORE/escape"
}

@test "binary and invalid UTF-8 queries are stored and matched as bytes" {
	printf 'q\x00\xff\xfe\xc3\x28 bytes' >"$MNT/code/bin.query"
	run cat "$MNT/code/bin.status"
	assert_miss
	printf '\x00\x01\x02answer\xff' >"$MNT/code/bin.response"
	printf 'q\x00\xff\xfe\xc3\x28 bytes' >"$MNT/code/bin2.query"
	run cat "$MNT/code/bin2.status"
	assert_output --regexp '^hit score=1\.000'
	printf '\x00\x01\x02answer\xff' >"$WORK/expected"
	cmp "$WORK/expected" "$MNT/code/bin2.response"
}

@test "rmdir of a non-empty category fails with ENOTEMPTY" {
	ask code q1 "a question"
	fill code q1 "an answer"
	rm "$MNT/code/q1."*
	run "$FSOP" rmdir "$MNT/code"
	assert_output "ENOTEMPTY at rmdir"
	mkdir "$MNT/other" "$MNT/other/sub"
	run "$FSOP" rmdir "$MNT/other"
	assert_output "ENOTEMPTY at rmdir"
	run "$FSOP" rmdir "$MNT/other/sub"
	assert_output "ok"
	run "$FSOP" rmdir "$MNT/other"
	assert_output "ok"
	still_works
}

@test "rmdir of a category with open session files fails with ENOTEMPTY" {
	mkdir "$MNT/tmp"
	ask tmp q1 "a question"
	run "$FSOP" rmdir "$MNT/tmp"
	assert_output "ENOTEMPTY at rmdir"
}

@test "writes at odd offsets and partial writes make one query" {
	run "$FSOP" pwrite "$MNT/code/p.query" 0 "how do I reverse"
	assert_output "ok"
	run "$FSOP" pwrite "$MNT/code/p.query" 16 " a list in python"
	assert_output "ok"
	run cat "$MNT/code/p.query"
	assert_output "how do I reverse a list in python"
}

@test "a query in a category that does not exist fails with ENOENT" {
	run "$FSOP" write "$MNT/nope/q.query" "hello"
	assert_output "ENOENT at open"
}

@test "nothing bad input did damaged the store" {
	ask code q1 "how do I reverse a list in python"
	fill code q1 "use reversed()"
	"$FSOP" writen "$MNT/code/big.query" 70000 || true
	"$FSOP" write "$MNT/code/e.query" "" || true
	"$FSOP" write "$MNT/code/none.response" "x" || true
	stop_daemon
	start_daemon
	run ask code q2 "how do I reverse a list in python"
	assert_output --regexp '^hit '
	run cat "$MNT/code/q2.response"
	assert_output "use reversed()"
}
