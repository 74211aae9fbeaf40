#!/usr/bin/env bash
# Builds vapipe (configuring it first if needed) and runs every registered test.
#
#   bash scripts/test.sh [extra ctest arguments, e.g. -R package]
#
# Environment: BUILD_DIR (default build), CTEST_PARALLEL (default 2); VAPIPE_MODELS names the models folder
# (default ../shared/models), read by the tests that need real models.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  # Not configured yet: configure and build without touching apt or npm.
  VAPIPE_SKIP_APT=1 VAPIPE_SKIP_NPM=1 BUILD_DIR=$BUILD_DIR bash scripts/setup.sh
else
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi

ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${CTEST_PARALLEL:-2}" "$@"
