// Seeded differential tests of the int8 and bf16 runtime paths (oneDNN) against the reference executor,
// which simulates the same quantization in float (compiler/reference_executor.cpp: fake_quantize,
// round_to_bf16). Both compute the same integer accumulations; they may differ only where float rounding
// in the scale/post-op chain (oneDNN's vectorized exp in swish, fused multiply order) flips a
// round-to-nearest decision of a value within ~1e-6 of a .5 boundary. Such a flip moves one element by
// one quantization step (1/127 of its tensor's range) and is diluted by later layers, so a correct path
// has a few elements off by about one step and a mean error far below one step; a wrong scale, bias or
// post-op order moves most elements by many steps.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include "compiler/compiler.hpp"
#include "compiler/precision.hpp"
#include "compiler/reference_executor.hpp"
#include "core/error.hpp"
#include "infer/graph_builder.hpp"
#include "ops/int8_without_vnni.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe {
namespace {

std::vector<float> random_values(const Shape& shape, unsigned seed, float low, float high) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(static_cast<std::size_t>(shape_volume(shape)));
  for (auto& value : values) value = distribution(generator);
  return values;
}

// A YOLO-like trunk: image input (u8 quantization), stride-2 convolutions with swish, a residual
// bottleneck (sum post-op), a depthwise conv, max pooling, nearest upsampling, concatenations of
// differently ranged branches (one scale group), a float-only op (sigmoid eltwise) forcing an f32
// boundary, and two float head outputs.
ir::Graph trunk(std::int64_t batch, unsigned seed) {
  test::GraphBuilder g(seed);
  const nlohmann::json swish = {{{"op", "swish"}, {"alpha", 1.0}}};
  const int x = g.input({batch, 3, 30, 46});
  const int a = g.conv(x, 16, 6, 2, swish);
  const int b = g.conv(a, 32, 3, 2, swish);
  const int c = g.conv(b, 16, 1, 1, swish);
  const int d = g.conv(c, 16, 3, 1, {{{"op", "swish"}, {"alpha", 1.0}}, {{"op", "sum"}}}, c);
  const int e = g.conv(d, 16, 3, 1, swish, -1, 16);
  const int pooled = g.node("MaxPool", {e}, {g.shape(e)},
                            {{"kernel", {5, 5}}, {"strides", {1, 1}}, {"pads", {2, 2, 2, 2}}})[0];
  const Shape cat_shape{batch, 48, g.shape(b)[2], g.shape(b)[3]};
  const int cat = g.node("Concat", {b, pooled}, {cat_shape}, {{"axis", 1}})[0];
  const int f = g.conv(cat, 32, 3, 2, swish);
  const Shape up_shape{batch, 32, g.shape(f)[2] * 2, g.shape(f)[3] * 2};
  const int up = g.node("Resize", {f}, {up_shape}, {{"mode", "nearest"}})[0];
  const int cat2 = g.node("Concat", {up, d}, {{batch, 48, up_shape[2], up_shape[3]}}, {{"axis", 1}})[0];
  const int h = g.conv(cat2, 24, 3, 1, swish);
  const int gate = g.node("Eltwise", {h}, {g.shape(h)}, {{"alg", "sigmoid"}})[0];
  const int head1 = g.conv(gate, 18, 1, 1);
  const int head2 = g.conv(f, 18, 1, 1);
  return g.finish({head1, head2});
}

// Max calibration over the reference executor's FP32 values of every activation (a plain stand-in for
// calibration.cpp, which is tested on its own).
std::map<std::string, compiler::TensorRange> ranges_of(const ir::Graph& graph,
                                                       const std::vector<std::vector<float>>& inputs) {
  ir::Graph everything = graph;
  everything.outputs.clear();
  for (std::size_t t = 0; t < graph.tensors.size(); ++t) {
    if (!graph.tensors[t].is_constant()) everything.outputs.push_back(static_cast<int>(t));
  }
  const auto values = compiler::run_reference(everything, inputs);
  std::map<std::string, compiler::TensorRange> ranges;
  for (std::size_t i = 0; i < values.size(); ++i) {
    compiler::TensorRange range;
    range.min = *std::min_element(values[i].begin(), values[i].end());
    range.max = *std::max_element(values[i].begin(), values[i].end());
    range.threshold = std::max(std::fabs(range.min), std::fabs(range.max));
    ranges[everything.tensors[static_cast<std::size_t>(everything.outputs[i])].name] = range;
  }
  return ranges;
}

struct Comparison {
  double max_error = 0.0;   // relative to max|reference|
  double mean_error = 0.0;  // relative to max|reference|
};

Comparison compare(const std::vector<float>& reference, const float* actual) {
  double max_reference = 1e-12;
  for (float v : reference) max_reference = std::max(max_reference, static_cast<double>(std::fabs(v)));
  Comparison result;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double error = std::fabs(static_cast<double>(actual[i]) - static_cast<double>(reference[i]));
    result.max_error = std::max(result.max_error, error / max_reference);
    result.mean_error += error / max_reference;
  }
  result.mean_error /= static_cast<double>(reference.size());
  return result;
}

// `graph` converted to `precision` (max calibration on `inputs`, quantized outputs), run by the runtime and
// compared per output with the reference executor's simulation of that precision and with float.
struct SimulationComparison {
  std::size_t converted = 0;  // convolutions apply_precision converted
  std::vector<Comparison> to_reference;
  std::vector<Comparison> to_float;
};

SimulationComparison run_against_simulation(ir::Graph graph, const std::vector<std::vector<float>>& inputs,
                                            const std::string& precision, std::int64_t batch, int threads) {
  const compiler::ReferenceOptions simulation{.int8_without_vnni = ops::int8_pair_sums_saturate()};
  const Shape input_shape = graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape;
  compiler::PrecisionOptions options;
  options.precision = precision;
  options.ranges = ranges_of(graph, inputs);
  options.quantize_outputs = true;  // int8 heads with f32 outputs are part of what is tested
  const auto float_outputs = compiler::run_reference(graph, inputs);
  SimulationComparison result;
  result.converted = compiler::apply_precision(graph, options);
  const auto expected = compiler::run_reference(graph, inputs, simulation);
  auto network = std::make_shared<ir::Network>();
  network->name = "simulated";
  network->precision = precision;
  network->stages.push_back({batch, graph});
  ExecutionContext context(std::make_shared<const Network>(network), {.threads = threads});
  context.run({ConstTensorView{inputs[0].data(), DType::kF32, input_shape}});
  for (std::size_t o = 0; o < expected.size(); ++o) {
    const auto* actual = static_cast<const float*>(context.output(o).data);
    result.to_reference.push_back(compare(expected[o], actual));
    result.to_float.push_back(compare(float_outputs[o], actual));
  }
  return result;
}

struct Case {
  std::string precision;
  double max_error;
  double mean_error;
};

class LowPrecision : public ::testing::TestWithParam<Case> {};

TEST_P(LowPrecision, RuntimeMatchesSimulatedReference) {
  const Case& param = GetParam();
  // Without avx512_core_bf16 oneDNN 2.6 refuses bf16 convolutions. int8 runs everywhere: without VNNI the
  // simulation follows the runtime's halved weights (ops/int8_without_vnni.hpp).
  if (param.precision == "bf16" && !cpu_has_native(param.precision))
    GTEST_SKIP() << "this CPU (" << cpu_isa() << ") has no native " << param.precision << " kernels";
  for (unsigned seed : {1U, 2U, 3U}) {
    for (std::int64_t batch : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "seed " << seed << " batch " << batch);
      const ir::Graph graph = trunk(batch, seed);
      const Shape input_shape = graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape;
      const std::vector<std::vector<float>> inputs{random_values(input_shape, 100 + seed, 0.0F, 1.0F)};
      const auto result = run_against_simulation(graph, inputs, param.precision, batch, 2);
      EXPECT_EQ(result.converted, 9U);  // every convolution
      for (std::size_t o = 0; o < result.to_reference.size(); ++o) {
        EXPECT_LE(result.to_reference[o].max_error, param.max_error) << "output " << o;
        EXPECT_LE(result.to_reference[o].mean_error, param.mean_error) << "output " << o;
        // The simulation is not trivially equal to float: the reduced-precision error is much larger
        // than the runtime's distance from the simulation.
        EXPECT_GT(result.to_float[o].mean_error, 4.0 * result.to_reference[o].mean_error) << "output " << o;
      }
    }
  }
}

// int8: one step of a stored activation is 1/127 (0.008) of its range; the worst element may be off by
// about one step, the mean must stay 100x below that (measured: max ~1e-7, flips are rare at this size).
// bf16: one ulp is 2^-8 (0.004) relative; oneDNN accumulates in f32 in another order than the double
// reference, which flips bf16 roundings of stored activations (measured: max ~1e-3, mean ~2e-5). The
// reduced-precision error itself (runtime vs float) is 0.002-0.006 (int8) and ~0.001 (bf16) in mean.
INSTANTIATE_TEST_SUITE_P(Precisions, LowPrecision,
                         ::testing::Values(Case{"int8", 0.008, 1e-4}, Case{"bf16", 0.004, 1e-4}),
                         [](const auto& test_info) { return test_info.param.precision; });

// The int8 trunk above, taken apart: one kind of convolution per graph, so that a kernel family that
// disagrees with the simulation on some CPU (oneDNN picks other kernels per ISA and per shape) is named.
TEST(LowPrecision, EveryInt8ConvolutionKindMatchesSimulatedReference) {
  const nlohmann::json swish = {{{"op", "swish"}, {"alpha", 1.0}}};
  const nlohmann::json relu = {{{"op", "relu"}}};
  struct Kind {
    const char* name;
    float input_low;  // < 0: the first convolution reads s8, else u8
    std::function<int(test::GraphBuilder&, int)> build;
  };
  const std::vector<Kind> kinds = {
      {"u8 input, 3x3", 0.0F, [](test::GraphBuilder& g, int x) { return g.conv(x, 16, 3, 1); }},
      {"s8 input, 3x3", -1.0F, [](test::GraphBuilder& g, int x) { return g.conv(x, 16, 3, 1); }},
      {"s8 input, 1x1", -1.0F, [](test::GraphBuilder& g, int x) { return g.conv(x, 16, 1, 1); }},
      {"u8 input, 6x6 stride 2, swish", 0.0F,
       [&](test::GraphBuilder& g, int x) { return g.conv(x, 16, 6, 2, swish); }},
      {"s8 -> s8 chain, relu", -1.0F,
       [&](test::GraphBuilder& g, int x) { return g.conv(g.conv(x, 16, 3, 1, relu), 16, 3, 1); }},
      {"s8 -> s8 chain, swish", -1.0F,
       [&](test::GraphBuilder& g, int x) { return g.conv(g.conv(x, 16, 3, 1, swish), 16, 3, 1); }},
      {"residual sum", -1.0F,
       [&](test::GraphBuilder& g, int x) {
         const int a = g.conv(x, 16, 1, 1, swish);
         return g.conv(g.conv(a, 16, 3, 1, {{{"op", "swish"}, {"alpha", 1.0}}, {{"op", "sum"}}}, a), 16, 1,
                       1);
       }},
      {"depthwise", -1.0F,
       [&](test::GraphBuilder& g, int x) {
         return g.conv(g.conv(x, 16, 1, 1, swish), 16, 3, 1, swish, -1, 16);
       }},
  };
  for (const auto& kind : kinds) {
    SCOPED_TRACE(kind.name);
    test::GraphBuilder g(5);
    const int x = g.input({1, 16, 12, 14});
    const int y = kind.build(g, x);
    const ir::Graph graph = g.finish({y});
    const Shape input_shape = graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape;
    const std::vector<std::vector<float>> inputs{random_values(input_shape, 11, kind.input_low, 1.0F)};
    const auto result = run_against_simulation(graph, inputs, "int8", 1, 1);
    EXPECT_LE(result.to_reference[0].max_error, 0.008) << "mean " << result.to_reference[0].mean_error;
    EXPECT_LE(result.to_reference[0].mean_error, 1e-4);
    EXPECT_GT(result.to_float[0].mean_error, 4.0 * result.to_reference[0].mean_error);
  }
}

TEST(LowPrecision, TensorsAndScalesChosenByConsumers) {
  ir::Graph graph = trunk(1, 1);
  const std::vector<std::vector<float>> inputs{
      random_values(graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape, 7, 0.0F, 1.0F)};
  compiler::PrecisionOptions options;
  options.precision = "int8";
  options.ranges = ranges_of(graph, inputs);
  ir::Graph default_heads = graph;
  compiler::apply_precision(default_heads, options);
  for (int output : default_heads.outputs) {  // by default the convolutions writing outputs stay float
    for (const auto& node : default_heads.nodes) {
      if (node.outputs[0] == output) {
        EXPECT_FALSE(node.attrs.contains("precision")) << node.name;
      }
    }
  }
  options.quantize_outputs = true;
  compiler::apply_precision(graph, options);
  int s8_tensors = 0;
  for (const auto& node : graph.nodes) {
    const auto& out = graph.tensors[static_cast<std::size_t>(node.outputs[0])];
    if (node.op == "Conv") {
      EXPECT_EQ(node.attrs.at("precision"), "int8") << node.name;
      EXPECT_EQ(graph.tensors[static_cast<std::size_t>(node.inputs[1])].dtype, DType::kS8);
    }
    if (node.op == "Concat") {  // a scale group: inputs and output share one scale
      for (int input : node.inputs)
        EXPECT_EQ(graph.tensors[static_cast<std::size_t>(input)].scale, out.scale) << node.name;
    }
    if (node.op == "Eltwise") {  // float-only consumer: its input and output stay f32
      EXPECT_EQ(graph.tensors[static_cast<std::size_t>(node.inputs[0])].dtype, DType::kF32);
      EXPECT_EQ(out.dtype, DType::kF32);
    }
    if (out.dtype == DType::kS8) ++s8_tensors;
  }
  EXPECT_GE(s8_tensors, 8);
  for (int output : graph.outputs)
    EXPECT_EQ(graph.tensors[static_cast<std::size_t>(output)].dtype, DType::kF32);
  // The image input is never negative: the first convolution quantizes it to u8.
  EXPECT_EQ(graph.nodes.front().attrs.at("input_type"), "u8");
}

TEST(LowPrecision, KeepFloatLeavesNamedLayersAndRejectsUnknownNames) {
  ir::Graph graph = trunk(1, 1);
  compiler::PrecisionOptions options;
  options.precision = "int8";
  options.ranges = ranges_of(graph, {random_values(graph.tensors[0].shape, 7, 0.0F, 1.0F)});
  options.keep_float = {graph.nodes[1].name};
  options.quantize_outputs = true;
  const std::string kept = graph.nodes[1].name;
  EXPECT_EQ(compiler::apply_precision(graph, options), 8U);
  for (const auto& node : graph.nodes) {
    if (node.name == kept) {
      EXPECT_FALSE(node.attrs.contains("precision"));
    }
  }
  ir::Graph other = trunk(1, 1);
  options.keep_float = {"no-such-node"};
  EXPECT_THROW(compiler::apply_precision(other, options), Error);
}

TEST(LowPrecision, WeightQuantizationIsPerChannelAndSymmetric) {
  const std::vector<float> weights{0.5F, -1.0F, 0.25F, 0.0F, 0.0F, 0.0F, 2.0F, -2.0F, 1.0F};
  std::vector<std::int8_t> q;
  std::vector<float> scales;
  compiler::quantize_weights(weights, 3, q, scales);
  EXPECT_FLOAT_EQ(scales[0], 1.0F / 127.0F);
  EXPECT_FLOAT_EQ(scales[1], 1.0F);  // an all-zero channel
  EXPECT_FLOAT_EQ(scales[2], 2.0F / 127.0F);
  EXPECT_EQ(q, (std::vector<std::int8_t>{64, -127, 32, 0, 0, 0, 127, -127, 64}));
}

// Without VNNI the runtime halves s8-input weights itself: even weights exactly, odd ones up or down so
// that no prefix of an output channel's rounding errors exceeds one step (round-half-to-even lets them
// add up: +1 for every weight 4k+3, -1 for every 4k+1).
TEST(LowPrecision, WeightHalvingKeepsEachChannelsErrorWithinOneStep) {
  const std::vector<std::int8_t> weights{3, 7, 11, 15, 4, -127, 127, 1, 1, 1, 1, 1, -2, 0};
  const auto doubled = ops::halve_weights_balanced(weights, 7);
  ASSERT_EQ(doubled.size(), weights.size());
  EXPECT_EQ(doubled, (std::vector<std::int16_t>{4, 6, 12, 14, 4, -126, 126, 2, 0, 2, 0, 2, -2, 0}));
  for (std::size_t start = 0; start < weights.size(); start += 7) {
    int error = 0;
    for (std::size_t i = start; i < start + 7; ++i) {
      EXPECT_EQ(doubled[i] % 2, 0) << i;
      EXPECT_LE(std::abs(doubled[i] - weights[i]), 1) << i;
      error += doubled[i] - weights[i];
      EXPECT_LE(std::abs(error), 1) << i;
    }
  }
}

// The real YOLOv5n (C3 residual sums, SPPF pooling, concatenation scale groups, upsampling) compiled to
// int8 at 160x160 so the reference executor stays fast: the oneDNN path against the simulation. Deeper than
// the trunk, so rounding flips could accumulate further; bounds: one quantization step (1/127) at the worst
// element and a mean 100x below the int8 error itself (measured: mean 2e-8 against 1e-2).
TEST(LowPrecisionModels, Int8YoloMatchesSimulatedReference) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "messi5.jpg");
  const auto images = std::filesystem::temp_directory_path() / "vapipe-tests" / "low-precision-images";
  std::filesystem::create_directories(images);
  for (const char* name : {"messi5.jpg", "baboon.jpg"}) {
    if (!std::filesystem::exists(images / name))
      std::filesystem::copy_file(test::opencv_data_dir() / name, images / name);
  }
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / "yolov5n.onnx").string();
  options.input_size = std::make_pair(160, 160);
  options.precision = "int8";
  options.calib_images = images.string();
  options.calib_method = "max";
  options.threads = 2;
  const ir::Network int8 = compiler::compile_onnx(options);
  options.precision = "f32";
  const ir::Network fp32 = compiler::compile_onnx(options);

  const ir::Graph& graph = int8.stages.front().graph;
  const Shape input_shape = graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape;
  const std::vector<std::vector<float>> inputs{random_values(input_shape, 11, 0.0F, 1.0F)};
  if (ops::int8_pair_sums_saturate()) {
    // Without VNNI the first rounding flip (oneDNN's avx2 swish and scale order against the double
    // simulation; measured: one element at /model.4/cv1) cascades through 50 more int8 layers, so the
    // comparison is per convolution: the layers before it equal the without-VNNI simulation, which the
    // VNNI one does not (the halved weights are visible from the first layer), and at the
    // heads the runtime stays at least 2x closer to it than to the VNNI simulation (measured 3x).
    ir::Graph every_conv = graph;
    every_conv.outputs.clear();
    for (const auto& node : every_conv.nodes) {
      if (node.op == "Conv") every_conv.outputs.push_back(node.outputs[0]);
    }
    const auto simulated = compiler::run_reference(every_conv, inputs, {.int8_without_vnni = true});
    const auto vnni = compiler::run_reference(every_conv, inputs, {.int8_without_vnni = false});
    auto network = std::make_shared<ir::Network>(int8);
    network->stages.resize(1);
    network->stages[0].graph = every_conv;
    ExecutionContext context(std::make_shared<const Network>(network), {.threads = 2});
    context.run({ConstTensorView{inputs[0].data(), DType::kF32, input_shape}});
    const std::size_t outputs = simulated.size();
    ASSERT_EQ(outputs, 60U);  // 57 trunk convolutions and 3 heads
    for (std::size_t o = 0; o < outputs; ++o) {
      const auto& name = every_conv.tensors[static_cast<std::size_t>(every_conv.outputs[o])].name;
      const auto* actual = static_cast<const float*>(context.output(o).data);
      const Comparison to_simulation = compare(simulated[o], actual);
      const Comparison to_vnni = compare(vnni[o], actual);
      if (o < 8) {  // /model.0 to /model.3: the u8 image conv, stride-2 3x3s, 1x1s, a residual C3
        EXPECT_LE(to_simulation.max_error, 1e-6) << name;
        EXPECT_GT(to_vnni.mean_error, 1e-4) << name;
      }
      if (o + 3 >= outputs) {  // the heads
        EXPECT_LE(to_simulation.mean_error, 0.5 * to_vnni.mean_error) << name;
      }
    }
    return;
  }
  const auto expected = compiler::run_reference(graph, inputs);
  const auto float_outputs = compiler::run_reference(fp32.stages.front().graph, inputs);
  ExecutionContext context(std::make_shared<const Network>(std::make_shared<const ir::Network>(int8)),
                           {.threads = 2});
  context.run({ConstTensorView{inputs[0].data(), DType::kF32, input_shape}});
  ASSERT_EQ(expected.size(), 3U);
  for (std::size_t o = 0; o < expected.size(); ++o) {
    const auto* actual = static_cast<const float*>(context.output(o).data);
    const Comparison to_reference = compare(expected[o], actual);
    const Comparison to_float = compare(float_outputs[o], actual);
    EXPECT_LE(to_reference.mean_error, 0.01 * to_float.mean_error) << "output " << o;
    EXPECT_LE(to_reference.max_error, 0.008) << "output " << o;
  }
}

// ---- pre-quantized ONNX run on its own integers (compiler/precision.hpp, convert_integer_convolutions) ----

// The IR the importer writes for a QLinearConv (src/ops/quantize.cpp): Dequantize by the input's zero point
// (none when it is 0), a float Conv of integer weights and an integer bias, Quantize of the accumulator by
// per-channel multipliers with the output's zero point. Weights, bias and multipliers are seeded so that
// outputs spread over most of the output's range (some saturate).
int integer_conv(test::GraphBuilder& g, int x, float in_zero_point, std::int64_t out_channels, int kernel,
                 int stride, std::int64_t group, float out_zero_point, bool s8_output, unsigned seed) {
  const Shape in = g.shape(x);
  int centred = x;
  if (in_zero_point != 0.0F) {
    centred = g.node("Dequantize", {x}, {in},
                     {{"scale", {1.0F}}, {"zero_point", {in_zero_point}}, {"axis", -1}})[0];
  }
  const int acc = g.conv(centred, out_channels, kernel, stride, nlohmann::json::array(), -1, group);
  const Shape out = g.shape(acc);
  const std::int64_t inner = in[1] / group * kernel * kernel;
  std::mt19937 generator(seed);
  std::uniform_int_distribution<int> weight(-128, 127), bias(-3000, 3000);
  std::uniform_real_distribution<float> spread(0.5F, 1.5F);
  std::vector<float> multipliers(static_cast<std::size_t>(out_channels));
  for (auto& m : multipliers)
    m = spread(generator) * 60.0F / (std::sqrt(static_cast<float>(inner)) * 5476.0F);
  g.set_constant(acc, 1, [&] { return static_cast<float>(weight(generator)); });
  g.set_constant(acc, 2, [&] { return static_cast<float>(bias(generator)); });
  return g.node("Quantize", {acc}, {out},
                {{"scale", multipliers},
                 {"zero_point", std::vector<float>(static_cast<std::size_t>(out_channels), out_zero_point)},
                 {"axis", 1},
                 {"low", s8_output ? -128.0F : 0.0F},
                 {"high", s8_output ? 127.0F : 255.0F},
                 {"multiply", true}})[0];
}

// Every kind of convolution mobilenetv2-int8 has (a 3-channel u8 image input with a zero point, depthwise
// 3x3 stride 1 and 2, 1x1 expansions and projections, zero points on inputs and outputs), plus s8 outputs
// and inputs, u8 tensors read by a float op, and a chain read by a MaxPool (left as written): the runtime
// (oneDNN's int8 kernels with a source zero point) equals the reference executor's integer simulation
// exactly, and on a CPU with VNNI both equal the graph as written (its integers in float: ONNX Runtime's
// arithmetic). Inputs seeded. (Also run by hand with ONEDNN_MAX_CPU_ISA=AVX2 and =AVX512_CORE: equal.)
TEST(LowPrecision, IntegerConvolutionsEqualTheFileArithmeticExactly) {
  test::GraphBuilder g(7);
  const int image = g.input({1, 3, 23, 29});
  const int q0 = g.node("Quantize", {image}, {g.shape(image)},
                        {{"scale", {2.0F / 255.0F}},
                         {"zero_point", {128.0F}},
                         {"axis", -1},
                         {"low", 0.0F},
                         {"high", 255.0F}})[0];
  const int a = integer_conv(g, q0, 128.0F, 16, 3, 2, 1, 0.0F, false, 1);
  const int b = integer_conv(g, a, 0.0F, 16, 3, 1, 16, 0.0F, false, 2);
  const int c = integer_conv(g, b, 0.0F, 64, 1, 1, 1, 131.0F, false, 3);
  const int d = integer_conv(g, c, 131.0F, 64, 3, 2, 64, 0.0F, false, 4);
  const int e = integer_conv(g, d, 0.0F, 24, 1, 1, 1, -5.0F, true, 5);
  const int f = integer_conv(g, e, 0.0F, 40, 3, 1, 1, 77.0F, false, 6);
  const int skipped = integer_conv(g, e, -5.0F, 8, 1, 1, 1, 0.0F, false, 7);  // s8 input, zero point
  // Read by a MaxPool (which keeps its input's data type): stays as written.
  const int pooled_conv = integer_conv(g, a, 0.0F, 8, 1, 1, 1, 0.0F, false, 8);
  const int pooled = g.node("MaxPool", {pooled_conv}, {g.shape(pooled_conv)},
                            {{"kernel", {3, 3}}, {"strides", {1, 1}}, {"pads", {1, 1, 1, 1}}})[0];
  const auto dequantize = [&](int t, float zero_point) {
    return g.node("Dequantize", {t}, {g.shape(t)},
                  {{"scale", {0.05F}}, {"zero_point", {zero_point}}, {"axis", -1}})[0];
  };
  const ir::Graph as_written = g.finish(
      {dequantize(f, 77.0F), dequantize(c, 131.0F), dequantize(skipped, 0.0F), dequantize(pooled, 0.0F)});
  const Shape input_shape = as_written.tensors[static_cast<std::size_t>(as_written.inputs[0])].shape;
  const std::vector<std::vector<float>> inputs{random_values(input_shape, 13, -1.2F, 1.2F)};
  const auto file = compiler::run_reference(as_written, inputs);

  ir::Graph graph = as_written;
  std::size_t seen = 0;
  EXPECT_EQ(compiler::convert_integer_convolutions(graph, {}, &seen), 6U);
  EXPECT_EQ(seen, 8U);
  int int8_convs = 0;
  for (const auto& node : graph.nodes) {
    if (node.op == "Conv" && node.attrs.value("integer", false)) ++int8_convs;
  }
  EXPECT_EQ(int8_convs, 6);
  const bool halved = ops::int8_pair_sums_saturate();
  const auto simulated = compiler::run_reference(graph, inputs, {.int8_without_vnni = halved});
  auto network = std::make_shared<ir::Network>();
  network->name = "integers";
  network->precision = "int8";
  network->stages.push_back({1, graph});
  ExecutionContext context(std::make_shared<const Network>(network), {.threads = 1});
  context.run({ConstTensorView{inputs[0].data(), DType::kF32, input_shape}});
  for (std::size_t o = 0; o < file.size(); ++o) {
    SCOPED_TRACE(o);
    const auto* actual = static_cast<const float*>(context.output(o).data);
    std::size_t runtime_differs = 0, simulation_differs = 0;
    for (std::size_t i = 0; i < file[o].size(); ++i) {
      runtime_differs += actual[i] != simulated[o][i] ? 1 : 0;
      simulation_differs += simulated[o][i] != file[o][i] ? 1 : 0;
    }
    EXPECT_EQ(runtime_differs, 0U) << "of " << file[o].size() << " (halved weights: " << halved << ")";
    if (!halved) {
      EXPECT_EQ(simulation_differs, 0U) << "of " << file[o].size();
    }
    // Not a degenerate test: the outputs spread over many steps.
    const auto [low, high] = std::minmax_element(file[o].begin(), file[o].end());
    EXPECT_GT(*high - *low, 30 * 0.05F);
  }
}

}  // namespace
}  // namespace vapipe
