#!/usr/bin/env bash
# One command from a clean checkout to an aarch64 build: installs the cross toolchain and the arm64 sysroot
# (scripts/setup-cross-arm64.sh, as root), then configures and builds the runtime side of vapipe
# (VAPIPE_RUNTIME_ONLY: core, infer, compiler, vision, models, their tests and the vapipe CLI without `run`).
#
#   bash scripts/build-arm64.sh        -> build-arm64/apps/vapipe/vapipe (aarch64)
#
# Environment (optional):
#   ARM64_BUILD_DIR=build-arm64   build folder
#   VAPIPE_WERROR=ON|OFF          warnings as errors (CI: ON)
#   VAPIPE_SKIP_APT=1             the toolchain and sysroot are there already
#   VAPIPE_ARM64_SYSROOT, VAPIPE_CMAKE_ARGS   as in setup-cross-arm64.sh / setup.sh
#   ARM64_TARGETS="a b"           build only these targets (CI: the CLI and the core and runtime tests)
# ccache, when installed, is the compiler launcher: a second build on the same machine (CI reruns, a
# developer's edits) recompiles only what changed. Its cache is keyed by the compiler's output, so a stale
# entry cannot be used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${ARM64_BUILD_DIR:-build-arm64}
log() { printf '[build-arm64] %s\n' "$*" >&2; }

if [[ ${VAPIPE_SKIP_APT:-0} != 1 ]]; then bash scripts/setup-cross-arm64.sh; fi

cmake_args=(-S . -B "$build_dir" -G Ninja --toolchain cmake/toolchains/aarch64-linux-gnu.cmake
  -DCMAKE_BUILD_TYPE=Release -DVAPIPE_RUNTIME_ONLY=ON -DVAPIPE_BUILD_BENCH=OFF
  -DVAPIPE_WERROR="${VAPIPE_WERROR:-OFF}")
if [[ -n ${VAPIPE_ARM64_SYSROOT:-} ]]; then cmake_args+=(-DVAPIPE_ARM64_SYSROOT="$VAPIPE_ARM64_SYSROOT"); fi
if command -v ccache >/dev/null 2>&1; then
  cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
if [[ -n ${VAPIPE_CMAKE_ARGS:-} ]]; then
  # shellcheck disable=SC2206  # word splitting of the extra arguments is intended
  cmake_args+=(${VAPIPE_CMAKE_ARGS})
fi
log "cmake ${cmake_args[*]}"
cmake "${cmake_args[@]}"
# shellcheck disable=SC2206  # word splitting of the target list is intended
targets=(${ARM64_TARGETS:-})
build_args=(--build "$build_dir" -j "$(nproc)")
((${#targets[@]} == 0)) || build_args+=(--target "${targets[@]}")
log "cmake ${build_args[*]}"
cmake "${build_args[@]}"
log "done: $build_dir/apps/vapipe/vapipe (aarch64; run it with qemu-aarch64 -L <sysroot>, or on the box)"
