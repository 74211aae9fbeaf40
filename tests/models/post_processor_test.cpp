#include "models/post_processor.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace vapipe::models {
namespace {

TEST(PostProcessor, Yolov5FullPicksTheImageOfTheBatchAndRunsNms) {
  const auto metadata = nlohmann::json::parse(R"({"model_type": "yolov5", "class_names": ["person", "car"],
    "num_classes": 2, "head": {"form": "full", "outputs": [{"tensor": "output0"}]}})");
  const std::vector<TensorInfo> infos = {{"output0", DType::kF32, {2, 3, 7}}};
  PostProcessor post(metadata, infos, {});
  std::vector<float> data(2 * 3 * 7, 0.0f);
  // Image 1: two overlapping persons (NMS keeps one) and a car.
  const float image1[3][7] = {{100, 100, 50, 80, 0.9f, 0.9f, 0.1f},
                              {102, 101, 50, 80, 0.8f, 0.9f, 0.1f},
                              {300, 200, 40, 40, 0.7f, 0.1f, 0.9f}};
  std::copy(&image1[0][0], &image1[0][0] + 21, data.begin() + 21);
  const ConstTensorView views[] = {{data.data(), DType::kF32, {2, 3, 7}}};
  const auto detections = post.run(views, 1);
  ASSERT_EQ(detections.size(), 2u);
  EXPECT_EQ(post.label(detections[0].class_id), "person");
  EXPECT_EQ(post.label(detections[1].class_id), "car");
  EXPECT_TRUE(post.run(views, 0).empty());
  EXPECT_THROW(post.run(views, 2), Error);
}

TEST(PostProcessor, RawHeadOutputsAreFoundByName) {
  const auto metadata = nlohmann::json::parse(R"({"model_type": "yolov5", "num_classes": 1,
    "head": {"form": "raw", "outputs": [{"tensor": "p4", "stride": 16, "anchors": [[30, 61]]},
                                         {"tensor": "p3", "stride": 8, "anchors": [[10, 13]]}]}})");
  const std::vector<TensorInfo> infos = {{"p3", DType::kF32, {1, 6, 4, 4}},
                                         {"p4", DType::kF32, {1, 6, 2, 2}}};
  PostProcessor post(metadata, infos, {});
  std::vector<float> p3(6 * 16, -10.0f), p4(6 * 4, -10.0f);
  // p4 cell (1, 1): centre (0.5 + 1) * 16 = 24, size = anchor.
  for (int c = 0; c < 4; ++c) p4[static_cast<std::size_t>(c * 4 + 3)] = 0.0f;
  p4[4 * 4 + 3] = 5.0f;
  p4[5 * 4 + 3] = 5.0f;
  const ConstTensorView views[] = {{p3.data(), DType::kF32, {1, 6, 4, 4}},
                                   {p4.data(), DType::kF32, {1, 6, 2, 2}}};
  const auto detections = post.run(views, 0);
  ASSERT_EQ(detections.size(), 1u);
  EXPECT_NEAR(detections[0].x1, 24 - 15, 1e-4);
  EXPECT_NEAR(detections[0].y2, 24 + 30.5, 1e-4);
  EXPECT_EQ(post.label(0), "0");
}

TEST(PostProcessor, MismatchedMetadataIsAClearError) {
  const auto metadata = nlohmann::json::parse(R"({"model_type": "yolov5", "num_classes": 80,
    "head": {"form": "raw", "outputs": [{"tensor": "missing", "stride": 8, "anchors": [[10, 13]]}]}})");
  const std::vector<TensorInfo> infos = {{"output0", DType::kF32, {1, 25200, 85}}};
  try {
    PostProcessor post(metadata, infos, {});
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("'missing'"), std::string::npos) << error.what();
  }
  EXPECT_THROW(PostProcessor(nlohmann::json::parse(R"({"model_type": "raw"})"), infos, {}), Error);
}

TEST(PostProcessor, ThresholdsComeFromMetadataByClassName) {
  const auto metadata = nlohmann::json::parse(R"({"class_names": ["person", "car"],
    "postprocess": {"conf_threshold": 0.3, "iou_threshold": 0.6, "class_thresholds": {"car": 0.7}}})");
  const auto options = PostprocessOptions::from_metadata(metadata);
  EXPECT_FLOAT_EQ(options.thresholds.for_class(0), 0.3f);
  EXPECT_FLOAT_EQ(options.thresholds.for_class(1), 0.7f);
  EXPECT_FLOAT_EQ(options.nms.iou_threshold, 0.6f);
}

}  // namespace
}  // namespace vapipe::models
