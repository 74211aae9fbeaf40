// SpaceToDepth (issue 20: YOLOX's Focus stem) against the reference executor: the runtime's one-pass kernel
// on seeded random shapes, blocks and offset orders, and the graph pass that turns four strided Slices and a
// Concat into it (the pass must keep the original graph's values and must leave other patterns alone).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "compiler/graph_passes.hpp"
#include "compiler/reference_executor.hpp"
#include "infer/differential.hpp"
#include "infer/graph_builder.hpp"

namespace vapipe {
namespace {

using test::expect_matches_reference;
using test::GraphBuilder;

TEST(RuntimeOps, SpaceToDepthMatchesReferenceOnSeededShapes) {
  std::mt19937 generator(20);
  for (int trial = 0; trial < 12; ++trial) {
    const std::int64_t block = 2 + static_cast<std::int64_t>(generator() % 2);
    const std::int64_t channels = 1 + static_cast<std::int64_t>(generator() % 5);
    const std::int64_t height = block * (1 + static_cast<std::int64_t>(generator() % 9));
    const std::int64_t width = block * (1 + static_cast<std::int64_t>(generator() % 13));
    std::vector<std::pair<std::int64_t, std::int64_t>> cells;
    for (std::int64_t y = 0; y < block; ++y) {
      for (std::int64_t x = 0; x < block; ++x) cells.emplace_back(y, x);
    }
    std::shuffle(cells.begin(), cells.end(), generator);
    const auto blocks = static_cast<std::int64_t>(cells.size());
    const std::int64_t batch = 1 + static_cast<std::int64_t>(generator() % 3);
    SCOPED_TRACE(testing::Message() << "trial " << trial << ": block " << block << ", " << channels << "x"
                                    << height << "x" << width << ", batch " << batch);
    expect_matches_reference(
        [&](std::int64_t n) {
          GraphBuilder b;
          const int x = b.input({n, channels, height, width});
          const int y = b.node("SpaceToDepth", {x}, {{n, channels * blocks, height / block, width / block}},
                               {{"block", block}, {"offsets", cells}})[0];
          return b.finish({y});
        },
        batch);
  }
}

// A [N, 3, H, W] input, YOLOX's stem (each phase by one Slice over H then one over W, or by one Slice over
// both when `one_slice`), the Concat in the export's order, and a convolution after it.
ir::Graph focus_stem(std::int64_t n, std::int64_t height, std::int64_t width, bool one_slice,
                     std::int64_t step = 2) {
  GraphBuilder b(7);
  const int x = b.input({n, 3, height, width});
  auto slice = [&](int t, std::vector<std::int64_t> starts, std::vector<std::int64_t> steps) {
    const Shape in = b.shape(t);  // a copy: adding tensors may reallocate
    Shape out = in;
    for (std::size_t d = 0; d < 4; ++d) out[d] = (in[d] - starts[d] + steps[d] - 1) / steps[d];
    const Shape ends = in;
    return b.node("Slice", {t}, {out}, {{"starts", starts}, {"ends", ends}, {"steps", steps}})[0];
  };
  std::vector<int> phases;
  // The export's order: top-left, bottom-left, top-right, bottom-right.
  for (const auto& [dy, dx] :
       std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 0}, {1, 0}, {0, 1}, {1, 1}}) {
    if (one_slice) {
      phases.push_back(slice(x, {0, 0, dy, dx}, {1, 1, step, step}));
    } else {
      phases.push_back(slice(slice(x, {0, 0, dy, 0}, {1, 1, step, 1}), {0, 0, 0, dx}, {1, 1, 1, step}));
    }
  }
  Shape joined = b.shape(phases[0]);
  joined[1] *= 4;
  const int concat = b.node("Concat", phases, {joined}, {{"axis", 1}})[0];
  return b.finish({b.conv(concat, 8, 3, 1)});
}

std::size_t count_ops(const ir::Graph& graph, const std::string& op) {
  return static_cast<std::size_t>(std::count_if(graph.nodes.begin(), graph.nodes.end(),
                                                [&](const ir::Node& node) { return node.op == op; }));
}

TEST(GraphPasses, FocusStemBecomesOneSpaceToDepthWithTheSameValues) {
  for (const bool one_slice : {false, true}) {
    SCOPED_TRACE(one_slice ? "one Slice per phase" : "two Slices per phase");
    const ir::Graph original = focus_stem(2, 12, 18, one_slice);
    ir::Graph optimized = original;
    compiler::optimize_graph(optimized);
    EXPECT_EQ(count_ops(optimized, "Slice"), 0U);
    EXPECT_EQ(count_ops(optimized, "Concat"), 0U);
    ASSERT_EQ(count_ops(optimized, "SpaceToDepth"), 1U);
    const auto input = test::random_values(original.tensors[original.inputs[0]].shape, 5);
    const auto expected = compiler::run_reference(original, {input});
    const auto actual = compiler::run_reference(optimized, {input});
    ASSERT_EQ(expected.size(), 1U);
    ASSERT_EQ(actual.size(), 1U);
    ASSERT_EQ(actual[0].size(), expected[0].size());
    for (std::size_t i = 0; i < expected[0].size(); ++i)
      ASSERT_FLOAT_EQ(actual[0][i], expected[0][i]) << "element " << i;
    // And the runtime's kernel on the rewritten graph.
    expect_matches_reference(
        [&](std::int64_t n) {
          ir::Graph graph = focus_stem(n, 12, 18, one_slice);
          compiler::optimize_graph(graph);
          return graph;
        },
        2);
  }
}

TEST(GraphPasses, OtherStridedConcatsAreLeftAlone) {
  // Step 3: not the 2x2 phases of the input.
  ir::Graph graph = focus_stem(1, 12, 18, true, 3);
  compiler::optimize_graph(graph);
  EXPECT_EQ(count_ops(graph, "SpaceToDepth"), 0U);
  EXPECT_EQ(count_ops(graph, "Slice"), 4U);
}

}  // namespace
}  // namespace vapipe
