#pragma once
#include <vector>

namespace vapipe::models {

// A point of an object (a face landmark, a body joint) in the same pixels as its box.
struct Keypoint {
  float x = 0.0f, y = 0.0f;
  float score = 1.0f;  // the model's confidence; 1 where the model gives none (face landmarks)
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
