// SimplePose (src/models/tasks/simplepose.cpp): recognition, the decode rules on hand-made heatmaps, and a
// differential test on a real crop: vapipe's decode of vapipe's heatmaps against an independent decode
// (tests/support/pose_decode_ref.mjs) of ONNX Runtime's heatmaps (tests/support/ort_run.mjs) for the same
// input tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "compiler/compiler.hpp"
#include "models/post_processor.hpp"
#include "models/task.hpp"
#include "support/ort_reference.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"
#include "vision/crop.hpp"
#include "vision/image_io.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

constexpr int kJoints = 17;

nlohmann::json pose_metadata(const std::vector<TensorInfo>& outputs) {
  const models::TaskKind* kind = models::recognize_task(outputs);
  if (kind == nullptr || kind->model_type != "simplepose")
    fail("the outputs are not recognized as simplepose");
  nlohmann::json metadata = {{"model_type", "simplepose"},
                             {"input", {{"name", "data"}, {"width", 192}, {"height", 256}, {"channels", 3}}}};
  kind->describe(outputs, 192, 256, metadata);
  return metadata;
}

TEST(SimplePose, RecognizedBySeventeenHeatmapsAndNotByBoxHeads) {
  const models::TaskKind* pose = models::recognize_task({{"heatmaps", DType::kF32, {-1, 17, 64, 48}}});
  ASSERT_NE(pose, nullptr);
  EXPECT_EQ(pose->model_type, "simplepose");
  EXPECT_EQ(pose->skeleton.size(), 16U);
  EXPECT_EQ(models::recognize_task({{"output0", DType::kF32, {1, 25200, 85}}}), nullptr);
  EXPECT_EQ(models::recognize_task({{"p3", DType::kF32, {1, 255, 80, 80}}}), nullptr);
  // Heatmaps that are not 1/4 of the input are refused when the metadata is written.
  nlohmann::json metadata;
  EXPECT_THROW(pose->describe({{"heatmaps", DType::kF32, {1, 17, 32, 24}}}, 192, 256, metadata), Error);
}

TEST(SimplePose, DecodesArgmaxQuarterShiftAndStrideWhateverTheThreshold) {
  const std::vector<TensorInfo> outputs = {{"heatmaps", DType::kF32, {2, 17, 64, 48}}};
  const nlohmann::json metadata = pose_metadata(outputs);
  models::PostprocessOptions options = models::PostprocessOptions::from_metadata(metadata);
  options.thresholds.conf_threshold = 0.99f;  // never reached: a crop always yields its pose
  models::PostProcessor post(metadata, outputs, options);
  std::vector<float> maps(2 * 17 * 64 * 48, 0.0f);
  auto at = [&](int image, int joint, int x, int y) -> float& {
    return maps[static_cast<std::size_t>(((image * 17 + joint) * 64 + y) * 48 + x)];
  };
  for (int joint = 0; joint < kJoints; ++joint) {
    at(1, joint, 10 + joint, 20 + joint) = 0.5f + 0.01f * static_cast<float>(joint);
    at(1, joint, 11 + joint, 20 + joint) = 0.2f;  // right neighbour higher: +1/4 in x
    at(1, joint, 10 + joint, 19 + joint) = 0.1f;  // upper neighbour higher: -1/4 in y
  }
  at(1, 3, 0, 0) = 0.9f;  // a peak on the border: no shift
  const ConstTensorView view{maps.data(), DType::kF32, {2, 17, 64, 48}};
  const auto detections = post.run(std::span(&view, 1), 1);
  ASSERT_EQ(detections.size(), 1U);
  const auto& d = detections[0];
  EXPECT_EQ(d.x2, 192.0f);
  EXPECT_EQ(d.y2, 256.0f);
  ASSERT_EQ(d.keypoints.size(), 17U);
  float total = 0.0f;
  for (int joint = 0; joint < kJoints; ++joint) {
    const auto& p = d.keypoints[static_cast<std::size_t>(joint)];
    total += p.score;
    if (joint == 3) {
      EXPECT_EQ(p.x, 0.0f);
      EXPECT_EQ(p.y, 0.0f);
      EXPECT_EQ(p.score, 0.9f);
      continue;
    }
    EXPECT_FLOAT_EQ(p.x, (10.25f + static_cast<float>(joint)) * 4.0f) << joint;
    EXPECT_FLOAT_EQ(p.y, (19.75f + static_cast<float>(joint)) * 4.0f) << joint;
    EXPECT_FLOAT_EQ(p.score, 0.5f + 0.01f * static_cast<float>(joint));
  }
  EXPECT_FLOAT_EQ(d.score, total / 17.0f);
}

// yolov5n's box of the player in the middle of messi5.jpg (548 x 342; `vapipe detect`), rounded to pixels.
constexpr float kPlayerBox[4] = {60.0f, 60.0f, 407.0f, 333.0f};

TEST(SimplePose, DecodeOfVapipeHeatmapsMatchesAnIndependentDecodeOfOnnxRuntimeHeatmaps) {
  VAPIPE_REQUIRE_MODEL("simplepose_256x192.onnx");
  const auto photo = test::opencv_data_dir() / "messi5.jpg";
  VAPIPE_REQUIRE_FILE(photo);
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / "simplepose_256x192.onnx").string();
  const auto network =
      std::make_shared<const Network>(std::make_shared<const ir::Network>(compiler::compile_onnx(options)));
  const nlohmann::json& metadata = network->metadata();
  ASSERT_EQ(metadata.at("model_type"), "simplepose") << metadata.dump();
  const auto inputs = network->inputs(1);
  ASSERT_EQ(inputs.size(), 1U);
  const Shape shape = inputs[0].shape;
  ASSERT_EQ(shape, (Shape{1, 3, 256, 192}));

  const cv::Mat image = vision::load_image(photo.string());
  const vision::CropRegion crop =
      vision::expand_crop(kPlayerBox[0], kPlayerBox[1], kPlayerBox[2], kPlayerBox[3], image.cols, image.rows);
  std::vector<float> input(static_cast<std::size_t>(shape_volume(shape)));
  vision::preprocess_crop(vision::view_of_bgr(image), crop,
                          vision::PreprocessOptions::from_metadata(metadata), input.data());

  const fs::path dir = test::scratch_dir();
  const int status = test::run_ort(options.onnx_path, dir, inputs[0].name, input, shape);
  if (status == test::kOrtMissing) GTEST_SKIP() << "onnxruntime-node not installed (scripts/setup.sh)";
  ASSERT_EQ(status, 0) << "ONNX Runtime failed: see " << dir / "ort.log";
  const auto ort = nlohmann::json::parse(std::ifstream(dir / "outputs.json"));
  const auto& heatmaps = ort.at("outputs").at(0);
  ASSERT_EQ(heatmaps.at("shape").get<Shape>(), (Shape{1, 17, 64, 48}));
  const fs::path reference_file = dir / "reference.json";
  ASSERT_EQ(std::system(fmt::format("node '{}/tests/support/pose_decode_ref.mjs' '{}' 1x17x64x48 4 >'{}'",
                                    VAPIPE_SOURCE_DIR, heatmaps.at("file").get<std::string>(),
                                    reference_file.string())
                            .c_str()),
            0);
  const auto reference = nlohmann::json::parse(std::ifstream(reference_file)).at(0);
  ASSERT_EQ(reference.size(), 17U);

  ExecutionContext context(network, {.threads = 1});
  context.run({ConstTensorView{input.data(), DType::kF32, shape}});
  models::PostProcessor post(metadata, network->outputs(1),
                             models::PostprocessOptions::from_metadata(metadata));
  const ConstTensorView output = context.output(0);
  const auto detections = post.run(std::span(&output, 1), 0);
  ASSERT_EQ(detections.size(), 1U);
  ASSERT_EQ(detections[0].keypoints.size(), 17U);
  float worst_position = 0.0f, worst_score = 0.0f, lowest_score = 1.0f;
  for (std::size_t k = 0; k < 17; ++k) {
    const auto& ours = detections[0].keypoints[k];
    const auto& theirs = reference[k];
    const float dx = std::abs(ours.x - theirs.at("x").get<float>());
    const float dy = std::abs(ours.y - theirs.at("y").get<float>());
    const float ds = std::abs(ours.score - theirs.at("score").get<float>());
    EXPECT_LE(std::max(dx, dy), 0.5f)
        << "keypoint " << k << ": vapipe (" << ours.x << ", " << ours.y << "), reference " << theirs.dump();
    EXPECT_LE(ds, 1e-3f) << "keypoint " << k << ": vapipe score " << ours.score << ", reference "
                         << theirs.dump();
    worst_position = std::max({worst_position, dx, dy});
    worst_score = std::max(worst_score, ds);
    lowest_score = std::min(lowest_score, ours.score);
  }
  std::cout << "simplepose on messi5.jpg crop " << crop.width << "x" << crop.height << " at (" << crop.x
            << ", " << crop.y << "): max |dx|, |dy| " << worst_position << " px, max |d score| "
            << worst_score << ", lowest keypoint score " << lowest_score << "\n";
}

}  // namespace
}  // namespace vapipe
