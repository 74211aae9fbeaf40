// Issue 19 acceptance: `vapipe detect` with a chain of models (yolov5n, then SimplePose on every person box),
// from one combined package and from --secondary, on real photos: every person gets 17 keypoints inside its
// crop, and the confident ones are where a body has them.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/test_data.hpp"

namespace {

namespace fs = std::filesystem;
using vapipe::test::run_shell;

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream stream(out);
  for (std::string line; std::getline(stream, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

enum Joint { kNose = 0, kLeftShoulder = 5, kRightShoulder = 6, kLeftHip = 11, kRightHip = 12 };
constexpr float kConfident = 0.3f;  // the authors draw keypoints above 0.2

// Checks every person of one image; returns how many had a confident nose and a confident hip (the
// anatomical check is vacuous without them).
int check_people(const nlohmann::json& line, float width, float height) {
  int checked = 0, people = 0;
  for (const auto& d : line.at("detections")) {
    if (d.at("label") != "person") continue;
    ++people;
    const auto& box = d.at("box");
    const float x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];
    const auto& points = d.value("keypoints", nlohmann::json::array());
    EXPECT_EQ(points.size(), 17U) << d.dump();
    if (points.size() != 17U) continue;
    // The crop: the box grown 1.25x about its centre, clipped to the image (plus a pixel for rounding).
    const float grow_x = 0.125f * (x2 - x1) + 1.0f, grow_y = 0.125f * (y2 - y1) + 1.0f;
    for (const auto& p : points) {
      const float x = p[0], y = p[1], score = p[2];
      EXPECT_GE(x, std::max(0.0f, x1 - grow_x)) << d.dump();
      EXPECT_LE(x, std::min(width, x2 + grow_x)) << d.dump();
      EXPECT_GE(y, std::max(0.0f, y1 - grow_y)) << d.dump();
      EXPECT_LE(y, std::min(height, y2 + grow_y)) << d.dump();
      EXPECT_GE(score, 0.0f);
      EXPECT_LE(score, 1.5f);
    }
    auto confident = [&](int joint) { return points[static_cast<std::size_t>(joint)][2] > kConfident; };
    auto y_of = [&](int joint) { return points[static_cast<std::size_t>(joint)][1].get<float>(); };
    for (int hip : {kLeftHip, kRightHip}) {
      if (confident(kNose) && confident(hip)) {
        EXPECT_LT(y_of(kNose), y_of(hip)) << "nose below a hip: " << d.dump();
        ++checked;
      }
      for (int shoulder : {kLeftShoulder, kRightShoulder}) {
        if (confident(shoulder) && confident(hip)) {
          EXPECT_LT(y_of(shoulder), y_of(hip)) << "shoulder below a hip: " << d.dump();
        }
      }
    }
  }
  EXPECT_GE(people, 1) << line.dump();
  return checked;
}

TEST(PoseChain, DetectRunsSimplePoseOnEveryPersonOfTwoPhotos) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_MODEL("simplepose_256x192.onnx");
  const auto messi = vapipe::test::opencv_data_dir() / "messi5.jpg";            // 548 x 342
  const auto basketball = vapipe::test::opencv_data_dir() / "basketball1.png";  // 640 x 480
  VAPIPE_REQUIRE_FILE(messi);
  VAPIPE_REQUIRE_FILE(basketball);
  const auto dir = vapipe::test::scratch_dir();
  const auto log = dir / "stderr.txt";
  const std::string cli = VAPIPE_CLI;
  const auto models = vapipe::test::models_dir();
  // Pose at batch 1 and 2: a photo with three or more people takes more than one batch of the largest stage.
  for (const std::string& command :
       {cli + " compile '" + (models / "yolov5n.onnx").string() + "' -o '" + (dir / "yolov5n.vpk").string() +
            "'",
        cli + " compile '" + (models / "simplepose_256x192.onnx").string() + "' --batch 1,2 -o '" +
            (dir / "simplepose.vpk").string() + "'",
        cli + " combine '" + (dir / "yolov5n.vpk").string() + "' '" + (dir / "simplepose.vpk").string() +
            "' -o '" + (dir / "person_pose.vpk").string() + "'"}) {
    ASSERT_EQ(run_shell(command + " >/dev/null 2>'" + log.string() + "'").exit_code, 0) << command << "\n"
                                                                                        << slurp(log);
  }
  const std::string images = " '" + messi.string() + "' '" + basketball.string() + "' --json";
  const auto combined = run_shell(cli + " detect '" + (dir / "person_pose.vpk").string() + "'" + images +
                                  " --save '" + (dir / "annotated").string() + "' 2>'" + log.string() + "'");
  ASSERT_EQ(combined.exit_code, 0) << slurp(log);
  const auto lines = json_lines(combined.out);
  ASSERT_EQ(lines.size(), 2U) << combined.out;
  const int checked = check_people(lines[0], 548, 342) + check_people(lines[1], 640, 480);
  EXPECT_GE(checked, 1) << "no person had a confident nose and hip: " << combined.out;
  EXPECT_TRUE(fs::exists(dir / "annotated" / "messi5.jpg"));

  // The same chain from two packages.
  const auto chained =
      run_shell(cli + " detect '" + (dir / "yolov5n.vpk").string() + "'" + images + " --secondary '" +
                (dir / "simplepose.vpk").string() + "' 2>'" + log.string() + "'");
  ASSERT_EQ(chained.exit_code, 0) << slurp(log);
  EXPECT_EQ(chained.out, combined.out);
  std::cout << combined.out;
}

TEST(PoseChain, SecondaryWithoutATopDownNetworkIsOneError) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto messi = vapipe::test::opencv_data_dir() / "messi5.jpg";
  VAPIPE_REQUIRE_FILE(messi);
  const auto dir = vapipe::test::scratch_dir();
  const std::string cli = VAPIPE_CLI;
  const auto package = (dir / "yolov5n.vpk").string();
  ASSERT_EQ(run_shell(cli + " compile '" + (vapipe::test::models_dir() / "yolov5n.onnx").string() + "' -o '" +
                      package + "' >/dev/null 2>&1")
                .exit_code,
            0);
  const auto result = run_shell(cli + " detect '" + package + "' '" + messi.string() + "' --secondary '" +
                                package + "' 2>&1");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.out.find("no top-down network"), std::string::npos) << result.out;
}

}  // namespace
