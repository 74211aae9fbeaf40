#pragma once
// Kernels for the few ops oneDNN has no primitive for; they run on dense row-major (plain) tensors and
// only appear in heads and shape shuffles, never in the convolution trunk.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace vapipe::infer {

// ONNX Resize, mode nearest, any coordinate_transformation_mode / nearest_mode.
void resize_nearest(const float* input, const Shape& in_shape, float* output, const Shape& out_shape,
                    const std::string& coordinate_mode, const std::string& nearest_mode);

// output[i] = input[starts + i * steps] per dimension (steps > 0).
void strided_slice(const float* input, const Shape& in_shape, const std::vector<std::int64_t>& starts,
                   const std::vector<std::int64_t>& steps, float* output, const Shape& out_shape);

// Gather along one axis with constant indices: input viewed as [outer, axis_size, inner].
void gather_rows(const float* input, std::int64_t outer, std::int64_t axis_size, std::int64_t inner,
                 const std::vector<std::int64_t>& indices, float* output);

}  // namespace vapipe::infer
