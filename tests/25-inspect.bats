#!/usr/bin/env bats
# Inspecting and managing the cache with ls, cat, rm, chmod, xattrs,
# .stats and .metrics — through the real mount.

load helpers

setup() {
	setup_mount
	mkdir "$MNT/code"
}
teardown() { teardown_mount; }

entry_id() { # entry_id DIR NAME: the entry a session hit or stored
	sed -n 's/.*entry=\([0-9]*\).*/\1/p' "$MNT/$1/$2.status"
}

@test "entries lists one directory per entry with query, response and meta" {
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	id=$(entry_id code q1)
	run ls "$MNT/code/entries"
	assert_output "$id"
	run ls "$MNT/code/entries/$id"
	assert_output $'meta\nquery\nresponse'
	run cat "$MNT/code/entries/$id/query"
	assert_output "how do I reverse a list in python"
	run cat "$MNT/code/entries/$id/response"
	assert_output "reversed(xs)"
	run cat "$MNT/code/entries/$id/meta"
	assert_line "id: $id"
	assert_line "hits: 0"
	assert_line "last_hit: never"
	assert_line "bytes: 12"
	assert_line "embedder: builtin-v1"
	assert_line --regexp '^created: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'
	assert_line --regexp '^expires: [0-9]{4}-'
}

@test "an entry stored with a context shows it" {
	printf 'conversation 7' >"$MNT/code/c.context"
	ask code c "and in rust?"
	fill code c "xs.reverse()"
	id=$(entry_id code c)
	run cat "$MNT/code/entries/$id/context"
	assert_output "conversation 7"
	run ls "$MNT/code/entries/$id"
	assert_output $'context\nmeta\nquery\nresponse'
}

@test "ls -l shows real sizes, mtime is creation and atime the last hit" {
	ask code q1 "how do I reverse a list in python"
	fill code q1 "$(printf '%0100d' 7)"
	id=$(entry_id code q1)
	run stat -c %s "$MNT/code/entries/$id/response"
	assert_output "100"
	run stat -c %s "$MNT/code/entries/$id/query"
	assert_output "34" # with echo's newline
	created=$(stat -c %Y "$MNT/code/entries/$id/response")
	now=$(date +%s)
	((now - created <= 5))
	run stat -c %X "$MNT/code/entries/$id"
	assert_output "$created" # never hit: atime is creation
	# in milliseconds (the daemon's clock and date's are both wall time):
	# the hit happens after the creation's millisecond has passed, and
	# atime becomes the time of the hit, between before and after
	created_ms=$(stat -c %.3Y "$MNT/code/entries/$id/response" | tr -d .)
	clock_past() { (($(date +%s%3N) > $1)); }
	wait_until 5 clock_past "$created_ms"
	before=$(date +%s%3N)
	ask code q2 "how do I reverse a list in python" >/dev/null
	after=$(date +%s%3N)
	run cat "$MNT/code/entries/$id/meta"
	assert_line "hits: 1"
	atime_ms=$(stat -c %.3X "$MNT/code/entries/$id" | tr -d .)
	echo "# created $created_ms hit between $before and $after: atime $atime_ms" >&3
	((atime_ms > created_ms && atime_ms >= before && atime_ms <= after))
	run stat -c %s "$MNT/code"
	assert_output "100"
}

@test "rm -r of one entry invalidates it and deletes its blob" {
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	ask code q2 "what is the capital of france"
	fill code q2 "Paris"
	id=$(entry_id code q1)
	blobs_before=$(stored_responses)
	rm -r "$MNT/code/entries/$id"
	assert_dir_not_exists "$MNT/code/entries/$id"
	run ask code q3 "how do I reverse a list in python"
	assert_miss
	run ask code q4 "what is the capital of france"
	assert_output --regexp '^hit '
	blobs_after=$(stored_responses)
	assert_equal "$blobs_after" "$((blobs_before - 1))"
	stop_daemon
	start_daemon
	run ask code q5 "how do I reverse a list in python"
	assert_miss
}

@test "rm -r of a category removes it with everything in it" {
	mkdir -p "$MNT/code/python"
	echo "threshold: 0.95" >"$MNT/code/policy.yaml"
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	ask code/python q1 "how do I sort a dict"
	fill code/python q1 "sorted(d.items())"
	rm -r "$MNT/code"
	assert_dir_not_exists "$MNT/code"
	run stored_responses
	assert_output "0"
	stop_daemon
	start_daemon
	assert_dir_not_exists "$MNT/code"
	mkdir "$MNT/code"
	run ask code q1 "how do I reverse a list in python"
	assert_miss
	run cat "$MNT/code/.policy"
	assert_line --regexp '^threshold: 0\.9 +# default$'
}

@test "writing .purge removes every entry and keeps the category and its policy" {
	echo "threshold: 0.95" >"$MNT/code/policy.yaml"
	for i in 1 2 3; do
		ask code "q$i" "question number $i about purging"
		fill code "q$i" "answer $i"
	done
	: >"$MNT/code/.purge"
	run ls "$MNT/code/entries"
	assert_output ""
	run cat "$MNT/code/.stats"
	assert_line "entries: 0"
	run cat "$MNT/code/policy.yaml"
	assert_output "threshold: 0.95"
	run ask code q9 "question number 1 about purging"
	assert_miss
}

@test "extended attributes mirror NAME.status on NAME.response and on entries" {
	command -v getfattr >/dev/null || skip "needs getfattr (package attr)"
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	id=$(entry_id code q1)
	ask code q2 "python: reverse a list"
	run getfattr --absolute-names --only-values -n user.semcache.status "$MNT/code/q2.response"
	assert_output "hit"
	run getfattr --absolute-names --only-values -n user.semcache.entry "$MNT/code/q2.response"
	assert_output "$id"
	run getfattr --absolute-names --only-values -n user.semcache.score "$MNT/code/q2.response"
	assert_output --regexp '^0\.9[0-9]{2}$'
	run getfattr --absolute-names -d "$MNT/code/q2.response"
	assert_line --regexp '^user\.semcache\.age="[0-9]+"$'
	run getfattr --absolute-names --only-values -n user.semcache.status "$MNT/code/entries/$id"
	assert_output "live"
	run getfattr --absolute-names --only-values -n user.semcache.hits "$MNT/code/entries/$id"
	assert_output "1"
	ask code q3 "what is the capital of france"
	run getfattr --absolute-names --only-values -n user.semcache.status "$MNT/code/q3.response"
	assert_miss
}

@test ".stats counters after a scripted sequence" {
	printf 'quota: {entries: 2}\neviction: fifo\n' >"$MNT/code/policy.yaml"
	ask code a "how do I reverse a list in python"     # miss
	fill code a "reversed(xs)"                          # fill 1
	ask code b "how do I reverse a list in python"     # exact hit
	ask code c "python: reverse a list"                # semantic hit
	ask code d "what is the capital of france"         # miss
	fill code d "Paris"                                 # fill 2
	ask code e "how tall is mount everest"             # miss
	fill code e "8849 m"                                # fill 3, evicts 1
	ask code f "how do I reverse a list in python"     # miss (evicted)
	run cat "$MNT/code/.stats"
	assert_line "entries: 2"
	assert_line "lookups: 6"
	assert_line "hits: 2"
	assert_line "exact_hits: 1"
	assert_line "semantic_hits: 1"
	assert_line "misses: 4"
	assert_line "fills: 3"
	assert_line "evicted: 1"
	assert_line "expired: 0"
	assert_line "hit_rate: 0.3333"
	assert_line --regexp '^lookup_us_p50: [0-9]+$'
	assert_line --regexp '^lookup_us_p99: [0-9]+$'
	echo "ttl: 1s" >"$MNT/code/policy.yaml"
	expired() { grep -qx "expired: 2" "$MNT/code/.stats"; }
	wait_until 20 expired
	run cat "$MNT/code/.stats"
	assert_line "entries: 0"
}

@test "a held .stats, .metrics, .policy or .errors read again from offset 0 shows that moment's figures" {
	run python3 - "$MNT" <<'EOF'
import os, sys
mnt = sys.argv[1]
fds = {n: os.open(mnt + n, os.O_RDONLY) for n in
       ('/code/.stats', '/.stats', '/.metrics', '/code/.policy', '/code/.errors')}
def look(n):
    return os.pread(fds[n], 1 << 20, 0).decode()
def line(n, key):
    return [l for l in look(n).splitlines() if l.startswith(key)]
print('before', line('/code/.stats', 'lookups: '), line('/.metrics', 'semcache_lookups_total{category="/code"}'))
print('before', line('/code/.policy', 'threshold: '))
print('errors', len(look('/code/.errors').strip().splitlines()))
q = os.open(mnt + '/code/a.query', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(q, b'how do I reverse a list in python')
os.close(q)
with open(mnt + '/code/a.status') as f:
    f.read()
with open(mnt + '/code/policy.yaml', 'w') as f:
    f.write('threshold: 0.97\n')
try:
    with open(mnt + '/code/policy.yaml', 'w') as f:
        f.write('treshold: 0.5\n')
except OSError:
    pass
print('after', line('/code/.stats', 'lookups: '), line('/.metrics', 'semcache_lookups_total{category="/code"}'))
print('after', line('/code/.policy', 'threshold: '))
print('errors', len(look('/code/.errors').strip().splitlines()))
# a read that goes on past offset 0 reads the same snapshot
t = look('/.stats')
print('continued', t[10:] == os.pread(fds['/.stats'], 1 << 20, 10).decode())
EOF
	assert_success
	assert_line "before ['lookups: 0'] ['semcache_lookups_total{category=\"/code\"} 0']"
	assert_line "after ['lookups: 1'] ['semcache_lookups_total{category=\"/code\"} 1']"
	assert_line --regexp "^after \['threshold: 0\.97"
	assert_line "errors 0"
	assert_line --regexp '^errors [1-9]'
	assert_line "continued True"
}

@test "a held .stats of a removed category reads ESTALE from offset 0" {
	run python3 - "$MNT" <<'EOF'
import errno, os, sys
mnt = sys.argv[1]
fd = os.open(mnt + '/code/.stats', os.O_RDONLY)
print('first', os.pread(fd, 1 << 16, 0).decode().splitlines()[0].split(':')[0])
os.rmdir(mnt + '/code')
try:
    os.pread(fd, 1 << 16, 0)
    print('read')
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
	assert_success
	assert_line "first entries"
	assert_line "ESTALE"
}

# prom_python: a python3 that has Debian's prometheus_client (the PATH's
# first, else the system's), or nothing
prom_python() {
	local py
	for py in python3 /usr/bin/python3; do
		"$py" -c 'import prometheus_client' 2>/dev/null && { echo "$py"; return 0; }
	done
	return 1
}

# What .metrics calls each key of .stats (the root's and a category's with
# llm_cost_ms, auto_disable and adaptation); "-" for a policy value or text
METRIC_OF=(
	entries=semcache_entries bytes=semcache_bytes entry_hits=semcache_entry_hits
	lookups=semcache_lookups_total
	hits=semcache_hits_total exact_hits=semcache_exact_hits_total
	semantic_hits=semcache_semantic_hits_total misses=semcache_misses_total
	fills=semcache_fills_total expired=semcache_expired_total
	evicted=semcache_evicted_total damaged_dropped=semcache_damaged_dropped_total
	hit_rate=semcache_hit_ratio lookup_us_p50=semcache_lookup_duration_seconds_bucket
	lookup_us_p99=semcache_lookup_duration_seconds_bucket
	false_hits=semcache_false_hits_total coalesced_hits=semcache_coalesced_hits_total
	not_stored=semcache_not_stored_total busy=semcache_busy_total
	best_score_hist_miss=semcache_lookup_best_score_bucket
	best_score_hist_hit=semcache_lookup_best_score_bucket
	categories=semcache_categories
	store_dropped_at_start=semcache_store_dropped_entries_at_start
	store_orphans_removed_at_start=semcache_store_orphans_removed_at_start
	store_db_repaired=semcache_store_db_repaired
	store_db_salvaged=semcache_store_db_salvaged_at_start
	store_db_lost=semcache_store_db_lost_at_start
	store_db_categories_recreated=semcache_store_db_categories_recreated_at_start
	fuse_requests=semcache_fuse_requests_total heap_bytes=semcache_heap_bytes
	lookup_cost_us=semcache_lookup_duration_seconds_sum
	index_unmerged=semcache_index_unmerged_vectors
	index_tombstones=semcache_index_tombstones llm_cost_ms=-
	break_even_hit_rate=semcache_break_even_hit_ratio
	time_saved_ms=semcache_time_saved_seconds above_break_even=-
	auto_disabled=semcache_auto_disabled
	effective_threshold=semcache_effective_threshold
	effective_ttl=semcache_effective_ttl_seconds adaptive=-
)

@test ".metrics: Prometheus conventions, every .stats counter, exact numbers through a real parser" {
	mkdir "$MNT/chat"
	run "$FSOP" write "$MNT/code/policy.yaml" $'llm_cost_ms: 800\nauto_disable: 1h\nmodel: m1\nadaptive: {enabled: true}\n'
	assert_output "ok"
	ask code q1 "how do I reverse a list in python" # miss, nothing to compare with
	fill code q1 "reversed(xs)"
	ask code q2 "how do I reverse a list in python" # exact hit
	ask chat q1 'a "quoted" question'
	cp "$MNT/.metrics" "$WORK/metrics"
	run python3 "$TESTS_DIR/tools/promcheck.py" "$WORK/metrics"
	assert_success
	if command -v promtool >/dev/null; then
		run promtool check metrics <"$WORK/metrics"
		assert_success
		assert_output "" # no lint complaint either
	else
		echo "# promtool not installed (Debian's prometheus): its check skipped" >&3
	fi
	py=$(prom_python) || skip "needs python3-prometheus-client (Debian) for its parser"
	run "$py" "$TESTS_DIR/tools/promparse.py" "$WORK/metrics"
	assert_success
	assert_line 'counter semcache_hits_total{category="/code"} 1'
	assert_line 'counter semcache_exact_hits_total{category="/code"} 1'
	assert_line 'counter semcache_lookups_total{category="/code"} 2'
	assert_line 'counter semcache_misses_total{category="/code"} 1'
	assert_line 'counter semcache_fills_total{category="/code"} 1'
	assert_line 'gauge semcache_entries{category="/code"} 1'
	assert_line 'gauge semcache_bytes{category="/code"} 12'
	assert_line 'gauge semcache_entry_hits{category="/code"} 1'
	assert_line 'gauge semcache_hit_ratio{category="/code"} 0.5'
	assert_line 'counter semcache_lookups_total{category="/chat"} 1'
	assert_line 'counter semcache_lookups_without_candidate_total{category="/code"} 1'
	assert_line 'gauge semcache_categories{} 3'
	assert_line 'gauge semcache_auto_disabled{category="/code"} 0'
	refute_line --partial 'semcache_auto_disabled{category="/chat"}' # chat has none
	# the lookup time: a histogram in seconds, both lookups counted
	assert_line 'histogram semcache_lookup_duration_seconds_count{category="/code"} 2'
	assert_line 'histogram semcache_lookup_duration_seconds_bucket{category="/code",le="+Inf"} 2'
	assert_line 'histogram semcache_lookup_duration_seconds_bucket{category="/code",le="8.388608"} 2'
	# the exact hit scored 1: in the best-score histogram's last buckets
	assert_line 'histogram semcache_lookup_best_score_count{category="/code",outcome="hit"} 1'
	assert_line 'histogram semcache_lookup_best_score_bucket{category="/code",le="0.95",outcome="hit"} 0'
	assert_line 'histogram semcache_lookup_best_score_bucket{category="/code",le="+Inf",outcome="hit"} 1'
	assert_line 'histogram semcache_lookup_best_score_sum{category="/code",outcome="hit"} 1'
	assert_line --regexp '^counter semcache_fuse_requests_total\{\} [1-9][0-9]*$'
	assert_line --regexp '^gauge semcache_heap_bytes\{\} [1-9][0-9.]*(e\+[0-9]+)?$' # the parser prints %g
	# no unit but base ones: nothing in microseconds or milliseconds
	refute_output --regexp '_(micro|milli)seconds'
	# every key of .stats has its metric
	cat "$MNT/.stats" "$MNT/code/.stats" >"$WORK/stats"
	while IFS=: read -r key _; do
		m=""
		for pair in "${METRIC_OF[@]}"; do
			[ "${pair%%=*}" = "$key" ] && m=${pair#*=}
		done
		[ -n "$m" ] || fail ".stats key '$key' has no metric in this test's map (add it to .metrics)"
		[ "$m" = - ] && continue
		grep -q " $m{" <<<"$output" || fail ".stats key '$key': no $m in .metrics"
	done <"$WORK/stats"
}

@test ".metrics escapes category names in labels" {
	mkdir "$MNT/a\"b\\c"
	ask 'a"b\c' q1 'a question'
	cp "$MNT/.metrics" "$WORK/metrics"
	run grep -F 'semcache_lookups_total{category="/a\"b\\c"} 1' "$WORK/metrics"
	assert_success
	run python3 "$TESTS_DIR/tools/promcheck.py" "$WORK/metrics"
	assert_success
	py=$(prom_python) || skip "needs python3-prometheus-client (Debian) for its parser"
	run "$py" "$TESTS_DIR/tools/promparse.py" "$WORK/metrics"
	assert_success
	assert_line 'counter semcache_lookups_total{category="/a"b\c"} 1'
}

@test "stat, du and df report real numbers" {
	ask code q1 "how do I reverse a list in python"
	fill code q1 "$(printf '%02000d' 1)"
	run stat -c %s "$MNT/code"
	assert_output "2000"
	kib=$(du -sk "$MNT/code" | cut -f1)
	((kib >= 2))
	run df -P "$MNT"
	assert_success
	size=$(df -P "$MNT" | awk 'NR==2 {print $2}')
	((size > 0))
}

@test "mkdir honours the caller's uid, gid and umask" {
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	chmod 0755 "$WORK" # let the other user reach the mountpoint
	start_daemon -o allow_other
	chmod 0777 "$MNT/code"
	setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "umask 027; mkdir '$MNT/code/nobody'"
	run stat -c '%u %g %a' "$MNT/code/nobody"
	assert_output "65534 65534 750"
}

@test "permissions: another user is refused on a 0700 category and allowed on a 0755 one" {
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	chmod 0755 "$WORK" # let the other user reach the mountpoint
	start_daemon -o allow_other
	mkdir "$MNT/private" "$MNT/shared" "$MNT/open"
	for d in private shared; do
		ask "$d" q1 "how do I reverse a list in python"
		fill "$d" q1 "reversed(xs)"
	done
	chmod 0700 "$MNT/private"
	chmod 0755 "$MNT/shared"
	chmod 1777 "$MNT/open"
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	run as_nobody "$FSOP" read "$MNT/private/.stats"
	assert_output "EACCES at open"
	run as_nobody "$FSOP" write "$MNT/private/n.query" "how do I reverse a list in python"
	assert_output "EACCES at open"
	run as_nobody ls "$MNT/private/entries"
	assert_failure
	run as_nobody "$FSOP" read "$MNT/shared/.stats"
	assert_success
	assert_line "entries: 1"
	run as_nobody ls "$MNT/shared/entries"
	assert_success
	run as_nobody "$FSOP" write "$MNT/shared/n.query" "how do I reverse a list in python"
	assert_output "EACCES at open" # reading is allowed; asking needs write permission
	run as_nobody "$FSOP" write "$MNT/open/n.query" "how do I reverse a list in python"
	assert_output "ok"
	run as_nobody "$FSOP" read "$MNT/open/n.status"
	assert_miss
}

@test "chmod and chown of a category survive a remount" {
	chmod 0750 "$MNT/code"
	chown 123:456 "$MNT/code"
	stop_daemon
	start_daemon
	run stat -c '%a %u %g' "$MNT/code"
	assert_output "750 123 456"
}
