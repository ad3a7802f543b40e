#!/usr/bin/env bats
# A host that restarts on its local snapshot after other hosts changed the
# shared store while it was down: fills it missed are hits, entries deleted
# or purged meanwhile are gone, also when the change stream was trimmed
# past what it had seen. Hosts A and B on a real redis-server on a
# loopback port.

load helpers
load redis_hosts

setup() { setup_hosts; }
teardown() { teardown_hosts; }

# q N: the question of number N (words of its own: no two alike)
q() { echo "tell me about $(md5sum <<<"q $1" | cut -c1-12) and $(md5sum <<<"$1 q" | cut -c1-12)"; }

# fill_a DIR N: a fill of question N on A; $ID is its entry id
fill_a() {
	run ask "$1" "f$2" "$(q "$2")"
	assert_miss
	fill "$1" "f$2" "answer $2"
	ID=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/$1/f$2.status")
	[ -n "$ID" ]
}

# b_hits DIR N: B answers question N from DIR with its answer
b_hits() {
	run ask_b "$1" "b$2" "$(q "$2")"
	assert_output --regexp '^hit score=1\.000'
	run cat "$MNT_B/$1/b$2.response"
	assert_output "answer $2"
}

# b_misses DIR N: B does not serve question N from DIR
b_misses() {
	run ask_b "$1" "m$2" "$(q "$2")"
	assert_miss
}

# entries_of MNT: the entries line of the root's .stats
entries_of() { grep '^entries: ' "$1/.stats"; }

# changes_while_b_down: with B down, A fills 5..8, deletes 1 and purges
# "other" (entries 20, 21); B knew 1..4 and 20, 21 before
changes_while_b_down() {
	mkdir "$MNT/code" "$MNT/other"
	for i in 1 2 3 4; do
		fill_a code "$i"
		eval "ID$i=$ID"
	done
	fill_a other 20
	fill_a other 21
	known_b() { [ -d "$MNT_B/code/entries/$ID4" ] && [ -d "$MNT_B/other/entries/$ID" ]; }
	wait_until 5 known_b
	CODE=$((ID4 & 16777215))
	# a start reads a category in full and keeps a local copy of it
	stop_b
	start_b
	run grep -c "category $CODE: " "$WORK/b.log"
	assert_output 0
	stop_b
	# the position of B's copy of code: the last event of its stream
	P=$(redis-cli -p "$PORT" XREVRANGE "{c$CODE}:stream" + - COUNT 1 | head -n 1)
	[[ $P =~ ^[0-9]+-[0-9]+$ ]]
	for i in 5 6 7 8; do fill_a code "$i"; done
	# 3 hits on A while B is down: counters reach Redis, not the stream
	for k in 1 2 3; do
		run ask code "h$k" "$(q 3)"
		assert_output --regexp '^hit score=1\.000'
	done
	three_hits() { [ "$(redis-cli -p "$PORT" HGET "{c$CODE}:e:$((ID3 >> 24))" h)" = 3 ]; }
	wait_until 10 three_hits
	rm -r "$MNT/code/entries/$ID1"
	: >"$MNT/other/.purge"
	run ls "$MNT/other/entries"
	assert_output ""
}

# b_sees_the_store: B answers 2..8, not 1, 20 or 21, and counts what A does
b_sees_the_store() {
	for i in 2 3 4 5 6 7 8; do b_hits code "$i"; done
	b_misses code 1
	b_misses other 20
	b_misses other 21
	run ls "$MNT_B/other/entries"
	assert_output ""
	[ ! -e "$MNT_B/code/entries/$ID1" ]
	[ "$(entries_of "$MNT_B")" = "$(entries_of "$MNT")" ]
	[ "$(entries_of "$MNT_B")" = "entries: 7" ]
	# A's 3 hits (not streamed: read again at start), and B's own since
	run grep '^hits: ' "$MNT_B/code/entries/$ID3/meta"
	[[ $output =~ ^hits:\ ([0-9]+)$ ]]
	((BASH_REMATCH[1] >= 4))
}

@test "restart after fills, a delete and a purge on another host: missed fills hit, deleted and purged entries are gone" {
	changes_while_b_down
	start_b
	b_sees_the_store
	# from the local copy and the 5 changes since (4 fills, 1 delete)
	run grep "category $CODE: " "$WORK/b.log"
	assert_line --regexp "category $CODE: 3 entries from the local copy, 4 read from redis \(5 changed since\)"
	refute_line --partial "is not used"
	# and again with nothing missed: all from the new copy
	stop_b
	start_b
	b_sees_the_store
	run grep "category $CODE: " "$WORK/b.log"
	assert_line --regexp "category $CODE: 7 entries from the local copy, 0 read from redis \(0 changed since\)"
}

@test "restart after the change streams were trimmed past what the host had seen: still exactly the store's entries" {
	changes_while_b_down
	for k in $(redis-cli -p "$PORT" --scan --pattern '*:stream'); do
		redis-cli -p "$PORT" XTRIM "$k" MAXLEN 0 >/dev/null
	done
	start_b
	b_sees_the_store
	run grep "category $CODE: " "$WORK/b.log"
	assert_line --partial "category $CODE: the local copy is not used (its stream was trimmed past the copy's position"
	refute_line --partial "from the local copy"
}

@test "restart after the stream was trimmed up to the copy's position but not past it: still only the changes are read" {
	changes_while_b_down
	# every event up to and including P goes, the 5 after it stay
	redis-cli -p "$PORT" XTRIM "{c$CODE}:stream" MINID "${P%-*}-$((${P#*-} + 1))" >/dev/null
	run redis-cli -p "$PORT" XLEN "{c$CODE}:stream"
	assert_output 5
	start_b
	b_sees_the_store
	run grep "category $CODE: " "$WORK/b.log"
	assert_line --partial "category $CODE: 3 entries from the local copy, 4 read from redis (5 changed since)"
}

@test "restart with a damaged local copy: a full read, logged, and still exactly the store's entries" {
	changes_while_b_down
	copy=$(ls "$WORK"/state-b/semcachefs/redis-*/entries-c"$CODE")
	printf 'X' | dd of="$copy" bs=1 seek=200 conv=notrunc status=none
	start_b
	b_sees_the_store
	run grep "category $CODE: " "$WORK/b.log"
	assert_line --partial "category $CODE: the local copy is not used (its checksum fails): reading all its entries"
	refute_line --partial "from the local copy"
}

@test "restart when the store's count disagrees with the local copy and its changes: a full read, and the entry removed without an event is gone" {
	changes_while_b_down
	# entry 2 removed behind every host's back (no stream event)
	redis-cli -p "$PORT" ZREM "{c$CODE}:ids" "$((ID2 >> 24))" >/dev/null
	redis-cli -p "$PORT" DEL "{c$CODE}:e:$((ID2 >> 24))" >/dev/null
	start_b
	run grep "category $CODE: " "$WORK/b.log"
	assert_line --partial "category $CODE: the local copy is not used (its count disagrees with the store's): reading all its entries"
	refute_line --partial "from the local copy"
	b_misses code 2
	for i in 3 4 5 6 7 8; do b_hits code "$i"; done
	b_misses code 1
	[ "$(entries_of "$MNT_B")" = "entries: 6" ]
}
