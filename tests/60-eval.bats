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
	run "$EVAL" --embedder builtin --target-precision 0.6 --min-hits 1 "$TMP/pairs.csv"
	assert_equal "$status" 3
	assert_line "pairs: 4 (2 positive, 2 negative)"
	assert_line "roc_auc: 0.7500"
	# at the score of the identical pairs: 2 hits of 3 = precision 0.667,
	# whose Wilson interval [0.2077, 0.9385] is far below 0.6: three pairs
	# do not make a threshold
	assert_line "no threshold reaches precision 0.6000 on this data"
	assert_line --regexp "^best: threshold (0\.999999|1\.000000), precision 0\.6667 \[0\.2077, 0\.9385\], recall 1\.0000, 3 hits$"
	refute_line --regexp "^threshold: "
}

@test "eval: a target is met only with 30 hits and a Wilson lower bound at it" {
	{
		echo "text_a,text_b,label"
		for i in $(seq 40); do echo "hello world,hello world,1"; done
		echo '"?",hello world,0'
		echo '"?",hello world,0'
	} >"$TMP/forty.csv"
	# 40 of 40: lower bound 40 / (40 + 1.96^2) = 0.9124
	run "$EVAL" --target-precision 0.9 "$TMP/forty.csv"
	assert_success
	assert_line "target_rule: 95% Wilson lower bound >= 0.9000 with at least 30 hits, at this data's balance"
	assert_line --regexp "^threshold_exact: (0\.999999|1\.000000) \(precision 1\.0000 \[0\.9124, 1\.0000\], recall 1\.0000, 40 hits\)$"
	assert_line --regexp "^target_precision: 0\.9000 -> precision 1\.0000, recall 1\.0000, f1 1\.0000, hits 40, precision_95ci \[0\.9124, 1\.0000\]$"
	assert_line --regexp "^threshold: (0\.9999|1\.0000)$"
	# 0.92 is above the bound
	run "$EVAL" --target-precision 0.92 "$TMP/forty.csv"
	assert_equal "$status" 3
	# 41 hits are only had with the two negatives: 40/42, bound 0.8421
	run "$EVAL" --target-precision 0.9 --min-hits 41 "$TMP/forty.csv"
	assert_equal "$status" 3
	assert_line --regexp "^best: threshold 0\.000000, precision 0\.9524 \[0\.8421, 0\.9868\], recall 1\.0000, 42 hits$"
	run "$EVAL" --target-precision 0.9 --min-hits 43 "$TMP/forty.csv"
	assert_equal "$status" 3
	assert_line "best: no threshold has 43 hits"
	# at a stated prior of 0.2 (duplicates rarer than here) 40/40 stays 1
	run "$EVAL" --target-precision 0.9 --prior 0.2 "$TMP/forty.csv"
	assert_success
	assert_line --regexp "precision_at_prior_0\.2000 1\.0000 \[0\.9124, 1\.0000\]$"
}

@test "eval: --scores prints one SCORE<TAB>LABEL line per pair" {
	printf 'text_a,text_b,label\nhello world,hello world,1\n"?",hello world,0\nhello world,hello world,0\n' >"$TMP/s.csv"
	run "$EVAL" --scores "$TMP/s.csv"
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 --regexp "^(0\.999999|1\.000000)	1$"
	assert_line --index 1 "0.000000	0"
	assert_line --index 2 --regexp "^(0\.999999|1\.000000)	0$"
}

@test "eval: --pipeline scores what a lookup decides" {
	cat >"$TMP/p.csv" <<-'CSV'
	text_a,text_b,label
	Hello   World,hello world,1
	"?",hello world,0
	How do I learn Python?,How can I learn Python fast?,1
	CSV
	run "$EVAL" --pipeline --scores "$TMP/p.csv"
	assert_success
	# the exact path (equal after textnorm) scores 1; a cosine below the
	# floor 0, as the index never proposes it; else the verifier's score
	assert_line --index 0 "1.000000	1"
	assert_line --index 1 "0.000000	0"
	assert_line --index 2 --regexp "^0\.[0-9]{6}	1$"
	refute_line --index 2 "0.000000	1"
	# the same pair below a floor of 1 is not a candidate
	run "$EVAL" --pipeline --floor 1 --scores "$TMP/p.csv"
	assert_line --index 2 "0.000000	1"
	run "$EVAL" --pipeline --target-precision 0.5 "$TMP/p.csv"
	assert_line "pipeline: exact path, cosine >= 0.50, verifier"
	assert_line --regexp "^operating_point: precision 0\.7500 at prior 0\.[0-9]{4} "
}

@test "eval: mrpc's tab-separated format, detected from its header" {
	printf '\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\t"Quoted" news, here\tNews "quoted", here\n0\t3\t4\tOne thing\tAnother thing\r\n' >"$TMP/m.txt"
	run "$EVAL" --scores "$TMP/m.txt"
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 --regexp "	1$"
	assert_line --index 1 --regexp "	0$"
	run "$EVAL" --format mrpc --min-hits 1 --target-precision 0.1 "$TMP/m.txt"
	assert_line "pairs: 2 (1 positive, 1 negative)"
	printf 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\nx\t3\t4\tc\td\n' >"$TMP/bad.txt"
	run "$EVAL" "$TMP/bad.txt"
	assert_equal "$status" 1
	assert_output --partial "line 3: quality 'x' is not 0 or 1"
	printf 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tonly four\n' >"$TMP/short.txt"
	run "$EVAL" "$TMP/short.txt"
	assert_equal "$status" 1
	assert_output --partial "line 2: expected 5 tab-separated fields"
	printf 'text_a,text_b,label\na,b,1\n' >"$TMP/c.csv"
	run "$EVAL" --format mrpc "$TMP/c.csv"
	assert_equal "$status" 1
	assert_output --partial "line 1: expected the header 'Quality<TAB>#1 ID"
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
	run "$EVAL" --min-hits 0 "$TMP/x.csv"
	assert_equal "$status" 2
	assert_output --partial "--min-hits '0' must be a whole number from 1 to 1000000"
	run "$EVAL" --prior 0 "$TMP/x.csv"
	assert_equal "$status" 2
	assert_output --partial "--prior '0' must be above 0 and below 1"
	run "$EVAL" --pipeline --precision 0 "$TMP/x.csv"
	assert_equal "$status" 2
	assert_output --partial "--precision '0' must be above 0"
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
