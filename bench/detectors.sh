#!/usr/bin/env bash
# Every detector of the shared models against ONNX Runtime in one run: issue 20's table. One command:
#
#   bash bench/detectors.sh [--runs R] [--rounds N] [--threads T] [--models "a.onnx b.onnx"] [--full-graph]
#
# For each model, bench/run.sh compiles it the way `vapipe compile` does by default (the deployed form: YOLOv5
# and YOLOv8 cut at their raw heads with the decode in post-processing, every other detector whole) and times
# vapipe and ORT alternately (FP32, batch 1, T threads, default 1). ORT runs the whole file. The table gives
# each model's median per-image time of both, the ratio, and the geometric mean of the ratios; it is printed,
# written to bench/results/detectors.md and its raw lines to bench/results/detectors.jsonl.
# --full-graph compiles every model whole (the same work as ORT, decode included) instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
command="bash bench/detectors.sh${*:+ $*}"
MODELS=${VAPIPE_MODELS:-../shared/models}
runs=30
rounds=3
threads=1
cut_flag=--cut-head
models="yolov5n.onnx yolov5n-fp16.onnx yolov8n.onnx yolox_nano.onnx nanodet_m_320.onnx yolofastestv2.onnx
        yolov8n-seg-int8.onnx scrfd_500m_bnkps.onnx retinaface_mnet025.onnx yunet.onnx ultraface_rfb320.onnx"
die() { echo "detectors: error: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --full-graph) cut_flag=""; shift ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -d $MODELS ]] || die "no models at '$MODELS': put the shared models beside the clone or set VAPIPE_MODELS"

results=bench/results
all=$results/detectors.jsonl
mkdir -p "$results"
: >"$all"
for model in $models; do
  [[ -f $MODELS/$model ]] || die "model '$MODELS/$model' not found"
  echo "detectors: $model" >&2
  size_flags=()
  # YuNet's export has symbolic height and width: 640x640, the size its pipeline config letterboxes to.
  [[ $model != yunet.onnx ]] || size_flags=(--input-size 640x640)
  # shellcheck disable=SC2086  # an empty $cut_flag must vanish
  bash bench/run.sh --model "$MODELS/$model" --threads "$threads" --batches 1 --rounds "$rounds" --runs "$runs" \
    $cut_flag "${size_flags[@]}" >/dev/null
  node -e 'const fs = require("fs"); const [raw, model, all] = process.argv.slice(1);
           for (const l of fs.readFileSync(raw, "utf8").split("\n").filter(Boolean))
             fs.appendFileSync(all, JSON.stringify({...JSON.parse(l), bench_model: model}) + "\n");' \
    "$results/latest.jsonl" "$model" "$all"
done

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
flags=$(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | paste -sd' ' -)
node - "$all" "$results/detectors.md" "$cpu" "$flags" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$runs" "$rounds" "$threads" "$command" "$([[ -n $cut_flag ]] && echo "default compile" || echo "full graph")" <<'EOF'
const fs = require('fs');
const [raw, out, cpu, flags, rev, runs, rounds, threads, command, form] = process.argv.slice(2);
const records = fs.readFileSync(raw, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const rows = [];
const ratios = [];
for (const model of [...new Set(records.map((r) => r.bench_model))]) {
  const of = (tool) => records.filter((r) => r.bench_model === model && r.tool === tool && !r.error);
  const v = of('vapipe');
  const o = of('ort');
  const failed = records.find((r) => r.bench_model === model && r.error);
  if (!v.length || !o.length) {
    rows.push([model, 'n/a', 'n/a', 'n/a', failed ? failed.error.slice(0, 120) : 'no result']);
    continue;
  }
  const vm = median(v.map((r) => r.per_image_ms));
  const om = median(o.map((r) => r.per_image_ms));
  ratios.push(vm / om);
  rows.push([model, vm.toFixed(2), om.toFixed(2), (vm / om).toFixed(2), vm / om <= 1 ? '' : 'slower than ORT']);
}
const geomean = ratios.length ? Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length) : NaN;
const header = ['model', 'vapipe ms', 'ORT ms', 'vapipe/ORT', 'note'];
const date = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
const md = [
  `## Detectors vs ONNX Runtime, FP32, batch 1, ${threads} thread(s), ${form} — ${date}`, '',
  `Machine: ${cpu} (${flags}). vapipe ${rev}. ${runs} timed runs per process, ${rounds} interleaved rounds ` +
  '(median of the rounds\' medians); network time only. Command: `' + command + '`.', '',
  `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`,
  ...rows.map((r) => `| ${r.join(' | ')} |`), '',
  `Geometric mean of vapipe/ORT over ${ratios.length} models: ${geomean.toFixed(2)}; ` +
  `${ratios.filter((r) => r > 1).length} model(s) above 1.0.`, '',
].join('\n');
fs.writeFileSync(out, md);
console.log(md);
EOF
