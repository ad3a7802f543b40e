#!/usr/bin/env bats
# The verifier's trainer (semcachefs-train-verifier) and semcachefs-eval's
# pipeline, honest calibration and per-pair scores on the shared data sets
# (skipped when ../shared is absent). No mount needed; the hand-made cases
# are in 60-eval.bats.

load helpers

EVAL=$BUILD/index/semcachefs-eval
TRAIN=$BUILD/index/semcachefs-train-verifier
MODEL_DATA=$TESTS_DIR/../index/verify/model_data.c

setup() {
	[ -x "$EVAL" ] || skip "needs $EVAL (build first)"
	[ -x "$TRAIN" ] || skip "needs $TRAIN (build first)"
	TMP=$(mktemp -d)
}
teardown() { rm -rf "$TMP"; }

# block FILE START: the lines from the first matching START to the next
# line that is only "};" or "\t}," (one model or one table)
block() {
	awk -v start="$2" 'index($0, start) { on = 1 } on { print } on && /^(\t\},|\};)$/ { exit }' "$1"
}

@test "train-verifier: the same data gives the same bytes" {
	require_shared
	run "$TRAIN" --shared "$SHARED" --models lexical --out "$TMP/a.c" --no-report
	assert_success
	run "$TRAIN" --shared "$SHARED" --models lexical --out "$TMP/b.c" --no-report
	assert_success
	run cmp "$TMP/a.c" "$TMP/b.c"
	assert_success
	# the split rule in the provenance, and no machine path or date in it
	run grep -c "0-5 train" "$TMP/a.c"
	assert_output 1
	run grep -E "$SHARED|/tmp/|20[0-9][0-9]-[01][0-9]-" "$TMP/a.c"
	assert_failure 1
}

@test "train-verifier: the committed model_data.c is what the command makes" {
	require_shared
	run "$TRAIN" --shared "$SHARED" --models lexical --out "$TMP/m.c" --no-report
	assert_success
	# the data it was made from, the IDF table and the lexical model; the
	# use-lite model needs the use-lite model files and minutes to remake
	diff <(grep "^ \*   data/" "$MODEL_DATA") <(grep "^ \*   data/" "$TMP/m.c")
	diff <(block "$MODEL_DATA" "verify_idf[VERIFY_IDF_BUCKETS] =") \
		<(block "$TMP/m.c" "verify_idf[VERIFY_IDF_BUCKETS] =")
	diff <(block "$MODEL_DATA" '.name = "verify-lexical-v2"') \
		<(block "$TMP/m.c" '.name = "verify-lexical-v2"')
	[ "$(block "$TMP/m.c" '.name = "verify-lexical-v2"' | wc -l)" -gt 50 ]
	# the committed file has a trained use-lite model
	run grep -c '.name = "verify-use-lite-v2"' "$MODEL_DATA"
	assert_output 1
}

@test "train-verifier: --dump writes every pair's features and the texts" {
	require_shared
	run "$TRAIN" --shared "$SHARED" --models lexical --out "$TMP/m.c" --no-report \
		--dump "$TMP/d.tsv"
	assert_success
	head -1 "$TMP/d.tsv" | grep -q $'^set\tsplit\tlabel\tgrade\ta\tb\tok\tcos_b\tcos_u\twjacc\t.*\tdeixis_max\tdeixis_min\tswaps$'
	# one row per pair of the four sets, 31 columns each
	[ "$(grep -vc '^#text' "$TMP/d.tsv")" -eq $((1 + 12129 + 3675 + 5749 + 1500 + 1998)) ]
	[ "$(awk -F'\t' '!/^#text/ && NF != 31' "$TMP/d.tsv" | wc -l)" -eq 0 ]
	grep -q $'^qqp\ttrain\t[01]\t' "$TMP/d.tsv"
	grep -q $'^#text\t0\t' "$TMP/d.tsv"
	run "$TRAIN" --shared "$SHARED" --models lexical --out "$TMP/m.c" --no-report \
		--dump "$TMP/none/d.tsv"
	assert_equal "$status" 1
	assert_output --partial "cannot write '$TMP/none/d.tsv'"
}

@test "train-verifier: bad usage and a missing data folder" {
	run "$TRAIN" --models some
	assert_equal "$status" 2
	assert_output --partial "--models 'some' must be all or lexical"
	run "$TRAIN" --jobs 0
	assert_equal "$status" 2
	run "$TRAIN" extra
	assert_equal "$status" 2
	run "$TRAIN" --shared "$TMP/none" --models lexical --out "$TMP/x.c"
	assert_equal "$status" 1
	assert_output --partial "cannot open '$TMP/none/data/pairs/qqp_val.csv'"
	[ ! -e "$TMP/x.c" ]
}

@test "eval: mrpc's tab-separated file is read as it is (shared data)" {
	require_shared
	run "$EVAL" --target-precision 0.8 "$SHARED/data/pairs/mrpc_train.txt"
	assert_line "pairs: 3675 (2485 positive, 1190 negative)"
	run "$EVAL" --format mrpc --target-precision 0.8 "$SHARED/data/pairs/mrpc_train.txt"
	assert_line "pairs: 3675 (2485 positive, 1190 negative)"
	assert_line --regexp "^roc_auc: 0\.7[0-9]{3}$"
}

@test "eval: --target-precision needs support: qqp_val at 0.90 exits 3 (shared data)" {
	require_shared
	run "$EVAL" --embedder builtin --target-precision 0.9 "$SHARED/data/pairs/qqp_val.csv"
	assert_equal "$status" 3
	assert_line "target_rule: 95% Wilson lower bound >= 0.9000 with at least 30 hits, at this data's balance"
	assert_line "no threshold reaches precision 0.9000 on this data"
	assert_line --regexp "^best: threshold 0\.[0-9]{6}, precision 0\.[0-9]{4} \[0\.[0-9]{4}, [01]\.[0-9]{4}\], recall 0\.[0-9]{4}, [0-9]+ hits$"
	refute_line --regexp "^threshold: "
	# a target it can meet: the interval is printed, its bound is >= 0.70
	run "$EVAL" --embedder builtin --target-precision 0.7 "$SHARED/data/pairs/qqp_val.csv"
	assert_success
	assert_line --regexp "^target_precision: 0\.7000 -> precision 0\.[0-9]{4}, recall 0\.[0-9]{4}, f1 0\.[0-9]{4}, hits [0-9]+, precision_95ci \[0\.(7|8|9)[0-9]{3}, [01]\.[0-9]{4}\]$"
	assert_line --regexp "^threshold: 0\.[0-9]{4}$"
}

@test "eval: --prior reports precision at a stated share of duplicates (shared data)" {
	require_shared
	run "$EVAL" --target-precision 0.7 --prior 0.5 "$SHARED/data/pairs/qqp_val.csv"
	assert_line --regexp "^target_rule: .* at the stated prior$"
	assert_line --regexp "^ *threshold +precision +recall +f1 +hits +false +prec@pi$"
	assert_line --regexp "precision_at_prior_0\.5000 0\.[0-9]{4} \[0\.[0-9]{4}, [01]\.[0-9]{4}\]$"
	run "$EVAL" --prior 1 "$SHARED/data/pairs/qqp_val.csv"
	assert_equal "$status" 2
	assert_output --partial "--prior '1' must be above 0 and below 1"
}

@test "eval: --scores prints SCORE<TAB>LABEL for every pair (shared data)" {
	require_shared
	"$EVAL" --scores "$SHARED/data/pairs/qqp_val.csv" >"$TMP/cos.tsv"
	[ "$(wc -l <"$TMP/cos.tsv")" -eq 12129 ]
	run grep -vcP '^-?[0-9]\.[0-9]{6}\t[01]$' "$TMP/cos.tsv"
	assert_output 0
	[ "$(awk -F'\t' '{ s += $2 } END { print s }' "$TMP/cos.tsv")" -eq 4522 ]
	"$EVAL" --pipeline --scores "$SHARED/data/pairs/qqp_val.csv" >"$TMP/pipe.tsv"
	[ "$(wc -l <"$TMP/pipe.tsv")" -eq 12129 ]
	# same labels in the same order; the pipeline scores are other numbers
	diff <(cut -f2 "$TMP/cos.tsv") <(cut -f2 "$TMP/pipe.tsv")
	! diff -q <(cut -f1 "$TMP/cos.tsv") <(cut -f1 "$TMP/pipe.tsv")
	# below the floor (0.5) a pair scores 0; the exact path scores 1
	paste "$TMP/cos.tsv" "$TMP/pipe.tsv" >"$TMP/both.tsv"
	[ "$(awk -F'\t' '$1 < 0.5 && $3 != 0' "$TMP/both.tsv" | wc -l)" -eq 0 ]
	[ "$(awk -F'\t' '$3 == 1' "$TMP/both.tsv" | wc -l)" -gt 0 ]
	[ "$(awk -F'\t' '$3 > 0 && $3 < 1' "$TMP/both.tsv" | wc -l)" -gt 1000 ]
}

@test "eval: --pipeline maps the category's precision to the operating point (shared data)" {
	require_shared
	run "$EVAL" --pipeline --precision 0.7 --target-precision 0.7 \
		"$SHARED/data/pairs/mrpc_train.txt"
	assert_success
	assert_line "pipeline: exact path, cosine >= 0.50, verifier"
	assert_line --regexp "^operating_point: precision 0\.7000 at prior 0\.[0-9]{4} -> score threshold 0\.[0-9]{4} \(verify-lexical-v2; validation lower bound 0\.(7|8|9)[0-9]{3}, support [0-9]+\)$"
	assert_line --regexp "^at_operating_point: precision 0\.[0-9]{4}, recall 0\.[0-9]{4}, hits [0-9]+, precision_95ci "
	# a target the verifier cannot promise: only exact matches hit
	run "$EVAL" --pipeline --precision 0.99 --target-precision 0.7 \
		"$SHARED/data/pairs/mrpc_train.txt"
	assert_line --regexp "^operating_point: precision 0\.9900 at prior 0\.[0-9]{4} unreachable with verify-lexical-v2 "
	assert_line --regexp "^at_operating_point: precision 1\.0000, recall 0\.0[0-9]{3}, hits [0-9]+, "
}
