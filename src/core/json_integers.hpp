#pragma once
// Integers read from a loaded file's JSON (a package manifest). nlohmann's get<integer>() casts a JSON
// float with a plain static_cast, undefined behaviour beyond the type's range (1e72 as a shape
// dimension, found by the package fuzzer): such a field must be a JSON integer that fits.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace vapipe {

template <typename Int>
Int json_integer(const nlohmann::json& value, std::string_view what) {
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    if (std::in_range<Int>(number)) return static_cast<Int>(number);
  } else if (value.is_number_integer()) {
    const auto number = value.get<std::int64_t>();
    if (std::in_range<Int>(number)) return static_cast<Int>(number);
  }
  fail("{}: {} is not an integer in range", what, value.dump());
}

template <typename Int>
std::vector<Int> json_integers(const nlohmann::json& value, std::string_view what) {
  if (!value.is_array()) fail("{}: {} is not an array of integers", what, value.dump());
  std::vector<Int> numbers;
  numbers.reserve(value.size());
  for (const auto& element : value) numbers.push_back(json_integer<Int>(element, what));
  return numbers;
}

}  // namespace vapipe
