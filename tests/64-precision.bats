#!/usr/bin/env bats
# Per-category precision target, through the real mount: with
# `precision: P` the verifier judges the candidates whose cosine reaches
# its floor (0.5) at the operating point its calibration gives for P; a
# pair the cosine alone would serve but the verifier rejects is a miss, a
# true paraphrase is served, a target the calibration cannot support is
# refused at policy write, `.policy` shows both keys and the operating
# point, subcategories inherit it, and without it threshold decides.

load helpers

setup() {
	setup_mount
	mkdir "$MNT/p"
}
teardown() { teardown_mount; }

# one stored question with its answer
stored() { # stored DIR QUERY ANSWER
	ask "$1" s "$2" >/dev/null
	fill "$1" s "$3"
	[ "$(status_word "$1" s)" = stored ] || fail "not stored: $(cat "$MNT/$1/s.status")"
}

NUM_A="What is the best phone to buy under Rs. 5000?"
NUM_B="What is the best phone to buy under Rs. 4000?"
NEG_A="Is it safe to eat eggs every day?"
NEG_B="Is it not safe to eat eggs every day?"
PARA_A="How do I get rid of acne scars?"
PARA_B="What is the best way to get rid of acne scars?"

@test "without precision the cosine alone serves a different number; with it that is a miss" {
	printf 'threshold: 0.7\n' >"$MNT/p/policy.yaml"
	stored p "$NUM_A" "a 5000 phone"
	run ask p q "$NUM_B"
	assert_output --regexp '^hit score=0\.[7-9][0-9]{2} '
	run cat "$MNT/p/q.response"
	assert_output "a 5000 phone"
	printf 'threshold: 0.7\nprecision: 0.7\n' >"$MNT/p/policy.yaml"
	run ask p q2 "$NUM_B"
	# best= is still the best candidate's cosine (it passed threshold above)
	assert_output --regexp '^miss best=0\.[7-9][0-9]{2} entry=[0-9]+$'
}

@test "with precision a negation is a miss, a true paraphrase is served" {
	stored p "$NEG_A" "yes, in moderation"
	# the default threshold (0.9) alone serves the negation
	run ask p q0 "$NEG_B"
	assert_output --regexp '^hit score=0\.9[0-9]{2} '
	printf 'precision: 0.7\n' >"$MNT/p/policy.yaml"
	run ask p q "$NEG_B"
	assert_output --regexp '^miss best=0\.9[0-9]{2} entry=[0-9]+$'
	stored p "$PARA_A" "see a dermatologist"
	run ask p q2 "$PARA_B"
	assert_output --regexp '^hit score=0\.8[0-9]{2} '
	run cat "$MNT/p/q2.response"
	assert_output "see a dermatologist"
	# the default threshold alone would not serve that paraphrase
	printf 'precision: 0\n' >"$MNT/p/policy.yaml"
	run ask p q4 "$PARA_B"
	assert_output --regexp '^miss best=0\.8[0-9]{2} entry=[0-9]+$'
	printf 'precision: 0.7\n' >"$MNT/p/policy.yaml"
	# the exact path is unchanged
	run ask p q3 "$PARA_A"
	assert_output --regexp '^hit score=1\.000 .*match=exact'
}

@test "a precision the calibration cannot support is refused with the best supported one" {
	run "$FSOP" write "$MNT/p/policy.yaml" "precision: 0.999"
	assert_output "EINVAL at close"
	run cat "$MNT/p/.errors"
	assert_output --regexp "/p/policy.yaml: precision: 0\.999 is more than the calibration of verifier 'verify-lexical-v2' supports \(best supported precision: 0\.[0-9]{4}\)"
	best=$(sed -n 's/.*best supported precision: \(0\.[0-9]*\).*/\1/p' "$MNT/p/.errors")
	# the precision it names is accepted
	run "$FSOP" write "$MNT/p/policy.yaml" "precision: $best"
	assert_output "ok"
	run "$FSOP" write "$MNT/p/policy.yaml" "precision: 1.5"
	assert_output "EINVAL at close"
	# miss coalescing decides by cosine: refused with a precision target
	run "$FSOP" write "$MNT/p/policy.yaml" "$(printf 'precision: 0.7\nfill_timeout: 2s')"
	assert_output "EINVAL at close"
	run cat "$MNT/p/.errors"
	assert_output --partial "/p/policy.yaml: precision and fill_timeout cannot be combined"
	# a refused write leaves the previous target in place
	run "$FSOP" write "$MNT/p/policy.yaml" "precision: 0.999"
	assert_output "EINVAL at close"
	run cat "$MNT/p/.policy"
	assert_line --regexp "^precision: $best +# /p\$"
}

@test ".policy shows precision next to threshold, with its operating point" {
	run cat "$MNT/p/.policy"
	assert_line --index 0 --regexp '^threshold: 0\.9 +# default$'
	assert_line --index 1 --regexp '^precision: 0 +# default$'
	refute_output --partial "operating point"
	refute_output --partial "# precision"
	printf 'precision: 0.7\nthreshold: 0.85\n' >"$MNT/p/policy.yaml"
	run cat "$MNT/p/.policy"
	assert_line --index 0 --regexp '^threshold: 0\.85 +# /p$'
	assert_line --index 1 --regexp '^precision: 0\.7 +# /p$'
	assert_line --index 2 --regexp "^# precision 0\.7 -> verifier 'verify-lexical-v2' score >= 0\.[0-9]{4}, candidates with cosine >= 0\.50 \(threshold not used\)\$"
}

@test "a subcategory inherits the precision target" {
	printf 'precision: 0.7\nthreshold: 0.7\n' >"$MNT/p/policy.yaml"
	mkdir "$MNT/p/sub"
	run cat "$MNT/p/sub/.policy"
	assert_line --index 1 --regexp '^precision: 0\.7 +# /p$'
	stored p/sub "$NUM_A" "a 5000 phone"
	run ask p/sub q "$NUM_B"
	assert_output --regexp '^miss best=0\.[7-9][0-9]{2} entry=[0-9]+$'
	stored p/sub "$PARA_A" "see a dermatologist"
	run ask p/sub q2 "$PARA_B"
	assert_output --regexp '^hit score='
	# and a subcategory may turn it off again: the cosine decides
	printf 'precision: 0\n' >"$MNT/p/sub/policy.yaml"
	run ask p/sub q3 "$NUM_B"
	assert_output --regexp '^hit score=0\.[7-9][0-9]{2} '
}

MODEL=${SEMCACHE_USE_LITE_DIR:-$TESTS_DIR/../.models/model-embeddings-en-0.2.0}

@test "use-lite: verify-use-lite-v2 judges with the use-lite cosine; a different number is a miss" {
	[ -f "$MODEL/model.json" ] || skip "needs the use-lite model in $MODEL (run tools/fetch-model.sh)"
	mkdir "$MNT/u"
	printf 'embedder: use-lite\nthreshold: 0.9\n' >"$MNT/u/policy.yaml"
	stored u "$NUM_A" "a 5000 phone"
	# use-lite scores the two numbers almost alike: the cosine serves it
	run ask u q "$NUM_B"
	assert_output --regexp '^hit score=0\.9[0-9]{2} '
	run "$FSOP" write "$MNT/u/policy.yaml" "$(printf 'embedder: use-lite\nprecision: 0.999')"
	assert_output "EINVAL at close"
	run cat "$MNT/u/.errors"
	assert_output --regexp "precision: 0\.999 is more than the calibration of verifier 'verify-use-lite-v2' supports \(best supported precision: 0\.[0-9]{4}\)"
	printf 'embedder: use-lite\nprecision: 0.7\n' >"$MNT/u/policy.yaml"
	run cat "$MNT/u/.policy"
	assert_line --regexp "^# precision 0\.7 -> verifier 'verify-use-lite-v2' score >= 0\.[0-9]{4}, "
	run ask u q2 "$NUM_B"
	assert_output --regexp '^miss best=0\.9[0-9]{2} entry=[0-9]+$'
	stored u "$PARA_A" "see a dermatologist"
	run ask u q3 "$PARA_B"
	assert_output --regexp '^hit score='
	run cat "$MNT/u/q3.response"
	assert_output "see a dermatologist"
}
