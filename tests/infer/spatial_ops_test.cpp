// Seeded differential tests of the spatial operators (linear and cubic Resize, ConvTranspose, Pad): the
// runtime's kernels against the reference executor on random inputs, several shapes and batches, on plain
// inputs and on a convolution's blocked output. (The ONNX conformance suite checks the reference itself.)
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "compiler/graph_passes.hpp"
#include "infer/differential.hpp"
#include "infer/graph_builder.hpp"

namespace vapipe {
namespace {

using test::expect_matches_reference;
using test::GraphFactory;

Shape resized(const Shape& in, const std::vector<double>& scales) {
  Shape out(in.size());
  for (std::size_t d = 0; d < in.size(); ++d)
    out[d] = static_cast<std::int64_t>(std::floor(static_cast<double>(in[d]) * scales[d] + 1e-6));
  return out;
}

nlohmann::json resize_attrs(const std::string& mode, const std::string& transform,
                            const std::vector<double>& scales, double cubic_a = -0.75,
                            int exclude_outside = 0) {
  return {{"mode", mode},
          {"coordinate_transformation_mode", transform},
          {"nearest_mode", "round_prefer_floor"},
          {"scales", scales},
          {"cubic_coeff_a", cubic_a},
          {"exclude_outside", exclude_outside}};
}

TEST(RuntimeOps, ResizeLinearAndCubicInEveryCoordinateMode) {
  const std::vector<std::vector<double>> scale_sets = {
      {1.0, 1.0, 2.0, 2.0},   // the FPN upsample
      {1.0, 1.0, 0.6, 0.75},  // downsample, the output size rounded down
      {1.0, 1.0, 1.5, 0.5},   // non-integer up in one dimension, down in the other
      {1.0, 1.0, 3.0, 1.0}};  // one dimension untouched
  for (const std::string mode : {"linear", "cubic"}) {
    for (const std::string transform : {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"}) {
      for (const auto& scales : scale_sets) {
        SCOPED_TRACE(mode + " " + transform + " scale " + std::to_string(scales[2]) + "x" +
                     std::to_string(scales[3]));
        const GraphFactory factory = [&](std::int64_t batch) {
          test::GraphBuilder g;
          const int x = g.input({batch, 3, 7, 9});
          const int y =
              g.node("Resize", {x}, {resized(g.shape(x), scales)}, resize_attrs(mode, transform, scales))[0];
          return g.finish({y});
        };
        for (std::int64_t batch : {1, 3}) expect_matches_reference(factory, batch);
      }
    }
  }
}

TEST(RuntimeOps, ResizeCubicExcludeOutsideAndOtherRanks) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(3);
    const int x = g.input({batch, 4, 6, 5});
    // On a convolution's output (blocked layout: the kernel reads a plain copy) and on rank 3.
    const int c = g.conv(x, 16, 3, 1);
    const std::vector<double> up{1.0, 1.0, 2.0, 2.0};
    const int a =
        g.node("Resize", {c}, {resized(g.shape(c), up)}, resize_attrs("cubic", "half_pixel", up, -0.5, 1))[0];
    const int r = g.node("Reshape", {x}, {{batch, 24, 5}})[0];
    const std::vector<double> rows{1.0, 0.5, 1.8};
    const int b =
        g.node("Resize", {r}, {resized(g.shape(r), rows)}, resize_attrs("linear", "align_corners", rows))[0];
    const std::vector<double> down{1.0, 1.0, 0.5, 0.4};
    const int d = g.node("Resize", {c}, {resized(g.shape(c), down)},
                         resize_attrs("linear", "asymmetric", down, -0.75, 1))[0];
    return g.finish({a, b, d});
  };
  for (std::int64_t batch : {1, 2, 4}) expect_matches_reference(factory, batch);
}

struct Deconvolution {
  std::int64_t channels, out_channels, kernel, stride, dilation, group, output_padding;
  std::vector<std::int64_t> pads;
  bool bias;
};

TEST(RuntimeOps, ConvTransposeShapes) {
  const std::vector<Deconvolution> cases = {
      {32, 16, 4, 2, 1, 1, 0, {1, 1, 1, 1}, false},  // the pose model's upsampling head
      {8, 6, 3, 2, 1, 1, 1, {1, 1, 1, 1}, true},     // output_padding
      {8, 8, 3, 1, 2, 2, 0, {0, 1, 2, 0}, true},     // dilation, groups, uneven pads
      {6, 6, 3, 3, 1, 6, 0, {0, 0, 0, 0}, true},     // depthwise, stride 3
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("ConvTranspose " + std::to_string(c.channels) + "->" + std::to_string(c.out_channels) +
                 " k" + std::to_string(c.kernel) + " s" + std::to_string(c.stride) + " g" +
                 std::to_string(c.group));
    const GraphFactory factory = [&](std::int64_t batch) {
      test::GraphBuilder g(5);
      const int x = g.input({batch, 3, 9, 8});
      const int in = g.conv(x, c.channels, 3, 1, {{{"op", "relu"}}});  // a blocked input
      const int w = g.constant({c.channels, c.out_channels / c.group, c.kernel, c.kernel}, -0.3F, 0.3F);
      std::vector<int> inputs{in, w};
      if (c.bias) inputs.push_back(g.constant({c.out_channels}));
      Shape out{batch, c.out_channels, 0, 0};
      for (std::size_t d = 0; d < 2; ++d) {
        out[2 + d] = c.stride * (g.shape(in)[2 + d] - 1) + c.output_padding + (c.kernel - 1) * c.dilation +
                     1 - c.pads[d] - c.pads[d + 2];
      }
      const int y = g.node("ConvTranspose", inputs, {out},
                           {{"strides", {c.stride, c.stride}},
                            {"pads", c.pads},
                            {"dilations", {c.dilation, c.dilation}},
                            {"output_padding", {c.output_padding, c.output_padding}},
                            {"group", c.group}})[0];
      // And straight from a graph input (plain).
      const int z = g.node("ConvTranspose", {x, g.constant({3, 4, 2, 2})}, {{batch, 4, 18, 16}},
                           {{"strides", {2, 2}},
                            {"pads", {0, 0, 0, 0}},
                            {"dilations", {1, 1}},
                            {"output_padding", {0, 0}},
                            {"group", 1}})[0];
      return g.finish({y, z});
    };
    for (std::int64_t batch : {1, 3}) expect_matches_reference(factory, batch);
  }
}

// An unfused BatchNormalization (per-channel Binary mul and add) after a grouped ConvTranspose folds into its
// weights and bias (compiler::fold_batch_norm): the same values as unfolded, and no Binary left.
TEST(RuntimeOps, BatchNormFoldsIntoConvTranspose) {
  const auto build = [](bool fold) {
    test::GraphBuilder g(9);
    const int x = g.input({2, 4, 5, 6});
    const int w = g.constant({4, 3, 3, 3}, -0.3F, 0.3F);  // group 2: 6 output channels
    const int d = g.node("ConvTranspose", {x, w}, {{2, 6, 10, 12}},
                         {{"strides", {2, 2}},
                          {"pads", {1, 1, 0, 0}},
                          {"dilations", {1, 1}},
                          {"output_padding", {0, 0}},
                          {"group", 2}})[0];
    const int scaled =
        g.node("Binary", {d, g.constant({6, 1, 1}, 0.5F, 2.0F)}, {g.shape(d)}, {{"alg", "mul"}})[0];
    const int shifted = g.node("Binary", {scaled, g.constant({6, 1, 1})}, {g.shape(d)}, {{"alg", "add"}})[0];
    ir::Graph graph = g.finish({shifted});
    if (fold) compiler::optimize_graph(graph);
    return graph;
  };
  const ir::Graph folded = build(true);
  ASSERT_EQ(folded.nodes.size(), 1U);
  EXPECT_EQ(folded.nodes[0].op, "ConvTranspose");
  const auto input = test::random_values({2, 4, 5, 6}, 4);
  const auto expected = compiler::run_reference(build(false), {input});
  const auto actual = compiler::run_reference(folded, {input});
  ASSERT_EQ(actual[0].size(), expected[0].size());
  for (std::size_t i = 0; i < expected[0].size(); ++i) ASSERT_NEAR(actual[0][i], expected[0][i], 1e-5F) << i;
}

TEST(RuntimeOps, PadConstantReflectEdge) {
  for (const std::string mode : {"constant", "reflect", "edge"}) {
    SCOPED_TRACE("Pad " + mode);
    const GraphFactory factory = [&](std::int64_t batch) {
      test::GraphBuilder g(7);
      const int x = g.input({batch, 3, 6, 7});
      // Spatial padding of a blocked convolution output, uneven, with a crop (negative pad) on one side.
      const int c = g.conv(x, 8, 3, 1);
      const int a = g.node("Pad", {c}, {{batch, 8, 6 + 2 + 3, 7 - 1 + 4}},
                           {{"mode", mode}, {"pads", {0, 0, 2, -1, 0, 0, 3, 4}}, {"value", 0.5}})[0];
      // Channels and rank 3.
      const int r = g.node("Reshape", {x}, {{batch, 18, 7}})[0];
      const int b = g.node("Pad", {r}, {{batch, 18 + 2, 7 + 5}},
                           {{"mode", mode}, {"pads", {0, 1, 5, 0, 1, 0}}, {"value", -2.0}})[0];
      return g.finish({a, b});
    };
    for (std::int64_t batch : {1, 2}) expect_matches_reference(factory, batch);
  }
}

}  // namespace
}  // namespace vapipe
