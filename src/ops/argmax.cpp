// ArgMax: the index of the largest value along one axis (the first or, with select_last_index, the last of
// equal ones), kept as a dimension of 1 or dropped (keepdims).
//
// ONNX gives the indices as int64; vapipe's activations and outputs are float32. A float32 holds every index
// below 2^24 exactly, but an int64 tensor that stayed float would change meaning downstream (integer division
// truncates, a float does not) and a graph output would come out as float where the model says int64. So the
// import accepts an ArgMax only where its indices are converted to a float type right away (every reader is a
// Cast to float, float16 or double) and refuses it, by name, as a graph output or read by anything else.
#include <algorithm>
#include <cmath>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// Indices of a dimension longer than this would not be exact in float32.
constexpr std::int64_t kExactFloatIndices = std::int64_t{1} << 24;

// ---- import ----
bool casts_to_float(const onnx::NodeProto& node) {
  if (node.op_type() != "Cast") return false;
  const auto to = attribute_int(node, "to", 0);
  return to == onnx::TensorProto_DataType_FLOAT || to == onnx::TensorProto_DataType_FLOAT16 ||
         to == onnx::TensorProto_DataType_DOUBLE;
}

void import_argmax(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = ctx.output();
  const int x = ctx.activation_input(0);
  const Shape x_shape = ctx.shape_of(x);
  if (ctx.is_graph_output(out))
    ctx.unsupported(
        "its int64 indices are a graph output, and vapipe's outputs are float32 (a Cast to float "
        "after the ArgMax compiles)");
  for (const onnx::NodeProto* reader : ctx.readers_of(out)) {
    if (!casts_to_float(*reader)) {
      ctx.unsupported(
          fmt::format("its int64 indices are read by '{}' (op {}), which vapipe would compute in "
                      "float32; only a Cast to a float type may read them",
                      reader->name(), reader->op_type()));
    }
  }
  const auto axis = ctx.normalize_axis(attribute_int(node, "axis", 0), x_shape.size());
  if (axis == 0 && ctx.batch_factor() > 1)
    ctx.unsupported("arg max over axis 0 (the batch) in a stage compiled for a larger batch than exported");
  if (x_shape[static_cast<std::size_t>(axis)] > kExactFloatIndices)
    ctx.unsupported("an axis longer than 2^24 (its indices are not exact in float32)");
  ctx.set_activation(out, ctx.emit1("ArgMax", {x},
                                    {{"axis", axis},
                                     {"keepdims", attribute_int(node, "keepdims", 1)},
                                     {"select_last_index", attribute_int(node, "select_last_index", 0)}},
                                    out));
}

// ---- shapes ----
std::vector<Shape> argmax_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto axis =
      static_cast<std::size_t>(normalized_axis(node, node.attrs.at("axis").get<std::int64_t>(), x.size()));
  if (x[axis] > kExactFloatIndices) fail("node '{}' (ArgMax): axis longer than 2^24", node.name);
  Shape out = x;
  if (node.attrs.value("keepdims", std::int64_t{1}) != 0) {
    out[axis] = 1;
  } else {
    out.erase(out.begin() + static_cast<std::ptrdiff_t>(axis));
  }
  return {out};
}

// ---- reference (also the kernel: comparisons only) ----
void argmax_plain(const float* x, const Shape& x_shape, std::size_t axis, bool last, float* y) {
  const AxisSplit split = split_at_axis(x_shape, axis);
  for (std::int64_t o = 0; o < split.outer; ++o) {
    for (std::int64_t i = 0; i < split.inner; ++i) {
      const float* base = x + o * split.axis * split.inner + i;
      std::int64_t best = 0;
      for (std::int64_t k = 1; k < split.axis; ++k) {
        const float v = base[k * split.inner];
        const float top = base[best * split.inner];
        if (v > top || (last && v == top)) best = k;
      }
      y[o * split.inner + i] = static_cast<float>(best);
    }
  }
}

void argmax_reference(ReferenceContext& ctx, const ir::Node& node) {
  argmax_plain(ctx.in(node, 0).data(), ctx.in_shape(node, 0), node.attrs.at("axis").get<std::size_t>(),
               node.attrs.value("select_last_index", std::int64_t{0}) != 0, ctx.out(node, 0).data());
}

// ---- lowering ----
void lower_argmax(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape x_shape = l.shape(x);
  const auto axis = node.attrs.at("axis").get<std::size_t>();
  const bool last = node.attrs.value("select_last_index", std::int64_t{0}) != 0;
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(l.shape(y)));
  l.add_kernel(
      [x_shape, axis, last](const std::vector<void*>& data) {
        argmax_plain(static_cast<const float*>(data[0]), x_shape, axis, last, static_cast<float*>(data[1]));
      },
      {src, dst});
}

}  // namespace

void register_argmax(Registry& registry) {
  registry.add({"ArgMax", argmax_shapes, argmax_reference, lower_argmax});
  registry.add_onnx("ArgMax", import_argmax);
}

}  // namespace vapipe::ops
