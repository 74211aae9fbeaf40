#include "models/secondary_runner.hpp"

#include <algorithm>

#include <fmt/ranges.h>

#include "core/error.hpp"
#include "vision/crop.hpp"
#include "vision/face_align.hpp"

namespace vapipe::models {

std::vector<std::string> SecondaryRunner::class_names_taken(const nlohmann::json& metadata,
                                                            const std::vector<std::string>& configured) {
  // A classifier's class names are its answers: without configured classes it takes every class (empty).
  const auto head = metadata.find("head");
  const bool classifier =
      head != metadata.end() && head->is_object() && head->value("form", std::string()) == "classification";
  if (classifier || !configured.empty()) return configured;
  return metadata.value("class_names", std::vector<std::string>{});
}

bool SecondaryRunner::is_top_down(const nlohmann::json& metadata) {
  const auto pre = metadata.find("preprocess");
  return pre != metadata.end() && pre->is_object() && pre->contains("crop");
}

SecondaryRunner::SecondaryRunner(std::shared_ptr<const Network> network,
                                 const std::vector<std::string>& primary_class_names, Options options)
    : network_(std::move(network)), context_(network_, {.threads = options.threads}) {
  const nlohmann::json& metadata = network_->metadata();
  if (!is_top_down(metadata))
    fail("network '{}' is not a top-down network (its metadata has no preprocess.crop)", network_->name());
  max_batch_ = network_->max_batch();
  const auto inputs = network_->inputs(max_batch_);
  if (inputs.size() != 1 || inputs[0].shape.size() != 4 || inputs[0].shape[1] != 3)
    fail("network '{}': a top-down network takes one [N, 3, H, W] image", network_->name());
  preprocess_ = vision::PreprocessOptions::from_metadata(metadata);
  // The compiled shape is the truth (as in `vapipe detect`).
  preprocess_.height = static_cast<int>(inputs[0].shape[2]);
  preprocess_.width = static_cast<int>(inputs[0].shape[3]);
  try {
    const auto& crop = metadata.at("preprocess").at("crop");
    crop_scale_ = crop.value("scale", crop_scale_);
    const auto rule = crop.value("rule", std::string("upscale_clip"));
    if (rule == "face_align") {
      if (preprocess_.width != preprocess_.height)
        fail("network '{}': face alignment needs a square input, the network takes {}x{}", network_->name(),
             preprocess_.width, preprocess_.height);
      face_template_ = vision::arcface_template(preprocess_.width);
      align_faces_ = true;
    } else if (rule != "upscale_clip") {
      fail("network '{}': unknown preprocess.crop.rule \"{}\" (known: upscale_clip, face_align)",
           network_->name(), rule);
    }
  } catch (const nlohmann::json::exception& error) {
    fail("network '{}': bad preprocess.crop: {}", network_->name(), error.what());
  }
  produces_embeddings_ = metadata.at("head").value("form", std::string()) == "embedding";
  produces_attributes_ = metadata.at("head").value("form", std::string()) == "classification";
  if (produces_attributes_) labels_ = metadata.value("class_names", std::vector<std::string>{});
  post_ = std::make_unique<PostProcessor>(metadata, network_->outputs(max_batch_),
                                          PostprocessOptions::from_metadata(metadata));
  // A classifier's class names are what it tells, not what it runs on: without configured classes it runs
  // on every detection.
  const bool every_class = produces_attributes_ && options.classes.empty();
  const auto names = options.classes.empty() && !produces_attributes_
                         ? metadata.value("class_names", std::vector<std::string>{})
                         : options.classes;
  for (const auto& name : options.classes) {
    if (std::find(primary_class_names.begin(), primary_class_names.end(), name) == primary_class_names.end())
      fail("class '{}' is not a class of the detector (it has {}{})", name,
           fmt::join(
               primary_class_names.begin(),
               primary_class_names.begin() + std::min<std::ptrdiff_t>(8, std::ssize(primary_class_names)),
               ", "),
           primary_class_names.size() > 8 ? ", ..." : "");
  }
  takes_.resize(primary_class_names.size());
  bool any = false;
  for (std::size_t i = 0; i < primary_class_names.size(); ++i) {
    takes_[i] = every_class || std::find(names.begin(), names.end(), primary_class_names[i]) != names.end();
    any = any || takes_[i];
  }
  if (!any)
    fail("network '{}' runs on {} boxes, a class the detector does not have", network_->name(),
         names.empty() ? std::string("(no class)") : names.front());
  input_.resize(static_cast<std::size_t>(max_batch_ * 3 * preprocess_.width * preprocess_.height));
}

bool SecondaryRunner::can_run_on(const Detection& detection) const {
  // An aligned face needs its 5 landmarks (from a face detector task).
  return takes(detection.class_id) && (!align_faces_ || detection.keypoints.size() >= face_template_.size());
}

void SecondaryRunner::run(const vision::ImageView& image, std::span<Detection> detections) {
  const std::int64_t slot = 3LL * preprocess_.width * preprocess_.height;
  std::size_t next = 0;
  while (true) {
    batch_members_.clear();
    for (; next < detections.size() && static_cast<std::int64_t>(batch_members_.size()) < max_batch_; ++next)
      if (can_run_on(detections[next])) batch_members_.push_back(next);
    if (batch_members_.empty()) return;
    transforms_.clear();
    for (std::size_t b = 0; b < batch_members_.size(); ++b) {
      const Detection& d = detections[batch_members_[b]];
      float* slot_data = input_.data() + static_cast<std::int64_t>(b) * slot;
      if (align_faces_) {
        std::array<vision::Point2, 5> landmarks{};
        for (std::size_t k = 0; k < landmarks.size(); ++k)
          landmarks[k] = {d.keypoints[k].x, d.keypoints[k].y};
        vision::align_face(image, vision::estimate_similarity(landmarks, face_template_), preprocess_,
                           slot_data);
        transforms_.emplace_back();  // an embedding has no points to map back
        continue;
      }
      const vision::CropRegion crop =
          vision::expand_crop(d.x1, d.y1, d.x2, d.y2, image.width, image.height, crop_scale_);
      transforms_.push_back(vision::preprocess_crop(image, crop, preprocess_, slot_data));
    }
    const auto batch = static_cast<std::int64_t>(batch_members_.size());
    context_.run(
        {ConstTensorView{input_.data(), DType::kF32, {batch, 3, preprocess_.height, preprocess_.width}}});
    outputs_.clear();
    for (std::size_t o = 0; o < context_.output_count(); ++o) outputs_.push_back(context_.output(o));
    for (std::size_t b = 0; b < batch_members_.size(); ++b) {
      post_->run(outputs_, static_cast<std::int64_t>(b), decoded_);
      Detection& target = detections[batch_members_[b]];
      if (produces_attributes_) {
        target.attribute.reset();
        if (decoded_.empty()) continue;
        const auto id = static_cast<std::size_t>(decoded_.front().class_id);
        target.attribute = Attribute{id < labels_.size() ? labels_[id] : fmt::format("class_{}", id),
                                     decoded_.front().score};
        continue;
      }
      if (produces_embeddings_) {
        target.embedding.clear();
        if (!decoded_.empty()) target.embedding = std::move(decoded_.front().embedding);
        continue;
      }
      target.keypoints.clear();
      if (decoded_.empty()) continue;
      target.keypoints = std::move(decoded_.front().keypoints);
      for (auto& point : target.keypoints) transforms_[b].map_point_back(point.x, point.y);
    }
  }
}

}  // namespace vapipe::models
