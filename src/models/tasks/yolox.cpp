// YOLOX (Megvii-BaseDetection/YOLOX, exported without decode_in_inference, e.g. yolox_nano.onnx): anchor-free,
// one output [B, N, 5 + nc] whose rows are the cells of strides 8, 16 and 32 in turn (row-major within a
// stride, N = sum (H/s)(W/s)): x, y, w, h raw, objectness and class scores with their sigmoid applied. The
// authors' decode (yolox/utils/demo_utils.py, demo_postprocess): x = (x + gx) * s, y = (y + gy) * s,
// w = exp(w) * s, h = exp(h) * s, score = obj * best class. Input: BGR 0..255 (no mean/std), the image scaled
// to fit and padded with 114 at the bottom/right (preproc: the image sits at the top-left corner).
#include <array>
#include <cmath>
#include <cstdint>

#include "core/error.hpp"
#include "models/coco_names.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::check_rows;
using task_support::image_data;
using task_support::output_index;

constexpr std::array<int, 3> kStrides = {8, 16, 32};

// One output [1, N, C] with N > C > 5 and N the cell count of strides 8/16/32 of a square input whose side is
// a multiple of 32: N = k^2 (1 + 1/4 + 1/16), k = side / 8. (YOLOv5's decoded output has three anchors per
// cell, 3x that count, never of this form; YOLOv8's is [1, 4 + nc, N], fewer rows than columns.)
bool recognizes(const std::vector<TensorInfo>& outputs) {
  if (outputs.size() != 1 || outputs[0].shape.size() != 3) return false;
  const std::int64_t rows = outputs[0].shape[1], columns = outputs[0].shape[2];
  if (!(columns > 5 && rows > columns) || (rows * 16) % 21 != 0) return false;
  const std::int64_t squared = rows * 16 / 21;
  const auto k = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(squared))));
  return k * k == squared && k % 4 == 0;
}

std::int64_t cells(int width, int height) {
  std::int64_t total = 0;
  for (int stride : kStrides) total += static_cast<std::int64_t>(width / stride) * (height / stride);
  return total;
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  if (input_width <= 0 || input_height <= 0 || input_width % 32 != 0 || input_height % 32 != 0)
    fail("yolox: the input size {}x{} is not a multiple of 32 (compile with --input-size)", input_width,
         input_height);
  if (outputs.size() != 1 || outputs[0].shape.size() != 3 || outputs[0].shape[2] <= 5)
    fail("yolox: expected one output [B, N, 5 + classes], got {} output(s)", outputs.size());
  check_rows(outputs[0], cells(input_width, input_height), outputs[0].shape[2], "yolox");
  const int classes = static_cast<int>(outputs[0].shape[2] - 5);
  metadata["class_names"] = class_names_for(classes);
  metadata["num_classes"] = classes;
  metadata["preprocess"] = {{"color", "bgr"},   {"scale", 1.0},      {"mean", {0, 0, 0}},
                            {"std", {1, 1, 1}}, {"letterbox", true}, {"letterbox_align", "top_left"},
                            {"pad_value", 114}};
  metadata["head"] = {{"form", "full"}, {"output", outputs[0].name}, {"strides", kStrides}};
  // The authors' demo: conf 0.3, NMS 0.45.
  metadata["postprocess"] = {{"conf_threshold", 0.3}, {"iou_threshold", 0.45}};
}

class YoloxDecoder final : public TaskDecoder {
 public:
  YoloxDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto [width, height] = task_support::input_size(metadata);
    const auto& head = metadata.at("head");
    output_ = output_index(outputs, head.at("output").get<std::string>(), "yolox");
    const Shape& shape = outputs[output_].shape;
    if (shape.size() != 3 || shape[2] <= 5)
      fail("yolox: output '{}' has shape {}, expected [B, N, 5 + classes]", outputs[output_].name,
           shape_to_string(shape));
    columns_ = shape[2];
    for (const auto& stride : head.at("strides")) {
      Level level;
      level.stride = stride.get<int>();
      if (level.stride <= 0 || width % level.stride != 0 || height % level.stride != 0)
        fail("yolox: head.strides {} does not divide the input {}x{}", level.stride, width, height);
      level.width = width / level.stride;
      level.rows = static_cast<std::int64_t>(level.width) * (height / level.stride);
      rows_ += level.rows;
      levels_.push_back(level);
    }
    check_rows(outputs[output_], rows_, columns_, "yolox");
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float* data = image_data(outputs[output_], batch_index, rows_ * columns_);
    const float objectness_floor = thresholds.objectness_floor();
    const int classes = static_cast<int>(columns_ - 5);
    for (const Level& level : levels_) {
      const auto stride = static_cast<float>(level.stride);
      for (std::int64_t cell = 0; cell < level.rows; ++cell, data += columns_) {
        // Almost every row stops at its objectness: obj * cls <= obj.
        if (!(data[4] > objectness_floor)) continue;
        int best = 0;
        for (int c = 1; c < classes; ++c)
          if (data[5 + c] > data[5 + best]) best = c;
        const float score = data[4] * data[5 + best];
        if (!(score > thresholds.for_class(best))) continue;
        const float cx = (data[0] + static_cast<float>(cell % level.width)) * stride;
        const float cy = (data[1] + static_cast<float>(cell / level.width)) * stride;
        const float w = std::exp(data[2]) * stride, h = std::exp(data[3]) * stride;
        out.push_back({best, score, cx - 0.5f * w, cy - 0.5f * h, cx + 0.5f * w, cy + 0.5f * h, -1});
      }
    }
  }

 private:
  struct Level {
    int stride = 0;
    int width = 0;          // cells per row
    std::int64_t rows = 0;  // cells
  };
  std::size_t output_ = 0;
  std::int64_t columns_ = 0;
  std::int64_t rows_ = 0;  // per image
  std::vector<Level> levels_;
};

}  // namespace

extern const TaskKind kYoloxTask;
const TaskKind kYoloxTask = {"yolox",   "YOLOX anchor-free object detector",          &recognizes,
                             &describe, &task_support::make_decoder_of<YoloxDecoder>, {}};

}  // namespace vapipe::models
