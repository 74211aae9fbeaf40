#include "compiler/reference_executor.hpp"

#include <cstdint>

#include "core/error.hpp"
#include "ops/registry.hpp"

namespace vapipe::compiler {

using ir::Graph;

std::vector<std::vector<float>> run_reference(const Graph& graph,
                                              const std::vector<std::vector<float>>& inputs,
                                              const ReferenceOptions& options) {
  ops::ReferenceContext ctx{graph, std::vector<std::vector<float>>(graph.tensors.size()), options};
  if (inputs.size() != graph.inputs.size()) {
    fail("reference executor: {} inputs given, graph has {}", inputs.size(), graph.inputs.size());
  }
  for (std::size_t i = 0; i < graph.tensors.size(); ++i) {
    const auto& tensor = graph.tensors[i];
    if (!tensor.data) continue;
    if (tensor.dtype != DType::kF32 && tensor.dtype != DType::kS8)
      fail("reference executor: constant '{}' is neither f32 nor s8", tensor.name);
    const std::size_t count = tensor.data->size / dtype_size(tensor.dtype);
    if (static_cast<std::int64_t>(count) != shape_volume(tensor.shape)) {
      fail("reference executor: constant '{}' has {} values for shape {}", tensor.name, count,
           shape_to_string(tensor.shape));
    }
    if (tensor.dtype == DType::kS8) {  // int8 weights: the integers; the Conv applies weight_scales
      const auto values = tensor.data->as<std::int8_t>();
      ctx.values[i].assign(values.begin(), values.end());
    } else {
      const auto values = tensor.data->as<float>();
      ctx.values[i].assign(values.begin(), values.end());
    }
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto index = static_cast<std::size_t>(graph.inputs[i]);
    const auto& tensor = graph.tensors.at(index);
    if (static_cast<std::int64_t>(inputs[i].size()) != shape_volume(tensor.shape)) {
      fail("reference executor: input '{}' has {} values, shape {} needs {}", tensor.name, inputs[i].size(),
           shape_to_string(tensor.shape), shape_volume(tensor.shape));
    }
    ctx.values[index] = inputs[i];
  }
  for (const auto& node : graph.nodes) {
    const ops::OpDef* op = ops::find_op(node.op);
    if (op == nullptr) fail("reference executor: node '{}' has unknown op '{}'", node.name, node.op);
    op->reference(ctx, node);
    for (int output : node.outputs) {
      const auto& tensor = graph.tensors[static_cast<std::size_t>(output)];
      auto& value = ctx.values[static_cast<std::size_t>(output)];
      if (tensor.dtype == DType::kS8) ops::fake_quantize(value, tensor.scale, -128.0F, 127.0F);
      if (tensor.dtype == DType::kU8) ops::fake_quantize(value, tensor.scale, 0.0F, 255.0F);
      if (tensor.dtype == DType::kBF16) ops::round_to_bf16(value);
    }
  }
  std::vector<std::vector<float>> outputs;
  for (int index : graph.outputs) {
    const auto& value = ctx.values.at(static_cast<std::size_t>(index));
    if (static_cast<std::int64_t>(value.size()) != shape_volume(ctx.shape(index))) {
      fail("reference executor: output '{}' was never computed",
           graph.tensors[static_cast<std::size_t>(index)].name);
    }
    outputs.push_back(value);
  }
  return outputs;
}

}  // namespace vapipe::compiler
