#!/usr/bin/env bats
# Load: 8 concurrent clients doing lookups (70%), refills (20%) and rm of
# session files (10%) against a prefilled category, through the mount.
# No error, no deadlock (a client without progress for 30 s fails the run),
# no fd growth, and no memory growth.
#
# Memory: what is checked is the daemon's heap in use (the root .stats'
# heap_bytes: bytes allocated and not freed; ASan's count under ASan), not
# VmRSS, compared at rest before and after the load (index merged, no
# compaction under way, two reads 0.5 s apart within 1%). Under load both
# swing for reasons that are no leak: refills leave tombstones that
# compactions remove (a rebuild holds the live vectors, the old and the new
# graph at once), FAISS's arrays grow by doubling, the buffer of unmerged
# vectors grows while merges fall behind (a busy machine) and keeps its
# capacity, libfuse adds worker threads, and VmRSS also holds what glibc
# retains (arenas, freed chunks). Measured at 10k entries: heap in use
# swung 44-105 MiB in a 150 s run with no trend, VmRSS 39-80 MiB; the
# check this replaces (the last third's VmRSS peak within 10% of the first
# two thirds') failed about one run in five with nothing leaking.
#
# At rest those structures are bounded by the number of entries, a leak by
# the number of fills. So: heap after <= heap before + 3 KiB per entry
# (three raw vectors: FAISS's doubled capacity, tombstones, the buffer's
# capacity) + what libfuse keeps per worker thread it added (a 1 MiB
# request buffer each: the largest growth at rest in a 5k run, found with
# an allocation tracker), and the run goes on until it made at least two
# refills per entry, so that a leak of ~1.5 KiB or more per fill fails it.
# Tried: a 2 KiB leak per fill went 9.6 MiB over the bound, 4 KiB 29 MiB
# over; the VmRSS check passed the 2 KiB one. VmRSS is printed and only
# bounded loosely (1.5x); glibc's arenas are capped (MALLOC_ARENA_MAX=2)
# so that it stays a bound on the daemon, not on how many arenas glibc
# made for contended threads.
#
# CI profile: 30 s (or until 6 compactions and 2 refills per entry)
# against 5k entries; SEMCACHE_LONG=1: 60 s against 100k.

load helpers

setup() {
	export MALLOC_ARENA_MAX=2
	setup_mount
}
teardown() {
	# a test that set the kernel's THP setting puts it back, pass or fail
	[ -z "${THP_WAS:-}" ] || echo "$THP_WAS" >/sys/kernel/mm/transparent_hugepage/enabled
	teardown_mount
}

LOADGEN=$BUILD/tests/loadgen

fd_count() { ls "/proc/$DAEMON_PID/fd" | wc -l; }

heap_bytes() { sed -n 's/^heap_bytes: //p' "$MNT/.stats"; }
threads() { sed -n 's/^Threads:[[:space:]]*//p' "/proc/$DAEMON_PID/status"; }

# libfuse's multi-threaded loop gives each worker thread a request buffer
# of 256 pages plus a header page, kept for the thread's life; under load
# it adds workers (up to max_threads) that stay
FUSE_WORKER_BYTES=$((257 * 4096 + 4096))

# the daemon at rest: every vector merged, tombstones under the quarter
# that starts a compaction (so none is pending or under way: tombstones
# only fall when one ends), and two reads of the heap in use 0.5 s apart
# within 1% of each other; sets HEAP
heap_settled() {
	local a b st tomb live
	st=$(cat "$MNT/load/.stats")
	grep -qx "index_unmerged: 0" <<<"$st" || return 1
	tomb=$(sed -n 's/^index_tombstones: //p' <<<"$st")
	live=$(sed -n 's/^entries: //p' <<<"$st")
	[ -n "$tomb" ] && [ -n "$live" ] && ((tomb * 4 <= tomb + live)) || return 1
	a=$(heap_bytes)
	sleep 0.5 # the interval between the two samples, not a wait
	b=$(heap_bytes)
	HEAP=$b
	[ -n "$a" ] && [ -n "$b" ] && (((a > b ? a - b : b - a) * 100 <= b))
}

@test "8 clients of mixed lookups, fills and rm: no error, no deadlock, no fd or memory growth" {
	[ -x "$LOADGEN" ] || skip "needs $LOADGEN (build the tests)"
	local n=5000 secs=30 procs=4 compactions=6
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
	wait_until 120 heap_settled
	heap_before=$HEAP threads_before=$(threads)
	fds_before=$(fd_count)

	run timeout $((secs * 10 + 120)) "$LOADGEN" run "$MNT/load" 8 "$secs" "$n" "$DAEMON_PID" "$compactions" $((2 * n))
	echo "$output" | sed 's/^/# /' >&3
	assert_success
	assert_line --regexp '^ops [0-9]+ lookups [0-9]+ fills [0-9]+ rms [0-9]+ errors 0 stalls 0$'
	local early last ncomp
	early=$(sed -n 's/^rss_kb early_max \([0-9]*\) .*/\1/p' <<<"$output")
	last=$(sed -n 's/^rss_kb early_max [0-9]* last_max \([0-9]*\) .*/\1/p' <<<"$output")
	ncomp=$(sed -n 's/^rss_kb .* compactions \([0-9]*\)$/\1/p' <<<"$output")
	# tombstones are compacted away, again and again
	((ncomp >= compactions))
	# VmRSS: only a loose bound (see the top)
	((early > 0 && last > 0))
	((last * 100 <= early * 150))
	# the heap at rest: within 3 KiB per entry, and libfuse's buffer per
	# worker thread it added, of where it started
	wait_until 120 heap_settled
	local threads_after bound
	threads_after=$(threads)
	bound=$((n * 3072 + (threads_after > threads_before ? threads_after - threads_before : 0) * FUSE_WORKER_BYTES))
	echo "# heap at rest before $heap_before after $HEAP bytes, threads $threads_before -> $threads_after (bound +$bound)" >&3
	((heap_before > 0))
	((HEAP <= heap_before + bound))

	rm -f "$MNT/load/lg"*
	fds_after=$(fd_count)
	echo "# daemon fds before $fds_before after $fds_after" >&3
	((fds_after <= fds_before))
	kill -0 "$DAEMON_PID"
	run cat "$MNT/load/.stats"
	assert_line --regexp '^entries: [0-9]+$'
}

# AnonHugePages of the daemon, in kB
anon_huge_kb() { sed -n 's/^AnonHugePages:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$DAEMON_PID/smaps_rollup"; }
huge_at_least() { (($(anon_huge_kb) >= $1)); }
huge_logs() { grep -c "category '/load': [0-9]* MiB of its index put on huge pages" "$LOG"; }
huge_logged() { (($(huge_logs) >= $1)); }

@test "a category's index is put on huge pages once filled, and again after a restart loads its snapshot" {
	[ -x "$LOADGEN" ] || skip "needs $LOADGEN (build the tests)"
	grep -qE '\[(always|madvise)\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null ||
		skip "transparent huge pages are off here"
	local kv kmaj kmin
	kv=$(uname -r | sed -n 's/^\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
	read -r kmaj kmin <<<"$kv"
	((kmaj > 6 || (kmaj == 6 && kmin >= 1))) || skip "kernel $(uname -r) has no MADV_COLLAPSE (Linux 6.1+)"
	local n=6000 logs # 6000 vectors of 1 KiB: at least one aligned 2 MiB page inside
	mkdir "$MNT/load"
	run "$LOADGEN" prefill "$MNT/load" 0 "$n"
	assert_success
	merged() { grep -qx "index_unmerged: 0" "$MNT/load/.stats"; }
	wait_until 120 merged
	# the next slow maintenance tick (every second) advises what the merge
	# made; a compaction may move the index again meanwhile, so wait for it
	wait_until 20 huge_logged 1
	wait_until 20 huge_at_least 2048
	# lookups still hit with their own answers
	run "$LOADGEN" run "$MNT/load" 2 2 "$n" "$DAEMON_PID"
	assert_success
	assert_line --regexp '^ops [0-9]+ lookups [0-9]+ fills [0-9]+ rms [0-9]+ errors 0 stalls 0$'
	stop_daemon
	logs=$(huge_logs || true) # grep -c: 0 lines is status 1
	start_daemon
	run cat "$MNT/load/.stats"
	assert_line "entries: $n"
	wait_until 20 huge_logged $((logs + 1))
	wait_until 20 huge_at_least 2048
}

# MADV_COLLAPSE does not follow the kernel's THP setting (it collapses even
# under "never"), so the daemon reads the setting itself before advising.
@test "under the kernel's THP setting 'never' nothing is put on huge pages; once it allows them again, the index is" {
	[ -x "$LOADGEN" ] || skip "needs $LOADGEN (build the tests)"
	local thp=/sys/kernel/mm/transparent_hugepage/enabled was
	was=$(sed -n 's/.*\[\([a-z]*\)\].*/\1/p' "$thp" 2>/dev/null)
	[[ $was == always || $was == madvise ]] || skip "transparent huge pages are off here"
	[ -w "$thp" ] || skip "$thp is not writable here (needs root)"
	local kv kmaj kmin
	kv=$(uname -r | sed -n 's/^\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
	read -r kmaj kmin <<<"$kv"
	((kmaj > 6 || (kmaj == 6 && kmin >= 1))) || skip "kernel $(uname -r) has no MADV_COLLAPSE (Linux 6.1+)"
	THP_WAS=$was
	echo never >"$thp"
	local n=6000 huge logs
	mkdir "$MNT/load"
	run "$LOADGEN" prefill "$MNT/load" 0 "$n"
	assert_success
	merged() { grep -qx "index_unmerged: 0" "$MNT/load/.stats"; }
	wait_until 120 merged
	sleep 3 # three slow maintenance ticks, each a chance to advise
	huge=$(anon_huge_kb)
	logs=$(huge_logs || true) # grep -c: 0 lines is status 1
	echo "$was" >"$thp"
	echo "# under never: AnonHugePages ${huge} kB, ${logs} huge-page log lines" >&3
	((huge == 0))
	((logs == 0))
	wait_until 20 huge_logged 1
	wait_until 20 huge_at_least 2048
}
