#pragma once
// ONNX Runtime as a test reference (tests/support/ort_run.mjs): the model file it can run and its raw outputs.
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiler/onnx_model.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace vapipe::test {

namespace fs = std::filesystem;

// The file ONNX Runtime runs: the model itself, or for an opset < 9 BatchNormalization with `spatial` 0 and
// per-channel [C] parameters (MXNet's exports, e.g. the pose model) a copy with spatial 1. ONNX's rule asks
// [C, H, W] parameters for spatial 0, so ORT refuses such a node ("Invalid input scale"); its [C] parameters
// say the export meant per channel, which is what vapipe computes and what ORT computes with spatial 1.
inline fs::path model_for_ort(const fs::path& model, const fs::path& dir) {
  compiler::OnnxModel onnx = compiler::load_onnx(model.string());
  bool patched = false;
  for (auto& node : *onnx.proto.mutable_graph()->mutable_node()) {
    if (node.op_type() != "BatchNormalization") continue;
    for (auto& attribute : *node.mutable_attribute()) {
      if (attribute.name() == "spatial" && attribute.i() == 0) {
        attribute.set_i(1);
        patched = true;
      }
    }
  }
  if (!patched) return model;
  const fs::path copy = dir / "spatial_batch_norm.onnx";
  std::ofstream out(copy, std::ios::binary);
  if (!onnx.proto.SerializeToOstream(&out)) fail("cannot write {}", copy.string());
  std::cout << model.filename().string() << ": ORT runs a copy with BatchNormalization spatial = 1\n";
  return copy;
}

inline std::vector<float> read_floats(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

constexpr int kOrtMissing = 4;  // ort_run.mjs's status when onnxruntime-node is not installed

// Writes `input` (float32, `shape`) to DIR/input.f32 and runs ONNX Runtime (tests/support/ort_run.mjs) on the
// model (through model_for_ort) with it: DIR/outputs.json lists the outputs, DIR/ort.log has its messages.
// Returns ort_run's exit status (kOrtMissing: skip), -1 when it did not exit.
inline int run_ort(const fs::path& model, const fs::path& dir, const std::string& input_name,
                   const std::vector<float>& input, const Shape& shape) {
  const fs::path input_file = dir / "input.f32";
  std::ofstream(input_file, std::ios::binary)
      .write(reinterpret_cast<const char*>(input.data()),
             static_cast<std::streamsize>(input.size() * sizeof(float)));
  const int status =
      std::system(fmt::format("node '{}/tests/support/ort_run.mjs' '{}' '{}' '{}={}:{}' >'{}' 2>&1",
                              VAPIPE_SOURCE_DIR, model_for_ort(model, dir).string(), dir.string(), input_name,
                              input_file.string(), fmt::join(shape, "x"), (dir / "ort.log").string())
                      .c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace vapipe::test
