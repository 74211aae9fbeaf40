#include "ops/shape_inference.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "ops/registry.hpp"

namespace vapipe::ops {
namespace {

constexpr std::int64_t kMaxAttributeValue = ir::kMaxTensorElements;

}  // namespace

std::int64_t bounded(const ir::Node& node, const char* key, std::int64_t value) {
  if (value < -kMaxAttributeValue || value > kMaxAttributeValue) {
    fail("node '{}' ({}): attribute '{}' value {} is out of range", node.name, node.op, key, value);
  }
  return value;
}

std::vector<std::int64_t> int_list(const ir::Node& node, const char* key, std::size_t expected_size) {
  if (!node.attrs.contains(key)) fail("node '{}' ({}): attribute '{}' missing", node.name, node.op, key);
  auto values = node.attrs.at(key).get<std::vector<std::int64_t>>();
  if (expected_size != 0 && values.size() != expected_size) {
    fail("node '{}' ({}): attribute '{}' has {} values, expected {}", node.name, node.op, key, values.size(),
         expected_size);
  }
  for (auto value : values) bounded(node, key, value);
  return values;
}

// The element count of a shape an attribute or a computation gave; refused when it is negative or beyond
// ir::kMaxTensorElements (the bound every loaded tensor already meets).
std::int64_t checked_volume(const ir::Node& node, const Shape& shape) {
  std::int64_t volume = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0 || (dim > 0 && volume > ir::kMaxTensorElements / dim)) {
      fail("node '{}' ({}): shape {} is negative or has more than {} elements", node.name, node.op,
           shape_to_string(shape), ir::kMaxTensorElements);
    }
    volume *= dim;
  }
  return volume;
}

const Shape& input_shape(const ir::Graph& graph, const ir::Node& node, std::size_t index) {
  if (index >= node.inputs.size() || node.inputs[index] < 0 ||
      node.inputs[index] >= static_cast<int>(graph.tensors.size())) {
    fail("node '{}' ({}): input {} missing", node.name, node.op, index);
  }
  return graph.tensors[static_cast<std::size_t>(node.inputs[index])].shape;
}

std::int64_t normalized_axis(const ir::Node& node, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r)
    fail("node '{}' ({}): axis {} out of range for rank {}", node.name, node.op, axis, rank);
  return axis;
}

std::int64_t window_output(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad_begin,
                           std::int64_t pad_end, std::int64_t dilation, const ir::Node& node) {
  if (stride <= 0 || dilation <= 0 || kernel <= 0)
    fail("node '{}' ({}): non-positive kernel/stride", node.name, node.op);
  const std::int64_t span = dilation * (kernel - 1) + 1;
  const std::int64_t padded = in + pad_begin + pad_end;
  if (padded < span)
    fail("node '{}' ({}): window {} larger than padded input {}", node.name, node.op, span, padded);
  return (padded - span) / stride + 1;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& where) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    const std::int64_t db = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    if (da != db && da != 1 && db != 1) {
      fail("{}: shapes {} and {} do not broadcast", where, shape_to_string(a), shape_to_string(b));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<Shape> infer_node_shapes(const ir::Graph& graph, const ir::Node& node) {
  std::vector<Shape> shapes;
  try {
    const OpDef* op = find_op(node.op);
    if (op == nullptr) fail("node '{}': unknown op '{}'", node.name, node.op);
    shapes = op->shapes(graph, node);
  } catch (const nlohmann::json::exception& error) {
    // An attribute of the wrong JSON type (a package is input like any other).
    fail("node '{}' ({}): malformed attributes: {}", node.name, node.op, error.what());
  }
  for (const auto& shape : shapes) checked_volume(node, shape);
  return shapes;
}

void infer_shapes(ir::Graph& graph) {
  for (const auto& node : graph.nodes) {
    auto shapes = infer_node_shapes(graph, node);
    if (shapes.size() != node.outputs.size()) {
      fail("node '{}' ({}): {} outputs, expected {}", node.name, node.op, node.outputs.size(), shapes.size());
    }
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      graph.tensors.at(static_cast<std::size_t>(node.outputs[i])).shape = std::move(shapes[i]);
    }
  }
}

}  // namespace vapipe::ops
