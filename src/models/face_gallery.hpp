#pragma once
// Face recognition against a gallery: the people a deployment knows, each embedded once by the same
// detector + embedding chain that runs on the video, and matched by cosine similarity.
//
// Gallery folder (as in insightface's and the face gallery project's demos): an image file per identity
// (name: the file name without extension), or a sub-folder per identity holding several photos of them
// (name: the folder's name); other files (a README, a video) are ignored. Each photo contributes the embedding of its largest face; a photo that cannot
// be decoded or shows no face is reported by name and skipped, the rest still load. A face matches the
// identity of the photo it is most similar to when that similarity reaches the threshold, else it is
// unknown.
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "models/detection.hpp"
#include "models/post_processor.hpp"
#include "models/secondary_runner.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"

namespace vapipe::models {

// A face detector and a face embedding network run on still images (gallery photos, `vapipe detect`).
class StillImageFaces {
 public:
  // `detector`: a face detector task with 5 landmarks; `embedder`: a face embedding network (its metadata's
  // crop rule "face_align"). Throws vapipe::Error when they do not form that chain.
  StillImageFaces(std::shared_ptr<const Network> detector, std::shared_ptr<const Network> embedder,
                  int threads = 1);
  // The faces of a BGR image, largest first, each with its landmarks and embedding (in image pixels).
  std::vector<Detection> faces(const cv::Mat& bgr);

 private:
  std::shared_ptr<const Network> detector_;
  ExecutionContext context_;
  vision::PreprocessOptions preprocess_;
  std::unique_ptr<PostProcessor> post_;
  std::unique_ptr<SecondaryRunner> embedder_;
  std::vector<float> input_;
  std::vector<ConstTensorView> outputs_;
};

class FaceGallery {
 public:
  struct Entry {
    std::string name;    // the identity
    std::string source;  // the photo, relative to the folder
    std::vector<float> embedding;
  };
  struct Skipped {
    std::string source;  // relative to the folder
    std::string reason;  // "cannot be decoded: ...", "no face found"
  };

  // Embeds every photo of `folder` (see the top of this file). Throws vapipe::Error when the folder is
  // missing or not a folder; photos that fail are listed in skipped() and logged as warnings.
  static FaceGallery load(const std::filesystem::path& folder, StillImageFaces& faces);

  // The identity of a face with this (L2-normalized) embedding: the best entry's name when its cosine
  // similarity reaches `threshold`, else unknown (empty name) with the best similarity.
  Identity match(std::span<const float> embedding, float threshold) const;

  const std::filesystem::path& folder() const { return folder_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const std::vector<Skipped>& skipped() const { return skipped_; }
  // The distinct identities, sorted.
  std::vector<std::string> names() const;

 private:
  std::filesystem::path folder_;
  std::vector<Entry> entries_;
  std::vector<Skipped> skipped_;
};

// The gallery a running pipeline matches against, replaced whole on reload (the API) while channels keep
// reading the previous one: readers take a shared_ptr to an immutable gallery.
class GalleryHolder {
 public:
  GalleryHolder(std::filesystem::path folder, std::shared_ptr<const Network> detector,
                std::shared_ptr<const Network> embedder, float threshold);
  // Builds the gallery from the folder again and swaps it in; returns the new one. Throws vapipe::Error
  // (and keeps the current gallery) when the folder cannot be read.
  std::shared_ptr<const FaceGallery> reload();
  std::shared_ptr<const FaceGallery> current() const;
  float threshold() const { return threshold_; }

 private:
  std::filesystem::path folder_;
  std::shared_ptr<const Network> detector_, embedder_;
  float threshold_;
  mutable std::mutex mutex_;
  std::mutex reload_mutex_;  // one reload at a time (it runs the networks)
  std::shared_ptr<const FaceGallery> gallery_;
};

}  // namespace vapipe::models
