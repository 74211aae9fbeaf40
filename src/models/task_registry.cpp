#include "models/task.hpp"

#include <array>

#include "core/error.hpp"

namespace vapipe::models {

// Each task file defines its kind; the list below is the one place that names them all.
extern const TaskKind kScrfdTask;
extern const TaskKind kRetinaFaceTask;
extern const TaskKind kYuNetTask;
extern const TaskKind kUltraFaceTask;

std::span<const TaskKind* const> task_kinds() {
  static const std::array<const TaskKind*, 4> kinds = {&kScrfdTask, &kRetinaFaceTask, &kYuNetTask,
                                                       &kUltraFaceTask};
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

const float* image_data(const ConstTensorView& view, std::int64_t batch_index) {
  if (view.shape.empty() || view.data == nullptr) fail("post-processing: an output is empty");
  if (batch_index < 0 || batch_index >= view.shape[0])
    fail("post-processing: image {} is outside the batch of {}", batch_index, view.shape[0]);
  return static_cast<const float*>(view.data) + batch_index * (shape_volume(view.shape) / view.shape[0]);
}

void check_rows(const TensorInfo& output, std::int64_t rows, std::int64_t columns, std::string_view task) {
  if (output.shape.empty() || output.shape[0] <= 0 ||
      shape_volume(output.shape) / output.shape[0] != rows * columns)
    fail("{}: output '{}' has shape {}, expected [B, {}, {}]", task, output.name,
         shape_to_string(output.shape), rows, columns);
}

}  // namespace task_support
}  // namespace vapipe::models
