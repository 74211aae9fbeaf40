// The reference executor against values computed by hand from the ONNX/IR definitions.
#include <gtest/gtest.h>

#include "compiler/reference_executor.hpp"
#include "ops/shape_inference.hpp"

namespace vapipe::compiler {
namespace {

ir::Graph one_node(const std::string& op, const std::vector<Shape>& inputs, nlohmann::json attrs,
                   const std::vector<std::vector<float>>& constants = {}) {
  ir::Graph graph;
  ir::Node node{"n", op, {}, {}, std::move(attrs)};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ir::Tensor t{"in" + std::to_string(i), DType::kF32, inputs[i], std::nullopt};
    if (i > 0 && i - 1 < constants.size()) t.data = ir::ConstBytes::from_vector(constants[i - 1]);
    const int index = graph.add_tensor(t);
    node.inputs.push_back(index);
    if (!t.data) graph.inputs.push_back(index);
  }
  const auto shapes = ops::infer_node_shapes(graph, node);
  for (const auto& s : shapes) {
    node.outputs.push_back(graph.add_tensor({"out", DType::kF32, s, std::nullopt}));
    graph.outputs.push_back(node.outputs.back());
  }
  graph.nodes.push_back(node);
  return graph;
}

TEST(ReferenceExecutor, DepthwiseConvWithPadsAndPostOps) {
  // 2 channels, group 2, 3x3 kernel of ones, pad 1: each output is the sum of the 3x3 neighbourhood.
  auto graph = one_node("Conv", {{1, 2, 2, 2}, {2, 1, 3, 3}, {2}},
                        {{"strides", {1, 1}},
                         {"pads", {1, 1, 1, 1}},
                         {"dilations", {1, 1}},
                         {"group", 2},
                         {"post_ops", {{{"op", "relu"}}}}},
                        {std::vector<float>(18, 1.0F), {0.0F, -20.0F}});
  const auto y = run_reference(graph, {{1, 2, 3, 4, 1, 1, 1, 1}})[0];
  EXPECT_EQ(y, (std::vector<float>{10, 10, 10, 10, 0, 0, 0, 0}));
}

TEST(ReferenceExecutor, PoolsAndCountIncludePad) {
  auto max =
      one_node("MaxPool", {{1, 1, 2, 2}}, {{"kernel", {2, 2}}, {"strides", {1, 1}}, {"pads", {0, 0, 1, 1}}});
  EXPECT_EQ(run_reference(max, {{1, 2, 3, 4}})[0], (std::vector<float>{4, 4, 4, 4}));
  auto avg =
      one_node("AveragePool", {{1, 1, 2, 2}},
               {{"kernel", {2, 2}}, {"strides", {1, 1}}, {"pads", {0, 0, 1, 1}}, {"count_include_pad", 1}});
  EXPECT_EQ(run_reference(avg, {{1, 2, 3, 4}})[0], (std::vector<float>{2.5F, 1.5F, 1.75F, 1.0F}));
  auto avg_ex =
      one_node("AveragePool", {{1, 1, 2, 2}},
               {{"kernel", {2, 2}}, {"strides", {1, 1}}, {"pads", {0, 0, 1, 1}}, {"count_include_pad", 0}});
  EXPECT_EQ(run_reference(avg_ex, {{1, 2, 3, 4}})[0], (std::vector<float>{2.5F, 3, 3.5F, 4}));
}

TEST(ReferenceExecutor, ResizeHalfPixelAndBinaryBroadcast) {
  auto resize = one_node("Resize", {{1, 1, 1, 2}},
                         {{"mode", "nearest"},
                          {"coordinate_transformation_mode", "half_pixel"},
                          {"nearest_mode", "round_prefer_floor"},
                          {"scales", {1.0, 1.0, 1.0, 2.0}}});
  EXPECT_EQ(run_reference(resize, {{1, 2}})[0], (std::vector<float>{1, 1, 2, 2}));
  auto binary = one_node("Binary", {{2, 1}, {3}}, {{"alg", "sub"}});
  EXPECT_EQ(run_reference(binary, {{10, 20}, {1, 2, 3}})[0], (std::vector<float>{9, 8, 7, 19, 18, 17}));
}

TEST(ReferenceExecutor, GatherTransposeSplit) {
  auto gather = one_node("Gather", {{2, 3}}, {{"axis", 1}, {"indices", {2, 0}}, {"indices_shape", {2}}});
  EXPECT_EQ(run_reference(gather, {{1, 2, 3, 4, 5, 6}})[0], (std::vector<float>{3, 1, 6, 4}));
  auto transpose = one_node("Transpose", {{2, 3}}, {{"perm", {1, 0}}});
  EXPECT_EQ(run_reference(transpose, {{1, 2, 3, 4, 5, 6}})[0], (std::vector<float>{1, 4, 2, 5, 3, 6}));
  auto split = one_node("Split", {{2, 3}}, {{"axis", 1}, {"sizes", {1, 2}}});
  split.outputs = {split.nodes[0].outputs[0], split.nodes[0].outputs[1]};
  const auto out = run_reference(split, {{1, 2, 3, 4, 5, 6}});
  EXPECT_EQ(out[0], (std::vector<float>{1, 4}));
  EXPECT_EQ(out[1], (std::vector<float>{2, 3, 5, 6}));
}

}  // namespace
}  // namespace vapipe::compiler
