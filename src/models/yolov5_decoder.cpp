#include <cstddef>

#include "models/yolo_decode_common.hpp"
#include "models/yolo_decoders.hpp"

namespace vapipe::models {

void decode_yolov5_raw(std::span<const RawHeadLevel> levels, int num_classes,
                       const ScoreThresholds& thresholds, std::vector<Detection>& out) {
  const float objectness_floor = thresholds.objectness_floor();
  const float obj_logit_floor = detail::logit_floor(objectness_floor);
  const int outputs_per_anchor = 5 + num_classes;
  for (const RawHeadLevel& level : levels) {
    const std::int64_t plane = static_cast<std::int64_t>(level.height) * level.width;
    const auto channels = static_cast<std::int64_t>(level.anchors.size()) * outputs_per_anchor;
    // Element (channel c, cell i) is at c * channel_step + i * cell_step in either layout.
    const std::int64_t channel_step = level.channels_last ? 1 : plane;
    const std::int64_t cell_step = level.channels_last ? channels : 1;
    for (std::size_t a = 0; a < level.anchors.size(); ++a) {
      const float* base = level.data + static_cast<std::int64_t>(a) * outputs_per_anchor * channel_step;
      const float* objectness = base + 4 * channel_step;
      for (std::int64_t i = 0; i < plane; ++i) {
        const float* cell = base + i * cell_step;
        // Almost every cell stops here: one compare against the inverse sigmoid of the floor.
        if (!(objectness[i * cell_step] > obj_logit_floor)) continue;
        const float obj = detail::sigmoid(objectness[i * cell_step]);
        if (!(obj > objectness_floor)) continue;
        const int class_id = detail::argmax_strided(cell + 5 * channel_step, num_classes, channel_step);
        const float score = obj * detail::sigmoid(cell[(5 + class_id) * channel_step]);
        if (!(score > thresholds.for_class(class_id))) continue;
        const auto gx = static_cast<float>(i % level.width);
        const auto gy = static_cast<float>(i / level.width);
        const float sx = detail::sigmoid(cell[0]);
        const float sy = detail::sigmoid(cell[channel_step]);
        const float sw = 2.0f * detail::sigmoid(cell[2 * channel_step]);
        const float sh = 2.0f * detail::sigmoid(cell[3 * channel_step]);
        detail::push_center_box(out, class_id, score, (2.0f * sx - 0.5f + gx) * level.stride,
                                (2.0f * sy - 0.5f + gy) * level.stride, sw * sw * level.anchors[a][0],
                                sh * sh * level.anchors[a][1]);
      }
    }
  }
}

void decode_yolov5_full(const float* data, std::int64_t count, int num_classes,
                        const ScoreThresholds& thresholds, std::vector<Detection>& out) {
  const float objectness_floor = thresholds.objectness_floor();
  const int row_size = 5 + num_classes;
  for (std::int64_t r = 0; r < count; ++r) {
    const float* row = data + r * row_size;
    if (!(row[4] > objectness_floor)) continue;
    const int class_id = detail::argmax_strided(row + 5, num_classes, 1);
    const float score = row[4] * row[5 + class_id];
    if (!(score > thresholds.for_class(class_id))) continue;
    detail::push_center_box(out, class_id, score, row[0], row[1], row[2], row[3]);
  }
}

}  // namespace vapipe::models
