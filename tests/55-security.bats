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
