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

@test ".metrics is valid Prometheus text labelled by category" {
	mkdir "$MNT/chat"
	ask code q1 "how do I reverse a list in python"
	fill code q1 "reversed(xs)"
	ask chat q1 'a "quoted" question'
	run cat "$MNT/.metrics"
	assert_line 'semcache_entries{category="/code"} 1'
	assert_line 'semcache_lookups_total{category="/chat"} 1'
	assert_line '# TYPE semcache_hits_total counter'
	python3 "$TESTS_DIR/tools/promcheck.py" "$MNT/.metrics"
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
