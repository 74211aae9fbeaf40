// The anchor-free COCO detectors of issue 20 (src/models/tasks/yolox.cpp, tasks/gfl.cpp, and YOLOv8's raw head
// in yolov8_decoder.cpp):
//  - Seeded differential tests: random network outputs through each task's decoder and through a plain
//    reference decode written here the straightforward way (every cell decoded, then thresholded).
//  - OrtAgreement: the default compile of each shared model on the opencv-doc photos: one preprocessed input
//    (vapipe's preprocessor, from the package's metadata) goes through vapipe and through ONNX Runtime on the
//    same ONNX file plus a reference decode in JS (bench/ort_detect.mjs). ORT's detections are the ground
//    truth, vapipe's the predictions: mAP@0.5 >= 0.95. vapipe's side is decoded at 0.8x the confidence
//    threshold, as an AP evaluation does (a box ORT keeps at 0.251 that vapipe scores 0.249 is then matched,
//    not lost; extra low-score boxes rank last and cost little).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "models/average_precision.hpp"
#include "models/post_processor.hpp"
#include "models/task.hpp"
#include "support/detections.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;
using models::Detection;

// `photo` through vapipe's preprocessor into a [1, 3, H, W] float input of `volume` values.
std::vector<float> preprocess_photo(const std::filesystem::path& photo,
                                    const vision::PreprocessOptions& options, std::int64_t volume) {
  const cv::Mat bgr = cv::imread(photo.string(), cv::IMREAD_COLOR);
  if (bgr.empty()) fail("cannot read {}", photo.string());
  std::vector<float> input(static_cast<std::size_t>(volume));
  vision::preprocess(
      vision::ImageView::bgr(bgr.data, bgr.cols, bgr.rows, static_cast<std::ptrdiff_t>(bgr.step)), options,
      input.data());
  return input;
}

// Raw little-endian float32, what tests/support/ort_run.mjs and bench/ort_detect.mjs read.
void write_floats(const std::filesystem::path& file, const std::vector<float>& values) {
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(values.data()),
             static_cast<std::streamsize>(values.size() * sizeof(float)));
}

// The task's metadata for outputs of these shapes, as the compiler writes it.
nlohmann::json describe(const models::TaskKind& task, const std::vector<TensorInfo>& outputs, int width,
                        int height) {
  nlohmann::json metadata = {{"model_type", task.model_type},
                             {"input", {{"name", "images"}, {"width", width}, {"height", height}}}};
  task.describe(outputs, width, height, metadata);
  return metadata;
}

TEST(YoloxTask, RecognizesItsOutputOnlyAndMatchesAPlainDecodeOnRandomOutputs) {
  const models::TaskKind* task = models::find_task("yolox");
  ASSERT_NE(task, nullptr);
  constexpr int kWidth = 160, kHeight = 96, kClasses = 6;
  const std::int64_t rows = (20 * 12) + (10 * 6) + (5 * 3);
  EXPECT_TRUE(task->recognizes({{"output", DType::kF32, {1, 3549, 85}}}));     // yolox_nano at 416
  EXPECT_FALSE(task->recognizes({{"output0", DType::kF32, {1, 25200, 85}}}));  // YOLOv5 at 640
  EXPECT_FALSE(task->recognizes({{"output0", DType::kF32, {1, 84, 8400}}}));   // YOLOv8 at 640
  const std::vector<TensorInfo> outputs = {{"output", DType::kF32, {2, rows, 5 + kClasses}}};
  const auto metadata = describe(*task, outputs, kWidth, kHeight);
  EXPECT_EQ(metadata.at("preprocess").at("letterbox_align"), "top_left");
  EXPECT_EQ(metadata.at("preprocess").at("color"), "bgr");
  const auto decoder = task->make_decoder(metadata, outputs);
  for (const unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 random(seed);
    std::normal_distribution<float> offset(0.0f, 1.0f);
    std::uniform_real_distribution<float> probability(0.0f, 1.0f);
    std::vector<float> data(static_cast<std::size_t>(2 * rows * (5 + kClasses)));
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = i % (5 + kClasses) < 4 ? offset(random) : std::pow(probability(random), 2.0f);
    models::ScoreThresholds thresholds;
    thresholds.conf_threshold = 0.3f;
    thresholds.obj_threshold = seed == 3 ? 0.6f : 0.0f;
    if (seed == 2) thresholds.per_class = {0.6f, 0.1f};
    for (const std::int64_t image : {0, 1}) {
      // Reference: every row decoded with its grid cell, then the thresholds.
      std::vector<Detection> expected;
      const float* row = data.data() + image * rows * (5 + kClasses);
      for (const int stride : {8, 16, 32}) {
        for (int gy = 0; gy < kHeight / stride; ++gy) {
          for (int gx = 0; gx < kWidth / stride; ++gx, row += 5 + kClasses) {
            const int best = static_cast<int>(std::max_element(row + 5, row + 5 + kClasses) - (row + 5));
            const float score = row[4] * row[5 + best];
            if (!(row[4] > thresholds.obj_threshold) || !(score > thresholds.for_class(best))) continue;
            const double cx = (static_cast<double>(row[0]) + gx) * stride;
            const double cy = (static_cast<double>(row[1]) + gy) * stride;
            const double w = std::exp(static_cast<double>(row[2])) * stride;
            const double h = std::exp(static_cast<double>(row[3])) * stride;
            expected.push_back({best, score, static_cast<float>(cx - w / 2), static_cast<float>(cy - h / 2),
                                static_cast<float>(cx + w / 2), static_cast<float>(cy + h / 2)});
          }
        }
      }
      EXPECT_GT(expected.size(), 5u);
      std::vector<Detection> got;
      const ConstTensorView view{data.data(), DType::kF32, outputs[0].shape};
      decoder->decode({&view, 1}, image, thresholds, got);
      test::expect_same_detections(got, expected, fmt::format("seed {} image {}", seed, image));
    }
  }
}

TEST(GflTask, RecognizesNanoDetOutputsAndMatchesAPlainDecodeOnRandomOutputs) {
  const models::TaskKind* task = models::find_task("gfl");
  ASSERT_NE(task, nullptr);
  constexpr int kWidth = 128, kHeight = 64, kClasses = 5, kBins = 8;
  const std::array<int, 3> strides = {8, 16, 32};
  std::vector<TensorInfo> outputs;
  for (const int stride : strides) {
    const std::int64_t cells = static_cast<std::int64_t>(kWidth / stride) * (kHeight / stride);
    outputs.push_back({fmt::format("cls_pred_stride_{}", stride), DType::kF32, {1, cells, kClasses}});
    outputs.push_back({fmt::format("dis_pred_stride_{}", stride), DType::kF32, {1, cells, 4 * kBins}});
  }
  EXPECT_TRUE(task->recognizes(outputs));
  EXPECT_EQ(models::recognize_task(outputs), task);
  EXPECT_FALSE(task->recognizes(std::vector<TensorInfo>(outputs.begin(), outputs.begin() + 4)));
  const auto metadata = describe(*task, outputs, kWidth, kHeight);
  EXPECT_EQ(metadata.at("head").at("reg_max"), kBins - 1);
  const auto decoder = task->make_decoder(metadata, outputs);
  for (const unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 random(seed);
    std::normal_distribution<float> logit(0.0f, 2.0f);
    std::uniform_real_distribution<float> probability(0.0f, 1.0f);
    std::vector<std::vector<float>> data;
    for (const auto& output : outputs) {
      std::vector<float> values(static_cast<std::size_t>(shape_volume(output.shape)));
      const bool scores = output.name.starts_with("cls");
      for (float& v : values) v = scores ? std::pow(probability(random), 3.0f) : logit(random);
      data.push_back(std::move(values));
    }
    models::ScoreThresholds thresholds;
    thresholds.conf_threshold = 0.35f;
    if (seed == 2) thresholds.per_class = {0.7f, 0.2f};
    // Reference: every cell's four distributions decoded (softmax, expectation), then the thresholds.
    std::vector<Detection> expected;
    for (std::size_t l = 0; l < strides.size(); ++l) {
      const int stride = strides[l], grid_width = kWidth / stride;
      const auto& cls = data[2 * l];
      const auto& dis = data[2 * l + 1];
      for (std::size_t cell = 0; cell < cls.size() / kClasses; ++cell) {
        const float* score = cls.data() + cell * kClasses;
        std::array<double, 4> distance{};
        for (int side = 0; side < 4; ++side) {
          const float* bins = dis.data() + cell * 4 * kBins + static_cast<std::size_t>(side * kBins);
          double sum = 0.0, weighted = 0.0;
          for (int b = 0; b < kBins; ++b) {
            sum += std::exp(static_cast<double>(bins[b]));
            weighted += b * std::exp(static_cast<double>(bins[b]));
          }
          distance[static_cast<std::size_t>(side)] = weighted / sum * stride;
        }
        const int best = static_cast<int>(std::max_element(score, score + kClasses) - score);
        if (!(score[best] > thresholds.for_class(best))) continue;
        const double cx = (static_cast<double>(cell % static_cast<std::size_t>(grid_width)) + 0.5) * stride;
        const double cy = (static_cast<double>(cell / static_cast<std::size_t>(grid_width)) + 0.5) * stride;
        auto clip = [](double v, double max) { return static_cast<float>(std::clamp(v, 0.0, max)); };
        expected.push_back({best, score[best], clip(cx - distance[0], kWidth),
                            clip(cy - distance[1], kHeight), clip(cx + distance[2], kWidth),
                            clip(cy + distance[3], kHeight)});
      }
    }
    EXPECT_GT(expected.size(), 5u);
    std::vector<ConstTensorView> views;
    for (std::size_t i = 0; i < outputs.size(); ++i)
      views.push_back({data[i].data(), DType::kF32, outputs[i].shape});
    std::vector<Detection> got;
    decoder->decode(views, 0, thresholds, got);
    test::expect_same_detections(got, expected, fmt::format("seed {}", seed));
  }
}

// YOLOX's preproc puts the scaled image at the top-left corner: no padding left or above, boxes map back
// without an offset; an alignment the preprocessor does not know is an error naming the key.
TEST(LetterboxAlign, TopLeftPutsAllThePaddingRightAndBelow) {
  nlohmann::json metadata = {{"input", {{"width", 416}, {"height", 416}}},
                             {"preprocess", {{"letterbox", true}, {"letterbox_align", "top_left"}}}};
  const auto options = vision::PreprocessOptions::from_metadata(metadata);
  const vision::LetterboxTransform transform = options.transform_for(640, 480);  // scaled to 416 x 312
  EXPECT_EQ(transform.pad_x, 0);
  EXPECT_EQ(transform.pad_y, 0);
  EXPECT_EQ(transform.resized_height, 312);
  float x1 = 104, y1 = 78, x2 = 208, y2 = 156;
  transform.map_back(x1, y1, x2, y2);
  EXPECT_NEAR(x1, 160.0f, 1e-3);
  EXPECT_NEAR(y1, 120.0f, 1e-3);
  EXPECT_NEAR(x2, 320.0f, 1e-3);
  EXPECT_NEAR(y2, 240.0f, 1e-3);
  metadata["preprocess"]["letterbox_align"] = "center";
  EXPECT_EQ(vision::PreprocessOptions::from_metadata(metadata).transform_for(640, 480).pad_y, 52);
  metadata["preprocess"]["letterbox_align"] = "bottom";
  try {
    vision::PreprocessOptions::from_metadata(metadata);
    ADD_FAILURE() << "an unknown letterbox_align was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("preprocess.letterbox_align 'bottom'"), std::string::npos)
        << error.what();
  }
}

// ---- the shared models against ONNX Runtime ----

struct DetectorModel {
  const char* file;
  const char* model_type;  // what the default compile recognizes
  const char* reference;   // bench/ort_detect.mjs's decode
};

const std::array<DetectorModel, 3> kDetectors = {{
    {"yolov8n.onnx", "yolov8", "yolov8"},
    {"yolox_nano.onnx", "yolox", "yolox"},
    {"nanodet_m_320.onnx", "gfl", "gfl"},
}};

// People (messi5, basketball1/2), fruit, a living room, a squirrel, a plane.
const std::array<const char*, 7> kPhotos = {"messi5.jpg", "basketball1.png",  "basketball2.png", "fruits.jpg",
                                            "home.jpg",   "squirrel_cls.jpg", "aero3.jpg"};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class OrtAgreement : public ::testing::TestWithParam<DetectorModel> {};

TEST_P(OrtAgreement, DefaultCompileMatchesOnnxRuntimeAtMap50) {
  const DetectorModel& model = GetParam();
  VAPIPE_REQUIRE_MODEL(model.file);
  for (const char* photo : kPhotos) VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / photo);
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / model.file).string();
  ir::Network compiled = compiler::compile_onnx(options);
  const nlohmann::json metadata = compiled.metadata;
  ASSERT_EQ(metadata.at("model_type"), model.model_type) << "not recognized from its outputs";
  if (std::string(model.model_type) == "yolov8") {
    EXPECT_EQ(metadata.at("head").at("form"), "raw") << "the default compile no longer cuts before the DFL";
  }
  const auto network =
      std::make_shared<const Network>(std::make_shared<const ir::Network>(std::move(compiled)));
  const auto inputs = network->inputs(1);
  ASSERT_EQ(inputs.size(), 1U);
  const Shape& shape = inputs[0].shape;
  const auto preprocess = vision::PreprocessOptions::from_metadata(metadata);
  auto post_options = models::PostprocessOptions::from_metadata(metadata);
  const float conf = post_options.thresholds.conf_threshold;
  const float iou = post_options.nms.iou_threshold;
  post_options.thresholds.conf_threshold = 0.8f * conf;
  models::PostProcessor post(metadata, network->outputs(1), post_options);
  ExecutionContext context(network, {.threads = 1});

  std::vector<std::vector<Detection>> reference, ours;
  std::size_t reference_boxes = 0;
  const fs::path dir = test::scratch_dir();
  for (const char* photo : kPhotos) {
    SCOPED_TRACE(photo);
    const auto input = preprocess_photo(test::opencv_data_dir() / photo, preprocess, shape_volume(shape));
    const fs::path input_file = dir / "input.f32";
    write_floats(input_file, input);
    const fs::path log = dir / "node.log";
    const auto run = test::run_shell(fmt::format(
        "node '{}/bench/ort_detect.mjs' '{}' {} '{}' {} {} {} 2>'{}'", VAPIPE_SOURCE_DIR, options.onnx_path,
        model.reference, input_file.string(), fmt::join(shape, "x"), conf, iou, log.string()));
    if (run.exit_code == 4 || run.exit_code == 127)
      GTEST_SKIP() << "node or onnxruntime-node is not installed (scripts/setup.sh): " << read_text(log);
    ASSERT_EQ(run.exit_code, 0) << "ONNX Runtime + reference decode failed: " << read_text(log);
    std::vector<Detection> expected;
    for (const auto& d : nlohmann::json::parse(run.out)) {
      const auto box = d.at("box").get<std::array<float, 4>>();
      expected.push_back(
          {d.at("class_id").get<int>(), d.at("score").get<float>(), box[0], box[1], box[2], box[3]});
    }
    reference_boxes += expected.size();
    reference.push_back(std::move(expected));

    context.run({ConstTensorView{input.data(), DType::kF32, shape}});
    std::vector<ConstTensorView> views;
    for (std::size_t i = 0; i < network->outputs(1).size(); ++i) views.push_back(context.output(i));
    ours.push_back(post.run(views, 0));
    std::cout << fmt::format("{} {}: ORT + reference {} boxes, vapipe {} (at 0.8x the threshold)\n",
                             model.file, photo, reference.back().size(), ours.back().size());
  }
  // The photos hold people, fruit, a plane: agreement on nothing would prove nothing.
  EXPECT_GE(reference_boxes, 10U);
  const double map50 = models::mean_average_precision(reference, ours, 0.5f);
  std::cout << fmt::format("{}: mAP@0.5 of vapipe against ORT + reference decode: {:.4f}\n", model.file,
                           map50);
  EXPECT_GE(map50, 0.95);
}

INSTANTIATE_TEST_SUITE_P(Detectors, OrtAgreement, ::testing::ValuesIn(kDetectors),
                         [](const ::testing::TestParamInfo<DetectorModel>& param_info) {
                           return std::string(param_info.param.model_type);
                         });

}  // namespace
}  // namespace vapipe
