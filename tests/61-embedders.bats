#!/usr/bin/env bats
# Per-category embedders through the mount: Model2Vec from the shared
# fixture, the http embedder against the tests' own OpenAI-compatible server
# on loopback (tests/tools/fake_embed_server.py — a small server written for
# these tests, not a real model), outages, and changes of embedder.

load helpers

FIXTURE=$SHARED/data/models/model2vec-fixture

setup() { setup_mount; }
teardown() {
	if [ -n "${SERVER_PID:-}" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	teardown_mount
}

@test "model2vec: a category with a Model2Vec model caches and matches" {
	require_shared
	mkdir "$MNT/m2v"
	echo "embedder: model2vec:$FIXTURE" >"$MNT/m2v/policy.yaml"
	run ask m2v q1 "hello world, how are you today"
	assert_miss
	fill m2v q1 "fine, thanks"
	run ask m2v q2 "hello world, how are you today"
	assert_output --regexp '^hit score=1\.000'
	id=$(sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/m2v/q2.status")
	run cat "$MNT/m2v/entries/$id/meta"
	assert_line --regexp '^embedder: model2vec-64-'
	run cat "$MNT/m2v/.policy"
	assert_line --regexp "^embedder: model2vec:$FIXTURE +# /m2v$"
}

@test "a missing model is refused when the policy is written" {
	mkdir "$MNT/m2v"
	run "$FSOP" write "$MNT/m2v/policy.yaml" "embedder: model2vec:/nonexistent/model"
	assert_output "EINVAL at close"
	run cat "$MNT/m2v/.errors"
	assert_output --partial "embedder 'model2vec:/nonexistent/model' unusable"
}

@test "the embedder of a category with entries cannot change; an empty one can" {
	require_shared
	mkdir "$MNT/c"
	ask c q1 "a question"
	fill c q1 "an answer"
	run "$FSOP" write "$MNT/c/policy.yaml" "embedder: model2vec:$FIXTURE"
	assert_output "EINVAL at close"
	run cat "$MNT/c/.errors"
	assert_output --partial "embedder cannot change while '/c' has entries"
	: >"$MNT/c/.purge"
	run "$FSOP" write "$MNT/c/policy.yaml" "embedder: model2vec:$FIXTURE"
	assert_output "ok"
}

@test "http: a category embeds through an OpenAI-compatible endpoint" {
	start_embed_server
	mkdir "$MNT/h"
	printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: ok, dimensions: 16}\n' "$PORT" >"$MNT/h/policy.yaml"
	run ask h q1 "what is the meaning of life"
	assert_miss
	fill h q1 "42"
	run ask h q2 "what is the meaning of life?"
	assert_output --regexp '^hit score=0\.[0-9]+ .* match=semantic$|^miss( best=-?[0-9.]+ entry=[0-9]+)?$'
	run ask h q3 "What is the meaning of life"
	assert_output --regexp '^hit score=1\.000'
	run curl -s "http://127.0.0.1:$PORT/stats"
	assert_output --regexp '"requests": [1-9]'
}

@test "http: with the endpoint down, lookups answer miss with a reason and fills fail cleanly" {
	start_embed_server
	mkdir "$MNT/h"
	printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: ok, dimensions: 16, timeout: 500ms}\n' "$PORT" >"$MNT/h/policy.yaml"
	ask h q1 "what is the meaning of life"
	fill h q1 "42"
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	t0=$(date +%s%N)
	run ask h q2 "the meaning of life, what is it"
	t1=$(date +%s%N)
	assert_output --regexp '^miss reason=embedder unavailable: '
	# no hang: a generous bound over the 500 ms timeout, for a loaded machine
	(((t1 - t0) / 1000000 < 4000))
	run "$FSOP" write "$MNT/h/q2.response" "an answer"
	assert_output "ECONNREFUSED at close"
	run ask h q3 "what is the meaning of life"
	assert_output --regexp '^hit score=1\.000' # exact hits need no embedder
	kill -0 "$DAEMON_PID"
}

@test "http: a slow endpoint gives a miss within the timeout" {
	start_embed_server
	mkdir "$MNT/h"
	printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: slow, dimensions: 16, timeout: 300ms, retries: 0}\n' "$PORT" >"$MNT/h/policy.yaml"
	t0=$(date +%s%N)
	run ask h q1 "anything at all"
	t1=$(date +%s%N)
	assert_output --regexp '^miss reason=embedder unavailable: '
	# cut short by the 300 ms timeout: well under the endpoint's 5 s, with
	# room for a loaded machine
	(((t1 - t0) / 1000000 < 4000))
}

@test "a slow lookup never makes stat or getxattr of its session's files wait" {
	command -v getfattr >/dev/null || skip "needs getfattr (package attr)"
	start_embed_server FAKE_EMBED_SLOW_S=3
	mkdir "$MNT/h"
	printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: slow, dimensions: 16, timeout: 20s, retries: 0}\n' "$PORT" >"$MNT/h/policy.yaml"
	run ask h s "the first question, embedded slowly"
	assert_miss
	# the session's second lookup, in flight until the endpoint answers
	printf 'the second question\n' >"$MNT/h/s.query" &
	local writer=$!
	in_flight() { curl -s "http://127.0.0.1:$PORT/stats" | grep -q '"requests": 2,'; }
	wait_until 10 in_flight
	t0=$(date +%s%N)
	run stat -c %s "$MNT/h/s.status" "$MNT/h/s.query"
	assert_success
	# the outcome of the last lookup that completed: the first one, or
	# the empty one of the shell's duplicate descriptor closed before it
	# wrote
	run getfattr --absolute-names --only-values -n user.semcache.status "$MNT/h/s.response"
	assert_output --regexp '^(miss|error)$'
	run cat "$MNT/h/s.status"
	assert_output --regexp '^(miss|error empty query)$'
	t1=$(date +%s%N)
	echo "# stat, getfattr and cat took $(((t1 - t0) / 1000000)) ms during a 3 s lookup" >&3
	(((t1 - t0) / 1000000 < 1000))
	wait "$writer"
	run cat "$MNT/h/s.query" "$MNT/h/s.status"
	assert_output "the second question
miss"
}

@test "http: the API key is read from the named variable and never shown" {
	stop_daemon
	export SEMCACHEFS_TEST_KEY=sk-very-secret-value-1234
	start_embed_server FAKE_EMBED_KEY=sk-very-secret-value-1234
	start_daemon -o embed_env=SEMCACHEFS_TEST_KEY -o "embed_urls=http://127.0.0.1:$PORT/"
	mkdir "$MNT/h"
	run "$FSOP" write "$MNT/h/policy.yaml" "$(printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: ok, dimensions: 16, api_key_env: SEMCACHEFS_TEST_KEY}\n' "$PORT")"
	assert_output "ok"
	ask h q1 "a secret question"
	fill h q1 "a secret answer"
	run ask h q2 "a secret question, again"
	assert_miss # embedded (with the key): no reason to report
	run curl -s "http://127.0.0.1:$PORT/stats"
	assert_output --partial '"bad_auth": 0'
	refute_output --partial '"requests": 0'
	run grep -r "sk-very-secret" "$MNT/h/.policy" "$MNT/.stats" "$MNT/.metrics" "$LOG" "$MNT/h/entries"
	assert_failure 1
	run grep -rl "sk-very-secret" "$STORE"
	assert_failure 1
}
