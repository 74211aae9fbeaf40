#pragma once
// ONNX -> IR lowering for one stage (one batch size): static shapes, shape chains folded, float ops on
// constants folded, every node expressed in the IR op vocabulary (core/graph.hpp). No fusion here.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/onnx_model.hpp"
#include "core/graph.hpp"

namespace vapipe::compiler {

struct ImportRequest {
  std::int64_t batch = 1;
  std::optional<std::pair<int, int>> input_size;  // W x H
  // Graph outputs to import instead of the model's (the raw-head cut); only their ancestors are lowered.
  std::vector<std::string> outputs;
};

ir::Graph lower_onnx(const OnnxModel& model, const ImportRequest& request);

}  // namespace vapipe::compiler
