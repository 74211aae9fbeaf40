#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace vapipe {

// A read-only memory mapping of a whole file; weights are used in place from it.
class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::string& path);  // throws vapipe::Error
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const std::byte* data, std::size_t size);
  std::string path_;
  const std::byte* data_;
  std::size_t size_;
};

}  // namespace vapipe
