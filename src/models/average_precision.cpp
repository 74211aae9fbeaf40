#include "models/average_precision.hpp"

#include <algorithm>
#include <map>
#include <numeric>

namespace vapipe::models {

float box_iou(const Detection& a, const Detection& b) {
  const float w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const float h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (w <= 0.0F || h <= 0.0F) return 0.0F;
  const float intersection = w * h;
  const float area_a = (a.x2 - a.x1) * (a.y2 - a.y1);
  const float area_b = (b.x2 - b.x1) * (b.y2 - b.y1);
  const float union_area = area_a + area_b - intersection;
  return union_area > 0.0F ? intersection / union_area : 0.0F;
}

namespace {

struct Prediction {
  float score;
  std::size_t image;
  std::size_t index;
};

double class_average_precision(std::span<const std::vector<Detection>> ground_truth,
                               std::span<const std::vector<Detection>> predictions, int class_id,
                               float iou_threshold, std::size_t truth_count) {
  std::vector<Prediction> order;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    for (std::size_t k = 0; k < predictions[i].size(); ++k) {
      if (predictions[i][k].class_id == class_id) order.push_back({predictions[i][k].score, i, k});
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.score > b.score; });
  std::vector<std::vector<bool>> matched(ground_truth.size());
  for (std::size_t i = 0; i < ground_truth.size(); ++i) matched[i].assign(ground_truth[i].size(), false);
  std::vector<double> precision, recall;
  std::size_t true_positives = 0;
  for (std::size_t rank = 0; rank < order.size(); ++rank) {
    const Detection& p = predictions[order[rank].image][order[rank].index];
    const auto& truths = ground_truth[order[rank].image];
    float best_iou = iou_threshold;
    std::ptrdiff_t best = -1;
    for (std::size_t g = 0; g < truths.size(); ++g) {
      if (truths[g].class_id != class_id || matched[order[rank].image][g]) continue;
      const float iou = box_iou(p, truths[g]);
      if (iou >= best_iou) {
        best_iou = iou;
        best = static_cast<std::ptrdiff_t>(g);
      }
    }
    if (best >= 0) {
      matched[order[rank].image][static_cast<std::size_t>(best)] = true;
      ++true_positives;
    }
    precision.push_back(static_cast<double>(true_positives) / static_cast<double>(rank + 1));
    recall.push_back(static_cast<double>(true_positives) / static_cast<double>(truth_count));
  }
  // Precision envelope (monotone non-increasing from the right), sampled at recall 0, 0.01, ..., 1.
  for (std::size_t i = precision.size(); i-- > 1;)
    precision[i - 1] = std::max(precision[i - 1], precision[i]);
  double sum = 0.0;
  for (int r = 0; r <= 100; ++r) {
    const double at = r / 100.0;
    const auto it = std::lower_bound(recall.begin(), recall.end(), at - 1e-12);
    if (it != recall.end()) sum += precision[static_cast<std::size_t>(it - recall.begin())];
  }
  return sum / 101.0;
}

}  // namespace

double mean_average_precision(std::span<const std::vector<Detection>> ground_truth,
                              std::span<const std::vector<Detection>> predictions, float iou_threshold) {
  std::map<int, std::size_t> truth_counts;
  for (const auto& image : ground_truth) {
    for (const auto& d : image) ++truth_counts[d.class_id];
  }
  if (truth_counts.empty()) {
    const bool any =
        std::any_of(predictions.begin(), predictions.end(), [](const auto& p) { return !p.empty(); });
    return any ? 0.0 : 1.0;
  }
  double sum = 0.0;
  for (const auto& [class_id, count] : truth_counts)
    sum += class_average_precision(ground_truth, predictions, class_id, iou_threshold, count);
  return sum / static_cast<double>(truth_counts.size());
}

double mean_average_precision_50_95(std::span<const std::vector<Detection>> ground_truth,
                                    std::span<const std::vector<Detection>> predictions) {
  double sum = 0.0;
  for (int step = 0; step < 10; ++step)
    sum += mean_average_precision(ground_truth, predictions, 0.5F + 0.05F * static_cast<float>(step));
  return sum / 10.0;
}

}  // namespace vapipe::models
