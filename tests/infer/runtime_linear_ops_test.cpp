// Seeded differential tests of PRelu, MatMul (ONNX MatMul and Gemm) and Reduce (ReduceMean, ReduceMax): the
// oneDNN runtime against the plain reference executor, on blocked convolution outputs and plain tensors, with
// batches 1 to 4 (partial batches of the batch-4 stage included).
#include <gtest/gtest.h>

#include "infer/differential.hpp"
#include "infer/graph_builder.hpp"

namespace vapipe {
namespace {

using test::expect_matches_reference;
using test::GraphFactory;

TEST(RuntimeLinearOps, PReluPerChannelPerAxisAndFullSlopes) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(21);
    const int x = g.input({batch, 8, 9, 6});
    const int c = g.conv(x, 16, 3, 1);  // a blocked layout
    const Shape s = g.shape(c);
    const int per_channel = g.node("PRelu", {c, g.constant({16, 1, 1})}, {s})[0];    // MobileFaceNet's
    const int per_row = g.node("PRelu", {per_channel, g.constant({9, 1})}, {s})[0];  // along H
    const int per_width = g.node("PRelu", {per_row, g.constant({6})}, {s})[0];       // along W, the last axis
    const int full = g.node("PRelu", {x, g.constant({8, 9, 6}, 0.0F, 0.5F)}, {g.shape(x)})[0];
    const int rows = g.node("Reshape", {full}, {{batch, 8, 54}})[0];
    const int plain = g.node("PRelu", {rows, g.constant({8, 1})}, {{batch, 8, 54}})[0];  // 3-D, plain
    return g.finish({per_width, plain});
  };
  for (std::int64_t batch : {1, 3, 4}) expect_matches_reference(factory, batch);
}

TEST(RuntimeLinearOps, MatMulWithConstantAndComputedWeightsAndBroadcastBatches) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(22);
    const int x = g.input({batch, 2, 4, 6});
    // A classifier's Gemm: [batch, 48] x [48, 10] + bias [1, 10].
    const int flat = g.node("Reshape", {x}, {{batch, 48}})[0];
    const int fc = g.node("MatMul", {flat, g.constant({48, 10}), g.constant({1, 10})}, {{batch, 10}})[0];
    // Batched with a 2-D constant (broadcast over both leading dimensions) and a bias per row.
    const int rows = g.node("MatMul", {x, g.constant({6, 5}), g.constant({4, 1})}, {{batch, 2, 4, 5}})[0];
    // Weights with their own batch dimension, broadcast over the sample axis.
    const int grouped = g.node("MatMul", {x, g.constant({2, 6, 3})}, {{batch, 2, 4, 3}})[0];
    // Both operands computed (attention-like x * x^T).
    const int xt = g.node("Transpose", {x}, {{batch, 2, 6, 4}}, {{"perm", {0, 1, 3, 2}}})[0];
    const int gram = g.node("MatMul", {x, xt}, {{batch, 2, 4, 4}})[0];
    // The activation broadcast instead of the weights: [batch, 1, 8, 6] x [3, 6, 5].
    const int single = g.node("Reshape", {x}, {{batch, 1, 8, 6}})[0];
    const int fanned = g.node("MatMul", {single, g.constant({3, 6, 5})}, {{batch, 3, 8, 5}})[0];
    return g.finish({fc, rows, grouped, gram, fanned});
  };
  for (std::int64_t batch : {1, 2, 4}) expect_matches_reference(factory, batch);
}

TEST(RuntimeLinearOps, ReduceMeanAndMaxKeepingOrDroppingAxes) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(23);
    const int x = g.input({batch, 8, 10, 7});
    const int c = g.conv(x, 16, 3, 1);  // a blocked layout
    const auto reduce = [&](int in, const char* alg, std::vector<std::int64_t> axes, int keepdims,
                            const Shape& out) {
      return g.node("Reduce", {in}, {out}, {{"alg", alg}, {"axes", axes}, {"keepdims", keepdims}})[0];
    };
    const int spatial_mean = reduce(c, "mean", {2, 3}, 1, {batch, 16, 1, 1});  // GlobalAveragePool-like
    const int channel_max = reduce(c, "max", {1}, 0, {batch, 10, 7});
    const int mixed_mean = reduce(x, "mean", {1, 3}, 0, {batch, 10});
    const int last_max = reduce(channel_max, "max", {2}, 1, {batch, 10, 1});
    const int unit_axis = reduce(spatial_mean, "max", {3}, 0, {batch, 16, 1});  // nothing to reduce
    return g.finish({spatial_mean, channel_max, mixed_mean, last_max, unit_axis});
  };
  for (std::int64_t batch : {1, 3, 4}) expect_matches_reference(factory, batch);
}

TEST(RuntimeLinearOps, TileRepeatsAndExpandsBroadcastDimensions) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(24);
    const int x = g.input({batch, 3, 1, 5});
    const int c = g.conv(x, 4, 1, 1);  // a blocked layout, read plain
    const int tiled = g.node("Tile", {c}, {{batch, 8, 2, 15}}, {{"shape", {batch, 8, 2, 15}}})[0];
    const int expanded = g.node("Tile", {x}, {{batch, 3, 6, 5}}, {{"shape", {batch, 3, 6, 5}}})[0];
    const int grid = g.node("Tile", {g.constant({6, 1})}, {{6, 5}}, {{"shape", {6, 5}}})[0];  // of a constant
    const int shifted = g.node("Binary", {expanded, grid}, {{batch, 3, 6, 5}}, {{"alg", "add"}})[0];
    return g.finish({tiled, shifted});
  };
  for (std::int64_t batch : {1, 3, 4}) expect_matches_reference(factory, batch);
}

TEST(RuntimeLinearOps, ArgMaxFirstAndLastOfEqualValues) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(25);
    const int x = g.input({batch, 6, 5, 4});
    const int c = g.conv(x, 8, 3, 1);  // a blocked layout, read plain
    const auto argmax = [&](int in, std::int64_t axis, int keepdims, int last, const Shape& out) {
      return g.node("ArgMax", {in}, {out},
                    {{"axis", axis}, {"keepdims", keepdims}, {"select_last_index", last}})[0];
    };
    const int channels = argmax(c, 1, 0, 0, {batch, 5, 4});
    // Clipped values tie often: the first and the last of equal maxima differ.
    const int clipped =
        g.node("Eltwise", {x}, {g.shape(x)}, {{"alg", "clip"}, {"alpha", -0.2}, {"beta", 0.2}})[0];
    const int first = argmax(clipped, 3, 1, 0, {batch, 6, 5, 1});
    const int last = argmax(clipped, 3, 1, 1, {batch, 6, 5, 1});
    return g.finish({channels, first, last});
  };
  for (std::int64_t batch : {1, 3, 4}) expect_matches_reference(factory, batch);
}

}  // namespace
}  // namespace vapipe
