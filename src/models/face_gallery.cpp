#include "models/face_gallery.hpp"

#include <algorithm>
#include <set>
#include <system_error>

#include <spdlog/spdlog.h>
#include "core/error.hpp"
#include "vision/image_io.hpp"
#include "vision/letterbox.hpp"

namespace vapipe::models {

namespace {

bool is_hidden(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

std::vector<std::filesystem::directory_entry> sorted_entries(const std::filesystem::path& folder) {
  std::vector<std::filesystem::directory_entry> entries;
  std::error_code error;
  for (std::filesystem::directory_iterator it(folder, error), end; !error && it != end; it.increment(error))
    if (!is_hidden(it->path())) entries.push_back(*it);
  if (error) fail("gallery '{}': cannot list the folder: {}", folder.string(), error.message());
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
  return entries;
}

// A file name as text for the API and the log: bytes that are not UTF-8 (a Latin-1 name) become U+FFFD.
std::string as_text(const std::string& bytes) {
  const std::string quoted =
      nlohmann::json(bytes).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(quoted).get<std::string>();
}

}  // namespace

StillImageFaces::StillImageFaces(std::shared_ptr<const Network> detector,
                                 std::shared_ptr<const Network> embedder, int threads)
    : detector_(std::move(detector)), context_(detector_, {.threads = threads}) {
  const nlohmann::json& metadata = detector_->metadata();
  const auto inputs = detector_->inputs(1);
  if (inputs.size() != 1 || inputs[0].shape.size() != 4 || inputs[0].shape[1] != 3)
    fail("network '{}': a face detector takes one [N, 3, H, W] image", detector_->name());
  preprocess_ = vision::PreprocessOptions::from_metadata(metadata);
  preprocess_.height = static_cast<int>(inputs[0].shape[2]);
  preprocess_.width = static_cast<int>(inputs[0].shape[3]);
  post_ = std::make_unique<PostProcessor>(metadata, detector_->outputs(1),
                                          PostprocessOptions::from_metadata(metadata));
  std::vector<std::string> labels;
  for (int c = 0; c < post_->num_classes(); ++c) labels.push_back(post_->label(c));
  embedder_ =
      std::make_unique<SecondaryRunner>(std::move(embedder), labels, SecondaryRunner::Options{threads});
  if (!embedder_->produces_embeddings())
    fail("network '{}' gives no embeddings: a gallery needs a face embedding network",
         embedder_->network().name());
  input_.resize(static_cast<std::size_t>(3 * preprocess_.width * preprocess_.height));
}

std::vector<Detection> StillImageFaces::faces(const cv::Mat& bgr) {
  const vision::ImageView view = vision::view_of_bgr(bgr);
  const vision::LetterboxTransform transform = vision::preprocess(view, preprocess_, input_.data());
  context_.run({ConstTensorView{input_.data(), DType::kF32, {1, 3, preprocess_.height, preprocess_.width}}});
  outputs_.clear();
  for (std::size_t o = 0; o < context_.output_count(); ++o) outputs_.push_back(context_.output(o));
  std::vector<Detection> detections;
  post_->run(outputs_, 0, detections);
  vision::map_boxes_back(std::span(detections), transform);
  std::stable_sort(detections.begin(), detections.end(), [](const Detection& a, const Detection& b) {
    return (a.x2 - a.x1) * (a.y2 - a.y1) > (b.x2 - b.x1) * (b.y2 - b.y1);
  });
  embedder_->run(view, detections);
  return detections;
}

FaceGallery FaceGallery::load(const std::filesystem::path& folder, StillImageFaces& faces) {
  std::error_code error;
  if (!std::filesystem::is_directory(folder, error))
    fail("gallery '{}': {}", folder.string(),
         std::filesystem::exists(folder, error) ? "not a folder" : "no such folder");
  FaceGallery gallery;
  gallery.folder_ = folder;
  auto add_photo = [&](const std::filesystem::path& photo, const std::string& name) {
    const std::string source = as_text(std::filesystem::relative(photo, folder, error).string());
    auto skip = [&](std::string reason) {
      spdlog::warn("gallery '{}': '{}' skipped: {}", folder.string(), source, reason);
      gallery.skipped_.push_back({source, std::move(reason)});
    };
    // The name goes into JSON (results, MQTT, the API) and onto the screen: it must be text.
    if (as_text(name) != name) {
      skip("its name is not UTF-8 text (rename the file or folder)");
      return;
    }
    cv::Mat image;
    try {
      image = vision::load_image(photo.string());
    } catch (const Error& e) {
      skip(fmt::format("cannot be decoded ({})", e.what()));
      return;
    }
    const std::vector<Detection> found = faces.faces(image);
    if (found.empty() || found.front().embedding.empty()) {
      skip(found.empty() ? "no face found" : "no face with its 5 landmarks");
      return;
    }
    if (found.size() > 1)
      spdlog::info("gallery '{}': '{}' shows {} faces; the largest is {}", folder.string(), source,
                   found.size(), name);
    gallery.entries_.push_back({name, source, found.front().embedding});
  };
  for (const auto& entry : sorted_entries(folder)) {
    if (entry.is_directory(error)) {
      const std::string name = entry.path().filename().string();
      for (const auto& photo : sorted_entries(entry.path()))
        if (photo.is_regular_file(error) && vision::has_image_extension(photo.path()))
          add_photo(photo.path(), name);
    } else if (entry.is_regular_file(error) && vision::has_image_extension(entry.path())) {
      add_photo(entry.path(), entry.path().stem().string());
    }
  }
  spdlog::info("gallery '{}': {} photo(s) of {} identit{}, {} skipped", folder.string(),
               gallery.entries_.size(), gallery.names().size(), gallery.names().size() == 1 ? "y" : "ies",
               gallery.skipped_.size());
  return gallery;
}

Identity FaceGallery::match(std::span<const float> embedding, float threshold) const {
  Identity best{std::string(), -1.0f};
  const Entry* best_entry = nullptr;
  for (const Entry& entry : entries_) {
    if (entry.embedding.size() != embedding.size()) continue;
    float similarity = 0.0f;
    for (std::size_t i = 0; i < embedding.size(); ++i) similarity += entry.embedding[i] * embedding[i];
    if (similarity > best.similarity) {
      best.similarity = similarity;
      best_entry = &entry;
    }
  }
  if (best_entry == nullptr) return {std::string(), 0.0f};
  if (best.similarity >= threshold) best.name = best_entry->name;
  return best;
}

std::vector<std::string> FaceGallery::names() const {
  std::set<std::string> names;
  for (const Entry& entry : entries_) names.insert(entry.name);
  return {names.begin(), names.end()};
}

GalleryHolder::GalleryHolder(std::filesystem::path folder, std::shared_ptr<const Network> detector,
                             std::shared_ptr<const Network> embedder, float threshold)
    : folder_(std::move(folder)),
      detector_(std::move(detector)),
      embedder_(std::move(embedder)),
      threshold_(threshold) {
  reload();
}

std::shared_ptr<const FaceGallery> GalleryHolder::reload() {
  const std::lock_guard reloading(reload_mutex_);
  StillImageFaces faces(detector_, embedder_);
  auto gallery = std::make_shared<const FaceGallery>(FaceGallery::load(folder_, faces));
  const std::lock_guard lock(mutex_);
  gallery_ = gallery;
  return gallery;
}

std::shared_ptr<const FaceGallery> GalleryHolder::current() const {
  const std::lock_guard lock(mutex_);
  return gallery_;
}

}  // namespace vapipe::models
