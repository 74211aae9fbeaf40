#pragma once
// Class-aware greedy non-maximum suppression: within one class, a box is dropped when its IoU with a kept,
// higher-scored box is > iou_threshold (torchvision.ops.nms semantics). Results are sorted by score
// (descending; ties by input order) and cut to max_detections.
#include <cstddef>
#include <vector>

#include "models/detection.hpp"

namespace vapipe::models {

struct NmsOptions {
  float iou_threshold = 0.45f;
  std::size_t max_detections = 300;
};

// Reusable buffers so the per-frame NMS allocates nothing once warmed up (one per worker).
struct NmsScratch {
  std::vector<std::size_t> order;
  std::vector<std::size_t> class_start;
  std::vector<std::size_t> cursor;
  std::vector<std::size_t> kept_index;
  std::vector<float> x1, y1, x2, y2, area;
  std::vector<unsigned char> suppressed;
  std::vector<Detection> kept;
};

// Optimized: per-class buckets (counting sort), boxes as SoA, forward suppression in a vectorizable loop,
// early exit once a class has max_detections. Replaces `detections` with the kept ones.
void nms(std::vector<Detection>& detections, const NmsOptions& options, NmsScratch& scratch);
void nms(std::vector<Detection>& detections, const NmsOptions& options);

// Plain O(n^2) version, the ground truth of the differential test.
void nms_reference(std::vector<Detection>& detections, const NmsOptions& options);

}  // namespace vapipe::models
