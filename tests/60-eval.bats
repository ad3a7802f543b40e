#!/usr/bin/env bats
# semcachefs-eval: exact statistics on a hand-made CSV, usage errors, and
# (when ../shared is present) the real data sets with the built-in and the
# Model2Vec fixture embedders. No mount needed.

load helpers

EVAL=$BUILD/index/semcachefs-eval

setup() {
	[ -x "$EVAL" ] || skip "needs $EVAL (build first)"
	TMP=$(mktemp -d)
}
teardown() { rm -rf "$TMP"; }

@test "eval: exact AUC and threshold on a hand-computable csv" {
	# identical texts score the same cosine (1); "?" has no features, so
	# its cosine is exactly 0. Positives {1, 1}, negatives {1, 0}: the
	# ties count one half, AUC = (0.5 + 0.5 + 1 + 1) / 4 = 0.75.
	cat >"$TMP/pairs.csv" <<-'CSV'
	text_a,text_b,label
	hello world,hello world,1
	"hello world","hello world",1
	hello world,hello world,0
	"?",hello world,0
	CSV
	run "$EVAL" --embedder builtin --target-precision 0.6 "$TMP/pairs.csv"
	assert_success
	assert_line "pairs: 4 (2 positive, 2 negative)"
	assert_line "roc_auc: 0.7500"
	# at the score of the identical pairs: 2 hits of 3 = precision 0.667
	assert_line --regexp "^target_precision: 0.6000 -> precision 0.6667, recall 1.0000"
	assert_line --regexp "^threshold: (0.9999|1.0000)$"
}

@test "eval: a target precision no threshold reaches exits 3" {
	printf 'text_a,text_b,label\nhello world,hello world,0\n"?",hello world,1\n' >"$TMP/bad.csv"
	run "$EVAL" --target-precision 0.9 "$TMP/bad.csv"
	assert_equal "$status" 3
	assert_line "no threshold reaches precision 0.9000 on this data"
}

@test "eval: bad input and usage give clear errors" {
	printf 'a,b,c\n1,2,3\n' >"$TMP/x.csv"
	run "$EVAL" "$TMP/x.csv"
	assert_equal "$status" 1
	assert_output --partial "the csv header must name the columns text_a,text_b,label"
	run "$EVAL" --format tsv "$TMP/x.csv"
	assert_equal "$status" 2
	assert_output --partial "unknown format 'tsv'"
	run "$EVAL" --embedder model2vec:relative "$TMP/x.csv"
	assert_equal "$status" 1
	assert_output --partial "'relative' is not an absolute directory"
	run "$EVAL" "$TMP/missing.csv"
	assert_equal "$status" 1
	assert_output --partial "cannot open '$TMP/missing.csv'"
}

@test "eval: qqp_val with the built-in embedder (shared data)" {
	require_shared
	run "$EVAL" --embedder builtin "$SHARED/data/pairs/qqp_val.csv"
	assert_line "pairs: 12129 (4522 positive, 7607 negative)"
	assert_line --regexp "^roc_auc: 0\.7[4-9]"
}

@test "eval: the model2vec fixture on paraphrases and sts (shared data)" {
	require_shared
	local m=model2vec:$(cd "$SHARED/data/models/model2vec-fixture" && pwd)
	run "$EVAL" --embedder "$m" --format paraphrase-json "$SHARED/data/pairs/paraphrases_999.json"
	assert_line --regexp "^pairs: 1998 \(999 positive, 999 negative\)"
	assert_line --regexp "^roc_auc: 0\.[0-9]{4}$"
	run "$EVAL" --embedder "$m" --format sts "$SHARED/data/pairs/stsb/sts-dev.csv"
	assert_line --regexp "^roc_auc: 0\.[0-9]{4}$"
}

@test "eval: follow-ups never hit with context matching (shared data)" {
	require_shared
	run "$EVAL" --threshold 0.5 --followups "$SHARED/data/pairs/contextual_followups_128.json"
	assert_success
	assert_line "followups: 128"
	assert_line "false_hits_context_match: 0"
	assert_line --regexp "^false_hits_context_ignore: [1-9][0-9]*$"
}
