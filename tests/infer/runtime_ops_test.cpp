// Seeded differential tests: the oneDNN runtime against the plain reference executor, op by op and on
// small networks that exercise layouts (blocked/plain), in-place sums, aliasing views and partial batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "compiler/reference_executor.hpp"
#include "core/error.hpp"
#include "infer/differential.hpp"
#include "infer/graph_builder.hpp"
#include "support/process.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe {
namespace {

using test::expect_matches_reference;
using test::GraphFactory;
using test::make_network;
using test::random_values;

TEST(RuntimeOps, ConvolutionsWithPostOpsInBlockedLayouts) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g;
    const int x = g.input({batch, 3, 37, 41});
    const int a = g.conv(x, 16, 6, 2, {{{"op", "swish"}, {"alpha", 1.0}}});
    const int b = g.conv(a, 32, 3, 2, {{{"op", "relu"}}});
    const int c = g.conv(b, 24, 1, 1, {{{"op", "leaky_relu"}, {"alpha", 0.1}}});
    const int d = g.conv(c, 24, 3, 1, {{{"op", "sigmoid"}}}, -1, 24);  // depthwise
    const int e = g.conv(d, 255, 1, 1);
    return g.finish({e, c});
  };
  for (std::int64_t batch : {1, 3, 4}) expect_matches_reference(factory, batch);
}

// OMP_THREAD_LIMIT below the context's threads (a user's setting, or TSan's runs): omp_get_max_threads()
// ignores the limit, oneDNN sized its work for the larger team and part of each output stayed unwritten.
// The limit is read once per process, so the test above runs again in a child process under it.
TEST(RuntimeOps, ConvolutionsAreRightUnderAnOpenMpThreadLimit) {
  if (std::getenv("OMP_THREAD_LIMIT") != nullptr) GTEST_SKIP() << "already under OMP_THREAD_LIMIT";
  // Under qemu-user /proc/self/exe reads as the emulated binary, which only the emulator can start.
  const char* emulator = std::getenv("VAPIPE_TEST_EMULATOR");
  const std::string command =
      "OMP_THREAD_LIMIT=1 " + std::string(emulator != nullptr ? emulator : "") + " '" +
      std::filesystem::read_symlink("/proc/self/exe").string() +
      "' --gtest_filter=RuntimeOps.ConvolutionsWithPostOpsInBlockedLayouts --gtest_brief=1 2>&1";
  const auto child = test::run_shell(command);
  EXPECT_EQ(child.exit_code, 0) << child.out;
  EXPECT_NE(child.out.find("1 test"), std::string::npos) << "the convolution test did not run: " << child.out;
}

TEST(RuntimeOps, ResidualSumInPlaceAndCopied) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g;
    const int x = g.input({batch, 16, 20, 20});
    const int a = g.conv(x, 32, 3, 1, {{{"op", "swish"}, {"alpha", 1.0}}});
    // a dies at the sum: its bytes are reused in place.
    const int b =
        g.conv(g.conv(a, 32, 1, 1), 32, 3, 1, {{{"op", "swish"}, {"alpha", 1.0}}, {{"op", "sum"}}}, a);
    // b is read again afterwards: the sum must work on a copy.
    const int c = g.conv(b, 32, 3, 1, {{{"op", "sum"}}}, b);
    const int d = g.node("Binary", {c, b}, {g.shape(c)}, {{"alg", "add"}})[0];
    return g.finish({d});
  };
  for (std::int64_t batch : {1, 2}) expect_matches_reference(factory, batch);
}

TEST(RuntimeOps, YoloNeckOps) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g;
    const int x = g.input({batch, 32, 16, 16});
    const int a = g.conv(x, 32, 1, 1);
    const nlohmann::json pool = {{"kernel", {5, 5}}, {"strides", {1, 1}}, {"pads", {2, 2, 2, 2}}};
    const int p1 = g.node("MaxPool", {a}, {g.shape(a)}, pool)[0];
    const int p2 = g.node("MaxPool", {p1}, {g.shape(a)}, pool)[0];
    const int cat = g.node("Concat", {a, p1, p2}, {{batch, 96, 16, 16}}, {{"axis", 1}})[0];
    const int up = g.node("Resize", {cat}, {{batch, 96, 32, 32}},
                          {{"mode", "nearest"},
                           {"coordinate_transformation_mode", "asymmetric"},
                           {"nearest_mode", "floor"}})[0];
    const auto halves =
        g.node("Split", {up}, {{batch, 48, 32, 32}, {batch, 48, 32, 32}}, {{"axis", 1}, {"sizes", {48, 48}}});
    const int scale = g.constant({1, 48, 1, 1});
    const int scaled = g.node("Binary", {halves[1], scale}, {{batch, 48, 32, 32}}, {{"alg", "mul"}})[0];
    const int sum = g.node("Binary", {halves[0], scaled}, {{batch, 48, 32, 32}}, {{"alg", "sub"}})[0];
    const int avg = g.node("AveragePool", {sum}, {{batch, 48, 16, 16}},
                           {{"kernel", {2, 2}}, {"strides", {2, 2}}, {"pads", {0, 0, 0, 0}}})[0];
    const int odd = g.node("Resize", {avg}, {{batch, 48, 24, 24}},
                           {{"mode", "nearest"},
                            {"coordinate_transformation_mode", "half_pixel"},
                            {"nearest_mode", "round_prefer_floor"}})[0];
    return g.finish({odd, p2});
  };
  for (std::int64_t batch : {1, 4}) expect_matches_reference(factory, batch);
}

TEST(RuntimeOps, HeadShapeOps) {
  // The YOLOv5 Detect tail and a ShuffleNet channel shuffle: reshape, transpose, split, gather, slice,
  // eltwise and softmax on plain 5-D and 3-D tensors.
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g;
    const int x = g.input({batch, 3 * 7, 4, 5});
    const int r = g.node("Reshape", {x}, {{batch, 3, 7, 4, 5}})[0];
    const int t = g.node("Transpose", {r}, {{batch, 3, 4, 5, 7}}, {{"perm", {0, 1, 3, 4, 2}}})[0];
    const int s = g.node("Eltwise", {t}, {{batch, 3, 4, 5, 7}}, {{"alg", "sigmoid"}})[0];
    const auto parts = g.node("Split", {s}, {{batch, 3, 4, 5, 2}, {batch, 3, 4, 5, 2}, {batch, 3, 4, 5, 3}},
                              {{"axis", 4}, {"sizes", {2, 2, 3}}});
    const int xy = g.node("Eltwise", {parts[0]}, {{batch, 3, 4, 5, 2}},
                          {{"alg", "linear"}, {"alpha", 2.0}, {"beta", -0.5}})[0];
    const int grid = g.constant({1, 3, 4, 5, 2}, 0.0F, 5.0F);
    const int shifted = g.node("Binary", {xy, grid}, {{batch, 3, 4, 5, 2}}, {{"alg", "add"}})[0];
    const int wh = g.node("Eltwise", {parts[1]}, {{batch, 3, 4, 5, 2}},
                          {{"alg", "pow"}, {"alpha", 1.0}, {"beta", 2.0}})[0];
    const int joined = g.node("Concat", {shifted, wh, parts[2]}, {{batch, 3, 4, 5, 7}}, {{"axis", 4}})[0];
    const int rows = g.node("Reshape", {joined}, {{batch, 60, 7}})[0];
    const int soft = g.node("Softmax", {rows}, {{batch, 60, 7}}, {{"axis", 2}})[0];
    const int picked = g.node("Gather", {soft}, {{batch, 2, 7}},
                              {{"axis", 1}, {"indices", {3, 59}}, {"indices_shape", {2}}})[0];
    const int strided = g.node("Slice", {soft}, {{batch, 30, 3}},
                               {{"starts", {0, 1, 1}}, {"ends", {batch, 60, 7}}, {"steps", {1, 2, 2}}})[0];
    return g.finish({joined, picked, strided});
  };
  for (std::int64_t batch : {1, 2}) expect_matches_reference(factory, batch, 1);
}

TEST(RuntimeOps, EveryEltwiseAlgAndBinaryMaxMin) {
  // Each elementwise function of the IR alone (not fused into a convolution): oneDNN's eltwise kernels, the
  // two-step hardsigmoid and the std::log kernel against the reference. The input is shifted to [0.05, 2.05)
  // for the algs defined on positive values only.
  const std::vector<std::pair<std::string, nlohmann::json>> algs = {
      {"relu", {}},
      {"leaky_relu", {{"alpha", 0.1}}},
      {"sigmoid", {}},
      {"swish", {{"alpha", 1.0}}},
      {"tanh", {}},
      {"exp", {}},
      {"log", {}},
      {"sqrt", {}},
      {"square", {}},
      {"abs", {}},
      {"clip", {{"alpha", -0.3}, {"beta", 0.4}}},
      {"pow", {{"alpha", 1.5}, {"beta", 2.5}}},
      {"linear", {{"alpha", -2.0}, {"beta", 0.5}}},
      {"hardswish", {}},
      {"hardsigmoid", {{"alpha", 0.2}, {"beta", 0.5}}}};
  for (const auto& [alg, extra] : algs) {
    const bool positive_only = alg == "log" || alg == "sqrt" || alg == "pow";
    const GraphFactory factory = [&, alg = alg, extra = extra](std::int64_t batch) {
      test::GraphBuilder g;
      const Shape shape{batch, 8, 6, 7};
      int x = g.input(shape);
      if (positive_only)
        x = g.node("Eltwise", {x}, {shape}, {{"alg", "linear"}, {"alpha", 1.0}, {"beta", 1.05}})[0];
      nlohmann::json attrs = {{"alg", alg}};
      if (extra.is_object()) attrs.update(extra);
      const int y = g.node("Eltwise", {x}, {shape}, attrs)[0];
      const int other = g.constant({1, 8, 1, 1});
      const int top = g.node("Binary", {y, other}, {shape}, {{"alg", "max"}})[0];
      const int bottom = g.node("Binary", {y, other}, {shape}, {{"alg", "min"}})[0];
      return g.finish({y, top, bottom});
    };
    SCOPED_TRACE(alg);
    expect_matches_reference(factory, 3);
  }
}

TEST(RuntimeOps, SoftmaxAndLogSoftmaxOnEveryAxis) {
  // The innermost axis runs on oneDNN; the others on softmax_across (YOLOv8's DFL: [N, 16, 4, A], axis 1),
  // whose chunks of 256 inner values end mid-row here (4 * 130 = 520 inner values).
  for (const bool log : {false, true}) {
    for (const int axis : {1, 2, 3}) {
      const GraphFactory factory = [&](std::int64_t batch) {
        test::GraphBuilder g;
        const int x = g.input({batch, 16, 4, 130});
        const int scaled = g.node("Eltwise", {x}, {{batch, 16, 4, 130}},
                                  {{"alg", "linear"}, {"alpha", 8.0}, {"beta", 0.0}})[0];
        return g.finish(
            {g.node("Softmax", {scaled}, {{batch, 16, 4, 130}}, {{"axis", axis}, {"log", log}})[0]});
      };
      SCOPED_TRACE(fmt::format("axis {}, log {}", axis, log));
      for (std::int64_t batch : {1, 3}) expect_matches_reference(factory, batch);
    }
  }
}

TEST(RuntimeOps, BinaryOnThePlainKernelPowAndTwoBroadcastOperands) {
  // What oneDNN's binary cannot do: pow, and a first operand that is broadcast too ([B, 3, 1, 5] - [4, 1]).
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g;
    const int x = g.input({batch, 3, 1, 5});
    const int positive = g.node("Eltwise", {x}, {{batch, 3, 1, 5}}, {{"alg", "abs"}})[0];
    const int exponent = g.constant({1, 3, 1, 1}, 0.5F, 2.5F);
    const int powered = g.node("Binary", {positive, exponent}, {{batch, 3, 1, 5}}, {{"alg", "pow"}})[0];
    const int column = g.constant({4, 1}, -1.0F, 1.0F);
    const int difference = g.node("Binary", {powered, column}, {{batch, 3, 4, 5}}, {{"alg", "sub"}})[0];
    const int quotient = g.node("Binary", {column, difference}, {{batch, 3, 4, 5}}, {{"alg", "div"}})[0];
    return g.finish({difference, quotient});
  };
  for (std::int64_t batch : {1, 2}) expect_matches_reference(factory, batch);
}

TEST(RuntimeOps, DifferentNetworksRunConcurrentlyFromDifferentThreads) {
  // Two networks, one context each, on two threads at once: each must produce exactly what it produces
  // alone (contexts share no mutable state: own arena, scratchpad and primitives).
  const GraphFactory first = [](std::int64_t batch) {
    test::GraphBuilder g(11);
    const int x = g.input({batch, 16, 24, 24});
    return g.finish({g.conv(g.conv(x, 32, 3, 1, {{{"op", "swish"}, {"alpha", 1.0}}}), 16, 3, 2)});
  };
  const GraphFactory second = [](std::int64_t batch) {
    test::GraphBuilder g(12);
    const int x = g.input({batch, 8, 32, 32});
    const int a = g.conv(x, 16, 3, 1, {{{"op", "relu"}}});
    return g.finish({g.node("MaxPool", {a}, {{batch, 16, 16, 16}},
                            {{"kernel", {2, 2}}, {"strides", {2, 2}}, {"pads", {0, 0, 0, 0}}})[0]});
  };
  const auto networks = std::vector{make_network(first, {1}), make_network(second, {1})};
  std::vector<std::vector<float>> inputs;
  std::vector<std::vector<float>> alone;
  for (const auto& network : networks) {
    const Shape shape = network->inputs(1)[0].shape;
    inputs.push_back(random_values(shape, 9));
    ExecutionContext context(network, {.threads = 1});
    context.run({{inputs.back().data(), DType::kF32, shape}});
    const auto* data = static_cast<const float*>(context.output(0).data);
    alone.emplace_back(data, data + shape_volume(context.output(0).shape));
  }
  std::vector<int> mismatches(networks.size(), 0);
  std::vector<std::thread> threads;
  for (std::size_t n = 0; n < networks.size(); ++n) {
    threads.emplace_back([&, n] {
      ExecutionContext context(networks[n], {.threads = 1});
      const Shape shape = networks[n]->inputs(1)[0].shape;
      for (int run = 0; run < 20; ++run) {
        context.run({{inputs[n].data(), DType::kF32, shape}});
        const auto* data = static_cast<const float*>(context.output(0).data);
        if (!std::equal(alone[n].begin(), alone[n].end(), data)) ++mismatches[n];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(networks.size(), 0));
}

// Raw YOLO-style heads (a 1x1 conv read through a channels-last Transpose) with a HeadGate: every anchor's
// gate channel equals the whole computation's, an anchor above the gate equals it entirely, and an anchor
// below it leaves its other channels as the caller's buffer held them. A head with a post-op, and the
// same graph without a gate, are computed whole.
TEST(RuntimeOps, GatedHeadsComputeWhatTheDecoderReads) {
  constexpr std::int64_t kPerAnchor = 7, kAnchors = 3, kChannels = 16, kHeight = 9, kWidth = 11;
  constexpr std::int64_t kOut = kPerAnchor * kAnchors;
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g(5);
    const int x = g.input({batch, kChannels, kHeight, kWidth});
    const int trunk = g.conv(x, kChannels, 3, 1, {{{"op", "relu"}}});
    const auto head = [&](nlohmann::json post_ops) {
      const int y = g.conv(trunk, kOut, 1, 1, std::move(post_ops));
      return g.node("Transpose", {y}, {{batch, kHeight, kWidth, kOut}}, {{"perm", {0, 2, 3, 1}}})[0];
    };
    const int gated = head(nlohmann::json::array());
    const int with_post_op = head({{{"op", "sigmoid"}}});
    return g.finish({gated, with_post_op});
  };
  const auto network = make_network(factory, {1, 4});
  const auto input = random_values({4, kChannels, kHeight, kWidth}, 21);
  const ConstTensorView in{input.data(), DType::kF32, {4, kChannels, kHeight, kWidth}};
  ExecutionContext whole(network, {.threads = 1});
  whole.run({in});
  const auto* expected = static_cast<const float*>(whole.output(0).data);
  const auto* expected_post = static_cast<const float*>(whole.output(1).data);
  const std::size_t count = static_cast<std::size_t>(4 * kHeight * kWidth * kOut);

  // The gate at the median of the gate channels: about half the anchors pass.
  std::vector<float> gates;
  for (std::size_t i = 4; i < count; i += kPerAnchor) gates.push_back(expected[i]);
  std::nth_element(gates.begin(), gates.begin() + static_cast<std::ptrdiff_t>(gates.size() / 2), gates.end());
  const float gate_logit = gates[gates.size() / 2];

  for (const int threads : {1, 2}) {
    SCOPED_TRACE(threads);
    ExecutionContext gated(
        network,
        {.threads = threads,
         .head_gate = {.outputs_per_anchor = kPerAnchor, .gate_channel = 4, .gate_logit = gate_logit}});
    constexpr float kUntouched = -12345.0F;
    std::vector<float> out(count, kUntouched), out_post(count, kUntouched);
    const TensorView views[] = {{out.data(), DType::kF32, {4, kHeight, kWidth, kOut}},
                                {out_post.data(), DType::kF32, {4, kHeight, kWidth, kOut}}};
    gated.run(std::span(&in, 1), views);
    std::size_t passed = 0, skipped = 0;
    for (std::size_t anchor = 0; anchor < count / kPerAnchor; ++anchor) {
      const std::size_t first = anchor * kPerAnchor;
      const float gate = out[first + 4];
      ASSERT_NEAR(gate, expected[first + 4], 1e-4F) << "anchor " << anchor;
      const bool computed = gate > gate_logit;
      (computed ? passed : skipped) += 1;
      for (std::size_t c = 0; c < kPerAnchor; ++c) {
        if (c == 4) continue;
        if (computed) {
          ASSERT_NEAR(out[first + c], expected[first + c], 1e-4F) << "anchor " << anchor << " channel " << c;
        } else {
          ASSERT_EQ(out[first + c], kUntouched) << "anchor " << anchor << " channel " << c;
        }
      }
    }
    EXPECT_GT(passed, count / kPerAnchor / 4);
    EXPECT_GT(skipped, count / kPerAnchor / 4);
    for (std::size_t i = 0; i < count; ++i) ASSERT_NEAR(out_post[i], expected_post[i], 1e-5F) << i;
  }
}

TEST(RuntimeOps, CallerOwnedOutputsAndWrongShapes) {
  const GraphFactory factory = [](std::int64_t batch) {
    test::GraphBuilder g;
    const int x = g.input({batch, 16, 8, 8});
    return g.finish({g.conv(x, 16, 3, 1)});
  };
  ExecutionContext context(make_network(factory, {1, 4}), {.threads = 1});
  std::vector<float> input(4 * 16 * 8 * 8, 0.5F);
  std::vector<float> output(4 * 16 * 8 * 8, -1.0F);
  const ConstTensorView in{input.data(), DType::kF32, {4, 16, 8, 8}};
  const TensorView out{output.data(), DType::kF32, {4, 16, 8, 8}};
  context.run(std::span(&in, 1), std::span(&out, 1));
  EXPECT_EQ(context.output(0).data, output.data());  // written in place, not copied
  context.run({in});
  EXPECT_EQ(std::memcmp(context.output(0).data, output.data(), output.size() * sizeof(float)), 0);

  const ConstTensorView too_big{input.data(), DType::kF32, {5, 16, 8, 8}};
  EXPECT_THROW(context.run({too_big}), Error);
  const ConstTensorView wrong_channels{input.data(), DType::kF32, {1, 8, 8, 8}};
  EXPECT_THROW(context.run({wrong_channels}), Error);
}

}  // namespace
}  // namespace vapipe
