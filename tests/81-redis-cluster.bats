#!/usr/bin/env bats
# Two semcachefs daemons on a real 3-node Redis Cluster made on loopback
# ports with `redis-cli --cluster create`.

load helpers
load redis_hosts

setup() {
	command -v redis-cli >/dev/null || skip "needs redis-cli (package redis-tools)"
	hosts_workdirs
	start_cluster
	URL=redis://127.0.0.1:${PORTS[0]}/0
	STORE=$URL
	XDG_DATA_HOME=$WORK/state-a start_daemon
	XDG_DATA_HOME=$WORK/state-b "$SEMCACHEFS" -f -o store="redis://127.0.0.1:${PORTS[1]}/0" "$MNT_B" 2>>"$LOG_B" &
	PID_B=$!
	mounted_b() { grep -qs " $MNT_B fuse" /proc/self/mounts; }
	wait_until 20 mounted_b
}

teardown() {
	if [ -n "${PID_B:-}" ]; then
		fusermount3 -u "$MNT_B" 2>/dev/null || umount -l "$MNT_B" 2>/dev/null || true
		wait "$PID_B" || true
	fi
	teardown_mount || status=$?
	for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
	return "${status:-0}"
}

@test "categories spread over the cluster and fills on one host hit on the other" {
	for c in code chat news docs sql math; do
		mkdir "$MNT/$c"
		ask "$c" q "the $c question about reversing a list"
		fill "$c" q "the $c answer"
	done
	for c in code chat news docs sql math; do
		hit_b() {
			s=$(printf 'the %s question about reversing a list\n' "$c" >"$MNT_B/$c/q.query" &&
				cat "$MNT_B/$c/q.status")
			[ "${s%% *}" = hit ]
		}
		wait_until 10 hit_b
		run cat "$MNT_B/$c/q.response"
		assert_output "the $c answer"
	done
	# the categories' keys landed on more than one node
	nodes=0
	for p in "${PORTS[@]}"; do
		[ "$(redis-cli -p "$p" dbsize)" -gt 0 ] && nodes=$((nodes + 1))
	done
	((nodes >= 2))
}

@test "concurrent fills from both hosts with a quota on a cluster: exactly the quota stays, evicted once" {
	mkdir -p "$WORK/resp" "$WORK/filled" "$MNT/q"
	: >"$WORK/failed"
	printf 'quota: {entries: 20}\neviction: fifo\n' >"$MNT/q/policy.yaml"
	ready() { grep -q '^quota\.entries: 20 ' "$MNT_B/q/.policy"; }
	wait_until 10 ready
	fill_loop "$MNT" a 1 30 & p1=$!
	fill_loop "$MNT_B" b 1 30 & p2=$!
	wait $p1 $p2
	run cat "$WORK/failed"
	assert_output ""
	settled() { count_is 20 "$MNT" "$MNT_B"; }
	wait_until 10 settled
	[ "$(stat_sum evicted "$MNT" "$MNT_B")" = 40 ]
	ls "$WORK/filled" | sort -n | tail -n 20 >"$WORK/expected"
	views() { views_are "$WORK/expected" "$MNT" "$MNT_B"; }
	wait_until 10 views
	while read -r id; do
		cmp "$WORK/filled/$id" "$MNT_B/q/entries/$id/response"
	done <"$WORK/expected"
}
