// Tile: the input repeated along each dimension, out[c] = x[c mod x_dim] per dimension (x's shape padded with
// leading 1s to the output's rank). ONNX Tile (constant repeats) and Expand (constant shape, numpy broadcasting
// both ways: a dimension of 1 is repeated, the others kept) import to it. A plain copy kernel: these ops only
// build grids and masks in heads.
#include <algorithm>
#include <cstring>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void emit_tile(ImportContext& ctx, int x, const Shape& out_shape) {
  const std::string& out = ctx.output();
  if (ctx.shape_of(x) == out_shape) {
    ctx.set_activation(out, x);
    return;
  }
  ctx.set_activation(out, ctx.emit1("Tile", {x}, {{"shape", out_shape}}, out));
}

void import_expand(ImportContext& ctx) {
  const int x = ctx.activation_input(0);
  const Constant* shape_c = ctx.const_input(1);
  if (shape_c == nullptr) ctx.unsupported("missing shape");
  const Shape target = as_ints(*shape_c);
  const Shape x_shape = ctx.shape_of(x);
  for (auto d : target) {
    if (d < 0) ctx.unsupported(fmt::format("negative dimension in shape {}", shape_to_string(target)));
  }
  const std::size_t rank = std::max(x_shape.size(), target.size());
  const Shape padded_x = padded_to_rank(x_shape, rank);
  const Shape padded_target = padded_to_rank(target, rank);
  Shape out(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    if (padded_x[d] != padded_target[d] && padded_x[d] != 1 && padded_target[d] != 1) {
      ctx.unsupported(fmt::format("shape {} does not broadcast with the input's {}", shape_to_string(target),
                                  shape_to_string(x_shape)));
    }
    out[d] = padded_x[d] == 1 ? padded_target[d] : padded_x[d];
  }
  emit_tile(ctx, x, out);
}

void import_tile(ImportContext& ctx) {
  if (ctx.opset() < 6) ctx.unsupported("the opset-1 form (tiles and axis inputs)");
  const int x = ctx.activation_input(0);
  const Constant* repeats_c = ctx.const_input(1);
  if (repeats_c == nullptr) ctx.unsupported("missing repeats");
  const auto repeats = as_ints(*repeats_c);
  const Shape x_shape = ctx.shape_of(x);
  if (repeats.size() != x_shape.size())
    ctx.unsupported(fmt::format("{} repeats for an input of rank {}", repeats.size(), x_shape.size()));
  // A batch-B stage of a batch-1 export holds B samples along axis 0: tiling it would interleave them.
  if (repeats[0] != 1 && ctx.batch_factor() > 1)
    ctx.unsupported("repeating axis 0 (the batch) in a stage compiled for a larger batch than exported");
  Shape out(x_shape.size());
  for (std::size_t d = 0; d < out.size(); ++d) {
    if (repeats[d] < 1) ctx.unsupported("repeats below 1 (an empty output)");
    out[d] = x_shape[d] * repeats[d];
  }
  emit_tile(ctx, x, out);
}

// ---- shapes ----
std::vector<Shape> tile_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto out = int_list(node, "shape", 0);
  const Shape padded = padded_to_rank(x, out.size());
  if (x.size() > out.size()) fail("node '{}' (Tile): output rank below the input's", node.name);
  for (std::size_t d = 0; d < out.size(); ++d) {
    if (padded[d] <= 0 || out[d] <= 0 || out[d] % padded[d] != 0) {
      fail("node '{}' (Tile): output {} is not a repetition of the input {}", node.name, shape_to_string(out),
           shape_to_string(x));
    }
  }
  return {out};
}

// ---- reference (also the kernel: a copy) ----
// Copies x (shape `x_shape`, padded to the output's rank) repeated into `y`, one output row at a time.
void tile_plain(const float* x, const Shape& x_shape, float* y, const Shape& y_shape) {
  const std::size_t rank = y_shape.size();
  const Shape padded = padded_to_rank(x_shape, rank);
  const auto x_strides = dense_strides(padded);
  const std::int64_t row = y_shape.back();
  const std::int64_t x_row = padded.back();
  const Shape rows(y_shape.begin(), y_shape.end() - 1);
  for_each_index(rows, [&](std::size_t r, const std::vector<std::int64_t>& coord) {
    std::int64_t source = 0;
    for (std::size_t d = 0; d < coord.size(); ++d) source += (coord[d] % padded[d]) * x_strides[d];
    float* target = y + static_cast<std::int64_t>(r) * row;
    for (std::int64_t start = 0; start < row; start += x_row)
      std::memcpy(target + start, x + source, static_cast<std::size_t>(x_row) * sizeof(float));
  });
}

void tile_reference(ReferenceContext& ctx, const ir::Node& node) {
  tile_plain(ctx.in(node, 0).data(), ctx.in_shape(node, 0), ctx.out(node, 0).data(), ctx.out_shape(node, 0));
}

// ---- lowering ----
void lower_tile(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape x_shape = l.shape(x);
  const Shape y_shape = l.shape(y);
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(y_shape));
  l.add_kernel(
      [x_shape, y_shape](const std::vector<void*>& data) {
        tile_plain(static_cast<const float*>(data[0]), x_shape, static_cast<float*>(data[1]), y_shape);
      },
      {src, dst});
}

}  // namespace

void register_tile(Registry& registry) {
  registry.add({"Tile", tile_shapes, tile_reference, lower_tile});
  registry.add_onnx("Tile", import_tile);
  registry.add_onnx("Expand", import_expand);
}

}  // namespace vapipe::ops
