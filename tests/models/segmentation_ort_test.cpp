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
#include "models/task.hpp"
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
  std::array<int, 4> pixels{};     // vapipe: the box's pixel rectangle in the photo (x, y, width, height)
};

float box_iou(const std::array<float, 4>& a, const std::array<float, 4>& b) {
  const float w = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float h = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float inter = w * h;
  const float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return uni > 0.0f ? inter / uni : 0.0f;
}

// Pixels set in both masks, in the first only, in the second only.
struct MaskOverlap {
  std::size_t both = 0, only_a = 0, only_b = 0;
  double iou() const {
    const std::size_t uni = both + only_a + only_b;
    return uni == 0 ? 1.0 : static_cast<double>(both) / static_cast<double>(uni);
  }
};

MaskOverlap overlap_of(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  MaskOverlap overlap;
  for (std::size_t i = 0; i < a.size(); ++i) {
    overlap.both += a[i] != 0 && b[i] != 0 ? 1 : 0;
    overlap.only_a += a[i] != 0 && b[i] == 0 ? 1 : 0;
    overlap.only_b += a[i] == 0 && b[i] != 0 ? 1 : 0;
  }
  return overlap;
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

// The photos of the acceptance: three players (messi5.jpg), two (basketball1.png).
std::vector<fs::path> photos() {
  return {test::opencv_data_dir() / "messi5.jpg", test::opencv_data_dir() / "basketball1.png"};
}

// What one side found on one photo, and the figures of the comparison.
struct Comparison {
  std::size_t matched = 0;
  double lowest_iou = 1.0;
  // Pixels that differ inside vapipe's box rectangle, as a fraction of the pixels both set (the reference's
  // masks may reach a pixel or two past the box, vapipe's never do).
  double worst_inside = 0.0;
};

// The photo as vapipe's preprocessor feeds the network (letterbox, colour, scale from the metadata).
std::vector<float> network_input(const cv::Mat& bgr, const vision::PreprocessOptions& preprocess,
                                 const Shape& shape) {
  std::vector<float> input(static_cast<std::size_t>(shape_volume(shape)));
  vision::preprocess(
      vision::ImageView::bgr(bgr.data, bgr.cols, bgr.rows, static_cast<std::ptrdiff_t>(bgr.step)), preprocess,
      input.data());
  return input;
}

// ONNX Runtime's outputs for `input`, decoded by the reference: its objects, masks over the whole photo.
// Sets `skip` (the caller skips) without onnxruntime-node.
std::vector<Object> reference_objects(const fs::path& dir, const std::string& model,
                                      const std::string& input_name, const std::vector<float>& input,
                                      const Shape& shape, const models::PostprocessOptions& options,
                                      const cv::Mat& photo, bool& skip) {
  const int status = test::run_ort(model, dir, input_name, input, shape);
  skip = status == test::kOrtMissing;
  if (skip) return {};
  EXPECT_EQ(status, 0) << "ONNX Runtime failed: " << read_text(dir / "ort.log");
  const fs::path log = dir / "reference.log";
  const auto run = test::run_shell(fmt::format(
      "node '{}/tests/support/seg_decode_ref.mjs' '{}' {} {} {} {} 2>'{}'", VAPIPE_SOURCE_DIR, dir.string(),
      options.thresholds.conf_threshold, options.nms.iou_threshold, photo.cols, photo.rows, log.string()));
  EXPECT_EQ(run.exit_code, 0) << read_text(log);
  std::vector<Object> objects;
  if (run.exit_code != 0) return objects;
  for (const auto& object : nlohmann::json::parse(run.out)) {
    Object o{object.at("class_id").get<int>(),
             object.at("score").get<float>(),
             object.at("box").get<std::array<float, 4>>(),
             {}};
    o.mask = models::rle_decode(object.at("mask").at("counts").get<std::vector<std::uint32_t>>(), photo.cols,
                                photo.rows);
    objects.push_back(std::move(o));
  }
  return objects;
}

// vapipe's post-processing of `outputs` (any network's: vapipe's or ORT's), masks through the JSON form.
std::vector<Object> vapipe_objects(models::PostProcessor& post, std::span<const ConstTensorView> outputs,
                                   const vision::PreprocessOptions& preprocess, const cv::Mat& photo) {
  auto detections = post.run(outputs, 0);
  std::vector<Object> objects;
  for (const auto& d : detections) objects.push_back({d.class_id, d.score, {d.x1, d.y1, d.x2, d.y2}, {}});
  vision::map_boxes_back(
      std::span(detections),
      vision::compute_letterbox(photo.cols, photo.rows, preprocess.width, preprocess.height));
  for (std::size_t i = 0; i < detections.size(); ++i) {
    const auto json = models::detection_to_json(detections[i], post.label(detections[i].class_id));
    EXPECT_TRUE(json.contains("mask")) << json.dump();
    if (!json.contains("mask")) continue;
    objects[i].mask = paste(json.at("mask"), photo.cols, photo.rows);
    const auto& mask = json.at("mask");
    objects[i].pixels = {mask.at("origin")[0], mask.at("origin")[1], mask.at("size")[1], mask.at("size")[0]};
  }
  return objects;
}

// Pairs `ours` with `theirs` (same class, the most overlapping box above 0.7, from the reference's highest score
// down): every object above `confident` on either side must have its pair, every pair a mask IoU >= 0.9 and
// scores within `score_tolerance`. Prints each pair's figures; a player (person > 0.5) must be among them.
void compare(const std::vector<Object>& ours, const std::vector<Object>& theirs, float confident,
             float score_tolerance, const models::PostProcessor& post, const cv::Mat& photo,
             const std::string& name, Comparison& figures) {
  const auto want_width = static_cast<std::size_t>(photo.cols);
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
    const MaskOverlap overlap = overlap_of(ours[best].mask, want.mask);
    std::size_t inside = 0;
    const auto [px, py, pw, ph] = ours[best].pixels;
    for (int y = std::max(0, py); y < py + ph; ++y) {
      for (int x = std::max(0, px); x < px + pw; ++x) {
        const auto i = static_cast<std::size_t>(y) * want_width + static_cast<std::size_t>(x);
        inside += (ours[best].mask[i] != 0) != (want.mask[i] != 0) ? 1 : 0;
      }
    }
    const double inside_fraction =
        static_cast<double>(inside) / static_cast<double>(std::max<std::size_t>(1, overlap.both));
    figures.worst_inside = std::max(figures.worst_inside, inside_fraction);
    const double iou = overlap.iou();
    EXPECT_GE(iou, 0.9) << what << ": mask IoU " << iou;
    EXPECT_NEAR(ours[best].score, want.score, score_tolerance) << what;
    std::cout << fmt::format(
        "{} {}: mask IoU {:.4f} ({} px in both, {} vapipe only, {} reference only, {} differ inside the box; "
        "box IoU {:.3f}, score vapipe {:.3f})\n",
        name, what, iou, overlap.both, overlap.only_a, overlap.only_b, inside, best_iou, ours[best].score);
    figures.lowest_iou = std::min(figures.lowest_iou, iou);
    ++figures.matched;
    persons += want.class_id == 0 && want.score > 0.5f ? 1 : 0;
  }
  for (std::size_t i = 0; i < ours.size(); ++i) {
    EXPECT_TRUE(taken[i] || ours[i].score < confident)
        << "the reference misses vapipe's " << post.label(ours[i].class_id) << " " << ours[i].score << " at ["
        << fmt::format("{:.1f}", fmt::join(ours[i].box, ", ")) << "]";
  }
  EXPECT_GE(persons, 1) << name << ": a player found with a mask on both sides";
}

// The decode alone: vapipe's post-processing on ONNX Runtime's own outputs against the reference's decode of
// the same numbers. Needs no compile; the same objects, scores equal, masks all but equal (they differ only where
// the reference's masks reach past the box's pixels, which vapipe's never do).
TEST(SegmentationOrt, DecodeOfOnnxRuntimesOutputsMatchesTheReference) {
  VAPIPE_REQUIRE_MODEL(kModel);
  for (const auto& photo : photos()) VAPIPE_REQUIRE_FILE(photo);
  const std::string model = (test::models_dir() / kModel).string();
  const Shape shape = {1, 3, 320, 320};
  const std::vector<TensorInfo> outputs = {{"output0", DType::kF32, {1, 116, 2100}},
                                           {"output1", DType::kF32, {1, 32, 80, 80}}};
  const models::TaskKind* kind = models::recognize_task(outputs);
  ASSERT_NE(kind, nullptr);
  nlohmann::json metadata = {
      {"model_type", kind->model_type},
      {"input", {{"name", "images"}, {"width", 320}, {"height", 320}, {"channels", 3}}}};
  kind->describe(outputs, 320, 320, metadata);
  const vision::PreprocessOptions preprocess = vision::PreprocessOptions::from_metadata(metadata);
  const auto post_options = models::PostprocessOptions::from_metadata(metadata);
  models::PostProcessor post(metadata, outputs, post_options);
  Comparison figures;
  const fs::path dir = test::scratch_dir();
  for (const auto& photo : photos()) {
    SCOPED_TRACE(photo.string());
    const cv::Mat bgr = cv::imread(photo.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty());
    const std::vector<float> input = network_input(bgr, preprocess, shape);
    bool skip = false;
    const auto theirs = reference_objects(dir, model, "images", input, shape, post_options, bgr, skip);
    if (skip) GTEST_SKIP() << "onnxruntime-node not installed (scripts/setup.sh)";
    const auto ort = nlohmann::json::parse(std::ifstream(dir / "outputs.json")).at("outputs");
    std::vector<std::vector<float>> values;
    std::vector<ConstTensorView> views;
    for (const auto& output : outputs) {
      const auto found =
          std::find_if(ort.begin(), ort.end(), [&](const auto& o) { return o.at("name") == output.name; });
      ASSERT_NE(found, ort.end()) << output.name;
      values.push_back(test::read_floats(found->at("file").get<std::string>()));
    }
    for (std::size_t i = 0; i < outputs.size(); ++i)
      views.push_back({values[i].data(), DType::kF32, outputs[i].shape});
    const auto ours = vapipe_objects(post, views, preprocess, bgr);
    EXPECT_EQ(ours.size(), theirs.size());
    compare(ours, theirs, post_options.thresholds.conf_threshold, 1e-6f, post, bgr, photo.filename().string(),
            figures);
  }
  EXPECT_GE(figures.matched, 5U);
  // The same numbers decoded: inside the box the masks are all but equal (a pixel whose centre falls on a
  // cell boundary may round either way).
  EXPECT_LE(figures.worst_inside, 0.005);
  std::cout << fmt::format(
      "decode of ORT's outputs: {} objects matched, lowest mask IoU {:.4f}, at most {:.4f} of a mask "
      "differing "
      "inside its box\n",
      figures.matched, figures.lowest_iou, figures.worst_inside);
}

// The whole path: vapipe's compiled network and decode against ONNX Runtime plus the reference.
TEST(SegmentationOrt, MasksAgreeWithOnnxRuntimeAndAReferenceDecodeOnThePhotos) {
  VAPIPE_REQUIRE_MODEL(kModel);
  for (const auto& photo : photos()) VAPIPE_REQUIRE_FILE(photo);

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
  // Objects this far above the threshold must be on both sides; nearer it, ORT's and vapipe's rounding of
  // the quantized network may put one on either side of it.
  const float confident = post_options.thresholds.conf_threshold + 0.1f;

  Comparison figures;
  const fs::path dir = test::scratch_dir();
  for (const auto& photo : photos()) {
    SCOPED_TRACE(photo.string());
    const cv::Mat bgr = cv::imread(photo.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty());
    const std::vector<float> input = network_input(bgr, preprocess, shape);
    bool skip = false;
    const auto theirs =
        reference_objects(dir, options.onnx_path, inputs[0].name, input, shape, post_options, bgr, skip);
    if (skip) GTEST_SKIP() << "onnxruntime-node not installed (scripts/setup.sh)";

    context.run({ConstTensorView{input.data(), DType::kF32, shape}});
    std::vector<ConstTensorView> views;
    for (std::size_t i = 0; i < network->outputs(1).size(); ++i) views.push_back(context.output(i));
    const auto ours = vapipe_objects(post, views, preprocess, bgr);
    compare(ours, theirs, confident, 0.05f, post, bgr, photo.filename().string(), figures);
  }
  EXPECT_GE(figures.matched, 5U);
  std::cout << fmt::format("{} objects matched, lowest mask IoU {:.4f}\n", figures.matched,
                           figures.lowest_iou);
}

}  // namespace
}  // namespace vapipe
