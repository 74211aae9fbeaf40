// `vapipe compare` (and `vapipe info` on its INT8 package) end to end: a package against itself agrees perfectly; an INT8 package passes a
// realistic tolerance and fails an impossible one with the worst tensors named.

#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/test_data.hpp"

namespace {

vapipe::test::CommandResult run(const std::string& arguments) {
  return vapipe::test::run_shell(std::string("'") + VAPIPE_CLI + "' " + arguments + " 2>&1");
}

TEST(CompareCommand, SelfAgreementAndInt8Tolerance) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto data = vapipe::test::opencv_data_dir();
  VAPIPE_REQUIRE_FILE(data / "messi5.jpg");
  const auto dir = vapipe::test::scratch_dir();
  std::filesystem::create_directories(dir / "images");
  for (const char* name : {"messi5.jpg", "basketball1.png", "aero3.jpg"})
    std::filesystem::copy_file(data / name, dir / "images" / name);
  const std::string model = (vapipe::test::models_dir() / "yolov5n.onnx").string();
  const std::string fp32 = (dir / "fp32.vpk").string(), int8 = (dir / "int8.vpk").string();
  const std::string images = (dir / "images").string();
  ASSERT_EQ(run("compile '" + model + "' -o '" + fp32 + "'").exit_code, 0);
  const auto compiled =
      run("compile '" + model + "' -o '" + int8 + "' --precision int8 --calib-method max --calib-images '" +
          images + "' --threads 2");
  ASSERT_EQ(compiled.exit_code, 0) << compiled.out;

  // info shows the precision per layer and the calibration.
  const auto info = run("info '" + int8 + "' --json --layers");
  ASSERT_EQ(info.exit_code, 0) << info.out;
  const auto network = nlohmann::json::parse(info.out).at("networks").at(0);
  EXPECT_EQ(network.at("precision"), "int8");
  EXPECT_EQ(network.at("quantization").at("method"), "max");
  EXPECT_EQ(network.at("quantization").at("images"), 3);
  EXPECT_GE(network.at("layer_precisions").at("int8").get<int>(), 60);
  EXPECT_EQ(network.at("layers").at(0).at("precision"), "int8");

  const auto self = run("compare '" + fp32 + "' '" + fp32 + "' --images '" + images + "' --json --threads 2");
  ASSERT_EQ(self.exit_code, 0) << self.out;
  const auto report = nlohmann::json::parse(self.out);
  EXPECT_DOUBLE_EQ(report.at("map50").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(report.at("map50_95").get<double>(), 1.0);
  EXPECT_GT(report.at("reference_boxes").get<int>(), 5);
  ASSERT_EQ(report.at("tensors").size(), 3U);  // the three raw heads
  for (const auto& t : report.at("tensors")) EXPECT_DOUBLE_EQ(t.at("cosine").get<double>(), 1.0);

  const auto realistic = run("compare '" + fp32 + "' '" + int8 + "' --images '" + images + "' --threads 2");
  EXPECT_EQ(realistic.exit_code, 0) << realistic.out;
  EXPECT_NE(realistic.out.find("mAP@0.5"), std::string::npos) << realistic.out;

  const auto strict = run("compare '" + fp32 + "' '" + int8 + "' --images '" + images +
                          "' --tolerance 0.999999,0.999 --threads 2");
  EXPECT_EQ(strict.exit_code, 1) << strict.out;
  EXPECT_NE(
      strict.out.find("vapipe: error: 3 of 3 tensors below the tolerance 0.999999,0.999: '/model.24/m."),
      std::string::npos)
      << strict.out;
}

}  // namespace
