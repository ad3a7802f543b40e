# redis_hosts.bash - loaded after helpers.bash by the files that run several
# semcachefs daemons ("hosts" A, B and more, each with its own mountpoint
# and local state) on one real redis-server started on a loopback port:
# setup/teardown, starting and stopping hosts, and B's lookup.
#
# Host A is helpers.bash's daemon ($MNT, $LOG, $DAEMON_PID); host X is
# mounted on $WORK/X with local state $WORK/state-X and log $WORK/X.log.
# $PORT is the redis-server's port, $URL the store's URL.

# hosts_workdirs: $WORK with mountpoints, logs and local state of A and B
hosts_workdirs() {
	require_fuse
	command -v redis-server >/dev/null || skip "needs redis-server (package redis-server)"
	WORK=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache.XXXXXX")
	MNT=$WORK/a
	MNT_B=$WORK/b
	LOG=$WORK/a.log
	LOG_B=$WORK/b.log
	mkdir -p "$MNT" "$MNT_B" "$WORK/redis" "$WORK/state-a" "$WORK/state-b"
}

setup_hosts() {
	hosts_workdirs
	PORT=$((23000 + RANDOM % 9000)) # below the kernel's ephemeral ports (32768+)
	start_redis
	URL=${URL:-redis://127.0.0.1:$PORT/0}
	STORE=$URL
	XDG_DATA_HOME=$WORK/state-a start_daemon
	start_b
}

teardown_hosts() {
	local h rc=0
	# a test may leave the server stopped (kill -STOP): let it go on
	[ ! -s "$WORK/redis.pid" ] || kill -CONT "$(cat "$WORK/redis.pid")" 2>/dev/null || true
	for h in "${!PIDS[@]}"; do stop_host "$h" || rc=$?; done
	teardown_mount || rc=$?
	redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
	return "$rc"
}

start_redis() {
	redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly yes \
		--appendfsync always --dir "$WORK/redis" --daemonize yes \
		--pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" "$@" >/dev/null
	up() { redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; }
	wait_until 10 up
}

declare -gA PIDS # host name (b, c) -> daemon pid; A is helpers.bash's

# start_host X [URL]: mount another host X on $WORK/X, local state
# $WORK/state-X, log $WORK/X.log (the store: URL, else $URL)
start_host() {
	local m=$WORK/$1
	mkdir -p "$m" "$WORK/state-$1"
	XDG_DATA_HOME=$WORK/state-$1 "$SEMCACHEFS" -f -o store="${2:-$URL}" "$m" 2>>"$WORK/$1.log" &
	PIDS[$1]=$!
	mounted_x() { grep -qs " $m fuse" /proc/self/mounts; }
	wait_until 20 mounted_x
}

# stop_host X: unmount X; fails if the daemon did not exit 0 or a sanitizer
# reported anything in its log
stop_host() {
	[ -n "${PIDS[$1]:-}" ] || return 0
	fusermount3 -u "$WORK/$1" 2>/dev/null || umount -l "$WORK/$1" 2>/dev/null || true
	local s=0
	wait "${PIDS[$1]}" || s=$?
	unset "PIDS[$1]"
	if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$WORK/$1.log"; then
		grep -A 20 -E "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$WORK/$1.log" >&3
		return 99
	fi
	if [ "$s" != 0 ]; then
		echo "--- host $1 log (exit status $s) ---" >&3
		tail -n 30 "$WORK/$1.log" >&3
	fi
	return "$s"
}

start_b() { start_host b; }
stop_b() { stop_host b; }

# ask_b DIR NAME QUERY: the lookup on host B
ask_b() {
	printf '%s\n' "$3" >"$MNT_B/$1/$2.query" && cat "$MNT_B/$1/$2.status"
}

# start_cluster: three masters on ports $PORTS (below the kernel's
# ephemeral ports, their cluster bus ports +10000 too), slots spread by
# `redis-cli --cluster create`; skips where that fails, shows the servers'
# logs where they do not come up
start_cluster() {
	local base=$((20000 + RANDOM % 2700)) p
	PORTS=("$base" "$((base + 1))" "$((base + 2))")
	for p in "${PORTS[@]}"; do
		mkdir -p "$WORK/r$p"
		redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --save '' \
			--cluster-config-file "$WORK/r$p/nodes.conf" --appendonly yes \
			--dir "$WORK/r$p" --daemonize yes --logfile "$WORK/r$p/log" >/dev/null
	done
	all_up() { for p in "${PORTS[@]}"; do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG || return 1; done; }
	if ! wait_until 10 all_up; then
		for p in "${PORTS[@]}"; do tail -n 5 "$WORK/r$p/log" >&3; done
		return 1
	fi
	redis-cli --cluster create "${PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 \
		--cluster-yes >"$WORK/create.log" 2>&1 || skip "redis-cli --cluster create failed here"
	cluster_ok() { redis-cli -p "${PORTS[0]}" cluster info | grep -q 'cluster_state:ok'; }
	wait_until 20 cluster_ok
}
