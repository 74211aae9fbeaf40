// MaxPool and AveragePool (2-D windows, explicit pads; ceil_mode imported as extra end padding) and the
// ONNX pooling ops, global ones included, that import to them.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_pool(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  int x = ctx.activation_input(0);
  const Shape input_shape = ctx.shape_of(x);
  // 1-D pooling runs as 2-D pooling with H = 1.
  const std::size_t spatial = input_shape.size() - 2;
  if (spatial != 1 && spatial != 2) ctx.unsupported("only 1-D and 2-D pooling (3-D and 4-D tensors)");
  if (node.output_size() > 1 && !node.output(1).empty()) ctx.unsupported("indices output");
  auto kernel = attribute_ints(node, "kernel_shape");
  if (!kernel || kernel->size() != spatial)
    ctx.unsupported(fmt::format("kernel_shape must have {} values", spatial));
  kernel = ImportContext::lift_to_2d(*kernel, 1);
  const auto strides = ImportContext::lift_to_2d(ctx.spatial_attr("strides", 1, spatial), 1);
  const auto dilations = ImportContext::lift_to_2d(ctx.spatial_attr("dilations", 1, spatial), 1);
  if (dilations != std::vector<std::int64_t>{1, 1}) ctx.unsupported("dilated pooling");
  const std::string& out = node.output(0);
  if (spatial == 1)
    x = ctx.emit_reshape(x, {input_shape[0], input_shape[1], 1, input_shape[2]}, out + "/as_2d");
  const Shape s = ctx.shape_of(x);
  auto pads = ctx.window_pads(s, *kernel, strides, dilations, spatial);
  const bool is_max = node.op_type() == "MaxPool";
  const auto include_pad = attribute_int(node, "count_include_pad", 0);
  if (attribute_int(node, "ceil_mode", 0) != 0) {
    // ceil_mode as extra end padding: exact for max pooling (padding is -inf) and for average pooling
    // that excludes padding; the last window must start inside the input (PyTorch/ONNX rule).
    for (std::size_t d = 0; d < 2; ++d) {
      const std::int64_t padded = s[2 + d] + pads[d] + pads[d + 2];
      std::int64_t count = (padded - (*kernel)[d] + strides[d] - 1) / strides[d] + 1;
      if ((count - 1) * strides[d] >= s[2 + d] + pads[d]) --count;
      const std::int64_t extra = (count - 1) * strides[d] + (*kernel)[d] - padded;
      if (extra > 0) {
        if (!is_max && include_pad != 0) ctx.unsupported("ceil_mode with count_include_pad");
        pads[d + 2] += extra;
      }
    }
  }
  json attrs = {{"kernel", *kernel}, {"strides", strides}, {"pads", pads}};
  if (!is_max) attrs["count_include_pad"] = include_pad;
  const int y = ctx.emit1(node.op_type(), {x}, attrs, spatial == 1 ? out + "/2d" : out);
  const Shape y_shape = ctx.shape_of(y);
  ctx.set_activation(out, spatial == 1 ? ctx.emit_reshape(y, {y_shape[0], y_shape[1], y_shape[3]}, out) : y);
}
void import_global_pool(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& op = node.op_type();
  const std::string& out = node.output(0);
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  if (s.size() != 4) ctx.unsupported("only 4-D inputs");
  json attrs = {{"kernel", {s[2], s[3]}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}};
  if (op == "GlobalAveragePool") attrs["count_include_pad"] = 0;
  ctx.set_activation(out, ctx.emit1(op == "GlobalAveragePool" ? "AveragePool" : "MaxPool", {x}, attrs, out));
}

// ---- shapes ----
std::vector<Shape> pool_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  if (x.size() != 4)
    fail("node '{}' ({}): input must be 4-D, got {}", node.name, node.op, shape_to_string(x));
  const auto strides = int_list(node, "strides", 2);
  const auto pads = int_list(node, "pads", 4);
  const auto kernel = int_list(node, "kernel", 2);
  return {{x[0], x[1], window_output(x[2], kernel[0], strides[0], pads[0], pads[2], 1, node),
           window_output(x[3], kernel[1], strides[1], pads[1], pads[3], 1, node)}};
}

// ---- reference ----
void pool_reference(ReferenceContext& ctx, const ir::Node& node) {
  const bool is_max = node.op == "MaxPool";
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  auto& y = ctx.out(node, 0);
  const auto kernel = node.attrs.at("kernel").get<std::vector<std::int64_t>>();
  const auto strides = node.attrs.at("strides").get<std::vector<std::int64_t>>();
  const auto pads = node.attrs.at("pads").get<std::vector<std::int64_t>>();
  const bool include_pad = node.attrs.value("count_include_pad", std::int64_t{0}) != 0;
  const std::int64_t ih = xs[2], iw = xs[3], oh = ys[2], ow = ys[3];
  for (std::int64_t plane = 0; plane < xs[0] * xs[1]; ++plane) {
    const float* xp = x.data() + plane * ih * iw;
    float* yp = y.data() + plane * oh * ow;
    for (std::int64_t yy = 0; yy < oh; ++yy) {
      for (std::int64_t xx = 0; xx < ow; ++xx) {
        double best = -std::numeric_limits<double>::infinity();
        double total = 0.0;
        std::int64_t count = 0;
        for (std::int64_t ky = 0; ky < kernel[0]; ++ky) {
          for (std::int64_t kx = 0; kx < kernel[1]; ++kx) {
            const std::int64_t sy = yy * strides[0] - pads[0] + ky;
            const std::int64_t sx = xx * strides[1] - pads[1] + kx;
            // count_include_pad counts the padded window (clipped to the padded extent), as ONNX does.
            const bool inside_padded = sy < ih + pads[2] && sx < iw + pads[3];
            if (sy < 0 || sy >= ih || sx < 0 || sx >= iw) {
              if (include_pad && inside_padded) ++count;
              continue;
            }
            const auto v = static_cast<double>(xp[sy * iw + sx]);
            best = std::max(best, v);
            total += v;
            ++count;
          }
        }
        yp[yy * ow + xx] =
            static_cast<float>(is_max ? best : (count > 0 ? total / static_cast<double>(count) : 0.0));
      }
    }
  }
}

// ---- lowering ----
void lower_pool(Lowering& l, const ir::Node& node) {
  const auto& attrs = node.attrs;
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const auto kernel = int_attr(attrs, "kernel");
  const auto strides = int_attr(attrs, "strides", {1, 1});
  const auto pads = int_attr(attrs, "pads", {0, 0, 0, 0});
  algorithm alg = algorithm::pooling_max;
  if (node.op == "AveragePool") {
    alg = attrs.value("count_include_pad", std::int64_t{0}) != 0 ? algorithm::pooling_avg_include_padding
                                                                 : algorithm::pooling_avg_exclude_padding;
  }
  const int src = l.value_of(x);
  const memory::desc dst_md = Lowering::like(l.value(src).md, l.shape(y));
  const dnnl::pooling_forward::desc desc(
      prop_kind::forward_inference, alg, l.value(src).md, dst_md, Dims(strides.begin(), strides.end()),
      Dims(kernel.begin(), kernel.end()), Dims{pads[0], pads[1]}, Dims{pads[2], pads[3]});
  const dnnl::pooling_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
  const int dst = l.define_output(y, pd.dst_desc());
  l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
}

}  // namespace

void register_pool(Registry& registry) {
  registry.add({"MaxPool", pool_shapes, pool_reference, lower_pool});
  registry.add({"AveragePool", pool_shapes, pool_reference, lower_pool});
  for (const char* op : {"MaxPool", "AveragePool"}) registry.add_onnx(op, import_pool);
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"}) registry.add_onnx(op, import_global_pool);
}

}  // namespace vapipe::ops
