#include "models/nms.hpp"

#include <random>

#include <gtest/gtest.h>

namespace vapipe::models {
namespace {

bool same(const Detection& a, const Detection& b) {
  return a.class_id == b.class_id && a.score == b.score && a.x1 == b.x1 && a.y1 == b.y1 && a.x2 == b.x2 &&
         a.y2 == b.y2;
}

TEST(Nms, SuppressesOverlapsWithinAClassOnly) {
  std::vector<Detection> d = {
      {0, 0.9f, 0, 0, 100, 100},      // kept
      {0, 0.8f, 5, 5, 105, 105},      // IoU 0.82 with the first: suppressed
      {1, 0.7f, 5, 5, 105, 105},      // other class: kept
      {0, 0.6f, 200, 200, 300, 300},  // no overlap: kept
  };
  nms(d, {0.45f, 100});
  ASSERT_EQ(d.size(), 3u);
  EXPECT_FLOAT_EQ(d[0].score, 0.9f);
  EXPECT_EQ(d[1].class_id, 1);
  EXPECT_FLOAT_EQ(d[2].score, 0.6f);
}

TEST(Nms, IouExactlyAtTheThresholdIsKept) {
  // Two 10x10 boxes sharing half: inter 50, union 150, IoU 1/3; threshold 0.5 keeps, 0.3 suppresses.
  std::vector<Detection> d = {{0, 0.9f, 0, 0, 10, 10}, {0, 0.8f, 5, 0, 15, 10}};
  auto copy = d;
  nms(copy, {0.5f, 10});
  EXPECT_EQ(copy.size(), 2u);
  nms(d, {0.3f, 10});
  EXPECT_EQ(d.size(), 1u);
}

TEST(Nms, MaxDetectionsKeepsTheHighestScores) {
  std::vector<Detection> d;
  for (int i = 0; i < 10; ++i)
    d.push_back({i % 3, 0.1f * static_cast<float>(i), 20.0f * i, 0, 20.0f * i + 10, 10});
  nms(d, {0.45f, 4});
  ASSERT_EQ(d.size(), 4u);
  EXPECT_FLOAT_EQ(d[0].score, 0.9f);
  EXPECT_FLOAT_EQ(d[3].score, 0.6f);
}

// Optimized vs. reference on many seeded random sets: identical output (same boxes, same order).
TEST(Nms, MatchesTheReferenceOnRandomSets) {
  std::mt19937 rng(12345);
  NmsScratch scratch;  // reused across calls, as a worker does
  for (int trial = 0; trial < 400; ++trial) {
    const int count = std::uniform_int_distribution<int>(0, trial % 10 == 0 ? 3000 : 300)(rng);
    const int classes = std::uniform_int_distribution<int>(1, 12)(rng);
    const float extent = std::uniform_real_distribution<float>(50.0f, 1000.0f)(rng);
    std::uniform_real_distribution<float> position(0.0f, extent);
    std::uniform_real_distribution<float> size(0.0f, 120.0f);
    // Coarse scores so ties happen and the tie-breaking order is tested too.
    std::uniform_int_distribution<int> score(1, 20);
    std::vector<Detection> boxes;
    for (int i = 0; i < count; ++i) {
      const float x = position(rng), y = position(rng);
      const float w = trial % 17 == 0 ? 0.0f : size(rng);  // degenerate boxes sometimes
      boxes.push_back({std::uniform_int_distribution<int>(0, classes - 1)(rng),
                       0.05f * static_cast<float>(score(rng)), x, y, x + w, y + size(rng)});
    }
    const NmsOptions options{std::uniform_real_distribution<float>(0.1f, 0.9f)(rng),
                             static_cast<std::size_t>(std::uniform_int_distribution<int>(1, 400)(rng))};
    auto fast = boxes;
    auto reference = boxes;
    nms(fast, options, scratch);
    nms_reference(reference, options);
    ASSERT_EQ(fast.size(), reference.size()) << "trial " << trial;
    for (std::size_t i = 0; i < fast.size(); ++i)
      ASSERT_TRUE(same(fast[i], reference[i])) << "trial " << trial << " #" << i;
  }
}

}  // namespace
}  // namespace vapipe::models
