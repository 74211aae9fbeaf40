#pragma once
// The model compiler's entry points: ONNX file -> ir::Network (one stage per batch size), ready for
// ir::write_package. See docs/compiler.md for lowering rules, passes and the metadata contract.
#include <cstddef>
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

  // Reduced precision (docs/compiler.md, "Precision"). "auto": int8 when the CPU has VNNI and calibration
  // data is given or the file is statically pre-quantized, else bf16 when the CPU has native bf16, else f32.
  // int8 on a statically pre-quantized file uses the file's own scales (docs/compiler.md, "Pre-quantized
  // ONNX"). Empty, the default: f32, except that a statically pre-quantized file runs int8 on its own integers
  // where the CPU has native int8 (VNNI: there the result equals ONNX Runtime's); without, it runs as written.
  std::string precision;                // f32 | int8 | bf16 | auto | (empty)
  std::string calib_images;             // int8: folder of calibration images
  std::size_t calib_count = 0;          // the first N images by name; 0 = all
  std::string calib_method = "kl";      // kl | max | percentile
  double percentile = 99.99;            // for calib_method percentile
  std::vector<std::string> keep_float;  // node names kept f32
  bool int8_head = false;               // int8: quantize the convolutions writing graph outputs too
  double int8_tolerance = 0.0;  // int8: keep float the convolutions whose output cosine to FP32 is below it
  std::string calib_table_in;   // an existing table: calibration is skipped
  std::string calib_table_out;  // where the table made by calibration is written (may be empty)
  int threads = 0;              // calibration runtime threads; 0 = every core
};

// The precision `auto` (or the default) resolves to on this CPU for this file (see
// CompileOptions::precision); others are returned as given.
std::string resolve_precision(const CompileOptions& options);

// Compiles every stage and fills the metadata. Throws vapipe::Error naming the file and node.
ir::Network compile_onnx(const CompileOptions& options);

// One stage's graph: lowered, shapes folded, dead code removed, cut when the options ask for it (a cut
// yolov5 gets compile_onnx's channels-last head outputs); not fused.
ir::Graph import_onnx_graph(const CompileOptions& options, std::int64_t batch);

}  // namespace vapipe::compiler
