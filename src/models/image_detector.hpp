#pragma once
// Still-image detection as `vapipe detect` does it: the package's detector network (the first that is not
// top-down, or the one named), an optional top-down network chained on its boxes (pose, face embedding; from
// the package or another one), an optional face gallery, the same fused preprocessing and post-processing as
// the video pipeline. Shared by the CLI and the Python module (python/), so both give the same detections.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "models/detection.hpp"
#include "models/face_gallery.hpp"
#include "models/post_processor.hpp"
#include "models/secondary_runner.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"

namespace vapipe::models {

struct ImageDetectorOptions {
  std::string network;    // empty: the package's first network that is not top-down
  std::string secondary;  // a package with a top-down network to chain (empty: the package's own, if any)
  std::string gallery;    // a folder of known faces (needs a face embedding network)
  std::optional<float> recognition_threshold;
  // Unset: the package's own (metadata "postprocess"), else 0.25 and 0.45.
  std::optional<float> conf_threshold;
  std::optional<float> iou_threshold;
  int max_detections = 300;
  int threads = 0;  // 0: every core
};

class ImageDetector {
 public:
  // Loads the package(s) and checks that they fit; throws vapipe::Error naming the file or option.
  ImageDetector(const std::string& package, const ImageDetectorOptions& options);
  ImageDetector(const ImageDetector&) = delete;
  ImageDetector& operator=(const ImageDetector&) = delete;

  // The detections of BGR images (at most max_batch() per call; any size), in source image pixels, with
  // keypoints, embeddings and identities where the chain gives them.
  std::vector<std::vector<Detection>> detect(std::span<const cv::Mat> images);
  std::int64_t max_batch() const { return network_->max_batch(); }

  std::string label(int class_id) const { return post_->label(class_id); }
  const PostProcessor& post() const { return *post_; }
  const SecondaryRunner* secondary() const { return secondary_.get(); }
  const Network& network() const { return *network_; }

 private:
  std::shared_ptr<const Network> network_;
  std::shared_ptr<const Network> top_down_;
  vision::PreprocessOptions preprocess_;
  std::unique_ptr<PostProcessor> post_;
  std::unique_ptr<SecondaryRunner> secondary_;
  std::optional<FaceGallery> gallery_;
  float recognition_threshold_ = 0.5f;
  std::unique_ptr<ExecutionContext> context_;
  int threads_ = 0;
  std::vector<float> input_;
  std::vector<ConstTensorView> outputs_;
};

}  // namespace vapipe::models
