#include "core/shape_inference.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"

namespace vapipe::ir {
namespace {

// Attribute integers (kernel, strides, pads, sizes, starts, group, ...) are bounded like dimensions, so the
// window and slice arithmetic below stays far inside int64 whatever a package says.
constexpr std::int64_t kMaxAttributeValue = kMaxTensorElements;

std::int64_t bounded(const Node& node, const char* key, std::int64_t value) {
  if (value < -kMaxAttributeValue || value > kMaxAttributeValue) {
    fail("node '{}' ({}): attribute '{}' value {} is out of range", node.name, node.op, key, value);
  }
  return value;
}

std::vector<std::int64_t> int_list(const Node& node, const char* key, std::size_t expected_size) {
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
// kMaxTensorElements (the bound every loaded tensor already meets).
std::int64_t checked_volume(const Node& node, const Shape& shape) {
  std::int64_t volume = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0 || (dim > 0 && volume > kMaxTensorElements / dim)) {
      fail("node '{}' ({}): shape {} is negative or has more than {} elements", node.name, node.op,
           shape_to_string(shape), kMaxTensorElements);
    }
    volume *= dim;
  }
  return volume;
}

const Shape& input_shape(const Graph& graph, const Node& node, std::size_t index) {
  if (index >= node.inputs.size() || node.inputs[index] < 0 ||
      node.inputs[index] >= static_cast<int>(graph.tensors.size())) {
    fail("node '{}' ({}): input {} missing", node.name, node.op, index);
  }
  return graph.tensors[static_cast<std::size_t>(node.inputs[index])].shape;
}

std::int64_t normalized_axis(const Node& node, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r)
    fail("node '{}' ({}): axis {} out of range for rank {}", node.name, node.op, axis, rank);
  return axis;
}

std::int64_t window_output(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad_begin,
                           std::int64_t pad_end, std::int64_t dilation, const Node& node) {
  if (stride <= 0 || dilation <= 0 || kernel <= 0)
    fail("node '{}' ({}): non-positive kernel/stride", node.name, node.op);
  const std::int64_t span = dilation * (kernel - 1) + 1;
  const std::int64_t padded = in + pad_begin + pad_end;
  if (padded < span)
    fail("node '{}' ({}): window {} larger than padded input {}", node.name, node.op, span, padded);
  return (padded - span) / stride + 1;
}

Shape infer_window(const Graph& graph, const Node& node, bool is_conv) {
  const Shape& x = input_shape(graph, node, 0);
  if (x.size() != 4)
    fail("node '{}' ({}): input must be 4-D, got {}", node.name, node.op, shape_to_string(x));
  const auto strides = int_list(node, "strides", 2);
  const auto pads = int_list(node, "pads", 4);
  std::vector<std::int64_t> dilations{1, 1};
  std::vector<std::int64_t> kernel(2);
  std::int64_t channels = x[1];
  if (is_conv) {
    dilations = int_list(node, "dilations", 2);
    const Shape& w = input_shape(graph, node, 1);
    if (w.size() != 4) fail("node '{}' (Conv): weight must be 4-D, got {}", node.name, shape_to_string(w));
    const std::int64_t group = bounded(node, "group", node.attrs.value("group", std::int64_t{1}));
    if (group <= 0 || w[1] * group != x[1] || w[0] % group != 0) {
      fail("node '{}' (Conv): input {} does not fit weight {} with group {}", node.name, shape_to_string(x),
           shape_to_string(w), group);
    }
    if (node.inputs.size() > 2 && node.inputs[2] >= 0) {
      const Shape& b = input_shape(graph, node, 2);
      if (checked_volume(node, b) != w[0])
        fail("node '{}' (Conv): bias has {} values, expected {}", node.name, checked_volume(node, b), w[0]);
    }
    kernel = {w[2], w[3]};
    channels = w[0];
  } else {
    kernel = int_list(node, "kernel", 2);
  }
  Shape out{x[0], channels, window_output(x[2], kernel[0], strides[0], pads[0], pads[2], dilations[0], node),
            window_output(x[3], kernel[1], strides[1], pads[1], pads[3], dilations[1], node)};
  if (is_conv && node.inputs.size() > 3 && node.inputs[3] >= 0) {
    const Shape& sum = input_shape(graph, node, 3);
    if (sum != out) {
      fail("node '{}' (Conv): sum input {} differs from output {}", node.name, shape_to_string(sum),
           shape_to_string(out));
    }
  }
  return out;
}

}  // namespace

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

namespace {

std::vector<Shape> node_shapes(const Graph& graph, const Node& node) {
  const std::string& op = node.op;
  if (op == "Conv") return {infer_window(graph, node, true)};
  if (op == "MaxPool" || op == "AveragePool") return {infer_window(graph, node, false)};
  if (op == "Eltwise" || op == "Softmax") {
    const Shape& x = input_shape(graph, node, 0);
    if (op == "Softmax") normalized_axis(node, node.attrs.value("axis", std::int64_t{-1}), x.size());
    return {x};
  }
  if (op == "Binary") {
    return {broadcast_shapes(input_shape(graph, node, 0), input_shape(graph, node, 1),
                             fmt::format("node '{}' (Binary)", node.name))};
  }
  if (op == "Concat") {
    if (node.inputs.empty()) fail("node '{}' (Concat): no inputs", node.name);
    Shape out = input_shape(graph, node, 0);
    const auto axis = static_cast<std::size_t>(
        normalized_axis(node, node.attrs.value("axis", std::int64_t{0}), out.size()));
    for (std::size_t i = 1; i < node.inputs.size(); ++i) {
      const Shape& s = input_shape(graph, node, i);
      bool fits = s.size() == out.size();
      for (std::size_t d = 0; fits && d < s.size(); ++d) fits = d == axis || s[d] == out[d];
      if (!fits)
        fail("node '{}' (Concat): input {} does not fit {}", node.name, shape_to_string(s),
             shape_to_string(out));
      out[axis] += s[axis];
    }
    return {out};
  }
  if (op == "Split") {
    const Shape& x = input_shape(graph, node, 0);
    const auto axis =
        static_cast<std::size_t>(normalized_axis(node, node.attrs.value("axis", std::int64_t{0}), x.size()));
    const auto sizes = int_list(node, "sizes", node.outputs.size());
    std::int64_t total = 0;
    std::vector<Shape> outs;
    for (auto size : sizes) {
      if (size < 0) fail("node '{}' (Split): negative size", node.name);
      total += size;
      Shape s = x;
      s[axis] = size;
      outs.push_back(std::move(s));
    }
    if (total != x[axis])
      fail("node '{}' (Split): sizes sum to {}, dimension is {}", node.name, total, x[axis]);
    return outs;
  }
  if (op == "Slice") {
    const Shape& x = input_shape(graph, node, 0);
    const auto starts = int_list(node, "starts", x.size());
    const auto ends = int_list(node, "ends", x.size());
    const auto steps = int_list(node, "steps", x.size());
    Shape out(x.size());
    for (std::size_t d = 0; d < x.size(); ++d) {
      if (steps[d] <= 0) fail("node '{}' (Slice): step must be positive", node.name);
      const std::int64_t begin = std::clamp<std::int64_t>(starts[d], 0, x[d]);
      const std::int64_t end = std::clamp<std::int64_t>(ends[d], 0, x[d]);
      out[d] = end > begin ? (end - begin + steps[d] - 1) / steps[d] : 0;
    }
    return {out};
  }
  if (op == "Resize") {
    const Shape& x = input_shape(graph, node, 0);
    if (!node.attrs.contains("scales")) fail("node '{}' (Resize): attribute 'scales' missing", node.name);
    const auto scales = node.attrs.at("scales").get<std::vector<double>>();
    if (scales.size() != x.size())
      fail("node '{}' (Resize): {} scales for rank {}", node.name, scales.size(), x.size());
    Shape out(x.size());
    for (std::size_t d = 0; d < x.size(); ++d) {
      const double size = std::floor(static_cast<double>(x[d]) * scales[d] + 1e-6);
      // Also refuses NaN (every comparison false) before the cast, which would be undefined.
      if (!(size >= 0.0 && size <= static_cast<double>(kMaxTensorElements)))
        fail("node '{}' (Resize): scale {} gives an invalid size", node.name, scales[d]);
      out[d] = static_cast<std::int64_t>(size);
    }
    return {out};
  }
  if (op == "Reshape") {
    const Shape& x = input_shape(graph, node, 0);
    Shape target = node.attrs.contains("shape")
                       ? node.attrs.at("shape").get<Shape>()
                       : graph.tensors.at(static_cast<std::size_t>(node.outputs.at(0))).shape;
    if (checked_volume(node, target) != checked_volume(node, x)) {
      fail("node '{}' (Reshape): cannot reshape {} to {}", node.name, shape_to_string(x),
           shape_to_string(target));
    }
    return {target};
  }
  if (op == "Transpose") {
    const Shape& x = input_shape(graph, node, 0);
    const auto perm = int_list(node, "perm", x.size());
    Shape out(x.size());
    std::vector<bool> seen(x.size(), false);
    for (std::size_t d = 0; d < x.size(); ++d) {
      if (perm[d] < 0 || perm[d] >= static_cast<std::int64_t>(x.size()) ||
          seen[static_cast<std::size_t>(perm[d])]) {
        fail("node '{}' (Transpose): invalid perm", node.name);
      }
      seen[static_cast<std::size_t>(perm[d])] = true;
      out[d] = x[static_cast<std::size_t>(perm[d])];
    }
    return {out};
  }
  if (op == "Gather") {
    const Shape& x = input_shape(graph, node, 0);
    const auto axis =
        static_cast<std::size_t>(normalized_axis(node, node.attrs.value("axis", std::int64_t{0}), x.size()));
    const auto indices = node.attrs.at("indices").get<std::vector<std::int64_t>>();
    const auto indices_shape = node.attrs.at("indices_shape").get<Shape>();
    if (checked_volume(node, indices_shape) != static_cast<std::int64_t>(indices.size())) {
      fail("node '{}' (Gather): indices_shape does not match indices", node.name);
    }
    for (auto index : indices) {
      if (index < 0 || index >= x[axis])
        fail("node '{}' (Gather): index {} out of range {}", node.name, index, x[axis]);
    }
    Shape out(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(axis));
    out.insert(out.end(), indices_shape.begin(), indices_shape.end());
    out.insert(out.end(), x.begin() + static_cast<std::ptrdiff_t>(axis) + 1, x.end());
    return {out};
  }
  fail("node '{}': unknown op '{}'", node.name, op);
}

}  // namespace

std::vector<Shape> infer_node_shapes(const Graph& graph, const Node& node) {
  std::vector<Shape> shapes;
  try {
    shapes = node_shapes(graph, node);
  } catch (const nlohmann::json::exception& error) {
    // An attribute of the wrong JSON type (a package is input like any other).
    fail("node '{}' ({}): malformed attributes: {}", node.name, node.op, error.what());
  }
  for (const auto& shape : shapes) checked_volume(node, shape);
  return shapes;
}

void infer_shapes(Graph& graph) {
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

}  // namespace vapipe::ir
