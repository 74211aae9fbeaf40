// Gather along one axis with constant indices.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_gather(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Constant* indices_c = ctx.const_input(1);
  if (indices_c == nullptr) ctx.unsupported("indices must be a constant");
  const Shape& s = ctx.shape_of(x);
  const auto axis = ctx.normalize_axis(attribute_int(node, "axis", 0), s.size());
  auto indices = as_ints(*indices_c);
  const std::int64_t dim = s[static_cast<std::size_t>(axis)];
  for (auto& index : indices) {
    if (index < 0) index += dim;
    if (index < 0 || index >= dim) fail("index out of range {}", dim);
  }
  ctx.set_activation(
      node.output(0),
      ctx.emit1("Gather", {x}, {{"axis", axis}, {"indices", indices}, {"indices_shape", indices_c->shape}},
                node.output(0)));
}

// ---- shapes ----
std::vector<Shape> gather_shapes(const ir::Graph& graph, const ir::Node& node) {
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

// ---- reference ----
void run_gather(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{0});
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  const auto a = static_cast<std::size_t>(axis);
  const auto indices = node.attrs.at("indices").get<std::vector<std::int64_t>>();
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= xs[d];
  for (std::size_t d = a + 1; d < xs.size(); ++d) inner *= xs[d];
  auto& y = ctx.out(node, 0);
  std::size_t pos = 0;
  for (std::int64_t o = 0; o < outer; ++o) {
    for (auto index : indices) {
      if (index < 0 || index >= xs[a]) fail("node '{}' (Gather): index {} out of range", node.name, index);
      const auto src = x.begin() + (o * xs[a] + index) * inner;
      std::copy_n(src, inner, y.begin() + static_cast<std::ptrdiff_t>(pos));
      pos += static_cast<std::size_t>(inner);
    }
  }
}

// ---- lowering ----
void lower_gather(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape& in = l.shape(x);
  int axis = node.attrs.at("axis").get<int>();
  if (axis < 0) axis += static_cast<int>(in.size());
  auto indices = int_attr(node.attrs, "indices");
  for (auto& index : indices) {
    if (index < 0) index += in.at(axis);
    if (index < 0 || index >= in.at(axis))
      fail("network '{}': node '{}': Gather index out of range", l.network(), node.name);
  }
  const std::int64_t outer =
      std::accumulate(in.begin(), in.begin() + axis, std::int64_t{1}, std::multiplies<>());
  const std::int64_t inner =
      std::accumulate(in.begin() + axis + 1, in.end(), std::int64_t{1}, std::multiplies<>());
  const std::int64_t axis_size = in.at(axis);
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(l.shape(y)));
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        gather_rows(static_cast<const float*>(data[0]), outer, axis_size, inner, indices,
                    static_cast<float*>(data[1]));
      },
      {src, dst});
}

}  // namespace

void register_gather(Registry& registry) {
  registry.add({"Gather", gather_shapes, run_gather, lower_gather});
  registry.add_onnx("Gather", import_gather);
}

}  // namespace vapipe::ops
