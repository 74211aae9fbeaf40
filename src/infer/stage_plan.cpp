#include "infer/stage_plan.hpp"

#include <algorithm>
#include <vector>

#include "infer/memory_planner.hpp"

namespace vapipe::infer {
namespace {

void place_in_arena(StagePlan& plan) {
  const int value_count = static_cast<int>(plan.values.size());
  std::vector<int> first(value_count, -1);
  std::vector<int> last(value_count, -1);
  for (int s = 0; s < static_cast<int>(plan.steps.size()); ++s) {
    for (const auto& [arg, value] : plan.steps[s].args) {
      const int root = plan.root_of(value);
      if (first[root] < 0) first[root] = s;
      last[root] = s;
    }
  }
  // Aliases may describe more bytes than their root (padded blocked views): reserve the largest.
  std::vector<std::size_t> bytes(static_cast<std::size_t>(value_count), 0);
  for (int v = 0; v < value_count; ++v) {
    auto& root_bytes = bytes[static_cast<std::size_t>(plan.root_of(v))];
    root_bytes = std::max(root_bytes, plan.values[v].md.get_size());
  }
  std::vector<int> arena_roots;
  std::vector<BufferLifetime> lifetimes;
  for (int v = 0; v < value_count; ++v) {
    const Value& value = plan.values[v];
    if (value.alias_of >= 0 || value.constant != nullptr || value.external || first[v] < 0) continue;
    arena_roots.push_back(v);
    lifetimes.push_back({bytes[v], first[v], last[v]});
  }
  const MemoryPlan memory_plan = plan_memory(lifetimes);
  for (std::size_t i = 0; i < arena_roots.size(); ++i)
    plan.values[arena_roots[i]].arena_offset = memory_plan.offsets[i];
  plan.arena_bytes = memory_plan.arena_bytes;
}

}  // namespace

StagePlan build_stage_plan(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine,
                           const std::string& network_name, PackedConstants& packed_constants,
                           const ops::LoweringOptions& options) {
  StagePlan plan = ops::Lowering(graph, batch, engine, network_name, packed_constants, options).run();
  place_in_arena(plan);
  return plan;
}

}  // namespace vapipe::infer
