#include "compiler/quantized_onnx.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"

namespace vapipe::compiler {
namespace {

class Index {
 public:
  explicit Index(const onnx::GraphProto& graph) : graph_(graph) {
    for (int i = 0; i < graph.node_size(); ++i) {
      for (const auto& output : graph.node(i).output()) producer_[output] = i;
      for (const auto& input : graph.node(i).input()) readers_[input].push_back(i);
    }
    for (int i = 0; i < graph.initializer_size(); ++i) initializer_[graph.initializer(i).name()] = i;
    for (const auto& output : graph.output()) outputs_.insert(output.name());
  }

  const onnx::NodeProto* producer(const std::string& name, const char* op) const {
    const auto found = producer_.find(name);
    if (found == producer_.end()) return nullptr;
    const auto& node = graph_.node(found->second);
    return node.op_type() == op && (node.domain().empty() || node.domain() == "ai.onnx") ? &node : nullptr;
  }
  // The single reader of `name` when it is an `op` node and `name` is no graph output.
  int only_reader(const std::string& name, const char* op) const {
    if (outputs_.count(name) != 0) return -1;
    const auto found = readers_.find(name);
    if (found == readers_.end() || found->second.size() != 1) return -1;
    return graph_.node(found->second[0]).op_type() == op ? found->second[0] : -1;
  }
  std::optional<Constant> initializer(const std::string& name) const {
    const auto found = initializer_.find(name);
    if (found == initializer_.end()) return std::nullopt;
    return read_tensor(graph_.initializer(found->second), "initializer '" + name + "'");
  }

 private:
  const onnx::GraphProto& graph_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<int>> readers_;
  std::unordered_map<std::string, int> initializer_;
  std::set<std::string> outputs_;
};

const std::string& other_input(const onnx::NodeProto& node, const std::string& one) {
  return node.input(0) == one ? node.input(1) : node.input(0);
}

// Per-channel values (one value broadcast, or exactly `channels`), empty when neither.
std::vector<double> per_channel(const Constant& c, std::int64_t channels) {
  if (c.values.size() == 1) return std::vector<double>(static_cast<std::size_t>(channels), c.values[0]);
  if (static_cast<std::int64_t>(c.values.size()) == channels) return c.values;
  return {};
}

onnx::TensorProto float_tensor(const std::string& name, const Shape& shape,
                               const std::vector<float>& values) {
  onnx::TensorProto tensor;
  tensor.set_name(name);
  tensor.set_data_type(onnx::TensorProto_DataType_FLOAT);
  for (auto d : shape) tensor.add_dims(d);
  tensor.set_raw_data(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return tensor;
}

// The bias an Add after the folded chain adds per output channel of a Conv: an initializer [M], [M,1,1] or
// [1,M,1,1], or a Reshape of an initializer [M] to [1,M,1,1] (ONNX Runtime writes the latter).
std::optional<std::vector<float>> conv_bias(const Index& index, const std::string& name,
                                            std::int64_t channels) {
  std::optional<Constant> c = index.initializer(name);
  if (!c) {
    const onnx::NodeProto* reshape = index.producer(name, "Reshape");
    if (reshape == nullptr || reshape->input_size() < 2) return std::nullopt;
    const auto target = index.initializer(reshape->input(1));
    if (!target || target->values != std::vector<double>{1.0, static_cast<double>(channels), 1.0, 1.0})
      return std::nullopt;
    c = index.initializer(reshape->input(0));
    if (!c) return std::nullopt;
  } else {
    const Shape& s = c->shape;
    const bool channel_shaped =
        s == Shape{channels} || s == Shape{channels, 1, 1} || s == Shape{1, channels, 1, 1};
    if (!channel_shaped) return std::nullopt;
  }
  if (static_cast<std::int64_t>(c->values.size()) != channels) return std::nullopt;
  return std::vector<float>(c->values.begin(), c->values.end());
}

}  // namespace

int fold_dynamic_quantization(OnnxModel& model) {
  auto& graph = *model.proto.mutable_graph();
  const Index index(graph);
  std::set<int> removed;
  std::vector<onnx::TensorProto> added;
  int folded = 0;
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    const bool conv = node.op_type() == "ConvInteger";
    if ((!conv && node.op_type() != "MatMulInteger") || !node.domain().empty() || node.input_size() < 3)
      continue;
    const onnx::NodeProto* quantize = index.producer(node.input(0), "DynamicQuantizeLinear");
    if (quantize == nullptr || quantize->output_size() < 3 || quantize->output(0) != node.input(0) ||
        node.input(2) != quantize->output(2))
      continue;
    const auto w = index.initializer(node.input(1));
    if (!w || w->shape.size() != (conv ? 4U : 2U)) continue;
    std::optional<Constant> w_zero_point;
    if (node.input_size() > 3 && !node.input(3).empty()) {
      w_zero_point = index.initializer(node.input(3));
      if (!w_zero_point) continue;
    }
    const int cast = index.only_reader(node.output(0), "Cast");
    if (cast < 0 || attribute_int(graph.node(cast), "to", 0) != onnx::TensorProto_DataType_FLOAT) continue;
    const int mul = index.only_reader(graph.node(cast).output(0), "Mul");
    if (mul < 0) continue;
    const onnx::NodeProto* scales =
        index.producer(other_input(graph.node(mul), graph.node(cast).output(0)), "Mul");
    if (scales == nullptr || scales->input_size() != 2) continue;
    if (scales->input(0) != quantize->output(1) && scales->input(1) != quantize->output(1)) continue;
    const auto w_scale = index.initializer(other_input(*scales, quantize->output(1)));
    if (!w_scale) continue;
    // Output channels: a Conv's dimension 0, a MatMul's columns.
    const std::int64_t channels = conv ? w->shape[0] : w->shape[1];
    const auto scale = per_channel(*w_scale, channels);
    const auto zero_point = w_zero_point ? per_channel(*w_zero_point, channels)
                                         : std::vector<double>(static_cast<std::size_t>(channels), 0.0);
    if (scale.empty() || zero_point.empty()) continue;
    std::vector<float> weights(w->values.size());
    const std::int64_t inner = conv ? static_cast<std::int64_t>(w->values.size()) / channels : 1;
    for (std::size_t k = 0; k < weights.size(); ++k) {
      const auto c = static_cast<std::size_t>(conv ? static_cast<std::int64_t>(k) / inner
                                                   : static_cast<std::int64_t>(k) % channels);
      weights[k] = static_cast<float>((w->values[k] - zero_point[c]) * scale[c]);
    }
    onnx::NodeProto replacement;
    replacement.set_name(node.name().empty() ? node.output(0) + "/float" : node.name() + "/float");
    replacement.set_op_type(conv ? "Conv" : "MatMul");
    const std::string weight_name = replacement.name() + "/dequantized_weight";
    replacement.add_input(quantize->input(0));
    replacement.add_input(weight_name);
    added.push_back(float_tensor(weight_name, w->shape, weights));
    std::string output = graph.node(mul).output(0);
    removed.insert(cast);
    removed.insert(mul);
    if (conv) {
      for (const auto& attribute : node.attribute()) *replacement.add_attribute() = attribute;
      if (const int add = index.only_reader(output, "Add"); add >= 0) {
        if (auto bias = conv_bias(index, other_input(graph.node(add), output), channels)) {
          const std::string bias_name = replacement.name() + "/bias";
          replacement.add_input(bias_name);
          added.push_back(float_tensor(bias_name, {channels}, *bias));
          output = graph.node(add).output(0);
          removed.insert(add);
        }
      }
    }
    replacement.add_output(output);
    *graph.mutable_node(i) = std::move(replacement);
    ++folded;
  }
  if (folded == 0) return 0;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < graph.node_size(); ++i) {
    if (removed.count(i) == 0) *kept.Add() = std::move(*graph.mutable_node(i));
  }
  graph.mutable_node()->Swap(&kept);
  for (auto& tensor : added) *graph.add_initializer() = std::move(tensor);
  return folded;
}

bool has_static_quantization(const OnnxModel& model) {
  return std::any_of(model.proto.graph().node().begin(), model.proto.graph().node().end(),
                     [](const onnx::NodeProto& node) {
                       return node.op_type() == "QLinearConv" || node.op_type() == "QuantizeLinear";
                     });
}

bool has_qlinear_convolutions(const OnnxModel& model) {
  return std::any_of(model.proto.graph().node().begin(), model.proto.graph().node().end(),
                     [](const onnx::NodeProto& node) { return node.op_type() == "QLinearConv"; });
}

namespace {

// A reason the static rewrite gives up; caught in dequantize_static_quantization.
struct Refused {
  std::string why;
};

// The quantization of one activation: real = (q - zero_point) * scale, q in [low, high].
struct Quantization {
  float scale = 1.0F;
  float zero_point = 0.0F;
  float low = 0.0F, high = 255.0F;
  // An activation folded into the range (ReLU, ReLU6): nothing below 0 is representable.
  bool starts_at_zero() const { return zero_point == low; }
  TensorRange range() const {
    TensorRange r;
    r.min = (low - zero_point) * scale;
    r.max = (high - zero_point) * scale;
    r.threshold = std::max(-r.min, r.max);
    return r;
  }
};

class StaticRewrite {
 public:
  explicit StaticRewrite(OnnxModel& model) : model_(model), graph_(*model.proto.mutable_graph()) {
    for (int i = 0; i < graph_.initializer_size(); ++i) initializers_[graph_.initializer(i).name()] = i;
  }

  FileQuantization run() {
    for (const auto& node : graph_.node()) rewrite(node);
    rename_graph_outputs();
    if (result_.convolutions == 0) throw Refused{"no QLinearConv"};
    commit();
    return std::move(result_);
  }

 private:
  [[noreturn]] static void refuse(const onnx::NodeProto& node, const std::string& what) {
    throw Refused{fmt::format("node '{}' ({}): {}", node.name(), node.op_type(), what)};
  }

  const onnx::TensorProto* initializer(const std::string& name) const {
    const auto found = initializers_.find(name);
    return found == initializers_.end() ? nullptr : &graph_.initializer(found->second);
  }
  Constant constant(const onnx::NodeProto& node, int slot, const char* what) const {
    const onnx::TensorProto* tensor = slot < node.input_size() ? initializer(node.input(slot)) : nullptr;
    if (tensor == nullptr) refuse(node, fmt::format("the {} is no initializer", what));
    return read_tensor(*tensor, fmt::format("initializer '{}'", tensor->name()));
  }

  std::string resolve(const std::string& name) const {
    std::string resolved = name;
    for (auto found = alias_.find(resolved); found != alias_.end(); found = alias_.find(resolved))
      resolved = found->second;
    return resolved;
  }

  // The per-tensor quantization given by inputs `scale_slot` and `zero_point_slot` (optional: 0, uint8).
  Quantization quantization(const onnx::NodeProto& node, int scale_slot, int zero_point_slot) const {
    const Constant scale = constant(node, scale_slot, "scale");
    if (scale.values.size() != 1) refuse(node, "an activation quantized per axis");
    Quantization q;
    q.scale = static_cast<float>(scale.values[0]);
    if (!(q.scale > 0.0F)) refuse(node, fmt::format("a scale of {}", q.scale));
    if (zero_point_slot < node.input_size() && !node.input(zero_point_slot).empty()) {
      const onnx::TensorProto* zp = initializer(node.input(zero_point_slot));
      if (zp == nullptr) refuse(node, "the zero point is no initializer");
      if (zp->data_type() == onnx::TensorProto_DataType_INT8) {
        q.low = -128.0F;
        q.high = 127.0F;
      } else if (zp->data_type() != onnx::TensorProto_DataType_UINT8) {
        refuse(node, fmt::format("a zero point of element type {} (8-bit only)", zp->data_type()));
      }
      const Constant value = read_tensor(*zp, fmt::format("initializer '{}'", zp->name()));
      if (value.values.size() != 1) refuse(node, "an activation quantized per axis");
      q.zero_point = static_cast<float>(value.values[0]);
    }
    return q;
  }

  void note_range(const std::string& name, const Quantization& q) {
    result_.ranges[name] = q.range();
    if (q.zero_point != 0.0F && !q.starts_at_zero()) asymmetric_.insert(name);
  }

  std::string add_initializer(const std::string& name, const Shape& shape, const std::vector<float>& values) {
    added_.push_back(float_tensor(name, shape, values));
    return name;
  }

  // An operand of a QLinear op: a constant dequantized now (per tensor, or per column of its last axis as
  // QLinearMatMul's B is), or an activation with its range.
  std::string operand(const onnx::NodeProto& node, int slot, int scale_slot, int zero_point_slot) {
    if (const onnx::TensorProto* tensor = initializer(node.input(slot))) {
      const Constant c = read_tensor(*tensor, fmt::format("initializer '{}'", tensor->name()));
      const std::int64_t columns = c.shape.empty() ? 1 : c.shape.back();
      const std::vector<double> scale = per_channel(constant(node, scale_slot, "scale"), columns);
      std::vector<double> zero_point(static_cast<std::size_t>(columns), 0.0);
      if (zero_point_slot < node.input_size() && !node.input(zero_point_slot).empty())
        zero_point = per_channel(constant(node, zero_point_slot, "zero point"), columns);
      if (scale.empty() || zero_point.empty())
        refuse(node, "a constant quantized per axis other than the last");
      std::vector<float> values(c.values.size());
      for (std::size_t i = 0; i < values.size(); ++i) {
        const std::size_t column = i % static_cast<std::size_t>(columns);
        values[i] = static_cast<float>((c.values[i] - zero_point[column]) * scale[column]);
      }
      // A bias [K] added to a [N, K] product (ORT's quantized Gemm): [1, K], as vapipe's Binary wants
      // operands of equal rank.
      const Shape shape =
          node.op_type() == "QLinearAdd" && c.shape.size() == 1 ? Shape{1, c.shape[0]} : c.shape;
      return add_initializer(tensor->name() + "/dequantized", shape, values);
    }
    const Quantization q = quantization(node, scale_slot, zero_point_slot);
    const std::string x = resolve(node.input(slot));
    note_range(x, q);
    return x;
  }

  onnx::NodeProto& emit(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                        const std::string& output) {
    onnx::NodeProto& node = nodes_.emplace_back();
    node.set_op_type(op);
    node.set_name(name);
    for (auto& input : inputs) node.add_input(std::move(input));
    node.add_output(output);
    rewritten_outputs_.insert(output);
    return node;
  }

  // The float result of a quantized op `node`, quantized as `q`: the op writes it under `y` itself, or
  // (for a range that starts at 0, where the quantization clips as ReLU does) under y/unclipped, clipped.
  std::string float_output(const onnx::NodeProto& node, const Quantization& q) {
    const std::string& y = node.output(0);
    note_range(y, q);
    if (!q.starts_at_zero()) return y;
    const TensorRange r = q.range();
    const std::string unclipped = y + "/unclipped";
    onnx::NodeProto& clip = emit("Clip", node.name() + "/clip", {unclipped}, y);
    if (model_.opset >= 11) {
      clip.add_input(add_initializer(y + "/clip_min", {}, {r.min}));
      clip.add_input(add_initializer(y + "/clip_max", {}, {r.max}));
    } else {
      auto* low = clip.add_attribute();
      low->set_name("min");
      low->set_type(onnx::AttributeProto_AttributeType_FLOAT);
      low->set_f(r.min);
      auto* high = clip.add_attribute();
      high->set_name("max");
      high->set_type(onnx::AttributeProto_AttributeType_FLOAT);
      high->set_f(r.max);
    }
    pending_clip_ = static_cast<int>(nodes_.size()) - 1;
    return unclipped;
  }

  // Emits `op` before the Clip float_output may have added, so the order stays topological.
  onnx::NodeProto& emit_before_clip(const std::string& op, const std::string& name,
                                    std::vector<std::string> inputs, const std::string& output) {
    const int clip = pending_clip_;
    pending_clip_ = -1;
    onnx::NodeProto& node = emit(op, name, std::move(inputs), output);
    if (clip < 0) return node;
    std::swap(nodes_[static_cast<std::size_t>(clip)], nodes_.back());
    return nodes_[static_cast<std::size_t>(clip)];
  }

  void rewrite_conv(const onnx::NodeProto& node) {
    const std::string x = resolve(node.input(0));
    note_range(x, quantization(node, 1, 2));
    const float x_scale = quantization(node, 1, 2).scale;
    const Constant w = constant(node, 3, "weight");
    if (w.shape.size() != 4) refuse(node, "weights that are not 4-D");
    const auto channels = static_cast<std::size_t>(w.shape[0]);
    const Constant w_scale = constant(node, 4, "weight scale");
    std::vector<double> scales = per_channel(w_scale, static_cast<std::int64_t>(channels));
    std::vector<double> zero_points(channels, 0.0);
    if (node.input_size() > 5 && !node.input(5).empty())
      zero_points = per_channel(constant(node, 5, "weight zero point"), static_cast<std::int64_t>(channels));
    if (scales.empty() || zero_points.empty()) refuse(node, "weight scales or zero points per other axes");
    const bool symmetric =
        std::all_of(zero_points.begin(), zero_points.end(), [](double z) { return z == 0.0; });
    const std::size_t inner = w.values.size() / channels;
    std::vector<float> weights(w.values.size());
    for (std::size_t k = 0; k < weights.size(); ++k)
      weights[k] = static_cast<float>((w.values[k] - zero_points[k / inner]) * scales[k / inner]);
    const std::string weight_name = add_initializer(node.input(3) + "/dequantized", w.shape, weights);
    std::vector<std::string> inputs{x, weight_name};
    if (node.input_size() > 8 && !node.input(8).empty()) {
      const Constant b = constant(node, 8, "bias");
      if (b.values.size() != channels) refuse(node, "a bias that is not one value per output channel");
      std::vector<float> bias(channels);
      // The int32 bias is in accumulator units: x_scale * w_scale[m].
      for (std::size_t m = 0; m < channels; ++m)
        bias[m] = static_cast<float>(b.values[m] * static_cast<double>(x_scale) * scales[m]);
      inputs.push_back(
          add_initializer(node.input(8) + "/dequantized", {static_cast<std::int64_t>(channels)}, bias));
    }
    const std::string y = float_output(node, quantization(node, 6, 7));
    onnx::NodeProto& conv = emit_before_clip("Conv", node.name() + "/float", std::move(inputs), y);
    for (const auto& attribute : node.attribute()) *conv.add_attribute() = attribute;
    ++result_.convolutions;
    if (symmetric) {
      result_.weight_scales[weight_name] = std::vector<float>(scales.begin(), scales.end());
    } else {
      ++result_.asymmetric_weights;
    }
  }

  void rewrite(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    if (op == "QuantizeLinear" || op == "DequantizeLinear") {
      if (op == "DequantizeLinear" && initializer(node.input(0)) != nullptr) {
        const std::string name = operand(node, 0, 1, 2);
        alias_[node.output(0)] = name;
        return;
      }
      const std::string x = resolve(node.input(0));
      note_range(x, quantization(node, 1, 2));
      alias_[node.output(0)] = x;
      return;
    }
    if (op == "QLinearConv") return rewrite_conv(node);
    if (op == "QLinearAdd" || op == "QLinearMatMul") {
      std::vector<std::string> inputs{operand(node, 0, 1, 2), operand(node, 3, 4, 5)};
      const std::string y = float_output(node, quantization(node, 6, 7));
      emit_before_clip(op == "QLinearAdd" ? "Add" : "MatMul", node.name() + "/float", std::move(inputs), y);
      ++result_.float_ops[op];
      return;
    }
    if (op == "QLinearGlobalAveragePool") {
      if (attribute_int(node, "channels_last", 0) != 0) refuse(node, "channels_last = 1");
      std::vector<std::string> inputs{operand(node, 0, 1, 2)};
      const std::string y = float_output(node, quantization(node, 3, 4));
      emit_before_clip("GlobalAveragePool", node.name() + "/float", std::move(inputs), y);
      ++result_.float_ops[op];
      return;
    }
    const bool quantized = op.rfind("QLinear", 0) == 0 || op == "ConvInteger" || op == "MatMulInteger" ||
                           op == "DynamicQuantizeLinear" || op == "QGemm" || op == "QAttention";
    if (quantized) refuse(node, "no float rewrite for this op");
    onnx::NodeProto& copy = nodes_.emplace_back(node);
    for (int i = 0; i < copy.input_size(); ++i) {
      if (!copy.input(i).empty()) copy.set_input(i, resolve(copy.input(i)));
    }
  }

  // A graph output that was an alias (DequantizeLinear's output) names the float tensor it resolves to.
  void rename_graph_outputs() {
    for (const auto& output : graph_.output()) {
      const std::string& name = output.name();
      if (alias_.count(name) == 0) continue;
      const std::string target = resolve(name);
      if (initializer(target) != nullptr ||
          std::any_of(graph_.input().begin(), graph_.input().end(),
                      [&](const onnx::ValueInfoProto& input) { return input.name() == target; }))
        throw Refused{fmt::format("graph output '{}' is a graph input or a constant", name)};
      for (auto& node : nodes_) {
        for (int i = 0; i < node.input_size(); ++i) {
          if (node.input(i) == target) node.set_input(i, name);
        }
        for (int i = 0; i < node.output_size(); ++i) {
          if (node.output(i) == target) node.set_output(i, name);
        }
      }
      if (const auto found = result_.ranges.find(target); found != result_.ranges.end())
        result_.ranges[name] = found->second;
      rewritten_outputs_.insert(name);
    }
  }

  void commit() {
    result_.asymmetric_activations = static_cast<int>(asymmetric_.size());
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    std::set<std::string> used;
    for (auto& node : nodes_) {
      for (const auto& input : node.input()) used.insert(input);
      *nodes.Add() = std::move(node);
    }
    graph_.mutable_node()->Swap(&nodes);
    for (auto& tensor : added_) *graph_.add_initializer() = std::move(tensor);
    // The quantized initializers nothing reads any more, and the integer types declared for the rewritten
    // tensors.
    google::protobuf::RepeatedPtrField<onnx::TensorProto> kept;
    for (auto& tensor : *graph_.mutable_initializer()) {
      if (used.count(tensor.name()) != 0) *kept.Add() = std::move(tensor);
    }
    graph_.mutable_initializer()->Swap(&kept);
    // IR < 4 lists initializers among the graph inputs too.
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
    for (auto& input : *graph_.mutable_input()) {
      if (initializers_.count(input.name()) == 0 || used.count(input.name()) != 0)
        *inputs.Add() = std::move(input);
    }
    graph_.mutable_input()->Swap(&inputs);
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> infos;
    for (auto& info : *graph_.mutable_value_info()) {
      if (rewritten_outputs_.count(info.name()) == 0 && alias_.count(info.name()) == 0)
        *infos.Add() = std::move(info);
    }
    graph_.mutable_value_info()->Swap(&infos);
    for (auto& output : *graph_.mutable_output()) {
      if (output.type().has_tensor_type())
        output.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_FLOAT);
    }
  }

  OnnxModel& model_;
  onnx::GraphProto& graph_;
  std::unordered_map<std::string, int> initializers_;
  std::unordered_map<std::string, std::string> alias_;  // a (de)quantized tensor -> the float one it is
  std::vector<onnx::NodeProto> nodes_;
  std::vector<onnx::TensorProto> added_;
  std::set<std::string> rewritten_outputs_;
  std::set<std::string> asymmetric_;
  int pending_clip_ = -1;
  FileQuantization result_;
};

}  // namespace

std::optional<FileQuantization> dequantize_static_quantization(OnnxModel& model, std::string& why_not) {
  OnnxModel rewritten = model;
  try {
    FileQuantization result = StaticRewrite(rewritten).run();
    model = std::move(rewritten);
    return result;
  } catch (const Refused& refused) {
    why_not = refused.why;
    return std::nullopt;
  }
}

}  // namespace vapipe::compiler
