#!/usr/bin/env bats
# Load: 8 concurrent clients doing lookups (70%), refills (20%) and rm of
# session files (10%) against a prefilled category, through the mount.
# No error, no deadlock (a client without progress for 30 s fails the run),
# no fd growth, and no RSS growth.
#
# Memory: refills leave tombstones that compactions remove, so VmRSS is a
# sawtooth, and glibc's heap adds swings of its own: measured here at 10k
# entries, VmRSS went 38 -> 45 MB over the first compactions, jumped once to
# ~69 MB, crept to 75 MB and fell back to 51-61 MB in a 60 s run. So the
# check is that the last third of the run peaks no higher than 10% over the
# peak of the first two thirds, with the run long enough (at least 6
# compactions) that those two thirds hold the sawtooth's and the heap's
# highs. A leak of 4 KiB per fill (tried) made the last third peak 13% over.
#
# Since lookups run in parallel (HNSW searches without OpenMP's lock), one
# run in four peaked +20% in the last third where the others peaked 3-7%
# over. The likely source is glibc's malloc adding arenas (a heap of its
# own per contended thread, each an RSS step that is no leak), so the
# daemon runs with MALLOC_ARENA_MAX=2 here: the check is about what the
# daemon keeps, not how many arenas glibc made (with it: 3-4% over, three
# runs of three).
#
# CI profile: 30 s (or until 6 compactions) against 10k entries;
# SEMCACHE_LONG=1: 60 s against 100k.

load helpers

setup() {
	export MALLOC_ARENA_MAX=2
	setup_mount
}
teardown() { teardown_mount; }

LOADGEN=$BUILD/tests/loadgen

fd_count() { ls "/proc/$DAEMON_PID/fd" | wc -l; }

@test "8 clients of mixed lookups, fills and rm: no error, no deadlock, no fd or memory growth" {
	[ -x "$LOADGEN" ] || skip "needs $LOADGEN (build the tests)"
	local n=10000 secs=30 procs=4 compactions=6
	if [ "${SEMCACHE_LONG:-0}" = 1 ]; then n=100000; secs=60; fi
	mkdir "$MNT/load"
	# bulk prefill through the mount, 4 processes in parallel
	local t0=$SECONDS
	pids=()
	for ((p = 0; p < procs; p++)); do
		"$LOADGEN" prefill "$MNT/load" $((p * n / procs)) $((n / procs)) >"$WORK/prefill.$p" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	echo "# prefilled $n entries in $((SECONDS - t0)) s" >&3
	run cat "$MNT/load/.stats"
	assert_line "entries: $n"
	rm -f "$MNT/load/prefill."*
	# measure the steady state: the prefill's vectors merged into HNSW
	merged() { grep -qx "index_unmerged: 0" "$MNT/load/.stats"; }
	wait_until $((n / 100 + 60)) merged
	fds_before=$(fd_count)

	run timeout $((secs * 10 + 120)) "$LOADGEN" run "$MNT/load" 8 "$secs" "$n" "$DAEMON_PID" "$compactions"
	echo "$output" | sed 's/^/# /' >&3
	assert_success
	assert_line --regexp '^ops [0-9]+ lookups [0-9]+ fills [0-9]+ rms [0-9]+ errors 0 stalls 0$'
	local early last ncomp
	early=$(sed -n 's/^rss_kb early_max \([0-9]*\) .*/\1/p' <<<"$output")
	last=$(sed -n 's/^rss_kb early_max [0-9]* last_max \([0-9]*\) .*/\1/p' <<<"$output")
	ncomp=$(sed -n 's/^rss_kb .* compactions \([0-9]*\)$/\1/p' <<<"$output")
	# tombstones are compacted away, again and again
	((ncomp >= compactions))
	# memory: the last third peaks within 10% of the first two thirds
	((early > 0 && last > 0))
	((last * 100 <= early * 110))

	rm -f "$MNT/load/lg"*
	fds_after=$(fd_count)
	echo "# daemon fds before $fds_before after $fds_after" >&3
	((fds_after <= fds_before))
	kill -0 "$DAEMON_PID"
	run cat "$MNT/load/.stats"
	assert_line --regexp '^entries: [0-9]+$'
}
