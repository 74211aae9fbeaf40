#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU execution provider) side of the end-to-end benchmark: the same model,
// batch and thread count as `vapipe bench`, timed the same way (warm-up, then the median of R runs), and
// printed in the same format so bench/run.sh can put the two side by side.
//
//   node bench/ort_bench.mjs MODEL.onnx [--batch B] [--threads T] [--runs R] [--warmup W] [--seed S] [--json]
//                                [--input-size WxH]
//
// Output: `median_ms=.. p90_ms=.. per_image_ms=..`, or with --json one JSON object with the keys of
// `vapipe bench --json` (median_ms, p90_ms, per_image_ms, batch, threads, peak_rss_mb) plus runtime details.
// Exit status 3 means ONNX Runtime refused the batch (a static batch-1 export run at batch > 1): the model
// cannot run that batch in ORT as exported, and the caller must say so rather than fake it.
// --input-size fills an input's symbolic height and width (its last two axes), as `vapipe compile --input-size`.
import { createRequire } from 'node:module';
import process from 'node:process';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const kExitUsage = 2;
const kExitBatchRefused = 3;

function usage(message) {
  if (message) console.error(`ort_bench: ${message}`);
  console.error(
      'usage: node bench/ort_bench.mjs MODEL.onnx [--batch B] [--threads T] [--runs R] [--warmup W] [--seed S] [--json]' +
      ' [--input-size WxH]');
  process.exit(kExitUsage);
}

function parse_args(argv) {
  const options = { model: null, batch: 1, threads: 1, runs: 50, warmup: 5, seed: 1, json: false, size: null };
  const integer_flags = { '--batch': 'batch', '--threads': 'threads', '--runs': 'runs', '--warmup': 'warmup',
                          '--seed': 'seed' };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    if (arg === '--json') {
      options.json = true;
    } else if (arg === '--input-size') {
      const match = /^(\d+)x(\d+)$/.exec(argv[++i] ?? '');
      if (!match) usage(`--input-size needs WxH, got '${argv[i]}'`);
      options.size = { width: Number(match[1]), height: Number(match[2]) };
    } else if (arg === '-h' || arg === '--help') {
      usage();
    } else if (arg in integer_flags) {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 0) usage(`${arg} needs a non-negative integer, got '${argv[i]}'`);
      options[integer_flags[arg]] = value;
    } else if (arg.startsWith('-')) {
      usage(`unknown option '${arg}'`);
    } else if (options.model === null) {
      options.model = arg;
    } else {
      usage(`unexpected argument '${arg}'`);
    }
  }
  if (options.model === null) usage('no model given');
  if (options.batch < 1 || options.threads < 1 || options.runs < 1) usage('--batch, --threads and --runs must be >= 1');
  return options;
}

// Deterministic uniform [0, 1) values (mulberry32), so every run feeds the same "image".
function make_random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// IEEE 754 binary16 bits of a float in [0, 1) (normal range only is enough for image data).
function to_half_bits(value) {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  if (exponent <= 0) return sign;
  if (exponent >= 31) return sign | 0x7c00;
  return sign | (exponent << 10) | ((bits >>> 13) & 0x3ff);
}

function make_input(ort, metadata, batch, size, random) {
  if (!metadata.isTensor) throw new Error(`input '${metadata.name}' is not a tensor`);
  const rank = metadata.shape.length;
  const shape = metadata.shape.map((dim, axis) => {
    if (axis === 0) return batch;
    if (typeof dim === 'number' && dim > 0) return dim;
    if (size && axis === rank - 2) return size.height;
    if (size && axis === rank - 1) return size.width;
    throw new Error(`input '${metadata.name}' has a symbolic dimension ${axis} ('${dim}'): give --input-size WxH`);
  });
  const count = shape.reduce((a, b) => a * b, 1);
  let data;
  if (metadata.type === 'float32') {
    data = new Float32Array(count);
    for (let i = 0; i < count; ++i) data[i] = random();
  } else if (metadata.type === 'float16') {
    data = new Uint16Array(count);
    for (let i = 0; i < count; ++i) data[i] = to_half_bits(random());
  } else {
    throw new Error(`input '${metadata.name}' has type ${metadata.type}; only float32 and float16 are fed`);
  }
  return new ort.Tensor(metadata.type, data, shape);
}

// The same rule as `vapipe bench` (apps/vapipe/cmd_bench.cpp): the value at rank round(fraction * (n - 1)) of
// the sorted times, so the two tools' medians and p90s are comparable.
function percentile(sorted, fraction) {
  const index = Math.floor(fraction * (sorted.length - 1) + 0.5);
  return sorted[Math.min(index, sorted.length - 1)];
}

async function main() {
  const options = parse_args(process.argv.slice(2));
  const ort = require('onnxruntime-node');
  const ort_version = require('onnxruntime-node/package.json').version;

  const session = await ort.InferenceSession.create(options.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const static_batch = session.inputMetadata.map((m) => m.shape[0]).find((d) => typeof d === 'number' && d > 0);
  const random = make_random(options.seed);
  const feeds = {};
  for (const metadata of session.inputMetadata) feeds[metadata.name] = make_input(ort, metadata, options.batch, options.size, random);

  try {
    await session.run(feeds);
  } catch (error) {
    const reason = String(error.message ?? error).replace(/\s+/g, ' ').trim();
    if (options.json) {
      console.log(JSON.stringify({ error: 'batch_refused', batch: options.batch, threads: options.threads,
                                   static_batch: static_batch ?? null, message: reason }));
    }
    console.error(`ort_bench: ONNX Runtime refused batch ${options.batch} on ${options.model}` +
                  (static_batch ? ` (its input has a static batch of ${static_batch})` : '') + `: ${reason}`);
    process.exit(kExitBatchRefused);
  }
  for (let i = 1; i < options.warmup; ++i) await session.run(feeds);

  const times_ms = [];
  for (let i = 0; i < options.runs; ++i) {
    const start = performance.now();
    await session.run(feeds);
    times_ms.push(performance.now() - start);
  }
  times_ms.sort((a, b) => a - b);
  const median_ms = percentile(times_ms, 0.5);
  const result = {
    median_ms: Number(median_ms.toFixed(3)),
    p90_ms: Number(percentile(times_ms, 0.9).toFixed(3)),
    per_image_ms: Number((median_ms / options.batch).toFixed(3)),
    min_ms: Number(times_ms[0].toFixed(3)),
    batch: options.batch,
    threads: options.threads,
    // maxRSS is in KiB on Linux; it includes Node itself (about 40-50 MB), which is part of what ORT costs here.
    peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    runs: options.runs,
    runtime: `onnxruntime-node ${ort_version} (CPU EP)`,
    model: options.model,
  };
  await session.release();
  if (options.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`median_ms=${result.median_ms.toFixed(3)} p90_ms=${result.p90_ms.toFixed(3)} ` +
                `per_image_ms=${result.per_image_ms.toFixed(3)}`);
  }
}

main().catch((error) => {
  console.error(`ort_bench: ${error.message ?? error}`);
  process.exit(1);
});
