// ConvTranspose: 1-D and 2-D transposed convolution (the upsampling head of top-down pose models), f32, on
// oneDNN's deconvolution with the weights packed once. ONNX ConvTranspose imports to it; output_shape and
// auto_pad are resolved into pads at import.
#include <algorithm>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_conv_transpose(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  int x = ctx.activation_input(0);
  const Shape x_shape = ctx.shape_of(x);
  const Constant* w = ctx.const_input(1);
  if (w == nullptr) ctx.unsupported("missing weights");
  // 1-D runs as 2-D with H = 1: every per-dimension attribute gains the H entry (stride 1, no padding).
  const std::size_t spatial = x_shape.size() - 2;
  if (x_shape.size() != w->shape.size() || (spatial != 1 && spatial != 2))
    ctx.unsupported("only 1-D and 2-D transposed convolution (3-D and 4-D tensors)");
  const auto lift = &ImportContext::lift_to_2d;
  const Shape xs = spatial == 2 ? x_shape : Shape{x_shape[0], x_shape[1], 1, x_shape[2]};
  const Shape w_shape = spatial == 2 ? w->shape : Shape{w->shape[0], w->shape[1], 1, w->shape[2]};
  const std::int64_t group = attribute_int(node, "group", 1);
  if (group <= 0 || xs[1] != w_shape[0] || xs[1] % group != 0)
    ctx.unsupported("input channels do not fit the weights and group");
  const std::vector<std::int64_t> kernel{w_shape[2], w_shape[3]};
  if (auto k = attribute_ints(node, "kernel_shape"); k && lift(*k, 1) != kernel)
    ctx.unsupported("kernel_shape does not match the weights");
  const auto strides = lift(ctx.spatial_attr("strides", 1, spatial), 1);
  const auto dilations = lift(ctx.spatial_attr("dilations", 1, spatial), 1);
  auto output_padding = lift(ctx.spatial_attr("output_padding", 0, spatial), 0);
  for (std::size_t d = 0; d < 2; ++d) {
    if (strides[d] <= 0 || dilations[d] <= 0) ctx.unsupported("non-positive strides or dilations");
  }
  const std::string auto_pad = attribute_string(node, "auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    ctx.unsupported("auto_pad '" + auto_pad + "'");
  std::vector<std::int64_t> pads = ctx.spatial_attr("pads", 0, 2 * spatial);
  if (spatial == 1) pads = {0, pads[0], 0, pads[1]};
  auto output_shape = attribute_ints(node, "output_shape");
  if (output_shape && output_shape->size() == spatial + 2)
    output_shape->erase(output_shape->begin(), output_shape->begin() + 2);
  if (output_shape && output_shape->size() != spatial)
    ctx.unsupported("output_shape must have one value per spatial dimension");
  if (output_shape) output_shape = lift(*output_shape, 1);
  if (auto_pad == "VALID") pads = {0, 0, 0, 0};
  if (output_shape || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    // ONNX: total padding = stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - output, split
    // with the odd one at the end for SAME_UPPER and at the start otherwise (floor division, as the
    // reference's Python); SAME_* without output_shape wants in * stride. A negative end (output_shape past
    // the full output) adds rows and columns at the end: output padding.
    for (std::size_t d = 0; d < 2; ++d) {
      const std::int64_t full =
          strides[d] * (xs[2 + d] - 1) + output_padding[d] + (kernel[d] - 1) * dilations[d] + 1;
      const std::int64_t wanted = output_shape ? (*output_shape)[d] : xs[2 + d] * strides[d];
      const std::int64_t total = full - wanted;
      const std::int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      pads[d] = auto_pad == "SAME_UPPER" ? half : total - half;
      pads[d + 2] = total - pads[d];
      if (pads[d + 2] < 0) {
        output_padding[d] -= pads[d + 2];
        pads[d + 2] = 0;
      }
    }
  }
  for (auto p : pads) {
    if (p < 0) ctx.unsupported("negative pads");
  }
  // oneDNN's deconvolution finds the output size from the input's by integer division by the stride:
  // output padding must stay below it.
  for (std::size_t d = 0; d < 2; ++d) {
    if (output_padding[d] < 0 || output_padding[d] >= strides[d])
      ctx.unsupported("output_padding (or output_shape past the full output) must stay below the stride");
  }
  const std::string& out = node.output(0);
  int weights = ctx.tensor_of(node.input(1));
  if (spatial == 1) {
    x = ctx.emit_reshape(x, xs, out + "/as_2d");
    weights = ctx.constant_tensor(node.input(1) + "/as_2d", w_shape,
                                  std::vector<float>(w->values.begin(), w->values.end()));
  }
  std::vector<int> inputs{x, weights, -1};
  if (ctx.has_input(2)) {
    if (ctx.const_input(2) == nullptr) ctx.unsupported("missing bias");
    inputs[2] = ctx.tensor_of(node.input(2));
  }
  const nlohmann::json attrs = {{"strides", strides},
                                {"pads", pads},
                                {"dilations", dilations},
                                {"output_padding", output_padding},
                                {"group", group}};
  const int y = ctx.emit1("ConvTranspose", inputs, attrs, spatial == 1 ? out + "/2d" : out);
  const Shape y_shape = ctx.shape_of(y);
  ctx.set_activation(out, spatial == 1 ? ctx.emit_reshape(y, {y_shape[0], y_shape[1], y_shape[3]}, out) : y);
}

// ---- shapes ----
std::vector<Shape> conv_transpose_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const Shape& w = input_shape(graph, node, 1);
  if (x.size() != 4 || w.size() != 4) {
    fail("node '{}' (ConvTranspose): input and weight must be 4-D, got {} and {}", node.name,
         shape_to_string(x), shape_to_string(w));
  }
  const auto strides = int_list(node, "strides", 2);
  const auto pads = int_list(node, "pads", 4);
  const auto dilations = int_list(node, "dilations", 2);
  const auto output_padding = int_list(node, "output_padding", 2);
  const std::int64_t group = bounded(node, "group", node.attrs.value("group", std::int64_t{1}));
  if (group <= 0 || w[0] != x[1] || x[1] % group != 0) {
    fail("node '{}' (ConvTranspose): input {} does not fit weight {} with group {}", node.name,
         shape_to_string(x), shape_to_string(w), group);
  }
  const std::int64_t out_channels = w[1] * group;
  if (node.inputs.size() > 2 && node.inputs[2] >= 0 &&
      checked_volume(node, input_shape(graph, node, 2)) != out_channels)
    fail("node '{}' (ConvTranspose): bias needs {} values", node.name, out_channels);
  Shape out{x[0], out_channels, 0, 0};
  for (std::size_t d = 0; d < 2; ++d) {
    if (strides[d] <= 0 || dilations[d] <= 0 || w[2 + d] <= 0 || pads[d] < 0 || pads[d + 2] < 0 ||
        output_padding[d] < 0)
      fail("node '{}' (ConvTranspose): invalid strides, dilations, pads or kernel", node.name);
    out[2 + d] = strides[d] * (x[2 + d] - 1) + output_padding[d] + (w[2 + d] - 1) * dilations[d] + 1 -
                 pads[d] - pads[d + 2];
    if (out[2 + d] <= 0) fail("node '{}' (ConvTranspose): pads leave no output", node.name);
  }
  checked_volume(node, out);
  return {out};
}

// ---- reference ----
// Every input pixel scatters its kernel-weighted value into the output (the definition), in double.
void conv_transpose_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const auto& w = ctx.in(node, 1);
  const Shape& xs = ctx.in_shape(node, 0);
  const Shape& ws = ctx.in_shape(node, 1);
  const Shape ys = ctx.out_shape(node, 0);
  const auto strides = node.attrs.at("strides").get<std::vector<std::int64_t>>();
  const auto pads = node.attrs.at("pads").get<std::vector<std::int64_t>>();
  const auto dil = node.attrs.at("dilations").get<std::vector<std::int64_t>>();
  const std::int64_t group = node.attrs.value("group", std::int64_t{1});
  const std::int64_t ic = xs[1], ih = xs[2], iw = xs[3], kh = ws[2], kw = ws[3];
  const std::int64_t oc = ys[1], oh = ys[2], ow = ys[3];
  const std::int64_t icg = ic / group, ocg = oc / group;
  const bool has_bias = node.inputs.size() > 2 && node.inputs[2] >= 0;
  std::vector<double> acc(static_cast<std::size_t>(oc * oh * ow));
  auto& y = ctx.out(node, 0);
  for (std::int64_t b = 0; b < xs[0]; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (std::int64_t c = 0; c < ic; ++c) {
      const std::int64_t g = c / icg;
      for (std::int64_t iy = 0; iy < ih; ++iy) {
        for (std::int64_t ix = 0; ix < iw; ++ix) {
          const auto v = static_cast<double>(x[static_cast<std::size_t>(((b * ic + c) * ih + iy) * iw + ix)]);
          for (std::int64_t m = 0; m < ocg; ++m) {
            const std::int64_t o = g * ocg + m;
            for (std::int64_t ky = 0; ky < kh; ++ky) {
              const std::int64_t oy = iy * strides[0] - pads[0] + ky * dil[0];
              if (oy < 0 || oy >= oh) continue;
              for (std::int64_t kx = 0; kx < kw; ++kx) {
                const std::int64_t ox = ix * strides[1] - pads[1] + kx * dil[1];
                if (ox < 0 || ox >= ow) continue;
                acc[static_cast<std::size_t>((o * oh + oy) * ow + ox)] +=
                    v * static_cast<double>(w[static_cast<std::size_t>(((c * ocg + m) * kh + ky) * kw + kx)]);
              }
            }
          }
        }
      }
    }
    for (std::int64_t o = 0; o < oc; ++o) {
      const double bias = has_bias ? static_cast<double>(ctx.in(node, 2)[static_cast<std::size_t>(o)]) : 0.0;
      for (std::int64_t i = 0; i < oh * ow; ++i) {
        y[static_cast<std::size_t>((b * oc + o) * oh * ow + i)] =
            static_cast<float>(acc[static_cast<std::size_t>(o * oh * ow + i)] + bias);
      }
    }
  }
}

// ---- lowering ----
void lower_conv_transpose(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int w = node.inputs.at(1);
  const int b = node.inputs.size() > 2 ? node.inputs[2] : -1;
  const int y = node.outputs.at(0);
  const Shape& xs = l.shape(x);
  const Shape& ws = l.shape(w);
  const Shape& ys = l.shape(y);
  const std::int64_t group = node.attrs.value("group", std::int64_t{1});
  const auto strides = int_attr(node.attrs, "strides", {1, 1});
  const auto pads = int_attr(node.attrs, "pads", {0, 0, 0, 0});
  auto dilations = int_attr(node.attrs, "dilations", {1, 1});
  for (auto& d : dilations) d -= 1;  // oneDNN counts the gaps, ONNX the step
  // ONNX keeps the weights [in, out / group, kh, kw]: oneDNN's iohw (giohw with groups) reads them as stored.
  Dims weight_dims{ys[1], xs[1], ws[2], ws[3]};
  Tag weight_tag = Tag::iohw;
  if (group > 1) {
    weight_dims = {group, ys[1] / group, xs[1] / group, ws[2], ws[3]};
    weight_tag = Tag::giohw;
  }
  const memory::desc any_src(Dims(xs.begin(), xs.end()), kF32, Tag::any);
  const memory::desc any_weights(weight_dims, kF32, Tag::any);
  const memory::desc any_dst(Dims(ys.begin(), ys.end()), kF32, Tag::any);
  const memory::desc bias_md = b >= 0 ? memory::desc({ys[1]}, kF32, Tag::a) : memory::desc();
  // output_padding needs no argument: the extra rows and columns lie past the last input's reach (below
  // the stride), which oneDNN's size check (integer division by the stride) accepts with the ONNX pads.
  const dnnl::deconvolution_forward::desc desc(
      prop_kind::forward_inference, algorithm::deconvolution_direct, any_src, any_weights, bias_md, any_dst,
      Dims(strides.begin(), strides.end()), Dims(dilations.begin(), dilations.end()), Dims{pads[0], pads[1]},
      Dims{pads[2], pads[3]});
  const dnnl::deconvolution_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
  const int src = l.value_as(x, pd.src_desc());
  // The weights, packed into the kernel's layout once per package (shared between stages).
  int weights = -1;
  if (const auto found = l.converted(w, pd.weights_desc())) {
    weights = *found;
  } else {
    const auto& info = l.tensor(w);
    const memory::desc stored_md(weight_dims, kF32, weight_tag);
    if (!info.is_constant() || info.dtype != DType::kF32 || info.data->size != stored_md.get_size())
      l.fail_node("weights '" + info.name + "' must be an f32 constant of the weight shape");
    const int stored = l.add_value(stored_md);
    l.value(stored).constant = info.data->data;
    weights = l.add_value(pd.weights_desc());
    l.pack_constant(stored, weights);
    l.remember(w, weights);
  }
  const int dst = l.define_output(y, pd.dst_desc());
  std::vector<std::pair<int, int>> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (b >= 0) args.emplace_back(DNNL_ARG_BIAS, l.value_as(b, bias_md));
  l.add_primitive(pd, std::move(args));
}

}  // namespace

void register_conv_transpose(Registry& registry) {
  registry.add({"ConvTranspose", conv_transpose_shapes, conv_transpose_reference, lower_conv_transpose});
  registry.add_onnx("ConvTranspose", import_conv_transpose);
}

}  // namespace vapipe::ops
