#include "vision/osd.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace vapipe::vision {

namespace {

// Ultralytics' palette, so annotated frames look familiar to YOLO users.
constexpr std::array<std::uint32_t, 20> kPalette = {
    0xFF3838, 0xFF9D97, 0xFF701F, 0xFFB21D, 0xCFD231, 0x48F90A, 0x92CC17, 0x3DDB86, 0x1A9334, 0x00D4BB,
    0x2C99A8, 0x00C2FF, 0x344593, 0x6473FF, 0x0018EC, 0x8438FF, 0x520085, 0xCB38FF, 0xFF95C8, 0xFF37C7};

cv::Scalar color_for(int index) {
  const std::uint32_t rgb = kPalette[static_cast<std::size_t>(std::abs(index)) % kPalette.size()];
  return {static_cast<double>(rgb & 0xFF), static_cast<double>((rgb >> 8) & 0xFF),
          static_cast<double>((rgb >> 16) & 0xFF)};
}

void draw_points(cv::Mat& bgr_image, const OsdBox& box, const cv::Scalar& color, int thickness) {
  auto shown = [&](int index) {
    return index >= 0 && static_cast<std::size_t>(index) < box.points.size() &&
           box.points[static_cast<std::size_t>(index)][2] >= kMinKeypointScore;
  };
  auto at = [&](int index) {
    const auto& p = box.points[static_cast<std::size_t>(index)];
    return cv::Point(static_cast<int>(std::lround(p[0])), static_cast<int>(std::lround(p[1])));
  };
  for (const auto& [from, to] : box.edges)
    if (shown(from) && shown(to)) cv::line(bgr_image, at(from), at(to), color, thickness, cv::LINE_AA);
  // Dots in a fixed colour set off from the box's (landmarks stay visible on any box colour).
  for (std::size_t i = 0; i < box.points.size(); ++i) {
    if (!shown(static_cast<int>(i))) continue;
    cv::circle(bgr_image, at(static_cast<int>(i)), thickness + 1, cv::Scalar(0, 255, 255), cv::FILLED,
               cv::LINE_AA);
  }
}

// Ultralytics' mask alpha: the object stays visible under its colour.
constexpr int kMaskAlphaPercent = 50;

void blend_mask(cv::Mat& bgr_image, const OsdMask& mask, const cv::Scalar& color) {
  if (mask.pixels.size() != static_cast<std::size_t>(mask.width) * static_cast<std::size_t>(mask.height))
    return;
  const int x0 = std::max(0, mask.x), x1 = std::min(bgr_image.cols, mask.x + mask.width);
  const int y0 = std::max(0, mask.y), y1 = std::min(bgr_image.rows, mask.y + mask.height);
  std::array<int, 3> tint{};
  for (int c = 0; c < 3; ++c)
    tint[static_cast<std::size_t>(c)] = static_cast<int>(color[c]) * kMaskAlphaPercent;
  for (int y = y0; y < y1; ++y) {
    const std::uint8_t* set =
        mask.pixels.data() + static_cast<std::size_t>(y - mask.y) * static_cast<std::size_t>(mask.width);
    auto* row = bgr_image.ptr<cv::Vec3b>(y);
    for (int x = x0; x < x1; ++x) {
      if (set[x - mask.x] == 0) continue;
      for (int c = 0; c < 3; ++c) {
        row[x][c] = static_cast<std::uint8_t>(
            (row[x][c] * (100 - kMaskAlphaPercent) + tint[static_cast<std::size_t>(c)]) / 100);
      }
    }
  }
}

}  // namespace

void draw_boxes(cv::Mat& bgr_image, std::span<const OsdBox> boxes) {
  for (const OsdBox& box : boxes) blend_mask(bgr_image, box.mask, color_for(box.color_index));
  const int thickness = std::max(1, static_cast<int>(std::lround((bgr_image.cols + bgr_image.rows) * 0.001)));
  const double font_scale = thickness / 3.0 + 0.2;
  for (const OsdBox& box : boxes) {
    const cv::Scalar color = color_for(box.color_index);
    const cv::Point top_left(static_cast<int>(std::lround(box.x1)), static_cast<int>(std::lround(box.y1)));
    const cv::Point bottom_right(static_cast<int>(std::lround(box.x2)),
                                 static_cast<int>(std::lround(box.y2)));
    cv::rectangle(bgr_image, top_left, bottom_right, color, thickness, cv::LINE_AA);
    draw_points(bgr_image, box, color, thickness);
    if (box.label.empty()) continue;
    int baseline = 0;
    const cv::Size text =
        cv::getTextSize(box.label, cv::FONT_HERSHEY_SIMPLEX, font_scale, thickness, &baseline);
    // Label above the box when it fits, inside it otherwise; moved left or down as far as it takes to stay
    // inside the frame (a box at the right or top edge would cut it). Only a label wider than the frame
    // is cut.
    const int label_height = text.height + baseline;
    const bool above = top_left.y - label_height >= 0;
    const int top = std::clamp(above ? top_left.y - label_height : top_left.y, 0,
                               std::max(0, bgr_image.rows - label_height));
    const int left = std::clamp(top_left.x, 0, std::max(0, bgr_image.cols - text.width));
    const cv::Point text_origin(left, top + text.height);
    cv::rectangle(bgr_image, cv::Point(left, top), cv::Point(left + text.width, top + label_height), color,
                  cv::FILLED);
    cv::putText(bgr_image, box.label, text_origin, cv::FONT_HERSHEY_SIMPLEX, font_scale,
                cv::Scalar(255, 255, 255), thickness, cv::LINE_AA);
  }
}

}  // namespace vapipe::vision
