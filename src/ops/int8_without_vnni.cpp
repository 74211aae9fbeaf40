#include "ops/int8_without_vnni.hpp"

#include <dnnl.hpp>

namespace vapipe::ops {

bool int8_pair_sums_saturate() {
#if defined(__aarch64__)
  return false;  // vpmaddubsw is x86: oneDNN's aarch64 int8 paths accumulate in s32 and halve nothing
#else
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa != dnnl::cpu_isa::avx2_vnni && isa != dnnl::cpu_isa::avx512_core_vnni &&
         isa != dnnl::cpu_isa::avx512_core_bf16 && isa != dnnl::cpu_isa::avx512_core_amx;
#endif
}

std::vector<std::int16_t> halve_weights_balanced(std::span<const std::int8_t> weights,
                                                 std::size_t per_channel) {
  std::vector<std::int16_t> doubled(weights.size());
  for (std::size_t start = 0; start < weights.size(); start += per_channel) {
    int error = 0;  // sum of (doubled - weight) so far in this output channel
    for (std::size_t i = start; i < start + per_channel && i < weights.size(); ++i) {
      const int w = weights[i];
      int twice_half = w;
      if (w % 2 != 0) {
        // Odd: w - 1 or w + 1; the one that brings the channel's error back towards zero.
        twice_half = error > 0 ? w - 1 : w + 1;
        error += twice_half - w;
      }
      doubled[i] = static_cast<std::int16_t>(twice_half);
    }
  }
  return doubled;
}

}  // namespace vapipe::ops
