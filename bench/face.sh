#!/usr/bin/env bash
# Face detection + recognition throughput: `vapipe run` with a combined SCRFD-500M + MobileFaceNet package and
# a gallery, on N channels of the face video (files, no pacing, no looping), against ONNX Runtime running the
# same two models with the same crops in the same invocation (bench/face_ort_pipeline.mjs: ffmpeg decode per
# channel, SCRFD, 5-point ArcFace alignment, MobileFaceNet, cosine match). The two alternate, --rounds times,
# so drift of the machine hits both alike; the ratio is the median vapipe fps / the median ORT fps.
# Work differs in one way, by design: vapipe reuses a track's embedding for 5 frames, the peer (no tracker)
# embeds every face of every frame. The table shows both counts, and the summary adds what the ORT run would
# take with vapipe's embedding count (its own measured cost per embedding taken off: an estimate).
#
#   bash bench/face.sh [--channels 4] [--threads 2] [--threshold 0.5] [--rounds 1] [--contention] [--ort-only]
#
# --threads: oneDNN threads of vapipe's inference context (`vapipe run --threads`), ORT's intra-op threads.
# --threshold: the cosine a face must reach to take a gallery name (vapipe's "recognition_threshold").
# --contention: run every measurement again beside one CPU-bound process (a shell busy loop), so the table
#   also shows how each side degrades when a core is taken.
# Results: a table on stdout and bench/results/face-latest.md (raw JSON lines: face-latest.jsonl); the load
# average before and after is printed with it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODELS=${VAPIPE_MODELS:-../shared/models}
FACES=${VAPIPE_FACES:-../shared/data/faces}
VAPIPE=$BUILD_DIR/apps/vapipe/vapipe
channels=4
threads=2
threshold=0.5
rounds=1
contention=0
ort_only=0
die() { echo "bench: error: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
while (($#)); do
  case $1 in
    --channels) channels=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --threshold) threshold=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --contention) contention=1; shift ;;
    --ort-only) ort_only=1; shift ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
video=$FACES/video_chunk_6s.mp4
for model in scrfd_500m_bnkps.onnx mobilefacenet.onnx; do
  [[ -f $MODELS/$model ]] || die "no $model in $MODELS (put the shared models beside the clone or set VAPIPE_MODELS)"
done
[[ -f $video ]] || die "$video not found (set VAPIPE_FACES to the folder of the face video and gallery)"
command -v ffmpeg >/dev/null || die "ffmpeg not found (Debian: apt-get install ffmpeg)"
command -v node >/dev/null || die "node not found: run scripts/setup.sh"
if [[ ! -d bench/node_modules/onnxruntime-node ]]; then
  note "installing onnxruntime-node (npm ci --ignore-scripts)"
  (cd bench && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
mkdir -p bench/results
work=$(mktemp -d)
hog=""
cleanup() {
  [[ -z $hog ]] || kill "$hog" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# vapipe's package and config; a step that fails (e.g. a build without the recognition chain) leaves the
# ORT side measured and says why vapipe is not.
vapipe_note=""
isa=unknown
if ((ort_only)); then
  vapipe_note="--ort-only"
elif [[ ! -x $VAPIPE ]]; then
  vapipe_note="$VAPIPE not built (bash scripts/setup.sh)"
elif ! "$VAPIPE" compile "$MODELS/scrfd_500m_bnkps.onnx" --batch 1,4 -o "$work/det.vpk" >"$work/compile.log" 2>&1 ||
  ! "$VAPIPE" compile "$MODELS/mobilefacenet.onnx" --batch 1,4 -o "$work/emb.vpk" >>"$work/compile.log" 2>&1 ||
  ! "$VAPIPE" combine "$work/det.vpk" "$work/emb.vpk" -o "$work/face.vpk" >>"$work/compile.log" 2>&1; then
  vapipe_note="compiling the package failed: $(tail -n 1 "$work/compile.log")"
else
  # What oneDNN dispatches to on this CPU: its verbose mode names the ISA once, at the first primitive.
  isa=$(ONEDNN_VERBOSE=1 "$VAPIPE" bench "$work/det.vpk" --runs 1 --warmup 1 2>&1 |
    sed -n 's/.*,isa:\(.*\)$/\1/p' | head -n 1)
  isa=${isa:-unknown}
fi
[[ -z $vapipe_note ]] || note "WARNING: vapipe not measured: $vapipe_note"
cat >"$work/cameras.json" <<JSON
{ "cards": [{ "devid": 0, "cameras": [{ "address": "$video", "chan_num": $channels, "model_names": ["face"],
                                        "loop": false, "pace": false }] }],
  "models": [{ "name": "face", "path": "$work/face.vpk", "output_mode": "results",
               "results_path": "$work/vapipe.jsonl", "obj_threshold": 0.5, "nms_threshold": 0.4,
               "gallery": "$FACES", "recognition_threshold": $threshold }] }
JSON

raw=$work/raw.jsonl
: >"$raw"
# One vapipe run -> one JSON line in $raw (or a failure line with the last line of its log).
measure_vapipe() {
  local load=$1 round=$2 summary
  if ! summary=$("$VAPIPE" run --config "$work/cameras.json" --stats none --threads "$threads" 2>"$work/run.log"); then
    node -e 'const [load, round, m] = process.argv.slice(1);
             console.log(JSON.stringify({ tool: "vapipe", load, round: +round, error: m }))' \
      "$load" "$round" "$(grep -v '^\s*$' "$work/run.log" | tail -n 1)" >>"$raw"
    return
  fi
  # "vapipe run: 21.2 s, 4 channel(s), 725 frames output (34.2 fps)" and, for a chain,
  # "second stage: N object(s) run, M reused from their track"; identities from channel 0's JSON Lines.
  node - "$load" "$round" "$summary" "$work/vapipe.jsonl" >>"$raw" <<'EOF'
const fs = require('fs');
const [load, round, summary, results] = process.argv.slice(2);
const run = /vapipe run: ([0-9.]+) s, \d+ channel\(s\), (\d+) frames output \(([0-9.]+) fps\)/.exec(summary);
const second = /second stage: (\d+) object\(s\) run, (\d+) reused/.exec(summary);
if (!run) {
  console.log(JSON.stringify({ tool: 'vapipe', load, round: +round, error: `no summary line in: ${summary}` }));
  process.exit(0);
}
let faces = 0, frames0 = 0;
const identities = {};
for (const line of fs.existsSync(results) ? fs.readFileSync(results, 'utf8').split('\n') : []) {
  if (!line) continue;
  const record = JSON.parse(line);
  faces += record.detections.length;
  if (record.channel !== 0) continue;
  ++frames0;
  const names = new Set(record.detections.filter((d) => d.identity).map((d) => d.identity.name));
  for (const name of names) identities[name] = (identities[name] ?? 0) + 1;
}
console.log(JSON.stringify({ tool: 'vapipe', load, round: +round, seconds: +run[1], frames: +run[2], fps: +run[3],
                             faces, embeddings: second ? +second[1] : null, reused: second ? +second[2] : null,
                             frames_per_channel: frames0, identity_frames_channel0: identities }));
EOF
}
measure_ort() {
  local load=$1 round=$2 output
  if ! output=$(node bench/face_ort_pipeline.mjs --channels "$channels" --threads "$threads" --threshold "$threshold" \
    --gallery "$FACES" --video "$video" --models "$MODELS" --json 2>"$work/ort.log"); then
    node -e 'const [load, round, m] = process.argv.slice(1);
             console.log(JSON.stringify({ tool: "ort", load, round: +round, error: m }))' \
      "$load" "$round" "$(tail -n 1 "$work/ort.log")" >>"$raw"
    return
  fi
  node -e 'const [load, round, json] = process.argv.slice(1);
           console.log(JSON.stringify({ tool: "ort", load, round: +round, ...JSON.parse(json) }))' \
    "$load" "$round" "$(grep '^{' <<<"$output" | tail -n 1)" >>"$raw"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
loads=quiet
((contention)) && loads="quiet busy"
for load in $loads; do
  if [[ $load == busy ]]; then
    # One core taken by a busy loop for the whole of this part (killed by its pid here or on exit).
    bash -c 'while :; do :; done' &
    hog=$!
  fi
  for ((round = 1; round <= rounds; ++round)); do
    if [[ -z $vapipe_note ]]; then
      note "vapipe run, $channels channel(s), $threads thread(s), $load, round $round"
      measure_vapipe "$load" "$round"
    fi
    note "ORT pipeline, $channels channel(s), $threads thread(s), $load, round $round"
    measure_ort "$load" "$round"
  done
  if [[ -n $hog ]]; then
    kill "$hog"
    wait "$hog" 2>/dev/null || true
    hog=""
  fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
command="bash bench/face.sh --channels $channels --threads $threads --threshold $threshold --rounds $rounds"
if ((contention)); then command+=" --contention"; fi
if ((ort_only)); then command+=" --ort-only"; fi
cp "$raw" bench/results/face-latest.jsonl
node - "$raw" "$cpu" "$(nproc)" "$isa" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$load_before -> $load_after" "$command" "$vapipe_note" >bench/results/face-latest.md <<'EOF'
const fs = require('fs');
const [raw, cpu, cores, isa, rev, load, command, vapipeNote] = process.argv.slice(2);
const records = fs.readFileSync(raw, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ort = records.find((r) => r.tool === 'ort' && r.runtime)?.runtime ?? 'onnxruntime-node';
const out = [`# Face detection + recognition (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`, '',
  `Machine: ${cpu}, ${cores} cores, oneDNN ISA: ${isa}. vapipe ${rev}; ${ort}. Load average (1/5/15 min) ` +
  `before -> after: ${load}.`, '', `Command: \`${command}\``, '',
  '| load | round | tool | frames | seconds | fps | faces | embeddings run | reused | identities (frames of channel 0) |',
  '|---|---:|---|---:|---:|---:|---:|---:|---:|---|'];
for (const r of records) {
  if (r.error) {
    out.push(`| ${r.load} | ${r.round} | ${r.tool} | failed: ${r.error.replace(/\|/g, '/').slice(0, 200)} | | | | | | |`);
    continue;
  }
  const ids = Object.entries(r.identity_frames_channel0 ?? {}).map(([n, c]) => `${n} ${c}`).join(', ');
  out.push(`| ${r.load} | ${r.round} | ${r.tool} | ${r.frames} | ${r.seconds} | ${r.fps} | ${r.faces} | ` +
           `${r.embeddings ?? 'n/a'} | ${r.reused ?? (r.tool === 'ort' ? 0 : 'n/a')} | ${ids} |`);
}
out.push('');
for (const load of [...new Set(records.map((r) => r.load))]) {
  const fps = (tool) => records.filter((r) => r.tool === tool && r.load === load && !r.error).map((r) => r.fps);
  const v = fps('vapipe'), o = fps('ort');
  const ratio = v.length && o.length ? `**${(median(v) / median(o)).toFixed(2)}x**` : 'n/a';
  out.push(`- ${load}: vapipe ${v.length ? median(v).toFixed(1) : 'n/a'} fps, ORT ${o.length ? median(o).toFixed(1) : 'n/a'}` +
           ` fps (medians over rounds); vapipe / ORT = ${ratio}`);
  // Equal embedding work (estimate): each ORT run less (its embeddings - vapipe's) x its own time per embedding
  // (alignment + MobileFaceNet run, from its stage timers).
  const vEmb = median(records.filter((r) => r.tool === 'vapipe' && r.load === load && !r.error && r.embeddings !== null)
                             .map((r) => r.embeddings));
  const equal = records.filter((r) => r.tool === 'ort' && r.load === load && !r.error).map((r) => {
    const perEmbeddingS = ((r.stage_ms_per_frame.align + r.stage_ms_per_frame.emb_run) * r.frames) / r.embeddings / 1000;
    return r.frames / (r.seconds - (r.embeddings - vEmb) * perEmbeddingS);
  });
  if (v.length && equal.length && Number.isFinite(vEmb)) {
    out.push(`- ${load}, equal embedding work (estimate): ORT with vapipe's ${vEmb} embeddings instead of its ` +
             `${median(records.filter((r) => r.tool === 'ort' && r.load === load && !r.error).map((r) => r.embeddings))}` +
             `: ${median(equal).toFixed(1)} fps; vapipe / ORT = **${(median(v) / median(equal)).toFixed(2)}x**`);
  }
}
if (vapipeNote) out.push(`- vapipe not measured: ${vapipeNote}`);
console.log(out.join('\n'));
EOF
cat bench/results/face-latest.md
