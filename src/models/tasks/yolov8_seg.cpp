// YOLOv8-seg (Ultralytics): instance segmentation, the job of sophon-pipeline's YOLACT demo. Two outputs:
//  - boxes [B, 4 + nc + nm, N], channel-major like YOLOv8's detection output: cx, cy, w, h in input pixels,
//    nc class scores (sigmoid applied), then nm (32) mask coefficients per anchor;
//  - protos [B, nm, mh, mw]: mask prototypes at 1/4 of the input (80x80 for 320x320).
// Boxes decode and NMS exactly as YOLOv8's (decode_yolov8_full, class-aware NMS). Masks, for the kept
// detections only (Ultralytics' ops.process_mask, upsample=True): sigmoid(coefficients . protos) at prototype
// resolution, zero outside the box scaled to that resolution (crop_mask: cell i kept where x1 <= i < x2),
// bilinear upsampling to the input (PyTorch's align_corners=False), > 0.5. Only the prototype cells the box's
// pixels sample are computed, and only the box's pixels (floor(x1) .. ceil(x2) - 1, likewise in y) are kept:
// the mask is an InstanceMask of one cell per input pixel over that rectangle. Input: RGB / 255, letterbox
// with 114, as YOLOv8.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.hpp"
#include "models/task.hpp"
#include "models/yolo_decoders.hpp"

namespace vapipe::models {
namespace {

using task_support::image_data;
using task_support::output_index;

constexpr std::string_view kTask = "yolov8-seg";

// Which output is which: the 3-D one holds the boxes, the 4-D one the prototypes.
struct Roles {
  std::size_t boxes = 0, protos = 0;
};
std::optional<Roles> roles(const std::vector<TensorInfo>& outputs) {
  if (outputs.size() != 2) return std::nullopt;
  for (std::size_t b = 0; b < 2; ++b) {
    if (outputs[b].shape.size() == 3 && outputs[1 - b].shape.size() == 4) return Roles{b, 1 - b};
  }
  return std::nullopt;
}

// A [B, C, N] box output beside a [B, nm, mh, mw] prototype output, C > 4 + nm (at least one class), and
// N > C where N is known (channel-major, as YOLOv8 exports it).
bool recognizes(const std::vector<TensorInfo>& outputs) {
  const auto found = roles(outputs);
  if (!found) return false;
  const Shape& boxes = outputs[found->boxes].shape;
  const Shape& protos = outputs[found->protos].shape;
  const std::int64_t coefficients = protos[1];
  return coefficients > 0 && boxes[1] > 4 + coefficients && (boxes[2] < 0 || boxes[2] > boxes[1]);
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  const auto found = roles(outputs);
  if (!found || !recognizes(outputs))
    fail(
        "{}: expected a [B, 4 + classes + coefficients, N] box output and a [B, coefficients, H, W] "
        "prototype output",
        kTask);
  const Shape& boxes = outputs[found->boxes].shape;
  const Shape& protos = outputs[found->protos].shape;
  if (protos[2] <= 0 || protos[3] <= 0 || input_width <= 0 || input_height <= 0)
    fail("{}: the prototype output '{}' has shape {}: its height and width must be known", kTask,
         outputs[found->protos].name, shape_to_string(protos));
  const std::int64_t classes = boxes[1] - 4 - protos[1];
  // The export's class names (Ultralytics' `names`) replace these where the compiler finds them.
  metadata["class_names"] = nlohmann::json::array();
  metadata["num_classes"] = classes;
  metadata["preprocess"] = {{"color", "rgb"},   {"scale", 1.0 / 255.0}, {"mean", {0, 0, 0}},
                            {"std", {1, 1, 1}}, {"letterbox", true},    {"pad_value", 114}};
  metadata["head"] = {{"form", "full"},
                      {"boxes", outputs[found->boxes].name},
                      {"protos", outputs[found->protos].name},
                      {"mask_coefficients", protos[1]},
                      {"mask_threshold", 0.5}};
  metadata["postprocess"] = {{"conf_threshold", 0.25}, {"iou_threshold", 0.45}};
}

// PyTorch's upsample_bilinear2d (align_corners=False) along one axis: output pixel p of `out` samples the
// input at max(0, (p + 0.5) * in / out - 0.5), between cells `low` and `high` (the last cell twice at the
// far edge) with weight `weight` on `high`.
struct Tap {
  int low = 0, high = 0;
  float weight = 0.0f;
};
Tap bilinear_tap(int p, int in, int out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float source = std::max(0.0f, scale * (static_cast<float>(p) + 0.5f) - 0.5f);
  Tap tap;
  tap.low = std::min(static_cast<int>(source), in - 1);
  tap.high = tap.low + (tap.low < in - 1 ? 1 : 0);
  tap.weight = source - static_cast<float>(tap.low);
  return tap;
}

class Yolov8SegDecoder final : public TaskDecoder {
 public:
  Yolov8SegDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto [width, height] = task_support::input_size(metadata);
    input_width_ = width;
    input_height_ = height;
    const auto& head = metadata.at("head");
    boxes_ = output_index(outputs, head.at("boxes").get<std::string>(), kTask);
    protos_ = output_index(outputs, head.at("protos").get<std::string>(), kTask);
    mask_threshold_ = head.value("mask_threshold", 0.5f);
    num_classes_ = metadata.at("num_classes").get<int>();
    const Shape& boxes = outputs[boxes_].shape;
    const Shape& protos = outputs[protos_].shape;
    if (protos.size() != 4 || protos[1] <= 0 || protos[2] <= 0 || protos[3] <= 0)
      fail("{}: prototype output '{}' has shape {}, expected [B, coefficients, H, W]", kTask,
           outputs[protos_].name, shape_to_string(protos));
    coefficients_ = static_cast<int>(protos[1]);
    proto_height_ = static_cast<int>(protos[2]);
    proto_width_ = static_cast<int>(protos[3]);
    if (boxes.size() != 3 || boxes[1] != 4 + num_classes_ + coefficients_ || boxes[2] <= 0)
      fail("{}: box output '{}' has shape {}, expected [B, {} (4 + {} classes + {} coefficients), N]", kTask,
           outputs[boxes_].name, shape_to_string(boxes), 4 + num_classes_ + coefficients_, num_classes_,
           coefficients_);
    anchors_ = boxes[2];
    if (width <= 0 || height <= 0) fail("{}: the input size {}x{} is invalid", kTask, width, height);
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float* data = image_data(outputs[boxes_], batch_index);
    std::vector<float> scratch;
    decode_yolov8_full(data, anchors_, num_classes_, thresholds, out, scratch);
  }

  void finish(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              std::span<Detection> kept) const override {
    const float* boxes = image_data(outputs[boxes_], batch_index);
    const float* protos = image_data(outputs[protos_], batch_index);
    Scratch scratch;  // per call: one decoder serves every post-processing thread
    for (Detection& d : kept) {
      if (d.candidate < 0 || d.candidate >= anchors_) continue;
      const float* coefficients = boxes + (4 + num_classes_) * anchors_ + d.candidate;
      decode_mask(coefficients, protos, d, scratch);
    }
  }

 private:
  struct Scratch {
    std::vector<Tap> columns, rows;
    std::vector<float> window;
  };

  // The mask of `d` (box in input pixels); coefficient k is coefficients[k * anchors_].
  void decode_mask(const float* coefficients, const float* protos, Detection& d, Scratch& scratch) const {
    std::vector<Tap>& columns = scratch.columns;
    std::vector<Tap>& rows = scratch.rows;
    std::vector<float>& window = scratch.window;
    const int x0 = std::clamp(static_cast<int>(std::floor(d.x1)), 0, input_width_);
    const int x1 = std::clamp(static_cast<int>(std::ceil(d.x2)), 0, input_width_);
    const int y0 = std::clamp(static_cast<int>(std::floor(d.y1)), 0, input_height_);
    const int y1 = std::clamp(static_cast<int>(std::ceil(d.y2)), 0, input_height_);
    InstanceMask& mask = d.mask;
    mask.x1 = static_cast<float>(x0);
    mask.y1 = static_cast<float>(y0);
    mask.x2 = static_cast<float>(x1);
    mask.y2 = static_cast<float>(y1);
    mask.resize(x1 - x0, y1 - y0);
    if (mask.empty()) return;

    columns.resize(static_cast<std::size_t>(mask.width));
    rows.resize(static_cast<std::size_t>(mask.height));
    for (int x = 0; x < mask.width; ++x)
      columns[static_cast<std::size_t>(x)] = bilinear_tap(x0 + x, proto_width_, input_width_);
    for (int y = 0; y < mask.height; ++y)
      rows[static_cast<std::size_t>(y)] = bilinear_tap(y0 + y, proto_height_, input_height_);
    // The prototype window those pixels sample.
    const int wx0 = columns.front().low, wx1 = columns.back().high + 1;
    const int wy0 = rows.front().low, wy1 = rows.back().high + 1;
    const int windowwidth = wx1 - wx0;
    // crop_mask at prototype resolution: the box scaled by mw / W (mh / H), cell index against it.
    const float sx = static_cast<float>(proto_width_) / static_cast<float>(input_width_);
    const float sy = static_cast<float>(proto_height_) / static_cast<float>(input_height_);
    const float cx1 = d.x1 * sx, cx2 = d.x2 * sx, cy1 = d.y1 * sy, cy2 = d.y2 * sy;
    window.assign(static_cast<std::size_t>(windowwidth * (wy1 - wy0)), 0.0f);
    const std::int64_t plane = static_cast<std::int64_t>(proto_width_) * proto_height_;
    for (int j = wy0; j < wy1; ++j) {
      if (!(static_cast<float>(j) >= cy1 && static_cast<float>(j) < cy2)) continue;
      for (int i = wx0; i < wx1; ++i) {
        if (!(static_cast<float>(i) >= cx1 && static_cast<float>(i) < cx2)) continue;
        const float* proto = protos + static_cast<std::int64_t>(j) * proto_width_ + i;
        float sum = 0.0f;
        for (int k = 0; k < coefficients_; ++k) sum += coefficients[k * anchors_] * proto[k * plane];
        window[static_cast<std::size_t>((j - wy0) * windowwidth + (i - wx0))] =
            1.0f / (1.0f + std::exp(-sum));
      }
    }
    auto at = [&](int i, int j) {
      return window[static_cast<std::size_t>((j - wy0) * windowwidth + (i - wx0))];
    };
    for (int y = 0; y < mask.height; ++y) {
      const Tap& row = rows[static_cast<std::size_t>(y)];
      for (int x = 0; x < mask.width; ++x) {
        const Tap& column = columns[static_cast<std::size_t>(x)];
        const float top =
            (1.0f - column.weight) * at(column.low, row.low) + column.weight * at(column.high, row.low);
        const float bottom =
            (1.0f - column.weight) * at(column.low, row.high) + column.weight * at(column.high, row.high);
        if ((1.0f - row.weight) * top + row.weight * bottom > mask_threshold_) mask.set(x, y);
      }
    }
  }

  int input_width_ = 0, input_height_ = 0;
  std::size_t boxes_ = 0, protos_ = 0;
  int num_classes_ = 0, coefficients_ = 0;
  int proto_width_ = 0, proto_height_ = 0;
  std::int64_t anchors_ = 0;
  float mask_threshold_ = 0.5f;
};

}  // namespace

extern const TaskKind kYolov8SegTask;
const TaskKind kYolov8SegTask = {kTask,     "YOLOv8-seg instance segmentation (boxes and masks)", &recognizes,
                                 &describe, &task_support::make_decoder_of<Yolov8SegDecoder>,     {}};

}  // namespace vapipe::models
