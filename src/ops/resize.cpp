// Resize, nearest mode with every ONNX coordinate transformation and rounding mode; ONNX Resize and
// Upsample import to it.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_resize(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  const std::string mode = attribute_string(node, "mode", "nearest");
  if (mode != "nearest") ctx.unsupported("mode '" + mode + "' (only nearest)");
  std::string transform = attribute_string(node, "coordinate_transformation_mode", "half_pixel");
  std::string rounding = attribute_string(node, "nearest_mode", "round_prefer_floor");
  Constant attr_scales;
  const Constant* scales_c = nullptr;
  const Constant* sizes_c = nullptr;
  if (node.op_type() == "Upsample" || ctx.opset() < 11) {
    // Upsample and opset-10 Resize: out = floor(in * scale), source = floor(out / scale).
    transform = "asymmetric";
    rounding = "floor";
    if (node.input_size() > 1) {
      scales_c = ctx.const_input(1);
    } else if (const auto* floats = find_attribute(node, "scales")) {
      attr_scales = {{floats->floats_size()},
                     std::vector<double>(floats->floats().begin(), floats->floats().end()),
                     false};
      scales_c = &attr_scales;
    }
  } else {
    scales_c = ctx.const_input(2);
    sizes_c = ctx.const_input(3);
  }
  static const std::set<std::string> kTransforms{"half_pixel", "asymmetric", "align_corners",
                                                 "pytorch_half_pixel", "tf_half_pixel_for_nn"};
  static const std::set<std::string> kRoundings{"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  if (kTransforms.count(transform) == 0)
    ctx.unsupported("coordinate_transformation_mode '" + transform + "'");
  if (kRoundings.count(rounding) == 0) ctx.unsupported("nearest_mode '" + rounding + "'");
  std::vector<double> scales(s.size(), 1.0);
  if (sizes_c != nullptr && !sizes_c->values.empty()) {
    auto sizes = as_ints(*sizes_c);
    if (sizes.size() != s.size()) ctx.unsupported("sizes rank differs from the input");
    if (ctx.batch_factor() > 1 && s[0] % ctx.batch_factor() == 0 && sizes[0] == s[0] / ctx.batch_factor())
      sizes[0] = s[0];
    for (std::size_t d = 0; d < s.size(); ++d) {
      scales[d] = static_cast<double>(sizes[d]) / static_cast<double>(s[d]);
    }
  } else if (scales_c != nullptr && !scales_c->values.empty()) {
    if (scales_c->values.size() != s.size()) ctx.unsupported("scales rank differs from the input");
    scales = scales_c->values;
  } else {
    ctx.unsupported("neither scales nor sizes given");
  }
  for (double v : scales) {
    if (!(v > 0.0) || !std::isfinite(v)) ctx.unsupported("non-positive scale");
  }
  const json attrs = {{"mode", "nearest"},
                      {"coordinate_transformation_mode", transform},
                      {"nearest_mode", rounding},
                      {"scales", scales}};
  ctx.set_activation(node.output(0), ctx.emit1("Resize", {x}, attrs, node.output(0)));
}

// ---- shapes ----
std::vector<Shape> resize_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  if (!node.attrs.contains("scales")) fail("node '{}' (Resize): attribute 'scales' missing", node.name);
  const auto scales = node.attrs.at("scales").get<std::vector<double>>();
  if (scales.size() != x.size())
    fail("node '{}' (Resize): {} scales for rank {}", node.name, scales.size(), x.size());
  Shape out(x.size());
  for (std::size_t d = 0; d < x.size(); ++d) {
    const double size = std::floor(static_cast<double>(x[d]) * scales[d] + 1e-6);
    // Also refuses NaN (every comparison false) before the cast, which would be undefined.
    if (!(size >= 0.0 && size <= static_cast<double>(ir::kMaxTensorElements)))
      fail("node '{}' (Resize): scale {} gives an invalid size", node.name, scales[d]);
    out[d] = static_cast<std::int64_t>(size);
  }
  return {out};
}

// ---- reference ----
std::int64_t nearest_source(std::int64_t out_coord, std::int64_t in_size, std::int64_t out_size, double scale,
                            const std::string& transform, const std::string& rounding, const ir::Node& node) {
  const double xo = static_cast<double>(out_coord);
  double xi = 0.0;
  if (transform == "half_pixel") {
    xi = (xo + 0.5) / scale - 0.5;
  } else if (transform == "asymmetric") {
    xi = xo / scale;
  } else if (transform == "align_corners") {
    xi = out_size > 1 ? xo * static_cast<double>(in_size - 1) / static_cast<double>(out_size - 1) : 0.0;
  } else if (transform == "pytorch_half_pixel") {
    xi = out_size > 1 ? (xo + 0.5) / scale - 0.5 : 0.0;
  } else if (transform == "tf_half_pixel_for_nn") {
    xi = (xo + 0.5) / scale;
  } else {
    fail("node '{}' (Resize): coordinate_transformation_mode '{}' not supported", node.name, transform);
  }
  double r = 0.0;
  if (rounding == "round_prefer_floor") {
    r = (xi - std::floor(xi) == 0.5) ? std::floor(xi) : std::round(xi);
  } else if (rounding == "round_prefer_ceil") {
    r = (xi - std::floor(xi) == 0.5) ? std::ceil(xi) : std::round(xi);
  } else if (rounding == "floor") {
    r = std::floor(xi);
  } else if (rounding == "ceil") {
    r = std::ceil(xi);
  } else {
    fail("node '{}' (Resize): nearest_mode '{}' not supported", node.name, rounding);
  }
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(r), 0, in_size - 1);
}
// For each dimension, the input index every output index reads (ONNX Resize, mode nearest).
std::vector<std::vector<std::int64_t>> nearest_sources(const ir::Node& node, const Shape& xs,
                                                       const Shape& ys) {
  if (node.attrs.value("mode", std::string("nearest")) != "nearest")
    fail("node '{}' (Resize): only nearest", node.name);
  const auto transform = node.attrs.value("coordinate_transformation_mode", std::string("half_pixel"));
  const auto rounding = node.attrs.value("nearest_mode", std::string("round_prefer_floor"));
  std::vector<double> scales;
  if (node.attrs.contains("scales")) scales = node.attrs.at("scales").get<std::vector<double>>();
  std::vector<std::vector<std::int64_t>> source(ys.size());
  for (std::size_t d = 0; d < ys.size(); ++d) {
    // ONNX computes coordinates with the given scale, not out/in (they differ when out was rounded).
    const double scale =
        d < scales.size() ? scales[d] : static_cast<double>(ys[d]) / static_cast<double>(xs[d]);
    for (std::int64_t o = 0; o < ys[d]; ++o) {
      source[d].push_back(xs[d] == ys[d] && scale == 1.0
                              ? o
                              : nearest_source(o, xs[d], ys[d], scale, transform, rounding, node));
    }
  }
  return source;
}

void run_resize(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto source = nearest_sources(node, xs, ys);
  auto& y = ctx.out(node, 0);
  const auto xstr = dense_strides(xs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d)
      src += source[d][static_cast<std::size_t>(coord[d])] * xstr[d];
    y[i] = x[static_cast<std::size_t>(src)];
  });
}

// ---- lowering ----
void lower_resize(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape& in = l.shape(x);
  const Shape& out = l.shape(y);
  const auto source = nearest_sources(node, in, out);
  // oneDNN's nearest resampling reads floor(dst / factor) for an integer upscale of H and W: used where the
  // ONNX mapping (resolved above) is exactly that, which is the common 2x upsample of FPN necks.
  bool onednn_matches = in.size() == 4 && in[0] == out[0] && in[1] == out[1];
  for (std::size_t d = 0; d < in.size() && onednn_matches; ++d) {
    if (d < 2) {
      for (std::int64_t o = 0; o < out[d] && onednn_matches; ++o)
        onednn_matches = source[d][static_cast<std::size_t>(o)] == o;
      continue;
    }
    onednn_matches = out[d] % in[d] == 0 && out[d] >= in[d];
    const std::int64_t factor = onednn_matches ? out[d] / in[d] : 1;
    for (std::int64_t o = 0; o < out[d] && onednn_matches; ++o)
      onednn_matches = source[d][static_cast<std::size_t>(o)] == o / factor;
  }
  if (onednn_matches) {
    const int src = l.value_of(x);
    const memory::desc dst_md = Lowering::like(l.md(src), out);
    const dnnl::resampling_forward::desc desc(prop_kind::forward_inference, algorithm::resampling_nearest,
                                              l.md(src), dst_md);
    const dnnl::resampling_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
    const int dst = l.define_output(y, pd.dst_desc());
    l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    return;
  }
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(out));
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        resize_nearest(static_cast<const float*>(data[0]), in, static_cast<float*>(data[1]), out, source);
      },
      {src, dst});
}

}  // namespace

void register_resize(Registry& registry) {
  registry.add({"Resize", resize_shapes, run_resize, lower_resize});
  for (const char* op : {"Resize", "Upsample"}) registry.add_onnx(op, import_resize);
}

}  // namespace vapipe::ops
