#include "vision/letterbox.hpp"

#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace vapipe::vision {
namespace {

TEST(Letterbox, LandscapeImageIsPaddedTopAndBottomLikeYolov5) {
  // YOLOv5 letterbox(auto=False) of 1920x1080 to 640x640: r = 1/3, 640x360, dh = 280 -> 140 / 140.
  const LetterboxTransform t = compute_letterbox(1920, 1080, 640, 640);
  EXPECT_EQ(t.resized_width, 640);
  EXPECT_EQ(t.resized_height, 360);
  EXPECT_EQ(t.pad_x, 0);
  EXPECT_EQ(t.pad_y, 140);
  EXPECT_FLOAT_EQ(t.scale_x, 1.0f / 3.0f);
}

TEST(Letterbox, OddPaddingPutsTheExtraPixelRightAndBottom) {
  // 768x577 -> 640: r = 0.8333, 640 x round(480.83) = 481, dh = 159 -> top round(79.4) = 79, bottom 80.
  const LetterboxTransform t = compute_letterbox(768, 577, 640, 640);
  EXPECT_EQ(t.resized_height, 481);
  EXPECT_EQ(t.pad_y, 79);
  // Portrait: 300x400 -> 320x320: 240x320, dw = 80 -> 40 / 40.
  const LetterboxTransform p = compute_letterbox(300, 400, 320, 320);
  EXPECT_EQ(p.resized_width, 240);
  EXPECT_EQ(p.pad_x, 40);
  EXPECT_EQ(p.pad_y, 0);
}

TEST(Letterbox, MapBackInvertsTheTransformAndClampsToTheImage) {
  const LetterboxTransform t = compute_letterbox(1920, 1080, 640, 640);
  float x1 = 100, y1 = 140 + 30, x2 = 200, y2 = 140 + 60;
  t.map_back(x1, y1, x2, y2);
  EXPECT_NEAR(x1, 300.0f, 1e-3);
  EXPECT_NEAR(y1, 90.0f, 1e-3);
  EXPECT_NEAR(x2, 600.0f, 1e-3);
  EXPECT_NEAR(y2, 180.0f, 1e-3);
  // A box reaching into the padding is clamped to the image.
  float a = -20, b = 10, c = 700, d = 639;
  t.map_back(a, b, c, d);
  EXPECT_EQ(a, 0.0f);
  EXPECT_EQ(b, 0.0f);
  EXPECT_EQ(c, 1920.0f);
  EXPECT_EQ(d, 1080.0f);
}

TEST(Letterbox, StretchHasNoPaddingAndPerAxisScales) {
  const LetterboxTransform t = compute_stretch(704, 352, 352, 352);
  EXPECT_EQ(t.pad_x, 0);
  EXPECT_EQ(t.pad_y, 0);
  EXPECT_FLOAT_EQ(t.scale_x, 0.5f);
  EXPECT_FLOAT_EQ(t.scale_y, 1.0f);
  struct Box {
    float x1, y1, x2, y2;
  };
  std::vector<Box> boxes = {{10, 10, 20, 20}};
  map_boxes_back(std::span(boxes), t);
  EXPECT_FLOAT_EQ(boxes[0].x1, 20.0f);
  EXPECT_FLOAT_EQ(boxes[0].y2, 20.0f);
}

TEST(Letterbox, RejectsEmptySizes) { EXPECT_THROW(compute_letterbox(0, 10, 640, 640), Error); }

}  // namespace
}  // namespace vapipe::vision
