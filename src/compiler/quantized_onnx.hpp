#pragma once
// Pre-quantized ONNX rewritten before import (docs/compiler.md, "Pre-quantized ONNX").
#include <map>
#include <string>

#include "compiler/onnx_model.hpp"
#include "compiler/precision.hpp"
#include "core/graph.hpp"

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

// Whether the model holds static quantization (QuantizeLinear, QLinearConv, ...): its own scales then give
// the int8 ranges, no calibration needed.
bool has_static_quantization(const OnnxModel& model);

// The int8 route for an imported statically quantized graph (src/ops/quantize.cpp imports it as float
// operators between Quantize -> Dequantize pairs): each per-tensor pair whose Dequantize nodes undo exactly
// that Quantize becomes a clip to the representable range, [(low - zp) * s, (high - zp) * s] (the range
// keeps the ReLU/ReLU6 the quantization folded in; the fusion passes fold the clip into the convolution
// before it), and both tensors get that range for the precision pass, which then runs the convolutions int8
// with the file's scales (symmetric: threshold max(|min|, |max|)). Returns the ranges by tensor name; pairs
// that are per axis or feed a graph output stay as they are (float).
std::map<std::string, TensorRange> quantization_to_ranges(ir::Graph& graph);

}  // namespace vapipe::compiler
