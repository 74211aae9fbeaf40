#pragma once
// Builds small IR graphs by hand for differential tests of the runtime against the reference executor.
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/graph.hpp"

namespace vapipe::test {

class GraphBuilder {
 public:
  explicit GraphBuilder(unsigned seed = 1) : generator_(seed) {}

  int input(const Shape& shape) {
    const int tensor =
        graph_.add_tensor({fmt::format("in{}", graph_.inputs.size()), DType::kF32, shape, std::nullopt});
    graph_.inputs.push_back(tensor);
    return tensor;
  }
  int constant(const Shape& shape, float low = -1.0F, float high = 1.0F) {
    std::uniform_real_distribution<float> distribution(low, high);
    std::vector<float> values(static_cast<std::size_t>(shape_volume(shape)));
    for (auto& value : values) value = distribution(generator_);
    return graph_.add_tensor({fmt::format("c{}", graph_.tensors.size()), DType::kF32, shape,
                              ir::ConstBytes::from_vector(std::move(values))});
  }
  std::vector<int> node(const std::string& op, std::vector<int> inputs,
                        const std::vector<Shape>& output_shapes,
                        nlohmann::json attrs = nlohmann::json::object()) {
    std::vector<int> outputs;
    for (const auto& shape : output_shapes) {
      outputs.push_back(
          graph_.add_tensor({fmt::format("t{}", graph_.tensors.size()), DType::kF32, shape, std::nullopt}));
    }
    graph_.nodes.push_back(
        {fmt::format("{}{}", op, graph_.nodes.size()), op, std::move(inputs), outputs, std::move(attrs)});
    return outputs;
  }
  int conv(int x, std::int64_t out_channels, int kernel, int stride,
           nlohmann::json post_ops = nlohmann::json::array(), int sum = -1, std::int64_t group = 1) {
    const Shape in = graph_.tensors[x].shape;  // a copy: adding constants below may reallocate
    const int pad = kernel / 2;
    const int weights = constant({out_channels, in[1] / group, kernel, kernel}, -0.3F, 0.3F);
    const int bias = constant({out_channels});
    const std::int64_t h = (in[2] + 2 * pad - kernel) / stride + 1;
    const std::int64_t w = (in[3] + 2 * pad - kernel) / stride + 1;
    std::vector<int> inputs{x, weights, bias};
    if (sum >= 0) inputs.push_back(sum);
    return node("Conv", inputs, {{in[0], out_channels, h, w}},
                {{"strides", {stride, stride}},
                 {"pads", {pad, pad, pad, pad}},
                 {"dilations", {1, 1}},
                 {"group", group},
                 {"post_ops", std::move(post_ops)}})[0];
  }
  // Replaces the constant input `slot` of the node that writes `output` with values from `next()`.
  template <typename Next>
  void set_constant(int output, std::size_t slot, Next next) {
    for (auto& node : graph_.nodes) {
      if (node.outputs.empty() || node.outputs[0] != output) continue;
      auto& tensor = graph_.tensors[static_cast<std::size_t>(node.inputs.at(slot))];
      std::vector<float> values(static_cast<std::size_t>(shape_volume(tensor.shape)));
      for (auto& value : values) value = next();
      tensor.data = ir::ConstBytes::from_vector(std::move(values));
    }
  }
  const Shape& shape(int tensor) const { return graph_.tensors[tensor].shape; }
  ir::Graph finish(std::vector<int> outputs) {
    graph_.outputs = std::move(outputs);
    return std::move(graph_);
  }

 private:
  ir::Graph graph_;
  std::mt19937 generator_;
};

}  // namespace vapipe::test
