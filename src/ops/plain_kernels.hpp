#pragma once
// Kernels for the few ops oneDNN has no primitive for; they run on dense row-major (plain) tensors and
// only appear in heads and shape shuffles, never in the convolution trunk.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace vapipe::ops {

// ONNX Resize, mode nearest: output index i of dimension d reads input index source[d][i] (the coordinate
// transformation and rounding are resolved once, at load: resize.cpp).
void resize_nearest(const float* input, const Shape& in_shape, float* output, const Shape& out_shape,
                    const std::vector<std::vector<std::int64_t>>& source);

// output[i] = input[starts + i * steps] per dimension (steps > 0).
void strided_slice(const float* input, const Shape& in_shape, const std::vector<std::int64_t>& starts,
                   const std::vector<std::int64_t>& steps, float* output, const Shape& out_shape);

// Gather along one axis with constant indices: input viewed as [outer, axis_size, inner].
void gather_rows(const float* input, std::int64_t outer, std::int64_t axis_size, std::int64_t inner,
                 const std::vector<std::int64_t>& indices, float* output);

// Concatenation of dense row-major tensors along one axis: buffers[i] (i < chunk_sizes.size()) are the
// inputs, each `outer` chunks of chunk_sizes[i] elements of `element_bytes`; the last buffer is the
// output. oneDNN 2.6's concat takes 3-4 ms on the YOLOv5 decode's [1, N, 85] tensors; this is memcpy.
void concat_plain(const std::vector<void*>& buffers, const std::vector<std::int64_t>& chunk_sizes,
                  std::int64_t outer, std::size_t element_bytes = sizeof(float));

// Channels-last [N, HW, C] -> channels-first [N, C, HW]. oneDNN 2.6's jit reorder crawls on odd channel
// counts such as YOLO heads' 255 (measured 5-20 ms for 1x255x80x80); this tiled transpose stays near
// memory speed.
void nhwc_to_nchw(const float* input, float* output, std::int64_t batch, std::int64_t channels,
                  std::int64_t spatial);

// An image's f32 planes [N, C, HW] quantized into channels-last integers [N, HW, C]: q = saturate(round half
// to even(x * scale)) to u8 (`unsigned_output`) or s8, as oneDNN's reorder computes it. oneDNN 2.6's reorder
// takes 1.0-1.3 ms for a 3x640x640 input (one int8 network's first step, a tenth of its run); this one
// streams the planes in chunks. Any channel count; the image's 1-4 are what it is for.
void quantize_nchw_to_nhwc(const float* input, void* output, std::int64_t batch, std::int64_t channels,
                           std::int64_t spatial, float scale, bool unsigned_output);
// The same, one element at a time: the differential tests' ground truth.
void quantize_nchw_to_nhwc_reference(const float* input, void* output, std::int64_t batch,
                                     std::int64_t channels, std::int64_t spatial, float scale,
                                     bool unsigned_output);

// A 1x1 detection-head convolution computed where a decoder reads it (include/vapipe/head_gate.hpp,
// HeadGate): input [pixels, in_channels] and output [pixels, out_channels] channels-last, weights
// [out_channels, in_channels], bias [out_channels] (or null). out_channels is anchors x per_anchor; every
// anchor's `gate_channel` is written, its other channels only where that value is not <= gate_logit.
// YOLOv5n's 80x80 head is 13 % of its int8 run computed whole; a scene keeps ~1 % of its anchors.
void gated_head_1x1(const float* input, const float* weights, const float* bias, float* output,
                    std::int64_t pixels, std::int64_t in_channels, std::int64_t out_channels, int per_anchor,
                    int gate_channel, float gate_logit);

// Softmax (log: log-softmax) over the middle dimension of input viewed as [outer, length, inner], inner > 1.
// oneDNN 2.6's softmax along a non-innermost axis falls to its reference kernel: YOLOv8's DFL softmax
// ([1, 16, 4, 8400], axis 1) took 35 of 94 ms of the whole network there.
void softmax_across(const float* input, float* output, std::int64_t outer, std::int64_t length,
                    std::int64_t inner, bool log);

// Elementwise a (alg) b with numpy broadcasting of both operands to y_shape; alg: add, sub, mul, div, max,
// min, pow. For what oneDNN 2.6's binary primitive cannot do (pow; a broadcast first operand).
bool binary_kernel_supports(const std::string& alg);
void binary_broadcast(const std::string& alg, const float* a, const Shape& a_shape, const float* b,
                      const Shape& b_shape, float* y, const Shape& y_shape);

}  // namespace vapipe::ops
