// Quantize: pre-quantized ONNX as users bring it (docs/compiler.md, "Pre-quantized ONNX"). Three IR ops hold
// the quantization arithmetic in float (vapipe's activations are f32; a quantized value is an f32 holding its
// integer): Quantize (round half to even, add the zero point, saturate), Dequantize ((x - zero point) * scale)
// and DynamicQuantize (ONNX DynamicQuantizeLinear: uint8 with the scale and zero point of the tensor's range).
//
// The ONNX quantized operators import onto them and the float operators, with the weights dequantized at
// compile time: QLinearConv is Dequantize, Conv with (w - w_zero_point) * w_scale and the bias times
// x_scale * w_scale, then Quantize with the output's scale; QLinearMatMul, QLinearAdd (com.microsoft) and
// QLinearGlobalAveragePool (com.microsoft) likewise. ConvInteger and MatMulInteger compute the exact integer
// sums in float: (x - x_zero_point) through Conv/MatMul with w - w_zero_point (exact below 2^24, a float's
// integers). ONNX Runtime's dynamic quantization pattern (DynamicQuantizeLinear, ConvInteger, Cast, Mul) is
// first folded into a float Conv by compiler/quantized_onnx.cpp, so these are the general case.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- the arithmetic, shared by the reference and the kernels ----
struct Params {
  std::vector<float> scale;
  std::vector<float> zero_point;
  std::int64_t axis = -1;  // -1: per tensor
  float low = 0.0F, high = 255.0F;
  // Quantize: `scale` multiplies instead of dividing (ONNX Runtime's requantization of an integer
  // accumulator: round(acc * x_scale * w_scale / y_scale) + zero point).
  bool multiply = false;
};

Params params_of(const ir::Node& node) {
  Params p;
  p.scale = node.attrs.at("scale").get<std::vector<float>>();
  p.zero_point = node.attrs.at("zero_point").get<std::vector<float>>();
  p.axis = node.attrs.value("axis", std::int64_t{-1});
  p.low = node.attrs.value("low", 0.0F);
  p.high = node.attrs.value("high", 255.0F);
  p.multiply = node.attrs.value("multiply", false);
  return p;
}

// The channel of flat index i: per tensor 0, per axis (i / inner) % length.
struct ChannelOf {
  std::int64_t inner = 1, length = 1;
  bool per_tensor = true;
  std::size_t operator()(std::size_t i) const {
    if (per_tensor) return 0;
    return static_cast<std::size_t>((static_cast<std::int64_t>(i) / inner) % length);
  }
};

ChannelOf channel_of(const Shape& shape, std::int64_t axis) {
  if (axis < 0) return {};
  const AxisSplit split = split_at_axis(shape, static_cast<std::size_t>(axis));
  return {split.inner, split.axis, false};
}

// ONNX QuantizeLinear: saturate(round(x / scale) + zero_point), rounding half to even (nearbyint in the
// default rounding mode), as ONNX Runtime's MLAS does (a division, not a multiplication by 1 / scale).
float quantize_one(float x, float scale, float zero_point, float low, float high, bool multiply = false) {
  const float q = std::nearbyint(multiply ? x * scale : x / scale) + zero_point;
  return std::isnan(q) ? low : std::min(std::max(q, low), high);
}

void quantize_plain(const float* x, float* y, std::size_t count, const ChannelOf& channel, const Params& p) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t c = channel(i);
    y[i] = quantize_one(x[i], p.scale[c], p.zero_point[c], p.low, p.high, p.multiply);
  }
}

void dequantize_plain(const float* x, float* y, std::size_t count, const ChannelOf& channel,
                      const Params& p) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t c = channel(i);
    y[i] = (x[i] - p.zero_point[c]) * p.scale[c];
  }
}

// ONNX DynamicQuantizeLinear (uint8): the range widened to hold 0, scale = range / 255, zero point =
// saturate(round(-min / scale)). A constant tensor (range 0) gets scale 1, as ONNX Runtime does, where the
// formula would divide by zero.
void dynamic_quantize_plain(const float* x, std::size_t count, float* y, float* scale, float* zero_point) {
  float low = 0.0F, high = 0.0F;
  for (std::size_t i = 0; i < count; ++i) {
    low = std::min(low, x[i]);
    high = std::max(high, x[i]);
  }
  const float s = high > low ? (high - low) / 255.0F : 1.0F;
  const float zp = std::min(std::max(std::nearbyint(-low / s), 0.0F), 255.0F);
  for (std::size_t i = 0; i < count; ++i) y[i] = quantize_one(x[i], s, zp, 0.0F, 255.0F);
  *scale = s;
  *zero_point = zp;
}

// ---- import ----
// The representable range of an ONNX integer element type; unsupported names the input.
std::pair<float, float> range_of(ImportContext& ctx, std::int32_t type, const std::string& what) {
  switch (type) {
    case onnx::TensorProto_DataType_UINT8:
      return {0.0F, 255.0F};
    case onnx::TensorProto_DataType_INT8:
      return {-128.0F, 127.0F};
    case onnx::TensorProto_DataType_UINT16:
      return {0.0F, 65535.0F};
    case onnx::TensorProto_DataType_INT16:
      return {-32768.0F, 32767.0F};
    default:
      break;
  }
  ctx.unsupported(fmt::format("{} has element type {} (only 8- and 16-bit integers)", what, type));
  return {};  // not reached: unsupported throws
}

std::vector<float> floats_of(const Constant& c) { return {c.values.begin(), c.values.end()}; }

// The scale (input `scale_input`, a constant) and zero point (`zero_point_input`, optional: 0) of a
// quantized tensor of rank `rank`; per axis when the scale has more than one value.
Params quant_params(ImportContext& ctx, int scale_input, int zero_point_input, std::size_t rank) {
  constexpr std::int64_t default_axis = 1;
  const Constant* scale = ctx.const_input(scale_input);
  if (scale == nullptr) ctx.unsupported(fmt::format("missing scale (input {})", scale_input));
  if (attribute_int(ctx.node(), "block_size", 0) != 0) ctx.unsupported("blocked quantization (block_size)");
  Params p;
  p.scale = floats_of(*scale);
  if (p.scale.empty()) ctx.unsupported("an empty scale");
  for (float s : p.scale) {
    if (!(s > 0.0F) || !std::isfinite(s)) ctx.unsupported(fmt::format("a scale of {} (must be positive)", s));
  }
  if (const Constant* zp = ctx.const_input(zero_point_input)) {
    p.zero_point = floats_of(*zp);
    if (p.zero_point.size() != p.scale.size())
      ctx.unsupported(fmt::format("{} zero points for {} scales", p.zero_point.size(), p.scale.size()));
  } else {
    p.zero_point.assign(p.scale.size(), 0.0F);
  }
  if (p.scale.size() > 1) p.axis = ctx.normalize_axis(attribute_int(ctx.node(), "axis", default_axis), rank);
  return p;
}

nlohmann::json attrs_of(const Params& p) {
  nlohmann::json attrs = {
      {"scale", p.scale}, {"zero_point", p.zero_point}, {"axis", p.axis}, {"low", p.low}, {"high", p.high}};
  if (p.multiply) attrs["multiply"] = true;
  return attrs;
}

// The element type of a quantized output: its zero point input's, else the output_dtype attribute (opset 21),
// else uint8 (ONNX's default).
std::int32_t quantized_type(ImportContext& ctx, int zero_point_input) {
  if (ctx.has_input(zero_point_input)) return ctx.elem_type_of(ctx.node().input(zero_point_input));
  const auto declared = attribute_int(ctx.node(), "output_dtype", 0);
  return declared != 0 ? static_cast<std::int32_t>(declared) : onnx::TensorProto_DataType_UINT8;
}

int emit_quantize(ImportContext& ctx, int x, Params p, std::int32_t type, const std::string& out) {
  std::tie(p.low, p.high) = range_of(ctx, type, "the output zero point");
  return ctx.emit1("Quantize", {x}, attrs_of(p), out);
}

int emit_dequantize(ImportContext& ctx, int x, const Params& p, const std::string& out) {
  return ctx.emit1("Dequantize", {x}, attrs_of(p), out);
}

// Input `x_input` dequantized with the scale and zero point of inputs `scale_input` and `zero_point_input`:
// a Dequantize node, or for a constant a constant tensor of the dequantized values.
// `rank`: a constant's shape is padded with leading 1s to it (a bias [K] added to [N, K]: the Binary lowering
// wants equal ranks where the volumes match).
int dequantized_input(ImportContext& ctx, int x_input, int scale_input, int zero_point_input,
                      const std::string& suffix, std::size_t rank = 0) {
  const std::string& name = ctx.node().input(x_input);
  if (const Constant* c = ctx.constant_of(name)) {
    Shape shape = c->shape;
    while (shape.size() < rank) shape.insert(shape.begin(), 1);
    const Params p = quant_params(ctx, scale_input, zero_point_input, c->shape.size());
    if (p.scale.size() != 1) ctx.unsupported("a constant operand quantized per axis");
    std::vector<float> values(c->values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = (static_cast<float>(c->values[i]) - p.zero_point[0]) * p.scale[0];
    return ctx.constant_tensor(name + suffix, shape, std::move(values));
  }
  const int x = ctx.tensor_of(name);
  return emit_dequantize(ctx, x, quant_params(ctx, scale_input, zero_point_input, ctx.shape_of(x).size()),
                         ctx.output() + suffix);
}

void import_quantize_linear(ImportContext& ctx) {
  const int x = ctx.activation_input(0);
  const Params p = quant_params(ctx, 1, 2, ctx.shape_of(x).size());
  if (attribute_int(ctx.node(), "saturate", 1) == 0) ctx.unsupported("saturate = 0");
  ctx.set_activation(ctx.output(), emit_quantize(ctx, x, p, quantized_type(ctx, 2), ctx.output()));
}

void import_dequantize_linear(ImportContext& ctx) {
  const int x = ctx.activation_input(0);
  const Params p = quant_params(ctx, 1, 2, ctx.shape_of(x).size());
  ctx.set_activation(ctx.output(), emit_dequantize(ctx, x, p, ctx.output()));
}

void import_dynamic_quantize_linear(ImportContext& ctx) {
  const int x = ctx.activation_input(0);
  const onnx::NodeProto& node = ctx.node();
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) names.push_back(i < node.output_size() ? node.output(i) : "");
  for (int i = 0; i < 3; ++i) {
    if (names[static_cast<std::size_t>(i)].empty())
      names[static_cast<std::size_t>(i)] = fmt::format("{}/unused_{}", ctx.node_name(), i);
  }
  const auto outputs = ctx.emit("DynamicQuantize", {x}, nlohmann::json::object(), names);
  for (int i = 0; i < node.output_size() && i < 3; ++i) {
    if (!node.output(i).empty()) ctx.set_activation(node.output(i), outputs[static_cast<std::size_t>(i)]);
  }
}

// x - zero point of an integer operand (ConvInteger, MatMulInteger): the zero point a constant (per tensor)
// or an activation (DynamicQuantizeLinear's, a scalar).
int minus_zero_point(ImportContext& ctx, int x_input, int zero_point_input, const std::string& suffix) {
  const int x = ctx.activation_input(x_input);
  if (!ctx.has_input(zero_point_input)) return x;
  const std::string& name = ctx.node().input(zero_point_input);
  if (const Constant* zp = ctx.constant_of(name)) {
    if (zp->values.size() != 1) ctx.unsupported("an activation zero point per axis");
    if (zp->values[0] == 0.0) return x;
    Params p;
    p.scale = {1.0F};
    p.zero_point = {static_cast<float>(zp->values[0])};
    return emit_dequantize(ctx, x, p, ctx.output() + suffix);
  }
  const int zp = ctx.tensor_of(name);
  if (shape_volume(ctx.shape_of(zp)) != 1) ctx.unsupported("an activation zero point per axis");
  return ctx.emit1("Binary", {x, zp}, {{"alg", "sub"}}, ctx.output() + suffix);
}

// Constant weights w [M, ...] minus their zero point (per tensor or per output channel M), times their
// scale (likewise; nullptr: 1).
std::vector<float> dequantized_weights(ImportContext& ctx, const Constant& w, const Constant* zero_point,
                                       const Constant* scale, std::size_t channel_axis) {
  const Shape& shape = w.shape;
  if (shape.empty()) ctx.unsupported("scalar weights");
  const auto channels = static_cast<std::size_t>(shape[channel_axis]);
  auto per_channel = [&](const Constant* c, const char* what) {
    std::vector<float> values(channels, 0.0F);
    if (c == nullptr) return values;
    if (c->values.size() == 1) {
      std::fill(values.begin(), values.end(), static_cast<float>(c->values[0]));
    } else if (c->values.size() == channels) {
      values.assign(c->values.begin(), c->values.end());
    } else {
      ctx.unsupported(
          fmt::format("a weight {} of {} values for {} channels", what, c->values.size(), channels));
    }
    return values;
  };
  const auto zp = per_channel(zero_point, "zero point");
  auto s = per_channel(scale, "scale");
  if (scale == nullptr) std::fill(s.begin(), s.end(), 1.0F);
  const ChannelOf channel = channel_of(shape, static_cast<std::int64_t>(channel_axis));
  std::vector<float> values(w.values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::size_t c = channel(i);
    values[i] = (static_cast<float>(w.values[i]) - zp[c]) * s[c];
  }
  return values;
}

// A 2-D convolution of `x` with constant weights (the node's attributes: strides, pads, dilations, group).
int emit_conv(ImportContext& ctx, int x, const Shape& w_shape, std::vector<float> weights,
              std::optional<std::vector<float>> bias, const std::string& out) {
  const onnx::NodeProto& node = ctx.node();
  const Shape x_shape = ctx.shape_of(x);
  if (x_shape.size() != 4 || w_shape.size() != 4) ctx.unsupported("only 2-D convolution (4-D tensors)");
  if (auto kernel = attribute_ints(node, "kernel_shape");
      kernel && *kernel != std::vector<std::int64_t>{w_shape[2], w_shape[3]}) {
    ctx.unsupported("kernel_shape does not match the weights");
  }
  const auto strides = ctx.spatial_attr("strides", 1, 2);
  const auto dilations = ctx.spatial_attr("dilations", 1, 2);
  const auto pads = ctx.window_pads(x_shape, {w_shape[2], w_shape[3]}, strides, dilations);
  std::vector<int> inputs{x, ctx.constant_tensor(out + "/weights", w_shape, std::move(weights)), -1};
  if (bias) inputs[2] = ctx.constant_tensor(out + "/bias", {w_shape[0]}, std::move(*bias));
  return ctx.emit1("Conv", inputs,
                   {{"strides", strides},
                    {"pads", pads},
                    {"dilations", dilations},
                    {"group", attribute_int(node, "group", 1)},
                    {"post_ops", nlohmann::json::array()}},
                   out);
}

void import_conv_integer(ImportContext& ctx) {
  const Constant* w = ctx.const_input(1);
  if (w == nullptr) ctx.unsupported("missing weights");
  const int x = minus_zero_point(ctx, 0, 2, "/x_centered");
  auto weights = dequantized_weights(ctx, *w, ctx.const_input(3), nullptr, 0);
  ctx.set_activation(ctx.output(),
                     emit_conv(ctx, x, w->shape, std::move(weights), std::nullopt, ctx.output()));
}

// B [K, N] constant: its columns are the channels (axis 1) of a per-axis scale or zero point.
int matmul_constant(ImportContext& ctx, int a, const Constant& b, std::vector<float> values,
                    const std::string& out) {
  const Shape a_shape = ctx.shape_of(a);
  if (a_shape.size() < 2 || b.shape.size() != 2 || a_shape.back() != b.shape[0])
    ctx.unsupported(fmt::format("only [..., K] x [K, N] with a constant B (A {}, B {})",
                                shape_to_string(a_shape), shape_to_string(b.shape)));
  const int bt = ctx.constant_tensor(out + "/b", b.shape, std::move(values));
  return ctx.emit1("MatMul", {a, bt}, nlohmann::json::object(), out);
}

void import_matmul_integer(ImportContext& ctx) {
  const Constant* b = ctx.const_input(1);
  if (b == nullptr) ctx.unsupported("missing B");
  if (b->shape.size() != 2) ctx.unsupported("only a 2-D constant B");
  const int a = minus_zero_point(ctx, 0, 2, "/a_centered");
  auto values = dequantized_weights(ctx, *b, ctx.const_input(3), nullptr, 1);
  ctx.set_activation(ctx.output(), matmul_constant(ctx, a, *b, std::move(values), ctx.output()));
}

// ONNX Runtime computes QLinearConv in integers: acc = sum((x - x_zp) (w - w_zp)) + bias, then
// y = round(acc * (x_scale * w_scale[m] / y_scale)) + y_zp. The same here, in float on integer values (exact
// while the sums stay below 2^24), so that the 8-bit roundings fall where ORT's do: a float convolution of
// dequantized values rounds differently in the last bits, and over 50 layers those flips add up to several
// quantization steps of the logits.
void import_qlinear_conv(ImportContext& ctx) {
  const Constant* w = ctx.const_input(3);
  if (w == nullptr) ctx.unsupported("missing weights");
  const int x = minus_zero_point(ctx, 0, 2, "/x_centered");
  const Params x_params = quant_params(ctx, 1, 2, 4);
  const Constant* w_scale = ctx.const_input(4);
  auto weights = dequantized_weights(ctx, *w, ctx.const_input(5), nullptr, 0);
  std::optional<std::vector<float>> bias;
  const auto channels = static_cast<std::size_t>(w->shape.at(0));
  if (const Constant* b = ctx.const_input(8)) {
    if (b->values.size() != channels) ctx.unsupported("a bias that is not one value per output channel");
    bias.emplace(b->values.begin(), b->values.end());
  }
  const std::string& out = ctx.output();
  const int acc = emit_conv(ctx, x, w->shape, std::move(weights), std::move(bias), out + "/accumulator");
  Params p = quant_params(ctx, 6, 7, 4);
  if (w_scale == nullptr || (w_scale->values.size() != 1 && w_scale->values.size() != channels))
    ctx.unsupported("a weight scale that is not per tensor or per output channel");
  // x_scale * w_scale[m] / y_scale in float, left to right, as ORT computes its output scales.
  std::vector<float> multiplier(channels);
  for (std::size_t m = 0; m < channels; ++m) {
    const auto ws = static_cast<float>(w_scale->values.size() == 1 ? w_scale->values[0] : w_scale->values[m]);
    multiplier[m] = x_params.scale.at(0) * ws / p.scale.at(0);
  }
  p.scale = std::move(multiplier);
  p.zero_point.assign(channels, p.zero_point.at(0));
  p.axis = 1;
  p.multiply = true;
  ctx.set_activation(out, emit_quantize(ctx, acc, p, quantized_type(ctx, 7), out));
}

void import_qlinear_matmul(ImportContext& ctx) {
  const Constant* b = ctx.const_input(3);
  if (b == nullptr) ctx.unsupported("missing B");
  if (b->shape.size() != 2) ctx.unsupported("only a 2-D constant B");
  const int a = dequantized_input(ctx, 0, 1, 2, "/a_dequantized");
  auto values = dequantized_weights(ctx, *b, ctx.const_input(5), ctx.const_input(4), 1);
  const std::string& out = ctx.output();
  const int y = matmul_constant(ctx, a, *b, std::move(values), out + "/float");
  const Params p = quant_params(ctx, 6, 7, ctx.shape_of(y).size());
  ctx.set_activation(out, emit_quantize(ctx, y, p, quantized_type(ctx, 7), out));
}

void import_qlinear_add(ImportContext& ctx) {
  // The operands' ranks, so that a constant one gets the other's (numpy broadcasting aligns trailing axes).
  std::size_t rank = 0;
  for (int i : {0, 3}) {
    const std::string& name = ctx.node().input(i);
    const Constant* c = ctx.constant_of(name);
    rank = std::max(rank, c != nullptr ? c->shape.size() : ctx.shape_of(ctx.tensor_of(name)).size());
  }
  const int a = dequantized_input(ctx, 0, 1, 2, "/a_dequantized", rank);
  const int b = dequantized_input(ctx, 3, 4, 5, "/b_dequantized", rank);
  const std::string& out = ctx.output();
  const int sum = ctx.emit1("Binary", {a, b}, {{"alg", "add"}}, out + "/float");
  const Params p = quant_params(ctx, 6, 7, ctx.shape_of(sum).size());
  ctx.set_activation(out, emit_quantize(ctx, sum, p, quantized_type(ctx, 7), out));
}

void import_qlinear_global_average_pool(ImportContext& ctx) {
  if (attribute_int(ctx.node(), "channels_last", 0) != 0) ctx.unsupported("channels_last = 1");
  const int x = dequantized_input(ctx, 0, 1, 2, "/x_dequantized");
  const Shape s = ctx.shape_of(x);
  if (s.size() != 4) ctx.unsupported("only 4-D inputs");
  const std::string& out = ctx.output();
  const int y = ctx.emit1(
      "AveragePool", {x},
      {{"kernel", {s[2], s[3]}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}, {"count_include_pad", 0}},
      out + "/float");
  const Params p = quant_params(ctx, 3, 4, 4);
  ctx.set_activation(out, emit_quantize(ctx, y, p, quantized_type(ctx, 4), out));
}

// ---- shapes ----
std::vector<Shape> quantize_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const Params p = params_of(node);
  if (p.scale.empty() || p.scale.size() != p.zero_point.size())
    fail("node '{}' ({}): {} scales and {} zero points", node.name, node.op, p.scale.size(),
         p.zero_point.size());
  if (p.axis >= 0) {
    const auto axis = static_cast<std::size_t>(normalized_axis(node, p.axis, x.size()));
    if (static_cast<std::int64_t>(p.scale.size()) != x[axis])
      fail("node '{}' ({}): {} scales for axis {} of {}", node.name, node.op, p.scale.size(), axis,
           shape_to_string(x));
  } else if (p.scale.size() != 1) {
    fail("node '{}' ({}): {} scales without an axis", node.name, node.op, p.scale.size());
  }
  return {x};
}

std::vector<Shape> dynamic_quantize_shapes(const ir::Graph& graph, const ir::Node& node) {
  return {input_shape(graph, node, 0), Shape{}, Shape{}};
}

// ---- reference ----
void quantize_reference(ReferenceContext& ctx, const ir::Node& node) {
  const Params p = params_of(node);
  const auto& x = ctx.in(node, 0);
  auto& y = ctx.out(node, 0);
  const ChannelOf channel = channel_of(ctx.in_shape(node, 0), p.axis);
  if (node.op == "Quantize") {
    quantize_plain(x.data(), y.data(), x.size(), channel, p);
  } else {
    dequantize_plain(x.data(), y.data(), x.size(), channel, p);
  }
}

void dynamic_quantize_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  float* y = ctx.out(node, 0).data();
  float* scale = ctx.out(node, 1).data();
  dynamic_quantize_plain(x.data(), x.size(), y, scale, ctx.out(node, 2).data());
}

// ---- lowering: plain kernels on dense f32 ----
void lower_quantize(Lowering& l, const ir::Node& node) {
  const Params p = params_of(node);
  const Shape shape = l.shape(node.inputs.at(0));
  const ChannelOf channel = channel_of(shape, p.axis);
  const auto count = static_cast<std::size_t>(shape_volume(shape));
  const bool quantize = node.op == "Quantize";
  // Per tensor, the arithmetic ignores where an element sits: keep the layout the producer wrote (an int8
  // convolution's channels-last u8, converted to f32 in place) instead of transposing to NCHW and back
  // around every QLinearAdd (mobilenetv2-int8: up to 0.1 ms per transposing reorder, against 0.002-0.01 ms
  // for the same-layout conversion). Per channel needs NCHW to find the channel.
  int src = -1;
  if (p.axis < 0) {
    const int as_produced = l.float_value(node.inputs.at(0));  // f32 in the producer's plain permutation
    const memory::desc& md = l.value(as_produced).md;
    if (Lowering::tag_of(md) && md.get_size() == count * sizeof(float)) src = as_produced;
  }
  const memory::desc dst_md = src >= 0 ? l.value(src).md : plain_md(l.shape(node.outputs.at(0)));
  if (src < 0) src = l.plain_value(node.inputs.at(0));  // per channel, or a blocked layout
  const int dst = l.define_output(node.outputs.at(0), dst_md);
  l.add_kernel(
      [p, channel, count, quantize](const std::vector<void*>& data) {
        const auto* x = static_cast<const float*>(data[0]);
        auto* y = static_cast<float*>(data[1]);
        if (quantize) {
          quantize_plain(x, y, count, channel, p);
        } else {
          dequantize_plain(x, y, count, channel, p);
        }
      },
      {src, dst});
}

void lower_dynamic_quantize(Lowering& l, const ir::Node& node) {
  const auto count = static_cast<std::size_t>(shape_volume(l.shape(node.inputs.at(0))));
  const int src = l.plain_value(node.inputs.at(0));
  const int y = l.define_output(node.outputs.at(0), plain_md(l.shape(node.outputs.at(0))));
  const int scale = l.define_output(node.outputs.at(1), plain_md(Shape{}));
  const int zero_point = l.define_output(node.outputs.at(2), plain_md(Shape{}));
  l.add_kernel(
      [count](const std::vector<void*>& data) {
        dynamic_quantize_plain(static_cast<const float*>(data[0]), count, static_cast<float*>(data[1]),
                               static_cast<float*>(data[2]), static_cast<float*>(data[3]));
      },
      {src, y, scale, zero_point});
}

}  // namespace

void register_quantize(Registry& registry) {
  registry.add({"Quantize", quantize_shapes, quantize_reference, lower_quantize});
  registry.add({"Dequantize", quantize_shapes, quantize_reference, lower_quantize});
  registry.add(
      {"DynamicQuantize", dynamic_quantize_shapes, dynamic_quantize_reference, lower_dynamic_quantize});
  registry.add_onnx("QuantizeLinear", import_quantize_linear);
  registry.add_onnx("DequantizeLinear", import_dequantize_linear);
  registry.add_onnx("DynamicQuantizeLinear", import_dynamic_quantize_linear);
  registry.add_onnx("ConvInteger", import_conv_integer);
  registry.add_onnx("MatMulInteger", import_matmul_integer);
  registry.add_onnx("QLinearConv", import_qlinear_conv);
  registry.add_onnx("QLinearMatMul", import_qlinear_matmul);
  // com.microsoft contrib ops (onnx_importer.cpp accepts that domain for these two).
  registry.add_onnx("QLinearAdd", import_qlinear_add);
  registry.add_onnx("QLinearGlobalAveragePool", import_qlinear_global_average_pool);
}

}  // namespace vapipe::ops
