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
// (compiler/precision.hpp, convert_integer_convolutions).
bool has_qlinear_convolutions(const OnnxModel& model);

}  // namespace vapipe::compiler
