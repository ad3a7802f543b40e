#!/usr/bin/env bats
# Many mounts, one cache: two semcachefs daemons ("hosts" A and B, each with
# its own mountpoint and local state; a third, C, in some tests) share a real
# redis-server started on a loopback port by the test.

load helpers
load redis_hosts

setup() { setup_hosts; }
teardown() { teardown_hosts; }

@test "a fill on one host is a hit on the other, with the same bytes" {
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	ask code q1 "how do I reverse a list in python"
	printf 'reversed(xs)\n\x00binary' >"$WORK/answer"
	cp "$WORK/answer" "$MNT/code/q1.response"
	t0=$(date +%s%N)
	hit_b() { [ "$(status_b)" = hit ]; }
	status_b() { s=$(ask_b code "p$RANDOM" "python: reverse a list"); echo "${s%% *}"; }
	wait_until 5 hit_b
	t1=$(date +%s%N)
	echo "# propagation (fill acknowledged on A to hit on B, polled): $(((t1 - t0) / 1000000)) ms" >&3
	ask_b code same "how do I reverse a list in python" >/dev/null
	cmp "$WORK/answer" "$MNT_B/code/same.response"
}

@test "categories, policies and permissions made on one host apply on the other" {
	mkdir -p "$MNT/chat/fr"
	chmod 0750 "$MNT/chat"
	echo "threshold: 0.97" >"$MNT/chat/policy.yaml"
	synced() { [ -d "$MNT_B/chat/fr" ] && grep -q '^threshold: 0.97' "$MNT_B/chat/.policy" &&
		[ "$(stat -c %a "$MNT_B/chat")" = 750 ]; }
	wait_until 5 synced
	rm "$MNT/chat/policy.yaml"
	rmdir "$MNT/chat/fr"
	gone() { [ ! -d "$MNT_B/chat/fr" ] && grep -q '^threshold: 0.9 .*# default' "$MNT_B/chat/.policy"; }
	wait_until 5 gone
}

@test "an embedder changed on one host is the one the other host embeds with" {
	require_shared
	mkdir "$MNT/m"
	has_m() { [ -d "$MNT_B/m" ]; }
	wait_until 5 has_m
	fixture=$SHARED/data/models/model2vec-fixture
	run "$FSOP" write "$MNT/m/policy.yaml" "embedder: model2vec:$fixture"
	assert_output "ok"
	# B learns the policy and rebuilds the category's embedder and index:
	# an entry B fills is stored with the Model2Vec embedder's vectors
	learnt() { grep -q "^embedder: model2vec:" "$MNT_B/m/.policy"; }
	wait_until 5 learnt
	ask_b m q1 "hello world, how are you today" >/dev/null
	printf 'fine' >"$MNT_B/m/q1.response"
	id=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT_B/m/q1.status")
	run cat "$MNT_B/m/entries/$id/meta"
	assert_line --regexp '^embedder: model2vec-'
	# and A, whose embedder it is, finds it by meaning (not only exactly)
	known_a() { [ -d "$MNT/m/entries/$id" ]; }
	wait_until 5 known_a
	run ask m q2 "how are you today, hello world"
	assert_output --regexp '^hit .* match=semantic$'
}

@test "an invalidation on one host is never served on the other" {
	mkdir "$MNT/code"
	ask code q1 "what is the capital of france"
	fill code q1 "Paris"
	id=$(sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/code/q1.status")
	known_b() { [ -d "$MNT_B/code/entries/$id" ]; }
	wait_until 5 known_b
	rm -r "$MNT/code/entries/$id"
	miss_b() { is_miss "$(ask_b code "m$RANDOM" "what is the capital of france")"; }
	wait_until 5 miss_b
}

@test "a host that was down catches up at restart" {
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	stop_b
	for i in 1 2 3 4 5; do
		ask code "q$i" "catch-up question number $i about topic $i"
		fill code "q$i" "answer $i"
	done
	start_b
	for i in 1 2 3 4 5; do
		run ask_b code "r$i" "catch-up question number $i about topic $i"
		assert_output --regexp '^hit score=1\.000'
		run cat "$MNT_B/code/r$i.response"
		assert_output "answer $i"
	done
}

@test "Redis stopped: lookups answer quickly, fills fail with a clear errno; restarted: acknowledged fills are there" {
	mkdir "$MNT/code"
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	redis-cli -p "$PORT" shutdown >/dev/null 2>&1 || true # AOF is flushed (appendfsync always)
	t0=$(date +%s%N)
	run ask code q2 "how do I reverse a list in python"
	t1=$(date +%s%N)
	assert_output --regexp '^miss reason=store unavailable: '
	(((t1 - t0) / 1000000 < 3000))
	ask code q3 "a new question while redis is down" >/dev/null
	run "$FSOP" write "$MNT/code/q3.response" "an answer"
	assert_output --regexp '^(ECONNREFUSED|EIO|ETIMEDOUT) at close$'
	start_redis
	back() { [ "$(ask code "b$RANDOM" "how do I reverse a list in python" | cut -d' ' -f1)" = hit ]; }
	wait_until 10 back
	run cat "$MNT/.stats"
	assert_line "entries: 1"
}

# ---- quotas on a shared store ----

@test "concurrent fills from all hosts with a quota: exactly the quota stays, evicted once, same bytes everywhere" {
	start_host c
	MNT_C=$WORK/c
	HOSTS=("$MNT" "$MNT_B" "$MNT_C")
	mkdir -p "$WORK/resp" "$WORK/filled" "$MNT/q"
	: >"$WORK/failed"
	printf 'quota: {entries: 50}\neviction: fifo\n' >"$MNT/q/policy.yaml"
	ready() { for m in "${HOSTS[@]}"; do grep -q '^quota\.entries: 50 .*# /q$' "$m/q/.policy" || return 1; done; }
	wait_until 5 ready
	# 3 hosts x 60 fills, two loops per host, all at once
	fill_loop "$MNT" a 1 30 & p1=$!
	fill_loop "$MNT" A 31 60 & p2=$!
	fill_loop "$MNT_B" b 1 30 & p3=$!
	fill_loop "$MNT_B" B 31 60 & p4=$!
	fill_loop "$MNT_C" c 1 30 & p5=$!
	fill_loop "$MNT_C" C 31 60 & p6=$!
	wait $p1 $p2 $p3 $p4 $p5 $p6
	run cat "$WORK/failed"
	assert_output ""
	[ "$(ls "$WORK/filled" | wc -l)" = 180 ]
	[ "$(stat_sum fills "${HOSTS[@]}")" = 180 ]
	settled() { count_is 50 "${HOSTS[@]}"; }
	wait_until 10 settled
	# every eviction happened once: the hosts' counters add up to the overflow
	[ "$(stat_sum evicted "${HOSTS[@]}")" = 130 ]
	first=$(ls "$MNT/q/entries" | head -n 1)
	cat=$((first & 16777215))
	[ "$(redis-cli -p "$PORT" zcard "{c$cat}:ids")" = 50 ]
	[ "$(redis-cli -p "$PORT" get "{c$cat}:evicted")" = 130 ]
	# fifo: the 50 newest fills stay, the same ids on every host
	ls "$WORK/filled" | sort -n | tail -n 50 >"$WORK/expected"
	views() { views_are "$WORK/expected" "${HOSTS[@]}"; }
	wait_until 10 views
	# every survivor's response is readable on every host with its exact bytes
	while read -r id; do
		for m in "${HOSTS[@]}"; do
			cmp "$WORK/filled/$id" "$m/q/entries/$id/response"
		done
	done <"$WORK/expected"
	# and it stays so: no host evicts again on its own view
	run cat "$MNT/q/.stats"
	assert_line "entries: 50"
	[ "$(stat_sum evicted "${HOSTS[@]}")" = 130 ]
}

@test "a lowered quota shrinks the category once, on every host" {
	mkdir -p "$WORK/resp" "$WORK/filled" "$MNT/q"
	: >"$WORK/failed"
	printf 'quota: {entries: 40}\neviction: fifo\n' >"$MNT/q/policy.yaml"
	ready() { grep -q '^quota\.entries: 40 ' "$MNT_B/q/.policy"; }
	wait_until 5 ready
	fill_loop "$MNT" a 1 20 & p1=$!
	fill_loop "$MNT_B" b 1 20 & p2=$!
	wait $p1 $p2
	run cat "$WORK/failed"
	assert_output ""
	full() { count_is 40 "$MNT" "$MNT_B"; }
	wait_until 10 full
	[ "$(stat_sum evicted "$MNT" "$MNT_B")" = 0 ]
	printf 'quota: {entries: 15}\neviction: fifo\n' >"$MNT/q/policy.yaml"
	shrunk() {
		grep -q '^quota\.entries: 15 ' "$MNT_B/q/.policy" && count_is 15 "$MNT" "$MNT_B"
	}
	wait_until 10 shrunk
	# both hosts saw the overflow; only one eviction of each entry happened
	[ "$(stat_sum evicted "$MNT" "$MNT_B")" = 25 ]
	first=$(ls "$MNT/q/entries" | head -n 1)
	cat=$((first & 16777215))
	[ "$(redis-cli -p "$PORT" zcard "{c$cat}:ids")" = 15 ]
	[ "$(redis-cli -p "$PORT" get "{c$cat}:evicted")" = 25 ]
	ls "$WORK/filled" | sort -n | tail -n 15 >"$WORK/expected"
	views() { views_are "$WORK/expected" "$MNT" "$MNT_B"; }
	wait_until 10 views
	while read -r id; do
		cmp "$WORK/filled/$id" "$MNT_B/q/entries/$id/response"
	done <"$WORK/expected"
}

@test "lru on a shared store: a hit on one host protects the entry from an eviction on another" {
	mkdir "$MNT/q"
	printf 'quota: {entries: 3}\neviction: lru\n' >"$MNT/q/policy.yaml"
	QA=("how do I bake sourdough bread at home" "what is the boiling point of mercury"
		"which chess opening suits beginners" "how far away is the andromeda galaxy")
	for i in 0 1 2; do
		ask q "f$i" "${QA[$i]}" >/dev/null
		fill q "f$i" "answer-$i"
	done
	ids=()
	for i in 0 1 2; do ids+=("$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/q/f$i.status")"); done
	known_b() { [ -d "$MNT_B/q/entries/${ids[2]}" ] && grep -q '^eviction: lru .*# /q$' "$MNT_B/q/.policy"; }
	wait_until 5 known_b
	# B uses entry 0: Redis learns it at B's next hit flush
	run ask_b q h0 "${QA[0]}"
	assert_output --regexp '^hit '
	cat=$((ids[0] & 16777215))
	seq=$((ids[0] >> 24))
	flushed() { [ "$(redis-cli -p "$PORT" hget "{c$cat}:e:$seq" h)" = 1 ]; }
	wait_until 5 flushed
	# A, which never saw that hit, fills: entry 1 is the least recently used
	ask q f3 "${QA[3]}" >/dev/null
	fill q f3 "answer-3"
	gone_b() { [ ! -d "$MNT_B/q/entries/${ids[1]}" ]; }
	wait_until 5 gone_b
	for m in "$MNT" "$MNT_B"; do
		[ ! -d "$m/q/entries/${ids[1]}" ]
		[ -d "$m/q/entries/${ids[0]}" ]
		[ -d "$m/q/entries/${ids[2]}" ]
		[ "$(ls "$m/q/entries" | wc -l)" = 3 ]
	done
	run cat "$MNT/q/.stats"
	assert_line "evicted: 1"
}
