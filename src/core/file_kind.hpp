#pragma once
// Why a path given as a model, package or image cannot be read as one: a folder or a device must not be
// reported as "no such file" (issue 17: a folder given as a model said so).
#include <filesystem>
#include <string>

namespace vapipe {

// "" for a regular file; else what the path is instead, to follow "<path>: ".
inline std::string not_a_file_reason(const std::filesystem::path& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) return "no such file";
  if (std::filesystem::is_directory(status)) return "is a folder, not a file";
  if (!std::filesystem::is_regular_file(status)) return "is not a regular file (a device, FIFO or socket)";
  return "";
}

}  // namespace vapipe
