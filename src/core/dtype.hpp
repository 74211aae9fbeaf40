#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vapipe {

enum class DType : std::uint8_t { kF32, kF16, kBF16, kS8, kU8, kS32, kS64 };

using Shape = std::vector<std::int64_t>;

std::size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);      // "f32", "f16", ...
DType dtype_from_name(std::string_view name);  // throws vapipe::Error on an unknown name

std::int64_t shape_volume(const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "1x3x640x640"

float half_to_float(std::uint16_t half);

}  // namespace vapipe
