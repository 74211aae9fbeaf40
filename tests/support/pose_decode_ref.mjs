#!/usr/bin/env node
// Independent reference for the SimplePose heatmap decode (src/models/tasks/simplepose.cpp), used by
// tests/models/pose_test.cpp on ONNX Runtime's heatmaps. Written from the authors' recipe (gluoncv
// get_max_pred, then the SimpleBaselines quarter-pixel offset), not from vapipe's code:
//
//   node tests/support/pose_decode_ref.mjs HEATMAPS.f32 NxKxHxW STRIDE
//
// Prints JSON: [[{x, y, score} x K] per image], x and y in network input pixels.
import { readFileSync } from 'node:fs';
import process from 'node:process';

const [file, shapeText, strideText] = process.argv.slice(2);
if (!file || !shapeText || !strideText) {
  console.error('usage: node tests/support/pose_decode_ref.mjs HEATMAPS.f32 NxKxHxW STRIDE');
  process.exit(2);
}
const [n, k, h, w] = shapeText.split('x').map(Number);
const stride = Number(strideText);
const bytes = readFileSync(file);
const maps = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
if (maps.length !== n * k * h * w) {
  console.error(`pose_decode_ref: ${file} holds ${maps.length} floats, ${shapeText} needs ${n * k * h * w}`);
  process.exit(2);
}
const at = (base, x, y) => maps[base + y * w + x];
const images = [];
for (let image = 0; image < n; ++image) {
  const points = [];
  for (let joint = 0; joint < k; ++joint) {
    const base = (image * k + joint) * h * w;
    // np.argmax: the first of equal maxima in row-major order.
    let bestX = 0;
    let bestY = 0;
    for (let y = 0; y < h; ++y) {
      for (let x = 0; x < w; ++x) {
        if (at(base, x, y) > at(base, bestX, bestY)) {
          bestX = x;
          bestY = y;
        }
      }
    }
    let x = bestX;
    let y = bestY;
    // get_final_preds: px = floor(x + 0.5); shift by sign(diff) * 0.25 when 1 < px < w - 1 and 1 < py < h - 1.
    if (bestX > 1 && bestX < w - 1 && bestY > 1 && bestY < h - 1) {
      x += 0.25 * Math.sign(at(base, bestX + 1, bestY) - at(base, bestX - 1, bestY));
      y += 0.25 * Math.sign(at(base, bestX, bestY + 1) - at(base, bestX, bestY - 1));
    }
    points.push({ x: x * stride, y: y * stride, score: at(base, bestX, bestY) });
  }
  images.push(points);
}
process.stdout.write(JSON.stringify(images) + '\n');
