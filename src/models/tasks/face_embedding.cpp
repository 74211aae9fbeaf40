// Face embedding (recognition) networks: MobileFaceNet and its kin (ArcFace-style: an aligned 112x112 face
// in, one feature vector out, compared by cosine similarity). Input: the face warped by the 5-point
// similarity transform onto the ArcFace template (vision/face_align.hpp), from the landmarks a face
// detector task gives. Two exports are known apart by their input's name: the PyTorch one (`input`: RGB,
// (x - 127.5) / 128, as the gallery project's video_demo_onnx.py feeds it) and the PaddlePaddle one (`x`:
// BGR, (x - 127.5) / 127.5, PaddleClas' face recognition recipe). Decode: the vector, L2-normalized, as the
// embedding of the one detection the crop was.
#include <cmath>
#include <cstdint>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::models {
namespace {

using task_support::image_data;

bool is_embedding_width(std::int64_t width) { return width == 128 || width == 256 || width == 512; }

// One [N, D] output with D a usual embedding width (128, 256, 512): no detector or pose head is 2-D.
bool recognizes(const std::vector<TensorInfo>& outputs) {
  return outputs.size() == 1 && outputs[0].shape.size() == 2 && is_embedding_width(outputs[0].shape[1]);
}

void describe(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
              nlohmann::json& metadata) {
  const Shape& shape = outputs.at(0).shape;
  if (outputs.size() != 1 || shape.size() != 2 || shape[1] < 1)
    fail("face_embedding: expected one [N, D] output, got '{}' of shape {}", outputs.at(0).name,
         shape_to_string(shape));
  if (input_width != input_height)
    fail("face_embedding: the input is {}x{}; aligned faces are square", input_width, input_height);
  const bool paddle = metadata.at("input").value("name", std::string()) == "x";
  metadata["class_names"] = {"face"};
  metadata["num_classes"] = 1;
  // "crop" is how a runner cuts the face out of the image (vision/face_align.hpp).
  metadata["preprocess"] = {
      {"color", paddle ? "bgr" : "rgb"},
      {"scale", 1.0},
      {"mean", {127.5, 127.5, 127.5}},
      {"std", paddle ? nlohmann::json{127.5, 127.5, 127.5} : nlohmann::json{128, 128, 128}},
      {"letterbox", false},
      {"crop", {{"rule", "face_align"}, {"template", "arcface"}}}};
  metadata["head"] = {{"form", "embedding"}, {"tensor", outputs[0].name}, {"dimensions", shape[1]}};
  // One embedding per crop; "recognition_threshold" is the cosine similarity a gallery match needs
  // (the gallery project's video_demo_onnx.py uses 0.5 with this network).
  metadata["postprocess"] = {{"conf_threshold", 0.0}, {"recognition_threshold", 0.5}};
}

class FaceEmbeddingDecoder final : public TaskDecoder {
 public:
  FaceEmbeddingDecoder(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs) {
    const auto& head = metadata.at("head");
    output_ = task_support::output_index(outputs, head.at("tensor").get<std::string>(), "face_embedding");
    const Shape& shape = outputs[output_].shape;
    // Some exports reshape to [1, -1] at the end: a batch of B comes out as one row of B x D values (the
    // compiled stage's shape says so), so D is the compile-time width recorded in the metadata.
    dimensions_ = head.value("dimensions", shape.size() == 2 ? shape[1] : std::int64_t{0});
    if (shape.size() != 2 || dimensions_ < 1 || shape_volume(shape) % dimensions_ != 0)
      fail("face_embedding: output '{}' has shape {}, expected [N, {}] (or its images in one row)",
           outputs[output_].name, shape_to_string(shape), dimensions_);
  }

  void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index, const ScoreThresholds&,
              std::vector<Detection>& out) const override {
    const ConstTensorView& view = outputs[output_];
    if (view.shape.size() != 2 || shape_volume(view.shape) % dimensions_ != 0)
      fail("face_embedding: output has shape {}, the decoder was made for [N, {}]",
           shape_to_string(view.shape), dimensions_);
    const float* values = image_data(view, batch_index, dimensions_);
    double norm = 0.0;
    for (std::int64_t i = 0; i < dimensions_; ++i)
      norm += static_cast<double>(values[i]) * static_cast<double>(values[i]);
    norm = std::sqrt(norm);
    Detection d;
    d.score = 1.0f;
    d.embedding.resize(static_cast<std::size_t>(dimensions_));
    // A zero vector (a blank crop) stays zero: its cosine similarity to anything is 0, never a match.
    const double inverse = norm > 1e-12 ? 1.0 / norm : 0.0;
    for (std::int64_t i = 0; i < dimensions_; ++i)
      d.embedding[static_cast<std::size_t>(i)] = static_cast<float>(static_cast<double>(values[i]) * inverse);
    out.push_back(std::move(d));
  }

 private:
  std::size_t output_ = 0;
  std::int64_t dimensions_ = 0;
};

}  // namespace

extern const TaskKind kFaceEmbeddingTask;
const TaskKind kFaceEmbeddingTask = {"face_embedding",
                                     "face embedding (MobileFaceNet, ArcFace-aligned 112x112 input)",
                                     &recognizes,
                                     &describe,
                                     &task_support::make_decoder_of<FaceEmbeddingDecoder>,
                                     {}};

}  // namespace vapipe::models
