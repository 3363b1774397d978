#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang in their own build directory
# and runs each for a bounded time from its seed corpus. Fails when a target crashes, leaks,
# times out or trips a sanitizer; the input that did it is left in the build directory.
#
#   scripts/fuzz.sh                    every target, BITFUSION_FUZZ_SECONDS (default 8) each
#   scripts/fuzz.sh tar plan           those targets only
#   BITFUSION_FUZZ_RUNS=10000000 BITFUSION_FUZZ_SECONDS=3600 scripts/fuzz.sh tar
#                                      stops at that many executions or that time, the first
#   BITFUSION_FUZZ_WORKERS=16 ...      that many libFuzzer processes per target at once on one
#                                      corpus, each with RUNS/WORKERS executions; the count
#                                      printed is their sum
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BITFUSION_FUZZ_DIR:-$root/build-fuzz}
seconds=${BITFUSION_FUZZ_SECONDS:-8}
runs=${BITFUSION_FUZZ_RUNS:-}
jobs=${BITFUSION_FUZZ_JOBS:-$(nproc)}
workers=${BITFUSION_FUZZ_WORKERS:-1}

CC=${BITFUSION_FUZZ_CC:-clang} CXX=${BITFUSION_FUZZ_CXX:-clang++} \
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITFUSION_FUZZ=ON \
  -DBITFUSION_BUILD_TESTS=OFF -DBITFUSION_BUILD_BENCHMARKS=OFF -DBITFUSION_BUILD_EXAMPLES=OFF \
  -DBITFUSION_BUILD_CLI=OFF -DBITFUSION_WITH_POSTGRES=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target bitfusion_fuzz_targets

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*_fuzzer.cc; do t=${f#fuzz/}; targets+=("${t%_fuzzer.cc}"); done
fi

failed=()
scratches=()
trap 'rm -rf "${scratches[@]}"' EXIT
for t in "${targets[@]}"; do
  exe="$build/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  # New inputs go to the build directory's corpus; the committed seeds are read only.
  work="$build/corpus/$t" artifacts="$build/artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit+=(-runs="$(((runs + workers - 1) / workers))")
  rm -f "$build/fuzz-$t".*.log
  start=$(date +%s)
  pids=()
  for w in $(seq 1 "$workers"); do
    log="$build/fuzz-$t.log"
    [ "$workers" -gt 1 ] && log="$build/fuzz-$t.$w.log"
    # The targets' scratch trees (procfs, cgroup, tar), removed below whatever way the run ends.
    # TMPDIR too: fingerprint's RemoteTree makes and removes a tree there on every input, three
    # times faster on tmpfs than on an ext4 /tmp.
    scratch=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp )/bitfusion-fuzz.XXXXXX")
    scratches+=("$scratch")
    TMPDIR=$scratch BITFUSION_FUZZ_SCRATCH=$scratch ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
      "$exe" "${limit[@]}" "${dict[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "fuzz/corpus/$t" \
      >"$log" 2>&1 &
    pids+=($!)
  done
  bad=0
  for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
  logs=("$build/fuzz-$t.log")
  [ "$workers" -gt 1 ] && logs=("$build/fuzz-$t".*.log)
  if [ "$bad" -eq 0 ]; then
    execs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s}' "${logs[@]}")
    printf 'fuzz: %-20s ok   %10s executions in %ss\n' "$t" "${execs:-?}" "$(($(date +%s) - start))"
  else
    printf 'fuzz: %-20s FAILED (log %s, input in %s)\n' "$t" "${logs[*]}" "$artifacts"
    grep -h -E 'ERROR:|SUMMARY:|runtime error' "${logs[@]}" | head -5 || true
    failed+=("$t")
  fi
  rm -rf "${scratches[@]}"
  scratches=()
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
