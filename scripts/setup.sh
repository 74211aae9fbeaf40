#!/usr/bin/env bash
# Installs every dependency of vapipe from Debian 12's packages, configures and builds it, and installs the
# benchmark's npm packages. Idempotent: a second run installs nothing and only rebuilds what changed.
#
#   bash scripts/setup.sh
#
# Environment (all optional):
#   BUILD_DIR=build               build folder
#   CMAKE_BUILD_TYPE=Release      build type
#   VAPIPE_WERROR=ON|OFF          forwarded as -DVAPIPE_WERROR (CI turns it on)
#   VAPIPE_SANITIZE=address|thread, VAPIPE_BUILD_TESTS, VAPIPE_BUILD_BENCH: forwarded likewise
#   VAPIPE_CMAKE_ARGS="..."       extra cmake arguments, word-split
#   VAPIPE_SKIP_APT=1             do not touch apt (dependencies already present)
#   VAPIPE_SKIP_BUILD=1           install dependencies only
#   VAPIPE_SKIP_NPM=1             do not install the npm packages (benchmark, browser test)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [[ -t 2 ]]; then c_info=$'\033[1;34m' c_err=$'\033[1;31m' c_off=$'\033[0m'; else c_info='' c_err='' c_off=''; fi
log() { printf '%s[setup]%s %s\n' "$c_info" "$c_off" "$*" >&2; }
die() { printf '%s[setup] error:%s %s\n' "$c_err" "$c_off" "$*" >&2; exit 1; }

# Debian 12 package names (each checked with `apt-cache policy` on bookworm).
packages=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev libonnx-dev libprotobuf-dev protobuf-compiler
  # The ONNX backend conformance suite (node, pytorch-converted, pytorch-operator tests) of tests/ops.
  libonnx-testdata
  # Debian's dnnl-config.cmake looks for OpenCL (its GPU runtime) and fails without these on a fresh machine.
  ocl-icd-opencl-dev opencl-headers
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopencv-dev opencv-doc zlib1g-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
  libgstrtspserver-1.0-dev gstreamer1.0-rtsp gstreamer1.0-tools gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # src/server: HTTP/WebSocket (Boost.Beast), MQTT (libmosquitto); tests start mosquitto and chromium.
  libboost1.81-dev libmosquitto-dev mosquitto mosquitto-clients chromium
  clang-format clang-tidy
  # scripts/fuzz.sh: libFuzzer comes with clang's runtime (libclang_rt.fuzzer-x86_64.a, only Recommended
  # by clang-14, so named here).
  clang libclang-rt-14-dev
  # The ASan+UBSan build is clang's (scripts/sanitize.sh): its OpenMP runtime (only Recommended by clang-14).
  libomp-14-dev
  # The linker of every build (cmake/options.cmake, VAPIPE_USE_LLD): links 2-4x faster than GNU ld.
  lld
  ffmpeg
  # --cluster (docs/cluster.md): the etcd store nodes coordinate through; tests start a real etcd.
  etcd-server etcd-client
  # scripts/soak.sh: its RTSP camera (scripts/soak_camera.py) is gst-rtsp-server through Debian's python3.
  python3-gi gir1.2-gst-rtsp-server-1.0
  # The Python module (python/, docs/python.md) and its tests; python3-torch lets vapipe.compile take a
  # torch.nn.Module.
  python3-dev python3-pybind11 python3-numpy python3-pytest python3-torch
)
# Node.js: a machine may already carry a newer Node.js (e.g. NodeSource's, which bundles npm and conflicts with
# Debian's npm package); only install Debian's when the commands are missing.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

install_packages() {
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install as root: apt-get install ${*}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they are missing, older than a day, or lack a candidate we need.
  local need_update=0
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
     [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin +1440 -print -quit) ]]; then
    need_update=1
  else
    local package
    for package in "$@"; do
      if ! apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [^(]'; then need_update=1; break; fi
    done
  fi
  if ((need_update)); then
    log "apt-get update"
    "${sudo[@]}" apt-get update -q
  fi
  log "apt-get install ${*}"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
}

if [[ ${VAPIPE_SKIP_APT:-0} != 1 ]]; then
  missing=()
  for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$package")
  done
  if ((${#missing[@]})); then
    install_packages "${missing[@]}"
  else
    log "all ${#packages[@]} Debian packages already installed"
  fi
fi

if [[ ${VAPIPE_SKIP_BUILD:-0} != 1 ]]; then
  cmake_args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}")
  for option in VAPIPE_WERROR VAPIPE_SANITIZE VAPIPE_BUILD_TESTS VAPIPE_BUILD_BENCH; do
    if [[ -n ${!option+x} ]]; then cmake_args+=("-D$option=${!option}"); fi
  done
  if [[ -n ${VAPIPE_CMAKE_ARGS:-} ]]; then
    # shellcheck disable=SC2206  # word splitting of the extra arguments is intended
    cmake_args+=(${VAPIPE_CMAKE_ARGS})
  fi
  # A build folder made by another generator cannot be reused with Ninja.
  if [[ -f $BUILD_DIR/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD_DIR/CMakeCache.txt"; then
    die "$BUILD_DIR was configured with another generator; remove it or set BUILD_DIR"
  fi
  log "cmake ${cmake_args[*]}"
  cmake "${cmake_args[@]}"
  log "cmake --build $BUILD_DIR"
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi

# npm ci in $1 unless its node_modules already holds exactly what the lock pins.
npm_ci_if_stale() {
  local dir=$1
  if [[ -f $dir/node_modules/.package-lock.json ]] && cmp -s <(node -e '
        const l = require(process.argv[1]).packages;
        for (const k of Object.keys(l).sort()) if (k) console.log(k, l[k].version)' "$PWD/$dir/package-lock.json") <(node -e '
        const l = require(process.argv[1]).packages;
        for (const k of Object.keys(l).sort()) if (k) console.log(k, l[k].version)' "$PWD/$dir/node_modules/.package-lock.json"); then
    log "$dir/node_modules up to date"
  else
    log "npm ci --ignore-scripts ($dir/)"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
}

if [[ ${VAPIPE_SKIP_NPM:-0} != 1 && -f bench/package-lock.json ]]; then
  # The lock pins onnxruntime-node, whose package ships the linux-x64 libonnxruntime; its install script only
  # fetches optional GPU binaries from outside the registry, so it is skipped.
  npm_ci_if_stale bench
fi
if [[ ${VAPIPE_SKIP_NPM:-0} != 1 && -f tests/web/package-lock.json ]]; then
  # The web viewer's browser test: playwright-core drives Debian's /usr/bin/chromium (it downloads no
  # browser; its install script has nothing to do).
  npm_ci_if_stale tests/web
fi

log "done: build in $BUILD_DIR/ (run: bash scripts/demo.sh, bash scripts/test.sh)"
if [[ -f $BUILD_DIR/python/vapipe/__init__.py ]]; then
  python_dir=$BUILD_DIR/python
  [[ $python_dir == /* ]] || python_dir=$PWD/$python_dir
  log "Python module: PYTHONPATH=$python_dir /usr/bin/python3 -c 'import vapipe' (docs/python.md)"
fi
