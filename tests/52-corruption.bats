#!/usr/bin/env bats
# Corrupted store: with the daemon stopped, truncate or bit-flip an index
# snapshot, a response blob, the metadata database and its WAL. The daemon
# starts, detects the damage, rebuilds what it can, drops only what cannot be
# recovered, never serves damaged bytes, and says what it did in the log and
# in .stats.

load helpers

setup() { setup_mount; }
teardown() { teardown_mount; }

# flip FILE OFFSET: invert every bit of one byte (OFFSET < 0: from the end)
flip() {
	python3 - "$1" "$2" <<'EOF'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
if off < 0:
    off += size
with open(path, 'r+b') as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xff]))
EOF
}

# garble FILE OFFSET LEN: overwrite LEN bytes with 0xa5
garble() {
	python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); f.write(b"\xa5"*int(sys.argv[3]))' "$1" "$2" "$3"
}

stat_of() { sed -n "s/^$2: //p" "$1"; }

# fill_n DIR N: N distinct questions and answers (answer i is i*97 bytes)
fill_n() {
	mkdir -p "$MNT/$1" "$WORK/ans"
	for ((i = 1; i <= $2; i++)); do
		ask "$1" "f$i" "corruption question $i about the $1 store $((i * 7919))" >/dev/null
		python3 -c 'import sys; i=int(sys.argv[1]); sys.stdout.buffer.write(bytes((i*31+k*7)%256 for k in range(i*97)))' "$i" >"$WORK/ans/$1.$i"
		cp "$WORK/ans/$1.$i" "$MNT/$1/f$i.response"
	done
}

# served DIR N: prints "H M" (hits, misses); fails if a hit serves wrong bytes
served() {
	local h=0 m=0 s
	for ((i = 1; i <= $2; i++)); do
		s=$(ask "$1" "v$i" "corruption question $i about the $1 store $((i * 7919))")
		case $s in
		hit\ score=1.000\ *match=exact)
			cmp "$WORK/ans/$1.$i" "$MNT/$1/v$i.response" >&2 || return 1
			h=$((h + 1)) ;;
		miss | miss\ best=*) m=$((m + 1)) ;;
		*) echo "unexpected status '$s' for question $i" >&2; return 1 ;;
		esac
	done
	echo "$h $m"
}

entry_of() { sed -n 's/^stored entry=\([0-9]*\)$/\1/p' "$MNT/$1/$2.status"; }

blob_of() { printf '%s/blobs/%02x/%d' "$STORE" $(($1 & 255)) "$1"; }

@test "a bit-flipped index snapshot is detected and the index rebuilt from the store" {
	fill_n code 5
	stop_daemon
	snap=$(ls "$STORE"/index/*.vx | head -n 1)
	[ -f "$snap" ]
	flip "$snap" $(($(stat -c %s "$snap") / 2))
	start_daemon
	grep -q "index snapshot '.*\.vx' unusable (.*): rebuilding from the store" "$LOG"
	run served code 5
	assert_output "5 0"
	# the rebuilt index answers paraphrases (semantic path)
	run ask code p "corruption question 3 about the code store 23757 please"
	assert_output --regexp '^hit score=0\.9[0-9]+ .* match=semantic$'
	run cat "$MNT/.stats"
	assert_line "entries: 5"
	assert_line "damaged_dropped: 0"
}

@test "a truncated index snapshot is detected and the index rebuilt from the store" {
	fill_n code 5
	stop_daemon
	for snap in "$STORE"/index/*.vx; do truncate -s $(($(stat -c %s "$snap") / 3)) "$snap"; done
	start_daemon
	grep -q "index snapshot '.*\.vx' unusable" "$LOG"
	run served code 5
	assert_output "5 0"
	run ask code p "corruption question 3 about the code store 23757 please"
	assert_output --regexp '^hit .* match=semantic$'
}

@test "a bit-flipped response blob is never served: its entry is dropped and counted" {
	fill_n code 4
	id=$(entry_of code f2)
	[ -n "$id" ]
	stop_daemon
	flip "$(blob_of "$id")" -10
	start_daemon
	run ask code x "corruption question 2 about the code store 15838"
	assert_miss
	run cat "$MNT/code/x.response"
	assert_output ""
	grep -q "entry $id response unreadable" "$LOG"
	run cat "$MNT/.stats"
	assert_line "damaged_dropped: 1"
	assert_line "entries: 3"
	run served code 4
	assert_output "3 1"
	# the drop is for good, and the entry can be filled again
	stop_daemon
	start_daemon
	run cat "$MNT/.stats"
	assert_line "entries: 3"
	ask code r "corruption question 2 about the code store 15838" >/dev/null
	cp "$WORK/ans/code.2" "$MNT/code/r.response"
	run served code 4
	assert_output "4 0"
}

@test "a valid blob copied over another entry's blob is never served as that entry's answer" {
	fill_n code 4
	a=$(entry_of code f1)
	b=$(entry_of code f3)
	[ -n "$a" ] && [ -n "$b" ]
	stop_daemon
	cp "$(blob_of "$a")" "$(blob_of "$b")"
	start_daemon
	# question 3 gets no answer at all rather than question 1's
	run ask code x "corruption question 3 about the code store 23757"
	assert_miss
	run cat "$MNT/code/x.response"
	assert_output ""
	grep -q "belongs to entry $a, not to entry $b" "$LOG"
	run cat "$MNT/.stats"
	assert_line "damaged_dropped: 1"
	# question 1 still gets its own
	run served code 4
	assert_output "3 1"
}

@test "a truncated response blob is never served: its entry is dropped and counted" {
	fill_n code 4
	id=$(entry_of code f3)
	stop_daemon
	truncate -s 30 "$(blob_of "$id")"
	start_daemon
	run served code 4
	assert_output "3 1"
	run cat "$MNT/.stats"
	assert_line "damaged_dropped: 1"
	assert_line "entries: 3"
}

@test "a damaged database page: the db is moved aside, readable rows are salvaged, nothing wrong is served" {
	fill_n code 40
	fill_n chat 40
	printf 'threshold: 0.95\n' >"$MNT/code/policy.yaml"
	stop_daemon
	db=$STORE/semcache.db
	pages=$(($(stat -c %s "$db") / 4096))
	((pages > 8))
	# garble the b-tree header of a page in the middle of the entries
	garble "$db" $(((pages / 2) * 4096)) 16
	cp "$db" "$WORK/damaged.db"
	start_daemon
	grep -q "database '.*semcache.db' is damaged" "$LOG"
	grep -q "repair: moved the damaged database aside to '.*semcache.db.corrupt-[0-9TZ]*'" "$LOG"
	grep -q "repair: new database .*: [0-9]* entries salvaged, [0-9]* lost" "$LOG"
	# the damaged file is kept byte for byte
	aside=$(ls "$STORE"/semcache.db.corrupt-*[0-9Z] | head -n 1)
	cmp "$WORK/damaged.db" "$aside"
	run served code 40
	assert_success
	read -r hc mc <<<"$output"
	run served chat 40
	assert_success
	read -r hh mh <<<"$output"
	lost=$(find "$STORE/lost+found" -type f 2>/dev/null | wc -l)
	echo "# salvaged $((hc + hh)) of 80, lost $lost" >&3
	# every entry is either served whole or its response is in lost+found
	[ $((hc + hh + lost)) = 80 ]
	((hc + hh > 0))
	cat "$MNT/.stats" >"$WORK/stats"
	[ "$(stat_of "$WORK/stats" entries)" = $((hc + hh)) ]
	# fills work on the new database and its ids do not collide
	ask code new "a question after the repair" >/dev/null
	printf 'fresh' >"$MNT/code/new.response"
	run ask code new2 "a question after the repair"
	assert_output --regexp '^hit score=1\.000 '
	run cat "$MNT/code/new2.response"
	assert_output "fresh"
	# and the repaired store opens cleanly again
	stop_daemon
	start_daemon
	run served code 40
	assert_output "$hc $mc"
}

@test "a database whose header is destroyed is rebuilt; all responses are kept in lost+found" {
	fill_n code 6
	stop_daemon
	garble "$STORE/semcache.db" 0 100
	start_daemon
	grep -q "repair: moved the damaged database aside" "$LOG"
	grep -q "repair: new database .*: 0 entries salvaged, 6 lost" "$LOG"
	# the category rows were lost with the header
	assert_dir_not_exists "$MNT/code"
	[ "$(find "$STORE/lost+found" -type f | wc -l)" = 6 ]
	ls "$STORE"/semcache.db.corrupt-* >/dev/null
	mkdir "$MNT/code"
	run served code 6
	assert_output "0 6"
	ask code a "after a total loss" >/dev/null
	printf 'x' >"$MNT/code/a.response"
	run ask code b "after a total loss"
	assert_output --regexp '^hit '
}

@test "a truncated database is detected and rebuilt, not taken for a new empty one" {
	fill_n code 6
	stop_daemon
	: >"$STORE/semcache.db"
	start_daemon
	grep -q "repair: moved the damaged database aside" "$LOG"
	[ "$(find "$STORE/lost+found" -type f | wc -l)" = 6 ]
	[ "$(find "$STORE/blobs" -type f | wc -l)" = 0 ]
}

@test "a database truncated to half is repaired and keeps the rows before the cut" {
	fill_n code 60
	stop_daemon
	db=$STORE/semcache.db
	truncate -s $((($(stat -c %s "$db") / 4096 / 2) * 4096)) "$db"
	start_daemon
	grep -q "repair: moved the damaged database aside" "$LOG"
	run served code 60
	assert_success
	read -r h m <<<"$output"
	lost=$(find "$STORE/lost+found" -type f 2>/dev/null | wc -l)
	echo "# salvaged $h of 60, lost $lost" >&3
	[ $((h + lost)) = 60 ]
}

@test "a damaged WAL after a crash loses only the transactions from the damage on, and says so" {
	fill_n code 12
	kill_daemon
	wal=$STORE/semcache.db-wal
	[ -s "$wal" ]
	# damage a frame in the second half of the WAL
	flip "$wal" $(($(stat -c %s "$wal") * 2 / 3))
	start_daemon
	grep -q "did not close cleanly" "$LOG"
	run served code 12
	assert_success
	read -r h m <<<"$output"
	cat "$MNT/.stats" >"$WORK/stats"
	orphans=$(stat_of "$WORK/stats" store_orphans_removed_at_start)
	echo "# WAL damage: $h of 12 kept, $orphans responses without a row removed" >&3
	((h >= 1))
	[ $((h + orphans)) = 12 ]
	[ "$(stat_of "$WORK/stats" entries)" = "$h" ]
}

@test "the database repair is reported in the root .stats" {
	fill_n code 6
	stop_daemon
	garble "$STORE/semcache.db" 0 100
	start_daemon
	run cat "$MNT/.stats"
	assert_line "store_db_repaired: 1"
	assert_line "store_db_salvaged: 0"
	assert_line "store_db_lost: 6"
	assert_line "store_db_categories_recreated: 0"
}
