#include "vision/letterbox.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace vapipe::vision {

namespace {

void check_sizes(int source_width, int source_height, int target_width, int target_height) {
  if (source_width <= 0 || source_height <= 0 || target_width <= 0 || target_height <= 0) {
    fail("letterbox: invalid sizes {}x{} -> {}x{}", source_width, source_height, target_width, target_height);
  }
}

}  // namespace

LetterboxTransform compute_letterbox(int source_width, int source_height, int target_width,
                                     int target_height) {
  check_sizes(source_width, source_height, target_width, target_height);
  const double ratio = std::min(static_cast<double>(target_width) / source_width,
                                static_cast<double>(target_height) / source_height);
  LetterboxTransform transform;
  // nearbyint rounds half to even under the default rounding mode, as Python's round() in YOLOv5 does.
  transform.resized_width =
      std::clamp(static_cast<int>(std::nearbyint(source_width * ratio)), 1, target_width);
  transform.resized_height =
      std::clamp(static_cast<int>(std::nearbyint(source_height * ratio)), 1, target_height);
  const double half_dw = (target_width - transform.resized_width) / 2.0;
  const double half_dh = (target_height - transform.resized_height) / 2.0;
  transform.pad_x = static_cast<int>(std::nearbyint(half_dw - 0.1));
  transform.pad_y = static_cast<int>(std::nearbyint(half_dh - 0.1));
  transform.scale_x = static_cast<float>(static_cast<double>(transform.resized_width) / source_width);
  transform.scale_y = static_cast<float>(static_cast<double>(transform.resized_height) / source_height);
  transform.source_width = source_width;
  transform.source_height = source_height;
  transform.target_width = target_width;
  transform.target_height = target_height;
  return transform;
}

LetterboxTransform compute_stretch(int source_width, int source_height, int target_width, int target_height) {
  check_sizes(source_width, source_height, target_width, target_height);
  LetterboxTransform transform;
  transform.resized_width = target_width;
  transform.resized_height = target_height;
  transform.scale_x = static_cast<float>(static_cast<double>(target_width) / source_width);
  transform.scale_y = static_cast<float>(static_cast<double>(target_height) / source_height);
  transform.source_width = source_width;
  transform.source_height = source_height;
  transform.target_width = target_width;
  transform.target_height = target_height;
  return transform;
}

void LetterboxTransform::map_back(float& x1, float& y1, float& x2, float& y2) const {
  const auto max_x = static_cast<float>(source_width);
  const auto max_y = static_cast<float>(source_height);
  const auto left = static_cast<float>(origin_x);
  const auto top = static_cast<float>(origin_y);
  x1 = std::clamp((x1 - static_cast<float>(pad_x)) / scale_x, 0.0f, max_x) + left;
  x2 = std::clamp((x2 - static_cast<float>(pad_x)) / scale_x, 0.0f, max_x) + left;
  y1 = std::clamp((y1 - static_cast<float>(pad_y)) / scale_y, 0.0f, max_y) + top;
  y2 = std::clamp((y2 - static_cast<float>(pad_y)) / scale_y, 0.0f, max_y) + top;
}

void LetterboxTransform::map_point_back(float& x, float& y) const {
  x = std::clamp((x - static_cast<float>(pad_x)) / scale_x, 0.0f, static_cast<float>(source_width)) +
      static_cast<float>(origin_x);
  y = std::clamp((y - static_cast<float>(pad_y)) / scale_y, 0.0f, static_cast<float>(source_height)) +
      static_cast<float>(origin_y);
}

void LetterboxTransform::map_extent_back(float& x1, float& y1, float& x2, float& y2) const {
  auto x = [&](float v) { return (v - static_cast<float>(pad_x)) / scale_x + static_cast<float>(origin_x); };
  auto y = [&](float v) { return (v - static_cast<float>(pad_y)) / scale_y + static_cast<float>(origin_y); };
  x1 = x(x1);
  x2 = x(x2);
  y1 = y(y1);
  y2 = y(y2);
}

}  // namespace vapipe::vision
