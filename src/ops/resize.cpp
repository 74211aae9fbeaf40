// Resize: nearest, linear and cubic modes with every ONNX coordinate transformation (tf_crop_and_resize
// aside) and rounding mode; ONNX Resize and Upsample import to it.
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <set>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// The runtime's interpolation kernel keeps an output row's coordinates in fixed arrays.
constexpr std::size_t kMaxInterpolatedRank = 8;

// ---- import ----
void import_resize(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  std::string mode = attribute_string(node, "mode", "nearest");
  if (mode == "bilinear") mode = "linear";  // Upsample-7's name for it
  if (mode != "nearest" && mode != "linear" && mode != "cubic")
    ctx.unsupported("mode '" + mode + "' (only nearest, linear, cubic)");
  // Opset 18's additions change what is computed: refused rather than ignored.
  if (attribute_int(node, "antialias", 0) != 0) ctx.unsupported("antialias");
  for (const char* name : {"axes", "keep_aspect_ratio_policy"}) {
    if (find_attribute(node, name) != nullptr) ctx.unsupported(std::string("attribute '") + name + "'");
  }
  if (s.size() > kMaxInterpolatedRank && mode != "nearest")
    ctx.unsupported("rank " + std::to_string(s.size()) + " (linear and cubic: at most 8)");
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
  json attrs = {{"mode", mode},
                {"coordinate_transformation_mode", transform},
                {"nearest_mode", rounding},
                {"scales", scales}};
  if (mode != "nearest") {
    attrs["cubic_coeff_a"] = attribute_float(node, "cubic_coeff_a", -0.75F);
    attrs["exclude_outside"] = attribute_int(node, "exclude_outside", 0);
  }
  if (mode != "nearest" && transform == "tf_half_pixel_for_nn")
    ctx.unsupported("coordinate_transformation_mode 'tf_half_pixel_for_nn' outside nearest mode");
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

// Linear and cubic modes: along each dimension, every output index reads `count` consecutive input
// indices (clamped into the input, i.e. the edge-padded input of ONNX's reference) with these weights.
struct AxisTaps {
  std::int64_t count = 1;
  std::vector<std::int64_t> index;  // count per output index
  std::vector<double> weight;
};

// ONNX's coefficients for the neighbours of a source coordinate whose distance to its left neighbour is
// `ratio` (in (0, 1]: an integer coordinate counts as ratio 1 from the pixel before it).
void interpolation_coefficients(const std::string& mode, double ratio, double a, double* coeffs) {
  if (mode == "linear") {
    coeffs[0] = 1.0 - ratio;
    coeffs[1] = ratio;
    return;
  }
  const double r = ratio, q = 1.0 - ratio;
  coeffs[0] = ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a;
  coeffs[1] = ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0;
  coeffs[2] = ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0;
  coeffs[3] = ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a;
}

// Per dimension, the taps of every output index, as ONNX's reference (onnx/reference/ops/op_resize.py,
// _interpolate_1d_with_x) chooses them: the source coordinate from the transformation, computed with the
// given scale (length_resized = scale * length, not the rounded output size), then the n = 2 (linear) or
// 4 (cubic) input indices nearest it inside the input padded by n/2 edge values.
std::vector<AxisTaps> interpolation_taps(const ir::Node& node, const Shape& xs, const Shape& ys) {
  const auto mode = node.attrs.value("mode", std::string("nearest"));
  if (mode != "linear" && mode != "cubic")
    fail("node '{}' (Resize): mode '{}' has no interpolation taps", node.name, mode);
  const auto transform = node.attrs.value("coordinate_transformation_mode", std::string("half_pixel"));
  const double a = node.attrs.value("cubic_coeff_a", -0.75);
  const bool exclude_outside = node.attrs.value("exclude_outside", std::int64_t{0}) != 0;
  std::vector<double> scales;
  if (node.attrs.contains("scales")) scales = node.attrs.at("scales").get<std::vector<double>>();
  const std::int64_t n = mode == "cubic" ? 4 : 2;
  const std::int64_t pad = n / 2;
  std::vector<AxisTaps> taps(ys.size());
  for (std::size_t d = 0; d < ys.size(); ++d) {
    const double scale =
        d < scales.size() ? scales[d] : static_cast<double>(ys[d]) / static_cast<double>(xs[d]);
    AxisTaps& axis = taps[d];
    if (xs[d] == ys[d] && scale == 1.0) {  // every transformation maps o to o: one tap
      for (std::int64_t o = 0; o < ys[d]; ++o) axis.index.push_back(o);
      axis.weight.assign(static_cast<std::size_t>(ys[d]), 1.0);
      continue;
    }
    axis.count = n;
    const double in = static_cast<double>(xs[d]);
    const double length = scale * in;
    for (std::int64_t o = 0; o < ys[d]; ++o) {
      const double xo = static_cast<double>(o);
      double xi = 0.0;
      if (transform == "half_pixel") {
        xi = (xo + 0.5) / scale - 0.5;
      } else if (transform == "pytorch_half_pixel") {
        xi = length == 1.0 ? -0.5 : (xo + 0.5) / scale - 0.5;
      } else if (transform == "asymmetric") {
        xi = xo / scale;
      } else if (transform == "align_corners") {
        xi = length == 1.0 ? 0.0 : xo * (in - 1.0) / (length - 1.0);
      } else {
        fail("node '{}' (Resize): coordinate_transformation_mode '{}' not supported in mode {}", node.name,
             transform, mode);
      }
      // The left neighbour is ceil(xi) - 1, so an integer coordinate sits at ratio 1 (ONNX's choice).
      const double left =
          std::clamp(std::ceil(xi) - 1.0, -static_cast<double>(n), in + static_cast<double>(n));
      double coeffs[4] = {};
      interpolation_coefficients(mode, xi - left, a, coeffs);
      // Far outside the input the window stops at the padded input's end, as the reference's does.
      const std::int64_t start =
          std::clamp(static_cast<std::int64_t>(left) - (n / 2 - 1), -pad, xs[d] + pad - n);
      double total = 0.0;
      for (std::int64_t t = 0; t < n; ++t) {
        const std::int64_t i = start + t;
        if (exclude_outside && (i < 0 || i >= xs[d])) coeffs[t] = 0.0;
        total += coeffs[t];
      }
      for (std::int64_t t = 0; t < n; ++t) {
        axis.index.push_back(std::clamp<std::int64_t>(start + t, 0, xs[d] - 1));
        axis.weight.push_back(exclude_outside && total != 0.0 ? coeffs[t] / total : coeffs[t]);
      }
    }
  }
  return taps;
}

// Linear and cubic: each output element sums every combination of its dimensions' taps (the separable
// interpolation of the ONNX reference, written as one weighted sum), in double.
void interpolate_reference(const std::vector<float>& x, const Shape& xs, std::vector<float>& y,
                           const Shape& ys, const std::vector<AxisTaps>& taps) {
  const auto xstr = dense_strides(xs);
  const std::size_t rank = ys.size();
  std::vector<std::int64_t> t(rank, 0);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    double sum = 0.0;
    std::fill(t.begin(), t.end(), 0);
    while (true) {
      double weight = 1.0;
      std::int64_t src = 0;
      for (std::size_t d = 0; d < rank; ++d) {
        const auto k = static_cast<std::size_t>(coord[d] * taps[d].count + t[d]);
        weight *= taps[d].weight[k];
        src += taps[d].index[k] * xstr[d];
      }
      sum += weight * static_cast<double>(x[static_cast<std::size_t>(src)]);
      std::size_t d = rank;
      while (d > 0 && ++t[d - 1] == taps[d - 1].count) t[--d] = 0;
      if (d == 0) break;
    }
    y[i] = static_cast<float>(sum);
  });
}

void run_resize(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  if (node.attrs.value("mode", std::string("nearest")) != "nearest") {
    interpolate_reference(x, xs, ctx.out(node, 0), ys, interpolation_taps(node, xs, ys));
    return;
  }
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
// The runtime's linear/cubic kernel, with the taps resolved at load: per dimension, `offset` is the tap's
// input index times the dimension's stride. Output rows (every dimension but the last) run in parallel;
// a row sums, for each combination of the outer dimensions' taps, a weighted run of the last one's.
struct KernelTaps {
  std::int64_t count = 1;
  std::vector<std::int64_t> offset;
  std::vector<float> weight;
};

void resize_interpolate(const float* x, float* y, const Shape& out, const std::vector<KernelTaps>& taps) {
  const std::size_t outer = out.size() - 1;
  const std::int64_t width = out[outer];
  const std::int64_t rows = width > 0 ? shape_volume(out) / width : 0;
  const KernelTaps& last = taps[outer];
#pragma omp parallel for schedule(static)
  for (std::int64_t row = 0; row < rows; ++row) {
    std::array<std::int64_t, kMaxInterpolatedRank> coord{};
    std::array<std::int64_t, kMaxInterpolatedRank> t{};
    std::int64_t rest = row;
    for (std::size_t d = outer; d-- > 0;) {
      coord[d] = rest % out[d];
      rest /= out[d];
    }
    float* yrow = y + row * width;
    std::fill(yrow, yrow + width, 0.0F);
    while (true) {
      float weight = 1.0F;
      std::int64_t base = 0;
      for (std::size_t d = 0; d < outer; ++d) {
        const auto k = static_cast<std::size_t>(coord[d] * taps[d].count + t[d]);
        weight *= taps[d].weight[k];
        base += taps[d].offset[k];
      }
      if (weight != 0.0F) {
        const float* xrow = x + base;
        const auto* offset = last.offset.data();
        const auto* w = last.weight.data();
        for (std::int64_t o = 0; o < width; ++o) {
          float sum = 0.0F;
          for (std::int64_t k = o * last.count; k < (o + 1) * last.count; ++k) sum += w[k] * xrow[offset[k]];
          yrow[o] += weight * sum;
        }
      }
      std::size_t d = outer;
      while (d > 0 && ++t[d - 1] == taps[d - 1].count) t[--d] = 0;
      if (d == 0) break;
    }
  }
}

void lower_interpolation(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape in = l.shape(x);
  const Shape out = l.shape(y);
  if (out.empty() || out.size() > kMaxInterpolatedRank)
    l.fail_node("linear and cubic Resize need rank 1 to " + std::to_string(kMaxInterpolatedRank));
  const auto taps = interpolation_taps(node, in, out);
  const auto strides = dense_strides(in);
  std::vector<KernelTaps> kernel_taps(taps.size());
  for (std::size_t d = 0; d < taps.size(); ++d) {
    kernel_taps[d].count = taps[d].count;
    for (auto index : taps[d].index) kernel_taps[d].offset.push_back(index * strides[d]);
    for (double weight : taps[d].weight) kernel_taps[d].weight.push_back(static_cast<float>(weight));
  }
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(out));
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        resize_interpolate(static_cast<const float*>(data[0]), static_cast<float*>(data[1]), out,
                           kernel_taps);
      },
      {src, dst});
}

void lower_resize(Lowering& l, const ir::Node& node) {
  if (node.attrs.value("mode", std::string("nearest")) != "nearest") {
    lower_interpolation(l, node);
    return;
  }
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
