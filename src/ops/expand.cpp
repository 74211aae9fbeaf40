// Expand (broadcast a tensor to a shape) and Tile (repeat it along each axis): copies with an index map,
// no arithmetic. Both appear in exported heads (anchor grids, masks), never in the convolution trunk.
#include <algorithm>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_expand(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Constant* shape = ctx.const_input(1);
  if (shape == nullptr) ctx.unsupported("the target shape must be a constant");
  const Shape target = broadcast_shapes(ctx.shape_of(x), as_ints(*shape), "Expand");
  const std::string& out = node.output(0);
  if (target == ctx.shape_of(x)) {
    ctx.set_activation(out, x);
    return;
  }
  ctx.set_activation(out, ctx.emit1("Expand", {x}, {{"shape", target}}, out));
}

void import_tile(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  if (ctx.opset() < 6) ctx.unsupported("opset < 6 (tiles and axis inputs)");
  const int x = ctx.activation_input(0);
  const Constant* repeats = ctx.const_input(1);
  if (repeats == nullptr) ctx.unsupported("repeats must be a constant");
  const auto counts = as_ints(*repeats);
  if (counts.size() != ctx.shape_of(x).size()) ctx.unsupported("repeats must have one value per dimension");
  for (auto count : counts) {
    if (count < 1) ctx.unsupported("repeats below 1 (empty outputs)");
  }
  const std::string& out = node.output(0);
  if (std::all_of(counts.begin(), counts.end(), [](std::int64_t c) { return c == 1; })) {
    ctx.set_activation(out, x);
    return;
  }
  ctx.set_activation(out, ctx.emit1("Tile", {x}, {{"repeats", counts}}, out));
}

// ---- shapes ----
std::vector<Shape> expand_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape target = int_list(node, "shape", 0);
  const Shape out =
      broadcast_shapes(input_shape(graph, node, 0), target, fmt::format("node '{}' (Expand)", node.name));
  if (out != target)
    fail("node '{}' (Expand): shape {} is not the broadcast result", node.name, shape_to_string(target));
  return {out};
}

std::vector<Shape> tile_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto repeats = int_list(node, "repeats", x.size());
  Shape out(x.size());
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (repeats[d] < 1) fail("node '{}' (Tile): repeats must be at least 1", node.name);
    out[d] = x[d] * repeats[d];
  }
  return {out};
}

// For every output element, the input element it copies: coordinate d of the output reads coordinate
// `coordinate % x_shape[d]` (Tile) or 0 where the input's dimension is 1 (Expand; x aligned to the right).
std::vector<std::int64_t> source_offsets(const Shape& x_shape, const Shape& y_shape) {
  const auto x_strides = dense_strides(x_shape);
  const std::size_t lead = y_shape.size() - x_shape.size();
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(shape_volume(y_shape)));
  for_each_index(y_shape, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < x_shape.size(); ++d) offset += coord[lead + d] % x_shape[d] * x_strides[d];
    offsets[i] = offset;
  });
  return offsets;
}

// ---- reference ----
void copy_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.in_shape(node, 0);
  const Shape ys = ctx.out_shape(node, 0);
  auto& y = ctx.out(node, 0);
  const auto x_strides = dense_strides(xs);
  const std::size_t lead = ys.size() - xs.size();
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t source = 0;
    for (std::size_t d = 0; d < xs.size(); ++d) {
      const std::int64_t c = coord[lead + d];
      source += (node.op == "Tile" ? c % xs[d] : (xs[d] == 1 ? 0 : c)) * x_strides[d];
    }
    y[i] = x[static_cast<std::size_t>(source)];
  });
}

// ---- lowering ----
void lower_copy(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  // Resolved once at load: a gather by precomputed offsets (heads are small; the table is the output's size).
  auto offsets = std::make_shared<const std::vector<std::int64_t>>(source_offsets(l.shape(x), l.shape(y)));
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(l.shape(y)));
  l.add_kernel(
      [offsets](const std::vector<void*>& data) {
        const auto* in = static_cast<const float*>(data[0]);
        auto* out = static_cast<float*>(data[1]);
        for (std::size_t i = 0; i < offsets->size(); ++i) out[i] = in[(*offsets)[i]];
      },
      {src, dst});
}

}  // namespace

void register_expand(Registry& registry) {
  registry.add({"Expand", expand_shapes, copy_reference, lower_copy});
  registry.add({"Tile", tile_shapes, copy_reference, lower_copy});
  registry.add_onnx("Expand", import_expand);
  registry.add_onnx("Tile", import_tile);
}

}  // namespace vapipe::ops
