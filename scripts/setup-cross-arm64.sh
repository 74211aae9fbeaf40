#!/usr/bin/env bash
# Installs what cross-compiling vapipe for aarch64 (arm64) needs on a Debian 12 x86-64 host, as root:
#   - on the host: Debian's cross compilers (gcc/g++-aarch64-linux-gnu), qemu-user (runs arm64 programs, and
#     so the tests, on the host) and mmdebstrap;
#   - an arm64 sysroot built by mmdebstrap from Debian 12's arm64 packages: the -dev packages of the runtime
#     side of vapipe (oneDNN, ONNX, protobuf, OpenCV, fmt, spdlog, GoogleTest, ...).
# Why a sysroot and not multiarch (dpkg --add-architecture arm64): libopencv-imgcodecs406 needs libgdal32,
# which is not Multi-Arch: same, so apt can only install OpenCV's arm64 -dev packages by removing the host's
# OpenCV (it proposes exactly that). A sysroot leaves the host's packages alone; the toolchain file
# (cmake/toolchains/aarch64-linux-gnu.cmake) and qemu (-L) point into it.
#
#   bash scripts/setup-cross-arm64.sh
#
# Environment (optional):
#   VAPIPE_ARM64_SYSROOT=/opt/vapipe-arm64-sysroot   where the sysroot goes (rebuilt when the package list changes)
#   VAPIPE_DEBIAN_MIRROR=http://deb.debian.org       mirror of debian/ and debian-security/
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
sysroot=${VAPIPE_ARM64_SYSROOT:-/opt/vapipe-arm64-sysroot}
mirror=${VAPIPE_DEBIAN_MIRROR:-http://deb.debian.org}

log() { printf '[setup-cross-arm64] %s\n' "$*" >&2; }
die() { printf '[setup-cross-arm64] error: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (apt-get and mmdebstrap install packages)"

host_packages=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user mmdebstrap ccache)
# What the runtime-side build (VAPIPE_RUNTIME_ONLY=ON) links, as arm64 packages. libopencv-dev is the one
# package that ships OpenCVConfig.cmake, so it comes with all of OpenCV's modules although vapipe links three.
sysroot_packages=(
  libc6-dev libstdc++-12-dev libgomp1
  libdnnl-dev ocl-icd-opencl-dev opencl-headers
  libonnx-dev libprotobuf-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev zlib1g-dev
  libopencv-dev
  libgtest-dev libgmock-dev
)

missing=()
for package in "${host_packages[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true) == installed ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache policy "${missing[@]}" 2>/dev/null | grep -q 'Candidate: [^(]' || apt-get update -q
  log "apt-get install ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The sysroot is made once per package list: a stamp file holds the list it was made from.
stamp="$sysroot/.vapipe-packages"
wanted="${sysroot_packages[*]}"
if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
  log "sysroot $sysroot up to date"
else
  log "mmdebstrap arm64 sysroot into $sysroot: ${sysroot_packages[*]}"
  rm -rf "$sysroot"
  # extract: unpack the packages only (no maintainer scripts, so no arm64 code runs); the sysroot is a
  # library tree for the compiler and qemu, never booted.
  mmdebstrap --quiet --variant=extract --architectures=arm64 \
    --include="$(IFS=,; echo "${sysroot_packages[*]}")" \
    bookworm "$sysroot" \
    "deb $mirror/debian bookworm main" \
    "deb $mirror/debian bookworm-updates main" \
    "deb $mirror/debian-security bookworm-security main"
  # Debian's -dev packages link libfoo.so -> /usr/lib/... with absolute symlinks; inside a sysroot those
  # point at the host's (x86-64) files. Make them relative so the linker stays in the sysroot.
  find "$sysroot" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
  done
  bash scripts/arm64-alternatives.sh "$sysroot"
  printf '%s' "$wanted" >"$stamp"
fi
log "done: cmake -B build-arm64 --toolchain cmake/toolchains/aarch64-linux-gnu.cmake -DVAPIPE_RUNTIME_ONLY=ON"
