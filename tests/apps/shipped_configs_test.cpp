// sophon-pipeline's demo configs (configs/cameras_*.json, copied verbatim from its configs/) run as shipped
// with only their paths changed: the camera address, the model path and output_path. Each prints sophon's
// fps line and its results (`vapipe run --results`, which leaves the config untouched) carry what the kind
// of model adds: five landmarks per face for the face detectors.
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/test_data.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

fs::path faces_dir() { return test::models_dir() / ".." / "data" / "faces"; }

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct ShippedRun {
  int exit_code = -1;
  std::vector<std::string> log;
  std::vector<nlohmann::json> results;
};

// Runs configs/<name> with its camera, model path and output_path replaced, for `seconds`.
ShippedRun run_shipped(const std::string& name, const fs::path& video, const fs::path& model, int seconds) {
  const fs::path dir = test::scratch_dir();
  std::ifstream in(fs::path(VAPIPE_SOURCE_DIR) / "configs" / name);
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
  auto& camera = config["cards"][0]["cameras"][0];
  camera["address"] = video.string();
  auto& entry = config["models"][0];
  entry["path"] = model.string();
  entry["output_path"] = (dir / "out.mp4").string();
  const fs::path config_path = dir / name;
  std::ofstream(config_path) << config.dump(2);
  const fs::path results = dir / "results.jsonl";
  const std::string command = fmt::format(
      "timeout 300 '{}' run -c '{}' --results '{}' --duration {} --cache-dir '{}' >'{}' 2>&1", VAPIPE_CLI,
      config_path.string(), results.string(), seconds,
      (fs::temp_directory_path() / "vapipe-tests" / "model-cache").string(), (dir / "log").string());
  const int status = std::system(command.c_str());
  ShippedRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.log = read_lines(dir / "log");
  for (const auto& line : read_lines(results)) run.results.push_back(nlohmann::json::parse(line));
  return run;
}

int stats_lines(const std::vector<std::string>& log) {
  const std::regex line(R"(^\[\d{4}-\d\d-\d\d:\d\d:\d\d:\d\d\] total fps =\d+\.\d,ch=0: speed=\d+\.\d$)");
  int count = 0;
  for (const auto& l : log) count += std::regex_match(l, line) ? 1 : 0;
  return count;
}

std::string tail(const std::vector<std::string>& log) {
  std::string text;
  for (std::size_t i = log.size() > 15 ? log.size() - 15 : 0; i < log.size(); ++i) text += log[i] + "\n";
  return text;
}

// Faces of the face video: each with five landmarks inside its box, eyes above the mouth corners.
void expect_faces_with_landmarks(const ShippedRun& run) {
  ASSERT_GE(run.results.size(), 20u) << tail(run.log);
  std::size_t frames_with_faces = 0;
  for (const auto& record : run.results) {
    const auto& detections = record.at("detections");
    frames_with_faces += detections.empty() ? 0 : 1;
    for (const auto& face : detections) {
      EXPECT_EQ(face.at("label"), "face");
      const auto& box = face.at("box");
      const auto& points = face.at("keypoints");
      ASSERT_EQ(points.size(), 5u) << face.dump();
      // Landmarks may reach a little past a tight box (a face turned away); 10 % of its size.
      const float w = box[2].get<float>() - box[0].get<float>(),
                  h = box[3].get<float>() - box[1].get<float>();
      for (const auto& p : points) {
        EXPECT_GE(p[0].get<float>(), box[0].get<float>() - 0.1f * w) << face.dump();
        EXPECT_LE(p[0].get<float>(), box[2].get<float>() + 0.1f * w) << face.dump();
        EXPECT_GE(p[1].get<float>(), box[1].get<float>() - 0.1f * h) << face.dump();
        EXPECT_LE(p[1].get<float>(), box[3].get<float>() + 0.1f * h) << face.dump();
      }
      if (face.at("score").get<float>() < 0.5f) continue;  // low-score candidates (the config keeps 0.05)
      const float eyes = std::max(points[0][1].get<float>(), points[1][1].get<float>());
      const float mouth = std::min(points[3][1].get<float>(), points[4][1].get<float>());
      EXPECT_LT(eyes, mouth) << "eyes below the mouth: " << face.dump();
    }
  }
  // Three people face the camera through the clip.
  EXPECT_GE(frames_with_faces, run.results.size() * 9 / 10);
}

TEST(ShippedConfigs, FaceDetectRunsWithScrfd) {
  VAPIPE_REQUIRE_MODEL("scrfd_500m_bnkps.onnx");
  const fs::path video = faces_dir() / "video_chunk_6s.mp4";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found";
  const ShippedRun run =
      run_shipped("cameras_face_detect.json", video, test::models_dir() / "scrfd_500m_bnkps.onnx", 8);
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  EXPECT_GE(stats_lines(run.log), 2) << tail(run.log);
  expect_faces_with_landmarks(run);
}

TEST(ShippedConfigs, RetinafaceRunsWithRetinaFace) {
  VAPIPE_REQUIRE_MODEL("retinaface_mnet025.onnx");
  const fs::path video = faces_dir() / "video_chunk_6s.mp4";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found";
  const ShippedRun run =
      run_shipped("cameras_retinaface.json", video, test::models_dir() / "retinaface_mnet025.onnx", 8);
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  EXPECT_GE(stats_lines(run.log), 2) << tail(run.log);
  expect_faces_with_landmarks(run);
}

}  // namespace
}  // namespace vapipe
