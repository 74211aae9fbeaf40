#include "compiler/precision.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <vector>

#include "compiler/graph_passes.hpp"
#include "core/error.hpp"

namespace vapipe::compiler {
namespace {

using ir::Graph;
using ir::Node;

// Ops that move values without arithmetic: a quantized tensor passes through them unchanged (same
// integers, same scale), so their inputs and outputs form one scale group. The conditions mirror what the
// runtime runs on oneDNN in any data type (its f32-only plain kernels are excluded).
bool passes_through(const Graph& graph, const Node& node) {
  const std::string& op = node.op;
  if (op == "MaxPool" || op == "Concat" || op == "Split" || op == "Reshape") return true;
  if (op == "Slice") {
    const auto steps = node.attrs.value("steps", std::vector<std::int64_t>{});
    return std::all_of(steps.begin(), steps.end(), [](std::int64_t s) { return s == 1; });
  }
  if (op == "Resize") {
    const Shape& in = graph.tensors[static_cast<std::size_t>(node.inputs.at(0))].shape;
    const Shape& out = graph.tensors[static_cast<std::size_t>(node.outputs.at(0))].shape;
    const std::string coordinates =
        node.attrs.value("coordinate_transformation_mode", std::string("asymmetric"));
    bool integer_upscale = in.size() == 4 && out.size() == 4 && in[0] == out[0] && in[1] == out[1];
    for (std::size_t d = 2; d < in.size() && integer_upscale; ++d)
      integer_upscale = out[d] >= in[d] && out[d] % in[d] == 0;
    return integer_upscale && node.attrs.value("mode", std::string("nearest")) == "nearest" &&
           coordinates != "align_corners" && coordinates != "tf_crop_and_resize";
  }
  return false;
}

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int i) {
    while (parent[static_cast<std::size_t>(i)] != i) {
      parent[static_cast<std::size_t>(i)] =
          parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(i)])];
      i = parent[static_cast<std::size_t>(i)];
    }
    return i;
  }
  void join(int a, int b) { parent[static_cast<std::size_t>(find(a))] = find(b); }
};

class PrecisionPass {
 public:
  PrecisionPass(Graph& graph, const PrecisionOptions& options)
      : graph_(graph), options_(options), int8_(options.precision == "int8") {
    const std::size_t count = graph.tensors.size();
    producer_.assign(count, -1);
    for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
      for (int output : graph.nodes[n].outputs)
        producer_[static_cast<std::size_t>(output)] = static_cast<int>(n);
    }
    boundary_.assign(count, false);
    for (int t : graph.inputs) boundary_[static_cast<std::size_t>(t)] = true;
    for (int t : graph.outputs) boundary_[static_cast<std::size_t>(t)] = true;
  }

  std::size_t run() {
    choose_nodes();
    choose_tensors();
    if (int8_) assign_scales();
    std::size_t converted = 0;
    for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
      if (!low_node_[n]) continue;
      rewrite_conv(graph_.nodes[n]);
      ++converted;
    }
    const DType low_type = int8_ ? DType::kS8 : DType::kBF16;
    for (std::size_t t = 0; t < low_.size(); ++t) {
      if (low_[t]) graph_.tensors[t].dtype = low_type;
    }
    eliminate_dead_code(graph_);  // the f32 weights replaced by s8 ones
    return converted;
  }

 private:
  const TensorRange* range_of(int tensor) const {
    const auto found = options_.ranges.find(graph_.tensors[static_cast<std::size_t>(tensor)].name);
    if (found == options_.ranges.end() || !(found->second.threshold > 0.0F)) return nullptr;
    return &found->second;
  }

  void choose_nodes() {
    low_node_.assign(graph_.nodes.size(), false);
    for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
      const Node& node = graph_.nodes[n];
      if (node.op != "Conv" || options_.keep_float.count(node.name) != 0) continue;
      const auto& weights = graph_.tensors[static_cast<std::size_t>(node.inputs.at(1))];
      if (!weights.is_constant() || weights.dtype != DType::kF32 || weights.shape.size() != 4) continue;
      // int8 needs the input's range to quantize it; without calibration data the layer stays float.
      if (int8_ && range_of(node.inputs[0]) == nullptr) continue;
      if (int8_ && !options_.quantize_outputs && boundary_[static_cast<std::size_t>(node.outputs.at(0))])
        continue;
      low_node_[n] = true;
    }
  }

  // A tensor is stored low when its producer makes it low (a low conv or a pass-through of low tensors)
  // and every consumer takes it low; demotions propagate until nothing changes.
  void choose_tensors() {
    const std::size_t count = graph_.tensors.size();
    low_.assign(count, false);
    for (std::size_t t = 0; t < count; ++t) {
      const int p = producer_[t];
      if (p < 0 || boundary_[t] || graph_.tensors[t].is_constant()) continue;
      if (int8_ && range_of(static_cast<int>(t)) == nullptr) continue;
      low_[t] = low_node_[static_cast<std::size_t>(p)] ||
                passes_through(graph_, graph_.nodes[static_cast<std::size_t>(p)]);
    }
    bool changed = true;
    auto demote = [&](int t) {
      if (t >= 0 && low_[static_cast<std::size_t>(t)]) {
        low_[static_cast<std::size_t>(t)] = false;
        changed = true;
      }
    };
    while (changed) {
      changed = false;
      for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
        const Node& node = graph_.nodes[n];
        if (low_node_[n]) {
          for (std::size_t slot = 0; slot < node.inputs.size(); ++slot) {
            if (slot == 1 || slot == 2) demote(node.inputs[slot]);  // weights and bias stay as they are
          }
          // The sum post-op reads its addend in the output's data type.
          if (node.inputs.size() > 3 && node.inputs[3] >= 0) {
            const int addend = node.inputs[3];
            const int output = node.outputs[0];
            if (low_[static_cast<std::size_t>(addend)] != low_[static_cast<std::size_t>(output)]) {
              demote(addend);
              demote(output);
            }
          }
        } else if (passes_through(graph_, node)) {
          bool all_low = true;
          for (int t : node.inputs) all_low = all_low && t >= 0 && low_[static_cast<std::size_t>(t)];
          for (int t : node.outputs) all_low = all_low && low_[static_cast<std::size_t>(t)];
          if (!all_low) {
            for (int t : node.inputs) demote(t);
            for (int t : node.outputs) demote(t);
          }
        } else {
          for (int t : node.inputs) demote(t);  // float-only consumer
        }
      }
    }
  }

  // Tensors joined by pass-through nodes share one scale: the widest threshold of the group (a Concat's
  // output covers all its inputs), so the integers are copied, never rescaled.
  void assign_scales() {
    UnionFind groups(graph_.tensors.size());
    for (const Node& node : graph_.nodes) {
      if (!passes_through(graph_, node) || node.outputs.empty() ||
          !low_[static_cast<std::size_t>(node.outputs[0])])
        continue;
      for (int t : node.inputs) groups.join(t, node.outputs[0]);
      for (int t : node.outputs) groups.join(t, node.outputs[0]);
    }
    std::map<int, float> threshold;
    for (std::size_t t = 0; t < low_.size(); ++t) {
      if (!low_[t]) continue;
      float& group = threshold[groups.find(static_cast<int>(t))];
      group = std::max(group, range_of(static_cast<int>(t))->threshold);
    }
    for (std::size_t t = 0; t < low_.size(); ++t) {
      if (low_[t]) graph_.tensors[t].scale = threshold[groups.find(static_cast<int>(t))] / 127.0F;
    }
  }

  void rewrite_conv(Node& node) {
    if (!int8_) {
      node.attrs["precision"] = "bf16";
      return;
    }
    const int x = node.inputs[0];
    node.attrs["precision"] = "int8";
    if (!low_[static_cast<std::size_t>(x)]) {
      // An f32 input is quantized by the convolution: u8 when it is never negative (an image: 255 steps
      // instead of 127), s8 otherwise.
      const TensorRange& range = *range_of(x);
      const bool unsigned_input = range.min >= 0.0F;
      node.attrs["input_type"] = unsigned_input ? "u8" : "s8";
      node.attrs["input_scale"] = range.threshold / (unsigned_input ? 255.0F : 127.0F);
    } else {
      node.attrs["input_type"] = "s8";
      node.attrs["input_scale"] = graph_.tensors[static_cast<std::size_t>(x)].scale;
    }
    const ir::Tensor& weights = graph_.tensors[static_cast<std::size_t>(node.inputs[1])];
    std::vector<std::int8_t> q;
    std::vector<float> scales;
    quantize_weights(weights.data->as<float>(), static_cast<std::size_t>(weights.shape[0]), q, scales);
    ir::Tensor quantized;
    quantized.name = weights.name + ".s8";
    quantized.dtype = DType::kS8;
    quantized.shape = weights.shape;
    quantized.data = ir::ConstBytes::from_vector(std::move(q));
    node.attrs["weight_scales"] = scales;
    node.inputs[1] = graph_.add_tensor(std::move(quantized));
  }

  Graph& graph_;
  const PrecisionOptions& options_;
  bool int8_;
  std::vector<int> producer_;
  std::vector<bool> boundary_;
  std::vector<bool> low_node_;
  std::vector<bool> low_;
};

}  // namespace

void quantize_weights(std::span<const float> weights, std::size_t out_channels, std::vector<std::int8_t>& q,
                      std::vector<float>& scales) {
  if (out_channels == 0 || weights.size() % out_channels != 0)
    fail("quantize_weights: {} weights do not split into {} output channels", weights.size(), out_channels);
  const std::size_t per_channel = weights.size() / out_channels;
  q.resize(weights.size());
  scales.assign(out_channels, 1.0F);
  for (std::size_t o = 0; o < out_channels; ++o) {
    const auto channel = weights.subspan(o * per_channel, per_channel);
    float max_abs = 0.0F;
    for (float w : channel) max_abs = std::max(max_abs, std::fabs(w));
    if (max_abs > 0.0F) scales[o] = max_abs / 127.0F;
    for (std::size_t i = 0; i < per_channel; ++i) {
      const float v = std::nearbyint(channel[i] / scales[o]);
      q[o * per_channel + i] = static_cast<std::int8_t>(std::clamp(v, -127.0F, 127.0F));
    }
  }
}

namespace {

// The integers [low, high] a Quantize node writes.
struct IntegerRange {
  float low = 0.0F, high = 0.0F;
  bool is_u8() const { return low == 0.0F && high == 255.0F; }
  bool is_s8() const { return low == -128.0F && high == 127.0F; }
};

std::optional<IntegerRange> quantize_range(const Node& node) {
  if (node.op != "Quantize") return std::nullopt;
  IntegerRange r{node.attrs.value("low", 0.0F), node.attrs.value("high", 255.0F)};
  if (!r.is_u8() && !r.is_s8()) return std::nullopt;
  return r;
}

// One value of a per-tensor or all-equal per-channel attribute list (a zero point), nullopt otherwise.
std::optional<float> single_value(const nlohmann::json& attrs, const char* name) {
  const auto values = attrs.value(name, std::vector<float>{});
  if (values.empty() ||
      std::any_of(values.begin(), values.end(), [&](float v) { return v != values.front(); }))
    return std::nullopt;
  return values.front();
}

bool all_integers_within(std::span<const float> values, float low, float high) {
  return std::all_of(values.begin(), values.end(),
                     [&](float v) { return v >= low && v <= high && std::nearbyint(v) == v; });
}

}  // namespace

std::size_t convert_integer_convolutions(ir::Graph& graph, const std::set<std::string>& keep_float,
                                         std::size_t* total) {
  std::vector<int> producer(graph.tensors.size(), -1);
  std::vector<int> readers(graph.tensors.size(), 0);
  // Tensors read by an op other than Conv and Dequantize: the pass-through ops (MaxPool, Reshape, Concat,
  // ...) keep their input's data type, which would hand a u8 value to a tensor declared f32 without a scale.
  // Conv (float or integer) and Dequantize convert what they read.
  std::vector<bool> read_as_is(graph.tensors.size(), false);
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    const Node& node = graph.nodes[n];
    for (int t : node.outputs) producer[static_cast<std::size_t>(t)] = static_cast<int>(n);
    for (int t : node.inputs) {
      if (t < 0) continue;
      ++readers[static_cast<std::size_t>(t)];
      if (node.op != "Conv" && node.op != "Dequantize") read_as_is[static_cast<std::size_t>(t)] = true;
    }
  }
  std::vector<bool> graph_output(graph.tensors.size(), false);
  for (int t : graph.outputs) graph_output[static_cast<std::size_t>(t)] = true;
  const auto producer_of = [&](int t) -> Node* {
    const int p = t < 0 ? -1 : producer[static_cast<std::size_t>(t)];
    return p < 0 ? nullptr : &graph.nodes[static_cast<std::size_t>(p)];
  };
  std::size_t seen = 0, converted = 0;
  std::set<std::size_t> removed;
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    Node& requantize = graph.nodes[n];
    if (requantize.op != "Quantize" || !requantize.attrs.value("multiply", false)) continue;
    const int acc = requantize.inputs.at(0);
    Node* conv = producer_of(acc);
    if (conv == nullptr || conv->op != "Conv") continue;
    ++seen;
    const auto out_range = quantize_range(requantize);
    const auto out_zero_point = single_value(requantize.attrs, "zero_point");
    const int y = requantize.outputs.at(0);
    const bool plain_conv = conv->inputs.size() <= 3 &&
                            conv->attrs.value("post_ops", nlohmann::json::array()).empty() &&
                            !conv->attrs.contains("precision");
    if (!out_range || !out_zero_point || readers[static_cast<std::size_t>(acc)] != 1 ||
        graph_output[static_cast<std::size_t>(acc)] || graph_output[static_cast<std::size_t>(y)] ||
        read_as_is[static_cast<std::size_t>(y)] || !plain_conv || keep_float.count(conv->name) != 0 ||
        requantize.attrs.value("axis", -1) != 1)
      continue;
    // The input: the integers of a Quantize (or a chain converted before), minus a per-tensor zero point.
    int x = conv->inputs.at(0);
    float in_zero_point = 0.0F;
    if (Node* centre = producer_of(x); centre != nullptr && centre->op == "Dequantize") {
      const auto scale = centre->attrs.value("scale", std::vector<float>{});
      const auto zp = single_value(centre->attrs, "zero_point");
      if (scale != std::vector<float>{1.0F} || !zp || readers[static_cast<std::size_t>(x)] != 1) continue;
      in_zero_point = *zp;
      x = centre->inputs.at(0);
    }
    const Node* source = producer_of(x);
    const auto in_range = source != nullptr ? quantize_range(*source) : std::nullopt;
    // oneDNN takes a zero point with u8 sources (checked by LowPrecision.IntegerConvolutions*); s8 ones run
    // without.
    if (!in_range || (in_range->is_s8() && in_zero_point != 0.0F)) continue;
    const ir::Tensor& weights = graph.tensors[static_cast<std::size_t>(conv->inputs.at(1))];
    if (!weights.is_constant() || weights.dtype != DType::kF32 || weights.shape.size() != 4 ||
        !all_integers_within(weights.data->as<float>(), -128.0F, 127.0F))
      continue;
    const int b = conv->inputs.size() > 2 ? conv->inputs[2] : -1;
    if (b >= 0) {
      const ir::Tensor& bias = graph.tensors[static_cast<std::size_t>(b)];
      // The int32 bias in the accumulator, exact in f32 below 2^24 (as ONNX Runtime's float conversion).
      if (!bias.is_constant() || bias.dtype != DType::kF32 ||
          !all_integers_within(bias.data->as<float>(), -16777216.0F, 16777216.0F))
        continue;
    }
    const auto w = weights.data->as<float>();
    ir::Tensor quantized;
    quantized.name = weights.name + ".s8";
    quantized.dtype = DType::kS8;
    quantized.shape = weights.shape;
    quantized.data = ir::ConstBytes::from_vector(std::vector<std::int8_t>(w.begin(), w.end()));
    conv->inputs[0] = x;
    conv->inputs[1] = graph.add_tensor(std::move(quantized));
    conv->outputs[0] = y;
    conv->attrs["precision"] = "int8";
    conv->attrs["integer"] = true;
    conv->attrs["input_type"] = in_range->is_u8() ? "u8" : "s8";
    conv->attrs["input_scale"] = 1.0F;
    conv->attrs["input_zero_point"] = in_zero_point;
    conv->attrs["output_zero_point"] = *out_zero_point;
    conv->attrs["weight_scales"] = requantize.attrs.at("scale");
    ir::Tensor& out = graph.tensors[static_cast<std::size_t>(y)];
    out.dtype = out_range->is_u8() ? DType::kU8 : DType::kS8;
    out.scale = 1.0F;
    removed.insert(n);
    ++converted;
  }
  if (total != nullptr) *total = seen;
  if (converted == 0) return 0;
  std::vector<Node> kept;
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    if (removed.count(n) == 0) kept.push_back(std::move(graph.nodes[n]));
  }
  graph.nodes = std::move(kept);
  eliminate_dead_code(graph);  // the input Dequantize nodes, the accumulators and the f32 weights
  return converted;
}

std::size_t apply_precision(ir::Graph& graph, const PrecisionOptions& options) {
  if (options.precision != "f32" && options.precision != "int8" && options.precision != "bf16")
    fail("unknown precision '{}' (expected f32, int8 or bf16)", options.precision);
  for (const auto& name : options.keep_float) {
    const bool found = std::any_of(graph.nodes.begin(), graph.nodes.end(),
                                   [&](const Node& node) { return node.name == name; });
    if (!found)
      fail("--keep-float '{}': the compiled graph has no node of that name (see vapipe info --layers)", name);
  }
  if (options.precision == "f32") return 0;
  return PrecisionPass(graph, options).run();
}

}  // namespace vapipe::compiler
