#include <algorithm>

#include "models/detection.hpp"

namespace vapipe::models {

float ScoreThresholds::min_score() const {
  if (per_class.empty()) return conf_threshold;
  // Classes beyond per_class use conf_threshold; we do not know num_classes here, so include it.
  return std::min(conf_threshold, *std::min_element(per_class.begin(), per_class.end()));
}

float ScoreThresholds::objectness_floor() const { return std::max(obj_threshold, min_score()); }

}  // namespace vapipe::models
