// `vapipe compare` (and `vapipe info` on its INT8 package) end to end: a package against itself agrees perfectly; an INT8 package passes a
// realistic tolerance and fails an impossible one with the worst tensors named.

#include <cstdio>
#include <filesystem>
#include <fstream>
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

namespace {

// `vapipe compare A.jsonl B.jsonl`: two runs' results, frames matched by (channel, frame): a run against itself
// agrees perfectly, a run with one box moved off its object and one frame missing scores below 1, a line
// that is not a results record is one error naming the file and the line.
TEST(CompareCommand, TwoRunsResultsByChannelAndFrame) {
  const auto dir = vapipe::test::scratch_dir();
  const auto record = [](int channel, int frame, const nlohmann::json& detections) {
    return nlohmann::json{{"channel", channel}, {"frame", frame}, {"pts", frame}, {"detections", detections}}
               .dump() +
           "\n";
  };
  const auto box = [](int class_id, double score, double x1) {
    return nlohmann::json{
        {"class_id", class_id}, {"label", "x"}, {"score", score}, {"box", {x1, 10, x1 + 40, 90}}};
  };
  {
    std::ofstream reference(dir / "reference.jsonl");
    std::ofstream test(dir / "test.jsonl");
    for (int frame = 0; frame < 10; ++frame) {
      for (int channel = 0; channel < 2; ++channel) {
        const auto detections = nlohmann::json::array({box(0, 0.9, 10), box(2, 0.8, 100)});
        reference << record(channel, frame, detections);
        if (channel == 1 && frame == 9) continue;  // a frame the test run does not have
        // Frame 3 of channel 0: the class-2 box moved by its whole width (IoU 0).
        test << record(channel, frame,
                       channel == 0 && frame == 3 ? nlohmann::json::array({box(0, 0.9, 10), box(2, 0.8, 140)})
                                                  : detections);
      }
    }
  }
  const std::string reference = (dir / "reference.jsonl").string(), test = (dir / "test.jsonl").string();
  const auto compare = [](const std::string& a, const std::string& b) {
    const auto result = run("compare '" + a + "' '" + b + "' --json");
    EXPECT_EQ(result.exit_code, 0) << result.out;
    return nlohmann::json::parse(result.out, nullptr, false);
  };
  const auto same = compare(reference, reference);
  ASSERT_FALSE(same.is_discarded());
  EXPECT_EQ(same.at("frames"), 20);
  EXPECT_EQ(same.at("reference_boxes"), 40);
  EXPECT_DOUBLE_EQ(same.at("map50").get<double>(), 1.0);

  const auto moved = compare(reference, test);
  ASSERT_FALSE(moved.is_discarded());
  EXPECT_EQ(moved.at("frames"), 19);
  EXPECT_EQ(moved.at("reference_only_frames"), 1);
  EXPECT_LT(moved.at("map50").get<double>(), 1.0);
  EXPECT_GT(moved.at("map50").get<double>(), 0.9);

  std::ofstream(dir / "bad.jsonl") << record(0, 0, nlohmann::json::array()) << "{\"channel\": 0}\n";
  const auto bad = run("compare '" + reference + "' '" + (dir / "bad.jsonl").string() + "'");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("bad.jsonl:2: not a vapipe results line"), std::string::npos) << bad.out;
}

}  // namespace
