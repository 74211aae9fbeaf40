#!/usr/bin/env bash
# Makes the update-alternatives links an arm64 root made by `mmdebstrap --variant=extract` lacks: extract
# runs no maintainer scripts, and BLAS/LAPACK (OpenCV -> GDAL -> armadillo/arpack) reach their sonames only
# through those links. Creates the ones the reference BLAS's scripts would, where the library is there.
#
#   bash scripts/arm64-alternatives.sh ROOT
set -euo pipefail
root=${1:?usage: $0 ROOT}
libdir="$root/usr/lib/aarch64-linux-gnu"
for lib in blas/libblas.so.3 lapack/liblapack.so.3; do
  if [[ -e $libdir/$lib && ! -e $libdir/${lib#*/} ]]; then ln -s "$lib" "$libdir/${lib#*/}"; fi
done
