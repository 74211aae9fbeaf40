#!/usr/bin/env bash
# The vapipe demo: compile YOLOv5n into a .vpk package, inspect it, detect objects on two sample images and
# time the runtime. Every step is one `step NAME COMMAND...` line below, so a later demo is one more line.
#
#   bash scripts/setup.sh && bash scripts/demo.sh
#
# Environment: BUILD_DIR (default build); VAPIPE_MODELS: folder with yolov5n.onnx (default ../shared/models);
# DEMO_IMAGES: folder with messi5.jpg and basketball1.png (default: opencv-doc's samples).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODELS=${VAPIPE_MODELS:-../shared/models}
IMAGES=${DEMO_IMAGES:-/usr/share/doc/opencv-doc/examples/data}
OUT=$BUILD_DIR/demo
VAPIPE=$BUILD_DIR/apps/vapipe/vapipe

if [[ -t 1 ]]; then bold=$'\033[1m' off=$'\033[0m'; else bold='' off=''; fi
die() { echo "demo: error: $*" >&2; exit 1; }
step() {
  local title=$1
  shift
  printf '\n%s== %s%s\n$ %s\n' "$bold" "$title" "$off" "$*"
  "$@"
}

[[ -x $VAPIPE ]] || die "$VAPIPE not found: build first with 'bash scripts/setup.sh'"
if [[ ! -f $MODELS/yolov5n.onnx ]]; then
  die "no yolov5n.onnx in '$MODELS'. The models are data, not part of the repository: put the shared models
folder beside the clone (../shared/models) or point VAPIPE_MODELS at a folder holding yolov5n.onnx."
fi
for image in messi5.jpg basketball1.png; do
  [[ -f $IMAGES/$image ]] || die "sample image $IMAGES/$image missing: install opencv-doc (scripts/setup.sh does)
or point DEMO_IMAGES at a folder with messi5.jpg and basketball1.png"
done
mkdir -p "$OUT"

step "Compile ONNX -> .vpk (stages for batch 1 and 4)" \
  "$VAPIPE" compile "$MODELS/yolov5n.onnx" --batch 1,4 -o "$OUT/yolov5n.vpk"
step "Inspect the package" "$VAPIPE" info "$OUT/yolov5n.vpk"
step "Detect objects on two images (annotated copies in $OUT/)" \
  "$VAPIPE" detect "$OUT/yolov5n.vpk" "$IMAGES/messi5.jpg" "$IMAGES/basketball1.png" --save "$OUT/"
step "Benchmark, batch 1" "$VAPIPE" bench "$OUT/yolov5n.vpk" --batch 1
step "Benchmark, batch 4" "$VAPIPE" bench "$OUT/yolov5n.vpk" --batch 4
# Next: the video pipeline demo (`vapipe run`) goes here.

printf '\n%sdemo done%s: outputs in %s/\n' "$bold" "$off" "$OUT"
