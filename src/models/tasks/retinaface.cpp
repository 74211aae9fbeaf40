// RetinaFace (InsightFace's mxnet exports, e.g. "mnet.25"): anchor-based face detector with 5 landmarks. The
// authors' decode (insightface/detection/retinaface/retinaface.py, RetinaFace.detect): for each stride 32, 16, 8
// the outputs face_rpn_cls_prob_reshape_strideS [B, 2A, H, W] (softmax applied: A background channels, then A
// face channels), face_rpn_bbox_pred_strideS [B, 4A, H, W] and face_rpn_landmark_pred_strideS [B, 10A, H, W],
// channel a * 4 + k (a * 10 + 2 * k + xy) for anchor a. Anchors: base size 16, ratio 1, sizes 16 * scale
// (stride 32: scales 32, 16; 16: 8, 4; 8: 2, 1), centred at (x * s + 7.5, y * s + 7.5), the centre of their
// 16-pixel base anchor [0, 15]. A box is the anchor moved by (dx, dy) anchor sizes and scaled by exp(dw, dh),
// with their "+1" pixel convention (x2 = cx + (w - 1) / 2), clipped to the input; a landmark is the anchor
// centre plus (lx, ly) * landmark_std anchor sizes. landmark_std is 0.2 for the shared mnet.25 export: it is
// InsightFace's model-zoo retinaface_mnet025_v2, trained as their rac 'net3l' (v1 exports, 'net3', use 1.0;
// with 1.0 this one's landmarks land five times too far from the face's centre, outside its box). The outputs
// cannot tell the two apart: the metadata's head.landmark_std says which. Input: RGB 0..255, no mean or std,
// the image scaled to fit and padded with 0. NMS at 0.4 (theirs), kept above 0.8 (their demo, test.py; the
// detector's own default is 0.5).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::has_output;
using task_support::image_data;
using task_support::output_index;

constexpr int kLandmarks = 5;
constexpr int kBaseSize = 16;
constexpr double kLandmarkStd = 0.2;  // see above: retinaface_mnet025_v2
struct StrideScales {
  int stride;
  std::array<int, 2> scales;
};
constexpr std::array<StrideScales, 3> kLevels = {{{32, {32, 16}}, {16, {8, 4}}, {8, {2, 1}}}};

std::string name_of(std::string_view what, int stride) {
  return "face_rpn_" + std::string(what) + "_stride" + std::to_string(stride);
}

bool recognizes(const std::vector<TensorInfo>& outputs) {
  for (const auto& level : kLevels) {
    if (!has_output(outputs, name_of("cls_prob_reshape", level.stride)) ||
        !has_output(outputs, name_of("bbox_pred", level.stride)))
      return false;
  }
  return true;
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  if (input_width <= 0 || input_height <= 0 || input_width % 32 != 0 || input_height % 32 != 0)
    fail("retinaface: the input size {}x{} is not a multiple of 32 (compile with --input-size)", input_width,
         input_height);
  const bool landmarks = has_output(outputs, name_of("landmark_pred", 8));
  nlohmann::json levels = nlohmann::json::array();
  for (const auto& level : kLevels) {
    nlohmann::json entry = {{"stride", level.stride},
                            {"scores", name_of("cls_prob_reshape", level.stride)},
                            {"bbox", name_of("bbox_pred", level.stride)},
                            {"anchor_sizes", {kBaseSize * level.scales[0], kBaseSize * level.scales[1]}}};
    if (landmarks) entry["landmarks"] = name_of("landmark_pred", level.stride);
    levels.push_back(std::move(entry));
  }
  metadata["class_names"] = {"face"};
  metadata["num_classes"] = 1;
  metadata["preprocess"] = {{"color", "rgb"},         {"scale", 1.0},      {"mean", {0.0, 0.0, 0.0}},
                            {"std", {1.0, 1.0, 1.0}}, {"letterbox", true}, {"pad_value", 0}};
  // anchor_centre: where a cell's anchors are centred, from its top-left corner ((base size - 1) / 2).
  metadata["head"] = {{"form", "full"},
                      {"anchor_centre", (kBaseSize - 1) / 2.0},
                      {"landmark_std", kLandmarkStd},
                      {"levels", std::move(levels)}};
  metadata["postprocess"] = {{"conf_threshold", 0.8}, {"iou_threshold", 0.4}};
}

class RetinaFaceDecoder final : public TaskDecoder {
 public:
  RetinaFaceDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto size = task_support::input_size(metadata);
    width_ = static_cast<float>(size.width);
    height_ = static_cast<float>(size.height);
    const auto& head = metadata.at("head");
    centre_ = head.at("anchor_centre").get<float>();
    landmark_std_ = head.value("landmark_std", 1.0f);
    for (const auto& entry : head.at("levels")) {
      Level level;
      level.stride = entry.at("stride").get<int>();
      level.scores = output_index(outputs, entry.at("scores").get<std::string>(), "retinaface");
      level.bbox = output_index(outputs, entry.at("bbox").get<std::string>(), "retinaface");
      if (entry.contains("landmarks"))
        level.landmarks = output_index(outputs, entry.at("landmarks").get<std::string>(), "retinaface");
      level.sizes = entry.at("anchor_sizes").get<std::vector<float>>();
      const auto anchors = static_cast<std::int64_t>(level.sizes.size());
      const Shape& shape = outputs[level.scores].shape;
      if (shape.size() != 4 || anchors == 0 || shape[1] != 2 * anchors)
        fail("retinaface: output '{}' has shape {}, expected [B, {}, H, W] ({} anchors)",
             outputs[level.scores].name, shape_to_string(shape), 2 * anchors, anchors);
      level.grid_height = shape[2];
      level.grid_width = shape[3];
      check_shape(outputs[level.bbox], shape, 4 * anchors);
      if (level.landmarks != kNone) check_shape(outputs[level.landmarks], shape, 2 * kLandmarks * anchors);
      levels_.push_back(std::move(level));
    }
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float threshold = thresholds.for_class(0);
    for (const Level& level : levels_) {
      const float* scores = image_data(outputs[level.scores], batch_index);
      const float* deltas = image_data(outputs[level.bbox], batch_index);
      const float* points =
          level.landmarks == kNone ? nullptr : image_data(outputs[level.landmarks], batch_index);
      const std::int64_t plane = level.grid_height * level.grid_width;
      const auto anchors = static_cast<std::int64_t>(level.sizes.size());
      const auto stride = static_cast<float>(level.stride);
      for (std::int64_t a = 0; a < anchors; ++a) {
        const float* face = scores + (anchors + a) * plane;  // the face channels follow the background ones
        const float size = level.sizes[static_cast<std::size_t>(a)];
        const float landmark_size = size * landmark_std_;
        for (std::int64_t cell = 0; cell < plane; ++cell) {
          if (!(face[cell] > threshold)) continue;
          const float cx = static_cast<float>(cell % level.grid_width) * stride + centre_;
          const float cy = static_cast<float>(cell / level.grid_width) * stride + centre_;
          const auto delta = [&](std::int64_t k) { return deltas[(a * 4 + k) * plane + cell]; };
          const float box_cx = delta(0) * size + cx;
          const float box_cy = delta(1) * size + cy;
          const float half_w = 0.5f * (std::exp(delta(2)) * size - 1.0f);
          const float half_h = 0.5f * (std::exp(delta(3)) * size - 1.0f);
          Detection d;
          d.class_id = 0;
          d.score = face[cell];
          d.x1 = std::clamp(box_cx - half_w, 0.0f, width_ - 1.0f);
          d.y1 = std::clamp(box_cy - half_h, 0.0f, height_ - 1.0f);
          d.x2 = std::clamp(box_cx + half_w, 0.0f, width_ - 1.0f);
          d.y2 = std::clamp(box_cy + half_h, 0.0f, height_ - 1.0f);
          if (points != nullptr) {
            d.keypoints.resize(kLandmarks);
            for (std::int64_t k = 0; k < kLandmarks; ++k) {
              const float lx = points[(a * 2 * kLandmarks + 2 * k) * plane + cell];
              const float ly = points[(a * 2 * kLandmarks + 2 * k + 1) * plane + cell];
              d.keypoints[static_cast<std::size_t>(k)] = {lx * landmark_size + cx, ly * landmark_size + cy,
                                                          1.0f};
            }
          }
          out.push_back(std::move(d));
        }
      }
    }
  }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  struct Level {
    int stride = 0;
    std::int64_t grid_height = 0, grid_width = 0;
    std::vector<float> sizes;  // one anchor per size, in channel order
    std::size_t scores = kNone, bbox = kNone, landmarks = kNone;
  };
  static void check_shape(const TensorInfo& output, const Shape& scores, std::int64_t channels) {
    const Shape& shape = output.shape;
    if (shape.size() != 4 || shape[1] != channels || shape[2] != scores[2] || shape[3] != scores[3])
      fail("retinaface: output '{}' has shape {}, expected [B, {}, {}, {}]", output.name,
           shape_to_string(shape), channels, scores[2], scores[3]);
  }
  float width_ = 0.0f, height_ = 0.0f, centre_ = 0.0f, landmark_std_ = 1.0f;
  std::vector<Level> levels_;
};

}  // namespace

extern const TaskKind kRetinaFaceTask;
const TaskKind kRetinaFaceTask = {
    "retinaface", "RetinaFace face detector, 5 landmarks",           &recognizes,
    &describe,    &task_support::make_decoder_of<RetinaFaceDecoder>, {}};

}  // namespace vapipe::models
