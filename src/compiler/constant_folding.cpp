#include "compiler/constant_folding.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "compiler/reference_executor.hpp"
#include "core/error.hpp"
#include "ops/shape_inference.hpp"

namespace vapipe::compiler {
namespace {

std::vector<std::int64_t> strides_of(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

std::int64_t norm_axis(std::int64_t axis, std::size_t rank, const onnx::NodeProto& node) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) fail("axis {} out of range for rank {} in node '{}'", axis, rank, node.name());
  return axis;
}

// Maps a flat output index to the flat index of an input broadcast (numpy rules) to `out_shape`.
std::int64_t broadcast_index(std::int64_t flat, const Shape& out_shape,
                             const std::vector<std::int64_t>& out_strides, const Shape& in_shape) {
  const auto in_strides = strides_of(in_shape);
  std::int64_t index = 0;
  for (std::size_t d = 0; d < out_shape.size(); ++d) {
    const std::int64_t coord = flat / out_strides[d];
    flat %= out_strides[d];
    if (d + in_shape.size() < out_shape.size()) continue;
    const std::size_t id = d + in_shape.size() - out_shape.size();
    if (in_shape[id] != 1) index += coord * in_strides[id];
  }
  return index;
}

Constant elementwise(const std::vector<const Constant*>& inputs, const std::string& where,
                     const std::function<double(const std::vector<double>&)>& fn, bool is_int) {
  Shape shape;
  for (const auto* input : inputs) shape = ops::broadcast_shapes(shape, input->shape, where);
  Constant out{shape, std::vector<double>(static_cast<std::size_t>(shape_volume(shape))), is_int};
  const auto strides = strides_of(shape);
  std::vector<double> args(inputs.size());
  for (std::size_t i = 0; i < out.values.size(); ++i) {
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      args[k] = inputs[k]->values[static_cast<std::size_t>(
          broadcast_index(static_cast<std::int64_t>(i), shape, strides, inputs[k]->shape))];
    }
    out.values[i] = fn(args);
  }
  return out;
}

std::vector<std::int64_t> axes_of(const onnx::NodeProto& node, const std::vector<std::optional<Constant>>& in,
                                  std::int64_t opset) {
  if (opset >= 13) return in.size() > 1 && in[1] ? as_ints(*in[1]) : std::vector<std::int64_t>{};
  return attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
}

Constant reshape_to(Constant c, Shape shape) {
  c.shape = std::move(shape);
  return c;
}

}  // namespace

std::optional<std::vector<Constant>> fold_onnx_node(const onnx::NodeProto& node,
                                                    const std::vector<std::optional<Constant>>& in,
                                                    std::int64_t opset) {
  const std::string& op = node.op_type();
  const std::string where = fmt::format("node '{}' ({})", node.name(), op);
  auto input = [&](std::size_t i) -> const Constant& {
    if (i >= in.size() || !in[i]) fail("{}: input {} missing", where, i);
    return *in[i];
  };
  if (op == "Identity" || op == "Dropout") return std::vector<Constant>{input(0)};
  if (op == "Cast") {
    Constant c = input(0);
    const auto to = attribute_int(node, "to", 1);
    const bool to_float =
        to == onnx::TensorProto_DataType_FLOAT || to == onnx::TensorProto_DataType_FLOAT16 ||
        to == onnx::TensorProto_DataType_DOUBLE || to == onnx::TensorProto_DataType_BFLOAT16;
    if (!to_float) {
      for (auto& v : c.values)
        v = to == onnx::TensorProto_DataType_BOOL ? (v != 0.0 ? 1.0 : 0.0) : std::trunc(v);
    }
    c.is_int = !to_float;
    return std::vector<Constant>{c};
  }
  if (op == "Shape" || op == "Size") {
    const Shape& s = input(0).shape;
    if (op == "Size")
      return std::vector<Constant>{Constant{{}, {static_cast<double>(shape_volume(s))}, true}};
    const auto rank = static_cast<std::int64_t>(s.size());
    std::int64_t start = attribute_int(node, "start", 0), end = attribute_int(node, "end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<std::int64_t>(start, 0, rank);
    end = std::clamp<std::int64_t>(end, 0, rank);
    Constant c{{std::max<std::int64_t>(end - start, 0)}, {}, true};
    for (std::int64_t i = start; i < end; ++i)
      c.values.push_back(static_cast<double>(s[static_cast<std::size_t>(i)]));
    return std::vector<Constant>{c};
  }
  if (op == "Gather") {
    const Constant& data = input(0);
    const Constant& indices = input(1);
    if (data.shape.empty()) fail("{}: gather from a scalar", where);
    const auto axis =
        static_cast<std::size_t>(norm_axis(attribute_int(node, "axis", 0), data.shape.size(), node));
    std::int64_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < axis; ++d) outer *= data.shape[d];
    for (std::size_t d = axis + 1; d < data.shape.size(); ++d) inner *= data.shape[d];
    Shape shape(data.shape.begin(), data.shape.begin() + static_cast<std::ptrdiff_t>(axis));
    shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
    shape.insert(shape.end(), data.shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.shape.end());
    Constant out{shape, {}, data.is_int};
    for (std::int64_t o = 0; o < outer; ++o) {
      for (auto index : as_ints(indices)) {
        if (index < 0) index += data.shape[axis];
        if (index < 0 || index >= data.shape[axis]) fail("{}: index out of range", where);
        for (std::int64_t k = 0; k < inner; ++k) {
          out.values.push_back(
              data.values[static_cast<std::size_t>((o * data.shape[axis] + index) * inner + k)]);
        }
      }
    }
    return std::vector<Constant>{out};
  }
  if (op == "Unsqueeze") {
    const Constant& c = input(0);
    auto axes = axes_of(node, in, opset);
    const std::size_t rank = c.shape.size() + axes.size();
    for (auto& a : axes) a = norm_axis(a, rank, node);
    Shape shape;
    std::size_t next = 0;
    for (std::size_t d = 0; d < rank; ++d) {
      if (std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(d)) != axes.end()) {
        shape.push_back(1);
      } else {
        if (next >= c.shape.size()) fail("{}: invalid axes", where);
        shape.push_back(c.shape[next++]);
      }
    }
    return std::vector<Constant>{reshape_to(c, shape)};
  }
  if (op == "Squeeze") {
    const Constant& c = input(0);
    auto axes = axes_of(node, in, opset);
    for (auto& a : axes) a = norm_axis(a, c.shape.size(), node);
    Shape shape;
    for (std::size_t d = 0; d < c.shape.size(); ++d) {
      const bool listed = std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(d)) != axes.end();
      if ((axes.empty() && c.shape[d] == 1) || listed) continue;
      shape.push_back(c.shape[d]);
    }
    return std::vector<Constant>{reshape_to(c, shape)};
  }
  if (op == "Flatten") {
    const Constant& c = input(0);
    auto axis = attribute_int(node, "axis", 1);
    if (axis < 0) axis += static_cast<std::int64_t>(c.shape.size());
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < axis && d < static_cast<std::int64_t>(c.shape.size()); ++d)
      outer *= c.shape[static_cast<std::size_t>(d)];
    return std::vector<Constant>{reshape_to(c, {outer, outer == 0 ? 0 : shape_volume(c.shape) / outer})};
  }
  if (op == "Concat") {
    const Constant& first = input(0);
    if (first.shape.empty()) fail("{}: concat of scalars", where);
    const auto axis =
        static_cast<std::size_t>(norm_axis(attribute_int(node, "axis", 0), first.shape.size(), node));
    Shape shape = first.shape;
    shape[axis] = 0;
    bool is_int = true;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const Constant& c = input(i);
      if (c.shape.size() != shape.size()) fail("{}: rank mismatch", where);
      shape[axis] += c.shape[axis];
      is_int = is_int && c.is_int;
    }
    std::int64_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < axis; ++d) outer *= shape[d];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    Constant out{shape, {}, is_int};
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::size_t i = 0; i < in.size(); ++i) {
        const Constant& c = *in[i];
        const std::int64_t len = c.shape[axis] * inner;
        if (static_cast<std::int64_t>(c.values.size()) < (o + 1) * len) fail("{}: shape mismatch", where);
        out.values.insert(out.values.end(), c.values.begin() + o * len, c.values.begin() + (o + 1) * len);
      }
    }
    if (static_cast<std::int64_t>(out.values.size()) != shape_volume(shape))
      fail("{}: shape mismatch", where);
    return std::vector<Constant>{out};
  }
  if (op == "Reshape") {
    const Constant& c = input(0);
    auto target = as_ints(input(1));
    std::int64_t known = 1;
    int infer = -1;
    for (std::size_t d = 0; d < target.size(); ++d) {
      if (target[d] == 0 && d < c.shape.size()) target[d] = c.shape[d];
      if (target[d] == -1) {
        if (infer >= 0) fail("{}: two -1 in target", where);
        infer = static_cast<int>(d);
      } else {
        known *= target[d];
      }
    }
    if (infer >= 0) target[static_cast<std::size_t>(infer)] = known == 0 ? 0 : shape_volume(c.shape) / known;
    if (shape_volume(target) != shape_volume(c.shape)) fail("{}: cannot reshape constant", where);
    return std::vector<Constant>{reshape_to(c, target)};
  }
  if (op == "Slice") {
    const Constant& c = input(0);
    std::vector<std::int64_t> starts, ends, axes, steps;
    if (opset < 10) {
      starts = attribute_ints(node, "starts").value_or(std::vector<std::int64_t>{});
      ends = attribute_ints(node, "ends").value_or(std::vector<std::int64_t>{});
      axes = attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
    } else {
      starts = as_ints(input(1));
      ends = as_ints(input(2));
      if (in.size() > 3 && in[3]) axes = as_ints(*in[3]);
      if (in.size() > 4 && in[4]) steps = as_ints(*in[4]);
    }
    if (axes.empty())
      for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      fail("{}: starts/ends/axes/steps sizes differ", where);
    }
    const std::size_t rank = c.shape.size();
    std::vector<std::int64_t> begin(rank, 0), step(rank, 1);
    Shape shape = c.shape;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const auto a = static_cast<std::size_t>(norm_axis(axes[i], rank, node));
      const std::int64_t dim = c.shape[a];
      if (steps[i] <= 0) return std::nullopt;
      std::int64_t s =
          starts[i] < 0 ? std::max<std::int64_t>(starts[i], -dim) + dim : std::min(starts[i], dim);
      std::int64_t e = ends[i] < 0 ? std::max<std::int64_t>(ends[i], -dim) + dim : std::min(ends[i], dim);
      begin[a] = s;
      step[a] = steps[i];
      shape[a] = e > s ? (e - s + steps[i] - 1) / steps[i] : 0;
    }
    Constant out{shape, std::vector<double>(static_cast<std::size_t>(shape_volume(shape))), c.is_int};
    const auto ostr = strides_of(shape);
    const auto istr = strides_of(c.shape);
    for (std::size_t i = 0; i < out.values.size(); ++i) {
      std::int64_t rest = static_cast<std::int64_t>(i), src = 0;
      for (std::size_t d = 0; d < rank; ++d) {
        src += (begin[d] + rest / ostr[d] * step[d]) * istr[d];
        rest %= ostr[d];
      }
      out.values[i] = c.values[static_cast<std::size_t>(src)];
    }
    return std::vector<Constant>{out};
  }
  if (op == "Transpose") {
    const Constant& c = input(0);
    const std::size_t rank = c.shape.size();
    auto perm = attribute_ints(node, "perm").value_or(std::vector<std::int64_t>{});
    if (perm.empty())
      for (std::size_t d = rank; d-- > 0;) perm.push_back(static_cast<std::int64_t>(d));
    if (perm.size() != rank) fail("{}: perm size", where);
    Shape shape(rank);
    for (std::size_t d = 0; d < rank; ++d)
      shape[d] = c.shape.at(static_cast<std::size_t>(norm_axis(perm[d], rank, node)));
    Constant out{shape, std::vector<double>(c.values.size()), c.is_int};
    const auto ostr = strides_of(shape);
    const auto istr = strides_of(c.shape);
    for (std::size_t i = 0; i < out.values.size(); ++i) {
      std::int64_t rest = static_cast<std::int64_t>(i), src = 0;
      for (std::size_t d = 0; d < rank; ++d) {
        src += rest / ostr[d] * istr[static_cast<std::size_t>(perm[d])];
        rest %= ostr[d];
      }
      out.values[i] = c.values[static_cast<std::size_t>(src)];
    }
    return std::vector<Constant>{out};
  }
  static const std::unordered_map<std::string, std::function<double(double, double)>> kBinary = {
      {"Add", [](double a, double b) { return a + b; }},
      {"Sub", [](double a, double b) { return a - b; }},
      {"Mul", [](double a, double b) { return a * b; }},
      {"Max", [](double a, double b) { return std::max(a, b); }},
      {"Min", [](double a, double b) { return std::min(a, b); }},
      {"Equal", [](double a, double b) { return a == b ? 1.0 : 0.0; }},
      {"Less", [](double a, double b) { return a < b ? 1.0 : 0.0; }},
      {"Greater", [](double a, double b) { return a > b ? 1.0 : 0.0; }},
      {"And", [](double a, double b) { return a != 0.0 && b != 0.0 ? 1.0 : 0.0; }},
      {"Or", [](double a, double b) { return a != 0.0 || b != 0.0 ? 1.0 : 0.0; }},
  };
  if (const auto it = kBinary.find(op); it != kBinary.end() && in.size() == 2) {
    const auto& fn = it->second;
    const bool compare = op == "Equal" || op == "Less" || op == "Greater" || op == "And" || op == "Or";
    // Only integer (shape) arithmetic here; float arithmetic goes through the reference executor.
    if (!compare && !(input(0).is_int && input(1).is_int)) return std::nullopt;
    return std::vector<Constant>{elementwise(
        {&input(0), &input(1)}, where, [&](const std::vector<double>& a) { return fn(a[0], a[1]); }, true)};
  }
  if (op == "Div" && input(0).is_int && input(1).is_int) {
    return std::vector<Constant>{elementwise(
        {&input(0), &input(1)}, where,
        [&](const std::vector<double>& a) {
          if (a[1] == 0.0) fail("{}: integer division by zero", where);
          return std::trunc(a[0] / a[1]);
        },
        true)};
  }
  if (op == "Where") {
    return std::vector<Constant>{elementwise(
        {&input(0), &input(1), &input(2)}, where,
        [](const std::vector<double>& a) { return a[0] != 0.0 ? a[1] : a[2]; },
        input(1).is_int && input(2).is_int)};
  }
  if ((op == "Neg" || op == "Floor" || op == "Ceil" || op == "Not" || op == "Abs") && in.size() == 1) {
    Constant c = input(0);
    if (!c.is_int && op != "Not") return std::nullopt;
    for (auto& v : c.values)
      v = op == "Neg" ? -v : op == "Not" ? (v == 0.0 ? 1.0 : 0.0) : op == "Abs" ? std::fabs(v) : v;
    return std::vector<Constant>{c};
  }
  if (op == "Expand") {
    const Constant& c = input(0);
    const auto target = as_ints(input(1));
    Constant shape_only{Shape(target.begin(), target.end()), {}, true};
    shape_only.values.assign(
        static_cast<std::size_t>(std::max<std::int64_t>(shape_volume(shape_only.shape), 0)), 0.0);
    return std::vector<Constant>{elementwise(
        {&c, &shape_only}, where, [](const std::vector<double>& a) { return a[0]; }, c.is_int)};
  }
  if (op == "Range") {
    const double start = input(0).values.at(0), limit = input(1).values.at(0), delta = input(2).values.at(0);
    if (delta == 0.0) fail("{}: zero delta", where);
    const auto count = static_cast<std::int64_t>(std::max(std::ceil((limit - start) / delta), 0.0));
    if (count > (std::int64_t{1} << 28)) fail("{}: range too large", where);
    Constant out{{count}, {}, input(0).is_int};
    for (std::int64_t i = 0; i < count; ++i) out.values.push_back(start + static_cast<double>(i) * delta);
    return std::vector<Constant>{out};
  }
  if (op == "ConstantOfShape") {
    const auto target = as_ints(input(0));
    Constant out{Shape(target.begin(), target.end()), {}, false};
    double value = 0.0;
    if (const auto* attr = find_attribute(node, "value"); attr != nullptr && attr->has_t()) {
      const Constant v = read_tensor(attr->t(), where + " value");
      if (!v.values.empty()) value = v.values[0];
      out.is_int = v.is_int;
    }
    for (auto d : out.shape) {
      if (d < 0) fail("{}: negative dimension", where);
    }
    const std::int64_t volume = shape_volume(out.shape);
    if (volume > (std::int64_t{1} << 28)) fail("{}: constant too large", where);
    out.values.assign(static_cast<std::size_t>(volume), value);
    return std::vector<Constant>{out};
  }
  return std::nullopt;
}

std::vector<std::vector<float>> fold_ir_nodes(const ir::Graph& graph, std::size_t first,
                                              const std::vector<int>& outputs) {
  // A small graph with only the tensors these nodes touch, so the reference executor does not copy
  // every weight of the network for one folded node.
  ir::Graph sub;
  std::unordered_map<int, int> remap;
  auto map = [&](int index) {
    if (index < 0) return -1;
    const auto found = remap.find(index);
    if (found != remap.end()) return found->second;
    const int added = sub.add_tensor(graph.tensors.at(static_cast<std::size_t>(index)));
    remap.emplace(index, added);
    return added;
  };
  for (std::size_t i = first; i < graph.nodes.size(); ++i) {
    ir::Node node = graph.nodes[i];
    for (auto& index : node.inputs) index = map(index);
    for (auto& index : node.outputs) index = map(index);
    sub.nodes.push_back(std::move(node));
  }
  for (int index : outputs) sub.outputs.push_back(map(index));
  return run_reference(sub, {});
}

}  // namespace vapipe::compiler
