#include "models/image_detector.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "vision/image_io.hpp"

namespace vapipe::models {

ImageDetector::ImageDetector(const std::string& package, const ImageDetectorOptions& options)
    : threads_(options.threads) {
  const auto model = Model::load(package);
  // A package holding a detector and a top-down network (`vapipe combine`): the detector is the first network
  // that is not top-down, the other the first that is (unless options.network or secondary say otherwise).
  for (const auto& name : model->network_names()) {
    auto candidate = model->network(name);
    const bool is_top_down = SecondaryRunner::is_top_down(candidate->metadata());
    if (!options.network.empty()) {
      if (name == options.network)
        network_ = candidate;
      else if (is_top_down && top_down_ == nullptr)
        top_down_ = candidate;
    } else if (!is_top_down && network_ == nullptr) {
      network_ = candidate;
    } else if (is_top_down && top_down_ == nullptr) {
      top_down_ = candidate;
    }
  }
  if (network_ == nullptr) {
    // Only top-down networks (a pose package alone), or options.network names one: run it on the whole image.
    network_ = model->network(options.network);
    if (network_ == top_down_) top_down_ = nullptr;
  }
  if (!options.secondary.empty()) {
    const auto secondary_model = Model::load(options.secondary);
    top_down_ = nullptr;
    for (const auto& name : secondary_model->network_names()) {
      if (SecondaryRunner::is_top_down(secondary_model->network(name)->metadata())) {
        top_down_ = secondary_model->network(name);
        break;
      }
    }
    if (top_down_ == nullptr)
      fail("--secondary '{}': the package has no top-down network (one whose metadata has preprocess.crop)",
           options.secondary);
  }
  const nlohmann::json& metadata = network_->metadata();

  const std::int64_t max_batch = network_->max_batch();
  const auto inputs = network_->inputs(max_batch);
  if (inputs.size() != 1)
    fail("network '{}' has {} inputs; detect needs one image input", network_->name(), inputs.size());
  const Shape& input_shape = inputs[0].shape;
  if (input_shape.size() != 4 || input_shape[1] != 3) {
    fail("network '{}': input '{}' has shape {}, expected [N, 3, H, W]", network_->name(), inputs[0].name,
         shape_to_string(input_shape));
  }
  preprocess_ = vision::PreprocessOptions::from_metadata(metadata);
  // The compiled shape is the truth; metadata may describe the ONNX export's nominal size.
  preprocess_.height = static_cast<int>(input_shape[2]);
  preprocess_.width = static_cast<int>(input_shape[3]);

  PostprocessOptions post_options = PostprocessOptions::from_metadata(metadata);
  if (options.conf_threshold) post_options.thresholds.conf_threshold = *options.conf_threshold;
  if (options.iou_threshold) post_options.nms.iou_threshold = *options.iou_threshold;
  post_options.nms.max_detections = static_cast<std::size_t>(std::max(0, options.max_detections));
  post_ = std::make_unique<PostProcessor>(metadata, network_->outputs(max_batch), post_options);
  if (top_down_ != nullptr) {
    std::vector<std::string> labels;
    for (int c = 0; c < post_->num_classes(); ++c) labels.push_back(post_->label(c));
    secondary_ =
        std::make_unique<SecondaryRunner>(top_down_, labels, SecondaryRunner::Options{options.threads});
  }

  if (!options.gallery.empty()) {
    if (secondary_ == nullptr || !secondary_->produces_embeddings())
      fail(
          "--gallery: the package has no face embedding network (combine a face detector and one: vapipe "
          "combine det.vpk emb.vpk -o face.vpk)");
    StillImageFaces faces(network_, top_down_, options.threads);
    gallery_ = FaceGallery::load(options.gallery, faces);
    recognition_threshold_ =
        options.recognition_threshold.value_or(top_down_->metadata()
                                                   .value("postprocess", nlohmann::json::object())
                                                   .value("recognition_threshold", 0.5f));
  } else if (options.recognition_threshold) {
    fail("--recognition-threshold: used only with --gallery");
  }

  context_ = std::make_unique<ExecutionContext>(network_, ContextOptions{.threads = options.threads});
  input_.resize(static_cast<std::size_t>(max_batch * 3 * input_shape[2] * input_shape[3]));
}

std::vector<std::vector<Detection>> ImageDetector::detect(std::span<const cv::Mat> images) {
  const auto count = static_cast<std::int64_t>(images.size());
  if (count == 0) return {};
  if (count > max_batch())
    fail("network '{}': {} images in one call, at most {} (its largest batch)", network_->name(), count,
         max_batch());
  const std::int64_t image_size = 3 * static_cast<std::int64_t>(preprocess_.height) * preprocess_.width;
  const int preprocess_threads = std::max(1, threads_);
  std::vector<vision::LetterboxTransform> transforms(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    vision::FusedPreprocessor preprocessor(vision::PixelFormat::kBgr24, images[i].cols, images[i].rows,
                                           preprocess_, preprocess_threads);
    preprocessor.run(vision::view_of_bgr(images[i]),
                     input_.data() + static_cast<std::int64_t>(i) * image_size);
    transforms[i] = preprocessor.transform();
  }
  context_->run(
      {ConstTensorView{input_.data(), DType::kF32, {count, 3, preprocess_.height, preprocess_.width}}});
  outputs_.clear();
  for (std::size_t o = 0; o < context_->output_count(); ++o) outputs_.push_back(context_->output(o));
  std::vector<std::vector<Detection>> results(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    auto& detections = results[i];
    post_->run(outputs_, static_cast<std::int64_t>(i), detections);
    vision::map_boxes_back(std::span(detections), transforms[i]);
    if (secondary_ != nullptr) secondary_->run(vision::view_of_bgr(images[i]), detections);
    if (gallery_) {
      for (auto& d : detections)
        if (!d.embedding.empty()) d.identity = gallery_->match(d.embedding, recognition_threshold_);
    }
  }
  return results;
}

}  // namespace vapipe::models
