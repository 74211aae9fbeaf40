// GFL heads (Generalized Focal Loss): NanoDet (RangiLyu/nanodet, the v0.x "nanodet-m" export) and the head
// family of PP-YOLOE. Per stride 8, 16, 32 two outputs: `cls_pred_stride_S` [B, N, nc] class scores (sigmoid
// applied in the export) and `dis_pred_stride_S` [B, N, 4 * (reg_max + 1)]: per side (left, top, right,
// bottom) a distribution over reg_max + 1 bins, N = (H/S)(W/S) cells row-major. The authors' decode
// (nanodet/model/head/gfl_head.py, get_bboxes_single): distance = sum_i i * softmax(bins)_i * S from the cell
// centre ((x + 0.5) S, (y + 0.5) S), the box clipped to the input; NMS at 0.6. Only cells whose best class
// passes the threshold get their distributions decoded. Input: BGR with NanoDet's mean/std, resized to the
// input (its demo's warp keeps no aspect ratio for nanodet-m at 320).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "models/coco_names.hpp"
#include "models/task.hpp"
#include "models/yolo_decoders.hpp"  // dfl_expectation: the same distribution integral as YOLOv8's DFL

namespace vapipe::models {
namespace {

using task_support::check_rows;
using task_support::has_output;
using task_support::image_data;
using task_support::output_index;

constexpr std::array<int, 3> kStrides = {8, 16, 32};

std::string cls_name(int stride) { return "cls_pred_stride_" + std::to_string(stride); }
std::string dis_name(int stride) { return "dis_pred_stride_" + std::to_string(stride); }

// cls_pred_stride_S and dis_pred_stride_S for S = 8, 16, 32, 3-D, the distributions 4 x bins wide.
bool recognizes(const std::vector<TensorInfo>& outputs) {
  for (int stride : kStrides) {
    if (!has_output(outputs, cls_name(stride)) || !has_output(outputs, dis_name(stride))) return false;
    const Shape& cls = outputs[output_index(outputs, cls_name(stride), "gfl")].shape;
    const Shape& dis = outputs[output_index(outputs, dis_name(stride), "gfl")].shape;
    if (cls.size() != 3 || dis.size() != 3 || dis[2] % 4 != 0 || dis[2] < 8) return false;
  }
  return true;
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  if (input_width <= 0 || input_height <= 0 || input_width % 32 != 0 || input_height % 32 != 0)
    fail("gfl: the input size {}x{} is not a multiple of 32 (compile with --input-size)", input_width,
         input_height);
  nlohmann::json levels = nlohmann::json::array();
  std::int64_t classes = 0, bins = 0;
  for (int stride : kStrides) {
    const TensorInfo& cls = outputs[output_index(outputs, cls_name(stride), "gfl")];
    const TensorInfo& dis = outputs[output_index(outputs, dis_name(stride), "gfl")];
    if (cls.shape.size() != 3 || dis.shape.size() != 3 || dis.shape[2] % 4 != 0)
      fail("gfl: outputs '{}' {} and '{}' {} are not [B, N, classes] and [B, N, 4 x bins]", cls.name,
           shape_to_string(cls.shape), dis.name, shape_to_string(dis.shape));
    classes = cls.shape[2];
    bins = dis.shape[2] / 4;
    const std::int64_t cells = static_cast<std::int64_t>(input_width / stride) * (input_height / stride);
    check_rows(cls, cells, classes, "gfl");
    check_rows(dis, cells, 4 * bins, "gfl");
    levels.push_back({{"stride", stride}, {"cls", cls.name}, {"dis", dis.name}});
  }
  metadata["class_names"] = class_names_for(static_cast<int>(classes));
  metadata["num_classes"] = classes;
  metadata["preprocess"] = {{"color", "bgr"},
                            {"scale", 1.0},
                            {"mean", {103.53, 116.28, 123.675}},
                            {"std", {57.375, 57.12, 58.395}},
                            {"letterbox", false},
                            {"pad_value", 0}};
  metadata["head"] = {
      {"form", "full"}, {"reg_max", bins - 1}, {"center_offset", 0.5}, {"levels", std::move(levels)}};
  // NanoDet's demo draws above 0.35; its NMS runs at 0.6.
  metadata["postprocess"] = {{"conf_threshold", 0.35}, {"iou_threshold", 0.6}};
}

class GflDecoder final : public TaskDecoder {
 public:
  GflDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto [width, height] = task_support::input_size(metadata);
    width_ = static_cast<float>(width);
    height_ = static_cast<float>(height);
    const auto& head = metadata.at("head");
    bins_ = head.at("reg_max").get<int>() + 1;
    if (bins_ < 2 || bins_ > 1025) fail("gfl: head.reg_max {} is out of range (1..1024)", bins_ - 1);
    center_offset_ = head.value("center_offset", 0.5f);
    classes_ = metadata.at("num_classes").get<int>();
    if (classes_ <= 0) fail("gfl: num_classes {} is not positive", classes_);
    for (const auto& entry : head.at("levels")) {
      Level level;
      level.stride = entry.at("stride").get<int>();
      if (level.stride <= 0 || width % level.stride != 0 || height % level.stride != 0)
        fail("gfl: stride {} does not divide the input {}x{}", level.stride, width, height);
      level.cls = output_index(outputs, entry.at("cls").get<std::string>(), "gfl");
      level.dis = output_index(outputs, entry.at("dis").get<std::string>(), "gfl");
      level.grid_width = width / level.stride;
      level.rows = static_cast<std::int64_t>(level.grid_width) * (height / level.stride);
      check_rows(outputs[level.cls], level.rows, classes_, "gfl");
      check_rows(outputs[level.dis], level.rows, 4 * bins_, "gfl");
      levels_.push_back(level);
    }
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float floor = thresholds.min_score();
    for (const Level& level : levels_) {
      const float* scores = image_data(outputs[level.cls], batch_index, level.rows * classes_);
      const float* distributions = image_data(outputs[level.dis], batch_index, level.rows * 4 * bins_);
      const auto stride = static_cast<float>(level.stride);
      for (std::int64_t row = 0; row < level.rows; ++row) {
        const float* score = scores + row * classes_;
        const int best = static_cast<int>(std::max_element(score, score + classes_) - score);
        if (!(score[best] > floor) || !(score[best] > thresholds.for_class(best))) continue;
        const float* bins = distributions + row * 4 * bins_;
        std::array<float, 4> distance{};
        for (int side = 0; side < 4; ++side)
          distance[static_cast<std::size_t>(side)] = dfl_expectation(bins + side * bins_, bins_, 1);
        const float cx = (static_cast<float>(row % level.grid_width) + center_offset_) * stride;
        const float cy = (static_cast<float>(row / level.grid_width) + center_offset_) * stride;
        out.push_back({best, score[best], std::clamp(cx - distance[0] * stride, 0.0f, width_),
                       std::clamp(cy - distance[1] * stride, 0.0f, height_),
                       std::clamp(cx + distance[2] * stride, 0.0f, width_),
                       std::clamp(cy + distance[3] * stride, 0.0f, height_), -1});
      }
    }
  }

 private:
  struct Level {
    int stride = 0;
    int grid_width = 0;
    std::int64_t rows = 0;  // cells per image
    std::size_t cls = 0, dis = 0;
  };
  std::vector<Level> levels_;
  int bins_ = 8;
  int classes_ = 0;
  float center_offset_ = 0.5f;
  float width_ = 0.0f, height_ = 0.0f;
};

}  // namespace

extern const TaskKind kGflTask;
const TaskKind kGflTask = {"gfl",
                           "GFL anchor-free object detector (NanoDet; the PP-YOLOE head family)",
                           &recognizes,
                           &describe,
                           &task_support::make_decoder_of<GflDecoder>,
                           {}};

}  // namespace vapipe::models
