#include "infer/memory_planner.hpp"

#include <algorithm>
#include <numeric>

namespace vapipe::infer {
namespace {
constexpr std::size_t kAlignment = 64;
std::size_t align_up(std::size_t value) { return (value + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers) {
  MemoryPlan plan;
  plan.offsets.assign(buffers.size(), 0);
  std::vector<std::size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first: big buffers fixed early leave gaps the small ones fill.
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return buffers[a].size_bytes > buffers[b].size_bytes;
  });
  struct Placed {
    std::size_t offset;
    std::size_t end;
  };
  std::vector<std::size_t> placed;
  for (std::size_t index : order) {
    const auto& buffer = buffers[index];
    std::vector<Placed> conflicts;
    for (std::size_t other : placed) {
      const auto& peer = buffers[other];
      if (peer.last_step < buffer.first_step || buffer.last_step < peer.first_step) continue;
      conflicts.push_back({plan.offsets[other], plan.offsets[other] + align_up(peer.size_bytes)});
    }
    std::sort(conflicts.begin(), conflicts.end(),
              [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
    std::size_t offset = 0;
    const std::size_t need = align_up(buffer.size_bytes);
    for (const auto& conflict : conflicts) {
      if (conflict.offset >= offset + need) break;
      offset = std::max(offset, conflict.end);
    }
    plan.offsets[index] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + need);
    placed.push_back(index);
  }
  return plan;
}

}  // namespace vapipe::infer
