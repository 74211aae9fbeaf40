#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vapipe::models {

// A point of an object (a face landmark, a body joint) in the same pixels as its box.
struct Keypoint {
  float x = 0.0f, y = 0.0f;
  float score = 1.0f;  // the model's confidence; 1 where the model gives none (face landmarks)
};

// Who a face is: the gallery entry its embedding is closest to (cosine similarity), when that similarity
// reaches the recognition threshold; otherwise an unknown face (name empty) with the best similarity seen.
struct Identity {
  std::string name;         // the gallery's name (file or folder name); empty: unknown
  float similarity = 0.0f;  // cosine similarity to the best gallery entry, -1..1
  bool known() const { return !name.empty(); }
  // What is shown and written for it (JSON's "name", the annotated output's label): the name, or "unknown".
  std::string_view display_name() const {
    return known() ? std::string_view(name) : std::string_view("unknown");
  }
  bool operator==(const Identity&) const = default;
};

// An instance mask (segmentation tasks): a binary bitmap of width x height cells laid over its extent, a
// rectangle in the same pixels as the box (network input pixels out of a decoder, source image pixels after
// vision::map_boxes_back). The extent is kept apart from the box because map_boxes_back clamps boxes to the
// image: a box cut at the image's edge must not stretch its mask. Outside the extent the mask is empty.
// Rasterized to image pixels, RLE-coded and drawn by models/instance_mask.hpp.
struct InstanceMask {
  float x1 = 0.0f, y1 = 0.0f, x2 = 0.0f, y2 = 0.0f;  // the extent
  int width = 0, height = 0;                         // cells
  std::vector<std::uint8_t> bits{};                  // row-major, cell i is bit i % 8 of byte i / 8

  bool empty() const { return width <= 0 || height <= 0; }
  bool at(int x, int y) const {
    const auto i =
        static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x);
    return ((bits[i / 8] >> (i % 8)) & 1U) != 0;
  }
  void set(int x, int y) {
    const auto i =
        static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x);
    bits[i / 8] = static_cast<std::uint8_t>(bits[i / 8] | (1U << (i % 8)));
  }
  // All cells clear.
  void resize(int cells_wide, int cells_high) {
    width = cells_wide;
    height = cells_high;
    bits.assign((static_cast<std::size_t>(width) * static_cast<std::size_t>(height) + 7) / 8, 0);
  }
};

// What a second-stage classifier (models/tasks/classifier.cpp) says of an object's crop: its top-1 class name
// and that class's probability.
struct Attribute {
  std::string label;
  float score = 0.0f;
  bool operator==(const Attribute&) const = default;
};

// One detected object. Boxes are corners in pixels: network input pixels straight out of a decoder,
// source image pixels after vision::map_boxes_back (which maps the keypoints too).
struct Detection {
  int class_id = 0;
  float score = 0.0f;
  float x1 = 0.0f, y1 = 0.0f, x2 = 0.0f, y2 = 0.0f;
  int track_id = -1;
  // Task-defined order: faces left eye, right eye, nose, left and right mouth corner (as seen in the image:
  // the subject's right eye first, InsightFace's order); body poses COCO's 17 joints. Empty for plain boxes.
  std::vector<Keypoint> keypoints{};
  // A second-stage embedding network's output on this object's crop, L2-normalized (face recognition).
  std::vector<float> embedding{};
  // Set where the object was matched against a gallery (in a video: the track's vote over its frames).
  std::optional<Identity> identity{};
  // Segmentation tasks: the object's pixels (empty for boxes).
  InstanceMask mask{};
  // The decoder's row (anchor) this candidate came from, for a task's second pass over the kept detections
  // after NMS (instance masks read their coefficients there); -1 where the decoder sets none.
  std::int32_t candidate = -1;
  // Set where a secondary classifier ran on this object.
  std::optional<Attribute> attribute{};
};

// Thresholds applied while decoding (semantics in docs/postprocessing.md):
//  - a candidate needs objectness > obj_threshold (models with an objectness output only);
//  - its final score (obj * cls, or cls alone for YOLOv8) must be > the threshold of its best class:
//    per_class[class] when per_class is non-empty and has that class, conf_threshold otherwise.
struct ScoreThresholds {
  float conf_threshold = 0.25f;
  float obj_threshold = 0.0f;
  std::vector<float> per_class;

  float for_class(int class_id) const {
    return static_cast<std::size_t>(class_id) < per_class.size()
               ? per_class[static_cast<std::size_t>(class_id)]
               : conf_threshold;
  }
  // The lowest score any class can be kept with: a candidate whose objectness is not above it can never pass
  // (obj * cls <= obj), which is what the decoders' one-compare fast path relies on.
  float min_score() const;
  // Effective lower bound on objectness: max(obj_threshold, min_score()).
  float objectness_floor() const;
};

}  // namespace vapipe::models
