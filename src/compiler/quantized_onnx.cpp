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

}  // namespace vapipe::compiler
