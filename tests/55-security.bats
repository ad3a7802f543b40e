#!/usr/bin/env bats
# Security: the mount is private unless -o allow_other, the store is 0700
# with 0600 files, symlinks planted in the store never make the daemon write
# outside it, and a policy file is data: nothing in it is ever executed.

load helpers

setup() { setup_mount; }
teardown() { teardown_mount; }

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

@test "another user gets EACCES on a private mount" {
	[ "$(id -u)" = 0 ] || skip "needs root to run a command as another uid (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	chmod 0755 "$WORK"
	run as_nobody "$FSOP" read "$MNT/.stats"
	assert_output "EACCES at open"
	run as_nobody ls "$MNT"
	assert_failure
	assert_output --partial "Permission denied"
}

@test "with -o allow_other another user can use the mount" {
	[ "$(id -u)" = 0 ] || skip "needs root to run a command as another uid (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	start_daemon -o allow_other
	chmod 0755 "$WORK"
	run as_nobody "$FSOP" read "$MNT/.stats"
	assert_success
	assert_line --regexp '^entries: [0-9]+$'
}

@test "the store directory is 0700 and every file in it 0600" {
	mkdir "$MNT/code"
	ask code q1 "a question for the modes" >/dev/null
	printf 'an answer' >"$MNT/code/q1.response"
	stop_daemon
	[ "$(stat -c %a "$STORE")" = 700 ]
	run find "$STORE" -type f ! -perm 0600 -printf '%m %P\n'
	assert_output ""
	run find "$STORE" -type d ! -perm 0700 -printf '%m %P\n'
	assert_output ""
}

@test "a blob directory replaced by a symlink makes the daemon refuse the store, writing nothing outside" {
	mkdir "$MNT/code"
	ask code q1 "first question" >/dev/null
	printf 'first' >"$MNT/code/q1.response"
	stop_daemon
	mkdir "$WORK/elsewhere"
	for xx in 01 02 03; do
		rm -rf "$STORE/blobs/$xx"
		ln -s "$WORK/elsewhere" "$STORE/blobs/$xx"
	done
	run "$SEMCACHEFS" -f -o store="$STORE" "$MNT"
	assert_failure
	assert_output --partial "is a symlink, not a directory; refusing to use the store"
	run ls -A "$WORK/elsewhere"
	assert_output ""
}

@test "the database and the blobs tree replaced by symlinks are refused" {
	stop_daemon
	mv "$STORE/blobs" "$WORK/realblobs"
	ln -s "$WORK/realblobs" "$STORE/blobs"
	run "$SEMCACHEFS" -f -o store="$STORE" "$MNT"
	assert_failure
	assert_output --partial "blobs' is a symlink"
	rm "$STORE/blobs"
	mv "$WORK/realblobs" "$STORE/blobs"
	mv "$STORE/semcache.db" "$WORK/real.db"
	ln -s "$WORK/real.db" "$STORE/semcache.db"
	run "$SEMCACHEFS" -f -o store="$STORE" "$MNT"
	assert_failure
	assert_output --partial "semcache.db"
}

@test "an index snapshot directory replaced by a symlink is not written through" {
	mkdir "$MNT/code"
	ask code q1 "first question" >/dev/null
	printf 'first' >"$MNT/code/q1.response"
	stop_daemon
	mkdir "$WORK/elsewhere"
	rm -rf "$STORE/index"
	ln -s "$WORK/elsewhere" "$STORE/index"
	start_daemon || true
	if [ -n "${DAEMON_PID:-}" ] && is_mounted; then
		stop_daemon || true
	fi
	run ls -A "$WORK/elsewhere"
	assert_output ""
}

@test "a policy with shell-like strings is rejected as data and runs nothing" {
	mkdir "$MNT/code" "$MNT/m2v"
	marker=$WORK/pwned
	payload="\$(touch $marker)"
	# the payload is live: any shell that sees it makes the marker
	sh -c "echo $payload >/dev/null"
	assert_file_exists "$marker"
	rm "$marker"
	run "$FSOP" write "$MNT/code/policy.yaml" "embedder: \"$payload\"
ttl: \`touch $marker\`
threshold: 0.9; touch $marker
"
	assert_output "EINVAL at close"
	run cat "$MNT/code/.errors"
	assert_output --partial "policy.yaml"
	# accepted, and its strings used: the endpoint's url and model go into
	# every embedding request (a lookup makes one; nothing listens on port 9)
	run "$FSOP" write "$MNT/code/policy.yaml" "embedder: http
http: {url: 'http://127.0.0.1:9/\$(touch\${IFS}$marker)', model: '$payload; \`touch $marker\` | touch $marker', dimensions: 8, timeout: 300ms, retries: 0}
cache: true # $payload | touch $marker"
	assert_output "ok"
	run ask code q "hello there"
	assert_output --regexp '^miss '
	# a Model2Vec directory is opened as a path, not run
	run "$FSOP" write "$MNT/m2v/policy.yaml" "embedder: 'model2vec:/tmp/$payload'"
	assert_output "EINVAL at close"
	run cat "$MNT/m2v/.errors"
	assert_output --partial "cannot open '/tmp/\$(touch"
	# the stored policy is loaded again at start
	stop_daemon
	start_daemon
	run cat "$MNT/code/.policy"
	assert_success
	assert_line --partial "http.model: \"$payload; \`touch"
	run ask code q2 "hello again"
	assert_output --regexp '^miss '
	assert_file_not_exists "$marker"
}

# ---- with -o allow_other: who owns what (cache.h "Trust") ----

as_other() { setpriv --reuid=1234 --regid=1234 --clear-groups "$@"; }

# remount_shared: remount with -o allow_other; $MNT/open is a 1777 category
remount_shared() {
	[ "$(id -u)" = 0 ] || skip "needs root to run a command as another uid (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	chmod 0755 "$WORK"
	start_daemon -o allow_other
	mkdir "$MNT/open"
	chmod 1777 "$MNT/open"
}

@test "session files are 0600 and their creator's: another user gets EACCES on them" {
	remount_shared
	run as_nobody "$FSOP" write "$MNT/open/s.query" "a private question"
	assert_output "ok"
	run stat -c '%a %u %g' "$MNT/open/s.query" "$MNT/open/s.status" "$MNT/open/s.response"
	assert_output "600 65534 65534
400 65534 65534
600 65534 65534"
	run as_nobody "$FSOP" write "$MNT/open/s.response" "a private answer"
	assert_output "ok"
	run as_other "$FSOP" read "$MNT/open/s.response"
	assert_output "EACCES at open"
	run as_other "$FSOP" read "$MNT/open/s.status"
	assert_output "EACCES at open"
	run as_other "$FSOP" write "$MNT/open/s.query" "another user's question"
	assert_output "EACCES at open"
	run as_other "$FSOP" write "$MNT/open/s.context" "another user's context"
	assert_output "EACCES at open" # a new file of the session is no way in either
	run as_other "$FSOP" unlink "$MNT/open/s.query"
	assert_output "EPERM at unlink" # the sticky category keeps it the creator's
	run as_nobody "$FSOP" read "$MNT/open/s.response"
	assert_output "a private answer"
	run as_nobody "$FSOP" read "$MNT/open/s.query"
	assert_output "a private question"
}

@test ".metrics is 0400 and the mount owner's, whoever owns the root category" {
	remount_shared
	chown 1234:1234 "$MNT"
	run stat -c '%a %u %g' "$MNT/.metrics"
	assert_output "400 $(id -u) $(id -g)"
	run stat -c '%u' "$MNT/.stats"
	assert_output "1234"
	run as_other "$FSOP" read "$MNT/.metrics"
	assert_output "EACCES at open"
	run as_nobody "$FSOP" read "$MNT/.metrics"
	assert_output "EACCES at open"
	run "$FSOP" read "$MNT/.metrics"
	assert_success
	assert_line --regexp '^semcache_entries\{category="/open"\} 0$'
}

@test "policy.yaml follows the category owner: others cannot create or install it in a 1777 category" {
	remount_shared
	run as_nobody "$FSOP" write "$MNT/open/policy.yaml" "threshold: 0.05"
	assert_output "EACCES at open"
	assert_file_not_exists "$MNT/open/policy.yaml"
	run as_nobody "$FSOP" write "$MNT/open/low.yaml" "threshold: 0.05"
	assert_output "ok"
	run as_nobody "$FSOP" rename "$MNT/open/low.yaml" "$MNT/open/policy.yaml"
	assert_output "EACCES at rename"
	echo "threshold: 0.9" >"$MNT/open/policy.yaml"
	run stat -c '%a %u' "$MNT/open/policy.yaml"
	assert_output "644 0"
	chown 1234:1234 "$MNT/open"
	run stat -c '%u' "$MNT/open/policy.yaml"
	assert_output "1234"
	run as_other "$FSOP" write "$MNT/open/policy.yaml" "threshold: 0.8"
	assert_output "ok" # the category's owner may
	run as_nobody "$FSOP" rename "$MNT/open/low.yaml" "$MNT/open/policy.yaml"
	assert_output "EPERM at rename" # now the kernel's sticky check comes first
	run cat "$MNT/open/policy.yaml"
	assert_output "threshold: 0.8"
}

@test "a policy.yaml renamed to a backup is a scratch file of who renamed it" {
	remount_shared
	mkdir "$MNT/mine"
	chown 1234:1234 "$MNT/mine"
	run as_other "$FSOP" write "$MNT/mine/policy.yaml" "threshold: 0.9"
	assert_output "ok"
	run as_other "$FSOP" rename "$MNT/mine/policy.yaml" "$MNT/mine/policy.yaml~"
	assert_output "ok"
	run stat -c '%a %u %g' "$MNT/mine/policy.yaml~"
	assert_output "644 1234 1234"
	run as_other "$FSOP" read "$MNT/mine/policy.yaml~"
	assert_output "threshold: 0.9"
	assert_file_not_exists "$MNT/mine/policy.yaml"
}

@test "entries show the uid that filled them" {
	remount_shared
	run as_nobody "$FSOP" write "$MNT/open/n.query" "a question nobody asked"
	assert_output "ok"
	run as_nobody "$FSOP" write "$MNT/open/n.response" "nobody's answer"
	assert_output "ok"
	id=$(sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/open/n.status")
	run stat -c '%u' "$MNT/open/entries/$id" "$MNT/open/entries/$id/response"
	assert_output "65534
65534"
}

@test "another user's fill never replaces an entry in a shared category" {
	remount_shared
	ask open q1 "how do I reverse a list in python" >/dev/null
	fill open q1 "reversed(xs)"
	run as_nobody "$FSOP" write "$MNT/open/n.query" "how do I reverse a list in python"
	assert_output "ok"
	run as_nobody "$FSOP" write "$MNT/open/n.response" "rm -rf /"
	assert_output "EACCES at close"
	ask open q2 "how do I reverse a list in python" >/dev/null
	run cat "$MNT/open/q2.response"
	assert_output "reversed(xs)"
}

@test "another user's wrong-hit feedback is counted, not invalidating" {
	remount_shared
	ask open q1 "how do I reverse a list in python" >/dev/null
	fill open q1 "reversed(xs)"
	run as_nobody "$FSOP" write "$MNT/open/n.query" "how do I reverse a list in python"
	assert_output "ok"
	run as_nobody "$FSOP" write "$MNT/open/n.feedback" "wrong"
	assert_output "ok"
	run ask open q2 "how do I reverse a list in python"
	assert_output --regexp '^hit score=1\.000 '
}
