// Golden tests on the real shared detectors: structure, metadata, and the reference executor on the
// lowered graph vs the optimized graph (every pass), and batch-4 stages vs four batch-1 runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "compiler/compiler.hpp"
#include "compiler/onnx_builder.hpp"
#include "compiler/reference_executor.hpp"
#include "support/test_data.hpp"

namespace vapipe::compiler {
namespace {

using test::max_relative_error;
using test::random_values;

std::string model_path(const char* file) { return (test::models_dir() / file).string(); }

std::size_t volume_of(const ir::Graph& graph, int tensor) {
  return static_cast<std::size_t>(shape_volume(graph.tensors.at(static_cast<std::size_t>(tensor)).shape));
}

std::vector<float> image_input(const ir::Graph& graph, std::uint32_t seed) {
  return random_values(volume_of(graph, graph.inputs.at(0)), seed, 0.0F, 1.0F);
}

void expect_same_outputs(const ir::Graph& a, const ir::Graph& b, std::uint32_t seed) {
  const auto input = image_input(a, seed);
  const auto out_a = run_reference(a, {input});
  const auto out_b = run_reference(b, {input});
  ASSERT_EQ(out_a.size(), out_b.size());
  for (std::size_t i = 0; i < out_a.size(); ++i)
    EXPECT_LT(max_relative_error(out_b[i], out_a[i]), 1e-4) << "output " << i;
}

void expect_vocabulary_only(const ir::Graph& graph) {
  const std::set<std::string> vocabulary = {"Conv",      "MaxPool", "AveragePool", "Concat", "Split",
                                            "Slice",     "Resize",  "Eltwise",     "Binary", "Reshape",
                                            "Transpose", "Softmax", "Gather"};
  for (const auto& node : graph.nodes) EXPECT_TRUE(vocabulary.count(node.op)) << node.op;
  for (const auto& tensor : graph.tensors) EXPECT_EQ(tensor.dtype, DType::kF32) << tensor.name;
}

int count_post_op(const ir::Graph& graph, const std::string& op) {
  int count = 0;
  for (const auto& node : graph.nodes) {
    if (node.op != "Conv") continue;
    for (const auto& post : node.attrs.value("post_ops", nlohmann::json::array()))
      count += post.at("op") == op ? 1 : 0;
  }
  return count;
}

TEST(CompilerModels, Yolov5nRawHeadCutAndMetadata) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolov5n.onnx");
  const auto network = compile_onnx(options);
  EXPECT_EQ(network.name, "yolov5n");
  ASSERT_EQ(network.stages.size(), 1U);
  const auto& graph = network.stages[0].graph;
  expect_vocabulary_only(graph);
  ASSERT_EQ(graph.outputs.size(), 3U);
  // Channels-last heads: each output is a Transpose of the head convolution's [1, 255, H, W].
  const std::vector<Shape> shapes = {{1, 80, 80, 255}, {1, 40, 40, 255}, {1, 20, 20, 255}};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& tensor = graph.tensors[static_cast<std::size_t>(graph.outputs[i])];
    EXPECT_EQ(tensor.shape, shapes[i]);
    EXPECT_EQ(tensor.name, "/model.24/m." + std::to_string(i) + "/Conv_output_0");
    const auto producer = std::find_if(graph.nodes.begin(), graph.nodes.end(), [&](const ir::Node& node) {
      return node.outputs.at(0) == graph.outputs[i];
    });
    ASSERT_NE(producer, graph.nodes.end());
    EXPECT_EQ(producer->op, "Transpose");
    EXPECT_EQ(producer->attrs["perm"], (std::vector<std::int64_t>{0, 2, 3, 1}));
  }
  EXPECT_GT(count_post_op(graph, "swish"), 40);
  EXPECT_GT(count_post_op(graph, "sum"), 3);
  const auto& meta = network.metadata;
  EXPECT_EQ(meta["model_type"], "yolov5");
  EXPECT_EQ(meta["num_classes"], 80);
  ASSERT_EQ(meta["class_names"].size(), 80U);
  EXPECT_EQ(meta["class_names"][0], "person");
  EXPECT_EQ(meta["input"]["name"], "images");
  EXPECT_EQ(meta["input"]["width"], 640);
  EXPECT_EQ(meta["head"]["form"], "raw");
  const auto& outs = meta["head"]["outputs"];
  ASSERT_EQ(outs.size(), 3U);
  EXPECT_EQ(outs[0]["stride"], 8);
  EXPECT_EQ(outs[0]["layout"], "nhwc");
  EXPECT_EQ(outs[2]["stride"], 32);
  EXPECT_NEAR(outs[0]["anchors"][0][0].get<double>(), 10.0, 1e-3);
  EXPECT_NEAR(outs[0]["anchors"][0][1].get<double>(), 13.0, 1e-3);
  EXPECT_NEAR(outs[2]["anchors"][2][0].get<double>(), 373.0, 1e-3);
  EXPECT_NEAR(outs[1]["anchors"][1][1].get<double>(), 45.0, 1e-3);
}

TEST(CompilerModels, Yolov5nCutOptimizedMatchesLowered) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolov5n.onnx");
  options.optimize = false;
  const auto lowered = compile_onnx(options);
  options.optimize = true;
  const auto optimized = compile_onnx(options);
  EXPECT_LT(optimized.stages[0].graph.nodes.size(), lowered.stages[0].graph.nodes.size() / 2);
  expect_same_outputs(lowered.stages[0].graph, optimized.stages[0].graph, 1);
}

TEST(CompilerModels, Yolov5nInputSizeOverrideWithCut) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolov5n.onnx");
  options.input_size = std::pair{320, 256};
  const auto network = compile_onnx(options);
  const auto& graph = network.stages[0].graph;
  EXPECT_EQ(graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape, (Shape{1, 3, 256, 320}));
  EXPECT_EQ(graph.tensors[static_cast<std::size_t>(graph.outputs[0])].shape, (Shape{1, 32, 40, 255}));
  EXPECT_EQ(network.metadata["input"]["height"], 256);
  EXPECT_EQ(network.metadata["head"]["outputs"][1]["stride"], 16);
}

TEST(CompilerModels, Yolov5nFullGraphOptimizedMatchesLoweredAndBatch4) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolov5n.onnx");
  options.full_graph = true;
  options.optimize = false;
  const auto lowered = import_onnx_graph(options, 1);
  options.optimize = true;
  options.batches = {1, 4};
  const auto network = compile_onnx(options);
  ASSERT_EQ(network.stages.size(), 2U);
  const auto& one = network.stages[0].graph;
  const auto& four = network.stages[1].graph;
  expect_vocabulary_only(one);
  EXPECT_EQ(one.tensors[static_cast<std::size_t>(one.outputs.at(0))].shape, (Shape{1, 25200, 85}));
  EXPECT_EQ(four.tensors[static_cast<std::size_t>(four.outputs.at(0))].shape, (Shape{4, 25200, 85}));
  EXPECT_EQ(network.metadata["head"]["form"], "full");
  EXPECT_EQ(network.metadata["head"]["outputs"][0]["tensor"], "output0");
  expect_same_outputs(lowered, one, 2);

  std::vector<float> batch_input;
  std::vector<std::vector<float>> singles;
  for (std::uint32_t b = 0; b < 4; ++b) {
    const auto input = image_input(one, 10 + b);
    batch_input.insert(batch_input.end(), input.begin(), input.end());
    singles.push_back(run_reference(one, {input})[0]);
  }
  const auto batched = run_reference(four, {batch_input})[0];
  const std::size_t per = singles[0].size();
  ASSERT_EQ(batched.size(), per * 4);
  for (std::size_t b = 0; b < 4; ++b) {
    const std::vector<float> slice(batched.begin() + static_cast<std::ptrdiff_t>(b * per),
                                   batched.begin() + static_cast<std::ptrdiff_t>((b + 1) * per));
    EXPECT_LT(max_relative_error(slice, singles[b]), 1e-5) << "batch item " << b;
  }
}

TEST(CompilerModels, Yolov5nFp16MatchesFp32) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_MODEL("yolov5n-fp16.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolov5n-fp16.onnx");
  options.input_size = std::pair{320, 320};
  const auto half = compile_onnx(options);
  options.onnx_path = model_path("yolov5n.onnx");
  const auto full = compile_onnx(options);
  EXPECT_EQ(half.metadata["model_type"], "yolov5");
  expect_vocabulary_only(half.stages[0].graph);
  expect_same_outputs(full.stages[0].graph, half.stages[0].graph, 3);
}

TEST(CompilerModels, YoloFastestV2FullGraphMetadataAndPasses) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolofastestv2.onnx");
  options.optimize = false;
  const auto lowered = compile_onnx(options);
  options.optimize = true;
  const auto network = compile_onnx(options);
  const auto& graph = network.stages[0].graph;
  expect_vocabulary_only(graph);
  ASSERT_EQ(graph.outputs.size(), 1U);
  EXPECT_EQ(graph.tensors[static_cast<std::size_t>(graph.outputs[0])].shape, (Shape{605, 95}));
  const auto& meta = network.metadata;
  EXPECT_EQ(meta["model_type"], "yolofastestv2");
  EXPECT_EQ(meta["num_classes"], 80);
  EXPECT_EQ(meta["head"]["form"], "full");
  const auto& out = meta["head"]["outputs"][0];
  EXPECT_EQ(out["tensor"], "845");
  EXPECT_EQ(out["strides"], nlohmann::json({16, 32}));
  EXPECT_EQ(out["grids"], nlohmann::json({{22, 22}, {11, 11}}));
  EXPECT_GT(count_post_op(graph, "relu"), 10);
  expect_same_outputs(lowered.stages[0].graph, graph, 4);
}

TEST(CompilerModels, YoloFastestV2Batch4EqualsFourSingleRuns) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  CompileOptions options;
  options.onnx_path = model_path("yolofastestv2.onnx");
  options.batches = {1, 4};
  const auto network = compile_onnx(options);
  const auto& one = network.stages[0].graph;
  const auto& four = network.stages[1].graph;
  EXPECT_EQ(four.tensors[static_cast<std::size_t>(four.outputs[0])].shape, (Shape{4 * 605, 95}));
  std::vector<float> batch_input;
  std::vector<std::vector<float>> singles;
  for (std::uint32_t b = 0; b < 4; ++b) {
    const auto input = image_input(one, 20 + b);
    batch_input.insert(batch_input.end(), input.begin(), input.end());
    singles.push_back(run_reference(one, {input})[0]);
  }
  const auto batched = run_reference(four, {batch_input})[0];
  // Rows are ordered scale by scale: all items' 22x22 rows, then all items' 11x11 rows.
  constexpr std::size_t kCols = 95, kRows0 = 22 * 22, kRows1 = 11 * 11;
  for (std::size_t b = 0; b < 4; ++b) {
    std::vector<float> rows(batched.begin() + static_cast<std::ptrdiff_t>(b * kRows0 * kCols),
                            batched.begin() + static_cast<std::ptrdiff_t>((b + 1) * kRows0 * kCols));
    const auto second = batched.begin() + static_cast<std::ptrdiff_t>((4 * kRows0 + b * kRows1) * kCols);
    rows.insert(rows.end(), second, second + static_cast<std::ptrdiff_t>(kRows1 * kCols));
    EXPECT_LT(max_relative_error(rows, singles[b]), 1e-5) << "batch item " << b;
  }
}

}  // namespace
}  // namespace vapipe::compiler
