// Transpose: a permuted-stride view made dense by one reorder, or no copy at all for the channels-last
// heads (a view of an acdb value).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_transpose(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = node.output(0);
  const int x = ctx.activation_input(0);
  const std::size_t rank = ctx.shape_of(x).size();
  auto perm = attribute_ints(node, "perm").value_or(std::vector<std::int64_t>{});
  if (perm.empty())
    for (std::size_t d = rank; d-- > 0;) perm.push_back(static_cast<std::int64_t>(d));
  ctx.set_activation(out, ctx.emit1("Transpose", {x}, {{"perm", perm}}, out));
}

// ---- shapes ----
std::vector<Shape> transpose_shapes(const ir::Graph& graph, const ir::Node& node) {
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

// ---- reference ----
void run_transpose(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto perm = node.attrs.at("perm").get<std::vector<std::int64_t>>();
  auto& y = ctx.out(node, 0);
  const auto xstr = dense_strides(xs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) src += coord[d] * xstr[static_cast<std::size_t>(perm[d])];
    y[i] = x[static_cast<std::size_t>(src)];
  });
}

// ---- lowering ----
void lower_transpose(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const auto perm = int_attr(node.attrs, "perm");
  const Shape& in = l.shape(x);
  const auto in_strides = dense_strides(in);
  Dims view_dims;
  Dims view_strides;
  for (auto axis : perm) {
    view_dims.push_back(in.at(axis));
    view_strides.push_back(in_strides.at(axis));
  }
  if (Lowering::is_to_channels_last(node) && l.shape(x).size() == 4 &&
      l.value(l.value_of(x)).constant == nullptr) {
    // The bytes of an acdb [N, C, H, W] value are the dense [N, H, W, C] tensor: a view when the producer
    // wrote acdb (the head convolutions, normally), else one reorder into acdb.
    const int produced =
        l.value_as(x, memory::desc(Dims(l.shape(x).begin(), l.shape(x).end()), kF32, Tag::acdb));
    {
      const int view = l.define_output(y, plain_md(l.shape(y)));
      l.make_view(view, produced, !l.is_graph_output(y));
      l.mark_channels_last_view(view);
      return;
    }
  }
  const int src = l.plain_value(x);
  // The input read through permuted strides is the output; a reorder makes it dense.
  const int view = l.add_value(memory::desc(view_dims, kF32, view_strides));
  l.make_view(view, src);
  const int dst = l.define_output(y, plain_md(l.shape(y)));
  l.add_reorder(view, dst, node.name);
}

}  // namespace

void register_transpose(Registry& registry) {
  registry.add({"Transpose", transpose_shapes, run_transpose, lower_transpose});
  registry.add_onnx("Transpose", import_transpose);
}

}  // namespace vapipe::ops
