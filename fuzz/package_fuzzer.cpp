// libFuzzer target: the .vpk loader (src/core/package.*, graph_from_json) and the shape inference the
// runtime runs over a loaded graph (core/shape_inference). Random bytes would never pass the three CRC-32
// checks, so the harness recomputes them over whatever the header announces before loading: the fuzzer
// then reaches the header arithmetic, the manifest JSON and every tensor and node of it. Every package the
// loader accepts also goes through what `vapipe info` prints (text, JSON, --layers), which must not throw:
// an exception there ends the run as a crash (issue 17: `info` crashed on "stages": []).
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/graph.hpp"
#include "core/package.hpp"
#include "core/package_info.hpp"
#include "ops/shape_inference.hpp"

namespace {

// docs/model-format.md: the header's fields at these offsets, little-endian.
constexpr std::size_t kHeaderSize = 64;
constexpr std::size_t kManifestOffsetAt = 16, kManifestSizeAt = 24, kBlobOffsetAt = 32, kBlobSizeAt = 40;
constexpr std::size_t kManifestCrcAt = 48, kBlobCrcAt = 52, kHeaderCrcAt = 56;

std::uint64_t read_u64(const std::vector<std::byte>& bytes, std::size_t at) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data() + at, sizeof(value));
  return value;
}

void write_crc(std::vector<std::byte>& bytes, std::size_t at, std::uint64_t offset, std::uint64_t size) {
  if (offset > bytes.size() || size > bytes.size() - offset) return;  // the loader must refuse it anyway
  const auto crc = static_cast<std::uint32_t>(::crc32(::crc32(0L, Z_NULL, 0),
                                                      reinterpret_cast<const Bytef*>(bytes.data() + offset),
                                                      static_cast<uInt>(size)));
  std::memcpy(bytes.data() + at, &crc, sizeof(crc));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto bytes = std::make_shared<std::vector<std::byte>>(reinterpret_cast<const std::byte*>(data),
                                                        reinterpret_cast<const std::byte*>(data) + size);
  if (bytes->size() >= kHeaderSize) {
    write_crc(*bytes, kManifestCrcAt, read_u64(*bytes, kManifestOffsetAt), read_u64(*bytes, kManifestSizeAt));
    write_crc(*bytes, kBlobCrcAt, read_u64(*bytes, kBlobOffsetAt), read_u64(*bytes, kBlobSizeAt));
    write_crc(*bytes, kHeaderCrcAt, 0, kHeaderCrcAt);
  }
  try {
    vapipe::ir::Package package = vapipe::ir::read_package(*bytes, bytes, "fuzz.vpk");
    for (const bool as_json : {false, true}) {
      for (const bool layers : {false, true}) {
        const std::string text =
            vapipe::ir::describe_package(package, "fuzz.vpk", size, {.as_json = as_json, .layers = layers});
        if (text.empty()) __builtin_trap();  // the file line (or JSON object) is always there
      }
    }
    for (auto& network : package.networks) {
      for (auto& stage : network.stages) {
        try {
          vapipe::ops::infer_shapes(stage.graph);
        } catch (const vapipe::Error&) {
        }
      }
    }
  } catch (const vapipe::Error&) {
  }
  return 0;
}
