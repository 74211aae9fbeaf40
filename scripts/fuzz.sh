#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, -DVAPIPE_FUZZ=ON: clang, ASan+UBSan) and runs each on its corpus.
# Fails when a target reports a crash, a leak, undefined behaviour, a timeout or running out of memory;
# the input that did it is kept in $FUZZ_DIR/artifacts/<target>/ (replay: <build>/fuzz/<target>_fuzzer FILE).
#
#   bash scripts/fuzz.sh [--smoke] [--seconds N] [--jobs N] [--build-only] [target...]
#
#   --build-only  build the targets and stop (.ci/run builds them in the background while other checks run)
#   --smoke       CI: every target 10 s (targets: config package onnx sei demux; default all)
#   --seconds N   run each target N seconds (default 300)
#   --jobs N      parallel fuzzing processes per target (libFuzzer -fork), default 1
# Environment: FUZZ_BUILD_DIR (build-fuzz), FUZZ_DIR (scratch: $FUZZ_BUILD_DIR/fuzz-runs). New inputs found
# during a run stay in $FUZZ_DIR/corpus/<target>/; the seeds in fuzz/corpus/ are only read.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=300
jobs=1
build_only=0
targets=()
while (($#)); do
  case $1 in
    --smoke) seconds=10 ;;
    --seconds) seconds=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
((${#targets[@]})) || targets=(config package onnx sei demux)

build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
fuzz_dir=${FUZZ_DIR:-$build_dir/fuzz-runs}

start=$SECONDS
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  # Warnings are not errors here: the GCC build with VAPIPE_WERROR=ON is the warnings gate, and clang's
  # set differs (its -Wdouble-promotion also flags initializations); a warning must not stop a fuzz run.
  # Unity sources: the same code instrumented once per batch of files (CI's budget: 96 s instead of ~250 s
  # on a 2-core Zen 5, 2026-12-07; libFuzzer's coverage is per edge, not per file, so nothing is lost).
  # shellcheck disable=SC2086  # word splitting of the extra arguments is intended
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DVAPIPE_FUZZ=ON -DVAPIPE_BUILD_TESTS=OFF -DVAPIPE_BUILD_BENCH=OFF -DVAPIPE_WERROR=OFF \
    -DCMAKE_UNITY_BUILD=ON ${VAPIPE_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]/%/_fuzzer}"
echo "fuzz.sh: build took $((SECONDS - start)) s"
((build_only)) && exit 0

status=0
for target in "${targets[@]}"; do
  binary=$build_dir/fuzz/${target}_fuzzer
  corpus=$fuzz_dir/corpus/$target
  artifacts=$fuzz_dir/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536
           -print_final_stats=1 -artifact_prefix="$artifacts/")
  [[ -f fuzz/$target.dict ]] && options+=(-dict="fuzz/$target.dict")
  ((jobs > 1)) && options+=(-fork="$jobs" -ignore_crashes=0)
  log=$fuzz_dir/$target.log
  echo "fuzz.sh: $target for ${seconds}s (log $log)"
  # Leak checking is on (libFuzzer's default with ASan): a leak fails the run like a crash.
  if ! UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
      "$binary" "${options[@]}" "$corpus" "fuzz/corpus/$target" >"$log" 2>&1; then
    echo "fuzz.sh: $target FAILED; input kept in $artifacts/:" >&2
    ls -l "$artifacts" >&2
    grep -m 20 -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$log" >&2 || tail -n 40 "$log" >&2
    status=1
  else
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | tr '\n' ' '
    echo
  fi
done
echo "fuzz.sh: done in $((SECONDS - start)) s"
exit "$status"
