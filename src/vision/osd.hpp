#pragma once
// On-screen display: boxes and labels drawn onto a BGR frame (annotated output, `detect --save`).
// Takes its own box type so vision does not depend on models (they are siblings in the module graph).
#include <span>
#include <string>

#include <opencv2/core.hpp>

namespace vapipe::vision {

struct OsdBox {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // image pixels
  int color_index = 0;                   // picks a stable colour (class id or track id)
  std::string label;                     // drawn above the box; empty: none
};

void draw_boxes(cv::Mat& bgr_image, std::span<const OsdBox> boxes);

}  // namespace vapipe::vision
