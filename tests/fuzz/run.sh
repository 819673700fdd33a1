#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (the protocol layer: framing and dispatch; what
# the server reads from a sandbox: channel) and
# runs each for a bounded time from the checked-in seed corpus. A crash leaves its input
# in the work directory; turn it into a regression test before fixing.
# Usage: run.sh SOURCE_DIR WORK_DIR SECONDS_PER_TARGET
# Each source is compiled once (the targets share most of theirs), two at a time
# (PYCELL_FUZZ_JOBS), then each target is linked and fuzzed in turn.
set -euo pipefail
src=$1 work=$2 seconds=${3:-30}
jobs=${PYCELL_FUZZ_JOBS:-2}
mkdir -p "$work/obj"
nlohmann_include=$(dirname "$(dirname "$(find /usr/include -path '*nlohmann/json.hpp' | head -1)")")
common_sources=(src/protocol/untrusted_json.cc src/process/log.cc)
protocol_sources=(src/protocol/framing.cc src/protocol/jsonrpc.cc src/protocol/dispatcher.cc "${common_sources[@]}")
channel_sources=(src/exec/result_channel.cc src/exec/activity.cc "${common_sources[@]}")
flags=(-std=c++2b -O1 -gline-tables-only -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$src/include" -I"$nlohmann_include")
object() { local o=${1//\//_}; echo "$work/obj/${o%.cc}.o"; }

# Every source any target needs, once.
mapfile -t all < <(printf '%s\n' tests/fuzz/{framing,dispatch,channel}_fuzz.cc \
                     "${protocol_sources[@]}" "${channel_sources[@]}" | sort -u)
pids=() failed=0
for s in "${all[@]}"; do
  clang++ "${flags[@]}" -c "$src/$s" -o "$(object "$s")" & pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if [ "$failed" -ne 0 ]; then echo "fuzzing: the targets did not compile"; exit 1; fi

for target in framing dispatch channel; do
  bin=$work/${target}_fuzz
  if [ "$target" = channel ]; then sources=("${channel_sources[@]}"); else sources=("${protocol_sources[@]}"); fi
  objects=("$(object "tests/fuzz/${target}_fuzz.cc")")
  for s in "${sources[@]}"; do objects+=("$(object "$s")"); done
  clang++ "${flags[@]}" "${objects[@]}" -o "$bin"
  corpus=$work/corpus-$target
  mkdir -p "$corpus"
  cp -n "$src/tests/fuzz/corpus/$target/"* "$corpus/" 2>/dev/null || true
  echo "== $target: fuzzing for ${seconds}s"
  log=$work/$target.log
  status=0
  (cd "$work" && "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=1024 \
      -print_final_stats=1 "$corpus" >"$log" 2>&1) || status=$?
  grep -E '^(INFO: Seed|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzzing: $target CRASHED (exit $status); the input is in $work (crash-*); log: $log"
    tail -40 "$log"
    exit 1
  fi
done
echo "fuzzing: no crash"
