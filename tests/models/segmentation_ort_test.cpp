// YOLOv8-seg (yolov8n-seg-int8.onnx, ONNX Runtime's dynamic quantization) on the opencv-doc photos, issue 20's
// acceptance for masks: one preprocessed input (vapipe's preprocessor, from the package's metadata) goes
//  - through vapipe: the compiled network, the task's decode and NMS, masks for the kept detections, the
//    boxes mapped back to the photo, each mask as the JSON form writes it (COCO RLE over the box's pixels);
//  - through ONNX Runtime (tests/support/ort_run.mjs) and an independent decode written from Ultralytics' code
//    (tests/support/seg_decode_ref.mjs), masks over the whole photo.
// Every confident object of either side must be found by the other (same class, box IoU > 0.7) with a mask
// IoU >= 0.9 in photo pixels; the players of both photos must be among them (person > 0.5). Skips with the
// reason when the model, the photos, node or onnxruntime-node are absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "compiler/compiler.hpp"
#include "models/detection_json.hpp"
#include "models/instance_mask.hpp"
#include "models/post_processor.hpp"
#include "support/ort_reference.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"
#include "vision/letterbox.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModel = "yolov8n-seg-int8.onnx";

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One object as either side reports it: box in network input pixels, mask over the whole photo.
struct Object {
  int class_id = 0;
  float score = 0.0f;
  std::array<float, 4> box{};
  std::vector<std::uint8_t> mask;  // row-major, the photo's size
};

float box_iou(const std::array<float, 4>& a, const std::array<float, 4>& b) {
  const float w = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float h = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float inter = w * h;
  const float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return uni > 0.0f ? inter / uni : 0.0f;
}

double mask_iou(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  std::size_t inter = 0, uni = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    inter += a[i] != 0 && b[i] != 0 ? 1 : 0;
    uni += a[i] != 0 || b[i] != 0 ? 1 : 0;
  }
  return uni == 0 ? 1.0 : static_cast<double>(inter) / static_cast<double>(uni);
}

// The JSON form's mask ({"origin", "size": [h, w], "counts"}) pasted into a photo-sized mask.
std::vector<std::uint8_t> paste(const nlohmann::ordered_json& mask, int width, int height) {
  const auto origin = mask.at("origin").get<std::array<int, 2>>();
  const auto size = mask.at("size").get<std::array<int, 2>>();
  const auto counts = mask.at("counts").get<std::vector<std::uint32_t>>();
  const auto pixels = models::rle_decode(counts, size[1], size[0]);
  std::vector<std::uint8_t> full(static_cast<std::size_t>(width * height), 0);
  for (int y = 0; y < size[0]; ++y) {
    for (int x = 0; x < size[1]; ++x) {
      const int px = origin[0] + x, py = origin[1] + y;
      if (px < 0 || py < 0 || px >= width || py >= height) {
        EXPECT_EQ(pixels[static_cast<std::size_t>(y * size[1] + x)], 0) << "mask pixel outside the photo";
        continue;
      }
      full[static_cast<std::size_t>(py * width + px)] = pixels[static_cast<std::size_t>(y * size[1] + x)];
    }
  }
  return full;
}

TEST(SegmentationOrt, MasksAgreeWithOnnxRuntimeAndAReferenceDecodeOnThePhotos) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const std::vector<fs::path> photos = {test::opencv_data_dir() / "messi5.jpg",
                                        test::opencv_data_dir() / "basketball1.png"};
  for (const auto& photo : photos) VAPIPE_REQUIRE_FILE(photo);

  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / kModel).string();
  ir::Network compiled = compiler::compile_onnx(options);
  const nlohmann::json metadata = compiled.metadata;
  ASSERT_EQ(metadata.at("model_type"), "yolov8-seg") << "the task was not recognized from the outputs";
  ASSERT_EQ(metadata.at("class_names").size(), 80U) << "the export's class names were not taken";
  const auto network =
      std::make_shared<const Network>(std::make_shared<const ir::Network>(std::move(compiled)));
  const auto inputs = network->inputs(1);
  ASSERT_EQ(inputs.size(), 1U);
  const Shape& shape = inputs[0].shape;
  const vision::PreprocessOptions preprocess = vision::PreprocessOptions::from_metadata(metadata);
  const auto post_options = models::PostprocessOptions::from_metadata(metadata);
  models::PostProcessor post(metadata, network->outputs(1), post_options);
  ExecutionContext context(network, {.threads = 1});
  const float conf = post_options.thresholds.conf_threshold;
  // Objects this far above the threshold must be on both sides; nearer it, ORT's and vapipe's rounding of
  // the quantized network may put one on either side of it.
  const float confident = conf + 0.1f;

  std::size_t matched = 0;
  double lowest_iou = 1.0;
  const fs::path dir = test::scratch_dir();
  for (const auto& photo : photos) {
    SCOPED_TRACE(photo.string());
    const cv::Mat bgr = cv::imread(photo.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty());
    std::vector<float> input(static_cast<std::size_t>(shape_volume(shape)));
    vision::preprocess(
        vision::ImageView::bgr(bgr.data, bgr.cols, bgr.rows, static_cast<std::ptrdiff_t>(bgr.step)),
        preprocess, input.data());

    // ONNX Runtime and the reference decode.
    const int status = test::run_ort(options.onnx_path, dir, inputs[0].name, input, shape);
    if (status == test::kOrtMissing) GTEST_SKIP() << "onnxruntime-node not installed (scripts/setup.sh)";
    ASSERT_EQ(status, 0) << "ONNX Runtime failed: " << read_text(dir / "ort.log");
    const fs::path log = dir / "reference.log";
    const auto reference_run = test::run_shell(
        fmt::format("node '{}/tests/support/seg_decode_ref.mjs' '{}' {} {} {} {} 2>'{}'", VAPIPE_SOURCE_DIR,
                    dir.string(), conf, post_options.nms.iou_threshold, bgr.cols, bgr.rows, log.string()));
    ASSERT_EQ(reference_run.exit_code, 0) << read_text(log);
    std::vector<Object> theirs;
    for (const auto& object : nlohmann::json::parse(reference_run.out)) {
      Object o{object.at("class_id").get<int>(),
               object.at("score").get<float>(),
               object.at("box").get<std::array<float, 4>>(),
               {}};
      const auto& mask = object.at("mask");
      o.mask = models::rle_decode(mask.at("counts").get<std::vector<std::uint32_t>>(), bgr.cols, bgr.rows);
      theirs.push_back(std::move(o));
    }

    // vapipe.
    context.run({ConstTensorView{input.data(), DType::kF32, shape}});
    std::vector<ConstTensorView> views;
    for (std::size_t i = 0; i < network->outputs(1).size(); ++i) views.push_back(context.output(i));
    auto detections = post.run(views, 0);
    std::vector<Object> ours;
    for (const auto& d : detections) ours.push_back({d.class_id, d.score, {d.x1, d.y1, d.x2, d.y2}, {}});
    vision::map_boxes_back(
        std::span(detections),
        vision::compute_letterbox(bgr.cols, bgr.rows, preprocess.width, preprocess.height));
    for (std::size_t i = 0; i < detections.size(); ++i) {
      const auto json = models::detection_to_json(detections[i], post.label(detections[i].class_id));
      ASSERT_TRUE(json.contains("mask")) << json.dump();
      ours[i].mask = paste(json.at("mask"), bgr.cols, bgr.rows);
    }

    // Pairs: the same class and the most overlapping box, from the reference's highest score down.
    std::vector<bool> taken(ours.size(), false);
    int persons = 0;
    for (const Object& want : theirs) {
      std::size_t best = ours.size();
      float best_iou = 0.7f;
      for (std::size_t i = 0; i < ours.size(); ++i) {
        if (taken[i] || ours[i].class_id != want.class_id) continue;
        const float overlap = box_iou(ours[i].box, want.box);
        if (overlap > best_iou) {
          best = i;
          best_iou = overlap;
        }
      }
      const std::string what = fmt::format("{} {:.3f} at [{:.1f}]", post.label(want.class_id), want.score,
                                           fmt::join(want.box, ", "));
      if (best == ours.size()) {
        EXPECT_LT(want.score, confident) << "vapipe misses the reference's " << what;
        continue;
      }
      taken[best] = true;
      const double iou = mask_iou(ours[best].mask, want.mask);
      std::size_t area = 0;
      for (const auto p : want.mask) area += p;
      EXPECT_GE(iou, 0.9) << what << ": mask IoU " << iou;
      EXPECT_NEAR(ours[best].score, want.score, 0.05) << what;
      std::cout << fmt::format("{} {}: mask IoU {:.4f} ({} px, box IoU {:.3f}, score vapipe {:.3f})\n",
                               photo.filename().string(), what, iou, area, best_iou, ours[best].score);
      lowest_iou = std::min(lowest_iou, iou);
      ++matched;
      persons += want.class_id == 0 && want.score > 0.5f ? 1 : 0;
    }
    for (std::size_t i = 0; i < ours.size(); ++i) {
      EXPECT_TRUE(taken[i] || ours[i].score < confident)
          << "the reference misses vapipe's " << post.label(ours[i].class_id) << " " << ours[i].score
          << " at [" << fmt::format("{:.1f}", fmt::join(ours[i].box, ", ")) << "]";
    }
    // messi5.jpg: three players; basketball1.png: two.
    EXPECT_GE(persons, 2) << "players found with masks on both sides";
  }
  EXPECT_GE(matched, 5U);
  std::cout << fmt::format("{} objects matched, lowest mask IoU {:.4f}\n", matched, lowest_iou);
}

}  // namespace
}  // namespace vapipe
