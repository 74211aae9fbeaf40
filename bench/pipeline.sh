#!/usr/bin/env bash
# Pipeline throughput: `vapipe run` on N channels of one H.264 clip read as fast as possible (files, no
# pacing, no looping), against the ceiling measured in the same run: the runtime alone (`vapipe bench`,
# batch 4, same thread count) on the same package. The ratio pipeline fps / ceiling fps is the share of the
# inference throughput the whole pipeline (demux, decode, fused preprocessing, batching, post-processing,
# tracking, outputs) keeps.
#
#   bash bench/pipeline.sh [--channels "1 4"] [--modes "results passthrough annotated"] [--size 768x576]
#                          [--frames N]
#
# Clip: the first --frames frames of vtest.avi (opencv-doc) transcoded once to H.264 at --size
# (bench/results/pipeline-clip-SIZE-FRAMES.mp4). The load average before the run is printed with the table.
# Results: a table on stdout and bench/results/pipeline-latest.md. Four 1080p25 cameras against a peer pipeline
# (ffmpeg + ONNX Runtime) in the same run, paced latency and contention: bench/cameras.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODELS=${VAPIPE_MODELS:-../shared/models}
VAPIPE=$BUILD_DIR/apps/vapipe/vapipe
channel_list="1 4"
mode_list="results passthrough annotated"
size=768x576
frames=795
die() { echo "bench: error: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --channels) channel_list=$2; shift 2 ;;
    --modes) mode_list=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ -x $VAPIPE ]] || die "$VAPIPE not found: build first (bash scripts/setup.sh)"
[[ -f $MODELS/yolov5n.onnx ]] || die "no yolov5n.onnx in $MODELS (set VAPIPE_MODELS)"
mkdir -p bench/results
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

clip=bench/results/pipeline-clip-$size-$frames.mp4
if [[ ! -s $clip ]]; then
  ffmpeg -nostdin -v error -y -i /usr/share/doc/opencv-doc/examples/data/vtest.avi -an -frames:v "$frames" \
    -vf "scale=${size/x/:}" -c:v libx264 -preset veryfast -g 20 "$clip"
fi
"$VAPIPE" compile "$MODELS/yolov5n.onnx" --batch 1,4 -o "$work/yolov5n.vpk" >/dev/null
ceiling_ms=$("$VAPIPE" bench "$work/yolov5n.vpk" --batch 4 --runs 30 | sed -n 's/.*per_image_ms=\([0-9.]*\).*/\1/p')
ceiling_fps=$(awk -v ms="$ceiling_ms" 'BEGIN { printf "%.1f", 1000 / ms }')

{
  echo "# vapipe pipeline throughput ($(date -u +%Y-%m-%d), $(nproc) CPUs, clip $size H.264, $(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$clip") frames)"
  echo
  echo "Ceiling (runtime alone, batch 4): ${ceiling_ms} ms/image = ${ceiling_fps} fps; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| channels | mode | frames | seconds | pipeline fps | / ceiling |"
  echo "|---|---|---|---|---|---|"
} >"$work/table.md"

for channels in $channel_list; do
  for mode in $mode_list; do
    output=""
    [[ $mode != results ]] && output="\"output_path\": \"$work/out/$mode.mkv\","
    cat >"$work/cameras.json" <<JSON
{ "cards": [{ "devid": 0, "cameras": [{ "address": "$clip", "chan_num": $channels, "model_names": ["det"],
                                        "loop": false, "pace": false }] }],
  "models": [{ "name": "det", "path": "$work/yolov5n.vpk", $output "output_mode": "$mode",
               "results_path": "$work/out/$mode.jsonl",
               "obj_threshold": 0.25, "nms_threshold": 0.45, "class_threshold": 0.25 }] }
JSON
    summary=$("$VAPIPE" run --config "$work/cameras.json" --stats none 2>"$work/run.log" | head -1)
    # "vapipe run: 21.2 s, 4 channel(s), 725 frames output (34.2 fps)"
    seconds=$(sed -n 's/^vapipe run: \([0-9.]*\) s.*/\1/p' <<<"$summary")
    frames=$(sed -n 's/.* \([0-9]*\) frames output.*/\1/p' <<<"$summary")
    fps=$(sed -n 's/.*(\([0-9.]*\) fps).*/\1/p' <<<"$summary")
    ratio=$(awk -v a="$fps" -v b="$ceiling_fps" 'BEGIN { printf "%.2f", a / b }')
    echo "| $channels | $mode | $frames | $seconds | $fps | $ratio |" >>"$work/table.md"
    echo "bench: $channels channel(s), $mode: $fps fps ($ratio of the ceiling)" >&2
  done
done
cp "$work/table.md" bench/results/pipeline-latest.md
cat bench/results/pipeline-latest.md
