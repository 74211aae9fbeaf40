#include "compiler/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "core/error.hpp"

namespace vapipe::compiler {

CalibrationMethod calibration_method_from_name(const std::string& name) {
  if (name == "kl") return CalibrationMethod::kKl;
  if (name == "max") return CalibrationMethod::kMax;
  if (name == "percentile") return CalibrationMethod::kPercentile;
  fail("calibration method '{}' is unknown (expected kl, max or percentile)", name);
}

std::string calibration_method_name(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kKl:
      return "kl";
    case CalibrationMethod::kMax:
      return "max";
    case CalibrationMethod::kPercentile:
      return "percentile";
  }
  return "kl";
}

void Histogram::add(std::span<const float> values) {
  if (!(range > 0.0F)) return;
  const float scale = static_cast<float>(kHistogramBins) / range;
  for (float v : values) {
    const auto bin =
        static_cast<std::size_t>(std::min(std::fabs(v) * scale, static_cast<float>(kHistogramBins - 1)));
    ++counts[bin];
  }
}

void TensorStats::add_range(std::span<const float> values) {
  if (values.empty()) return;
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  min = seen ? std::min(min, *low) : *low;
  max = seen ? std::max(max, *high) : *high;
  seen = true;
}

namespace {

// Zero bins of a distribution get eps and the non-zero ones give it up, so KL stays finite (as MXNet's
// _smooth_distribution).
bool smooth(std::vector<double>& distribution) {
  constexpr double kEps = 1e-4;
  std::size_t zeros = 0;
  for (double v : distribution) zeros += v == 0.0 ? 1 : 0;
  const std::size_t nonzeros = distribution.size() - zeros;
  if (nonzeros == 0) return false;
  const double taken = kEps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& v : distribution) v += v == 0.0 ? kEps : -taken;
  return true;
}

}  // namespace

float kl_threshold(const Histogram& histogram) {
  constexpr std::size_t kLevels = 128;
  const auto& hist = histogram.counts;
  const std::size_t bins = hist.size();
  std::uint64_t total = 0;
  for (auto c : hist) total += c;
  if (total == 0 || !(histogram.range > 0.0F)) return histogram.range;
  double best_divergence = std::numeric_limits<double>::infinity();
  std::size_t best_bins = bins;
  std::vector<double> p, q;
  std::uint64_t outliers = total;
  for (std::size_t i = 0; i < kLevels; ++i) outliers -= hist[i];
  for (std::size_t i = kLevels; i <= bins; ++i) {
    // Reference: the first i bins, everything beyond folded into the last of them.
    p.assign(hist.begin(), hist.begin() + static_cast<std::ptrdiff_t>(i));
    p.back() += static_cast<double>(outliers);
    if (i < bins) outliers -= hist[i];
    // Candidate: the same i bins merged into kLevels levels, each level spread back over its non-zero bins.
    q.assign(i, 0.0);
    const double merged = static_cast<double>(i) / static_cast<double>(kLevels);
    for (std::size_t level = 0; level < kLevels; ++level) {
      const auto start = static_cast<std::size_t>(std::floor(static_cast<double>(level) * merged));
      const auto stop = level + 1 == kLevels
                            ? i
                            : static_cast<std::size_t>(std::floor(static_cast<double>(level + 1) * merged));
      double sum = 0.0;
      std::size_t nonzero = 0;
      for (std::size_t k = start; k < stop; ++k) {
        sum += static_cast<double>(hist[k]);
        nonzero += hist[k] != 0 ? 1 : 0;
      }
      if (nonzero == 0) continue;
      for (std::size_t k = start; k < stop; ++k) {
        if (hist[k] != 0) q[k] = sum / static_cast<double>(nonzero);
      }
    }
    double p_sum = 0.0, q_sum = 0.0;
    for (std::size_t k = 0; k < i; ++k) {
      p_sum += p[k];
      q_sum += q[k];
    }
    if (p_sum == 0.0 || q_sum == 0.0) continue;
    for (std::size_t k = 0; k < i; ++k) {
      p[k] /= p_sum;
      q[k] /= q_sum;
    }
    if (!smooth(p) || !smooth(q)) continue;
    double divergence = 0.0;
    for (std::size_t k = 0; k < i; ++k) {
      if (p[k] > 0.0 && q[k] > 0.0) divergence += p[k] * std::log(p[k] / q[k]);
    }
    if (divergence < best_divergence) {
      best_divergence = divergence;
      best_bins = i;
    }
  }
  return static_cast<float>(best_bins) * histogram.bin_width();
}

float percentile_threshold(const Histogram& histogram, double percentile) {
  if (!(percentile > 0.0 && percentile <= 100.0)) fail("percentile {} is outside (0, 100]", percentile);
  std::uint64_t total = 0;
  for (auto c : histogram.counts) total += c;
  if (total == 0) return histogram.range;
  const double wanted = percentile / 100.0 * static_cast<double>(total);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < histogram.counts.size(); ++i) {
    cumulative += histogram.counts[i];
    if (static_cast<double>(cumulative) >= wanted) return static_cast<float>(i + 1) * histogram.bin_width();
  }
  return histogram.range;
}

std::map<std::string, TensorRange> thresholds_from_stats(const std::map<std::string, TensorStats>& stats,
                                                         CalibrationMethod method, double percentile) {
  std::map<std::string, TensorRange> ranges;
  for (const auto& [name, s] : stats) {
    if (!s.seen) continue;
    TensorRange range;
    range.min = s.min;
    range.max = s.max;
    switch (method) {
      case CalibrationMethod::kMax:
        range.threshold = s.abs_max();
        break;
      case CalibrationMethod::kKl:
        // Entropy alone clipped SiLU outputs of YOLOv5n to as little as 1/12 of their range (mass near 0
        // from the negative lobe), detection mAP@0.5 0.55; floored at the percentile it never saturates
        // more than (100 - percentile) % of the values (docs/compiler.md, measured in performance.md).
        range.threshold = std::max(kl_threshold(s.histogram), percentile_threshold(s.histogram, percentile));
        break;
      case CalibrationMethod::kPercentile:
        range.threshold = percentile_threshold(s.histogram, percentile);
        break;
    }
    range.threshold = std::min(range.threshold, s.abs_max());
    ranges[name] = range;
  }
  return ranges;
}

void write_calibration_table(const CalibrationTable& table, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) fail("calibration table '{}': cannot open for writing", path);
  out << "# vapipe int8 calibration table: tensor NAME THRESHOLD MIN MAX (|x| > THRESHOLD saturates)\n";
  out << "vapipe-calibration 1\n";
  out << "method " << calibration_method_name(table.method) << "\n";
  out << fmt::format("percentile {:.9g}\n", table.percentile);
  out << "images " << table.images << "\n";
  for (const auto& [name, range] : table.ranges) {
    if (name.find_first_of(" \t\r\n") != std::string::npos)
      fail("calibration table: tensor name '{}' contains white space", name);
    out << fmt::format("tensor {} {:.9g} {:.9g} {:.9g}\n", name, range.threshold, range.min, range.max);
  }
  if (!out.flush()) fail("calibration table '{}': write failed", path);
}

CalibrationTable read_calibration_table(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("calibration table '{}': cannot open", path);
  CalibrationTable table;
  std::string line;
  std::size_t number = 0;
  bool header = false;
  bool has_method = false;
  const auto bad = [&](const std::string& why) -> void {
    fail("calibration table '{}' line {}: {} (corrupt table? delete it to calibrate again)", path, number,
         why);
  };
  const auto parse_number = [&](const std::string& text, const char* what) {
    std::size_t used = 0;
    double value = 0.0;
    try {
      value = std::stod(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || !std::isfinite(value)) bad(fmt::format("{} '{}' is not a number", what, text));
    return value;
  };
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string word; words >> word;) fields.push_back(word);
    if (fields.empty()) continue;
    const std::string& key = fields[0];
    if (!header) {
      if (fields.size() != 2 || key != "vapipe-calibration" || fields[1] != "1")
        bad("expected the header 'vapipe-calibration 1'");
      header = true;
    } else if (key == "method" && fields.size() == 2) {
      try {
        table.method = calibration_method_from_name(fields[1]);
      } catch (const Error& error) {
        bad(error.what());
      }
      has_method = true;
    } else if (key == "percentile" && fields.size() == 2) {
      table.percentile = parse_number(fields[1], "percentile");
    } else if (key == "images" && fields.size() == 2) {
      table.images = static_cast<std::size_t>(parse_number(fields[1], "image count"));
    } else if (key == "tensor" && fields.size() == 5) {
      TensorRange range;
      range.threshold = static_cast<float>(parse_number(fields[2], "threshold"));
      range.min = static_cast<float>(parse_number(fields[3], "min"));
      range.max = static_cast<float>(parse_number(fields[4], "max"));
      if (range.threshold < 0.0F || range.min > range.max) bad("threshold must be >= 0 and min <= max");
      if (!table.ranges.emplace(fields[1], range).second)
        bad(fmt::format("tensor '{}' is listed twice", fields[1]));
    } else {
      bad(fmt::format("unexpected record '{}'", line.substr(0, 80)));
    }
  }
  if (!header) fail("calibration table '{}' is empty or not a vapipe calibration table", path);
  if (!has_method) fail("calibration table '{}' has no 'method' line (corrupt table?)", path);
  if (table.ranges.empty()) fail("calibration table '{}' lists no tensors (corrupt table?)", path);
  return table;
}

}  // namespace vapipe::compiler
