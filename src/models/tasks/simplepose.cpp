// Ultralight-Nano-SimplePose (dog-qiuqiu/Ultralight-SimplePose, gluoncv's SimplePose recipe): top-down human
// pose, COCO's 17 keypoints. Input: a person crop (vision/crop.hpp: the detector's box grown 1.25x about its
// centre, clipped to the image, stretched to 192 x 256), RGB, x / 255 then ImageNet mean/std. Output: one
// heatmap per keypoint at 1/4 of the input size. Decode (gluoncv get_max_pred + the SimpleBaselines quarter
// offset): per channel the argmax (first maximum in row-major order), moved a quarter heatmap pixel toward the
// higher neighbour in x and in y when the peak is not on the heatmap's outer two rows/columns, times the
// stride (4) into input pixels; the keypoint's score is the heatmap maximum.
#include <array>
#include <cstdint>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::image_data;
using task_support::output_index;

constexpr int kKeypoints = 17;
constexpr int kStride = 4;

// COCO order: nose, eyes (l, r), ears (l, r), shoulders, elbows, wrists, hips, knees, ankles.
// clang-format off
constexpr std::array<std::pair<int, int>, 16> kSkeleton = {{
    {0, 1}, {1, 3}, {0, 2}, {2, 4},            // face
    {5, 6}, {5, 7}, {7, 9}, {6, 8}, {8, 10},   // shoulders, arms
    {5, 11}, {6, 12}, {11, 12},                // torso
    {11, 13}, {12, 14}, {13, 15}, {14, 16}}};  // legs
// clang-format on

// One 4-D output of 17 channels: no box head has that (YOLO heads carry 5 + classes values per anchor).
bool recognizes(const std::vector<TensorInfo>& outputs) {
  return outputs.size() == 1 && outputs[0].shape.size() == 4 && outputs[0].shape[1] == kKeypoints;
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  const Shape& shape = outputs.at(0).shape;
  if (shape.size() != 4 || shape[2] * kStride != input_height || shape[3] * kStride != input_width)
    fail("simplepose: output '{}' has shape {}, expected [N, {}, {}, {}] (1/{} of the {}x{} input)",
         outputs[0].name, shape_to_string(shape), kKeypoints, input_height / kStride, input_width / kStride,
         kStride, input_width, input_height);
  metadata["class_names"] = {"person"};
  metadata["num_classes"] = 1;
  // "crop" is how a runner cuts the person out of the image before this stretch (vision::expand_crop).
  metadata["preprocess"] = {{"color", "rgb"},
                            {"scale", 1.0 / 255.0},
                            {"mean", {0.485, 0.456, 0.406}},
                            {"std", {0.229, 0.224, 0.225}},
                            {"letterbox", false},
                            {"crop", {{"rule", "upscale_clip"}, {"scale", 1.25}}}};
  metadata["head"] = {{"form", "heatmap"}, {"tensor", outputs[0].name}, {"stride", kStride}};
  // One pose per crop whatever its score: the thresholds and NMS have nothing to choose from.
  metadata["postprocess"] = {{"conf_threshold", 0.0}, {"keypoint_threshold", 0.2}};
}

class SimplePoseDecoder final : public TaskDecoder {
 public:
  SimplePoseDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto& head = metadata.at("head");
    output_ = output_index(outputs, head.at("tensor").get<std::string>(), "simplepose");
    stride_ = head.value("stride", kStride);
    const Shape& shape = outputs[output_].shape;
    if (shape.size() != 4 || shape[1] != kKeypoints || shape[2] < 1 || shape[3] < 1)
      fail("simplepose: output '{}' has shape {}, expected [N, {}, H, W]", outputs[output_].name,
           shape_to_string(shape), kKeypoints);
    height_ = shape[2];
    width_ = shape[3];
  }

  // Always one detection (the crop): a pose is asked for every person box, so thresholds do not apply here.
  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index, const ScoreThresholds&,
              std::vector<Detection>& out) const override {
    const ConstTensorView& view = outputs[output_];
    if (view.shape.size() != 4 || view.shape[2] != height_ || view.shape[3] != width_)
      fail("simplepose: output has shape {}, the decoder was made for [N, {}, {}, {}]",
           shape_to_string(view.shape), kKeypoints, height_, width_);
    const float* maps = image_data(view, batch_index);
    Detection d;
    d.class_id = 0;
    d.x2 = static_cast<float>(width_ * stride_);
    d.y2 = static_cast<float>(height_ * stride_);
    d.keypoints.resize(kKeypoints);
    float total = 0.0f;
    for (int k = 0; k < kKeypoints; ++k) {
      const float* map = maps + static_cast<std::int64_t>(k) * height_ * width_;
      std::int64_t best = 0;
      for (std::int64_t i = 1; i < height_ * width_; ++i)
        if (map[i] > map[best]) best = i;
      const std::int64_t px = best % width_;
      const std::int64_t py = best / width_;
      auto x = static_cast<float>(px);
      auto y = static_cast<float>(py);
      if (px > 1 && px < width_ - 1 && py > 1 && py < height_ - 1) {
        x += quarter_toward(map[py * width_ + px + 1] - map[py * width_ + px - 1]);
        y += quarter_toward(map[(py + 1) * width_ + px] - map[(py - 1) * width_ + px]);
      }
      const auto stride = static_cast<float>(stride_);
      d.keypoints[static_cast<std::size_t>(k)] = {x * stride, y * stride, map[best]};
      total += map[best];
    }
    d.score = total / static_cast<float>(kKeypoints);
    out.push_back(std::move(d));
  }

 private:
  static float quarter_toward(float difference) {
    return difference > 0.0f ? 0.25f : (difference < 0.0f ? -0.25f : 0.0f);
  }
  std::size_t output_ = 0;
  int stride_ = kStride;
  std::int64_t height_ = 0, width_ = 0;
};

}  // namespace

extern const TaskKind kSimplePoseTask;
const TaskKind kSimplePoseTask = {
    "simplepose", "SimplePose top-down human pose, COCO 17 keypoints", &recognizes,
    &describe,    &task_support::make_decoder_of<SimplePoseDecoder>,   kSkeleton};

}  // namespace vapipe::models
