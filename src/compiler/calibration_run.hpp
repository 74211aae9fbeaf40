#pragma once
// Runs calibration images through a network's own preprocessing (vision's fused letterbox) and the FP32
// runtime, observing every activation, and turns the observations into a calibration table.
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/calibration.hpp"
#include "core/graph.hpp"

namespace vapipe::compiler {

struct CalibrationOptions {
  std::string images_dir;
  std::size_t count = 0;  // the first `count` images by file name; 0 = all
  CalibrationMethod method = CalibrationMethod::kKl;
  double percentile = 99.99;
  int threads = 0;  // runtime threads; 0 = every core
  bool show_progress = false;
};

// `graph`: a batch-1 FP32 graph with one image input [1, 3, H, W]; `metadata`: the network's (for the
// preprocessing). Deterministic: the same images, order and thread count give the same table.
CalibrationTable calibrate(const ir::Graph& graph, const nlohmann::json& metadata,
                           const CalibrationOptions& options);

// The int8 convolutions of `int8` (the same batch-1 graph after apply_precision) whose output's cosine
// similarity to `fp32`'s, over `images`, is below `min_cosine` (--int8-tolerance): the layers to keep float.
std::vector<std::string> sensitive_layers(const ir::Graph& fp32, const ir::Graph& int8,
                                          const nlohmann::json& metadata,
                                          const std::vector<std::string>& images, double min_cosine,
                                          int threads);

}  // namespace vapipe::compiler
