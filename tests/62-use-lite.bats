#!/usr/bin/env bats
# The use-lite embedder (Universal Sentence Encoder lite) through the mount:
# a paraphrase the lexical embedder misses is a hit, use-lite:/DIR names
# another copy, and a damaged copy is refused when the policy is written.
# Needs the model installed by tools/fetch-model.sh (skips without it).

load helpers

MODEL=${SEMCACHE_USE_LITE_DIR:-$TESTS_DIR/../.models/model-embeddings-en-0.2.0}

require_model() {
	[ -f "$MODEL/model.json" ] || skip "needs the use-lite model in $MODEL (run tools/fetch-model.sh)"
}

setup() { setup_mount; }
teardown() { teardown_mount; }

copy_model() { # copy_model DIR: symlinks to the installed model's files
	local f
	mkdir -p "$1"
	for f in "$MODEL"/*; do ln -s "$f" "$1/"; done
}

Q1="How do I learn Python programming quickly?"
Q2="What is the fastest way to learn Python programming?"

@test "use-lite: a paraphrase the builtin embedder misses is a hit" {
	require_model
	mkdir "$MNT/lex" "$MNT/use"
	echo "embedder: use-lite" >"$MNT/use/policy.yaml"
	for d in lex use; do
		run ask "$d" q1 "$Q1"
		assert_miss
		fill "$d" q1 "practice every day"
	done
	run ask lex q2 "$Q2"
	assert_miss
	run ask use q2 "$Q2"
	assert_output --regexp '^hit score=0\.9[0-9]+ '
	run ask use q3 "What is the boiling point of mercury?"
	assert_miss
	id=$(sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/use/q2.status")
	run cat "$MNT/use/entries/$id/meta"
	assert_line --regexp '^embedder: use-lite-512-[0-9a-f]{16}$'
	run cat "$MNT/use/.policy"
	assert_line --regexp '^embedder: use-lite +# /use$'
}

@test "use-lite:/DIR: another copy of the model gives the same vectors" {
	require_model
	copy_model "$WORK/copy"
	mkdir "$MNT/a" "$MNT/b"
	echo "embedder: use-lite" >"$MNT/a/policy.yaml"
	echo "embedder: use-lite:$WORK/copy" >"$MNT/b/policy.yaml"
	for d in a b; do
		ask "$d" q1 "$Q1" >/dev/null
		fill "$d" q1 "answer"
		ask "$d" q2 "$Q2" >/dev/null
	done
	run cat "$MNT/b/q2.status"
	assert_output --regexp '^hit score='
	# same weights: same name and the same score
	[ "$(cut -d' ' -f2 "$MNT/a/q2.status")" = "$(cut -d' ' -f2 "$MNT/b/q2.status")" ]
	ida=$(sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/a/q2.status")
	idb=$(sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/b/q2.status")
	[ "$(grep '^embedder:' "$MNT/a/entries/$ida/meta")" = \
		"$(grep '^embedder:' "$MNT/b/entries/$idb/meta")" ]
}

@test "use-lite: a damaged model is refused when the policy is written" {
	require_model
	copy_model "$WORK/bad"
	rm "$WORK/bad/group1-shard7of7"
	head -c 1000 "$MODEL/group1-shard7of7" >"$WORK/bad/group1-shard7of7"
	mkdir "$MNT/u"
	run "$FSOP" write "$MNT/u/policy.yaml" "embedder: use-lite:$WORK/bad"
	assert_output "EINVAL at close"
	run cat "$MNT/u/.errors"
	assert_output --partial "embedder 'use-lite:$WORK/bad' unusable: use-lite: the shards of weight group 1 hold"
	assert_output --partial "(a shard is truncated)"
	rm "$WORK/bad/vocab.json"
	ln -sf "$MODEL/group1-shard7of7" "$WORK/bad/"
	run "$FSOP" write "$MNT/u/policy.yaml" "embedder: use-lite:$WORK/bad"
	assert_output "EINVAL at close"
	run cat "$MNT/u/.errors"
	assert_output --partial "use-lite: cannot open '$WORK/bad/vocab.json': No such file or directory"
	run "$FSOP" write "$MNT/u/policy.yaml" "embedder: use-lite:relative/dir"
	assert_output "EINVAL at close"
	run cat "$MNT/u/.errors"
	assert_output --partial "needs an absolute model directory"
}
