// libFuzzer target: the ONNX importer (src/compiler/onnx_model.*, onnx_importer.*, with the constant
// folding it runs while lowering). The input is a serialized ModelProto; it is parsed and lowered for
// batch 1 and, when the first bytes ask for it, at a fixed input size.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "compiler/onnx_importer.hpp"
#include "compiler/onnx_model.hpp"
#include "core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto model = vapipe::compiler::parse_onnx(bytes, "fuzz.onnx");
    vapipe::compiler::ImportRequest request;
    request.batch = 1 + static_cast<std::int64_t>(size % 4);
    if (size % 2 == 0) request.input_size = std::pair{64, 48};
    (void)vapipe::compiler::lower_onnx(model, request);
  } catch (const vapipe::Error&) {
  }
  return 0;
}
