#include "models/task.hpp"

#include <array>

#include "core/error.hpp"

namespace vapipe::models {

// Each task file defines its kind; the list below is the one place that names them all.
extern const TaskKind kScrfdTask;
extern const TaskKind kRetinaFaceTask;
extern const TaskKind kYuNetTask;
extern const TaskKind kUltraFaceTask;
extern const TaskKind kSimplePoseTask;
extern const TaskKind kFaceEmbeddingTask;
extern const TaskKind kYoloxTask;
extern const TaskKind kGflTask;
extern const TaskKind kClassifierTask;
extern const TaskKind kYolov8SegTask;

std::span<const TaskKind* const> task_kinds() {
  static const std::array<const TaskKind*, 10> kinds = {
      &kScrfdTask,         &kRetinaFaceTask, &kYuNetTask, &kUltraFaceTask,  &kSimplePoseTask,
      &kFaceEmbeddingTask, &kYoloxTask,      &kGflTask,   &kClassifierTask, &kYolov8SegTask};
  return kinds;
}

const TaskKind* find_task(std::string_view model_type) {
  for (const TaskKind* kind : task_kinds())
    if (kind->model_type == model_type) return kind;
  return nullptr;
}

const TaskKind* recognize_task(const std::vector<TensorInfo>& outputs) {
  for (const TaskKind* kind : task_kinds())
    if (kind->recognizes(outputs)) return kind;
  return nullptr;
}

namespace task_support {

InputSize input_size(const nlohmann::json& metadata) {
  const auto& input = metadata.at("input");
  return {input.at("width").get<int>(), input.at("height").get<int>()};
}

bool has_output(const std::vector<TensorInfo>& outputs, std::string_view name) {
  for (const auto& output : outputs)
    if (output.name == name) return true;
  return false;
}

std::size_t output_index(const std::vector<TensorInfo>& outputs, std::string_view name,
                         std::string_view task) {
  for (std::size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].name == name) return i;
  std::string known;
  for (const auto& output : outputs) known += (known.empty() ? "" : ", ") + output.name;
  fail("{}: the network has no output '{}' (outputs: {})", task, name, known);
}

const float* image_data(const ConstTensorView& view, std::int64_t batch_index, std::int64_t per_image) {
  if (view.data == nullptr) fail("post-processing: an output is empty");
  const std::int64_t images = per_image > 0 ? shape_volume(view.shape) / per_image : 0;
  if (batch_index < 0 || batch_index >= images)
    fail("post-processing: image {} is outside the {} image(s) of an output of shape {}", batch_index, images,
         shape_to_string(view.shape));
  return static_cast<const float*>(view.data) + batch_index * per_image;
}

void check_rows(const TensorInfo& output, std::int64_t rows, std::int64_t columns, std::string_view task) {
  const std::int64_t volume = shape_volume(output.shape);
  if (rows <= 0 || columns <= 0 || volume <= 0 || volume % (rows * columns) != 0)
    fail("{}: output '{}' has shape {}, expected B x {} x {} values", task, output.name,
         shape_to_string(output.shape), rows, columns);
}

const float* image_data(const ConstTensorView& view, std::int64_t batch_index) {
  if (view.shape.empty() || view.shape[0] <= 0) fail("post-processing: an output is empty");
  return image_data(view, batch_index, shape_volume(view.shape) / view.shape[0]);
}

}  // namespace task_support
}  // namespace vapipe::models
