#include <algorithm>
#include <array>
#include <cmath>

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

namespace vapipe::models {

float dfl_expectation(const float* logits, int bins, std::int64_t step) {
  float largest = logits[0];
  for (int i = 1; i < bins; ++i) largest = std::max(largest, logits[i * step]);
  float sum = 0.0f, weighted = 0.0f;
  for (int i = 0; i < bins; ++i) {
    const float e = std::exp(logits[i * step] - largest);
    sum += e;
    weighted += e * static_cast<float>(i);
  }
  return weighted / sum;
}

void decode_yolov8_raw(std::span<const DflHeadLevel> levels, int num_classes, int reg_max,
                       const ScoreThresholds& thresholds, std::vector<Detection>& out) {
  const float logit_floor = detail::logit_floor(thresholds.min_score());
  const std::int64_t channels = 4 * static_cast<std::int64_t>(reg_max) + num_classes;
  for (const DflHeadLevel& level : levels) {
    const std::int64_t plane = static_cast<std::int64_t>(level.height) * level.width;
    // Element (channel c, cell i) is at c * channel_step + i * cell_step in either layout.
    const std::int64_t channel_step = level.channels_last ? 1 : plane;
    const std::int64_t cell_step = level.channels_last ? channels : 1;
    for (std::int64_t i = 0; i < plane; ++i) {
      const float* cell = level.data + i * cell_step;
      const float* classes = cell + 4 * reg_max * channel_step;
      const int class_id = detail::argmax_strided(classes, num_classes, channel_step);
      const float best = classes[class_id * channel_step];
      // Almost every cell stops here, before any exp: the DFL runs only for the few candidates.
      if (!(best > logit_floor)) continue;
      const float score = detail::sigmoid(best);
      if (!(score > thresholds.for_class(class_id))) continue;
      std::array<float, 4> distance{};
      for (int side = 0; side < 4; ++side)
        distance[static_cast<std::size_t>(side)] =
            dfl_expectation(cell + side * reg_max * channel_step, reg_max, channel_step);
      const float cx = static_cast<float>(i % level.width) + 0.5f;
      const float cy = static_cast<float>(i / level.width) + 0.5f;
      out.push_back({class_id, score, (cx - distance[0]) * level.stride, (cy - distance[1]) * level.stride,
                     (cx + distance[2]) * level.stride, (cy + distance[3]) * level.stride, -1});
    }
  }
}

}  // namespace vapipe::models
