#pragma once
// Pre-quantized ONNX rewritten before import (docs/compiler.md, "Pre-quantized ONNX").
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/onnx_model.hpp"
#include "compiler/precision.hpp"

namespace vapipe::compiler {

// ONNX Runtime's dynamic quantization writes every Conv/MatMul as
//   DynamicQuantizeLinear(x) -> ConvInteger(x_q, w_q, x_zp, w_zp) -> Cast(float) -> Mul(x_scale * w_scale)
//   [-> Add(bias)]
// which quantizes each activation at run time. This folds each such chain into one float Conv (MatMul) of x
// with the weights dequantized at compile time, (w_q - w_zp) * w_scale, and the bias absorbed, so it runs on
// the float kernels (and the int8/bf16 precision passes) like any float model; the activations are no
// longer quantized, so the results differ from ONNX Runtime's by that quantization's rounding only.
// Returns how many nodes were folded; the model is unchanged where the pattern does not match exactly (the
// general imports of src/ops/quantize.cpp then compute it as written).
int fold_dynamic_quantization(OnnxModel& model);

// Whether the file holds static (QOperator) quantization: QLinearConv or QuantizeLinear nodes.
bool has_static_quantization(const OnnxModel& model);

// Whether the file holds QLinearConv nodes (QOperator format): those run int8 as written
// (compiler/precision.hpp, convert_integer_convolutions) rather than through the float rewrite below.
bool has_qlinear_convolutions(const OnnxModel& model);

// What a statically quantized file says about its quantization, for the int8 precision pass
// (compiler/precision.hpp) to use instead of calibrating.
struct FileQuantization {
  std::map<std::string, TensorRange> ranges;                // by tensor name: the file's activation ranges
  std::map<std::string, std::vector<float>> weight_scales;  // by float weight initializer: the file's scales
  int convolutions = 0;                                     // QLinearConv rewritten
  std::map<std::string, int> float_ops;                     // other QLinear ops, which run float, by op
  int asymmetric_weights = 0;      // QLinearConv with weight zero points: requantized symmetric (own scales)
  int asymmetric_activations = 0;  // activation ranges with a zero point, widened to symmetric int8
};

// Rewrites static quantization (QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul and the
// com.microsoft QLinearAdd, QLinearGlobalAveragePool) as the float graph it quantizes: weights and biases
// dequantized at compile time, an activation folded into a range that starts at 0 (ReLU, ReLU6) restored
// as a Clip to that range, and the file's activation ranges and weight scales returned so the int8
// precision pass quantizes where the file did. Returns nullopt with `why_not` set, the model unchanged,
// when the file has what this cannot rewrite (another quantized op, per-axis activation quantization,
// 16-bit types): the importer then computes the file as written (src/ops/quantize.cpp).
std::optional<FileQuantization> dequantize_static_quantization(OnnxModel& model, std::string& why_not);

}  // namespace vapipe::compiler
