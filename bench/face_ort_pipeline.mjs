#!/usr/bin/env node
// The ONNX Runtime peer of vapipe's face recognition chain: a hand-written pipeline running the same two models
// (SCRFD-500M detection with 5 landmarks, MobileFaceNet embedding) on N channels of a video file, with the
// pre- and post-processing vapipe uses, so bench/face.sh can compare whole-run throughput in one invocation.
//
//   node bench/face_ort_pipeline.mjs [--channels N] [--threads T] [--video F] [--gallery DIR] [--models DIR]
//                                    [--threshold COS] [--max-frames N] [--spin] [--json]
//
// Per channel, one ffmpeg child decodes the video to raw BGR on a pipe (each channel decodes, as each of
// vapipe's channels does). Per frame: letterbox to 640x640 (centred, pad 0, RGB, (x-127.5)/128: the metadata
// of src/models/tasks/scrfd.cpp), SCRFD, the authors' decode (strides 8/16/32, 2 anchors per cell, score > 0.5),
// vapipe's NMS (IoU > 0.4 drops), boxes and landmarks mapped back; for every face the ArcFace 5-point
// similarity alignment to 112x112 (insightface face_align.norm_crop), MobileFaceNet (batch 1: one run per
// face), L2 normalization, and the best cosine against a gallery built the same way at start from the largest
// face of each image in --gallery (name = file stem). fps = frames of all channels / wall seconds of the video
// part (sessions and gallery excluded, as vapipe's run time excludes loading its package). Having no tracker,
// the peer embeds every face of every frame and names each face on its own (vapipe reuses a track's embedding
// for 5 frames and names a track by vote); bench/face.sh reports both embedding counts.
//
// Output: a summary (frames, faces, fps, per-identity frame counts of channel 0, cosine statistics), or with
// --json one JSON object for bench/face.sh.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { check_tool, make_fail, parse_flags, probe_size, read_image, VideoChannel } from './ort_video.mjs';

const require = createRequire(import.meta.url);
const kExitUsage = 2;
const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// SCRFD (src/models/tasks/scrfd.cpp): input size, strides, anchors per cell, default score and IoU thresholds.
const kDetSize = 640;
const kStrides = [8, 16, 32];
const kAnchorsPerCell = 2;
const kScoreThreshold = 0.5;
const kIouThreshold = 0.4;
// ArcFace's 112x112 five-point template (insightface utils/face_align.py, arcface_dst).
const kCropSize = 112;
const kArcfaceTemplate = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                          [70.7299, 92.2041]];
const kImageExtensions = new Set(['.jpg', '.jpeg', '.png']);

function usage(message) {
  if (message) console.error(`face_ort_pipeline: ${message}`);
  console.error('usage: node bench/face_ort_pipeline.mjs [--channels N] [--threads T] [--video F] [--gallery DIR]\n' +
                '         [--models DIR] [--threshold COS] [--max-frames N] [--spin] [--json]');
  process.exit(kExitUsage);
}

const fail = make_fail('face_ort_pipeline');

function parse_args(argv) {
  const models = process.env.VAPIPE_MODELS ?? path.join(repo_root, '..', 'shared', 'models');
  const data = path.join(repo_root, '..', 'shared', 'data', 'faces');
  const options = { channels: 4, threads: 2, video: path.join(data, 'video_chunk_6s.mp4'), gallery: data, models,
                    threshold: 0.5, max_frames: 0, spin: false, json: false };
  const cosine = (text) => {
    const value = Number(text);
    return Number.isFinite(value) && value >= -1 && value <= 1 ? value : undefined;
  };
  parse_flags(argv, options, {
    '--channels': ['channels', 'integer'], '--threads': ['threads', 'integer'], '--max-frames': ['max_frames', 'integer'],
    '--video': ['video', 'string'], '--gallery': ['gallery', 'string'], '--models': ['models', 'string'],
    '--threshold': ['threshold', cosine], '--json': ['json', 'boolean'], '--spin': ['spin', 'boolean'] }, usage);
  if (options.channels < 1 || options.threads < 1) usage('--channels and --threads must be >= 1');
  return options;
}


// ---- Detection ------------------------------------------------------------------------------------------

// C's nearbyint under the default rounding mode (half to even), as vision/letterbox.cpp rounds.
function round_half_even(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// vision::compute_letterbox: scale to fit, centred.
function letterbox_geometry(width, height) {
  const ratio = Math.min(kDetSize / width, kDetSize / height);
  const resized_width = Math.min(Math.max(round_half_even(width * ratio), 1), kDetSize);
  const resized_height = Math.min(Math.max(round_half_even(height * ratio), 1), kDetSize);
  return {
    resized_width, resized_height,
    pad_x: round_half_even((kDetSize - resized_width) / 2 - 0.1),
    pad_y: round_half_even((kDetSize - resized_height) / 2 - 0.1),
    scale_x: resized_width / width, scale_y: resized_height / height, width, height,
  };
}

// Source taps and weights of each destination pixel of one axis, cv::resize's bilinear rule (pixel centres).
function resize_taps(destination, source) {
  const ratio = source / destination;
  const first = new Int32Array(destination), second = new Int32Array(destination);
  const weight = new Float32Array(destination);
  for (let d = 0; d < destination; ++d) {
    const position = Math.min(Math.max((d + 0.5) * ratio - 0.5, 0), source - 1);
    first[d] = Math.floor(position);
    second[d] = Math.min(first[d] + 1, source - 1);
    weight[d] = position - first[d];
  }
  return { first, second, weight };
}

// BGR image -> 1x3x640x640 RGB planar, (x - 127.5) / 128, letterboxed with pad 0 (SCRFD's metadata).
function preprocess_detection(image, geometry, output) {
  const plane = kDetSize * kDetSize;
  const pad = (0 - 127.5) / 128;
  output.fill(pad);
  const { resized_width, resized_height, pad_x, pad_y } = geometry;
  const { data, width } = image;
  if (resized_width === image.width && resized_height === image.height) {
    // Scale 1 (the 640x360 video): the bilinear weights are all 0, so a plain copy gives the same tensor.
    for (let y = 0; y < resized_height; ++y) {
      let source = y * width * 3;
      let target = (y + pad_y) * kDetSize + pad_x;
      for (let x = 0; x < resized_width; ++x, source += 3, ++target) {
        output[target] = (data[source + 2] - 127.5) / 128;
        output[plane + target] = (data[source + 1] - 127.5) / 128;
        output[2 * plane + target] = (data[source] - 127.5) / 128;
      }
    }
    return;
  }
  const xs = resize_taps(resized_width, image.width);
  const ys = resize_taps(resized_height, image.height);
  for (let y = 0; y < resized_height; ++y) {
    const row0 = ys.first[y] * width * 3, row1 = ys.second[y] * width * 3, wy = ys.weight[y];
    let target = (y + pad_y) * kDetSize + pad_x;
    for (let x = 0; x < resized_width; ++x, ++target) {
      const c0 = xs.first[x] * 3, c1 = xs.second[x] * 3, wx = xs.weight[x];
      for (let c = 0; c < 3; ++c) {
        const top = data[row0 + c0 + c] * (1 - wx) + data[row0 + c1 + c] * wx;
        const bottom = data[row1 + c0 + c] * (1 - wx) + data[row1 + c1 + c] * wx;
        output[(2 - c) * plane + target] = (top * (1 - wy) + bottom * wy - 127.5) / 128;
      }
    }
  }
}

// The authors' decode (insightface scrfd.py; vapipe's ScrfdDecoder): every cell's corner (x*s, y*s) twice, one
// per anchor; box = distances * stride, landmarks = offsets * stride, in network input pixels.
function decode_scrfd(outputs) {
  const candidates = [];
  for (const stride of kStrides) {
    const scores = outputs[`score_${stride}`].data;
    const boxes = outputs[`bbox_${stride}`].data;
    const points = outputs[`kps_${stride}`].data;
    const grid_width = kDetSize / stride;
    for (let row = 0; row < scores.length; ++row) {
      if (!(scores[row] > kScoreThreshold)) continue;
      const cell = Math.floor(row / kAnchorsPerCell);
      const cx = (cell % grid_width) * stride, cy = Math.floor(cell / grid_width) * stride;
      const b = row * 4, p = row * 10;
      const landmarks = [];
      for (let k = 0; k < 5; ++k)
        landmarks.push([cx + points[p + 2 * k] * stride, cy + points[p + 2 * k + 1] * stride]);
      candidates.push({ score: scores[row], x1: cx - boxes[b] * stride, y1: cy - boxes[b + 1] * stride,
                        x2: cx + boxes[b + 2] * stride, y2: cy + boxes[b + 3] * stride, landmarks });
    }
  }
  return candidates;
}

// vapipe's greedy NMS (models/nms.cpp): by score, descending (stable: ties keep decode order); a box is dropped
// when inter > t * union with a kept one.
function nms(candidates) {
  const sorted = candidates.map((c, i) => [c, i])
                     .sort((a, b) => b[0].score - a[0].score || a[1] - b[1])
                     .map((e) => e[0]);
  const kept = [];
  for (const c of sorted) {
    const area = Math.max(c.x2 - c.x1, 0) * Math.max(c.y2 - c.y1, 0);
    const overlaps = kept.some((k) => {
      const w = Math.min(c.x2, k.x2) - Math.max(c.x1, k.x1), h = Math.min(c.y2, k.y2) - Math.max(c.y1, k.y1);
      const inter = w > 0 && h > 0 ? w * h : 0;
      const union = area + Math.max(k.x2 - k.x1, 0) * Math.max(k.y2 - k.y1, 0) - inter;
      return inter > kIouThreshold * union;
    });
    if (!overlaps) kept.push(c);
  }
  return kept;
}

// LetterboxTransform::map_back / map_point_back: out of the letterbox, clamped to the image.
function map_back(face, g) {
  const bx = (x) => Math.min(Math.max((x - g.pad_x) / g.scale_x, 0), g.width);
  const by = (y) => Math.min(Math.max((y - g.pad_y) / g.scale_y, 0), g.height);
  return { score: face.score, x1: bx(face.x1), y1: by(face.y1), x2: bx(face.x2), y2: by(face.y2),
           landmarks: face.landmarks.map(([x, y]) => [bx(x), by(y)]) };
}

class FaceDetector {
  constructor(session, width, height) {
    this.session = session;
    this.input_name = session.inputNames[0];
    this.geometry = letterbox_geometry(width, height);
    this.input = new Float32Array(3 * kDetSize * kDetSize);
  }

  async detect(ort, image, timings) {
    let t = performance.now();
    preprocess_detection(image, this.geometry, this.input);
    timings.det_pre += performance.now() - t;
    t = performance.now();
    const input = new ort.Tensor('float32', this.input, [1, 3, kDetSize, kDetSize]);
    const outputs = await this.session.run({ [this.input_name]: input });
    timings.det_run += performance.now() - t;
    t = performance.now();
    const faces = nms(decode_scrfd(outputs)).map((f) => map_back(f, this.geometry));
    timings.det_post += performance.now() - t;
    return faces;
  }
}

// ---- Alignment and embedding ----------------------------------------------------------------------------

// The least-squares similarity (scale, rotation, translation; no reflection) taking the landmarks onto the
// template. In 2D this closed form is exactly Umeyama's estimate, which insightface's norm_crop gets from
// skimage's SimilarityTransform: with demeaned points p (source) and q (template), a = sum(p.q) / sum|p|^2,
// b = sum(p x q) / sum|p|^2, and the map is [a -b; b a] p + t. Returns [m00, m01, m02, m10, m11, m12].
function similarity_to_template(landmarks) {
  let msx = 0, msy = 0, mdx = 0, mdy = 0;
  for (let i = 0; i < 5; ++i) {
    msx += landmarks[i][0] / 5; msy += landmarks[i][1] / 5;
    mdx += kArcfaceTemplate[i][0] / 5; mdy += kArcfaceTemplate[i][1] / 5;
  }
  let dot = 0, cross = 0, norm = 0;
  for (let i = 0; i < 5; ++i) {
    const px = landmarks[i][0] - msx, py = landmarks[i][1] - msy;
    const qx = kArcfaceTemplate[i][0] - mdx, qy = kArcfaceTemplate[i][1] - mdy;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  }
  if (!(norm > 0)) return null;  // all five landmarks on one point: no alignment exists
  const a = dot / norm, b = cross / norm;
  return [a, -b, mdx - (a * msx - b * msy), b, a, mdy - (b * msx + a * msy)];
}

// cv2.warpAffine(image, M, (112, 112)) with bilinear taps and a constant 0 border (norm_crop's call), into a
// 1x3x112x112 RGB planar tensor, (x - 127.5) / 128 (MobileFaceNet's input).
function warp_to_crop(image, m, output) {
  const det = m[0] * m[4] - m[1] * m[3];
  // The inverse map: crop pixel -> image position (warpAffine samples at integer destination coordinates).
  const i00 = m[4] / det, i01 = -m[1] / det, i10 = -m[3] / det, i11 = m[0] / det;
  const i02 = -(i00 * m[2] + i01 * m[5]), i12 = -(i10 * m[2] + i11 * m[5]);
  const { data, width, height } = image;
  const plane = kCropSize * kCropSize;
  const tap = (x, y, c) => (x >= 0 && y >= 0 && x < width && y < height ? data[(y * width + x) * 3 + c] : 0);
  for (let y = 0; y < kCropSize; ++y) {
    for (let x = 0; x < kCropSize; ++x) {
      const sx = i00 * x + i01 * y + i02, sy = i10 * x + i11 * y + i12;
      const x0 = Math.floor(sx), y0 = Math.floor(sy);
      const wx = sx - x0, wy = sy - y0;
      const target = y * kCropSize + x;
      for (let c = 0; c < 3; ++c) {
        const top = tap(x0, y0, c) * (1 - wx) + tap(x0 + 1, y0, c) * wx;
        const bottom = tap(x0, y0 + 1, c) * (1 - wx) + tap(x0 + 1, y0 + 1, c) * wx;
        output[(2 - c) * plane + target] = (top * (1 - wy) + bottom * wy - 127.5) / 128;
      }
    }
  }
}

class FaceEmbedder {
  constructor(session) {
    this.session = session;
    this.input_name = session.inputNames[0];
    this.output_name = session.outputNames[0];
    this.input = new Float32Array(3 * kCropSize * kCropSize);
  }

  // The L2-normalized embedding of one face, or null when its landmarks admit no alignment.
  async embed(ort, image, face, timings) {
    let t = performance.now();
    const m = similarity_to_template(face.landmarks);
    if (!m) return null;
    warp_to_crop(image, m, this.input);
    timings.align += performance.now() - t;
    t = performance.now();
    const input = new ort.Tensor('float32', this.input, [1, 3, kCropSize, kCropSize]);
    const outputs = await this.session.run({ [this.input_name]: input });
    timings.emb_run += performance.now() - t;
    const raw = outputs[this.output_name].data;
    let norm = 0;
    for (const v of raw) norm += v * v;
    norm = Math.sqrt(norm) || 1;
    return Float32Array.from(raw, (v) => v / norm);
  }
}

// ---- Gallery --------------------------------------------------------------------------------------------

async function build_gallery(ort, detector_session, embedder, directory, log) {
  if (!fs.existsSync(directory)) fail(`gallery folder '${directory}' not found (--gallery)`);
  const files = fs.readdirSync(directory).filter((f) => kImageExtensions.has(path.extname(f).toLowerCase())).sort();
  const gallery = [];
  const unused = { det_pre: 0, det_run: 0, det_post: 0, align: 0, emb_run: 0 };
  for (const file of files) {
    const image = read_image(path.join(directory, file), fail);
    const detector = new FaceDetector(detector_session, image.width, image.height);
    const faces = await detector.detect(ort, image, unused);
    const largest = faces.reduce((best, f) => (!best || area(f) > area(best) ? f : best), null);
    const embedding = largest ? await embedder.embed(ort, image, largest, unused) : null;
    if (!embedding) {
      log(`gallery: no face in ${file}, skipped`);
      continue;
    }
    gallery.push({ name: path.parse(file).name, embedding, faces: faces.length });
  }
  if (!gallery.length) fail(`no face found in any image of '${directory}'`);
  return gallery;
}

function area(f) { return (f.x2 - f.x1) * (f.y2 - f.y1); }

function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; ++i) s += a[i] * b[i];
  return s;
}

// ---- Statistics -----------------------------------------------------------------------------------------

function quantile(values, q) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(Math.floor(q * (sorted.length - 1) + 0.5), sorted.length - 1)];
}

function summarize(values) {
  const r = (x) => (x === null ? null : Number(x.toFixed(3)));
  return { count: values.length, min: r(quantile(values, 0)), median: r(quantile(values, 0.5)),
           p99: r(quantile(values, 0.99)), max: r(quantile(values, 1)) };
}

// ---- Main -----------------------------------------------------------------------------------------------

async function main() {
  const options = parse_args(process.argv.slice(2));
  const log = options.json ? (line) => console.error(line) : (line) => console.log(line);
  const det_model = path.join(options.models, 'scrfd_500m_bnkps.onnx');
  const emb_model = path.join(options.models, 'mobilefacenet.onnx');
  for (const model of [det_model, emb_model])
    if (!fs.existsSync(model)) {
      fail(`model '${model}' not found: put the shared models beside the clone (../shared/models) or set ` +
           'VAPIPE_MODELS / --models');
    }
  if (!fs.existsSync(options.video)) fail(`video '${options.video}' not found (--video)`);
  check_tool('ffmpeg', fail);
  check_tool('ffprobe', fail);
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (error) {
    fail(`onnxruntime-node is not installed (cd bench && npm ci --ignore-scripts): ${error.message}`);
  }
  const ort_version = require('onnxruntime-node/package.json').version;

  // As bench/ort_bench.mjs: CPU EP, T intra-op threads, sequential. The two sessions run one after the other
  // on the same thread, so ORT's default spin-waiting of one session's pool only burns the cores the other
  // session needs; without --spin the pools sleep when idle (measured faster on 2 cores, see
  // docs/performance.md).
  const session_options = {
    executionProviders: ['cpu'], intraOpNumThreads: options.threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: options.spin ? '1' : '0' } } },
  };
  const det_session = await ort.InferenceSession.create(det_model, session_options);
  const emb_session = await ort.InferenceSession.create(emb_model, session_options);
  const embedder = new FaceEmbedder(emb_session);

  const gallery_start = performance.now();
  const gallery = await build_gallery(ort, det_session, embedder, options.gallery, log);
  const gallery_seconds = (performance.now() - gallery_start) / 1000;

  const { width, height } = probe_size(options.video, fail);
  const timings = { det_pre: 0, det_run: 0, det_post: 0, align: 0, emb_run: 0 };
  const detector = new FaceDetector(det_session, width, height);
  const start = performance.now();
  const channels = Array.from({ length: options.channels },
                              () => new VideoChannel(options.video, width * height * 3, fail, { max_frames: options.max_frames }));
  let frames = 0, faces = 0, embeddings = 0;
  const frames_of = new Array(options.channels).fill(0);
  // Per channel: identity -> frames showing it (a name counts once per frame).
  const identity_frames = Array.from({ length: options.channels }, () => new Map());
  const matched = new Map();  // identity -> best cosines of its faces
  const unknown_best = [];    // best cosine of faces under the threshold
  const others = [];          // cosines of every face to the gallery entries other than its best
  // identity -> sum over its faces of the cosine to each gallery entry: which other entries (the same person's
  // other photos) come close, to tell a duplicate in the gallery from a true non-match.
  const profile = new Map();
  // Round robin over the channels, one frame each, as vapipe's batcher takes the channels in turn.
  let live = channels.map((c, i) => i);
  while (live.length) {
    const still = [];
    for (const index of live) {
      const image = { data: await channels[index].next(), width, height };
      if (!image.data) continue;
      still.push(index);
      ++frames;
      ++frames_of[index];
      const found = await detector.detect(ort, image, timings);
      faces += found.length;
      const names = new Set();
      for (const face of found) {
        const embedding = await embedder.embed(ort, image, face, timings);
        if (!embedding) continue;
        ++embeddings;
        let best = -2, best_index = -1;
        const cosines = gallery.map((g) => dot(embedding, g.embedding));
        cosines.forEach((c, i) => { if (c > best) { best = c; best_index = i; } });
        cosines.forEach((c, i) => { if (i !== best_index) others.push(c); });
        const label = best >= options.threshold ? gallery[best_index].name : 'unknown';
        if (!profile.has(label)) profile.set(label, { faces: 0, sums: new Float64Array(gallery.length) });
        ++profile.get(label).faces;
        cosines.forEach((c, i) => { profile.get(label).sums[i] += c; });
        if (best >= options.threshold) {
          const name = gallery[best_index].name;
          names.add(name);
          if (!matched.has(name)) matched.set(name, []);
          matched.get(name).push(best);
        } else {
          names.add('unknown');
          unknown_best.push(best);
        }
      }
      for (const name of names) identity_frames[index].set(name, (identity_frames[index].get(name) ?? 0) + 1);
    }
    live = still;
  }
  const seconds = (performance.now() - start) / 1000;
  await det_session.release();
  await emb_session.release();

  // Every channel decodes the same file, so their identity counts must agree; say so when they do not.
  const key = (m) => JSON.stringify([...m].sort());
  const channels_agree = identity_frames.every((m) => key(m) === key(identity_frames[0]));
  const identities = Object.fromEntries([...identity_frames[0]].sort((a, b) => b[1] - a[1]));
  const result = {
    frames, faces, embeddings, seconds: Number(seconds.toFixed(2)), fps: Number((frames / seconds).toFixed(1)),
    channels: options.channels, threads: options.threads, frames_per_channel: frames_of[0], channels_agree,
    identity_frames_channel0: identities,
    cosine: {
      matched: Object.fromEntries([...matched].map(([name, values]) => [name, summarize(values)])),
      unknown_best: summarize(unknown_best), non_best: summarize(others),
      // identity -> its three closest gallery entries by mean cosine over its faces
      closest: Object.fromEntries([...profile].map(([name, { faces: n, sums }]) => [
        name, [...sums].map((sum, i) => [gallery[i].name, Number((sum / n).toFixed(3))])
                  .sort((a, b) => b[1] - a[1]).slice(0, 3)])),
    },
    threshold: options.threshold, gallery: gallery.map((g) => g.name),
    gallery_seconds: Number(gallery_seconds.toFixed(2)),
    stage_ms_per_frame: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Number((v / frames).toFixed(2))])),
    peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    spin: options.spin, runtime: `onnxruntime-node ${ort_version} (CPU EP)`,
  };
  if (options.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`gallery: ${gallery.length} identities in ${result.gallery_seconds} s ` +
              `(${gallery.map((g) => g.name).join(' ')})`);
  console.log(`ort face pipeline: ${options.channels} channel(s) x ${frames_of[0]} frames, ${options.threads} thread(s): ` +
              `${frames} frames, ${faces} faces, ${embeddings} embeddings in ${result.seconds} s = ${result.fps} fps`);
  console.log(`per frame (ms): ${Object.entries(result.stage_ms_per_frame).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`frames showing each identity (channel 0, of ${frames_of[0]}; cosine >= ${options.threshold}):` +
              (channels_agree ? '' : ' WARNING: the channels disagree'));
  for (const [name, count] of Object.entries(identities)) {
    const s = result.cosine.matched[name];
    const closest = result.cosine.closest[name].map(([g, c]) => `${g} ${c}`).join(', ');
    console.log(`  ${name.padEnd(8)} ${String(count).padStart(5)}` +
                (s ? `   cosine min ${s.min} median ${s.median} max ${s.max}` : '') + `; closest (mean): ${closest}`);
  }
  const u = result.cosine.unknown_best, o = result.cosine.non_best;
  console.log(`best cosine of unknown faces: median ${u.median}, max ${u.max} (${u.count} faces)`);
  console.log(`cosine to the other gallery entries: median ${o.median}, p99 ${o.p99}, max ${o.max}`);
  console.log(`peak RSS ${result.peak_rss_mb} MB; ${result.runtime}`);
}

main().catch((error) => fail(error.stack ?? error.message ?? String(error)));
