// Conv: 2-D convolution with fused post-ops (activations, a residual sum), in f32, bf16 or int8.
// ONNX Conv imports to it; the fusion passes (compiler/graph_passes.cpp) fold BatchNormalization, activations
// and residual adds into it; precision.cpp turns it int8 or bf16.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "ops/family.hpp"
#include "ops/int8_without_vnni.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_conv(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  int x = ctx.activation_input(0);
  const Constant* w = ctx.const_input(1);
  if (w == nullptr) ctx.unsupported("missing weights");
  const Shape x_shape = ctx.shape_of(x);
  // 1-D convolutions run as 2-D ones with H = 1 (oneDNN's 1-D kernels are the same code).
  const std::size_t spatial = x_shape.size() - 2;
  if (x_shape.size() != w->shape.size() || (spatial != 1 && spatial != 2))
    ctx.unsupported("only 1-D and 2-D convolution (3-D and 4-D tensors)");
  const auto strides = ImportContext::lift_to_2d(ctx.spatial_attr("strides", 1, spatial), 1);
  const auto dilations = ImportContext::lift_to_2d(ctx.spatial_attr("dilations", 1, spatial), 1);
  const Shape w_shape = spatial == 2 ? w->shape : Shape{w->shape[0], w->shape[1], 1, w->shape[2]};
  if (auto kernel = attribute_ints(node, "kernel_shape");
      kernel && ImportContext::lift_to_2d(*kernel, 1) != std::vector<std::int64_t>{w_shape[2], w_shape[3]}) {
    ctx.unsupported("kernel_shape does not match the weights");
  }
  const std::string& out = node.output(0);
  int weights = ctx.tensor_of(node.input(1));
  if (spatial == 1) {
    x = ctx.emit_reshape(x, {x_shape[0], x_shape[1], 1, x_shape[2]}, out + "/as_2d");
    weights = ctx.constant_tensor(node.input(1) + "/as_2d", w_shape,
                                  std::vector<float>(w->values.begin(), w->values.end()));
  }
  const auto pads = ctx.window_pads(ctx.shape_of(x), {w_shape[2], w_shape[3]}, strides, dilations, spatial);
  std::vector<int> inputs{x, weights, -1};
  if (node.input_size() > 2 && !node.input(2).empty()) {
    if (ctx.const_input(2) == nullptr) ctx.unsupported("missing bias");
    inputs[2] = ctx.tensor_of(node.input(2));
  }
  const nlohmann::json attrs = {{"strides", strides},
                                {"pads", pads},
                                {"dilations", dilations},
                                {"group", attribute_int(node, "group", 1)},
                                {"post_ops", nlohmann::json::array()}};
  const int y = ctx.emit1("Conv", inputs, attrs, spatial == 1 ? out + "/2d" : out);
  const Shape y_shape = ctx.shape_of(y);
  ctx.set_activation(out, spatial == 1 ? ctx.emit_reshape(y, {y_shape[0], y_shape[1], y_shape[3]}, out) : y);
}

// ---- shapes ----
std::vector<Shape> conv_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  if (x.size() != 4) fail("node '{}' (Conv): input must be 4-D, got {}", node.name, shape_to_string(x));
  const auto strides = int_list(node, "strides", 2);
  const auto pads = int_list(node, "pads", 4);
  const auto dilations = int_list(node, "dilations", 2);
  const Shape& w = input_shape(graph, node, 1);
  if (w.size() != 4) fail("node '{}' (Conv): weight must be 4-D, got {}", node.name, shape_to_string(w));
  const std::int64_t group = bounded(node, "group", node.attrs.value("group", std::int64_t{1}));
  if (group <= 0 || w[1] * group != x[1] || w[0] % group != 0) {
    fail("node '{}' (Conv): input {} does not fit weight {} with group {}", node.name, shape_to_string(x),
         shape_to_string(w), group);
  }
  if (node.inputs.size() > 2 && node.inputs[2] >= 0) {
    const Shape& b = input_shape(graph, node, 2);
    if (checked_volume(node, b) != w[0])
      fail("node '{}' (Conv): bias has {} values, expected {}", node.name, checked_volume(node, b), w[0]);
  }
  Shape out{x[0], w[0], window_output(x[2], w[2], strides[0], pads[0], pads[2], dilations[0], node),
            window_output(x[3], w[3], strides[1], pads[1], pads[3], dilations[1], node)};
  if (node.inputs.size() > 3 && node.inputs[3] >= 0) {
    const Shape& sum = input_shape(graph, node, 3);
    if (sum != out) {
      fail("node '{}' (Conv): sum input {} differs from output {}", node.name, shape_to_string(sum),
           shape_to_string(out));
    }
  }
  return {out};
}

// ---- reference ----
void conv_reference(ReferenceContext& ctx, const ir::Node& node) {
  const std::string precision = node.attrs.value("precision", std::string("f32"));
  std::vector<float> x = ctx.in(node, 0);
  std::vector<float> w = ctx.in(node, 1);
  const bool integer = precision == "int8" && node.attrs.value("integer", false);
  if (integer) {
    // The tensors hold the integers themselves: subtract the input's zero point; the weights are the file's.
    const float zero_point = node.attrs.value("input_zero_point", 0.0F);
    for (auto& v : x) v -= zero_point;
    if (ctx.options.int8_without_vnni) {  // halved weights, for u8 and s8 inputs alike (see below)
      const std::vector<std::int8_t> integers(w.begin(), w.end());
      const auto halved =
          halve_weights_balanced(integers, w.size() / static_cast<std::size_t>(ctx.shape(node.inputs[1])[0]));
      w.assign(halved.begin(), halved.end());
    }
  } else if (precision == "int8") {
    const auto& x_tensor = ctx.graph.tensors[static_cast<std::size_t>(node.inputs[0])];
    const bool x_quantized = x_tensor.dtype == DType::kS8;
    const bool unsigned_input = !x_quantized && node.attrs.value("input_type", std::string("s8")) == "u8";
    const float input_scale = x_quantized ? x_tensor.scale : node.attrs.at("input_scale").get<float>();
    fake_quantize(x, input_scale, unsigned_input ? 0.0F : -128.0F, unsigned_input ? 255.0F : 127.0F);
    const auto weight_scales = node.attrs.at("weight_scales").get<std::vector<float>>();
    const std::size_t per_channel = w.size() / weight_scales.size();
    if (ctx.options.int8_without_vnni) {
      const std::vector<std::int8_t> integers(w.begin(), w.end());
      const auto halved = halve_weights_balanced(integers, per_channel);
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
  std::vector<float> requantize;
  float output_zero_point = 0.0F, output_low = 0.0F, output_high = 0.0F;
  if (integer) {
    requantize = node.attrs.at("weight_scales").get<std::vector<float>>();
    if (static_cast<std::int64_t>(requantize.size()) != oc)
      fail("node '{}' (Conv): {} weight scales for {} output channels", node.name, requantize.size(), oc);
    if (node.attrs.value("post_ops", nlohmann::json::array()).size() != 0 || has_sum)
      fail("node '{}' (Conv): an integer convolution takes no post-ops", node.name);
    output_zero_point = node.attrs.value("output_zero_point", 0.0F);
    const bool u8 = ctx.graph.tensors[static_cast<std::size_t>(node.outputs[0])].dtype == DType::kU8;
    output_low = u8 ? 0.0F : -128.0F;
    output_high = u8 ? 255.0F : 127.0F;
  }
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
            const auto wv =
                static_cast<double>(w[static_cast<std::size_t>(((o * icg + c) * kh + ky) * kw + kx)]);
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
      if (integer) {
        // ONNX Runtime's requantization: the accumulator as float times the multiplier (one f32 rounding),
        // rounded half to even, plus the zero point, saturated.
        const float multiplier = requantize.at(static_cast<std::size_t>(o));
        for (std::size_t i = 0; i < acc.size(); ++i) {
          const float q = std::nearbyint(y[base + i] * multiplier) + output_zero_point;
          y[base + i] = std::clamp(q, output_low, output_high);
        }
      }
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
      for (auto& v : y) v = eltwise_reference(alg, v, alpha, beta, node);
    }
  }
}

// ---- lowering ----
// VAPIPE_RESIDUAL=binary forces the binary-add form of residual convolutions everywhere (so the
// differential tests exercise it on CPUs that never need it), =sum forbids it (to compare the two). Read
// at load (each convolution's lowering), never per run.
enum class ResidualMode : std::uint8_t { kAuto, kBinary, kSumOnly };
#if defined(__aarch64__)
constexpr bool kInt8BinaryResidualIsWrong = true;
#else
constexpr bool kInt8BinaryResidualIsWrong = false;
#endif
ResidualMode residual_mode_from_environment() {
  const char* value = std::getenv("VAPIPE_RESIDUAL");
  const std::string name = value != nullptr ? value : "";
  if (name == "binary") return ResidualMode::kBinary;
  return name == "sum" ? ResidualMode::kSumOnly : ResidualMode::kAuto;
}

// How a convolution computes: data types of its operands and, for int8, the scales that map its
// integers back to real values (real = q * scale).
struct ConvPrecision {
  memory::data_type src = kF32, weights = kF32, dst = kF32;
  float input_scale = 1.0F;   // int8: scale of the quantized input
  float output_scale = 1.0F;  // int8 with an s8 output: scale of the output
  std::vector<float> weight_scales;
  // "integer" (pre-quantized ONNX as written, compiler/precision.hpp): weight_scales are ONNX Runtime's
  // requantization multipliers, the bias is in accumulator units, input and output carry zero points.
  bool integer = false;
  float input_zero_point = 0.0F, output_zero_point = 0.0F;
};

ConvPrecision conv_precision(Lowering& l, const ir::Node& node, std::int64_t out_channels) {
  const auto& attrs = node.attrs;
  const std::string precision = attrs.value("precision", std::string("f32"));
  const auto& x_info = l.tensor(node.inputs[0]);
  const auto& y_info = l.tensor(node.outputs[0]);
  ConvPrecision p;
  if (precision == "f32") return p;
  if (precision == "bf16") {
    p.src = p.weights = kBf16;
    p.dst = y_info.dtype == DType::kBF16 ? kBf16 : kF32;
    return p;
  }
  if (precision != "int8")
    fail("network '{}': node '{}': precision '{}' is not supported", l.network(), node.name, precision);
  const bool x_quantized = x_info.dtype == DType::kS8 || x_info.dtype == DType::kU8;
  if (x_quantized) {
    p.src = x_info.dtype == DType::kU8 ? kU8 : kS8;
  } else {
    p.src = attrs.value("input_type", std::string("s8")) == "s8" ? kS8 : kU8;
  }
  p.weights = kS8;
  p.dst = y_info.dtype == DType::kS8 ? kS8 : y_info.dtype == DType::kU8 ? kU8 : kF32;
  p.integer = attrs.value("integer", false);
  if (p.integer) {
    p.input_zero_point = attrs.value("input_zero_point", 0.0F);
    p.output_zero_point = attrs.value("output_zero_point", 0.0F);
    if (p.dst == kF32 || (p.src == kS8 && p.input_zero_point != 0.0F))
      fail(
          "network '{}': node '{}': an integer convolution needs a u8/s8 output and no zero point on an s8 "
          "input",
          l.network(), node.name);
  }
  p.input_scale = x_quantized ? x_info.scale : attrs.at("input_scale").get<float>();
  if (p.dst == kS8) p.output_scale = y_info.scale;
  p.weight_scales = attrs.at("weight_scales").get<std::vector<float>>();
  const auto positive = [](float v) { return v > 0.0F && std::isfinite(v); };
  if (static_cast<std::int64_t>(p.weight_scales.size()) != out_channels ||
      !std::all_of(p.weight_scales.begin(), p.weight_scales.end(), positive) || !positive(p.input_scale) ||
      !positive(p.output_scale)) {
    fail("network '{}': node '{}': int8 scales are missing or invalid (need {} positive weight scales)",
         l.network(), node.name, out_channels);
  }
  return p;
}

// oneDNN halves these weights itself when packing them (s8 inputs without VNNI: `scale_adjust` 0.5,
// and it doubles the output scales to match).
bool onednn_halves_weights(const memory::desc& packed) {
  return (packed.data.extra.flags & dnnl_memory_extra_flag_scale_adjust) != 0 &&
         packed.data.extra.scale_adjust == 0.5F;
}

// Weights halved by vapipe (halve_weights_balanced) and packed as f32 times `factor`: 2 where oneDNN's
// reorder halves them again (exactly, then), 1 where the kernel takes them as they are (u8 inputs, whose
// output scales are doubled above). Cached per tensor in the shared constants like every packed weight.
int halved_weight_value(Lowering& l, int tensor, const memory::desc& stored_md, const memory::desc& wanted_md,
                        float factor) {
  if (const auto found = l.converted(tensor, wanted_md)) return *found;
  const auto& info = l.tensor(tensor);
  if (!info.is_constant() || info.dtype != DType::kS8 || info.data->size != stored_md.get_size()) {
    fail("network '{}': convolution weights '{}' must be an s8 constant of {} bytes", l.network(), info.name,
         stored_md.get_size());
  }
  const memory::desc doubled_md(stored_md.dims(), kF32, stored_md.data.ndims == 5 ? Tag::goihw : Tag::oihw);
  auto doubled = l.packed_constants().find(info.data->data, doubled_md);
  if (!doubled) {
    const auto weights = info.data->as<std::int8_t>();
    const std::size_t out_channels = static_cast<std::size_t>(l.shape(tensor)[0]);
    const auto halved = halve_weights_balanced(weights, weights.size() / out_channels);
    auto buffer = std::make_shared<AlignedBuffer>(doubled_md.get_size());
    auto* values = reinterpret_cast<float*>(buffer->data());
    for (std::size_t i = 0; i < halved.size(); ++i) values[i] = static_cast<float>(halved[i]) * factor * 0.5F;
    l.packed_constants().add(info.data->data, doubled_md, buffer);
    doubled = std::move(buffer);
  }
  l.keep(doubled);
  const int stored = l.add_value(doubled_md);
  l.value(stored).constant = doubled->data();
  const int packed = l.add_value(wanted_md);
  l.pack_constant(stored, packed);
  l.remember(tensor, packed);
  return packed;
}

int scaled_bias(Lowering& l, int tensor, const std::vector<float>& accumulator_scales) {
  const auto& info = l.tensor(tensor);
  if (!info.is_constant() || info.dtype != DType::kF32 ||
      info.data->size != accumulator_scales.size() * sizeof(float)) {
    fail("network '{}': bias '{}' must be an f32 constant with one value per output channel", l.network(),
         info.name);
  }
  auto buffer = std::make_shared<AlignedBuffer>(info.data->size);
  const auto bias = info.data->as<float>();
  auto* scaled = reinterpret_cast<float*>(buffer->data());
  for (std::size_t c = 0; c < bias.size(); ++c) scaled[c] = bias[c] / accumulator_scales[c];
  const int value = l.add_value(memory::desc({static_cast<memory::dim>(bias.size())}, kF32, Tag::a));
  l.value(value).constant = buffer->data();
  l.keep(std::move(buffer));
  return value;
}

int weight_value(Lowering& l, int tensor, const memory::desc& stored_md, const memory::desc& wanted_md) {
  if (const auto found = l.converted(tensor, wanted_md)) return *found;
  const auto& info = l.tensor(tensor);
  if (!info.is_constant())
    fail("network '{}': convolution weights '{}' must be constant", l.network(), info.name);
  const auto expected = stored_md.data_type() == kS8 ? DType::kS8 : DType::kF32;
  if (info.dtype != expected || info.data->size != stored_md.get_size()) {
    fail("network '{}': convolution weights '{}' must be a {} constant of {} bytes", l.network(), info.name,
         dtype_name(expected), stored_md.get_size());
  }
  const int stored = l.add_value(stored_md);
  l.value(stored).constant = info.data->data;
  if (stored_md == wanted_md) return stored;
  const int packed = l.add_value(wanted_md);
  l.pack_constant(stored, packed);
  l.remember(tensor, packed);
  return packed;
}

// A float 1x1 head convolution read channels-last, computed where the decoder reads it (HeadGate in
// include/vapipe/head_gate.hpp): true when it was lowered so.
bool lower_gated_head(Lowering& l, const ir::Node& node, const ConvPrecision& precision) {
  const HeadGate& gate = l.options().head_gate;
  const int per_anchor = gate.outputs_per_anchor;
  if (per_anchor <= 0 || precision.src != kF32 || precision.weights != kF32) return false;
  const auto& attrs = node.attrs;
  const int x = node.inputs.at(0);
  const int w = node.inputs.at(1);
  const int b = node.inputs.size() > 2 ? node.inputs[2] : -1;
  const int y = node.outputs.at(0);
  const Shape& w_shape = l.shape(w);
  const bool has_sum = node.inputs.size() > 3 && node.inputs[3] >= 0;
  if (has_sum || !attrs.value("post_ops", json::array()).empty() ||
      attrs.value("group", std::int64_t{1}) != 1 || w_shape.size() != 4 || w_shape[2] != 1 ||
      w_shape[3] != 1 || int_attr(attrs, "strides", {1, 1}) != std::vector<std::int64_t>{1, 1} ||
      int_attr(attrs, "pads", {0, 0, 0, 0}) != std::vector<std::int64_t>(4, 0) ||
      int_attr(attrs, "dilations", {1, 1}) != std::vector<std::int64_t>{1, 1} || !l.read_channels_last(y))
    return false;
  const std::int64_t out_channels = w_shape[0];
  if (out_channels % per_anchor != 0 || gate.gate_channel < 0 || gate.gate_channel >= per_anchor)
    return false;
  const auto& weights = l.tensor(w);
  if (!weights.is_constant() || weights.dtype != DType::kF32) return false;
  const float* bias = nullptr;
  if (b >= 0) {
    const auto& info = l.tensor(b);
    if (!info.is_constant() || info.dtype != DType::kF32 ||
        info.data->size != static_cast<std::size_t>(out_channels) * sizeof(float))
      return false;
    bias = info.data->as<float>().data();
  }
  const Shape& x_shape = l.shape(x);
  const Shape& y_shape = l.shape(y);
  const int src = l.value_as(x, memory::desc(Dims(x_shape.begin(), x_shape.end()), kF32, Tag::acdb));
  const int dst = l.define_output(y, memory::desc(Dims(y_shape.begin(), y_shape.end()), kF32, Tag::acdb));
  // The weights and bias are read in place from the package, which the network keeps mapped.
  l.add_kernel(
      [input_channels = x_shape[1], pixels = y_shape[0] * y_shape[2] * y_shape[3], out_channels, per_anchor,
       weights = weights.data->as<float>().data(), bias, gate_channel = gate.gate_channel,
       gate_logit = gate.gate_logit](const std::vector<void*>& data) {
        gated_head_1x1(static_cast<const float*>(data[0]), weights, bias, static_cast<float*>(data[1]),
                       pixels, input_channels, out_channels, per_anchor, gate_channel, gate_logit);
      },
      {src, dst});
  return true;
}

void lower_conv(Lowering& l, const ir::Node& node) {
  const auto& attrs = node.attrs;
  const ResidualMode residual_mode = residual_mode_from_environment();
  const int x = node.inputs.at(0);
  const int w = node.inputs.at(1);
  const int b = node.inputs.size() > 2 ? node.inputs[2] : -1;
  const int sum = node.inputs.size() > 3 ? node.inputs[3] : -1;
  const int y = node.outputs.at(0);
  const auto group = attrs.value("group", std::int64_t{1});
  const Shape& w_shape = l.shape(w);
  if (l.shape(x).size() != 4 || w_shape.size() != 4)
    fail("network '{}': node '{}': only 2-D convolutions are supported", l.network(), node.name);
  Dims weight_dims(w_shape.begin(), w_shape.end());
  Tag weight_tag = Tag::oihw;
  if (group > 1) {
    weight_dims = {group, w_shape[0] / group, w_shape[1], w_shape[2], w_shape[3]};
    weight_tag = Tag::goihw;
  }
  const auto strides = int_attr(attrs, "strides", {1, 1});
  const auto pads = int_attr(attrs, "pads", {0, 0, 0, 0});
  auto dilations = int_attr(attrs, "dilations", {1, 1});
  for (auto& d : dilations) d -= 1;  // oneDNN counts the gaps, ONNX the step
  const Shape& y_shape = l.shape(y);
  const ConvPrecision precision = conv_precision(l, node, y_shape[1]);
  if (lower_gated_head(l, node, precision)) return;
  const bool int8 = precision.weights == kS8;
  const memory::desc any_src(Dims(l.shape(x).begin(), l.shape(x).end()), precision.src, Tag::any);
  const memory::desc any_weights(weight_dims, precision.weights, Tag::any);
  // A convolution feeding only a graph output writes it plain (NCHW) itself: reordering a channels-last
  // head output afterwards costs more than the convolution (YOLO heads have 255 channels).
  // (Measured on yolov5n: equal to or slightly faster than brgconv + a tiled transpose, and simpler.)
  // (Not int8: oneDNN 2.6 has no fast int8 kernel writing NCHW from NHWC (ref_int8, 100x slower); those go
  // channels-last and through the tiled transpose.)
  const bool output_only = l.is_graph_output(y) && l.consumers(y) == 0 && !is_quantized(precision.src);
  // Read only through a channels-last Transpose (the compiler's channels-last head outputs): write
  // channels-last, which every fast convolution kernel produces, and the Transpose is a view.
  const Tag dst_tag = l.read_channels_last(y) && sum < 0 ? Tag::acdb : output_only ? Tag::abcd : Tag::any;
  const memory::desc any_dst(Dims(y_shape.begin(), y_shape.end()), precision.dst, dst_tag);
  const memory::desc bias_md = b >= 0 ? memory::desc({y_shape[1]}, kF32, Tag::a) : memory::desc();

  // int8: the accumulator times input_scale * weight_scale[oc] (output scales) is the real value; the
  // last eltwise post-op (or the output scales, without one) also divides by the output's scale, so
  // oneDNN rounds and saturates to s8 in the output's units. A sum adds the addend's integers times
  // addend_scale / (scale of the domain it lands in).
  const auto posts = attrs.value("post_ops", nlohmann::json::array());
  int last_eltwise = -1;
  for (int i = 0; i < static_cast<int>(posts.size()); ++i) {
    if (posts[static_cast<std::size_t>(i)].at("op").get<std::string>() != "sum") last_eltwise = i;
  }
  float addend_scale = 1.0F;
  if (int8 && precision.dst == kS8 && sum >= 0) {
    addend_scale = l.tensor(sum).scale;
    if (!(addend_scale > 0.0F))
      fail("network '{}': node '{}': the int8 sum addend has no scale", l.network(), node.name);
  }
  bool has_sum = false;
  for (const auto& post : posts) has_sum = has_sum || post.at("op").get<std::string>() == "sum";
  if (has_sum && sum < 0)
    fail("network '{}': node '{}': a sum post-op needs a fourth input", l.network(), node.name);
  // A u8 input where vpmaddubsw would saturate: vapipe halves the weights (ops/int8_without_vnni.hpp).
  const bool halve_u8_weights = precision.src == kU8 && int8_pair_sums_saturate();
  std::vector<float> accumulator_scales;  // int8: real = accumulator * accumulator_scales[oc]
  for (float weight_scale : precision.weight_scales)
    accumulator_scales.push_back(precision.input_scale * weight_scale * (halve_u8_weights ? 2.0F : 1.0F));
  // `binary_residual`: the residual is a binary-add post-op reading the addend as f32 real values from
  // `addend_md`, the whole chain computes in real units and a final linear post-op converts to the s8
  // output's units (see below for when).
  if (precision.integer && (!posts.empty() || sum >= 0))
    fail("network '{}': node '{}': an integer convolution takes no post-ops", l.network(), node.name);
  const auto make_attr = [&](bool binary_residual, const memory::desc& addend_md) {
    dnnl::post_ops post_ops;
    if (precision.integer) {
      // round(acc * multiplier) half to even, then + zero point; the u8/s8 destination saturates (ONNX
      // Runtime's order: a zero point added before rounding, as oneDNN's destination zero point is, can
      // round a value just below .5 up once the sum loses a bit).
      post_ops.append_eltwise(1.0F, algorithm::eltwise_round, 0.0F, 0.0F);
      if (precision.output_zero_point != 0.0F)
        post_ops.append_eltwise(1.0F, algorithm::eltwise_linear, 1.0F, precision.output_zero_point);
    }
    for (int i = 0; i < static_cast<int>(posts.size()); ++i) {
      const auto& post = posts[static_cast<std::size_t>(i)];
      const std::string kind = post.at("op").get<std::string>();
      const float alpha = post.value("alpha", 0.0F);
      const float beta = post.value("beta", 0.0F);
      const float domain = last_eltwise < i ? precision.output_scale : 1.0F;
      const float scale = i == last_eltwise && !binary_residual ? 1.0F / precision.output_scale : 1.0F;
      if (kind == "sum" && binary_residual) {
        post_ops.append_binary(algorithm::binary_add, addend_md);
      } else if (kind == "sum") {
        post_ops.append_sum(addend_scale / domain);
      } else if (kind == "relu") {
        post_ops.append_eltwise(scale, algorithm::eltwise_relu, 0.0F, 0.0F);
      } else if (kind == "leaky_relu") {
        post_ops.append_eltwise(scale, algorithm::eltwise_relu, alpha, 0.0F);
      } else if (kind == "sigmoid") {
        post_ops.append_eltwise(scale, algorithm::eltwise_logistic, 0.0F, 0.0F);
      } else if (kind == "swish") {
        post_ops.append_eltwise(scale, algorithm::eltwise_swish, post.value("alpha", 1.0F), 0.0F);
      } else if (kind == "clip") {
        post_ops.append_eltwise(scale, algorithm::eltwise_clip, alpha, beta);
      } else {
        fail("network '{}': node '{}': post-op '{}' is not supported", l.network(), node.name, kind);
      }
    }
    if (binary_residual && precision.output_scale != 1.0F)
      post_ops.append_eltwise(1.0F, algorithm::eltwise_linear, 1.0F / precision.output_scale, 0.0F);
    // A fresh attr: dnnl::primitive_attr copies share one handle, and l.plain_attr() must stay post-op free.
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(post_ops);
    if (precision.integer && precision.input_zero_point != 0.0F)
      attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    if (int8) {
      const float divide = last_eltwise < 0 && !binary_residual ? precision.output_scale : 1.0F;
      std::vector<float> output_scales;
      for (float scale : accumulator_scales) output_scales.push_back(scale / divide);
      attr.set_output_scales(1 << 1, output_scales);
    }
    return attr;
  };
  const auto make_pd = [&](const memory::desc& dst_md, const dnnl::primitive_attr& attr) {
    const dnnl::convolution_forward::desc desc(
        prop_kind::forward_inference, algorithm::convolution_direct, any_src, any_weights, bias_md, dst_md,
        Dims(strides.begin(), strides.end()), Dims(dilations.begin(), dilations.end()),
        Dims{pads[0], pads[1]}, Dims{pads[2], pads[3]});
    return dnnl::convolution_forward::primitive_desc(desc, attr, l.engine());
  };
  dnnl::convolution_forward::primitive_desc pd = make_pd(any_dst, make_attr(false, {}));
  if (dst_tag == Tag::acdb && Lowering::is_reference(pd)) {
    // No fast kernel writes channels-last here (oneDNN 2.6 without AVX-512 for f32): let the kernel
    // choose, the Transpose then reorders once.
    pd = make_pd(memory::desc(any_dst.dims(), precision.dst, Tag::any), make_attr(false, {}));
  }
  // Without AVX-512 (oneDNN 2.6's jit:avx2 and sse41 kernels), a sum post-op must come first: the
  // activation-then-residual order of YOLO's bottlenecks falls to ref:any, 100x slower (measured 2.5-3.6 s
  // for one 3x3 conv on a Zen 3). A binary-add post-op has no such restriction: the addend is read in the
  // layout the previous convolution gave it (as f32), into a separate dst.
  // oneDNN 2.6 on aarch64 runs the binary-add form of an int8 convolution with gemm_s8s8s32 and gets it
  // wrong (every element of the output off, by up to a third of its range;
  // LowPrecision.EveryInt8ConvolutionKindMatchesSimulatedReference under qemu): int8 keeps the sum post-op
  // there, correct but on ref_int8. f32 binary residuals are right on aarch64 (RuntimeOps tests).
  int binary_addend = -1;
  if (has_sum && residual_mode != ResidualMode::kSumOnly && !(int8 && kInt8BinaryResidualIsWrong) &&
      (Lowering::is_reference(pd) || residual_mode == ResidualMode::kBinary)) {
    const memory::desc& produced = l.value(l.value_of(sum)).md;
    const auto tag = Lowering::tag_of(produced);
    const memory::desc addend_md = tag ? memory::desc(produced.dims(), kF32, *tag) : plain_md(l.shape(sum));
    auto binary_pd = make_pd(memory::desc(addend_md.dims(), precision.dst, tag ? *tag : Tag::abcd),
                             make_attr(true, addend_md));
    if (!Lowering::is_reference(binary_pd)) {
      pd = std::move(binary_pd);
      binary_addend = l.value_as(sum, addend_md);
    }
  }

  const int src = l.value_as(x, pd.src_desc(), precision.input_scale);
  const memory::desc stored_weights(weight_dims, int8 ? kS8 : kF32, weight_tag);
  int weights = -1;
  if (halve_u8_weights) {
    weights = halved_weight_value(l, w, stored_weights, pd.weights_desc(), 1.0F);
  } else if (onednn_halves_weights(pd.weights_desc())) {
    weights = halved_weight_value(l, w, stored_weights, pd.weights_desc(), 2.0F);
  } else {
    weights = weight_value(l, w, stored_weights, pd.weights_desc());
  }
  int dst = -1;
  if (binary_addend >= 0) {
    dst = l.define_output(y, pd.dst_desc());
  } else if (has_sum) {
    // The sum post-op accumulates into dst: reuse the addend's bytes when nobody reads them later,
    // otherwise copy the addend into a fresh dst first.
    const int addend = l.value_as(sum, pd.dst_desc());
    // (Not when the addend is also the source: the convolution would read what it already wrote.)
    const bool addend_dies_here =
        l.dies_here(sum) && l.root_of(addend) != l.root_of(src) && !l.is_aliased(l.root_of(addend)) &&
        l.value(l.root_of(addend)).constant == nullptr && !l.value(l.root_of(addend)).external;
    dst = l.define_output(y, pd.dst_desc());
    if (addend_dies_here) {
      l.make_view(dst, addend);
    } else {
      l.add_reorder(addend, dst, "sum addend");
    }
  } else {
    dst = l.define_output(y, pd.dst_desc());
  }
  std::vector<std::pair<int, int>> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (b >= 0) {
    // oneDNN 2.x adds an int8 convolution's f32 bias to the accumulator before the output scales:
    // store it in accumulator units (bias / (input_scale * weight_scale)).
    // An integer convolution's bias is already in accumulator units (halved with halved weights).
    const std::vector<float> bias_scales =
        precision.integer ? std::vector<float>(accumulator_scales.size(), halve_u8_weights ? 2.0F : 1.0F)
                          : accumulator_scales;
    args.emplace_back(DNNL_ARG_BIAS, int8 ? scaled_bias(l, b, bias_scales) : l.value_as(b, bias_md));
  }
  if (precision.integer && precision.input_zero_point != 0.0F) {
    auto buffer = std::make_shared<AlignedBuffer>(sizeof(std::int32_t));
    *reinterpret_cast<std::int32_t*>(buffer->data()) = static_cast<std::int32_t>(precision.input_zero_point);
    const int zero_point = l.add_value(memory::desc({1}, memory::data_type::s32, Tag::a));
    l.value(zero_point).constant = buffer->data();
    l.keep(std::move(buffer));
    args.emplace_back(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zero_point);
  }
  if (binary_addend >= 0) {
    int residual_index = 0;
    while (posts[static_cast<std::size_t>(residual_index)].at("op").get<std::string>() != "sum")
      ++residual_index;
    args.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(residual_index) | DNNL_ARG_SRC_1, binary_addend);
  }
  l.add_primitive(pd, std::move(args));
}

}  // namespace

void register_conv(Registry& registry) {
  registry.add({"Conv", conv_shapes, conv_reference, lower_conv});
  registry.add_onnx("Conv", import_conv);
}

}  // namespace vapipe::ops
