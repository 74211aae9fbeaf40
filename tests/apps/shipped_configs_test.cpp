// sophon-pipeline's demo configs (configs/cameras_*.json, copied verbatim from its configs/) run as shipped
// with only their paths changed: the camera address, the model path and output_path. Each prints sophon's
// fps line and its results (`vapipe run --results`, which leaves the config untouched) carry what the kind
// of model adds: five landmarks per face for the face detectors.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
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

// Runs configs/<name> with its camera, model path and output_path replaced, for `seconds`; `extra` keys (vapipe's
// own) are merged into the model entry and `camera_extra` into the camera; `more_models` are appended to models[].
ShippedRun run_shipped(const std::string& name, const fs::path& video, const fs::path& model, int seconds,
                       fs::path dir = {}, const nlohmann::json& extra = nlohmann::json::object(),
                       const nlohmann::json& camera_extra = nlohmann::json::object(),
                       const nlohmann::json& more_models = nlohmann::json::array()) {
  if (dir.empty()) dir = test::scratch_dir();
  std::ifstream in(fs::path(VAPIPE_SOURCE_DIR) / "configs" / name);
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
  auto& camera = config["cards"][0]["cameras"][0];
  camera["address"] = video.string();
  auto& entry = config["models"][0];
  entry["path"] = model.string();
  entry["output_path"] = (dir / "out.mp4").string();
  for (const auto& [key, value] : extra.items()) entry[key] = value;
  for (const auto& [key, value] : camera_extra.items()) camera[key] = value;
  for (const auto& more : more_models) config["models"].push_back(nlohmann::ordered_json::parse(more.dump()));
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

// Issue 20: ppyoloe's config (model_type "ppyoloe", obj_threshold 0.5, no class_threshold) on NanoDet-m, a GFL
// head like PP-YOLOE's: the people walking through vtest.avi, as persons above the config's 0.5.
TEST(ShippedConfigs, PpyoloeRunsWithAGflDetector) {
  VAPIPE_REQUIRE_MODEL("nanodet_m_320.onnx");
  const fs::path video = test::opencv_data_dir() / "vtest.avi";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found (Debian's opencv-doc)";
  const ShippedRun run =
      run_shipped("cameras_ppyoloe.json", video, test::models_dir() / "nanodet_m_320.onnx", 8);
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  EXPECT_GE(stats_lines(run.log), 2) << tail(run.log);
  ASSERT_GE(run.results.size(), 20u) << tail(run.log);
  std::size_t frames_with_persons = 0;
  for (const auto& record : run.results) {
    bool person = false;
    for (const auto& d : record.at("detections")) {
      EXPECT_GT(d.at("score").get<float>(), 0.5f) << "below the config's obj_threshold: " << d.dump();
      person = person || d.at("label") == "person";
    }
    frames_with_persons += person ? 1 : 0;
  }
  // Several people walk through every frame of the clip.
  EXPECT_GE(frames_with_persons, run.results.size() * 9 / 10) << tail(run.log);
}

// yolact's config (model_type "yolact_base") runs YOLOv8-seg: every person of the face video (three people
// facing the camera) with a mask, COCO RLE over its box's pixels, covering a plausible part of the box.
TEST(ShippedConfigs, YolactRunsWithYolov8Seg) {
  VAPIPE_REQUIRE_MODEL("yolov8n-seg-int8.onnx");
  const fs::path video = faces_dir() / "video_chunk_6s.mp4";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found";
  const ShippedRun run =
      run_shipped("cameras_yolact.json", video, test::models_dir() / "yolov8n-seg-int8.onnx", 8);
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  EXPECT_GE(stats_lines(run.log), 2) << tail(run.log);
  ASSERT_GE(run.results.size(), 20u) << tail(run.log);
  std::size_t persons = 0;
  for (const auto& record : run.results) {
    for (const auto& d : record.at("detections")) {
      ASSERT_TRUE(d.contains("mask")) << d.dump();
      EXPECT_GT(d.at("score").get<float>(), 0.3f) << "the config's obj_threshold";
      const auto& mask = d.at("mask");
      const auto& box = d.at("box");
      const int x = mask.at("origin")[0], y = mask.at("origin")[1];
      const int height = mask.at("size")[0], width = mask.at("size")[1];
      // The box's pixels: floor of its corner to the ceiling of the other.
      EXPECT_EQ(x, static_cast<int>(std::floor(box[0].get<float>()))) << d.dump();
      EXPECT_EQ(y, static_cast<int>(std::floor(box[1].get<float>()))) << d.dump();
      EXPECT_EQ(x + width, static_cast<int>(std::ceil(box[2].get<float>()))) << d.dump();
      EXPECT_EQ(y + height, static_cast<int>(std::ceil(box[3].get<float>()))) << d.dump();
      std::int64_t total = 0, set = 0;
      const auto& counts = mask.at("counts");
      for (std::size_t i = 0; i < counts.size(); ++i) {
        total += counts[i].get<std::int64_t>();
        if (i % 2 == 1) set += counts[i].get<std::int64_t>();
      }
      EXPECT_EQ(total, static_cast<std::int64_t>(width) * height) << d.dump();
      if (d.at("label") != "person" || d.at("score").get<float>() < 0.5f) continue;
      ++persons;
      // A person fills part of their box, never none or all of it.
      EXPECT_GT(set, total / 5) << "box " << box.dump();
      EXPECT_LT(set, total * 19 / 20) << "box " << box.dump();
    }
  }
  EXPECT_GE(persons, run.results.size() * 2) << "three people are in view through the clip";
}

// openpose's config names one model: a package holding YOLOv5n and SimplePose (vapipe combine) runs as a chain,
// the pose network on every person (up to 8 a frame), a track's pose reused for a few frames.
TEST(ShippedConfigs, OpenposeRunsAPersonDetectorAndPoseChain) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_MODEL("simplepose_256x192.onnx");
  const fs::path video = test::opencv_data_dir() / "vtest.avi";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found (Debian's opencv-doc)";
  const fs::path dir = test::scratch_dir();
  for (const auto& [onnx, vpk] :
       {std::pair{"yolov5n.onnx", "yolov5n.vpk"}, {"simplepose_256x192.onnx", "pose.vpk"}}) {
    ASSERT_EQ(std::system(fmt::format("'{}' compile '{}' --batch 1,4 -o '{}' >'{}' 2>&1", VAPIPE_CLI,
                                      (test::models_dir() / onnx).string(), (dir / vpk).string(),
                                      (dir / "compile.log").string())
                              .c_str()),
              0)
        << onnx;
  }
  const fs::path package = dir / "person_pose.vpk";
  ASSERT_EQ(std::system(fmt::format("'{}' combine '{}' '{}' -o '{}' >'{}' 2>&1", VAPIPE_CLI,
                                    (dir / "yolov5n.vpk").string(), (dir / "pose.vpk").string(),
                                    package.string(), (dir / "combine.log").string())
                            .c_str()),
            0);
  const ShippedRun run = run_shipped("cameras_openpose.json", video, package, 8, dir);
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  EXPECT_GE(stats_lines(run.log), 2) << tail(run.log);
  ASSERT_GE(run.results.size(), 20u) << tail(run.log);
  std::size_t persons = 0, posed = 0;
  for (const auto& record : run.results) {
    for (const auto& d : record.at("detections")) {
      if (d.at("label") != "person") {
        EXPECT_FALSE(d.contains("keypoints")) << d.dump();
        continue;
      }
      ++persons;
      if (!d.contains("keypoints")) continue;  // beyond the 8 largest of its frame
      ++posed;
      const auto& box = d.at("box");
      const auto& points = d.at("keypoints");
      ASSERT_EQ(points.size(), 17u) << d.dump();
      // Inside the box grown by the crop's 1.25 (the pose network sees that much around it).
      const float w = box[2].get<float>() - box[0].get<float>(),
                  h = box[3].get<float>() - box[1].get<float>();
      for (const auto& p : points) {
        EXPECT_GE(p[0].get<float>(), box[0].get<float>() - 0.15f * w - 1) << d.dump();
        EXPECT_LE(p[0].get<float>(), box[2].get<float>() + 0.15f * w + 1) << d.dump();
        EXPECT_GE(p[1].get<float>(), box[1].get<float>() - 0.15f * h - 1) << d.dump();
        EXPECT_LE(p[1].get<float>(), box[3].get<float>() + 0.15f * h + 1) << d.dump();
      }
    }
  }
  EXPECT_GT(persons, run.results.size()) << "vtest.avi has several people in every frame";
  EXPECT_GE(posed, persons * 9 / 10);
  // The chain's cost follows new tracks: most persons reuse their track's pose.
  const std::regex chain_line(R"(^second stage: (\d+) object\(s\) run, (\d+) reused from their track$)");
  std::smatch match;
  bool found = false;
  for (const auto& line : run.log) {
    if (!std::regex_match(line, match, chain_line)) continue;
    found = true;
    const auto ran = std::stoull(match[1].str()), reused = std::stoull(match[2].str());
    EXPECT_EQ(ran + reused, posed);
    EXPECT_GT(reused, ran) << "tracks did not reuse their pose";
  }
  EXPECT_TRUE(found) << tail(run.log);
}

// `vapipe compile` of each ONNX file (batch 1 and 4) and `vapipe combine` of the packages into `package`.
void combine(const fs::path& dir, const std::vector<std::string>& onnx_files, const fs::path& package) {
  std::string packages;
  for (const auto& onnx : onnx_files) {
    const fs::path vpk = dir / fs::path(onnx).replace_extension(".vpk").filename();
    ASSERT_EQ(std::system(fmt::format("'{}' compile '{}' --batch 1,4 -o '{}' >'{}' 2>&1", VAPIPE_CLI,
                                      (test::models_dir() / onnx).string(), vpk.string(),
                                      (dir / "compile.log").string())
                              .c_str()),
              0)
        << onnx;
    packages += fmt::format(" '{}'", vpk.string());
  }
  ASSERT_EQ(std::system(fmt::format("'{}' combine{} -o '{}' >'{}' 2>&1", VAPIPE_CLI, packages,
                                    package.string(), (dir / "combine.log").string())
                            .c_str()),
            0);
}

// The "secondary" key (vapipe): the pose network as another models[] entry instead of inside the package, on at
// most 2 persons a frame. The run says how many objects it ran; it never runs more than 2 a frame.
TEST(ShippedConfigs, OpenposeWithASecondaryKeyNamingAnotherModelEntry) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_MODEL("simplepose_256x192.onnx");
  const fs::path video = test::opencv_data_dir() / "vtest.avi";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found (Debian's opencv-doc)";
  const fs::path dir = test::scratch_dir();
  std::ifstream in(fs::path(VAPIPE_SOURCE_DIR) / "configs" / "cameras_openpose.json");
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
  config["cards"][0]["cameras"][0]["address"] = video.string();
  config["cards"][0]["cameras"][0]["loop"] = false;
  auto& detector = config["models"][0];
  detector["path"] = (test::models_dir() / "yolov5n.onnx").string();
  detector.erase("output_path");
  detector["secondary"] = {{{"model", "pose"}, {"classes", {"person"}}, {"max_objects", 2}}};
  config["models"].push_back({{"name", "pose"},
                              {"path", (test::models_dir() / "simplepose_256x192.onnx").string()},
                              {"nms_threshold", 0.5}});
  std::ofstream(dir / "config.json") << config.dump(2);
  const fs::path results = dir / "results.jsonl";
  const std::string command = fmt::format(
      "timeout 300 '{}' run -c '{}' --results '{}' --duration 4 --cache-dir '{}' >'{}' 2>&1", VAPIPE_CLI,
      (dir / "config.json").string(), results.string(),
      (fs::temp_directory_path() / "vapipe-tests" / "model-cache").string(), (dir / "log").string());
  ASSERT_EQ(std::system(command.c_str()), 0) << tail(read_lines(dir / "log"));
  const auto log = read_lines(dir / "log");
  EXPECT_EQ(
      std::find_if(log.begin(), log.end(),
                   [](const std::string& l) { return l.find("no camera uses it") != std::string::npos; }),
      log.end())
      << "the pose entry is used by the detector's secondary key";
  std::size_t frames = 0, posed = 0;
  for (const auto& line : read_lines(results)) {
    ++frames;
    const auto record = nlohmann::json::parse(line);
    for (const auto& d : record.at("detections")) posed += d.contains("keypoints") ? 1 : 0;
  }
  ASSERT_GT(frames, 10U) << tail(log);
  EXPECT_GT(posed, frames) << "vtest.avi has persons in every frame";
  const std::regex chain_line(R"(^second stage: (\d+) object\(s\) run, (\d+) reused from their track$)");
  std::smatch match;
  const auto found = std::find_if(
      log.begin(), log.end(), [&](const std::string& l) { return std::regex_match(l, match, chain_line); });
  ASSERT_NE(found, log.end()) << tail(log);
  std::regex_match(*found, match, chain_line);
  EXPECT_LE(std::stoull(match[1].str()), 2 * frames);
}

// Issue 20: a pre-quantized classifier (ORT's QLinear MobileNetV2) as the second stage of the shipped yolov5
// config: every classified object carries its ImageNet top-1 in the JSON Lines, only objects of the configured
// class are classified, and the chain's counts are in the summary.
TEST(ShippedConfigs, Yolov5WithAQuantizedClassifierAsSecondaryGivesObjectsAnAttribute) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_MODEL("mobilenetv2-int8.onnx");
  const fs::path video = test::opencv_data_dir() / "vtest.avi";
  if (!fs::exists(video)) GTEST_SKIP() << video << " not found (Debian's opencv-doc)";
  const auto run =
      run_shipped("cameras_yolov5.json", video, test::models_dir() / "yolov5n.onnx", 4, {},
                  {{"secondary", {{{"model", "classifier"}, {"classes", {"person"}}, {"max_objects", 3}}}}},
                  {{"chan_num", 1}, {"loop", false}},
                  // nms_threshold: required in every entry by sophon's schema, unused by a classifier.
                  nlohmann::json::array({{{"name", "classifier"},
                                          {"path", (test::models_dir() / "mobilenetv2-int8.onnx").string()},
                                          {"nms_threshold", 0.5}}}));
  ASSERT_EQ(run.exit_code, 0) << tail(run.log);
  const auto& log = run.log;
  std::size_t frames = 0, classified = 0, persons = 0;
  std::map<std::string, std::size_t> labels;
  for (const auto& record : run.results) {
    ++frames;
    for (const auto& d : record.at("detections")) {
      const bool person = d.at("label") == "person";
      persons += person ? 1 : 0;
      if (!d.contains("attribute")) continue;
      ++classified;
      EXPECT_TRUE(person) << "only persons are configured for the classifier: " << d.dump();
      const auto& attribute = d.at("attribute");
      EXPECT_GT(attribute.at("score").get<double>(), 0.0) << d.dump();
      EXPECT_LE(attribute.at("score").get<double>(), 1.0) << d.dump();
      ++labels[attribute.at("label").get<std::string>()];
    }
  }
  ASSERT_GT(frames, 10U) << tail(log);
  EXPECT_GT(persons, frames) << "vtest.avi has persons in every frame";
  EXPECT_GT(classified, frames) << "the classifier runs on up to 3 persons of each frame";
  EXPECT_LE(classified, persons);
  ASSERT_FALSE(labels.empty());
  // ImageNet's names (the model's metadata), not class ids.
  for (const auto& [label, count] : labels)
    EXPECT_EQ(label.rfind("class_", 0), std::string::npos) << label << " x" << count;
  const std::regex chain_line(R"(^second stage: (\d+) object\(s\) run, (\d+) reused from their track$)");
  EXPECT_NE(std::find_if(log.begin(), log.end(),
                         [&](const std::string& l) { return std::regex_match(l, chain_line); }),
            log.end())
      << tail(log);
}

// The face video and a package of SCRFD + MobileFaceNet (vapipe combine), made per test.
class ShippedFaceRecognition : public ::testing::Test {
 protected:
  void SetUp() override {
    VAPIPE_REQUIRE_MODEL("scrfd_500m_bnkps.onnx");
    VAPIPE_REQUIRE_MODEL("mobilefacenet.onnx");
    if (!fs::exists(video)) GTEST_SKIP() << video << " not found";
    combine(dir, {"scrfd_500m_bnkps.onnx", "mobilefacenet.onnx"}, package);
  }
  const fs::path video = faces_dir() / "video_chunk_6s.mp4";
  const fs::path dir = test::scratch_dir();
  const fs::path package = dir / "face.vpk";
};

// face_recognition's config names one model: a package holding SCRFD and MobileFaceNet runs as a chain, every
// face with its landmarks aligned and embedded (a track's embedding reused for a few frames).
TEST_F(ShippedFaceRecognition, RunsADetectorAndEmbedderChain) {
  const ShippedRun run = run_shipped("cameras_face_recognition.json", video, package, 8, dir);
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  EXPECT_GE(stats_lines(run.log), 2) << tail(run.log);
  expect_faces_with_landmarks(run);
  std::size_t faces = 0, embedded = 0;
  for (const auto& record : run.results) {
    for (const auto& face : record.at("detections")) {
      ++faces;
      if (!face.contains("embedding")) continue;
      ++embedded;
      const auto embedding = face.at("embedding").get<std::vector<float>>();
      ASSERT_EQ(embedding.size(), 128U);
      double norm = 0;
      for (float v : embedding) norm += double{v} * double{v};
      EXPECT_NEAR(norm, 1.0, 1e-4);
      EXPECT_FALSE(face.contains("identity")) << "no gallery configured";
    }
  }
  EXPECT_GE(embedded, faces * 9 / 10);
  EXPECT_NE(std::find_if(run.log.begin(), run.log.end(),
                         [](const std::string& l) { return l.rfind("second stage: ", 0) == 0; }),
            run.log.end())
      << tail(run.log);
}

// With a gallery (a vapipe key on the model): the two people of the face video who are in the gallery are named
// on at least 90 % of the frames where their face is found, the third is unknown on at least 90 % of hers, and
// each keeps one track. The gallery holds some people twice (its README: 0001/0002, 0016/0024 and 0025/0026 are
// the same people), so a name counts as its person's. The two known people are 0001's and 0025's (2026-12-07:
// 178 of 178 frames named 0001; 166 of 178 named 0026 and the other 12 0025; the third 178 of 178 unknown).
TEST_F(ShippedFaceRecognition, NamesTheKnownPeopleOfTheVideo) {
  const ShippedRun run = run_shipped("cameras_face_recognition.json", video, package, 30, dir,
                                     {{"gallery", faces_dir().string()}}, {{"loop", false}});
  EXPECT_EQ(run.exit_code, 0) << tail(run.log);
  ASSERT_GE(run.results.size(), 150U) << tail(run.log);
  // Per track: its frames, and how often each name was shown.
  std::map<int, std::map<std::string, int>> names_by_track;
  std::map<int, int> frames_by_track;
  for (const auto& record : run.results) {
    for (const auto& face : record.at("detections")) {
      if (face.at("score").get<float>() < 0.5f) continue;  // the config keeps candidates down to 0.05
      const int track = face.at("track_id").get<int>();
      ++frames_by_track[track];
      if (!face.contains("identity")) continue;
      std::string name = face.at("identity").at("name").get<std::string>();
      for (const auto& [other, same] : {std::pair{"0002", "0001"}, {"0024", "0016"}, {"0026", "0025"}})
        if (name == other) name = same;
      ++names_by_track[track][name];
    }
  }
  std::vector<std::pair<int, int>> long_tracks;  // (frames, track)
  for (const auto& [track, frames] : frames_by_track)
    if (frames >= 30) long_tracks.emplace_back(frames, track);
  std::string report;
  for (const auto& [track, names] : names_by_track) {
    report += fmt::format("track {} ({} frames):", track, frames_by_track[track]);
    for (const auto& [name, count] : names) report += fmt::format(" {}={}", name, count);
    report += "\n";
  }
  ASSERT_EQ(long_tracks.size(), 3U) << "three people, one track each:\n" << report;
  std::set<std::string> known;
  int unknown_tracks = 0;
  for (const auto& [frames, track] : long_tracks) {
    const auto& names = names_by_track[track];
    const auto best = std::max_element(names.begin(), names.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    ASSERT_NE(best, names.end()) << report;
    EXPECT_GE(best->second * 10, frames * 9)
        << "track " << track << " named " << best->first << " on too few of its frames:\n"
        << report;
    if (best->first == "unknown")
      ++unknown_tracks;
    else
      known.insert(best->first);
  }
  EXPECT_EQ(unknown_tracks, 1) << report;
  EXPECT_EQ(known, (std::set<std::string>{"0001", "0025"})) << report;
  std::cout << report;
}

}  // namespace
}  // namespace vapipe
