#pragma once
// The model compiler's entry points: ONNX file -> ir::Network (one stage per batch size), ready for
// ir::write_package. See docs/compiler.md for lowering rules, passes and the metadata contract.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.hpp"

namespace vapipe::compiler {

struct CompileOptions {
  std::string onnx_path;
  std::string name;                               // network name; default: file stem
  std::vector<std::int64_t> batches{1};           // one stage per batch size
  bool dynamic_shape = false;                     // stored in ir::Network::dynamic_shape
  std::optional<std::pair<int, int>> input_size;  // W x H override of the export's spatial size
  std::string model_type = "auto";                // yolov5 | yolov8 | yolofastestv2 | raw | auto
  bool full_graph = false;                        // false: YOLO graphs are cut at the raw head
  bool optimize = true;                           // false: lowered graph only, no fusion passes
  bool show_progress = false;
};

// Compiles every stage and fills the metadata. Throws vapipe::Error naming the file and node.
ir::Network compile_onnx(const CompileOptions& options);

// One stage's graph: lowered, shapes folded, dead code removed, cut when the options ask for it; not fused.
ir::Graph import_onnx_graph(const CompileOptions& options, std::int64_t batch);

}  // namespace vapipe::compiler
