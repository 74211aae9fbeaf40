#!/usr/bin/env node
// ONNX Runtime plus a reference decode of the anchor-free COCO detectors, for comparing vapipe's detections
// with ORT's (tests/models/detector_tasks_test.cpp, docs/postprocessing.md "Checked against ONNX Runtime"):
// runs MODEL.onnx (onnxruntime-node, CPU, 1 thread) on one preprocessed input and decodes the outputs as the
// models' authors do, written from their code independently of vapipe's decoders, class-aware NMS included.
//
//   node bench/ort_detect.mjs MODEL.onnx TASK INPUT.f32 NxCxHxW CONF IOU
//
// TASK: yolov8 (the export's own decode: [1, 4 + nc, N] cx, cy, w, h, class scores) | yolox ([1, N, 5 + nc]
// raw, YOLOX's demo_postprocess) | gfl (NanoDet's cls_pred/dis_pred per stride, gfl_head.get_bboxes_single).
// INPUT.f32: the network input as little-endian float32. Prints [{class_id, score, box: [x1, y1, x2, y2]}] by
// falling score, in network input pixels. Exit status 4: onnxruntime-node is not installed.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import process from 'node:process';

let ort;
try {
  ort = createRequire(import.meta.url)('onnxruntime-node');
} catch (error) {
  console.error(`ort_detect: onnxruntime-node is not installed (${error.message.split('\n')[0]})`);
  process.exit(4);
}
const [model, task, inputFile, shapeText, confText, iouText] = process.argv.slice(2);
if (!model || !['yolov8', 'yolox', 'gfl'].includes(task) || !iouText) {
  console.error('usage: node bench/ort_detect.mjs MODEL.onnx yolov8|yolox|gfl INPUT.f32 NxCxHxW CONF IOU');
  process.exit(2);
}
const shape = shapeText.split('x').map(Number);
const [conf, iou] = [Number(confText), Number(iouText)];
const [height, width] = [shape[2], shape[3]];
const bytes = readFileSync(inputFile);
const input = Float32Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));

const session = await ort.InferenceSession.create(
    model, { intraOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
const results = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, shape) });

const argmax = (values, start, count, step = 1) => {
  let best = 0;
  for (let c = 1; c < count; ++c) if (values[start + c * step] > values[start + best * step]) best = c;
  return best;
};
const candidates = [];
if (task === 'yolov8') {
  // Ultralytics' ops.non_max_suppression: the best class's score above conf, boxes cx, cy, w, h.
  const { data, dims } = results[session.outputNames[0]];
  const [features, count] = [dims[1], dims[2]];
  for (let i = 0; i < count; ++i) {
    const best = argmax(data, 4 * count + i, features - 4, count);
    const score = data[(4 + best) * count + i];
    if (!(score > conf)) continue;
    const [cx, cy, w, h] = [0, 1, 2, 3].map((k) => data[k * count + i]);
    candidates.push({ class_id: best, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] });
  }
} else if (task === 'yolox') {
  // YOLOX demo_postprocess + multiclass_nms (class-aware): grids of strides 8, 16, 32 row-major.
  const { data, dims } = results[session.outputNames[0]];
  const columns = dims[2];
  let row = 0;
  for (const stride of [8, 16, 32]) {
    const [gw, gh] = [width / stride, height / stride];
    for (let gy = 0; gy < gh; ++gy) {
      for (let gx = 0; gx < gw; ++gx, ++row) {
        const at = row * columns;
        const best = argmax(data, at + 5, columns - 5);
        const score = data[at + 4] * data[at + 5 + best];
        if (!(score > conf)) continue;
        const cx = (data[at] + gx) * stride, cy = (data[at + 1] + gy) * stride;
        const w = Math.exp(data[at + 2]) * stride, h = Math.exp(data[at + 3]) * stride;
        candidates.push({ class_id: best, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] });
      }
    }
  }
} else {
  // NanoDet's GFL head: softmax over the bins of each side, the expectation times the stride from the cell
  // centre ((x + 0.5) * stride), the box clipped to the input.
  for (const stride of [8, 16, 32]) {
    const cls = results[`cls_pred_stride_${stride}`];
    const dis = results[`dis_pred_stride_${stride}`];
    const classes = cls.dims[2], bins = dis.dims[2] / 4, gw = width / stride;
    for (let i = 0; i < cls.dims[1]; ++i) {
      const best = argmax(cls.data, i * classes, classes);
      const score = cls.data[i * classes + best];
      if (!(score > conf)) continue;
      const distance = [0, 1, 2, 3].map((side) => {
        const start = i * 4 * bins + side * bins;
        const logits = Array.from(dis.data.subarray(start, start + bins));
        const top = Math.max(...logits);
        const e = logits.map((v) => Math.exp(v - top));
        const sum = e.reduce((a, b) => a + b, 0);
        return e.reduce((a, v, k) => a + (k * v) / sum, 0) * stride;
      });
      const cx = ((i % gw) + 0.5) * stride, cy = (Math.floor(i / gw) + 0.5) * stride;
      const clip = (v, max) => Math.min(Math.max(v, 0), max);
      candidates.push({ class_id: best, score, box: [clip(cx - distance[0], width), clip(cy - distance[1], height),
                                                     clip(cx + distance[2], width), clip(cy + distance[3], height)] });
    }
  }
}

// Class-aware greedy NMS (torchvision.ops.batched_nms): a box goes when its IoU with a kept box of its class
// is above `iou`.
const area = (b) => Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
const overlap = (a, b) => {
  const inter = area([Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.min(a[2], b[2]), Math.min(a[3], b[3])]);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
};
const kept = [];
for (const candidate of candidates.sort((a, b) => b.score - a.score)) {
  if (kept.every((k) => k.class_id !== candidate.class_id || !(overlap(k.box, candidate.box) > iou)))
    kept.push(candidate);
}
console.log(JSON.stringify(kept.slice(0, 300)));
