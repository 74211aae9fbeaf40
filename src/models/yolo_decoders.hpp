#pragma once
// Decoders of the YOLO family's output tensors for ONE image of a batch. Each appends candidates (before
// NMS) in network input pixels to `out`. Layouts are documented in docs/postprocessing.md.
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "models/detection.hpp"

namespace vapipe::models {

using Anchor = std::array<float, 2>;  // width, height in input pixels

// One level of YOLOv5's raw Detect head: na * (5 + nc) logits (before sigmoid) per cell of a height x width
// grid, channel-major ([C, H, W], the ONNX export) or channels-last ([H, W, C], what `vapipe compile` writes
// since the head convolutions produce it without a transpose; the package's metadata says which).
struct RawHeadLevel {
  const float* data = nullptr;
  int height = 0;
  int width = 0;
  float stride = 8.0f;
  std::span<const Anchor> anchors;
  bool channels_last = false;
};

// YOLOv5 raw head: sigmoid; cx = (2 sx - 0.5 + gx) * stride; w = (2 sw)^2 * anchor_w; score = obj * cls.
// Cells whose objectness logit is not above logit(objectness_floor) cost one compare.
void decode_yolov5_raw(std::span<const RawHeadLevel> levels, int num_classes,
                       const ScoreThresholds& thresholds, std::vector<Detection>& out);

// YOLOv5 decoded output: [count, 5 + nc] rows (cx, cy, w, h, obj, cls...), already sigmoid.
void decode_yolov5_full(const float* data, std::int64_t count, int num_classes,
                        const ScoreThresholds& thresholds, std::vector<Detection>& out);

// YOLOv8 decoded output: [4 + nc, count] (cx, cy, w, h, class scores; no objectness), channel-major.
// Each candidate's `candidate` is its column (what the segmentation task's second pass reads: the rows after
// the class scores hold its mask coefficients).
// `best_scratch` keeps its capacity between calls (avoids an allocation per frame).
void decode_yolov8_full(const float* data, std::int64_t count, int num_classes,
                        const ScoreThresholds& thresholds, std::vector<Detection>& out,
                        std::vector<float>& best_scratch);

// One level of YOLOv8's raw head (the graph cut before the DFL): 4 * reg_max box-distribution logits (sides
// l, t, r, b, reg_max bins each) then num_classes class logits (before sigmoid) per cell of a height x width
// grid, channel-major ([C, H, W]) or channels-last ([H, W, C], what `vapipe compile` writes).
struct DflHeadLevel {
  const float* data = nullptr;
  int height = 0;
  int width = 0;
  float stride = 8.0f;
  bool channels_last = false;
};

// YOLOv8 raw head: score = sigmoid(best class logit); only cells whose best logit passes the inverse sigmoid
// of the class's threshold get their DFL decoded: per side softmax over the bins, expectation d; box
// ((gx + 0.5 - dl) * stride, (gy + 0.5 - dt) * stride, (gx + 0.5 + dr) * stride, (gy + 0.5 + db) * stride).
void decode_yolov8_raw(std::span<const DflHeadLevel> levels, int num_classes, int reg_max,
                       const ScoreThresholds& thresholds, std::vector<Detection>& out);

// The expectation of one DFL side: sum_i i * softmax(logits)_i over `bins` logits `step` floats apart.
float dfl_expectation(const float* logits, int bins, std::int64_t step);

// Yolo-FastestV2 (dog-qiuqiu) exported output: rows [batch * sum(h * w), 4 na + na + nc], ordered scale by
// scale, and within a scale batch item by batch item, then row-major cells; columns reg (anchor-major,
// sigmoid), obj (sigmoid), cls (softmax, shared by the anchors of a cell).
struct FastestV2Scale {
  int height = 0;
  int width = 0;
  float stride = 16.0f;
  std::vector<Anchor> anchors;
};
void decode_yolofastestv2(const float* data, std::int64_t batch, std::int64_t batch_index,
                          std::span<const FastestV2Scale> scales, int num_classes,
                          const ScoreThresholds& thresholds, std::vector<Detection>& out);

}  // namespace vapipe::models
