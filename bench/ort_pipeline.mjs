#!/usr/bin/env node
// The peer pipeline of bench/cameras.sh: what a user would write with FFmpeg and ONNX Runtime for N camera
// channels of YOLOv5n, so vapipe's whole-pipeline throughput and latency are compared in the same run.
//
//   node bench/ort_pipeline.mjs --video F [--channels N] [--threads T] [--model M.onnx] [--max-frames N]
//                               [--realtime] [--spin] [--json]
//
// Per channel one ffmpeg child decodes the video and letterboxes it to 640x640 RGB (scale to fit, centred, pad
// 114: Ultralytics' letterbox) on a pipe. One ONNX Runtime session (FP32, --threads intra-op threads, the full
// export with its own decode inside) serves the channels round robin, batch 1: per frame u8 HWC -> f32 CHW / 255,
// run, then the Ultralytics decode (obj x cls > 0.25, best class) and class-aware NMS (IoU 0.45), boxes mapped
// back to the frame. --realtime: ffmpeg reads at the video's rate (-re), as cameras deliver; the latency of a
// frame is then the time from when it was due (its channel's first frame's arrival + index / fps) to its result. fps = frames of all
// channels / wall seconds of the video part (the session creation excluded, as vapipe's run time excludes
// loading its package).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { check_tool, make_fail, parse_flags, probe_size, VideoChannel } from './ort_video.mjs';

const require = createRequire(import.meta.url);
const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fail = make_fail('ort_pipeline');
const kSize = 640;
const kConf = 0.25;
const kIou = 0.45;

function usage(message) {
  if (message) console.error(`ort_pipeline: ${message}`);
  console.error('usage: node bench/ort_pipeline.mjs --video F [--channels N] [--threads T] [--model M.onnx]\n' +
                '         [--max-frames N] [--realtime] [--spin] [--json]');
  process.exit(2);
}

function parse_args(argv) {
  const models = process.env.VAPIPE_MODELS ?? path.join(repo_root, '..', 'shared', 'models');
  const options = { video: '', channels: 4, threads: 2, model: path.join(models, 'yolov5n.onnx'), max_frames: 0,
                    realtime: false, spin: false, json: false };
  parse_flags(argv, options, {
    '--channels': ['channels', 'integer'], '--threads': ['threads', 'integer'], '--max-frames': ['max_frames', 'integer'],
    '--video': ['video', 'string'], '--model': ['model', 'string'], '--realtime': ['realtime', 'boolean'],
    '--spin': ['spin', 'boolean'], '--json': ['json', 'boolean'] }, usage);
  if (!options.video) usage('--video is required');
  if (options.channels < 1 || options.threads < 1) usage('--channels and --threads must be >= 1');
  return options;
}

function frame_rate(file) {
  const result = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=r_frame_rate',
                                       '-of', 'csv=p=0', file], { encoding: 'utf8' });
  const [num, den] = (result.stdout ?? '').trim().split('/').map(Number);
  if (!(num > 0 && den > 0)) fail(`ffprobe cannot read the frame rate of '${file}'`);
  return num / den;
}

// Ultralytics' letterbox geometry (round to nearest, centred, the odd pixel of padding at the bottom/right).
function letterbox(width, height) {
  const ratio = Math.min(kSize / width, kSize / height);
  const resized_width = Math.round(width * ratio), resized_height = Math.round(height * ratio);
  const pad_x = Math.round((kSize - resized_width) / 2 - 0.1), pad_y = Math.round((kSize - resized_height) / 2 - 0.1);
  return { ratio, resized_width, resized_height, pad_x, pad_y,
           filter: `scale=${resized_width}:${resized_height}:flags=bilinear,` +
                   `pad=${kSize}:${kSize}:${pad_x}:${pad_y}:color=0x727272` };
}

// Ultralytics' non_max_suppression for the v5 export: conf = obj x best class score, class-aware greedy NMS.
function detect(data, count, columns, geometry) {
  const candidates = [];
  for (let i = 0; i < count; ++i) {
    const at = i * columns;
    const objectness = data[at + 4];
    if (!(objectness > kConf)) continue;
    let best = 0;
    for (let c = 1; c < columns - 5; ++c) if (data[at + 5 + c] > data[at + 5 + best]) best = c;
    const score = objectness * data[at + 5 + best];
    if (!(score > kConf)) continue;
    const [cx, cy, w, h] = [data[at], data[at + 1], data[at + 2], data[at + 3]];
    candidates.push({ class_id: best, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] });
  }
  candidates.sort((a, b) => b.score - a.score);
  const area = (b) => Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
  const kept = [];
  for (const c of candidates) {
    const overlaps = kept.some((k) => {
      if (k.class_id !== c.class_id) return false;
      const inter = area([Math.max(k.box[0], c.box[0]), Math.max(k.box[1], c.box[1]), Math.min(k.box[2], c.box[2]),
                          Math.min(k.box[3], c.box[3])]);
      return inter > kIou * (area(k.box) + area(c.box) - inter);
    });
    if (!overlaps) kept.push(c);
  }
  for (const k of kept) {
    k.box = k.box.map((v, j) => (v - (j % 2 ? geometry.pad_y : geometry.pad_x)) / geometry.ratio);
  }
  return kept;
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function main() {
  const options = parse_args(process.argv.slice(2));
  check_tool('ffmpeg', fail);
  check_tool('ffprobe', fail);
  if (!fs.existsSync(options.video)) fail(`video '${options.video}' not found (--video)`);
  if (!fs.existsSync(options.model)) fail(`model '${options.model}' not found (--model, VAPIPE_MODELS)`);
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (error) {
    fail(`onnxruntime-node is not installed (cd bench && npm ci --ignore-scripts): ${error.message.split('\n')[0]}`);
  }
  // ORT's own spinning (allow_spinning) is on by default; off unless --spin, like the face peer, so a peer
  // sharing cores is not slowed by its own busy waits (bench/face.sh measured both).
  const session = await ort.InferenceSession.create(options.model, {
    intraOpNumThreads: options.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: options.spin ? '1' : '0' } } } });
  const { width, height } = probe_size(options.video, fail);
  const fps = frame_rate(options.video);
  const geometry = letterbox(width, height);
  const input = new Float32Array(3 * kSize * kSize);
  const plane = kSize * kSize;

  const start = performance.now();
  const channels = Array.from({ length: options.channels }, () => new VideoChannel(
      options.video, plane * 3, fail,
      { max_frames: options.max_frames, filter: geometry.filter, pix_fmt: 'rgb24', realtime: options.realtime }));
  const frames_of = new Array(options.channels).fill(0);
  const first_frame_at = new Array(options.channels).fill(0);
  const latencies = [];
  let frames = 0, detections = 0;
  const timings = { convert: 0, run: 0, decode: 0 };
  for (let open = options.channels; open > 0;) {
    open = 0;
    for (let c = 0; c < channels.length; ++c) {
      if (!channels[c]) continue;
      const frame = await channels[c].next();
      if (!frame) {
        channels[c] = null;
        continue;
      }
      ++open;
      const t0 = performance.now();
      if (frames_of[c] === 0) first_frame_at[c] = t0;
      for (let i = 0, s = 0; i < plane; ++i, s += 3) {
        input[i] = frame[s] / 255;
        input[plane + i] = frame[s + 1] / 255;
        input[2 * plane + i] = frame[s + 2] / 255;
      }
      const t1 = performance.now();
      const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input,
                                                                                 [1, 3, kSize, kSize]) });
      const t2 = performance.now();
      const { data, dims } = outputs[session.outputNames[0]];
      detections += detect(data, dims[1], dims[2], geometry).length;
      const t3 = performance.now();
      timings.convert += t1 - t0;
      timings.run += t2 - t1;
      timings.decode += t3 - t2;
      if (options.realtime) latencies.push(t3 - (first_frame_at[c] + (frames_of[c] * 1000) / fps));
      ++frames_of[c];
      ++frames;
    }
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const result = {
    channels: options.channels, threads: options.threads, frames, seconds, fps: frames / seconds, detections,
    realtime: options.realtime, latency_p50_ms: percentile(latencies, 50), latency_p99_ms: percentile(latencies, 99),
    per_frame_ms: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, frames ? v / frames : 0])),
    onnxruntime: require('onnxruntime-node/package.json').version,
  };
  if (options.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`${frames} frames of ${options.channels} channel(s) in ${seconds.toFixed(1)} s: ` +
                `${result.fps.toFixed(1)} fps, ${detections} detections; per frame convert ` +
                `${result.per_frame_ms.convert.toFixed(1)} ms, run ${result.per_frame_ms.run.toFixed(1)} ms, decode ` +
                `${result.per_frame_ms.decode.toFixed(1)} ms` +
                (options.realtime ? `; latency p50 ${result.latency_p50_ms.toFixed(0)} ms, p99 ` +
                                    `${result.latency_p99_ms.toFixed(0)} ms` : ''));
  }
}

main().catch((error) => fail(error.stack ?? error.message ?? String(error)));
