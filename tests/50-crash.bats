#!/usr/bin/env bats
# Crash safety: kill -9 the daemon at random moments while 4 writers fill
# concurrently, restart, and check that every acknowledged fill is served
# byte for byte, that the fill in flight at the kill is whole or absent, and
# that the index, the store's rows and its blobs agree.
#
# CI profile: 5 rounds, each killed at a random point between 420 and 520
# acknowledged fills (>= 2,100 fills). SEMCACHE_LONG=1: 20 rounds.

load helpers

setup() { setup_mount; }
teardown() { teardown_mount; }

CRASHFILL=$BUILD/tests/crashfill

acked() { cat "$WORK"/ack.* 2>/dev/null | wc -l; }

# stat_of FILE KEY: the value of "KEY: value" in a .stats file
stat_of() { sed -n "s/^$2: //p" "$1"; }

blob_count() { find "$STORE/blobs" -type f ! -name '.tmp.*' | wc -l; }

@test "acknowledged fills survive kill -9 at random moments under 4 concurrent writers" {
	[ -x "$CRASHFILL" ] || skip "needs $CRASHFILL (build the tests)"
	local rounds=5 writers=4 r w target before total_fills=0
	[ "${SEMCACHE_LONG:-0}" = 1 ] && rounds=20
	mkdir "$MNT/crash"
	for ((r = 1; r <= rounds; r++)); do
		before=$(acked)
		target=$((before + 420 + RANDOM % 100))
		pids=()
		for ((w = 0; w < writers; w++)); do
			"$CRASHFILL" fill "$MNT/crash" "$r" "$w" 100000 \
				"$WORK/ack.$w" >"$WORK/fill.$r.$w" 2>&1 &
			pids+=($!)
		done
		reached() { (($(acked) >= target)); }
		wait_until 120 reached
		kill_daemon
		for p in "${pids[@]}"; do
			wait "$p" # the writers stop on their own once the mount is gone
		done
		# every writer stopped because of the kill, not by finishing
		for ((w = 0; w < writers; w++)); do
			run cat "$WORK/fill.$r.$w"
			assert_output --regexp '^acked [0-9]+ stopped E[A-Z]+ at [a-z]+$'
		done
		total_fills=$(acked)
		echo "# round $r: killed at $total_fills acked fills" >&3

		start_daemon
		grep -q "did not close cleanly" "$LOG"
		run "$CRASHFILL" verify "$MNT/crash" "$WORK"/ack.*
		assert_success
		assert_output --regexp "^verified $total_fills acked, [0-9]+ in-flight present, [0-9]+ in-flight absent, entries [0-9]+$"
		local expect=${output##* }
		echo "# round $r: $output" >&3
		# the index agrees with the verified entries and with the blobs
		cat "$MNT/.stats" >"$WORK/stats"
		[ "$(stat_of "$WORK/stats" entries)" = "$expect" ]
		[ "$(blob_count)" = "$expect" ]
		[ "$(stat_of "$WORK/stats" damaged_dropped)" = 0 ]
		rm -f "$MNT/crash/cfv."* "$MNT/crash/cf"*.*
	done
	(($(acked) >= 2000))
	# and the database rows agree after a clean stop
	stop_daemon
	[ "$(sqlite3 "$STORE/semcache.db" 'select count(*) from entries')" = "$expect" ]
	[ "$(blob_count)" = "$expect" ]
	start_daemon
	echo "# $rounds rounds survived, $(acked) acknowledged fills verified" >&3
}
