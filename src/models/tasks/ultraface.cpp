// UltraFace (Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB, RFB and slim exports): SSD-style face
// detector, boxes only. The export decodes its priors itself: `scores` [B, N, 2] (softmax applied, class 1 is
// a face) and `boxes` [B, N, 4], corners as fractions of the input (N = 4420 at 320x240). The authors' decode
// (detect_imgs_onnx.py, predict) multiplies the corners by the input size, keeps scores above 0.7 and runs a
// hard NMS at 0.3. Input: RGB, (x - 127) / 128, a plain resize to the input size (no letterbox: the authors
// resize, and the priors cover the whole input).
#include <cstdint>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::has_output;
using task_support::image_data;
using task_support::output_index;

// `scores` [B, N, 2] and `boxes` [B, N, 4] with the same N: the names alone are too common.
bool recognizes(const std::vector<TensorInfo>& outputs) {
  if (!has_output(outputs, "scores") || !has_output(outputs, "boxes")) return false;
  const Shape& scores = outputs[output_index(outputs, "scores", "ultraface")].shape;
  const Shape& boxes = outputs[output_index(outputs, "boxes", "ultraface")].shape;
  return scores.size() == 3 && boxes.size() == 3 && scores[2] == 2 && boxes[2] == 4 && scores[1] == boxes[1];
}

void describe(const std::vector<TensorInfo>& /*outputs*/, int input_width, int input_height,
              nlohmann::json& metadata) {
  if (input_width <= 0 || input_height <= 0)
    fail("ultraface: the input size {}x{} is not known (compile with --input-size)", input_width,
         input_height);
  metadata["class_names"] = {"face"};
  metadata["num_classes"] = 1;
  metadata["preprocess"] = {
      {"color", "rgb"},     {"scale", 1.0},  {"mean", {127.0, 127.0, 127.0}}, {"std", {128.0, 128.0, 128.0}},
      {"letterbox", false}, {"pad_value", 0}};
  metadata["head"] = {{"form", "full"}, {"scores", "scores"}, {"boxes", "boxes"}};
  metadata["postprocess"] = {{"conf_threshold", 0.7}, {"iou_threshold", 0.3}};
}

class UltraFaceDecoder final : public TaskDecoder {
 public:
  UltraFaceDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto size = task_support::input_size(metadata);
    width_ = static_cast<float>(size.width);
    height_ = static_cast<float>(size.height);
    const auto& head = metadata.at("head");
    scores_ = output_index(outputs, head.at("scores").get<std::string>(), "ultraface");
    boxes_ = output_index(outputs, head.at("boxes").get<std::string>(), "ultraface");
    const Shape& scores = outputs[scores_].shape;
    const Shape& boxes = outputs[boxes_].shape;
    if (scores.size() != 3 || scores[2] != 2)
      fail("ultraface: output '{}' has shape {}, expected [B, N, 2]", outputs[scores_].name,
           shape_to_string(scores));
    if (boxes.size() != 3 || boxes[1] != scores[1] || boxes[2] != 4)
      fail("ultraface: output '{}' has shape {}, expected [B, {}, 4]", outputs[boxes_].name,
           shape_to_string(boxes), scores[1]);
    priors_ = scores[1];
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float threshold = thresholds.for_class(0);
    const float* scores = image_data(outputs[scores_], batch_index);
    const float* boxes = image_data(outputs[boxes_], batch_index);
    for (std::int64_t prior = 0; prior < priors_; ++prior) {
      const float face = scores[prior * 2 + 1];
      if (!(face > threshold)) continue;
      const float* box = boxes + prior * 4;
      Detection d;
      d.class_id = 0;
      d.score = face;
      d.x1 = box[0] * width_;
      d.y1 = box[1] * height_;
      d.x2 = box[2] * width_;
      d.y2 = box[3] * height_;
      out.push_back(d);
    }
  }

 private:
  float width_ = 0.0f, height_ = 0.0f;
  std::size_t scores_ = 0, boxes_ = 0;
  std::int64_t priors_ = 0;
};

}  // namespace

extern const TaskKind kUltraFaceTask;
const TaskKind kUltraFaceTask = {"ultraface",
                                 "UltraFace face detector, boxes only",
                                 &recognizes,
                                 &describe,
                                 &task_support::make_decoder_of<UltraFaceDecoder>,
                                 {}};

}  // namespace vapipe::models
