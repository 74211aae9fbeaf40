#pragma once
// COCO-style average precision of detections against ground truth, used by `vapipe compare` to score a
// reduced-precision model's detections against the FP32 model's (taken as ground truth).
#include <span>
#include <vector>

#include "models/detection.hpp"

namespace vapipe::models {

// Intersection over union of two corner boxes (0 when either is empty).
float box_iou(const Detection& a, const Detection& b);

// mAP over the classes that have ground truth, at one IoU threshold, COCO rules: per class, predictions of
// all images sorted by score (descending, stable) are matched greedily to the unmatched ground truth box of
// the same image and class with the highest IoU >= iou_threshold; AP is the 101-point interpolated area under
// the precision envelope. ground_truth[i] and predictions[i] belong to image i. Returns 1 when no image has
// ground truth and there are no predictions, 0 when there are predictions but no ground truth.
double mean_average_precision(std::span<const std::vector<Detection>> ground_truth,
                              std::span<const std::vector<Detection>> predictions, float iou_threshold);

// The COCO summary: mean of mean_average_precision at IoU 0.50, 0.55, ..., 0.95.
double mean_average_precision_50_95(std::span<const std::vector<Detection>> ground_truth,
                                    std::span<const std::vector<Detection>> predictions);

}  // namespace vapipe::models
