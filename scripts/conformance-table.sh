#!/usr/bin/env bash
# Runs the ONNX conformance suite (tests/ops, Debian's libonnx-testdata) once over every claimed operator and
# prints its per-operator markdown table: the table of docs/compiler.md, "ONNX conformance".
#
#   bash scripts/conformance-table.sh [> table.md]
#
# Environment: BUILD_DIR (default build). Builds onnx_conformance_tests first. The test log goes to stderr
# only when the suite fails (a claimed operator failed a test); the table is printed either way.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  echo "conformance-table: $BUILD_DIR is not configured (bash scripts/setup.sh)" >&2
  exit 1
fi
if [[ ! -d /usr/share/libonnx-testdata/data ]]; then
  echo "conformance-table: /usr/share/libonnx-testdata/data not found (apt-get install libonnx-testdata)" >&2
  exit 1
fi
cmake --build "$BUILD_DIR" --target onnx_conformance_tests >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
VAPIPE_CONFORMANCE_TABLE="$work/table.md" "$BUILD_DIR/tests/ops/onnx_conformance_tests" >"$work/log" 2>&1 || status=$?
if ((status != 0)); then
  cat "$work/log" >&2
  echo "conformance-table: the suite failed (exit $status); the table below shows which tests" >&2
fi
[[ -s $work/table.md ]] || { echo "conformance-table: no table written" >&2; exit 1; }
cat "$work/table.md"
exit "$status"
