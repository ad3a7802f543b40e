#!/usr/bin/env bats
# semcachefs-top (the live view) against a real mount with known lookups,
# fills and hits: the -1 table, the live view in tmux changing after a
# lookup, q / Ctrl-C / SIGTERM exits, a non-terminal output; and the bash
# completion of -o names and policy keys from the binary being completed.

load helpers

TOP=$BUILD/fs/semcachefs-top
COMPLETION=$TESTS_DIR/../fs/completion/semcachefs.bash

setup() { setup_mount; }
teardown() {
	[ -z "${TMUX_SOCK:-}" ] || tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
	teardown_mount
}

# known_load: /code 3 lookups (a miss and its fill, an exact and a
# semantic hit), /chat 1 miss, with llm_cost_ms 1000 in /code and a
# threshold of 0.85 in /chat
known_load() {
	mkdir "$MNT/code" "$MNT/chat"
	echo "llm_cost_ms: 1000" >"$MNT/code/policy.yaml"
	echo "threshold: 0.85" >"$MNT/chat/policy.yaml"
	[ "$(ask code q1 "how do I reverse a list in python")" = miss ]
	fill code q1 "reversed(xs)"
	ask code q2 "how do I reverse a list in python" | grep -q 'match=exact$'
	ask code q3 "python: reverse a list" | grep -q 'match=semantic$'
	[ "$(ask chat c1 "tell me a joke about cats")" = miss ]
}

@test "top -1: per category entries, lookups, hit rate, exact and semantic hits" {
	known_load
	run "$TOP" -1 -k threshold "$MNT"
	assert_success
	assert_line --index 0 --regexp "^semcachefs-top  $MNT  [0-9:]{8}  categories: 3$"
	assert_line --index 1 --regexp '^CATEGORY +ENTRIES +LOOKUPS +LK/S +HIT% +EXACT +SEMANTIC +P50_US +P99_US +SAVED_S +EVICTED +THRESHOLD$'
	# saved: 2 hits x 1 s, less the lookups' own time; TOTAL sums the categories'
	assert_line --index 2 --regexp '^TOTAL +1 +4 +- +50\.0 +1 +1 +[0-9]+ +[0-9]+ +(2\.0|1\.9) +0$'
	assert_line --index 3 --regexp '^/chat +0 +1 +- +0\.0 +0 +0 +[0-9]+ +[0-9]+ +- +0 +0\.85$'
	assert_line --index 4 --regexp '^/code +1 +3 +- +66\.7 +1 +1 +[0-9]+ +[0-9]+ +(2\.0|1\.9) +0 +0\.9$'
	assert_equal "${#lines[@]}" 5
}

@test "top -1: a subcategory has a row of its own" {
	mkdir -p "$MNT/code/py"
	[ "$(ask code/py q1 "how do I reverse a list in python")" = miss ]
	run "$TOP" -1 "$MNT"
	assert_success
	assert_line --index 3 --regexp '^/code +0 +0 +- +0\.0 '
	assert_line --index 4 --regexp '^/code/py +0 +1 +- +0\.0 '
}

@test "top -1: a category the caller may not read is shown as such, the others still are" {
	[ "$(id -u)" = 0 ] || skip "needs root to run a command as another uid (setpriv)"
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	stop_daemon
	chmod 0755 "$WORK"
	start_daemon -o allow_other
	mkdir -p "$MNT/code/py" "$MNT/open"
	chmod 0700 "$MNT/code/py"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$TOP" -1 "$MNT"
	assert_success
	assert_line --index 3 --regexp '^/code +0 +0 +- +0\.0 '
	assert_line --index 4 --regexp '^/code/py +permission denied$'
	assert_line --index 5 --regexp '^/open +0 +0 +- +0\.0 '
}

@test "top -1: control characters in a name are shown escaped, never sent to the terminal" {
	# category names with them are refused by mkdir (EINVAL); the mount
	# point's own name is the owner's choice and may have them
	stop_daemon
	MNT=$WORK/$'m\ex' # (no brackets: is_mounted greps for it)
	mkdir "$MNT"
	start_daemon
	mkdir "$MNT/code"
	run "$TOP" -1 "$MNT"
	assert_success
	assert_line --index 0 --regexp "^semcachefs-top  $WORK/m\\\\x1bx  "
	refute_output --partial $'\e'
}

@test "top: not a semcachefs mount, bad -i, an unknown -k key and --help" {
	run "$TOP" -1 "$WORK"
	assert_failure 1
	assert_output "semcachefs-top: cannot read '$WORK/.stats': no such file or directory; is semcachefs mounted there?"
	run "$TOP" -i 0 "$MNT"
	assert_failure 2
	assert_output --partial "-i 0: give a number of seconds from 0.1 to 3600"
	run "$TOP" -1 -k treshold "$MNT"
	assert_failure 2
	assert_output "semcachefs-top: -k 'treshold' is not a policy key (semcachefs --policy-keys lists them)"
	run "$TOP" --help
	assert_success
	assert_output --partial "usage: semcachefs-top [-h] [-i SECS] [-1] [-k KEY] MOUNTPOINT"
}

@test "top: the live view in tmux shows the numbers change after a lookup; q quits with 0" {
	command -v tmux >/dev/null || skip "needs tmux (package tmux) to drive the live view"
	known_load
	TMUX_SOCK=$WORK/tmux.sock
	tmux -S "$TMUX_SOCK" new-session -d -x 150 -y 20 \
		"TERM=xterm $TOP -i 0.2 $MNT; echo \$? >$WORK/top.rc; sleep 60"
	screen_has() { tmux -S "$TMUX_SOCK" capture-pane -p | grep -Eq "$1"; }
	wait_until 10 screen_has '^/chat +0 +1 +0\.0 +0\.0 '
	[ "$(ask chat c2 "tell me a joke about cats")" = miss ]
	# two lookups in /chat now, and a rate above zero for the refresh that saw it
	wait_until 10 screen_has '^/chat +0 +2 +[0-9.]+ +0\.0 '
	wait_until 10 screen_has '^TOTAL +1 +5 +'
	run tmux -S "$TMUX_SOCK" capture-pane -p
	assert_line --regexp '^\(q quits\)$'
	tmux -S "$TMUX_SOCK" send-keys q
	quit() { [ -s "$WORK/top.rc" ]; }
	wait_until 10 quit
	assert_equal "$(cat "$WORK/top.rc")" 0
}

@test "top: Ctrl-C in the live view exits 0 and gives the terminal back" {
	command -v tmux >/dev/null || skip "needs tmux (package tmux) to drive the live view"
	TMUX_SOCK=$WORK/tmux.sock
	tmux -S "$TMUX_SOCK" new-session -d -x 150 -y 20 \
		"$TOP $MNT; echo rc=\$? >$WORK/top.rc; stty -a >$WORK/stty; sleep 60"
	screen_has() { tmux -S "$TMUX_SOCK" capture-pane -p | grep -Eq "$1"; }
	wait_until 10 screen_has '^TOTAL +0 +0 '
	tmux -S "$TMUX_SOCK" send-keys C-c
	done_() { [ -s "$WORK/stty" ]; }
	wait_until 10 done_
	assert_equal "$(cat "$WORK/top.rc")" rc=0
	run grep -Eo '(^| )-?icanon( |$)' "$WORK/stty"
	assert_output --regexp '^ ?icanon ?$'
}

@test "top: on a dumb terminal frames follow one another (no escape sequences)" {
	command -v tmux >/dev/null || skip "needs tmux (package tmux) to drive the live view"
	TMUX_SOCK=$WORK/tmux.sock
	tmux -S "$TMUX_SOCK" new-session -d -x 150 -y 40 \
		"TERM=dumb $TOP -i 0.2 $MNT; echo \$? >$WORK/top.rc; sleep 60"
	frames() { [ "$(tmux -S "$TMUX_SOCK" capture-pane -p | grep -c '^CATEGORY ')" -ge 2 ]; }
	wait_until 10 frames
	run tmux -S "$TMUX_SOCK" capture-pane -p
	refute_line "(q quits)"
	tmux -S "$TMUX_SOCK" send-keys q
	quit() { [ -s "$WORK/top.rc" ]; }
	wait_until 10 quit
	assert_equal "$(cat "$WORK/top.rc")" 0
}

@test "top: to a file (not a terminal) it appends plain frames and stops on SIGTERM with 0" {
	"$TOP" -i 0.1 "$MNT" >"$WORK/frames" 2>&1 </dev/null &
	local pid=$!
	frames() { [ "$(grep -c '^CATEGORY ' "$WORK/frames")" -ge 3 ]; }
	wait_until 10 frames
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 0
	run grep -c $'\e' "$WORK/frames"
	assert_output 0
}

@test "top: its man page lints clean, is installed, and names every option --help has" {
	local page=$TESTS_DIR/../fs/top/semcachefs-top.1 opt
	if command -v mandoc >/dev/null; then
		run mandoc -Tlint "$page"
		assert_success
		assert_output ""
	fi
	command -v groff >/dev/null || skip "needs groff (or mandoc) to check the man page"
	run groff -wall -man -Tutf8 -z "$page"
	assert_success
	assert_output ""
	run meson introspect "$BUILD" --installed
	assert_output --regexp '/share/man/man1/semcachefs-top\.1"'
	MANWIDTH=100 run man -l "$page"
	assert_success
	for opt in $("$TOP" --help | grep -oE '(^|[ ,])--[a-z]+' | tr -d ' ,' | sort -u); do
		assert_output --partial -- "$opt"
	done
}

# complete FUNCTION WORD...: COMPREPLY of FUNCTION for the words, the last
# one being completed, one reply a line
complete_words() {
	local fn=$1
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	"$fn"
	printf '%s\n' "${COMPREPLY[@]}"
}

@test "completion: -o names and choices come from semcachefs --help" {
	source "$COMPLETION"
	run complete_words _semcachefs "$SEMCACHEFS" -o sto
	assert_output "store="
	run complete_words _semcachefs "$SEMCACHEFS" -o sync=f
	assert_output "sync=full"
	run complete_words _semcachefs "$SEMCACHEFS" -o allow_other,auto_u
	assert_output "allow_other,auto_unmount"
	run complete_words _semcachefs "$SEMCACHEFS" -otrans
	assert_output "-otransport="
	run complete_words _semcachefs "$SEMCACHEFS" --pol
	assert_output "--policy-keys"
}

@test "completion: a mount point with a space in its name completes as one word" {
	source "$COMPLETION"
	mkdir "$WORK/my cache"
	run complete_words _semcachefs "$SEMCACHEFS" -f "$WORK/my"
	assert_output "$WORK/my cache"
	run complete_words _semcachefs "$SEMCACHEFS" -o "log=$WORK/my"
	assert_output "log=$WORK/my cache"
}

@test "completion: semcachefs-top -k completes policy keys from --policy-keys" {
	source "$COMPLETION"
	run complete_words _semcachefs_top "$TOP" -k adaptive.thr
	assert_output "adaptive.threshold_min"
	run complete_words _semcachefs_top "$TOP" --key llm_
	assert_output "llm_cost_ms"
	# the keys of the binary found, not a list kept in the completion
	mkdir "$WORK/bin"
	printf '#!/bin/sh\necho "| \\`zz_only_here\\` | number | \\`1\\` | 0..1 | x |"\n' >"$WORK/bin/semcachefs"
	chmod +x "$WORK/bin/semcachefs"
	PATH=$WORK/bin:$PATH run complete_words _semcachefs_top semcachefs-top -k zz
	assert_output "zz_only_here"
	PATH=$WORK/bin:$PATH run complete_words _semcachefs_top semcachefs-top -k adaptive.thr
	assert_output ""
}
