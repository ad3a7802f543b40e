#!/usr/bin/env bats
# Isolation: one request never harms another. A slow embedder in one
# category, a queued mkdir or policy write, or a paused Redis never stall
# lookups elsewhere; a policy cannot send secrets or reach outside the
# mount without the owner's grant; users of a shared category cannot
# replace, remove or re-policy each other's answers. (The bounds below are
# generous on purpose: the stalls they catch lasted as long as the slow
# work, 5 s here; the p99 figures are in the README, from a benchmark.)

load helpers

setup() { setup_mount; }
teardown() {
	[ -z "${SERVER_PID:-}" ] || kill "$SERVER_PID" 2>/dev/null || true
	[ -z "${REDIS_PAUSED:-}" ] || kill -CONT "$REDIS_PAUSED" 2>/dev/null || true
	teardown_mount
}

server_requests() {
	curl -s "http://127.0.0.1:$PORT/stats" | sed -n 's/.*"requests": \([0-9]*\).*/\1/p'
}

ms_now() { echo $(($(date +%s%N) / 1000000)); }

# slowest_of N DIR QUERY: the longest of N lookups of QUERY in DIR, in ms;
# each must be a hit
slowest_of() {
	local i t0 t1 s worst=0
	for ((i = 0; i < $1; i++)); do
		t0=$(ms_now)
		s=$(ask "$2" "probe$i" "$3") || return 1
		t1=$(ms_now)
		[[ $s == hit* ]] || { echo "not a hit: $s" >&2; return 1; }
		((t1 - t0 > worst)) && worst=$((t1 - t0))
	done
	echo "$worst"
}

@test "a slow embedder in one category, a queued mkdir and a policy write never stall lookups elsewhere" {
	start_embed_server
	mkdir "$MNT/fast" "$MNT/slow" "$MNT/other"
	ask fast q "the question everyone asks" >/dev/null
	fill fast q "the answer"
	run "$FSOP" write "$MNT/slow/policy.yaml" "$(printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: slow, dimensions: 16, timeout: 20s, retries: 0}\n' "$PORT")"
	assert_output "ok"
	slow=()
	for i in 1 2 3; do
		(ask slow "s$i" "a question the slow model embeds $i" >"$WORK/slow$i.out") &
		slow+=($!)
	done
	started() { [ "$(server_requests)" -ge 1 ]; }
	wait_until 10 started
	# writers queued behind the slow lookups (with one lock for all, they
	# waited for the read side to drain, and held up every new reader)
	t0=$(ms_now)
	mkdir "$MNT/newcat" &
	mk=$!
	"$FSOP" write "$MNT/other/policy.yaml" "threshold: 0.95" >"$WORK/pol.out" &
	pw=$!
	worst=$(slowest_of 20 fast "the question everyone asks")
	wait "$mk"
	wait "$pw"
	t1=$(ms_now)
	echo "# slowest exact hit elsewhere: $worst ms; mkdir + policy write done after $((t1 - t0)) ms" >&3
	((worst < 1500))
	((t1 - t0 < 3000))
	run cat "$WORK/pol.out"
	assert_output "ok"
	[ -d "$MNT/newcat" ]
	wait "${slow[@]}"
}

@test "a policy write whose embedder must be probed does not hold up other categories" {
	start_embed_server
	mkdir "$MNT/fast" "$MNT/probe"
	ask fast q "the question everyone asks" >/dev/null
	fill fast q "the answer"
	# no http.dimensions: making the embedder asks the (slow) endpoint
	"$FSOP" write "$MNT/probe/policy.yaml" "$(printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: slow, timeout: 20s, retries: 0}\n' "$PORT")" >"$WORK/pol.out" &
	pw=$!
	started() { [ "$(server_requests)" -ge 1 ] || ! kill -0 "$pw" 2>/dev/null; }
	wait_until 10 started
	worst=$(slowest_of 10 fast "the question everyone asks")
	echo "# slowest exact hit while the policy write probes: $worst ms" >&3
	((worst < 1500))
	wait "$pw" || true
}

@test "with Redis paused, a queued mkdir does not stall lookups that need no Redis" {
	command -v redis-server >/dev/null || skip "needs redis-server (package redis-server)"
	stop_daemon
	start_test_redis
	start_daemon
	mkdir "$MNT/code"
	ask code q "a question that is stored" >/dev/null
	fill code q "an answer"
	REDIS_PAUSED=$(redis-cli -p "$TEST_REDIS_PORT" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p' | tr -d '\r')
	[ -n "$REDIS_PAUSED" ]
	kill -STOP "$REDIS_PAUSED"
	mkdir "$MNT/blocked" 2>/dev/null &
	mk=$!
	# misses touch no store: answered from memory while the mkdir waits
	local i t0 t1 worst=0 s
	for ((i = 0; i < 10; i++)); do
		t0=$(ms_now)
		s=$(ask code "m$i" "an unrelated question number $i about tides")
		t1=$(ms_now)
		[[ $s == miss* ]]
		((t1 - t0 > worst)) && worst=$((t1 - t0))
	done
	echo "# slowest miss with Redis paused and a mkdir queued: $worst ms" >&3
	((worst < 1500))
	kill -CONT "$REDIS_PAUSED"
	REDIS_PAUSED=
	wait "$mk" || true
}

@test "categories deeper than 32 levels are refused with EMLINK" {
	local p=$MNT i
	for ((i = 1; i <= 32; i++)); do
		p=$p/d$i
		mkdir "$p"
	done
	run "$FSOP" mkdir "$p/d33"
	assert_output "EMLINK at mkdir"
	run ask "${p#"$MNT"/}" q "a question at depth 32"
	assert_miss
}

@test "an API key goes only to granted URLs from granted variables" {
	export SEMCACHEFS_GRANTED_KEY=sk-granted-1234 HOME_SECRET=sk-home-5678
	start_embed_server
	stop_daemon
	start_daemon -o embed_env=SEMCACHEFS_GRANTED_KEY -o "embed_urls=http://127.0.0.1:$PORT/"
	mkdir "$MNT/h"
	pol() { printf 'embedder: http\nhttp: {url: "%s", model: ok, dimensions: 16, api_key_env: %s}\n' "$1" "$2"; }
	# a variable the owner did not grant
	run "$FSOP" write "$MNT/h/policy.yaml" "$(pol "http://127.0.0.1:$PORT/v1/embeddings" HOME_SECRET)"
	assert_output "EINVAL at close"
	run cat "$MNT/h/.errors"
	assert_output --partial "http.api_key_env 'HOME_SECRET' is not allowed by the mount owner"
	# a granted variable, to a URL outside the grant (another port)
	run "$FSOP" write "$MNT/h/policy.yaml" "$(pol "http://127.0.0.1:$((PORT + 1))/v1/embeddings" SEMCACHEFS_GRANTED_KEY)"
	assert_output "EINVAL at close"
	run cat "$MNT/h/.errors"
	assert_output --partial "is not under -o embed_urls"
	# a prefix that looks granted but names another host
	run "$FSOP" write "$MNT/h/policy.yaml" "$(pol "http://127.0.0.1:$PORT@127.0.0.2/v1/embeddings" SEMCACHEFS_GRANTED_KEY)"
	assert_output "EINVAL at close"
	run curl -s "http://127.0.0.1:$PORT/stats"
	assert_output --partial '"requests": 0'
	# both granted: accepted
	run "$FSOP" write "$MNT/h/policy.yaml" "$(pol "http://127.0.0.1:$PORT/v1/embeddings" SEMCACHEFS_GRANTED_KEY)"
	assert_output "ok"
}

@test "grants that are not SEMCACHEFS_ variables or URL prefixes refuse the mount" {
	stop_daemon
	# usage errors (2), found before any store is made
	run "$SEMCACHEFS" -f -o store="$WORK/new-store" -o embed_env=HOME "$MNT"
	assert_failure 2
	assert_output --partial "embed_env: 'HOME' is not a variable name starting with SEMCACHEFS_"
	run "$SEMCACHEFS" -f -o store="$WORK/new-store" -o embed_urls=ftp://x/ "$MNT"
	assert_failure 2
	assert_output --partial "embed_urls: 'ftp://x/' is not an http:// or https:// URL prefix"
	run "$SEMCACHEFS" -f -o store="$WORK/new-store" -o model_dirs=relative/dir "$MNT"
	assert_failure 2
	assert_output --partial "model_dirs: 'relative/dir' is not an absolute directory"
	[ ! -e "$WORK/new-store" ]
}

@test "another user may not enable http or name a model directory without the owner's grant" {
	need_users
	start_embed_server
	mkdir -m 0777 "$MNT/pub"
	as_user 1001 mkdir "$MNT/pub/mine"
	run as_user 1001 "$FSOP" write "$MNT/pub/mine/policy.yaml" "$(printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: ok, dimensions: 16}\n' "$PORT")"
	assert_output "EPERM at close"
	run cat "$MNT/pub/mine/.errors"
	assert_output --partial "only the mount owner may point an http embedder at"
	run as_user 1001 "$FSOP" write "$MNT/pub/mine/policy.yaml" "embedder: model2vec:/etc"
	assert_output "EPERM at close"
	run cat "$MNT/pub/mine/.errors"
	assert_output --partial "only the mount owner may name the model directory '/etc'"
	# an ordinary key is fine
	run as_user 1001 "$FSOP" write "$MNT/pub/mine/policy.yaml" "threshold: 0.97"
	assert_output "ok"
	run curl -s "http://127.0.0.1:$PORT/stats"
	assert_output --partial '"requests": 0'
}

@test "with -o embed_urls another user may use an http embedder there, without a key" {
	start_embed_server
	need_users -o "embed_urls=http://127.0.0.1:$PORT/"
	mkdir -m 0777 "$MNT/pub"
	as_user 1001 mkdir "$MNT/pub/mine"
	run as_user 1001 "$FSOP" write "$MNT/pub/mine/policy.yaml" "$(printf 'embedder: http\nhttp: {url: "http://127.0.0.1:%s/v1/embeddings", model: ok, dimensions: 16}\n' "$PORT")"
	assert_output "ok"
}

@test "policy.yaml of a shared category follows its owner, not the sticky directory" {
	need_users
	mkdir -m 0777 "$MNT/pub"
	as_user 1001 mkdir -m 1777 "$MNT/pub/shared"
	run as_user 1002 "$FSOP" write "$MNT/pub/shared/policy.yaml" "threshold: 0.05"
	assert_output "EACCES at open"
	run grep -c "pub/shared/policy.yaml: change by uid 1002 refused (EACCES): only the category's owner (uid 1001) or the mount owner may change it" "$LOG"
	assert_output 1
	run cat "$MNT/pub/shared/.policy"
	assert_line --regexp '^threshold: +0\.9 +# default$'
	run as_user 1001 "$FSOP" write "$MNT/pub/shared/policy.yaml" "threshold: 0.97"
	assert_output "ok"
	run as_user 1002 "$FSOP" unlink "$MNT/pub/shared/policy.yaml"
	assert_failure
	[ -n "$(cat "$MNT/pub/shared/policy.yaml")" ]
}

@test "in a shared category a user cannot replace, remove or purge another user's answers" {
	need_users
	mkdir -m 0777 "$MNT/pub"
	as_user 1001 mkdir -m 1777 "$MNT/pub/shared"
	Q="how do I rotate the logs of the billing service"
	as_user 1001 bash -c "printf '%s\n' '$Q' >'$MNT/pub/shared/a.query' && printf 'the owner answer' >'$MNT/pub/shared/a.response'"
	run as_user 1001 cat "$MNT/pub/shared/a.status"
	assert_output --regexp '^stored entry=[0-9]+$'
	id=${output#stored entry=}
	run cat "$MNT/pub/shared/entries/$id/meta"
	assert_line "uid: 1001"
	# another user asks the same: a hit, and may not replace it
	as_user 1002 bash -c "printf '%s\n' '$Q' >'$MNT/pub/shared/b.query'"
	run as_user 1002 cat "$MNT/pub/shared/b.status"
	assert_output --regexp '^hit '
	run as_user 1002 "$FSOP" write "$MNT/pub/shared/b.response" "a poisoned answer"
	assert_output "EACCES at close"
	run as_user 1002 bash -c "printf '%s\n' '$Q' >'$MNT/pub/shared/c.query' && cat '$MNT/pub/shared/c.response'"
	assert_output "the owner answer"
	# nor remove it, nor purge the category, nor invalidate it by feedback
	run as_user 1002 "$FSOP" rmdir "$MNT/pub/shared/entries/$id"
	assert_output --regexp '^E(ACCES|PERM) at rmdir$'
	[ -d "$MNT/pub/shared/entries/$id" ]
	run as_user 1002 "$FSOP" write "$MNT/pub/shared/.purge" ""
	assert_output --regexp '^EACCES at (open|close)$'
	[ -d "$MNT/pub/shared/entries/$id" ]
	run as_user 1002 "$FSOP" write "$MNT/pub/shared/c.feedback" "wrong"
	assert_output "ok"
	[ -d "$MNT/pub/shared/entries/$id" ]
	run cat "$MNT/pub/shared/.stats"
	assert_line "false_hits: 1"
	# its own answers it may replace and remove
	as_user 1002 bash -c "printf 'a question only the second user asks\n' >'$MNT/pub/shared/d.query' && printf 'v1' >'$MNT/pub/shared/d.response'"
	run as_user 1002 cat "$MNT/pub/shared/d.status"
	id2=${output#stored entry=}
	run as_user 1002 bash -c "printf 'a question only the second user asks\n' >'$MNT/pub/shared/e.query' && printf 'v2' >'$MNT/pub/shared/e.response' && cat '$MNT/pub/shared/e.status'"
	assert_output --regexp '^stored entry=[0-9]+$'
	id3=${output#stored entry=}
	[ ! -d "$MNT/pub/shared/entries/$id2" ]
	run as_user 1002 "$FSOP" rmdir "$MNT/pub/shared/entries/$id3"
	assert_output "ok"
	# and the category's owner may remove anyone's
	run as_user 1001 "$FSOP" rmdir "$MNT/pub/shared/entries/$id"
	assert_output "ok"
	[ ! -d "$MNT/pub/shared/entries/$id" ]
}

@test "vectors are L2-normalised whatever the model returns" {
	require_shared
	cp -r "$SHARED/data/models/model2vec-fixture" "$WORK/m2v"
	chmod -R u+w "$WORK/m2v"
	python3 - "$WORK/m2v/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
try:
    c = json.load(open(p))
except FileNotFoundError:
    c = {}
c["normalize"] = False
json.dump(c, open(p, "w"))
EOF
	mkdir "$MNT/m"
	run "$FSOP" write "$MNT/m/policy.yaml" "embedder: model2vec:$WORK/m2v"
	assert_output "ok"
	ask m q1 "hello world again" >/dev/null
	fill m q1 "an answer"
	# the same words in another order: the same mean vector
	run ask m q2 "again world hello"
	assert_output --regexp '^hit score=1\.000 '
}

@test ".load lists every model that reports, and refuses reports past its bound" {
	local i
	for ((i = 0; i < 100; i++)); do
		echo 0.5 >"$MNT/.load/model-$i"
	done
	run ls "$MNT/.load"
	[ "${#lines[@]}" -eq 100 ]
	for ((i = 100; i < 1024; i++)); do
		echo 0.5 >"$MNT/.load/model-$i"
	done
	run "$FSOP" write "$MNT/.load/one-too-many" "0.5"
	assert_output "ENOSPC at close"
	grep -q "load report for model 'one-too-many' refused" "$LOG"
	# an existing one still takes reports
	run "$FSOP" write "$MNT/.load/model-7" "0.9"
	assert_output "ok"
}
