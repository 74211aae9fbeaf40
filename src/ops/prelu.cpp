// PRelu: y = x where x >= 0, slope * x elsewhere, the slope broadcast to x (ONNX unidirectional broadcasting:
// numpy rules, x's shape unchanged). A constant scalar slope imports as Eltwise leaky_relu, which the fusion
// pass folds into a preceding Conv; any other slope (per channel, MobileFaceNet's [C, 1, 1]) is a PRelu node
// lowered to oneDNN's prelu primitive, or to a plain kernel where oneDNN has no fast one.
#include <algorithm>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// True when `slope` broadcasts to `x` without changing x's shape.
bool broadcasts_to(const Shape& slope, const Shape& x) {
  if (slope.size() > x.size()) return false;
  for (std::size_t i = 0; i < slope.size(); ++i) {
    const std::int64_t target = x[x.size() - slope.size() + i];
    if (slope[i] != 1 && slope[i] != target) return false;
  }
  return true;
}

// ---- import ----
void import_prelu(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const std::string& out = node.output(0);
  const Constant* slope = ctx.constant_of(node.input(1));
  const Shape x_shape = ctx.shape_of(x);
  if (slope != nullptr && slope->values.size() == 1 && slope->shape.size() <= x_shape.size()) {
    ctx.set_activation(out,
                       ctx.emit1("Eltwise", {x}, {{"alg", "leaky_relu"}, {"alpha", slope->values[0]}}, out));
    return;
  }
  int s = ctx.tensor_of(node.input(1));
  const Shape slope_shape = ctx.shape_of(s);
  // Before opset 7 (no broadcasting rules yet) a 1-D slope of C values is per channel (axis 1), as PyTorch's
  // PReLU(num_parameters=C) exported it.
  if (ctx.opset() < 7 && slope_shape.size() == 1 && x_shape.size() > 2 && slope_shape[0] == x_shape[1]) {
    Shape per_channel(x_shape.size() - 1, 1);
    per_channel[0] = x_shape[1];
    s = slope != nullptr ? ctx.constant_tensor(node.input(1) + "/per_channel", per_channel,
                                               std::vector<float>(slope->values.begin(), slope->values.end()))
                         : ctx.emit_reshape(s, per_channel, out + "/prelu_slope");
  }
  if (!broadcasts_to(ctx.shape_of(s), x_shape)) {
    ctx.unsupported(fmt::format("slope of shape {} does not broadcast to the input's {}",
                                shape_to_string(slope_shape), shape_to_string(x_shape)));
  }
  ctx.set_activation(out, ctx.emit1("PRelu", {x, s}, json::object(), out));
}

// ---- shapes ----
std::vector<Shape> prelu_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const Shape& slope = input_shape(graph, node, 1);
  if (!broadcasts_to(slope, x)) {
    fail("node '{}' (PRelu): slope {} does not broadcast to the input {}", node.name, shape_to_string(slope),
         shape_to_string(x));
  }
  return {x};
}

// ---- reference (also the plain kernel: nothing in it to accumulate) ----
void prelu_plain(const float* x, const Shape& x_shape, const float* slope, const Shape& slope_shape,
                 float* y) {
  const auto slope_strides = broadcast_strides(slope_shape, x_shape.size());
  for_each_index(x_shape, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t s = 0;
    for (std::size_t d = 0; d < coord.size(); ++d) s += coord[d] * slope_strides[d];
    y[i] = x[i] >= 0.0F ? x[i] : slope[s] * x[i];
  });
}

void prelu_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const auto& slope = ctx.in(node, 1);
  prelu_plain(x.data(), ctx.in_shape(node, 0), slope.data(), ctx.in_shape(node, 1), ctx.out(node, 0).data());
}

// ---- lowering ----
void lower_prelu(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int slope = node.inputs.at(1);
  const int y = node.outputs.at(0);
  const Shape x_shape = l.shape(x);
  const Shape slope_shape = padded_to_rank(l.shape(slope), x_shape.size());
  // Computes in x's own layout (a convolution's blocked output stays blocked).
  const int src = l.float_value(x);
  try {
    const memory::desc weights_any(Dims(slope_shape.begin(), slope_shape.end()), kF32, Tag::any);
    const dnnl::prelu_forward::desc desc(prop_kind::forward_inference, l.value(src).md, weights_any);
    const dnnl::prelu_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
    if (!Lowering::is_reference(pd)) {
      const int stored = l.plain_view(l.plain_value(slope), slope_shape);
      int weights = stored;
      if (pd.weights_desc() != l.value(stored).md) {
        weights = l.add_value(pd.weights_desc());
        if (l.value(stored).constant != nullptr) {
          l.pack_constant(stored, weights);
        } else {
          l.add_reorder(stored, weights, "slope");
        }
      }
      const int dst = l.define_output(y, pd.dst_desc());
      l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
      return;
    }
  } catch (const dnnl::error&) {
    // No oneDNN implementation for this broadcast: the plain kernel below.
  }
  const int plain_src = l.plain_value(x);
  const int plain_slope = l.plain_value(slope);
  const int dst = l.define_output(y, plain_md(x_shape));
  l.add_kernel(
      [x_shape, slope_shape](const std::vector<void*>& data) {
        prelu_plain(static_cast<const float*>(data[0]), x_shape, static_cast<const float*>(data[1]),
                    slope_shape, static_cast<float*>(data[2]));
      },
      {plain_src, plain_slope, dst});
}

}  // namespace

void register_prelu(Registry& registry) {
  registry.add({"PRelu", prelu_shapes, prelu_reference, lower_prelu});
  registry.add_onnx("PRelu", import_prelu);
}

}  // namespace vapipe::ops
