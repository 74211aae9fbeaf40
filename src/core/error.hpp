#pragma once
// One error type for every module edge: a message that says what went wrong and where
// (file, network, ONNX node, config key). Never abort on user input; throw this instead.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace vapipe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace vapipe
