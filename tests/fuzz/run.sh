#!/usr/bin/env bash
# run.sh SECONDS - build the libFuzzer harnesses with clang into build-fuzz
# (ASan + UBSan + fuzzer coverage over the whole tree) and run each for
# SECONDS (default 60) on a seed corpus generated here at run time (nothing
# fetched, nothing committed). Prints one line per harness:
#   fuzz_policy: 123456 executions in 60 s, 0 crashes
# and exits non-zero if any harness found a crash, leak or UB report.
# Crash inputs are kept in build-fuzz/fuzz-out/NAME/.
set -euo pipefail

secs=${1:-60}
cd "$(dirname "$0")/../.."
root=$PWD
bdir=${FUZZ_BUILD:-$root/build-fuzz}

command -v clang >/dev/null || { echo "run.sh: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

if [ ! -f "$bdir/build.ninja" ]; then
	CC=clang CXX=clang++ meson setup "$bdir" -Dfuzz=enabled \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link -Dcpp_args=-fsanitize=fuzzer-no-link \
		-Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$bdir" tests/fuzz_policy tests/fuzz_embed tests/fuzz_blob tests/fuzz_usetok tests/fuzz_verify >/dev/null

out=$bdir/fuzz-out
rm -rf "$out"
mkdir -p "$out"

# ---- seed corpora, generated now ----
seed() { mkdir -p "$out/$1/corpus"; printf '%b' "$3" >"$out/$1/corpus/$2"; }
seed fuzz_policy empty ''
seed fuzz_policy thr 'threshold: 0.95\n'
seed fuzz_policy full 'threshold: 0.9\nttl: 30d\nttl_mode: sliding\nquota: {entries: 100, bytes: 1MiB}\neviction: lfu\ncache: true\ncontext: ignore\nlimits: {query_bytes: 16KiB, response_bytes: 1MiB}\nhnsw: {m: 16, ef_construction: 80, ef_search: 32}\nembedder: builtin\n'
seed fuzz_policy nested 'limits:\n  query_bytes: 512KB\n  response_bytes: 2GiB\n# comment\n'
seed fuzz_policy bad 'threshold: [1, 2\nttl: -5s\n&a b: *a\n'
seed fuzz_policy shell 'embedder: "$(rm -rf /)"\nttl: `id`\n'
seed fuzz_policy deep 'quota: {entries: [[[[[[1]]]]]]}\na:\n b:\n  c:\n   d:\n    e: 1\n'
seed fuzz_policy anchors 'threshold: &t 0.5\nadaptive: {high: *t}\nquota: &q {entries: 3}\nlimits: *q\n'
seed fuzz_policy quoted 'http: {model: "a # b", url: "http://x/[y]"}\nembedder: "model2vec:/m d/x: y"\n'
seed fuzz_embed q1 'how do I reverse a list in python'
seed fuzz_embed q2 '  HOW do I   reverse\ta list in Python  \n'
seed fuzz_embed bin '\x00\xff\xfe\x80abc\xc3\x28 \xe2\x82\x28 1234567890 Barack Obama'
seed fuzz_embed long "$(printf 'word%d ' $(seq 1 400))"
seed fuzz_blob raw 'SCB1\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00hello'
seed fuzz_blob valid '\x01\x00a valid payload'
seed fuzz_blob flip '\x01\x83a damaged payload'
seed fuzz_blob cut '\x01\xc1a cut payload that is long enough'
seed fuzz_blob short 'SCB'
seed fuzz_usetok q1 'What is the best way to learn Python programming?'
seed fuzz_usetok colon 'a:b :: 10:30 http://x.com:8080/ :)'
seed fuzz_usetok nfkc '\xef\xac\x81 \xc2\xbd \xef\xbc\xa8 \xe2\x91\xa0 e\xcc\x81 \xea\xb0\x80 \xef\xb7\xba'
seed fuzz_usetok cjk '\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xe2\x96\x81'
seed fuzz_usetok bad '\xff\xc3\x28\xe2\x82\x28\xed\xa0\x80\xf4\x90\x80\x80\xf0\x9f\x98\x00\ttab\n'
seed fuzz_verify pair 'How do I learn Python?\x00What is the best way to learn Python?'
seed fuzz_verify nums 'I have Rs. 5,000 and 3.5 kg\x00I have Rs. 4000 in 2024'
seed fuzz_verify cjk '\xe4\xbb\x80\xe4\xb9\x88\xe6\x98\xaf\xe7\x88\xb1\x00\xe5\xa6\x82\xe4\xbd\x95 don\xe2\x80\x99t'
seed fuzz_verify long "$(printf 'word%d ' $(seq 1 400))"
# the installed model's vocabulary when tools/fetch-model.sh has run
if [ -z "${SEMCACHE_USE_LITE_DIR:-}" ] && [ -f "$root/.models/model-embeddings-en-0.2.0/vocab.json" ]; then
	export SEMCACHE_USE_LITE_DIR=$root/.models/model-embeddings-en-0.2.0
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
for h in fuzz_policy fuzz_embed fuzz_blob fuzz_usetok fuzz_verify; do
	log=$out/$h/log
	rc=0
	"$bdir/tests/$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$out/$h/" "$out/$h/corpus" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	crashes=$(find "$out/$h" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' -o -maxdepth 1 -name 'timeout-*' | wc -l)
	echo "$h: ${execs:-0} executions in $secs s, $crashes crashes (exit $rc)"
	if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
		fail=1
		grep -m 20 -E 'ERROR|runtime error|fuzz_[a-z]+: ' "$log" >&2 || tail -n 30 "$log" >&2
	fi
done
exit "$fail"
