#!/usr/bin/env bats
# Hit counts summed over the hosts that share one store, and expiry decided
# once for all of them: hits on A and on B add up on both hosts and in
# Redis, an lfu eviction goes by that sum, a host that restarts does not
# count its hits twice, a ttl expiry happens once and every host counts it
# once, and a hit on one host keeps a sliding-ttl entry alive on the
# others. Hosts A and B (and C, D on a Redis Cluster) on real
# redis-servers on loopback ports.

load helpers
load redis_hosts

setup() { setup_hosts; }
teardown() {
	local rc=0
	teardown_hosts || rc=$?
	for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
	return "$rc"
}
PORTS=() # a cluster's (start_cluster), shut down by teardown

# ask_on MNT DIR NAME QUERY: a lookup on the host mounted at MNT
ask_on() { printf '%s\n' "$4" >"$1/$2/$3.query" && cat "$1/$2/$3.status"; }

# fill_on MNT DIR NAME QUERY ANSWER: a miss, then its fill; $ID the entry
fill_on() {
	run ask_on "$1" "$2" "$3" "$4"
	assert_miss
	printf '%s' "$5" >"$1/$2/$3.response"
	ID=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$1/$2/$3.status")
	[ -n "$ID" ]
}

# hit_on MNT DIR TIMES QUERY: TIMES exact hits on the host at MNT
hit_on() {
	local k
	for ((k = 0; k < $3; k++)); do
		run ask_on "$1" "$2" "h$RANDOM$k" "$4"
		assert_output --regexp '^hit score=1\.000'
	done
}

# hits_are N ID DIR MNT...: entry ID's meta shows N hits on every host
hits_are() {
	local n=$1 id=$2 d=$3 m
	shift 3
	for m in "$@"; do
		[ "$(sed -n 's/^hits: //p' "$m/$d/entries/$id/meta")" = "$n" ] || return 1
	done
}

# redis_h ID: the hit count Redis keeps for entry ID (port $PORT)
redis_h() { redis-cli -p "$PORT" HGET "{c$(($1 & 16777215))}:e:$(($1 >> 24))" h; }
# redis_t ID: its last hit time
redis_t() { redis-cli -p "$PORT" HGET "{c$(($1 & 16777215))}:e:$(($1 >> 24))" t; }

# stat_of KEY MNT DIR: KEY's value in DIR/.stats of the host at MNT
stat_of() { sed -n "s/^$1: //p" "$2/$3/.stats"; }

Q1="how do I keep a sourdough starter alive over winter"
Q2="what is the melting point of tungsten in kelvin"
Q3="which chess opening is best against the sicilian"
Q4="how far is the andromeda galaxy from the milky way"

# three_and_four: entry $ID in code, filled on A; 3 hits on A and 4 on B,
# until both hosts and Redis show 7
three_and_four() {
	mkdir "$MNT/code"
	fill_on "$MNT" code f "$Q1" "starter answer"
	known_b() { [ -d "$MNT_B/code/entries/$ID" ]; }
	wait_until 10 known_b
	hit_on "$MNT" code 3 "$Q1"
	hit_on "$MNT_B" code 4 "$Q1"
	seven() { hits_are 7 "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = 7 ]; }
	wait_until 10 seven
}

@test "hits on two hosts add up: 3 on A and 4 on B show 7 on both and in Redis" {
	three_and_four
	# .stats agree: the entries' hits, summed; lookups that hit, per host
	for m in "$MNT" "$MNT_B"; do
		run stat_of entry_hits "$m" code
		assert_output 7
	done
	run stat_of hits "$MNT" code
	assert_output 3
	run stat_of hits "$MNT_B" code
	assert_output 4
	# more on B only: A learns them from the hits stream
	hit_on "$MNT_B" code 2 "$Q1"
	nine() { hits_are 9 "$ID" code "$MNT" "$MNT_B" &&
		[ "$(stat_of entry_hits "$MNT" /)" = 9 ] && [ "$(stat_of entry_hits "$MNT_B" /)" = 9 ]; }
	wait_until 10 nine
	run redis_h "$ID"
	assert_output 9
}

# host_id LOG: the host id a daemon logged at open
host_id() { sed -n 's/.*, host id \([0-9a-f]*\),.*/\1/p' "$1" | tail -n 1; }

@test "a write-back that fails is sent again and counted once" {
	three_and_four
	# scripts wait while reads go on: A's next write-back times out
	local fails
	fails=$(grep -c "saving hit counters failed" "$LOG" || true)
	redis-cli -p "$PORT" CLIENT PAUSE 5000 WRITE >/dev/null
	hit_on "$MNT" code 2 "$Q1"
	failed() { [ "$(grep -c "saving hit counters failed" "$LOG")" -gt "$fails" ]; }
	wait_until 10 failed
	redis-cli -p "$PORT" CLIENT UNPAUSE >/dev/null
	# A's 2 hits arrive with its next write-back, with no new hit on A
	nine() { hits_are 9 "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = 9 ]; }
	wait_until 10 nine
	# one more on B: 10, not more (a batch counted twice would pass 10)
	hit_on "$MNT_B" code 1 "$Q1"
	ten() { hits_are 10 "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = 10 ]; }
	wait_until 10 ten
	run redis-cli -p "$PORT" HGET "{c$((ID & 16777215))}:e:$((ID >> 24))" "o:$(host_id "$LOG")"
	assert_output 5
	run redis-cli -p "$PORT" HGET "{c$((ID & 16777215))}:e:$((ID >> 24))" "o:$(host_id "$LOG_B")"
	assert_output 5
}

@test "a write-back that ran but whose reply was lost is counted once when sent again" {
	three_and_four
	# a hit on A, then the server stops: A's write-back reaches the
	# socket, times out and is sent again; the server runs both once it
	# goes on. (A write-back that left before the stop: once more.)
	local pid want=7 fails try
	pid=$(cat "$WORK/redis.pid")
	for try in 1 2 3; do
		fails=$(grep -c "saving hit counters failed" "$LOG" || true)
		hit_on "$MNT" code 1 "$Q1"
		want=$((want + 1))
		kill -STOP "$pid"
		failed() { [ "$(grep -c "saving hit counters failed" "$LOG")" -gt "$fails" ]; }
		if wait_until 6 failed; then
			kill -CONT "$pid"
			break
		fi
		kill -CONT "$pid"
		settled() { [ "$(redis_h "$ID")" = "$want" ]; }
		wait_until 10 settled
	done
	failed
	echo "# $((want - 7)) hit(s) on A, write-back failed at try $try" >&3
	settled() { hits_are "$want" "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = "$want" ]; }
	wait_until 10 settled
	# and not more: one more hit on B makes it want + 1 exactly
	hit_on "$MNT_B" code 1 "$Q1"
	want=$((want + 1))
	wait_until 10 settled
}

@test "malformed hits events are skipped with a log line; a gap in the hits stream reads the counts again" {
	three_and_four
	local cat=$((ID & 16777215)) seq=$((ID >> 24)) n b
	n=$(redis-cli -p "$PORT" GET "{c$cat}:hseq")
	[[ $n =~ ^[0-9]+$ ]]
	for b in "$seq x 3" "$seq 99999999999999999999 1" "$seq -5 1" "$seq 1" "" "$seq 1 1 junk"; do
		n=$((n + 1))
		redis-cli -p "$PORT" XADD "{c$cat}:hstream" '*' h ffffffffffffffff n "$n" k h b "$b" >/dev/null
	done
	# a sum for an entry that does not exist, and one smaller than known
	n=$((n + 1))
	redis-cli -p "$PORT" XADD "{c$cat}:hstream" '*' h ffffffffffffffff n "$n" k h b "$((seq + 1000)) 50 1 $seq 2 1" >/dev/null
	redis-cli -p "$PORT" PUBLISH semcache:ev "{c$cat}" >/dev/null
	logged() { [ "$(grep -c "a malformed hits event; skipped" "$LOG")" -ge 5 ]; }
	wait_until 10 logged
	# a gap: the counts are read again from the entries
	redis-cli -p "$PORT" HSET "{c$cat}:e:$seq" h 20 >/dev/null
	redis-cli -p "$PORT" XADD "{c$cat}:hstream" '*' h ffffffffffffffff n "$((n + 5))" k h b "" >/dev/null
	redis-cli -p "$PORT" PUBLISH semcache:ev "{c$cat}" >/dev/null
	reread() { hits_are 20 "$ID" code "$MNT" "$MNT_B"; }
	wait_until 10 reread
	grep -q "reading the category's hit counts" "$LOG"
	# both still count on from there
	hit_on "$MNT" code 1 "$Q1"
	hit_on "$MNT_B" code 1 "$Q1"
	more() { hits_are 22 "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = 22 ]; }
	wait_until 10 more
}

@test "lfu eviction goes by the summed count: 2 hits on A and 2 on B beat 3 on A" {
	mkdir "$MNT/q"
	printf 'quota: {entries: 3}\neviction: lfu\n' >"$MNT/q/policy.yaml"
	fill_on "$MNT" q x "$Q1" "x answer"
	X=$ID
	fill_on "$MNT" q y "$Q2" "y answer"
	Y=$ID
	fill_on "$MNT" q z "$Q3" "z answer"
	Z=$ID
	known_b() { [ -d "$MNT_B/q/entries/$Z" ] && grep -q '^eviction: lfu .*# /q$' "$MNT_B/q/.policy"; }
	wait_until 10 known_b
	hit_on "$MNT" q 2 "$Q1"
	hit_on "$MNT" q 3 "$Q2"
	hit_on "$MNT" q 5 "$Q3"
	a_saved() { [ "$(redis_h "$Y")" = 3 ] && [ "$(redis_h "$Z")" = 5 ] && [ "$(redis_h "$X")" = 2 ]; }
	wait_until 10 a_saved
	# B hits x twice; its unmount writes them back
	hit_on "$MNT_B" q 2 "$Q1"
	stop_b
	# a fourth fill on A: one of x (2 + 2) and y (3) must go
	fill_on "$MNT" q w "$Q4" "w answer"
	[ ! -d "$MNT/q/entries/$Y" ] || fail "y (3 hits) was kept"
	[ -d "$MNT/q/entries/$X" ] || fail "x (2 + 2 hits) was evicted"
	[ -d "$MNT/q/entries/$Z" ]
	[ -d "$MNT/q/entries/$ID" ]
	run redis_h "$X"
	assert_output 4
	run redis-cli -p "$PORT" ZCARD "{c$((ID & 16777215))}:ids"
	assert_output 3
	# B, back, agrees
	start_b
	b_agrees() { [ ! -d "$MNT_B/q/entries/$Y" ] && [ -d "$MNT_B/q/entries/$ID" ] && hits_are 4 "$X" q "$MNT_B"; }
	wait_until 10 b_agrees
	[ "$(ls "$MNT_B/q/entries" | wc -l)" = 3 ]
}

@test "a host that restarts does not count its hits again" {
	mkdir "$MNT/code"
	fill_on "$MNT" code f "$Q1" "starter answer"
	known_b() { [ -d "$MNT_B/code/entries/$ID" ]; }
	wait_until 10 known_b
	hit_on "$MNT" code 3 "$Q1"
	hit_on "$MNT_B" code 2 "$Q1"
	# B's two hits reach Redis at its unmount at the latest
	stop_b
	five() { [ "$(redis_h "$ID")" = 5 ]; }
	wait_until 10 five
	start_b
	b_five() { hits_are 5 "$ID" code "$MNT" "$MNT_B"; }
	wait_until 10 b_five
	hit_on "$MNT_B" code 1 "$Q1"
	six() { hits_are 6 "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = 6 ]; }
	wait_until 10 six
	# a second restart, now on B's local copy of the category: still 6
	stop_b
	start_b
	run grep -c "category $((ID & 16777215)): 1 entries from the local copy" "$LOG_B"
	assert_output 1
	b_six() { hits_are 6 "$ID" code "$MNT_B"; }
	wait_until 10 b_six
	hit_on "$MNT" code 1 "$Q1"
	seven() { hits_are 7 "$ID" code "$MNT" "$MNT_B" && [ "$(redis_h "$ID")" = 7 ]; }
	wait_until 10 seven
}

@test "a ttl expiry happens once: one delete in Redis, expired: 1 on both hosts" {
	mkdir "$MNT/t"
	printf 'ttl: 2s\nttl_mode: absolute\n' >"$MNT/t/policy.yaml"
	fill_on "$MNT" t f "$Q1" "short-lived answer"
	known_b() { [ -d "$MNT_B/t/entries/$ID" ] && grep -q '^ttl: 2s .*# /t$' "$MNT_B/t/.policy"; }
	wait_until 10 known_b
	gone() { [ ! -d "$MNT/t/entries/$ID" ] && [ ! -d "$MNT_B/t/entries/$ID" ]; }
	wait_until 15 gone
	counted() { [ "$(stat_of expired "$MNT" t)" = 1 ] && [ "$(stat_of expired "$MNT_B" t)" = 1 ]; }
	wait_until 10 counted || fail "expired: A $(stat_of expired "$MNT" t), B $(stat_of expired "$MNT_B" t)"
	for m in "$MNT" "$MNT_B"; do
		run stat_of expired "$m" /
		assert_output 1
		run stat_of entries "$m" t
		assert_output 0
	done
	# one delete event in the category's stream, marked as an expiry
	run redis-cli -p "$PORT" XRANGE "{c$((ID & 16777215))}:stream" - +
	[ "$(grep -cx d <<<"$output")" = 1 ]
	grep -qx x <<<"$output"
}

@test "a sliding ttl: hits on B keep the entry alive on A past its ttl" {
	mkdir "$MNT/s"
	printf 'ttl: 4s\nttl_mode: sliding\n' >"$MNT/s/policy.yaml"
	fill_on "$MNT" s f "$Q1" "kept answer"
	known_b() { [ -d "$MNT_B/s/entries/$ID" ] && grep -q '^ttl_mode: sliding .*# /s$' "$MNT_B/s/.policy"; }
	wait_until 10 known_b
	# B asks back to back for 10 s (2.5 ttls), A never does
	local end=$((SECONDS + 10)) n=0
	while ((SECONDS < end)); do
		hit_on "$MNT_B" s 1 "$Q1"
		n=$((n + 1))
	done
	echo "# $n hits on B over 10 s, sliding ttl 4 s" >&3
	[ -d "$MNT/s/entries/$ID" ] || fail "A expired an entry B kept hitting"
	[ -d "$MNT_B/s/entries/$ID" ]
	run stat_of expired "$MNT" s
	assert_output 0
	# once B stops, it expires once, counted on both
	gone() { [ ! -d "$MNT/s/entries/$ID" ] && [ ! -d "$MNT_B/s/entries/$ID" ]; }
	wait_until 15 gone
	counted() { [ "$(stat_of expired "$MNT" s)" = 1 ] && [ "$(stat_of expired "$MNT_B" s)" = 1 ]; }
	wait_until 10 counted
}

@test "on a Redis Cluster: hits add up and an expiry counts once on both hosts" {
	command -v redis-cli >/dev/null || skip "needs redis-cli (package redis-tools)"
	start_cluster
	start_host c "redis://127.0.0.1:${PORTS[0]}/0"
	start_host d "redis://127.0.0.1:${PORTS[1]}/0"
	C=$WORK/c D=$WORK/d
	mkdir "$C/k1" "$C/k2" "$C/k3"
	printf 'ttl: 2s\n' >"$C/k3/policy.yaml"
	fill_on "$C" k1 f "$Q1" "one"
	I1=$ID
	fill_on "$C" k2 f "$Q2" "two"
	I2=$ID
	known_d() { [ -d "$D/k1/entries/$I1" ] && [ -d "$D/k2/entries/$I2" ]; }
	wait_until 10 known_d
	hit_on "$C" k1 3 "$Q1"
	hit_on "$D" k1 4 "$Q1"
	hit_on "$C" k2 1 "$Q2"
	hit_on "$D" k2 1 "$Q2"
	sums() { hits_are 7 "$I1" k1 "$C" "$D" && hits_are 2 "$I2" k2 "$C" "$D"; }
	wait_until 10 sums
	grep -q '^ttl: 2s .*# /k3$' "$D/k3/.policy" || wait_until 10 grep -q '^ttl: 2s .*# /k3$' "$D/k3/.policy"
	fill_on "$C" k3 f "$Q3" "three"
	I3=$ID
	gone() { [ ! -d "$C/k3/entries/$I3" ] && [ ! -d "$D/k3/entries/$I3" ]; }
	wait_until 15 gone
	counted() { [ "$(stat_of expired "$C" k3)" = 1 ] && [ "$(stat_of expired "$D" k3)" = 1 ]; }
	wait_until 10 counted || fail "expired: C $(stat_of expired "$C" k3), D $(stat_of expired "$D" k3)"
}
