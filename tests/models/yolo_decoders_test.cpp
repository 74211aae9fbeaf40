// Each decoder on hand-built tensors whose correct boxes are known.
#include "models/yolo_decoders.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/detections.hpp"

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

// The plain YOLOv8 decode the export's graph does after the head (Ultralytics' DFL + dist2bbox + sigmoid),
// written out the straightforward way: its [4 + nc, N] output is what the full-graph package decodes.
// `levels` hold channel-major [4 * reg_max + nc, H, W] logits.
std::vector<float> yolov8_full_output_reference(const std::vector<std::vector<float>>& levels,
                                                const std::vector<std::array<int, 3>>& grids, int reg_max,
                                                int classes) {
  std::int64_t count = 0;
  for (const auto& grid : grids) count += grid[0] * grid[1];
  std::vector<float> output(static_cast<std::size_t>((4 + classes) * count));
  std::int64_t anchor = 0;
  for (std::size_t l = 0; l < levels.size(); ++l) {
    const auto [height, width, stride] = grids[l];
    const int plane = height * width;
    for (int i = 0; i < plane; ++i, ++anchor) {
      auto at = [&](int channel) { return levels[l][static_cast<std::size_t>(channel * plane + i)]; };
      std::array<double, 4> distance{};
      for (int side = 0; side < 4; ++side) {
        std::vector<double> bins(static_cast<std::size_t>(reg_max));
        double sum = 0.0;
        for (int b = 0; b < reg_max; ++b)
          sum += bins[static_cast<std::size_t>(b)] = std::exp(static_cast<double>(at(side * reg_max + b)));
        for (int b = 0; b < reg_max; ++b)
          distance[static_cast<std::size_t>(side)] += b * bins[static_cast<std::size_t>(b)] / sum;
      }
      const double ax = i % width + 0.5, ay = i / width + 0.5;
      const double x1 = ax - distance[0], y1 = ay - distance[1], x2 = ax + distance[2], y2 = ay + distance[3];
      auto put = [&](int row, double value) {
        output[static_cast<std::size_t>(row * count + anchor)] = static_cast<float>(value);
      };
      put(0, (x1 + x2) / 2 * stride);
      put(1, (y1 + y2) / 2 * stride);
      put(2, (x2 - x1) * stride);
      put(3, (y2 - y1) * stride);
      for (int c = 0; c < classes; ++c)
        put(4 + c, 1.0 / (1.0 + std::exp(-static_cast<double>(at(4 * reg_max + c)))));
    }
  }
  return output;
}

// Seeded differential test: random head logits through the raw (cut) decoder, and through the plain decode
// of the full graph's output plus its decoder, in both layouts and with per-class thresholds.
TEST(Yolov8RawDecoder, MatchesTheFullGraphDecodeOnRandomLogits) {
  constexpr int kRegMax = 16, kClasses = 7;
  const std::vector<std::array<int, 3>> grids = {{12, 10, 8}, {6, 5, 16}, {3, 3, 32}};
  for (const unsigned seed : {1u, 2u, 3u, 4u}) {
    std::mt19937 random(seed);
    std::normal_distribution<float> box_logit(0.0f, 2.0f);
    std::normal_distribution<float> class_logit(-4.0f, 2.5f);
    std::vector<std::vector<float>> levels;
    std::vector<std::vector<float>> channels_last;
    for (const auto& [height, width, stride] : grids) {
      const int plane = height * width, channels = 4 * kRegMax + kClasses;
      std::vector<float> level(static_cast<std::size_t>(channels * plane));
      for (int c = 0; c < channels; ++c)
        for (int i = 0; i < plane; ++i)
          level[static_cast<std::size_t>(c * plane + i)] =
              c < 4 * kRegMax ? box_logit(random) : class_logit(random);
      std::vector<float> transposed(level.size());
      for (int c = 0; c < channels; ++c)
        for (int i = 0; i < plane; ++i)
          transposed[static_cast<std::size_t>(i * channels + c)] =
              level[static_cast<std::size_t>(c * plane + i)];
      levels.push_back(std::move(level));
      channels_last.push_back(std::move(transposed));
    }
    const auto full = yolov8_full_output_reference(levels, grids, kRegMax, kClasses);
    ScoreThresholds thresholds;
    thresholds.conf_threshold = 0.2f;
    if (seed % 2 == 0) thresholds.per_class = {0.5f, 0.1f, 0.3f};  // the others keep 0.2
    std::vector<Detection> expected;
    std::vector<float> scratch;
    decode_yolov8_full(full.data(), static_cast<std::int64_t>(full.size() / (4 + kClasses)), kClasses,
                       thresholds, expected, scratch);
    ASSERT_GT(expected.size(), 10u) << "seed " << seed << ": too few candidates to compare";
    for (const bool nhwc : {false, true}) {
      std::vector<DflHeadLevel> heads;
      for (std::size_t l = 0; l < grids.size(); ++l)
        heads.push_back({(nhwc ? channels_last : levels)[l].data(), grids[l][0], grids[l][1],
                         static_cast<float>(grids[l][2]), nhwc});
      std::vector<Detection> got;
      decode_yolov8_raw(heads, kClasses, kRegMax, thresholds, got);
      test::expect_same_detections(got, expected, fmt::format("seed {} {}", seed, nhwc ? "nhwc" : "nchw"));
    }
  }
}

TEST(Yolov8RawDecoder, OneCellWithAPeakedDistributionGivesItsBox) {
  // 2 classes, reg_max 4; one cell at (x=1, y=0) of a 1x2 stride-8 grid: sides peaked at bins 1, 2, 3, 0.
  constexpr int kRegMax = 4;
  std::vector<float> cell(4 * kRegMax + 2, -30.0f);
  const int peak[4] = {1, 2, 3, 0};
  for (int side = 0; side < 4; ++side) cell[static_cast<std::size_t>(side * kRegMax + peak[side])] = 30.0f;
  cell[4 * kRegMax + 1] = logit(0.9f);
  std::vector<float> data(2 * cell.size(), -30.0f);
  std::copy(cell.begin(), cell.end(), data.begin() + static_cast<std::ptrdiff_t>(cell.size()));
  const DflHeadLevel levels[] = {{data.data(), 1, 2, 8.0f, true}};
  std::vector<Detection> out;
  decode_yolov8_raw(levels, 2, kRegMax, {}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].class_id, 1);
  EXPECT_NEAR(out[0].score, 0.9f, 1e-5);
  EXPECT_NEAR(out[0].x1, (1.5f - 1) * 8, 1e-3);
  EXPECT_NEAR(out[0].y1, (0.5f - 2) * 8, 1e-3);
  EXPECT_NEAR(out[0].x2, (1.5f + 3) * 8, 1e-3);
  EXPECT_NEAR(out[0].y2, (0.5f + 0) * 8, 1e-3);
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
