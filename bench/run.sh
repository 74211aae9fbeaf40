#!/usr/bin/env bash
# shellcheck disable=SC2016  # single-quoted JavaScript template literals are meant literally
# End-to-end benchmark: vapipe's runtime against ONNX Runtime (onnxruntime-node, CPU EP) on the same model,
# batch and thread count, on this machine. One command:
#
#   bash bench/run.sh [--runs R] [--warmup W] [--rounds N] [--threads "1 2"] [--batches "1 4"] [--model F.onnx]
#                     [--ort-only] [--wait-idle MAX_S] [--cut-head] [--precisions "f32 int8 bf16"]
#                     [--calib-images DIR] [--input-size WxH]
#
# Method: `vapipe compile` builds a .vpk with stages for every batch; then for each (threads, batch) the two
# tools run alternately, N rounds (vapipe, ORT, vapipe, ORT, ...) so drift of the machine (clock, other load)
# hits both alike. Each run is a fresh process: warm-up, then R timed inferences on seeded random input; a
# row shows the median over rounds of each tool's median. Results: a table on stdout, bench/results/latest.md
# (rewritten), bench/results/history.md (appended), and every raw JSON line in bench/results/latest.jsonl.
#
# A model exported with a static batch of 1 (yolov5n.onnx is) cannot run batch 4 in ORT: ORT refuses it, the
# script says so, and compares vapipe's batch-4 per-image time with ORT's batch-1 per-image time (marked).
#
# Same work in both: vapipe compiles the full export (--full-graph, YOLO decode included), as ORT runs it;
# --cut-head measures the deployed form instead (graph cut at the raw head, decode done in post-processing).
# --wait-idle MAX_S: on a shared machine, wait before each process (up to MAX_S seconds) until the CPUs have
# been at least 90 % idle for 2 s; the idle share seen is kept with each raw result.
# --precisions: vapipe packages to measure against the same ORT FP32 runs (int8 is calibrated on
# --calib-images, default the opencv-doc photos; KL, heads float); one row per precision, same interleaving.
# --input-size: the input's height and width for an export whose are symbolic (YuNet), given to both tools.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODELS=${VAPIPE_MODELS:-../shared/models}
runs=50
warmup=5
rounds=2
thread_list="1 2"
batch_list="1 4"
model=$MODELS/yolov5n.onnx
ort_only=0
wait_idle_s=0
graph_flag=--full-graph
precision_list=f32
calib_images=/usr/share/doc/opencv-doc/examples/data
size_flags=()

die() { echo "bench: error: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) thread_list=$2; shift 2 ;;
    --batches) batch_list=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --ort-only) ort_only=1; shift ;;
    --wait-idle) wait_idle_s=$2; shift 2 ;;
    --cut-head) graph_flag=""; shift ;;
    --precisions) precision_list=$2; shift 2 ;;
    --calib-images) calib_images=$2; shift 2 ;;
    --input-size) size_flags=(--input-size "$2"); shift 2 ;;
    -h|--help) sed -n '3,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -f $model ]] || die "model '$model' not found: put the shared models beside the clone (../shared/models) or set VAPIPE_MODELS / --model"
command -v node >/dev/null || die "node not found: run scripts/setup.sh"

if [[ ! -d bench/node_modules/onnxruntime-node ]]; then
  note "installing onnxruntime-node (npm ci --ignore-scripts)"
  (cd bench && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

out_dir=$BUILD_DIR/bench
results=bench/results
mkdir -p "$out_dir" "$results"
name=$(basename "$model" .onnx)
vapipe=$BUILD_DIR/apps/vapipe/vapipe
# The package of one precision (f32 keeps the historical name).
vpk_of() { if [[ $1 == f32 ]]; then echo "$out_dir/$name.vpk"; else echo "$out_dir/$name-$1.vpk"; fi; }
# The tool label of one precision in the raw results and the table.
tool_of() { if [[ $1 == f32 ]]; then echo vapipe; else echo "vapipe-$1"; fi; }
vapipe_note=""
if ((!ort_only)); then
  if [[ ! -x $vapipe ]]; then
    ort_only=1 vapipe_note="$vapipe not built (run scripts/setup.sh)"
  else
    batches_csv=$(tr ' ' '\n' <<<"$batch_list" | sort -n | paste -sd, -)
    for precision in $precision_list; do
      precision_flags=(--precision "$precision")
      [[ $precision != int8 ]] || precision_flags+=(--calib-images "$calib_images")
      note "$vapipe compile $model --batch $batches_csv $graph_flag ${precision_flags[*]} -o $(vpk_of "$precision")"
      # shellcheck disable=SC2086  # an empty $graph_flag must vanish
      if ! "$vapipe" compile "$model" --batch "$batches_csv" $graph_flag "${precision_flags[@]}" "${size_flags[@]}" \
        -o "$(vpk_of "$precision")" >&2; then
        ort_only=1 vapipe_note="'vapipe compile --precision $precision' failed (see above)"
      fi
    done
  fi
  [[ -z $vapipe_note ]] || note "WARNING: running ONNX Runtime only: $vapipe_note"
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Percentage of CPU time idle over the next $1 seconds (all CPUs, from /proc/stat).
idle_pct() {
  local a b
  read -r -a a < <(head -n 1 /proc/stat)
  sleep "$1"
  read -r -a b < <(head -n 1 /proc/stat)
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $((total > 0 ? 100 * (b[4] - a[4] + b[5] - a[5]) / total : 100))
}
# Waits (up to --wait-idle seconds) for an idle machine; prints the last idle share seen.
wait_for_idle() {
  local idle deadline=$((SECONDS + wait_idle_s))
  idle=$(idle_pct 2)
  while ((idle < 90 && SECONDS < deadline)); do idle=$(idle_pct 2); done
  ((idle >= 90)) || note "machine still busy (${idle}% idle) after ${wait_idle_s}s; measuring anyway"
  echo "$idle"
}

raw=$results/latest.jsonl
: >"$raw"
# Appends one tagged JSON line; a tool failure is recorded, not fatal, so one bad cell does not lose the rest.
record() {
  local tool=$1 threads=$2 batch=$3 round=$4
  shift 4
  local output status=0 idle=null
  if ((wait_idle_s > 0)); then idle=$(wait_for_idle); fi
  output=$("$@" 2>"$out_dir/last_stderr") || status=$?
  if ((status)); then
    local message
    message=$(tr '\n' ' ' <"$out_dir/last_stderr" | tail -c 400)
    note "$tool threads=$threads batch=$batch failed ($status): $message"
    node -e 'const [tool, t, b, r, s, m] = process.argv.slice(1);
             console.log(JSON.stringify({tool, threads: +t, batch: +b, round: +r, exit: +s, error: m}))' \
      "$tool" "$threads" "$batch" "$round" "$status" "$message" >>"$raw"
    return
  fi
  local line
  line=$(grep '^{' <<<"$output" | tail -n 1)
  node -e 'const [tool, r, idle, json] = process.argv.slice(1);
           console.log(JSON.stringify({tool, round: +r, idle_pct_before: JSON.parse(idle), ...JSON.parse(json)}))' \
    "$tool" "$round" "$idle" "$line" >>"$raw"
  node -p 'const [tool, r, json] = process.argv.slice(1); const j = JSON.parse(json);
           `  ${tool} threads=${j.threads} batch=${j.batch} round=${r}: median_ms=${j.median_ms.toFixed(2)} ` +
           `p90_ms=${j.p90_ms.toFixed(2)} per_image_ms=${j.per_image_ms.toFixed(2)} peak_rss_mb=${j.peak_rss_mb}`' \
    "$tool" "$round" "$line" >&2
}

for threads in $thread_list; do
  for batch in $batch_list; do
    ort_refused=0
    for ((round = 1; round <= rounds; ++round)); do
      if ((!ort_only)); then
        for precision in $precision_list; do
          record "$(tool_of "$precision")" "$threads" "$batch" "$round" "$vapipe" bench "$(vpk_of "$precision")" \
            --batch "$batch" --threads "$threads" --runs "$runs" --warmup "$warmup" --json
        done
      fi
      if ((!ort_refused)); then
        record ort "$threads" "$batch" "$round" \
          node bench/ort_bench.mjs "$model" --batch "$batch" --threads "$threads" --runs "$runs" \
          --warmup "$warmup" "${size_flags[@]}" --json
        if grep -q '"exit":3,' <(tail -n 1 "$raw"); then
          ort_refused=1
          note "ONNX Runtime refuses batch $batch on $model (static batch): this row compares with ORT batch 1"
        fi
      fi
    done
  done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
vapipe_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
node - "$raw" "$results" "$model" "$cpu" "$(nproc)" "$vapipe_rev" "$runs" "$rounds" "${vapipe_note:-}" \
  "$load_before -> $load_after" \
  "bash bench/run.sh --runs $runs --warmup $warmup --rounds $rounds --threads '$thread_list' --batches '$batch_list'$( ((wait_idle_s)) && echo " --wait-idle $wait_idle_s")$( ((ort_only)) && echo " --ort-only")$( [[ -z $graph_flag ]] && echo " --cut-head")$( [[ $precision_list != f32 ]] && echo " --precisions '$precision_list'")${size_flags[*]:+ ${size_flags[*]}}" <<'EOF'
const fs = require('fs');
const [raw, results, model, cpu, cores, rev, runs, rounds, vapipeNote, load, command] = process.argv.slice(2);
const records = fs.readFileSync(raw, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// One cell: the median over rounds of median_ms, p90_ms, per_image_ms; the largest peak RSS seen.
const cell = (tool, threads, batch) => {
  const ok = records.filter((r) => r.tool === tool && r.threads === threads && r.batch === batch && !r.error);
  if (!ok.length) return null;
  return {
    median_ms: median(ok.map((r) => r.median_ms)),
    p90_ms: median(ok.map((r) => r.p90_ms)),
    per_image_ms: median(ok.map((r) => r.per_image_ms)),
    peak_rss_mb: Math.max(...ok.map((r) => r.peak_rss_mb)),
    rounds: ok.length,
  };
};
const failure = (tool, threads, batch) =>
  records.find((r) => r.tool === tool && r.threads === threads && r.batch === batch && r.error);
const keys = [...new Set(records.map((r) => `${r.threads} ${r.batch}`))]
  .map((k) => k.split(' ').map(Number)).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
const ortVersion = records.find((r) => r.tool === 'ort' && r.runtime)?.runtime ?? 'onnxruntime-node';
const f = (x, d = 2) => (x === null || x === undefined ? 'n/a' : x.toFixed(d));
const rows = [];
const notes = [];
const vapipeTools = [...new Set(records.map((r) => r.tool).filter((t) => t.startsWith('vapipe')))];
if (!vapipeTools.length) vapipeTools.push('vapipe');
for (const [threads, batch] of keys) for (const tool of vapipeTools) {
  const v = cell(tool, threads, batch);
  let o = cell('ort', threads, batch);
  let ortLabel = `${batch}`;
  const refused = failure('ort', threads, batch);
  if (!o && refused && refused.exit === 3) {
    o = cell('ort', threads, 1);
    ortLabel = '1 (*)';
    notes.push(`(*) ONNX Runtime refuses batch ${batch} on this export, whose input has a static batch of 1 ` +
               `(ORT: "${(refused.error || '').split('): ').pop().replace(/ Please fix.*/, '').slice(0, 160).trim()}"); this row compares ` +
               `vapipe's batch-${batch} per-image time with ORT's batch-1 per-image time at the same threads.`);
  }
  const vFail = failure(tool, threads, batch);
  if (!v && vFail) notes.push(`${tool} threads=${threads} batch=${batch} failed: ${vFail.error.slice(0, 200)}`);
  rows.push([threads, batch, tool === 'vapipe' ? 'f32' : tool.slice(7), f(v?.per_image_ms), v ? `${f(v.median_ms)} / ${f(v.p90_ms)}` : 'n/a',
             f(v?.peak_rss_mb, 0), ortLabel, f(o?.per_image_ms), o ? `${f(o.median_ms)} / ${f(o.p90_ms)}` : 'n/a',
             f(o?.peak_rss_mb, 0), v && o ? f(v.per_image_ms / o.per_image_ms) : 'n/a']);
}
const header = ['threads', 'batch', 'precision', 'vapipe ms/img', 'vapipe median / p90 ms', 'vapipe RSS MB', 'ORT batch',
                'ORT ms/img', 'ORT median / p90 ms', 'ORT RSS MB', 'vapipe/ORT'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (r) => r.map((c, i) => String(c).padStart(widths[i])).join('  ');
console.log(line(header));
for (const r of rows) console.log(line(r));
for (const n of [...new Set(notes)]) console.log(n);
console.log(`load average before -> after: ${load} (other work on the machine skews timings)`);

const date = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
const uniqueNotes = [...new Set(notes)];
if (vapipeNote) uniqueNotes.unshift(`vapipe not measured: ${vapipeNote}.`);
const md = [
  `## ${model.split('/').pop()} — ${date}`,
  '',
  `Machine: ${cpu}, ${cores} cores. vapipe ${rev}; ${ortVersion}. ${runs} timed runs per process after warm-up, ` +
  `${rounds} interleaved rounds per row (median of the rounds' medians). RSS: peak resident set of the process ` +
  `(ORT includes Node.js). vapipe/ORT < 1 means vapipe is faster. Load average (1/5/15 min) before -> after: ${load}.`,
  '',
  `Command: \`${command}\``,
  '',
  `| ${header.join(' | ')} |`,
  `|${header.map(() => '---:').join('|')}|`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
  ...uniqueNotes.map((n) => `${n}\n`),
].join('\n');
fs.writeFileSync(`${results}/latest.md`, `# vapipe vs ONNX Runtime\n\n${md}`);
fs.appendFileSync(`${results}/history.md`, `${md}\n`);
console.log(`\nwritten: ${results}/latest.md (and appended to ${results}/history.md, raw: ${raw})`);
EOF
