#!/usr/bin/env bash
# Packs the aarch64 build into one tarball to copy onto an arm64 box (docs/deploy-arm64.md):
#   vapipe-<version>-aarch64/bin/vapipe              the CLI (vapipe's own code linked statically)
#   vapipe-<version>-aarch64/models/<name>.vpk        the model packages given (a .vpk is portable)
#   vapipe-<version>-aarch64/debian-packages.txt      the Debian 12 arm64 runtime packages it needs
#   vapipe-<version>-aarch64/install-deps.sh          apt-get installs them (on the box, as root)
# The shared libraries are not bundled: OpenCV's imgcodecs pulls GDAL, and its closure is ~130 libraries /
# ~150 MB, which apt on the box installs (and keeps patched) from the same Debian release the build used.
#
#   bash scripts/package-arm64.sh MODEL.vpk... [-o DIR]     -> DIR/vapipe-<version>-aarch64.tar.gz
#
# Environment: ARM64_BUILD_DIR=build-arm64.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${ARM64_BUILD_DIR:-build-arm64}
out_dir=.
models=()
while (($#)); do
  case $1 in
    -o) out_dir=$2; shift 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
die() { printf '[package-arm64] error: %s\n' "$*" >&2; exit 1; }
binary=$build_dir/apps/vapipe/vapipe
[[ -x $binary ]] || die "$binary missing: run scripts/build-arm64.sh first"
((${#models[@]})) || die "no model package given (compile one with the x86 build: vapipe compile MODEL.onnx -o MODEL.vpk)"
for model in "${models[@]}"; do [[ -f $model ]] || die "model package $model not found"; done

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build_dir/CMakeCache.txt")
name=vapipe-${version:-0}-aarch64
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/bin" "$stage/$name/models"
aarch64-linux-gnu-strip -o "$stage/$name/bin/vapipe" "$binary"
cp "${models[@]}" "$stage/$name/models/"

# The runtime packages of the libraries the binary links (DT_NEEDED), for Debian 12 (bookworm) arm64.
# Each soname must be listed here: an unknown one stops the packaging rather than ship a box that fails.
declare -A package_of=(
  [libdnnl.so.2]=libdnnl2 [libonnx.so.1]=libonnx1 [libonnx_proto.so.1]=libonnx1
  [libprotobuf.so.32]=libprotobuf32
  [libopencv_core.so.406]=libopencv-core406 [libopencv_imgproc.so.406]=libopencv-imgproc406
  [libopencv_imgcodecs.so.406]=libopencv-imgcodecs406
  [libfmt.so.9]=libfmt9 [libspdlog.so.1.10]=libspdlog1.10 [libz.so.1]=zlib1g [libgomp.so.1]=libgomp1
  [libstdc++.so.6]=libstdc++6 [libgcc_s.so.1]=libgcc-s1
  [libm.so.6]=libc6 [libc.so.6]=libc6 [ld-linux-aarch64.so.1]=libc6
)
mapfile -t needed < <(aarch64-linux-gnu-readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
packages=()
for soname in "${needed[@]}"; do
  [[ -n ${package_of[$soname]:-} ]] || die "$binary needs $soname, which scripts/package-arm64.sh does not map to a package"
  packages+=("${package_of[$soname]}")
done
printf '%s\n' "${packages[@]}" | sort -u >"$stage/$name/debian-packages.txt"
cat >"$stage/$name/install-deps.sh" <<'INSTALL'
#!/bin/sh
# Installs the Debian 12 (bookworm) arm64 libraries vapipe links; run as root on the box.
set -e
cd "$(dirname "$0")"
apt-get update
# shellcheck disable=SC2046  # one package a line
apt-get install -y --no-install-recommends $(cat debian-packages.txt)
INSTALL
chmod +x "$stage/$name/install-deps.sh"

mkdir -p "$out_dir"
tarball=$out_dir/$name.tar.gz
tar -C "$stage" -czf "$tarball" "$name"
printf '[package-arm64] %s: %s bytes (binary %s bytes, models %s bytes); needs %s\n' "$tarball" \
  "$(stat -c %s "$tarball")" "$(stat -c %s "$stage/$name/bin/vapipe")" \
  "$(du -cb "$stage/$name/models"/* | tail -1 | cut -f1)" "$(tr '\n' ' ' <"$stage/$name/debian-packages.txt")" >&2
