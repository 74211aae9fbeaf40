#pragma once
// Places activation buffers in one arena so that buffers whose lifetimes overlap never share bytes and
// the arena stays small (greedy by size, the scheme of TFLite's and ncnn's planners).
#include <cstddef>
#include <vector>

namespace vapipe::infer {

struct BufferLifetime {
  std::size_t size_bytes = 0;
  int first_step = 0;  // inclusive
  int last_step = 0;   // inclusive
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  // one per lifetime, 64-byte aligned
  std::size_t arena_bytes = 0;
};

MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers);

}  // namespace vapipe::infer
