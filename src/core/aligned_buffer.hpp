#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace vapipe {

// A 64-byte aligned heap block (AVX-512 loads and oneDNN's preferred alignment), freed by RAII.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t size_bytes) : size_(size_bytes) {
    if (size_bytes == 0) return;
    const std::size_t rounded = (size_bytes + kAlignment - 1) / kAlignment * kAlignment;
    data_.reset(static_cast<std::byte*>(std::aligned_alloc(kAlignment, rounded)));
    if (!data_) throw std::bad_alloc();
  }
  std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

  static constexpr std::size_t kAlignment = 64;

 private:
  struct Free {
    void operator()(std::byte* pointer) const { std::free(pointer); }
  };
  std::unique_ptr<std::byte[], Free> data_;
  std::size_t size_ = 0;
};

}  // namespace vapipe
