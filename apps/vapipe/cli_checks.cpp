// Range checks of numeric options with messages a person can act on: CLI11's PositiveNumber and
// NonNegativeNumber print the largest double in full (a 300-digit number) as the bound.
#include <cmath>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "apps/vapipe/commands.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::cli {
namespace {

// The option's text as a finite number; nullopt when it is not one (CLI11 then reports the type error).
std::optional<double> number_of(const std::string& text) {
  try {
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(value)) return std::nullopt;
    return value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto value = number_of(text);
        return value && *value > 0 ? "" : fmt::format("'{}' must be a number above 0", text);
      },
      "> 0", "POSITIVE");
}

CLI::Validator non_negative_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto value = number_of(text);
        return value && *value >= 0 ? "" : fmt::format("'{}' must be a number, 0 or more", text);
      },
      ">= 0", "NONNEGATIVE");
}

CLI::Validator thread_count() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto value = number_of(text);
        if (value && *value >= 0 && *value <= max_threads() && std::floor(*value) == *value) return "";
        return fmt::format(
            "'{}' must be a whole number from 0 (every core) to {} (this machine's cores, at least 256: more "
            "threads than cores only add switching)",
            text, max_threads());
      },
      "0.." + std::to_string(max_threads()), "THREADS");
}

}  // namespace vapipe::cli
