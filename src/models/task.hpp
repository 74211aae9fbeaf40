#pragma once
// Model tasks beyond the YOLO box heads (face detectors with landmarks, ...). Each lives in one file under
// models/tasks/: it recognizes its network by the outputs' names and shapes when a model is compiled, writes
// how the input is preprocessed and what the head is into the package's metadata, and decodes the outputs into
// Detections (boxes, keypoints) in network input pixels. PostProcessor runs the decoder and the NMS; the
// pipeline and `vapipe detect` never know which task it is.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/detection.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::models {

class TaskDecoder {
 public:
  virtual ~TaskDecoder() = default;
  // Appends the candidates of image `batch_index` that pass `thresholds` to `out` (before NMS). `outputs`:
  // the network's outputs as float32, in its output order, with the shapes of the stage that ran.
  virtual void decode(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
                      const ScoreThresholds& thresholds, std::vector<Detection>& out) const = 0;
  // Called with the detections NMS kept, on the same outputs and image: a task whose objects carry something
  // costly (instance masks) computes it here for those only. Default: nothing.
  virtual void finish(std::span<const ConstTensorView> /*outputs*/, std::int64_t /*batch_index*/,
                      std::span<Detection> /*kept*/) const {}
};

struct TaskKind {
  std::string_view model_type;  // the metadata's model_type and the config's model_type
  std::string_view summary;     // for messages and docs: "SCRFD face detector, 5 landmarks"
  // Compile time: whether a network with these outputs (declared shapes; -1 where unknown) is this task.
  bool (*recognizes)(const std::vector<TensorInfo>& outputs);
  // Compile time: fills "preprocess", "head", "class_names" and "num_classes" of `metadata` for a network
  // with these outputs (the compiled shapes) and this input size. Throws vapipe::Error when they do not fit.
  void (*describe)(const std::vector<TensorInfo>& outputs, int input_width, int input_height,
                   nlohmann::json& metadata);
  // Run time: a decoder for a package's metadata and its network's outputs (any stage); throws vapipe::Error
  // naming the tensor or key that does not fit.
  std::unique_ptr<TaskDecoder> (*make_decoder)(const nlohmann::json& metadata,
                                               const std::vector<TensorInfo>& outputs);
  // Pairs of keypoint indices drawn as lines (a body skeleton); empty: dots only.
  std::span<const std::pair<int, int>> skeleton;
};

std::span<const TaskKind* const> task_kinds();
const TaskKind* find_task(std::string_view model_type);
const TaskKind* recognize_task(const std::vector<TensorInfo>& outputs);

// Helpers the tasks share.
namespace task_support {
// The index of the output named `name`; throws naming the task and the outputs it has.
std::size_t output_index(const std::vector<TensorInfo>& outputs, std::string_view name,
                         std::string_view task);
bool has_output(const std::vector<TensorInfo>& outputs, std::string_view name);
// The network input's width and height as the package's metadata records them ("input").
struct InputSize {
  int width = 0, height = 0;
};
InputSize input_size(const nlohmann::json& metadata);
// TaskKind::make_decoder for a decoder constructed from (metadata, outputs).
template <typename Decoder>
std::unique_ptr<TaskDecoder> make_decoder_of(const nlohmann::json& metadata,
                                             const std::vector<TensorInfo>& outputs) {
  return std::make_unique<Decoder>(metadata, outputs);
}
// The float32 data of image `batch_index` of an output holding `per_image` elements per image, images one
// after another (exports often flatten the batch into a fixed leading 1: [1, B*N, C]); throws when the
// image is outside the output.
const float* image_data(const ConstTensorView& view, std::int64_t batch_index, std::int64_t per_image);
// The same for an output whose first axis is the batch (it keeps it at every stage: checked by the tasks'
// tests at batch 4).
const float* image_data(const ConstTensorView& view, std::int64_t batch_index);
// Throws naming the task and the output unless it holds a whole number of images of `rows` x `columns`
// values ([B, rows, columns], or any shape of such a volume: exports may flatten the batch into a leading 1).
void check_rows(const TensorInfo& output, std::int64_t rows, std::int64_t columns, std::string_view task);
}  // namespace task_support

}  // namespace vapipe::models
