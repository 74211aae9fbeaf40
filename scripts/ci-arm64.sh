#!/usr/bin/env bash
# CI for aarch64 (issue 7), after the x86 build ($BUILD_DIR, default build/) exists: cross-builds the runtime
# side (scripts/build-arm64.sh), runs its unit tests under qemu-aarch64 (ctest through the toolchain's
# CMAKE_CROSSCOMPILING_EMULATOR), compares `vapipe detect` on real photos between x86 and aarch64 with the
# same x86-compiled package (tests/apps/arm64_detect_test.cpp), then packs the tarball and runs it in a
# Debian 12 arm64 root that holds only the packages the tarball lists.
#
#   bash scripts/ci-arm64.sh        (as root; a fresh Debian 12 x86-64 machine with ../shared/models)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ARM64_BUILD_DIR=${ARM64_BUILD_DIR:-build-arm64}
build_dir=${BUILD_DIR:-build}
sysroot=${VAPIPE_ARM64_SYSROOT:-/opt/vapipe-arm64-sysroot}
box=${VAPIPE_ARM64_BOX:-/opt/vapipe-arm64-box}
emulator="qemu-aarch64 -L $sysroot"
start=$SECONDS
step() { printf '\n---- arm64: %s (%ds)\n' "$*" "$((SECONDS - start))"; }
die() { printf '[ci-arm64] error: %s\n' "$*" >&2; exit 1; }
[[ -x $build_dir/apps/vapipe/vapipe ]] || die "$build_dir/apps/vapipe/vapipe missing: the x86 build comes first (scripts/setup.sh)"

step "toolchain, sysroot, cross build (VAPIPE_WERROR=ON)"
VAPIPE_WERROR=ON bash scripts/build-arm64.sh

step "runtime unit tests under qemu-aarch64"
# No per-test timing assertions here: the emulator is 10-50x slower than the host.
ctest --test-dir "$ARM64_BUILD_DIR" --output-on-failure --timeout 900

step "vapipe detect: aarch64 (qemu) against x86, same package"
cmake --build "$build_dir" --target arm64_detect_tests
VAPIPE_ARM64_CLI=$PWD/$ARM64_BUILD_DIR/apps/vapipe/vapipe VAPIPE_ARM64_EMULATOR=$emulator \
  ctest --test-dir "$build_dir" -R '^Arm64Detect\.' --output-on-failure --no-tests=error

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
  printf '%s' "$packages" >"$box/.vapipe-packages"
fi
rm -rf "$box/opt/vapipe" && mkdir -p "$box/opt/vapipe"
tar -C "$box/opt/vapipe" --strip-components=1 -xzf "$tarball"
detections=$(qemu-aarch64 -L "$box" "$box/opt/vapipe/bin/vapipe" detect "$box/opt/vapipe/models/yolofastestv2.vpk" \
  /usr/share/doc/opencv-doc/examples/data/messi5.jpg --json)
grep -q '"label":"person"' <<<"$detections" || die "the packaged vapipe found no person in messi5.jpg: $detections"
echo "packaged vapipe in the arm64 root: $detections"

step "done"
