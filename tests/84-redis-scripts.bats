#!/usr/bin/env bats
# The Redis store's Lua scripts go by their SHA-1 (EVALSHA); a server that
# does not know one (SCRIPT FLUSH, a restart) answers NOSCRIPT and is sent
# the source once (EVAL). Two hosts (A and B) on a real redis-server on a
# loopback port; what reached the server is read from INFO commandstats.

load helpers
load redis_hosts

setup() { setup_hosts; }
teardown() { teardown_hosts; }

# cmdstat CMD FIELD: FIELD (calls, failed_calls) of CMD in INFO
# commandstats, 0 when CMD never ran since the last CONFIG RESETSTAT
cmdstat() {
	local line
	line=$(redis-cli -p "$PORT" INFO commandstats | tr -d '\r' | grep "^cmdstat_$1:") || {
		echo 0
		return 0
	}
	sed -n "s/.*[:,]$2=\([0-9]*\).*/\1/p" <<<"$line"
}

# key_of ID: the Redis hash of entry ID ({cCAT}:e:SEQ)
key_of() { echo "{c$(($1 & 16777215))}:e:$(($1 >> 24))"; }

# fill_and_hit N WORD: N fills on A, each then a hit on B with its bytes;
# $LAST_ID is the last fill's entry id
fill_and_hit() {
	local i w=$2
	for ((i = 1; i <= $1; i++)); do
		# words of their own per round and number: no two questions alike
		Q="tell me about $(md5sum <<<"$w $i" | cut -c1-12) and $(md5sum <<<"$i $w" | cut -c1-12)"
		run ask code "$w$i" "$Q"
		assert_miss
		fill code "$w$i" "answer $w $i"
		LAST_ID=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/code/$w$i.status")
		[ -n "$LAST_ID" ]
		B_NAME=${w}b$i
		hit_b() { [[ $(ask_b code "$B_NAME" "$Q") == hit* ]]; }
		wait_until 5 hit_b
		run cat "$MNT_B/code/$B_NAME.response"
		assert_output "answer $w $i"
	done
}

# hits_stored ID: B's hit on entry ID was written back to Redis
hits_stored() { [ "$(redis-cli -p "$PORT" HGET "$(key_of "$1")" h)" -ge 1 ] 2>/dev/null; }

@test "scripts go by hash: EVAL only after NOSCRIPT, and none once the server knows them" {
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	redis-cli -p "$PORT" SCRIPT FLUSH >/dev/null
	redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
	fill_and_hit 10 a
	wait_until 10 hits_stored "$LAST_ID"
	# every EVAL followed a NOSCRIPT (a failed EVALSHA), and there were some
	evalsha=$(cmdstat evalsha calls)
	eval=$(cmdstat eval calls)
	echo "# after SCRIPT FLUSH: evalsha calls=$evalsha failed=$(cmdstat evalsha failed_calls), eval calls=$eval" >&3
	((evalsha >= 20))
	((eval >= 1))
	[ "$eval" = "$(cmdstat evalsha failed_calls)" ]
	# the same work again: the server knows every script, no source is sent
	redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
	fill_and_hit 10 b
	wait_until 10 hits_stored "$LAST_ID"
	evalsha=$(cmdstat evalsha calls)
	echo "# known scripts: evalsha calls=$evalsha, eval calls=$(cmdstat eval calls)" >&3
	((evalsha >= 20))
	[ "$(cmdstat eval calls)" = 0 ]
	[ "$(cmdstat evalsha failed_calls)" = 0 ]
}

@test "SCRIPT FLUSH behind the daemons' backs: fills, hits, hit counts and deletes still work on both hosts" {
	mkdir "$MNT/code"
	has_code() { [ -d "$MNT_B/code" ]; }
	wait_until 5 has_code
	fill_and_hit 3 a
	redis-cli -p "$PORT" SCRIPT FLUSH >/dev/null
	redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
	# puts (A), the watcher's reads (B) and hit counts (B) after the flush
	fill_and_hit 3 b
	wait_until 10 hits_stored "$LAST_ID"
	# a delete on A after another flush is gone on B
	redis-cli -p "$PORT" SCRIPT FLUSH >/dev/null
	rm -r "$MNT/code/entries/$LAST_ID"
	gone_b() { [ ! -e "$MNT_B/code/entries/$LAST_ID" ]; }
	wait_until 5 gone_b
	run redis-cli -p "$PORT" EXISTS "$(key_of "$LAST_ID")"
	assert_output 0
	((($(cmdstat eval calls) >= 1)))
	[ "$(cmdstat eval calls)" = "$(cmdstat evalsha failed_calls)" ]
	run grep -c NOSCRIPT "$LOG" "$LOG_B"
	assert_output "$LOG:0
$LOG_B:0"
}
