// Reduce: the mean or the maximum over some axes, kept as 1s or dropped (keepdims); ONNX ReduceMean and
// ReduceMax import to it (axes as attribute before opset 18, as a constant input from 18). Lowered to
// oneDNN's reduction primitive.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_reduce(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = ctx.output();
  const int x = ctx.activation_input(0);
  const Shape x_shape = ctx.shape_of(x);
  std::vector<std::int64_t> axes;
  if (ctx.opset() >= 18) {
    if (const Constant* c = ctx.const_input(1)) axes = as_ints(*c);
    if (axes.empty() && attribute_int(node, "noop_with_empty_axes", 0) != 0) {
      ctx.forward(out, node.input(0));  // no axes, no reduction: the input itself
      return;
    }
  } else {
    axes = attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
  }
  if (axes.empty()) {  // every axis
    for (std::size_t d = 0; d < x_shape.size(); ++d) axes.push_back(static_cast<std::int64_t>(d));
  }
  for (auto& axis : axes) axis = ctx.normalize_axis(axis, x_shape.size());
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) ctx.unsupported("an axis listed twice");
  // A batch-B stage of a batch-1 export holds B samples along axis 0: reducing over it would mix them.
  if (axes.front() == 0 && ctx.batch_factor() > 1)
    ctx.unsupported("reducing over axis 0 (the batch) in a stage compiled for a larger batch than exported");
  const std::string alg = node.op_type() == "ReduceMean" ? "mean" : "max";
  ctx.set_activation(
      out, ctx.emit1("Reduce", {x},
                     {{"alg", alg}, {"axes", axes}, {"keepdims", attribute_int(node, "keepdims", 1)}}, out));
}

// ---- shapes ----
// The output shape with the reduced axes kept as 1s (the shape the computation works in).
Shape kept_shape(const ir::Node& node, const Shape& x) {
  const auto axes = int_list(node, "axes", 0);
  if (axes.empty()) fail("node '{}' (Reduce): no axes", node.name);
  Shape kept = x;
  std::vector<bool> seen(x.size(), false);
  for (auto axis : axes) {
    const auto a = static_cast<std::size_t>(normalized_axis(node, axis, x.size()));
    if (seen[a]) fail("node '{}' (Reduce): axis {} listed twice", node.name, axis);
    seen[a] = true;
    kept[a] = 1;
  }
  return kept;
}

bool reduced_axis(const ir::Node& node, std::size_t d, std::size_t rank) {
  const auto axes = node.attrs.at("axes").get<std::vector<std::int64_t>>();
  return std::any_of(axes.begin(), axes.end(), [&](std::int64_t axis) {
    return static_cast<std::size_t>(normalized_axis(node, axis, rank)) == d;
  });
}

std::vector<Shape> reduce_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto alg = node.attrs.at("alg").get<std::string>();
  if (alg != "mean" && alg != "max") fail("node '{}' (Reduce): unknown alg '{}'", node.name, alg);
  const Shape kept = kept_shape(node, x);
  if (node.attrs.value("keepdims", std::int64_t{1}) != 0) return {kept};
  Shape dropped;
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (!reduced_axis(node, d, x.size())) dropped.push_back(x[d]);
  }
  return {dropped};
}

// ---- reference ----
void reduce_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& x_shape = ctx.in_shape(node, 0);
  const Shape kept = kept_shape(node, x_shape);
  const bool is_max = node.attrs.at("alg").get<std::string>() == "max";
  const auto strides = broadcast_strides(kept, kept.size());  // 0 along the reduced axes
  std::vector<double> totals(static_cast<std::size_t>(shape_volume(kept)),
                             is_max ? -std::numeric_limits<double>::infinity() : 0.0);
  for_each_index(x_shape, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t o = 0;
    for (std::size_t d = 0; d < coord.size(); ++d) o += coord[d] * strides[d];
    auto& total = totals[static_cast<std::size_t>(o)];
    const auto v = static_cast<double>(x[i]);
    total = is_max ? (std::isnan(v) || std::isnan(total) ? std::numeric_limits<double>::quiet_NaN()
                                                         : std::max(total, v))
                   : total + v;
  });
  const auto count = static_cast<double>(shape_volume(x_shape) / shape_volume(kept));
  auto& y = ctx.out(node, 0);
  for (std::size_t i = 0; i < y.size(); ++i)
    y[i] = static_cast<float>(is_max ? totals[i] : totals[i] / count);
}

// ---- lowering ----
void lower_reduce(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape kept = kept_shape(node, l.shape(x));
  const bool is_max = node.attrs.at("alg").get<std::string>() == "max";
  const int src = l.plain_value(x);
  if (kept == l.shape(x)) {  // only axes of size 1: nothing to reduce
    l.make_view(l.define_output(y, plain_md(l.shape(y))), src);
    return;
  }
  const dnnl::reduction::desc desc(is_max ? algorithm::reduction_max : algorithm::reduction_mean,
                                   l.value(src).md, plain_md(kept), 0.0F, 0.0F);
  const dnnl::reduction::primitive_desc pd(desc, l.plain_attr(), l.engine());
  if (kept == l.shape(y)) {
    l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, l.define_output(y, pd.dst_desc())}});
    return;
  }
  // keepdims 0: the output is a view of the kept-dimension result without its 1s.
  const int result = l.add_value(pd.dst_desc());
  l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, result}});
  l.make_view(l.define_output(y, plain_md(l.shape(y))), result);
}

}  // namespace

void register_reduce(Registry& registry) {
  registry.add({"Reduce", reduce_shapes, reduce_reference, lower_reduce});
  for (const char* op : {"ReduceMean", "ReduceMax"}) registry.add_onnx(op, import_reduce);
}

}  // namespace vapipe::ops
