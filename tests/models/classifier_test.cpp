// The classifier task (models/tasks/classifier.cpp, issue 20) on the shared static INT8 MobileNetV2: recognized
// at compile time with ImageNet's class names, and run as a second stage on detections, each of which gets an
// attribute (top-1 class name and probability). Skips without the model or the photo.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "compiler/compiler.hpp"
#include "models/secondary_runner.hpp"
#include "support/test_data.hpp"
#include "vision/image_io.hpp"

namespace vapipe::models {
namespace {

std::shared_ptr<const Network> compile_classifier() {
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / "mobilenetv2-int8.onnx").string();
  options.batches = {1, 4};
  return std::make_shared<const Network>(
      std::make_shared<const ir::Network>(compiler::compile_onnx(options)));
}

TEST(Classifier, MobileNetV2Int8IsRecognizedWithImagenetNames) {
  VAPIPE_REQUIRE_MODEL("mobilenetv2-int8.onnx");
  const auto network = compile_classifier();
  const auto& metadata = network->metadata();
  EXPECT_EQ(metadata.at("model_type"), "classifier");
  EXPECT_EQ(metadata.at("head").at("form"), "classification");
  ASSERT_EQ(metadata.at("class_names").size(), 1000U);
  if (std::filesystem::exists(
          "/usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt")) {
    EXPECT_EQ(metadata.at("class_names").at(0), "tench");
    EXPECT_EQ(metadata.at("class_names").at(335), "fox squirrel");
  }
  EXPECT_TRUE(SecondaryRunner::is_top_down(metadata));
}

TEST(Classifier, RunsAsSecondStageAndGivesEachDetectionAnAttribute) {
  VAPIPE_REQUIRE_MODEL("mobilenetv2-int8.onnx");
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "squirrel_cls.jpg");
  const cv::Mat photo = cv::imread((test::opencv_data_dir() / "squirrel_cls.jpg").string(), cv::IMREAD_COLOR);
  ASSERT_FALSE(photo.empty());
  const auto network = compile_classifier();
  // A detector's classes; the classifier is configured to run on "animal" only.
  SecondaryRunner runner(network, {"person", "animal"}, {.threads = 1, .classes = {"animal"}});
  EXPECT_TRUE(runner.produces_attributes());
  std::vector<Detection> detections(6);
  for (std::size_t i = 0; i < detections.size(); ++i) {
    Detection& d = detections[i];
    d.class_id = i == 0 ? 0 : 1;  // the first is a "person": not classified
    // The whole photo, and slightly shrunk boxes of it (5 crops: two batches at max batch 4).
    const float inset = static_cast<float>(i) * 4.0F;
    d.x1 = inset;
    d.y1 = inset;
    d.x2 = static_cast<float>(photo.cols) - inset;
    d.y2 = static_cast<float>(photo.rows) - inset;
    d.score = 0.9F;
  }
  runner.run(vision::view_of_bgr(photo), detections);
  EXPECT_FALSE(detections[0].attribute.has_value()) << "a class the classifier is not configured for";
  for (std::size_t i = 1; i < detections.size(); ++i) {
    ASSERT_TRUE(detections[i].attribute.has_value()) << i;
    EXPECT_NE(detections[i].attribute->label.find("squirrel"), std::string::npos)
        << i << ": " << detections[i].attribute->label << " " << detections[i].attribute->score;
    EXPECT_GT(detections[i].attribute->score, 0.2F) << i;
    EXPECT_LE(detections[i].attribute->score, 1.0F) << i;
  }
  std::cout << "squirrel_cls.jpg: " << detections[1].attribute->label << " " << detections[1].attribute->score
            << "\n";
  // Without configured classes a classifier runs on every detection.
  SecondaryRunner every(network, {"person", "animal"}, {.threads = 1});
  detections[0].attribute.reset();
  every.run(vision::view_of_bgr(photo), std::span<Detection>(detections.data(), 1));
  EXPECT_TRUE(detections[0].attribute.has_value());
}

}  // namespace
}  // namespace vapipe::models
