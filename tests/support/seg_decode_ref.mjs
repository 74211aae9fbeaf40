#!/usr/bin/env node
// Independent reference for YOLOv8-seg's decode (src/models/tasks/yolov8_seg.cpp), used by
// tests/models/segmentation_ort_test.cpp on ONNX Runtime's outputs (tests/support/ort_run.mjs). Written from
// Ultralytics' code (ultralytics/utils/ops.py: non_max_suppression, process_mask with upsample=True, crop_mask;
// data/augment.py LetterBox), not from vapipe's:
//   - a candidate's score is its best class score, kept when > CONF; boxes cx, cy, w, h -> corners;
//   - NMS per class (torchvision.ops.nms: drop IoU > IOU with a kept higher one), at most 300 kept;
//   - mask: sigmoid(coefficients . prototypes) on the whole prototype map, zero outside the box scaled to it
//     (cell index i kept where x1 <= i < x2), bilinear upsampling to the input (align_corners=False), > 0.5;
//   - into the source image: LetterBox's geometry (r = min(H/h, W/w), the resized size rounded half to even,
//     padding left = round(dw / 2 - 0.1), top likewise); each source pixel takes the input pixel its centre
//     falls in.
//
//   node tests/support/seg_decode_ref.mjs ORT_DIR CONF IOU SOURCE_WIDTH SOURCE_HEIGHT
//
// ORT_DIR: ort_run.mjs's output folder (outputs.json: the [1, 4 + nc + nm, N] boxes and [1, nm, mh, mw]
// prototypes). Prints JSON: [{class_id, score, box: [x1, y1, x2, y2] in input pixels, mask: {size: [H, W],
// counts}}] by descending score, mask over the whole source image as COCO's uncompressed RLE (column-major,
// first run of 0).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const [dir, confText, iouText, widthText, heightText] = process.argv.slice(2);
if (!dir || !confText || !iouText || !widthText || !heightText) {
  console.error('usage: node tests/support/seg_decode_ref.mjs ORT_DIR CONF IOU SOURCE_WIDTH SOURCE_HEIGHT');
  process.exit(2);
}
const conf = Number(confText);
const iouThreshold = Number(iouText);
const sourceWidth = Number(widthText);
const sourceHeight = Number(heightText);

const listing = JSON.parse(readFileSync(path.join(dir, 'outputs.json'), 'utf8')).outputs;
const read = (entry) => {
  const bytes = readFileSync(entry.file);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
};
const boxEntry = listing.find((o) => o.shape.length === 3);
const protoEntry = listing.find((o) => o.shape.length === 4);
if (!boxEntry || !protoEntry) {
  console.error(`seg_decode_ref: expected a 3-D and a 4-D output, got ${JSON.stringify(listing)}`);
  process.exit(2);
}
const boxes = read(boxEntry);
const protos = read(protoEntry);
const [, rows, anchors] = boxEntry.shape;
const [, nm, mh, mw] = protoEntry.shape;
const nc = rows - 4 - nm;
// The input size: the prototypes are a quarter of it (Ultralytics' Proto upsamples stride 8 by 2).
const inputWidth = mw * 4;
const inputHeight = mh * 4;
const at = (row, anchor) => boxes[row * anchors + anchor];

// Candidates.
const candidates = [];
for (let a = 0; a < anchors; ++a) {
  let best = 0;
  for (let c = 1; c < nc; ++c) if (at(4 + c, a) > at(4 + best, a)) best = c;
  const score = at(4 + best, a);
  if (!(score > conf)) continue;
  const [cx, cy, w, h] = [at(0, a), at(1, a), at(2, a), at(3, a)];
  candidates.push({ anchor: a, class_id: best, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] });
}

// NMS, class by class.
const iou = (p, q) => {
  const w = Math.max(0, Math.min(p[2], q[2]) - Math.max(p[0], q[0]));
  const h = Math.max(0, Math.min(p[3], q[3]) - Math.max(p[1], q[1]));
  const inter = w * h;
  const union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter;
  return union > 0 ? inter / union : 0;
};
candidates.sort((p, q) => q.score - p.score);
const kept = [];
for (const candidate of candidates) {
  if (kept.length >= 300) break;
  if (kept.some((k) => k.class_id === candidate.class_id && iou(k.box, candidate.box) > iouThreshold)) continue;
  kept.push(candidate);
}

// LetterBox geometry.
const roundHalfEven = (v) => {
  const floor = Math.floor(v);
  const fraction = v - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
};
const r = Math.min(inputHeight / sourceHeight, inputWidth / sourceWidth);
const resizedWidth = roundHalfEven(sourceWidth * r);
const resizedHeight = roundHalfEven(sourceHeight * r);
const left = roundHalfEven((inputWidth - resizedWidth) / 2 - 0.1);
const top = roundHalfEven((inputHeight - resizedHeight) / 2 - 0.1);

// PyTorch's bilinear source index (align_corners=False).
function source(p, size, outSize) {
  const s = Math.max(0, (size / outSize) * (p + 0.5) - 0.5);
  const i0 = Math.floor(s);
  return { i0, i1: i0 < size - 1 ? i0 + 1 : i0, lambda: s - i0 };
}

function maskOf(detection) {
  const [x1, y1, x2, y2] = detection.box;
  const sx = mw / inputWidth;
  const sy = mh / inputHeight;
  const low = new Float32Array(mw * mh);
  for (let j = 0; j < mh; ++j) {
    for (let i = 0; i < mw; ++i) {
      if (!(i >= x1 * sx && i < x2 * sx && j >= y1 * sy && j < y2 * sy)) continue;
      let sum = 0;
      for (let k = 0; k < nm; ++k) sum += at(4 + nc + k, detection.anchor) * protos[(k * mh + j) * mw + i];
      low[j * mw + i] = 1 / (1 + Math.exp(-sum));
    }
  }
  const input = new Uint8Array(inputWidth * inputHeight);
  for (let y = 0; y < inputHeight; ++y) {
    const v = source(y, mh, inputHeight);
    for (let x = 0; x < inputWidth; ++x) {
      const u = source(x, mw, inputWidth);
      const value = (1 - v.lambda) * ((1 - u.lambda) * low[v.i0 * mw + u.i0] + u.lambda * low[v.i0 * mw + u.i1]) +
        v.lambda * ((1 - u.lambda) * low[v.i1 * mw + u.i0] + u.lambda * low[v.i1 * mw + u.i1]);
      input[y * inputWidth + x] = value > 0.5 ? 1 : 0;
    }
  }
  // Source pixels, column-major RLE.
  const counts = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < sourceWidth; ++x) {
    const inputX = Math.floor(left + ((x + 0.5) * resizedWidth) / sourceWidth);
    for (let y = 0; y < sourceHeight; ++y) {
      const inputY = Math.floor(top + ((y + 0.5) * resizedHeight) / sourceHeight);
      const value = input[inputY * inputWidth + inputX];
      if (value !== current) {
        counts.push(run);
        current = value;
        run = 0;
      }
      ++run;
    }
  }
  counts.push(run);
  return { size: [sourceHeight, sourceWidth], counts };
}

const result = kept.map((d) => ({ class_id: d.class_id, score: d.score, box: d.box, mask: maskOf(d) }));
process.stdout.write(JSON.stringify(result) + '\n');
