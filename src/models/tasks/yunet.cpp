// YuNet (OpenCV zoo, the 2023mar model): anchor-free face detector with 5 landmarks. The authors' decode
// (opencv/modules/objdetect/src/face_detect.cpp, FaceDetectorYNImpl::postProcess): for each stride 8, 16, 32
// the outputs cls_S and obj_S [B, N, 1] (sigmoid applied), bbox_S [B, N, 4] and kps_S [B, N, 10], N = (H/s) *
// (W/s), one row per cell (row r, column c). score = sqrt(clamp(cls, 0, 1) * clamp(obj, 0, 1)); box centre
// ((c + dx) * s, (r + dy) * s), size exp(dw, dh) * s; landmark k ((c + lx) * s, (r + ly) * s). Input: BGR
// 0..255, no mean or std. OpenCV feeds the image at its own size, padded bottom-right with 0 to a multiple of
// 32; a compiled package has one input size (--input-size), so the image is scaled to fit and padded with 0:
// faces keep their aspect ratio, as in OpenCV, where a plain resize would squash them. NMS at 0.3, kept above
// 0.9 (OpenCV zoo's demo defaults).
#include <algorithm>
#include <array>
#include <cmath>
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

bool recognizes(const std::vector<TensorInfo>& outputs) {
  for (int stride : kStrides) {
    const std::string s = std::to_string(stride);
    for (const char* what : {"cls_", "obj_", "bbox_", "kps_"})
      if (!has_output(outputs, what + s)) return false;
  }
  return true;
}

void describe(const std::vector<TensorInfo>& /*outputs*/, int input_width, int input_height,
              nlohmann::json& metadata) {
  if (input_width <= 0 || input_height <= 0 || input_width % 32 != 0 || input_height % 32 != 0)
    fail("yunet: the input size {}x{} is not a multiple of 32 (compile with --input-size, e.g. 640x640)",
         input_width, input_height);
  nlohmann::json levels = nlohmann::json::array();
  for (int stride : kStrides) {
    const std::string s = std::to_string(stride);
    levels.push_back({{"stride", stride},
                      {"cls", "cls_" + s},
                      {"obj", "obj_" + s},
                      {"bbox", "bbox_" + s},
                      {"kps", "kps_" + s}});
  }
  metadata["class_names"] = {"face"};
  metadata["num_classes"] = 1;
  metadata["preprocess"] = {{"color", "bgr"},         {"scale", 1.0},      {"mean", {0.0, 0.0, 0.0}},
                            {"std", {1.0, 1.0, 1.0}}, {"letterbox", true}, {"pad_value", 0}};
  metadata["head"] = {{"form", "full"}, {"levels", std::move(levels)}};
  metadata["postprocess"] = {{"conf_threshold", 0.9}, {"iou_threshold", 0.3}};
}

class YuNetDecoder final : public TaskDecoder {
 public:
  YuNetDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto [width, height] = task_support::input_size(metadata);
    for (const auto& entry : metadata.at("head").at("levels")) {
      Level level;
      level.stride = entry.at("stride").get<int>();
      level.cls = output_index(outputs, entry.at("cls").get<std::string>(), "yunet");
      level.obj = output_index(outputs, entry.at("obj").get<std::string>(), "yunet");
      level.bbox = output_index(outputs, entry.at("bbox").get<std::string>(), "yunet");
      level.kps = output_index(outputs, entry.at("kps").get<std::string>(), "yunet");
      if (level.stride <= 0 || width % level.stride != 0 || height % level.stride != 0)
        fail("yunet: stride {} does not divide the input size {}x{}", level.stride, width, height);
      level.grid_width = width / level.stride;
      level.cells = static_cast<std::int64_t>(height / level.stride) * level.grid_width;
      check_rows(outputs[level.cls], level.cells, 1, "yunet");
      check_rows(outputs[level.obj], level.cells, 1, "yunet");
      check_rows(outputs[level.bbox], level.cells, 4, "yunet");
      check_rows(outputs[level.kps], level.cells, 2 * kLandmarks, "yunet");
      levels_.push_back(level);
    }
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float threshold = thresholds.for_class(0);
    for (const Level& level : levels_) {
      // By the layout: the export flattens the batch into a fixed leading 1 ([1, B*cells, C]).
      const float* cls = image_data(outputs[level.cls], batch_index, level.cells);
      const float* obj = image_data(outputs[level.obj], batch_index, level.cells);
      const float* boxes = image_data(outputs[level.bbox], batch_index, level.cells * 4);
      const float* points = image_data(outputs[level.kps], batch_index, level.cells * 2 * kLandmarks);
      const auto stride = static_cast<float>(level.stride);
      for (std::int64_t cell = 0; cell < level.cells; ++cell) {
        const float score = std::sqrt(std::clamp(cls[cell], 0.0f, 1.0f) * std::clamp(obj[cell], 0.0f, 1.0f));
        if (!(score > threshold)) continue;
        const auto column = static_cast<float>(cell % level.grid_width);
        const auto row = static_cast<float>(cell / level.grid_width);
        const float* box = boxes + cell * 4;
        const float cx = (column + box[0]) * stride;
        const float cy = (row + box[1]) * stride;
        const float half_w = 0.5f * std::exp(box[2]) * stride;
        const float half_h = 0.5f * std::exp(box[3]) * stride;
        Detection d;
        d.class_id = 0;
        d.score = score;
        d.x1 = cx - half_w;
        d.y1 = cy - half_h;
        d.x2 = cx + half_w;
        d.y2 = cy + half_h;
        const float* p = points + cell * 2 * kLandmarks;
        d.keypoints.resize(kLandmarks);
        for (int k = 0; k < kLandmarks; ++k)
          d.keypoints[static_cast<std::size_t>(k)] = {(column + p[2 * k]) * stride,
                                                      (row + p[2 * k + 1]) * stride, 1.0f};
        out.push_back(std::move(d));
      }
    }
  }

 private:
  struct Level {
    int stride = 0;
    int grid_width = 0;
    std::int64_t cells = 0;  // per image
    std::size_t cls = 0, obj = 0, bbox = 0, kps = 0;
  };
  std::vector<Level> levels_;
};

}  // namespace

extern const TaskKind kYuNetTask;
const TaskKind kYuNetTask = {"yunet",   "YuNet face detector, 5 landmarks",           &recognizes,
                             &describe, &task_support::make_decoder_of<YuNetDecoder>, {}};

}  // namespace vapipe::models
