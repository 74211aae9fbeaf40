// Follows dog-qiuqiu/Yolo-FastestV2 (sample/ncnn/src/yolo-fastestv2.cpp predHandle/getCategory and
// utils/utils.py handel_preds): box centre ((reg * 2 - 0.5) + grid) * stride, size (reg * 2)^2 * anchor,
// score obj * cls. (obj^0.6 * cls^0.4 is FastestDet's formula, a different model by the same author.)
#include "models/yolo_decode_common.hpp"
#include "models/yolo_decoders.hpp"

namespace vapipe::models {

void decode_yolofastestv2(const float* data, std::int64_t batch, std::int64_t batch_index,
                          std::span<const FastestV2Scale> scales, int num_classes,
                          const ScoreThresholds& thresholds, std::vector<Detection>& out) {
  const float objectness_floor = thresholds.objectness_floor();
  std::int64_t scale_first_row = 0;  // rows of every batch item of the previous scales
  for (const FastestV2Scale& scale : scales) {
    const auto anchors = static_cast<int>(scale.anchors.size());
    const int row_size = 5 * anchors + num_classes;
    const std::int64_t cells = static_cast<std::int64_t>(scale.height) * scale.width;
    const float* rows = data + (scale_first_row + batch_index * cells) * row_size;
    for (std::int64_t cell = 0; cell < cells; ++cell) {
      const float* row = rows + cell * row_size;
      const float* objectness = row + 4 * anchors;
      int class_id = -1;  // found once per cell, only when some anchor passes
      for (int a = 0; a < anchors; ++a) {
        const float obj = objectness[a];
        if (!(obj > objectness_floor)) continue;
        if (class_id < 0) class_id = detail::argmax_strided(objectness + anchors, num_classes, 1);
        const float score = obj * objectness[anchors + class_id];
        if (!(score > thresholds.for_class(class_id))) continue;
        const float* reg = row + 4 * a;
        const auto gx = static_cast<float>(cell % scale.width);
        const auto gy = static_cast<float>(cell / scale.width);
        const float w = 2.0f * reg[2];
        const float h = 2.0f * reg[3];
        detail::push_center_box(out, class_id, score, (reg[0] * 2.0f - 0.5f + gx) * scale.stride,
                                (reg[1] * 2.0f - 0.5f + gy) * scale.stride, w * w * scale.anchors[a][0],
                                h * h * scale.anchors[a][1]);
      }
    }
    scale_first_row += batch * cells;
  }
}

}  // namespace vapipe::models
