// SCRFD (InsightFace): anchor-free face detector with 5 landmarks. The authors' decode
// (insightface/detection/scrfd/tools/scrfd.py): for each stride 8, 16, 32 the outputs score [B, N, 1] (sigmoid
// applied), bbox [B, N, 4] (left, top, right, bottom distances in strides) and kps [B, N, 10] (x, y offsets in
// strides), N = (H/s) * (W/s) * 2: every cell's centre (x*s, y*s) twice, one per anchor. Input: RGB,
// (x - 127.5) / 128, the image scaled to fit and padded with 0 (they pad bottom-right, we centre: the network
// is convolutional, and the box mapping takes the padding out either way). NMS at 0.4, kept above 0.5.
#include <array>
#include <cstdint>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::check_rows;
using task_support::has_output;
using task_support::image_data;
using task_support::output_index;

constexpr std::array<int, 3> kStrides = {8, 16, 32};
constexpr int kLandmarks = 5;
constexpr int kAnchorsPerCell = 2;

// Outputs named score_S / bbox_S (/ kps_S), as the usual exports name them.
bool recognizes(const std::vector<TensorInfo>& outputs) {
  for (int stride : kStrides) {
    if (!has_output(outputs, "score_" + std::to_string(stride)) ||
        !has_output(outputs, "bbox_" + std::to_string(stride)))
      return false;
  }
  return true;
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  if (input_width <= 0 || input_height <= 0 || input_width % 32 != 0 || input_height % 32 != 0)
    fail("scrfd: the input size {}x{} is not a multiple of 32 (compile with --input-size)", input_width,
         input_height);
  const bool landmarks = has_output(outputs, "kps_8");
  nlohmann::json levels = nlohmann::json::array();
  for (int stride : kStrides) {
    const std::string s = std::to_string(stride);
    nlohmann::json level = {{"stride", stride}, {"score", "score_" + s}, {"bbox", "bbox_" + s}};
    if (landmarks) level["kps"] = "kps_" + s;
    levels.push_back(std::move(level));
  }
  metadata["class_names"] = {"face"};
  metadata["num_classes"] = 1;
  metadata["preprocess"] = {
      {"color", "rgb"},    {"scale", 1.0},  {"mean", {127.5, 127.5, 127.5}}, {"std", {128.0, 128.0, 128.0}},
      {"letterbox", true}, {"pad_value", 0}};
  metadata["head"] = {{"form", "full"}, {"levels", std::move(levels)}};
  metadata["postprocess"] = {{"conf_threshold", 0.5}, {"iou_threshold", 0.4}};
}

class ScrfdDecoder final : public TaskDecoder {
 public:
  ScrfdDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto [width, height] = task_support::input_size(metadata);
    for (const auto& entry : metadata.at("head").at("levels")) {
      Level level;
      level.stride = entry.at("stride").get<int>();
      level.score = output_index(outputs, entry.at("score").get<std::string>(), "scrfd");
      level.bbox = output_index(outputs, entry.at("bbox").get<std::string>(), "scrfd");
      if (entry.contains("kps"))
        level.kps = output_index(outputs, entry.at("kps").get<std::string>(), "scrfd");
      level.grid_width = width / level.stride;
      const std::int64_t cells = static_cast<std::int64_t>(height / level.stride) * level.grid_width;
      // Two anchors per cell for the 6- and 9-output exports (insightface's scrfd.py: _num_anchors = 2).
      // Counted from the layout, not the shape: exports flatten the batch into a fixed leading 1.
      level.anchors = kAnchorsPerCell;
      level.rows = cells * kAnchorsPerCell;
      check_rows(outputs[level.score], level.rows, 1, "scrfd");
      check_rows(outputs[level.bbox], level.rows, 4, "scrfd");
      if (level.kps != kNone) check_rows(outputs[level.kps], level.rows, 2 * kLandmarks, "scrfd");
      levels_.push_back(level);
    }
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float threshold = thresholds.for_class(0);
    for (const Level& level : levels_) {
      const float* scores = image_data(outputs[level.score], batch_index, level.rows);
      const float* boxes = image_data(outputs[level.bbox], batch_index, level.rows * 4);
      const float* points = level.kps == kNone
                                ? nullptr
                                : image_data(outputs[level.kps], batch_index, level.rows * 2 * kLandmarks);
      const auto stride = static_cast<float>(level.stride);
      for (std::int64_t row = 0; row < level.rows; ++row) {
        if (!(scores[row] > threshold)) continue;
        const std::int64_t cell = row / level.anchors;
        const auto cx = static_cast<float>(cell % level.grid_width) * stride;
        const auto cy = static_cast<float>(cell / level.grid_width) * stride;
        const float* box = boxes + row * 4;
        Detection d;
        d.class_id = 0;
        d.score = scores[row];
        d.x1 = cx - box[0] * stride;
        d.y1 = cy - box[1] * stride;
        d.x2 = cx + box[2] * stride;
        d.y2 = cy + box[3] * stride;
        if (points != nullptr) {
          const float* p = points + row * 2 * kLandmarks;
          d.keypoints.resize(kLandmarks);
          for (int k = 0; k < kLandmarks; ++k)
            d.keypoints[static_cast<std::size_t>(k)] = {cx + p[2 * k] * stride, cy + p[2 * k + 1] * stride,
                                                        1.0f};
        }
        out.push_back(std::move(d));
      }
    }
  }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  struct Level {
    int stride = 0;
    int grid_width = 0;
    int anchors = 0;
    std::int64_t rows = 0;  // per image
    std::size_t score = kNone, bbox = kNone, kps = kNone;
  };
  std::vector<Level> levels_;
};

}  // namespace

extern const TaskKind kScrfdTask;
const TaskKind kScrfdTask = {"scrfd",   "SCRFD face detector, 5 landmarks",           &recognizes,
                             &describe, &task_support::make_decoder_of<ScrfdDecoder>, {}};

}  // namespace vapipe::models
