#!/usr/bin/env bash
# CI for aarch64 (issue 7), after the x86 build ($BUILD_DIR, default build/) exists: cross-builds the runtime
# side (scripts/build-arm64.sh), runs its unit tests under qemu-aarch64 (ctest through the toolchain's
# CMAKE_CROSSCOMPILING_EMULATOR), compares `vapipe detect` on real photos between x86 and aarch64 with the
# same x86-compiled package (tests/apps/arm64_detect_test.cpp), then packs the tarball and runs it in a
# Debian 12 arm64 root that holds only the packages the tarball lists.
#
#   bash scripts/ci-arm64.sh [--full] [--build-only]   (as root; a fresh Debian 12 x86-64 machine with
#                                                       ../shared/models)
#
# --build-only stops after the cross build: .ci/run builds it in the background while the x86 tests run,
# then runs this script again, which finds nothing left to build.
# CI (the default) is bounded for a fresh 2-core machine: it cross-builds the CLI and the core and runtime
# (infer) test suites only, runs those under qemu less the whole-YOLOv5n accuracy tests (2.5 to 8+ minutes
# each under qemu: the reference executor and the emulated runtime both run YOLOv5n at 640; measured
# 2026-12-02 on a 2-core Zen 3), YOLO-FastestV2's whole-model tests and the int8 YOLO test among what runs,
# and one detect comparison (FP32) against x86. --full builds every runtime suite (vision and models too)
# and runs them all, both detect comparisons included (over 40 minutes).
# The cross build uses ccache when installed (scripts/build-arm64.sh): on a machine that ran it before, only
# what changed is recompiled; the sysroot is reused while its package list is unchanged.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ARM64_BUILD_DIR=${ARM64_BUILD_DIR:-build-arm64}
build_dir=${BUILD_DIR:-build}
sysroot=${VAPIPE_ARM64_SYSROOT:-/opt/vapipe-arm64-sysroot}
box=${VAPIPE_ARM64_BOX:-/opt/vapipe-arm64-box}
emulator="qemu-aarch64 -L $sysroot"
full=0
build_only=0
for arg in "$@"; do
  case $arg in
    --full) full=1 ;;
    --build-only) build_only=1 ;;
    *) echo "usage: $0 [--full] [--build-only]" >&2; exit 2 ;;
  esac
done
start=$SECONDS
step() { printf '\n---- arm64: %s (%ds)\n' "$*" "$((SECONDS - start))"; }
die() { printf '[ci-arm64] error: %s\n' "$*" >&2; exit 1; }
[[ -x $build_dir/apps/vapipe/vapipe ]] || die "$build_dir/apps/vapipe/vapipe missing: the x86 build comes first (scripts/setup.sh)"

step "toolchain, sysroot, cross build (VAPIPE_WERROR=ON)"
if ((full)); then
  VAPIPE_WERROR=ON bash scripts/build-arm64.sh
else
  VAPIPE_WERROR=ON ARM64_TARGETS="vapipe core_tests infer_tests" bash scripts/build-arm64.sh
fi
if ((build_only)); then
  step "built (--build-only)"
  exit 0
fi

step "runtime unit tests under qemu-aarch64"
# No per-test timing assertions here: the emulator is 10-50x slower than the host.
slow_under_qemu='^ModelAccuracy\.(YoloV5n|Fp16Export|DynamicShape)'
ctest_args=(--test-dir "$ARM64_BUILD_DIR" --output-on-failure --timeout 900 -j "$(nproc)")
# A suite left unbuilt registers one <suite>_NOT_BUILT test (gtest_discover_tests): not a failure here.
((full)) || ctest_args+=(-E "$slow_under_qemu|_NOT_BUILT\$")
ctest "${ctest_args[@]}"

step "vapipe detect: aarch64 (qemu) against x86, same package"
cmake --build "$build_dir" --target arm64_detect_tests
VAPIPE_ARM64_CLI=$PWD/$ARM64_BUILD_DIR/apps/vapipe/vapipe VAPIPE_ARM64_EMULATOR=$emulator \
  ctest --test-dir "$build_dir" -R "$( ((full)) && echo '^Arm64Detect\.' || echo '^Arm64Detect\.Fp32')" \
  --output-on-failure --no-tests=error

step "package, and run it in an arm64 root holding only the packages it lists"
models=${VAPIPE_MODELS:-../shared/models}
package=$ARM64_BUILD_DIR/yolofastestv2.vpk
"$build_dir/apps/vapipe/vapipe" compile "$models/yolofastestv2.onnx" -o "$package"
bash scripts/package-arm64.sh "$package" -o "$ARM64_BUILD_DIR/dist"
tarball=$(ls "$ARM64_BUILD_DIR"/dist/vapipe-*-aarch64.tar.gz)
packages=$(tar -xzOf "$tarball" --wildcards '*/debian-packages.txt' | tr '\n' ',' | sed 's/,$//')
# The box: what apt-get install of debian-packages.txt gives a bare Debian 12 arm64 (made once per list).
if [[ ! -f $box/.vapipe-packages || $(cat "$box/.vapipe-packages") != "$packages" ]]; then
  rm -rf "$box"
  mmdebstrap --quiet --variant=extract --architectures=arm64 --include="$packages" bookworm "$box" \
    "deb ${VAPIPE_DEBIAN_MIRROR:-http://deb.debian.org}/debian bookworm main" \
    "deb ${VAPIPE_DEBIAN_MIRROR:-http://deb.debian.org}/debian-security bookworm-security main"
  bash scripts/arm64-alternatives.sh "$box"  # what apt-get's maintainer scripts would have linked
  printf '%s' "$packages" >"$box/.vapipe-packages"
fi
rm -rf "$box/opt/vapipe" && mkdir -p "$box/opt/vapipe"
tar -C "$box/opt/vapipe" --strip-components=1 -xzf "$tarball"
detections=$(qemu-aarch64 -L "$box" "$box/opt/vapipe/bin/vapipe" detect "$box/opt/vapipe/models/yolofastestv2.vpk" \
  /usr/share/doc/opencv-doc/examples/data/messi5.jpg --json)
# COCO class 0 is a person (yolofastestv2.onnx carries no class names, so labels are the ids).
grep -q '"class_id":0,' <<<"$detections" || die "the packaged vapipe found no person in messi5.jpg: $detections"
echo "packaged vapipe in the arm64 root: $detections"

step "done"
