#!/usr/bin/env bats
# Full disk: the store lives on a 4 MiB tmpfs that a ballast file fills up.
# Fills fail with ENOSPC at close(), lookups keep working, nothing stored
# before is damaged, and fills work again once the ballast is removed.

load helpers

setup() {
	require_fuse
	[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs for the store"
	WORK=$(mktemp -d "${BATS_TMPDIR:-/tmp}/semcache.XXXXXX")
	MNT=$WORK/mnt
	STORE=$WORK/store
	LOG=$WORK/daemon.log
	mkdir -p "$MNT" "$STORE"
	mount -t tmpfs -o size=4m,mode=0700 semcache-full "$STORE" ||
		skip "cannot mount a tmpfs here (mount -t tmpfs failed)"
	TMPFS=1
	start_daemon
}

teardown() {
	teardown_mount_keep
	if [ -n "${TMPFS:-}" ]; then
		umount "$WORK/store" || umount -l "$WORK/store"
	fi
	[ -z "${WORK:-}" ] || rm -rf "$WORK"
}

# teardown_mount without removing $WORK (the tmpfs is still mounted in it)
teardown_mount_keep() {
	if [ -n "${DAEMON_PID:-}" ]; then
		stop_daemon || true
	fi
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ] && [ -f "${LOG:-}" ]; then
		echo "--- daemon log ---" >&3
		tail -n 30 "$LOG" >&3
	fi
}

# fill the tmpfs to the last byte with a ballast file outside the cache
fill_disk() {
	run dd if=/dev/zero of="$STORE/ballast" bs=64k
	assert_failure
	assert_output --partial "No space left on device"
	[ "$(stat -f -c %a "$STORE")" = 0 ]
}

answer_of() { printf 'answer %s: %s' "$1" "$(printf '%*s' $(($1 * 300)) '' | tr ' ' "$1")"; }

store_earlier() {
	mkdir "$MNT/code"
	for i in 1 2 3 4 5; do
		ask code "e$i" "earlier question number $i about disks" >/dev/null
		answer_of "$i" >"$WORK/a$i"
		"$FSOP" write "$MNT/code/e$i.response" "$(cat "$WORK/a$i")"
	done
}

earlier_intact() {
	for i in 1 2 3 4 5; do
		run ask code "c$i" "earlier question number $i about disks"
		assert_output --regexp '^hit score=1\.000 entry=[0-9]+ age=[0-9]+ match=exact$'
		cmp "$WORK/a$i" "$MNT/code/c$i.response"
	done
}

@test "a full store disk fails fills with ENOSPC at close and keeps lookups and earlier answers" {
	store_earlier
	fill_disk

	# a large fill: the blob cannot be written
	ask code big "a question whose answer does not fit" >/dev/null
	run "$FSOP" writen "$MNT/code/big.response" $((512 * 1024))
	assert_failure 1
	assert_output "ENOSPC at close"
	# a small one neither
	ask code small "a short question on a full disk" >/dev/null
	run "$FSOP" write "$MNT/code/small.response" "tiny"
	assert_failure 1
	assert_output "ENOSPC at close"
	# nothing of them is stored or served
	run ask code big2 "a question whose answer does not fit"
	assert_miss
	run ask code small2 "a short question on a full disk"
	assert_miss

	# lookups keep working, earlier answers are whole
	earlier_intact
	run cat "$MNT/code/.stats"
	assert_line "entries: 5"
	assert_line "damaged_dropped: 0"

	# free the space: fills work again
	rm "$STORE/ballast"
	ask code big3 "a question whose answer does not fit" >/dev/null
	run "$FSOP" writen "$MNT/code/big3.response" $((512 * 1024))
	assert_success
	assert_output "ok"
	run ask code big4 "a question whose answer does not fit"
	assert_output --regexp '^hit score=1\.000 .* match=exact$'
	assert_file_size_equals "$MNT/code/big4.response" $((512 * 1024))

	# and everything is still whole after a restart from the tmpfs
	stop_daemon
	start_daemon
	earlier_intact
	run cat "$MNT/code/.stats"
	assert_line "entries: 6"
	assert_line "damaged_dropped: 0"
}

@test "the daemon restarts on a full store disk and serves what it has" {
	store_earlier
	stop_daemon
	fill_disk
	start_daemon
	grep -q "full disk: gave up the reserve" "$LOG"
	earlier_intact
	# the reserve it gave up is taken by more ballast
	run dd if=/dev/zero of="$STORE/ballast2" bs=4k
	assert_failure
	ask code late "a question after a restart on a full disk" >/dev/null
	run "$FSOP" write "$MNT/code/late.response" "no room"
	assert_failure 1
	assert_output "ENOSPC at close"
	rm "$STORE/ballast" "$STORE/ballast2"
	run "$FSOP" write "$MNT/code/late.response" "room again"
	assert_success
	run ask code late2 "a question after a restart on a full disk"
	assert_output --regexp '^hit score=1\.000 .* match=exact$'
	run cat "$MNT/code/late2.response"
	assert_output "room again"
}

@test "removals on a full disk reach the store: after a restart none of the removed entries is back" {
	mkdir "$MNT/code" "$MNT/big"
	for i in $(seq 1 150); do
		ask code "r$i" "removal question $i on a disk that fills up $((i * 7919))" >/dev/null
		run "$FSOP" write "$MNT/code/r$i.response" "answer $i $(printf '%*s' 600 '' | tr ' ' x)"
		assert_output "ok"
	done
	for i in $(seq 1 60); do
		ask big "b$i" "category question $i that goes away with it $((i * 104729))" >/dev/null
		run "$FSOP" write "$MNT/big/b$i.response" "answer $i"
		assert_output "ok"
	done
	ls "$MNT/code/entries" >"$WORK/ids"
	[ "$(wc -l <"$WORK/ids")" = 150 ]
	stop_daemon
	start_daemon
	fill_disk
	while read -r id; do
		run rm -r "$MNT/code/entries/$id"
		assert_success
		# the space one removal freed is taken again at once
		dd if=/dev/zero of="$STORE/ballast" bs=4k oflag=append conv=notrunc 2>/dev/null || true
	done <"$WORK/ids"
	run rm -r "$MNT/big"
	assert_success
	# every removal reached the store (the daemon would say otherwise)
	run grep -c "database or disk is full" "$LOG"
	assert_output "0"
	stop_daemon
	rm "$STORE/ballast"
	start_daemon
	run ls "$MNT/code/entries"
	assert_output ""
	[ ! -d "$MNT/big" ]
	run cat "$MNT/.stats"
	assert_line "entries: 0"
}
