#!/usr/bin/env bash
# The vapipe demo: compile YOLOv5n into a .vpk package, inspect it, detect objects on two sample images,
# time the runtime, then run the video pipeline: 4 channels of vtest.avi (H.264), batched detection,
# annotated H.264 MP4s and JSON Lines, statistics every second. Every step is one `step NAME COMMAND...` line below, so a later demo is one more line.
#
#   bash scripts/setup.sh && bash scripts/demo.sh
#
# Environment: BUILD_DIR (default build); VAPIPE_MODELS: folder with yolov5n.onnx (default ../shared/models);
# DEMO_IMAGES: folder with messi5.jpg, basketball1.png and vtest.avi (default: opencv-doc's samples);
# DEMO_SECONDS: how long the pipeline runs (default 30; it drains and closes its outputs at the end).
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
for image in messi5.jpg basketball1.png vtest.avi; do
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

# The video pipeline. Cameras send H.264; vtest.avi is MPEG-4 Part 2, so it is transcoded once.
if [[ ! -s $OUT/vtest.mp4 ]]; then
  step "Transcode vtest.avi to H.264 (once)" \
    ffmpeg -nostdin -v error -y -i "$IMAGES/vtest.avi" -an -c:v libx264 -preset veryfast -g 20 "$OUT/vtest.mp4"
fi
mkdir -p "$OUT/video"
cat >"$OUT/cameras_demo.json" <<JSON
{
  "cards": [{ "devid": 0, "cameras": [{ "address": "$OUT/vtest.mp4", "chan_num": 4, "model_names": ["yolov5n"] }] }],
  "pipeline": {
    "preprocess": { "thread_num": 1, "queue_size": 16 },
    "inference": { "thread_num": 1, "queue_size": 16 },
    "postprocess": { "thread_num": 1, "queue_size": 16 }
  },
  "models": [{
    "name": "yolov5n", "path": "$OUT/yolov5n.vpk", "model_type": "yolov5n", "skip_frame_num": 0,
    "output_path": "$OUT/video/yolov5n.mp4", "output_mode": "annotated", "results_path": "$OUT/video/yolov5n.jsonl",
    "obj_threshold": 0.25, "nms_threshold": 0.45, "class_threshold": 0.25, "class_num": 80
  }]
}
JSON
step "Run the pipeline: 4 channels, ${DEMO_SECONDS:-30} s (Ctrl-C also drains and closes the outputs)" \
  "$VAPIPE" run --config "$OUT/cameras_demo.json" --duration "${DEMO_SECONDS:-30}"
step "Check an output with ffprobe" ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,nb_read_frames -of default=nw=1 "$OUT/video/yolov5n_0.mp4"
printf '%s result lines in %s, e.g.\n' "$(wc -l <"$OUT/video/yolov5n.jsonl")" "$OUT/video/yolov5n.jsonl"
head -c 400 "$OUT/video/yolov5n.jsonl"
echo

printf '\n%sdemo done%s: outputs in %s/\n' "$bold" "$off" "$OUT"
