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
	stop_b
	for i in 5 6 7 8; do fill_a code "$i"; done
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
}

@test "restart after fills, a delete and a purge on another host: missed fills hit, deleted and purged entries are gone" {
	changes_while_b_down
	start_b
	b_sees_the_store
}

@test "restart after the change streams were trimmed past what the host had seen: still exactly the store's entries" {
	changes_while_b_down
	for k in $(redis-cli -p "$PORT" --scan --pattern '*:stream'); do
		redis-cli -p "$PORT" XTRIM "$k" MAXLEN 0 >/dev/null
	done
	start_b
	b_sees_the_store
}
