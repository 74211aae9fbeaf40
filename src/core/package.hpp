#pragma once
// The .vpk container (docs/model-format.md): a 64-byte header, a JSON manifest and 64-byte aligned
// constant blobs. Reading maps the file and points constant tensors into the mapping (no copy).
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "core/graph.hpp"

namespace vapipe::ir {

// Version 2 adds reduced precision (s8/bf16 tensors, per-layer precision and scales). A package whose
// networks are all f32 is still written as version 1, so older runtimes keep reading FP32 packages.
// Version 3 adds integer convolutions (pre-quantized ONNX on its own integers: Conv "integer" with zero
// points, u8 tensors), which a version-2 runtime would misread; written only where a network has one.
inline constexpr std::uint32_t kPackageFormatVersion = 3;
inline constexpr std::uint32_t kReducedPrecisionPackageFormatVersion = 2;
inline constexpr std::uint32_t kOldestPackageFormatVersion = 1;

// Writes atomically (temporary file + rename). Identical constant blobs (the same weights in several
// stages) are stored once.
void write_package(const Package& package, const std::string& path);

// Larger files are refused before they are mapped: the largest detectors are a few hundred MB, and every
// size and offset in a package then fits the 32-bit arithmetic of the kernels' index maths.
inline constexpr std::uint64_t kMaxPackageBytes = std::uint64_t{2} << 30;

// Verifies magic, version, sizes and checksums; throws vapipe::Error naming the file and the defect.
Package read_package(const std::string& path);
// The same over bytes already in memory (the fuzz target); `owner` keeps them alive while constants point
// into them, `label` stands for the file in messages.
Package read_package(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                     const std::string& label);

}  // namespace vapipe::ir
