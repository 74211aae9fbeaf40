#pragma once
// Reduced precision for a compiled graph (docs/compiler.md, "Precision"): decides which convolutions run
// int8 or bf16, which activations are stored as s8/bf16 between them, and writes the scales. Everything
// else stays f32, so a graph with ops the low-precision path lacks still compiles (those layers run float).
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/graph.hpp"

namespace vapipe::compiler {

// The calibrated range of one activation tensor (compiler/calibration.hpp makes these).
struct TensorRange {
  float threshold = 0.0F;  // |x| beyond it saturates: the s8 scale is threshold / 127
  float min = 0.0F;        // observed extremes
  float max = 0.0F;
};

struct PrecisionOptions {
  std::string precision = "f32";              // f32 | int8 | bf16
  std::map<std::string, TensorRange> ranges;  // int8: by tensor name (every activation of the graph)
  std::set<std::string> keep_float;           // node names that stay f32
  // int8: convolutions writing a graph output (the detection heads) stay f32 unless this is set. Measured
  // on YOLOv5n (docs/performance.md): int8 heads cost 0.05-0.06 of detection mAP@0.5 against FP32 and
  // saved no time (their channels-last output needs a transpose the f32 head writes directly).
  bool quantize_outputs = false;
};

// Rewrites `graph` in place: Conv attrs ("precision", "weight_scales", "input_scale", "input_type"), s8
// weights, tensor dtypes and scales. Returns the number of convolutions converted. Throws vapipe::Error
// for a keep_float name that is no node of the graph or an unknown precision.
std::size_t apply_precision(ir::Graph& graph, const PrecisionOptions& options);

// Pre-quantized ONNX whose QLinearConv were imported as written (src/ops/quantize.cpp: Dequantize of the
// input zero point, a float Conv of the integers, Quantize by x_scale * w_scale[m] / y_scale): each such
// chain becomes one int8 Conv ("integer": true) that computes what ONNX Runtime computes, in integers:
// acc = sum((x - input_zero_point) * w) + bias, y = saturate(round_half_even(acc * weight_scales[m]) +
// output_zero_point). Its output tensor is stored u8 (s8 for an int8 zero point) with scale 1: the integers
// themselves, as the float graph held them, so every other reader (QLinearAdd's Dequantize, pooling) sees
// the same values. A chain that does not fit (weights beyond s8, an s8 input with a zero point, a graph
// output, an output read by another op than Conv or Dequantize, a keep_float node) stays as written.
// Returns the number of convolutions converted, `total` (optional) the number of chains seen.
std::size_t convert_integer_convolutions(ir::Graph& graph, const std::set<std::string>& keep_float,
                                         std::size_t* total = nullptr);

// Per-output-channel symmetric weight quantization: scales[o] = max|w[o, ...]| / 127 (1 for an all-zero
// channel) and q = round(w / scale), saturated to [-127, 127].
void quantize_weights(std::span<const float> weights, std::size_t out_channels, std::vector<std::int8_t>& q,
                      std::vector<float>& scales);

}  // namespace vapipe::compiler
