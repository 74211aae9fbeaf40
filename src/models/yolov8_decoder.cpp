#include "models/yolo_decode_common.hpp"
#include "models/yolo_decoders.hpp"

namespace vapipe::models {

void decode_yolov8_full(const float* data, std::int64_t count, int num_classes,
                        const ScoreThresholds& thresholds, std::vector<Detection>& out,
                        std::vector<float>& best_scratch) {
  // Channel-major layout: sweep class planes contiguously keeping a running max per candidate, instead of
  // striding `count` floats for every class of every candidate.
  best_scratch.resize(static_cast<std::size_t>(2 * count));
  float* best = best_scratch.data();
  float* best_class = best + count;  // class ids as floats: exact far beyond any class count
  const float* scores = data + 4 * count;
  for (std::int64_t i = 0; i < count; ++i) {
    best[i] = scores[i];
    best_class[i] = 0.0f;
  }
  for (int c = 1; c < num_classes; ++c) {
    const float* plane = scores + c * count;
    const auto class_value = static_cast<float>(c);
    for (std::int64_t i = 0; i < count; ++i) {
      const bool better = plane[i] > best[i];
      best[i] = better ? plane[i] : best[i];
      best_class[i] = better ? class_value : best_class[i];
    }
  }
  const float floor = thresholds.min_score();
  for (std::int64_t i = 0; i < count; ++i) {
    if (!(best[i] > floor)) continue;
    const int class_id = static_cast<int>(best_class[i]);
    if (!(best[i] > thresholds.for_class(class_id))) continue;
    detail::push_center_box(out, class_id, best[i], data[i], data[count + i], data[2 * count + i],
                            data[3 * count + i]);
    out.back().candidate = static_cast<std::int32_t>(i);  // the segmentation task's masks read row i
  }
}

}  // namespace vapipe::models
