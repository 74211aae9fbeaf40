// `vapipe detect FILE.vpk IMAGE...`: still-image detection with the same fused preprocessing and
// post-processing the video pipeline uses, so its output is the reference users compare against. With a
// top-down network (a pose network) in the package or given by --secondary, the detector runs first and that
// network runs on every box of its class (models::SecondaryRunner).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "core/file_kind.hpp"
#include "models/detection_json.hpp"
#include "models/detection_label.hpp"
#include "models/image_detector.hpp"
#include "models/instance_mask.hpp"
#include "models/post_processor.hpp"
#include "models/secondary_runner.hpp"
#include "vision/image_io.hpp"
#include "vision/osd.hpp"

namespace vapipe::cli {

namespace {

struct DetectOptions {
  std::string package;
  std::vector<std::string> images;
  std::string network;
  std::string secondary;
  std::string gallery;
  std::optional<float> recognition_threshold;
  // Unset: the package's own (metadata "postprocess", e.g. a face task's), else 0.25 and 0.45.
  std::optional<float> conf_threshold;
  std::optional<float> iou_threshold;
  int max_detections = 300;
  int threads = 0;
  bool json = false;
  std::string save_dir;
};

void print_detections(const DetectOptions& options, const std::string& image,
                      const std::vector<models::Detection>& detections, const models::PostProcessor& post) {
  if (options.json) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& d : detections) list.push_back(models::detection_to_json(d, post.label(d.class_id)));
    const nlohmann::ordered_json line = {{"image", image}, {"detections", std::move(list)}};
    std::fputs((line.dump() + "\n").c_str(), stdout);
    return;
  }
  for (const auto& d : detections) {
    std::string line = fmt::format("{}: {} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}", image, post.label(d.class_id),
                                   d.score, d.x1, d.y1, d.x2, d.y2);
    // Keypoints (face landmarks, body joints) follow as x,y,score in image pixels.
    for (const auto& p : d.keypoints) line += fmt::format(" {:.1f},{:.1f},{:.2f}", p.x, p.y, p.score);
    // A face matched against --gallery: its name (or "unknown") and cosine similarity.
    if (d.identity)
      line += fmt::format(" id={},{:.3f}", d.identity->known() ? d.identity->name : "unknown",
                          d.identity->similarity);
    // An instance mask: how many image pixels it covers (--json gives the mask itself, as COCO RLE).
    if (!d.mask.empty()) {
      const models::PixelMask mask = models::rasterize(d);
      line += fmt::format(" mask={}px", std::count(mask.pixels.begin(), mask.pixels.end(), 1));
    }
    std::fputs((line + "\n").c_str(), stdout);
  }
}

void save_annotated(const DetectOptions& options, const std::string& image_path, cv::Mat& image,
                    const std::vector<models::Detection>& detections, const models::PostProcessor& post,
                    const models::SecondaryRunner* secondary) {
  std::vector<vision::OsdBox> boxes;
  for (const auto& d : detections) {
    const bool chained = secondary != nullptr && secondary->takes(d.class_id);
    vision::OsdBox box{d.x1,       d.y1,
                       d.x2,       d.y2,
                       d.class_id, models::display_label(d, post.label(d.class_id)),
                       {},         chained ? secondary->skeleton() : post.skeleton()};
    for (const auto& p : d.keypoints) box.points.push_back({p.x, p.y, p.score});
    if (!d.mask.empty()) {
      models::PixelMask mask = models::rasterize(d);
      box.mask = {mask.x, mask.y, mask.width, mask.height, std::move(mask.pixels)};
    }
    boxes.push_back(std::move(box));
  }
  vision::draw_boxes(image, boxes);
  vision::save_image(
      (std::filesystem::path(options.save_dir) / std::filesystem::path(image_path).filename()).string(),
      image);
}

void run_detect(const DetectOptions& options) {
  // Fail on a missing image before spending time on loading the model and running anything.
  for (const auto& image : options.images) {
    if (const auto why = not_a_file_reason(image); !why.empty()) fail("image '{}': {}", image, why);
  }
  if (!options.save_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.save_dir, error);
    if (error) fail("--save '{}': cannot create the folder: {}", options.save_dir, error.message());
  }
  models::ImageDetector detector(options.package, {.network = options.network,
                                                   .secondary = options.secondary,
                                                   .gallery = options.gallery,
                                                   .recognition_threshold = options.recognition_threshold,
                                                   .conf_threshold = options.conf_threshold,
                                                   .iou_threshold = options.iou_threshold,
                                                   .max_detections = options.max_detections,
                                                   .threads = options.threads});
  const auto max_batch = static_cast<std::size_t>(detector.max_batch());
  for (std::size_t first = 0; first < options.images.size(); first += max_batch) {
    const std::size_t count = std::min(options.images.size() - first, max_batch);
    std::vector<cv::Mat> images(count);
    for (std::size_t i = 0; i < count; ++i) images[i] = vision::load_image(options.images[first + i]);
    auto results = detector.detect(images);
    for (std::size_t i = 0; i < count; ++i) {
      const std::string& path = options.images[first + i];
      print_detections(options, path, results[i], detector.post());
      if (!options.save_dir.empty())
        save_annotated(options, path, images[i], results[i], detector.post(), detector.secondary());
    }
  }
  std::fflush(stdout);
}

}  // namespace

void register_detect(CLI::App& app) {
  auto options = std::make_shared<DetectOptions>();
  auto* command = app.add_subcommand("detect", "Detect objects in still images with a compiled .vpk model");
  command->add_option("package", options->package, "Compiled model package (.vpk)")->required();
  command->add_option("images", options->images, "Image files (JPEG, PNG, ...)")->required();
  command->add_option("--net", options->network,
                      "Network of the package to run (default: its first that is not a top-down network)");
  command->add_option("--secondary", options->secondary,
                      "Package with a top-down network (pose) to run on the boxes of its class");
  command
      ->add_option("--conf", options->conf_threshold,
                   "Score threshold (final score = obj * cls; default: the package's, else 0.25)")
      ->check(CLI::Range(0.0f, 1.0f));
  command
      ->add_option("--iou", options->iou_threshold,
                   "NMS IoU threshold (per class; default: the package's, else 0.45)")
      ->check(CLI::Range(0.0f, 1.0f));
  command->add_option("--max-det", options->max_detections, "Most detections per image")
      ->check(non_negative_number())
      ->capture_default_str();
  command->add_option("--threads", options->threads, "Worker threads (0: every core)")
      ->check(thread_count())
      ->capture_default_str();
  command->add_option(
      "--gallery", options->gallery,
      "Folder of known faces (a photo per person, or a folder of photos per person): name the "
      "faces a face embedding network embeds");
  command
      ->add_option("--recognition-threshold", options->recognition_threshold,
                   "Cosine similarity a gallery match needs (default: the embedding network's, 0.5)")
      ->check(CLI::Range(-1.0f, 1.0f));
  command->add_flag("--json", options->json, "One JSON object per image per line");
  command->add_option("--save", options->save_dir, "Write annotated images into this folder");
  command->callback([options] { run_detect(*options); });
}

}  // namespace vapipe::cli
