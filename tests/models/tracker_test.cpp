#include "models/tracker.hpp"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "models/linear_assignment.hpp"

namespace vapipe::models {
namespace {

Detection box(float cx, float cy, float w, float h, int class_id = 0) {
  Detection d;
  d.class_id = class_id;
  d.score = 0.9f;
  d.x1 = cx - w / 2;
  d.y1 = cy - h / 2;
  d.x2 = cx + w / 2;
  d.y2 = cy + h / 2;
  return d;
}

// ---- assignment ----

TEST(LinearAssignment, SolvesAKnownSquareProblem) {
  const std::vector<double> cost = {4, 1, 3,  //
                                    2, 0, 5,  //
                                    3, 2, 2};
  std::vector<int> row_to_col;
  EXPECT_DOUBLE_EQ(solve_assignment(cost, 3, 3, row_to_col), 5.0);
  EXPECT_EQ(row_to_col, (std::vector<int>{1, 0, 2}));
}

TEST(LinearAssignment, RectangularLeavesTheExtraSideUnassigned) {
  const std::vector<double> wide = {9, 1, 9, 9,  //
                                    1, 9, 9, 9};
  std::vector<int> row_to_col;
  EXPECT_DOUBLE_EQ(solve_assignment(wide, 2, 4, row_to_col), 2.0);
  EXPECT_EQ(row_to_col, (std::vector<int>{1, 0}));
  const std::vector<double> tall = {9, 9,  //
                                    9, 1,  //
                                    1, 9};
  EXPECT_DOUBLE_EQ(solve_assignment(tall, 3, 2, row_to_col), 2.0);
  EXPECT_EQ(row_to_col, (std::vector<int>{-1, 1, 0}));
  EXPECT_DOUBLE_EQ(solve_assignment({}, 0, 5, row_to_col), 0.0);
  EXPECT_TRUE(row_to_col.empty());
  EXPECT_DOUBLE_EQ(solve_assignment({}, 3, 0, row_to_col), 0.0);
  EXPECT_EQ(row_to_col, (std::vector<int>{-1, -1, -1}));
}

TEST(LinearAssignment, RejectsMismatchedShape) {
  std::vector<int> row_to_col;
  EXPECT_THROW(solve_assignment(std::vector<double>(5), 2, 3, row_to_col), Error);
}

// Differential test against exhaustive search: 2000 seeded random matrices up to 6 x 6, with ties (small
// integer costs) and the tracker's "forbidden" magnitude mixed in.
TEST(LinearAssignment, MatchesExhaustiveSearch) {
  std::mt19937 rng(1234);
  AssignmentScratch scratch;
  for (int trial = 0; trial < 2000; ++trial) {
    const int rows = std::uniform_int_distribution<int>(0, 6)(rng);
    const int cols = std::uniform_int_distribution<int>(0, 6)(rng);
    std::vector<double> cost(static_cast<std::size_t>(rows * cols));
    const int kind = trial % 3;
    for (auto& c : cost) {
      if (kind == 0) c = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      if (kind == 1) c = std::uniform_int_distribution<int>(0, 3)(rng);
      if (kind == 2)
        c = std::uniform_int_distribution<int>(0, 3)(rng) == 0
                ? 1e6
                : std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    }
    std::vector<int> fast, reference;
    const double fast_cost = solve_assignment(cost, rows, cols, fast, scratch);
    const double reference_cost = solve_assignment_reference(cost, rows, cols, reference);
    ASSERT_NEAR(fast_cost, reference_cost, 1e-9 * std::max(1.0, reference_cost)) << "trial " << trial;
    // The fast answer is a valid assignment of min(rows, cols) pairs.
    std::vector<int> column_used(static_cast<std::size_t>(cols), 0);
    int pairs = 0;
    for (int c : fast) {
      if (c < 0) continue;
      ASSERT_LT(c, cols);
      ASSERT_EQ(column_used[static_cast<std::size_t>(c)]++, 0);
      ++pairs;
    }
    ASSERT_EQ(pairs, std::min(rows, cols));
  }
}

// ---- tracker ----

TEST(Tracker, RejectsBadOptions) {
  EXPECT_THROW(Tracker(TrackerOptions{-1, 3, 0.3f}), Error);
  EXPECT_THROW(Tracker(TrackerOptions{30, 0, 0.3f}), Error);
  EXPECT_THROW(Tracker(TrackerOptions{30, 3, 1.5f}), Error);
}

TEST(Tracker, ConfirmsAfterNInitHits) {
  Tracker tracker(TrackerOptions{30, 3, 0.3f});
  for (int frame = 0; frame < 5; ++frame) {
    std::vector<Detection> dets{box(100.0f + 2.0f * static_cast<float>(frame), 100, 40, 80)};
    tracker.update(dets);
    if (frame < 2) {
      EXPECT_EQ(dets[0].track_id, -1) << "frame " << frame;
    } else {
      EXPECT_EQ(dets[0].track_id, 1) << "frame " << frame;
    }
  }
  EXPECT_EQ(tracker.num_confirmed_tracks(), 1u);
}

TEST(Tracker, TwoLinearObjectsKeepTheirIdsFor30Frames) {
  Tracker tracker(TrackerOptions{30, 3, 0.3f});
  int id_a = -1, id_b = -1;
  for (int frame = 0; frame < 30; ++frame) {
    const auto f = static_cast<float>(frame);
    // Order in the detection list alternates: ids must follow the boxes, not the positions in the vector.
    std::vector<Detection> dets{box(100 + 5 * f, 200 + 1 * f, 50, 100),
                                box(600 - 4 * f, 150 + 3 * f, 60, 120)};
    if (frame % 2 == 1) std::swap(dets[0], dets[1]);
    tracker.update(dets);
    const int a = frame % 2 == 1 ? dets[1].track_id : dets[0].track_id;
    const int b = frame % 2 == 1 ? dets[0].track_id : dets[1].track_id;
    if (frame < 2) continue;
    if (frame == 2) {
      id_a = a;
      id_b = b;
      EXPECT_GT(id_a, 0);
      EXPECT_GT(id_b, 0);
      EXPECT_NE(id_a, id_b);
    }
    EXPECT_EQ(a, id_a) << "frame " << frame;
    EXPECT_EQ(b, id_b) << "frame " << frame;
  }
  EXPECT_EQ(tracker.num_tracks(), 2u);
}

// The object disappears for `gap` frames while moving at 6 px/frame, then comes back on its path.
int id_after_gap(int gap, int max_age) {
  Tracker tracker(TrackerOptions{max_age, 3, 0.3f});
  int first_id = -1;
  int frame = 0;
  auto step = [&](bool visible) {
    std::vector<Detection> dets;
    if (visible) dets.push_back(box(100.0f + 6.0f * static_cast<float>(frame), 300, 60, 120));
    tracker.update(dets);
    ++frame;
    return visible ? dets[0].track_id : -1;
  };
  for (int i = 0; i < 10; ++i) first_id = step(true);
  for (int i = 0; i < gap; ++i) step(false);
  int id = -1;
  for (int i = 0; i < 3; ++i) id = step(true);  // enough hits to confirm a new track too
  EXPECT_GT(first_id, 0);
  return id == first_id ? 0 : id;
}

TEST(Tracker, ShortGapKeepsTheId) {
  EXPECT_EQ(id_after_gap(4, 5), 0);
  EXPECT_EQ(id_after_gap(5, 5), 0);  // missing exactly max_age frames still keeps it
}

TEST(Tracker, GapLongerThanMaxAgeGivesANewId) {
  const int id = id_after_gap(6, 5);
  EXPECT_GT(id, 1);
}

TEST(Tracker, CrossingObjectsKeepTheirIds) {
  Tracker tracker(TrackerOptions{30, 3, 0.3f});
  int left_id = -1, right_id = -1;
  for (int frame = 0; frame < 40; ++frame) {
    const auto f = static_cast<float>(frame);
    // Two people walking towards each other on slightly different rows; they overlap around frame 20.
    std::vector<Detection> dets{box(100 + 10 * f, 300, 50, 120), box(500 - 10 * f, 320, 50, 120)};
    tracker.update(dets);
    if (frame == 3) {
      left_id = dets[0].track_id;
      right_id = dets[1].track_id;
      ASSERT_GT(left_id, 0);
      ASSERT_GT(right_id, 0);
    }
    if (frame >= 3) {
      EXPECT_EQ(dets[0].track_id, left_id) << "frame " << frame;
      EXPECT_EQ(dets[1].track_id, right_id) << "frame " << frame;
    }
  }
}

TEST(Tracker, MatchingIsClassAware) {
  Tracker tracker(TrackerOptions{30, 1, 0.3f});
  std::vector<Detection> first{box(100, 100, 50, 50, 0)};
  tracker.update(first);
  std::vector<Detection> second{box(100, 100, 50, 50, 1)};  // same place, other class
  tracker.update(second);
  EXPECT_NE(second[0].track_id, first[0].track_id);
  EXPECT_GT(second[0].track_id, 0);
}

TEST(Tracker, DeterministicForTheSameInput) {
  auto run = [] {
    std::mt19937 rng(7);
    Tracker tracker;
    std::vector<int> ids;
    for (int frame = 0; frame < 50; ++frame) {
      std::vector<Detection> dets;
      for (int k = 0; k < 8; ++k) {
        const float jitter = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
        if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) continue;  // random misses
        dets.push_back(box(60.0f * static_cast<float>(k) + 3.0f * static_cast<float>(frame) + jitter,
                           200.0f + jitter, 40, 90, k % 2));
      }
      tracker.update(dets);
      for (const auto& d : dets) ids.push_back(d.track_id);
    }
    return ids;
  };
  EXPECT_EQ(run(), run());
}

TEST(Tracker, ResetForgetsTracksButNotIds) {
  Tracker tracker(TrackerOptions{30, 1, 0.3f});
  std::vector<Detection> dets{box(100, 100, 50, 50)};
  tracker.update(dets);
  EXPECT_EQ(dets[0].track_id, 1);
  tracker.reset();
  EXPECT_EQ(tracker.num_tracks(), 0u);
  dets = {box(100, 100, 50, 50)};
  tracker.update(dets);
  EXPECT_EQ(dets[0].track_id, 2);
}

}  // namespace
}  // namespace vapipe::models
