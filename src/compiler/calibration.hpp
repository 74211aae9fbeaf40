#pragma once
// Post-training calibration of activation ranges for int8 (docs/compiler.md, "INT8 calibration"):
// per-tensor histograms of |x|, thresholds by KL divergence (TensorRT's entropy calibration), MAX or a
// percentile, and the text calibration table that stores them for reuse.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "compiler/precision.hpp"

namespace vapipe::compiler {

enum class CalibrationMethod : std::uint8_t { kKl, kMax, kPercentile };

CalibrationMethod calibration_method_from_name(const std::string& name);  // kl | max | percentile
std::string calibration_method_name(CalibrationMethod method);

inline constexpr std::size_t kHistogramBins = 2048;

// |x| histogram over [0, range) in kHistogramBins bins; values at or beyond the range land in the last bin.
struct Histogram {
  float range = 0.0F;
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(kHistogramBins, 0);

  void add(std::span<const float> values);
  float bin_width() const { return range / static_cast<float>(kHistogramBins); }
};

// The threshold that minimizes KL(P || Q) between the clipped reference distribution P (the first i bins,
// outliers folded into bin i-1) and its quantization Q onto 128 levels, over i = 128..bins; returned as the
// upper edge of the chosen bin range. An empty histogram returns its range.
float kl_threshold(const Histogram& histogram);

// The upper edge of the bin where the cumulative share of |x| reaches `percentile` (0..100].
float percentile_threshold(const Histogram& histogram, double percentile);

// Observations of one activation over the calibration images: extremes, then (second pass) the histogram.
struct TensorStats {
  float min = 0.0F;
  float max = 0.0F;
  bool seen = false;
  Histogram histogram;

  void add_range(std::span<const float> values);
  float abs_max() const { return std::max(-min, max); }
};

// Thresholds for every tensor by the method: kMax max|x|; kPercentile the percentile of |x|; kKl the KL
// threshold, but never below the percentile (see calibration.cpp for why).
std::map<std::string, TensorRange> thresholds_from_stats(const std::map<std::string, TensorStats>& stats,
                                                         CalibrationMethod method, double percentile);

struct CalibrationTable {
  CalibrationMethod method = CalibrationMethod::kKl;
  double percentile = 99.99;
  std::size_t images = 0;
  std::map<std::string, TensorRange> ranges;
};

// Text format, one record per line (docs/compiler.md): a header "vapipe-calibration 1", "method M",
// "percentile P", "images N", then "tensor NAME THRESHOLD MIN MAX" per tensor. '#' starts a comment.
void write_calibration_table(const CalibrationTable& table, const std::string& path);
// Throws vapipe::Error naming the file and line for anything malformed.
CalibrationTable read_calibration_table(const std::string& path);

}  // namespace vapipe::compiler
