#pragma once
// On-screen display: boxes and labels drawn onto a BGR frame (annotated output, `detect --save`).
// Takes its own box type so vision does not depend on models (they are siblings in the module graph).
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

namespace vapipe::vision {

// An instance mask in image pixels: width x height pixels from (x, y), row-major, non-zero where set.
struct OsdMask {
  int x = 0, y = 0, width = 0, height = 0;
  std::vector<std::uint8_t> pixels{};
};

struct OsdBox {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // image pixels
  int color_index = 0;                   // picks a stable colour (class id or track id)
  std::string label;                     // drawn above the box; empty: none
  // Keypoints (x, y, score): a dot each where score >= kMinKeypointScore; `edges` joins pairs of them
  // (a skeleton), drawn where both ends are shown.
  std::vector<std::array<float, 3>> points{};
  std::span<const std::pair<int, int>> edges{};
  OsdMask mask{};  // blended in the box's colour under every box and label; empty: none
};

inline constexpr float kMinKeypointScore = 0.3f;

// Masks first (half the box's colour over the picture), then boxes, keypoints and labels on top.
void draw_boxes(cv::Mat& bgr_image, std::span<const OsdBox> boxes);

}  // namespace vapipe::vision
