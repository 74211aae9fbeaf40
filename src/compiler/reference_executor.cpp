#include "compiler/reference_executor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/error.hpp"
#include "infer/int8_without_vnni.hpp"

namespace vapipe::compiler {
namespace {

using ir::Graph;
using ir::Node;

std::vector<std::int64_t> strides_of(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

// Calls visit(flat_index, coordinates) for every element of `shape`, in row-major order.
template <typename Visit>
void for_each_index(const Shape& shape, Visit visit) {
  std::vector<std::int64_t> coord(shape.size(), 0);
  const std::int64_t total = shape_volume(shape);
  for (std::int64_t i = 0; i < total; ++i) {
    visit(static_cast<std::size_t>(i), coord);
    for (auto d = static_cast<std::ptrdiff_t>(shape.size()) - 1; d >= 0; --d) {
      if (++coord[static_cast<std::size_t>(d)] < shape[static_cast<std::size_t>(d)]) break;
      coord[static_cast<std::size_t>(d)] = 0;
    }
  }
}

float sigmoid(float x) { return 1.0F / (1.0F + std::exp(-x)); }

// Reduced precision simulated in float (docs/model-format.md, "Precision"): values are rounded to what
// the int8/bf16 runtime path stores, with round-half-to-even and saturation as oneDNN converts.
void fake_quantize(std::vector<float>& values, float scale, float lowest, float highest) {
  for (auto& v : values) v = std::clamp(std::nearbyint(v / scale), lowest, highest) * scale;
}

float round_to_bf16(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  bits += 0x7FFFU + ((bits >> 16) & 1U);
  bits &= 0xFFFF0000U;
  std::memcpy(&value, &bits, sizeof(bits));
  return value;
}

void round_to_bf16(std::vector<float>& values) {
  for (auto& v : values) v = round_to_bf16(v);
}

float apply_eltwise(const std::string& alg, float x, float alpha, float beta, const Node& node) {
  if (alg == "relu") return x > 0.0F ? x : 0.0F;
  if (alg == "leaky_relu") return x > 0.0F ? x : alpha * x;
  if (alg == "sigmoid") return sigmoid(x);
  if (alg == "swish") return x * sigmoid(alpha * x);
  if (alg == "tanh") return std::tanh(x);
  if (alg == "exp") return std::exp(x);
  if (alg == "log") return std::log(x);
  if (alg == "sqrt") return std::sqrt(x);
  if (alg == "square") return x * x;
  if (alg == "abs") return std::fabs(x);
  if (alg == "clip") return std::min(std::max(x, alpha), beta);
  if (alg == "pow") return alpha * std::pow(x, beta);
  if (alg == "linear") return alpha * x + beta;
  if (alg == "hardswish") return x * std::min(std::max(x + 3.0F, 0.0F), 6.0F) / 6.0F;
  if (alg == "hardsigmoid") return std::min(std::max(alpha * x + beta, 0.0F), 1.0F);
  fail("node '{}': unknown eltwise alg '{}'", node.name, alg);
}

struct Context {
  const Graph& graph;
  std::vector<std::vector<float>> values;
  ReferenceOptions options;

  const std::vector<float>& in(const Node& node, std::size_t i) const {
    const int index = node.inputs.at(i);
    const auto& value = values.at(static_cast<std::size_t>(index));
    const auto& tensor = graph.tensors[static_cast<std::size_t>(index)];
    if (static_cast<std::int64_t>(value.size()) != shape_volume(tensor.shape)) {
      fail("node '{}' ({}): input {} ('{}') has no value", node.name, node.op, i, tensor.name);
    }
    return value;
  }
  const Shape& shape(int index) const { return graph.tensors.at(static_cast<std::size_t>(index)).shape; }
  std::vector<float>& out(const Node& node, std::size_t i) {
    const int index = node.outputs.at(i);
    auto& value = values.at(static_cast<std::size_t>(index));
    value.assign(static_cast<std::size_t>(shape_volume(shape(index))), 0.0F);
    return value;
  }
};

void run_conv(Context& ctx, const Node& node) {
  const std::string precision = node.attrs.value("precision", std::string("f32"));
  std::vector<float> x = ctx.in(node, 0);
  std::vector<float> w = ctx.in(node, 1);
  if (precision == "int8") {
    const auto& x_tensor = ctx.graph.tensors[static_cast<std::size_t>(node.inputs[0])];
    const bool x_quantized = x_tensor.dtype == DType::kS8;
    const bool unsigned_input = !x_quantized && node.attrs.value("input_type", std::string("s8")) == "u8";
    const float input_scale = x_quantized ? x_tensor.scale : node.attrs.at("input_scale").get<float>();
    fake_quantize(x, input_scale, unsigned_input ? 0.0F : -128.0F, unsigned_input ? 255.0F : 127.0F);
    const auto weight_scales = node.attrs.at("weight_scales").get<std::vector<float>>();
    const std::size_t per_channel = w.size() / weight_scales.size();
    if (ctx.options.int8_without_vnni) {
      const std::vector<std::int8_t> integers(w.begin(), w.end());
      const auto halved = infer::halve_weights_balanced(integers, per_channel);
      w.assign(halved.begin(), halved.end());
    }
    for (std::size_t i = 0; i < w.size(); ++i) w[i] *= weight_scales[i / per_channel];
  } else if (precision == "bf16") {
    round_to_bf16(x);
    round_to_bf16(w);
  }
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape& ws = ctx.shape(node.inputs[1]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const bool has_bias = node.inputs.size() > 2 && node.inputs[2] >= 0;
  const std::vector<float>* bias = has_bias ? &ctx.in(node, 2) : nullptr;
  const bool has_sum = node.inputs.size() > 3 && node.inputs[3] >= 0;
  const std::vector<float>* sum = has_sum ? &ctx.in(node, 3) : nullptr;
  auto& y = ctx.out(node, 0);
  const auto strides = node.attrs.at("strides").get<std::vector<std::int64_t>>();
  const auto pads = node.attrs.at("pads").get<std::vector<std::int64_t>>();
  const auto dil = node.attrs.at("dilations").get<std::vector<std::int64_t>>();
  const std::int64_t group = node.attrs.value("group", std::int64_t{1});
  const std::int64_t n = xs[0], ic = xs[1], ih = xs[2], iw = xs[3];
  const std::int64_t oc = ys[1], oh = ys[2], ow = ys[3], kh = ws[2], kw = ws[3];
  const std::int64_t icg = ic / group, ocg = oc / group;
  std::vector<double> acc(static_cast<std::size_t>(oh * ow));
  for (std::int64_t b = 0; b < n; ++b) {
    for (std::int64_t o = 0; o < oc; ++o) {
      const std::int64_t g = o / ocg;
      std::fill(acc.begin(), acc.end(),
                has_bias ? static_cast<double>((*bias)[static_cast<std::size_t>(o)]) : 0.0);
      for (std::int64_t c = 0; c < icg; ++c) {
        const float* xp = x.data() + ((b * ic + g * icg + c) * ih) * iw;
        for (std::int64_t ky = 0; ky < kh; ++ky) {
          for (std::int64_t kx = 0; kx < kw; ++kx) {
            const double wv = w[static_cast<std::size_t>(((o * icg + c) * kh + ky) * kw + kx)];
            for (std::int64_t yy = 0; yy < oh; ++yy) {
              const std::int64_t sy = yy * strides[0] - pads[0] + ky * dil[0];
              if (sy < 0 || sy >= ih) continue;
              double* ap = acc.data() + yy * ow;
              // The output columns whose source column lies inside the input: no per-element bounds test.
              const std::int64_t offset = kx * dil[1] - pads[1];
              const std::int64_t lo = offset >= 0 ? 0 : (-offset + strides[1] - 1) / strides[1];
              const std::int64_t hi =
                  std::min(ow, iw - 1 - offset < 0 ? 0 : (iw - 1 - offset) / strides[1] + 1);
              const std::int64_t row = sy * iw + offset;
              for (std::int64_t xx = lo; xx < hi; ++xx)
                ap[xx] += wv * static_cast<double>(xp[row + xx * strides[1]]);
            }
          }
        }
      }
      const std::size_t base = static_cast<std::size_t>((b * oc + o) * oh * ow);
      for (std::size_t i = 0; i < acc.size(); ++i) y[base + i] = static_cast<float>(acc[i]);
    }
  }
  if (node.attrs.contains("post_ops")) {
    for (const auto& post : node.attrs.at("post_ops")) {
      const auto alg = post.at("op").get<std::string>();
      if (alg == "sum") {
        if (sum == nullptr) fail("node '{}' (Conv): sum post-op without input 3", node.name);
        for (std::size_t i = 0; i < y.size(); ++i) y[i] += (*sum)[i];
        continue;
      }
      const float alpha = post.value("alpha", 0.0F);
      const float beta = post.value("beta", 0.0F);
      for (auto& v : y) v = apply_eltwise(alg, v, alpha, beta, node);
    }
  }
}

void run_pool(Context& ctx, const Node& node, bool is_max) {
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
            const double v = xp[sy * iw + sx];
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

void run_concat(Context& ctx, const Node& node) {
  const Shape ys = ctx.shape(node.outputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{0});
  if (axis < 0) axis += static_cast<std::int64_t>(ys.size());
  const auto a = static_cast<std::size_t>(axis);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= ys[d];
  for (std::size_t d = a + 1; d < ys.size(); ++d) inner *= ys[d];
  auto& y = ctx.out(node, 0);
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    const auto& x = ctx.in(node, i);
    const std::int64_t len = ctx.shape(node.inputs[i])[a] * inner;
    for (std::int64_t o = 0; o < outer; ++o) {
      std::copy_n(x.begin() + o * len, len, y.begin() + o * ys[a] * inner + offset);
    }
    offset += len;
  }
}

void run_split(Context& ctx, const Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{0});
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  const auto a = static_cast<std::size_t>(axis);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= xs[d];
  for (std::size_t d = a + 1; d < xs.size(); ++d) inner *= xs[d];
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < node.outputs.size(); ++i) {
    auto& y = ctx.out(node, i);
    const std::int64_t len = ctx.shape(node.outputs[i])[a] * inner;
    for (std::int64_t o = 0; o < outer; ++o) {
      std::copy_n(x.begin() + o * xs[a] * inner + offset, len, y.begin() + o * len);
    }
    offset += len;
  }
}

// Visits every output index with its source index, given per-dim source offset/step.
void run_slice(Context& ctx, const Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto starts = node.attrs.at("starts").get<std::vector<std::int64_t>>();
  const auto steps = node.attrs.at("steps").get<std::vector<std::int64_t>>();
  auto& y = ctx.out(node, 0);
  const auto xstr = strides_of(xs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) {
      src += (std::clamp<std::int64_t>(starts[d], 0, xs[d]) + coord[d] * steps[d]) * xstr[d];
    }
    y[i] = x[static_cast<std::size_t>(src)];
  });
}

std::int64_t nearest_source(std::int64_t out_coord, std::int64_t in_size, std::int64_t out_size, double scale,
                            const std::string& transform, const std::string& rounding, const Node& node) {
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

void run_resize(Context& ctx, const Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  if (node.attrs.value("mode", std::string("nearest")) != "nearest")
    fail("node '{}' (Resize): only nearest", node.name);
  const auto transform = node.attrs.value("coordinate_transformation_mode", std::string("half_pixel"));
  const auto rounding = node.attrs.value("nearest_mode", std::string("round_prefer_floor"));
  std::vector<double> scales;
  if (node.attrs.contains("scales")) scales = node.attrs.at("scales").get<std::vector<double>>();
  std::vector<std::vector<std::int64_t>> source(ys.size());
  for (std::size_t d = 0; d < ys.size(); ++d) {
    const double scale =
        d < scales.size() ? scales[d] : static_cast<double>(ys[d]) / static_cast<double>(xs[d]);
    for (std::int64_t o = 0; o < ys[d]; ++o) {
      source[d].push_back(nearest_source(o, xs[d], ys[d], scale, transform, rounding, node));
    }
  }
  auto& y = ctx.out(node, 0);
  const auto xstr = strides_of(xs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d)
      src += source[d][static_cast<std::size_t>(coord[d])] * xstr[d];
    y[i] = x[static_cast<std::size_t>(src)];
  });
}

void run_binary(Context& ctx, const Node& node) {
  const auto& a = ctx.in(node, 0);
  const auto& b = ctx.in(node, 1);
  const Shape& as = ctx.shape(node.inputs[0]);
  const Shape& bs = ctx.shape(node.inputs[1]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto alg = node.attrs.at("alg").get<std::string>();
  auto& y = ctx.out(node, 0);
  // Broadcast strides: 0 where an input dimension is 1 (or missing), so one index walk serves both.
  auto bstrides = [&](const Shape& s) {
    std::vector<std::int64_t> out(ys.size(), 0);
    const auto own = strides_of(s);
    for (std::size_t i = 0; i < s.size(); ++i) {
      const std::size_t d = ys.size() - s.size() + i;
      out[d] = s[i] == 1 ? 0 : own[i];
    }
    return out;
  };
  const auto astr = bstrides(as);
  const auto bstr = bstrides(bs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t ai = 0;
    std::int64_t bi = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) {
      ai += coord[d] * astr[d];
      bi += coord[d] * bstr[d];
    }
    const float va = a[static_cast<std::size_t>(ai)];
    const float vb = b[static_cast<std::size_t>(bi)];
    float r = 0.0F;
    if (alg == "add")
      r = va + vb;
    else if (alg == "sub")
      r = va - vb;
    else if (alg == "mul")
      r = va * vb;
    else if (alg == "div")
      r = va / vb;
    else if (alg == "max")
      r = std::max(va, vb);
    else if (alg == "min")
      r = std::min(va, vb);
    else
      fail("node '{}': unknown binary alg '{}'", node.name, alg);
    y[i] = r;
  });
}

void run_transpose(Context& ctx, const Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto perm = node.attrs.at("perm").get<std::vector<std::int64_t>>();
  auto& y = ctx.out(node, 0);
  const auto xstr = strides_of(xs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) src += coord[d] * xstr[static_cast<std::size_t>(perm[d])];
    y[i] = x[static_cast<std::size_t>(src)];
  });
}

void run_softmax(Context& ctx, const Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{-1});
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  const auto a = static_cast<std::size_t>(axis);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= xs[d];
  for (std::size_t d = a + 1; d < xs.size(); ++d) inner *= xs[d];
  const std::int64_t len = xs[a];
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
        y[idx] = static_cast<float>(std::exp(static_cast<double>(x[idx]) - top) / total);
      }
    }
  }
}

void run_gather(Context& ctx, const Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{0});
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  const auto a = static_cast<std::size_t>(axis);
  const auto indices = node.attrs.at("indices").get<std::vector<std::int64_t>>();
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= xs[d];
  for (std::size_t d = a + 1; d < xs.size(); ++d) inner *= xs[d];
  auto& y = ctx.out(node, 0);
  std::size_t pos = 0;
  for (std::int64_t o = 0; o < outer; ++o) {
    for (auto index : indices) {
      if (index < 0 || index >= xs[a]) fail("node '{}' (Gather): index {} out of range", node.name, index);
      const auto src = x.begin() + (o * xs[a] + index) * inner;
      std::copy_n(src, inner, y.begin() + static_cast<std::ptrdiff_t>(pos));
      pos += static_cast<std::size_t>(inner);
    }
  }
}

}  // namespace

std::vector<std::vector<float>> run_reference(const Graph& graph,
                                              const std::vector<std::vector<float>>& inputs,
                                              const ReferenceOptions& options) {
  Context ctx{graph, std::vector<std::vector<float>>(graph.tensors.size()), options};
  if (inputs.size() != graph.inputs.size()) {
    fail("reference executor: {} inputs given, graph has {}", inputs.size(), graph.inputs.size());
  }
  for (std::size_t i = 0; i < graph.tensors.size(); ++i) {
    const auto& tensor = graph.tensors[i];
    if (!tensor.data) continue;
    if (tensor.dtype != DType::kF32 && tensor.dtype != DType::kS8)
      fail("reference executor: constant '{}' is neither f32 nor s8", tensor.name);
    const std::size_t count = tensor.data->size / dtype_size(tensor.dtype);
    if (static_cast<std::int64_t>(count) != shape_volume(tensor.shape)) {
      fail("reference executor: constant '{}' has {} values for shape {}", tensor.name, count,
           shape_to_string(tensor.shape));
    }
    if (tensor.dtype == DType::kS8) {  // int8 weights: the integers; the Conv applies weight_scales
      const auto values = tensor.data->as<std::int8_t>();
      ctx.values[i].assign(values.begin(), values.end());
    } else {
      const auto values = tensor.data->as<float>();
      ctx.values[i].assign(values.begin(), values.end());
    }
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto index = static_cast<std::size_t>(graph.inputs[i]);
    const auto& tensor = graph.tensors.at(index);
    if (static_cast<std::int64_t>(inputs[i].size()) != shape_volume(tensor.shape)) {
      fail("reference executor: input '{}' has {} values, shape {} needs {}", tensor.name, inputs[i].size(),
           shape_to_string(tensor.shape), shape_volume(tensor.shape));
    }
    ctx.values[index] = inputs[i];
  }
  for (const auto& node : graph.nodes) {
    const auto& op = node.op;
    if (op == "Conv") {
      run_conv(ctx, node);
    } else if (op == "MaxPool" || op == "AveragePool") {
      run_pool(ctx, node, op == "MaxPool");
    } else if (op == "Concat") {
      run_concat(ctx, node);
    } else if (op == "Split") {
      run_split(ctx, node);
    } else if (op == "Slice") {
      run_slice(ctx, node);
    } else if (op == "Resize") {
      run_resize(ctx, node);
    } else if (op == "Eltwise") {
      const auto& x = ctx.in(node, 0);
      const auto alg = node.attrs.at("alg").get<std::string>();
      const float alpha = node.attrs.value("alpha", 0.0F);
      const float beta = node.attrs.value("beta", 0.0F);
      auto& y = ctx.out(node, 0);
      for (std::size_t i = 0; i < y.size(); ++i) y[i] = apply_eltwise(alg, x[i], alpha, beta, node);
    } else if (op == "Binary") {
      run_binary(ctx, node);
    } else if (op == "Reshape") {
      const auto& x = ctx.in(node, 0);
      auto& y = ctx.out(node, 0);
      if (y.size() != x.size()) fail("node '{}' (Reshape): volume mismatch", node.name);
      std::copy(x.begin(), x.end(), y.begin());
    } else if (op == "Transpose") {
      run_transpose(ctx, node);
    } else if (op == "Softmax") {
      run_softmax(ctx, node);
    } else if (op == "Gather") {
      run_gather(ctx, node);
    } else {
      fail("reference executor: node '{}' has unknown op '{}'", node.name, op);
    }
    for (int output : node.outputs) {
      const auto& tensor = graph.tensors[static_cast<std::size_t>(output)];
      auto& value = ctx.values[static_cast<std::size_t>(output)];
      if (tensor.dtype == DType::kS8) fake_quantize(value, tensor.scale, -128.0F, 127.0F);
      if (tensor.dtype == DType::kBF16) round_to_bf16(value);
    }
  }
  std::vector<std::vector<float>> outputs;
  for (int index : graph.outputs) {
    const auto& value = ctx.values.at(static_cast<std::size_t>(index));
    if (static_cast<std::int64_t>(value.size()) != shape_volume(ctx.shape(index))) {
      fail("reference executor: output '{}' was never computed",
           graph.tensors[static_cast<std::size_t>(index)].name);
    }
    outputs.push_back(value);
  }
  return outputs;
}

}  // namespace vapipe::compiler
