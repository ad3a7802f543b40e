#!/usr/bin/env bats
# Tuning from your own traffic, through the real mount: a miss says how
# close it came (NAME.status "miss best=S entry=ID"), NAME.neighbors lists
# the lookup's candidates, .stats has histograms of the best scores of
# misses and hits.

load helpers

setup() {
	setup_mount
	mkdir "$MNT/code"
}
teardown() { teardown_mount; }

Q1="how do I reverse a list in python"
Q2="what is the capital of france"

entry_id() { # entry_id DIR NAME: the entry a session stored
	sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/$1/$2.status"
}

# two entries, and a threshold no paraphrase reaches
two_entries() {
	ask code f1 "$Q1" >/dev/null
	fill code f1 "reversed(xs)"
	ID1=$(entry_id code f1)
	ask code f2 "$Q2" >/dev/null
	fill code f2 "Paris"
	ID2=$(entry_id code f2)
	printf 'threshold: 0.999\n' >"$MNT/code/policy.yaml"
}

@test "a near miss says how close it came and which entry it was" {
	two_entries
	run ask code q "python: reverse a list"
	assert_success
	assert_output --regexp "^miss best=0\.9[0-9]{2} entry=$ID1\$"
	# the entry it names is the one whose query came closest
	run cat "$MNT/code/entries/$ID1/query"
	assert_output "$Q1"
	run getfattr --absolute-names --only-values -n user.semcache.entry "$MNT/code/q.response"
	assert_output "$ID1"
}

@test "a miss with nothing to compare with stays a bare miss; a reason wins over the score" {
	run ask code q "python: reverse a list"
	assert_output "miss"
	two_entries
	printf 'cache: false\n' >"$MNT/code/policy.yaml"
	run ask code q2 "python: reverse a list"
	assert_output "miss reason=cache disabled by policy"
}

@test "NAME.neighbors lists the candidates best first: score, entry, query" {
	two_entries
	run ask code q "python: reverse a list"
	best=$(sed -n 's/^miss best=\([0-9.]*\) .*/\1/p' <<<"$output")
	run cat "$MNT/code/q.neighbors"
	assert_success
	[ "${#lines[@]}" -eq 2 ] || fail "expected 2 candidates, got: $output"
	# the queries were written with the shell's newline (ask), kept escaped
	assert_line --index 0 --regexp "^0\.9[0-9]{3}	$ID1	how do I reverse a list in python\\\\n\$"
	assert_line --index 1 --regexp "^-?0\.[0-9]{4}	$ID2	what is the capital of france\\\\n\$"
	s1=$(cut -f1 <<<"${lines[0]}")
	s2=$(cut -f1 <<<"${lines[1]}")
	awk -v a="$s1" -v b="$s2" 'BEGIN { exit !(a >= b) }' || fail "not best first: $s1 then $s2"
	# the same best score as the status line, at its precision
	[ "$(printf '%.3f' "$s1")" = "$best" ] || fail "neighbors says $s1, status $best"
	run stat -c '%a %s' "$MNT/code/q.neighbors"
	assert_output "400 $(wc -c <"$MNT/code/q.neighbors")"
}

@test "NAME.neighbors follows the session's last lookup: empty after an exact hit, absent before any" {
	two_entries
	run "$FSOP" read "$MNT/code/q.neighbors"
	assert_output "ENOENT at open"
	ask code q "python: reverse a list" >/dev/null
	run cat "$MNT/code/q.neighbors"
	[ "${#lines[@]}" -eq 2 ]
	run ask code q "$Q1"
	assert_output --regexp '^hit score=1\.000 .* match=exact$'
	run cat "$MNT/code/q.neighbors"
	assert_success
	assert_output ""
	run "$FSOP" write "$MNT/code/q.neighbors" "x"
	assert_output "EACCES at open"
	rm "$MNT/code/q.neighbors"
	run "$FSOP" read "$MNT/code/q.neighbors"
	assert_output "ENOENT at open"
}

@test "NAME.neighbors is removed like the session's other files, and rm -r of a category with it works" {
	two_entries
	ask code q "python: reverse a list" >/dev/null
	rm "$MNT/code/q.neighbors"
	run "$FSOP" read "$MNT/code/q.neighbors"
	assert_output "ENOENT at open"
	assert_file_exists "$MNT/code/q.status" # the session goes on
	ask code q "python: reverse a list" >/dev/null # and the next lookup lists again
	run cat "$MNT/code/q.neighbors"
	[ "${#lines[@]}" -eq 2 ]
	rm -r "$MNT/code"
	assert_dir_not_exists "$MNT/code"
}

@test "another user cannot read your neighbors file" {
	need_users
	chmod 1777 "$MNT/code"
	two_entries
	run as_user 1234 "$FSOP" write "$MNT/code/mine.query" "python: reverse a list"
	assert_output "ok"
	run as_user 1234 "$FSOP" read "$MNT/code/mine.neighbors"
	assert_success
	assert_output --partial "how do I reverse a list in python"
	run stat -c '%u %a' "$MNT/code/mine.neighbors"
	assert_output "1234 400"
	run as_user 1235 "$FSOP" read "$MNT/code/mine.neighbors"
	assert_output "EACCES at open"
	run as_user 1235 stat -c %s "$MNT/code/mine.neighbors"
	assert_success # its size is public, like every session file's
}

# hist_of DIR KIND: the best_score_hist_KIND line of DIR's .stats
hist_of() {
	sed -n "s/^best_score_hist_$2: //p" "$MNT/$1/.stats"
}

# the bucket label a score falls in (upper edges included)
bucket_of() {
	awk -v s="$1" 'BEGIN {
		n = split("0.50 0.60 0.70 0.80 0.85 0.90 0.95", e, " ")
		if (s <= 0.5) { print "<=0.50"; exit }
		for (i = 2; i <= n; i++) if (s <= e[i] + 0) { print e[i - 1] "-" e[i]; exit }
		print ">0.95" }'
}

# moved_by_one BEFORE AFTER LABEL: AFTER is BEFORE with LABEL's count + 1
moved_by_one() {
	local want="" w c
	for w in $1; do
		c=${w##*:}
		[ "${w%:*}" = "$3" ] && c=$((c + 1))
		want+="${want:+ }${w%:*}:$c"
	done
	[ "$2" = "$want" ] || fail "expected '$want', got '$2'"
}

@test ".stats: the best-score histograms move by exactly one per lookup" {
	run hist_of code miss
	assert_output "none:0 <=0.50:0 0.50-0.60:0 0.60-0.70:0 0.70-0.80:0 0.80-0.85:0 0.85-0.90:0 0.90-0.95:0 >0.95:0"
	m0=$(hist_of code miss) h0=$(hist_of code hit)
	ask code a "$Q1" >/dev/null # empty index: no candidate
	m1=$(hist_of code miss)
	moved_by_one "$m0" "$m1" none
	[ "$(hist_of code hit)" = "$h0" ]
	fill code a "reversed(xs)"
	ask code b "$Q1" >/dev/null # exact hit: score 1
	h1=$(hist_of code hit)
	moved_by_one "$h0" "$h1" ">0.95"
	[ "$(hist_of code miss)" = "$m1" ]
	s=$(ask code c "what is the capital of france") # unrelated: low best
	best=$(sed -n 's/^miss best=\([-0-9.]*\) .*/\1/p' <<<"$s")
	[ -n "$best" ] || fail "no best in '$s'"
	m2=$(hist_of code miss)
	moved_by_one "$m1" "$m2" "$(bucket_of "$best")"
	s=$(ask code d "python: reverse a list") # a paraphrase: semantic hit
	[[ $s == hit* ]] || fail "not a hit: $s"
	score=$(sed -n 's/^hit score=\([0-9.]*\) .*/\1/p' <<<"$s")
	moved_by_one "$h1" "$(hist_of code hit)" "$(bucket_of "$score")"
	[ "$(hist_of code miss)" = "$m2" ]
	# the root's sums every category; lookups = all counts of both
	run cat "$MNT/.stats"
	assert_line "lookups: 4"
	total=$( (hist_of / miss; hist_of / hit) | tr ' ' '\n' | awk -F: '{ t += $2 } END { print t }')
	[ "$total" -eq 4 ]
}

@test "hostile query texts give one bounded line per candidate" {
	printf 'limits: {query_bytes: 64KiB}\n' >"$MNT/code/policy.yaml"
	printf 'line one\nline two\001\033\177\ttab\\back' >"$MNT/code/h1.query"
	fill code h1 "a1"
	printf 'no\r\nnewline\n\n\n%s' "$(printf 'x%.0s' {1..40})" >"$MNT/code/h2.query"
	fill code h2 "a2"
	head -c 65536 /dev/zero | tr '\0' 'y' >"$WORK/big"
	printf 'é' | dd of="$WORK/big" bs=1 seek=252 conv=notrunc status=none # a 2-byte character at the cut
	cp "$WORK/big" "$MNT/code/h3.query"
	fill code h3 "a3"
	printf 'threshold: 0.999\nlimits: {query_bytes: 64KiB}\n' >"$MNT/code/policy.yaml"
	ask code q "line one line two tab back" >/dev/null
	run cat "$MNT/code/q.neighbors"
	assert_success
	[ "${#lines[@]}" -eq 3 ] || fail "expected 3 lines, got ${#lines[@]}: $output"
	for l in "${lines[@]}"; do
		[ "$(awk -F'\t' '{ print NF }' <<<"$l")" -eq 3 ] || fail "not 3 fields: $l"
		((${#l} <= 300)) || fail "line of ${#l} bytes"
	done
	assert_line --regexp '	line one\\nline two\\x01\\x1b\\x7f\\ttab\\\\back$'
	assert_line --regexp '	no\\r\\nnewline\\n\\n\\nx{40}$'
	# the 64 KiB one: cut, marked, and never in the middle of a character
	run grep -c 'yyy\.\.\.$' "$MNT/code/q.neighbors"
	assert_output "1"
	iconv -f UTF-8 -t UTF-8 "$MNT/code/q.neighbors" >/dev/null || fail "cut inside a UTF-8 character"
}
