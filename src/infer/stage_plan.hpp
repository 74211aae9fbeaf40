#pragma once
// A stage of a network made executable on this CPU: oneDNN primitives in execution order, the memory
// descriptor of every intermediate value (layouts chosen once, by the convolutions), packed weights
// and an arena plan. Building it is the "load" cost; executing it allocates nothing.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "core/graph.hpp"
#include "infer/aligned_buffer.hpp"

namespace vapipe::infer {

struct Value {
  dnnl::memory::desc md;
  int alias_of = -1;               // shares the bytes of another value (reshape views, in-place sum)
  const void* constant = nullptr;  // weights and other constants, bound in place
  bool external = false;           // a graph input or output: its bytes live outside the arena
  std::size_t arena_offset = 0;    // for arena values, after planning
};

struct Step {
  std::string node_name;
  dnnl::primitive primitive;              // empty when `kernel` is set
  std::vector<std::pair<int, int>> args;  // (DNNL_ARG_*, value id)
  dnnl::memory::desc scratchpad_md;
  // Hand-written kernels (ops oneDNN lacks): receives the data pointers of `args` in order.
  std::function<void(const std::vector<void*>&)> kernel;
};

// Constants reordered into kernel layouts, shared by every stage that wants the same bytes in the same
// layout (batch-1 and batch-4 stages usually do), so a package's weights are packed once per context.
class PackedConstants {
 public:
  std::shared_ptr<const AlignedBuffer> find(const void* source, const dnnl::memory::desc& md) const {
    for (const auto& entry : entries_) {
      if (entry.source == source && entry.md == md) return entry.buffer;
    }
    return nullptr;
  }
  void add(const void* source, const dnnl::memory::desc& md, std::shared_ptr<const AlignedBuffer> buffer) {
    entries_.push_back({source, md, std::move(buffer)});
  }

 private:
  struct Entry {
    const void* source;
    dnnl::memory::desc md;
    std::shared_ptr<const AlignedBuffer> buffer;
  };
  std::vector<Entry> entries_;
};

struct StagePlan {
  std::int64_t batch = 0;
  std::vector<Value> values;
  std::vector<Step> steps;
  std::vector<int> input_values;   // plain, external
  std::vector<int> output_values;  // plain, external
  std::vector<std::string> input_names, output_names;
  std::vector<Shape> input_shapes, output_shapes;
  std::vector<std::shared_ptr<const AlignedBuffer>> packed_constants;  // keeps packed weights alive
  std::size_t arena_bytes = 0;
  std::size_t scratchpad_bytes = 0;

  // The value that owns the bytes `value` views (itself when it is no alias).
  int root_of(int value) const {
    while (values[static_cast<std::size_t>(value)].alias_of >= 0)
      value = values[static_cast<std::size_t>(value)].alias_of;
    return value;
  }
};

StagePlan build_stage_plan(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine,
                           const std::string& network_name, PackedConstants& packed_constants);

dnnl::memory::desc plain_md(const Shape& shape, dnnl::memory::data_type type = dnnl::memory::data_type::f32);

}  // namespace vapipe::infer
