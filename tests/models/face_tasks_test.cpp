// The face detector tasks (src/models/tasks/: SCRFD, RetinaFace, YuNet, UltraFace) on the shared models and
// real photos.
//  - Differential: one preprocessed input (vapipe's preprocessor, from the package's metadata) goes through
//    vapipe and through ONNX Runtime (tests/support/ort_run.mjs); vapipe's decoder and NMS on vapipe's outputs
//    must give the faces an independent decode written from each author's code gives on ORT's outputs
//    (tests/support/face_decode_ref.mjs): the same number, boxes and landmarks within 0.5 network input
//    pixels, scores within 1e-3.
//  - Acceptance: the real CLI compiles each model (its model_type recognized from the outputs) and `vapipe
//    detect --json` finds faces in /work/shared/data/faces whose landmarks sit where a face has them.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "compiler/compiler.hpp"
#include "models/post_processor.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

struct FaceModel {
  const char* file;
  const char* task;
  std::optional<std::pair<int, int>> input_size;  // exports with a symbolic H x W (YuNet)
  bool landmarks;
  float conf_threshold;  // the task's default (metadata "postprocess"), which `vapipe detect` applies
};

const std::array<FaceModel, 4> kFaceModels = {{
    {"scrfd_500m_bnkps.onnx", "scrfd", std::nullopt, true, 0.5f},
    {"retinaface_mnet025.onnx", "retinaface", std::nullopt, true, 0.8f},
    {"yunet.onnx", "yunet", std::pair{640, 640}, true, 0.9f},
    {"ultraface_rfb320.onnx", "ultraface", std::nullopt, false, 0.7f},
}};

fs::path faces_dir() { return test::models_dir() / ".." / "data" / "faces"; }

using test::run_shell;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const FaceModel& model_named(const std::string& task) {
  return *std::find_if(kFaceModels.begin(), kFaceModels.end(),
                       [&](const FaceModel& m) { return m.task == task; });
}

class FaceTask : public ::testing::TestWithParam<std::string> {};

// A face as both sides report it, in network input pixels.
struct Face {
  float score = 0.0f;
  std::array<float, 4> box{};
  std::vector<std::array<float, 2>> landmarks;
};

TEST_P(FaceTask, DecodesAsTheAuthorsDoOnOnnxRuntimesOutputs) {
  const FaceModel& model = model_named(GetParam());
  VAPIPE_REQUIRE_MODEL(model.file);
  // Two faces, one face, a PNG, and a football player in a crowd-less stadium (opencv-doc has no lena.jpg).
  const std::vector<fs::path> images = {faces_dir() / "0014.jpg", faces_dir() / "0003.jpg",
                                        faces_dir() / "0020.png", test::opencv_data_dir() / "messi5.jpg"};
  for (const auto& image : images) VAPIPE_REQUIRE_FILE(image);

  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / model.file).string();
  options.input_size = model.input_size;
  ir::Network compiled = compiler::compile_onnx(options);
  const nlohmann::json metadata = compiled.metadata;
  ASSERT_EQ(metadata.at("model_type"), model.task) << "the task was not recognized from the outputs";
  const auto network =
      std::make_shared<const Network>(std::make_shared<const ir::Network>(std::move(compiled)));
  const auto inputs = network->inputs(1);
  ASSERT_EQ(inputs.size(), 1U);
  const Shape& shape = inputs[0].shape;
  ASSERT_EQ(shape.size(), 4U);
  const vision::PreprocessOptions preprocess = vision::PreprocessOptions::from_metadata(metadata);
  ASSERT_EQ(preprocess.width, shape[3]);
  ASSERT_EQ(preprocess.height, shape[2]);
  const auto post_options = models::PostprocessOptions::from_metadata(metadata);
  models::PostProcessor post(metadata, network->outputs(1), post_options);
  ExecutionContext context(network, {.threads = 1});

  std::size_t faces_seen = 0;
  float worst_box = 0.0f, worst_landmark = 0.0f, worst_score = 0.0f;  // reported
  const fs::path dir = test::scratch_dir();
  for (const auto& image : images) {
    SCOPED_TRACE(image.string());
    const cv::Mat bgr = cv::imread(image.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty());
    std::vector<float> input(static_cast<std::size_t>(shape_volume(shape)));
    vision::preprocess(
        vision::ImageView::bgr(bgr.data, bgr.cols, bgr.rows, static_cast<std::ptrdiff_t>(bgr.step)),
        preprocess, input.data());

    // ONNX Runtime and the authors' decode.
    const fs::path input_file = dir / "input.f32";
    std::ofstream(input_file, std::ios::binary)
        .write(reinterpret_cast<const char*>(input.data()),
               static_cast<std::streamsize>(input.size() * sizeof(float)));
    const fs::path log = dir / "node.log";
    const int status =
        std::system(fmt::format("node '{}/tests/support/ort_run.mjs' '{}' '{}' '{}={}:{}' >'{}' 2>&1",
                                VAPIPE_SOURCE_DIR, options.onnx_path, dir.string(), inputs[0].name,
                                input_file.string(), fmt::join(shape, "x"), log.string())
                        .c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
      GTEST_SKIP() << "onnxruntime-node not installed (scripts/setup.sh)";
    ASSERT_EQ(status, 0) << "ONNX Runtime failed: " << read_text(log);
    const auto reference_run = run_shell(
        fmt::format("node '{}/tests/support/face_decode_ref.mjs' {} '{}' {} {} {} {} 2>'{}'",
                    VAPIPE_SOURCE_DIR, model.task, dir.string(), shape[3], shape[2],
                    post_options.thresholds.conf_threshold, post_options.nms.iou_threshold, log.string()));
    ASSERT_EQ(reference_run.exit_code, 0) << read_text(log);
    std::vector<Face> expected;
    for (const auto& face : nlohmann::json::parse(reference_run.out)) {
      Face f{face.at("score").get<float>(), face.at("box").get<std::array<float, 4>>(), {}};
      if (face.contains("landmarks"))
        f.landmarks = face.at("landmarks").get<std::vector<std::array<float, 2>>>();
      expected.push_back(std::move(f));
    }

    // vapipe.
    context.run({ConstTensorView{input.data(), DType::kF32, shape}});
    std::vector<ConstTensorView> views;
    for (std::size_t i = 0; i < network->outputs(1).size(); ++i) views.push_back(context.output(i));
    const auto detections = post.run(views, 0);
    std::vector<Face> ours;
    for (const auto& d : detections) {
      Face f{d.score, {d.x1, d.y1, d.x2, d.y2}, {}};
      for (const auto& p : d.keypoints) f.landmarks.push_back({p.x, p.y});
      ours.push_back(std::move(f));
    }

    ASSERT_EQ(ours.size(), expected.size()) << "faces after NMS: vapipe " << ours.size() << ", reference "
                                            << expected.size() << " (reference: " << reference_run.out << ")";
    faces_seen += ours.size();
    // Pairs by the nearest box: two faces of equal score may come in either order.
    std::vector<bool> taken(ours.size(), false);
    for (const Face& want : expected) {
      std::size_t best = ours.size();
      float best_distance = 0.0f;
      for (std::size_t i = 0; i < ours.size(); ++i) {
        if (taken[i]) continue;
        float distance = 0.0f;
        for (std::size_t k = 0; k < 4; ++k)
          distance = std::max(distance, std::fabs(ours[i].box[k] - want.box[k]));
        if (best == ours.size() || distance < best_distance) {
          best = i;
          best_distance = distance;
        }
      }
      const Face& got = ours[best];
      taken[best] = true;
      EXPECT_LE(best_distance, 0.5f) << fmt::format("box [{}] vs the reference's [{}]",
                                                    fmt::join(got.box, ", "), fmt::join(want.box, ", "));
      EXPECT_NEAR(got.score, want.score, 1e-3);
      worst_box = std::max(worst_box, best_distance);
      worst_score = std::max(worst_score, std::fabs(got.score - want.score));
      ASSERT_EQ(got.landmarks.size(), model.landmarks ? 5U : 0U);
      ASSERT_EQ(want.landmarks.size(), got.landmarks.size());
      for (std::size_t k = 0; k < got.landmarks.size(); ++k) {
        EXPECT_NEAR(got.landmarks[k][0], want.landmarks[k][0], 0.5) << "landmark " << k;
        EXPECT_NEAR(got.landmarks[k][1], want.landmarks[k][1], 0.5) << "landmark " << k;
        worst_landmark = std::max({worst_landmark, std::fabs(got.landmarks[k][0] - want.landmarks[k][0]),
                                   std::fabs(got.landmarks[k][1] - want.landmarks[k][1])});
      }
    }
    std::cout << model.task << " " << image.filename().string() << ": " << ours.size() << " face(s)\n";
  }
  // The photos hold faces: a decoder that finds none on either side proves nothing.
  EXPECT_GE(faces_seen, 3U);
  std::cout << fmt::format(
      "{}: {} faces, max |vapipe - reference|: box {:.3g} px, landmark {:.3g} px, score {:.3g}\n", model.task,
      faces_seen, worst_box, worst_landmark, worst_score);
}

// The real CLI: compile with --model-type auto, detect --json on every photo of the shared face set.
TEST_P(FaceTask, CliFindsFacesWithTheirLandmarksInPlace) {
  const FaceModel& model = model_named(GetParam());
  VAPIPE_REQUIRE_MODEL(model.file);
  if (!fs::is_directory(faces_dir())) GTEST_SKIP() << faces_dir() << " not found (the shared face photos)";
  std::vector<std::string> photos;
  for (const auto& entry : fs::directory_iterator(faces_dir())) {
    const auto extension = entry.path().extension();
    if (extension == ".jpg" || extension == ".png") photos.push_back(entry.path().string());
  }
  std::sort(photos.begin(), photos.end());
  ASSERT_FALSE(photos.empty());

  const fs::path dir = test::scratch_dir();
  const fs::path package = dir / "faces.vpk";
  const fs::path log = dir / "stderr.txt";
  const std::string cli = VAPIPE_CLI;
  const auto compiled = run_shell(fmt::format(
      "{} compile '{}' -o '{}' {} 2>'{}'", cli, (test::models_dir() / model.file).string(), package.string(),
      model.input_size ? fmt::format("--input-size {}x{}", model.input_size->first, model.input_size->second)
                       : "",
      log.string()));
  ASSERT_EQ(compiled.exit_code, 0) << read_text(log);
  EXPECT_NE(compiled.out.find(fmt::format("({})", model.task)), std::string::npos)
      << "model_type not recognized as " << model.task << ": " << compiled.out;

  std::string command = fmt::format("{} detect '{}'", cli, package.string());
  for (const auto& photo : photos) command += " '" + photo + "'";
  const auto detected = run_shell(command + " --json 2>'" + log.string() + "'");
  ASSERT_EQ(detected.exit_code, 0) << read_text(log);
  std::istringstream lines(detected.out);
  std::size_t images = 0, faces = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto result = nlohmann::json::parse(line);
    ++images;
    // Every photo of the set shows a face.
    EXPECT_FALSE(result.at("detections").empty()) << result.at("image");
    for (const auto& face : result.at("detections")) {
      ++faces;
      SCOPED_TRACE(fmt::format("{}: {}", result.at("image").get<std::string>(), face.dump()));
      EXPECT_EQ(face.at("label"), "face");
      EXPECT_GT(face.at("score").get<float>(), model.conf_threshold) << "the task's own threshold applies";
      const auto box = face.at("box").get<std::array<float, 4>>();
      EXPECT_LT(box[0], box[2]);
      EXPECT_LT(box[1], box[3]);
      if (!model.landmarks) {
        EXPECT_FALSE(face.contains("keypoints"));
        continue;
      }
      ASSERT_TRUE(face.contains("keypoints"));
      const auto points = face.at("keypoints").get<std::vector<std::array<float, 3>>>();
      ASSERT_EQ(points.size(), 5U);
      for (const auto& p : points) {
        EXPECT_GE(p[0], box[0]);
        EXPECT_LE(p[0], box[2]);
        EXPECT_GE(p[1], box[1]);
        EXPECT_LE(p[1], box[3]);
      }
      // Order: eye, eye, nose, mouth corner, mouth corner (InsightFace's, shared by every face task).
      const float eyes_lowest = std::max(points[0][1], points[1][1]);
      const float mouth_highest = std::min(points[3][1], points[4][1]);
      EXPECT_LT(eyes_lowest, mouth_highest) << "both eyes above both mouth corners";
      const float eyes_y = 0.5f * (points[0][1] + points[1][1]);
      const float mouth_y = 0.5f * (points[3][1] + points[4][1]);
      EXPECT_GT(points[2][1], eyes_y) << "the nose below the eyes";
      EXPECT_LT(points[2][1], mouth_y) << "the nose above the mouth";
      // Left to right as seen in the image: the first eye and mouth corner left of the second.
      EXPECT_LT(points[0][0], points[1][0]);
      EXPECT_LT(points[3][0], points[4][0]);
    }
  }
  EXPECT_EQ(images, photos.size());
  std::cout << model.task << ": " << faces << " face(s) in " << images << " photos\n";
}

INSTANTIATE_TEST_SUITE_P(FaceTasks, FaceTask, ::testing::Values("scrfd", "retinaface", "yunet", "ultraface"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace vapipe
