#pragma once
// Small helpers shared by the YOLO decoders (internal to src/models).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "models/detection.hpp"

namespace vapipe::models::detail {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// The logit below which sigmoid(x) cannot exceed p, lowered a little so float rounding near the boundary never
// rejects a cell the exact test would keep (the exact test runs afterwards).
inline float logit_floor(float p) {
  if (p <= 0.0f) return -std::numeric_limits<float>::infinity();
  if (p >= 1.0f) return std::numeric_limits<float>::infinity();
  return std::log(p / (1.0f - p)) - 1e-3f;
}

// Index of the largest of `count` values `stride` apart (the first one on ties).
inline int argmax_strided(const float* values, int count, std::int64_t stride) {
  int best = 0;
  float best_value = values[0];
  for (int c = 1; c < count; ++c) {
    const float value = values[c * stride];
    if (value > best_value) {
      best_value = value;
      best = c;
    }
  }
  return best;
}

inline void push_center_box(std::vector<Detection>& out, int class_id, float score, float cx, float cy,
                            float w, float h) {
  out.push_back({class_id, score, cx - 0.5f * w, cy - 0.5f * h, cx + 0.5f * w, cy + 0.5f * h, -1});
}

}  // namespace vapipe::models::detail
