// Image classifiers (ImageNet-style, e.g. the ONNX Model Zoo's MobileNetV2, float or INT8): one [N, K] output
// of logits for K classes. Run on its own (`vapipe detect`) the whole image is the object; run as a secondary
// model (models/secondary_runner.hpp) each detected object's crop is classified and the detection gets an
// attribute: the top-1 class and its softmax probability. Input: the crop resized to the network's input
// (no letterbox), RGB, ImageNet's mean and std. Class names: ImageNet's 1000 from opencv-doc's
// classification_classes_ILSVRC2012.txt (the first name of each line) when the network has 1000 classes and
// the file is on the compiling machine, else "class_<i>".
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::image_data;

constexpr const char* kImagenetNames =
    "/usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt";

// One [N, K] output with ImageNet's 1000 classes (or 1001 with TensorFlow's background class): embedding
// networks' widths (128, 256, 512) and detector heads (3-D or 4-D) never match.
bool recognizes(const std::vector<TensorInfo>& outputs) {
  return outputs.size() == 1 && outputs[0].shape.size() == 2 &&
         (outputs[0].shape[1] == 1000 || outputs[0].shape[1] == 1001);
}

std::vector<std::string> class_names(std::int64_t classes) {
  std::vector<std::string> names;
  if (classes == 1000) {
    std::ifstream in(kImagenetNames);
    std::string line;
    while (std::getline(in, line)) names.push_back(line.substr(0, line.find(',')));
    if (names.size() != 1000) names.clear();
  }
  if (names.empty()) {
    for (std::int64_t i = 0; i < classes; ++i) names.push_back(fmt::format("class_{}", i));
  }
  return names;
}

void describe(const std::vector<TensorInfo>& outputs, int, int, nlohmann::json& metadata) {
  const Shape& shape = outputs.at(0).shape;
  if (outputs.size() != 1 || shape.size() != 2 || shape[1] < 2)
    fail("classifier: expected one [N, K] output, got '{}' of shape {}", outputs.at(0).name,
         shape_to_string(shape));
  metadata["class_names"] = class_names(shape[1]);
  metadata["num_classes"] = shape[1];
  // ImageNet's normalization on 0..255 pixels; "crop" is how a secondary runner cuts an object out (its box,
  // no margin).
  metadata["preprocess"] = {{"color", "rgb"},
                            {"scale", 1.0},
                            {"mean", {123.675, 116.28, 103.53}},
                            {"std", {58.395, 57.12, 57.375}},
                            {"letterbox", false},
                            {"crop", {{"rule", "upscale_clip"}, {"scale", 1.0}}}};
  metadata["head"] = {{"form", "classification"}, {"tensor", outputs[0].name}, {"classes", shape[1]}};
  metadata["postprocess"] = {{"conf_threshold", 0.0}};
}

class ClassifierDecoder final : public TaskDecoder {
 public:
  ClassifierDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto& head = metadata.at("head");
    output_ = task_support::output_index(outputs, head.at("tensor").get<std::string>(), "classifier");
    classes_ = head.value("classes", std::int64_t{0});
    const Shape& shape = outputs[output_].shape;
    if (shape.size() != 2 || classes_ < 2 || shape_volume(shape) % classes_ != 0)
      fail("classifier: output '{}' has shape {}, expected [N, {}]", outputs[output_].name,
           shape_to_string(shape), classes_);
    const auto size = task_support::input_size(metadata);
    width_ = static_cast<float>(size.width);
    height_ = static_cast<float>(size.height);
  }

  // The top-1 class with its softmax probability, boxed as the whole input.
  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
              const ScoreThresholds& thresholds, std::vector<Detection>& out) const override {
    const float* logits = image_data(outputs[output_], batch_index, classes_);
    const float* top = std::max_element(logits, logits + classes_);
    double sum = 0.0;
    for (std::int64_t i = 0; i < classes_; ++i) sum += std::exp(static_cast<double>(logits[i] - *top));
    Detection d;
    d.class_id = static_cast<int>(top - logits);
    d.score = static_cast<float>(1.0 / sum);
    if (d.score < thresholds.for_class(d.class_id)) return;
    d.x2 = width_;
    d.y2 = height_;
    out.push_back(std::move(d));
  }

 private:
  std::size_t output_ = 0;
  std::int64_t classes_ = 0;
  float width_ = 0.0F, height_ = 0.0F;
};

}  // namespace

extern const TaskKind kClassifierTask;
const TaskKind kClassifierTask = {
    "classifier",
    "image classifier (ImageNet-style [N, K] logits; top-1 class and probability)",
    &recognizes,
    &describe,
    &task_support::make_decoder_of<ClassifierDecoder>,
    {}};

}  // namespace vapipe::models
