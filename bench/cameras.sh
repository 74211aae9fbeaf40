#!/usr/bin/env bash
# Four 1080p25 cameras on this machine: `vapipe run` (YOLOv5n, every precision asked) against the peer pipeline
# a user would write (bench/ort_pipeline.mjs: one ffmpeg per channel decoding and letterboxing, ONNX Runtime
# FP32 with 2 threads round robin, NMS), in the same run, on the same clip:
#   - unpaced (files read as fast as they decode; results only): total fps, and vapipe / peer;
#   - paced (the files at their own 25 fps, as cameras deliver): fps and p50/p99 decode -> result latency;
#   - with --contention, unpaced again beside one CPU-bound process (a shell busy loop started here), and each
#     tool's busy / quiet ratio;
#   - with --skip-loop-filter, unpaced again with the camera key skip_loop_filter, its fps and the detection
#     agreement with the normal decode's results (`vapipe compare A.jsonl B.jsonl`: mAP@0.5, conf 0.25 boxes
#     of the normal run as ground truth).
#
#   bash bench/cameras.sh [--channels 4] [--frames 250] [--precisions "f32 int8 bf16"] [--contention]
#                         [--skip-loop-filter] [--inference-threads N] [--threads N] [--rounds 1]
#
# Clip: the first --frames frames of vtest.avi (opencv-doc) upscaled to 1920x1080, 25 fps, H.264 at 4 Mbit/s
# (bench/results/cameras-clip-FRAMES.mp4, made once). INT8 is calibrated on the opencv-doc photos (KL); bf16
# runs where the ISA has it natively (oneDNN's dispatch, printed) and is skipped otherwise. ONEDNN_MAX_CPU_ISA
# (e.g. AVX2) caps vapipe's oneDNN, not the peer's ONNX Runtime.
# --inference-threads / --threads: the config's inference.thread_num and `vapipe run --threads` (oneDNN threads
# per context); unset, vapipe's defaults. Results: a table on stdout and bench/results/cameras-latest.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODELS=${VAPIPE_MODELS:-../shared/models}
VAPIPE=$BUILD_DIR/apps/vapipe/vapipe
channels=4
frames=250
precision_list="f32 int8 bf16"
contention=0
skip_loop_filter=0
inference_threads=""
context_threads=""
rounds=1
die() { echo "bench: error: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --channels) channels=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --precisions) precision_list=$2; shift 2 ;;
    --contention) contention=1; shift ;;
    --skip-loop-filter) skip_loop_filter=1; shift ;;
    --inference-threads) inference_threads=$2; shift 2 ;;
    --threads) context_threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ -x $VAPIPE ]] || die "$VAPIPE not found: build first (bash scripts/setup.sh)"
[[ -f $MODELS/yolov5n.onnx ]] || die "no yolov5n.onnx in $MODELS (set VAPIPE_MODELS)"
[[ -d bench/node_modules/onnxruntime-node ]] || die "onnxruntime-node missing: (cd bench && npm ci --ignore-scripts)"
mkdir -p bench/results
work=$(mktemp -d)
busy_pid=""
cleanup() {
  [[ -z $busy_pid ]] || kill "$busy_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

clip=bench/results/cameras-clip-$frames.mp4
if [[ ! -s $clip ]]; then
  echo "bench: making $clip (1920x1080, 25 fps, 4 Mbit/s)" >&2
  ffmpeg -nostdin -v error -y -i /usr/share/doc/opencv-doc/examples/data/vtest.avi -an -frames:v "$frames" \
    -vf "setpts=N/25/TB,scale=1920:1080:flags=bicubic" -r 25 -c:v libx264 -preset medium -b:v 4M -maxrate 4M \
    -bufsize 8M -g 50 -pix_fmt yuv420p "$clip"
fi

isa="?"
declare -A package
for precision in $precision_list; do
  flags=(--precision "$precision")
  [[ $precision != int8 ]] || flags+=(--calib-images /usr/share/doc/opencv-doc/examples/data)
  package[$precision]=$work/yolov5n-$precision.vpk
  if ! "$VAPIPE" compile "$MODELS/yolov5n.onnx" --batch 1,4 "${flags[@]}" -o "${package[$precision]}" \
    >"$work/compile-$precision.log" 2>&1; then
    echo "bench: $precision: compile failed, skipped: $(tail -1 "$work/compile-$precision.log")" >&2
    unset "package[$precision]"
    continue
  fi
  bench_json=$("$VAPIPE" bench "${package[$precision]}" --batch 1 --runs 3 --json)
  isa=$(sed -n 's/.*"isa":"\([^"]*\)".*/\1/p' <<<"$bench_json")
  native=$(sed -n 's/.*"native":\(true\|false\).*/\1/p' <<<"$bench_json")
  # bf16 without native support is emulated (slow, not a deployment); int8 without VNNI runs vapipe's own
  # AVX2 int8 path, which is what an AVX2 machine deploys, so it is measured.
  if [[ $native == false && $precision == bf16 ]]; then
    echo "bench: $precision is not native on $isa: skipped" >&2
    unset "package[$precision]"
  fi
done

# One `vapipe run`: prints "fps p50 p99 dropped" (latency over all channels' last 512 frames: the worst
# channel's p99, the median channel's p50); its results stay in $work/results.jsonl.
run_vapipe() {  # precision pace [skip_loop_filter]
  local pace=$2 skip=${3:-false} thread_key="" thread_flag=()
  [[ -z $inference_threads ]] || thread_key="\"inference\": { \"thread_num\": $inference_threads, \"queue_size\": 16 },"
  [[ -z $context_threads ]] || thread_flag=(--threads "$context_threads")
  cat >"$work/cameras.json" <<JSON
{ "cards": [{ "devid": 0, "cameras": [{ "address": "$PWD/$clip", "chan_num": $channels, "model_names": ["det"],
                                        "loop": false, "pace": $pace, "skip_loop_filter": $skip }] }],
  "pipeline": { $thread_key "postprocess": { "thread_num": 1, "queue_size": 16 } },
  "models": [{ "name": "det", "path": "${package[$1]}", "output_mode": "results",
               "results_path": "$work/results.jsonl",
               "obj_threshold": 0.25, "nms_threshold": 0.45, "class_threshold": 0.25 }] }
JSON
  "$VAPIPE" run --config "$work/cameras.json" --stats none "${thread_flag[@]}" >"$work/summary.txt" \
    2>"$work/run.log" || die "vapipe run failed: $(tail -3 "$work/run.log")"
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
    const fps = /\(([0-9.]+) fps\)/.exec(lines[0])[1];
    const header = lines.findIndex((l) => l.trim().startsWith("ch "));
    const names = lines[header].trim().split(/\s+/);
    const rows = lines.slice(header + 1).map((l) => l.trim().split(/\s+/)).filter((f) => /^[0-9]+$/.test(f[0]));
    const column = (name) => rows.map((f) => Number(f[names.indexOf(name)]));
    const p50 = column("p50_ms").sort((a, b) => a - b)[Math.floor((rows.length - 1) / 2)];
    const dropped = column("dropped").reduce((a, b) => a + b, 0);
    console.log(`${fps} ${p50.toFixed(0)} ${Math.max(...column("p99_ms")).toFixed(0)} ${dropped}`);' \
    "$work/summary.txt"
}

# One peer run: prints "fps p50 p99".
run_peer() {  # realtime(0|1)
  local flags=(--video "$PWD/$clip" --channels "$channels" --threads 2 --json)
  (($1)) && flags+=(--realtime)
  node bench/ort_pipeline.mjs "${flags[@]}" >"$work/peer.json" 2>"$work/peer.log" ||
    die "peer failed: $(tail -3 "$work/peer.log")"
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
           console.log(`${r.fps.toFixed(1)} ${r.latency_p50_ms.toFixed(0)} ${r.latency_p99_ms.toFixed(0)}`)' \
    "$work/peer.json"
}

table=$work/table.md
{
  echo "# 4 x 1080p25 cameras, YOLOv5n ($(date -u +%Y-%m-%d), $(nproc) CPUs, oneDNN ISA $isa, clip $frames frames x $channels channels)"
  echo
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); load average before: $(cut -d' ' -f1-3 /proc/loadavg);" \
    "vapipe $(git rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "inference.thread_num ${inference_threads:-default}, --threads ${context_threads:-default}"
  echo
  echo "| load | round | run | tool | fps | vs peer | p50 ms | p99 ms | dropped |"
  echo "|---|---:|---|---|---:|---:|---:|---:|---:|"
} >"$table"

loads="quiet"
((contention)) && loads="quiet busy"
declare -A fps_of
loop_filter_rows=""
for load in $loads; do
  if [[ $load == busy ]]; then
    sh -c 'while :; do :; done' &
    busy_pid=$!
  fi
  for ((round = 1; round <= rounds; ++round)); do
    read -r peer_fps _ _ < <(run_peer 0)
    echo "| $load | $round | unpaced | ORT FP32 peer | $peer_fps | 1.00 | | | |" >>"$table"
    fps_of[$load-peer]="${fps_of[$load-peer]:-} $peer_fps"
    echo "bench: $load round $round: peer $peer_fps fps" >&2
    for precision in $precision_list; do
      [[ -n ${package[$precision]:-} ]] || continue
      read -r fps _ _ dropped < <(run_vapipe "$precision" false)
      ratio=$(awk -v a="$fps" -v b="$peer_fps" 'BEGIN { printf "%.2f", a / b }')
      echo "| $load | $round | unpaced | vapipe $precision | $fps | **$ratio** | | | $dropped |" >>"$table"
      fps_of[$load-$precision]="${fps_of[$load-$precision]:-} $fps"
      echo "bench: $load round $round: vapipe $precision $fps fps (${ratio}x the peer)" >&2
      if ((skip_loop_filter)) && [[ $load == quiet ]]; then
        cp "$work/results.jsonl" "$work/normal.jsonl"
        read -r fps _ _ dropped < <(run_vapipe "$precision" false true)
        ratio=$(awk -v a="$fps" -v b="$peer_fps" 'BEGIN { printf "%.2f", a / b }')
        map=$("$VAPIPE" compare "$work/normal.jsonl" "$work/results.jsonl" --json |
          sed -n 's/.*"map50":\([0-9.]*\).*/\1/p')
        echo "| $load | $round | unpaced, skip_loop_filter | vapipe $precision | $fps | **$ratio** | | | $dropped |" \
          >>"$table"
        loop_filter_rows+="| $precision | $(awk -v m="$map" 'BEGIN { printf "%.4f", m }') |"$'\n'
        echo "bench: skip_loop_filter: vapipe $precision $fps fps, mAP@0.5 vs the normal decode $map" >&2
      fi
    done
    if [[ $load == quiet ]]; then
      read -r peer_fps p50 p99 < <(run_peer 1)
      echo "| $load | $round | paced 25 fps | ORT FP32 peer | $peer_fps | | $p50 | $p99 | |" >>"$table"
      for precision in $precision_list; do
        [[ -n ${package[$precision]:-} ]] || continue
        read -r fps p50 p99 dropped < <(run_vapipe "$precision" true)
        echo "| $load | $round | paced 25 fps | vapipe $precision | $fps | | $p50 | $p99 | $dropped |" >>"$table"
        echo "bench: paced: vapipe $precision $fps fps, p99 $p99 ms" >&2
      done
    fi
  done
  if [[ -n $busy_pid ]]; then
    kill "$busy_pid"
    wait "$busy_pid" 2>/dev/null || true
    busy_pid=""
  fi
done

if ((contention)); then
  mean() { tr ' ' '\n' <<<"$1" | awk 'NF { s += $1; ++n } END { printf "%.1f", s / n }'; }
  {
    echo
    echo "| tool | quiet fps (mean) | busy fps (mean) | busy / quiet |"
    echo "|---|---:|---:|---:|"
    for tool in peer $precision_list; do
      [[ -n ${fps_of[quiet-$tool]:-} ]] || continue
      q=$(mean "${fps_of[quiet-$tool]}")
      b=$(mean "${fps_of[busy-$tool]}")
      echo "| $tool | $q | $b | **$(awk -v a="$b" -v b="$q" 'BEGIN { printf "%.2f", a / b }')** |"
    done
  } >>"$table"
fi
if [[ -n $loop_filter_rows ]]; then
  {
    echo
    echo "| skip_loop_filter: precision | mAP@0.5 vs the normal decode (same package) |"
    echo "|---|---:|"
    printf '%s' "$loop_filter_rows"
  } >>"$table"
fi
cp "$table" bench/results/cameras-latest.md
cat bench/results/cameras-latest.md
