#!/usr/bin/env bash
# Runs the test suite several times beside busy loops that take cores away, and tallies the tests that
# failed in any run: a test that fails under load is a defect (docs/reliability.md, "CI").
#
#   bash scripts/flake-hunt.sh [--runs N] [--load N] [extra ctest arguments, e.g. -R Pipeline]
#
#   --runs N   runs of the suite (default 5)
#   --load N   busy loops beside it (default 2: as many as CI's cores, so every test thread waits for one)
# Environment: BUILD_DIR (default build), CTEST_PARALLEL (default 2). The build must exist (scripts/test.sh).
# Logs: $BUILD_DIR/flake-hunt/run-<i>.log. Exit status 1 when any test failed in any run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
runs=5
load=2
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --load) load=$2; shift 2 ;;
    *) break ;;
  esac
done
[[ -f $BUILD_DIR/CTestTestfile.cmake ]] || { echo "flake-hunt: no build in $BUILD_DIR (bash scripts/test.sh)" >&2; exit 2; }

busy=()
stop_load() { ((${#busy[@]} == 0)) || kill "${busy[@]}" 2>/dev/null || true; }
trap stop_load EXIT
for ((i = 0; i < load; ++i)); do
  sh -c 'while :; do :; done' &
  busy+=($!)
done

logs=$BUILD_DIR/flake-hunt
mkdir -p "$logs"
declare -A failures=()
for ((run = 1; run <= runs; ++run)); do
  started=$SECONDS
  status=0
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${CTEST_PARALLEL:-2}" "$@" >"$logs/run-$run.log" 2>&1 ||
    status=$?
  # ctest's summary: "  123 - Suite.Name (Failed)" lines after "The following tests FAILED:"; a
  # parameterized test's name is followed by its "# GetParam() = ..." comment before the "(Failed)".
  mapfile -t failed < <(sed -n '/The following tests FAILED:/,$p' "$logs/run-$run.log" |
    sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) .*(.*)$/\1/p')
  # A failing ctest whose summary names no test (a crash of ctest itself, a bad argument) still counts.
  if ((status != 0 && ${#failed[@]} == 0)); then failed=("ctest-exit-$status"); fi
  for test in "${failed[@]}"; do failures[$test]=$((${failures[$test]:-0} + 1)); done
  printf 'flake-hunt: run %d/%d beside %d busy loop(s): %d s, ctest exit %d, %d failed%s\n' "$run" "$runs" "$load" \
    "$((SECONDS - started))" "$status" "${#failed[@]}" "$( ((${#failed[@]})) && printf ': %s' "${failed[*]}")"
done

if ((${#failures[@]} == 0)); then
  echo "flake-hunt: no test failed in $runs runs"
  exit 0
fi
echo "flake-hunt: failures per test over $runs runs (logs in $logs/):"
for test in "${!failures[@]}"; do printf '  %d  %s\n' "${failures[$test]}" "$test"; done | sort -rn
exit 1
