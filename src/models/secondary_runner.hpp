#pragma once
// A chain of models on still images or frames: a top-down (second-stage) network, such as a pose network or
// a face embedding network, run on crops of the detections of a first-stage detector. The detector's detections come in (source image
// pixels), the crops are cut by the network's own rule (metadata preprocess.crop, vision/crop.hpp), batched up
// to the network's largest compiled stage, decoded by its task, and the keypoints go back onto the detections
// in source image pixels. A face embedding network (crop rule "face_align") takes the faces with their 5
// landmarks, each warped onto the ArcFace template (vision/face_align.hpp), and its result is the face's
// embedding. The same object serves `vapipe detect`, the gallery and the video pipeline.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "models/detection.hpp"
#include "models/post_processor.hpp"
#include "vapipe/runtime.hpp"
#include "vision/face_align.hpp"
#include "vision/fused_preprocess.hpp"
#include "vision/image_view.hpp"
#include "vision/letterbox.hpp"

namespace vapipe::models {

class SecondaryRunner {
 public:
  struct Options {
    int threads = 1;  // the network's kernels (0: every core)
    // The detector's classes it runs on; empty: those of the network's metadata class_names ("person" for a
    // pose network, "face" for a face embedding network).
    std::vector<std::string> classes{};
  };

  // The names of the detector's classes a network runs on: `configured` (Options::classes) when given, else
  // its metadata's class_names.
  static std::vector<std::string> class_names_taken(const nlohmann::json& metadata,
                                                    const std::vector<std::string>& configured);

  // Whether a network's metadata describes a top-down network (one that runs on crops: preprocess.crop).
  static bool is_top_down(const nlohmann::json& metadata);

  // `network`: a top-down network with a keypoint task; `primary_class_names`: the detector's class names.
  // The runner takes the detections whose class name is one of the network's class names ("person" for a
  // pose network). Throws vapipe::Error when the network is not top-down or takes no [N, 3, H, W] image.
  SecondaryRunner(std::shared_ptr<const Network> network, const std::vector<std::string>& primary_class_names,
                  Options options);
  SecondaryRunner(const SecondaryRunner&) = delete;
  SecondaryRunner& operator=(const SecondaryRunner&) = delete;

  // Sets the keypoints (a pose network) or the embedding (a face embedding network) of every detection it
  // can run on (can_run_on) from the network's result on that detection's crop of `image` (BGR, the pixels
  // the detections are in); boxes, scores and the other detections are left as they are. Runs
  // ceil(taken / max batch) batches.
  void run(const vision::ImageView& image, std::span<Detection> detections);

  bool takes(int class_id) const {
    return class_id >= 0 && static_cast<std::size_t>(class_id) < takes_.size() &&
           takes_[static_cast<std::size_t>(class_id)];
  }
  // Of a class it takes and, for aligned faces, with its 5 landmarks.
  bool can_run_on(const Detection& detection) const;
  // Whether its results are attributes (a classifier's top-1 class).
  bool produces_attributes() const { return produces_attributes_; }
  // Whether its results are embeddings (else keypoints).
  bool produces_embeddings() const { return produces_embeddings_; }
  // The keypoints' skeleton (pairs of indices) for drawing.
  std::span<const std::pair<int, int>> skeleton() const { return post_->skeleton(); }
  const Network& network() const { return *network_; }

 private:
  std::shared_ptr<const Network> network_;
  ExecutionContext context_;
  std::unique_ptr<PostProcessor> post_;
  vision::PreprocessOptions preprocess_;
  float crop_scale_ = 1.25f;
  bool align_faces_ = false;  // crop rule "face_align"
  std::array<vision::Point2, 5> face_template_{};
  bool produces_embeddings_ = false;
  bool produces_attributes_ = false;  // a classifier: the top-1 class of each crop
  std::vector<std::string> labels_;   // its class names
  std::vector<bool> takes_;           // per primary class id
  std::int64_t max_batch_ = 1;
  std::vector<float> input_;
  std::vector<std::size_t> batch_members_;              // indices into the detections of the batch being run
  std::vector<vision::LetterboxTransform> transforms_;  // their crops' mappings back to the image
  std::vector<ConstTensorView> outputs_;
  std::vector<Detection> decoded_;
};

}  // namespace vapipe::models
