#include "models/nms.hpp"

#include <algorithm>
#include <numeric>

namespace vapipe::models {

namespace {

// Both versions decide with this exact expression so their results are identical, not merely close.
// Written without a division: inter > t * union is IoU > t for union > 0, and false for empty boxes.
inline bool overlaps(float inter, float union_area, float threshold) {
  return inter > threshold * union_area;
}

inline float box_area(const Detection& d) {
  return std::max(0.0f, d.x2 - d.x1) * std::max(0.0f, d.y2 - d.y1);
}

inline bool score_before(const std::vector<Detection>& d, std::size_t a, std::size_t b) {
  return d[a].score > d[b].score || (d[a].score == d[b].score && a < b);
}

}  // namespace

void nms_reference(std::vector<Detection>& detections, const NmsOptions& options) {
  std::vector<std::size_t> order(detections.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return score_before(detections, a, b); });
  std::vector<Detection> kept;
  for (std::size_t index : order) {
    if (kept.size() >= options.max_detections) break;
    const Detection& candidate = detections[index];
    bool keep = true;
    for (const Detection& other : kept) {
      if (other.class_id != candidate.class_id) continue;
      const float iw = std::max(0.0f, std::min(candidate.x2, other.x2) - std::max(candidate.x1, other.x1));
      const float ih = std::max(0.0f, std::min(candidate.y2, other.y2) - std::max(candidate.y1, other.y1));
      const float inter = iw * ih;
      if (overlaps(inter, box_area(candidate) + box_area(other) - inter, options.iou_threshold)) {
        keep = false;
        break;
      }
    }
    if (keep) kept.push_back(candidate);
  }
  detections = std::move(kept);
}

void nms(std::vector<Detection>& detections, const NmsOptions& options) {
  NmsScratch scratch;
  nms(detections, options, scratch);
}

void nms(std::vector<Detection>& detections, const NmsOptions& options, NmsScratch& scratch) {
  const std::size_t count = detections.size();
  if (count == 0 || options.max_detections == 0) {
    detections.clear();
    return;
  }
  // Counting sort by class: each class is an independent NMS problem on a contiguous range.
  int max_class = 0;
  for (const Detection& d : detections) max_class = std::max(max_class, d.class_id);
  auto& start = scratch.class_start;
  start.assign(static_cast<std::size_t>(max_class) + 2, 0);
  for (const Detection& d : detections) ++start[static_cast<std::size_t>(std::max(d.class_id, 0)) + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  auto& order = scratch.order;
  order.resize(count);
  auto& cursor = scratch.cursor;
  cursor.assign(start.begin(), start.end() - 1);
  for (std::size_t i = 0; i < count; ++i) {
    order[cursor[static_cast<std::size_t>(std::max(detections[i].class_id, 0))]++] = i;
  }

  scratch.x1.resize(count);
  scratch.y1.resize(count);
  scratch.x2.resize(count);
  scratch.y2.resize(count);
  scratch.area.resize(count);
  scratch.suppressed.assign(count, 0);
  auto& kept = scratch.kept_index;
  kept.clear();
  const float threshold = options.iou_threshold;
  for (std::size_t c = 0; c + 1 < start.size(); ++c) {
    const std::size_t begin = start[c];
    const std::size_t end = start[c + 1];
    if (begin == end) continue;
    std::sort(order.begin() + static_cast<std::ptrdiff_t>(begin),
              order.begin() + static_cast<std::ptrdiff_t>(end),
              [&](std::size_t a, std::size_t b) { return score_before(detections, a, b); });
    float* x1 = scratch.x1.data();
    float* y1 = scratch.y1.data();
    float* x2 = scratch.x2.data();
    float* y2 = scratch.y2.data();
    float* area = scratch.area.data();
    unsigned char* suppressed = scratch.suppressed.data();
    for (std::size_t k = begin; k < end; ++k) {
      const Detection& d = detections[order[k]];
      x1[k] = d.x1;
      y1[k] = d.y1;
      x2[k] = d.x2;
      y2[k] = d.y2;
      area[k] = box_area(d);
    }
    std::size_t kept_in_class = 0;
    for (std::size_t i = begin; i < end && kept_in_class < options.max_detections; ++i) {
      if (suppressed[i]) continue;
      kept.push_back(order[i]);
      ++kept_in_class;
      const float ax1 = x1[i], ay1 = y1[i], ax2 = x2[i], ay2 = y2[i], a_area = area[i];
      // Branch-free so the compiler vectorizes it; suppressing already suppressed boxes is harmless.
      for (std::size_t j = i + 1; j < end; ++j) {
        const float iw = std::max(0.0f, std::min(x2[j], ax2) - std::max(x1[j], ax1));
        const float ih = std::max(0.0f, std::min(y2[j], ay2) - std::max(y1[j], ay1));
        const float inter = iw * ih;
        suppressed[j] |= static_cast<unsigned char>(overlaps(inter, area[j] + a_area - inter, threshold));
      }
    }
  }
  // Back to one list in the reference's order: score descending, ties by input position.
  std::sort(kept.begin(), kept.end(),
            [&](std::size_t a, std::size_t b) { return score_before(detections, a, b); });
  if (kept.size() > options.max_detections) kept.resize(options.max_detections);
  auto& result = scratch.kept;
  result.clear();
  for (std::size_t index : kept) result.push_back(detections[index]);
  detections.assign(result.begin(), result.end());
}

}  // namespace vapipe::models
