#!/usr/bin/env bats
# The Redis fault matrix (what each client sees is in the README, "Running
# on many machines"): redis-server killed and restarted with and without
# its AOF, a silent network partition between one host and Redis, a
# failover to a replica, a server answering BUSY and OOM, and a live
# resharding of a Redis Cluster while three hosts fill and look up. Each
# cell checks that every acknowledged fill (close() returned 0) that the
# setting promises to keep is a hit with its bytes on every host, that no
# lookup is answered with bytes that are not the question's own, and the
# exact errno a client gets while the fault lasts. Real redis-servers on
# loopback ports; tests/tools/tcp_gate.py is the link that can be cut.
# (Paused server, garbage replies, FLUSHALL, LOADING after a lost reply and
# bad redirects are in 82-redis-faults.bats.)

load helpers
load redis_hosts

setup() {
	hosts_workdirs
	PORT=$((23000 + RANDOM % 9000)) # below the kernel's ephemeral ports
	URL=redis://127.0.0.1:$PORT/0
	mkdir -p "$WORK/resp" "$WORK/filled"
	: >"$WORK/failed"
	: >"$WORK/wrong"
}

teardown() {
	local p
	# the fill and lookup loops of a test that failed midway
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -z "${EVAL_PID:-}" ] || { redis-cli -p "$PORT" script kill >/dev/null 2>&1; wait "$EVAL_PID"; } || true
	for p in "${GATE_PIDS[@]}"; do kill "$p" && wait "$p"; done 2>/dev/null || true
	[ -z "${RPORT:-}" ] || redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
	teardown_hosts
	for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
}

# hosts_up URL_A URL_B: host A on store URL_A, host B on URL_B
hosts_up() {
	STORE=$1
	URL=$2
	XDG_DATA_HOME=$WORK/state-a start_daemon
	start_b
}

# start_gate UPSTREAM [AT]: tests/tools/tcp_gate.py forwarding port
# PORT+AT (default 2; its control port the next one) to the server on port
# UPSTREAM; the first one's ports are $GPORT and $GCTL
start_gate() {
	local at=$((PORT + ${2:-2}))
	command -v python3 >/dev/null || skip "needs python3 (the link tool)"
	python3 "$TESTS_DIR/tools/tcp_gate.py" "$at" "$((at + 1))" "$1" >"$WORK/gate$at.out" 2>&1 &
	GATE_PIDS+=($!)
	wait_until 10 grep -q '^listening' "$WORK/gate$at.out"
	GPORT=${GPORT:-$at}
	GCTL=${GCTL:-$((at + 1))}
}

# gate COMMAND [ARG]: tell the first link (gate_at CTL ...: another one)
gate() { gate_at "$GCTL" "$@"; }
gate_at() { python3 "$TESTS_DIR/tools/tcp_gate.py" --ctl "$@" >/dev/null; }

# kill_redis PORT: SIGKILL the server on PORT (no shutdown, no save) and
# wait until it is gone
kill_redis() {
	local pid
	pid=$(redis-cli -p "$1" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')
	[ -n "$pid" ]
	kill -9 "$pid"
	gone() { ! kill -0 "$pid" 2>/dev/null; }
	wait_until 10 gone
}

# timed CMD...: run CMD; $ms is how long it took
timed() {
	local t0
	t0=$(date +%s%N)
	run "$@"
	ms=$((($(date +%s%N) - t0) / 1000000))
}

# question_of RESPONSE_FILE: fill_loop's question for the response in it
question_of() {
	local t
	t=$(head -n 1 "$1")
	t=${t#answer }
	printf 'question %s: how many %s can a %s fit\n' "$t" "${t%-*}" "${t#*-}"
}

# serves_filled MNT: every acknowledged fill ($WORK/filled/ID) is listed
# with its bytes on the host at MNT, and its question is an exact hit
# there answering them
serves_filled() {
	local f id
	for f in "$WORK"/filled/*; do
		id=${f##*/}
		cmp "$f" "$1/q/entries/$id/response" || return 1
		question_of "$f" >"$1/q/s$id.query" || return 1
		[[ $(cat "$1/q/s$id.status") =~ ^hit\ score=1\.000 ]] || return 1
		cmp "$f" "$1/q/s$id.response" || return 1
	done
}

# never_wrong MNT: each acknowledged fill's question, asked on MNT, is a
# miss or a hit answering that fill's own bytes (never another entry's)
never_wrong() {
	local f id s
	for f in "$WORK"/filled/*; do
		id=${f##*/}
		question_of "$f" >"$1/q/w$id.query"
		s=$(cat "$1/q/w$id.status")
		if [ "${s%% *}" = hit ] && ! cmp -s "$f" "$1/q/w$id.response"; then
			echo "wrong answer on $1 for entry $id: $s: $(head -c 60 "$1/q/w$id.response")" >&2
			return 1
		fi
	done
}

# both_have_q: category q exists on both hosts
both_have_q() {
	mkdir -p "$MNT/q"
	has_q() { [ -d "$MNT_B/q" ]; }
	wait_until 5 has_q
}

@test "redis-server killed and restarted on its AOF (appendfsync always) while both hosts fill: every acknowledged fill hits on both, nothing failed stays" {
	start_redis
	hosts_up "$URL" "$URL"
	both_have_q
	fill_loop "$MNT" a 1 40 &
	fa=$!
	fill_loop "$MNT_B" b 1 40 &
	fb=$!
	some() { (($(ls "$WORK/filled" | wc -l) >= 10)); }
	wait_until 30 some
	kill_redis "$PORT"
	start_redis
	wait $fa $fb
	n=$(ls "$WORK/filled" | wc -l)
	echo "# killed mid-fill: $n fills acknowledged, $(wc -l <"$WORK/failed") failed" >&3
	((n >= 10))
	run redis-cli -p "$PORT" config get appendonly
	assert_line yes
	wait_until 10 serves_filled "$MNT"
	wait_until 10 serves_filled "$MNT_B"
	# a fill that failed is not left stored: a put that ran but whose reply
	# the kill lost is cancelled once the server is back, which the hosts
	# and Redis each show in their own time
	local ids="{c$(($(ls "$WORK/filled" | head -n 1) & 16777215))}:ids"
	settled() {
		count_is "$n" "$MNT" "$MNT_B" &&
			[ "$(redis-cli -p "$PORT" zcard "$ids")" = "$n" ]
	}
	if ! wait_until 20 settled; then
		echo "# Redis holds $(redis-cli -p "$PORT" zcard "$ids") ids for $n acknowledged fills" >&3
		return 1
	fi
}

@test "redis-server restarted without persistence: both hosts notice the empty store, never serve a lost entry or another's bytes, and new fills reach the other host" {
	start_redis --appendonly no
	hosts_up "$URL" "$URL"
	both_have_q
	fill_loop "$MNT" a 1 8
	fill_loop "$MNT_B" b 1 8
	run cat "$WORK/failed"
	assert_output ""
	wait_until 10 serves_filled "$MNT_B"
	kill_redis "$PORT"
	start_redis --appendonly no
	# until a host notices, its fills fail (the category's keys are gone)
	# and a lookup of a lost entry is a miss; after, fills work again: B
	# fills new questions while A asks the lost ones, every round
	new=0
	refill_b() {
		never_wrong "$MNT" || echo "round $new" >>"$WORK/wrong"
		ask_b q "n$new" "which river flows through the city number $new" >/dev/null || return 1
		"$FSOP" write "$MNT_B/q/n$new.response" "river $new" >>"$WORK/fills" &&
			new=$((new + 1))
		((new >= 3))
	}
	wait_until 20 refill_b
	run sort -u "$WORK/wrong"
	assert_output ""
	echo "# B's fills after the restart: $(sort "$WORK/fills" | uniq -c | tr -s ' \n' ' ')" >&3
	# a fill may fail ECONNREFUSED within RCONN_DOWN_MS (200 ms) of a
	# connect that failed while the server was down (the node answers its
	# last error without a new attempt), then ENOENT until B notices the
	# reset; anything else is a defect
	run sort -u "$WORK/fills"
	assert_output --regexp '^(ECONNREFUSED at close.)?(ENOENT at close.)?ok$'
	# a host whose fills already work (the other host restored the
	# categories) notices the reset at its next sweep, within a second
	noticed() {
		grep -q "the store was reset behind this host's back" "$LOG" &&
			grep -q "the store was reset behind this host's back" "$LOG_B"
	}
	wait_until 10 noticed
	# the lost entries are gone on both hosts; the new ones reach A
	lost_everywhere() {
		local f
		for f in "$WORK"/filled/*; do
			[ ! -e "$MNT/q/entries/${f##*/}" ] && [ ! -e "$MNT_B/q/entries/${f##*/}" ] || return 1
		done
	}
	wait_until 10 lost_everywhere
	never_wrong "$MNT"
	never_wrong "$MNT_B"
	reach_a() { [[ $(ask q r2 "which river flows through the city number 2") =~ ^hit\ score=1\.000 ]]; }
	wait_until 10 reach_a
	run cat "$MNT/q/r2.response"
	assert_output "river 2"
}

@test "a silent partition between host A and Redis: A's hits miss and its fills fail with ETIMEDOUT within one command timeout, B works; healed, A catches up and the failed fill is not left" {
	start_redis
	start_gate "$PORT"
	hosts_up "redis://127.0.0.1:$GPORT/0" "$URL"
	both_have_q
	fill_loop "$MNT_B" b 1 3
	wait_until 10 serves_filled "$MNT"
	ask q lost "a question host a asks during the partition" >/dev/null
	gate block
	# a hit needs its response from Redis: a miss after one 2 s command
	# timeout (the store is not asked again for the same lookup: before,
	# the semantic path read the same entry again, 4 s)
	timed ask q p1 "$(question_of "$(ls "$WORK"/filled/* | head -n 1)")"
	echo "# partitioned hit: '$output' after $ms ms" >&3
	assert_output "miss reason=store unavailable: Connection timed out"
	((ms < 3500))
	timed "$FSOP" write "$MNT/q/lost.response" "an answer that must not stay"
	echo "# partitioned fill: '$output' after $ms ms" >&3
	assert_output "ETIMEDOUT at close"
	((ms < 4000))
	# a lookup that needs no round trip (a miss) still answers at once
	timed ask q p2 "something nobody ever asked about zebras"
	assert_miss
	((ms < 1000))
	# B is not affected
	fill_loop "$MNT_B" b 4 6
	run cat "$WORK/failed"
	assert_output ""
	serves_filled "$MNT_B"
	gate pass
	# healed: A's fills work, B's fills made meanwhile are hits on A,
	# and A's fill is on B
	fill_a() {
		local n=h$RANDOM
		ask q "$n" "which colour is the sky over the harbour at dawn" >/dev/null &&
			[ "$("$FSOP" write "$MNT/q/$n.response" "after the partition")" = ok ]
	}
	wait_until 10 fill_a
	wait_until 10 serves_filled "$MNT"
	b_has_a() { [[ $(ask_b q "x$RANDOM" "which colour is the sky over the harbour at dawn") =~ ^hit\ score=1\.000 ]]; }
	wait_until 10 b_has_a
	# the put that timed out reached Redis when the link healed (its bytes
	# were held, as TCP would resend them): it is cancelled, never served
	settled() { count_is 7 "$MNT" "$MNT_B"; }
	wait_until 20 settled
	run ask_b q l2 "a question host a asks during the partition"
	assert_miss
	grep -q "no reply within the command timeout" "$LOG"
}

@test "-o redis_timeout_ms and redis_pool: a partitioned fill fails after the shorter limit; bad values and a local store are usage errors (exit 2)" {
	start_redis
	start_gate "$PORT"
	for o in redis_pool=0 redis_pool=65 redis_timeout_ms=99 redis_timeout_ms=60001; do
		run "$SEMCACHEFS" -f -o "store=redis://127.0.0.1:$PORT/0,$o" "$MNT"
		assert_failure 2
		assert_output --partial "-o redis_"
	done
	run "$SEMCACHEFS" -f -o "store=$WORK/local,redis_pool=2" "$MNT"
	assert_failure 2
	assert_output "semcachefs: -o redis_pool/redis_timeout_ms need a redis:// store"
	[ ! -e "$WORK/local" ] # nothing touched
	STORE="redis://127.0.0.1:$GPORT/0"
	start_daemon -o redis_timeout_ms=600,redis_pool=1
	mkdir "$MNT/q"
	ask q a "a question before the link is cut" >/dev/null
	gate block
	timed "$FSOP" write "$MNT/q/a.response" "an answer that must not stay"
	echo "# partitioned fill with a 600 ms limit: '$output' after $ms ms" >&3
	assert_output "ETIMEDOUT at close"
	((ms < 1800)) # the default limit alone is 2000 ms
	gate pass
}

@test "Redis busy in a script: fills fail with EIO naming BUSY, lookups of cached entries miss with EIO, the daemon stays up; after SCRIPT KILL all works" {
	start_redis --lua-time-limit 50
	hosts_up "$URL" "$URL"
	both_have_q
	fill_loop "$MNT" a 1 2
	wait_until 10 serves_filled "$MNT_B"
	ask q busy "a question asked while the server is busy" >/dev/null
	redis-cli -p "$PORT" eval "local i = 0 while true do i = i + 1 end" 0 >"$WORK/eval.out" 2>&1 &
	EVAL_PID=$!
	is_busy() { redis-cli -p "$PORT" ping 2>&1 | grep -q '^BUSY'; }
	wait_until 10 is_busy
	timed "$FSOP" write "$MNT/q/busy.response" "an answer while busy"
	echo "# fill on a busy server: '$output' after $ms ms" >&3
	assert_output "EIO at close"
	((ms < 4000))
	grep -q "BUSY Redis is busy running a script" "$LOG"
	timed ask_b q cached "$(question_of "$(ls "$WORK"/filled/* | head -n 1)")"
	echo "# hit on a busy server: '$output' after $ms ms" >&3
	assert_output "miss reason=store unavailable: Input/output error"
	((ms < 4000))
	redis-cli -p "$PORT" script kill >/dev/null
	wait "$EVAL_PID" || true
	EVAL_PID=
	serves_filled "$MNT_B"
	ask q busy2 "a question asked while the server is busy" >/dev/null
	run "$FSOP" write "$MNT/q/busy2.response" "an answer after the script"
	assert_output "ok"
	settled() { count_is 3 "$MNT" "$MNT_B"; }
	wait_until 10 settled
	kill -0 "$DAEMON_PID"
}

@test "Redis out of memory (maxmemory, noeviction): fills fail with ENOSPC naming OOM, cached entries still hit; memory back, fills work" {
	start_redis --maxmemory-policy noeviction
	hosts_up "$URL" "$URL"
	both_have_q
	fill_loop "$MNT" a 1 3
	wait_until 10 serves_filled "$MNT_B"
	redis-cli -p "$PORT" config set maxmemory 1 >/dev/null
	ask q oom "a question asked while the server is full" >/dev/null
	timed "$FSOP" write "$MNT/q/oom.response" "an answer with no room"
	echo "# fill on a full server: '$output' after $ms ms" >&3
	assert_output "ENOSPC at close"
	((ms < 4000))
	grep -q "OOM command not allowed when used memory > 'maxmemory'" "$LOG"
	serves_filled "$MNT"
	serves_filled "$MNT_B"
	redis-cli -p "$PORT" config set maxmemory 0 >/dev/null
	ask q oom2 "a question asked while the server is full" >/dev/null
	run "$FSOP" write "$MNT/q/oom2.response" "an answer with room again"
	assert_output "ok"
	b_sees() { [[ $(ask_b q "o$RANDOM" "a question asked while the server is full") =~ ^hit\ score=1\.000 ]]; }
	wait_until 10 b_sees
	settled() { count_is 4 "$MNT" "$MNT_B"; }
	wait_until 10 settled
}

# ask_on MNT DIR NAME QUERY: ask, on the host mounted at MNT
ask_on() { MNT=$1 ask "${@:2}"; }

# repl_offset PORT: the replication offset the server on PORT has reached
repl_offset() {
	redis-cli -p "$1" info replication | sed -n 's/^\(master\|slave\)_repl_offset:\([0-9]*\).*/\2/p' | tail -n 1
}

@test "failover to a replica that lacked the last fill (REPLICAOF NO ONE, the address moved): what it had hits on both hosts; the lost fill's id, taken again by a new fill, never answers the lost question with the new bytes" {
	start_redis
	RPORT=$((PORT + 4))
	mkdir -p "$WORK/replica"
	# the primary's clients reach it on $GPORT, its replica on PORT+6:
	# two links that fail apart
	start_gate "$PORT"
	start_gate "$PORT" 6
	redis-server --port "$RPORT" --bind 127.0.0.1 --replicaof 127.0.0.1 "$((PORT + 6))" --save '' \
		--appendonly yes --appendfsync always --dir "$WORK/replica" --daemonize yes \
		--logfile "$WORK/replica.log" >/dev/null
	linked() { redis-cli -p "$RPORT" info replication | grep -q '^master_link_status:up'; }
	wait_until 10 linked
	hosts_up "redis://127.0.0.1:$GPORT/0" "redis://127.0.0.1:$GPORT/0"
	both_have_q
	fill_loop "$MNT" a 1 5
	fill_loop "$MNT_B" b 1 5
	run cat "$WORK/failed"
	assert_output ""
	# semcachefs does not WAIT for replicas: a fill is acknowledged once
	# the primary ran it. These ten reached the replica before the failover.
	synced() { [ "$(repl_offset "$RPORT")" = "$(repl_offset "$PORT")" ]; }
	wait_until 10 synced
	# one more, acknowledged while the replica's link is cut
	gate_at "$((PORT + 7))" block
	run ask q lost "what is the boiling point of water on mount everest"
	assert_miss
	fill q lost "seventy one degrees"
	lost=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/q/lost.status")
	[ -n "$lost" ]
	seen_b() { [ -d "$MNT_B/q/entries/$lost" ]; }
	wait_until 10 seen_b
	(($(repl_offset "$RPORT") < $(repl_offset "$PORT")))
	# the primary dies; its replica is promoted and the address moves to it
	kill_redis "$PORT"
	gate_at "$((PORT + 7))" reset
	redis-cli -p "$RPORT" replicaof no one >/dev/null
	gate upstream "$RPORT"
	gate reset
	# a host that never knew the lost fill (it starts now) fills first:
	# the promoted replica's counter gives it the next id it has, which
	# is the lost fill's. A and B, asked the lost question, must never
	# answer with C's bytes.
	start_host c "redis://127.0.0.1:$GPORT/0"
	run ask_on "$WORK/c" q new "how far is the moon from the earth"
	assert_miss
	MNT=$WORK/c fill q new "far away"
	run cat "$WORK/c/q/new.status"
	echo "# lost fill $lost; C's fill after the failover: $output" >&3
	# until C's fill is a hit on A and B, the lost question is asked on
	# both every round; a hit must answer the lost fill's own bytes
	c_known() { [[ $(ask_on "$1" q "k$RANDOM" "how far is the moon from the earth") =~ ^hit\ score=1\.000 ]]; }
	lost_right() {
		local m s
		for m in "$MNT" "$MNT_B"; do
			s=$(ask_on "$m" q lq "what is the boiling point of water on mount everest")
			if [ "${s%% *}" = hit ] && [ "$(cat "$m/q/lq.response")" != "seventy one degrees" ]; then
				echo "${m##*/} answered the lost question with C's '$(cat "$m/q/lq.response")': ${s%% age=*}" >>"$WORK/wrong"
			fi
		done
		c_known "$MNT" && c_known "$MNT_B"
	}
	known=yes
	wait_until 10 lost_right || known=no
	run sort -u "$WORK/wrong"
	assert_output ""
	[ "$known" = yes ] # C's fill is a hit on A and B
	# fills work again on both hosts
	n=0
	refill() {
		local h m
		for h in a b; do
			m=$WORK/$h
			ask_on "$m" q "f$h$n" "how far is the moon from the earth in step $n" >/dev/null || return 1
			if [ "$("$FSOP" write "$m/q/f$h$n.response" "step $n from $h")" = ok ]; then
				id=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$m/q/f$h$n.status")
				printf 'step %s from %s' "$n" "$h" >"$WORK/new.$id"
				n=$((n + 1))
			fi
		done
		((n >= 4))
	}
	wait_until 20 refill
	wait_until 10 serves_filled "$MNT"
	wait_until 10 serves_filled "$MNT_B"
	# the lost fill: a miss on both hosts
	for m in "$MNT" "$MNT_B"; do
		run ask_on "$m" q lq2 "what is the boiling point of water on mount everest"
		assert_miss
	done
	# and the fills made after the failover answer their own bytes
	for f in "$WORK"/new.*; do
		for m in "$MNT" "$MNT_B"; do
			cmp "$f" "$m/q/entries/${f##*.}/response"
		done
	done
}

# ---- a live resharding of a Redis Cluster ----

node_id() { redis-cli -p "$1" cluster myid; }

# slot_port SLOT: the port of the master that owns SLOT now (CLUSTER
# NODES: "ID HOST:PORT@BUS FLAGS ... LO-HI ...")
slot_port() {
	redis-cli -p "${PORTS[0]}" cluster nodes | awk -v s="$1" '{
		for (i = 9; i <= NF; i++) {
			n = split($i, r, "-")
			if ($i !~ /^\[/ && s >= r[1] && s <= r[n]) { split($2, h, "[:@]"); print h[2]; exit }
		}
	}'
}

# move_slot SLOT FROM TO: migrate SLOT from the master on port FROM to the
# one on TO as redis-cli --cluster reshard does: IMPORTING/MIGRATING, the
# keys in batches of 10 with MIGRATE (clients meanwhile get ASK and
# TRYAGAIN), then the slot given to TO on every master
move_slot() {
	local keys p
	redis-cli -p "$3" cluster setslot "$1" importing "$(node_id "$2")" >/dev/null
	redis-cli -p "$2" cluster setslot "$1" migrating "$(node_id "$3")" >/dev/null
	while keys=$(redis-cli -p "$2" cluster getkeysinslot "$1" 10) && [ -n "$keys" ]; do
		# shellcheck disable=SC2086 # one argument per key name
		redis-cli -p "$2" migrate 127.0.0.1 "$3" "" 0 5000 keys $keys >>"$WORK/migrate.out"
	done
	for p in "$3" "$2" "${PORTS[@]}"; do
		redis-cli -p "$p" cluster setslot "$1" node "$(node_id "$3")" >/dev/null
	done
}

# hit_loop MNT: until $WORK/stop exists, ask the questions of acknowledged
# fills on the host at MNT; a hit answering other bytes goes to $WORK/wrong
hit_loop() {
	local f id s
	until [ -e "$WORK/stop" ]; do
		for f in "$WORK"/filled/*; do
			[ -e "$f" ] || continue
			id=${f##*/}
			question_of "$f" >"$1/q/h$id.query" 2>/dev/null || continue
			s=$(cat "$1/q/h$id.status" 2>/dev/null) || continue
			if [ "${s%% *}" = hit ] && ! cmp -s "$f" "$1/q/h$id.response"; then
				echo "${1##*/} entry $id: $s" >>"$WORK/wrong"
			fi
		done
	done
}

@test "a live resharding of a Redis Cluster (the busy category's slot moved twice while 3 hosts fill and look up): every acknowledged fill hits on all, none failed stays, no wrong answer" {
	command -v redis-cli >/dev/null || skip "needs redis-cli (package redis-tools)"
	start_cluster
	URL=redis://127.0.0.1:${PORTS[0]}/0
	hosts_up "$URL" "redis://127.0.0.1:${PORTS[1]}/0"
	start_host c "redis://127.0.0.1:${PORTS[2]}/0"
	both_have_q
	fill_loop "$MNT" w 1 1
	id=$(ls "$WORK/filled")
	slot=$(redis-cli -p "${PORTS[0]}" cluster keyslot "{c$((id & 16777215))}")
	from=$(slot_port "$slot")
	[ -n "$from" ]
	has_c() { [ -d "$WORK/c/q" ]; }
	wait_until 5 has_c
	fill_loop "$MNT" a 1 60 &
	BG_PIDS=($!)
	fill_loop "$MNT_B" b 1 60 &
	BG_PIDS+=($!)
	fill_loop "$WORK/c" c 1 60 &
	BG_PIDS+=($!)
	fills=("${BG_PIDS[@]}")
	for m in "$MNT" "$MNT_B" "$WORK/c"; do hit_loop "$m" & BG_PIDS+=($!); done
	some() { (($(ls "$WORK/filled" | wc -l) >= 15)); }
	wait_until 30 some
	to=
	for p in "${PORTS[@]}"; do [ "$p" = "$from" ] || to=${to:-$p}; done
	move_slot "$slot" "$from" "$to"
	[ "$(slot_port "$slot")" = "$to" ]
	moved_once=$(ls "$WORK/filled" | wc -l)
	for p in "${PORTS[@]}"; do [ "$p" = "$from" ] || [ "$p" = "$to" ] || third=$p; done
	move_slot "$slot" "$to" "$third"
	[ "$(slot_port "$slot")" = "$third" ]
	wait "${fills[@]}"
	touch "$WORK/stop"
	wait "${BG_PIDS[@]}"
	BG_PIDS=()
	n=$(ls "$WORK/filled" | wc -l)
	echo "# slot $slot moved $from -> $to -> $third: $n fills acknowledged ($moved_once before the second move), $(wc -l <"$WORK/failed") failed; $(wc -l <"$WORK/migrate.out") MIGRATE batches" >&3
	grep -h "redis" "$LOG" "$LOG_B" "$WORK/c.log" | grep -v info | sed 's/^[^ ]* //' | sort | uniq -c | sort -rn | head -n 5 >&3
	run sort -u "$WORK/wrong"
	assert_output ""
	wait_until 10 serves_filled "$MNT"
	wait_until 10 serves_filled "$MNT_B"
	wait_until 10 serves_filled "$WORK/c"
	settled() { count_is "$n" "$MNT" "$MNT_B" "$WORK/c"; }
	wait_until 20 settled
	[ "$(redis-cli -p "$third" zcard "{c$((id & 16777215))}:ids")" = "$n" ]
}

# chaos_cluster: tests/tools/redis_chaos.py on $CPORT in front of the
# server, claiming to be a one-node cluster that owns every slot (so that
# the store follows cluster replies: MOVED, ASK, TRYAGAIN)
chaos_cluster() {
	command -v python3 >/dev/null || skip "needs python3 (the fault proxy)"
	CPORT=$((PORT + 8))
	python3 "$TESTS_DIR/tools/redis_chaos.py" "$CPORT" "$PORT" >/dev/null 2>"$WORK/chaos.log" &
	BG_PIDS+=($!)
	proxy_up() { [ "$(redis-cli -p "$CPORT" ping 2>/dev/null)" = PONG ]; }
	wait_until 10 proxy_up
	chaos rule "CLUSTER SLOTS" fake -1 0 "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n\$9\r\n127.0.0.1\r\n:$CPORT\r\n"
}

chaos() { redis-cli -p "$CPORT" chaos "$@" >/dev/null; }

@test "a slot in migration answers TRYAGAIN for a while: the fill waits for it within the command timeout and succeeds; TRYAGAIN for longer: ETIMEDOUT, logged, not stored" {
	start_redis
	chaos_cluster
	hosts_up "redis://127.0.0.1:$CPORT/0" "$URL"
	grep -q "(cluster)" "$LOG"
	both_have_q
	try='-TRYAGAIN Multiple keys request during rehashing of slot\r\n'
	# ten times in a row: about half a second of a split slot
	ask q t1 "a question asked while its slot moves" >/dev/null
	chaos rule "'em', ARGV[7]" fake 10 0 "$try"
	timed "$FSOP" write "$MNT/q/t1.response" "moved in time"
	echo "# fill through 10 TRYAGAIN: '$output' after $ms ms" >&3
	assert_output "ok"
	b_has() { [[ $(ask_b q "b$RANDOM" "a question asked while its slot moves") =~ ^hit\ score=1\.000 ]]; }
	wait_until 10 b_has
	# for ever: the command's deadline ends it (the scripts flushed, so
	# that the put comes with its source, which the rule matches)
	redis-cli -p "$PORT" script flush >/dev/null
	ask q t2 "which planet has the most moons in the solar system" >/dev/null
	chaos rule "'em', ARGV[7]" fake -1 0 "$try"
	timed "$FSOP" write "$MNT/q/t2.response" "never stored"
	echo "# fill through endless TRYAGAIN: '$output' after $ms ms" >&3
	assert_output "ETIMEDOUT at close"
	((ms < 4000))
	grep -q "was still being migrated (TRYAGAIN) or the cluster down after [0-9]* tries in the command timeout; given up" "$LOG"
	chaos clear
	chaos rule "CLUSTER SLOTS" fake -1 0 "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n\$9\r\n127.0.0.1\r\n:$CPORT\r\n"
	settled() { count_is 1 "$MNT" "$MNT_B"; }
	wait_until 10 settled
	run ask_b q b2 "which planet has the most moons in the solar system"
	assert_miss
}
