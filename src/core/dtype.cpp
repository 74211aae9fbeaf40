#include "core/dtype.hpp"

#include <array>
#include <bit>
#include <cstring>

#include "core/error.hpp"

namespace vapipe {
namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<DTypeInfo, 7> kDTypes{{{DType::kF32, "f32", 4},
                                            {DType::kF16, "f16", 2},
                                            {DType::kBF16, "bf16", 2},
                                            {DType::kS8, "s8", 1},
                                            {DType::kU8, "u8", 1},
                                            {DType::kS32, "s32", 4},
                                            {DType::kS64, "s64", 8}}};
}  // namespace

std::size_t dtype_size(DType dtype) { return kDTypes.at(static_cast<std::size_t>(dtype)).size; }

std::string_view dtype_name(DType dtype) { return kDTypes.at(static_cast<std::size_t>(dtype)).name; }

DType dtype_from_name(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  fail("unknown dtype '{}'", name);
}

std::int64_t shape_volume(const Shape& shape) {
  // Shapes come from untrusted models and packages too; an overflowing product must be an error, not UB.
  std::int64_t volume = 1;
  for (const std::int64_t dim : shape) {
    if (__builtin_mul_overflow(volume, dim, &volume))
      fail("shape {} has more elements than int64 holds", shape_to_string(shape));
  }
  return volume;
}

std::string shape_to_string(const Shape& shape) {
  std::string text;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) text += 'x';
    text += std::to_string(shape[i]);
  }
  return text.empty() ? "scalar" : text;
}

float half_to_float(std::uint16_t half) {
  // IEEE 754 binary16 -> binary32, including subnormals, infinities and NaN.
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000U) << 16U;
  std::uint32_t exponent = (half >> 10U) & 0x1FU;
  std::uint32_t mantissa = half & 0x3FFU;
  std::uint32_t bits = 0;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400U) == 0) {
        mantissa <<= 1U;
        --exponent;
      }
      mantissa &= 0x3FFU;
      bits = sign | (exponent << 23U) | (mantissa << 13U);
    }
  } else if (exponent == 0x1F) {
    bits = sign | 0x7F800000U | (mantissa << 13U);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23U) | (mantissa << 13U);
  }
  return std::bit_cast<float>(bits);
}

}  // namespace vapipe
