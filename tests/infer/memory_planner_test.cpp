#include "infer/memory_planner.hpp"

#include <gtest/gtest.h>

#include <random>

namespace vapipe::infer {
namespace {

TEST(MemoryPlanner, OverlappingLifetimesNeverShareBytes) {
  std::mt19937 generator(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferLifetime> buffers;
    const int count = 1 + static_cast<int>(generator() % 40);
    for (int i = 0; i < count; ++i) {
      const int first = static_cast<int>(generator() % 50);
      buffers.push_back({1 + generator() % 100000, first, first + static_cast<int>(generator() % 10)});
    }
    const MemoryPlan plan = plan_memory(buffers);
    for (int a = 0; a < count; ++a) {
      EXPECT_EQ(plan.offsets[a] % 64, 0U);
      EXPECT_LE(plan.offsets[a] + buffers[a].size_bytes, plan.arena_bytes);
      for (int b = a + 1; b < count; ++b) {
        const bool live_together =
            !(buffers[a].last_step < buffers[b].first_step || buffers[b].last_step < buffers[a].first_step);
        const bool disjoint = plan.offsets[a] + buffers[a].size_bytes <= plan.offsets[b] ||
                              plan.offsets[b] + buffers[b].size_bytes <= plan.offsets[a];
        if (live_together) {
          EXPECT_TRUE(disjoint) << "trial " << trial << " buffers " << a << " and " << b;
        }
      }
    }
  }
}

TEST(MemoryPlanner, ReusesBytesOfDeadBuffers) {
  // A chain a -> b -> c: a and c never live together, so the arena holds two buffers, not three.
  const MemoryPlan plan = plan_memory({{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}});
  EXPECT_LE(plan.arena_bytes, 2 * 1024U);
}

}  // namespace
}  // namespace vapipe::infer
