// The acceptance tests of the runtime on the real COCO detectors: compiled packages (fused, blocked
// layouts, oneDNN) against the plain reference executor on the unfused graph, FP16 exports against their
// FP32 twin, and batch-4 stages against four batch-1 runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "compiler/compiler.hpp"
#include "compiler/reference_executor.hpp"
#include "core/error.hpp"
#include "core/package.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe {
namespace {

std::vector<float> random_image(const Shape& shape, unsigned seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> distribution(0.0F, 1.0F);
  std::vector<float> values(static_cast<std::size_t>(shape_volume(shape)));
  for (auto& value : values) value = distribution(generator);
  return values;
}

// max |a - b| over the tensor, relative to the reference's largest magnitude.
double relative_error(const float* actual, const std::vector<float>& expected) {
  double worst = 0.0;
  double scale = 1e-6;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(actual[i]) - static_cast<double>(expected[i])));
    scale = std::max(scale, std::fabs(static_cast<double>(expected[i])));
  }
  return worst / scale;
}

std::shared_ptr<const Network> compile_and_load(compiler::CompileOptions options, const std::string& file) {
  const auto path = (test::scratch_dir() / file).string();
  ir::Package package;
  package.networks.push_back(compiler::compile_onnx(options));
  ir::write_package(package, path);
  return Model::load(path)->network();
}

compiler::CompileOptions options_for(const std::string& model, bool full_graph) {
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / model).string();
  options.batches = {1, 4};
  options.full_graph = full_graph;
  return options;
}

// Runs the runtime at batch 1 and compares every output with the reference on the unfused graph.
void expect_runtime_matches_reference(const std::string& model, bool full_graph) {
  const auto options = options_for(model, full_graph);
  const auto network = compile_and_load(options, "model.vpk");
  compiler::CompileOptions reference_options = options;
  reference_options.optimize = false;
  const ir::Graph reference = compiler::import_onnx_graph(reference_options, 1);
  const Shape input_shape = network->inputs(1).at(0).shape;
  const auto image = random_image(input_shape, 3);
  const auto expected = compiler::run_reference(reference, {image});

  ExecutionContext context(network, {.threads = 2});
  context.run({{image.data(), DType::kF32, input_shape}});
  const auto outputs = network->outputs(1);
  ASSERT_EQ(outputs.size(), expected.size());
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    const auto view = context.output(o);
    ASSERT_EQ(static_cast<std::size_t>(shape_volume(view.shape)), expected[o].size()) << outputs[o].name;
    const double error = relative_error(static_cast<const float*>(view.data), expected[o]);
    EXPECT_LE(error, 1e-3) << model << " output " << outputs[o].name;
    ::testing::Test::RecordProperty(outputs[o].name + "_relative_error", std::to_string(error));
  }
}

TEST(ModelAccuracy, YoloV5nRawHeadMatchesReference) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  expect_runtime_matches_reference("yolov5n.onnx", false);
}

// The residual convolutions as conv + binary-add post-op (what the runtime uses where oneDNN has no fast
// kernel for activation-then-sum, i.e. without AVX-512), forced on every CPU.
TEST(ModelAccuracy, YoloV5nWithBinaryResidualsMatchesReference) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  ASSERT_EQ(setenv("VAPIPE_RESIDUAL", "binary", 1), 0);
  expect_runtime_matches_reference("yolov5n.onnx", false);
  unsetenv("VAPIPE_RESIDUAL");
}

TEST(ModelAccuracy, YoloV5nFullGraphMatchesReference) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  expect_runtime_matches_reference("yolov5n.onnx", true);
}

TEST(ModelAccuracy, YoloFastestV2MatchesReference) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  expect_runtime_matches_reference("yolofastestv2.onnx", true);
}

// NanoDet's FPN upsamples with linear Resize (the plain interpolation kernel); the pose model's head is three
// ConvTranspose (oneDNN deconvolution) after unfused BatchNormalization.
TEST(ModelAccuracy, NanoDetLinearResizeMatchesReference) {
  VAPIPE_REQUIRE_MODEL("nanodet_m_320.onnx");
  expect_runtime_matches_reference("nanodet_m_320.onnx", false);
}

TEST(ModelAccuracy, SimplePoseConvTransposeMatchesReference) {
  VAPIPE_REQUIRE_MODEL("simplepose_256x192.onnx");
  expect_runtime_matches_reference("simplepose_256x192.onnx", false);
}

TEST(ModelAccuracy, Fp16ExportMatchesItsFp32Twin) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_MODEL("yolov5n-fp16.onnx");
  const auto fp32 = compile_and_load(options_for("yolov5n.onnx", true), "fp32.vpk");
  const auto fp16 = compile_and_load(options_for("yolov5n-fp16.onnx", true), "fp16.vpk");
  EXPECT_EQ(fp16->inputs(1).at(0).dtype, DType::kF32);  // compiled to f32 end to end
  const Shape shape = fp32->inputs(1).at(0).shape;
  ASSERT_EQ(shape, fp16->inputs(1).at(0).shape);
  const auto image = random_image(shape, 5);
  ExecutionContext context32(fp32, {.threads = 2});
  ExecutionContext context16(fp16, {.threads = 2});
  context32.run({{image.data(), DType::kF32, shape}});
  context16.run({{image.data(), DType::kF32, shape}});
  const auto reference = context32.output(0);
  const auto* reference_data = static_cast<const float*>(reference.data);
  const std::vector<float> expected(reference_data, reference_data + shape_volume(reference.shape));
  EXPECT_LE(relative_error(static_cast<const float*>(context16.output(0).data), expected), 1e-3);
}

// Index of sample `b`'s element `i` in an output of a stage of `batch`: batch-major outputs put samples
// one after another; Yolo-FastestV2's [rows, 95] output stacks scale blocks of batch * H * W rows each.
std::size_t sample_offset(const Network& network, const TensorInfo& output, std::int64_t batch,
                          std::int64_t b, std::size_t i, std::size_t sample_size) {
  if (output.shape[0] == batch) return static_cast<std::size_t>(b) * sample_size + i;
  const auto& head = network.metadata().at("head").at("outputs").at(0);
  const std::size_t row_size = static_cast<std::size_t>(output.shape.back());
  std::size_t row = i / row_size;
  std::size_t block_start = 0;
  for (const auto& grid : head.at("grids")) {
    const auto cells = grid.at(0).get<std::size_t>() * grid.at(1).get<std::size_t>();
    if (row < cells)
      return (block_start + static_cast<std::size_t>(b) * cells + row) * row_size + i % row_size;
    row -= cells;
    block_start += static_cast<std::size_t>(batch) * cells;
  }
  ADD_FAILURE() << "row outside the grids";
  return 0;
}

void expect_batch4_equals_four_batch1(const std::string& model, bool full_graph) {
  const auto network = compile_and_load(options_for(model, full_graph), "batch.vpk");
  ASSERT_EQ(network->stage_batches(), (std::vector<std::int64_t>{1, 4}));
  Shape shape = network->inputs(4).at(0).shape;
  const auto images = random_image(shape, 11);
  ExecutionContext context(network, {.threads = 2});
  context.run({{images.data(), DType::kF32, shape}});
  ASSERT_EQ(context.last_stage_batch(), 4);
  std::vector<std::vector<float>> batched;
  for (std::size_t o = 0; o < context.output_count(); ++o) {
    const auto view = context.output(o);
    const auto* data = static_cast<const float*>(view.data);
    batched.emplace_back(data, data + shape_volume(view.shape));
  }
  const auto outputs4 = network->outputs(4);
  shape[0] = 1;
  const std::size_t image_size = static_cast<std::size_t>(shape_volume(shape));
  for (std::int64_t b = 0; b < 4; ++b) {
    context.run({{images.data() + b * static_cast<std::int64_t>(image_size), DType::kF32, shape}});
    ASSERT_EQ(context.last_stage_batch(), 1);
    for (std::size_t o = 0; o < context.output_count(); ++o) {
      const auto single = context.output(o);
      const auto* data = static_cast<const float*>(single.data);
      const auto size = static_cast<std::size_t>(shape_volume(single.shape));
      std::vector<float> expected(size);
      for (std::size_t i = 0; i < size; ++i)
        expected[i] = batched[o][sample_offset(*network, outputs4[o], 4, b, i, size)];
      EXPECT_LE(relative_error(data, expected), 1e-4)
          << model << " sample " << b << " output " << outputs4[o].name;
    }
  }
}

TEST(ModelAccuracy, YoloV5nBatch4EqualsFourBatch1) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  expect_batch4_equals_four_batch1("yolov5n.onnx", false);
}

TEST(ModelAccuracy, YoloFastestV2Batch4EqualsFourBatch1) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  expect_batch4_equals_four_batch1("yolofastestv2.onnx", true);
}

}  // namespace
}  // namespace vapipe

namespace vapipe {
namespace {

TEST(ModelAccuracy, DynamicShapeRunsSmallerInputs) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  auto options = options_for("yolov5n.onnx", false);
  options.batches = {1};
  options.dynamic_shape = true;
  const auto network = compile_and_load(options, "dynamic.vpk");
  ASSERT_TRUE(network->dynamic_shape());
  ExecutionContext context(network, {.threads = 2});
  for (const auto& [width, height] : std::vector<std::pair<int, int>>{{320, 320}, {640, 384}, {320, 320}}) {
    auto reference_options = options;
    reference_options.optimize = false;
    reference_options.input_size = std::make_pair(width, height);
    const ir::Graph reference = compiler::import_onnx_graph(reference_options, 1);
    const Shape shape{1, 3, height, width};
    const auto image = random_image(shape, 21);
    const auto expected = compiler::run_reference(reference, {image});
    context.run({{image.data(), DType::kF32, shape}});
    ASSERT_EQ(context.output_count(), expected.size());
    for (std::size_t o = 0; o < expected.size(); ++o) {
      const auto view = context.output(o);
      EXPECT_EQ(view.shape[1], height / (8 << o));  // raw heads are channels-last: [1, H, W, 255]
      EXPECT_EQ(view.shape[2], width / (8 << o));
      ASSERT_EQ(static_cast<std::size_t>(shape_volume(view.shape)), expected[o].size());
      EXPECT_LE(relative_error(static_cast<const float*>(view.data), expected[o]), 1e-3)
          << width << "x" << height;
    }
  }
  const std::vector<float> too_big(3 * 704 * 704);
  EXPECT_THROW(context.run({{too_big.data(), DType::kF32, {1, 3, 704, 704}}}), Error);
}

TEST(ModelAccuracy, StaticNetworkRefusesOtherShapes) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto network = compile_and_load(options_for("yolofastestv2.onnx", true), "static.vpk");
  ExecutionContext context(network, {.threads = 1});
  const std::vector<float> image(3 * 320 * 320);
  EXPECT_THROW(context.run({{image.data(), DType::kF32, {1, 3, 320, 320}}}), Error);
}

}  // namespace
}  // namespace vapipe
