#pragma once
// The post-processing contract stored in ir::Network::metadata (schema in docs/compiler.md).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/onnx_model.hpp"
#include "core/graph.hpp"

namespace vapipe::compiler {

// "yolov5" | "yolov8" | "yolofastestv2" | "raw" from the output shape and graph patterns.
std::string detect_model_type(const OnnxModel& model, const Shape& output_shape);

// Parses the Ultralytics `names` metadata value (a Python dict or list literal) into class names.
std::vector<std::string> parse_class_names(const std::string& literal);

// Builds the metadata for a compiled stage graph (`cut`: the graph ends at the raw head).
nlohmann::json build_metadata(const OnnxModel& model, const std::string& model_type, bool cut,
                              const ir::Graph& graph);

}  // namespace vapipe::compiler
