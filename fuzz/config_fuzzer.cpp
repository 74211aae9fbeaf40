// libFuzzer target: the camera config parser (src/pipeline/config.*). The parser's contract is that any
// text gives a PipelineConfig or one vapipe::Error; any other exception escapes and counts as a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.hpp"
#include "pipeline/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto config = vapipe::pipeline::parse_config(text, "fuzz.json");
    for (const auto& channel : vapipe::pipeline::expand_channels(config)) {
      if (channel.camera == nullptr || channel.model == nullptr) __builtin_trap();
      (void)vapipe::pipeline::model_family(channel.model->model_type.value_or(""));
    }
    if (config.http) (void)vapipe::pipeline::is_loopback_address(config.http->bind);
  } catch (const vapipe::Error&) {
  }
  return 0;
}
