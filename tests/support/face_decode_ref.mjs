#!/usr/bin/env node
// The reference decode of the face detectors in tests: reads the outputs tests/support/ort_run.mjs wrote and
// decodes them as each detector's authors do, written from their code independently of vapipe's decoders
// (src/models/tasks/), NMS included (each with its authors' overlap rule).
//
//   node tests/support/face_decode_ref.mjs TASK ORT_DIR WIDTH HEIGHT CONF IOU
//
// TASK: scrfd | retinaface | yunet | ultraface; WIDTH x HEIGHT: the network input size. Prints
// [{score, box: [x1, y1, x2, y2], landmarks: [[x, y] x 5] (absent for ultraface)}] by falling score, in
// network input pixels.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const [task, dir, widthText, heightText, confText, iouText] = process.argv.slice(2);
if (!task || !dir || !iouText) {
  console.error('usage: node tests/support/face_decode_ref.mjs TASK ORT_DIR WIDTH HEIGHT CONF IOU');
  process.exit(2);
}
const [width, height, conf, iou] = [widthText, heightText, confText, iouText].map(Number);
const listing = JSON.parse(readFileSync(path.join(dir, 'outputs.json'), 'utf8')).outputs;
function output(name) {
  const entry = listing.find((o) => o.name === name);
  if (!entry) throw new Error(`face_decode_ref: no output '${name}' in ${dir}`);
  const bytes = readFileSync(entry.file);
  return { data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), shape: entry.shape };
}

// Greedy NMS by falling score; `overlap(a, b)` is the authors' IoU, a candidate goes when it is above `iou`.
function nms(candidates, overlap) {
  const order = [...candidates].sort((a, b) => b.score - a.score);
  const kept = [];
  for (const candidate of order)
    if (kept.every((k) => !(overlap(k, candidate) > iou))) kept.push(candidate);
  return kept;
}
// InsightFace's py_cpu_nms (SCRFD, RetinaFace): pixel-inclusive areas (+1).
function iouPlusOne(a, b) {
  const area = (f) => (f.box[2] - f.box[0] + 1) * (f.box[3] - f.box[1] + 1);
  const w = Math.max(0, Math.min(a.box[2], b.box[2]) - Math.max(a.box[0], b.box[0]) + 1);
  const h = Math.max(0, Math.min(a.box[3], b.box[3]) - Math.max(a.box[1], b.box[1]) + 1);
  return (w * h) / (area(a) + area(b) - w * h);
}
// UltraFace's box_utils.iou_of: plain areas, eps 1e-5.
function iouPlain(a, b) {
  const area = (box) => Math.max(0, box[2] - box[0]) * Math.max(0, box[3] - box[1]);
  const inter = area([Math.max(a.box[0], b.box[0]), Math.max(a.box[1], b.box[1]), Math.min(a.box[2], b.box[2]),
                      Math.min(a.box[3], b.box[3])]);
  return inter / (area(a.box) + area(b.box) - inter + 1e-5);
}
// OpenCV's FaceDetectorYN: cv::dnn::NMSBoxes on Rect2i(int(x1), int(y1), int(w), int(h)).
function iouOpenCvRect(a, b) {
  const rect = (f) => {
    const x = Math.trunc(f.box[0]), y = Math.trunc(f.box[1]);
    return [x, y, x + Math.trunc(f.box[2] - f.box[0]), y + Math.trunc(f.box[3] - f.box[1])];
  };
  const ra = rect(a), rb = rect(b);
  const w = Math.max(0, Math.min(ra[2], rb[2]) - Math.max(ra[0], rb[0]));
  const h = Math.max(0, Math.min(ra[3], rb[3]) - Math.max(ra[1], rb[1]));
  const areaA = (ra[2] - ra[0]) * (ra[3] - ra[1]), areaB = (rb[2] - rb[0]) * (rb[3] - rb[1]);
  return (w * h) / (areaA + areaB - w * h);
}

// insightface/detection/scrfd/tools/scrfd.py, SCRFD.forward: centres (x * s, y * s) repeated per anchor,
// distance2bbox and distance2kps scaled by the stride.
function scrfd() {
  const faces = [];
  for (const s of [8, 16, 32]) {
    const scores = output(`score_${s}`).data, boxes = output(`bbox_${s}`).data, kps = output(`kps_${s}`).data;
    const gw = width / s, gh = height / s, anchors = scores.length / (gw * gh);
    for (let y = 0; y < gh; ++y) {
      for (let x = 0; x < gw; ++x) {
        for (let a = 0; a < anchors; ++a) {
          const i = (y * gw + x) * anchors + a;
          if (!(scores[i] >= conf)) continue;
          const px = x * s, py = y * s, d = boxes.subarray(i * 4, i * 4 + 4).map((v) => v * s);
          const landmarks = [];
          for (let k = 0; k < 5; ++k) landmarks.push([px + kps[i * 10 + 2 * k] * s, py + kps[i * 10 + 2 * k + 1] * s]);
          faces.push({ score: scores[i], box: [px - d[0], py - d[1], px + d[2], py + d[3]], landmarks });
        }
      }
    }
  }
  return nms(faces, iouPlusOne);
}

// insightface/detection/retinaface/retinaface.py: generate_anchors_fpn (base 16, ratio 1, the stride's
// scales), anchors_plane (shifted by x * s, y * s), bbox_pred and landmark_pred on (h, w, a)-ordered rows,
// clip_boxes to the input. landmark_std 0.2: the shared mnet.25 export is InsightFace's model-zoo
// retinaface_mnet025_v2 (rac 'net3l'); with v1's 1.0 its landmarks land five times too far from the centre.
function retinaface() {
  const landmarkStd = 0.2;
  const cfg = { 32: [32, 16], 16: [8, 4], 8: [2, 1] };
  const faces = [];
  for (const s of [32, 16, 8]) {
    const cls = output(`face_rpn_cls_prob_reshape_stride${s}`);
    const bbox = output(`face_rpn_bbox_pred_stride${s}`).data;
    const lmk = output(`face_rpn_landmark_pred_stride${s}`).data;
    const [, channels, gh, gw] = cls.shape;
    const A = channels / 2, plane = gh * gw;
    // generate_anchors(16, [1], scales): base [0, 0, 15, 15], _scale_enum around its centre 7.5.
    const base = cfg[s].map((scale) => {
      const ws = 16 * scale;
      return [7.5 - 0.5 * (ws - 1), 7.5 - 0.5 * (ws - 1), 7.5 + 0.5 * (ws - 1), 7.5 + 0.5 * (ws - 1)];
    });
    for (let h = 0; h < gh; ++h) {
      for (let w = 0; w < gw; ++w) {
        for (let a = 0; a < A; ++a) {
          const at = h * gw + w;
          const score = cls.data[(A + a) * plane + at];
          if (!(score >= conf)) continue;
          const anchor = [base[a][0] + w * s, base[a][1] + h * s, base[a][2] + w * s, base[a][3] + h * s];
          const aw = anchor[2] - anchor[0] + 1, ah = anchor[3] - anchor[1] + 1;
          const cx = anchor[0] + 0.5 * (aw - 1), cy = anchor[1] + 0.5 * (ah - 1);
          const d = [0, 1, 2, 3].map((k) => bbox[(a * 4 + k) * plane + at]);
          const pcx = d[0] * aw + cx, pcy = d[1] * ah + cy, pw = Math.exp(d[2]) * aw, ph = Math.exp(d[3]) * ah;
          const clip = (v, size) => Math.max(Math.min(v, size - 1), 0);
          const box = [clip(pcx - 0.5 * (pw - 1), width), clip(pcy - 0.5 * (ph - 1), height),
                       clip(pcx + 0.5 * (pw - 1), width), clip(pcy + 0.5 * (ph - 1), height)];
          const landmarks = [];
          for (let k = 0; k < 5; ++k)
            landmarks.push([lmk[(a * 10 + 2 * k) * plane + at] * landmarkStd * aw + cx,
                            lmk[(a * 10 + 2 * k + 1) * plane + at] * landmarkStd * ah + cy]);
          faces.push({ score, box, landmarks });
        }
      }
    }
  }
  return nms(faces, iouPlusOne);
}

// opencv/modules/objdetect/src/face_detect.cpp, FaceDetectorYNImpl::postProcess.
function yunet() {
  const faces = [];
  for (const s of [8, 16, 32]) {
    const cls = output(`cls_${s}`).data, obj = output(`obj_${s}`).data;
    const bbox = output(`bbox_${s}`).data, kps = output(`kps_${s}`).data;
    const cols = width / s, rows = height / s;
    for (let r = 0; r < rows; ++r) {
      for (let c = 0; c < cols; ++c) {
        const idx = r * cols + c;
        const clamp = (v) => Math.max(Math.min(v, 1), 0);
        const score = Math.sqrt(clamp(cls[idx]) * clamp(obj[idx]));
        if (score < conf) continue;
        const cx = (c + bbox[idx * 4]) * s, cy = (r + bbox[idx * 4 + 1]) * s;
        const w = Math.exp(bbox[idx * 4 + 2]) * s, h = Math.exp(bbox[idx * 4 + 3]) * s;
        const x1 = cx - w / 2, y1 = cy - h / 2;
        const landmarks = [];
        for (let n = 0; n < 5; ++n) landmarks.push([(kps[idx * 10 + 2 * n] + c) * s, (kps[idx * 10 + 2 * n + 1] + r) * s]);
        faces.push({ score, box: [x1, y1, x1 + w, y1 + h], landmarks });
      }
    }
  }
  return nms(faces, iouOpenCvRect);
}

// Ultra-Light-Fast-Generic-Face-Detector-1MB, detect_imgs_onnx.py predict: class 1 above the threshold,
// corners times the input size, hard_nms.
function ultraface() {
  const scores = output('scores').data, boxes = output('boxes').data;
  const faces = [];
  for (let i = 0; i < scores.length / 2; ++i) {
    const score = scores[i * 2 + 1];
    if (!(score > conf)) continue;
    faces.push({ score, box: [boxes[i * 4] * width, boxes[i * 4 + 1] * height, boxes[i * 4 + 2] * width,
                              boxes[i * 4 + 3] * height] });
  }
  return nms(faces, iouPlain);
}

const decoders = { scrfd, retinaface, yunet, ultraface };
if (!decoders[task]) {
  console.error(`face_decode_ref: unknown task '${task}' (${Object.keys(decoders).join(', ')})`);
  process.exit(2);
}
console.log(JSON.stringify(decoders[task]()));
