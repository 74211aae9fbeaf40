// Softmax and LogSoftmax along one axis (opset-13 semantics; older opsets' 2-D coercion is imported as
// reshapes).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_softmax(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  const std::string& out = node.output(0);
  const auto axis = ctx.normalize_axis(attribute_int(node, "axis", ctx.opset() < 13 ? 1 : -1), s.size());
  const bool log = node.op_type() == "LogSoftmax";
  if (ctx.opset() >= 13 || axis == static_cast<std::int64_t>(s.size()) - 1) {
    ctx.set_activation(out, ctx.emit1("Softmax", {x}, {{"axis", axis}, {"log", log}}, out));
    return;
  }
  // Opset < 13: the input is coerced to 2-D [prod(dims before axis), prod(dims from axis)].
  std::int64_t outer = 1;
  for (std::int64_t d = 0; d < axis; ++d) outer *= s[static_cast<std::size_t>(d)];
  const int flat = ctx.emit_reshape(x, {outer, shape_volume(s) / outer}, out + "/softmax_2d");
  const int soft = ctx.emit1("Softmax", {flat}, {{"axis", 1}, {"log", log}}, out + "/softmax");
  ctx.set_activation(out, ctx.emit_reshape(soft, s, out));
}

// ---- shapes ----
std::vector<Shape> softmax_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  normalized_axis(node, node.attrs.value("axis", std::int64_t{-1}), x.size());
  return {x};
}

// ---- reference ----
void run_softmax(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{-1});
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  const auto a = static_cast<std::size_t>(axis);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= xs[d];
  for (std::size_t d = a + 1; d < xs.size(); ++d) inner *= xs[d];
  const std::int64_t len = xs[a];
  const bool log = node.attrs.value("log", false);
  auto& y = ctx.out(node, 0);
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const std::int64_t base = o * len * inner + i;
      double top = -std::numeric_limits<double>::infinity();
      for (std::int64_t k = 0; k < len; ++k)
        top = std::max(top, static_cast<double>(x[static_cast<std::size_t>(base + k * inner)]));
      double total = 0.0;
      for (std::int64_t k = 0; k < len; ++k)
        total += std::exp(static_cast<double>(x[static_cast<std::size_t>(base + k * inner)]) - top);
      for (std::int64_t k = 0; k < len; ++k) {
        const auto idx = static_cast<std::size_t>(base + k * inner);
        y[idx] = static_cast<float>(log ? static_cast<double>(x[idx]) - top - std::log(total)
                                        : std::exp(static_cast<double>(x[idx]) - top) / total);
      }
    }
  }
}

// ---- lowering ----
void lower_softmax(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape& shape = l.shape(x);
  int axis = node.attrs.value("axis", -1);
  if (axis < 0) axis += static_cast<int>(shape.size());
  const bool log = node.attrs.value("log", false);
  const AxisSplit split = split_at_axis(shape, static_cast<std::size_t>(axis));
  const int src = l.plain_value(x);
  if (split.inner > 1) {  // oneDNN's fast kernels need the axis innermost (plain_kernels.hpp)
    const int dst = l.define_output(y, plain_md(shape));
    l.add_kernel(
        [split, log](const std::vector<void*>& data) {
          softmax_across(static_cast<const float*>(data[0]), static_cast<float*>(data[1]), split.outer,
                         split.axis, split.inner, log);
        },
        {src, dst});
    return;
  }
  if (log) {
    const dnnl::logsoftmax_forward::desc desc(prop_kind::forward_inference, l.md(src), axis);
    const dnnl::logsoftmax_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
    const int dst = l.define_output(y, pd.dst_desc());
    l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    return;
  }
  const dnnl::softmax_forward::desc desc(prop_kind::forward_inference, l.md(src), axis);
  const dnnl::softmax_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
  const int dst = l.define_output(y, pd.dst_desc());
  l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
}

}  // namespace

void register_softmax(Registry& registry) {
  registry.add({"Softmax", softmax_shapes, run_softmax, lower_softmax});
  for (const char* op : {"Softmax", "LogSoftmax"}) registry.add_onnx(op, import_softmax);
}

}  // namespace vapipe::ops
