#pragma once
// How vapipe runs int8 convolutions on CPUs without VNNI (AVX2-only x86, e.g. AMD Zen 3), shared by the
// runtime (conv.cpp's lowering) and the reference executor that simulates it (conv.cpp's reference).
//
// oneDNN 2.6's non-VNNI int8 kernels multiply u8 by s8 with vpmaddubsw, which adds two products into a
// saturating s16. oneDNN guards s8 inputs only: it shifts them to u8 (+128) and halves their weights (the
// packed weights' `scale_adjust` 0.5), so every pair sum fits, at the cost of the weights' last bit. It
// does not guard u8 inputs: an input near 255 against two weights near 127 saturates.
//
// What vapipe does there, chosen at load for the CPU at hand (the package is the same on every CPU): it
// halves the weights of every int8 conv itself, rounding each odd weight up or down so that the running
// sum of rounding errors of an output channel stays within +-1 (oneDNN's reorder rounds half to even,
// whose errors add up per channel as a random walk: a bias on every output of that channel, since
// activations have a non-zero mean). s8 inputs: the doubled values go to oneDNN's reorder, which halves
// them exactly. u8 inputs (the image, kept at 8 bits, which for 8-bit pixels is lossless): the halved
// values go in as they are and the output scales are doubled; (255 * 64) * 2 = 32640 fits.
// (Quantizing the image to 7 bits instead, keeping 8-bit weights there, measured 0.055 of mAP@0.5 worse on yolov5n.)
// Measured on yolov5n (docs/performance.md, "INT8 without VNNI").
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace vapipe::ops {

// True where oneDNN's int8 convolutions use vpmaddubsw (no avx2_vnni / avx512_core_vnni): the CPU of this
// process, as oneDNN dispatches (ONEDNN_MAX_CPU_ISA=AVX2 makes a VNNI machine behave the same).
bool int8_pair_sums_saturate();

// The s8 weights `weights` (output channels of `per_channel` consecutive values) halved as described
// above, returned doubled (2 * half, in the original units, -128..128): what the kernel effectively
// multiplies by.
std::vector<std::int16_t> halve_weights_balanced(std::span<const std::int8_t> weights,
                                                 std::size_t per_channel);

}  // namespace vapipe::ops
