// COCO-style AP on hand-made cases whose values can be worked out on paper.
#include "models/average_precision.hpp"

#include <gtest/gtest.h>

namespace vapipe::models {
namespace {

Detection box(int class_id, float score, float x1, float y1, float x2, float y2) {
  return {class_id, score, x1, y1, x2, y2, -1};
}

using Images = std::vector<std::vector<Detection>>;

TEST(AveragePrecision, IdenticalDetectionsScoreOne) {
  const Images truth = {{box(0, 0.9F, 0, 0, 10, 10), box(1, 0.8F, 20, 20, 40, 50)},
                        {box(0, 0.7F, 5, 5, 9, 9)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, truth, 0.5F), 1.0);
  EXPECT_DOUBLE_EQ(mean_average_precision_50_95(truth, truth), 1.0);
}

TEST(AveragePrecision, MissesFalsePositivesAndDuplicates) {
  const Images truth = {{box(0, 1, 0, 0, 10, 10)}};
  // Nothing predicted: AP 0.
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, Images{{}}, 0.5F), 0.0);
  // A false positive ranked above the hit: precision 1/2 at recall 1 -> AP 0.5 at every recall point.
  const Images fp_first = {{box(0, 0.9F, 50, 50, 60, 60), box(0, 0.8F, 0, 0, 10, 10)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, fp_first, 0.5F), 0.5);
  // Ranked below the hit it costs nothing (the envelope keeps precision 1 up to recall 1).
  const Images fp_last = {{box(0, 0.9F, 0, 0, 10, 10), box(0, 0.8F, 50, 50, 60, 60)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, fp_last, 0.5F), 1.0);
  // A duplicate of a matched box is a false positive; the wrong class never matches.
  const Images duplicate = {{box(0, 0.9F, 0, 0, 10, 10), box(0, 0.8F, 0, 0, 10, 10)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, duplicate, 0.5F), 1.0);
  const Images wrong_class = {{box(3, 0.9F, 0, 0, 10, 10)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, wrong_class, 0.5F), 0.0);
}

TEST(AveragePrecision, HalfRecallAndPerClassMean) {
  // Two truths, one found: precision 1 up to recall 0.5 -> 51 of the 101 recall points.
  const Images truth = {{box(0, 1, 0, 0, 10, 10), box(0, 1, 100, 100, 110, 110)}};
  const Images found = {{box(0, 0.9F, 0, 0, 10, 10)}};
  EXPECT_NEAR(mean_average_precision(truth, found, 0.5F), 51.0 / 101.0, 1e-12);
  // Classes are averaged: class 0 perfect, class 1 missed -> 0.5.
  const Images two_classes = {{box(0, 1, 0, 0, 10, 10), box(1, 1, 100, 100, 110, 110)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(two_classes, found, 0.5F), 0.5);
}

TEST(AveragePrecision, IouThresholds) {
  EXPECT_FLOAT_EQ(box_iou(box(0, 1, 0, 0, 10, 10), box(0, 1, 0, 0, 10, 7.2F)), 0.72F);
  EXPECT_FLOAT_EQ(box_iou(box(0, 1, 0, 0, 10, 10), box(0, 1, 20, 20, 30, 30)), 0.0F);
  const Images truth = {{box(0, 1, 0, 0, 10, 10)}};
  const Images shifted = {{box(0, 0.9F, 0, 0, 10, 7.2F)}};  // IoU 0.72
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, shifted, 0.5F), 1.0);
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, shifted, 0.75F), 0.0);
  // Matches at 0.50, 0.55, 0.60, 0.65, 0.70 of the ten COCO thresholds.
  EXPECT_DOUBLE_EQ(mean_average_precision_50_95(truth, shifted), 0.5);
}

TEST(AveragePrecision, GreedyMatchTakesTheBestUnmatchedTruth) {
  // Two overlapping truths; the top prediction overlaps the second better and must take it, leaving the
  // first for the next prediction.
  const Images truth = {{box(0, 1, 0, 0, 10, 10), box(0, 1, 2, 0, 12, 10)}};
  const Images predicted = {{box(0, 0.9F, 2, 0, 12, 10), box(0, 0.8F, 0, 0, 10, 10)}};
  EXPECT_DOUBLE_EQ(mean_average_precision(truth, predicted, 0.7F), 1.0);
  // No truth anywhere: 1 without predictions, 0 with some.
  EXPECT_DOUBLE_EQ(mean_average_precision(Images{{}}, Images{{}}, 0.5F), 1.0);
  EXPECT_DOUBLE_EQ(mean_average_precision(Images{{}}, predicted, 0.5F), 0.0);
}

}  // namespace
}  // namespace vapipe::models
