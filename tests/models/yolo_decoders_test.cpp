// Each decoder on hand-built tensors whose correct boxes are known.
#include "models/yolo_decoders.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace vapipe::models {
namespace {

float logit(float p) { return std::log(p / (1.0f - p)); }

// A YOLOv5 raw level: [na * (5 + nc), h, w] filled with "nothing here".
struct RawLevel {
  int anchors, classes, height, width;
  std::vector<float> data;
  RawLevel(int na, int nc, int h, int w)
      : anchors(na),
        classes(nc),
        height(h),
        width(w),
        data(static_cast<std::size_t>(na * (5 + nc) * h * w), -12.0f) {}
  float& at(int anchor, int channel, int y, int x) {
    return data[static_cast<std::size_t>(((anchor * (5 + classes) + channel) * height + y) * width + x)];
  }
};

TEST(Yolov5RawDecoder, OneStrongCellGivesItsBoxInPixels) {
  const std::vector<Anchor> anchors = {{10, 13}, {16, 30}, {33, 23}};
  RawLevel level(3, 4, 6, 8);
  // Anchor 1 at grid (x=5, y=2): offsets sigmoid 0.5 -> centre (2*0.5 - 0.5 + 5) * 8 = 44, (0.5 + 2) * 8 = 20;
  // size logits 0 -> (2 * 0.5)^2 * anchor = the anchor.
  for (int c = 0; c < 4; ++c) level.at(1, c, 2, 5) = 0.0f;
  level.at(1, 4, 2, 5) = logit(0.9f);
  level.at(1, 5 + 2, 2, 5) = logit(0.8f);
  const RawHeadLevel levels[] = {{level.data.data(), 6, 8, 8.0f, anchors}};
  std::vector<Detection> out;
  decode_yolov5_raw(levels, 4, {}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].class_id, 2);
  EXPECT_NEAR(out[0].score, 0.72f, 1e-5);
  EXPECT_NEAR(out[0].x1, 44 - 8, 1e-4);
  EXPECT_NEAR(out[0].y1, 20 - 15, 1e-4);
  EXPECT_NEAR(out[0].x2, 44 + 8, 1e-4);
  EXPECT_NEAR(out[0].y2, 20 + 15, 1e-4);
}

TEST(Yolov5RawDecoder, OffsetsAndSizesFollowTheV5Formula) {
  const std::vector<Anchor> anchors = {{116, 90}};
  RawLevel level(1, 1, 2, 2);
  level.at(0, 0, 1, 0) = logit(0.75f);  // sx: (1.5 - 0.5 + 0) * 32 = 32
  level.at(0, 1, 1, 0) = logit(0.25f);  // sy: (0.5 - 0.5 + 1) * 32 = 32
  level.at(0, 2, 1, 0) = logit(0.75f);  // w: 1.5^2 * 116 = 261
  level.at(0, 3, 1, 0) = logit(0.25f);  // h: 0.5^2 * 90 = 22.5
  level.at(0, 4, 1, 0) = logit(0.99f);
  level.at(0, 5, 1, 0) = logit(0.99f);
  const RawHeadLevel levels[] = {{level.data.data(), 2, 2, 32.0f, anchors}};
  std::vector<Detection> out;
  decode_yolov5_raw(levels, 1, {}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].x1, 32 - 130.5, 1e-3);
  EXPECT_NEAR(out[0].x2, 32 + 130.5, 1e-3);
  EXPECT_NEAR(out[0].y1, 32 - 11.25, 1e-3);
  EXPECT_NEAR(out[0].y2, 32 + 11.25, 1e-3);
}

// The one-compare fast path must not change results: compare with a straightforward decode on random logits.
TEST(Yolov5RawDecoder, FastPathMatchesAPlainDecode) {
  std::mt19937 rng(99);
  std::normal_distribution<float> noise(-2.0f, 2.0f);
  const std::vector<Anchor> anchors = {{10, 13}, {16, 30}, {33, 23}};
  RawLevel level(3, 5, 10, 12);
  for (float& v : level.data) v = noise(rng);
  ScoreThresholds thresholds{0.3f, 0.4f, {0.5f, 0.2f}};
  const RawHeadLevel levels[] = {{level.data.data(), 10, 12, 16.0f, anchors}};
  std::vector<Detection> out;
  decode_yolov5_raw(levels, 5, thresholds, out);
  std::size_t expected = 0;
  auto sig = [](float x) { return 1.0f / (1.0f + std::exp(-x)); };
  for (int a = 0; a < 3; ++a) {
    for (int y = 0; y < 10; ++y) {
      for (int x = 0; x < 12; ++x) {
        const float obj = sig(level.at(a, 4, y, x));
        int best = 0;
        for (int c = 1; c < 5; ++c) best = level.at(a, 5 + c, y, x) > level.at(a, 5 + best, y, x) ? c : best;
        const float score = obj * sig(level.at(a, 5 + best, y, x));
        if (obj > 0.4f && score > thresholds.for_class(best)) ++expected;
      }
    }
  }
  EXPECT_GT(expected, 5u);
  EXPECT_EQ(out.size(), expected);
}

// The channels-last layout (what `vapipe compile` writes for raw heads) is the same logits transposed: the
// same detections, in the same order, must come out.
TEST(Yolov5RawDecoder, ChannelsLastLevelsDecodeLikeChannelMajorOnes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(-1.0f, 2.0f);
  const std::vector<Anchor> anchors = {{10, 13}, {16, 30}, {33, 23}};
  RawLevel level(3, 6, 9, 11);
  for (float& v : level.data) v = noise(rng);
  const int channels = 3 * (5 + 6);
  std::vector<float> channels_last(level.data.size());
  for (int a = 0; a < 3; ++a) {
    for (int c = 0; c < 5 + 6; ++c) {
      for (int y = 0; y < 9; ++y) {
        for (int x = 0; x < 11; ++x)
          channels_last[static_cast<std::size_t>((y * 11 + x) * channels + a * (5 + 6) + c)] =
              level.at(a, c, y, x);
      }
    }
  }
  const ScoreThresholds thresholds{0.2f, 0.3f, {}};
  const RawHeadLevel nchw[] = {{level.data.data(), 9, 11, 8.0f, anchors, false}};
  const RawHeadLevel nhwc[] = {{channels_last.data(), 9, 11, 8.0f, anchors, true}};
  std::vector<Detection> expected;
  std::vector<Detection> out;
  decode_yolov5_raw(nchw, 6, thresholds, expected);
  decode_yolov5_raw(nhwc, 6, thresholds, out);
  ASSERT_GT(expected.size(), 5u);
  ASSERT_EQ(out.size(), expected.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].class_id, expected[i].class_id);
    EXPECT_EQ(out[i].score, expected[i].score);
    EXPECT_EQ(out[i].x1, expected[i].x1);
    EXPECT_EQ(out[i].y2, expected[i].y2);
  }
}

TEST(Yolov5FullDecoder, RowsAreCentreSizeObjectnessClasses) {
  std::vector<float> rows = {
      100, 50, 20, 10, 0.9f, 0.1f, 0.8f,  // kept: class 1, 0.72
      10,  10, 5,  5,  0.2f, 0.9f, 0.0f,  // obj * cls = 0.18 < 0.25
  };
  std::vector<Detection> out;
  decode_yolov5_full(rows.data(), 2, 2, {}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].class_id, 1);
  EXPECT_NEAR(out[0].score, 0.72f, 1e-6);
  EXPECT_FLOAT_EQ(out[0].x1, 90);
  EXPECT_FLOAT_EQ(out[0].y1, 45);
  EXPECT_FLOAT_EQ(out[0].x2, 110);
  EXPECT_FLOAT_EQ(out[0].y2, 55);
}

TEST(Yolov8FullDecoder, ChannelMajorBoxesAndClassScores) {
  // [4 + 3, 4]: candidate 2 has class 1 at 0.6; the others stay below 0.25.
  const int n = 4;
  std::vector<float> data(static_cast<std::size_t>((4 + 3) * n), 0.1f);
  auto at = [&](int channel, int i) -> float& { return data[static_cast<std::size_t>(channel * n + i)]; };
  at(0, 2) = 320;
  at(1, 2) = 240;
  at(2, 2) = 64;
  at(3, 2) = 32;
  at(4 + 1, 2) = 0.6f;
  at(4 + 2, 2) = 0.3f;
  std::vector<Detection> out;
  std::vector<float> scratch;
  decode_yolov8_full(data.data(), n, 3, {}, out, scratch);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].class_id, 1);
  EXPECT_FLOAT_EQ(out[0].score, 0.6f);
  EXPECT_FLOAT_EQ(out[0].x1, 288);
  EXPECT_FLOAT_EQ(out[0].y2, 256);
}

TEST(YoloFastestV2Decoder, RowsGoScaleByScaleThenImageByImage) {
  // Two scales (2x2 stride 16, 1x1 stride 32), 2 anchors, 3 classes, batch 2: rows are
  // [scale0 img0 (4)] [scale0 img1 (4)] [scale1 img0 (1)] [scale1 img1 (1)], 4*2 + 2 + 3 = 13 columns.
  const int columns = 13;
  std::vector<float> data(static_cast<std::size_t>(10 * columns), 0.0f);
  std::vector<FastestV2Scale> scales = {{2, 2, 16.0f, {{12, 20}, {38, 52}}},
                                        {1, 1, 32.0f, {{127, 78}, {132, 215}}}};
  // Image 1, scale 0, cell (x=1, y=0) -> row 4 + 1 = 5; anchor 1: reg (0.5, 0.75, 0.5, 1.0).
  float* row = data.data() + 5 * columns;
  row[4] = 0.5f, row[5] = 0.75f, row[6] = 0.5f, row[7] = 1.0f;
  row[8 + 1] = 0.9f;   // obj of anchor 1
  row[10 + 2] = 0.8f;  // class 2
  // Image 1, scale 1 -> row 9; anchor 0.
  float* big = data.data() + 9 * columns;
  big[0] = 0.25f, big[1] = 0.25f, big[2] = 0.5f, big[3] = 0.5f;
  big[8] = 0.7f;
  big[10] = 0.9f;
  std::vector<Detection> out;
  decode_yolofastestv2(data.data(), 2, 1, scales, 3, {}, out);
  ASSERT_EQ(out.size(), 2u);
  // cx = (0.5 * 2 - 0.5 + 1) * 16 = 24, cy = (1.5 - 0.5 + 0) * 16 = 16, w = 1 * 38, h = 4 * 52.
  EXPECT_EQ(out[0].class_id, 2);
  EXPECT_NEAR(out[0].score, 0.72f, 1e-6);
  EXPECT_NEAR(out[0].x1, 24 - 19, 1e-4);
  EXPECT_NEAR(out[0].y1, 16 - 104, 1e-4);
  // cx = (0.5 - 0.5 + 0) * 32 = 0, w = 1 * 127.
  EXPECT_EQ(out[1].class_id, 0);
  EXPECT_NEAR(out[1].score, 0.63f, 1e-6);
  EXPECT_NEAR(out[1].x2, 63.5f, 1e-4);
  // Image 0 has nothing.
  out.clear();
  decode_yolofastestv2(data.data(), 2, 0, scales, 3, {}, out);
  EXPECT_TRUE(out.empty());
}

TEST(ScoreThresholdSemantics, ObjectnessFinalScoreAndPerClass) {
  // Rows: (obj, cls0, cls1).
  std::vector<float> rows = {
      0, 0, 10, 10, 0.50f, 1.00f,  0.0f,   // score 0.50, class 0
      0, 0, 10, 10, 0.95f, 0.00f,  0.84f,  // score 0.798, class 1
      0, 0, 10, 10, 0.40f, 0.625f, 0.0f,   // score 0.25 exactly: not > 0.25
  };
  std::vector<Detection> out;
  decode_yolov5_full(rows.data(), 3, 2, {0.25f, 0.0f, {}}, out);
  EXPECT_EQ(out.size(), 2u);  // the 0.25 row is dropped: thresholds are strict
  out.clear();
  decode_yolov5_full(rows.data(), 3, 2, {0.25f, 0.6f, {}}, out);  // objectness 0.5 < 0.6
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].class_id, 1);
  out.clear();
  decode_yolov5_full(rows.data(), 3, 2, {0.25f, 0.0f, {0.3f, 0.9f}}, out);  // class 1 needs 0.9
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].class_id, 0);
  out.clear();
  decode_yolov5_full(rows.data(), 3, 2, {0.9f, 0.0f, {0.2f}},
                     out);  // class 0 at 0.2, class 1 falls back to 0.9
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].class_id, 0);
  EXPECT_EQ(out[1].class_id, 0);
}

}  // namespace
}  // namespace vapipe::models
