#!/usr/bin/env bats
# context: similar, through the real mount: a context is compared by the
# cosine of its embedding (the category's embedder) against
# context_threshold. A follow-up never crosses to another conversation of
# ../shared's contextual_followups_128.json; the same conversation
# reworded (a pair the data holds) hits where context: match misses; a
# query without a context and an entry with one never meet; bad values are
# refused with EINVAL and a reason in .errors; .policy shows the key and
# where it came from; subcategories inherit it.

load helpers

FOLLOWUPS=$SHARED/data/pairs/contextual_followups_128.json

setup() {
	setup_mount
	mkdir "$MNT/c"
}
teardown() { teardown_mount; }

need_followups() {
	[ -f "$FOLLOWUPS" ] || skip "needs $FOLLOWUPS (the shared data folder is absent)"
	command -v jq >/dev/null || skip "needs jq to read $FOLLOWUPS"
}

# ask_in DIR NAME CONTEXT QUERY: a lookup under a context; prints the status
ask_in() {
	printf '%s' "$3" >"$MNT/$1/$2.context" && ask "$1" "$2" "$4"
}

# set_policy DIR YAML: write DIR/policy.yaml, which must be accepted
set_policy() {
	run "$FSOP" write "$MNT/$1/policy.yaml" "$2"
	assert_output "ok"
}

# stored_in DIR CONTEXT QUERY ANSWER: a lookup and a fill under a context
stored_in() {
	ask_in "$1" s "$2" "$3" >/dev/null
	fill "$1" s "$4"
	[ "$(status_word "$1" s)" = stored ] || fail "not stored: $(cat "$MNT/$1/s.status")"
}

# The data's Treaty of Versailles conversation, in its two wordings.
VERS_A="What is the significance of the Treaty of Versailles?"
VERS_B="Can you explain the significance of the Treaty of Versailles?"

followup_of() { # followup_of MAIN_QUERY: its first follow-up in the data
	jq -r --arg m "$1" 'map(select(."Main Query" == $m))[0]."Follow-Up Query"' "$FOLLOWUPS"
}

@test "context: similar: the same conversation reworded hits; context: match misses it" {
	need_followups
	local q
	q=$(followup_of "$VERS_A")
	[ -n "$q" ] && [ "$q" != null ] || fail "no follow-up of '$VERS_A' in $FOLLOWUPS"
	stored_in c "$VERS_A" "$q" "signed in 1919"
	run ask_in c m "$VERS_B" "$q"
	assert_miss
	# 0.85: the lowest threshold at which the builtin embedder kept every
	# cross-conversation lookup of the data a miss (README, Context by
	# meaning); the default 0.97 is too strict for this pair with it
	set_policy c $'context: similar\ncontext_threshold: 0.85\n'
	run ask_in c r "$VERS_B" "$q"
	assert_output --regexp '^hit '
	run cat "$MNT/c/r.response"
	assert_output "signed in 1919"
	# the exact context still hits exactly
	run ask_in c e "$VERS_A" "$q"
	assert_output --regexp '^hit .*exact'
}

@test "context: similar: no follow-up of the data hits under another conversation's context" {
	need_followups
	local n=48 i j s hits=0 asked=0
	set_policy c $'context: similar\ncontext_threshold: 0.85\n'
	mapfile -t ctx < <(jq -r ".[:$n][] | .\"Main Query\"" "$FOLLOWUPS")
	mapfile -t fq < <(jq -r ".[:$n][] | .\"Follow-Up Query\"" "$FOLLOWUPS")
	[ "${#ctx[@]}" -eq "$n" ] && [ "${#fq[@]}" -eq "$n" ] || fail "cannot read $n items of $FOLLOWUPS"
	for ((i = 0; i < n; i++)); do
		stored_in c "${ctx[$i]}" "${fq[$i]}" "answer-$i"
	done
	for ((i = 0; i < n; i++)); do
		run ask_in c own "${ctx[$i]}" "${fq[$i]}"
		assert_output --regexp '^hit '
		for ((j = 0; j < n; j++)); do
			[ "${ctx[$j]}" = "${ctx[$i]}" ] && continue
			s=$(ask_in c x "${ctx[$j]}" "${fq[$i]}")
			asked=$((asked + 1))
			if [[ $s == hit* ]] && [ "$(cat "$MNT/c/x.response")" = "answer-$i" ]; then
				echo "# '${fq[$i]}' under '${ctx[$j]}': $s" >&3
				hits=$((hits + 1))
			fi
		done
	done
	echo "# $asked lookups under another conversation's context, $hits served its answer" >&3
	[ "$hits" -eq 0 ]
}

@test "context: similar: a query without a context never hits an entry with one, nor the reverse; both without match" {
	set_policy c "context: similar"
	stored_in c "talking about Barack Obama" "how old is he?" "born in 1961"
	run ask c plain "how old is he?"
	assert_miss
	fill c plain "who do you mean?"
	run ask c plain2 "how old is he?"
	assert_output --regexp '^hit .*exact'
	run cat "$MNT/c/plain2.response"
	assert_output "who do you mean?"
	run ask_in c ctx "talking about the Eiffel tower" "how old is he?"
	assert_miss
	run ask_in c again "talking about Barack Obama" "how old is he?"
	assert_output --regexp '^hit '
	run cat "$MNT/c/again.response"
	assert_output "born in 1961"
}

@test "context_threshold: bad values are refused with EINVAL and a reason; the previous policy stays" {
	set_policy c $'context: similar\ncontext_threshold: 0.9\n'
	run "$FSOP" write "$MNT/c/policy.yaml" $'context_threshold: 1.5\n'
	assert_output "EINVAL at close"
	run cat "$MNT/c/.errors"
	assert_output --partial "/c/policy.yaml:1:20: context_threshold"
	assert_output --partial "out of range"
	run "$FSOP" write "$MNT/c/policy.yaml" $'context_threshold: -0.1\n'
	assert_output "EINVAL at close"
	run "$FSOP" write "$MNT/c/policy.yaml" $'context_threshold: close\n'
	assert_output "EINVAL at close"
	run cat "$MNT/c/.errors"
	assert_output --regexp '^/c/policy\.yaml:1:20: context_threshold'
	run "$FSOP" write "$MNT/c/policy.yaml" $'context: alike\n'
	assert_output "EINVAL at close"
	run cat "$MNT/c/.errors"
	assert_output --partial "similar"
	run cat "$MNT/c/.policy"
	assert_line --regexp '^context: similar +# /c$'
	assert_line --regexp '^context_threshold: 0\.9 +# /c$'
}

@test "context_threshold: .policy shows it with its source; subcategories inherit it" {
	run cat "$MNT/c/.policy"
	assert_line --regexp '^context: match +# default$'
	assert_line --regexp '^context_threshold: 0\.97 +# default$'
	mkdir -p "$MNT/c/d/e"
	set_policy c $'context: similar\ncontext_threshold: 0.99\n'
	run cat "$MNT/c/d/e/.policy"
	assert_line --regexp '^context: similar +# /c$'
	assert_line --regexp '^context_threshold: 0\.99 +# /c$'
	# inherited 0.99: the reworded conversation is too far
	stored_in c/d/e "talking about the weather in Paris" "will it rain tomorrow?" "yes"
	run ask_in c/d/e a "talking about the weather in paris today" "will it rain tomorrow?"
	assert_miss
	set_policy c/d "context_threshold: 0.5"
	run cat "$MNT/c/d/e/.policy"
	assert_line --regexp '^context_threshold: 0\.5 +# /c/d$'
	run ask_in c/d/e b "talking about the weather in paris today" "will it rain tomorrow?"
	assert_output --regexp '^hit '
}

@test "context: similar with precision and with fill_timeout: both accepted, contexts still never cross" {
	run "$FSOP" write "$MNT/c/policy.yaml" $'context: similar\nprecision: 0.7\n'
	assert_output "ok"
	stored_in c "talking about Barack Obama" "how old is he?" "born in 1961"
	run ask_in c p1 "talking about the Eiffel tower" "how old is he?"
	assert_miss
	run ask_in c p2 "we are talking about Barack Obama" "how old is he?"
	assert_output --regexp '^hit '
	run "$FSOP" write "$MNT/c/policy.yaml" $'context: similar\nfill_timeout: 2s\n'
	assert_output "ok"
	run ask_in c f1 "talking about the Eiffel tower" "how old is he?"
	assert_miss
}

@test "context: similar after a restart: stored contexts are embedded again from their text" {
	set_policy c $'context: similar\ncontext_threshold: 0.85\n'
	stored_in c "talking about Barack Obama" "how old is he?" "born in 1961"
	stop_daemon
	start_daemon
	run ask_in c a "we are talking about Barack Obama" "how old is he?"
	assert_output --regexp '^hit '
	run cat "$MNT/c/a.response"
	assert_output "born in 1961"
	run ask_in c b "talking about the Eiffel tower" "how old is he?"
	assert_miss
}
